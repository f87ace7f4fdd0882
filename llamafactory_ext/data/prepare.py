"""Convert a source data set into LLaMA-Factory data.

    llamafactory-ext prepare NAME [CONFIG.yaml] [source=HUB_ID_OR_FILE] [limit=N] [out_dir=data]
                             [seed=42] [on_error=fail|skip] [val_size=0.1] [NAME's own keys ...]
    llamafactory-ext prepare --list [out_dir=data]

writes, in ``out_dir``:

- ``NAME.jsonl``            the rows LLaMA-Factory trains on (``{"messages": [...]}``, or
                            ``{"text": ...}`` for ``stage: pt`` data)
- ``NAME_val.jsonl``        with ``val_size``: a seeded validation split, stratified by category
                            (else answer letter), drawn by question: no question on both sides
- ``NAME.manifest.json``    source, Hub revision or sha256 of the local file, the content
                            identity of every file read (``inputs``: each source shard, the
                            traces), rows read / written / dropped / rejected per reason,
                            converter version, seed (``data.manifest``; ``prepared_with`` says
                            whether it is still current)
- ``NAME.rejects.jsonl``    with ``on_error=skip``: each bad row (source rows and side files
                            such as a traces file) with file, row, field, reason
- ``dataset_info.json``     the entries ``NAME`` (and ``NAME_val``), added when missing, so
                            ``dataset_dir=OUT_DIR`` works at once (``dataset_info=PATH`` names
                            another file to register in; ``register=false``: none)

Every file is written atomically (temp file + rename); one ``prepare NAME`` at a time per
``out_dir``, and ``dataset_info.json`` is read, merged and replaced under a lock, so two runs into
one folder keep both entries. ``on_error=fail`` (default) stops at the
first malformed row with an error naming file, row (1-based line for JSONL) and field. ``--list``
shows each registered data set, its default source, its own keys and whether it is prepared.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llamafactory_ext.config import ConfigError, UserError, describe, from_argv
from llamafactory_ext.data import REGISTRY, get_spec
from llamafactory_ext.data.fields import Drop, RowError, RowProblem
from llamafactory_ext.data.manifest import (  # noqa: F401 - output_paths, prepared_with: used by study / callers
    build_manifest,
    options_class,
    output_paths,
    prepared_with,
    source_paths,
)
from llamafactory_ext.data.sources import Source, open_source
from llamafactory_ext.data.spec import Context, DatasetSpec, PrepareOptions
from llamafactory_ext.io import (
    AtomicJsonl,
    FolderLock,
    atomic_write_json,
    dumps_line,
    remove_stale_temp_files,
)

USAGE = "NAME [CONFIG.yaml] [key=value ...]   |   --list [out_dir=data]"


def options_help() -> str:
    lines = [describe(PrepareOptions), "", "data sets (and their own keys):"]
    for name in REGISTRY:
        spec = get_spec(name)
        own = [f.name for f in dataclasses.fields(spec.options)]
        lines.append(f"  {name:<24} {spec.summary}" + (f"  [keys: {', '.join(own)}]" if own else ""))
    return "\n".join(lines)


def prepare_command(spec: DatasetSpec, out_dir: str = "data") -> str:
    """The command that creates ``spec``'s file (shown by ``--list`` and the docs)."""
    cmd = f"llamafactory-ext prepare {spec.name}"
    if spec.default_source is None:
        cmd += " source=PATH"
    for key in spec.sample_options:
        cmd += f" {key}=PATH"
    if out_dir != "data":
        cmd += f" out_dir={out_dir}"
    return cmd


