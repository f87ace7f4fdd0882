"""Answer extraction: named filter chains, strict first, flexible fallback.

Every extractor reads the *answer part* of an output, i.e. the text after the last
``</think>`` (``thinking.split_output``), and returns ``(value | None, method)`` where
``method`` names the filter that matched (``"none"`` when nothing did). Extractors never
raise, whatever the input (property-based test in ``tests/eval/test_extract.py``).

Multiple choice (ITALIC, Mult-IT), ``extract_choice(text, item)``; ``item`` is an
``MCQItem`` (or anything with ``options`` as ``(letter, text)`` pairs). Only the item's own
letters count (one ITALIC row has only A and C). Chain ``default``:

strict
  ``answer_line``   ``Risposta: B`` / ``La risposta corretta è B`` / ``Answer: (b)`` (last one)
  ``bare_letter``   the whole answer is one letter: ``B``, ``**B**``, ``(C)``, ``B)``, ``b.``
  ``leading_letter`` the answer starts with a marked letter: ``B) Roma ...``, ``**C** perché ...``
  ``bold_letter``   one distinct ``**B**`` anywhere
flexible
  ``marked_letter`` one distinct ``(C)`` / ``C)`` anywhere
  ``option_text``   the text of exactly one option (the letter was left out)
  ``lone_letter``   one distinct stand-alone capital option letter anywhere

Chain ``official_first_capital`` reproduces ITALIC's official "fast" extractor for
comparison ONLY: the first capital letter anywhere in the output, so ``La risposta è B``
scores ``L``. It is never the default.

Numbers (GSM8K), ``extract_number(text)``: ``answer_is`` (``The answer is N`` / ``La
risposta è N``), ``hashes`` (``#### N``), ``boxed`` (``\\boxed{N}``), then ``last_number``.
Numbers are read by ``data.numbers`` (one rule, shared with the converters: English and Italian
separators where unambiguous, ``1,234.5`` = ``1.234,5``, ``1.234.567``, ``3,5``); the value
returned is canonical (``"1,000.0"`` -> ``"1000"``) and ``numbers_equal`` compares numerically.
``The answer is 5 + 3 = 8`` reads 8 (the number after the last ``=``). When the number a filter
picks is ambiguous (``70.000``: 70 in English, 70000 in Italian) the chain stops there with
``(None, "ambiguous_number")``, scored unparsed: it never falls back to another number, and never
reads 70. ``extract_number(text, convention="it")`` (or ``"en"``) settles such numbers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

from llamafactory_ext.data.numbers import AMBIGUOUS, canonical, canonical_number, numbers_equal, read_number
from llamafactory_ext.thinking import split_output

__all__ = ["AMBIGUOUS_NUMBER", "CHOICE_CHAINS", "NUMBER_CHAINS", "canonical_number", "extract_choice", "extract_number",
           "numbers_equal"]

NONE = "none"
AMBIGUOUS_NUMBER = "ambiguous_number"
OFFICIAL_FIRST_CAPITAL = "official_first_capital"

# ----------------------------------------------------------------------------- helpers


def _letters_of(item: Any) -> list[str]:
    try:
        letters = [str(letter).strip().upper() for letter, _ in item.options]
        return [x for x in letters if len(x) == 1 and x.isalpha()]
    except Exception:  # noqa: BLE001 - extractors never raise
        return []


def _options_of(item: Any) -> list[tuple[str, str]]:
    try:
        return [(str(letter).strip().upper(), str(text)) for letter, text in item.options]
    except Exception:  # noqa: BLE001
        return []


def _norm(text: str) -> str:
    """Lower case, accents folded, punctuation -> spaces, single spaces."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"[^\w]+", " ", text)
    return " ".join(text.split())


def _unique(found: list[str]) -> str | None:
    distinct = set(found)
    return found[-1] if len(distinct) == 1 else None


# ----------------------------------------------------------------------------- choice filters
# Each filter: (answer_text, letters, options) -> letter | None

_ANSWER_WORDS = r"(?:risposta|answer|soluzione|opzione)"


