"""The source layer: a Hub id or a local json / jsonl / parquet / csv file, read as rows.

:func:`open_source` resolves ``source`` (a local path wins over a Hub id when it exists);
:meth:`Source.rows` yields ``(row_number, dict)`` with 1-based numbers: the *line* of a JSONL
file (blank lines are skipped but counted, so the number is what an editor shows), the
*row* (element) of a JSON array, a CSV data row, a parquet or Hub row.

A line that is not valid UTF-8 or not valid JSON, or a row that is not a JSON object, raises
:class:`~llamafactory_ext.data.fields.RowError` naming file and line; with an ``on_bad``
callback the row is handed to it instead and reading goes on (``on_error=skip``).

JSONL is read in binary, parsed with ``orjson`` when installed (else ``json``) and hashed
(sha256) on the fly, so a 2 GB file is read once in flat memory. Hub ids go through
``datasets.load_dataset`` (``streaming=True`` for large sources); the manifest records the
Hub revision when the Hub can be asked, the file's sha256 otherwise.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamafactory_ext import provenance
from llamafactory_ext.config import UserError
from llamafactory_ext.data.fields import RowError

try:  # orjson is ~3x faster than json and validates UTF-8 itself
    import orjson as _orjson

    def _loads(data: bytes) -> Any:
        return _orjson.loads(data)

    _JSONError: tuple[type[BaseException], ...] = (_orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover - orjson ships with gradio, a LLaMA-Factory dependency
    _orjson = None

    def _loads(data: bytes) -> Any:
        return json.loads(data)

    _JSONError = (ValueError,)

LOCAL_FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv",
    ".jsonl.gz": "jsonl", ".json.gz": "json", ".csv.gz": "csv",
}


class SourceError(UserError):
    """The source itself cannot be opened (missing file, unknown format, Hub unreachable)."""


def local_format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in sorted(LOCAL_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return LOCAL_FORMATS[suffix]
    return None


_HUB_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def looks_like_hub_id(source: str) -> bool:
    """``owner/name`` that cannot be a local path: two plain parts, no file extension, and no
    local folder named like the owner (``data/quiz`` with a ``data/`` folder is a mistyped path)."""
    parts = source.split("/")
    return (
        len(parts) == 2
        and all(_HUB_PART.fullmatch(p) for p in parts)
        and local_format(Path(source)) is None
        and not Path(parts[0]).is_dir()
    )


def split_files(directory: Path, split: str, shards: bool = False) -> list[Path]:
    """The data file for ``split`` inside a local directory (``train.jsonl``, ``test-0000.parquet``...),
    or the only data file there; with ``shards``, every data file (name order) when none is named
    for the split (a folder of ``c4-it.*.json.gz`` shards)."""
    candidates = [p for p in sorted(directory.rglob("*")) if p.is_file() and local_format(p)]
    named = [p for p in candidates if p.name.split(".")[0] == split or p.name.startswith(f"{split}-")]
    if len(named) == 1 or (named and shards):
        return named if shards else named[:1]
    if len(candidates) == 1 or (candidates and shards and not named):
        return candidates
    listing = ", ".join(str(p.relative_to(directory)) for p in candidates[:10]) or "no json/jsonl/parquet/csv files"
    raise SourceError(f"{directory}: cannot tell which file holds split {split!r} ({listing}); pass the file itself as source=")


def find_split_file(directory: Path, split: str) -> Path:
    return split_files(directory, split)[0]


@dataclass
class Source:
    """A resolved source. ``kind`` is ``local`` or ``hub``; ``unit`` names row numbers in errors."""

    spec: str
    kind: str
    path: Path | None = None
    format: str = "hub"
    hub_config: str | None = None
    split: str = "train"
    streaming: bool = False
    sha256: str | None = None  # filled while/after reading a local file
    revision: str | None = None
    bytes_read: int = 0
    _hasher: Any = field(default=None, repr=False)

    @property
    def display(self) -> str:
        return str(self.path) if self.path is not None else f"{self.spec} ({self.hub_config or 'default'}/{self.split})"

    @property
    def unit(self) -> str:
        return "line" if self.format == "jsonl" else "row"

    def error(self, row: int | None, field_name: str | None, reason: str, detail: str, unit: str | None = None) -> RowError:
        return RowError(self.display, row, field_name, reason, detail, unit or self.unit)

    # -------------------------------------------------------------------------------------
    def rows(self, limit: int | None = None, on_bad: Callable[[RowError, Any], None] | None = None) -> Iterator[tuple[int, dict]]:
        """Yield ``(row_number, row)``; bad rows raise, or go to ``on_bad(error, raw)`` and are skipped.

        ``limit`` counts rows read (good and bad)."""
        reader = {"jsonl": self._jsonl, "json": self._json, "parquet": self._parquet, "csv": self._csv, "hub": self._hub}[self.format]
        seen = 0
        try:
            for number, row in reader():
                if limit is not None and seen >= limit:
                    break
                seen += 1
                if isinstance(row, RowError):
                    if on_bad is None:
                        raise row
                    on_bad(row, getattr(row, "raw", None))
                    continue
                yield number, row
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # a shard cut short by a partial download
            raise SourceError(f"{self.display}: damaged compressed file after {seen} {self.unit}s ({exc}); "
                              "download it again") from None

    def fingerprint(self) -> dict[str, Any]:
        """What the manifest records about the source."""
        if self.kind == "local":
            assert self.path is not None
            if self.sha256 is None:
                self.sha256 = provenance.file_sha256(self.path)
            return {"source": str(self.path), "kind": "local", "format": self.format, "sha256": self.sha256,
                    "size_bytes": self.path.stat().st_size}
        return {"source": self.spec, "kind": "hub", "config": self.hub_config, "split": self.split,
                "revision": self.revision or hub_revision(self.spec), "streaming": self.streaming}

    # -------------------------------------------------------------------------------------
    def _open_binary(self):
        assert self.path is not None
        if self.path.name.lower().endswith(".gz"):
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")

    def _bad(self, number: int, reason: str, detail: str, raw: Any, field_name: str | None = None, unit: str | None = None) -> RowError:
        err = self.error(number, field_name, reason, detail, unit)
        err.raw = raw  # type: ignore[attr-defined]
        return err

    def _jsonl(self) -> Iterator[tuple[int, Any]]:
        # hashed on the fly; a reader closed early (limit) leaves sha256 to fingerprint()
        hasher = hashlib.sha256() if not self.path.name.lower().endswith(".gz") else None  # type: ignore[union-attr]
        with self._open_binary() as f:
            number = 0
            for line in f:
                number += 1
                if hasher is not None:
                    hasher.update(line)
                self.bytes_read += len(line)
                if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]  # a UTF-8 byte order mark (Windows editors write one)
                if not line.strip():
                    continue
                try:
                    row = _loads(line)
                except _JSONError as exc:
                    yield number, self._line_error(number, line, exc)
                    continue
                if not isinstance(row, dict):
                    yield number, self._bad(number, "not_an_object", f"expected a JSON object, got {_json_type(row)}", _text(line))
                    continue
                yield number, row
        if hasher is not None:
            self.sha256 = hasher.hexdigest()
            provenance.remember_sha256(self.path, self.sha256)  # the manifest's inputs need not read it again

    def _line_error(self, number: int, line: bytes, exc: BaseException) -> RowError:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as uexc:
            return self._bad(number, "invalid_utf8", f"not valid UTF-8 (byte 0x{line[uexc.start]:02x} at column {uexc.start + 1})",
                             _text(line))
        try:
            row = json.loads(text)
        except ValueError as jexc:
            return self._bad(number, "invalid_json", f"not valid JSON: {getattr(jexc, 'msg', jexc)} (column {getattr(jexc, 'colno', '?')})", text.rstrip("\r\n"))
        return self._surrogate_error(number, row) or \
            self._bad(number, "invalid_json", f"not valid JSON: {exc}", text.rstrip("\r\n"))  # pragma: no cover - orjson-only rejection

    def _surrogate_error(self, number: int, row: Any) -> RowError | None:
        """A row holding a lone surrogate (``"\\ud800"``: half a UTF-16 pair) cannot be written as
        UTF-8: one error naming the field, instead of a crash when the row is written."""
        found = lone_surrogate(row)
        if found is None:
            return None
        where, char = found
        return self._bad(number, "lone_surrogate", f"holds a lone surrogate \\u{ord(char):04x} at {where} (half of a UTF-16 "
                         "pair: not text); fix the escape", json.dumps(row), field_name=where.split(".")[0].split("[")[0])

    def _looks_like_lines(self) -> bool:
        """A ``.json`` file that is really JSON lines (many are): its first non-blank line is a whole
        JSON object and more follows (or it is one row on its own). Peeked, so a multi-GB shard is
        streamed, never read whole."""
        with self._open_binary() as f:
            first = b""
            for line in f:
                if line.strip():
                    first = line
                    break
            more = any(line.strip() for line in f)
        try:
            obj = _loads(first.removeprefix(b"\xef\xbb\xbf"))
        except _JSONError:
            return False
        holds_rows = isinstance(obj, dict) and any(isinstance(v, list) and v and isinstance(v[0], dict) for v in obj.values())
        return isinstance(obj, dict) and (more or not holds_rows)  # one object alone: one row, unless it wraps the rows

    def _json(self) -> Iterator[tuple[int, Any]]:
        if self._looks_like_lines():
            self.format = "jsonl"
            yield from self._jsonl()
            return
        with self._open_binary() as f:
            data = f.read()
        self.bytes_read = len(data)
        try:
            text = data.decode("utf-8-sig")  # a leading byte order mark is not part of the JSON
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise self.error(line, None, "invalid_utf8", f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", unit="line") from None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise self.error(getattr(exc, "lineno", None), None, "invalid_json",
                             f"not valid JSON: {getattr(exc, 'msg', exc)} (column {getattr(exc, 'colno', '?')})", unit="line") from None
        if isinstance(doc, dict):
            lists = [k for k, v in doc.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
            if len(lists) == 1:  # e.g. {"version": 1, "data": [{...}, ...]}
                doc = doc[lists[0]]
            else:
                raise self.error(None, None, "not_a_list", "expected a JSON array of rows (or an object holding one array of rows)")
        if not isinstance(doc, list):
            raise self.error(None, None, "not_a_list", f"expected a JSON array of rows, got {_json_type(doc)}")
        escapes = _SURROGATE_ESCAPE.search(text) is not None  # only then can a row hold a lone surrogate
        for i, row in enumerate(doc, start=1):
            if not isinstance(row, dict):
                yield i, self._bad(i, "not_an_object", f"expected a JSON object, got {_json_type(row)}", row)
            else:
                yield i, (escapes and self._surrogate_error(i, row)) or row

    def _parquet(self) -> Iterator[tuple[int, Any]]:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(str(self.path))
        except Exception as exc:
            raise SourceError(f"{self.path}: not a readable parquet file: {exc}") from exc
        number = 0
        for batch in pf.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                number += 1
                yield number, row

    def _csv(self) -> Iterator[tuple[int, Any]]:
        with self._open_binary() as fb:
            data = fb.read()
        self.bytes_read = len(data)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise self.error(line, None, "invalid_utf8", f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", unit="line") from None
        reader = csv.DictReader(io.StringIO(text, newline=""))
        escapes = _SURROGATE_ESCAPE.search(text) is not None  # a JSON cell may decode to a lone surrogate
        for number, row in enumerate(reader, start=1):
            if None in row:  # more cells than header columns
                yield number, self._bad(number, "extra_cells", f"has {len(row[None]) + len(reader.fieldnames or [])} cells, the header has {len(reader.fieldnames or [])}", row)
                continue
            cells = {k: (_maybe_json(v) if v is not None else None) for k, v in row.items()}
            yield number, (escapes and self._surrogate_error(number, cells)) or cells

    def _hub(self) -> Iterator[tuple[int, Any]]:
        ds = load_hub(self.spec, self.hub_config, self.split, self.streaming)
        yield from enumerate(ds, start=1)


def _maybe_json(value: str) -> Any:
    """CSV cells holding a JSON list/dict (``["a", "b"]``) become that value; others stay strings."""
    v = value.strip()
    if v[:1] in ("[", "{"):
        try:
            return json.loads(v)
        except ValueError:
            return value
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(value: Any, where: str = "") -> tuple[str, str] | None:
    """``(field path, character)`` of the first lone surrogate in a parsed JSON value (keys too), or None."""
    if isinstance(value, str):
        m = _SURROGATE.search(value)
        return (where or "the row", m.group()) if m else None
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            found = lone_surrogate(key, path) or lone_surrogate(item, path)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = lone_surrogate(item, f"{where}[{i}]")
            if found:
                return found
    return None


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\n")


def hub_revision(repo_id: str) -> str | None:
    """The dataset repo's current commit sha, or None offline."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(repo_id, timeout=10).sha
    except Exception:  # noqa: BLE001 - the revision is informative only
        return None