# ---------------------------------------------------------------------------------------------
# the validation split
# ---------------------------------------------------------------------------------------------
def split_val(strata: list[Any], groups: list[Any], val_size: float, seed: int) -> set[int]:
    """Row indices of a seeded validation split of about ``val_size`` of the groups (questions),
    stratified by each group's stratum with a largest-remainder allocation. All rows of one group
    land on the same side, so no question is in both files."""
    members: dict[Any, list[int]] = defaultdict(list)
    first_stratum: dict[Any, Any] = {}
    for i, (stratum, group) in enumerate(zip(strata, groups)):
        key = group if group is not None else ("row", i)
        members[key].append(i)
        first_stratum.setdefault(key, stratum)
    by_stratum: dict[Any, list[Any]] = defaultdict(list)
    for key, stratum in first_stratum.items():
        by_stratum[stratum].append(key)
    total = round(len(members) * val_size)
    if total == 0:
        return set()
    order = sorted(by_stratum, key=lambda k: (k is None, str(k)))
    quotas = {k: len(by_stratum[k]) * val_size for k in order}
    alloc = {k: int(q) for k, q in quotas.items()}
    for k in sorted(order, key=lambda k: (-(quotas[k] - alloc[k]), str(k)))[: total - sum(alloc.values())]:
        alloc[k] += 1
    rng = random.Random(seed)
    chosen: set[int] = set()
    for k in order:
        keys = by_stratum[k][:]
        rng.shuffle(keys)
        for key in keys[: alloc[k]]:
            chosen.update(members[key])
    return chosen


# ---------------------------------------------------------------------------------------------
# dataset_info.json
# ---------------------------------------------------------------------------------------------
def register(spec: DatasetSpec, paths: dict[str, Path], with_val: bool, info_file: str | None) -> tuple[Path, list[str]]:
    """Add missing entries for ``spec`` to ``info_file`` (default: beside the outputs); file names
    are relative to that file's folder. The read-modify-write holds a lock beside the file (two
    ``prepare`` runs into one folder keep both entries) and the file is replaced atomically.
    Returns (the file, the entries added)."""
    info_path = Path(info_file) if info_file else paths["train"].parent / "dataset_info.json"
    base = info_path.resolve().parent
    wanted = {spec.name: paths["train"]}
    if with_val:
        wanted[f"{spec.name}_val"] = paths["val"]
    with FolderLock(info_path.parent, "dataset_info folder", name=f".{info_path.name}.lock", label=info_path, wait=120, remove=True):
        info = _read_info(info_path)
        changed = []
        for key, path in wanted.items():
            try:
                rel = str(path.resolve().relative_to(base))
            except ValueError:
                rel = str(path.resolve())
            if key not in info:
                info[key] = spec.dataset_info_entry(rel)
                changed.append(key)
            elif not isinstance(info[key], dict):
                raise UserError(f"{info_path}: entry {key!r} is {type(info[key]).__name__} {str(info[key])[:60]!r}, not a mapping "
                                "(file_name, formatting, columns...); fix or remove it, or pass register=false")
            elif info[key].get("file_name") != rel:
                print(f"warning: {info_path}: entry {key!r} points at {info[key].get('file_name')!r}, "
                      f"not at the file just written ({rel!r})", file=sys.stderr)
        if changed:
            atomic_write_json(info_path, info)
    return info_path, changed


def _read_info(info_path: Path) -> dict[str, Any]:
    if not info_path.exists():
        return {}
    try:
        info = json.loads(info_path.read_text(encoding="utf-8-sig"))
    except ValueError as exc:
        raise UserError(f"{info_path}: not valid JSON ({exc}); fix it or pass register=false") from None
    if not isinstance(info, dict):
        raise UserError(f"{info_path}: not a JSON object of data set entries; fix it or pass register=false")
    return info


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------
class Rejects:
    """Bad rows: raised at once (``on_error=fail``) or counted and kept in ``NAME.rejects.jsonl``."""

    def __init__(self, path: Path, on_error: str) -> None:
        self.path = path
        self.skip = on_error == "skip"
        self.counts: Counter[str] = Counter()
        self.by_file: Counter[str] = Counter()
        self._writer: AtomicJsonl | None = None

    def on_bad(self, err: RowError, raw: Any) -> None:
        if not self.skip:
            raise err
        if self._writer is None:
            self._writer = AtomicJsonl(self.path)
        self.counts[err.reason] += 1
        self.by_file[err.file] += 1
        self._writer.write({**err.as_dict(), "data": raw}, default=repr)  # rows may hold non-JSON values

    def finish(self, keep: bool) -> dict[str, Any] | None:
        if self._writer is not None and keep:
            return self._writer.commit()
        if self._writer is not None:
            self._writer.abort()
        self.path.unlink(missing_ok=True)
        return None


