"""tracking.log_results: the TensorBoard event file read back with TensorBoard's own reader, in the run
folder transformers' TensorBoardCallback made for training; W&B skipped in one line without wandb."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from llamafactory_ext import tracking

RESULTS = {"schema_version": 2, "modes": {
    "think": {"accuracy": 0.75, "correct": 3, "total": 4, "cut_off": 1, "ci95": [0.3, 0.95],
              "per_category": {"geography": {"accuracy": 1.0}, "morphology": {"accuracy": 0.5}}},
    "nothink": {"accuracy": 0.5, "correct": 2, "total": 4, "cut_off": 0, "ci95": [0.15, 0.85]},
}}
COMPARISON = {"modes": {"think": {"total": {"delta": 25.0, "n": 4}}, "nothink": {"total": {"delta": -12.5, "n": 4}}}}


def read_scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _training_run(output_dir) -> None:
    """What LLaMA-Factory's report_to: tensorboard does during training: transformers' own callback."""
    pytest.importorskip("tensorboard")
    from transformers import TrainerControl, TrainerState, TrainingArguments
    from transformers.integrations import TensorBoardCallback

    args = TrainingArguments(output_dir=str(output_dir), report_to=["tensorboard"], use_cpu=True)
    state, control = TrainerState(), TrainerControl()
    cb = TensorBoardCallback()
    cb.on_train_begin(args, state, control)
    for step, loss in ((1, 3.0), (2, 2.5)):
        state.global_step = step
        cb.on_log(args, state, control, logs={"loss": loss})
    cb.on_train_end(args, state, control)


def test_eval_figures_land_in_the_training_run_and_read_back_equal(tmp_path, monkeypatch):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    _training_run(tmp_path)
    record = tracking.log_results(RESULTS, tmp_path, "tensorboard", "r8", step=2,
                                  extra={"trainable_params": 16384, "final_loss": 2.5}, comparison=COMPARISON)
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and record["tensorboard"] == str(runs[0])  # beside training's, not a second run
    got = read_scalars(runs[0])
    assert got["train/loss"] == [(1, 3.0), (2, 2.5)]  # training's own curve is there too
    f32 = np.float32
    expected = {
        "eval/accuracy/think": 0.75, "eval/accuracy/nothink": 0.5,
        "eval/accuracy/think/geography": 1.0, "eval/accuracy/think/morphology": 0.5,
        "eval/cut_off_share/think": 1 / 4, "eval/cut_off_share/nothink": 0.0,
        "eval/delta_pp/think": 25.0, "eval/delta_pp/nothink": -12.5,
        "train/trainable_params": 16384.0, "train/final_loss": 2.5,
    }
    for tag, value in expected.items():
        assert got[tag] == [(2, f32(value))], tag  # TensorBoard stores float32
    assert set(got) == set(expected) | {"train/loss"}


def test_without_a_training_run_a_new_one_is_named_as_transformers_names_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    pytest.importorskip("tensorboard")
    record = tracking.log_results(RESULTS, tmp_path, None)
    (run,) = (tmp_path / "runs").iterdir()
    assert record["tensorboard"] == str(run) and run.name.endswith("_" + __import__("socket").gethostname())
    assert read_scalars(run)["eval/accuracy/think"] == [(0, np.float32(0.75))]
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "elsewhere"))
    assert tracking.log_results(RESULTS, tmp_path, None)["tensorboard"] == str(tmp_path / "elsewhere")


def test_wandb_named_but_not_installed_is_a_one_line_skip(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError, as when it is not installed
    monkeypatch.setattr(tracking, "_SAID", set())
    record = tracking.log_results(RESULTS, tmp_path, "tensorboard,wandb", "r8")
    assert record["wandb"] is None
    tracking.log_results(RESULTS, tmp_path, "wandb", "r16")  # a second trial: the notice is not repeated
    err = capsys.readouterr().err
    assert err.count("[tracking] W&B skipped: report_to names wandb, but wandb is not installed (pip install wandb)") == 1
    assert "Traceback" not in err


def test_wandb_offline_run_holds_the_figures(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    record = tracking.log_results(RESULTS, tmp_path, "wandb", "r8", step=2, comparison=COMPARISON)
    assert record["wandb"] and list((tmp_path / "wandb").glob(f"offline-run-*-{record['wandb']}"))
    assert wandb.run is None  # finished


@pytest.mark.parametrize("report_to,targets", [(None, []), ("none", []), ("all", ["tensorboard", "wandb"]),
                                               ("wandb", ["wandb"]), (["tensorboard", "mlflow"], ["tensorboard"]),
                                               ("tensorboard, wandb", ["tensorboard", "wandb"])])
def test_report_to_as_llamafactory_writes_it(report_to, targets):
    assert tracking.report_targets(report_to) == targets


def test_importing_tracking_does_not_import_torch():
    code = "import sys, llamafactory_ext.tracking; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
