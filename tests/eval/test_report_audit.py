"""results.md a reviewer can audit (issue 25): every figure of comparison.json recomputed here from
the two runs' predictions.jsonl files with scipy (Wilson intervals, exact McNemar, the bootstrap)
and by hand (Newcombe's method 10, Holm's step-down), never through eval.stats; degenerate runs
warned about; undefined cells as dashes; items without a category; several seeds averaged per
item; the baseline protocol and item-content checks (issue 21, item 3); the typed reader.

Everything re-scores constructed predictions (``predictions=``, no model)."""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
from collections import defaultdict
from pathlib import Path

import pytest

from llamafactory_ext.eval.baseline import BaselineError
from llamafactory_ext.eval.runner import run
from llamafactory_ext.io import read_jsonl
from tests.eval.common import italic_rows, rescore_cfg, write_rows
from tests.eval.independent import N, audit_rows, groups, holm, mcnemar, newcombe10, outcomes, wilson, wrong_letter

# chance of being right per category, for the baseline and the model (seeded draws below)
BASE_RATE = {"geography": 0.4, "history": 0.4, "orthography": 0.5, "syntax": 0.4}
MODEL_RATE = {"geography": 0.95, "history": 0.6, "orthography": 0.5, "syntax": 0.85}


def _output(mode: str, letter: str) -> str:
    return f"<think>\nCi penso.\n</think>\n\n{letter}" if mode == "think" else letter


def _draw(rows: list[dict], rates: dict[str, float], seed: int, seeds: tuple = (None,)) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for s in seeds:
        for mode in ("nothink", "think"):
            for i, row in enumerate(rows):
                right = rng.random() < rates[row["category"]]
                out.append({"id": str(i), "mode": mode, "output": _output(mode, row["answer"] if right else wrong_letter(row)),
                            **({"seed": s} if s is not None else {})})
    return out


def test_newcombe_method_10_matches_the_published_worked_example():
    """Cavo et al. (2012) as worked in Fagerland, Lydersen & Laake, Statistical Analysis of Contingency
    Tables (2017), ch. 8: 59 / 6 / 16 / 80 -> estimate -0.0621, 95 % CI -0.1186 to -0.0046 (the test's
    own formula and eval.stats agree with the book)."""
    from llamafactory_ext.eval.stats import newcombe_paired

    pairs = [(True, True)] * 59 + [(False, True)] * 6 + [(True, False)] * 16 + [(False, False)] * 80
    assert newcombe10(pairs) == pytest.approx([-11.86, -0.46], abs=0.005)
    assert newcombe_paired(59, 6, 16, 80) == pytest.approx([-0.1186, -0.0046], abs=5e-5)


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    rows = audit_rows()
    source = write_rows(root / "italic.jsonl", rows)
    run(rescore_cfg(source, write_rows(root / "base.jsonl", _draw(rows, BASE_RATE, 3)), root / "base"))
    res = run(rescore_cfg(source, write_rows(root / "model.jsonl", _draw(rows, MODEL_RATE, 7)), root / "model",
                          baseline=str(root / "base")))
    return {"root": root, "rows": rows, "source": source, "results": res,
            "comparison": json.loads((root / "model" / "comparison.json").read_text())}


