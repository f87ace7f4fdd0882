"""The data-folder convention (``data/folder.py``): where a project's dataset_info.json is, which entries a
UI may list, and the one-line check that stops inspect, sweep and study before any run when a recipe's
data is not where the recipe reads it, naming the command that fixes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llamafactory_ext import cli
from llamafactory_ext.data.folder import DataFolderError, check_recipe_data, data_folder, registered_datasets
from llamafactory_ext.data.samples import SAMPLES_DIR
from tests.helpers import RECIPES_DIR

QUIZ, TRACES = SAMPLES_DIR / "multit_quiz.json", SAMPLES_DIR / "multit_traces.jsonl"
V3 = yaml.safe_load((RECIPES_DIR / "v3_mixed.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def error_of(recipe: dict, **kw) -> str:
    with pytest.raises(DataFolderError) as info:
        check_recipe_data(recipe, "recipes/v3_mixed.yaml", **kw)
    return str(info.value)


def test_data_folder_is_the_working_folder_or_dataset_dir(project):
    assert data_folder() == project
    assert data_folder("ds") == project / "ds" and data_folder("/abs") == Path("/abs")


def test_registered_datasets_lists_only_entries_whose_files_exist(project):
    assert registered_datasets(project) == {}  # no dataset_info.json yet
    (project / "data").mkdir()
    (project / "data" / "a.jsonl").write_text("{}\n")
    info = {"a": {"file_name": "data/a.jsonl"}, "gone": {"file_name": "data/gone.jsonl"},
            "hub": {"hf_hub_url": "org/set"}, "folder": {"file_name": "data"}}
    (project / "dataset_info.json").write_text(json.dumps(info))
    assert registered_datasets(project) == {"a": info["a"], "folder": info["folder"]}


def test_each_mismatch_is_one_line_with_the_command_that_fixes_it(project):
    recipe = {**V3, "eval_dataset": "multit_mixed_val"}
    assert error_of(recipe) == ("recipes/v3_mixed.yaml: data set multit_mixed: dataset_dir . has no dataset_info.json; "
                                "fix: llamafactory-ext prepare multit_mixed source=PATH traces=PATH")
    (project / "dataset_info.json").write_text(json.dumps({"multit_mixd": {"file_name": "data/x.jsonl"}}))
    assert error_of(recipe) == ("recipes/v3_mixed.yaml: data set multit_mixed: not registered in dataset_info.json (did you "
                                "mean 'multit_mixd'?); fix: llamafactory-ext prepare multit_mixed source=PATH traces=PATH")
    (project / "dataset_info.json").write_text(json.dumps({"multit_mixed": {"file_name": "data/multit_mixed.jsonl"},
                                                           "multit_mixed_val": {"file_name": "data/multit_mixed_val.jsonl"}}))
    assert error_of(recipe) == ("recipes/v3_mixed.yaml: data set multit_mixed: dataset_info.json points at data/multit_mixed.jsonl, "
                                "which does not exist; fix: llamafactory-ext prepare multit_mixed source=PATH traces=PATH")
    (project / "data").mkdir()
    (project / "data" / "multit_mixed.jsonl").write_text("{}\n")
    assert error_of(recipe).endswith("fix: llamafactory-ext prepare multit_mixed source=PATH traces=PATH val_size=0.1")
    (project / "data" / "multit_mixed_val.jsonl").write_text("{}\n")
    check_recipe_data(recipe, "x")  # all there


def test_the_fix_names_the_data_sets_own_keys_and_folder(project):
    gsm = {"dataset": "synth_gsm8k", "dataset_dir": "."}
    assert error_of(gsm).endswith("fix: llamafactory-ext prepare synth_gsm8k")  # a default Hub source: no source=
    assert error_of({"dataset": "my_set", "dataset_dir": "."}).endswith(
        "fix: register my_set in dataset_info.json (LLaMA-Factory's dataset_info.json format)")
    elsewhere = {**V3, "dataset_dir": "/data/ds"}
    assert error_of(elsewhere) == ("recipes/v3_mixed.yaml: data set multit_mixed: dataset_dir /data/ds has no dataset_info.json; "
                                   "fix: llamafactory-ext prepare multit_mixed source=PATH traces=PATH out_dir=/data/ds "
                                   "dataset_info=/data/ds/dataset_info.json")
    check_recipe_data(V3, "x", planned=[("multit_mixed", project / "dataset_info.json")])  # a study prepares it first


def test_prepare_then_the_recipe_finds_its_data(project, capsys):
    assert cli.main(["prepare", "multit_mixed", f"source={QUIZ}", f"traces={TRACES}", "val_size=0.1"]) == 0
    info = json.loads((project / "dataset_info.json").read_text())
    assert info["multit_mixed"]["file_name"] == "data/multit_mixed.jsonl"
    check_recipe_data({**V3, "eval_dataset": "multit_mixed_val"}, "x")
    assert set(registered_datasets(project)) == {"multit_mixed", "multit_mixed_val"}


SWEEP = """\
base: ../v3_mixed.yaml
grid: {lora_rank: [4, 8]}
output_dir: sweep_out
"""


def test_sweep_stops_before_any_trial_and_its_dry_run_warns(project, capsys):
    (project / "recipes" / "sweeps").mkdir(parents=True)
    (project / "recipes" / "v3_mixed.yaml").write_text((RECIPES_DIR / "v3_mixed.yaml").read_text())
    (project / "recipes" / "sweeps" / "s.yaml").write_text(SWEEP)
    assert cli.main(["sweep", "recipes/sweeps/s.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("llamafactory-ext sweep: error: recipes/v3_mixed.yaml (trial lora_rank-4): data set multit_mixed: dataset_dir . "
                    "has no dataset_info.json; fix: llamafactory-ext prepare multit_mixed source=PATH traces=PATH")]
    assert not (project / "sweep_out").exists()
    assert cli.main(["sweep", "recipes/sweeps/s.yaml", "dry_run=true"]) == 0
    out = capsys.readouterr().out
    assert "2 trial(s)" in out and "[sweep] warning: recipes/v3_mixed.yaml (trial lora_rank-4): data set multit_mixed" in out


def test_inspect_names_the_recipe_the_data_set_and_the_fix(project, capsys):
    (project / "v1.yaml").write_text((RECIPES_DIR / "v1_nothink.yaml").read_text())
    assert cli.main(["inspect", "v1.yaml", "tokenizer=fixture"]) == 2
    assert capsys.readouterr().err.strip() == (
        "llamafactory-ext inspect: error: v1.yaml: data set multit_nothink: dataset_dir . has no dataset_info.json; "
        "fix: llamafactory-ext prepare multit_nothink source=PATH")
