"""``study.md`` and ``study.png`` from study.json (``study_report.collect``): the reviewer's settings
table, warnings, the Version Series per headline group, the published series and the direction of
each Δ, per-category tables of each mode, thinking format and token cost.

The cells are those of ``results.md`` (``eval.report_md``): accuracy ``acc [low, high]`` in % with
its 95 % Wilson interval; Δ ``+d [low, high]`` in percentage points with its paired 95 % interval and
``*`` when p (Holm) < 0.05; p and p (Holm) side by side; a dash for every cell without a value.
:func:`series_section` is the one rendering of the Version Series: the model card prints it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llamafactory_ext.eval.report_md import category_layout, ci, delta, pct, pvalue, title
from llamafactory_ext.io import save_figure
from llamafactory_ext.thinking import NOTHINK, THINK

BASELINE = "baseline"  # also the baseline's key in a task's published figures (eval.tasks.Task.published)
MODES = ((NOTHINK, "no thinking"), (THINK, "thinking"))


def label(name: str) -> str:
    return "Baseline" if name == BASELINE else name


def comparison_of(row: dict[str, Any], mode: str, group: str) -> dict[str, Any] | None:
    """A version's paired comparison with the baseline in ``mode`` and ``group`` (None: none, or no items)."""
    comp = row["modes"].get(mode, {}).get("vs_baseline", {}).get(group)
    return comp if comp and comp.get("delta") is not None else None


