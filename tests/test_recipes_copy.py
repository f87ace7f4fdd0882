"""``llamafactory-ext recipes copy``: a copy brings what it refers to, in the shipped layout, so it works
where it lands; nothing is overwritten without ``overwrite=true``; ``profile=cpu`` writes a CPU variant
whose header says exactly what changed."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest
import yaml

from llamafactory_ext import cli
from llamafactory_ext.config import from_argv
from llamafactory_ext.runtime import CPU_PROFILE
from tests.helpers import REPO, TRAIN_RECIPES, load_recipe


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def copy(capsys, *args: str) -> tuple[int, str, str]:
    rc = cli.main(["recipes", "copy", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a_study_comes_with_its_recipes_and_evaluator_config_and_works_there(here, capsys):
    rc, out, _ = copy(capsys, "studies/format")
    assert rc == 0, out
    assert files(here) == {"recipes/studies/format.yaml", "recipes/v1_nothink.yaml", "recipes/v2_think.yaml",
                           "recipes/v3_mixed.yaml", "recipes/eval/italic_zeroshot.yaml", "ds_configs/zero2.json"}
    for name in files(here):  # unchanged copies
        assert filecmp.cmp(here / name, REPO / name, shallow=False), name
    from llamafactory_ext.study import StudyConfig

    cfg = from_argv(StudyConfig, ["recipes/studies/format.yaml"])
    assert [v["recipe"] for v in cfg.versions] == ["recipes/v1_nothink.yaml", "recipes/v2_think.yaml", "recipes/v3_mixed.yaml"]
    assert cfg.eval["config"] == "recipes/eval/italic_zeroshot.yaml"
    assert "copied recipes/studies/format.yaml" in out


@pytest.mark.parametrize("name,want", [
    ("compare/wikipedia", {"recipes/compare/wikipedia.yaml", "recipes/compare/prompts_it.txt"}),
    ("sweeps/lora_rank", {"recipes/sweeps/lora_rank.yaml", "recipes/v3_mixed.yaml", "recipes/eval/italic_zeroshot.yaml",
                          "ds_configs/zero2.json"}),
    ("eval/italic_v3_vs_baseline", {"recipes/eval/italic_v3_vs_baseline.yaml", "recipes/v3_mixed.yaml", "ds_configs/zero2.json"}),
    ("eval/italic_zeroshot", {"recipes/eval/italic_zeroshot.yaml"}),
    ("best_practice_zero2", {"recipes/best_practice_zero2.yaml", "ds_configs/zero2.json"}),
])
def test_each_copy_brings_what_it_refers_to(here, capsys, name, want):
    assert copy(capsys, name)[0] == 0
    assert files(here) == want


def test_nothing_is_overwritten_without_overwrite_true(here, capsys):
    assert copy(capsys, "compare/wikipedia")[0] == 0
    (here / "recipes" / "compare" / "prompts_it.txt").write_text("mine\n")
    rc, _, err = copy(capsys, "compare/wikipedia")
    assert rc == 2 and err.strip() == (f"llamafactory-ext recipes: error: {Path('recipes/compare/wikipedia.yaml').absolute()} exists "
                                       "(and 1 more); pass overwrite=true to replace, or dest=ANOTHER_FOLDER")
    assert (here / "recipes" / "compare" / "prompts_it.txt").read_text() == "mine\n"
    assert copy(capsys, "compare/wikipedia", "overwrite=true")[0] == 0
    assert filecmp.cmp(here / "recipes/compare/prompts_it.txt", REPO / "recipes/compare/prompts_it.txt", shallow=False)


def test_dest_is_a_folder_or_one_file_that_refers_to_nothing(here, capsys):
    assert copy(capsys, "compare/wikipedia", "dest=proj")[0] == 0
    assert files(here / "proj") == {"recipes/compare/wikipedia.yaml", "recipes/compare/prompts_it.txt"}
    assert copy(capsys, "eval/italic_zeroshot", "dest=my_eval.yaml")[0] == 0
    assert (here / "my_eval.yaml").read_bytes() == (REPO / "recipes/eval/italic_zeroshot.yaml").read_bytes()
    rc, _, err = copy(capsys, "compare/wikipedia", "dest=mine.yaml")
    assert rc == 2 and "refers to recipes/compare/prompts_it.txt: copy it into a folder" in err
    assert not (here / "mine.yaml").exists()


def test_copy_all_copies_every_shipped_recipe_config_and_deepspeed_file(here, capsys):
    assert cli.main(["recipes", "copy", "--all", "everything"]) == 0
    want = {str(p.relative_to(REPO)) for d in ("recipes", "ds_configs") for p in (REPO / d).rglob("*") if p.is_file()}
    assert files(here / "everything") == want


# what profile=cpu changes in each training recipe, read from the recipes by hand
CPU_CHANGES = {
    "v1_nothink": {"bf16": (True, False), "cutoff_len": (2048, 256)},
    "best_practice_zero2": {"bf16": (True, False), "cutoff_len": (650, 256), "deepspeed": ("ds_configs/zero2.json", None),
                            "flash_attn": ("fa2", "auto")},
    "gsm8k_synth_qlora": {"bf16": (True, False), "cutoff_len": (1024, 256), "quantization_bit": (4, None),
                          "optim": ("adamw_bnb_8bit", "adamw_torch")},
    "wikipedia_it_pt": {"bf16": (True, False), "cutoff_len": (512, 256), "quantization_bit": (4, None),
                        "optim": ("paged_adamw_8bit", "adamw_torch")},
}


@pytest.mark.parametrize("name", sorted(CPU_CHANGES))
def test_profile_cpu_changes_exactly_the_gpu_keys_and_says_so(here, capsys, name):
    rc, out, _ = copy(capsys, name, "profile=cpu")
    assert rc == 0, out
    text = (here / "recipes" / f"{name}.yaml").read_text()
    got, shipped = yaml.safe_load(text), load_recipe(name)
    assert got == {**shipped, **{k: new for k, (_, new) in CPU_CHANGES[name].items()}}
    header = [line for line in text.splitlines() if line.startswith("#   ")][: len(CPU_CHANGES[name])]
    shown = {line.split(":")[0].strip("# ") for line in header}
    assert shown == set(CPU_CHANGES[name])
    assert "#   bf16: true -> false" in text.splitlines()
    assert (here / "recipes" / f"{name}.yaml").read_text().startswith(f"# CPU variant of {name}")


def test_every_training_recipe_has_a_cpu_variant_without_gpu_switches(here, capsys):
    assert cli.main(["recipes", "copy", "--all", ".", "profile=cpu"]) == 0
    for name in TRAIN_RECIPES:
        got = yaml.safe_load((here / "recipes" / f"{name}.yaml").read_text())
        assert not got.get("bf16") and not got.get("fp16") and got.get("quantization_bit") is None, name
        assert got.get("deepspeed") is None and got.get("flash_attn", "auto") == "auto", name
        assert "8bit" not in str(got.get("optim", "")) and got["cutoff_len"] == CPU_PROFILE["cutoff_len"], name
    merge = yaml.safe_load((here / "recipes" / "gsm8k_synth_merge.yaml").read_text())
    assert merge == load_recipe("gsm8k_synth_merge")  # an export recipe is copied unchanged
