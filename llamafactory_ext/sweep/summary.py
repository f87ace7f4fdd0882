"""What a sweep reports, rewritten after every trial:

- ``summary.md``, for people: trial | changed keys | trainable | final loss | accuracy per mode [95 % CI] |
  Δ per mode (when the evaluator had a baseline) | time, every figure with :data:`DECIMALS` decimals; the
  chance level per mode is one line under the table (a column only when it differs between trials:
  they were evaluated on other items);
- ``summary.json``: everything (each trial's status, keys, every evaluator figure per mode and category,
  chance levels, training figures, peak memory, errors, what was logged to TensorBoard / W&B, the
  provenance record of what it was made from, and for a stale trial what changed since);
- ``summary.csv`` for spreadsheets, and one PNG per metric against the swept key (none for the chance
  level when it is the same in every trial).

Each trial's evaluation is read by :func:`read_eval` through ``eval.results.Results`` (the typed
reader of ``results.json`` and ``comparison.json``); a file it cannot read is the trial's ``error``.
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
from llamafactory_ext.eval.results import Results, ResultsError
from llamafactory_ext.io import atomic_write_json, atomic_write_text, save_figure
from llamafactory_ext.sweep.config import SweepConfig, show
from llamafactory_ext.sweep.inputs import stale_changes
from llamafactory_ext.sweep.trials import Trial, read_state, recorded_status, train_metrics

DECIMALS = 2
TRACKED = "tracking.json"  # in the trial folder: what tracking.log_results logged (written once per trial)


def read_eval(trial_dir: Path) -> Results | None:
    """The trial's evaluation (``eval/results.json`` and, with a baseline, ``comparison.json``), typed;
    None before it has one. A file that cannot be read raises ``ResultsError`` naming file and field."""
    folder = Path(trial_dir) / "eval"
    return Results.from_json(folder) if (folder / "results.json").is_file() else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def eval_metrics(res: Results) -> dict[str, float]:
    """``{"<metric>/<mode>": value}`` from an evaluation: accuracy, chance, cut-off and format figures,
    token statistics, time (counts such as ``correct`` and ``total`` are not metrics)."""
    out: dict[str, float] = {}
    for mode, s in res.modes.items():
        figures: dict[str, Any] = {
            "accuracy": s.overall.accuracy, "chance": s.overall.chance, "accuracy_std": s.accuracy_std,
            "cut_off": s.cut_off, "unfinished": s.unfinished, "unparsed": s.unparsed, "category_mean": s.category_mean,
            "mean_output_tokens": s.mean_output_tokens, "wall_time_s": s.wall_time_s,
            "completed.accuracy": s.completed.accuracy if s.completed else None,
            "forced_answer.accuracy": s.forced.accuracy if s.forced else None,
            **{f"format.{k}": v for k, v in (s.format or {}).items()}, **{f"tokens.{k}": v for k, v in s.tokens.items()}}
        out.update({f"{name}/{mode}": float(v) for name, v in figures.items() if _number(v)})
    return out


def _eval_row(res: Results | None) -> dict[str, Any]:
    """The evaluator's figures of one trial, flat: metrics, 95 % intervals, Δ against its baseline."""
    if res is None:
        return {}
    row: dict[str, Any] = dict(eval_metrics(res))
    for mode, s in res.modes.items():
        row[f"accuracy_ci_low/{mode}"], row[f"accuracy_ci_high/{mode}"] = s.overall.ci95 or (None, None)
    for mode, table in (res.comparison.modes if res.comparison else {}).items():
        row[f"delta_pp/{mode}"] = table["total"].delta if "total" in table else None
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
        try:
            row.update(_eval_row(read_eval(d)))
        except ResultsError as exc:  # shown in its row, never dropped
            row["error"] = f"eval: {exc}"
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


def chance_levels(rows: list[dict], mode: str) -> list[float]:
    """The distinct chance levels of ``mode`` over the trials evaluated (one: the same items everywhere)."""
    return sorted({r[f"chance/{mode}"] for r in rows if r.get(f"chance/{mode}") is not None})


