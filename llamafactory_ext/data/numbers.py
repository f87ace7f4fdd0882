"""Numbers in answers: the ONE parser shared by the GSM8K converters and the evaluator.

Rule for commas (documented once, here): a comma followed by exactly three digits is a
thousands separator (``1,000`` -> 1000, ``12,345,678`` -> 12345678, ``1,000.5`` -> 1000.5);
otherwise a single comma is a decimal comma (``3,5`` -> 3.5, ``12,50`` -> 12.5). Anything else
with commas (``1,2,3``, ``1.234,5``) is not a number. Signs (``-``, ``−``, ``–``), a currency
sign (``$ € £``), ``%``, surrounding ``*`` and a trailing full stop are ignored.

:func:`parse_number` gives a :class:`~decimal.Decimal` (or None); :func:`canonical_number` the
canonical text (``"1,000.0"`` -> ``"1000"``, ``".5"`` -> ``"0.5"``, ``"-0"`` -> ``"0"``).
"""

from __future__ import annotations

import functools
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

_PLAIN = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)")
_STRIP = " \t\n$€£*%"
_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-"})


def parse_number(value: Any) -> Decimal | None:
    """A number from text, an int or a float; None when it is not one. Never raises."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            return None
        return _parse(repr(value) if isinstance(value, float) else str(value))
    if isinstance(value, str):
        return _parse(value)
    return None


@functools.lru_cache(maxsize=1 << 16)  # answers repeat a lot
def _parse(text: str) -> Decimal | None:
    s = text.strip().translate(_MINUS).replace(" ", "").replace("_", "").strip(_STRIP).removesuffix(".")
    negative = s.startswith("-")
    s = s.lstrip("+-").strip(_STRIP)
    if "," in s:
        s = _uncomma(s)
        if s is None:
            return None
    if not s or _PLAIN.fullmatch(s) is None:
        return None
    try:
        number = Decimal(s)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        return None
    return -number if negative and number != 0 else number


def _uncomma(s: str) -> str | None:
    head, dot, tail = s.partition(".")
    groups = head.split(",")
    if all(len(g) == 3 and g.isdigit() for g in groups[1:]) and 1 <= len(groups[0]) <= 3 and groups[0].isdigit():
        return "".join(groups) + dot + tail
    if len(groups) == 2 and not dot and groups[0].isdigit() and groups[1].isdigit() and len(groups[1]) != 3:  # 3 digits: thousands
        return f"{groups[0]}.{groups[1]}"
    return None


def canonical(value: Decimal | None) -> str | None:
    """Decimal -> canonical text: no exponent, no trailing zeros (``1000``, ``-3``, ``2.5``)."""
    if value is None:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def canonical_number(value: Any) -> str | None:
    """:func:`parse_number` then :func:`canonical`."""
    return canonical(parse_number(value))


def numbers_equal(a: Any, b: Any) -> bool:
    """Numeric equality of two numbers or number texts (``"1,000.0" == "1000"``). Never raises."""
    x, y = parse_number(a), parse_number(b)
    return x is not None and y is not None and x == y
