"""`llamafactory-ext demo`: its plan (dry run, from a folder outside the checkout) and the held-out
questions it ships, its stage loop (reuse, clean, redo), and its report (the held-out table first,
the published finding checked on it). The whole demo (a few minutes) runs in
benchmarks/bench_demo.py, which prints its wall time next to its stages; the study engine it
drives runs for real, reduced, in tests/e2e/test_study.py."""

from __future__ import annotations

import filecmp
import json
import re
import shlex
import sys

import pytest
import yaml

from llamafactory_ext import demo
from tests.helpers import EXT, REPO, output_tail, run_cmd

pytestmark = pytest.mark.e2e


def test_dry_run_from_outside_the_checkout_plans_the_miniature_study(tmp_path):
    out = tmp_path / "d"
    proc = run_cmd([*EXT, "demo", "dry_run=true", f"output_dir={out}"], cwd=tmp_path)
    assert proc.returncode == 0, output_tail(proc)
    for stage in ("fixture", "data", "warm-up", "study", "card"):
        assert f"] {stage}:" in proc.stdout, stage
    # the shipped recipes, byte for byte, and the data the demo ships
    for name in demo.RECIPES:
        assert filecmp.cmp(out / "recipes" / f"{name}.yaml", REPO / "recipes" / f"{name}.yaml", shallow=False)
    assert sorted(p.name for p in (out / "demo_data").iterdir()) == sorted(demo.DEMO_FILES)
    commands = [ln for ln in (out / "commands.sh").read_text().splitlines() if ln and not ln.startswith(("#", "export", "set ", "cd "))]
    warm = next(ln for ln in commands if ln.startswith("llamafactory-cli train recipes/v3_mixed.yaml"))
    keys = {tok.split("=", 1)[0] for tok in shlex.split(warm)[3:]}
    # the warm-up changes only the tiny-model / CPU keys (and makes it full-parameter)
    assert keys == set(demo.cpu_overrides(demo.DemoConfig(), 1, 1)) | {"model_name_or_path", "dataset_dir", "output_dir", "finetuning_type"}
    assert {"seed", "full_determinism"} <= keys  # reproducible: fixed seed, deterministic kernels
    study = yaml.safe_load((out / "study.yaml").read_text())
    assert [v["recipe"] for v in study["versions"]] == [f"recipes/{n}.yaml" for n in demo.RECIPES]
    assert set(study["train_overrides"]) == set(demo.cpu_overrides(demo.DemoConfig(), 1, 1)) | {"dataset_dir"}
    assert study["headline"] == ["held-out questions", "trained questions"] and study["published"] is True
    assert all(s.threads == 1 for s in demo.stages(demo.DemoConfig()) if s.threads)  # pinned, as the study's processes
    assert not (out / "models").exists() and not (out / "study").exists()
    assert "llamafactory-ext card study version=V3 push=dry_run" in commands  # V3's card, nothing uploaded


