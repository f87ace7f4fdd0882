"""Provenance: the content identity of every input a run reads, so resume, caches, skips and
baselines compare what files CONTAIN, never only their paths and option values.

How to use it (the rooms: eval, sweep, study, demo, baseline)
--------------------------------------------------------------
::

    from llamafactory_ext import provenance as pv

    prov = pv.collect(
        inputs={"source": cfg.source, "model": cfg.model_name_or_path, "adapter": cfg.adapter_name_or_path,
                **pv.recipe_inputs(recipe, cwd)},          # model, adapter, data files of a recipe
        configs={f"eval {config_path}": resolved},         # the dict AFTER the key=value merge
        template=r.template)
    pv.check(out_dir, prov, overwrite=cfg.overwrite, what=f"predictions in {out_dir}",
             has_outputs=..., discard=...)   # "new" | "same" | "overwrite"; else one-line StaleInputs
    results["provenance"] = prov.to_json()   # embed it; pv.check already wrote out_dir/provenance.json

- A single identity fits into an existing settings dict: ``settings["model"] = pv.identify(path)``;
  ``io.check_settings`` then says ``model: content changed (sha 3f2a9c… -> 9b41e0…)``.
- Sweep / study status: ``pv.changes(trial_dir, prov)`` lists what changed since the trial ran
  (empty: same, or never recorded): a non-empty list means the trial is **stale**.
- A cache keyed on content (the tokenized data): ``pv.content_key(data_view, pv.identify(file), ...)``.
- ``prepare``'s manifest records ``inputs`` (source and side files): ``data.manifest.prepared_with``.

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

import dataclasses
import functools
import glob as globmod
import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

from llamafactory_ext.diffs import changes as value_changes
from llamafactory_ext.diffs import identity_change, is_identity
from llamafactory_ext.io import ResumeError, atomic_write_json, check_settings

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
              "trial.json", "provenance.json"}  # the last two: a sweep trial's own records beside its adapter
MODEL_SKIP_SUFFIXES = (".md", ".png", ".jpg", ".log", ".lock")
PACKAGES = ("llamafactory", "transformers", "peft", "torch", "llamafactory-ext")
RECORD = "provenance.json"
_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_MEMO: dict[tuple, dict[str, Any]] = {}


class StaleInputs(ResumeError):
    """Outputs were made from other inputs (the one-line message names every change)."""


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
        elif path.name == ADAPTER_CONFIG and (canonical := _adapter_config(path)) is not None:
            _MEMO[key] = {"kind": "file", "size": size, "digest": _sha(canonical), "canonical": "json"}
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


# ---------------------------------------------------------------------------------------------
# versions, recipes
# ---------------------------------------------------------------------------------------------
@functools.cache
def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that shape a result (None: not installed)."""
    import importlib.metadata

    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _as_names(value: Any) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    return [str(x).strip() for x in items if str(x).strip()]


def recipe_inputs(recipe: dict[str, Any], cwd: str | os.PathLike = ".") -> dict[str, str]:
    """``{label: path or Hub id}`` of what a LLaMA-Factory recipe reads: the model, its adapters, and
    the file of every ``dataset`` / ``eval_dataset`` entry of ``DATASET_DIR/dataset_info.json``
    (``hf_hub_url`` entries as Hub ids), resolved as LLaMA-Factory resolves them (against ``cwd``)."""
    base = Path(cwd)
    out: dict[str, str] = {}
    if recipe.get("model_name_or_path"):
        out["model"] = str(recipe["model_name_or_path"])
    adapters = _as_names(recipe.get("adapter_name_or_path"))
    for i, adapter in enumerate(adapters, 1):
        out["adapter" if len(adapters) == 1 else f"adapter {i}"] = adapter
    names = _as_names(recipe.get("dataset")) + _as_names(recipe.get("eval_dataset"))
    data_dir = base / str(recipe.get("dataset_dir") or "data")
    info_path = data_dir / "dataset_info.json"
    if names:
        out["dataset_info"] = str(info_path)
    try:
        info = json.loads(info_path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        info = {}
    for name in names:
        entry = info.get(name) if isinstance(info, dict) else None
        if isinstance(entry, dict) and entry.get("file_name"):
            out[f"dataset {name}"] = str(data_dir / str(entry["file_name"]))
        elif isinstance(entry, dict) and entry.get("hf_hub_url"):
            out[f"dataset {name}"] = str(entry["hf_hub_url"])
    return out


# ---------------------------------------------------------------------------------------------
# the record
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Provenance:
    """What a run consumed: ``inputs`` (label -> identity), ``configs`` (label -> the dict as
    resolved after the merge), the ``template`` and the package ``versions``."""

    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    configs: dict[str, Any] = dataclasses.field(default_factory=dict)
    versions: dict[str, str | None] = dataclasses.field(default_factory=dict)
    template: str | None = None

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps({"provenance_version": 1, "template": self.template, "versions": self.versions,
                                      "inputs": self.inputs, "configs": self.configs}, default=str))

    @classmethod
    def from_json(cls, data: Any) -> Provenance:
        """A record read back (missing sections are empty; anything else is an unreadable record)."""
        if not isinstance(data, dict):
            return cls(configs={"(unreadable provenance record)": {"value": repr(data)[:80]}})
        return cls(inputs=dict(data.get("inputs") or {}), configs=dict(data.get("configs") or {}),
                   versions=dict(data.get("versions") or {}), template=data.get("template"))

    def write(self, out_dir: str | os.PathLike) -> Path:
        """``OUT_DIR/provenance.json``, written atomically."""
        return atomic_write_json(Path(out_dir) / RECORD, self.to_json())

    @classmethod
    def read(cls, out_dir: str | os.PathLike) -> Provenance | None:
        """The record in ``out_dir`` (None when there is none)."""
        path = Path(out_dir) / RECORD
        if not path.is_file():
            return None
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            return cls.from_json(None)

    def key(self) -> str:
        """A short key of the contents (paths left out): equal keys, equal inputs."""
        return content_key(self.to_json())[:16]


