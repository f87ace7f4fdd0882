"""Convert a source data set into LLaMA-Factory data.

    llamafactory-ext prepare NAME [CONFIG.yaml] [source=HUB_ID_OR_FILE] [limit=N] [out_dir=data]
                             [seed=42] [on_error=fail|skip] [val_size=0.1] [traces=FILE] ...
    llamafactory-ext prepare --list [out_dir=data]

writes, in ``out_dir``:

- ``NAME.jsonl``            the rows LLaMA-Factory trains on (``{"messages": [...]}``, or
                            ``{"text": ...}`` for ``stage: pt`` data)
- ``NAME_val.jsonl``        with ``val_size``: a seeded validation split, stratified by
                            category (else answer letter), registered as entry ``NAME_val``
- ``NAME.manifest.json``    source, Hub revision or sha256 of the local file, rows read /
                            written / dropped / rejected per reason, converter version, seed
- ``NAME.rejects.jsonl``    with ``on_error=skip``: each bad row with file, row, field, reason

Every file is written atomically (temp file + rename). ``on_error=fail`` (default) stops at
the first malformed row with an error naming file, row (1-based line for JSONL) and field.
Missing ``dataset_info.json`` entries beside ``out_dir`` are added (``register=false``: never).
``--list`` shows each registered data set, its default source and whether it is prepared
(and, if not, the command that prepares it).
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llamafactory_ext.config import ConfigError, UserError, describe, from_argv
from llamafactory_ext.data import REGISTRY, get_spec
from llamafactory_ext.data.fields import Drop, RowError, RowProblem
from llamafactory_ext.data.sources import open_source
from llamafactory_ext.data.spec import DatasetSpec, PrepareOptions
from llamafactory_ext.data.writer import AtomicJsonl, dumps_line, write_json_atomic

USAGE = "NAME [CONFIG.yaml] [key=value ...]   |   --list [out_dir=data]"
MANIFEST_VERSION = 1


def options_help() -> str:
    names = "\n".join(f"  {name:<16} {get_spec(name).summary}" for name in REGISTRY)
    return describe(PrepareOptions) + "\n\ndata sets:\n" + names


def output_paths(name: str, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    return {
        "train": out / f"{name}.jsonl",
        "val": out / f"{name}_val.jsonl",
        "manifest": out / f"{name}.manifest.json",
        "rejects": out / f"{name}.rejects.jsonl",
    }


def prepare_command(spec: DatasetSpec, out_dir: str = "data") -> str:
    """The command that creates ``spec``'s file (shown by ``--list`` and the README)."""
    cmd = f"llamafactory-ext prepare {spec.name}"
    if spec.default_source is None:
        cmd += " source=PATH/quiz.json"
    if spec.sample_options.get("traces"):
        cmd += " traces=PATH/traces.jsonl"
    if out_dir != "data":
        cmd += f" out_dir={out_dir}"
    return cmd


def _check(spec: DatasetSpec, o: PrepareOptions) -> None:
    if not 0.0 <= o.val_size < 0.5:
        raise ConfigError(f"val_size must be in [0, 0.5), got {o.val_size}")
    if o.val_size and spec.stage != "sft":
        raise ConfigError(f"val_size splits SFT data; {spec.name} is stage: {spec.stage} data")
    for key in ("limit", "max_rows", "max_bytes"):
        value = getattr(o, key)
        if value is not None and value <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {value}")


def _split_val(strata: list[Any], val_size: float, seed: int) -> set[int]:
    """Indices of a seeded validation split of round(N * val_size) rows, stratified by ``strata``
    (largest-remainder allocation, so every stratum gets its share and the total is exact)."""
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, key in enumerate(strata):
        groups[key].append(i)
    total = round(len(strata) * val_size)
    if total == 0:
        return set()
    order = sorted(groups, key=lambda k: (k is None, str(k)))
    quotas = {k: len(groups[k]) * val_size for k in order}
    alloc = {k: int(q) for k, q in quotas.items()}
    rest = total - sum(alloc.values())
    for k in sorted(order, key=lambda k: (-(quotas[k] - alloc[k]), str(k)))[:rest]:
        alloc[k] += 1
    rng = random.Random(seed)
    chosen: set[int] = set()
    for k in order:
        members = groups[k][:]
        rng.shuffle(members)
        chosen.update(members[: alloc[k]])
    return chosen


def register(spec: DatasetSpec, out_dir: Path, with_val: bool) -> list[str]:
    """Add missing entries for ``spec`` to ``out_dir/../dataset_info.json``; returns what changed."""
    info_path = out_dir.resolve().parent / "dataset_info.json"
    rel = out_dir.resolve().name
    wanted = {spec.name: spec.dataset_info_entry(f"{rel}/{spec.name}.jsonl")}
    if with_val:
        wanted[f"{spec.name}_val"] = spec.dataset_info_entry(f"{rel}/{spec.name}_val.jsonl")
    info: dict[str, Any] = {}
    if info_path.exists():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            print(f"warning: {info_path} is not valid JSON ({exc}); not registering {spec.name}", file=sys.stderr)
            return []
        if not isinstance(info, dict):
            print(f"warning: {info_path} is not a JSON object; not registering {spec.name}", file=sys.stderr)
            return []
    changed = []
    for key, entry in wanted.items():
        if key not in info:
            info[key] = entry
            changed.append(key)
        elif info[key].get("file_name") != entry["file_name"]:
            print(f"warning: {info_path}: entry {key!r} points at {info[key].get('file_name')!r}, "
                  f"not at the file just written ({entry['file_name']!r})", file=sys.stderr)
    if changed:
        write_json_atomic(info_path, info)
    return changed