def load_hub(repo_id: str, config: str | None, split: str, streaming: bool):
    try:
        import datasets

        return datasets.load_dataset(repo_id, config, split=split, streaming=streaming)
    except Exception as exc:
        raise SourceError(
            f"cannot load Hub data set {repo_id!r} (config {config!r}, split {split!r}): {type(exc).__name__}: {exc}. "
            "Offline? Download it and pass the local file as source=PATH"
        ) from exc


def open_source(source: str | os.PathLike, hub_config: str | None = None, split: str = "train", streaming: bool = False) -> Source:
    """Resolve ``source``: an existing local file (or directory holding ``split``), else a Hub id."""
    spec = str(source)
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_dir():
            path = find_split_file(path, split)
        fmt = local_format(path)
        if fmt is None:
            raise SourceError(f"{path}: unknown file type; local sources must be .json, .jsonl, .parquet or .csv (optionally .gz)")
        return Source(spec=spec, kind="local", path=path, format=fmt, split=split)
    if not looks_like_hub_id(spec):
        raise SourceError(f"source file not found: {path} (a Hub id looks like 'owner/name')")
    return Source(spec=spec, kind="hub", hub_config=hub_config, split=split, streaming=streaming)


def iter_rows(
    source: str | os.PathLike,
    hub_config: str | None = None,
    split: str = "train",
    streaming: bool = False,
    limit: int | None = None,
    on_bad: Callable[[RowError, Any], None] | None = None,
) -> Iterator[tuple[int, dict]]:
    """Shortcut: ``open_source(...).rows(limit, on_bad)``."""
    return open_source(source, hub_config, split, streaming).rows(limit=limit, on_bad=on_bad)