def header_lines(study: dict[str, Any]) -> list[str]:
    """The settings table of the evaluation protocol, over the trials (study.json's ``protocol``)."""
    rows = study.get("protocol", {}).get("rows") or []
    return ["| Setting | Value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]] if rows else []


def alert_lines(study: dict[str, Any]) -> list[str]:
    """One quoted warning per paragraph (a blank line between: Markdown would join them)."""
    out: list[str] = []
    for w in study.get("warnings") or []:
        out += [*([""] if out else []), f"> **Warning: {w['kind']}.** {w['text']}"]
    return out


def _bold(cell: str) -> str:
    """A bold cell; a trailing ``*`` (significant) stays outside the bold marks."""
    if cell in ("—", ""):
        return cell
    text, star = (cell[:-2], " *") if cell.endswith(" *") else (cell, "")
    return f"**{text}**{star}"


def _line(cells: list[str], bold: bool = False) -> str:
    return "| " + " | ".join(_bold(c) if bold else c for c in cells) + " |"


def accuracy_cell(block: dict[str, Any] | None) -> str:
    """``acc [low, high] (n=…)`` in %, a dash when the group has no items or the trial no figure."""
    shown = ci(block)
    return shown if shown == "—" else f"{shown} (n={block['total']})"


def _statistics(study: dict[str, Any]) -> str:
    """How the Δ cells were computed, as their comparisons say (Newcombe, or bootstrap with seeds)."""
    cells = [c for row in study["versions"] for m in row["modes"].values() for c in m["vs_baseline"].values()]
    tests = sorted({c["test"] for c in cells if c.get("test")}) or ["exact McNemar"]
    intervals = sorted({c["interval"] for c in cells if c.get("interval")}) or ["Newcombe method 10"]
    return ("Accuracy in % with its 95 % Wilson interval (n items). Δ: percentage points against the baseline on the same "
            f"items, paired per item, with its 95 % interval ({'; '.join(intervals)}). p: {'; '.join(tests)}. "
            "p (Holm): Holm's adjustment over the categories and macro categories of a mode (for all items it is p). "
            "* and \"significant\": p (Holm) < 0.05. An output cut at max_new_tokens counts as wrong. "
            "Chance: the accuracy of guessing among each item's options. —: no figure.")


def chance_line(study: dict[str, Any], group: str) -> str:
    """The chance level of ``group``: one figure when it is the same for every trial and mode."""
    blocks = {(label(r["name"]), m): b for r in study["versions"] for m, e in r["modes"].items() if (b := e["groups"].get(group))}
    found = {k: b["chance"] for k, b in blocks.items() if b.get("chance") is not None}
    if not found:
        return "Chance level: none (open answers)." if blocks else "Chance level: —."
    if len(set(found.values())) == 1:
        return f"Chance level (guessing among each item's options): {pct(next(iter(found.values())))} %."
    return "Chance level, **not the same items**: " + ", ".join(f"{n} {m} {pct(c)} %" for (n, m), c in found.items()) + "."


def what_changed(row: dict[str, Any], group: str) -> str:
    parts = []
    for mode, name in MODES:
        comp = comparison_of(row, mode, group)
        if comp:
            word = "up" if comp["delta"] > 0 else "down" if comp["delta"] < 0 else "unchanged"
            parts.append(f"{name} {word}{'' if comp['significant'] else ' (not significant)'}")
    fmt = (row["modes"].get(THINK) or {}).get("format")
    if fmt and fmt.get("nonempty_trace") is not None:
        parts.append(f"closes </think> with a trace in {100 * fmt['nonempty_trace']:.0f} % of thinking outputs")
    return "; ".join(parts) or "—"


def series_table(study: dict[str, Any], group: str) -> list[str]:
    """The Version Series of one group: per version and mode accuracy, Δ, p and p (Holm)."""
    lines = [f"### Version Series: {'all items' if group == 'total' else group}", "", chance_line(study, group), "",
             ("| Version | Training format | No Thinking [95 % CI] | Δ (pp) [95 % CI] | p | p (Holm) "
              "| Thinking [95 % CI] | Δ (pp) [95 % CI] | p | p (Holm) | What changed |"),
             "|---|---|" + "---:|" * 8 + "---|"]
    for row in study["versions"]:
        base = row["name"] == BASELINE
        cells = [label(row["name"]), row["format"] or "—"]
        for mode, _ in MODES:
            m = row["modes"].get(mode, {})
            comp = m.get("vs_baseline", {}).get(group)
            cells += [accuracy_cell(m.get("groups", {}).get(group)), delta(comp), pvalue(comp), pvalue(comp, "p_holm")]
        cells.append("—" if base else what_changed(row, group))
        lines.append(_line(cells))
    return lines


def series_section(study: dict[str, Any]) -> list[str]:
    """How to read the tables, then the Version Series of every headline group."""
    out = [_statistics(study), ""]
    for group in study["headline"]:
        out += [*series_table(study, group), ""]
    return out


def published_table(published: dict[str, Any]) -> list[str]:
    pub = published["versions"]
    lines = [published["title"], "",
             "| Version | No Thinking (Δ) | Thinking (Δ) |", "|---|---:|---:|"]
    for name, v in pub.items():
        cells = [f"{v[m]:.2f}" + ("" if name == BASELINE else f" ({v[m] - pub[BASELINE][m]:+.2f})") for m in (NOTHINK, THINK)]
        lines.append(f"| {label(name)} | {cells[0]} | {cells[1]} |")
    return lines


def _category_rows(study: dict[str, Any], mode: str) -> list[tuple[str, str, bool]]:
    """(name, key of per_category / per_macro_category, bold) in the task's published order."""
    from llamafactory_ext.eval.tasks import registered

    seen: dict[str, dict[str, Any]] = {"per_category": {}, "per_macro_category": {}}
    for row in study["versions"]:
        for key, names in seen.items():
            names.update((row["modes"].get(mode) or {}).get(key) or {})
    task = registered(next((r["task"] for r in study["versions"] if r.get("task")), None))
    out = []
    for macro, cats in category_layout(task.categories if task else {}, seen):
        out += [(c, "per_category", False) for c in cats]
        out += [(macro, "per_macro_category", True)] if macro is not None and macro in seen["per_macro_category"] else []
    return out


def category_table(study: dict[str, Any], mode: str) -> list[str]:
    """Category | n | Chance | Baseline [95 % CI] | per version: accuracy [95 % CI] and Δ [95 % CI]."""
    versions = study["versions"]
    head = ["Category", "n", "Chance"]
    for row in versions:
        head += [f"{label(row['name'])} [95 % CI]"] + ([] if row["name"] == BASELINE else [f"{row['name']} Δ (pp) [95 % CI]"])
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, key, bold in _category_rows(study, mode):
        blocks = [((r["modes"].get(mode) or {}).get(key) or {}).get(name) for r in versions]
        first = next((b for b in blocks if b), None)
        cells = [title(name), str(first["total"]) if first else "—", pct((first or {}).get("chance"))]
        for row, b in zip(versions, blocks):
            cells.append(ci(b))
            if row["name"] != BASELINE:
                cells.append(delta((row["modes"].get(mode) or {}).get("vs_baseline", {}).get(name)))
        lines.append(_line(cells, bold))
    return lines


def category_tables(study: dict[str, Any]) -> list[str]:
    out = []
    for mode, name in MODES:
        table = category_table(study, mode)
        if len(table) > 2:
            out += ["", f"### Per category, {name}", "", *table]
    return out


def format_table(study: dict[str, Any]) -> list[str]:
    lines = ["", "### Thinking format and token cost (thinking mode, all items)", "",
             "| Version | Closed </think> with a trace | Never closed </think> | Cut off | Tokens mean / median / p95 |",
             "|---|---:|---:|---:|---:|"]
    for row in study["versions"]:
        m = row["modes"].get(THINK) or {}
        fmt, tok = m.get("format") or {}, m.get("tokens") or {}
        toks = " / ".join("—" if tok.get(k) is None else f"{tok[k]:g}" for k in ("mean", "median", "p95"))
        trace = "—" if fmt.get("nonempty_trace") is None else f"{100 * fmt['nonempty_trace']:.1f} %"
        lines.append(f"| {label(row['name'])} | {trace} | {m.get('unfinished', '—')} | {m.get('cut_off', '—')} | {toks} |")
    return lines


def render(study: dict[str, Any]) -> str:
    lines = [f"# {study['title']}", ""]
    header, alerts = header_lines(study), alert_lines(study)
    lines += [*header, ""] if header else []
    lines += [*alerts, ""] if alerts else []
    lines += series_section(study)
    stale = [row for row in study["versions"] if row.get("stale")]
    if stale:
        lines += [("Stale: made from other inputs than today's, so their figures are of the old inputs (`overwrite=true` "
                  "reruns them):"), "", *[f"- {row['name']}: {'; '.join(row['stale'])}" for row in stale], ""]
    if study["published"]:
        lines += [*published_table(study["published"]), ""]
    if study["directions"]:
        lines += ["Direction against the published study (significant: p (Holm) < 0.05, as the * of the tables):", "",
                  *[f"- {s}" for s in study["directions"].values()], ""]
    lines += category_tables(study) + format_table(study)
    return "\n".join(lines) + "\n"


def plot(study: dict[str, Any], path: Path) -> Path | None:
    """Accuracy of every trial in both modes (the first headline group) with 95 % error bars."""
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
            if b and b.get("accuracy") is not None and b.get("ci95"):
                xs.append(i + (k - 0.5) * 0.38)
                vals.append(100 * b["accuracy"])
                errs[0].append(100 * (b["accuracy"] - b["ci95"][0]))
                errs[1].append(100 * (b["ci95"][1] - b["accuracy"]))
        ax.bar(xs, vals, 0.38, yerr=errs, capsize=3, color=color, label="no thinking" if mode == NOTHINK else "thinking")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([label(r["name"]) for r in rows])
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%) with 95 % interval")
    ax.set_title(f"{study['title']} ({'all items' if group == 'total' else group})")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
