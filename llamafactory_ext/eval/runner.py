"""One evaluation run: resolve the config (``eval/resolve.py``), then the task's kind decides the
loop. A suite task (``lm_eval``) runs its own; an item task runs ours: load the items, re-score
``predictions=`` or generate what is missing (``eval/predict.py``), the probes (``eval/probes.py``),
then the results (``results.json`` / ``.md`` / PNGs through ``eval/report.py``, ``comparison.json``
with ``baseline=``; ``results.json`` embeds the run's ``provenance``). A run that evaluates fewer
modes than the folder's ``results.json`` holds is refused before anything runs (its figures would
be replaced) unless ``overwrite=true``. The command (``llamafactory-ext eval``) is ``eval/command.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from typing import Any

from llamafactory_ext.eval.baseline import (
    check_baseline_early,
    compare_with_baseline,
    content_digest,
    item_digest,
    protocol_record,
    source_record,
)
from llamafactory_ext.eval.options import EvalConfig, EvalError
from llamafactory_ext.eval.predict import PREDICTIONS, engine_factory, predictions, record_rescored, rescored_rows
from llamafactory_ext.eval.probes import faithfulness_probe, force_answers
from llamafactory_ext.eval.report import (
    SCHEMA_VERSION,
    degenerate_warnings,
    package_versions,
    paired_table,
    summarize,
    with_seeds,
    write_outputs,
)
from llamafactory_ext.eval.resolve import EvalRun, load_items, provenance, recipe_dataset_files, resolve, settings
from llamafactory_ext.eval.tasks import SuiteTask
from llamafactory_ext.io import FolderLock
from llamafactory_ext.thinking import NOTHINK, THINK

__all__ = ["EvalConfig", "EvalRun", "resolve", "run", "run_resolved", "settings"]


def run(cfg: EvalConfig) -> dict[str, Any]:
    """Run one evaluation (resuming what is already in output_dir); returns the results.json dict."""
    return run_resolved(resolve(cfg))


def run_resolved(r: EvalRun) -> dict[str, Any]:
    if isinstance(r.task, SuiteTask):  # a suite with its own loop: it writes its outputs itself
        return r.task.run(r)
    items = load_items(r)
    if r.cfg.predictions:
        return rescore(r, items)
    return run_items(r, items)


def run_items(r: EvalRun, items: list[Any]) -> dict[str, Any]:
    """Generate what is missing, run the probes asked for, write the results."""
    from llamafactory_ext.eval.engine import check_model_path

    cfg = r.cfg
    check_model_path(cfg.model_name_or_path)
    if cfg.adapter_name_or_path:
        check_model_path(cfg.adapter_name_or_path, "adapter_name_or_path")
    if cfg.baseline:
        check_baseline_early(r, items_record(r, items))
    extra = contamination_warnings(r, items)
    engine = engine_factory(cfg)
    with FolderLock(r.output_dir):
        check_modes_kept(r)
        rows = predictions(r, items, engine)
        if cfg.cutoff == "force_answer" and THINK in r.modes:
            rows = force_answers(r, items, rows, engine)
        modes_stats = collect(r, items, rows)
        if cfg.faithfulness and THINK in r.modes:
            modes_stats[THINK]["faithfulness"] = faithfulness_probe(r, items, rows, engine())
        elif cfg.faithfulness:
            extra.append("faithfulness=true needs the think mode: probe skipped")
        return finish(r, items, rows, extra, modes_stats)


def rescore(r: EvalRun, items: list[Any]) -> dict[str, Any]:
    """predictions=FILE: re-extract and re-score {id, mode, output[, seed, finished]} rows, no model."""
    rows, src = rescored_rows(r, items)
    with FolderLock(r.output_dir):
        check_modes_kept(r)
        record_rescored(r, rows, src)
        return finish(r, items, rows, [f"re-scored from {src}"])


def check_modes_kept(r: EvalRun) -> None:
    """``thinking=off`` into a folder whose results.json holds both modes would rewrite it with one:
    refused, naming the modes, unless ``overwrite=true`` (the rows of every mode stay in predictions.jsonl)."""
    path = r.output_dir / "results.json"
    try:
        held = json.loads(path.read_text(encoding="utf-8")).get("modes") or {}
    except (OSError, ValueError, AttributeError):
        return
    gone = [m for m in held if m not in r.modes]
    if gone and not r.cfg.overwrite:
        raise EvalError(f"{path} holds mode(s) {', '.join(held)} but this run evaluates {', '.join(r.modes)} only: its figures "
                        f"for {', '.join(gone)} would be lost; evaluate every mode again (thinking=both: rows already "
                        "generated are reused), write elsewhere (output_dir=), or pass overwrite=true to replace them")


def contamination_warnings(r: EvalRun, items: list[Any]) -> list[str]:
    """With from_recipe: do the recipe's prepared training files hold evaluation questions?"""
    from llamafactory_ext.data.overlap import scan

    files = recipe_dataset_files(r.recipe) if r.recipe else []
    if not files:
        return []
    task = r.items_task
    report = scan(files, [task.overlap_item(it) for it in items], task=task.name, categories=task.categories)
    if not report.matched:
        return []
    source = f" source={r.cfg.source}" if r.cfg.source else ""
    return [(f"{report.matched} of {len(items)} evaluation items appear in the recipe's training data "
            f"({', '.join(f.name for f in files)}); details: llamafactory-ext contamination {' '.join(map(str, files))} "
            f"task={task.name}{source}")]


