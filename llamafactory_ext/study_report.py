"""The format study's report: ``study.json`` (per trial and mode, the headline groups with
intervals, Δ and p against the baseline, the published figures and their directions; each trial's
provenance record and, when stale, what changed since it ran), ``study.md``
(the Version Series per headline group, per-category tables, thinking format) and ``study.png``,
from the trial folders as they are now. The command and its trials are ``study.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llamafactory_ext.io import atomic_write_json, atomic_write_text, ensure_dir, save_figure
from llamafactory_ext.sweep.inputs import stale_changes
from llamafactory_ext.sweep.summary import recorded_provenance
from llamafactory_ext.sweep.trials import Trial, recorded_status
from llamafactory_ext.thinking import NOTHINK, THINK

if TYPE_CHECKING:
    from llamafactory_ext.study import StudyConfig

BASELINE = "baseline"  # also the baseline's key in a task's published figures (eval.tasks.Task.published)
FLAT_PP = 1.0  # a published Δ smaller than this is "no change"


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------
def _results(trial: Trial) -> tuple[dict | None, dict | None]:
    d = trial.path() / "eval"
    out = []
    for name in ("results.json", "comparison.json"):
        try:
            out.append(json.loads((d / name).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            out.append(None)
    return out[0], out[1]


def group_block(mode_stats: dict[str, Any], group: str) -> dict[str, Any] | None:
    if group == "total":
        return mode_stats
    return (mode_stats.get("per_category") or {}).get(group) or (mode_stats.get("per_macro_category") or {}).get(group)


def collect(cfg: StudyConfig, trials: list[Trial]) -> dict[str, Any]:
    """study.json: per trial and mode, the headline groups with intervals, Δ and p vs the baseline."""
    rows = []
    for t in trials:
        results, comparison = _results(t)
        stale = stale_changes(t)
        entry: dict[str, Any] = {"name": t.name, "format": t.params.get("format", ""),
                                 "status": "stale" if stale else recorded_status(t), "stale": stale,
                                 "trial_dir": str(t.path()), "provenance": recorded_provenance(t), "modes": {}}
        for mode in (NOTHINK, THINK):
            stats = (results or {}).get("modes", {}).get(mode)
            if stats is None:
                continue
            comp = ((comparison or {}).get("modes") or {}).get(mode) or {}
            entry["modes"][mode] = {
                "groups": {g: group_block(stats, g) for g in cfg.headline},
                "vs_baseline": {g: comp.get(g) for g in cfg.headline if comp.get(g)},
                "format": stats.get("format"), "cut_off": stats.get("cut_off"), "unfinished": stats.get("unfinished"),
                "tokens": stats.get("tokens"),
                "per_category": stats.get("per_category"), "per_macro_category": stats.get("per_macro_category"),
            }
        entry["model"] = (results or {}).get("model")
        entry["task"] = (results or {}).get("task")
        rows.append(entry)
    published = _published(cfg, rows)
    return {"title": cfg.title, "headline": list(cfg.headline), "versions": rows, "published": published,
            "directions": directions(rows, cfg.headline[0], published) if published else {}}


def _published(cfg: StudyConfig, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The published figures to stand beside ours: ``true``, the task registry's published study;
    ``auto``, the evaluated task's own (``Task.published``) when the base model is the one published."""
    from llamafactory_ext.eval.tasks import TASKS, published_study, task_class

    if cfg.published in (False, "false"):
        return None
    if cfg.published in (True, "true"):
        found = published_study()
        return found[1] if found else None
    models = [r["model"].get("model_name_or_path") for r in rows if r.get("model")]
    model = models[0] if models else cfg.model
    task = next((r["task"] for r in rows if r.get("task")), None)
    figures = task_class(task).published if task in TASKS else None
    return figures if figures and str(model or "").endswith(Path(figures["model"]).name) else None


def _delta_pp(row: dict[str, Any], mode: str, group: str) -> float | None:
    comp = row["modes"].get(mode, {}).get("vs_baseline", {}).get(group)
    return comp["delta"] if comp else None


