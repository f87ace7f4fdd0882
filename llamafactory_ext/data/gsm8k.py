"""GSM8K (openai/gsm8k, config ``main``): the evaluation loader and the ``gsm8k`` converter.

Reference answers carry ``<<48/2=24>>`` calculator notes and end with a line ``#### N`` (N may
have thousands commas or be negative). The converter (shared with ``synth_gsm8k``) turns a
solution into the training target

    <think>\\n{solution without notes and without the #### line}\\n</think>\\n\\nThe answer is N.

with N canonical (``data.numbers.canonical_number``: ``1,000.0`` -> ``1000``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from llamafactory_ext.config import option
from llamafactory_ext.data.fields import Drop, RowProblem, require_str
from llamafactory_ext.data.normalize import question_key
from llamafactory_ext.data.numbers import canonical_number
from llamafactory_ext.data.sources import open_source
from llamafactory_ext.data.spec import Converted, DatasetSpec
from llamafactory_ext.thinking import format_thinking

HUB_ID = "openai/gsm8k"
HUB_CONFIG = "main"

_NOTE = re.compile(r"<<[^\n]*?>>")


def split_solution(text: str, field: str = "answer") -> tuple[str, str | None]:
    """(trace without ``<<...>>`` notes and without the final ``#### N`` line, raw N or None)."""
    final = None
    idx = text.rfind("####")
    if idx >= 0:
        line_start = text.rfind("\n", 0, idx) + 1
        if not text[line_start:idx].strip():  # '####' opens its line
            rest = text[idx + 4:]
            final, _, after = rest.partition("\n")
            if after.strip():
                raise RowProblem(field, "text_after_final_answer", "has text after its final '#### N' line")
            final = final.strip()
            text = text[:line_start]
    trace = (_NOTE.sub("", text) if "<<" in text else text).strip()
    if "<<" in trace or ">>" in trace:
        raise RowProblem(field, "unbalanced_note", "has an unclosed <<...>> calculator note")
    return trace, final


def solution_target(solution: str, field: str, answer_value=None, answer_field: str = "answer") -> tuple[str, str]:
    """(assistant text, canonical N) for a GSM8K-style solution; RowProblem when malformed."""
    trace, final = split_solution(solution, field)
    number = canonical_number(final) if final is not None else None
    if final is not None and number is None:
        raise RowProblem(field, "bad_final_answer", f"the '#### {final}' line does not hold a number")
    if answer_value is not None:
        given = canonical_number(answer_value)
        if given is None:
            raise RowProblem(answer_field, "bad_final_answer", f"{answer_value!r} is not a number")
        if number is not None and given != number:
            raise RowProblem(answer_field, "answer_mismatch", f"{answer_value!r} differs from the solution's '#### {final}'")
        number = given
    if number is None:
        raise RowProblem(field, "no_final_answer", "has no final '#### N' line")
    if not trace:
        raise RowProblem(field, "empty", "has no reasoning before the '#### N' line")
    try:
        return format_thinking(trace, f"The answer is {number}."), number
    except ValueError as exc:
        raise RowProblem(field, "think_tag_in_text", str(exc)) from None


def convert_row(row: dict, question_field: str = "question", solution_field: str = "answer", answer_field: str | None = None) -> tuple[dict, str]:
    """A GSM8K-shaped row -> ``({"messages": [...]}, question)``."""
    question = require_str(row, question_field)
    solution = require_str(row, solution_field)
    answer_value = None
    if answer_field is not None:
        if answer_field not in row:
            raise RowProblem(answer_field, "missing_field", "missing field")
        answer_value = row[answer_field]
        if not isinstance(answer_value, (str, int, float)) or isinstance(answer_value, bool):
            raise RowProblem(answer_field, "wrong_type", f"expected a number or a string, got {type(answer_value).__name__}")
    target, _ = solution_target(solution, solution_field, answer_value, answer_field or "answer")
    return {"messages": [{"role": "user", "content": question.strip()}, {"role": "assistant", "content": target}]}, question


def load_gsm8k(source: str | os.PathLike | None = None, split: str = "test", limit: int | None = None) -> list[dict]:
    """GSM8K rows ``{"id", "question", "answer", "gold"}`` (``id`` = str(0-based row number),
    ``answer`` = the full reference text, ``gold`` = canonical N of its ``#### N`` line).

    ``source``: the Hub (default ``openai/gsm8k``, config main), a local file, or a directory
    holding ``{split}.jsonl`` (like ``../shared/data/gsm8k``) or ``{split}-*.parquet``."""
    spec = HUB_ID if source is None else str(Path(source).expanduser()) if Path(source).expanduser().exists() else str(source)
    src = open_source(spec, hub_config=HUB_CONFIG, split=split)
    out: list[dict] = []
    for index, (number, row) in enumerate(src.rows(limit=limit)):
        try:
            question = require_str(row, "question")
            answer = require_str(row, "answer")
            _, final = split_solution(answer)
            gold = canonical_number(final) if final is not None else None
            if gold is None:
                raise RowProblem("answer", "no_final_answer", "has no final '#### N' line with a number")
        except RowProblem as exc:
            raise src.error(number, exc.field, exc.reason, exc.detail) from None
        out.append({"id": str(index), "question": question, "answer": answer, "gold": gold})
    return out


@dataclasses.dataclass
class MathOptions:
    dedup: bool = option(True, "drop repeated questions (same normalised text), counted as duplicate_question")


class GSM8KConverter:
    """GSM8K-shaped rows -> sharegpt rows; drops repeated questions when ``dedup``."""

    def __init__(self, options, solution_field: str = "answer", answer_field: str | None = None) -> None:
        self.solution_field = solution_field
        self.answer_field = answer_field
        self.seen: set[str] | None = set() if options.dedup else None

    def convert(self, row: dict, index: int) -> Converted:
        out, question = convert_row(row, "question", self.solution_field, self.answer_field)
        key = question_key(question)
        if self.seen is not None:
            if key in self.seen:
                raise Drop("duplicate_question")
            self.seen.add(key)
        return Converted(out, None, key)

    def report(self) -> dict:
        return {}


SPEC = DatasetSpec(
    name="gsm8k",
    summary="GSM8K train: <think> worked solution (no <<..>> notes) + 'The answer is N.'",
    make=lambda options, context: GSM8KConverter(options, solution_field="answer"),
    options=MathOptions,
    default_source=HUB_ID,
    hub_config=HUB_CONFIG,
    version="2",
    sample="gsm8k_shaped.jsonl",
)
