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
converted and written one at a time, as for ``wikipedia_it`` (same :class:`CorpusOptions`).

Memory: the source layer reads a ``.json.gz`` file whole before it finds out it holds JSON lines
(measured: 456 MB peak for a 150 MB shard), and a line that is not UTF-8 fails the whole shard even
with ``on_error=skip``; the same file named ``.jsonl.gz`` is streamed line by line (31 MB peak, bad
lines skipped and counted). Until ``data/sources.py`` sniffs JSON lines inside ``.json.gz``, link
the shards under that name: ``for f in mc4_it/*.json.gz; do ln -s "$PWD/$f" "${f%.json.gz}.jsonl.gz"; done``.

Light cleaning (the corpus is already cleaned upstream; this only normalises what a web page
leaves behind): ``\\r\\n`` / ``\\r`` become ``\\n``, trailing spaces are cut from every line, runs
of blank lines are squeezed to one, the text is stripped; NUL bytes are removed. Documents that
end up empty (``empty``) or shorter than ``min_chars`` (``too_short``, default 200) are dropped and
counted. A row without a ``text`` string is rejected (``missing_field`` / ``wrong_type``).
"""

from __future__ import annotations

import re
from typing import Any

from llamafactory_ext.data.fields import Drop, RowProblem, require, type_name
from llamafactory_ext.data.spec import Converted, DatasetSpec
from llamafactory_ext.data.wikipedia_it import CorpusOptions

HUB_ID = "gsarti/clean_mc4_it"
SOURCE_HELP = (
    "gsarti/clean_mc4_it is a loading script over json.gz shards: download shards (huggingface-cli download "
    "gsarti/clean_mc4_it --repo-type dataset --include '*tfrecord-0000[0-3]*' --local-dir mc4_it) and pass "
    "source=PATH/c4-it.tfrecord-00000-of-01024.json.gz or a list source=[a.json.gz,b.json.gz]"
)
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")


def clean_document(text: str) -> str:
    """The light cleaning above: newlines normalised, trailing spaces cut, blank runs squeezed."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "")
    text = _TRAILING.sub("", text)
    return _BLANK_RUNS.sub("\n\n", text).strip()


class CleanMc4Converter:
    def __init__(self, options: Any, context: Any = None) -> None:
        self.min_chars = options.min_chars

    def convert(self, row: dict, index: int) -> Converted:
        text = require(row, "text")
        if not isinstance(text, str):
            raise RowProblem("text", "wrong_type", f"expected a string, got {type_name(text)}")
        cleaned = clean_document(text)
        if not cleaned:
            raise Drop("empty")
        if len(cleaned) < self.min_chars:
            raise Drop("too_short")
        return Converted({"text": cleaned})

    def report(self) -> dict[str, Any]:
        return {"min_chars": self.min_chars,
                "cleaning": "newlines normalised, trailing spaces cut, blank-line runs squeezed, NUL removed, stripped"}


SPEC = DatasetSpec(
    name="clean_mc4_it",
    summary="gsarti/clean_mc4_it json.gz shards (local) -> Italian text for stage: pt (ANITA's Italian adaptation)",
    make=CleanMc4Converter,
    options=CorpusOptions,
    default_source=None,
    source_help=SOURCE_HELP,
    streaming=True,
    stage="pt",
    version="1",
    sample="clean_mc4_it.jsonl",
    stratified=False,
)
