"""Scores -> ``results.json`` (stable schema), ``results.md`` (published-style tables), PNG charts,
and, with a baseline, ``comparison.json``.

``results.json`` (``schema_version`` 2; accuracies and intervals are fractions in [0, 1])::

    {
      "schema_version": 2,
      "task": "italic",
      "source": {"source": "../shared/data/italic", "sha256": "..."},
      "items": {"count": 10000, "ids_sha256": "...", "seeds": [null]},
      "modes": {
        "think": {
          "accuracy": 0.7787, "correct": 7787, "total": 10000, "ci95": [0.7705, 0.7867], "missing": 0,
          "unfinished": 12, "unparsed": 40, "cut_off": 12,
          "completed": {"total": 9988, "correct": 7787, "accuracy": 0.7796, "ci95": [...]},
          "forced_answer": {"accuracy": 0.7792, "correct": 7792, "total": 10000, "ci95": [...],
                            "items": 12, "items_correct": 5},      # cutoff=force_answer: cut outputs re-asked
          "tokens": {"mean": 812.4, "median": 640.0, "p95": 2210.0}, "mean_output_tokens": 812.4,
          "wall_time_s": 2710.3, "methods": {"answer_line": 9000, ...},
          "per_category": {"literature": {"accuracy": .., "correct": .., "total": .., "ci95": [..]}, ...},
          "per_macro_category": {"culture and commonsense": {...}, "language capability": {...}},
          "category_mean": 0.77,
          "format": {"closed_think": 0.998, "nonempty_trace": 0.997, "balanced_tags": 0.997,
                     "cut_off": 0.0012, "mean_reasoning_words": 301.2},        # thinking mode only
          "seeds": [42, 123, 456], "accuracy_std": 0.004, "per_seed": {...},  # only with seeds=[...]
          "faithfulness": {...}                                                # only with faithfulness=true
        },
        "nothink": {...}
      },
      "think_vs_nothink": {"total": {"n", "delta", "model_only", "baseline_only", "p_value", "significant"},
                           CATEGORY: {...}},   # both modes run: the paired comparison of one model
      "model": {...}, "config": {...}, "warnings": [...], "baseline": "path" | null, "created_utc": "..."
    }

``comparison.json`` (with ``baseline=``): ``{"modes": {MODE: {"total" | CATEGORY | MACRO: {"delta": pp,
"model_only": b, "baseline_only": c, "p_value": p, "n": n, "significant": bool}}}, "partial": bool,
"items_compared": n}`` where b and c count the items right in only one of the two runs (exact
McNemar test, ``eval.stats``).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from llamafactory_ext.eval.stats import paired, token_stats, wilson
from llamafactory_ext.io import atomic_write_json, atomic_write_text, save_figure

SCHEMA_VERSION = 2


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def block(correct: int, total: int) -> dict[str, Any]:
    """An accuracy object: accuracy, correct, total and the 95 % Wilson interval."""
    return {"accuracy": _ratio(correct, total), "correct": correct, "total": total, "ci95": wilson(correct, total)}


def _grouped(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r.get(key):
            counts[r[key]][0] += bool(r.get("correct"))
            counts[r[key]][1] += 1
    return {k: block(*v) for k, v in sorted(counts.items())}


def _format(rows: list[dict[str, Any]]) -> dict[str, Any]:
    total = len(rows)
    closed = [r for r in rows if r.get("closed")]
    words = [r.get("reasoning_words") or 0 for r in closed]
    return {
        "closed_think": _ratio(len(closed), total),
        "nonempty_trace": _ratio(sum(1 for r in closed if r.get("reasoning_words")), total),
        "balanced_tags": _ratio(sum(1 for r in rows if r.get("balanced")), total),
        "cut_off": _ratio(sum(1 for r in rows if r.get("finished") is False), total),
        "mean_reasoning_words": round(sum(words) / len(words), 2) if words else None,
    }


def summarize(rows: list[dict[str, Any]], expected: int, mode: str) -> dict[str, Any]:
    """Stats of one mode from its scored prediction rows (all seeds pooled)."""
    correct = sum(1 for r in rows if r.get("correct"))
    statuses = Counter(r.get("status") for r in rows)
    done = [r for r in rows if r.get("finished") is not False]
    tokens = [r["num_tokens"] for r in rows if isinstance(r.get("num_tokens"), (int, float))]
    out: dict[str, Any] = {
        **block(correct, len(rows)),
        "missing": max(0, expected - len(rows)),
        "unfinished": statuses.get("unfinished", 0),
        "unparsed": statuses.get("unparsed", 0),
        "cut_off": statuses.get("cut_off", 0),
        "completed": block(sum(1 for r in done if r.get("correct")), len(done)),
        "tokens": token_stats(tokens),
        "mean_output_tokens": round(sum(tokens) / len(tokens), 2) if tokens else None,
        "wall_time_s": round(sum(float(r.get("gen_time_s") or 0.0) for r in rows), 3),
        "methods": dict(sorted(Counter(r.get("method") for r in rows if r.get("status") == "ok").items())),
    }
    forced = [r for r in rows if "forced_correct" in r]
    if forced:
        fixed = correct + sum(1 for r in forced if r["forced_correct"])
        out["forced_answer"] = {**block(fixed, len(rows)), "items": len(forced),
                                "items_correct": sum(1 for r in forced if r["forced_correct"])}
    if any(r.get("category") for r in rows):
        out["per_category"] = _grouped(rows, "category")
        out["category_mean"] = statistics.fmean(b["accuracy"] for b in out["per_category"].values())
    if any(r.get("macro_category") for r in rows):
        out["per_macro_category"] = _grouped(rows, "macro_category")
    if mode == "think":
        out["format"] = _format(rows)
    return out


def with_seeds(pooled: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Add ``per_seed`` accuracies and their standard deviation to pooled stats (every figure of
    ``pooled`` already pools all seeds: counts, format, cut-off, tokens)."""
    seeds = sorted({r.get("seed") for r in rows}, key=lambda s: (s is None, s))
    if len(seeds) < 2:
        return pooled
    per = {}
    for seed in seeds:
        sel = [r for r in rows if r.get("seed") == seed]
        per[str(seed)] = block(sum(1 for r in sel if r.get("correct")), len(sel))
    accs = [b["accuracy"] for b in per.values()]
    return {**pooled, "accuracy": statistics.fmean(accs), "accuracy_std": statistics.stdev(accs),
            "seeds": [int(s) for s in seeds if s is not None], "per_seed": per}


