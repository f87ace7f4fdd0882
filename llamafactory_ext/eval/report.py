"""Scores -> ``results.json`` (stable schema), ``results.md`` (``report_md``), PNG charts and, with a
baseline, ``comparison.json``. The typed reader of these files is ``eval.results``.

``results.json`` (``schema_version`` 3; accuracies, chance levels and intervals are fractions in
[0, 1], Δ and its interval percentage points; an undefined figure, such as the accuracy of no
items, is null)::

    {
      "schema_version": 3,
      "task": "italic",
      "source": {"source": "../shared/data/italic", "sha256": "..."},
      "items": {"count": 40, "limit": 40, "ids_sha256": "...", "content_sha256": "...", "seeds": [null]},
      "protocol": {"template": "qwen3", "system": "...", "modes": [...], "max_new_tokens": {"think": 4096, ...},
                   "cutoff": "wrong", "temperature": 0.0, "top_p": 1.0, "seeds": [null], "backend": "hf",
                   "task_options": {"variant": "fast", "extractor": "default", "shots": 0, ...},
                   "option_files": {"shots_source": "<sha256>"}, "rescored_from": null},
      "versions": {"llamafactory": "0.9.5", "transformers": "5.6.0", ...},
      "modes": {
        "think": {
          "accuracy": 0.7787, "correct": 7787, "total": 10000, "ci95": [0.7705, 0.7867], "chance": 0.2587,
          "missing": 0, "unfinished": 12, "unparsed": 40, "cut_off": 12,
          "completed": {"total": 9988, "correct": 7787, "accuracy": 0.7796, "ci95": [...]},
          "forced_answer": {...},                                    # cutoff=force_answer only
          "tokens": {"mean": 812.4, "median": 640.0, "p95": 2210.0}, "mean_output_tokens": 812.4,
          "wall_time_s": 2710.3, "methods": {"answer_line": 9000, ...},
          "per_category": {"literature": {"accuracy", "correct", "total", "ci95", "chance"}, ...,
                           "(no category)": {...}},                 # items without a category, if any
          "per_macro_category": {...}, "category_mean": 0.77,
          "format": {...},                                           # thinking mode only
          "degenerate": ["40 of 40 outputs cut off at max_new_tokens", ...],   # [] when sound
          "seeds": [...], "accuracy_std": 0.004, "per_seed": {...},  # only with seeds=[...]
          "faithfulness": {...}                                      # only with faithfulness=true
        },
        "nothink": {...}
      },
      "think_vs_nothink": {GROUP: PAIRED, ...},    # both modes run: nothink = first, think = second
      "model": {...}, "config": {...}, "warnings": [...], "baseline": "path" | null, "created_utc": "..."
    }

``PAIRED`` (one per group: ``total``, each category and macro category; ``eval.stats.paired``)::

    {"n": items, "pairs": matched (item, seed) rows, "delta": pp, "delta_ci95": [lo, hi] pp,
     "model_only": b, "baseline_only": c, "p_value": p, "p_holm": Holm-adjusted p, "significant": p_holm < 0.05,
     "test": "exact McNemar", "interval": "Newcombe method 10 ...",
     "first": block of the first run ON THE SHARED ITEMS, "second": the same for the second run}

``comparison.json`` (with ``baseline=``): ``{"schema_version": 3, "baseline": path, "partial": bool,
"items_compared": n, "modes": {MODE: {GROUP: PAIRED}}, "baseline_degenerate": {MODE: [reasons]},
"protocol_differences": [...]}``; there ``first`` is the baseline and ``second`` this run, so the
Baseline column of results.md is always on the items both runs share.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from llamafactory_ext.eval.report_md import NO_CATEGORY
from llamafactory_ext.eval.stats import paired, token_stats, wilson, with_holm
from llamafactory_ext.io import atomic_write_json, atomic_write_text, save_figure

SCHEMA_VERSION = 3
GROUP_KEYS = ("category", "macro_category")
CUT_OFF_SHARE = 0.5    # more outputs cut off than this: degenerate
CONSTANT_SHARE = 0.9   # one answer (or none) in at least this share of outputs: degenerate
CONSTANT_MIN_ITEMS = 5
VERSIONED = ("llamafactory", "transformers", "peft", "torch", "vllm", "lm_eval", "llamafactory_ext")


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def block(correct: int, total: int) -> dict[str, Any]:
    """An accuracy object: accuracy, correct, total and the 95 % Wilson interval (None: no items)."""
    return {"accuracy": _ratio(correct, total), "correct": correct, "total": total, "ci95": wilson(correct, total)}


def chance_of(rows: list[dict[str, Any]]) -> float | None:
    """Mean over the rows of their chance of being right by guessing (None when any row has none:
    open answers such as GSM8K's, or rows written before the chance was recorded)."""
    values = [r.get("chance") for r in rows]
    if not values or any(not isinstance(v, (int, float)) for v in values):
        return None
    return round(statistics.fmean(values), 6)


def scored_block(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`block` of some scored rows, with their chance level."""
    return {**block(sum(1 for r in rows if r.get("correct")), len(rows)), "chance": chance_of(rows)}


def group_of(row: dict[str, Any], key: str) -> str:
    return row.get(key) or NO_CATEGORY


def groups(rows: list[dict[str, Any]], key: str) -> list[str]:
    """The groups of ``key`` among ``rows`` (sorted; ``(no category)`` last), or [] when no row has one."""
    if not any(r.get(key) for r in rows):
        return []
    return sorted({group_of(r, key) for r in rows}, key=lambda g: (g == NO_CATEGORY, g))


def _grouped(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[group_of(r, key)].append(r)
    return {g: scored_block(by[g]) for g in groups(rows, key)}


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


def degenerate(stats: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Why a run's figures say little about the model: mostly cut off, one constant answer (or
    none), or an accuracy whose whole 95 % interval lies below chance. [] for a sound run."""
    n, out = stats["total"], []
    if n and stats["cut_off"] / n > CUT_OFF_SHARE:
        out.append(f"{stats['cut_off']} of {n} outputs cut off at max_new_tokens")
    answers = Counter(r.get("extracted") if r.get("status") != "cut_off" else None for r in rows)
    if n >= CONSTANT_MIN_ITEMS and answers:
        value, count = answers.most_common(1)[0]
        if count / n >= CONSTANT_SHARE and value is not None:
            out.append(f"the same answer {value!r} in {count} of {n} outputs")
        elif count / n >= CONSTANT_SHARE and not out:
            out.append(f"no answer extracted from {count} of {n} outputs")
    chance, ci = stats.get("chance"), stats.get("ci95")
    if chance is not None and ci is not None and ci[1] < chance:
        out.append(f"accuracy {100 * stats['accuracy']:.1f} % is below chance ({100 * chance:.1f} %): "
                   f"its 95 % interval ends at {100 * ci[1]:.1f} %")
    return out


def summarize(rows: list[dict[str, Any]], expected: int, mode: str) -> dict[str, Any]:
    """Stats of one mode from its scored prediction rows (all seeds pooled)."""
    statuses = Counter(r.get("status") for r in rows)
    done = [r for r in rows if r.get("finished") is not False]
    tokens = [r["num_tokens"] for r in rows if isinstance(r.get("num_tokens"), (int, float))]
    out: dict[str, Any] = {
        **scored_block(rows),
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
        fixed = out["correct"] + sum(1 for r in forced if r["forced_correct"])
        out["forced_answer"] = {**block(fixed, len(rows)), "items": len(forced),
                                "items_correct": sum(1 for r in forced if r["forced_correct"])}
    if groups(rows, "category"):
        out["per_category"] = _grouped(rows, "category")
        out["category_mean"] = statistics.fmean(b["accuracy"] for b in out["per_category"].values())
    if groups(rows, "macro_category"):
        out["per_macro_category"] = _grouped(rows, "macro_category")
    if mode == "think":
        out["format"] = _format(rows)
    out["degenerate"] = degenerate(out, rows)
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


def keyed(rows: list[dict[str, Any]], mode: str) -> dict[tuple, dict[str, Any]]:
    """(id, seed) -> row for the rows of ``mode``."""
    return {(str(r["id"]), r.get("seed")): r for r in rows if r["mode"] == mode}


def paired_cell(first: dict[tuple, dict[str, Any]], second: dict[tuple, dict[str, Any]]) -> dict[str, Any]:
    """:func:`eval.stats.paired` of two runs' rows, with each run's block on the shared rows."""
    shared = [k for k in second if k in first]
    cell = paired({k: bool(first[k].get("correct")) for k in shared}, {k: bool(second[k].get("correct")) for k in shared})
    cell["first"] = scored_block([first[k] for k in shared])
    cell["second"] = scored_block([second[k] for k in shared])
    return cell


def paired_table(first: list[dict[str, Any]], first_mode: str, second: list[dict[str, Any]], second_mode: str) -> dict[str, Any]:
    """Paired tests of ``second`` against ``first`` in total and per category / macro category,
    with Holm's adjustment over the categories and macro categories (one family)."""
    a, b = keyed(first, first_mode), keyed(second, second_mode)
    out = {"total": paired_cell(a, b)}
    family = []
    for key in GROUP_KEYS:
        members: dict[str, list[tuple]] = defaultdict(list)  # the groups of the second run's items
        for k, r in b.items():
            members[group_of(r, key)].append(k)
        for value in groups(list(b.values()), key):
            out[value] = paired_cell({k: a[k] for k in members[value] if k in a}, {k: b[k] for k in members[value]})
            family.append(value)
    return with_holm(out, family)


def degenerate_warnings(modes: dict[str, Any], who: str = "this run") -> list[str]:
    return [f"{who}, mode {mode}, is degenerate: {'; '.join(s['degenerate'])}: its figures, and any Δ against them, "
            "say little about the model" for mode, s in modes.items() if s.get("degenerate")]


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a number (absent ones left out)."""
    from llamafactory_ext.provenance import versions

    return {name: v for name, v in versions(VERSIONED).items() if v}


def write_outputs(out_dir: Path, results: dict[str, Any], baseline: Any, comparison: dict[str, Any] | None,
                  task_categories: dict[str, list[str]]) -> None:
    """results.json, comparison.json (removed when this run has no baseline: no stale Δ), results.md, PNGs."""
    from llamafactory_ext.eval.report_md import render_markdown

    atomic_write_json(out_dir / "results.json", results)
    if comparison is not None:
        atomic_write_json(out_dir / "comparison.json", comparison)
    else:
        (out_dir / "comparison.json").unlink(missing_ok=True)
    atomic_write_text(out_dir / "results.md", render_markdown(results, baseline, comparison, task_categories))
    plot_categories(results, comparison, out_dir, task_categories)


# ----------------------------------------------------------------------------- plots


def _plot_groups(s: dict[str, Any], comp: dict[str, Any], task_categories: dict[str, list[str]]) -> list[tuple[str, dict, float]]:
    """(label, model block, baseline accuracy in % on the shared items) per bar, defined ones only."""
    from llamafactory_ext.eval.report_md import category_layout, title

    def base(name: str) -> float:
        first = (comp.get(name) or {}).get("first") or {}
        return 100 * (first.get("accuracy") or 0.0)

    bars = []
    for macro, cats in category_layout(task_categories, s):
        bars += [(title(c), s["per_category"][c], base(c)) for c in cats]
        if macro is not None and not cats and macro in s.get("per_macro_category", {}):
            bars.append((title(macro), s["per_macro_category"][macro], base(macro)))
    bars.append(("Total", s, base("total")))
    return [bar for bar in bars if bar[1].get("ci95")]


def plot_categories(results: dict[str, Any], comparison: dict[str, Any] | None, out_dir: str | Path,
                    task_categories: dict[str, list[str]]) -> list[Path]:
    """One PNG per mode: accuracy per category (and total) with 95 % intervals, next to the baseline
    on the shared items."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for mode, s in results["modes"].items():
        comp = ((comparison or {}).get("modes") or {}).get(mode)
        bars = _plot_groups(s, comp or {}, task_categories)
        if not bars:
            continue
        vals = [100 * b["accuracy"] for _, b, _ in bars]
        err = [[v - 100 * b["ci95"][0] for v, (_, b, _) in zip(vals, bars)], [100 * b["ci95"][1] - v for v, (_, b, _) in zip(vals, bars)]]
        fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(bars) + 2), 4.2))
        xs = list(range(len(bars)))
        width = 0.4 if comp else 0.7
        if comp:
            ax.bar([x - width / 2 for x in xs], [base for _, _, base in bars], width, label="baseline (shared items)", color="#9aa5b1")
        ax.bar([x + (width / 2 if comp else 0) for x in xs], vals, width, yerr=err, capsize=3, label="model", color="#2b6cb0")
        ax.legend()
        ax.set_xticks(xs)
        ax.set_xticklabels([label for label, _, _ in bars], rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("accuracy (%) with 95 % interval")
        ax.set_ylim(0, 100)
        ax.set_title(f"{results['task']} · mode {mode}")
        fig.tight_layout()
        paths.append(save_figure(fig, Path(out_dir) / f"{results['task']}_{mode}.png"))
    return paths
