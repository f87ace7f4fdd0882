"""``baseline=``: a Δ only between runs that can be compared, and a paired test for every Δ.

The baseline is another eval output folder (``results.json`` + ``predictions.jsonl``). Before any
model is loaded (:func:`check_baseline_early`) and again on the final rows
(:func:`compare_with_baseline`) it must be the same task on the same source, with the same
items (ids and seeds) in every mode being compared; otherwise the run stops with exit status 2
saying what differs. ``baseline_partial=true`` compares on the items (and modes) both runs share,
and the report says so. The comparison itself is paired per item: Δ, the items right only in
the model (b) or only in the baseline (c), and the exact McNemar p-value (``eval.stats``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llamafactory_ext.config import UserError
from llamafactory_ext.eval.report import SCHEMA_VERSION, paired_table
from llamafactory_ext.io import read_jsonl, sha256_file


class BaselineError(UserError):
    pass


def baseline_paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    results = p / "results.json" if p.is_dir() else p
    return results, results.parent / "predictions.jsonl"


def load_baseline(path: str | Path) -> dict[str, Any]:
    results, _ = baseline_paths(path)
    if not results.is_file():
        raise BaselineError(f"baseline: file not found: {results}")
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BaselineError(f"baseline {results}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("modes"), dict):
        raise BaselineError(f"baseline {results}: not an eval results.json (no 'modes' mapping)")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise BaselineError(f"baseline {results}: schema_version {data.get('schema_version')!r}, expected {SCHEMA_VERSION}; "
                            "evaluate the baseline again with this version")
    return data


def source_record(source: str | None) -> dict[str, Any]:
    """What results.json records of the source: the name given and, for a local file, its sha256."""
    record: dict[str, Any] = {"source": source}
    if source and Path(source).is_file():
        record["sha256"] = sha256_file(Path(source))
    return record


def _same_source(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.get("sha256") and b.get("sha256"):
        return a["sha256"] == b["sha256"]
    return (a.get("source") or None) == (b.get("source") or None)


def _items_key(record: dict[str, Any]) -> tuple:
    return record.get("ids_sha256"), sorted(map(str, record.get("seeds") or [None]))


def check_baseline_early(r: Any, items: dict[str, Any] | None = None) -> dict[str, Any]:
    """Task, source, modes and (given this run's ``items`` record of results.json) items and seeds
    of the baseline, checked before generating anything."""
    base = load_baseline(r.cfg.baseline)
    problems = []
    if base.get("task") != r.task.name:
        problems.append(f"task {base.get('task')!r} (this run: {r.task.name!r})")
    if not _same_source(base.get("source") or {}, source_record(r.cfg.source)):
        problems.append(f"source {(base.get('source') or {}).get('source')!r} (this run: {r.cfg.source!r}, or its content differs)")
    theirs_split = (base.get("config") or {}).get("split")
    from_file = bool(r.cfg.source) and Path(r.cfg.source).is_file()  # a file is one split whatever split= says
    if hasattr(r.cfg, "split") and not from_file and theirs_split not in (None, r.cfg.split):
        # a Hub id or a folder of {split}.jsonl: row-number ids name other questions in another split
        problems.append(f"split {theirs_split!r} (this run: {r.cfg.split!r})")
    if problems:
        raise BaselineError(f"baseline {r.cfg.baseline} cannot be compared: it has {'; '.join(problems)}")
    missing = [m for m in r.modes if m not in base["modes"]]
    if missing and not r.cfg.baseline_partial:
        raise BaselineError(f"baseline {r.cfg.baseline} has no mode {', '.join(missing)} (it has {', '.join(base['modes'])}); "
                            "evaluate it in that mode too, or pass baseline_partial=true to compare only the modes both have")
    theirs = base.get("items") or {}
    if items is not None and not r.cfg.baseline_partial and _items_key(theirs) != _items_key(items):
        raise BaselineError(f"baseline {r.cfg.baseline} has other items: {theirs.get('count')} items, seeds {theirs.get('seeds')} there, "
                            f"{items['count']} items, seeds {items['seeds']} here (limit or seeds differ?); "
                            "pass baseline_partial=true to compare the shared ones")
    return base


def compare_with_baseline(r: Any, results: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(baseline results, comparison.json) from both runs' predictions, paired per item."""
    base = check_baseline_early(r)
    _, pred_path = baseline_paths(r.cfg.baseline)
    if not pred_path.is_file():
        raise BaselineError(f"baseline: {pred_path} is missing: the paired test needs the baseline's per-item predictions")
    base_rows = read_jsonl(pred_path)
    modes = [m for m in results["modes"] if m in base["modes"]]
    partial = len(modes) < len(results["modes"])
    compared = 0
    for mode in modes:
        ours = {(str(x["id"]), x.get("seed")) for x in rows if x["mode"] == mode}
        theirs = {(str(x["id"]), x.get("seed")) for x in base_rows if x["mode"] == mode}
        if ours != theirs:
            if not r.cfg.baseline_partial:
                raise BaselineError(
                    f"baseline {r.cfg.baseline} has other items in mode {mode}: {len(theirs)} items there, {len(ours)} here, "
                    f"{len(ours & theirs)} shared (limit or seeds differ?); pass baseline_partial=true to compare the shared ones")
            partial = True
        compared = max(compared, len(ours & theirs))
    comparison = {"modes": {mode: paired_table(base_rows, mode, rows, mode) for mode in modes},
                  "partial": partial, "items_compared": compared, "baseline": str(r.cfg.baseline)}
    return base, comparison
