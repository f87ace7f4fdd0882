"""Atomic outputs: JSONL files and JSON documents written to a hidden temp file in the same
directory and moved into place with ``os.replace`` only when complete.

An interrupted run (exception, Ctrl-C, kill) therefore never leaves a half-written
``NAME.jsonl`` that LLaMA-Factory could read: either the previous complete file is still
there, or the new complete one. Temp files are named ``.NAME.jsonl.tmp-PID`` and are removed
on any Python-level failure.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Self

try:
    import orjson as _orjson

    def dumps_line(obj: Any, default: Any = None) -> bytes:
        return _orjson.dumps(obj, default=default) + b"\n"
except ImportError:  # pragma: no cover

    def dumps_line(obj: Any, default: Any = None) -> bytes:
        return (json.dumps(obj, ensure_ascii=False, default=default) + "\n").encode("utf-8")


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


class AtomicJsonl:
    """``with AtomicJsonl(path) as w: w.write(obj)`` -> ``path`` appears only on success."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(self.path)
        self._file = open(self.tmp, "wb")  # noqa: SIM115 - closed by commit() / abort()
        self._sha = hashlib.sha256()
        self.rows = 0
        self.bytes = 0
        self.done = False

    def write(self, obj: Any, default: Any = None) -> int:
        """Write one JSON row; ``default`` turns values JSON does not know into something it does."""
        return self.write_line(dumps_line(obj, default))

    def write_line(self, line: bytes) -> int:
        """Write one already-encoded JSON line (ending in ``\\n``); returns its size."""
        self._file.write(line)
        self._sha.update(line)
        self.rows += 1
        self.bytes += len(line)
        return len(line)

    def commit(self) -> dict[str, Any]:
        """Flush, fsync and move into place; returns ``{file, rows, bytes, sha256}``."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.tmp, self.path)
        self.done = True
        return self.info()

    def info(self) -> dict[str, Any]:
        return {"file": str(self.path), "rows": self.rows, "bytes": self.bytes, "sha256": self._sha.hexdigest()}

    def abort(self) -> None:
        if not self.done:
            try:
                self._file.close()
            finally:
                self.tmp.unlink(missing_ok=True)
            self.done = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write a JSON document (indented, UTF-8) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