def test_intervals_holm_and_paired_delta_recomputed_from_both_prediction_files(audit):
    root = audit["root"]
    for mode in ("nothink", "think"):
        first, second = outcomes(root / "base" / "predictions.jsonl", mode), outcomes(root / "model" / "predictions.jsonl", mode)
        table = audit["comparison"]["modes"][mode]
        by_group = groups(second)
        assert set(table) == set(by_group)
        raw = {}
        for group, ids in by_group.items():
            pairs = [(first[i]["correct"], second[i]["correct"]) for i in ids]
            b = sum(1 for f, s in pairs if s and not f)
            c = sum(1 for f, s in pairs if f and not s)
            cell = table[group]
            assert (cell["n"], cell["model_only"], cell["baseline_only"]) == (len(ids), b, c), (mode, group)
            assert cell["delta"] == pytest.approx(100 * (sum(s for _, s in pairs) - sum(f for f, _ in pairs)) / len(ids), abs=1e-3)
            assert cell["delta_ci95"] == pytest.approx(newcombe10(pairs), abs=1e-3), (mode, group)
            assert cell["p_value"] == pytest.approx(mcnemar(b, c), abs=1e-6), (mode, group)
            for key, k in (("first", sum(f for f, _ in pairs)), ("second", sum(s for _, s in pairs))):
                assert cell[key]["correct"] == k and cell[key]["ci95"] == pytest.approx(wilson(k, len(ids)), abs=2e-6)
                chance = sum(1 / len(audit["rows"][int(i)]["options"]) for i in ids) / len(ids)
                assert cell[key]["chance"] == pytest.approx(chance, abs=1e-6)
            raw[group] = cell["p_value"]
        # Holm over the categories and macro categories of the mode; the total is a family of its own
        family = {g: p for g, p in raw.items() if g != "total"}
        for group, p in holm(family).items():
            assert table[group]["p_holm"] == pytest.approx(p, abs=1e-6) and table[group]["significant"] == (p < 0.05)
        assert table["total"]["p_holm"] == table["total"]["p_value"]
    # the case is not trivial: Holm changes a decision, and some Δ is significant after it
    nothink = audit["comparison"]["modes"]["nothink"]
    assert any(c["p_value"] < 0.05 <= c["p_holm"] for c in nothink.values())
    assert any(c["significant"] for g, c in nothink.items() if g != "total")


def test_results_md_prints_the_audited_figures(audit):
    md = (audit["root"] / "model" / "results.md").read_text(encoding="utf-8")
    for mode in ("nothink", "think"):
        section = md.split(f"## Mode `{mode}`")[1].split("## ")[0]
        for group, cell in audit["comparison"]["modes"][mode].items():
            label = "Total" if group == "total" else group.capitalize()
            line = next(ln for ln in section.splitlines() if ln.replace("*", "").startswith(f"| {label} |"))
            plain = line.replace("**", "")
            lo, hi = cell["first"]["ci95"]
            assert f"| {100 * cell['first']['accuracy']:.2f} [{100 * lo:.1f}, {100 * hi:.1f}] |" in plain, plain
            d_lo, d_hi = cell["delta_ci95"]
            star = " *" if cell["significant"] else ""
            assert f"| {cell['delta']:+.2f} [{d_lo:+.1f}, {d_hi:+.1f}]{star} | {cell['p_value']:.3g} | {cell['p_holm']:.3g} |" in plain, plain


def test_several_seeds_are_averaged_per_item_not_pooled(tmp_path):
    """Three seeds per item: the paired unit is the item (its accuracy over the seeds); the test is
    the exact sign test over items and the interval a paired bootstrap over items (scipy)."""
    import numpy as np
    from scipy.stats import bootstrap

    rows = audit_rows()
    source = write_rows(tmp_path / "italic.jsonl", rows)
    seeds = (1, 2, 3)
    kw = {"temperature": 0.6, "seeds": list(seeds), "thinking": "off"}
    run(rescore_cfg(source, write_rows(tmp_path / "b.jsonl", _draw(rows, BASE_RATE, 3, seeds)), tmp_path / "b", **kw))
    run(rescore_cfg(source, write_rows(tmp_path / "m.jsonl", _draw(rows, MODEL_RATE, 4, seeds)), tmp_path / "m",
                    baseline=str(tmp_path / "b"), **kw))
    cell = json.loads((tmp_path / "m" / "comparison.json").read_text())["modes"]["nothink"]["total"]
    score: dict[str, dict[str, list[bool]]] = {"b": defaultdict(list), "m": defaultdict(list)}
    for run_name in score:
        for r in read_jsonl(tmp_path / run_name / "predictions.jsonl"):
            if r["mode"] == "nothink":
                score[run_name][r["id"]].append(r["correct"])
    d = np.array([np.mean(score["m"][i]) - np.mean(score["b"][i]) for i in sorted(score["m"])])
    b, c = int((d > 0).sum()), int((d < 0).sum())
    assert (cell["n"], cell["pairs"], cell["model_only"], cell["baseline_only"]) == (N, 3 * N, b, c)
    assert cell["p_value"] == pytest.approx(mcnemar(b, c), abs=1e-6) and cell["delta"] == pytest.approx(100 * d.mean(), abs=1e-3)
    ci = bootstrap((d,), np.mean, n_resamples=2000, confidence_level=0.95, method="percentile", random_state=0, vectorized=True)
    assert cell["delta_ci95"] == pytest.approx([100 * ci.confidence_interval.low, 100 * ci.confidence_interval.high], abs=1e-3)
    assert "sign test" in cell["test"] and "bootstrap" in cell["interval"]
    # pooling the 144 (item, seed) rows as independent items would have given another, smaller p
    pooled = [(br["correct"], mr["correct"]) for br, mr in zip(sorted(read_jsonl(tmp_path / "b" / "predictions.jsonl"), key=_key),
                                                              sorted(read_jsonl(tmp_path / "m" / "predictions.jsonl"), key=_key))]
    pb, pc = sum(1 for f, s in pooled if s and not f), sum(1 for f, s in pooled if f and not s)
    assert mcnemar(pb, pc) < cell["p_value"]


