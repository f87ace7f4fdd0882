"""The arguments of ``llamafactory-ext inspect RECIPE.yaml [key=value ...]``: inspect's own keys
(:class:`InspectOptions`) and every other key a recipe key, checked against LLaMA-Factory's own
parser exactly as ``llamafactory-cli train RECIPE.yaml key=value`` would take it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from llamafactory_ext.config import from_argv, is_config_path, option
from llamafactory_ext.inspect.analysis import InspectError
from llamafactory_ext.recipe_keys import check_recipe, llamafactory_train_keys

USAGE = ("RECIPE.yaml [key=value ...] [n=8] [format=text|html|json] [tokenizer=PATH|fixture] [output=FILE] "
         "[samples=true] [eval=EVAL.yaml]")


@dataclasses.dataclass
class InspectOptions:
    n: int = option(8, "rows shown per data set (the first n)", ge=1)
    format: str = option("text", "text | html | json", choices=("text", "html", "json"))
    tokenizer: str | None = option(None, "tokenizer dir or Hub id instead of the model's; 'fixture' = the tiny "
                                         "Qwen3-id tokenizer, built offline and cached")
    output: str | None = option(None, "write the report to this file (html: default inspect.html; text/json: stdout)")
    samples: bool = option(False, "use the built-in sample data of every registered data set as dataset_dir")
    eval: str | None = option(None, "evaluator YAML (recipes/eval/*.yaml): lint its thinking modes against the recipe")
    color: str = option("auto", "text format: auto (ANSI on a terminal without NO_COLOR) | always | never",
                        choices=("auto", "always", "never"))
    recipe: dict[str, Any] = option({}, "the recipe's keys: the file, then every key=value that is not one of the above")


def parse_argv(argv: list[str]) -> tuple[str, dict[str, Any], InspectOptions]:
    """``RECIPE.yaml key=value ...`` -> (recipe path, merged recipe dict, inspect options)."""
    if not argv or not is_config_path(argv[0]):
        raise InspectError(f"inspect needs a recipe first: llamafactory-ext inspect {USAGE}")
    path = argv[0]
    if not Path(path).is_file():
        raise InspectError(f"recipe not found: {path}")
    opts = from_argv(InspectOptions, argv, rest="recipe", rest_keys=llamafactory_train_keys)
    check_recipe(opts.recipe, path)  # values: LLaMA-Factory's types and choices, the project's ranges
    if opts.samples and any(a.startswith("dataset_dir=") for a in argv[1:]):
        raise InspectError("samples=true sets dataset_dir to the built-in samples: give samples=true or dataset_dir=..., not both")
    return path, opts.recipe, opts
