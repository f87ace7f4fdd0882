"""Row-level validation shared by every converter.

A converter looks at one source row (a ``dict``) and either returns its output or raises
:class:`RowProblem` naming the *field* and the *reason*. The source layer knows the file and
the row number and turns a problem into a :class:`RowError` whose message names all three:
``quiz.json: row 12, field 'answer': 'F' is not among the options A, B, C``.

:class:`Drop` is different: a row that is fine but left out on purpose (a duplicate question,
no accepted trace, an empty article). Drops are counted per reason in the manifest; they are
not errors and ``on_error`` does not apply to them.
"""

from __future__ import annotations

from typing import Any

from llamafactory_ext.config import UserError
from llamafactory_ext.data.mcq import LETTERS


class RowProblem(Exception):
    """A malformed source row: ``field`` (or None for the whole row) and a short ``reason`` key."""

    def __init__(self, field: str | None, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.reason = reason
        self.detail = detail


class Drop(Exception):
    """A well-formed row left out on purpose; ``reason`` is the manifest counter key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RowError(UserError):
    """A malformed row with its place: file, 1-based row (or line) number, field."""

    def __init__(self, file: str, row: int | None, field: str | None, reason: str, detail: str, unit: str = "row") -> None:
        self.file = file
        self.row = row
        self.field = field
        self.reason = reason
        self.detail = detail
        self.unit = unit
        where = file
        if row is not None:
            where += f": {unit} {row}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {detail}")

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, self.unit: self.row, "field": self.field, "reason": self.reason, "error": self.detail}


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def require(row: dict, field: str) -> Any:
    if field not in row:
        raise RowProblem(field, "missing_field", f"missing field (row has: {', '.join(map(str, row)) or 'no fields'})")
    return row[field]


def require_str(row: dict, field: str, allow_empty: bool = False) -> str:
    value = require(row, field)
    if not isinstance(value, str):
        raise RowProblem(field, "wrong_type", f"expected a string, got {type_name(value)} {_short(value)}")
    if not allow_empty and not value.strip():
        raise RowProblem(field, "empty", "is empty")
    return value


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def parse_options(value: Any, field: str = "choices", min_n: int = 2, max_n: int = 5) -> list[tuple[str, str]]:
    """Options as (letter, text) pairs from any of the published layouts:

    - a list of strings (Mult-IT ``choices``, ITALIC Hub ``options``): letters A, B, C... by position;
    - a list of one-key dicts ``[{"A": "..."}, {"B": "..."}]`` (ITALIC GitHub): letters as given
      (one ITALIC row has only A and C);
    - a dict ``{"A": "...", "B": "..."}``: letters as given, in the dict's order.
    """
    pairs: list[tuple[str, str]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = []
        for i, opt in enumerate(value):
            if isinstance(opt, str):
                if i >= len(LETTERS):
                    raise RowProblem(field, "too_many_options", f"has {len(value)} options, at most {max_n} allowed")
                items.append((LETTERS[i], opt))
            elif isinstance(opt, dict) and len(opt) == 1:
                items.append(next(iter(opt.items())))
            else:
                raise RowProblem(
                    field, "wrong_type", f"option {i + 1} must be a string or a one-key dict like {{\"A\": \"...\"}}, got {type_name(opt)} {_short(opt)}"
                )
    else:
        raise RowProblem(field, "wrong_type", f"expected a list of options, got {type_name(value)} {_short(value)}")
    for i, (letter, text) in enumerate(items):
        if not isinstance(letter, str) or letter.strip().upper() not in LETTERS:
            raise RowProblem(field, "bad_option_letter", f"option {i + 1} has letter {letter!r}; letters must be A-E")
        if not isinstance(text, str):
            raise RowProblem(field, "wrong_type", f"option {letter} must be a string, got {type_name(text)} {_short(text)}")
        if not text.strip():
            raise RowProblem(field, "empty", f"option {letter} is empty")
        pairs.append((letter.strip().upper(), text))
    letters = [p[0] for p in pairs]
    if len(set(letters)) != len(letters):
        raise RowProblem(field, "duplicate_option_letter", f"repeats an option letter: {', '.join(letters)}")
    if not min_n <= len(pairs) <= max_n:
        raise RowProblem(field, "option_count", f"has {len(pairs)} options; expected {min_n} to {max_n}")
    return pairs


def parse_answer(value: Any, options: list[tuple[str, str]], field: str = "answer") -> str:
    """The answer letter from a letter (``"B"``, ``"b"``) or a 0-based index (``1`` or ``"1"``).

    An index counts positions in ``options`` (so with options A and C, index 1 is C)."""
    letters = [p[0] for p in options]
    if isinstance(value, bool) or value is None or not isinstance(value, (str, int)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise RowProblem(field, "wrong_type", f"expected a letter or a 0-based index, got {type_name(value)} {_short(value)}")
    if isinstance(value, int):
        if not 0 <= value < len(letters):
            raise RowProblem(field, "answer_not_in_options", f"index {value} is out of range for {len(letters)} options (0-based)")
        return letters[value]
    text = value.strip()
    if text.isdecimal():  # not isdigit(): "²" is a digit that int() cannot read
        index = int(text)
        if not 0 <= index < len(letters):
            raise RowProblem(field, "answer_not_in_options", f"index {text!r} is out of range for {len(letters)} options (0-based)")
        return letters[index]
    letter = text.upper()
    if letter not in letters:
        raise RowProblem(field, "answer_not_in_options", f"{value!r} is not among the options {', '.join(letters)}")
    return letter