@dataclasses.dataclass
class Tally:
    read: int = 0
    written: int = 0
    out_bytes: int = 0
    dropped: Counter = dataclasses.field(default_factory=Counter)


def _open_sources(spec: DatasetSpec, o: Any) -> list[Source]:
    return [
        open_source(w, hub_config=o.hub_config if o.hub_config is not None else spec.hub_config,
                    split=o.split or spec.hub_split, streaming=o.streaming if o.streaming is not None else spec.streaming)
        for w in source_paths(spec, o)
    ]


def _rows(sources: list[Source], limit: int | None, rejects: Rejects, tally: Tally) -> Iterator[tuple[Source, int, dict]]:
    """Every source row in turn; unreadable rows go to ``rejects`` (and count towards ``limit``)."""
    def unreadable(err: RowError, raw: Any) -> None:
        tally.read += 1
        rejects.on_bad(err, raw)

    for src in sources:
        left = None if limit is None else limit - tally.read
        if left is not None and left <= 0:
            return
        for number, row in src.rows(limit=left, on_bad=unreadable):
            tally.read += 1
            yield src, number, row


def _progress(sources: list[Source], quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(unit=" rows", desc=f"prepare {sources[0].display if len(sources) == 1 else 'sources'}",
                file=sys.stderr, disable=None, mininterval=1.0)


def _convert(spec: DatasetSpec, o: Any, sources: list[Source], converter: Any, rejects: Rejects,
             writer: AtomicJsonl, quiet: bool) -> tuple[Tally, list[tuple[bytes, Any, Any]]]:
    """Run the converter over every row; rows go straight to ``writer``, or are buffered (with
    stratum and group) when a validation split must be drawn after all rows are seen."""
    tally = Tally()
    buffered: list[tuple[bytes, Any, Any]] = []
    split = o.val_size > 0
    max_rows, max_bytes = getattr(o, "max_rows", None), getattr(o, "max_bytes", None)
    bar = _progress(sources, quiet)
    try:
        for src, number, row in _rows(sources, o.limit, rejects, tally):
            if bar is not None and not tally.read % 2000:
                bar.update(2000)
            try:
                result = converter.convert(row, tally.read - 1)
            except RowProblem as exc:
                rejects.on_bad(src.error(number, exc.field, exc.reason, exc.detail), row)
                continue
            except Drop as exc:
                tally.dropped[exc.reason] += 1
                continue
            for out in result if isinstance(result, list) else [result]:
                line = dumps_line(out.row)
                if split:
                    buffered.append((line, out.stratum if spec.stratified else None, out.group))
                else:
                    writer.write_line(line)
                tally.written += 1
                tally.out_bytes += len(line)
            if (max_rows is not None and tally.written >= max_rows) or (max_bytes is not None and tally.out_bytes >= max_bytes):
                break
    finally:
        if bar is not None:
            bar.close()
    return tally, buffered


def _nothing_written(spec: DatasetSpec, sources: list[Source], tally: Tally, rejects: Rejects) -> UserError:
    return UserError(
        f"{spec.name}: no rows to write from {', '.join(s.display for s in sources)} (read {tally.read}; "
        f"dropped {dict(tally.dropped) or 0}; rejected {dict(rejects.counts) or 0})"
        + (f"; bad rows are in {rejects.path}" if rejects.counts else "")
        + (". Do the traces come from this source?" if "no_trace" in tally.dropped else "")
    )


def run(name: str, options: Any = None, quiet: bool = False) -> dict[str, Any]:
    """Prepare data set ``name``; returns the manifest (also written to NAME.manifest.json). One
    ``prepare NAME`` at a time per ``out_dir`` (a second one fails at once, naming the first)."""
    spec = get_spec(name)
    o = options if options is not None else options_class(spec)()
    if o.val_size and spec.stage != "sft":
        raise ConfigError(f"val_size splits SFT data; {spec.name} is stage: {spec.stage} data")
    sources = _open_sources(spec, o)  # a missing source is named before out_dir is created
    with FolderLock(o.out_dir, "out_dir", name=f".{spec.name}.prepare.lock", label=f"{o.out_dir} (prepare {spec.name})", remove=True):
        return _run(spec, o, sources, quiet)


def _run(spec: DatasetSpec, o: Any, sources: list[Source], quiet: bool) -> dict[str, Any]:
    started = time.time()
    paths = output_paths(spec.name, o.out_dir)
    remove_stale_temp_files(Path(o.out_dir), spec.name)
    rejects = Rejects(paths["rejects"], o.on_error)
    writer = AtomicJsonl(paths["train"])
    val_writer: AtomicJsonl | None = None
    try:
        converter = spec.make(o, Context(on_bad=rejects.on_bad))
        tally, buffered = _convert(spec, o, sources, converter, rejects, writer, quiet)
        if tally.written == 0:
            raise _nothing_written(spec, sources, tally, rejects)
        if o.val_size > 0:
            val_idx = split_val([b[1] for b in buffered], [b[2] for b in buffered], o.val_size, o.seed)
            val_writer = AtomicJsonl(paths["val"])
            for i, (line, _, _) in enumerate(buffered):
                (val_writer if i in val_idx else writer).write_line(line)
    except BaseException as exc:
        writer.abort()
        if val_writer is not None:
            val_writer.abort()
        rejects.finish(keep=isinstance(exc, UserError))  # nothing usable, but the bad rows are worth reading
        raise
    outputs = {"train": writer.commit()}
    if val_writer is not None:
        outputs["val"] = val_writer.commit()
    else:
        paths["val"].unlink(missing_ok=True)  # a stale split would overlap the new training file
    kept = rejects.finish(keep=True)
    if kept:
        outputs["rejects"] = kept
    manifest = build_manifest(spec, o, sources, tally, rejects, outputs, converter.report(), started)
    atomic_write_json(paths["manifest"], manifest)
    info_path, registered = register(spec, paths, "val" in outputs, o.dataset_info) if o.register else (None, [])
    if not quiet:
        _summary(spec, manifest, paths, info_path, registered)
    return manifest


def _summary(spec: DatasetSpec, m: dict, paths: dict[str, Path], info_path: Path | None, registered: list[str]) -> None:
    rows = m["rows"]
    print(f"{spec.name}: read {rows['read']} rows from {m['source']['source']}, wrote {rows['train']} to {paths['train']}"
          + (f" and {rows['val']} to {paths['val']}" if rows["val"] else ""))
    if m["dropped"]:
        print("  dropped: " + ", ".join(f"{k} {v}" for k, v in m["dropped"].items()))
    if m["rejected"]:
        files = ", ".join(f"{Path(k).name} {v}" for k, v in m["rejected_by_file"].items())
        print(f"  rejected {rows['rejected']} bad rows ({', '.join(f'{k} {v}' for k, v in m['rejected'].items())}; "
              f"by file: {files}): {paths['rejects']}")
    for line in m["converter"].get("summary", []):
        print(f"  {line}")
    print(f"  manifest: {paths['manifest']}  ({m['elapsed_s']:.1f} s)")
    if registered:
        print(f"  added {', '.join(registered)} to {info_path}")


def list_datasets(out_dir: str = "data") -> str:
    """The ``--list`` table: name, stage, default source, prepared rows or the command to run."""
    lines = [f"{'name':<26} {'stage':<5} {'default source':<34} status"]
    for name in REGISTRY:
        spec = get_spec(name)
        paths = output_paths(name, out_dir)
        if paths["train"].exists():
            status = f"prepared: {paths['train']}"
            try:
                m = json.loads(paths["manifest"].read_text(encoding="utf-8"))
                status += f" ({m['rows']['train']} rows" + (f", {m['rows']['val']} val" if m["rows"].get("val") else "") + ")"
            except (OSError, ValueError, KeyError, TypeError):
                status += " (no readable manifest)"
        else:
            status = f"missing; run: {prepare_command(spec, out_dir)}"
        source = spec.default_source + (f" ({spec.hub_config})" if spec.hub_config else "") if spec.default_source else "local file only"
        lines.append(f"{name:<26} {spec.stage:<5} {source:<34} {status}")
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
    spec = get_spec(name)
    if rest and rest[0] in ("-h", "--help"):
        print(describe(options_class(spec)))
        return 0
    run(name, from_argv(options_class(spec), rest))
    return 0
