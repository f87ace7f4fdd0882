"""``results.md``: the reviewer's settings table (``eval.results.header_lines``), warning lines for
degenerate runs and differing protocols, then per mode the published layout (Category | n |
Chance | Baseline | Model | Δ | p | p (Holm)) and, with both modes, thinking against non-thinking.

Every cell that has no value (no items, no completed output, no chance level for open answers,
no test) is a dash, never ``0.00 [0.0, 100.0]``. The Baseline column is computed on the items
both runs share (``comparison.json``'s ``first`` blocks), so Δ = Model − Baseline whenever both
runs hold the same items; with ``baseline_partial`` the report says on how many.
"""

from __future__ import annotations

from typing import Any

TOTAL = "total"
NO_CATEGORY = "(no category)"  # the group of items without a category when others have one (report.py groups)


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def ci(b: dict | None) -> str:
    """``acc [low, high]`` in %, or a dash when the block is undefined."""
    if not b or b.get("ci95") is None or b.get("accuracy") is None:
        return "—"
    return f"{pct(b['accuracy'])} [{100 * b['ci95'][0]:.1f}, {100 * b['ci95'][1]:.1f}]"


def delta(c: dict | None) -> str:
    """``+Δ [low, high]`` in percentage points, ``*`` when significant after Holm."""
    if not c or c.get("delta") is None:
        return "—"
    interval = f" [{c['delta_ci95'][0]:+.1f}, {c['delta_ci95'][1]:+.1f}]" if c.get("delta_ci95") else ""
    return f"{c['delta']:+.2f}{interval}{' *' if c.get('significant') else ''}"


def pvalue(c: dict | None, key: str = "p_value") -> str:
    """p to 3 significant digits; the comparisons round p to 6 decimals, so a 0 is below 1e-6."""
    if not c or c.get(key) is None:
        return "—"
    return "<1e-6" if c[key] == 0 else f"{c[key]:.3g}"


def title(name: str) -> str:
    return name if name == NO_CATEGORY else name.replace("_", " ").capitalize()


def category_layout(task_categories: dict[str, list[str]], stats: dict[str, Any]) -> list[tuple[str | None, list[str]]]:
    """[(macro, [categories...]), ...] in the published order; unknown names follow (``(no
    category)`` last); macro categories without listed categories (e.g. a demo's ``trained`` /
    ``held-out``) come last."""
    seen_cats = set(stats.get("per_category", {}))
    macros = set(stats.get("per_macro_category", {}))
    layout: list[tuple[str | None, list[str]]] = []
    placed: set[str] = set()
    for macro, cats in task_categories.items():
        present = [c for c in cats if c in seen_cats]
        if present or macro in macros:
            layout.append((macro, present))
            placed.update(present)
    extra = sorted(seen_cats - placed, key=lambda c: (c == NO_CATEGORY, c))
    if extra:
        layout.append((None, extra))
    for macro in sorted(macros - {m for m, _ in layout if m}, key=lambda c: (c == NO_CATEGORY, c)):
        layout.append((macro, []))
    return layout


def _groups(stats: dict[str, Any], task_categories: dict[str, list[str]]) -> list[tuple[str, dict | None, str, bool]]:
    """(label, model block, key in a comparison, bold) per table row, Total last."""
    out = []
    for macro, cats in category_layout(task_categories, stats):
        out += [(title(c), stats.get("per_category", {}).get(c), c, False) for c in cats]
        if macro is not None:
            out.append((title(macro), stats.get("per_macro_category", {}).get(macro), macro, True))
    out.append(("Total", stats, TOTAL, True))
    return out


def _line(cells: list[str], bold: bool) -> str:
    if bold:
        cells = [f"**{x}**" if x not in ("—", "") else x for x in cells]
    return "| " + " | ".join(cells) + " |"


def mode_table(stats: dict[str, Any], comparison: dict[str, Any] | None, task_categories: dict[str, list[str]]) -> list[str]:
    """Category | n | Chance | [Baseline [95 % CI]] | Model [95 % CI] | [Δ (pp) [95 % CI] | p | p (Holm)]."""
    with_base = comparison is not None
    head = "| Category | n | Chance |" + (" Baseline [95 % CI] |" if with_base else "") + " Model [95 % CI] |"
    head += " Δ (pp) [95 % CI] | p | p (Holm) |" if with_base else ""
    lines = [head, "|---|---:|---:|" + ("---:|" if with_base else "") + "---:|" + ("---:|---:|---:|" if with_base else "")]
    for label, m, key, bold in _groups(stats, task_categories):
        c = (comparison or {}).get(key)
        cells = [label, str(m["total"]) if m else "—", pct((m or {}).get("chance"))]
        cells += [ci((c or {}).get("first"))] if with_base else []
        cells += [ci(m)] + ([delta(c), pvalue(c), pvalue(c, "p_holm")] if with_base else [])
        lines.append(_line(cells, bold))
    return lines


