"""Sweep planning, validation, dry run, failure recording and summaries (no training here; the real
lora_rank sweep is tests/e2e/test_sweep_lora_rank.py)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from llamafactory_ext import sweep
from llamafactory_ext.config import format_value
from llamafactory_ext.io import ResumeError
from llamafactory_ext.sweep import SweepError, config, scheduling, summary
from llamafactory_ext.sweep import trials as trials_mod

BASE = """\
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 4
lora_alpha: 8
lora_target: all
dataset: multit_mixed
template: qwen3
cutoff_len: 256
learning_rate: 1.0e-3
output_dir: saves/ignored
"""


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "data").mkdir()  # the recipe's data, where LLaMA-Factory's default dataset_dir (data) reads it
    (tmp_path / "data" / "dataset_info.json").write_text('{"multit_mixed": {"file_name": "multit_mixed.jsonl"}}')
    (tmp_path / "data" / "multit_mixed.jsonl").write_text("")
    return tmp_path


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


SWEEP = """\
base: base.yaml
grid:
  lora_rank: [8, 16, 24]
derived:
  lora_alpha: 2 * lora_rank
fixed:
  max_steps: 2
output_dir: out
"""


def test_dry_run_prints_exact_commands_and_runs_nothing(work, capsys):
    path = write(work / "s.yaml", SWEEP)
    assert sweep.main([path, "dry_run=true"]) == 0
    out = capsys.readouterr().out
    assert "3 trial(s)" in out
    lines = [line.strip() for line in out.splitlines() if line.strip().startswith("train:")]
    assert len(lines) == 3
    for rank, line in zip((8, 16, 24), lines):
        assert line.split()[2:4] == ["train", "base.yaml"]
        assert f"max_steps=2 lora_rank={rank} lora_alpha={2 * rank} tokenized_path=out/tokenized/" in line
        assert line.endswith(f"output_dir=out/lora_rank-{rank}")
    # lora_rank does not change the data: one tokenized_path for all trials
    assert len({line.split("tokenized_path=")[1].split()[0] for line in lines}) == 1
    assert not (work / "out").exists()


def test_data_keys_get_their_own_tokenized_path(work):
    cfg, where = sweep.load_sweep_config([write(work / "s.yaml", SWEEP), "grid.cutoff_len=[128,256]"])
    trials = trials_mod.grid_trials(cfg, where)
    assert len(trials) == 6
    groups = {t.params["cutoff_len"]: set() for t in trials}
    for t in trials:
        groups[t.params["cutoff_len"]].add(t.data_group)
    assert all(len(g) == 1 for g in groups.values()) and groups[128] != groups[256]
    assert trials[0].name == "lora_rank-8_cutoff_len-128"


def test_user_tokenized_path_is_respected(work):
    cfg, where = sweep.load_sweep_config([write(work / "s.yaml", SWEEP), "fixed.tokenized_path=/data/tok"])
    trials = trials_mod.grid_trials(cfg, where)
    assert all(t.data_group is None for t in trials)
    assert all("tokenized_path=/data/tok" in t.overrides for t in trials)


@pytest.mark.parametrize(
    "override, message",
    [
        ("grid.lora_rnk=[8]", "grid.lora_rnk: LLaMA-Factory's train parser does not know the key 'lora_rnk' (did you mean 'lora_rank'?)"),
        ("fixed.learning_rte=0.1", "fixed.learning_rte: LLaMA-Factory's train parser does not know the key 'learning_rte'"),
        ("derived.alpha=2", "derived.alpha: LLaMA-Factory's train parser does not know the key 'alpha'"),
        ("grid.lora_rank=[]", "grid.lora_rank has no values"),
        ("grid.lora_rank=[8,8]", "two trials have the same name 'lora_rank-8'"),
        ("name_format=trial", "two trials have the same name 'trial'"),
        ("name_format=r{rank}", "name_format 'r{rank}' names 'rank'"),
        ("derived.lora_alpha=2*rank", "derived.lora_alpha: unknown name 'rank'"),
        ("derived.lora_alpha=__import__('os').getcwd()", "derived.lora_alpha: only arithmetic"),
        ("fixed.output_dir=x", "fixed.output_dir: the sweep sets output_dir per trial"),
        ("base=nope.yaml", "base recipe not found: nope.yaml"),
        ("eval.config=nope.yaml", "eval.config: file not found: nope.yaml"),
        ("plot_x=lora_alpha", "plot_x 'lora_alpha' is not a grid key"),
        ("eval.config=ev.yaml eval.overrides.limt=5", "eval.overrides.limt: the evaluator has no key 'limt' (did you mean 'limit'?)"),
        # values checked by LLaMA-Factory's parser and the project's ranges
        ("grid.lora_rank=[0,-8]", "lora_rank must be >= 1, got 0"),
        ("grid.learning_rate=[abc]", "learning_rate must be a valid float, got 'abc'"),
        ("fixed.lora_dropout=1.5", "lora_dropout must be < 1"),
        ("grid.optim=[adamw_nope]", "optim must be one of"),
    ],
)
def test_bad_input_fails_before_any_trial(work, override, message):
    path = write(work / "s.yaml", SWEEP)
    (work / "ev.yaml").write_text("task: italic\n")
    with pytest.raises(SweepError) as err:
        sweep.main([path, *override.split()])
    assert message in str(err.value)
    assert "s.yaml" in str(err.value)
    assert not (work / "out").exists()


def test_empty_grid_and_unknown_base_key(work):
    path = write(work / "s.yaml", "base: base.yaml\noutput_dir: out\ngrid: {}\n")
    with pytest.raises(SweepError, match="the grid is empty"):
        sweep.main([path])
    (work / "base.yaml").write_text(BASE + "lora_rnak: 3\n")
    with pytest.raises(SweepError, match="base recipe base.yaml: lora_rnak"):
        sweep.main([write(work / "s2.yaml", SWEEP)])


def test_cli_exits_2_with_the_message(work, capsys):
    from llamafactory_ext.cli import main

    path = write(work / "s.yaml", SWEEP)
    assert main(["sweep", path, "grid.not_a_key=[1]"]) == 2
    assert "not_a_key" in capsys.readouterr().err


def test_format_value_round_trips_through_omegaconf_cli():
    from omegaconf import OmegaConf

    values = [8, 1e-4, 2.0e-4, True, None, "q_proj,v_proj", "x y", "1e-4", "3", [8, 16], "a:b"]
    for v in values:
        parsed = OmegaConf.to_container(OmegaConf.from_cli([f"k={format_value(v)}"]))["k"]
        assert parsed == v, (v, format_value(v))


def test_derived_expressions():
    assert config.eval_expression("2 * lora_rank", {"lora_rank": 24}, "lora_alpha") == 48
    assert config.eval_expression("lora_rank / 2", {"lora_rank": 24}, "x") == 12
    assert config.eval_expression("max(16, lora_rank)", {"lora_rank": 8}, "x") == 16
    assert config.eval_expression(16, {}, "x") == 16


# ----------------------------------------------------------------------------- running (scripted)
# The real llamafactory-cli runs in tests/e2e/test_sweep_lora_rank.py; here a small Python script
# stands in for it so the failure / retry bookkeeping can be checked without training.

FAKE_TRAIN = r"""
import json, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
out = args["output_dir"]
if os.path.exists(os.path.join(os.path.dirname(out), "FAIL_" + os.path.basename(out))):
    print("Traceback: boom in " + out)
    sys.exit(3)
