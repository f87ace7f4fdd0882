"""Sweep and study trials know what they consumed (issue 21, "Sweep", "Study" and "other ways to
change an input"): ``<trial>/provenance.json`` records the recipe as resolved, the evaluator's config
as resolved, the dataset_info.json entries and the data files they resolve to, the model and the
evaluator's source. A trial whose inputs changed is stale: never done, shown with what changed,
nothing runs until ``overwrite=true`` (which reruns it and keeps the others). The tokenized cache is
keyed on contents. A study re-prepares a data set whose traces grew. Checked on real files and
folders with ``status()`` and the sweep and study commands (training by a stand-in script: the
training itself is not the point here)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import pytest

from llamafactory_ext import provenance as pv
from llamafactory_ext import sweep
from llamafactory_ext.sweep import inputs as inputs_mod
from llamafactory_ext.sweep import summary
from llamafactory_ext.sweep import trials as trials_mod
from tests.helpers import write_italic_sample, write_jsonl
from tests.test_sweep import FAKE_TRAIN

ENTRY = {"formatting": "sharegpt", "columns": {"messages": "messages"},
         "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}
BASE = """\
model_name_or_path: base-model
adapter_name_or_path: adapter0
stage: sft
do_train: true
finetuning_type: lora
lora_target: all
dataset_dir: ds
dataset: multit_mixed
template: qwen3
cutoff_len: 256
learning_rate: 1.0e-3
output_dir: saves/ignored
"""
SWEEP = """\
base: base.yaml
grid:
  lora_rank: [8, 16]
fixed:
  max_steps: 2
