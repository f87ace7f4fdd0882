"""``eval from_recipe=``'s contamination warning: the recipe's prepared training data holds some of
the evaluation questions (planted by hand in its source), and the warning counts them.

The data is prepared by the real ``llamafactory-ext prepare multit_nothink`` from an ITALIC-layout
file; the recipe points at the dataset_info.json that prepare wrote (wherever the data-folder
convention puts it)."""

from __future__ import annotations

import json

import pytest

from tests.eval.common import make_cfg
from tests.helpers import ITALIC_SAMPLE, write_jsonl

PLANTED = [0, 2, 4]  # ITALIC sample items copied into the training source
NEW = [{"question": f"Domanda di addestramento numero {i}?", "options": [{"A": "uno"}, {"B": "due"}, {"C": "tre"}],
        "answer": "B", "category": "geography", "macro_category": "culture and commonsense"} for i in range(3)]


@pytest.fixture
def contaminated_recipe(tmp_path, small_model, monkeypatch):
    from llamafactory_ext.cli import main

    project = tmp_path / "project"
    project.mkdir()
    source = write_jsonl(tmp_path / "train_source.jsonl", [NEW[0], ITALIC_SAMPLE[PLANTED[0]], NEW[1], ITALIC_SAMPLE[PLANTED[1]],
                                                           ITALIC_SAMPLE[PLANTED[2]], NEW[2]])
    monkeypatch.chdir(project)
    assert main(["prepare", "multit_nothink", f"source={source}", "out_dir=data"]) == 0
    (info,) = list(project.rglob("dataset_info.json"))
    data = info.parent / json.loads(info.read_text())["multit_nothink"]["file_name"]
    assert len(data.read_text().splitlines()) == 6  # all six rows prepared, the planted ones among them
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model_name_or_path: {small_model}\nstage: sft\ndo_train: true\nfinetuning_type: lora\nlora_target: all\n"
        f"dataset: multit_nothink\ndataset_dir: {info.parent}\ntemplate: qwen3\nenable_thinking: false\n"
        f"output_dir: {tmp_path / 'not-trained'}\n")
    return recipe, data


@pytest.mark.parametrize("limit", [None, 2])
def test_from_recipe_warns_with_the_count_of_planted_questions(tmp_path, italic_file, contaminated_recipe, limit):
    recipe, data = contaminated_recipe
    items = ITALIC_SAMPLE[:limit]
    planted = sum(1 for i, _ in enumerate(items) if i in PLANTED)  # 3 of 5; 1 of the first 2
    res = run_eval(italic_file, recipe, tmp_path / "o", limit)
    warnings = [w for w in res["warnings"] if "appear in the recipe's training data" in w]
    assert len(warnings) == 1, res["warnings"]
    assert warnings[0].startswith(f"{planted} of {len(items)} evaluation items appear in the recipe's training data ({data.name})")
    assert warnings[0] in (tmp_path / "o" / "results.md").read_text()


def test_from_recipe_without_overlap_gives_no_warning(tmp_path, italic_file, contaminated_recipe):
    recipe, data = contaminated_recipe
    data.write_text("".join(line + "\n" for line in data.read_text().splitlines() if "Domanda di addestramento" in line))
    res = run_eval(italic_file, recipe, tmp_path / "o", None)
    assert not [w for w in res["warnings"] if "training data" in w], res["warnings"]


def run_eval(italic_file, recipe, out, limit):
    from llamafactory_ext.eval.runner import run

    return run(make_cfg(task="italic", source=str(italic_file), from_recipe=str(recipe), limit=limit, max_new_tokens=1,
                        output_dir=str(out), progress=False))