def _agrees(comp: dict[str, Any], published: float) -> bool:
    """Our paired Δ against a published one: a published Δ under FLAT_PP is "no change" (ours agrees
    when it is not significant); otherwise ours agrees when it has the same sign."""
    if abs(published) < FLAT_PP:
        return not comp["significant"]
    return (comp["delta"] > 0) == (published > 0) and comp["delta"] != 0


def directions(rows: list[dict[str, Any]], group: str, published: dict[str, Any]) -> dict[str, str]:
    """One sentence per version: does the direction of each Δ agree with the published one?"""
    out = {}
    pub = published["versions"]
    for row in rows:
        if row["name"] not in pub or row["name"] == BASELINE:
            continue
        parts, disagree = [], []
        for mode, label in ((NOTHINK, "no thinking"), (THINK, "thinking")):
            comp = row["modes"].get(mode, {}).get("vs_baseline", {}).get(group)
            if not comp:
                continue
            theirs = pub[row["name"]][mode] - pub[BASELINE][mode]
            parts.append(f"{label} {comp['delta']:+.1f} pp{'' if comp['significant'] else ' (not significant)'} "
                         f"(published {theirs:+.2f})")
            if not _agrees(comp, theirs):
                disagree.append(label)
        if parts:
            verdict = ("the direction agrees with the published one in both modes" if not disagree
                       else f"the direction differs from the published one in {' and '.join(disagree)}")
            out[row["name"]] = f"{row['name']}: {', '.join(parts)}: {verdict}."
    return out


def _cell(block: dict | None) -> str:
    if not block:
        return "—"
    return f"{100 * block['accuracy']:.1f} [{100 * block['ci95'][0]:.1f}, {100 * block['ci95'][1]:.1f}] (n={block['total']})"


def _d(comp: dict | None) -> str:
    return "—" if not comp else f"{comp['delta']:+.1f}{' *' if comp['significant'] else ''} (p={comp['p_value']:.2g})"


def what_changed(row: dict[str, Any], group: str) -> str:
    parts = []
    for mode, label in ((NOTHINK, "no thinking"), (THINK, "thinking")):
        comp = row["modes"].get(mode, {}).get("vs_baseline", {}).get(group)
        if comp:
            word = "up" if comp["delta"] > 0 else "down" if comp["delta"] < 0 else "unchanged"
            parts.append(f"{label} {word}{'' if comp['significant'] else ' (not significant)'}")
    fmt = (row["modes"].get(THINK) or {}).get("format")
    if fmt:
        parts.append(f"closes </think> with a trace in {100 * fmt['nonempty_trace']:.0f} % of thinking outputs")
    return "; ".join(parts) or "—"


