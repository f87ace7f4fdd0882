"""The text of a training row, read in any shape LLaMA-Factory or a raw source uses (the training
side of ``data/overlap.py``): one small function per row shape, the first that recognises a row
reads it (:func:`read_row`). A row's text is kept as pieces, with the spans of pieces that may be
a question (the exact check) apart from answers and system prompts (the n-gram check only).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

from llamafactory_ext.data.fields import RowProblem


@dataclasses.dataclass
class RowText:
    """Text read from one training row: its pieces (normalised one by one, so no text is
    normalised twice) and the spans of pieces that may be a question (exact check)."""

    pieces: list[str] = dataclasses.field(default_factory=list)
    spans: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # [start, end) piece ranges

    def add_text(self, text: str) -> None:
        """Text that is not a prompt (answers, system prompts): n-gram check only."""
        self.pieces.append(text)

    def add_question(self, text: str) -> None:
        """A field holding a question on its own (raw quiz rows, GSM8K rows)."""
        self.spans.append((len(self.pieces), len(self.pieces) + 1))
        self.pieces.append(text)

    def add_user(self, text: str) -> tuple[int, int]:
        """A user turn / prompt: question spans from its layout (:func:`split_prompt`), the whole
        turn as one more span. Returns the turn's span."""
        start = len(self.pieces)
        pieces, spans = split_prompt(text)
        self.pieces.extend(pieces)
        self.spans.extend((start + a, start + b) for a, b in spans)
        self.spans.append((start, len(self.pieces)))
        return start, len(self.pieces)


# The letter of a rendered option line ("A) Roma", "B. Milano", "(C) Napoli"): not a word of the item.
# Matched after a newline (a newline is put in front of the text), which is several times faster
# than a MULTILINE "^" that the regex engine tries at every character.
_OPTION_LETTER = re.compile(r"\n[ \t]*\(?[A-E][).:][ \t]+(?=\S)")


