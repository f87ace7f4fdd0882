"""The content identity of a file, folder, model, Hub snapshot, glob or Hub id (``identify``): what
``provenance`` records and compares.

What an identity is
-------------------
A JSON mapping with ``kind`` and ``digest`` (hex sha256; ``None`` for a missing path):

- ``file``: ``size`` and the sha256 of the whole file (data, sources, traces, configs, tokenizers).
- ``weights`` (``.safetensors .bin .pt .pth .gguf .ckpt``): reading 16 GB to identify an 8B model is
  not an option, so the digest covers the size, the safetensors header (every tensor's name, dtype,
  shape and offsets: ``header`` holds its sha256), the first 4 KiB of every tensor, the first and
  last MiB and 16 evenly spaced 1 MiB blocks. A weight file under 18 MiB is hashed whole.
- ``folder`` / ``model``: ``files`` maps each file name to its identity; a model folder (it holds
  ``config.json``, ``adapter_config.json`` or weights) counts its top-level files only (what
  ``from_pretrained`` reads; ``checkpoint-*/``, logs, README and trainer state are left out), a data
  folder every non-hidden file below it. Inside a Hugging Face cache snapshot
  (``models--org--name/snapshots/<commit>``) ``repo`` and ``commit`` are recorded and each file's
  identity is its blob name (the sha256 of an LFS file, the git sha1 of a small one): nothing is read.
- ``glob``: the files a pattern matches now (shards). ``hub``: a Hub id that is not a local path:
  ``id``, ``revision`` and, when the local Hugging Face cache holds it (read offline), the snapshot's
  ``commit`` and files. When one of two records had no cached snapshot (a first run downloads the
  model after its provenance was taken), they are compared by id and revision only.

What it costs and what it can miss (``benchmarks/bench_provenance.py``)
-----------------------------------------------------------------------
Measured on a 2-core machine: a 6 GB folder of 4 safetensors shards is identified in 1.1 s cold
(0.29 s warm) against 44 s (19 s) to read every byte; a memoised call takes under 1 ms; for a tiny
eval of 16 ITALIC items (14 s as a process) ``collect`` takes 36 ms (0.3 %).

- An in-place edit of a weight file that keeps its size and header and touches no sampled byte (the
  first 4 KiB of each tensor, the first / last MiB, 16 spaced MiB): 18.4 MiB of a 1.4 GB shard
  (1.3 %), about 0.45 % of a 4 GB one, are read, so e.g. one row of the embedding matrix changed
  by hand goes unseen. Any retraining changes every tensor, and so its first 4 KiB.
  ``identify(path, full=True)`` hashes every byte when that matters.
- A blob of the Hugging Face cache edited in place (the cache is content-addressed; the blob name
  is trusted).
- The per-process memo is keyed on (path, size, mtime_ns, ctime_ns, inode, device): a rewrite that
  keeps all of them (same size within one clock tick) is not re-hashed in the same process.
- A folder copied out of the HF cache is "changed" against its snapshot (blob ids against sha256 /
  sampled digests), though the bytes are equal.
"""

from __future__ import annotations

import glob as globmod
import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

BLOCK = 1 << 20
SAMPLES = 16
TENSOR_HEAD = 4096
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")
NOT_WEIGHTS = {"training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth"}
ADAPTER_CONFIG = "adapter_config.json"
MODEL_MARKERS = ("config.json", ADAPTER_CONFIG)
PEFT_SET_FIELDS = ("target_modules", "exclude_modules")  # sets in PEFT's LoraConfig, lists in the file
# files of a training output folder that do not change what from_pretrained loads
MODEL_SKIP = {"training_args.bin", "trainer_state.json", "all_results.json", "train_results.json", "eval_results.json",
              "trainer_log.jsonl", "README.md", ".gitattributes", "LICENSE",
              "trial.json", "provenance.json", "tracking.json"}  # the last three: a sweep trial's records beside its adapter
