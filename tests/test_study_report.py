"""study.md and study.json carry results.md's reviewer figures (issue 25, item 3), read through the
typed reader (issue 22, item 5): every number is recomputed here from the trials' predictions.jsonl
files with scipy / statsmodels (Wilson intervals, exact McNemar, Holm) and by hand (the paired Δ, and
Newcombe's method 10 as tests/eval/test_report_audit.py writes it out from the paper and checks it
against a published worked example), never through eval.stats, and compared with
study.json, with each trial's comparison.json and with the cells of study.md.

The study folder is made of real evaluations without a model: ``eval predictions=`` re-scores
constructed outputs (the baseline, V1, V2; V3 not run yet), and study.json / study.md are written by
the study's own report code. The baseline's thinking mode is degenerate (mostly cut off), V2's is a
constant answer, and V2 was scored with another max_new_tokens (``baseline_protocol=ignore``)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from llamafactory_ext.io import read_jsonl
from tests.eval.common import rescore_cfg, write_rows
from tests.eval.independent import N, audit_rows, groups, mcnemar, newcombe10, wilson, wrong_letter

CUT = 30  # baseline outputs cut off in thinking mode
RATES = {  # chance of a right answer per category, per trial and mode (seeded draws)
    "baseline": {"nothink": {"geography": 0.4, "history": 0.4, "orthography": 0.5, "syntax": 0.4},
                 "think": {"geography": 1.0, "history": 1.0, "orthography": 1.0, "syntax": 1.0}},
    "V1": {"nothink": {"geography": 0.95, "history": 0.6, "orthography": 0.5, "syntax": 0.85},
           "think": {"geography": 0.3, "history": 0.3, "orthography": 0.4, "syntax": 0.3}},
    "V2": {"nothink": {"geography": 0.45, "history": 0.4, "orthography": 0.5, "syntax": 0.45}},
}
HEADLINE = ["total", "geography", "language capability"]
PUBLISHED = {"baseline": (70.17, 74.49), "V1": (73.77, 59.33), "V2": (70.27, 77.87)}  # DESIGN.md, (no thinking, thinking)
MODES = ("nothink", "think")


def _predictions(rows: list[dict], name: str, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for mode in MODES:
        for i, row in enumerate(rows):
            rates = RATES[name].get(mode)
            letter = (row["answer"] if rng.random() < rates[row["category"]] else wrong_letter(row)) if rates else "A"
            text = f"<think>\nCi penso.\n</think>\n\n{letter}" if mode == "think" else letter
            cut = name == "baseline" and mode == "think" and i < CUT
            out.append({"id": str(i), "mode": mode, "output": "<think>\nCi penso" if cut else text,
                        **({"finished": False} if cut else {})})
    return out


def _evaluated(cfg) -> None:
    """A real evaluation, in a trial folder whose trial.json says done (as the sweep engine leaves it)."""
    from llamafactory_ext.eval.runner import run

    run(cfg)
    (Path(cfg.output_dir).parent / "trial.json").write_text(json.dumps({"status": "done"}))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from llamafactory_ext.study import StudyConfig, write_report
    from llamafactory_ext.sweep.trials import Trial

    root = tmp_path_factory.mktemp("study")
    rows = audit_rows()
    source = write_rows(root / "italic.jsonl", rows)
    base = root / "baseline" / "eval"
    for seed, name in enumerate(("baseline", "V1", "V2")):
        extra = {} if name == "baseline" else {"baseline": str(base)}
        if name == "V2":
            extra.update(max_new_tokens=77, baseline_protocol="ignore")
        _evaluated(rescore_cfg(source, write_rows(root / f"{name}.jsonl", _predictions(rows, name, seed)), root / name / "eval", **extra))
    trials = [Trial(n, {"version": n, "format": "" if n == "baseline" else f"{n} rows"}, str(root / n), None, ["eval"], str(root), {})
              for n in ("baseline", "V1", "V2", "V3")]
    cfg = StudyConfig(title="audited study", output_dir=str(root / "out"), headline=HEADLINE, published=True)
    write_report(cfg, trials)
    return {"root": root, "rows": rows, "trials": trials, "json": json.loads((root / "out" / "study.json").read_text()),
            "md": (root / "out" / "study.md").read_text(encoding="utf-8")}


# ----------------------------------------------------------------------------- independent statistics


def outcomes(root: Path, name: str, mode: str) -> dict[str, dict]:
    return {r["id"]: r for r in read_jsonl(root / name / "eval" / "predictions.jsonl") if r["mode"] == mode}


@pytest.fixture(scope="module")
def want(study) -> dict:
    return expected(study)


def expected(study: dict) -> dict:
    """(trial, mode, group) -> the figures recomputed from predictions.jsonl: ``block`` (accuracy,
    Wilson interval, chance, n) and, for a version, ``paired`` (Δ, Newcombe interval, p, Holm p)."""
    from statsmodels.stats.multitest import multipletests

    root, rows, out = study["root"], study["rows"], {}
    for name in ("baseline", "V1", "V2"):
        for mode in MODES:
            preds, base = outcomes(root, name, mode), outcomes(root, "baseline", mode)
            raw = {}
            for group, ids in groups(preds).items():
                k = sum(preds[i]["correct"] for i in ids)
                cell = {"block": {"accuracy": k / len(ids), "ci95": wilson(k, len(ids)), "total": len(ids),
                                  "chance": sum(1 / len(rows[int(i)]["options"]) for i in ids) / len(ids)}}
                if name != "baseline":
                    pairs = [(base[i]["correct"], preds[i]["correct"]) for i in ids]
                    b, c = sum(s and not f for f, s in pairs), sum(f and not s for f, s in pairs)
                    cell["paired"] = {"delta": 100 * (b - c) / len(ids), "delta_ci95": newcombe10(pairs), "p_value": mcnemar(b, c),
                                      "n": len(ids)}
                    raw[group] = cell["paired"]["p_value"]
                out[name, mode, group] = cell
            family = [g for g in raw if g != "total"]  # Holm over the categories and macro categories; total alone
            adjusted = dict(zip(family, multipletests([raw[g] for g in family], method="holm")[1])) if family else {}
            for group, p in raw.items():
                out[name, mode, group]["paired"]["p_holm"] = adjusted.get(group, p)
    return out


# ----------------------------------------------------------------------------- reading study.md


def table(md: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """The Markdown table under ``heading``: its column names and its rows of cells (bold marks removed)."""
    lines = md.split(f"{heading}\n", 1)[1].split("\n")
    lines = lines[next(i for i, ln in enumerate(lines) if ln.startswith("|")):]
    lines = lines[:next((i for i, ln in enumerate(lines) if not ln.startswith("|")), len(lines))]
    cells = [[c.strip().replace("**", "") for c in ln.strip("|").split("|")] for ln in lines]
    return cells[0], cells[2:]


NUM = r"([+-]?\d+\.\d+)"


def check_accuracy(cell: str, block: dict, with_n: bool = True) -> None:
    m = re.fullmatch(rf"{NUM} \[{NUM}, {NUM}\]" + (r" \(n=(\d+)\)" if with_n else ""), cell)
    assert m, cell
    assert float(m[1]) == pytest.approx(100 * block["accuracy"], abs=0.0051), cell
    assert [float(m[2]), float(m[3])] == pytest.approx([100 * x for x in block["ci95"]], abs=0.051), cell
    assert not with_n or int(m[4]) == block["total"]


def check_delta(cell: str, paired: dict) -> None:
    m = re.fullmatch(rf"{NUM} \[{NUM}, {NUM}\]( \*)?", cell)
    assert m, cell
    assert float(m[1]) == pytest.approx(paired["delta"], abs=0.0051), cell
    assert [float(m[2]), float(m[3])] == pytest.approx(list(paired["delta_ci95"]), abs=0.051), cell
    assert bool(m[4]) == (paired["p_holm"] < 0.05), cell


# ----------------------------------------------------------------------------- the tests


def test_study_json_holds_the_recomputed_figures_and_each_trials_comparison_json(study, want):
    rows = {r["name"]: r for r in study["json"]["versions"]}
    assert [r["status"] for r in rows.values()] == ["done", "done", "done", "pending"] and rows["V3"]["modes"] == {}
    for (name, mode, group), cell in want.items():
        entry = rows[name]["modes"][mode]
        got = entry["groups"][group] if group in HEADLINE else (entry["per_category"] | entry["per_macro_category"])[group]
        assert got["accuracy"] == pytest.approx(cell["block"]["accuracy"]) and got["total"] == cell["block"]["total"]
        assert got["ci95"] == pytest.approx(list(cell["block"]["ci95"]), abs=2e-6)
        assert got["chance"] == pytest.approx(cell["block"]["chance"], abs=1e-6), (name, mode, group)
        if name == "baseline":
            assert entry["vs_baseline"] == {}
            continue
        paired, exp = entry["vs_baseline"][group], cell["paired"]
        assert paired["n"] == exp["n"] and paired["delta"] == pytest.approx(exp["delta"], abs=1e-3), (name, mode, group)
        assert paired["delta_ci95"] == pytest.approx(list(exp["delta_ci95"]), abs=1e-3), (name, mode, group)
        assert paired["p_value"] == pytest.approx(exp["p_value"], abs=1e-5) and paired["p_holm"] == pytest.approx(exp["p_holm"], abs=1e-5)
        assert paired["significant"] == (exp["p_holm"] < 0.05)
        # the same numbers as the trial's own comparison.json (pairs aside: study.json counts items)
        comparison = json.loads((study["root"] / name / "eval" / "comparison.json").read_text())["modes"][mode][group]
        assert paired == {k: v for k, v in comparison.items() if k != "pairs"}
    # the case is not trivial: Holm changes a decision somewhere, and some Δ stays significant after it
    assert any(c["paired"]["p_value"] < 0.05 <= c["paired"]["p_holm"] for c in want.values() if "paired" in c)
    assert any(c["paired"]["p_holm"] < 0.05 for k, c in want.items() if "paired" in c and k[2] != "total")


def test_the_version_series_prints_intervals_on_baseline_and_every_delta_with_p_and_holm(study, want):
    md = study["md"]
    for group in HEADLINE:
        heading = f"### Version Series: {'all items' if group == 'total' else group}"
        chance = want["baseline", "nothink", group]["block"]["chance"]
        assert f"{heading}\n\nChance level (guessing among each item's options): {100 * chance:.2f} %." in md
        cols, rows = table(md, heading)
        assert [r[0] for r in rows] == ["Baseline", "V1", "V2", "V3"]
        for cells in rows:
            name = cells[0].replace("Baseline", "baseline")
            for mode, column in (("nothink", "No Thinking [95 % CI]"), ("think", "Thinking [95 % CI]")):
                i = cols.index(column)
                acc, d, p, holm = cells[i:i + 4]
                assert cols[i + 1:i + 4] == ["Δ (pp) [95 % CI]", "p", "p (Holm)"]
                if name == "V3":  # not run yet: dashes
                    assert [acc, d, p, holm] == ["—"] * 4
                    continue
                check_accuracy(acc, want[name, mode, group]["block"])
                if name == "baseline":
                    assert [d, p, holm] == ["—"] * 3
                    continue
                paired = want[name, mode, group]["paired"]
                check_delta(d, paired)
                assert float(p) == pytest.approx(paired["p_value"], rel=6e-3, abs=1e-9), p
                assert float(holm) == pytest.approx(paired["p_holm"], rel=6e-3, abs=1e-9), holm


def test_per_category_tables_have_chance_baseline_intervals_and_every_delta(study, want):
    md = study["md"]
    for mode, heading in (("nothink", "### Per category, no thinking"), ("think", "### Per category, thinking")):
        cols, cells = table(md, heading)
        rows = [dict(zip(cols, c)) for c in cells]
        assert [r["Category"] for r in rows] == ["Geography", "History", "Culture and commonsense", "Orthography", "Syntax",
                                                 "Language capability"]
        for row in rows:
            group = row["Category"].lower()
            base = want["baseline", mode, group]["block"]
            assert row["n"] == str(base["total"]) and float(row["Chance"]) == pytest.approx(100 * base["chance"], abs=0.0051)
            check_accuracy(row["Baseline [95 % CI]"], base, with_n=False)
            check_accuracy(row["V1 [95 % CI]"], want["V1", mode, group]["block"], with_n=False)
            check_delta(row["V1 Δ (pp) [95 % CI]"], want["V1", mode, group]["paired"])
            assert row["V3 [95 % CI]"] == row["V3 Δ (pp) [95 % CI]"] == "—"


def test_the_header_warnings_and_directions(study, want):
    md, data = study["md"], study["json"]
    header = md.split("\n\n")[1]
    assert header.startswith("| Setting | Value |")
    for row in ("| Sampling | greedy (temperature 0) |", "| Items | all 48 of the source |", "| Prompt variant | `fast` |",
                ("| max_new_tokens | **differs**: Baseline: think 4096 · nothink 350; V1: think 4096 · nothink 350; "
                 "V2: think 77 · nothink 77 |")):
        assert row in header, (row, header)
    assert data["protocol"]["differs"] == ["max_new_tokens"]
    assert re.search(r"\| Adapter \| none \(the base model\) \(Baseline, V1, V2\) \|", header), header
    warnings = [ln for ln in md.splitlines() if ln.startswith("> **Warning")]
    assert warnings == [
        ("> **Warning: settings differ.** The trials were evaluated with another max_new_tokens (see the settings table): "
         "their figures are not measured the same way."),
        (f"> **Warning: degenerate baseline.** The baseline, mode `think`: {CUT} of {N} outputs cut off at max_new_tokens. "
         "A Δ against it measures that, not the version."),
        f"> **Warning: degenerate run.** V2, mode `think`: the same answer 'A' in {N} of {N} outputs.",
        ("> **Warning: protocols differ.** V2 was compared with a baseline scored under another protocol "
         "(baseline_protocol=ignore): max_new_tokens[think] 4096 there, 77 here; max_new_tokens[nothink] 350 there, 77 here.")]
    assert [f"> **Warning: {w['kind']}.** {w['text']}" for w in data["warnings"]] == warnings
    # the direction of each total Δ against the published one; significant means p (Holm) < 0.05, as the *
    for name in ("V1", "V2"):
        parts, disagree = [], []
        for k, (mode, word) in enumerate((("nothink", "no thinking"), ("think", "thinking"))):
            ours, theirs = want[name, mode, "total"]["paired"], PUBLISHED[name][k] - PUBLISHED["baseline"][k]
            significant = ours["p_holm"] < 0.05
            parts.append(f"{word} {ours['delta']:+.1f} pp{'' if significant else ' (not significant)'} (published {theirs:+.2f})")
            agrees = (not significant) if abs(theirs) < 1.0 else (ours["delta"] > 0) == (theirs > 0) and ours["delta"] != 0
            disagree += [] if agrees else [word]
        verdict = ("the direction agrees with the published one in both modes" if not disagree
                   else f"the direction differs from the published one in {' and '.join(disagree)}")
        sentence = f"{name}: {', '.join(parts)}: {verdict}."
        assert data["directions"][name] == sentence and f"- {sentence}" in md
    assert set(data["directions"]) == {"V1", "V2"}
    assert "Direction against the published study (significant: p (Holm) < 0.05, as the * of the tables):" in md


def test_an_unreadable_evaluation_is_named_in_study_md_and_the_sweep_summary(study, tmp_path):
    """A results.json that the typed reader refuses is named (file and field), never dropped."""
    from llamafactory_ext.study import StudyConfig
    from llamafactory_ext.study_md import render
    from llamafactory_ext.study_report import collect
    from llamafactory_ext.sweep import summary
    from llamafactory_ext.sweep.trials import Trial

    broken = tmp_path / "V9"
    (broken / "eval").mkdir(parents=True)
    data = json.loads((study["root"] / "V1" / "eval" / "results.json").read_text())
    data["modes"]["think"]["total"] = "many"
    (broken / "eval" / "results.json").write_text(json.dumps(data))
    trial = Trial("V9", {"version": "V9"}, str(broken), None, ["eval"], str(tmp_path), {})
    got = collect(StudyConfig(published=False), [*study["trials"][:2], trial])
    field = r"results\.json: field 'modes\.think\.total': expected an integer, got 'many'"
    assert re.search(r"V9: .*" + field, got["warnings"][0]["text"]) and got["warnings"][0]["kind"] == "unreadable results"
    assert re.search(r"> \*\*Warning: unreadable results\.\*\* V9: .*" + field, render(got))
    row = summary.collect_rows([trial])[0]
    assert re.search(r"eval: .*" + field, row["error"]) and "accuracy/think" not in row


# ----------------------------------------------------------------------------- the sweep summary reads the same evaluations


def test_the_sweep_summary_reads_each_evaluation_typed_and_keeps_a_constant_chance_out_of_its_columns(study, want, tmp_path):
    from llamafactory_ext.sweep import summary
    from llamafactory_ext.sweep.config import SweepConfig
    from llamafactory_ext.sweep.trials import Trial

    root = study["root"]
    cfg = SweepConfig(base="base.yaml", output_dir=str(tmp_path / "a"), grid={"version": ["baseline", "V1"]})
    trials = [Trial(n, {"version": n}, str(root / n), None, ["eval"], str(root), {}) for n in ("baseline", "V1")]
    summary.write_summary(tmp_path / "a", trials, cfg)
    md = (tmp_path / "a" / "summary.md").read_text(encoding="utf-8")
    head = next(ln for ln in md.splitlines() if ln.startswith("| trial"))
    assert "chance" not in head and not (tmp_path / "a" / "chance.png").exists()
    chance = want["baseline", "nothink", "total"]["block"]["chance"]
    assert (f"Chance level (guessing among each item's options), the same in every trial: think {100 * chance:.2f} %, "
            f"nothink {100 * chance:.2f} %.") in md
    data = {t["trial"]: t for t in json.loads((tmp_path / "a" / "summary.json").read_text())["trials"]}
    for mode in MODES:
        assert data["V1"][f"chance/{mode}"] == pytest.approx(chance, abs=1e-6)
        assert data["V1"][f"delta_pp/{mode}"] == pytest.approx(want["V1", mode, "total"]["paired"]["delta"], abs=1e-3)
        assert data["V1"][f"accuracy/{mode}"] == pytest.approx(want["V1", mode, "total"]["block"]["accuracy"])
    # a trial evaluated on other items (the first 40, another share of 3-option questions): chance per trial
    rows = study["rows"][:40]
    other = tmp_path / "other"
    _evaluated(rescore_cfg(write_rows(tmp_path / "italic40.jsonl", rows), write_rows(tmp_path / "p.jsonl", _predictions(rows, "V1", 5)),
                           other / "eval"))
    trials.append(Trial("other", {"version": "other"}, str(other), None, ["eval"], str(tmp_path), {}))
    summary.write_summary(tmp_path / "b", trials, SweepConfig(base="base.yaml", output_dir=str(tmp_path / "b"), grid=cfg.grid))
    md = (tmp_path / "b" / "summary.md").read_text(encoding="utf-8")
    head = next(ln for ln in md.splitlines() if ln.startswith("| trial")).split(" | ")
    assert "chance think %" in head and "chance nothink %" in head and "the same in every trial" not in md
    assert "| baseline | version=baseline |" in md and "3 done, 0 failed" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| other |")).split(" | ")
    assert float(line[head.index("chance think %")]) == pytest.approx(100 * sum(1 / len(r["options"]) for r in rows) / 40, abs=0.0051)
