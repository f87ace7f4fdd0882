"""Fixtures for the recipe tests: the shipped recipes and the prepared sample data."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RECIPES_DIR = REPO / "recipes"
# The top-level training recipes (recipes/eval and recipes/sweeps belong to other commands).
RECIPES = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
EXPORT_RECIPES = [name for name in RECIPES if "export_dir" in yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())]
TRAIN_RECIPES = [name for name in RECIPES if name not in EXPORT_RECIPES]
SFT_RECIPES = [name for name in TRAIN_RECIPES if yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())["stage"] == "sft"]


def recipe_path(name: str) -> Path:
    return RECIPES_DIR / f"{name}.yaml"


def load_recipe(name: str) -> dict:
    return yaml.safe_load(recipe_path(name).read_text(encoding="utf-8"))


def header_lines(name: str) -> list[str]:
    """The comment block the recipe starts with, without the leading '# '."""
    lines = []
    for line in recipe_path(name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return lines


def header_commands(name: str) -> list[tuple[str, list[str], list[str]]]:
    """Every `llamafactory-cli train|export recipes/NAME.yaml k=v ...` command in the header:
    (subcommand, env assignments before it, key=value overrides after the recipe)."""
    commands = []
    for line in header_lines(name):
        if "llamafactory-cli " not in line or f"recipes/{name}.yaml" not in line:
            continue
        tokens = shlex.split(line)
        at = tokens.index("llamafactory-cli")
        sub, recipe, rest = tokens[at + 1], tokens[at + 2], tokens[at + 3:]
        assert recipe == f"recipes/{name}.yaml", line
        assert all("=" in t for t in tokens[:at] + rest), f"not a plain `key=value` command: {line}"
        commands.append((sub, tokens[:at], rest))
    return commands


def first_rows(path: Path, n: int) -> None:
    """Keep the first ``n`` rows of a prepared JSONL file (atomically)."""
    rows = path.read_text(encoding="utf-8").splitlines(keepends=True)[:n]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(rows), encoding="utf-8")
    tmp.replace(path)


@pytest.fixture(scope="module")
def prepared_data(tmp_path_factory) -> Path:
    """A dataset_dir holding the repo's dataset_info.json and every registered data set
    prepared from the built-in samples by the real converters, with `_val` splits."""
    from llamafactory_ext.data.samples import prepare_samples

    root = prepare_samples(tmp_path_factory.mktemp("prepared") / "ds", val_size=0.1)
    info = json.loads((root / "dataset_info.json").read_text(encoding="utf-8"))
    for recipe in TRAIN_RECIPES:
        cfg = load_recipe(recipe)
        for key in ("dataset", "eval_dataset"):
            for ds in str(cfg.get(key) or "").split(","):
                if ds:
                    assert (root / info[ds.strip()]["file_name"]).is_file(), f"prepare_samples did not write {ds}"
    return root