def modes_table(results: dict[str, Any]) -> list[str]:
    lines = [("| Mode | n | Accuracy [95 % CI] | Cut off at max_new_tokens | Accuracy on completed | Forced-answer accuracy "
             "| Tokens mean / median / p95 | Unfinished | Unparsed | Missing |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, s in results["modes"].items():
        acc = ci(s) + (f" (± {100 * s['accuracy_std']:.2f} over seeds)" if "accuracy_std" in s else "")
        t = s.get("tokens", {})
        tok = " / ".join("—" if t.get(k) is None else f"{t[k]:g}" for k in ("mean", "median", "p95"))
        cut = f"{s['cut_off']} ({pct(s['cut_off'] / s['total'])} %)" if s["total"] else "—"
        lines.append(f"| {mode} | {s['total']} | {acc} | {cut} | {ci(s.get('completed'))} | "
                     f"{ci(s.get('forced_answer'))} | {tok} | {s['unfinished']} | {s['unparsed']} | {s['missing']} |")
    return lines


def paired_modes_table(results: dict[str, Any], task_categories: dict[str, list[str]]) -> list[str]:
    pairs = results.get("think_vs_nothink")
    if not pairs:
        return []
    lines = ["", "## Thinking vs non-thinking, same model, same items", "",
             ("Paired per item: b = right only with thinking, c = right only without; p is the exact McNemar test, "
              "p (Holm) its adjustment over the categories."), "",
             "| Category | n | No thinking | Thinking | Δ (pp) [95 % CI] | b / c | p | p (Holm) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, _, key, bold in _groups(results["modes"]["think"], task_categories):
        p = pairs.get(key)
        if p is None:
            continue
        first, second = (p.get("first") or {}), (p.get("second") or {})
        name = f"**{label}**" if bold else label
        lines.append(f"| {name} | {p['n']} | {pct(first.get('accuracy'))} | {pct(second.get('accuracy'))} | {delta(p)} | "
                     f"{p['model_only']} / {p['baseline_only']} | {pvalue(p)} | {pvalue(p, 'p_holm')} |")
    return lines


def alert_lines(results: dict[str, Any], comparison: dict[str, Any] | None) -> list[str]:
    """Warning lines that must be read before any number: degenerate runs, differing protocols."""
    out = [f"> **Warning: degenerate run.** This run, mode `{m}`: {'; '.join(s['degenerate'])}."
           for m, s in results["modes"].items() if s.get("degenerate")]
    for m, reasons in ((comparison or {}).get("baseline_degenerate") or {}).items():
        if reasons:
            out.append(f"> **Warning: degenerate baseline.** The baseline, mode `{m}`: {'; '.join(reasons)}. "
                       "A Δ against it measures that, not the model.")
    diffs = (comparison or {}).get("protocol_differences")
    if diffs:
        out.append(f"> **Warning: protocols differ** (baseline_protocol=ignore): {'; '.join(diffs)}.")
    return out


def render_markdown(results: dict[str, Any], baseline: Any, comparison: dict[str, Any] | None,
                    task_categories: dict[str, list[str]]) -> str:
    from llamafactory_ext.eval.results import Results, header_lines

    res = Results.from_dict(results, "results.json", comparison)
    out = [f"# {results['task']} evaluation", "", *header_lines(res), ""]
    alerts = alert_lines(results, comparison)
    out += [*alerts, ""] if alerts else []
    out += [*modes_table(results), "",
            ("Intervals are 95 % Wilson intervals; Δ is paired per item, with Newcombe's interval; Δ marked * has "
             "p (Holm) < 0.05 in an exact McNemar test on the same items. A cut-off output (no end before "
             "max_new_tokens) is scored wrong. Chance: the accuracy of guessing uniformly among each item's options.")]
    if comparison and comparison.get("partial"):
        out += ["", (f"Baseline and Δ are computed on the {comparison['items_compared']} items both runs share "
                     "(baseline_partial=true); Model on all of this run's items.")]
    for mode, s in results["modes"].items():
        comp = ((comparison or {}).get("modes") or {}).get(mode) if comparison else None
        out += ["", f"## Mode `{mode}`", "", *mode_table(s, comp, task_categories)]
        out += _mode_notes(s)
    out += paired_modes_table(results, task_categories)
    rest = [w for w in results.get("warnings") or [] if "is degenerate:" not in w and not w.startswith("protocols differ")]
    if rest:
        out += ["", "## Warnings", ""] + [f"- {w}" for w in rest]
    out.append("")
    return "\n".join(out)


def _mode_notes(s: dict[str, Any]) -> list[str]:
    out = []
    if "format" in s:
        f = s["format"]
        words = f["mean_reasoning_words"] if f.get("mean_reasoning_words") is not None else "—"
        out += ["", (f"Format: closed `</think>` {pct(f['closed_think'])} %, with a non-empty trace {pct(f['nonempty_trace'])} %, "
                     f"balanced tags {pct(f['balanced_tags'])} %, cut off {pct(f['cut_off'])} %, mean reasoning {words} words.")]
    if "faithfulness" in s and s["faithfulness"].get("samples"):
        fa = s["faithfulness"]
        out += ["", f"Faithfulness probe ({fa['samples']} items, reasoning cut and answer forced):", "",
                "| Reasoning kept | Answer changed | Accuracy |", "|---:|---:|---:|"]
        for frac, v in fa["fractions"].items():
            out.append(f"| {float(frac) * 100:.0f} % | {pct(v['change_rate'])} % | {pct(v['accuracy'])} |")
    if s.get("methods"):
        out += ["", "Extraction methods: " + ", ".join(f"`{k}` {v}" for k, v in s["methods"].items())]
    return out