eval: {config: ev.yaml}
output_dir: out
"""


def _rows(n: int, tag: str = "") -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"Domanda {i}{tag}?"}, {"role": "assistant", "content": "A"}]} for i in range(n)]


def _model(folder: Path, seed: int) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3", "hidden_size": 64 + seed}))
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"a": 0, "b": 1, "xyz"[seed % 3]: 2}}}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 256}))
    (folder / "model.safetensors").write_bytes(bytes([seed]) * 4096)
    return folder


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """A project folder: base-model/ (and another-model/), adapter0/, ds/dataset_info.json with two data
    files, base.yaml, an eval config reading italic.jsonl, the sweep file s.yaml."""
    monkeypatch.chdir(tmp_path)
    _model(tmp_path / "base-model", 1)
    _model(tmp_path / "another-model", 2)
    (tmp_path / "adapter0").mkdir()
    (tmp_path / "adapter0" / "adapter_config.json").write_text(json.dumps({"r": 8, "lora_alpha": 16}))
    (tmp_path / "adapter0" / "adapter_model.safetensors").write_bytes(b"\0" * 512)
    (tmp_path / "ds" / "data").mkdir(parents=True)
    write_jsonl(tmp_path / "ds" / "data" / "multit_mixed.jsonl", _rows(4))
    write_jsonl(tmp_path / "ds" / "data" / "other.jsonl", _rows(4, " (altro)"))
    info = {"multit_mixed": {"file_name": "data/multit_mixed.jsonl", **ENTRY}, "other": {"file_name": "data/other.jsonl", **ENTRY}}
    (tmp_path / "ds" / "dataset_info.json").write_text(json.dumps(info, indent=2))
    (tmp_path / "base.yaml").write_text(BASE)
    write_italic_sample(tmp_path / "italic.jsonl")
    (tmp_path / "ev.yaml").write_text("task: italic\nsource: italic.jsonl\nlimit: 2\n")
    (tmp_path / "s.yaml").write_text(SWEEP)
    return tmp_path


def _trials(*overrides: str) -> list[trials_mod.Trial]:
    cfg, where = sweep.load_sweep_config(["s.yaml", *overrides])
    return trials_mod.grid_trials(cfg, where)


def _finish(trial: trials_mod.Trial) -> None:
    """The folder of a trial that trained and evaluated, recorded with today's inputs."""
    d = trial.path()
    (d / "eval").mkdir(parents=True)
    inputs_mod.trial_provenance(trial).write(d)
    (d / "trial.json").write_text(json.dumps({"name": trial.name, "status": "done"}))
    (d / "train_results.json").write_text("{}")
    (d / "adapter_model.safetensors").write_bytes(b"x")
    (d / "eval" / "results.json").write_text(json.dumps({"schema_version": 2, "modes": {}}))


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def _same_size_same_mtime(path: Path) -> None:
    st, raw = path.stat(), path.read_bytes()
    path.write_bytes(raw.replace(b"Domanda 0", b"Domanda 9"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def _symlink(path: Path, target: Path) -> None:
    path.unlink()
    path.symlink_to(target.resolve())


def _swap_model(work: Path) -> None:
    (work / "base-model").rename(work / "base-model.orig")
    (work / "another-model").rename(work / "base-model")


DATA = "dataset multit_mixed ds/data/multit_mixed.jsonl: content changed (sha "
CHANGES = {
    "base_recipe_learning_rate": (lambda w: _edit(w / "base.yaml", "1.0e-3", "2.0e-3"),
                                  ["recipe base.yaml: learning_rate 0.001 -> 0.002"], False),
    "data_reprepared_same_name": (lambda w: write_jsonl(w / "ds/data/multit_mixed.jsonl", _rows(30)), [DATA], True),
    "data_edited_in_place_same_size_and_mtime": (lambda w: _same_size_same_mtime(w / "ds/data/multit_mixed.jsonl"),
                                                 [DATA], True),
    "data_file_replaced_by_a_symlink": (lambda w: _symlink(w / "ds/data/multit_mixed.jsonl", w / "ds/data/other.jsonl"), [DATA], True),
    "dataset_info_entry_points_at_another_file": (
        lambda w: _edit(w / "ds/dataset_info.json", '"file_name": "data/multit_mixed.jsonl"', '"file_name": "data/other.jsonl"'),
        ["dataset_info ds/dataset_info.json: multit_mixed.file_name 'data/multit_mixed.jsonl' -> 'data/other.jsonl'",
         "dataset multit_mixed ds/data/other.jsonl: content changed (sha "], True),
    "tokenizer_file_changed_weights_kept": (lambda w: _edit(w / "base-model/tokenizer.json", '"b": 1', '"b": 1, "c": 3'),
                                            ["model base-model: content changed (sha ", "tokenizer.json size"], True),
    "model_retrained_into_the_same_folder": (lambda w: (w / "base-model/model.safetensors").write_bytes(b"\7" * 4096),
                                             ["model base-model: content changed (sha ", "model.safetensors content changed"], False),
    "model_folder_swapped_for_another_model": (_swap_model, ["model base-model: content changed (sha ", "config.json content changed"], True),
    "adapter_config_changed": (lambda w: _edit(w / "adapter0/adapter_config.json", '"lora_alpha": 16', '"lora_alpha": 32'),
                               ["adapter adapter0: content changed (sha ", "adapter_config.json content changed"], False),
    "eval_config_changed": (lambda w: _edit(w / "ev.yaml", "limit: 2", "limit: 3"), ["eval ev.yaml: limit 2 -> 3"], False),
    "eval_source_changed": (lambda w: _edit(w / "italic.jsonl", "Roma", "Rome"),
                            ["eval source italic.jsonl: content changed (sha "], False),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_trial_whose_input_changed_is_stale_and_nothing_runs_until_overwrite(work, change):
    first, second = _trials()
    _finish(first)
    assert [trials_mod.status(t) for t in (first, second)] == ["done", "pending"]
    make, words, new_cache = CHANGES[change]
    key_before = Path(first.data_group).name
    make(work)
    first, second = _trials()  # the sweep read again, as a resumed sweep reads it
    assert trials_mod.status(first) == "stale" and trials_mod.status(second) == "pending"
    changes = inputs_mod.stale_changes(first)
    for word in words:
        assert any(word in line for line in changes), changes
    assert not any(line.startswith(("transformers", "torch", "template")) for line in changes), changes
    # the tokenized cache follows the data and the tokenizer, not the rest
    assert (Path(first.data_group).name != key_before) == new_cache
    # a resumed sweep trains nothing: it names every stale trial and what changed, in one line
    with pytest.raises(pv.StaleInputs) as err:
        sweep.main(["s.yaml"])
    message = str(err.value)
    assert "\n" not in message and message.startswith("stale trial(s), made from other inputs than today's: lora_rank-8 (")
    assert words[0] in message and "lora_rank-16" not in message and "overwrite=true" in message
    assert not second.path().exists() and json.loads((first.path() / "trial.json").read_text())["status"] == "done"



def test_another_data_set_registered_in_the_same_dataset_info_changes_nothing(work):
    first, _ = _trials()
    _finish(first)
    info = json.loads((work / "ds/dataset_info.json").read_text())
    (work / "ds/dataset_info.json").write_text(json.dumps({**info, "new_set": {"file_name": "data/new.jsonl", **ENTRY}}))
    again, _ = _trials()
    assert trials_mod.status(again) == "done" and again.data_group == first.data_group


def test_an_eval_key_that_changes_no_number_leaves_the_trial_done(work):
    """progress / overwrite / report_to say how the evaluation is shown, logged or restarted: the trial
    stays done (with overwrite=true a stale trial would be discarded and trained again)."""
    first, _ = _trials()
    _finish(first)
    (work / "ev.yaml").write_text((work / "ev.yaml").read_text() + "progress: true\nreport_to: tensorboard\n")
    again, _ = _trials()
    assert trials_mod.status(again) == "done" and inputs_mod.stale_changes(again) == []


def test_data_changed_after_the_trials_were_planned_is_refused_before_training(work):
    first, _ = _trials()
    write_jsonl(work / "ds/data/multit_mixed.jsonl", _rows(5))  # re-prepared while the sweep waits for its turn
    with pytest.raises(pv.StaleInputs, match=r"trial lora_rank-8: its data or tokenizer changed since the trials were planned"):
        trials_mod.run_trial(first)
    assert not (first.path() / "train.log").exists()


SWEEP_DATA = """\
base: base.yaml
grid:
  dataset: [multit_mixed, other]
fixed: {lora_rank: 8, max_steps: 2}
output_dir: out
"""


def test_overwrite_reruns_the_stale_trial_on_new_tokenized_data_and_keeps_the_current_one(work, monkeypatch, capsys):
    (work / "s.yaml").write_text(SWEEP_DATA)
    (work / "fake_train.py").write_text(FAKE_TRAIN)
    real = trials_mod.grid_trials

    def plan(cfg, where, cwd=None):
        planned = real(cfg, where, cwd)
        for t in planned:
            t.train_cmd = [sys.executable, str(work / "fake_train.py"), *t.train_cmd[2:]]
        return planned

    monkeypatch.setattr(sweep.command, "grid_trials", plan)
    assert sweep.main(["s.yaml"]) == 0
    old = {t.name: t.data_group for t in _trials()}
    write_jsonl(work / "ds/data/multit_mixed.jsonl", _rows(30))  # re-prepared under the same name, traces joined
    capsys.readouterr()

    # the summary shows it stale, with what changed; summary.json keeps what each trial was made from
    cfg, _where = sweep.load_sweep_config(["s.yaml"])
    rows = summary.write_summary(work / "out", _trials(), cfg)
    assert [r["status"] for r in rows] == ["stale", "done"]
    md = (work / "out/summary.md").read_text()
    assert re.search(r"\| dataset-multit_mixed \(stale: dataset multit_mixed ds/data/multit_mixed\.jsonl: content changed "
                     r"\(sha \w+… -> \w+…\)\) \|", md), md
    assert "1 done, 0 failed, 1 stale, 0 not run, of 2 trials" in md
    data = json.loads((work / "out/summary.json").read_text())
    assert data["trials"][0]["stale"] == inputs_mod.stale_changes(_trials()[0])
    recorded = data["trials"][1]["provenance"]
    assert recorded["configs"]["recipe base.yaml"]["dataset"] == "other" and recorded["configs"]["recipe base.yaml"]["lora_rank"] == 8
    assert recorded["inputs"]["dataset other"]["digest"] == hashlib.sha256((work / "ds/data/other.jsonl").read_bytes()).hexdigest()

    with pytest.raises(pv.StaleInputs, match=r"dataset-multit_mixed \(dataset multit_mixed ds/data/multit_mixed\.jsonl: content changed"):
        sweep.main(["s.yaml"])
    assert sweep.main(["s.yaml", "overwrite=true"]) == 0
    out = capsys.readouterr().out
    assert "rerun dataset-multit_mixed: stale (dataset multit_mixed" in out and "skip dataset-other: already done" in out
    new = {t.name: t.data_group for t in _trials()}
    assert new["dataset-other"] == old["dataset-other"] and new["dataset-multit_mixed"] != old["dataset-multit_mixed"]
    state = json.loads((work / "out/dataset-multit_mixed/trial.json").read_text())
    assert state["status"] == "done" and f"tokenized_path={new['dataset-multit_mixed']}" in state["train_cmd"]
    assert (work / new["dataset-multit_mixed"] / "dataset_dict.json").is_file()  # tokenized anew, the old rows not loaded
    assert [trials_mod.status(t) for t in _trials()] == ["done", "done"]


def test_study_reprepares_when_the_traces_grew(work, capsys):
    from llamafactory_ext.data.normalize import question_key
    from llamafactory_ext.study import run_prepare

    demo = Path(__file__).resolve().parents[1] / "llamafactory_ext" / "resources" / "demo"
    quiz = json.loads((demo / "study_quiz.json").read_text())
    keys = {question_key(q["question"], q["choices"]) for q in quiz}
    lines = (demo / "traces.jsonl").read_text().splitlines(keepends=True)
    joined = [line for line in lines if json.loads(line)["key"] in keys]
    (work / "traces.jsonl").write_text("".join(joined[:4]))
    steps = [("multit_mixed", {"source": str(demo / "study_quiz.json"), "traces": "traces.jsonl", "out_dir": "prep"})]

    def thinking_rows() -> int:
        return sum("<think>" in line for line in (work / "prep/multit_mixed.jsonl").read_text().splitlines())

    assert run_prepare(steps, str(work), dry_run=False) is True
    assert thinking_rows() == 4
    assert run_prepare(steps, str(work), dry_run=False) is False
    assert "[study] skip prepare multit_mixed: already prepared with these options and inputs" in capsys.readouterr().out
    # prepared before the data-folder convention (no entry in ./dataset_info.json): the skip registers it
    (work / "dataset_info.json").unlink()
    assert run_prepare(steps, str(work), dry_run=False) is False
    assert json.loads((work / "dataset_info.json").read_text())["multit_mixed"]["file_name"] == "prep/multit_mixed.jsonl"
    (work / "traces.jsonl").write_text("".join(joined))  # the same path, 4 -> all accepted traces
    assert run_prepare(steps, str(work), dry_run=False) is True
    out = capsys.readouterr().out
    assert re.search(r"\[study\] prepare multit_mixed \(traces traces\.jsonl: content changed \(sha \w+… -> \w+…\)\)", out), out
    assert thinking_rows() == len(joined) > 4


def test_study_trial_whose_recipe_changed_is_stale_and_the_study_stops_before_the_baseline(work):
    from llamafactory_ext.config import from_argv
    from llamafactory_ext.study import StudyConfig, build_trials, run, write_report

    (work / "v3.yaml").write_text(BASE + "lora_rank: 24\n")
    (work / "study.yaml").write_text(
        "title: t\noutput_dir: sout\nmodel: base-model\nversions: [{name: V3, recipe: v3.yaml, format: mixed}]\n"
        "train_overrides: {max_steps: 2}\neval: {config: ev.yaml}\n")
    cfg = from_argv(StudyConfig, ["study.yaml"])
    baseline, v3 = build_trials(cfg, "study.yaml", str(work))
    _finish(v3)
    _edit(work / "v3.yaml", "lora_rank: 24", "lora_rank: 64")
    with pytest.raises(pv.StaleInputs, match=r"V3 \(recipe v3\.yaml: lora_rank 24 -> 64\)"):
        run(cfg, "study.yaml", str(work))
    assert not baseline.path().exists()  # nothing ran, not even the baseline's evaluation
    study = write_report(cfg, build_trials(cfg, "study.yaml", str(work)))
    row = study["versions"][1]
    assert row["status"] == "stale" and row["stale"] == ["recipe v3.yaml: lora_rank 24 -> 64"]
    assert row["provenance"]["configs"]["recipe v3.yaml"]["lora_rank"] == 24  # what its figures were made from
    assert "- V3: recipe v3.yaml: lora_rank 24 -> 64" in (work / "sout/study.md").read_text()


def test_study_resumed_under_changed_train_overrides_is_stale(work):
    """The study file's own train_overrides are part of every version's recipe as trained: a resume after
    they changed (max_steps 2 -> 3) trains nothing and names the change."""
    from llamafactory_ext.config import from_argv
    from llamafactory_ext.study import StudyConfig, build_trials, run

    (work / "v3.yaml").write_text(BASE + "lora_rank: 24\n")
    study = ("title: t\noutput_dir: sout\nmodel: base-model\nversions: [{name: V3, recipe: v3.yaml, format: mixed}]\n"
             "train_overrides: {max_steps: 2}\neval: {config: ev.yaml}\n")
    (work / "study.yaml").write_text(study)
    _finish(build_trials(from_argv(StudyConfig, ["study.yaml"]), "study.yaml", str(work))[1])
    (work / "study.yaml").write_text(study.replace("max_steps: 2", "max_steps: 3"))
    cfg = from_argv(StudyConfig, ["study.yaml"])
    with pytest.raises(pv.StaleInputs, match=r"V3 \(recipe v3\.yaml: max_steps 2 -> 3\)"):
        run(cfg, "study.yaml", str(work))
    assert not (work / "sout" / "baseline").exists()  # nothing ran


def test_demo_stage_settings_say_which_file_changed(tmp_path):
    from llamafactory_ext.demo import Stage, stage_settings
    from llamafactory_ext.io import settings_diff

    (tmp_path / "study.yaml").write_text("lr: 1\n")
    stage = Stage("study", "study", [["llamafactory-ext", "study", "study.yaml"]], ["study/study.json"], inputs=("study.yaml",))
    before = stage_settings(stage, tmp_path, None)
    (tmp_path / "study.yaml").write_text("lr: 2\n")
    (line,) = settings_diff(before, stage_settings(stage, tmp_path, None))
    assert re.fullmatch(r"inputs\.study\.yaml: content changed \(sha \w{6}… -> \w{6}…\)", line), line
    after = stage_settings(stage, tmp_path, {"commands": [["a1"]]})
    assert settings_diff(after, stage_settings(stage, tmp_path, {"commands": [["a2"]]})) == ["after.commands[0][0]: 'a1' -> 'a2'"]
