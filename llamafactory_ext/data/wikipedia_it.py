"""Italian Wikipedia (``wikimedia/wikipedia``, config ``20231101.it``) for ``stage: pt``.

Each article becomes ``{"text": ...}``: the article text only (title, url and id are not
trained), cleaned: the trailing reference / link sections (``Note``, ``Bibliografia``,
``Voci correlate``, ``Altri progetti``, ``Collegamenti esterni``, ...) are cut from the
first such heading on, runs of blank lines are squeezed, and articles that end up empty
(``empty``) or shorter than ``min_chars`` (``too_short``) are dropped and counted.

The source is streamed (Hub ``streaming=True``, local JSONL line by line) and every row is
written as soon as it is converted, so memory stays flat whatever the input size;
``max_rows`` / ``max_bytes`` stop early.
"""

from __future__ import annotations

import re

from llamafactory_ext.data.corpus import corpus_spec

HUB_ID = "wikimedia/wikipedia"
HUB_CONFIG = "20231101.it"

TAIL_SECTIONS = (
    "Note", "Note e riferimenti", "Riferimenti", "Fonti", "Bibliografia", "Bibliografia essenziale",
    "Voci correlate", "Altri progetti", "Collegamenti esterni", "Letture consigliate",
    "Ulteriori letture", "Sitografia", "Approfondimenti",
)
_TAIL = re.compile(r"^[ \t]*(?:" + "|".join(re.escape(s) for s in TAIL_SECTIONS) + r")[ \t]*:?[ \t]*$", re.MULTILINE)
_BLANKS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def clean_article(text: str) -> str:
    """Article text without trailing reference/link sections, blank-line runs squeezed."""
    match = _TAIL.search(text)
    while match is not None and not text[: match.start()].strip():
        match = _TAIL.search(text, match.end())  # a heading at the very top is not a tail
    if match is not None:
        text = text[: match.start()]
    text = text.strip()
    if "\n\n\n" in text or "\n \n" in text or "\n\t" in text:
        text = _BLANKS.sub("\n\n", text)
    return text


SPEC = corpus_spec(
    "wikipedia_it", "Italian Wikipedia for stage: pt (article text, reference sections cut, streamed)",
    clean_article, {"tail_sections": list(TAIL_SECTIONS)}, default_source=HUB_ID, hub_config=HUB_CONFIG,
)
