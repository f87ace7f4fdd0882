"""What a sweep reports, rewritten after every trial:

- ``summary.md``, for people: trial | changed keys | trainable | final loss | accuracy per mode [95 % CI] |
  Δ per mode (when the evaluator had a baseline) | time, every figure with :data:`DECIMALS` decimals;
- ``summary.json``: everything (each trial's status, keys, every evaluator figure per mode and category,
  training figures, peak memory, errors, what was logged to TensorBoard / W&B, the provenance record
  of what it was made from, and for a stale trial what changed since);
- ``summary.csv`` for spreadsheets, and one PNG per metric against the swept key.

Each trial's evaluation is read by :func:`read_eval`, the one place that opens ``results.json`` /
``comparison.json`` (to be swapped for ``eval.results``' typed reader).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from llamafactory_ext import provenance as pv
from llamafactory_ext import tracking
from llamafactory_ext.io import atomic_write_json, atomic_write_text, save_figure
from llamafactory_ext.sweep.config import SweepConfig, show
from llamafactory_ext.sweep.inputs import stale_changes
from llamafactory_ext.sweep.trials import Trial, read_state, recorded_status, train_metrics

DECIMALS = 2
TRACKED = "tracking.json"  # in the trial folder: what tracking.log_results logged (written once per trial)


def read_eval(trial_dir: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(``eval/results.json``, ``eval/comparison.json``) of a trial, each None when absent or unreadable."""
    out: list[dict[str, Any] | None] = []
    for name in ("results.json", "comparison.json"):
        try:
            out.append(json.loads((Path(trial_dir) / "eval" / name).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            out.append(None)
    return out[0], out[1]


def eval_metrics(results: dict) -> dict[str, float]:
    """``{"<metric>/<mode>": value}`` from an evaluator ``results.json``: accuracy, cut-off and format
    figures, token statistics (counts such as ``correct`` and ``total`` are not metrics)."""
    out: dict[str, float] = {}

    def add(block: dict, mode: str, prefix: str = "") -> None:
        for k, v in block.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("correct", "total", "missing"):
                out[f"{prefix}{k}/{mode}"] = float(v)

    for mode, block in (results.get("modes") or {}).items():
        add(block, mode)
        for nested in ("format", "tokens", "completed"):
            add(block.get(nested) or {}, mode, f"{nested}.")
    return out


def _eval_row(results: dict | None, comparison: dict | None) -> dict[str, Any]:
    """The evaluator's figures of one trial, flat: metrics, 95 % intervals, Δ, per-category accuracy."""
    if results is None:
        return {}
    row: dict[str, Any] = dict(eval_metrics(results))
    for mode, block in (results.get("modes") or {}).items():
        low, high = (block.get("ci95") or [None, None])[:2]
        row[f"accuracy_ci_low/{mode}"], row[f"accuracy_ci_high/{mode}"] = low, high
    for mode, table in ((comparison or {}).get("modes") or {}).items():
        row[f"delta_pp/{mode}"] = ((table or {}).get("total") or {}).get("delta")
    return row


def collect_rows(trials: list[Trial]) -> list[dict[str, Any]]:
    rows = []
    for t in trials:
        d = t.path()
        state = read_state(d) or {"status": "pending"}
        stale = stale_changes(t)
        row: dict[str, Any] = {"trial": t.name, "status": "stale" if stale else recorded_status(t), **t.params}
        metrics = train_metrics(d) if d.is_dir() else {}
        for key in ("trainable_params", "final_loss", "train_runtime_s", "peak_vram_gb"):
            row[key] = metrics.get(key)
        row["peak_rss_gb"] = state.get("peak_rss_gb")
        walls = [state.get(k) for k in ("train_wall_s", "eval_wall_s") if isinstance(state.get(k), (int, float))]
        row["time_s"] = sum(walls) if walls else None
        row.update(_eval_row(*read_eval(d)))
        if state.get("status") == "failed":
            row["error"] = f"{state.get('phase')}: exit {state.get('exit_code')}"
        if stale:
            row["stale"] = stale  # what changed since it ran: its figures are of the old inputs
        rows.append(row)
    return rows


def _columns(rows: list[dict], params: list[str]) -> list[str]:
    fixed = ["trial", "status", *params, "trainable_params", "final_loss", "train_runtime_s", "peak_vram_gb",
             "peak_rss_gb", "time_s"]
    # accuracy first (the headline), then the other metrics; each metric's modes side by side
    metric_cols = sorted({k for r in rows for k in r if "/" in k}, key=lambda k: (not k.startswith("accuracy/"), k))
    extra = ["error"] if any("error" in r for r in rows) else []
    return fixed + metric_cols + extra


def _modes(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k.split("/", 1)[1] for r in rows for k in r if k.startswith("accuracy/")))


def _num(v: Any, scale: float = 1.0, sign: bool = False) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return "—"
    return f"{v * scale:{'+' if sign else ''}.{DECIMALS}f}"


def _accuracy(r: dict, mode: str) -> str:
    acc = r.get(f"accuracy/{mode}")
    if acc is None:
        return "—"
    low, high = r.get(f"accuracy_ci_low/{mode}"), r.get(f"accuracy_ci_high/{mode}")
    interval = f" [{_num(low, 100)}, {_num(high, 100)}]" if low is not None and high is not None else ""
    return _num(acc, 100) + interval


def markdown(rows: list[dict], params: list[dict[str, Any]], cfg: SweepConfig) -> str:
    """summary.md: one row per trial, one number format (``DECIMALS`` decimals; counts as integers)."""
    modes = _modes(rows)
    deltas = [m for m in modes if any(r.get(f"delta_pp/{m}") is not None for r in rows)]
    head = ["trial", "changed keys", "trainable", "final loss", *(f"{m} % [95 % CI]" for m in modes),
            *(f"Δ {m} (pp)" for m in deltas), "time (min)"]
    lines = [f"# Sweep over {', '.join(cfg.grid)} ({cfg.base})", "",
             (f"Accuracy in % with its 95 % Wilson interval; Δ in percentage points against the evaluator's baseline; "
              f"final loss as last logged; time = training + evaluation. Every figure to {DECIMALS} decimals."), "",
             "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for r, changed in zip(rows, params):
        detail = "; ".join(r["stale"]) if r.get("stale") else r.get("error")
        name = r["trial"] if r["status"] == "done" else f"{r['trial']} ({r['status']}{': ' + detail if detail else ''})"
        trainable = f"{r['trainable_params']:,}" if isinstance(r.get("trainable_params"), int) else "—"
        cells = [name, show(changed), trainable, _num(r.get("final_loss")),
                 *(_accuracy(r, m) for m in modes), *(_num(r.get(f"delta_pp/{m}"), sign=True) for m in deltas),
                 _num(r.get("time_s"), 1 / 60)]
        lines.append("| " + " | ".join(cells) + " |")
    done = sum(r["status"] == "done" for r in rows)
    failed = sum(r["status"] == "failed" for r in rows)
    stale = sum(r["status"] == "stale" for r in rows)
    lines += ["", (f"{done} done, {failed} failed, {stale} stale, {len(rows) - done - failed - stale} not run, of {len(rows)} trials. "
                   "Every other figure (per category, format, tokens, memory, errors): summary.json; summary.csv for spreadsheets.")]
    if stale:
        lines.append("Stale trials were made from other inputs than today's (what changed is in their row): their figures are "
                     "of the old inputs; re-run with `overwrite=true` to redo them.")
    if failed:
        lines.append("Failed trials keep their exit code and log tail in `<trial>/trial.json`; re-run with `retry_failed=true`.")
    return "\n".join(lines) + "\n"


def write_summary(out_dir: Path, trials: list[Trial], cfg: SweepConfig) -> list[dict]:
    """summary.md, summary.json, summary.csv and one plot per metric, from the trial folders as they are now."""
    out_dir.mkdir(parents=True, exist_ok=True)
    params = list(trials[0].params) if trials else []
    rows = collect_rows(trials)
    cols = _columns(rows, params)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})
    atomic_write_text(out_dir / "summary.csv", buf.getvalue())
    atomic_write_text(out_dir / "summary.md", markdown(rows, [t.params for t in trials], cfg))
    trials_json = [{**r, "params": t.params, "dir": str(t.path()), "eval": _eval_json(t), "tracking": _tracked(t),
                    "provenance": recorded_provenance(t)} for r, t in zip(rows, trials)]
    atomic_write_json(out_dir / "summary.json", {"base": cfg.base, "grid": cfg.grid, "derived": cfg.derived,
                                                  "decimals_in_summary_md": DECIMALS, "trials": trials_json})
    write_plots(out_dir, rows, cfg)
    return rows