def outcomes(rows: list[dict[str, Any]], mode: str, key: str | None = None, value: str | None = None) -> dict[tuple, bool]:
    """(id, seed) -> correct for the rows of ``mode`` (optionally one category / macro)."""
    return {(str(r["id"]), r.get("seed")): bool(r.get("correct")) for r in rows
            if r["mode"] == mode and (key is None or r.get(key) == value)}


def paired_table(first: list[dict[str, Any]], first_mode: str, second: list[dict[str, Any]], second_mode: str) -> dict[str, Any]:
    """Paired tests of ``second`` against ``first`` in total and per category / macro category."""
    out = {"total": paired(outcomes(first, first_mode), outcomes(second, second_mode))}
    for key in ("category", "macro_category"):
        for value in sorted({r.get(key) for r in second if r["mode"] == second_mode and r.get(key)}):
            out[value] = paired(outcomes(first, first_mode, key, value), outcomes(second, second_mode, key, value))
    return out


# ----------------------------------------------------------------------------- markdown


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def _ci(b: dict | None) -> str:
    if not b or "ci95" not in b:
        return "—"
    return f"{_pct(b['accuracy'])} [{100 * b['ci95'][0]:.1f}, {100 * b['ci95'][1]:.1f}]"


def _delta(p: dict | None) -> str:
    if not p or not p.get("n"):
        return "—"
    return f"{p['delta']:+.2f}{' *' if p['significant'] else ''}"


def _p(p: dict | None) -> str:
    return "—" if not p or not p.get("n") else f"{p['p_value']:.3g}"


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()


def category_layout(task_categories: dict[str, list[str]], stats: dict[str, Any]) -> list[tuple[str | None, list[str]]]:
    """[(macro, [categories...]), ...] in the published order; unknown names follow; macro
    categories without listed categories (e.g. a demo's ``trained`` / ``held-out``) come last."""
    seen_cats = set(stats.get("per_category", {}))
    macros = set(stats.get("per_macro_category", {}))
    layout: list[tuple[str | None, list[str]]] = []
    placed: set[str] = set()
    for macro, cats in task_categories.items():
        present = [c for c in cats if c in seen_cats]
        if present or macro in macros:
            layout.append((macro, present))
            placed.update(present)
    extra = sorted(seen_cats - placed)
    if extra:
        layout.append((None, extra))
    for macro in sorted(macros - {m for m, _ in layout if m}):
        layout.append((macro, []))
    return layout


