"""Scores -> ``results.json`` (stable schema), ``results.md`` (published-style tables), PNG charts.

``results.json`` (``schema_version`` 1; accuracies are fractions in [0, 1])::

    {
      "schema_version": 1,
      "task": "italic",
      "modes": {
        "think": {
          "accuracy": 0.7787, "correct": 7787, "total": 10000, "missing": 0,
          "unfinished": 12, "unparsed": 40,
          "mean_output_tokens": 812.4, "wall_time_s": 2710.3,
          "methods": {"answer_line": 9000, "bare_letter": 900, ...},
          "per_category": {"literature": {"accuracy": .., "correct": .., "total": ..}, ...},
          "per_macro_category": {"culture and commonsense": {...}, "language capability": {...}},
          "category_mean": 0.77,                  # unweighted mean over categories
          "format": {"closed_think": 0.998, "balanced_tags": 0.997, "cut_off": 0.002,
                      "mean_reasoning_words": 301.2},            # thinking mode only
          "seeds": [42, 123, 456], "accuracy_std": 0.004,       # only with seeds=[...]
          "per_seed": {"42": {"accuracy": .., "correct": .., "total": ..}, ...},
          "faithfulness": {"samples": 50, "fractions": {"0.25": {"changed": 20, "change_rate": 0.4,
                            "accuracy": 0.5}, ...}}              # only with faithfulness=true
        },
        "nothink": {...}
      },
      "config": {...every eval key...},
      "model": {"model_name_or_path": .., "adapter_name_or_path": .., "template": .., "backend": ..},
      "warnings": ["..."],
      "baseline": "path/to/baseline/results.json" | null,
      "created_utc": "2026-11-22T07:00:00Z"
    }
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from llamafactory_ext.config import UserError

SCHEMA_VERSION = 1


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def _block(correct: int, total: int) -> dict[str, Any]:
    return {"accuracy": _ratio(correct, total), "correct": correct, "total": total}


def summarize(rows: list[dict[str, Any]], expected: int, mode: str) -> dict[str, Any]:
    """Stats of one mode (one seed) from its scored prediction rows (in item order)."""
    total = len(rows)
    correct = sum(1 for r in rows if r.get("correct"))
    statuses = Counter(r.get("status") for r in rows)
    tokens = [r["num_tokens"] for r in rows if isinstance(r.get("num_tokens"), (int, float))]
    out: dict[str, Any] = {
        "accuracy": _ratio(correct, total),
        "correct": correct,
        "total": total,
        "missing": max(0, expected - total),
        "unfinished": statuses.get("unfinished", 0),
        "unparsed": statuses.get("unparsed", 0),
        "mean_output_tokens": round(sum(tokens) / len(tokens), 2) if tokens else None,
        "wall_time_s": round(sum(float(r.get("gen_time_s") or 0.0) for r in rows), 3),
        "methods": dict(sorted(Counter(r.get("method") for r in rows if r.get("status") == "ok").items())),
    }
    cats: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    macros: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r.get("category"):
            cats[r["category"]][0] += bool(r.get("correct"))
            cats[r["category"]][1] += 1
        if r.get("macro_category"):
            macros[r["macro_category"]][0] += bool(r.get("correct"))
            macros[r["macro_category"]][1] += 1
    if cats:
        out["per_category"] = {k: _block(*v) for k, v in sorted(cats.items())}
        out["per_macro_category"] = {k: _block(*v) for k, v in sorted(macros.items())}
        out["category_mean"] = statistics.fmean(b["accuracy"] for b in out["per_category"].values())
    if mode == "think":
        closed = [r for r in rows if r.get("closed")]
        words = [r.get("reasoning_words") or 0 for r in closed]
        out["format"] = {
            "closed_think": _ratio(len(closed), total),
            "balanced_tags": _ratio(sum(1 for r in rows if r.get("balanced")), total),
            "cut_off": _ratio(sum(1 for r in rows if r.get("finished") is False), total),
            "mean_reasoning_words": round(sum(words) / len(words), 2) if words else None,
        }
    else:
        out["cut_off"] = _ratio(sum(1 for r in rows if r.get("finished") is False), total)
    return out


def merge_seeds(per_seed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Pooled counts over seeds; accuracy = mean over seeds, plus its standard deviation."""
    blocks = list(per_seed.values())
    first = dict(blocks[0])
    if len(blocks) == 1:
        return first
    accs = [b["accuracy"] for b in blocks]
    merged = dict(first)
    for key in ("correct", "total", "missing", "unfinished", "unparsed"):
        merged[key] = sum(b[key] for b in blocks)
    merged["accuracy"] = statistics.fmean(accs)
    merged["accuracy_std"] = statistics.stdev(accs)
    merged["wall_time_s"] = round(sum(b["wall_time_s"] for b in blocks), 3)
    toks = [b["mean_output_tokens"] for b in blocks if b["mean_output_tokens"] is not None]
    merged["mean_output_tokens"] = round(statistics.fmean(toks), 2) if toks else None
    merged["methods"] = dict(sorted(sum((Counter(b["methods"]) for b in blocks), Counter()).items()))
    for key in ("per_category", "per_macro_category"):
        if key in first:
            pooled: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for b in blocks:
                for name, v in b[key].items():
                    pooled[name][0] += v["correct"]
                    pooled[name][1] += v["total"]
            merged[key] = {k: _block(*v) for k, v in sorted(pooled.items())}
    if "per_category" in merged:
        merged["category_mean"] = statistics.fmean(b["accuracy"] for b in merged["per_category"].values())
    merged["per_seed"] = {k: {"accuracy": b["accuracy"], "correct": b["correct"], "total": b["total"]} for k, b in per_seed.items()}
    merged["seeds"] = [int(k) for k in per_seed]
    return merged