def _eval_json(trial: Trial) -> dict[str, Any] | None:
    """Every evaluator figure of a trial (per mode, category, macro-category, format, tokens) and its Δ table."""
    results, comparison = read_eval(trial.path())
    return None if results is None else {"modes": results.get("modes"), "comparison": comparison}


def recorded_provenance(trial: Trial) -> dict[str, Any] | None:
    """The trial's ``provenance.json``: what its outputs were made from (None before it ran)."""
    prov = pv.Provenance.read(trial.path())
    return prov.to_json() if prov is not None else None


def _tracked(trial: Trial) -> dict[str, Any] | None:
    try:
        return json.loads((trial.path() / TRACKED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def track_trial(trial: Trial, group: str | None = None) -> dict[str, Any] | None:
    """Log a finished trial's evaluation and training figures (:mod:`llamafactory_ext.tracking`) into its
    training run, once: the record goes to ``<trial>/tracking.json``. None when there is nothing to log."""
    d = trial.path()
    results, comparison = read_eval(d)
    if results is None or (d / TRACKED).is_file():
        return None
    metrics = train_metrics(d)
    try:
        step = int(json.loads((d / "trainer_state.json").read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        step = 0  # no training here (an evaluation-only trial)
    config = trial.train_config
    record = tracking.log_results(results, d, config.get("report_to"), str(config.get("run_name") or trial.name), step,
                                  {k: metrics.get(k) for k in ("trainable_params", "final_loss")}, comparison, group)
    atomic_write_json(d / TRACKED, record)
    return record


def write_plots(out_dir: Path, rows: list[dict], cfg: SweepConfig) -> list[Path]:
    """One PNG per metric: x = the swept key, one line per thinking mode (and per other grid value)."""
    grid_keys = list(cfg.grid)
    x_key = cfg.plot_x or grid_keys[0]
    others = [k for k in grid_keys if k != x_key]
    numeric_x = all(isinstance(r.get(x_key), (int, float)) for r in rows)
    series_names = ["trainable_params", "final_loss", "train_runtime_s", "peak_vram_gb"]
    metrics: dict[str, set[str]] = {}
    for r in rows:
        for k, v in r.items():
            if "/" in k and v is not None and not k.startswith("accuracy_ci_"):
                name, mode = k.rsplit("/", 1)
                metrics.setdefault(name, set()).add(mode)
    for name in series_names:
        if any(r.get(name) is not None for r in rows):
            metrics.setdefault(name, {""})
    if not metrics:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, modes in sorted(metrics.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        drew = False
        for mode in sorted(modes):
            col = f"{name}/{mode}" if mode else name
            groups: dict[tuple, list] = {}
            for r in rows:
                if r.get(col) is None:
                    continue
                groups.setdefault(tuple(r.get(k) for k in others), []).append((r[x_key], r[col]))
            for other_vals, pts in groups.items():
                if numeric_x:
                    pts.sort(key=lambda p: p[0])
                label = " ".join(filter(None, [mode, show(dict(zip(others, other_vals))) if others else ""]))
                xs = [p[0] if numeric_x else str(p[0]) for p in pts]
                ax.plot(xs, [p[1] for p in pts], marker="o", label=label or name)
                drew = True
        if not drew:
            plt.close(fig)
            continue
        ax.set_xlabel(x_key)
        ax.set_ylabel(name)
        ax.set_title(f"{name} vs {x_key}")
        if numeric_x:
            ax.set_xticks(sorted({r[x_key] for r in rows}))
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        written.append(save_figure(fig, out_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.png", dpi=100))
    return written