def _key(r: dict) -> tuple:
    return r["mode"], r["seed"], int(r["id"])


# ----------------------------------------------------------------------------- degenerate runs, dashes


def _main(args: list[str]) -> tuple[int, str]:
    from llamafactory_ext.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def _rescore_args(source: Path, predictions: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "task=italic", f"source={source}", f"predictions={predictions}", f"output_dir={out}", "progress=false", *extra]


def test_a_degenerate_baseline_prints_its_warning_and_undefined_cells_are_dashes(tmp_path):
    rows = italic_rows(20)
    source = write_rows(tmp_path / "italic.jsonl", rows)
    cut = [{"id": str(i), "mode": "nothink", "output": "Dunque, vediamo", "finished": False} for i in range(20)]
    code, _ = _main(_rescore_args(source, write_rows(tmp_path / "cut.jsonl", cut), tmp_path / "base"))
    assert code == 0
    base_md = (tmp_path / "base" / "results.md").read_text(encoding="utf-8")
    assert "> **Warning: degenerate run.** This run, mode `nothink`: 20 of 20 outputs cut off at max_new_tokens" in base_md
    # nothing completed: the accuracy on completed outputs is a dash, not 0.00 [0.0, 100.0]
    line = next(ln for ln in base_md.splitlines() if ln.startswith("| nothink | 20 |"))
    assert line.split(" | ")[3:5] == ["20 (100.00 %)", "—"], line
    assert "[0.0, 100.0]" not in base_md
    good = [{"id": str(i), "mode": "nothink", "output": r["answer"] if i % 2 else wrong_letter(r)} for i, r in enumerate(rows)]
    code, err = _main(_rescore_args(source, write_rows(tmp_path / "good.jsonl", good), tmp_path / "model", f"baseline={tmp_path / 'base'}"))
    assert code == 0
    assert "eval: warning: the baseline, mode nothink, is degenerate: 20 of 20 outputs cut off at max_new_tokens" in err, err
    md = (tmp_path / "model" / "results.md").read_text(encoding="utf-8")
    assert "> **Warning: degenerate baseline.** The baseline, mode `nothink`: 20 of 20 outputs cut off at max_new_tokens" in md
    comparison = json.loads((tmp_path / "model" / "comparison.json").read_text())
    assert comparison["baseline_degenerate"]["nothink"][0] == "20 of 20 outputs cut off at max_new_tokens"
    assert comparison["modes"]["nothink"]["total"]["delta"] == pytest.approx(50.0)


@pytest.mark.parametrize("outputs, reason", [
    (lambda i, r: "A", "the same answer 'A' in 20 of 20 outputs"),
    (lambda i, r: wrong_letter(r), "accuracy 0.0 % is below chance (25.0 %): its 95 % interval ends at 16.1 %"),
    (lambda i, r: "Non lo so.", "no answer extracted from 20 of 20 outputs"),
])
def test_constant_and_below_chance_runs_are_degenerate(tmp_path, outputs, reason):
    rows = italic_rows(20)
    source = write_rows(tmp_path / "italic.jsonl", rows)
    preds = [{"id": str(i), "mode": "nothink", "output": outputs(i, r)} for i, r in enumerate(rows)]
    res = run(rescore_cfg(source, write_rows(tmp_path / "p.jsonl", preds), tmp_path / "o"))
    assert reason in res["modes"]["nothink"]["degenerate"], res["modes"]["nothink"]["degenerate"]
    assert any("is degenerate" in w and reason in w for w in res["warnings"])
    assert reason in (tmp_path / "o" / "results.md").read_text(encoding="utf-8")