# ----------------------------------------------------------------------------- baseline


def load_baseline(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise UserError(f"baseline: file not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"baseline {p}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or "modes" not in data or not isinstance(data["modes"], dict):
        raise UserError(f"baseline {p}: not an eval results.json (no 'modes' mapping)")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"baseline {p}: schema_version {data.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    return data


# ----------------------------------------------------------------------------- markdown


def _pct(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def _delta(model: float | None, base: float | None) -> str:
    if model is None or base is None:
        return "—"
    return f"{100 * (model - base):+.2f}"


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()


def category_layout(task_categories: dict[str, list[str]], stats: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """[(macro, [categories...]), ...] in the published order; unknown names appended."""
    seen_cats = set(stats.get("per_category", {}))
    layout = []
    placed = set()
    for macro, cats in task_categories.items():
        present = [c for c in cats if c in seen_cats]
        if present or macro in stats.get("per_macro_category", {}):
            layout.append((macro, present))
            placed.update(present)
    extra = sorted(seen_cats - placed)
    if extra:
        layout.append(("other", extra))
    return layout


def _get(block: dict | None, *keys: str) -> float | None:
    cur: Any = block
    for key in keys:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur if isinstance(cur, (int, float)) else None


def mode_table(stats: dict[str, Any], base: dict[str, Any] | None, task_categories: dict[str, list[str]]) -> list[str]:
    lines = ["| Category | Baseline | Model | Δ |", "|---|---:|---:|---:|"]
    if "per_category" in stats:
        for macro, cats in category_layout(task_categories, stats):
            for cat in cats:
                m = _get(stats, "per_category", cat, "accuracy")
                b = _get(base, "per_category", cat, "accuracy")
                lines.append(f"| {_title(cat)} | {_pct(b)} | {_pct(m)} | {_delta(m, b)} |")
            if macro != "other":
                m = _get(stats, "per_macro_category", macro, "accuracy")
                b = _get(base, "per_macro_category", macro, "accuracy")
                lines.append(f"| **{macro.capitalize()}** | **{_pct(b)}** | **{_pct(m)}** | **{_delta(m, b)}** |")
    m, b = stats.get("accuracy"), _get(base, "accuracy")
    lines.append(f"| **Total** | **{_pct(b)}** | **{_pct(m)}** | **{_delta(m, b)}** |")
    return lines


def render_markdown(results: dict[str, Any], baseline: dict[str, Any] | None, task_categories: dict[str, list[str]]) -> str:
    model = results.get("model", {})
    out = [f"# {results['task']} evaluation", ""]
    name = model.get("model_name_or_path")
    if model.get("adapter_name_or_path"):
        name = f"{name} + {model['adapter_name_or_path']}"
    out.append(f"Model: `{name}` · template `{model.get('template')}` · backend `{model.get('backend')}`")
    if results.get("baseline"):
        out.append(f"Baseline: `{results['baseline']}`")
    out.append("")
    out += ["| Mode | Accuracy | Correct / Total | Unfinished | Unparsed | Missing | Mean output tokens | Wall time (s) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, s in results["modes"].items():
        acc = _pct(s["accuracy"]) + (f" ± {100 * s['accuracy_std']:.2f}" if "accuracy_std" in s else "")
        out.append(
            f"| {mode} | {acc} | {s['correct']} / {s['total']} | {s['unfinished']} | {s['unparsed']} | "
            f"{s['missing']} | {s['mean_output_tokens'] if s['mean_output_tokens'] is not None else '—'} | {s['wall_time_s']} |"
        )
    for mode, s in results["modes"].items():
        base = (baseline or {}).get("modes", {}).get(mode) if baseline else None
        out += ["", f"## Mode `{mode}`", ""]
        out += mode_table(s, base, task_categories)
        if "format" in s:
            f = s["format"]
            out += ["", (f"Format compliance: closed `</think>` {_pct(f['closed_think'])} %, balanced tags "
                         f"{_pct(f['balanced_tags'])} %, cut off at max_new_tokens {_pct(f['cut_off'])} %, mean reasoning "
                         f"length {f['mean_reasoning_words']} words.")]
        if "faithfulness" in s:
            fa = s["faithfulness"]
            out += ["", f"Faithfulness probe ({fa['samples']} items, reasoning cut and answer forced):", "",
                    "| Reasoning kept | Answer changed | Accuracy |", "|---:|---:|---:|"]
            for frac, v in fa["fractions"].items():
                out.append(f"| {float(frac) * 100:.0f} % | {_pct(v['change_rate'])} % | {_pct(v['accuracy'])} |")
        if s.get("methods"):
            out += ["", "Extraction methods: " + ", ".join(f"`{k}` {v}" for k, v in s["methods"].items())]
    if results.get("warnings"):
        out += ["", "## Warnings", ""] + [f"- {w}" for w in results["warnings"]]
    out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------- plots


def plot_categories(results: dict[str, Any], baseline: dict[str, Any] | None, out_dir: str | os.PathLike,
                    task_categories: dict[str, list[str]]) -> list[Path]:
    """One PNG per mode: accuracy per category (and total), model next to the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for mode, s in results["modes"].items():
        base = (baseline or {}).get("modes", {}).get(mode) if baseline else None
        names, model_vals, base_vals = [], [], []
        for macro, cats in category_layout(task_categories, s):
            for cat in cats:
                names.append(_title(cat))
                model_vals.append(100 * (_get(s, "per_category", cat, "accuracy") or 0.0))
                base_vals.append(100 * (_get(base, "per_category", cat, "accuracy") or 0.0))
        names.append("Total")
        model_vals.append(100 * s["accuracy"])
        base_vals.append(100 * (_get(base, "accuracy") or 0.0))
        fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(names) + 2), 4.2))
        xs = list(range(len(names)))
        width = 0.4 if base else 0.7
        if base:
            ax.bar([x - width / 2 for x in xs], base_vals, width, label="baseline", color="#9aa5b1")
            ax.bar([x + width / 2 for x in xs], model_vals, width, label="model", color="#2b6cb0")
            ax.legend()
        else:
            ax.bar(xs, model_vals, width, label="model", color="#2b6cb0")
        ax.set_xticks(xs)
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{results['task']} · mode {mode}")
        fig.tight_layout()
        path = Path(out_dir) / f"{results['task']}_{mode}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        os.replace(tmp, path)
        paths.append(path)
    return paths