os.makedirs(out, exist_ok=True)
tok = args.get("tokenized_path")
if tok and not os.path.exists(tok):  # tokenize, like LLaMA-Factory's save_to_disk
    os.makedirs(os.path.join(tok, "train"))
    for name in ("state.json", "dataset_info.json"):
        open(os.path.join(tok, "train", name), "w").write("{}")
    open(os.path.join(tok, "dataset_dict.json"), "w").write('{"splits": ["train"]}')
import time
open(os.path.join(out, "times"), "w").write(f"{time.time()} ")
time.sleep(float(os.environ.get("FAKE_TRAIN_SLEEP", "0")))
open(os.path.join(out, "times"), "a").write(f"{time.time()}")
r = int(args["lora_rank"])
print(f"[INFO] llamafactory.model.loader:144 >> trainable params: {r * 1000:,} || all params: 9,000,000 || trainable%: 0.1")
open(os.path.join(out, "adapter_model.safetensors"), "wb").write(b"x")
json.dump({"train_runtime": 1.5, "train_loss": 2.0}, open(os.path.join(out, "train_results.json"), "w"))
with open(os.path.join(out, "trainer_log.jsonl"), "w") as fh:
    fh.write(json.dumps({"current_steps": 1, "loss": 3.0}) + "\n" + json.dumps({"current_steps": 2, "loss": 2.5}) + "\n")
