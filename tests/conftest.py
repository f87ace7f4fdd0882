"""Session fixtures: the tiny Qwen3 models (built once per session) and the real data in
../shared/data (skipped when absent, a failure under CI=true). Helpers: tests/helpers.py.
Under CI=true every skip is reported as a failure (tests/ci_skips.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.ci_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401 - hooks
from tests.helpers import REPO, shared


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny Qwen3 with Qwen3's full vocabulary and real ids (prompt parity, tokenizer tests)."""
    from llamafactory_ext.testing import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> Path:
    """The tiny Qwen3 with Qwen's BPE cut to the shipped texts (``vocab=small``): training on CPU
    costs ~20 times less than with the 151,936-row output layer (recipe and e2e runs)."""
    from llamafactory_ext.testing import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("small-qwen3"), num_layers=2, hidden_size=64, vocab="small")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


@pytest.fixture(scope="session")
def italic_dir() -> Path:
    return shared("italic")


@pytest.fixture(scope="session")
def gsm8k_dir() -> Path:
    return shared("gsm8k")


@pytest.fixture(scope="session")
def ext_cli() -> list[str]:
    """Command prefix for ``llamafactory-ext`` in a subprocess (the venv's)."""
    return [sys.executable, "-m", "llamafactory_ext.cli"]


@pytest.fixture(scope="session")
def samples_dataset_dir(tmp_path_factory) -> Path:
    """A dataset_dir with dataset_info.json and every registered data set prepared from the samples."""
    from llamafactory_ext.data.samples import prepare_samples

    return prepare_samples(tmp_path_factory.mktemp("samples-ds"))


@pytest.fixture(scope="session")
def tiny_llama3(tmp_path_factory) -> Path:
    """The tiny LLaMA-3 with Llama-3's full vocabulary and real ids (128,256 rows; id tests)."""
    from llamafactory_ext.testing import build_tiny_llama3

    return build_tiny_llama3(tmp_path_factory.mktemp("tiny-llama3"))


@pytest.fixture(scope="session")
def small_llama3(tmp_path_factory) -> Path:
    """The tiny LLaMA-3 with Meta's BPE cut to the shipped texts (``arch=llama3 vocab=small``): the
    ANITA recipe runs and the lm-eval suite on CPU."""
    from llamafactory_ext.testing import build_tiny_llama3

    return build_tiny_llama3(tmp_path_factory.mktemp("small-llama3"), vocab="small")