MODEL_SKIP_SUFFIXES = (".md", ".png", ".jpg", ".log", ".lock")
_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_MEMO: dict[tuple, dict[str, Any]] = {}


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
def _memo_key(path: Path, mode: str) -> tuple:
    st = os.stat(path)
    return (str(path.absolute()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, mode)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a whole file, memoised per process (a status check over 20 trials reads it once)."""
    return file_identity(Path(path), mode="whole")["digest"]


def remember_sha256(path: str | os.PathLike, sha256: str) -> None:
    """Record a sha256 computed while the file was read anyway (``prepare`` hashes JSONL on the fly)."""
    path = Path(path)
    _MEMO[_memo_key(path, "whole")] = {"kind": "file", "size": path.stat().st_size, "digest": sha256}


def file_identity(path: Path, mode: str = "auto") -> dict[str, Any]:
    """``{kind, size, digest}`` of one file: whole (``mode="whole"``), or sampled for weight files
    (``mode="auto"``); memoised on (path, size, mtime, ctime, inode, device)."""
    weights = mode == "auto" and path.suffix.lower() in WEIGHT_SUFFIXES and path.name not in NOT_WEIGHTS
    key = _memo_key(path, "weights" if weights else "whole")
    if key not in _MEMO:
        size = key[1]
        if weights:
            _MEMO[key] = _weights_identity(path, size)
        else:
            with open(path, "rb") as fh:
                _MEMO[key] = {"kind": "file", "size": size, "digest": hashlib.file_digest(fh, "sha256").hexdigest()}
    return dict(_MEMO[key])


def _adapter_config(path: Path) -> dict[str, Any] | None:
    """PEFT's adapter_config.json as what it means: the module-name fields PEFT keeps as sets are
    written in the process's hash order (two identical trainings write them in two orders), so
    they are sorted; None when the file is not a JSON object (then its bytes are hashed)."""
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(cfg, dict):
        return None
    return {k: sorted(v, key=str) if k in PEFT_SET_FIELDS and isinstance(v, list) else v for k, v in cfg.items()}


def safetensors_header(fh: Any, size: int) -> bytes | None:
    """The JSON header of a safetensors file (8-byte little-endian length, then the JSON), or None."""
    fh.seek(0)
    head = fh.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    if not 2 <= n <= min(size - 8, 100 << 20):
        return None
    raw = fh.read(n)
    return raw if raw[:1] == b"{" else None


def _tensor_offsets(header: bytes) -> list[tuple[int, int]]:
    """(offset in the file, bytes to read) of the head of every tensor a safetensors header lists."""
    try:
        meta = json.loads(header)
    except ValueError:
        return []
    start = 8 + len(header)
    spans = [v.get("data_offsets") for k, v in meta.items() if k != "__metadata__" and isinstance(v, dict)]
    return [(start + b, min(TENSOR_HEAD, e - b)) for b, e in (s for s in spans if isinstance(s, list) and len(s) == 2) if e > b]


def _weights_identity(path: Path, size: int) -> dict[str, Any]:
    """Size, header, each tensor's head and spaced blocks of a weight file (whole when small)."""
    with open(path, "rb") as fh:
        header = safetensors_header(fh, size) if path.suffix.lower() == ".safetensors" else None
        out: dict[str, Any] = {"kind": "weights", "size": size, "header": hashlib.sha256(header).hexdigest() if header else None}
        if size <= (SAMPLES + 2) * BLOCK:
            fh.seek(0)
            return {**out, "kind": "file", "digest": hashlib.file_digest(fh, "sha256").hexdigest()}
        spans = {(0, BLOCK), (size - BLOCK, BLOCK)}
        spans.update(((i + 1) * (size - BLOCK) // (SAMPLES + 1), BLOCK) for i in range(SAMPLES))
        spans.update(_tensor_offsets(header) if header else [])
        h = hashlib.sha256(f"{size}:{out['header']}".encode())
        for offset, length in sorted(spans):
            fh.seek(offset)
            h.update(offset.to_bytes(8, "little") + fh.read(length))
    return {**out, "sampled_bytes": sum(n for _, n in spans), "digest": h.hexdigest()}


# ---------------------------------------------------------------------------------------------
# folders, snapshots, globs, Hub ids
# ---------------------------------------------------------------------------------------------
def hub_snapshot(path: str | os.PathLike) -> tuple[str, str, Path] | None:
    """``(repo, commit, snapshot folder)`` when ``path`` lies inside a Hugging Face cache snapshot
    (``.../models--org--name/snapshots/<commit>/...``, symlinks not followed), else None."""
    parts = Path(os.path.abspath(path)).parts
    for i in range(1, len(parts) - 1):
        if parts[i] == "snapshots" and parts[i - 1].split("--")[0] in ("models", "datasets") and _HEX.fullmatch(parts[i + 1]):
            return "/".join(parts[i - 1].split("--")[1:]), parts[i + 1], Path(*parts[: i + 2])
    return None


def _blob_identity(path: Path) -> dict[str, Any] | None:
    """A snapshot file's identity from the blob it links to (content-addressed): nothing read."""
    if not path.is_symlink():
        return None
    blob = Path(os.readlink(path)).name
    if not _HEX.fullmatch(blob) or not path.exists():
        return None
    return {"kind": "blob", "size": path.stat().st_size, "digest": blob}


def is_model_folder(folder: Path) -> bool:
    return any((folder / m).is_file() for m in MODEL_MARKERS) or any(
        p.suffix in WEIGHT_SUFFIXES and p.name not in NOT_WEIGHTS for p in folder.iterdir() if p.is_file())


def _model_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.name not in MODEL_SKIP and not p.name.endswith(MODEL_SKIP_SUFFIXES))


def _data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def folder_identity(folder: Path, full: bool = False) -> dict[str, Any]:
    """A model folder (its top-level files) or a data folder (every non-hidden file below it)."""
    model = is_model_folder(folder)
    snap = hub_snapshot(folder)
    files = {}
    for p in _model_files(folder) if model else _data_files(folder):
        ident = (_blob_identity(p) if snap else None) or file_identity(p, "whole" if full else "auto")
        if model and p.name == ADAPTER_CONFIG and (canonical := _adapter_config(p)) is not None:
            ident = {**ident, "digest": _sha(canonical), "canonical": "json"}  # what PEFT loads, not its bytes
        files[p.relative_to(folder).as_posix()] = ident
    out: dict[str, Any] = {"kind": "model" if model else "folder", "path": str(folder)}
    if snap:
        out.update(repo=snap[0], commit=snap[1])
    return {**out, "files": files, "digest": _sha({k: v["digest"] for k, v in files.items()})}


def hub_cache() -> Path:
    """The Hugging Face hub cache folder (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ~/.cache)."""
    if os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ.get("HF_HUB_CACHE") or os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface").expanduser() / "hub"


def hub_identity(repo_id: str, revision: str | None = None, repo_type: str = "model") -> dict[str, Any]:
    """A Hub id that is not a local path: id and revision, plus the cached snapshot (offline) if any."""
    repo = hub_cache() / f"{repo_type}s--{repo_id.replace('/', '--')}"
    rev = revision or "main"
    commit = rev if _HEX.fullmatch(rev) else None
    if commit is None and (repo / "refs" / rev).is_file():
        commit = (repo / "refs" / rev).read_text(encoding="utf-8").strip() or None
    snap = repo / "snapshots" / commit if commit else None
    files = folder_identity(snap)["files"] if snap is not None and snap.is_dir() else {}
    out = {"kind": "hub", "id": repo_id, "revision": rev, "commit": commit, "files": files}
    return {**out, "digest": _sha({"id": repo_id, "revision": rev, "commit": commit, "files": {k: v["digest"] for k, v in files.items()}})}


def glob_identity(pattern: str, full: bool = False) -> dict[str, Any]:
    paths = sorted(Path(p) for p in globmod.glob(pattern, recursive=True) if Path(p).is_file())
    files = {str(p): file_identity(p, "whole" if full else "auto") for p in paths}
    return {"kind": "glob", "path": pattern, "files": files, "digest": _sha({k: v["digest"] for k, v in files.items()}) if files else None}


def identify(path: str | os.PathLike | None, revision: str | None = None, full: bool = False) -> dict[str, Any] | None:
    """The content identity of a file, folder, glob or Hub id (see the module docstring); ``full``
    hashes every byte of weight files too. None for None."""
    if path is None or str(path) == "":
        return None
    text = os.path.expanduser(str(path))
    p = Path(text)
    if p.is_file():
        blob = _blob_identity(p) if hub_snapshot(p) else None
        return {**(blob or file_identity(p, "whole" if full else "auto")), "path": str(path)}
    if p.is_dir():
        return {**folder_identity(p, full), "path": str(path)}
    if any(c in text for c in "*?["):
        return glob_identity(text, full)
    if _HUB_ID.fullmatch(text) and not p.parent.is_dir():
        return hub_identity(text, revision)
    return {"kind": "missing", "path": str(path), "digest": None}
