"""A prepared data set's manifest (``NAME.manifest.json``): where ``prepare`` writes (``output_paths``),
which options it takes (``options_class``), what it reads (``source_paths``: each file of a list,
each shard of a folder, or a Hub id; plus side files such as Mult-IT's ``traces``) and the content
identity of each of those inputs (``input_identities``, from ``provenance``). ``prepared_with``
compares a manifest with a prepare run now: option values, converter version, the contents of every
input and of the output itself; a study re-prepares when the list is not empty.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llamafactory_ext import provenance
from llamafactory_ext.config import UserError, combine
from llamafactory_ext.data import get_spec
from llamafactory_ext.data.sources import Source, looks_like_hub_id, split_files
from llamafactory_ext.data.spec import DatasetSpec, PrepareOptions
from llamafactory_ext.io import settings_diff

MANIFEST_VERSION = 3


def options_class(spec: DatasetSpec) -> type:
    """The shared options plus the data set's own (``prepare NAME --help`` lists them)."""
    return combine(f"{spec.name}_options", PrepareOptions, spec.options)


def output_paths(name: str, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    return {
        "train": out / f"{name}.jsonl",
        "val": out / f"{name}_val.jsonl",
        "manifest": out / f"{name}.manifest.json",
        "rejects": out / f"{name}.rejects.jsonl",
    }


def _at(path: str, cwd: str | Path | None) -> Path:
    return Path(cwd, path) if cwd is not None and not Path(path).is_absolute() else Path(path)


def source_paths(spec: DatasetSpec, o: Any, cwd: str | Path | None = None) -> list[str]:
    """Every source in turn: each file of a list, each shard of a folder (name order), or a Hub id;
    as given (a relative path stays relative, to ``cwd`` when given, else to the working folder)."""
    wanted = o.source if isinstance(o.source, list) else [o.source or spec.default_source]
    if not wanted or any(w is None for w in wanted):
        raise UserError(f"{spec.name}: no default source; pass source=PATH. {spec.source_help}")
    split = o.split or spec.hub_split
    out = []
    for w in map(str, wanted):
        folder = _at(w, cwd)
        out += [str(Path(w) / f.relative_to(folder)) for f in split_files(folder, split, shards=True)] if folder.is_dir() else [w]
    return out


def build_manifest(spec: DatasetSpec, o: Any, sources: list[Source], tally: Any, rejects: Any,
                   outputs: dict[str, Any], report: dict[str, Any], started: float) -> dict[str, Any]:
    """``NAME.manifest.json``: options, sources (their fingerprints and ``inputs``' identities),
    row counts per outcome, outputs (rows, bytes, sha256) and the converter's own report."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "name": spec.name,
        "stage": spec.stage,
        "converter_version": spec.version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": o.seed,
        "options": dataclasses.asdict(o),
        "source": sources[0].fingerprint() if len(sources) == 1 else {
            "source": ", ".join(s.spec for s in sources), "kind": "multiple", "parts": [s.fingerprint() for s in sources]},
        "inputs": input_identities(spec, o),  # what prepared_with compares: contents, not paths
        "rows": {
            "read": tally.read,
            "written": tally.written,
            "train": outputs["train"]["rows"],
            "val": outputs["val"]["rows"] if "val" in outputs else 0,
            "dropped": sum(tally.dropped.values()),
            "rejected": sum(rejects.counts.values()),
        },
        "dropped": dict(sorted(tally.dropped.items())),
        "rejected": dict(sorted(rejects.counts.items())),
        "rejected_by_file": dict(sorted(rejects.by_file.items())),
        "outputs": {k: {**v, "file": Path(v["file"]).name} for k, v in outputs.items()},
        "converter": report,
        "elapsed_s": round(time.time() - started, 3),
    }


def input_identities(spec: DatasetSpec, o: Any, cwd: str | Path | None = None) -> dict[str, Any]:
    """``{label: content identity}`` of every source file (each shard) and side file (an option
    naming a file, e.g. Mult-IT's ``traces``) that preparing ``spec`` with options ``o`` reads."""
    out: dict[str, Any] = {}
    for path in source_paths(spec, o, cwd):
        if not _at(path, cwd).exists() and looks_like_hub_id(path):
            out[f"source {path}"] = provenance.hub_identity(path, None, "dataset")
        else:
            out[f"source {path}"] = {**provenance.identify(_at(path, cwd)), "path": path}
    for f in dataclasses.fields(spec.options):
        value = getattr(o, f.name, None)
        if isinstance(value, str) and value and (_at(value, cwd).exists() or f.name == "traces"):
            out[f"{f.name} {value}"] = {**provenance.identify(_at(value, cwd)), "path": value}
    return out


def prepared_with(manifest_path: str | Path, options: Any, cwd: str | Path | None = None) -> list[str]:
    """What differs between the prepared data set whose manifest is ``manifest_path`` and preparing it
    now with ``options`` (the options dataclass, or a dict of its keys; relative paths in them are
    relative to ``cwd``): each option value, the converter version, the contents of every source and
    side file, and the output file itself. An empty list: the prepared files are current (a study
    may skip the prepare step)."""
    path = Path(manifest_path)
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
        spec = get_spec(m["name"])
    except FileNotFoundError:
        return [f"{path}: not prepared yet"]
    except (OSError, ValueError, KeyError, TypeError, UserError) as exc:
        return [f"{path}: unreadable manifest ({type(exc).__name__})"]
    o = options if dataclasses.is_dataclass(options) else options_class(spec)(**dict(options))
    wanted = json.loads(json.dumps(dataclasses.asdict(o), default=str))
    lines = [f"option {line}" for line in settings_diff(m.get("options") or {}, wanted)]
    if m.get("converter_version") != spec.version:
        lines.append(f"converter version {m.get('converter_version')} -> {spec.version}")
    try:
        now = input_identities(spec, o, cwd)
    except UserError as exc:
        return [*lines, str(exc)]
    lines += provenance.diff(provenance.Provenance(inputs=m.get("inputs") or {}), provenance.Provenance(inputs=now))
    train = output_paths(spec.name, path.parent)["train"]
    recorded = (m.get("outputs") or {}).get("train", {}).get("sha256")
    if not train.is_file() or provenance.file_sha256(train) != recorded:
        lines.append(f"{train}: {'missing' if not train.is_file() else 'changed'} since it was prepared")
    return lines
