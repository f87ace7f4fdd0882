"""Numbers in answers: the ONE parser shared by the GSM8K converters and the evaluator.

The rule (documented once, here). Signs (``-``, ``−``, ``–``), a currency sign (``$ € £``), ``%``,
surrounding ``*``, a trailing full stop and spaces used as digit groups (``70 000``, also no-break
and thin spaces) are ignored. Then, English (``1,234.5``) and Italian (``1.234,5``) separators:

- **Both a comma and a dot**: the last one is the decimal separator and the other one groups
  thousands (groups of exactly three digits): ``1,234.5`` and ``1.234,5`` are both 1234.5,
  ``1.234.567,89`` is 1234567.89; anything else (``1,23.4``, ``1.234,5.6``) is not a number.
- **Commas only**: a comma followed by exactly three digits separates thousands (``1,000`` ->
  1000, ``12,345,678``, ``$70,000``: GSM8K's own ``#### N`` lines write them so); otherwise a single
  comma is a decimal comma (``3,5`` -> 3.5, ``12,50`` -> 12.5). Anything else (``1,2,3``,
  ``1234,567``) is not a number.
- **Dots only**: several dots separating groups of three digits are Italian thousands
  (``1.234.567`` -> 1234567); a single dot is a decimal point (``2.5``, ``0.125``, ``1234.567``)
  EXCEPT when it is followed by exactly three digits after one to three digits that do not start
  with 0 (``70.000``, ``1.234``): English reads 70 and 1.234, Italian 70000 and 1234, so the
  number is **ambiguous** and is not read (:func:`read_number` says ``"ambiguous"``; the evaluator
  scores such an answer unparsed, never as 70).

``convention="en"`` or ``"it"`` (when a run knows its outputs' language) settles every case: in
English a comma only groups thousands and a dot is the decimal point; in Italian a dot only groups
thousands and a comma is the decimal comma (``1.234`` -> 1234, ``1,234`` -> 1.234).

:func:`parse_number` gives a :class:`~decimal.Decimal` (or None); :func:`canonical_number` the
canonical text (``"1,000.0"`` -> ``"1000"``, ``".5"`` -> ``"0.5"``, ``"-0"`` -> ``"0"``).
"""

from __future__ import annotations

import functools
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

OK = "ok"
AMBIGUOUS = "ambiguous"
INVALID = "invalid"

_PLAIN = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)")
_STRIP = " \t\n$€£*%"
_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-", " ": None, "_": None, "\u00a0": None, "\u202f": None, "\u2009": None})
_GROUPED = {",": re.compile(r"\d{1,3}(?:,\d{3})+"), ".": re.compile(r"\d{1,3}(?:\.\d{3})+")}
_AMBIGUOUS_DOT = re.compile(r"[1-9]\d{0,2}\.\d{3}")


def read_number(value: Any, convention: str | None = None) -> tuple[Decimal | None, str]:
    """``(number, "ok")``, ``(None, "ambiguous")`` (``70.000``: see the module's rule) or
    ``(None, "invalid")``. ``convention``: None (the rule above), ``"en"`` or ``"it"``. Never raises."""
    if value is None or isinstance(value, bool):
        return None, INVALID
    if isinstance(value, Decimal):
        return (value, OK) if value.is_finite() else (None, INVALID)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            return None, INVALID
        return _parse(repr(value) if isinstance(value, float) else str(value), "en")
    if isinstance(value, str):
        return _parse(value, convention)
    return None, INVALID


def parse_number(value: Any, convention: str | None = None) -> Decimal | None:
    """A number from text, an int or a float; None when it is not one (or is ambiguous). Never raises."""
    return read_number(value, convention)[0]


@functools.lru_cache(maxsize=1 << 16)  # answers repeat a lot
def _parse(text: str, convention: str | None) -> tuple[Decimal | None, str]:
    s = text.strip().translate(_MINUS).strip(_STRIP).removesuffix(".")
    negative = s.startswith("-")
    s = s.lstrip("+-").strip(_STRIP)
    plain = _unseparate(s, convention)
    if plain is AMBIGUOUS:
        return None, AMBIGUOUS
    if not plain or _PLAIN.fullmatch(plain) is None:
        return None, INVALID
    try:
        number = Decimal(plain)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        return None, INVALID
    return (-number if negative and number != 0 else number), OK


def _unseparate(s: str, convention: str | None) -> str | None:
    """``s`` with its thousands separators removed and a ``.`` decimal point; None when it breaks
    the rule, :data:`AMBIGUOUS` when English and Italian read it differently."""
    if "," in s and "." in s:
        decimal = "," if s.rfind(",") > s.rfind(".") else "."
        group = "." if decimal == "," else ","
        if convention and decimal != {"en": ".", "it": ","}[convention]:
            return None
        head, _, tail = s.rpartition(decimal)
        ok = _GROUPED[group].fullmatch(head) and tail.isdecimal()
        return f"{head.replace(group, '')}.{tail}" if ok else None
    if "," in s:
        return _commas(s, convention)
    if "." in s and convention != "en":
        if s.count(".") > 1 or convention == "it":
            return s.replace(".", "") if _GROUPED["."].fullmatch(s) else None
        if _AMBIGUOUS_DOT.fullmatch(s):
            return AMBIGUOUS
    return s


def _commas(s: str, convention: str | None) -> str | None:
    if convention != "it" and _GROUPED[","].fullmatch(s):
        return s.replace(",", "")
    head, _, tail = s.partition(",")
    decimal_comma = head.isdecimal() and tail.isdecimal() and (convention == "it" or (convention is None and len(tail) != 3))
    return f"{head}.{tail}" if decimal_comma else None


def canonical(value: Decimal | None) -> str | None:
    """Decimal -> canonical text: no exponent, no trailing zeros (``1000``, ``-3``, ``2.5``)."""
    if value is None:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def canonical_number(value: Any, convention: str | None = None) -> str | None:
    """:func:`parse_number` then :func:`canonical`."""
    return canonical(parse_number(value, convention))


def numbers_equal(a: Any, b: Any) -> bool:
    """Numeric equality of two numbers or number texts (``"1,000.0" == "1000"``). Never raises."""
    x, y = parse_number(a), parse_number(b)
    return x is not None and y is not None and x == y