def _chance_line(rows: list[dict], modes: list[str]) -> list[str]:
    """The chance level, once, when it is the same in every trial (else each row has it: see markdown)."""
    same = [f"{m} {_num(chance_levels(rows, m)[0], 100)} %" for m in modes if len(chance_levels(rows, m)) == 1]
    return [f"Chance level (guessing among each item's options), the same in every trial: {', '.join(same)}.", ""] if same else []


def _num(v: Any, scale: float = 1.0, sign: bool = False) -> str:
    if not _number(v):
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
    varying = [m for m in modes if len(chance_levels(rows, m)) > 1]  # other items in some trials: shown per trial
    head = ["trial", "changed keys", "trainable", "final loss", *(f"{m} % [95 % CI]" for m in modes),
            *(f"Δ {m} (pp)" for m in deltas), *(f"chance {m} %" for m in varying), "time (min)"]
    lines = [f"# Sweep over {', '.join(cfg.grid)} ({cfg.base})", "",
             (f"Accuracy in % with its 95 % Wilson interval; Δ in percentage points against the evaluator's baseline; "
              f"final loss as last logged; time = training + evaluation. Every figure to {DECIMALS} decimals."), "",
             "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for r, changed in zip(rows, params):
        detail = "; ".join(r["stale"]) if r.get("stale") else r.get("error")
        name = r["trial"] if r["status"] == "done" and not detail else f"{r['trial']} ({r['status']}{': ' + detail if detail else ''})"
        trainable = f"{r['trainable_params']:,}" if isinstance(r.get("trainable_params"), int) else "—"
        cells = [name, show(changed), trainable, _num(r.get("final_loss")),
                 *(_accuracy(r, m) for m in modes), *(_num(r.get(f"delta_pp/{m}"), sign=True) for m in deltas),
                 *(_num(r.get(f"chance/{m}"), 100) for m in varying), _num(r["time_s"] / 60 if _number(r.get("time_s")) else None)]  # / 60, not * (1 / 60): 0.9 s is 0.01 min, not 0.02
        lines.append("| " + " | ".join(cells) + " |")
    done = sum(r["status"] == "done" for r in rows)
    failed = sum(r["status"] == "failed" for r in rows)
    stale = sum(r["status"] == "stale" for r in rows)
    lines += ["", *_chance_line(rows, modes), (f"{done} done, {failed} failed, {stale} stale, {len(rows) - done - failed - stale} not run, of {len(rows)} trials. "
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
    """Every evaluator figure of a trial (per mode, category, macro-category, format, tokens), as
    results.json holds them once the typed reader has checked them, and its comparison.json."""
    try:
        res = read_eval(trial.path())
    except ResultsError:
        return None  # the row's error names the file
    return None if res is None else {"modes": res.raw.get("modes"), "comparison": res.comparison.raw if res.comparison else None}


def recorded_provenance(trial: Trial) -> dict[str, Any] | None:
    """The trial's ``provenance.json``: what its outputs were made from (None before it ran)."""
    prov = pv.Provenance.read(trial.path())
    return prov.to_json() if prov is not None else None


def _tracked(trial: Trial) -> dict[str, Any] | None:
    try:
        return json.loads((trial.path() / TRACKED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def track_trial(trial: Trial, group: str | None = None, report_to: Any = None) -> dict[str, Any] | None:
    """Log a finished trial's evaluation and training figures (:mod:`llamafactory_ext.tracking`) into its
    training run, once: the record goes to ``<trial>/tracking.json``. None when there is nothing to log.
    ``report_to``: the targets (default: the trial's recipe's ``report_to``)."""
    d = trial.path()
    try:
        res = read_eval(d)
    except ResultsError:
        return None  # nothing to log: the summary row names the file
    if res is None or (d / TRACKED).is_file():
        return None
    metrics = train_metrics(d)
    config = trial.train_config
    record = tracking.log_results(res.raw, d, config.get("report_to") if report_to is None else report_to,
                                  str(config.get("run_name") or trial.name), tracking.trained_step(d),  # 0: an evaluation-only trial
                                  {k: metrics.get(k) for k in ("trainable_params", "final_loss")},
                                  res.comparison.raw if res.comparison else None, group)
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
                if name != "chance" or len(chance_levels(rows, mode)) > 1:  # a constant chance level: no plot
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