json.dump({"global_step": 2}, open(os.path.join(out, "trainer_state.json"), "w"))
"""


def _scripted(work, monkeypatch):
    script = work / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    real = trials_mod.grid_trials

    def plan(cfg, where, cwd=None):
        planned = real(cfg, where, cwd)
        for t in planned:
            t.train_cmd = [sys.executable, str(script), *t.train_cmd[2:]]
        return planned

    monkeypatch.setattr(sweep.command, "grid_trials", plan)
    return write(work / "s.yaml", SWEEP)


def test_failed_trial_is_recorded_the_sweep_goes_on_and_retry_reruns_only_it(work, monkeypatch, capsys):
    path = _scripted(work, monkeypatch)
    (work / "out").mkdir()
    (work / "out" / "FAIL_lora_rank-16").write_text("")
    assert sweep.main([path]) == 1  # one trial failed
    out = capsys.readouterr().out
    assert "lora_rank-16: FAILED in train with exit code 3" in out and "boom in out/lora_rank-16" in out
    assert re.search(r"\[1/3, elapsed \d+m\d\ds, ETA ~\d+m\d\ds\] lora_rank-8: done, trainable 8,000", out)
    state = json.loads((work / "out/lora_rank-16/trial.json").read_text())
    assert state["status"] == "failed" and state["exit_code"] == 3 and "boom" in state["log_tail"]
    assert json.loads((work / "out/lora_rank-24/trial.json").read_text())["status"] == "done"  # went on
    summary = (work / "out/summary.csv").read_text().splitlines()
    assert summary[0].startswith("trial,status,lora_rank,lora_alpha,trainable_params,final_loss")
    assert summary[2].startswith("lora_rank-16,failed,16,32,")
    assert summary[3].startswith("lora_rank-24,done,24,48,24000,2.5,1.5")

    # Without retry_failed the failure stays; with it only the failed trial runs again.
    assert sweep.main([path]) == 1
    assert "skip lora_rank-16: failed before" in capsys.readouterr().out
    (work / "out" / "FAIL_lora_rank-16").unlink()
    assert sweep.main([path, "retry_failed=true"]) == 0
    out = capsys.readouterr().out
    assert "skip lora_rank-8: already done" in out and "skip lora_rank-24: already done" in out
    assert "start lora_rank-16" in out and "start lora_rank-8" not in out
    state = json.loads((work / "out/lora_rank-16/trial.json").read_text())
    assert state["status"] == "done" and state["attempts"] == 2 and state["trainable_params"] == 16000
    assert (work / "out/lora_rank-16/train.prev.log").is_file()  # the failed attempt's log is kept


def test_local_gpu_slots_get_their_own_cuda_visible_devices(work, monkeypatch):
    path = _scripted(work, monkeypatch)
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "1.5")
    assert sweep.main([path, "gpus=[0,1,2,3]", "gpus_per_trial=2"]) == 0
    states = [json.loads((work / f"out/lora_rank-{r}/trial.json").read_text()) for r in (8, 16, 24)]
    times = [tuple(map(float, (work / f"out/lora_rank-{r}/times").read_text().split())) for r in (8, 16, 24)]
    # the first trial tokenizes alone; then the two others run at the same time, one per GPU pair
    assert times[0][1] <= min(times[1][0], times[2][0])
    assert max(times[1][0], times[2][0]) < min(times[1][1], times[2][1])
    assert {states[1]["cuda_visible_devices"], states[2]["cuda_visible_devices"]} == {"0,1", "2,3"}
    with pytest.raises(SweepError, match="gpus_per_trial=8 but only 4 GPU"):
        sweep.main([path, "gpus=[0,1,2,3]", "gpus_per_trial=8", "retry_failed=true", "output_dir=out2"])


def test_eval_metrics_from_results_json():
    from llamafactory_ext.eval.results import Results

    results = {"schema_version": 2, "modes": {
        "think": {"accuracy": 0.75, "correct": 3, "total": 4, "missing": 0, "unfinished": 1, "category_mean": 0.7,
                  "format": {"closed_think": 0.75, "mean_reasoning_words": None},
                  "per_category": {"x": {"accuracy": 1.0, "correct": 1, "total": 1}}, "tokens": {"mean": 12.5, "median": None}},
        "nothink": {"accuracy": 0.5, "correct": 2, "total": 4, "cut_off": 0},
    }}
    m = summary.eval_metrics(Results.from_dict(results))  # the typed reader: counts a schema-2 file lacks read as 0
    assert m == {"accuracy/think": 0.75, "unfinished/think": 1.0, "category_mean/think": 0.7, "cut_off/think": 0.0,
                 "unparsed/think": 0.0, "format.closed_think/think": 0.75, "tokens.mean/think": 12.5, "accuracy/nothink": 0.5,
                 "cut_off/nothink": 0.0, "unfinished/nothink": 0.0, "unparsed/nothink": 0.0}


def test_incomplete_tokenized_data_is_removed_before_the_next_trial(work, monkeypatch, capsys):
    """A tokenization killed half-way leaves a non-empty folder that LLaMA-Factory would try to load."""
    path = _scripted(work, monkeypatch)
    cfg, where = sweep.load_sweep_config([path])
    group = Path(trials_mod.grid_trials(cfg, where)[0].data_group)
    (group / "train").mkdir(parents=True)
    (group / "dataset_dict.json").write_text('{"splits": ["train"]}')
    (group / "train" / "data-00000-of-00001.arrow").write_bytes(b"partial")
    assert not scheduling._tokenized_ready(str(group), str(work))
    assert sweep.main([path]) == 0
    assert "removing incomplete tokenized data" in capsys.readouterr().out
    # the partial folder was removed and the first trial tokenized again
    assert not (group / "train" / "data-00000-of-00001.arrow").exists()
    assert scheduling._tokenized_ready(str(group), str(work))


def test_a_trial_whose_commands_changed_is_refused_until_overwrite(work, monkeypatch, capsys):
    path = _scripted(work, monkeypatch)
    assert sweep.main([path, "grid.lora_rank=[8]"]) == 0
    with pytest.raises(ResumeError, match=r"stale trial\(s\), made from other inputs than today's: lora_rank-8 "
                                          r"\(recipe base\.yaml: max_steps 2 -> 3\)"):
        sweep.main([path, "grid.lora_rank=[8]", "fixed.max_steps=3", "retry_failed=true"])
    # a stale trial is never done, even when it finished: it is redone only with overwrite=true
    assert sweep.main([path, "grid.lora_rank=[8]", "fixed.max_steps=3", "retry_failed=true", "overwrite=true"]) == 0
    state = json.loads((work / "out/lora_rank-8/trial.json").read_text())
    assert state["status"] == "done" and "max_steps=3" in state["train_cmd"]
    assert state["attempts"] == 1  # started over: the old run's state was discarded with its outputs


def test_cpu_trials_run_parallel_at_once(work, monkeypatch):
    path = _scripted(work, monkeypatch)
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "1.5")
    assert sweep.main([path, "gpus_per_trial=0", "parallel=2", "tokenize_once=false"]) == 0
    times = [tuple(map(float, (work / f"out/lora_rank-{r}/times").read_text().split())) for r in (8, 16, 24)]
    overlapping = sum(1 for a in times for b in times if a < b and a[0] < b[1] and b[0] < a[1])
    assert overlapping >= 1  # two trials ran at the same time
    starts = sorted(t[0] for t in times)
    assert starts[2] >= min(t[1] for t in times) - 0.05  # never three at once


def test_a_checkpoint_cut_while_saving_is_set_aside_so_the_resume_starts_from_a_whole_one(tmp_path, capsys):
    from transformers.trainer_utils import get_last_checkpoint

    (tmp_path / "checkpoint-1").mkdir()
    (tmp_path / "checkpoint-1" / "trainer_state.json").write_text('{"global_step": 1}')
    (tmp_path / "checkpoint-2").mkdir()  # killed before trainer_state.json
    (tmp_path / "checkpoint-2" / "adapter_model.safetensors").write_bytes(b"x")
    (tmp_path / "checkpoint-3").mkdir()  # killed while writing it
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text('{"global_st')
    (tmp_path / "torn-checkpoint-3").mkdir()  # an earlier torn one keeps its name
    assert get_last_checkpoint(str(tmp_path)).endswith("checkpoint-3")  # what LLaMA-Factory would resume from

    moved = trials_mod.set_aside_torn_checkpoints(tmp_path, "V1")

    assert sorted(p.name for p in moved) == ["torn-checkpoint-2", "torn-checkpoint-3.1"]
    assert (tmp_path / "torn-checkpoint-2" / "adapter_model.safetensors").read_bytes() == b"x"  # kept, not deleted
    assert get_last_checkpoint(str(tmp_path)).endswith("checkpoint-1")
    out = capsys.readouterr().out
    assert "V1: checkpoint-2 was cut while saving" in out and "torn-checkpoint-3.1" in out
    assert trials_mod.set_aside_torn_checkpoints(tmp_path, "V1") == []  # whole ones stay


def test_a_trial_recorded_done_whose_outputs_are_gone_runs_again(work):
    from llamafactory_ext.io import atomic_write_json

    cfg, where = sweep.load_sweep_config([write(work / "s.yaml", SWEEP), "grid.lora_rank=[8]"])
    trial = trials_mod.grid_trials(cfg, where)[0]
    d = trial.path()
    d.mkdir(parents=True)
    atomic_write_json(d / "trial.json", {"name": trial.name, "status": "done"})
    atomic_write_json(d / "train_results.json", {})
    (d / trials_mod.ADAPTER_FILES[0]).write_bytes(b"x")
    if trial.eval_cmd is not None:
        atomic_write_json(d / "eval" / "results.json", {})
    assert trials_mod.status(trial) == "done"
    (d / trials_mod.ADAPTER_FILES[0]).unlink()  # the adapter was deleted: not done, whatever trial.json says
    assert trials_mod.status(trial) == "interrupted"
    assert summary.collect_rows([trial])[0]["status"] == "interrupted"


def test_a_second_sweep_into_the_same_output_dir_fails_at_once(work):
    from llamafactory_ext.io import FolderLock, OutputError

    path = write(work / "s.yaml", SWEEP)
    with FolderLock(work / "out"), pytest.raises(OutputError, match=r"output_dir out is in use by pid \d+"):
        sweep.main([path])
    assert not any((work / "out").glob("lora_rank-*"))  # no trial started


# ----------------------------------------------------------------------------- summary for people, tracking
# The evaluator stands in as a script writing a results.json / comparison.json shaped like eval's own
# (eval/report.py's schema): rank 8 -> 2 of 4 right in thinking mode, 16 -> 3, 24 -> 4; non-thinking 1 of 4.

FAKE_EVAL = r"""
import json, os, sys
from statsmodels.stats.proportion import proportion_confint
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
out = args["output_dir"]
rank = int(args["adapter_name_or_path"].rsplit("-", 1)[1])
os.makedirs(out, exist_ok=True)
def block(correct, total, cut):
    lo, hi = proportion_confint(correct, total, alpha=0.05, method="wilson")
    return {"accuracy": correct / total, "correct": correct, "total": total, "ci95": [lo, hi], "cut_off": cut,
            "per_category": {"geography": {"accuracy": min(correct, 2) / 2, "correct": min(correct, 2), "total": 2},
                             "morphology": {"accuracy": max(correct - 2, 0) / 2, "correct": max(correct - 2, 0), "total": 2}}}
