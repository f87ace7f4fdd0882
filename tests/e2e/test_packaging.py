"""A wheel install works from any folder: the recipes, DeepSpeed configs, dataset_info.json and the
samples travel inside the wheel. The wheel is built with pip (setup.py's build hook copies the
top-level folders into it) and installed without dependencies into a fresh venv that borrows
this venv's packages through a .pth file (so the editable checkout is NOT on its path)."""

from __future__ import annotations

import site
import subprocess
import sys
import zipfile

import pytest

from tests.helpers import REPO, output_tail

pytestmark = pytest.mark.e2e


def test_wheel_install_runs_the_demo_plan_and_lists_data_sets_from_any_folder(tmp_path):
    wheels = tmp_path / "wheels"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, output_tail(proc)
    wheel = next(wheels.glob("llamafactory_ext-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for path in ("llamafactory_ext/_shipped/recipes/v3_mixed.yaml", "llamafactory_ext/_shipped/ds_configs/zero2.json",
                 "llamafactory_ext/_shipped/dataset_info.json", "llamafactory_ext/resources/demo/traces.jsonl",
                 "llamafactory_ext/resources/samples/multit_quiz.json"):
        assert path in names, path

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    target = next(venv.glob("lib/python3*/site-packages"))
    (target / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")  # dependencies only
    py = venv / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel), "-q"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, output_tail(proc)

    work = tmp_path / "elsewhere"
    work.mkdir()

    def ext(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(py), "-m", "llamafactory_ext.cli", *args], cwd=work, capture_output=True, text=True, timeout=600, check=False)

    where = subprocess.run([str(py), "-c", "import llamafactory_ext; print(llamafactory_ext.__file__)"], cwd=work,
                           capture_output=True, text=True, timeout=60, check=False)
    assert where.stdout.startswith(str(target)), where.stdout  # the wheel's copy, not the checkout
    proc = ext("demo", "dry_run=true", "output_dir=demo_out")
    assert proc.returncode == 0, output_tail(proc)
    assert (work / "demo_out" / "recipes" / "v3_mixed.yaml").read_text() == (REPO / "recipes" / "v3_mixed.yaml").read_text()
    proc = ext("prepare", "--list")
    assert proc.returncode == 0 and "multit_mixed" in proc.stdout and "wikipedia_it" in proc.stdout, output_tail(proc)
    proc = ext("recipes")
    assert proc.returncode == 0 and "studies/format" in proc.stdout and "_shipped" in proc.stdout, output_tail(proc)
    proc = ext("recipes", "copy", "v3_mixed")
    assert proc.returncode == 0, output_tail(proc)
    assert (work / "recipes" / "v3_mixed.yaml").read_text() == (REPO / "recipes" / "v3_mixed.yaml").read_text()
