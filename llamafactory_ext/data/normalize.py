"""Text normalisation for matching questions across files: the ONE definition of "the same
question", shared by Mult-IT de-duplication, the trace join of ``prepare multit_think|mixed`` and
``llamafactory-ext contamination``.

:func:`normalize_text` folds case (``casefold``), removes accents (NFKD, combining marks
dropped), drops invisible characters (every format character, Unicode category Cf: soft hyphen,
zero-width space / joiner / non-joiner, word joiner, byte order mark, bidi controls...; and the
other default-ignorable ones: variation selectors, Hangul fillers, tags), turns punctuation and
symbols into spaces and collapses whitespace, so "QUAL È la capi\\u00adtale d'Italia?!" and
"qual e la capitale d italia" are equal: an invisible character inside a word cannot hide a copied
question. :func:`question_key` hashes a question together with its option texts (in order), so two
questions that share their text but not their options stay apart.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import unicodedata
from collections.abc import Iterable

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties) beyond categories Cf and Mn
_IGNORABLE = [(0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x3164, 0x3164), (0xFFA0, 0xFFA0),
              (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF)]


@functools.cache
def _dropped(low: int, high: int) -> re.Pattern[str]:
    """Every nonspacing mark (accents left by NFKD), format character and default-ignorable one in
    ``[low, high)``, as one character class (built once per process)."""
    ranges: list[list[int]] = []
    for code in range(low, high):
        if unicodedata.category(chr(code)) in ("Mn", "Cf"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    ranges += [[a, b] for a, b in _IGNORABLE if low <= a < high]
    return re.compile("[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges) + "]+")


def normalize_text(text: str) -> str:
    """Case-folded, accent-free text without invisible characters, punctuation turned into single spaces."""
    if not text.isascii():
        text = _dropped(0x80, 0x10000).sub("", unicodedata.normalize("NFKD", text))
        if _ASTRAL.search(text):  # astral characters (tags, rare scripts): a class of their own keeps the common one fast
            text = _dropped(0x10000, sys.maxunicode + 1).sub("", text)
    return " ".join(_NON_WORD.sub(" ", text.casefold()).split())


def question_key(question: str, options: Iterable[str] = ()) -> str:
    """A stable key for a question and its option texts: ``q`` + 16 hex digits of a sha256."""
    parts = [normalize_text(question), *(normalize_text(o) for o in options)]
    return "q" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]
