"""Mult-IT (CALAMITA @ CLiC-it 2024): Italian multiple-choice quizzes, local JSON only
(``Multi-IT-A/quiz.json``, ``Multi-IT-C/quiz.json``).

Row fields: ``question``, ``choices`` (2-5 options: strings, one-key dicts or a letter->text
dict; ``options`` is accepted as an alias), ``answer`` (a letter, or a 0-based index as an int
or a digit string), optional ``id`` and ``category``.

Three registered variants share the prompt (system "Sei un assistente utile.", the user turn
of :func:`llamafactory_ext.data.mcq.build_messages` with ``variant="fast"``):

- ``multit_nothink`` (V1): the assistant says the letter only;
- ``multit_think`` (V2): ``<think>\\n{trace}\\n</think>\\n\\n{letter}``, the trace joined from
  a traces file (``traces=FILE``, written by ``llamafactory-ext distill``) on :func:`item_key`,
  the normalised question and option texts (never the row ``id``: ids collide across files);
  questions without an accepted trace (``"correct": true`` and ``"reason": "kept"``) are
  counted (``no_trace``) and left out;
- ``multit_mixed`` (V3): every question with a trace as a thinking row, the others as
  non-thinking rows (``mix=rest``, default; ``mix=all`` adds a non-thinking row for every
  question), non-thinking rows subsampled by ``nothink_fraction`` (seeded). Non-thinking
  rows carry no think block: with ``enable_thinking: null`` LLaMA-Factory gives them the
  masked empty block in the prompt.

Repeated questions (same normalised question and options) are dropped and counted as
``duplicate_question`` (``dedup=false`` keeps them), so a validation split cannot hold a copy of
a training question; the rows of one question share a split group.
"""

from __future__ import annotations

import dataclasses
import os
import random
from typing import Any, Literal

from llamafactory_ext.config import UserError, option
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
from llamafactory_ext.data.normalize import question_key
from llamafactory_ext.data.sources import open_source
from llamafactory_ext.data.spec import Context, Converted, DatasetSpec
from llamafactory_ext.thinking import format_thinking

SOURCE_HELP = (
    "Mult-IT is not on the Hub: get Multi-IT-A/quiz.json and Multi-IT-C/quiz.json from its authors "
    "(CALAMITA @ CLiC-it 2024) and pass source=PATH/quiz.json"
)
TRACE_FIELDS = ("key", "trace", "correct", "reason")


@dataclasses.dataclass
class NothinkOptions:
    dedup: bool = option(True, "drop repeated questions (same normalised question and options), counted as duplicate_question")


@dataclasses.dataclass
class ThinkOptions(NothinkOptions):
    traces: str | None = option(None, "traces JSONL written by `llamafactory-ext distill` (rows: key, trace, correct, reason)")


@dataclasses.dataclass
class MixedOptions(ThinkOptions):
    mix: Literal["rest", "all"] = option("rest", "plain rows for the questions without a trace (rest) or for every question (all)")
    nothink_fraction: float = option(1.0, "share of the plain rows kept (seeded)", ge=0.0, le=1.0)


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
    """The join key of a question with its trace, and its de-duplication key: the normalised
    question and option texts (``data.normalize.question_key``), never the row's ``id`` (ids
    collide when Multi-IT-A and Multi-IT-C are combined)."""
    return question_key(item.question, [text for _, text in item.options])


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


def _trace_of(row: dict, counts: dict[str, int]) -> tuple[str, str] | None:
    """(key, trace) of an accepted traces row; None when the row is a rejected sample (counted)."""
    for name in TRACE_FIELDS:
        require(row, name)
    key = row["key"]
    if not isinstance(key, str) or not key:
        raise RowProblem("key", "wrong_type", f"expected a non-empty string, got {key!r}")
    if not isinstance(row["correct"], bool):
        raise RowProblem("correct", "wrong_type", f"expected true or false, got {row['correct']!r}")
    if row["correct"] is not True:
        counts["not_correct"] += 1
        return None
    if row["reason"] != "kept":
        counts["not_kept"] += 1
        return None
    trace = require_str(row, "trace")
    try:
        format_thinking(trace, "A")  # rejects traces holding think tags
    except ValueError as exc:
        raise RowProblem("trace", "think_tag_in_trace", str(exc)) from None
    return key, trace.strip("\n")


