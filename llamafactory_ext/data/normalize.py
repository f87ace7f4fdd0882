"""Text normalisation for matching questions across files: the ONE definition of "the same
question", shared by Mult-IT de-duplication, the trace join of ``prepare multit_think|mixed`` and
``llamafactory-ext contamination``.

:func:`normalize_text` folds case (``casefold``), removes accents (NFKD, combining marks
dropped), turns punctuation and symbols into spaces and collapses whitespace, so
"QUAL È la capitale d'Italia?!" and "qual e la capitale d italia" are equal.
:func:`question_key` hashes a question together with its option texts (in order), so two
questions that share their text but not their options stay apart.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# combining marks (accents) left by NFKD: the Unicode blocks of combining diacritics
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")


def normalize_text(text: str) -> str:
    """Case-folded, accent-free text with punctuation turned into single spaces."""
    if not text.isascii():
        text = _MARKS.sub("", unicodedata.normalize("NFKD", text))
    return " ".join(_NON_WORD.sub(" ", text.casefold()).split())


def question_key(question: str, options: Iterable[str] = ()) -> str:
    """A stable key for a question and its option texts: ``q`` + 16 hex digits of a sha256."""
    parts = [normalize_text(question), *(normalize_text(o) for o in options)]
    return "q" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]