def _answer_line(ans: str, letters: list[str], options) -> str | None:
    if not letters:
        return None
    cls = "".join(letters)
    # "Risposta: B", "La risposta corretta è B", "risposta finale: **(b)**", "Answer is C."
    pattern = re.compile(
        rf"{_ANSWER_WORDS}(?:\s+(?:corretta|giusta|esatta|finale|correct|final))?[\*_]*\s*"
        rf"(?:è|e'|é|:|is|=|-)?\s*(?:l[a']\s*|la\s+lettera\s+|l'opzione\s+|option\s+)?[\*_\s]*[\(\[]?"
        rf"([{cls}{cls.lower()}])(?![\w'’])",
        re.IGNORECASE,
    )
    hits = []
    for m in pattern.finditer(ans):
        letter = m.group(1)
        if letter.islower():
            # a lower-case letter is an answer only when nothing word-like follows:
            # "Risposta: b" / "risposta: b)" yes, "la risposta è a Roma" no
            rest = ans[m.end():m.end() + 3]
            if re.match(r"\s*[^\W\d_]", rest):
                continue
        hits.append(letter.upper())
    return hits[-1] if hits else None


def _bare_letter(ans: str, letters: list[str], options) -> str | None:
    m = re.fullmatch(r"[\s\*_\(\[\"'`]*([A-Za-z])[\s\*_\)\]\.\:\"'`]*", ans)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    return None


def _leading_letter(ans: str, letters: list[str], options) -> str | None:
    m = re.match(
        r"[\s\*_\"'`#]*(?:\(([A-Za-z])\)|([A-Z])(?:\)|\.|:|,|\s+[-–—]|\*\*|[ \t]*\n)|([a-z])\))", ans
    )
    if not m:
        return None
    letter = (m.group(1) or m.group(2) or m.group(3)).upper()
    return letter if letter in letters else None


def _bold_letter(ans: str, letters: list[str], options) -> str | None:
    found = [m.group(1).upper() for m in re.finditer(r"\*\*\s*\(?([A-Za-z])\)?[\.\):]?\s*\*\*", ans)]
    found = [x for x in found if x in letters]
    return _unique(found)


def _marked_letter(ans: str, letters: list[str], options) -> str | None:
    found = [m.group(1) or m.group(2) for m in re.finditer(r"\(([A-Z])\)|(?<![\w'’])([A-Z])\)", ans)]
    found = [x for x in found if x in letters]
    return _unique(found)


def _option_text(ans: str, letters: list[str], options) -> str | None:
    norm_ans = f" {_norm(ans)} "
    if not norm_ans.strip():
        return None
    matches = []
    for letter, text in options:
        norm_opt = _norm(text)
        if norm_opt and f" {norm_opt} " in norm_ans:
            matches.append((letter, norm_opt))
    if not matches:
        return None
    # drop options whose text is contained in another matching option ("Roma" in "Roma antica")
    kept = [
        (letter, t) for letter, t in matches
        if not any(t != other and f" {t} " in f" {other} " for _, other in matches)
    ]
    distinct = {letter for letter, _ in kept}
    return kept[0][0] if len(distinct) == 1 else None


def _lone_letter(ans: str, letters: list[str], options) -> str | None:
    found = [m.group(1) for m in re.finditer(r"(?<![\w'’])([A-Z])(?![\w'’])", ans)]
    found = [x for x in found if x in letters]
    return _unique(found)


def _official_first_capital(ans: str, letters: list[str], options) -> str | None:
    m = re.search(r"[A-Z]", ans)
    return m.group(0) if m else None


CHOICE_FILTERS: dict[str, Callable[[str, list[str], list], str | None]] = {
    "answer_line": _answer_line,
    "bare_letter": _bare_letter,
    "leading_letter": _leading_letter,
    "bold_letter": _bold_letter,
    "marked_letter": _marked_letter,
    "option_text": _option_text,
    "lone_letter": _lone_letter,
    OFFICIAL_FIRST_CAPITAL: _official_first_capital,
}
CHOICE_CHAINS: dict[str, tuple[str, ...]] = {
    "default": ("answer_line", "bare_letter", "leading_letter", "bold_letter", "marked_letter", "option_text", "lone_letter"),
    "strict": ("answer_line", "bare_letter", "leading_letter", "bold_letter"),
    # ITALIC's official fast extractor, for comparison only (scores "La risposta è B" as "L")
    OFFICIAL_FIRST_CAPITAL: (OFFICIAL_FIRST_CAPITAL,),
}


def extract_choice(text: Any, item: Any, chain: str = "default") -> tuple[str | None, str]:
    """``(letter | None, method)`` from the text after the last ``</think>``. Never raises."""
    try:
        letters, options = _letters_of(item), _options_of(item)
    except Exception:  # noqa: BLE001 - a malformed item answers nothing
        return None, NONE
    return _run_chain(text, CHOICE_CHAINS, CHOICE_FILTERS, chain, lambda f, answer: f(answer, letters, options))


