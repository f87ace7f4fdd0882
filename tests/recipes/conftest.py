"""Fixtures for the recipe tests: the prepared sample data (helpers: tests/helpers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import once_per_run
from tests.helpers import TRAIN_RECIPES, load_recipe

TRAIN_ROWS = 16  # rows kept of each training file in the CPU project: one pack per step


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory) -> Path:
    """A dataset_dir holding the repo's dataset_info.json and every registered data set
    prepared from the built-in samples by the real converters, with `_val` splits; built once
    per run (read-only: copy it before writing into it)."""
    from llamafactory_ext.data.samples import prepare_samples

    root = once_per_run(tmp_path_factory, "prepared", lambda out: prepare_samples(out / "ds", val_size=0.1))
    info = json.loads((root / "dataset_info.json").read_text(encoding="utf-8"))
    for recipe in TRAIN_RECIPES:
        cfg = load_recipe(recipe)
        for key in ("dataset", "eval_dataset"):
            for ds in str(cfg.get(key) or "").split(","):
                if ds:
                    assert (root / info[ds.strip()]["file_name"]).is_file(), f"prepare_samples did not write {ds}"
    return root


@pytest.fixture(scope="session")
def cpu_project(prepared_data, tmp_path_factory) -> Path:
    """A user's project folder, as the laptop route makes it: the prepared samples by the data-folder
    convention (``./dataset_info.json`` -> ``data/NAME.jsonl``; training files cut to their first
    ``TRAIN_ROWS`` rows, one pack per step) and every shipped recipe and config as
    ``llamafactory-ext recipes copy --all DIR profile=cpu`` writes it. Built once per run; read-only
    (training runs write their output_dir elsewhere)."""
    import shutil

    from llamafactory_ext import cli
    from tests.helpers import first_rows

    def build(out: Path) -> Path:
        root = out / "project"
        shutil.copytree(prepared_data, root)
        for path in (root / "data").glob("*.jsonl"):
            if not path.stem.endswith(("_val", ".rejects")):
                first_rows(path, TRAIN_ROWS)
        assert cli.main(["recipes", "copy", "--all", str(root), "profile=cpu"]) == 0
        return root

    return once_per_run(tmp_path_factory, "cpu-project", build)

