"""Shared fixtures: the tiny Qwen3 model (built once per session), the real data in
../shared/data (skipped when absent, a failure under CI=true), and subprocess helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Directory of the tiny Qwen3 model + Qwen3-id tokenizer (built once per session)."""
    from llamafactory_ext.testing import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the real data {path} is missing (../shared must sit beside the checkout)")
        pytest.skip(f"real data not present: {path}")
    return path


@pytest.fixture(scope="session")
def italic_dir() -> Path:
    return _shared("italic")


@pytest.fixture(scope="session")
def gsm8k_dir() -> Path:
    return _shared("gsm8k")


def run_cmd(args: list[str], cwd: Path | None = None, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a real subprocess; on failure, the assertion shows its output tail."""
    from llamafactory_ext.testing import cpu_env

    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env or cpu_env(), capture_output=True, text=True, timeout=timeout
    )
    return proc


def output_tail(proc: subprocess.CompletedProcess, n: int = 4000) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-n:]}\n--- stderr ---\n{proc.stderr[-n:]}"


@pytest.fixture(scope="session")
def ext_cli() -> list[str]:
    """Command prefix for ``llamafactory-ext`` in a subprocess (the venv's)."""
    return [sys.executable, "-m", "llamafactory_ext.cli"]