def _run_chain(text: Any, chains: dict, filters: dict, chain: str, call: Any) -> tuple[str | None, str]:
    """The first filter of ``chain`` that reads a value from the answer part of ``text``."""
    try:
        answer = split_output(text if isinstance(text, str) else ("" if text is None else str(text))).answer
        for name in chains.get(chain, chains["default"]):
            try:
                value = call(filters[name], answer)
            except _Ambiguous:
                return None, AMBIGUOUS_NUMBER
            except Exception:  # noqa: BLE001 - one broken filter must not sink the chain
                value = None
            if value is not None:
                return value, name
    except Exception:  # noqa: BLE001, S110 - never raise
        pass
    return None, NONE


# ----------------------------------------------------------------------------- numbers

# a number: optional sign, optional $, digits with optional separators (, and .) between digits
_NUM = r"[-−–]?\s?\$?\s?[-−–]?\d(?:[\d,.]*\d)?"
_NUM_RE = re.compile(_NUM)


class _Ambiguous(Exception):
    """The number a filter picked reads differently in English and Italian (``70.000``)."""


def _read(tok: str, convention: str | None) -> str | None:
    value, status = read_number(tok, convention)
    if status == AMBIGUOUS:
        raise _Ambiguous(tok)
    return canonical(value)


def _last_num(fragment: str, convention: str | None = None) -> str | None:
    for tok in reversed(_NUM_RE.findall(fragment)):
        c = _read(tok, convention)
        if c is not None:
            return c
    return None


def _first_num(fragment: str, convention: str | None = None) -> str | None:
    for tok in _NUM_RE.findall(fragment):
        c = _read(tok, convention)
        if c is not None:
            return c
    return None


_ANSWER_IS = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is|final\s+answer\s*(?:is)?|answer\s*:|"
    r"la\s+risposta\s+(?:finale\s+|corretta\s+)?(?:è|e')|risposta\s*(?:finale)?\s*:)\s*[:=]?\s*",
    re.IGNORECASE,
)
_HASHES = re.compile(r"####\s*")
_BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")


def _from_last(pattern: re.Pattern[str], ans: str, read: Callable[[re.Match[str]], str | None]) -> str | None:
    """The value ``read`` finds at the last match of ``pattern`` that yields one."""
    for m in reversed(list(pattern.finditer(ans))):
        value = read(m)
        if value is not None:
            return value
    return None


def _after_answer_is(m: re.Match[str], convention: str | None) -> str | None:
    fragment = re.split(r"(?<!\d)[.;\n](?!\d)", m.string[m.end():m.end() + 80].replace("**", " "), maxsplit=1)[0]
    if "=" in fragment:  # "The answer is 5 + 3 = 8": the result, not the first operand
        fragment = fragment.rsplit("=", 1)[1]
    return _first_num(fragment, convention)


def _num_answer_is(ans: str, convention: str | None = None) -> str | None:
    return _from_last(_ANSWER_IS, ans, lambda m: _after_answer_is(m, convention))


def _num_hashes(ans: str, convention: str | None = None) -> str | None:
    return _from_last(_HASHES, ans, lambda m: _first_num(m.string[m.end():m.end() + 60], convention))


def _num_boxed(ans: str, convention: str | None = None) -> str | None:
    return _from_last(_BOXED, ans, lambda m: _last_num(re.sub(r"\\[a-zA-Z]+|[{}]", " ", m.group(1)), convention))


def _num_last(ans: str, convention: str | None = None) -> str | None:
    return _last_num(ans, convention)


NUMBER_FILTERS: dict[str, Callable[[str, str | None], str | None]] = {
    "answer_is": _num_answer_is,
    "hashes": _num_hashes,
    "boxed": _num_boxed,
    "last_number": _num_last,
}
NUMBER_CHAINS: dict[str, tuple[str, ...]] = {
    "default": ("answer_is", "hashes", "boxed", "last_number"),
    "strict": ("answer_is", "hashes", "boxed"),
}


def extract_number(text: Any, chain: str = "default", convention: str | None = None) -> tuple[str | None, str]:
    """``(canonical number | None, method)`` from the text after the last ``</think>``; ``convention``
    (None, ``"en"`` or ``"it"``) as in ``data.numbers``."""
    return _run_chain(text, NUMBER_CHAINS, NUMBER_FILTERS, chain, lambda f, answer: f(answer, convention))
