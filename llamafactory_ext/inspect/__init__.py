"""See exactly what a recipe trains on, before spending a GPU day.

``llamafactory-ext inspect RECIPE.yaml [key=value ...]`` runs LLaMA-Factory's OWN data pipeline on
the recipe's data (``dataset_info.json`` in ``dataset_dir``, the template with
``enable_thinking``, ``cutoff_len``, ``packing``, ``train_on_prompt``, ``mask_history``) with the
tokenizer only: no model weights, no GPU. It shows, per data set, which tokens carry loss, where
the empty think block ``<think>\\n\\n</think>\\n\\n`` lands (masked in the prompt or trained in the
response), rows cut by ``cutoff_len`` and those that lost their answer, the packing fill, and
whether every training prompt equals the evaluator's prompt token for token; lints explain what
looks wrong (one line why, one line fix). Exit status 1 when a lint of severity ``error`` fires.

Recipe keys are overrides exactly as ``llamafactory-cli train RECIPE.yaml key=value`` takes them;
inspect's own keys (below) are taken out first. Examples::

    llamafactory-ext inspect recipes/v3_mixed.yaml samples=true tokenizer=fixture
    llamafactory-ext inspect recipes/v1_nothink.yaml enable_thinking=true samples=true tokenizer=fixture
    llamafactory-ext inspect recipes/v2_think.yaml dataset_dir=/data/ds cutoff_len=512 format=json
    llamafactory-ext inspect recipes/v1_nothink.yaml samples=true tokenizer=fixture format=html output=v1.html \\
        eval=recipes/eval/italic_zeroshot.yaml

How each number is obtained (LLaMA-Factory 0.9.5, read from its source):

- rows are read and converted by ``llamafactory.data.loader._load_single_dataset`` (the loader and
  ``align_dataset`` converter ``get_dataset`` uses, ``max_samples`` included) and encoded one by one
  by ``SupervisedDatasetProcessor.preprocess_dataset`` (stage ``sft``) or
  ``PretrainDatasetProcessor`` (stage ``pt``) with the recipe's ``DataArguments``, so ``input_ids``
  and ``labels`` are exactly what training sees (``PackedSupervisedDatasetProcessor`` encodes every
  row with the same ``_encode_data_example`` before packing);
- the packing fill groups those lengths with LLaMA-Factory's own ``greedy_knapsack``, batch by batch
  of ``preprocessing_batch_size`` rows as ``datasets.map`` feeds the packed processor (stage
  ``pt``: the packed pretrain processor itself runs);
- a row is *cut* when its untruncated encoding (``Template.encode_multiturn``, the call the
  processor makes) is longer than ``cutoff_len``; it *lost its answer* when the final answer
  (after ``</think>``, or the whole assistant text without a trace) is not entirely inside the
  trained tokens of its last turn that survived;
- parity: the masked prompt of a row (the tokens before the first trained token of its last
  assistant turn) against ``prompts.PromptEncoder(tokenizer, template, mode).encode(messages,
  system)``, the evaluator's prompt, for the mode the row trains (rows cut by ``cutoff_len`` are
  counted under ``cut_rows`` instead).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from llamafactory_ext.config import (
    build,
    check_recipe,
    describe,
    is_config_path,
    llamafactory_train_keys,
    load_config,
    load_yaml,
    option,
    split_argv,
    unknown_key_error,
)
from llamafactory_ext.inspect.analysis import (
    IGNORE_INDEX,
    Analyzer,
    Arguments,
    DatasetStats,
    InspectError,
    first_line,
)
from llamafactory_ext.inspect.lints import make_lints
from llamafactory_ext.inspect.render import render_html, render_text, to_json, use_color

USAGE = ("RECIPE.yaml [key=value ...] [n=8] [format=text|html|json] [tokenizer=PATH|fixture] [output=FILE] "
         "[samples=true] [eval=EVAL.yaml]")
SUPPORTED_STAGES = ("sft", "pt")
FIXTURE = "fixture"
CACHE_ENV = "LLAMAFACTORY_EXT_CACHE"  # where tokenizer=fixture is cached (default ~/.cache/llamafactory-ext)
__all__ = ["IGNORE_INDEX", "InspectError", "InspectOptions", "exit_status", "fixture_tokenizer_dir", "inspect_recipe",
           "main", "render_html", "render_text", "to_json"]


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


OWN_KEYS = tuple(f.name for f in dataclasses.fields(InspectOptions))


def options_help() -> str:
    return (describe(InspectOptions)
            + "\n  any recipe key           as llamafactory-cli train takes it, e.g. enable_thinking=true "
              "cutoff_len=64 dataset_dir=/tmp/ds")


# ---------------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------------
def parse_argv(argv: list[str]) -> tuple[str, dict[str, Any], InspectOptions]:
    """``RECIPE.yaml key=value ...`` -> (recipe path, merged recipe dict, inspect options)."""
    if not argv or not is_config_path(argv[0]):
        raise InspectError(f"inspect needs a recipe first: llamafactory-ext inspect {USAGE}")
    path, overrides = split_argv(argv)
    assert path is not None
    own = [o for o in overrides if o.partition("=")[0] in OWN_KEYS]
    rest = [o for o in overrides if o not in own]
    opts = build(InspectOptions, load_config(None, own), where="command line")
    if not Path(path).is_file():
        raise InspectError(f"recipe not found: {path}")
    file_keys = set(load_yaml(path))
    recipe = load_config(path, rest)
    known = llamafactory_train_keys()
    for key in recipe:
        if key not in known:
            where = path if key in file_keys and not any(o.partition("=")[0] == key for o in rest) else "command line"
            raise unknown_key_error(key, known | set(OWN_KEYS), where)
    check_recipe(recipe, path)  # values: LLaMA-Factory's types and choices, the project's ranges
    if opts.samples and any(o.partition("=")[0] == "dataset_dir" for o in rest):
        raise InspectError("samples=true sets dataset_dir to the built-in samples: give samples=true or dataset_dir=..., not both")
    return path, recipe, opts


def build_arguments(recipe: dict[str, Any], where: str, model_path: str, workdir: str) -> Arguments:
    """LLaMA-Factory's argument dataclasses for the data pipeline only.

    Model, data and finetuning keys go through LLaMA-Factory's ``HfArgumentParser`` (their own
    ``__post_init__`` checks run); of the training keys only ``seed`` / ``data_seed`` matter to the
    data, so ``TrainingArguments`` gets those, ``do_train`` and a temp ``output_dir``: no bf16,
    DeepSpeed or quantization check can fire on a machine without a GPU. The post-processing that
    ``get_train_args`` applies to the data (``packing`` default for ``pt``, ``model_max_length``)
    and its data checks for non-sft stages are repeated here.
    """
    from llamafactory.hparams import (
        DataArguments,
        FinetuningArguments,
        ModelArguments,
        TrainingArguments,
    )
    from transformers import HfArgumentParser

    def fields(cls: type) -> set[str]:
        return {f.name for f in dataclasses.fields(cls) if f.init}

    classes = (ModelArguments, DataArguments, FinetuningArguments)
    wanted = fields(ModelArguments) | fields(DataArguments) | fields(FinetuningArguments)
    values = {k: v for k, v in recipe.items() if k in wanted}
    values["model_name_or_path"] = model_path
    try:
        model_args, data_args, finetuning_args = HfArgumentParser(classes).parse_dict(values)
        train_values = {"output_dir": workdir, "do_train": True, "report_to": "none",
                        "seed": recipe.get("seed", 42)}
        if recipe.get("data_seed") is not None:
            train_values["data_seed"] = recipe["data_seed"]
        (training_args,) = HfArgumentParser([TrainingArguments]).parse_dict(train_values)
    except (ValueError, TypeError, AssertionError) as exc:
        raise InspectError(f"{where}: {first_line(exc)}") from None
    stage = finetuning_args.stage
    if stage != "sft":  # the same checks as llamafactory.hparams.get_train_args
        if data_args.neat_packing:
            raise InspectError(f"{where}: `neat_packing` cannot be set as True except SFT (stage {stage})")
        if data_args.train_on_prompt or data_args.mask_history:
            raise InspectError(f"{where}: `train_on_prompt` or `mask_history` cannot be set as True except SFT")
    if not data_args.dataset:
        raise InspectError(f"{where}: no `dataset`: nothing to inspect")
    model_args.model_max_length = data_args.cutoff_len
    model_args.block_diag_attn = data_args.neat_packing
    data_args.packing = data_args.packing if data_args.packing is not None else stage == "pt"
    return Arguments(model_args, data_args, finetuning_args, training_args)


# ---------------------------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------------------------
def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "llamafactory-ext")


def fixture_tokenizer_dir() -> Path:
    """The tiny fixture's tokenizer (Qwen3's real ids), built once into the cache, no model."""
    from llamafactory_ext.fixtures import FIXTURE_VERSION, build_tokenizer_json
    from llamafactory_ext.io import atomic_build_dir, ensure_dir

    root = ensure_dir(cache_root(), "cache folder")
    target = root / f"qwen3-fixture-tokenizer-v{FIXTURE_VERSION}"
    if (target / "tokenizer.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target

    def build(tmp: Path) -> None:
        try:
            build_tokenizer_json(tmp)
        except RuntimeError as exc:
            raise InspectError(f"tokenizer=fixture: {exc}") from None

    atomic_build_dir(target, build)
    return target


def _load_tokenizer(model_args: Any, label: str) -> tuple[Any, str | None]:
    """(tokenizer, its chat template before LLaMA-Factory replaces it)."""
    from llamafactory.model import load_tokenizer

    try:
        module = load_tokenizer(model_args)
    except Exception as exc:  # noqa: BLE001 - one clear line, no traceback
        cause = exc.__cause__ or exc
        raise InspectError(
            f"cannot load the tokenizer of {label} ({first_line(cause)}): a Hub id needs the network or the "
            "Hugging Face cache; pass tokenizer=PATH, or tokenizer=fixture for the offline Qwen3-id tokenizer"
        ) from None
    tokenizer = module["tokenizer"]
    chat_template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    return tokenizer, chat_template


# ---------------------------------------------------------------------------------------------
# the whole run
# ---------------------------------------------------------------------------------------------
def _progress(total: int | None, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="row", desc="inspect", file=sys.stderr, leave=False)


def inspect_recipe(argv: list[str], tokenizer_cache: dict | None = None, progress: bool = False,
                   tokenizer: Any = None) -> dict[str, Any]:
    """Run inspect; returns the report (the ``format=json`` document plus ``_options``).

    ``tokenizer_cache``: a dict that keeps loaded tokenizers between calls in one process (keyed by
    path and template: LLaMA-Factory's template fix may change a tokenizer's eos or chat template).
    ``tokenizer``: an already loaded tokenizer to use as it is (tests, notebooks); the template fix
    runs on it.
    """
    path, recipe, opts = parse_argv(argv)
    stage = recipe.get("stage", "sft")
    if recipe.get("export_dir") and not recipe.get("do_train"):
        raise InspectError(f"{path} is an export recipe (export_dir): it trains nothing; inspect the training recipe")
    if stage not in SUPPORTED_STAGES:
        raise InspectError(f"{path}: stage {stage} is not supported by inspect (only sft and pt): "
                           f"{'pairwise chosen/rejected rows' if stage in ('dpo', 'rm', 'kto') else 'its rows'} "
                           "are not shown")
    with tempfile.TemporaryDirectory(prefix="llamafactory-ext-inspect-") as work:
        if opts.samples:
            from llamafactory_ext.data.samples import prepare_samples

            recipe["dataset_dir"] = str(prepare_samples(Path(work) / "samples"))
        return _run(path, recipe, opts, work, tokenizer_cache, progress, tokenizer)


def _run(path: str, recipe: dict[str, Any], opts: InspectOptions, work: str, tokenizer_cache: dict | None,
         progress: bool, tokenizer: Any) -> dict[str, Any]:
    import transformers
    from llamafactory.data import get_template_and_fix_tokenizer

    model = str(recipe.get("model_name_or_path") or "")
    if opts.tokenizer == FIXTURE:
        tok_path, tok_label = str(fixture_tokenizer_dir()), "fixture"
    elif opts.tokenizer:
        tok_path, tok_label = opts.tokenizer, opts.tokenizer
        if opts.tokenizer.startswith(("/", "./", "../", "~")) and not Path(opts.tokenizer).expanduser().is_dir():
            raise InspectError(f"tokenizer folder not found: {opts.tokenizer}")
        tok_path = str(Path(opts.tokenizer).expanduser()) if opts.tokenizer.startswith("~") else tok_path
    elif model:
        tok_path, tok_label = model, model
    else:
        raise InspectError(f"{path}: no model_name_or_path (and no tokenizer=PATH)")
    args = build_arguments(recipe, path, tok_path, str(Path(work) / "output"))
    data = args.data
    transformers.set_seed(args.training.seed)  # as get_train_args: num_samples draws rows at random

    loaded = _load_datasets(path, args)  # data errors first: they need no tokenizer

    if tokenizer is not None:
        chat_template = None
    else:
        key = (tok_path, data.template, args.model.use_fast_tokenizer, args.model.split_special_tokens,
               tuple(args.model.add_tokens or ()), tuple(args.model.add_special_tokens or ()))
        if tokenizer_cache is not None and key in tokenizer_cache:
            tokenizer, chat_template = tokenizer_cache[key]
        else:
            tokenizer, chat_template = _load_tokenizer(args.model, tok_label)
            if tokenizer_cache is not None:
                tokenizer_cache[key] = (tokenizer, chat_template)
    if opts.tokenizer:  # the replacement tokenizer's chat template says nothing about the model
        chat_template = None
    try:
        template = copy.deepcopy(get_template_and_fix_tokenizer(tokenizer, data))
    except ValueError as exc:
        from llamafactory.data.template import TEMPLATES

        hint = unknown_key_error(str(data.template), TEMPLATES, path, "template") if data.template not in TEMPLATES else None
        raise (hint or InspectError(f"{path}: {first_line(exc)}")) from None
    if data.template is None and args.finetuning.stage == "sft":
        raise InspectError(f"{path}: no template: set template (e.g. qwen3) so prompts can be compared with the evaluator's")
    az = Analyzer(args, tokenizer, template, data.template, opts.n)

    all_stats: list[DatasetStats] = []
    total = sum(len(rows) for _, _, rows in loaded) if not data.streaming else None
    bar = _progress(total, progress)
    tick = bar.update if bar is not None else (lambda: None)
    try:
        for name, attr, rows in loaded:
            stats = DatasetStats(name=name, formatting=attr.formatting)
            if args.finetuning.stage == "pt":
                az.analyse_pt(name, rows, stats, tick)
            else:
                az.analyse_sft(name, rows, stats, tick)
            all_stats.append(stats)
    finally:
        if bar is not None:
            bar.close()

    lints = make_lints(az, all_stats, recipe, model or tok_label, chat_template, opts.eval)
    return {
        "recipe": path,
        "settings": {
            "stage": args.finetuning.stage, "template": data.template, "reasoning_template": az.reasoning,
            "enable_thinking": data.enable_thinking, "cutoff_len": recipe.get("cutoff_len", data.cutoff_len),
            "packing": data.packing, "neat_packing": data.neat_packing, "train_on_prompt": data.train_on_prompt,
            "mask_history": data.mask_history, "model": model, "tokenizer": tok_label,
            "dataset_dir": "(built-in samples)" if opts.samples else data.dataset_dir,
            "modes_trained": list(az.modes), "parity_rows": az.parity.counts(),
        },
        "datasets": {s.name: s.summary() for s in all_stats},
        "parity": az.parity.result(),
        "lints": lints,
        "samples": [sample for s in all_stats for sample in s.samples],
        "_options": opts,
    }


def _load_datasets(path: str, args: Arguments) -> list[tuple[str, Any, Any]]:
    """(name, DatasetAttr, aligned rows) per data set: LLaMA-Factory's loader and converter."""
    from llamafactory.data.loader import _load_single_dataset
    from llamafactory.data.parser import get_dataset_list

    data = args.data
    try:
        attrs = get_dataset_list(data.dataset, data.dataset_dir)
    except ValueError as exc:
        raise _dataset_error(exc, data.dataset_dir, path) from None
    loaded = []
    for name, attr in zip(data.dataset, attrs):
        if attr.ranking:
            raise InspectError(f"data set {name} is a ranking (preference) data set: stage {args.finetuning.stage} "
                               "cannot train it, and inspect shows sft and pt rows only")
        try:
            rows = _load_single_dataset(attr, args.model, data, args.training)
        except Exception as exc:  # noqa: BLE001 - named by data set and file
            why = (f"a row has no field {exc.args[0]!r}: check the columns and tags of {name} in dataset_info.json"
                   if isinstance(exc, KeyError) else first_line(exc))
            raise InspectError(f"data set {name} ({Path(data.dataset_dir) / attr.dataset_name}): cannot read it: "
                               f"{why}") from None
        loaded.append((name, attr, rows))
    return loaded