def collect(inputs: dict[str, Any] | None = None, configs: dict[str, Any] | None = None,
            template: str | None = None, full: bool = False) -> Provenance:
    """A :class:`Provenance` for a run: each input (a path, a Hub id, or an identity already made)
    identified, each config kept as it was resolved; the versions of :data:`PACKAGES`."""
    idents = {label: value if is_identity(value) else identify(value, full=full)
              for label, value in (inputs or {}).items() if value not in (None, "")}
    return Provenance(inputs=idents, configs=dict(configs or {}), versions=versions(), template=template)


def content_key(*parts: Any) -> str:
    """The sha256 of ``parts`` with every identity reduced to its digest (a moved file with the same
    bytes keeps its key): the key of a cache that must follow content (tokenized data)."""
    def strip(value: Any) -> Any:
        if is_identity(value):
            return value["digest"]
        if isinstance(value, dict):
            return {str(k): strip(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value

    return _sha(strip(list(parts)))


def diff(old: Provenance, new: Provenance) -> list[str]:
    """One line per change: ``recipe recipes/v3_mixed.yaml: learning_rate 0.0001 -> 0.0002``,
    ``data/multit_mixed.jsonl: content changed (sha 3f2a9c… -> 9b41e0…)``, ``transformers: 5.6.0 -> 5.7.0``."""
    lines = []
    for label in sorted(set(old.inputs) | set(new.inputs)):
        a, b = old.inputs.get(label), new.inputs.get(label)
        name = _named(label, b or a)
        if a is None or b is None:
            lines.append(f"{name}: {'no longer an input' if b is None else 'a new input'}")
        elif is_identity(a) and is_identity(b):
            change = identity_change(a, b)
            lines += [f"{name}: {change}"] if change else []
        elif a != b:
            lines.append(f"{name}: content changed")
    for label in sorted(set(old.configs) | set(new.configs)):
        if label not in old.configs or label not in new.configs:
            lines.append(f"{label}: {'a new config' if label not in old.configs else 'no longer a config'}")
            continue
        lines += [f"{label}: {key} {change}" for key, change in value_changes(old.configs[label], new.configs[label])]
    if old.template != new.template:
        lines.append(f"template: {old.template} -> {new.template}")
    for name in sorted(set(old.versions) | set(new.versions)):
        if old.versions.get(name) != new.versions.get(name):
            lines.append(f"{name}: {old.versions.get(name) or '(not installed)'} -> {new.versions.get(name) or '(not installed)'}")
    return lines


def _named(label: str, ident: Any) -> str:
    """A role label gets its path (``model saves/x``); a label that is a path stays as it is."""
    path = str(ident.get("path") or "") if isinstance(ident, dict) else ""
    return label if not path or "/" in label or path in label else f"{label} {path}"


def _differ(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return diff(Provenance.from_json(old), Provenance.from_json(new))


def changes(out_dir: str | os.PathLike, current: Provenance) -> list[str]:
    """What changed since ``out_dir``'s outputs were made (empty: the same, or never recorded).
    A sweep or study trial with a non-empty list is stale."""
    old = Provenance.read(out_dir)
    return [] if old is None else diff(old, current)


def check(out_dir: str | os.PathLike, current: Provenance, overwrite: bool = False, what: str | None = None,
          has_outputs: bool = True, discard: Any = None) -> str:
    """Resume only from the same inputs: ``"new"``, ``"same"`` or ``"overwrite"`` (``discard()`` ran
    first), as ``io.check_settings``; outputs made from other inputs raise :class:`StaleInputs`
    naming every change in one line, unless ``overwrite``. Records ``OUT_DIR/provenance.json``."""
    try:
        return check_settings(Path(out_dir) / RECORD, current.to_json(), overwrite, what or f"outputs in {out_dir}",
                              has_outputs, discard, differ=_differ, max_shown=None, made_with="other inputs")
    except ResumeError as exc:
        raise StaleInputs(str(exc)) from None