def test_the_data_stage_registers_each_folder_in_its_own_dataset_info(tmp_path):
    """The warm-up and V3 both train a data set named multit_mixed: each folder (warmup_data, data)
    lists its own, LLaMA-Factory's layout, and the file each entry names exists beside it."""
    from llamafactory_ext.runtime import cpu_env

    out = tmp_path / "d"
    assert run_cmd([*EXT, "demo", "dry_run=true", f"output_dir={out}"], cwd=tmp_path).returncode == 0
    data = next(s for s in demo.stages(demo.DemoConfig()) if s.name == "data")
    (out / "logs").mkdir()
    demo.run_stage(data, out, cpu_env(), force=False)
    warm, study = (json.loads((out / d / "dataset_info.json").read_text()) for d in ("warmup_data", "data"))
    assert set(warm) == {"multit_mixed"} and set(study) == {"multit_nothink", "multit_think", "multit_mixed"}
    assert not (out / "dataset_info.json").exists()
    for folder, info in (("warmup_data", warm), ("data", study)):
        for name, entry in info.items():
            assert (out / folder / entry["file_name"]).is_file(), (folder, name)
    rows = [json.loads(line) for line in (out / "warmup_data" / "multit_mixed.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * len(json.loads((out / "demo_data" / "warmup_quiz.json").read_text()))  # mix=all: both rows


def test_the_held_out_questions_are_many_unseen_and_answerable_from_the_warm_up(tmp_path):
    """At least 60 held-out questions of the study's family; no training file of any version (nor the
    warm-up) holds them or a trace for them; the warm-up taught where each of their people lives."""
    from llamafactory_ext.data.multit import item_key, parse_multit_row
    from llamafactory_ext.shipped import resource

    def rows(name):
        return json.loads(resource(f"demo/{name}").read_text(encoding="utf-8"))

    def keys(items):
        return {item_key(parse_multit_row(r, i)) for i, r in enumerate(items)}

    evals, study, warm = rows("eval_quiz.json"), rows("study_quiz.json"), rows("warmup_quiz.json")
    groups = [r["macro_category"] for r in evals]
    held = [r for r in evals if r["macro_category"] == "held-out questions"]
    assert len(held) >= 60 and groups == sorted(groups)  # the held-out group first, then the trained one
    assert keys([r for r in evals if r["macro_category"] == "trained questions"]) == keys(study)
    traced = {json.loads(line)["key"] for line in resource("demo/traces.jsonl").read_text(encoding="utf-8").splitlines()}
    assert not keys(held) & (keys(study) | keys(warm) | traced)
    family = {re.sub(r"abita \w+\?$", "abita X?", r["question"]) for r in held + study}
    assert family == {"In quale nazione abita X?"}  # one family: the held-out questions differ by person only

    def person(row):
        return re.fullmatch(r"In quale (?:nazione|città) abita (\w+)\?", row["question"]).group(1)

    taught = {person(r) for r in warm if "abita" in r["question"]}
    assert {person(r) for r in held} <= taught and not {person(r) for r in held} & {person(r) for r in study}


def test_stage_loop_reuses_redoes_and_cleans(tmp_path, capsys):
    from llamafactory_ext.runtime import cpu_env

    out = tmp_path
    (out / "logs").mkdir()
    script = "import pathlib, time; p = pathlib.Path('made'); p.mkdir(exist_ok=True); (p / 'x').write_text(str(time.time()))"
    stage = demo.Stage("make", "writes made/x", [[sys.executable, "-c", script]], ["made/x"], clean=("made",))
    seconds, reused = demo.run_stage(stage, out, cpu_env(), force=False)
    first = (out / "made" / "x").read_text()
    assert not reused and seconds > 0
    assert demo.run_stage(stage, out, cpu_env(), force=False)[1] is True  # same command, outputs there
    assert (out / "made" / "x").read_text() == first
    (out / "made" / "stale").write_text("old")
    assert demo.run_stage(stage, out, cpu_env(), force=True)[1] is False  # force: cleaned and redone
    assert not (out / "made" / "stale").exists() and (out / "made" / "x").read_text() != first
    changed = demo.Stage("make", "writes made/x", [[sys.executable, "-c", script + "  # v2"]], ["made/x"], clean=("made",))
    assert demo.run_stage(changed, out, cpu_env(), force=False)[1] is False  # another command: redone
    failing = demo.Stage("fail", "exits 3", [[sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]], ["never"])
    with pytest.raises(demo.DemoError, match=r"exit 3"):
        demo.run_stage(failing, out, cpu_env(), force=False)


def _study(tmp_path, results: dict) -> dict:
    """A study.json whose versions carry held-out comparisons, and each version's predictions on disk:
    ``results``: name -> {mode: (delta, p, closed rows of 10 held-out thinking outputs)}."""
    from llamafactory_ext.eval.report import block

    versions = []
    for name, modes in results.items():
        trial = tmp_path / "study" / name / "eval"
        trial.mkdir(parents=True)
        preds = []
        for mode, (delta, p, closed) in modes.items():
            for i in range(10):
                preds.append({"id": str(i), "mode": mode, "macro_category": "held-out questions",
                              "closed": i < closed, "reasoning_words": 5 if i < closed else 0})
                # trained questions never count towards the held-out format share
                preds.append({"id": str(100 + i), "mode": mode, "macro_category": "trained questions", "closed": False})
        (trial / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in preds))
        versions.append({"name": name, "format": "", "trial_dir": f"study/{name}", "modes": {
            mode: {"groups": {g: block(5, 10) for g in demo.GROUPS},
                   "vs_baseline": {"held-out questions": {"n": 64, "delta": delta, "p_value": p, "significant": p < 0.05,
                                                          "model_only": 3, "baseline_only": 1}}}
            for mode, (delta, p, _) in modes.items()}})
    return {"title": "t", "headline": list(demo.GROUPS), "versions": versions, "published": None, "directions": {}}


def test_the_finding_is_checked_on_the_held_out_questions(tmp_path):
    study = _study(tmp_path, {
        "V1": {"nothink": (18.8, 0.0075, 0), "think": (-25.0, 3e-5, 0)},
        "V2": {"nothink": (0.0, 1.0, 0), "think": (34.4, 3e-6, 10)},
        "V3": {"nothink": (28.1, 1e-4, 0), "think": (25.0, 0.03, 8)},  # significant, but closes </think> in 8 of 10
    })
    checks = {(c["version"], c["mode"]): c for c in demo.findings(tmp_path, study)}
    assert set(checks) == {("V2", "think"), ("V3", "think"), ("V1", "think"), ("V1", "nothink"), ("V3", "nothink")}
    assert checks["V2", "think"]["ok"] is True and checks["V2", "think"]["closed_with_trace"] == 1.0
    assert checks["V3", "think"]["ok"] is False and checks["V3", "think"]["closed_with_trace"] == 0.8
    assert checks["V1", "think"]["ok"] is True and checks["V1", "think"]["claim"] == "collapses"
    # reported against the published gains without thinking: 73.77 - 70.17 and 73.81 - 70.17
    assert checks["V1", "nothink"]["ok"] is None and checks["V1", "nothink"]["published_delta"] == 3.6
    assert checks["V3", "nothink"]["published_delta"] == 3.64 and checks["V3", "nothink"]["n"] == 64
    assert json.dumps(list(checks.values()))  # plain JSON for summary.json
    # V2 thinking no better than the base: not reproduced, whatever its format
    worse = _study(tmp_path / "w", {"V2": {"think": (3.0, 0.5, 10)}})
    assert [c["ok"] for c in demo.findings(tmp_path / "w", worse)] == [False]


def test_the_report_leads_with_the_held_out_questions(tmp_path):
    study = _study(tmp_path, {"V2": {"nothink": (0.0, 1.0, 0), "think": (34.4, 3e-6, 10)}})
    lines = demo.report_lines(study, demo.findings(tmp_path, study))
    tables = [i for i, line in enumerate(lines) if line.startswith("| Version | Training format |")]
    held, trained = lines.index("## Held-out questions (n = 64): no version trained on them"), lines.index("## Trained questions: a secondary check")
    assert len(tables) == 2 and held < tables[0] < trained < tables[1]
    # groups are called groups: no heading or table header speaks of categories
    assert not any("categor" in line.lower() for line in lines if line.startswith(("#", "| Version")))
    assert any(line.startswith("- V2 thinking beats the base: +34.4 pp") and line.endswith("**yes**") for line in lines)


def test_a_changed_stage_invalidates_every_stage_after_it(tmp_path):
    from llamafactory_ext.runtime import cpu_env

    (tmp_path / "logs").mkdir()
    (tmp_path / "input.yaml").write_text("lr: 1\n")

    def stage(name: str, text: str, inputs: tuple[str, ...] = ()) -> demo.Stage:
        return demo.Stage(name, name, [[sys.executable, "-c", f"open('{name}.out', 'w').write({text!r})"]], [f"{name}.out"], inputs=inputs)

    def run(a_text: str) -> list[bool]:
        before, reused = None, []
        for s in (stage("a", a_text), stage("b", "b", ("input.yaml",))):
            reused.append(demo.run_stage(s, tmp_path, cpu_env(), False, before)[1])
            before = demo.stage_settings(s, tmp_path, before)
        return reused

    assert run("a1") == [False, False]
    assert run("a1") == [True, True]
    assert run("a2") == [False, False]  # b's own command did not change, but what it builds on did
    (tmp_path / "input.yaml").write_text("lr: 2\n")  # a file the stage reads changed
    assert run("a2") == [True, False]