def series_table(study: dict[str, Any], group: str) -> list[str]:
    label = "all items" if group == "total" else group
    lines = [f"### Version Series: {label}", "",
             "| Version | Training format | No Thinking [95 % CI] | Δ (pp) | Thinking [95 % CI] | Δ (pp) | What changed |",
             "|---|---|---:|---:|---:|---:|---|"]
    for row in study["versions"]:
        cells = [row["name"] if row["name"] != BASELINE else "Baseline", row["format"] or ("—" if row["name"] == BASELINE else "")]
        for mode in (NOTHINK, THINK):
            m = row["modes"].get(mode, {})
            cells += [_cell((m.get("groups") or {}).get(group)), _d((m.get("vs_baseline") or {}).get(group))]
        cells.append(what_changed(row, group) if row["name"] != BASELINE else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def published_table(published: dict[str, Any]) -> list[str]:
    pub = published["versions"]
    lines = [published["title"], "",
             "| Version | No Thinking (Δ) | Thinking (Δ) |", "|---|---:|---:|"]
    for name, v in pub.items():
        cells = [f"{v[m]:.2f}" + ("" if name == BASELINE else f" ({v[m] - pub[BASELINE][m]:+.2f})") for m in (NOTHINK, THINK)]
        lines.append(f"| {'Baseline' if name == BASELINE else name} | {cells[0]} | {cells[1]} |")
    return lines


def category_tables(study: dict[str, Any]) -> list[str]:
    out = []
    for mode, label in ((NOTHINK, "no thinking"), (THINK, "thinking")):
        names: list[str] = []
        for row in study["versions"]:
            m = row["modes"].get(mode) or {}
            for key in ("per_category", "per_macro_category"):
                names += [n for n in (m.get(key) or {}) if n not in names]
        if not names:
            continue
        head = [r["name"] if r["name"] != BASELINE else "Baseline" for r in study["versions"]]
        out += ["", f"### Per category, {label}", "", "| Category | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
        for name in names:
            cells = []
            for row in study["versions"]:
                m = row["modes"].get(mode) or {}
                b = (m.get("per_category") or {}).get(name) or (m.get("per_macro_category") or {}).get(name)
                cells.append(f"{100 * b['accuracy']:.1f}" if b else "—")
            out.append(f"| {name.replace('_', ' ').capitalize()} | " + " | ".join(cells) + " |")
    return out


def format_table(study: dict[str, Any]) -> list[str]:
    lines = ["", "### Thinking format and token cost (thinking mode, all items)", "",
             "| Version | Closed </think> with a trace | Never closed </think> | Cut off | Tokens mean / median / p95 |",
             "|---|---:|---:|---:|---:|"]
    for row in study["versions"]:
        m = row["modes"].get(THINK) or {}
        fmt, tok = m.get("format") or {}, m.get("tokens") or {}
        toks = " / ".join("—" if tok.get(k) is None else f"{tok[k]:g}" for k in ("mean", "median", "p95"))
        trace = f"{100 * fmt['nonempty_trace']:.1f} %" if fmt else "—"
        lines.append(f"| {row['name'] if row['name'] != BASELINE else 'Baseline'} | {trace} | {m.get('unfinished', '—')} | "
                     f"{m.get('cut_off', '—')} | {toks} |")
    return lines


def render(study: dict[str, Any]) -> str:
    lines = [f"# {study['title']}", "",
             ("Intervals: 95 % Wilson. Δ: percentage points against the baseline on the same items, * when the exact "
             "McNemar test gives p < 0.05. An output cut at max_new_tokens counts as wrong."), ""]
    for group in study["headline"]:
        lines += [*series_table(study, group), ""]
    stale = [row for row in study["versions"] if row.get("stale")]
    if stale:
        lines += [("Stale: made from other inputs than today's, so their figures are of the old inputs (`overwrite=true` "
                  "reruns them):"), "", *[f"- {row['name']}: {'; '.join(row['stale'])}" for row in stale], ""]
    if study["published"]:
        lines += [*published_table(study["published"]), ""]
    if study["directions"]:
        lines += ["Direction against the published study:", "", *[f"- {s}" for s in study["directions"].values()], ""]
    lines += category_tables(study) + format_table(study)
    return "\n".join(lines) + "\n"


def plot(study: dict[str, Any], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    group = study["headline"][0]
    rows = [r for r in study["versions"] if r["modes"]]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 3, 4))
    for k, (mode, color) in enumerate(((NOTHINK, "#9aa5b1"), (THINK, "#2b6cb0"))):
        xs, vals, errs = [], [], [[], []]
        for i, row in enumerate(rows):
            b = ((row["modes"].get(mode) or {}).get("groups") or {}).get(group)
            if b:
                xs.append(i + (k - 0.5) * 0.38)
                vals.append(100 * b["accuracy"])
                errs[0].append(100 * (b["accuracy"] - b["ci95"][0]))
                errs[1].append(100 * (b["ci95"][1] - b["accuracy"]))
        ax.bar(xs, vals, 0.38, yerr=errs, capsize=3, color=color, label="no thinking" if mode == NOTHINK else "thinking")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(["Baseline" if r["name"] == BASELINE else r["name"] for r in rows])
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%) with 95 % interval")
    ax.set_title(f"{study['title']} ({'all items' if group == 'total' else group})")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def write_report(cfg: StudyConfig, trials: list[Trial]) -> dict[str, Any]:
    out = ensure_dir(cfg.output_dir, "output_dir")
    study = collect(cfg, trials)
    atomic_write_json(out / "study.json", study)
    atomic_write_text(out / "study.md", render(study))
    plot(study, out / "study.png")
    return study