def _remove_stale_temp_files(out_dir: Path, name: str) -> None:
    """Temp files left by a killed run of the same data set (their process is gone)."""
    import os

    for path in out_dir.glob(f".{name}*.tmp-*"):
        try:
            pid = int(path.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
            alive = pid != os.getpid()
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            path.unlink(missing_ok=True)


def _progress(src, quiet: bool):
    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    if src is not None and src.kind == "local" and src.format == "jsonl":
        return tqdm(total=src.path.stat().st_size, unit="B", unit_scale=True, desc=f"prepare {src.path.name}",
                    file=sys.stderr, disable=None, mininterval=1.0)
    return tqdm(unit=" rows", desc="prepare", file=sys.stderr, disable=None, mininterval=1.0)


def run(name: str, options: PrepareOptions | None = None, quiet: bool = False) -> dict[str, Any]:
    """Prepare data set ``name``; returns the manifest (also written to NAME.manifest.json)."""
    spec = get_spec(name)
    o = options or PrepareOptions()
    _check(spec, o)
    wanted = o.source if isinstance(o.source, list) else [o.source or spec.default_source]
    if not wanted or any(w is None for w in wanted):
        raise UserError(f"{spec.name}: no default source; pass source=PATH. {spec.source_help}")
    started = time.time()
    sources = [
        open_source(
            w,
            hub_config=o.hub_config if o.hub_config is not None else spec.hub_config,
            split=o.split or spec.hub_split,
            streaming=o.streaming if o.streaming is not None else spec.streaming,
        )
        for w in wanted
    ]
    src = sources[0]
    converter = spec.make(o)
    out_dir = Path(o.out_dir)
    paths = output_paths(spec.name, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(out_dir, spec.name)

    writer = AtomicJsonl(paths["train"])
    rejects: AtomicJsonl | None = AtomicJsonl(paths["rejects"]) if o.on_error == "skip" else None
    rejected: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    buffered: list[bytes] = []
    strata: list[Any] = []
    split = o.val_size > 0
    read = 0
    written = 0
    out_bytes = 0
    bar = _progress(src if len(sources) == 1 else None, quiet)
    last_bytes = 0
    val_writer: AtomicJsonl | None = None
    outputs: dict[str, Any] = {}

    def on_bad(err: RowError, raw: Any) -> None:
        if rejects is None:
            raise err
        rejected[err.reason] += 1
        rejects.write({**err.as_dict(), "data": raw}, default=repr)  # source rows may hold non-JSON values

    unreadable = 0  # rows the source could not even parse (they never reach the converter)

    def on_unreadable(err: RowError, raw: Any) -> None:
        nonlocal unreadable
        unreadable += 1
        on_bad(err, raw)

    def all_rows():
        nonlocal src
        for src in sources:
            left = None if o.limit is None else o.limit - read - unreadable
            if left is not None and left <= 0:
                return
            yield from src.rows(limit=left, on_bad=on_unreadable)

    try:
        index = -1
        for number, row in all_rows():
            index += 1
            read += 1
            if bar is not None and not read % 2000:
                if len(sources) == 1 and src.kind == "local" and src.format == "jsonl":
                    bar.update(src.bytes_read - last_bytes)
                    last_bytes = src.bytes_read
                else:
                    bar.update(2000)
            try:
                result = converter.convert(row, index)
            except RowProblem as exc:
                on_bad(src.error(number, exc.field, exc.reason, exc.detail), row)
                continue
            except Drop as exc:
                dropped[exc.reason] += 1
                continue
            pairs = result if isinstance(result, list) else [result]
            for out_row, stratum in pairs:
                line = dumps_line(out_row)
                if split:
                    buffered.append(line)
                    strata.append(stratum if spec.stratified else None)
                else:
                    writer.write_line(line)
                written += 1
                out_bytes += len(line)
            if (o.max_rows is not None and written >= o.max_rows) or (o.max_bytes is not None and out_bytes >= o.max_bytes):
                break
        if written == 0:
            raise UserError(
                f"{spec.name}: no rows to write from {', '.join(s.display for s in sources)} (read {read + unreadable}; "
                f"dropped {dict(dropped) or 0}; rejected {dict(rejected) or 0})"
                + (f"; bad rows are in {paths['rejects']}" if rejects is not None and rejects.rows else "")
                + (". Do the traces come from this source?" if "no_trace" in dropped else "")
            )
        if split:
            val_idx = _split_val(strata, o.val_size, o.seed)
            val_writer = AtomicJsonl(paths["val"])
            for i, line in enumerate(buffered):
                (val_writer if i in val_idx else writer).write_line(line)
            buffered.clear()
    except BaseException as exc:
        writer.abort()
        if rejects is not None:
            if isinstance(exc, UserError) and rejects.rows:
                rejects.commit()  # nothing usable, but the bad rows are worth reading
            else:
                rejects.abort()
        if val_writer is not None:
            val_writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()

    outputs["train"] = writer.commit()
    if val_writer is not None:
        outputs["val"] = val_writer.commit()
    else:
        paths["val"].unlink(missing_ok=True)  # a stale split would overlap the new training file
    if rejects is not None and rejects.rows:
        outputs["rejects"] = rejects.commit()
    else:
        if rejects is not None:
            rejects.abort()
        paths["rejects"].unlink(missing_ok=True)

    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "name": spec.name,
        "stage": spec.stage,
        "converter_version": spec.version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": o.seed,
        "options": dataclasses.asdict(o),
        "source": sources[0].fingerprint() if len(sources) == 1 else {
            "source": ", ".join(s.spec for s in sources), "kind": "multiple", "parts": [s.fingerprint() for s in sources]},
        "rows": {
            "read": read + unreadable,
            "written": written,
            "train": outputs["train"]["rows"],
            "val": outputs["val"]["rows"] if "val" in outputs else 0,
            "dropped": sum(dropped.values()),
            "rejected": sum(rejected.values()),
        },
        "dropped": dict(sorted(dropped.items())),
        "rejected": dict(sorted(rejected.items())),
        "outputs": {k: {**v, "file": Path(v["file"]).name} for k, v in outputs.items()},
        "converter": converter.report(),
        "elapsed_s": round(time.time() - started, 3),
    }
    write_json_atomic(paths["manifest"], manifest)
    registered = register(spec, out_dir, "val" in outputs) if o.register else []
    if not quiet:
        _summary(spec, manifest, paths, registered, out_dir)
    return manifest


def _summary(spec: DatasetSpec, m: dict, paths: dict[str, Path], registered: list[str], out_dir: Path) -> None:
    rows = m["rows"]
    print(f"{spec.name}: read {rows['read']} rows from {m['source']['source']}, wrote {rows['train']} to {paths['train']}"
          + (f" and {rows['val']} to {paths['val']}" if rows["val"] else ""))
    if m["dropped"]:
        print("  dropped: " + ", ".join(f"{k} {v}" for k, v in m["dropped"].items()))
    if m["rejected"]:
        print(f"  rejected {rows['rejected']} bad rows ({', '.join(f'{k} {v}' for k, v in m['rejected'].items())}): {paths['rejects']}")
    if m["converter"].get("traces_joined") is not None:
        print(f"  traces: {m['converter']['traces_joined']} joined, {m['converter']['traces_unmatched']} unmatched")
    print(f"  manifest: {paths['manifest']}  ({m['elapsed_s']:.1f} s)")
    if registered:
        print(f"  added {', '.join(registered)} to {out_dir.resolve().parent / 'dataset_info.json'}")


def list_datasets(out_dir: str = "data") -> str:
    """The ``--list`` table: name, stage, default source, prepared rows or the command to run."""
    lines = [f"{'name':<16} {'stage':<5} {'default source':<34} status"]
    for name in REGISTRY:
        spec = get_spec(name)
        paths = output_paths(name, out_dir)
        if paths["train"].exists():
            status = f"prepared: {paths['train']}"
            if paths["manifest"].exists():
                try:
                    m = json.loads(paths["manifest"].read_text(encoding="utf-8"))
                    status += f" ({m['rows']['train']} rows" + (f", {m['rows']['val']} val" if m["rows"].get("val") else "") + ")"
                except (ValueError, KeyError, TypeError):
                    status += " (manifest unreadable)"
        else:
            status = f"missing; run: {prepare_command(spec, out_dir)}"
        source = spec.default_source + (f" ({spec.hub_config})" if spec.hub_config else "") if spec.default_source else "local file only"
        lines.append(f"{name:<16} {spec.stage:<5} {source:<34} {status}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv:
        raise ConfigError("usage: llamafactory-ext prepare " + USAGE)
    if argv[0] in ("--list", "list", "-l"):
        out_dir = "data"
        for arg in argv[1:]:
            key, _, value = arg.partition("=")
            if key != "out_dir" or not value:
                raise ConfigError(f"prepare --list accepts only out_dir=DIR, got {arg!r}")
            out_dir = value
        print(list_datasets(out_dir))
        return 0
    name, rest = argv[0], argv[1:]
    if "=" in name or name.startswith("-"):
        raise ConfigError(f"the first argument must be a data set NAME (one of {', '.join(REGISTRY)}), got {name!r}")
    get_spec(name)
    options = from_argv(PrepareOptions, rest)
    run(name, options)
    return 0