def _dataset_error(exc: Exception, dataset_dir: str, where: str) -> InspectError:
    text = first_line(exc)
    info = Path(dataset_dir) / "dataset_info.json"
    if text.startswith("Undefined dataset"):
        name = text.split()[2]
        try:
            known = list(json.loads(info.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            known = []
        return InspectError(str(unknown_key_error(name, known, str(info), "data set")))
    if text.startswith("Cannot open"):
        return InspectError(f"{where}: dataset_dir {dataset_dir} has no readable dataset_info.json ({text})")
    return InspectError(f"{where}: {text}")


def exit_status(report: dict[str, Any]) -> int:
    return 1 if any(item["severity"] == "error" for item in report["lints"]) else 0


def _quiet() -> None:
    """LLaMA-Factory's INFO logs and the datasets progress bars are not this command's output.

    Set on the loggers, not through LLAMAFACTORY_VERBOSITY: an environment variable would also
    silence every ``llamafactory-cli`` a caller starts later from the same process."""
    import logging

    import datasets
    import transformers
    from llamafactory.extras import logging as lf_logging

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # a file it cannot read is this command's one-line error
    transformers.logging.set_verbosity_error()
    lf_logging.get_logger("llamafactory")  # configures its root logger (from the environment) once
    logging.getLogger("llamafactory").setLevel(logging.ERROR)


def main(argv: list[str]) -> int:
    from llamafactory_ext.io import atomic_write_text

    _quiet()
    report = inspect_recipe(list(argv), progress=sys.stderr.isatty())
    opts: InspectOptions = report["_options"]
    if opts.format == "json":
        text = to_json(report)
    elif opts.format == "html":
        text = render_html(report)
    else:
        text = render_text(report, color=opts.output is None and use_color(opts.color, sys.stdout))
    if opts.format == "html" or opts.output:
        target = Path(opts.output or "inspect.html")
        atomic_write_text(target, text)
        errors = sum(1 for x in report["lints"] if x["severity"] == "error")
        print(f"inspect: wrote {target} ({len(report['samples'])} samples, {len(report['lints'])} lints, {errors} errors)",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return exit_status(report)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
