"""The ONE place for durable outputs: atomic writes, resumable JSONL files and output-folder locks.

- :func:`atomic_write_text` / :func:`atomic_write_json` / :func:`atomic_write_bytes` /
  :func:`save_figure` write to a temp file named per process (``.NAME.tmp-PID-N``) in the same
  folder and move it into place with ``os.replace``: a reader sees the old file or the new one,
  never half of one, and two processes writing the same folder never share a temp file.
- :class:`AtomicJsonl` streams rows into such a temp file (converters: millions of rows, flat
  memory) and commits it at the end.
- :class:`ResumableJsonl` appends one row per finished unit of work (eval predictions, distill
  traces) and resumes after a crash: a torn last line is cut off, and the settings that produced
  the rows are recorded beside them (``NAME.settings.json``); a resume under different settings
  is refused, naming what changed, unless ``overwrite=true``.
- :func:`check_settings` is that settings check on its own (sweep and study trials). Its message
  names each changed leaf (``diffs.settings_diff``: ``engine.device: 'cpu' -> 'cuda'``) and a content
  identity (``provenance.identify``) as ``model: content changed (sha 3f2a9c… -> 9b41e0…)``.
- :class:`FolderLock` takes an exclusive ``flock`` on ``FOLDER/.lock``, so two runs writing into
  one output folder fail fast instead of interleaving their rows.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import itertools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from llamafactory_ext.config import UserError
from llamafactory_ext.diffs import settings_diff  # also handed on: callers import it from io

try:
    import orjson as _orjson

    def dumps_line(obj: Any, default: Any = None) -> bytes:
        """One JSON line (UTF-8, ending in a newline)."""
        return _orjson.dumps(obj, default=default) + b"\n"
except ImportError:  # pragma: no cover - orjson is a declared dependency

    def dumps_line(obj: Any, default: Any = None) -> bytes:
        return (json.dumps(obj, ensure_ascii=False, default=default) + "\n").encode("utf-8")


class OutputError(UserError):
    """An output path is unusable (a file where a folder must be, no permission, a lock held)."""


_counter = itertools.count()


def temp_path(path: Path) -> Path:
    """A temp file beside ``path``, unique to this process and call."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{next(_counter)}")


def ensure_dir(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``folder`` (and parents); a clear :class:`OutputError` when it cannot be one."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is an existing file, not a folder: choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {what} {path}: {exc.strerror or exc}") from None
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    ensure_dir(path.parent)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent, default=str) + "\n")


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """``fig.savefig`` into a temp file, then into place; the figure is closed."""
    import matplotlib.pyplot as plt

    path = Path(path)
    ensure_dir(path.parent)
    tmp = temp_path(path)
    try:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)
    return path