def test_a_sound_run_is_not_degenerate(audit):
    assert all(not s["degenerate"] for s in audit["results"]["modes"].values())
    assert "degenerate" not in (audit["root"] / "model" / "results.md").read_text(encoding="utf-8")


def test_items_without_a_category_get_a_row_of_their_own(tmp_path):
    """Decision: a row with category null is counted in the total AND in a "(no category)" row,
    so the category rows add up to the total; it is tested against the baseline like any other."""
    rows = italic_rows(12)
    rows[4]["category"] = None
    rows[7]["category"] = None
    source = write_rows(tmp_path / "italic.jsonl", rows)
    preds = [{"id": str(i), "mode": "nothink", "output": r["answer"] if i % 3 else wrong_letter(r)} for i, r in enumerate(rows)]
    run(rescore_cfg(source, write_rows(tmp_path / "b.jsonl", preds), tmp_path / "b"))
    res = run(rescore_cfg(source, write_rows(tmp_path / "m.jsonl", preds), tmp_path / "m", baseline=str(tmp_path / "b")))
    s = res["modes"]["nothink"]
    assert s["per_category"]["(no category)"]["total"] == 2
    assert sum(b["total"] for b in s["per_category"].values()) == s["total"] == 12
    assert json.loads((tmp_path / "m" / "comparison.json").read_text())["modes"]["nothink"]["(no category)"]["n"] == 2
    md = (tmp_path / "m" / "results.md").read_text(encoding="utf-8")
    assert re.search(r"^\| \(no category\) \| 2 \| 25\.00 \|", md, re.MULTILINE), md


# ----------------------------------------------------------------------------- protocol and item checks (issue 21, 3)


def _half_verbose(rows: list[dict]) -> list[dict]:
    """Identical outputs for both runs: half a bare letter, half "La risposta è X" (the official
    first-capital extractor reads "L" there)."""
    return [{"id": str(i), "mode": "nothink", "output": r["answer"] if i % 2 else f"La risposta è {r['answer']}"}
            for i, r in enumerate(rows)]


@pytest.mark.parametrize("theirs, ours, named", [
    (["extractor=official_first_capital"], [], "extractor 'official_first_capital' there, 'default' here"),
    (["variant=cot"], [], "variant 'cot' there, 'fast' here"),
    (["max_new_tokens=64"], [], "max_new_tokens[nothink] 64 there, 350 here"),
    (["system=Sei un esperto."], [], "system 'Sei un esperto.' there, 'Sei un assistente utile.' here"),
    (["cutoff=force_answer"], [], "cutoff 'force_answer' there, 'wrong' here"),
], ids=["extractor", "variant", "max_new_tokens", "system", "cutoff"])
def test_a_baseline_scored_under_another_protocol_is_refused(tmp_path, theirs, ours, named):
    rows = italic_rows(20)
    source = write_rows(tmp_path / "italic.jsonl", rows)
    preds = write_rows(tmp_path / "p.jsonl", _half_verbose(rows))
    assert _main(_rescore_args(source, preds, tmp_path / "base", *theirs))[0] == 0
    code, err = _main(_rescore_args(source, preds, tmp_path / "model", f"baseline={tmp_path / 'base'}", *ours))
    assert code == 2 and "scored under another protocol: " in err and named in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "baseline_protocol=ignore" in err and not (tmp_path / "model" / "results.json").exists()


def test_a_baseline_with_another_default_shots_file_is_refused(tmp_path):
    """ITALIC's few-shot examples come from 5_shots.jsonl next to the source when no option names a
    file: a baseline whose file held other examples was prompted differently."""
    rows = italic_rows(20)
    for name in ("base", "model"):
        (tmp_path / f"d{name}").mkdir()
        write_rows(tmp_path / f"d{name}" / "italic.jsonl", rows)
        write_rows(tmp_path / f"d{name}" / "5_shots.jsonl", italic_rows(5, ("geography",) if name == "base" else ("syntax",)))
    preds = write_rows(tmp_path / "p.jsonl", _half_verbose(rows))
    assert _main(_rescore_args(tmp_path / "dbase" / "italic.jsonl", preds, tmp_path / "base", "shots=1"))[0] == 0
    code, err = _main(_rescore_args(tmp_path / "dmodel" / "italic.jsonl", preds, tmp_path / "model", "shots=1",
                                    f"baseline={tmp_path / 'base'}"))
    assert code == 2 and "shots file: its content differs (sha256 " in err, err


