"""gsarti/clean_mc4_it (the Italian part of mC4, cleaned by its author) for ``stage: pt``: the
Italian-adaptation data of LLaMAntino-3-ANITA.

The Hub repository is a loading script over ``c4-it.tfrecord-NNNNN-of-01024.json.gz`` shards
(``datasets`` 4 no longer runs loading scripts), so the source is LOCAL shards: download some,
e.g. ``huggingface-cli download gsarti/clean_mc4_it --repo-type dataset --include "*tfrecord-0000[0-3]*"
--local-dir mc4_it``, then

    llamafactory-ext prepare clean_mc4_it source=mc4_it/clean/c4-it.tfrecord-00000-of-01024.json.gz
    llamafactory-ext prepare clean_mc4_it source=[mc4_it/a.json.gz,mc4_it/b.json.gz] max_bytes=2000000000

(a list is read in turn; ``max_rows`` / ``max_bytes`` stop early). Each shard is JSON lines,
gzipped: ``text``, ``timestamp``, ``url``. Only ``text`` is trained (``{"text": ...}``); rows are
converted and written one at a time, as for ``wikipedia_it`` (same ``data/corpus.py``).

Memory: a ``.json.gz`` shard whose first line is a whole JSON object is read as JSON lines, line
by line (memory stays flat; a line that is not UTF-8 is one bad row, skipped and counted with
``on_error=skip``), never decompressed whole.

Light cleaning (the corpus is already cleaned upstream; this only normalises what a web page
leaves behind): ``\\r\\n`` / ``\\r`` become ``\\n``, trailing spaces are cut from every line, runs
of blank lines are squeezed to one, the text is stripped; NUL bytes are removed. Documents that
end up empty (``empty``) or shorter than ``min_chars`` (``too_short``, default 200) are dropped and
counted. A row without a ``text`` string is rejected (``missing_field`` / ``wrong_type``).
"""

from __future__ import annotations

import re

from llamafactory_ext.data.corpus import corpus_spec

HUB_ID = "gsarti/clean_mc4_it"
SOURCE_HELP = (
    "gsarti/clean_mc4_it is a loading script over json.gz shards: download shards (huggingface-cli download "
    "gsarti/clean_mc4_it --repo-type dataset --include '*tfrecord-0000[0-3]*' --local-dir mc4_it) and pass "
    "source=PATH/c4-it.tfrecord-00000-of-01024.json.gz or a list source=[a.json.gz,b.json.gz]"
)
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")
CLEANING = "newlines normalised, trailing spaces cut, blank-line runs squeezed, NUL removed, stripped"


def clean_document(text: str) -> str:
    """The light cleaning above: newlines normalised, trailing spaces cut, blank runs squeezed."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "")
    text = _TRAILING.sub("", text)
    return _BLANK_RUNS.sub("\n\n", text).strip()


SPEC = corpus_spec(
    "clean_mc4_it", "gsarti/clean_mc4_it json.gz shards (local) -> Italian text for stage: pt (ANITA's Italian adaptation)",
    clean_document, {"cleaning": CLEANING}, source_help=SOURCE_HELP,
)
