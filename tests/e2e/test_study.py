"""`llamafactory-ext study` for real, reduced: the small tiny Qwen3 as the base, the shipped
recipes/v1_nothink.yaml and v3_mixed.yaml as 2-step LoRA trials (tiny-model / CPU overrides
only), every trial evaluated in both modes on 6 questions. The study is killed in the middle of
V1's training (after the baseline), then resumed to the end; the baseline is evaluated exactly
once and the table has the published shape."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.helpers import EXT, REPO, output_tail, run_cmd

pytestmark = pytest.mark.e2e


@pytest.fixture
def study_dir(tmp_path, small_model):
    from llamafactory_ext.runtime import CPU_OVERRIDES

    demo = REPO / "llamafactory_ext" / "resources" / "demo"
    for name in ("multit_nothink", "multit_mixed"):
        proc = run_cmd([*EXT, "prepare", name, f"source={demo / 'study_quiz.json'}", "out_dir=data",
                        *([f"traces={demo / 'traces.jsonl'}", "mix=all"] if name == "multit_mixed" else [])], cwd=tmp_path)
        assert proc.returncode == 0, output_tail(proc)
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump({
        "task": "multit", "source": str(demo / "eval_quiz.json"), "limit": 6, "template": "qwen3", "device": "cpu",
        "dtype": "float32", "max_new_tokens": 6, "progress": False}))
    study = {
        "title": "reduced study", "output_dir": "out", "model": str(small_model),
        "versions": [{"name": "V1", "recipe": str(REPO / "recipes/v1_nothink.yaml"), "format": "non-thinking rows"},
                     {"name": "V3", "recipe": str(REPO / "recipes/v3_mixed.yaml"), "format": "mixed rows"}],
        "train_overrides": {"max_steps": 2, "cutoff_len": 256, "gradient_accumulation_steps": 1, **CPU_OVERRIDES},
        "eval": {"config": "eval.yaml", "overrides": {}}, "gpus_per_trial": 0,
        "env": {"CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    return tmp_path


# The study runs with SIGINT as a terminal leaves it (default action, not blocked), whatever the pytest
# worker has: it may have SIGINT ignored or blocked (a library's helper process set it so), both are
# inherited, and the study would then never see the interrupt and run to its end.
CTRL_C_DELIVERED = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                    "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); os.execv(sys.argv[1], sys.argv[1:])")


def _kill_during_v1_training(cwd) -> None:
    from llamafactory_ext.runtime import cpu_env

    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_DELIVERED, *EXT, "study", "study.yaml"], cwd=cwd, env=cpu_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    log = cwd / "out" / "V1" / "train.log"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and "Running training" in log.read_text(errors="replace"):
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the study ended before V1's training started"
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) != 0


def test_study_killed_resumes_and_evaluates_the_baseline_once(study_dir):
    # 1. killed in the middle of V1's training: the baseline is done, the table has its shape
    _kill_during_v1_training(study_dir)
    assert json.loads((study_dir / "out" / "V1" / "trial.json").read_text())["status"] == "running"
    base_eval = study_dir / "out" / "baseline" / "eval" / "predictions.jsonl"
    first = base_eval.read_text()
    assert len(first.splitlines()) == 12  # 6 questions x 2 modes
    partial = json.loads((study_dir / "out" / "study.json").read_text())
    assert [v["name"] for v in partial["versions"]] == ["baseline", "V1", "V3"]
    assert [v["status"] == "done" for v in partial["versions"]] == [True, False, False]

    # 2. resumed to the end
    proc = run_cmd([*EXT, "study", "study.yaml"], cwd=study_dir)
    assert proc.returncode == 0, output_tail(proc)
    assert "skip baseline: already done" in proc.stdout and "start baseline" not in proc.stdout

    # the baseline was evaluated once: same predictions, one attempt, no earlier log
    assert base_eval.read_text() == first
    base_state = json.loads((study_dir / "out" / "baseline" / "trial.json").read_text())
    assert base_state["attempts"] == 1 and not (study_dir / "out" / "baseline" / "eval.prev.log").exists()
    assert json.loads((study_dir / "out" / "V1" / "trial.json").read_text())["attempts"] == 2
    for name in ("V1", "V3"):
        eval_cmd = json.loads((study_dir / "out" / name / "trial.json").read_text())["eval_cmd"]
        assert "thinking=both" in eval_cmd and "baseline=out/baseline/eval" in eval_cmd
        assert (study_dir / "out" / name / "eval" / "comparison.json").is_file()

    # the table: Baseline, V1, V3; both modes with n, interval, delta and p against the baseline
    study = json.loads((study_dir / "out" / "study.json").read_text())
    assert [v["name"] for v in study["versions"]] == ["baseline", "V1", "V3"]
    assert all(v["status"] == "done" for v in study["versions"])
    for row in study["versions"][1:]:
        for mode in ("nothink", "think"):
            block = row["modes"][mode]["groups"]["total"]
            assert block["total"] == 6 and 0 <= block["ci95"][0] <= block["accuracy"] <= block["ci95"][1] <= 1
            comp = row["modes"][mode]["vs_baseline"]["total"]
            assert set(comp) >= {"delta", "model_only", "baseline_only", "p_value"} and comp["n"] == 6
    md = (study_dir / "out" / "study.md").read_text()
    header = ("| Version | Training format | No Thinking [95 % CI] | Δ (pp) [95 % CI] | p | p (Holm) | Thinking [95 % CI] "
              "| Δ (pp) [95 % CI] | p | p (Holm) | What changed |")
    assert header in md
    series = md.split("### Version Series", 1)[1]  # after the settings table (its own "Baseline" row)
    rows = [line for line in series.splitlines() if line.startswith(("| Baseline |", "| V1 |", "| V3 |"))]
    assert len(rows) >= 3 and all(line.count("|") == 12 for line in rows[:3])
    assert "(n=6)" in rows[1] and "Published" not in md  # the tiny model is not Qwen3-8B on ITALIC
    assert (study_dir / "out" / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study_dry_run_prints_every_command_of_the_published_study(tmp_path):
    proc = run_cmd([*EXT, "study", "recipes/studies/format.yaml", "dry_run=true", "output_dir=" + str(tmp_path / "s")], cwd=REPO)
    assert proc.returncode == 0, output_tail(proc)
    out = proc.stdout
    assert out.count("llamafactory-ext prepare multit_") == 3
    assert "4 trial(s):" in out and "[1] baseline" in out
    for recipe in ("v1_nothink", "v2_think", "v3_mixed"):
        assert f"train recipes/{recipe}.yaml model_name_or_path=Qwen/Qwen3-8B" in out
    assert out.count("eval recipes/eval/italic_zeroshot.yaml") == 4 and out.count("thinking=both") == 4
    assert not (tmp_path / "s").exists()
