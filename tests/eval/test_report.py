"""results.json schema v2 (n, accuracy and a Wilson interval everywhere), results.md, the paired
tests (baseline: comparison.json; one model: think_vs_nothink) checked against scipy on a
constructed case, and the baseline checks (task, source, items, modes; baseline_partial).

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


def test_schema_v2_every_block_has_n_accuracy_and_wilson_interval(paired_case, base_run):
    for results in (paired_case["model"], base_run["results"]):
        assert results["schema_version"] == 2
        assert {"task", "source", "items", "modes", "model", "config", "warnings", "created_utc"} <= set(results)
        for mode, stats in results["modes"].items():
            assert {"per_category", "per_macro_category", "tokens", "completed", "cut_off", "missing"} <= set(stats), mode
            for name, b in _blocks(stats):
                assert b["accuracy"] == pytest.approx(b["correct"] / b["total"] if b["total"] else 0.0), (mode, name)
                assert b["ci95"] == pytest.approx(wilson(b["correct"], b["total"]), abs=2e-6), (mode, name)
                assert 0.0 <= b["ci95"][0] <= b["accuracy"] <= b["ci95"][1] <= 1.0, (mode, name)
    stats = paired_case["model"]["modes"]["nothink"]
    assert {k: (v["correct"], v["total"]) for k, v in stats["per_category"].items()} == {"geography": (7, 10), "orthography": (7, 10)}
    assert set(stats["per_macro_category"]) == {"culture and commonsense", "language capability"}
    assert paired_case["model"]["items"]["count"] == N and len(paired_case["model"]["items"]["ids_sha256"]) == 64


def test_results_md_shows_n_and_interval_per_category(paired_case, base_run):
    md = (paired_case["root"] / "model" / "results.md").read_text(encoding="utf-8")
    lo, hi = wilson(7, 10)
    assert f"| Geography | 10 | 30.00 | 70.00 [{100 * lo:.1f}, {100 * hi:.1f}] |" in md, md
    assert "| Orthography | 10 |" in md and "| **Culture and commonsense** | **10** |" in md
    # the real ITALIC run of the small model too: every category row has its n and an interval
    md = (base_run["dir"] / "results.md").read_text(encoding="utf-8")
    for label, n in (("Geography", 2), ("Orthography", 1), ("Literature", 1), ("Synonyms and antonyms", 1)):
        assert re.search(rf"^\| {label} \| {n} \| \d+\.\d\d \[\d+\.\d, \d+\.\d\] \|$", md, re.MULTILINE), (label, md)
    assert re.search(r"^\| \*\*Total\*\* \| \*\*5\*\* \| \*\*\d+\.\d\d \[\d+\.\d, \d+\.\d\]\*\* \|$", md, re.MULTILINE), md


def _cell(model_ids: set[int], base_ids: set[int], ids: range | list[int]) -> dict:
    b = sum(1 for i in ids if i in model_ids and i not in base_ids)
    c = sum(1 for i in ids if i in base_ids and i not in model_ids)
    n = len(ids)
    delta = 100 * (len(model_ids & set(ids)) - len(base_ids & set(ids))) / n
    p = exact_mcnemar(b, c)
    return {"n": n, "delta": pytest.approx(delta, abs=1e-3), "model_only": b, "baseline_only": c,
            "p_value": pytest.approx(p, abs=1e-6), "significant": p < 0.05}


def test_comparison_json_is_the_exact_mcnemar_test_of_both_runs(paired_case):
    comparison = json.loads((paired_case["root"] / "model" / "comparison.json").read_text())
    assert comparison["partial"] is False and comparison["items_compared"] == N
    geo, ortho = list(range(0, N, 2)), list(range(1, N, 2))
    for mode in ("nothink", "think"):
        table = comparison["modes"][mode]
        assert table["total"] == _cell(MODEL[mode], BASELINE[mode], range(N)), mode
        assert table["geography"] == _cell(MODEL[mode], BASELINE[mode], geo), mode
        assert table["orthography"] == _cell(MODEL[mode], BASELINE[mode], ortho), mode
        assert table["culture and commonsense"] == table["geography"]  # one category per macro here
    # the constructed figures themselves: b = 10, c = 2, p = P(X <= 2 | 12, 1/2) * 2
    total = comparison["modes"]["nothink"]["total"]
    assert (total["model_only"], total["baseline_only"]) == (10, 2)
    assert total["p_value"] == pytest.approx(2 * (1 + 12 + 66) / 4096, abs=1e-6) and total["significant"]
    assert comparison["modes"]["nothink"]["geography"]["p_value"] == pytest.approx(2 * 7 / 64, abs=1e-6)


def test_markdown_marks_p_below_005_with_a_star(paired_case):
    md = (paired_case["root"] / "model" / "results.md").read_text(encoding="utf-8")
    nothink = md.split("## Mode `nothink`")[1].split("## ")[0]
    assert "| Category | n | Baseline | Model [95 % CI] | Δ (pp) | p |" in nothink
    assert re.search(r"^\| \*\*Total\*\* \| \*\*20\*\* \| \*\*30\.00\*\* \| \*\*70\.00 \[[\d.]+, [\d.]+\]\*\* \| \*\*\+40\.00 \*\*\* \| \*\*0\.0386\*\* \|$",
                     nothink, re.MULTILINE), nothink
    geography = next(line for line in nothink.splitlines() if line.startswith("| Geography |"))
    assert geography.endswith("| +40.00 | 0.219 |") and "*" not in geography, geography
    assert "Δ marked * has p < 0.05" in md


def test_think_vs_nothink_paired_table(paired_case):
    pairs = paired_case["model"]["think_vs_nothink"]
    # first = nothink, second = think: b = right only with thinking (ids 14-19), c = right only without (none)
    assert pairs["total"] == _cell(MODEL["think"], MODEL["nothink"], range(N))
    assert pairs["geography"] == _cell(MODEL["think"], MODEL["nothink"], list(range(0, N, 2)))
    assert (pairs["total"]["model_only"], pairs["total"]["baseline_only"]) == (6, 0)
    md = (paired_case["root"] / "model" / "results.md").read_text(encoding="utf-8")
    section = md.split("## Thinking vs non-thinking, same model, same items")[1]
    p = exact_mcnemar(6, 0)
    assert f"| **Total** | 20 | 70.00 | 100.00 | +30.00 * | 6 / 0 | {p:.3g} |" in section, section
    assert "| Geography | 10 | 70.00 | 100.00 | +30.00 | 3 / 0 | 0.25 |" in section, section
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
    run(rescore_cfg(source, write_rows(tmp_path / "b.jsonl", predictions(rows, {"nothink": set(range(0, 60, 3))})), tmp_path / "b60"))
    ours = write_rows(tmp_path / "m.jsonl", predictions(rows[:30], {"nothink": set(range(0, 30, 2))}))
    with pytest.raises(BaselineError, match="other items in mode nothink: 60 items there, 30 here, 30 shared"):
        run(rescore_cfg(source, ours, tmp_path / "m30", limit=30, baseline=str(tmp_path / "b60")))
    res = run(rescore_cfg(source, ours, tmp_path / "p30", limit=30, baseline=str(tmp_path / "b60"), baseline_partial=True))
    comparison = json.loads((tmp_path / "p30" / "comparison.json").read_text())
    assert comparison["partial"] is True and comparison["items_compared"] == 30
    assert comparison["modes"]["nothink"]["total"] == _cell(set(range(0, 30, 2)), set(range(0, 30, 3)), range(30))
    assert any("on the 30 items both runs share (baseline_partial=true)" in w for w in res["warnings"])
    assert "(compared on the items both runs share)" in (tmp_path / "p30" / "results.md").read_text(encoding="utf-8")


def test_baseline_without_the_mode_is_refused_unless_partial(paired_case, tmp_path):
    source, rows = paired_case["source"], paired_case["rows"]
    run(rescore_cfg(source, write_rows(tmp_path / "b.jsonl", predictions(rows, {"nothink": BASELINE["nothink"]})), tmp_path / "b"))
    with pytest.raises(BaselineError, match=r"has no mode think \(it has nothink\)"):
        run(rescore_cfg(source, paired_case["root"] / "model.jsonl", tmp_path / "m", baseline=str(tmp_path / "b")))
    res = run(rescore_cfg(source, paired_case["root"] / "model.jsonl", tmp_path / "p", baseline=str(tmp_path / "b"),
                          baseline_partial=True))
    comparison = json.loads((tmp_path / "p" / "comparison.json").read_text())
    assert set(comparison["modes"]) == {"nothink"} and comparison["partial"] is True
    assert comparison["modes"]["nothink"]["total"] == _cell(MODEL["nothink"], BASELINE["nothink"], range(N))
    md = (tmp_path / "p" / "results.md").read_text(encoding="utf-8")
    assert "(compared on the items both runs share)" in md and any("baseline_partial=true" in w for w in res["warnings"])
    think = md.split("## Mode `think`")[1].split("## ")[0]
    assert "| Category | n | Model [95 % CI] |" in think  # no baseline column where the baseline has no such mode


def test_baseline_items_are_checked_before_any_model_is_loaded(tmp_path, small_model, base_run, monkeypatch):
    """limit=2 against the 5-item base run: refused before generating (no model loaded, no row written)."""
    def no_engine(*a, **k):
        raise AssertionError("the baseline check must come before the model")

    monkeypatch.setattr("llamafactory_ext.eval.engine.load_engine", no_engine)
    with pytest.raises(BaselineError, match=r"has other items: 5 items, seeds \[None\] there, 2 items, seeds \[None\] here"):
        run(eval_cfg(small_model, base_run["italic"], tmp_path / "o", thinking="both", limit=2, baseline=str(base_run["dir"])))
    assert not (tmp_path / "o" / "predictions.jsonl").exists()
    with pytest.raises(BaselineError, match="has other items"):
        run(eval_cfg(small_model, base_run["italic"], tmp_path / "o", thinking="both", temperature=0.6, seeds=[1, 2],
                     baseline=str(base_run["dir"])))


def test_rows_of_a_rescored_run_are_the_model_outputs(paired_case):
    rows = rows_of(paired_case["root"] / "model" / "predictions.jsonl")
    assert len(rows) == 2 * N and sum(r["correct"] for r in rows) == len(MODEL["nothink"]) + len(MODEL["think"])