def test_identical_outputs_scored_two_ways_show_their_difference_only_when_told(tmp_path):
    """The +50 pp of issue 21: the same outputs, scored with ITALIC's official extractor for the
    baseline and ours for the model, differ by 50 pp; refused, then shown with "protocols differ"."""
    rows = italic_rows(20)
    source = write_rows(tmp_path / "italic.jsonl", rows)
    preds = write_rows(tmp_path / "p.jsonl", _half_verbose(rows))
    _main(_rescore_args(source, preds, tmp_path / "base", "extractor=official_first_capital"))
    code, err = _main(_rescore_args(source, preds, tmp_path / "model", f"baseline={tmp_path / 'base'}"))
    assert code == 2 and "extractor 'official_first_capital' there, 'default' here" in err
    code, err = _main(_rescore_args(source, preds, tmp_path / "model", f"baseline={tmp_path / 'base'}", "baseline_protocol=ignore"))
    assert code == 0, err
    comparison = json.loads((tmp_path / "model" / "comparison.json").read_text())
    assert comparison["protocol_differences"] == ["extractor 'official_first_capital' there, 'default' here"]
    assert comparison["modes"]["nothink"]["total"]["delta"] == pytest.approx(50.0)
    md = (tmp_path / "model" / "results.md").read_text(encoding="utf-8")
    assert "> **Warning: protocols differ** (baseline_protocol=ignore): extractor 'official_first_capital' there, 'default' here." in md
    assert "| Protocols differ | extractor 'official_first_capital' there, 'default' here (baseline_protocol=ignore) |" in md
    assert "protocols differ from the baseline's" in err


def test_a_baseline_whose_items_hold_other_content_is_refused(tmp_path):
    """Same ids, one question edited in the source folder (no file digest to catch it): the item
    digests of the prediction rows differ; baseline_partial does not let it through either."""
    folder = tmp_path / "italic"
    folder.mkdir()
    rows = italic_rows(20)
    write_rows(folder / "italic.jsonl", rows)
    preds = write_rows(tmp_path / "p.jsonl", _half_verbose(rows))
    _main(_rescore_args(folder, preds, tmp_path / "base"))
    rows[3]["question"] = "Una domanda diversa?"
    write_rows(folder / "italic.jsonl", rows)
    for extra in ([], ["baseline_partial=true"]):
        code, err = _main(_rescore_args(folder, preds, tmp_path / "model", f"baseline={tmp_path / 'base'}", *extra))
        assert code == 2 and "other content for 1 of the 20 shared items" in err and "first: id '3'" in err, err


def test_a_schema_2_baseline_is_refused_in_one_line(tmp_path, audit):
    old = tmp_path / "old"
    old.mkdir()
    data = json.loads((audit["root"] / "base" / "results.json").read_text())
    (old / "results.json").write_text(json.dumps({**data, "schema_version": 2}))
    with pytest.raises(BaselineError, match=r"schema_version 2, expected 3 \(older results record no scoring protocol\)"):
        run(rescore_cfg(audit["source"], audit["root"] / "model.jsonl", tmp_path / "m", baseline=str(old)))


# ----------------------------------------------------------------------------- the header and the typed reader


