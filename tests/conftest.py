"""Session fixtures: the tiny Qwen3 / LLaMA-3 models and the prepared samples, built once per test
run, and the real data in ../shared/data (skipped when absent, a failure under CI=true). Helpers:
tests/helpers.py. Under CI=true every skip is reported as a failure (tests/ci_skips.py).

Two pytest workers (scripts/test.sh: ``-n 2 --dist loadscope --no-loadscope-reorder``):
- each module runs on one worker (its module fixtures, a training chain or a web server, are built
  once), modules handed to whichever worker is nearly idle;
- the heaviest modules are handed out first (:data:`HEAVY`, longest first), so the workers end
  together (xdist's own reorder puts modules with many tests first, the 1-test e2e modules last);
- what both workers would build (models, prepared data, the eval adapter) is built once per run,
  behind a file lock in the run's shared temp folder (:func:`once_per_run`, the pytest-xdist pattern).
(``--dist loadgroup`` is no option with pytest 9.2 and xdist 3.8: xdist writes the group into
``item._nodeid``, which pytest 9 no longer reads, so every test becomes its own unit.)
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.ci_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401 - hooks
from tests.helpers import REPO, random_fingerprints, shared

# The modules that take the most worker-seconds, longest first (measured with
# `scripts/test.sh --durations=0` and alone with /usr/bin/time): handed out before everything else.
HEAVY = [
    "tests/e2e/test_sweep_lora_rank.py",
    "tests/e2e/test_study.py",
    "tests/test_inspect.py",
    "tests/test_plan_measure.py",
    "tests/recipes/test_recipes_train.py",
    "tests/recipes/test_anita_train.py",
    "tests/eval/test_lm_eval_suite.py",
    "tests/e2e/test_train_lora.py",
    "tests/e2e/test_webui",
    "tests/e2e/test_distill_chain.py",
    "tests/recipes/test_format_parity.py",
    "tests/eval/test_cli.py",
    "tests/recipes/test_recipes_parse.py",
]


def once_per_run(tmp_path_factory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` once per test run and its result shared by the xdist workers: the first
    worker builds under a file lock in the run's shared temp folder, the other waits and reuses it.
    Without xdist, once per session in the session's own temp folder."""
    from filelock import FileLock

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent  # pytest-N/, shared by popen-gw0, popen-gw1
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            done.write_text(str(build(folder)), encoding="utf-8")
    return Path(done.read_text(encoding="utf-8"))


def pytest_collection_modifyitems(config, items):
    """The heaviest modules first (xdist hands modules out in this order with --no-loadscope-reorder)."""
    rank = {prefix: i for i, prefix in enumerate(HEAVY)}

    def heaviness(item) -> int:
        return next((i for prefix, i in rank.items() if item.nodeid.startswith(prefix)), len(HEAVY))

    items.sort(key=heaviness)  # stable: collection order within a module and among the rest


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny Qwen3 with Qwen3's full vocabulary and real ids (prompt parity, tokenizer tests)."""
    from llamafactory_ext.fixtures import build_tiny_qwen3

    return once_per_run(tmp_path_factory, "tiny-qwen3", build_tiny_qwen3)


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> Path:
    """The tiny Qwen3 with Qwen's BPE cut to the shipped texts (``vocab=small``): training on CPU
    costs ~20 times less than with the 151,936-row output layer (recipe and e2e runs)."""
    from llamafactory_ext.fixtures import build_tiny_qwen3

    return once_per_run(tmp_path_factory, "small-qwen3",
                        lambda out: build_tiny_qwen3(out, num_layers=2, hidden_size=64, vocab="small"))


@pytest.fixture(scope="session")
def forks(tmp_path_factory):
    """This worker's fork server: ``forks.run("llamafactory-cli", ["train", ...], cwd=...)`` runs a
    command line as its own process without paying the imports again (tests/forkserver.py)."""
    from tests.forkserver import ForkServer

    server = ForkServer(tmp_path_factory.mktemp("forks"))
    yield server
    server.close()


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
    """A dataset_dir with dataset_info.json and every registered data set prepared from the samples
    (read-only: copy it before writing into it)."""
    from llamafactory_ext.data.samples import prepare_samples

    return once_per_run(tmp_path_factory, "samples-ds", prepare_samples)


@pytest.fixture(scope="session")
def tiny_llama3(tmp_path_factory) -> Path:
    """The tiny LLaMA-3 with Llama-3's full vocabulary and real ids (128,256 rows; id tests)."""
    from llamafactory_ext.fixtures import build_tiny_llama3

    return once_per_run(tmp_path_factory, "tiny-llama3", build_tiny_llama3)


@pytest.fixture(scope="session")
def small_llama3(tmp_path_factory) -> Path:
    """The tiny LLaMA-3 with Meta's BPE cut to the shipped texts (``arch=llama3 vocab=small``): the
    ANITA recipe runs and the lm-eval suite on CPU."""
    from llamafactory_ext.fixtures import build_tiny_llama3

    return once_per_run(tmp_path_factory, "small-llama3", lambda out: build_tiny_llama3(out, vocab="small"))


@pytest.fixture
def fast_fingerprints():
    """One test without `datasets`' per-map hashing of the tokenizer (``helpers.random_fingerprints``)."""
    with random_fingerprints():
        yield
