"""A wheel install works from any folder, as the docs say. The wheel is built once per module with pip
(setup.py's build hook copies the recipes, DeepSpeed configs and dataset_info.json into it) and unpacked
onto PYTHONPATH (no venv: this venv's packages are the dependencies; the unpacked copy shadows the
editable checkout, which the first test checks). Every command runs in an EMPTY folder outside the
checkout, exactly as README / docs/train.md / docs/sweep.md write it (issue 23's acceptance):

    llamafactory-ext recipes copy studies/format && llamafactory-ext study recipes/studies/format.yaml dry_run=true
    llamafactory-ext recipes copy v3_mixed profile=cpu
    llamafactory-ext prepare multit_mixed source=SAMPLES/multit_quiz.json traces=SAMPLES/multit_traces.jsonl
    llamafactory-ext inspect recipes/v3_mixed.yaml model_name_or_path=TINY
    llamafactory-cli train recipes/v3_mixed.yaml model_name_or_path=TINY max_steps=2
    llamafactory-ext recipes copy compare/wikipedia
    llamafactory-ext compare recipes/compare/wikipedia.yaml model_name_or_path=TINY adapter_name_or_path=saves/v3_mixed template=qwen3 limit=2 max_new_tokens=16
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO, output_tail

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel, unpacked into a folder: {"wheel": path, "site": folder, "env": environment with PYTHONPATH}."""
    from llamafactory_ext.runtime import cpu_env

    root = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(root)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, output_tail(proc)
    wheel = next(root.glob("llamafactory_ext-*.whl"))
    site = root / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = cpu_env(threads=1)
    env["PYTHONPATH"] = str(site)
    return {"wheel": wheel, "site": site, "env": env}


def runner(folder: Path, installed: dict):
    def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "llamafactory_ext.cli", *args] if args[0] != "llamafactory-cli" else [
            str(Path(sys.executable).parent / "llamafactory-cli"), *args[1:]]
        return subprocess.run(cmd, cwd=folder, env=installed["env"], capture_output=True, text=True, timeout=timeout, check=False)

    return run


def test_the_wheel_carries_the_shipped_files_and_runs_from_any_folder(installed, tmp_path):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    for path in ("llamafactory_ext/_shipped/recipes/v3_mixed.yaml", "llamafactory_ext/_shipped/ds_configs/zero2.json",
                 "llamafactory_ext/_shipped/dataset_info.json", "llamafactory_ext/resources/demo/traces.jsonl",
                 "llamafactory_ext/resources/samples/multit_quiz.json", "llamafactory_ext/_shipped/recipes/compare/prompts_it.txt"):
        assert path in names, path
    ext = runner(tmp_path, installed)
    where = subprocess.run([sys.executable, "-c", "import llamafactory_ext; print(llamafactory_ext.__file__)"], cwd=tmp_path,
                           env=installed["env"], capture_output=True, text=True, timeout=60, check=False)
    assert where.stdout.startswith(str(installed["site"])), where.stdout  # the wheel's copy, not the checkout
    proc = ext("demo", "dry_run=true", "output_dir=demo_out")  # the data-folder convention keeps the demo's plan working
    assert proc.returncode == 0, output_tail(proc)
    assert (tmp_path / "demo_out" / "recipes" / "v3_mixed.yaml").read_text() == (REPO / "recipes" / "v3_mixed.yaml").read_text()
    proc = ext("prepare", "--list")
    assert proc.returncode == 0 and "multit_mixed" in proc.stdout and "wikipedia_it" in proc.stdout, output_tail(proc)
    proc = ext("recipes")
    assert proc.returncode == 0 and "studies/format" in proc.stdout and "_shipped" in proc.stdout, output_tail(proc)


def test_issue_23_acceptance_in_an_empty_folder(installed, small_model, tmp_path):
    work = tmp_path / "mine"
    work.mkdir()
    ext = runner(work, installed)
    samples = installed["site"] / "llamafactory_ext" / "resources" / "samples"

    # the published study, every command, from copies
    assert ext("recipes", "copy", "studies/format").returncode == 0
    proc = ext("study", "recipes/studies/format.yaml", "dry_run=true")
    assert proc.returncode == 0, output_tail(proc)
    assert "3 data set(s) to prepare first" in proc.stdout and "4 trial(s)" in proc.stdout and "warning" not in proc.stdout
    assert "train recipes/v3_mixed.yaml" in proc.stdout and "eval recipes/eval/italic_zeroshot.yaml" in proc.stdout

    # the laptop route: a CPU variant, its data by the convention, inspected, trained
    proc = ext("recipes", "copy", "v3_mixed", "profile=cpu", "overwrite=true")
    assert proc.returncode == 0 and "bf16: true -> false" in proc.stdout, output_tail(proc)
    proc = ext("inspect", "recipes/v3_mixed.yaml", f"model_name_or_path={small_model}")
    assert proc.returncode == 2 and "fix: llamafactory-ext prepare multit_mixed source=PATH traces=PATH" in proc.stderr, output_tail(proc)
    proc = ext("prepare", "multit_mixed", f"source={samples / 'multit_quiz.json'}", f"traces={samples / 'multit_traces.jsonl'}")
    assert proc.returncode == 0, output_tail(proc)
    assert json.loads((work / "dataset_info.json").read_text())["multit_mixed"]["file_name"] == "data/multit_mixed.jsonl"
    proc = ext("inspect", "recipes/v3_mixed.yaml", f"model_name_or_path={small_model}")
    assert proc.returncode == 0 and "multit_mixed    60" in proc.stdout and "lints: none" in proc.stdout, output_tail(proc)
    proc = ext("llamafactory-cli", "train", "recipes/v3_mixed.yaml", f"model_name_or_path={small_model}", "max_steps=2")
    assert proc.returncode == 0, output_tail(proc)
    assert json.loads((work / "saves" / "v3_mixed" / "trainer_state.json").read_text())["global_step"] == 2

    # side-by-side generations with the adapter just trained
    assert ext("recipes", "copy", "compare/wikipedia").returncode == 0
    proc = ext("compare", "recipes/compare/wikipedia.yaml", f"model_name_or_path={small_model}", "adapter_name_or_path=saves/v3_mixed",
               "template=qwen3", "limit=2", "max_new_tokens=16")
    assert proc.returncode == 0, output_tail(proc)
    rows = [json.loads(line) for line in (work / "results" / "compare" / "wikipedia" / "compare.jsonl").read_text().splitlines()]
    prompts = (REPO / "recipes" / "compare" / "prompts_it.txt").read_text(encoding="utf-8").splitlines()[:2]
    assert [r["prompt"] for r in rows] == prompts and all({"base", "tuned"} <= set(r) for r in rows)
