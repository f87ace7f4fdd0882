"""What the streamed pre-training corpora (``wikipedia_it``, ``clean_mc4_it``) share: the options and
the row conversion. Each row's ``text`` string is cleaned by the data set's own function and becomes
``{"text": ...}`` (LLaMA-Factory's ``stage: pt`` column); documents that end up empty (``empty``) or
shorter than ``min_chars`` (``too_short``) are dropped and counted; a row without a ``text`` string
is rejected (``missing_field`` / ``wrong_type``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from llamafactory_ext.config import option
from llamafactory_ext.data.fields import Drop, RowProblem, require, type_name
from llamafactory_ext.data.spec import Converted, DatasetSpec


@dataclasses.dataclass
class CorpusOptions:
    max_rows: int | None = option(None, "stop after writing N documents", ge=1)
    max_bytes: int | None = option(None, "stop after writing about N bytes", ge=1)
    min_chars: int = option(200, "drop documents shorter than this after cleaning", ge=0)


class CorpusConverter:
    def __init__(self, options: CorpusOptions, clean: Callable[[str], str], described: dict[str, Any]) -> None:
        self.min_chars = options.min_chars
        self.clean = clean
        self.described = described  # how ``clean`` cleans, for the prepare report

    def convert(self, row: dict, index: int) -> Converted:
        text = require(row, "text")
        if not isinstance(text, str):
            raise RowProblem("text", "wrong_type", f"expected a string, got {type_name(text)}")
        cleaned = self.clean(text)
        if not cleaned:
            raise Drop("empty")
        if len(cleaned) < self.min_chars:
            raise Drop("too_short")
        return Converted({"text": cleaned})

    def report(self) -> dict[str, Any]:
        return {"min_chars": self.min_chars, **self.described}


def corpus_spec(name: str, summary: str, clean: Callable[[str], str], described: dict[str, Any], **kwargs: Any) -> DatasetSpec:
    """A ``stage: pt`` corpus: streamed by default, not stratified (no categories)."""
    return DatasetSpec(name=name, summary=summary, make=lambda options, context: CorpusConverter(options, clean, described),
                       options=CorpusOptions, streaming=True, stage="pt", sample=f"{name}.jsonl", stratified=False, **kwargs)
