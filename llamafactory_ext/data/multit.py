"""Mult-IT (CALAMITA @ CLiC-it 2024): Italian multiple-choice quizzes, local JSON only
(``Multi-IT-A/quiz.json``, ``Multi-IT-C/quiz.json``).

Row fields: ``question``, ``choices`` (2-5 options: strings, one-key dicts or a letter->text
dict; ``options`` is accepted as an alias), ``answer`` (a letter, or a 0-based index as an int
or a digit string), optional ``id`` and ``category``.

Three registered variants share the prompt (system "Sei un assistente utile.", the user turn
of :func:`llamafactory_ext.data.mcq.build_messages` with ``variant="fast"``):

- ``multit_nothink`` (V1): the assistant says the letter only;
- ``multit_think`` (V2): ``<think>\\n{trace}\\n</think>\\n\\n{letter}``, the trace joined from
  a traces file (``traces=FILE``, written by ``llamafactory-ext distill``) on :func:`item_key`;
  questions without an accepted trace (``"correct": true`` and ``"reason": "kept"``) are
  counted (``no_trace``) and left out;
- ``multit_mixed`` (V3): every question with a trace as a thinking row, the others as
  non-thinking rows (``mix=rest``, default; ``mix=all`` adds a non-thinking row for every
  question), non-thinking rows subsampled by ``nothink_fraction`` (seeded). Non-thinking
  rows carry no think block: with ``enable_thinking: null`` LLaMA-Factory gives them the
  masked empty block in the prompt.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

from llamafactory_ext.config import UserError
from llamafactory_ext.data.fields import (
    Drop,
    RowError,
    RowProblem,
    parse_answer,
    parse_options,
    require,
    require_str,
)
from llamafactory_ext.data.mcq import SYSTEM_PROMPT, MCQItem, build_messages
from llamafactory_ext.data.sources import open_source
from llamafactory_ext.data.spec import DatasetSpec, PrepareOptions
from llamafactory_ext.thinking import format_thinking

SOURCE_HELP = (
    "Mult-IT is not on the Hub: get Multi-IT-A/quiz.json and Multi-IT-C/quiz.json from its authors "
    "(CALAMITA @ CLiC-it 2024) and pass source=PATH/quiz.json"
)
TRACE_FIELDS = ("key", "trace", "correct", "reason")


def parse_multit_row(row: dict, index: int) -> MCQItem:
    """One Mult-IT row -> MCQItem (``id``: the row's id, else str(0-based row number))."""
    question = require_str(row, "question")
    field = "choices" if "choices" in row or "options" not in row else "options"
    options = parse_options(require(row, field), field=field)
    answer = parse_answer(require(row, "answer"), options)
    extra: dict[str, Any] = {}
    raw_id = row.get("id")
    if raw_id is not None:
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or (isinstance(raw_id, str) and not raw_id.strip()):
            raise RowProblem("id", "wrong_type", f"expected a non-empty string or an int, got {raw_id!r}")
        extra["source_id"] = str(raw_id).strip()
    category = row.get("category")
    if category is not None and not isinstance(category, str):
        raise RowProblem("category", "wrong_type", f"expected a string, got {type(category).__name__}")
    return MCQItem(
        id=extra.get("source_id", str(index)), question=question, options=options, answer=answer,
        category=category or None, macro_category=row.get("macro_category") if isinstance(row.get("macro_category"), str) else None,
        extra=extra,
    )


def item_key(item: MCQItem) -> str:
    """Join key between distill traces and the think/mixed converters: the row id if the
    source row has one, else a stable hash of the question and its options."""
    source_id = item.extra.get("source_id") if item.extra else None
    if source_id:
        return str(source_id)
    text = item.question.strip() + "\x1f" + "\x1f".join(f"{letter}\x1e{t.strip()}" for letter, t in item.options)
    return "q" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_multit(source: str | os.PathLike | list, limit: int | None = None) -> list[MCQItem]:
    """Mult-IT questions from a local file (json array, jsonl, parquet or csv), or from a list
    of files read in turn (``Multi-IT-A/quiz.json`` + ``Multi-IT-C/quiz.json``)."""
    if source is None:
        raise UserError(SOURCE_HELP)
    items: list[MCQItem] = []
    for one in source if isinstance(source, (list, tuple)) else [source]:
        src = open_source(one)
        left = None if limit is None else limit - len(items)
        if left is not None and left <= 0:
            break
        for number, row in src.rows(limit=left):
            try:
                items.append(parse_multit_row(row, len(items)))
            except RowProblem as exc:
                raise src.error(number, exc.field, exc.reason, exc.detail) from None
    return items


def messages_for(item: MCQItem, assistant: str) -> dict:
    return {"messages": [{"role": "system", "content": SYSTEM_PROMPT}, *build_messages(item, variant="fast"),
                         {"role": "assistant", "content": assistant}]}


def read_traces(path: str | os.PathLike, on_error: str = "fail") -> tuple[dict[str, str], dict[str, int]]:
    """Accepted traces by key (first accepted row per key) and counts of what was read."""
    counts = {"rows": 0, "accepted": 0, "not_correct": 0, "not_kept": 0, "duplicate_key": 0, "invalid": 0}
    traces: dict[str, str] = {}
    src = open_source(path)

    def bad(err: RowError, raw: Any) -> None:
        if on_error == "fail":
            raise err
        counts["invalid"] += 1

    for number, row in src.rows(on_bad=bad):
        counts["rows"] += 1
        try:
            for name in TRACE_FIELDS:
                require(row, name)
            key = row["key"]
            if not isinstance(key, str) or not key:
                raise RowProblem("key", "wrong_type", f"expected a non-empty string, got {key!r}")
            if not isinstance(row["correct"], bool):
                raise RowProblem("correct", "wrong_type", f"expected true or false, got {row['correct']!r}")
            if row["correct"] is not True:
                counts["not_correct"] += 1
                continue
            if row["reason"] != "kept":
                counts["not_kept"] += 1
                continue
            trace = require_str(row, "trace")
            format_thinking(trace, "A")  # rejects traces holding think tags
        except ValueError as exc:
            err: RowError = src.error(number, "trace", "think_tag_in_trace", str(exc))
            bad(err, row)
            continue
        except RowProblem as exc:
            bad(src.error(number, exc.field, exc.reason, exc.detail), row)
            continue
        if key in traces:
            counts["duplicate_key"] += 1
            continue
        traces[key] = trace.strip("\n")
        counts["accepted"] += 1
    return traces, counts


class MultitConverter:
    def __init__(self, options: PrepareOptions, variant: str) -> None:
        self.variant = variant
        self.options = options
        self.traces: dict[str, str] = {}
        self.trace_counts: dict[str, int] = {}
        self.used: set[str] = set()
        self.nothink_subsampled_with_trace = 0
        self.rng = random.Random(options.seed)
        if variant in ("think", "mixed"):
            if not options.traces:
                raise UserError(
                    f"multit_{variant} needs traces=FILE: the JSONL written by `llamafactory-ext distill` "
                    "(rows with key, trace, correct, reason)"
                )
            self.traces, self.trace_counts = read_traces(options.traces, options.on_error)
        if not 0.0 <= options.nothink_fraction <= 1.0:
            raise UserError(f"nothink_fraction must be between 0 and 1, got {options.nothink_fraction}")

    def convert(self, row: dict, index: int):
        item = parse_multit_row(row, index)
        stratum = item.category or item.answer
        if self.variant == "nothink":
            return messages_for(item, item.answer), stratum
        key = item_key(item)
        trace = self.traces.get(key)
        if trace is not None:
            self.used.add(key)
        if self.variant == "think":
            if trace is None:
                raise Drop("no_trace")
            return messages_for(item, format_thinking(trace, item.answer)), stratum
        out = []
        if trace is not None:
            out.append((messages_for(item, format_thinking(trace, item.answer)), stratum))
        if trace is None or self.options.mix == "all":
            if self.rng.random() < self.options.nothink_fraction:
                out.append((messages_for(item, item.answer), stratum))
            elif trace is None:
                raise Drop("nothink_subsampled")
            else:
                self.nothink_subsampled_with_trace += 1
        return out

    def report(self) -> dict[str, Any]:
        if self.variant == "nothink":
            return {}
        return {
            "traces_file": str(self.options.traces),
            "traces": self.trace_counts,
            "traces_joined": len(self.used),
            "traces_unmatched": len(set(self.traces) - self.used),
            **({"nothink_subsampled_with_trace": self.nothink_subsampled_with_trace} if self.options.mix == "all" else {}),
        }


def _spec(variant: str, summary: str, sample_options: dict) -> DatasetSpec:
    return DatasetSpec(
        name=f"multit_{variant}",
        summary=summary,
        make=lambda options: MultitConverter(options, variant),
        default_source=None,
        source_help=SOURCE_HELP,
        version="1",
        sample="multit_quiz.json",
        sample_options=sample_options,
    )


NOTHINK = _spec("nothink", "Mult-IT V1: the answer letter only", {})
THINK = _spec("think", "Mult-IT V2: <think> trace + letter (traces=FILE from distill)", {"traces": "multit_traces.jsonl"})
MIXED = _spec("mixed", "Mult-IT V3: thinking rows + non-thinking rows (traces=FILE)", {"traces": "multit_traces.jsonl"})
