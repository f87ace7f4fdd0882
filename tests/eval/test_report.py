"""results.json schema v3 (n, accuracy, a Wilson interval and the chance level everywhere; null where
undefined), results.md, the paired tests (baseline: comparison.json; one model: think_vs_nothink)
checked against scipy on a constructed case, and the baseline checks (task, source, items, modes;
baseline_partial). The intervals of Δ, Holm's adjustment, degenerate runs and the protocol check are
recomputed independently in test_report_audit.py.

Everything here re-scores constructed predictions (``predictions=``, no model) except where a
check must happen before a model is loaded."""

from __future__ import annotations

import json
import math
import re

import pytest

from llamafactory_ext.eval.baseline import BaselineError
from llamafactory_ext.eval.runner import run
from tests.eval.common import eval_cfg, italic_rows, rescore_cfg, rows_of, write_rows

Z95 = 1.959963984540054


def wilson(k: int, n: int) -> list[float]:
    """The 95 % Wilson score interval, written out (independent of eval.stats)."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return [centre - half, centre + half]


def exact_mcnemar(b: int, c: int) -> float:
    from scipy.stats import binomtest

    return binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0


def _output(mode: str, letter: str) -> str:
    return f"<think>\nCi penso.\n</think>\n\n{letter}" if mode == "think" else letter


def predictions(rows: list[dict], right: dict[str, set[int]]) -> list[dict]:
    """One prediction per item and mode: the gold letter for the ids in ``right[mode]``, else a wrong one."""
    out = []
    for mode, ids in right.items():
        for i, row in enumerate(rows):
            gold = row["answer"]
            out.append({"id": str(i), "mode": mode, "output": _output(mode, gold if i in ids else ("A" if gold != "A" else "B"))})
    return out


# The constructed case: 20 items, geography (even ids) and orthography (odd ids).
# nothink: model right on 0-13, baseline on 0-3 and 14-15 -> b = 10, c = 2 in total (p = 0.039 *),
#          5 and 1 per category (p = 0.22, no *). think: model right on all 20, baseline on none.
N = 20
MODEL = {"nothink": set(range(14)), "think": set(range(N))}
BASELINE = {"nothink": {0, 1, 2, 3, 14, 15}, "think": set()}


@pytest.fixture(scope="module")
def paired_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("paired")
    rows = italic_rows(N)
    source = write_rows(root / "italic.jsonl", rows)
    base = run(rescore_cfg(source, write_rows(root / "base.jsonl", predictions(rows, BASELINE)), root / "base"))
    model = run(rescore_cfg(source, write_rows(root / "model.jsonl", predictions(rows, MODEL)), root / "model",
                            baseline=str(root / "base")))
    return {"root": root, "rows": rows, "source": source, "base": base, "model": model}


def _blocks(stats: dict) -> list[tuple[str, dict]]:
    out = [("total", stats), ("completed", stats["completed"])]
    out += [(f"category {k}", v) for k, v in stats.get("per_category", {}).items()]
    out += [(f"macro {k}", v) for k, v in stats.get("per_macro_category", {}).items()]
    return out


def _chances(rows: list[dict]) -> dict[str, float]:
    """Chance level per group, from the source rows: mean over items of 1 / number of options."""
    by: dict[str, list[float]] = {"total": []}
    for row in rows:
        for group in ("total", row["category"], row["macro_category"]):
            by.setdefault(group, []).append(1 / len(row["options"]))
    return {k: sum(v) / len(v) for k, v in by.items()}


def test_schema_v3_every_block_has_n_accuracy_wilson_interval_and_chance(paired_case, base_run):
    from tests.helpers import ITALIC_SAMPLE

    for results, source_rows in ((paired_case["model"], paired_case["rows"]), (base_run["results"], ITALIC_SAMPLE)):
        assert results["schema_version"] == 3
        assert {"task", "source", "items", "protocol", "versions", "modes", "model", "config", "warnings", "created_utc"} <= set(results)
        chances = _chances(source_rows)
        for mode, stats in results["modes"].items():
            assert {"per_category", "per_macro_category", "tokens", "completed", "cut_off", "missing", "degenerate"} <= set(stats), mode
            for name, b in _blocks(stats):
                if b["total"] == 0:  # undefined: no number at all
                    assert b["accuracy"] is None and b["ci95"] is None, (mode, name)
                    continue
                assert b["accuracy"] == pytest.approx(b["correct"] / b["total"]), (mode, name)
                assert b["ci95"] == pytest.approx(wilson(b["correct"], b["total"]), abs=2e-6), (mode, name)
                assert 0.0 <= b["ci95"][0] <= b["accuracy"] <= b["ci95"][1] <= 1.0, (mode, name)
                group = name.split(" ", 1)[1] if " " in name else name
                if name != "completed":
                    assert b["chance"] == pytest.approx(chances[group], abs=1e-6), (mode, name)
    stats = paired_case["model"]["modes"]["nothink"]
    assert {k: (v["correct"], v["total"]) for k, v in stats["per_category"].items()} == {"geography": (7, 10), "orthography": (7, 10)}
    assert set(stats["per_macro_category"]) == {"culture and commonsense", "language capability"}
    assert paired_case["model"]["items"]["count"] == N and len(paired_case["model"]["items"]["ids_sha256"]) == 64


def test_results_md_shows_n_and_interval_per_category(paired_case, base_run):
    md = (paired_case["root"] / "model" / "results.md").read_text(encoding="utf-8")
    lo, hi = wilson(7, 10)
    blo, bhi = wilson(3, 10)  # the baseline: ids 0, 2 and 14 of the even ones
    assert f"| Geography | 10 | 25.00 | 30.00 [{100 * blo:.1f}, {100 * bhi:.1f}] | 70.00 [{100 * lo:.1f}, {100 * hi:.1f}] |" in md, md
    assert "| Orthography | 10 | 25.00 |" in md and "| **Culture and commonsense** | **10** | **25.00** |" in md
    # the real ITALIC run of the small model too: every category row has its n, chance and an interval
    md = (base_run["dir"] / "results.md").read_text(encoding="utf-8")
    for label, n, chance in (("Geography", 2, 25.0), ("Orthography", 1, 50.0), ("Literature", 1, 100 / 3),
                             ("Synonyms and antonyms", 1, 20.0)):
        assert re.search(rf"^\| {label} \| {n} \| {chance:.2f} \| \d+\.\d\d \[\d+\.\d, \d+\.\d\] \|$", md, re.MULTILINE), (label, md)
    assert re.search(r"^\| \*\*Total\*\* \| \*\*5\*\* \| \*\*\d+\.\d\d\*\* \| \*\*\d+\.\d\d \[\d+\.\d, \d+\.\d\]\*\* \|$",
                     md, re.MULTILINE), md
    assert md.startswith("# italic evaluation\n\n| Setting | Value |") and "| max_new_tokens | think 4 · nothink 4 |" in md


def _cell(model_ids: set[int], base_ids: set[int], ids: range | list[int]) -> dict:
    """The figures of one paired cell, counted here (the interval and Holm: test_report_audit.py)."""
    b = sum(1 for i in ids if i in model_ids and i not in base_ids)
    c = sum(1 for i in ids if i in base_ids and i not in model_ids)
    n = len(ids)
    delta = 100 * (len(model_ids & set(ids)) - len(base_ids & set(ids))) / n
    p = exact_mcnemar(b, c)
    return {"n": n, "delta": pytest.approx(delta, abs=1e-3), "model_only": b, "baseline_only": c,
            "p_value": pytest.approx(p, abs=1e-6), "first_correct": len(base_ids & set(ids)), "second_correct": len(model_ids & set(ids))}


def _got(cell: dict) -> dict:
    """The same figures as read from a comparison cell (Baseline and Model on the shared items)."""
    return {"n": cell["n"], "delta": cell["delta"], "model_only": cell["model_only"], "baseline_only": cell["baseline_only"],
            "p_value": cell["p_value"], "first_correct": cell["first"]["correct"], "second_correct": cell["second"]["correct"]}


def test_comparison_json_is_the_exact_mcnemar_test_of_both_runs(paired_case):
    comparison = json.loads((paired_case["root"] / "model" / "comparison.json").read_text())
    assert comparison["partial"] is False and comparison["items_compared"] == N
    geo, ortho = list(range(0, N, 2)), list(range(1, N, 2))
    for mode in ("nothink", "think"):
        table = comparison["modes"][mode]
        assert _got(table["total"]) == _cell(MODEL[mode], BASELINE[mode], range(N)), mode
        assert _got(table["geography"]) == _cell(MODEL[mode], BASELINE[mode], geo), mode
        assert _got(table["orthography"]) == _cell(MODEL[mode], BASELINE[mode], ortho), mode
        assert table["total"]["significant"] == (table["total"]["p_value"] < 0.05)  # the total: a family of one
        assert table["culture and commonsense"] == table["geography"]  # one category per macro here
    # the constructed figures themselves: b = 10, c = 2, p = P(X <= 2 | 12, 1/2) * 2
    total = comparison["modes"]["nothink"]["total"]
    assert (total["model_only"], total["baseline_only"]) == (10, 2)
    assert total["p_value"] == pytest.approx(2 * (1 + 12 + 66) / 4096, abs=1e-6) and total["significant"]
    assert total["p_holm"] == total["p_value"]
    assert comparison["modes"]["nothink"]["geography"]["p_value"] == pytest.approx(2 * 7 / 64, abs=1e-6)


def test_markdown_marks_p_below_005_with_a_star(paired_case):
    md = (paired_case["root"] / "model" / "results.md").read_text(encoding="utf-8")
    nothink = md.split("## Mode `nothink`")[1].split("## ")[0]
    assert "| Category | n | Chance | Baseline [95 % CI] | Model [95 % CI] | Δ (pp) [95 % CI] | p | p (Holm) |" in nothink
    assert re.search(r"^\| \*\*Total\*\* \| \*\*20\*\* \| \*\*25\.00\*\* \| \*\*30\.00 \[[\d.]+, [\d.]+\]\*\* \| "
                     r"\*\*70\.00 \[[\d.]+, [\d.]+\]\*\* \| \*\*\+40\.00 \[\+[\d.]+, \+[\d.]+\] \*\*\* \| \*\*0\.0386\*\* \| \*\*0\.0386\*\* \|$",
                     nothink, re.MULTILINE), nothink
    geography = next(line for line in nothink.splitlines() if line.startswith("| Geography |"))
    assert re.search(r"\| \+40\.00 \[-[\d.]+, \+[\d.]+\] \| 0\.219 \| [\d.]+ \|$", geography) and "*" not in geography, geography
    assert "Δ marked * has p (Holm) < 0.05" in md


def test_think_vs_nothink_paired_table(paired_case):
    pairs = paired_case["model"]["think_vs_nothink"]
    # first = nothink, second = think: b = right only with thinking (ids 14-19), c = right only without (none)
    assert _got(pairs["total"]) == _cell(MODEL["think"], MODEL["nothink"], range(N))
    assert _got(pairs["geography"]) == _cell(MODEL["think"], MODEL["nothink"], list(range(0, N, 2)))
    assert (pairs["total"]["model_only"], pairs["total"]["baseline_only"]) == (6, 0)
    md = (paired_case["root"] / "model" / "results.md").read_text(encoding="utf-8")
    section = md.split("## Thinking vs non-thinking, same model, same items")[1]
    p = exact_mcnemar(6, 0)
    assert re.search(rf"^\| \*\*Total\*\* \| 20 \| 70\.00 \| 100\.00 \| \+30\.00 \[\+[\d.]+, \+[\d.]+\] \* \| 6 / 0 \| {p:.3g} \| {p:.3g} \|$",
                     section, re.MULTILINE), section
    assert re.search(r"^\| Geography \| 10 \| 70\.00 \| 100\.00 \| \+30\.00 \[-[\d.]+, \+[\d.]+\] \| 3 / 0 \| 0\.25 \| [\d.]+ \|$",
                     section, re.MULTILINE), section
    # one mode only: no paired table of modes
    one = run(rescore_cfg(paired_case["source"], write_rows(paired_case["root"] / "one.jsonl",
                                                            predictions(paired_case["rows"], {"nothink": {0}})),
                          paired_case["root"] / "one"))
    assert "think_vs_nothink" not in one
    assert "Thinking vs non-thinking" not in (paired_case["root"] / "one" / "results.md").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- baseline checks


def test_baseline_of_another_task_is_refused(paired_case, gsm_baseline):
    with pytest.raises(BaselineError, match=r"cannot be compared: it has task 'gsm8k' \(this run: 'italic'\)"):
        run(rescore_cfg(paired_case["source"], paired_case["root"] / "model.jsonl", paired_case["root"] / "x1",
                        baseline=str(gsm_baseline)))


@pytest.fixture(scope="module")
def gsm_baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("gsm-baseline")
    source = write_rows(root / "gsm8k.jsonl", [{"question": "1 + 1?", "answer": "1+1=2\n#### 2"}])
    run(rescore_cfg(source, write_rows(root / "p.jsonl", [{"id": "0", "mode": "nothink", "output": "2"}]), root / "out", task="gsm8k"))
    return root / "out"


def test_baseline_of_another_source_file_is_refused(paired_case, tmp_path):
    other_rows = italic_rows(N)
    other_rows[3]["question"] = "Una domanda diversa?"
    other = write_rows(tmp_path / "italic.jsonl", other_rows)  # same name, other content
    with pytest.raises(BaselineError, match="its content differs"):
        run(rescore_cfg(other, paired_case["root"] / "model.jsonl", tmp_path / "o", baseline=str(paired_case["root"] / "base")))


def test_baseline_with_other_items_is_refused_then_compared_on_the_intersection(tmp_path):
    rows = italic_rows(60)
    source = write_rows(tmp_path / "italic.jsonl", rows)
    # the baseline: 50 % over its 60 items, 33.33 % over the first 30 (the ones this run shares)
    base_right = set(range(0, 30, 3)) | set(range(30, 60))
    run(rescore_cfg(source, write_rows(tmp_path / "b.jsonl", predictions(rows, {"nothink": base_right})), tmp_path / "b60"))
    ours = write_rows(tmp_path / "m.jsonl", predictions(rows[:30], {"nothink": set(range(0, 30, 2))}))
    with pytest.raises(BaselineError, match="other items in mode nothink: 60 items there, 30 here, 30 shared"):
        run(rescore_cfg(source, ours, tmp_path / "m30", limit=30, baseline=str(tmp_path / "b60")))
    res = run(rescore_cfg(source, ours, tmp_path / "p30", limit=30, baseline=str(tmp_path / "b60"), baseline_partial=True))
    comparison = json.loads((tmp_path / "p30" / "comparison.json").read_text())
    assert comparison["partial"] is True and comparison["items_compared"] == 30
    assert _got(comparison["modes"]["nothink"]["total"]) == _cell(set(range(0, 30, 2)), base_right, range(30))
    assert any("on the 30 items both runs share (baseline_partial=true)" in w for w in res["warnings"])
    md = (tmp_path / "p30" / "results.md").read_text(encoding="utf-8")
    assert "Baseline and Δ are computed on the 30 items both runs share" in md
    # the Baseline column is the baseline on the shared items (10 of 30), not its whole run (30 of 60)
    lo, hi = wilson(10, 30)
    assert f"| **Total** | **30** | **25.00** | **33.33 [{100 * lo:.1f}, {100 * hi:.1f}]** | **50.00 [" in md, md


def test_baseline_without_the_mode_is_refused_unless_partial(paired_case, tmp_path):
    source, rows = paired_case["source"], paired_case["rows"]
    run(rescore_cfg(source, write_rows(tmp_path / "b.jsonl", predictions(rows, {"nothink": BASELINE["nothink"]})), tmp_path / "b"))
    with pytest.raises(BaselineError, match=r"has no mode think \(it has nothink\)"):
        run(rescore_cfg(source, paired_case["root"] / "model.jsonl", tmp_path / "m", baseline=str(tmp_path / "b")))
    res = run(rescore_cfg(source, paired_case["root"] / "model.jsonl", tmp_path / "p", baseline=str(tmp_path / "b"),
                          baseline_partial=True))
    comparison = json.loads((tmp_path / "p" / "comparison.json").read_text())
    assert set(comparison["modes"]) == {"nothink"} and comparison["partial"] is True
    assert _got(comparison["modes"]["nothink"]["total"]) == _cell(MODEL["nothink"], BASELINE["nothink"], range(N))
    md = (tmp_path / "p" / "results.md").read_text(encoding="utf-8")
    assert "Baseline and Δ are computed on the 20 items both runs share" in md and any("baseline_partial=true" in w for w in res["warnings"])
    think = md.split("## Mode `think`")[1].split("## ")[0]
    assert "| Category | n | Chance | Model [95 % CI] |" in think  # no baseline column where the baseline has no such mode


def test_baseline_items_are_checked_before_any_model_is_loaded(tmp_path, small_model, base_run, monkeypatch):
    """limit=2 against the 5-item base run: refused before generating (no model loaded, no row written)."""
    def no_engine(*a, **k):
        raise AssertionError("the baseline check must come before the model")

    monkeypatch.setattr("llamafactory_ext.eval.engine.load_engine", no_engine)
    with pytest.raises(BaselineError, match=r"has other items: 5 items, seeds \[None\] there, 2 items, seeds \[None\] here"):
        run(eval_cfg(small_model, base_run["italic"], tmp_path / "o", thinking="both", limit=2, baseline=str(base_run["dir"])))
    assert not (tmp_path / "o" / "predictions.jsonl").exists()
    with pytest.raises(BaselineError, match=r"scored under another protocol: temperature 0\.0 there, 0\.6 here"):
        run(eval_cfg(small_model, base_run["italic"], tmp_path / "o", thinking="both", temperature=0.6, seeds=[1, 2],
                     baseline=str(base_run["dir"])))
    assert not (tmp_path / "o" / "predictions.jsonl").exists() or not (tmp_path / "o" / "predictions.jsonl").read_text()


def test_rows_of_a_rescored_run_are_the_model_outputs(paired_case):
    rows = rows_of(paired_case["root"] / "model" / "predictions.jsonl")
    assert len(rows) == 2 * N and sum(r["correct"] for r in rows) == len(MODEL["nothink"]) + len(MODEL["think"])