def test_the_header_states_every_setting_that_changes_a_number(tmp_path):
    rows = italic_rows(8)
    source = write_rows(tmp_path / "italic.jsonl", rows)
    preds = write_rows(tmp_path / "p.jsonl", _half_verbose(rows)[:3])
    run(rescore_cfg(source, preds, tmp_path / "o", limit=3, max_new_tokens=77, variant="cot", extractor="strict"))
    md = (tmp_path / "o" / "results.md").read_text(encoding="utf-8")
    header = md.split("\n\n")[1]
    for row in ("| Items | 3: the first 3 of the source (limit=3) |", "| Prompt variant | `cot` |", "| Extractor | `strict` |",
                "| Shots | `0` |", "| System prompt | `Sei un assistente utile.` |", "| max_new_tokens | nothink 77 |",
                "| Sampling | greedy (temperature 0) |", "| Template | `qwen3` |",
                "| Cut-off policy | `wrong`: an output cut at max_new_tokens is scored wrong |"):
        assert row in header, (row, header)
    for name in ("Model", "Adapter", "Task", "Backend", "Predictions", "Versions", "Statistics"):
        assert f"| {name} | " in header, name
    assert re.search(r"\| Versions \| llamafactory \d[^|]*transformers \d[^|]*torch \d", header), header


def test_results_reader_types_and_errors(audit, tmp_path):
    from llamafactory_ext.eval.results import Results, ResultsError

    res = Results.from_json(audit["root"] / "model")
    assert res.schema_version == 3 and res.task == "italic" and set(res.modes) == {"nothink", "think"}
    think = res.modes["think"]
    raw = audit["results"]["modes"]["think"]
    assert (think.overall.correct, think.overall.total, think.overall.ci95) == (raw["correct"], raw["total"], tuple(raw["ci95"]))
    assert think.group("geography").chance == raw["per_category"]["geography"]["chance"]
    cell = res.comparison.modes["think"]["total"]
    assert cell.delta_ci95 == tuple(audit["comparison"]["modes"]["think"]["total"]["delta_ci95"]) and cell.first.total == N
    assert res.think_vs_nothink["total"].n == N and res.protocol["template"] == "qwen3"
    # version 2 is read: its undefined blocks (accuracy 0.0, [0, 1] for no items) read as undefined
    v2 = {"schema_version": 2, "task": "italic", "modes": {"think": {"accuracy": 0.0, "correct": 0, "total": 0, "ci95": [0.0, 1.0]}}}
    (tmp_path / "v2.json").write_text(json.dumps(v2))
    old = Results.from_json(tmp_path / "v2.json")
    assert not old.modes["think"].overall.defined and old.modes["think"].overall.ci95 is None and old.protocol == {}
    bad = json.loads((audit["root"] / "model" / "results.json").read_text())
    bad["modes"]["think"]["per_category"]["geography"]["total"] = "abc"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ResultsError, match=r"bad\.json: field 'modes\.think\.per_category\.geography\.total': expected an integer, got 'abc'"):
        Results.from_json(tmp_path / "bad.json")
    (tmp_path / "v9.json").write_text(json.dumps({**v2, "schema_version": 9}))
    with pytest.raises(ResultsError, match=r"v9\.json: field 'schema_version': 9 is not one this version reads"):
        Results.from_json(tmp_path / "v9.json")


def test_the_header_shows_provenance_ids_when_recorded(audit, tmp_path):
    """A provenance record (results.json's ``provenance``, or provenance.json beside it, in the shape
    llamafactory_ext.provenance writes) puts each input's content id beside its path."""
    from llamafactory_ext.eval.results import Results, header_rows

    data = json.loads((audit["root"] / "model" / "results.json").read_text())
    embedded = data.pop("provenance")  # every model run embeds its record: read the one beside it here
    data["model"].update(model_name_or_path="Qwen/Qwen3-8B", adapter_name_or_path="saves/v3")
    (tmp_path / "results.json").write_text(json.dumps(data))
    prov = {"provenance_version": 1, "inputs": {
        "model": {"kind": "hub", "id": "Qwen/Qwen3-8B", "revision": "main", "commit": "a" * 40, "files": {}, "digest": "d" * 64},
        "adapter": {"kind": "model", "path": "saves/v3", "files": {}, "digest": "e" * 64}}}
    (tmp_path / "provenance.json").write_text(json.dumps(prov))
    rows = dict(header_rows(Results.from_json(tmp_path)))
    assert rows["Model"] == f"`Qwen/Qwen3-8B` · id `{'a' * 16}`" and rows["Adapter"] == f"`saves/v3` · id `{'e' * 16}`"
    # the record a run embeds: its source folder's content id beside the source
    source_id = embedded["inputs"]["source"]["digest"]
    assert source_id and f"id `{source_id[:16]}`" in dict(header_rows(Results.from_json(audit["root"] / "model")))["Task"]