def mode_table(stats: dict[str, Any], base: dict[str, Any] | None, comparison: dict[str, Any] | None,
               task_categories: dict[str, list[str]]) -> list[str]:
    """Category | n | [Baseline] | Model (95 % CI) | [Δ | p]: the published layout plus the statistics."""
    with_base = base is not None
    head = "| Category | n |" + (" Baseline |" if with_base else "") + " Model [95 % CI] |" + (" Δ (pp) | p |" if with_base else "")
    lines = [head, "|---|---:|" + ("---:|" if with_base else "") + "---:|" + ("---:|---:|" if with_base else "")]

    def row(label: str, m: dict | None, b: dict | None, c: dict | None, bold: bool = False) -> None:
        cells = [label, str(m["total"]) if m else "—"] + ([_pct(b["accuracy"]) if b else "—"] if with_base else [])
        cells += [_ci(m)] + ([_delta(c), _p(c)] if with_base else [])
        if bold:
            cells = [f"**{x}**" if x not in ("—", "") else x for x in cells]
        lines.append("| " + " | ".join(cells) + " |")

    comparison = comparison or {}
    for macro, cats in category_layout(task_categories, stats):
        for cat in cats:
            row(_title(cat), stats.get("per_category", {}).get(cat),
                (base or {}).get("per_category", {}).get(cat), comparison.get(cat))
        if macro is not None:
            row(macro.capitalize(), stats.get("per_macro_category", {}).get(macro),
                (base or {}).get("per_macro_category", {}).get(macro), comparison.get(macro), bold=True)
    row("Total", stats, base, comparison.get("total"), bold=True)
    return lines


