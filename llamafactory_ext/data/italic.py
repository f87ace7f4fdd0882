"""ITALIC (Crisp-Unimib/ITALIC, NAACL 2025): the evaluation set, loaded through the source layer.

Two published layouts, both accepted:

- Hub (``Crisp-Unimib/ITALIC``, split ``train``): ``options`` is a list of 2-5 strings and
  ``answer`` a 0-based int;
- GitHub ``italic.jsonl``: ``options`` is a list of one-key dicts (``{"A": "..."}``) and
  ``answer`` a letter. One row has only the keys A and C (answer C): letters are kept as given.

Every item gets ``id = str(0-based row number)``, ``category`` and ``macro_category``.
ITALIC is for evaluation only; it is not registered for training.
"""

from __future__ import annotations

import os
from pathlib import Path

from llamafactory_ext.data.fields import (
    RowProblem,
    parse_answer,
    parse_options,
    require_str,
)
from llamafactory_ext.data.mcq import MCQItem
from llamafactory_ext.data.sources import open_source

HUB_ID = "Crisp-Unimib/ITALIC"
HUB_SPLIT = "train"
GITHUB_FILE = "italic.jsonl"
SHOTS_FILE = "5_shots.jsonl"


def parse_italic_row(row: dict, index: int) -> MCQItem:
    """One ITALIC row (either layout) -> MCQItem; raises RowProblem naming the field."""
    question = require_str(row, "question")
    if "options" not in row:
        raise RowProblem("options", "missing_field", "missing field")
    options = parse_options(row["options"], field="options")
    if "answer" not in row:
        raise RowProblem("answer", "missing_field", "missing field")
    answer = parse_answer(row["answer"], options)
    category = row.get("category")
    macro = row.get("macro_category")
    for name, value in (("category", category), ("macro_category", macro)):
        if value is not None and not isinstance(value, str):
            raise RowProblem(name, "wrong_type", f"expected a string, got {type(value).__name__}")
    return MCQItem(id=str(index), question=question, options=options, answer=answer, category=category, macro_category=macro)


def _resolve(source: str | os.PathLike | None, default_file: str) -> str:
    if source is None:
        return HUB_ID
    path = Path(source).expanduser()
    if path.is_dir() and (path / default_file).is_file():
        return str(path / default_file)
    return str(source)


def _load(source: str, limit: int | None) -> list[MCQItem]:
    src = open_source(source, split=HUB_SPLIT)
    items: list[MCQItem] = []
    for index, (number, row) in enumerate(src.rows(limit=limit)):
        try:
            items.append(parse_italic_row(row, index))
        except RowProblem as exc:
            raise src.error(number, exc.field, exc.reason, exc.detail) from None
    return items


def load_italic(source: str | os.PathLike | None = None, limit: int | None = None) -> list[MCQItem]:
    """ITALIC questions from the Hub (default ``Crisp-Unimib/ITALIC``), a local file (jsonl,
    json, parquet, csv; either layout) or a directory holding ``italic.jsonl``."""
    return _load(_resolve(source, GITHUB_FILE), limit)


def load_italic_shots(path: str | os.PathLike) -> list[MCQItem]:
    """The five few-shot examples (``5_shots.jsonl``, GitHub layout), or a directory holding it."""
    return _load(_resolve(path, SHOTS_FILE), None)
