"""What a sweep reports: ``summary.csv`` / ``summary.md`` (one row per trial: its keys, trainable
parameters, final loss, runtime, peak memory, and every evaluator figure per thinking mode, accuracy
first) and one PNG per metric against the swept key."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from llamafactory_ext.io import atomic_write_text, save_figure
from llamafactory_ext.sweep.config import SweepConfig, show
from llamafactory_ext.sweep.trials import Trial, read_state, recorded_status, train_metrics


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


def collect_rows(trials: list[Trial]) -> list[dict[str, Any]]:
    rows = []
    for t in trials:
        d = t.path()
        state = read_state(d) or {"status": "pending"}
        row: dict[str, Any] = {"trial": t.name, "status": recorded_status(t), **t.params}
        metrics = train_metrics(d) if d.is_dir() else {}
        row["trainable_params"] = metrics.get("trainable_params")
        row["final_loss"] = metrics.get("final_loss")
        row["train_runtime_s"] = metrics.get("train_runtime_s")
        row["peak_vram_gb"] = metrics.get("peak_vram_gb")
        row["peak_rss_gb"] = state.get("peak_rss_gb")
        results = d / "eval" / "results.json"
        if results.is_file():
            try:
                row.update(eval_metrics(json.loads(results.read_text(encoding="utf-8"))))
            except (OSError, json.JSONDecodeError):
                pass
        if state.get("status") == "failed":
            row["error"] = f"{state.get('phase')}: exit {state.get('exit_code')}"
        rows.append(row)
    return rows


def _columns(rows: list[dict], params: list[str]) -> list[str]:
    fixed = ["trial", "status", *params, "trainable_params", "final_loss", "train_runtime_s", "peak_vram_gb", "peak_rss_gb"]
    # accuracy first (the headline), then the other metrics; each metric's modes side by side
    metric_cols = sorted({k for r in rows for k in r if "/" in k}, key=lambda k: (not k.startswith("accuracy/"), k))
    extra = ["error"] if any("error" in r for r in rows) else []
    return fixed + metric_cols + extra


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}" if abs(v) >= 10000 else str(v)
    return str(v)


def write_summary(out_dir: Path, trials: list[Trial], cfg: SweepConfig) -> list[dict]:
    """summary.csv, summary.md and one plot per metric, from the trial folders as they are now."""
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
    lines = [f"# Sweep over {', '.join(cfg.grid)} ({cfg.base})", ""]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
    done = sum(r["status"] == "done" for r in rows)
    failed = sum(r["status"] == "failed" for r in rows)
    lines += ["", f"{done} done, {failed} failed, {len(rows) - done - failed} not run, of {len(rows)} trials."]
    if failed:
        lines.append("Failed trials keep their exit code and log tail in `<trial>/trial.json`; re-run with `retry_failed=true`.")
    atomic_write_text(out_dir / "summary.md", "\n".join(lines) + "\n")
    write_plots(out_dir, rows, cfg)
    return rows


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
            if "/" in k and v is not None:
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
