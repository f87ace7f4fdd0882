"""``eval report_to=`` and a study's ``report_to`` log their figures through ``tracking.log_results`` into the
training's own TensorBoard run (the folder transformers' TensorBoardCallback made), at the training's last
step, read back with TensorBoard's own reader; the figures are derived here from the predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llamafactory_ext import cli
from tests.eval.common import italic_rows, write_rows
from tests.test_tracking import _training_run, read_scalars

GOLD = "ABCD"


def predictions(tmp_path):
    """think: always A (1 of 4 right: id 0); nothink: A, B, C, A (3 of 4 right)."""
    rows = [{"id": str(i), "mode": "think", "output": "<think>\nPenso.\n</think>\n\nA"} for i in range(4)]
    rows += [{"id": str(i), "mode": "nothink", "output": letter} for i, letter in enumerate("ABCA")]
    return write_rows(tmp_path / "preds.jsonl", rows)


def test_eval_logs_into_the_adapters_training_run_at_its_last_step(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    adapter = tmp_path / "saves" / "v3"
    _training_run(adapter)  # what `report_to: tensorboard` leaves in the training's output_dir
    (adapter / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    source = write_rows(tmp_path / "italic.jsonl", italic_rows(4))
    args = ["eval", "task=italic", f"source={source}", f"predictions={predictions(tmp_path)}", f"adapter_name_or_path={adapter}",
            f"output_dir={tmp_path / 'ev'}", "progress=false"]
    assert cli.main([*args, "report_to=tensorboard"]) == 0
    (run,) = (adapter / "runs").iterdir()
    got = read_scalars(run)
    assert got["train/loss"] == [(1, 3.0), (2, 2.5)]  # the training's curve, same run
    f32 = np.float32
    assert got["eval/accuracy/think"] == [(2, f32(1 / 4))] and got["eval/accuracy/nothink"] == [(2, f32(3 / 4))]
    assert got["eval/accuracy/nothink/geography"] == [(2, f32(2 / 2))]  # ids 0 and 2: A, C right
    assert got["eval/accuracy/nothink/orthography"] == [(2, f32(1 / 2))]  # ids 1 and 3: B right, A for D wrong
    # without report_to nothing is logged
    before = sorted(p.name for p in run.iterdir())
    assert cli.main([*args, f"output_dir={tmp_path / 'ev2'}"]) == 0
    assert sorted(p.name for p in run.iterdir()) == before


def _done_trial(trial, results: dict, step: int | None) -> None:
    d = trial.path()
    (d / "eval").mkdir(parents=True)
    (d / "eval" / "results.json").write_text(json.dumps(results))
    (d / "trial.json").write_text(json.dumps({"status": "done"}))
    if step is not None:
        _training_run(d)
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        (d / "train_results.json").write_text("{}")
        (d / "adapter_model.safetensors").write_bytes(b"x")


def results(think: float, nothink: float) -> dict:
    block = lambda a: {"accuracy": a, "correct": int(4 * a), "total": 4, "cut_off": 0, "ci95": [0.0, 1.0]}
    return {"schema_version": 3, "modes": {"think": block(think), "nothink": block(nothink)}, "model": {"model_name_or_path": "m"},
            "task": "italic"}


@pytest.mark.parametrize("report_to", ["tensorboard", None])
def test_a_study_logs_each_finished_trial_once_into_its_run(tmp_path, monkeypatch, report_to):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    from llamafactory_ext.study import StudyConfig, write_report
    from llamafactory_ext.sweep.trials import make_trial

    spec = {"config": "e.yaml", "overrides": {}, "file_keys": set()}
    (tmp_path / "e.yaml").write_text("task: italic\n")  # the trials' inputs exist (a status check reads them)
    (tmp_path / "r.yaml").write_text("model_name_or_path: m\nreport_to: none\n")
    out = tmp_path / "study"
    common = {"out_root": out, "eval_spec": spec, "cwd": str(tmp_path), "env": {}}
    base = make_trial(name="baseline", params={"version": "baseline"}, recipe=None, base={"model_name_or_path": "m"}, overrides={}, **common)
    v1 = make_trial(name="V1", params={"version": "V1"}, recipe="r.yaml", base={"model_name_or_path": "m", "report_to": "none"},
                    overrides={}, **common)
    for trial, res, step in ((base, results(0.5, 0.25), None), (v1, results(0.75, 1.0), 3)):
        _done_trial(trial, res, step)
    from llamafactory_ext.sweep.trials import status

    assert status(base) == status(v1) == "done"
    cfg = StudyConfig(output_dir=str(out), report_to=report_to)
    write_report(cfg, [base, v1])
    if report_to is None:  # the recipe says report_to: none and the study nothing
        assert not (out / "V1" / "tracking.json").exists() and not (out / "baseline" / "runs").exists()
        return
    (run,) = (out / "V1" / "runs").iterdir()
    got = read_scalars(run)
    assert got["eval/accuracy/think"] == [(3, np.float32(0.75))] and got["eval/accuracy/nothink"] == [(3, np.float32(1.0))]
    assert got["train/loss"] == [(1, 3.0), (2, 2.5)]
    (brun,) = (out / "baseline" / "runs").iterdir()
    assert read_scalars(brun)["eval/accuracy/think"] == [(0, np.float32(0.5))]
    files = sorted(p.name for p in run.iterdir())
    write_report(cfg, [base, v1])  # rewritten after every trial: logged once
    assert sorted(p.name for p in run.iterdir()) == files