def atomic_build_dir(target: str | os.PathLike, build: Any) -> Path:
    """``build(tmp)`` fills a temp folder beside ``target``, which is then renamed into place: a
    reader sees no folder or a complete one. When another process published ``target`` first, its
    folder is kept and this one is dropped."""
    import shutil
    import tempfile

    target = Path(target)
    ensure_dir(target.parent, "cache folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # not another process finishing first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def set_aside(path: str | os.PathLike, name: str, replace: bool = False) -> Path:
    """Rename ``path`` to ``name`` in the same folder, and return the new path. ``replace=True``
    replaces an earlier file of that name (a rotated log); otherwise a free ``name.N`` is chosen,
    so nothing set aside before is lost."""
    path = Path(path)
    target, n = path.with_name(name), 1
    while not replace and target.exists():
        target, n = path.with_name(f"{name}.{n}"), n + 1
    os.replace(path, target)
    return target


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def remove_stale_temp_files(folder: Path, prefix: str) -> None:
    """Temp files of ``prefix`` left in ``folder`` by a killed process (its pid is gone)."""
    for path in folder.glob(f".{prefix}*.tmp-*"):
        try:
            pid = int(path.name.rsplit(".tmp-", 1)[1].split("-")[0])
        except (ValueError, IndexError):
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:
            pass


class AtomicJsonl:
    """``with AtomicJsonl(path) as w: w.write(obj)``: ``path`` appears only when complete."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        ensure_dir(self.path.parent)
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
        """Write one encoded JSON line (ending in ``\\n``); returns its size."""
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


def write_jsonl(path: str | os.PathLike, rows: Any, default: Any = str) -> dict[str, Any]:
    """Every row of ``rows`` into one JSONL file, atomically (streamed through :class:`AtomicJsonl`)."""
    with AtomicJsonl(path) as out:
        for row in rows:
            out.write(row, default=default)
    return out.info()


# ---------------------------------------------------------------------------------------------
# settings fingerprints and resumable files
# ---------------------------------------------------------------------------------------------
class ResumeError(UserError):
    """Existing outputs were made with other settings (the message names what differs)."""


def settings_path(path: Path) -> Path:
    return path.with_name(path.name + ".settings.json") if path.suffix else path / "settings.json"


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def check_settings(record: str | os.PathLike, settings: dict[str, Any], overwrite: bool = False,
                   what: str = "outputs", has_outputs: bool = True, discard: Any = None,
                   differ: Callable[[dict, dict], list[str]] = settings_diff, max_shown: int | None = 6,
                   made_with: str = "other settings") -> str:
    """Compare ``settings`` with the ones recorded at ``record`` and record the new ones.

    Returns ``"new"`` (nothing recorded, or no outputs to protect), ``"same"`` (resume) or
    ``"overwrite"`` (different, and ``overwrite`` was given: ``discard()`` removes the old outputs
    before the new settings are recorded, so a crash in between never leaves old outputs under new
    settings). Raises :class:`ResumeError` when outputs exist and the settings differ without
    ``overwrite``, or when outputs exist with no record at all. ``differ(old, new)`` names the
    differences (``diffs.settings_diff``; ``provenance.diff`` for a provenance record), of which the
    message shows ``max_shown`` (None: all).
    """
    record = Path(record)
    settings = _plain(settings)
    status = "new"
    if record.is_file():
        try:
            old = json.loads(record.read_text(encoding="utf-8"))
        except ValueError:
            old = {"(unreadable settings file)": str(record)}
        diff = differ(old, settings)
        if not diff:
            return "same"
        if not has_outputs:  # an earlier start failed before its first output: nothing to protect
            atomic_write_json(record, settings)
            return "new"
        if not overwrite:
            n = len(diff) if max_shown is None else max_shown
            shown = "; ".join(diff[:n]) + (f"; and {len(diff) - n} more" if len(diff) > n else "")
            raise ResumeError(f"{what} were made with {made_with} ({shown}); "
                              "write elsewhere or pass overwrite=true to start over")
        status = "overwrite"
    elif has_outputs and not overwrite:
        raise ResumeError(f"{what} exist but {record} does not say which settings made them; "
                          "write elsewhere or pass overwrite=true to start over")
    elif has_outputs:
        status = "overwrite"
    if status == "overwrite" and discard is not None:
        discard()
    atomic_write_json(record, settings)
    return status


class ResumableJsonl:
    """Rows appended as work finishes; re-opened with the same settings, it resumes.

    ``open()`` returns the rows already there (a torn last line, left by a killed run, is cut off
    and reported in ``self.repaired``); a different ``settings`` dict raises :class:`ResumeError`
    unless ``overwrite``. ``append`` writes one row; ``flush`` makes the rows durable (fsync).
    """

    def __init__(self, path: str | os.PathLike, settings: dict[str, Any], overwrite: bool = False,
                 what: str | None = None) -> None:
        self.path = Path(path)
        self.settings = settings
        self.overwrite = overwrite
        self.what = what or str(self.path)
        self.repaired = 0
        self._fh = None

    def open(self) -> list[dict[str, Any]]:
        if self.path.is_dir():
            raise OutputError(f"{self.path} is a folder; give a file name (e.g. {self.path / 'out.jsonl'})")
        ensure_dir(self.path.parent)
        check_settings(settings_path(self.path), self.settings, self.overwrite, self.what,
                       has_outputs=self.path.is_file() and self.path.stat().st_size > 0,
                       discard=lambda: self.path.unlink(missing_ok=True))
        rows = read_jsonl(self.path, repair_tail=True, counter=self) if self.path.is_file() else []
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        return rows

    def append(self, row: dict[str, Any]) -> None:
        assert self._fh is not None, "call open() first"
        self._fh.write(dumps_line(row, default=str))

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self.flush()
            self._fh.close()
            self._fh = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: str | os.PathLike, repair_tail: bool = False, counter: Any = None) -> list[dict[str, Any]]:
    """Rows of a JSONL file, each with its 1-based line number in ``_line``.

    With ``repair_tail`` a last line that lacks its newline is treated as the remains of a killed
    write: cut off when it is not valid JSON, completed with a newline when it is. Any other bad
    line is a :class:`UserError` naming file and line.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = raw.split(b"\n")
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        is_tail = number == len(lines)  # no newline after it
        try:
            row = json.loads(line.decode("utf-8"))
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")  # noqa: TRY004 - reported as a bad line below
        except (ValueError, UnicodeDecodeError) as exc:
            if repair_tail and is_tail:
                with open(path, "r+b") as fh:
                    fh.truncate(len(path.read_bytes()) - len(line))
                if counter is not None:
                    counter.repaired += 1
                break
            raise UserError(f"{path}: line {number}: not a JSON object row ({exc})") from None
        if repair_tail and is_tail:
            with open(path, "ab") as fh:
                fh.write(b"\n")
        row["_line"] = number
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# output-folder lock
# ---------------------------------------------------------------------------------------------
class FolderLock:
    """``with FolderLock(output_dir):`` one run at a time per output folder (``flock``). It fails
    fast, or waits up to ``wait`` seconds for the holder (a short read-modify-write of a shared
    file, such as registering in ``dataset_info.json``). ``remove=True`` deletes the lock file on
    release (while still holding it; a waiter that then holds a deleted file tries again), so a
    data folder keeps no lock files."""

    def __init__(self, folder: str | os.PathLike, what: str = "output_dir", name: str = ".lock",
                 label: str | os.PathLike | None = None, wait: float = 0.0, remove: bool = False) -> None:
        self.folder = Path(folder)
        self.what = what
        self.name = name  # one lock file per folder (default), or per output file in it
        self.label = str(label) if label is not None else str(self.folder)
        self.wait = wait
        self.remove = remove
        self._fh = None

    def __enter__(self) -> Self:
        ensure_dir(self.folder, self.what)
        path = self.folder / self.name
        deadline = time.monotonic() + self.wait
        while True:
            fh = open(path, "a+")
            if _try_flock(fh):
                if _same_file(fh, path):
                    break
                fh.close()  # the holder removed it as we waited: lock the new one
                continue
            if time.monotonic() < deadline:
                fh.close()
                time.sleep(0.01)
                continue
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise OutputError(f"{self.what} {self.label} is in use by {holder}; wait for that run to "
                              f"finish or choose another {self.what}")
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {os.uname().nodename} since {time.strftime('%H:%M:%S')}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            if self.remove:
                (self.folder / self.name).unlink(missing_ok=True)
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def _same_file(fh: Any, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
    except FileNotFoundError:
        return False


def _try_flock(fh: Any) -> bool:
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        return False