def modes_table(results: dict[str, Any]) -> list[str]:
    lines = [("| Mode | n | Accuracy [95 % CI] | Cut off at max_new_tokens | Accuracy on completed | Forced-answer accuracy "
             "| Tokens mean / median / p95 | Unfinished | Unparsed | Missing |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, s in results["modes"].items():
        acc = _ci(s) + (f" (± {100 * s['accuracy_std']:.2f} over seeds)" if "accuracy_std" in s else "")
        t = s.get("tokens", {})
        tok = " / ".join("—" if t.get(k) is None else f"{t[k]:g}" for k in ("mean", "median", "p95"))
        cut = f"{s['cut_off']} ({_pct(_ratio(s['cut_off'], s['total']))} %)"
        lines.append(f"| {mode} | {s['total']} | {acc} | {cut} | {_ci(s.get('completed'))} | "
                     f"{_ci(s.get('forced_answer')) if 'forced_answer' in s else '—'} | {tok} | {s['unfinished']} | "
                     f"{s['unparsed']} | {s['missing']} |")
    return lines


def paired_modes_table(results: dict[str, Any], task_categories: dict[str, list[str]]) -> list[str]:
    pairs = results.get("think_vs_nothink")
    if not pairs:
        return []
    think, nothink = results["modes"]["think"], results["modes"]["nothink"]
    lines = ["", "## Thinking vs non-thinking, same model, same items", "",
             "Paired per item: b = right only with thinking, c = right only without; p is the exact McNemar test.", "",
             "| Category | n | No thinking | Thinking | Δ (pp) | b / c | p |", "|---|---:|---:|---:|---:|---:|---:|"]

    def row(label: str, nb: dict | None, tb: dict | None, p: dict | None) -> None:
        if p is None:
            return
        lines.append(f"| {label} | {p['n']} | {_pct(nb['accuracy']) if nb else '—'} | {_pct(tb['accuracy']) if tb else '—'} | "
                     f"{_delta(p)} | {p['model_only']} / {p['baseline_only']} | {_p(p)} |")

    for macro, cats in category_layout(task_categories, think):
        for cat in cats:
            row(_title(cat), nothink.get("per_category", {}).get(cat), think.get("per_category", {}).get(cat), pairs.get(cat))
        if macro is not None:
            row(f"**{macro.capitalize()}**", nothink.get("per_macro_category", {}).get(macro),
                think.get("per_macro_category", {}).get(macro), pairs.get(macro))
    row("**Total**", nothink, think, pairs.get("total"))
    return lines


def render_markdown(results: dict[str, Any], baseline: dict[str, Any] | None, comparison: dict[str, Any] | None,
                    task_categories: dict[str, list[str]]) -> str:
    model = results.get("model", {})
    name = model.get("model_name_or_path")
    if model.get("adapter_name_or_path"):
        name = f"{name} + {model['adapter_name_or_path']}"
    out = [f"# {results['task']} evaluation", "",
           (f"Model: `{name}` · template `{model.get('template')}` · backend `{model.get('backend')}` · "
           f"{results['items']['count']} items")]
    if results.get("baseline"):
        note = " (compared on the items both runs share)" if (comparison or {}).get("partial") else ""
        out.append(f"Baseline: `{results['baseline']}`{note}")
    out += ["", *modes_table(results), "",
            ("Intervals are 95 % Wilson intervals; Δ marked * has p < 0.05 in an exact McNemar test on the same items. "
            "A cut-off output (no end before max_new_tokens) is scored wrong.")]
    for mode, s in results["modes"].items():
        base = (baseline or {}).get("modes", {}).get(mode) if baseline else None
        comp = (comparison or {}).get("modes", {}).get(mode) if comparison else None
        out += ["", f"## Mode `{mode}`", "", *mode_table(s, base, comp, task_categories)]
        out += _mode_notes(s)
    out += paired_modes_table(results, task_categories)
    if results.get("warnings"):
        out += ["", "## Warnings", ""] + [f"- {w}" for w in results["warnings"]]
    out.append("")
    return "\n".join(out)


def _mode_notes(s: dict[str, Any]) -> list[str]:
    out = []
    if "format" in s:
        f = s["format"]
        out += ["", (f"Format: closed `</think>` {_pct(f['closed_think'])} %, with a non-empty trace {_pct(f['nonempty_trace'])} %, "
                     f"balanced tags {_pct(f['balanced_tags'])} %, cut off {_pct(f['cut_off'])} %, mean reasoning "
                     f"{f['mean_reasoning_words'] if f['mean_reasoning_words'] is not None else '—'} words.")]
    if "faithfulness" in s and s["faithfulness"].get("samples"):
        fa = s["faithfulness"]
        out += ["", f"Faithfulness probe ({fa['samples']} items, reasoning cut and answer forced):", "",
                "| Reasoning kept | Answer changed | Accuracy |", "|---:|---:|---:|"]
        for frac, v in fa["fractions"].items():
            out.append(f"| {float(frac) * 100:.0f} % | {_pct(v['change_rate'])} % | {_pct(v['accuracy'])} |")
    if s.get("methods"):
        out += ["", "Extraction methods: " + ", ".join(f"`{k}` {v}" for k, v in s["methods"].items())]
    return out


def write_outputs(out_dir: Path, results: dict[str, Any], baseline: dict[str, Any] | None,
                  comparison: dict[str, Any] | None, task_categories: dict[str, list[str]]) -> None:
    atomic_write_json(out_dir / "results.json", results)
    if comparison is not None:
        atomic_write_json(out_dir / "comparison.json", comparison)
    atomic_write_text(out_dir / "results.md", render_markdown(results, baseline, comparison, task_categories))
    plot_categories(results, baseline, out_dir, task_categories)


# ----------------------------------------------------------------------------- plots


def plot_categories(results: dict[str, Any], baseline: dict[str, Any] | None, out_dir: str | Path,
                    task_categories: dict[str, list[str]]) -> list[Path]:
    """One PNG per mode: accuracy per category (and total) with 95 % intervals, next to the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for mode, s in results["modes"].items():
        base = (baseline or {}).get("modes", {}).get(mode) if baseline else None
        names, blocks, base_vals = [], [], []
        for macro, cats in category_layout(task_categories, s):
            for cat in cats:
                names.append(_title(cat))
                blocks.append(s["per_category"][cat])
                base_vals.append(100 * (((base or {}).get("per_category", {}).get(cat) or {}).get("accuracy") or 0.0))
            if macro is not None and not cats and macro in s.get("per_macro_category", {}):
                names.append(_title(macro))
                blocks.append(s["per_macro_category"][macro])
                base_vals.append(100 * (((base or {}).get("per_macro_category", {}).get(macro) or {}).get("accuracy") or 0.0))
        names.append("Total")
        blocks.append(s)
        base_vals.append(100 * ((base or {}).get("accuracy") or 0.0))
        vals = [100 * b["accuracy"] for b in blocks]
        err = [[v - 100 * b["ci95"][0] for v, b in zip(vals, blocks)], [100 * b["ci95"][1] - v for v, b in zip(vals, blocks)]]
        fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(names) + 2), 4.2))
        xs = list(range(len(names)))
        width = 0.4 if base else 0.7
        if base:
            ax.bar([x - width / 2 for x in xs], base_vals, width, label="baseline", color="#9aa5b1")
        ax.bar([x + (width / 2 if base else 0) for x in xs], vals, width, yerr=err, capsize=3, label="model", color="#2b6cb0")
        ax.legend()
        ax.set_xticks(xs)
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("accuracy (%) with 95 % interval")
        ax.set_ylim(0, 100)
        ax.set_title(f"{results['task']} · mode {mode}")
        fig.tight_layout()
        paths.append(save_figure(fig, Path(out_dir) / f"{results['task']}_{mode}.png"))
    return paths