# ----------------------------------------------------------------------------- results


def ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()


def collect(r: EvalRun, items: list[Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """results['modes'] from the final rows (one row per (id, mode, seed); all seeds pooled)."""
    wanted = {r.items_task.item_id(it) for it in items}
    out: dict[str, Any] = {}
    for mode in r.modes:
        mode_rows = [x for x in rows if x["mode"] == mode and str(x["id"]) in wanted]
        out[mode] = with_seeds(summarize(mode_rows, len(items) * len(r.seeds), mode), mode_rows)
    return out


def items_record(r: EvalRun, items: list[Any]) -> dict[str, Any]:
    """results.json ``items``: how many (and the limit asked for), which (digest of the ids), what they
    hold (digest of every item's content) and the seeds."""
    task = r.items_task
    ids = [task.item_id(it) for it in items]
    return {"count": len(ids), "limit": r.cfg.limit, "ids_sha256": ids_digest(ids),
            "content_sha256": content_digest({task.item_id(it): item_digest(it) for it in items}), "seeds": r.seeds}


def results_dict(r: EvalRun, items: list[Any], rows: list[dict[str, Any]], modes_stats: dict[str, Any],
                 warnings: list[str]) -> dict[str, Any]:
    cfg = r.cfg
    out = {
        "schema_version": SCHEMA_VERSION,
        "task": r.task.name,
        "source": source_record(cfg.source),
        "items": items_record(r, items),
        "protocol": protocol_record(r),
        "versions": package_versions(),
        "modes": modes_stats,
        "model": {"model_name_or_path": cfg.model_name_or_path, "adapter_name_or_path": cfg.adapter_name_or_path,
                  "template": r.template, "backend": cfg.backend},
        "config": dataclasses.asdict(cfg) | {"template": r.template, "system": r.system, "modes": list(r.modes)},
        "warnings": warnings,
        "baseline": str(cfg.baseline) if cfg.baseline else None,
        "predictions_file": PREDICTIONS,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "provenance": provenance(r).to_json(),  # what the rows were made from (also provenance.json)
    }
    if THINK in modes_stats and NOTHINK in modes_stats:
        out["think_vs_nothink"] = paired_table(rows, NOTHINK, rows, THINK)
    warnings.extend(degenerate_warnings(modes_stats))  # the same list finish() prints
    return out


def finish(r: EvalRun, items: list[Any], rows: list[dict[str, Any]], extra_warnings: list[str],
           modes_stats: dict[str, Any] | None = None) -> dict[str, Any]:
    modes_stats = modes_stats or collect(r, items, rows)
    warnings = list(r.warnings) + extra_warnings
    for mode, s in modes_stats.items():
        if s["missing"]:
            warnings.append(f"mode {mode}: {s['missing']} items have no prediction (not counted in the accuracy)")
    results = results_dict(r, items, rows, modes_stats, warnings)
    baseline, comparison = compare_with_baseline(r, results, rows) if r.cfg.baseline else (None, None)
    if comparison and comparison["partial"]:
        warnings.append(f"compared with the baseline on the {comparison['items_compared']} items both runs share (baseline_partial=true)")
    write_outputs(r.output_dir, results, baseline, comparison, r.task.categories)
    for w in warnings:
        print(f"eval: warning: {w}", file=sys.stderr)
    return results