modes = {"think": block(rank // 8 + 1, 4, 3 - rank // 8), "nothink": block(1, 4, 0)}
json.dump({"schema_version": 2, "modes": modes, "baseline": "base"}, open(os.path.join(out, "results.json"), "w"))
comparison = {"modes": {m: {"total": {"n": 4, "delta": 100 * (b["accuracy"] - 0.5)}} for m, b in modes.items()}}
json.dump(comparison, open(os.path.join(out, "comparison.json"), "w"))
"""


def test_summary_md_json_and_tensorboard_hold_the_results_json_values(work, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    (work / "ev.yaml").write_text("task: italic\n")
    (work / "fake_eval.py").write_text(FAKE_EVAL)
    path = write(work / "s.yaml", SWEEP + "eval: {config: ev.yaml}\n")
    real = trials_mod.grid_trials

    def plan(cfg, where, cwd=None):
        planned = real(cfg, where, cwd)
        for t in planned:
            t.train_cmd = [sys.executable, str(work / "fake_train.py"), *t.train_cmd[2:]]
            t.eval_cmd = [sys.executable, str(work / "fake_eval.py"), *t.eval_cmd[5:]]
        return planned

    (work / "fake_train.py").write_text(FAKE_TRAIN)
    monkeypatch.setattr(sweep.command, "grid_trials", plan)
    assert sweep.main([path]) == 0

    md = (work / "out/summary.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| trial"))
    assert header == ("| trial | changed keys | trainable | final loss | think % [95 % CI] | nothink % [95 % CI] "
                      "| Δ think (pp) | Δ nothink (pp) | time (min) |")
    data = json.loads((work / "out/summary.json").read_text())
    assert [t["trial"] for t in data["trials"]] == ["lora_rank-8", "lora_rank-16", "lora_rank-24"]
    for rank in (8, 16, 24):
        trial_dir = work / f"out/lora_rank-{rank}"
        results = json.loads((trial_dir / "eval/results.json").read_text())
        think, nothink = results["modes"]["think"], results["modes"]["nothink"]
        row = next(line for line in md if line.startswith(f"| lora_rank-{rank} |")).split(" | ")
        trial = json.loads((trial_dir / "trial.json").read_text())
        minutes = (trial["train_wall_s"] + trial["eval_wall_s"]) / 60
        assert row[1:] == [f"lora_rank={rank}, lora_alpha={2 * rank}", f"{rank * 1000:,}", "2.50",
                           f"{100 * think['accuracy']:.2f} [{100 * think['ci95'][0]:.2f}, {100 * think['ci95'][1]:.2f}]",
                           f"{100 * nothink['accuracy']:.2f} [{100 * nothink['ci95'][0]:.2f}, {100 * nothink['ci95'][1]:.2f}]",
                           f"{100 * think['accuracy'] - 50:+.2f}", "-25.00", f"{minutes:.2f} |"]
        # every figure in summary.md has two decimals (counts excepted)
        assert all(re.fullmatch(r"[+-]?\d+\.\d\d", x) for x in re.findall(r"[+-]?\d+\.\d+", " ".join(row[3:])))
        entry = next(t for t in data["trials"] if t["trial"] == f"lora_rank-{rank}")
        assert entry["params"] == {"lora_rank": rank, "lora_alpha": 2 * rank} and entry["status"] == "done"
        assert entry["cut_off/think"] == think["cut_off"] and entry["delta_pp/nothink"] == -25.0
        assert entry["eval"]["modes"] == results["modes"]  # per category and everything else

        # TensorBoard, in the trial's run folder, at the training's last step: equal to results.json
        record = json.loads((trial_dir / "tracking.json").read_text())
        acc = EventAccumulator(record["tensorboard"], size_guidance={"scalars": 0})
        acc.Reload()
        logged = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
        f32 = __import__("numpy").float32
        assert logged["eval/accuracy/think"] == [(2, f32(think["accuracy"]))]
        assert logged["eval/accuracy/think/morphology"] == [(2, f32(think["per_category"]["morphology"]["accuracy"]))]
        assert logged["eval/cut_off_share/think"] == [(2, f32(think["cut_off"] / think["total"]))]
        assert logged["eval/delta_pp/think"] == [(2, f32(100 * think["accuracy"] - 50))]
        assert logged["train/trainable_params"] == [(2, f32(rank * 1000))] and logged["train/final_loss"] == [(2, f32(2.5))]
    # a resumed sweep logs nothing twice
    assert sweep.main([path]) == 0
    again = EventAccumulator(json.loads((work / "out/lora_rank-8/tracking.json").read_text())["tensorboard"])
    again.Reload()
    assert len(again.Scalars("eval/accuracy/think")) == 1
