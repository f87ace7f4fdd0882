"""`llamafactory-ext demo`: its plan (dry run, from a folder outside the checkout), its stage loop
(reuse, clean, redo), and its report's check. The whole demo (a few minutes) runs in
benchmarks/bench_demo.py, which prints its wall time next to its stages; the study engine it
drives runs for real, reduced, in tests/e2e/test_study.py."""

from __future__ import annotations

import filecmp
import json
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
    for stage in ("fixture", "data", "warm-up", "study"):
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
    study = yaml.safe_load((out / "study.yaml").read_text())
    assert [v["recipe"] for v in study["versions"]] == [f"recipes/{n}.yaml" for n in demo.RECIPES]
    assert set(study["train_overrides"]) == set(demo.cpu_overrides(demo.DemoConfig(), 1, 1)) | {"dataset_dir"}
    assert study["headline"] == list(demo.GROUPS) and study["published"] is True
    assert not (out / "models").exists() and not (out / "study").exists()


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


def _version(name: str, nothink: tuple[int, int], think: tuple[int, int]) -> dict:
    from llamafactory_ext.eval.report import block

    return {"name": name, "modes": {m: {"groups": {demo.GROUPS[0]: block(*v)}} for m, v in (("nothink", nothink), ("think", think))}}


def test_the_report_says_whether_each_version_beats_the_base_by_more_than_the_interval():
    study = {"versions": [_version("baseline", (10, 26), (11, 26)), _version("V1", (26, 26), (0, 26)),
                          _version("V2", (10, 26), (18, 26)), _version("V3", (25, 26), (26, 26))]}
    checks = {(c["version"], c["mode"]): c["beats"] for c in demo.beats(study)}
    # V2 at 18/26 (69 %) overlaps the base's interval at 11/26: not "more than the interval"
    assert checks == {("V1", "nothink"): True, ("V2", "think"): False, ("V3", "nothink"): True, ("V3", "think"): True}
    beats = demo.beats(study)
    assert json.loads(json.dumps(beats)) == beats  # plain JSON for summary.json: it reads back equal


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