def split_prompt(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """(pieces, question spans) of a user turn.

    ``data.mcq.render_user`` writes an instruction paragraph, a blank line, the question, then
    one ``A) text`` line per option. From the first option line on, the text is one piece with
    the option letters dropped. The question spans are the text before the first option line
    and, when it holds a blank line, the text after the first one (the question after an
    instruction)."""
    text = "\n" + text
    first = _OPTION_LETTER.search(text)
    if first is None:
        head, rest = text.strip(), []
    else:
        head, rest = text[: first.start()].strip(), [_OPTION_LETTER.sub("\n", text[first.start():])]
    intro, sep, question = head.partition("\n\n")
    if sep and question.strip():
        return [intro, question, *rest], [(1, 2), (0, 2)]
    return [head, *rest], [(0, 1)]


def _string(value: Any, field: str) -> str:
    """A text field: a string, null (no text) or OpenAI-style content parts."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):  # [{"type": "text", "text": ...}]
        return "\n".join(p["text"] for p in value if isinstance(p.get("text"), str))
    raise RowProblem(field, "wrong_type", f"expected a string, got {type(value).__name__}")


def _turns(out: RowText, turns: Any, field: str, role_key: str, text_key: str, user_roles: Sequence[str]) -> None:
    """Chat turns (a list of role/content dicts, or one such dict): user turns are prompts."""
    if isinstance(turns, dict):
        turns = [turns]
    if not isinstance(turns, list):
        raise RowProblem(field, "wrong_type", f"expected a list of turns, got {type(turns).__name__}")
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RowProblem(field, "wrong_type", f"turn {i + 1} must be an object with {role_key!r} and {text_key!r}, got {type(turn).__name__}")
        text = turn.get(text_key)
        if not isinstance(text, str):  # the field name is built only when it is needed
            text = _string(text, f"{field}[{i}].{text_key}")
        if turn.get(role_key) in user_roles:
            out.add_user(text)
        else:
            out.add_text(text)


def _answers(out: RowText, row: dict, role_key: str, text_key: str, user_roles: tuple[str, ...]) -> None:
    """The pairwise answers (``chosen`` / ``rejected``: a string, a turn or a list of turns)."""
    for name in ("chosen", "rejected"):
        if isinstance(row.get(name), str):
            out.add_text(row[name])
        elif row.get(name) is not None:
            _turns(out, row[name], name, role_key, text_key, user_roles)


def _messages(row: dict) -> RowText | None:
    """sharegpt as ``prepare`` writes it (and OpenAI style): ``messages`` of role/content (+ the
    ``chosen`` / ``rejected`` answers of the pairwise rows ``prepare`` writes)."""
    if "messages" not in row:
        return None
    out = RowText()
    _turns(out, row["messages"], "messages", "role", "content", ("user",))
    _answers(out, row, "role", "content", ("user",))
    return out


def _conversations(row: dict) -> RowText | None:
    """LLaMA-Factory's default sharegpt: ``conversations`` of from/value (+ DPO chosen/rejected)."""
    if "conversations" not in row:
        return None
    out = RowText()
    _turns(out, row["conversations"], "conversations", "from", "value", ("human", "user"))
    _answers(out, row, "from", "value", ("human", "user"))
    return out


def _alpaca(row: dict) -> RowText | None:
    """alpaca: the prompt is ``instruction`` + newline + ``input``; ``output`` (or ranked outputs)."""
    if "instruction" not in row:
        return None
    out = RowText()
    start, _ = out.add_user(_string(row["instruction"], "instruction"))
    _, end = out.add_user(_string(row.get("input"), "input"))
    out.spans.append((start, end))  # instruction + input: the prompt LLaMA-Factory builds
    for name in ("output", "chosen", "rejected"):
        value = row.get(name)
        for i, text in enumerate(value if isinstance(value, list) else [value]):
            out.add_text(_string(text, f"{name}[{i}]" if isinstance(value, list) else name))
    return out


def _is_content_parts(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(p, dict) and "type" in p for p in value)


def _preference(row: dict) -> RowText | None:
    """``prompt`` / ``chosen`` / ``rejected`` (TRL style): strings or lists of role/content turns."""
    if "prompt" not in row:
        return None
    out = RowText()
    for name in ("prompt", "chosen", "rejected"):
        value = row.get(name)
        if isinstance(value, (list, dict)) and not _is_content_parts(value):
            _turns(out, value, name, "role", "content", ("user",))
        elif name == "prompt":
            out.add_user(_string(value, name))
        else:
            out.add_text(_string(value, name))
    return out


def _option_texts(value: Any, field: str) -> list[str]:
    """Option texts from a list of strings, a list of one-key dicts or a letter->text dict."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        raise RowProblem(field, "wrong_type", f"expected a list of options, got {type(value).__name__}")
    texts = []
    for i, option in enumerate(value):
        if isinstance(option, dict) and len(option) == 1:
            option = next(iter(option.values()))
        if not isinstance(option, str):
            raise RowProblem(field, "wrong_type", f"option {i + 1} must be a string or a one-key dict like {{\"A\": \"...\"}}")
        texts.append(option)
    return texts


def _question(row: dict) -> RowText | None:
    """Raw sources: Mult-IT ``quiz.json`` / ITALIC (``question`` + ``choices`` or ``options``),
    GSM8K / SynthGSM8K (``question`` + ``answer`` / ``solution``)."""
    if "question" not in row:
        return None
    out = RowText()
    out.add_question(_string(row["question"], "question"))
    for name in ("choices", "options"):
        if row.get(name) is not None:
            out.pieces.extend(_option_texts(row[name], name))
            break
    for name in ("answer", "solution"):
        if isinstance(row.get(name), str):
            out.add_text(row[name])
    return out


def _text(row: dict) -> RowText | None:
    """Pre-training rows (``prepare wikipedia_it``, mC4): ``text``."""
    if "text" not in row:
        return None
    out = RowText()
    out.add_user(_string(row["text"], "text"))
    return out


# The first shape that recognises a row reads it. A new shape is one function and one line here.
ROW_SHAPES: list[Callable[[dict], RowText | None]] = [_messages, _conversations, _alpaca, _preference, _question, _text]
SHAPES_HELP = ("messages (role/content), conversations (from/value), instruction/input/output, "
               "prompt/chosen/rejected, question (+ choices/options, answer/solution), text")


def read_row(row: dict) -> RowText | None:
    """Text of one training row, or None when no shape knows the row; RowProblem when a known
    field has the wrong type."""
    for shape in ROW_SHAPES:
        out = shape(row)
        if out is not None:
            return out
    return None