def read_traces(path: str | os.PathLike, on_bad) -> tuple[dict[str, str], dict[str, int]]:
    """Accepted traces by key (the first accepted row per key) and counts of what was read.

    Malformed rows go to ``on_bad(RowError, raw)``, which raises (``on_error=fail``) or keeps
    them in the rejects file with file, line, field and reason."""
    counts = {"rows": 0, "accepted": 0, "not_correct": 0, "not_kept": 0, "duplicate_key": 0, "invalid": 0}
    traces: dict[str, str] = {}
    src = open_source(path)

    def bad(err: RowError, raw: Any) -> None:
        counts["invalid"] += 1
        if not err.reason.startswith("traces_"):  # unreadable lines too (invalid_json, ...): a traces reject
            err.reason = f"traces_{err.reason}"
        on_bad(err, raw)

    for number, row in src.rows(on_bad=bad):
        counts["rows"] += 1
        try:
            found = _trace_of(row, counts)
        except RowProblem as exc:
            bad(src.error(number, exc.field, f"traces_{exc.reason}", exc.detail), row)
            continue
        if found is None:
            continue
        key, trace = found
        if key in traces:
            counts["duplicate_key"] += 1
            continue
        traces[key] = trace
        counts["accepted"] += 1
    return traces, counts


class MultitConverter:
    def __init__(self, options: Any, context: Context, variant: str) -> None:
        self.variant = variant
        self.options = options
        self.traces: dict[str, str] = {}
        self.trace_counts: dict[str, int] = {}
        self.used: set[str] = set()
        self.seen: dict[str, str] = {}  # question key -> answer of its first row
        self.conflicting = 0
        self.nothink_subsampled_with_trace = 0
        self.rng = random.Random(options.seed)
        if variant in ("think", "mixed"):
            if not options.traces:
                raise UserError(
                    f"multit_{variant} needs traces=FILE: the JSONL written by `llamafactory-ext distill` "
                    "(rows with key, trace, correct, reason)"
                )
            self.traces, self.trace_counts = read_traces(options.traces, context.on_bad)

    def convert(self, row: dict, index: int) -> list[Converted]:
        item = parse_multit_row(row, index)
        key = item_key(item)
        if self.options.dedup and key in self.seen:
            self.conflicting += self.seen[key] != item.answer
            raise Drop("duplicate_question")
        self.seen.setdefault(key, item.answer)
        stratum = item.category or item.answer
        if self.variant == "nothink":
            return [Converted(messages_for(item, item.answer), stratum, key)]
        trace = self.traces.get(key)
        if trace is not None:
            self.used.add(key)
        if self.variant == "think":
            if trace is None:
                raise Drop("no_trace")
            return [Converted(messages_for(item, format_thinking(trace, item.answer)), stratum, key)]
        out = []
        if trace is not None:
            out.append(Converted(messages_for(item, format_thinking(trace, item.answer)), stratum, key))
        if trace is None or self.options.mix == "all":
            if self.rng.random() < self.options.nothink_fraction:
                out.append(Converted(messages_for(item, item.answer), stratum, key))
            elif trace is None:
                raise Drop("nothink_subsampled")
            else:
                self.nothink_subsampled_with_trace += 1
        return out

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"duplicate_questions_with_another_answer": self.conflicting}
        summary = []
        if self.conflicting:
            summary.append(f"{self.conflicting} repeated question(s) had another answer than their first copy (first kept)")
        if self.variant != "nothink":
            unmatched = len(set(self.traces) - self.used)
            out.update({"traces_file": str(self.options.traces), "traces": self.trace_counts,
                        "traces_joined": len(self.used), "traces_unmatched": unmatched})
            if self.variant == "mixed" and self.options.mix == "all":
                out["nothink_subsampled_with_trace"] = self.nothink_subsampled_with_trace
            summary.append(f"traces: {len(self.used)} joined, {unmatched} unmatched, "
                           f"{self.trace_counts.get('invalid', 0)} invalid rows, {self.trace_counts.get('duplicate_key', 0)} repeated keys")
        out["summary"] = summary
        return out


def _spec(variant: str, summary: str, options: type, sample_options: dict) -> DatasetSpec:
    return DatasetSpec(
        name=f"multit_{variant}",
        summary=summary,
        make=lambda o, context: MultitConverter(o, context, variant),
        options=options,
        source_help=SOURCE_HELP,
        version="2",
        sample="multit_quiz.json",
        sample_options=sample_options,
    )


NOTHINK = _spec("nothink", "Mult-IT V1: the answer letter only", NothinkOptions, {})
THINK = _spec("think", "Mult-IT V2: <think> trace + letter (traces=FILE from distill)", ThinkOptions, {"traces": "multit_traces.jsonl"})
MIXED = _spec("mixed", "Mult-IT V3: thinking rows + plain rows (traces=FILE)", MixedOptions, {"traces": "multit_traces.jsonl"})
