"""Fixtures of the data tests: the built-in samples prepared once, and small file writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def samples_dataset_dir(tmp_path_factory) -> Path:
    """A dataset_dir with dataset_info.json and every registered data set prepared from the samples."""
    from llamafactory_ext.data.samples import prepare_samples

    return prepare_samples(tmp_path_factory.mktemp("samples-ds"))


def write_jsonl(path: Path, rows: list) -> Path:
    """Rows are dicts (dumped as JSON) or raw ``bytes`` lines written as they are."""
    with open(path, "wb") as f:
        f.writelines(row if isinstance(row, bytes) else (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8") for row in rows)
    return path


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
