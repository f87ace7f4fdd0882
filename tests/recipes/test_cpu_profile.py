"""The laptop route: every shipped training recipe, copied with ``llamafactory-ext recipes copy --all DIR
profile=cpu`` into a project folder laid out by the data-folder convention (``./dataset_info.json`` ->
``data/NAME.jsonl``), trains one step on CPU through a real ``llamafactory-cli train`` subprocess with
nothing but ``model_name_or_path`` and ``max_steps`` on the command line. Qwen3 recipes run on the
small-vocabulary tiny Qwen3, LLaMA-3 ones on the tiny LLaMA-3; two processes at once, one thread each."""

from __future__ import annotations

import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import TRAIN_RECIPES, load_recipe, output_tail, run_cmd

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(prepared_data, tmp_path_factory) -> Path:
    """The prepared samples (./dataset_info.json + data/) and every shipped recipe as its CPU variant."""
    from llamafactory_ext import cli

    root = tmp_path_factory.mktemp("laptop") / "project"
    shutil.copytree(prepared_data, root)
    assert cli.main(["recipes", "copy", "--all", str(root), "profile=cpu"]) == 0
    return root


@pytest.fixture(scope="module")
def trained(project, small_model, small_llama3) -> dict:
    from llamafactory_ext.runtime import cpu_env, llamafactory_cli

    def train(name: str):
        model = small_llama3 if load_recipe(name).get("template") == "llama3" else small_model
        cmd = [llamafactory_cli(), "train", f"recipes/{name}.yaml", f"model_name_or_path={model}", "max_steps=1"]
        return name, run_cmd(cmd, cwd=project, env=cpu_env(threads=1), timeout=600)

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(train, TRAIN_RECIPES))


@pytest.mark.parametrize("name", TRAIN_RECIPES)
def test_the_cpu_variant_trains_one_step_with_only_the_model_given(project, trained, name):
    proc = trained[name]
    assert proc.returncode == 0, output_tail(proc)
    out = project / load_recipe(name)["output_dir"]
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1
    assert math.isfinite(json.loads((out / "all_results.json").read_text())["train_loss"])
    assert (out / "adapter_model.safetensors").stat().st_size > 0
