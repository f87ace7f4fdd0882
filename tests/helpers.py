"""Plain helpers shared by the tests (fixtures live in the conftest.py files, helpers here)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
RECIPES_DIR = REPO / "recipes"
EXT = [sys.executable, "-m", "llamafactory_ext.cli"]  # `llamafactory-ext` in a subprocess (this venv's)

# The top-level training recipes (recipes/eval, sweeps, studies... belong to other commands).
RECIPES = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
EXPORT_RECIPES = [name for name in RECIPES if "export_dir" in yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())]
TRAIN_RECIPES = [name for name in RECIPES if name not in EXPORT_RECIPES]
SFT_RECIPES = [name for name in TRAIN_RECIPES if yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())["stage"] == "sft"]


def run_cmd(args: list, cwd: Path | None = None, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a real subprocess on CPU, offline; the caller asserts on it (``output_tail`` for messages)."""
    from llamafactory_ext.runtime import cpu_env

    return subprocess.run([str(a) for a in args], cwd=cwd, env=env or cpu_env(), capture_output=True, text=True, timeout=timeout, check=False)


def output_tail(proc: subprocess.CompletedProcess, n: int = 4000) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-n:]}\n--- stderr ---\n{proc.stderr[-n:]}"


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The error of a command that must fail cleanly: exit 2, no traceback, one line on stderr."""
    assert proc.returncode == 2, output_tail(proc)
    assert "Traceback" not in proc.stderr + proc.stdout, output_tail(proc)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("llamafactory-ext")]
    assert len(lines) == 1, output_tail(proc)
    return lines[0]


def under_ci() -> bool:
    """CI=true (any case): nothing may be skipped (tests/conftest.py turns every skip into a failure)."""
    return os.environ.get("CI", "").lower() == "true"


def missing(what: str) -> None:
    """Something a test needs is not on this machine: skip with the reason, or fail under CI=true."""
    import pytest

    if under_ci():
        pytest.fail(f"CI=true, and {what}", pytrace=False)
    pytest.skip(what)


def shared(sub: str) -> Path:
    """A real data set in ../shared/data: skipped when absent, a failure under CI=true."""
    path = SHARED_DATA / sub
    if not path.exists():
        missing(f"the real data {path} is missing (../shared must sit beside the checkout)")
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    """Rows are dicts (dumped as JSON) or raw ``bytes`` lines written as they are."""
    with open(path, "wb") as f:
        f.writelines(row if isinstance(row, bytes) else (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8") for row in rows)
    return path


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# A small ITALIC-shaped sample in the GitHub layout with the odd rows of the real set
# (2, 3 and 5 options, only the letters A and C, ALL CAPS).
ITALIC_SAMPLE = [
    {"question": "Qual è la capitale d'Italia?", "options": [{"A": "Milano"}, {"B": "Roma"}, {"C": "Napoli"}, {"D": "Torino"}],
     "answer": "B", "category": "geography", "macro_category": "culture and commonsense"},
    {"question": "QUALE PAROLA È SCRITTA CORRETTAMENTE?", "options": [{"A": "Qualcuno"}, {"C": "Qualcunno"}],
     "answer": "C", "category": "orthography", "macro_category": "language capability"},
    {"question": "Chi ha scritto la Divina Commedia?", "options": [{"A": "Dante"}, {"B": "Petrarca"}, {"C": "Boccaccio"}],
     "answer": "A", "category": "literature", "macro_category": "culture and commonsense"},
    {"question": "Il contrario di 'alto' è:", "options": [{"A": "basso"}, {"B": "lungo"}, {"C": "largo"}, {"D": "corto"}, {"E": "stretto"}],
     "answer": "A", "category": "synonyms_and_antonyms", "macro_category": "language capability"},
    {"question": "In quale regione si trova Bari?", "options": [{"A": "Sicilia"}, {"B": "Calabria"}, {"C": "Puglia"}, {"D": "Molise"}],
     "answer": "C", "category": "geography", "macro_category": "culture and commonsense"},
]


def write_italic_sample(path: Path) -> Path:
    return write_jsonl(path, ITALIC_SAMPLE)


def recipe_path(name: str) -> Path:
    return RECIPES_DIR / f"{name}.yaml"


def load_recipe(name: str, project: Path | None = None) -> dict:
    """A shipped recipe, or (``project``) its copy in a project folder (e.g. the CPU variant)."""
    path = recipe_path(name) if project is None else project / "recipes" / f"{name}.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def header_lines(name: str) -> list[str]:
    """The comment block the recipe starts with, without the leading '# '."""
    lines = []
    for line in recipe_path(name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return lines


def header_commands(name: str) -> list[tuple[str, list[str], list[str]]]:
    """Every `llamafactory-cli train|export recipes/NAME.yaml k=v ...` command in the header:
    (subcommand, env assignments before it, key=value overrides after the recipe)."""
    commands = []
    for line in header_lines(name):
        if "llamafactory-cli " not in line or f"recipes/{name}.yaml" not in line:
            continue
        tokens = shlex.split(line)
        at = tokens.index("llamafactory-cli")
        sub, recipe, rest = tokens[at + 1], tokens[at + 2], tokens[at + 3:]
        assert recipe == f"recipes/{name}.yaml", line
        assert all("=" in t for t in tokens[:at] + rest), f"not a plain `key=value` command: {line}"
        commands.append((sub, tokens[:at], rest))
    return commands


def first_rows(path: Path, n: int) -> None:
    """Keep the first ``n`` rows of a prepared JSONL file (atomically)."""
    from llamafactory_ext.io import atomic_write_text

    atomic_write_text(path, "".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:n]))


def assert_lora_adapter(adapter_dir: Path, model_dir: Path, targets: set[str], rank: int) -> None:
    """The adapter file holds, for every decoder layer and target module of the base, a LoRA pair
    shaped by the base weight (out, in): A (rank, in) and B (out, rank); nothing else."""
    from safetensors import safe_open

    with safe_open(str(Path(model_dir) / "model.safetensors"), "pt") as fh:
        base = {k: fh.get_slice(k).get_shape() for k in fh.keys()}  # noqa: SIM118 - safe_open is no dict
    want = {}
    for key, (out_dim, in_dim, *_) in ((k, s) for k, s in base.items() if len(s) == 2):
        module = key.removesuffix(".weight").rsplit(".", 1)[-1]
        if ".layers." in key and module in targets:
            stem = "base_model.model." + key.removesuffix(".weight")
            want[f"{stem}.lora_A.weight"] = [rank, in_dim]
            want[f"{stem}.lora_B.weight"] = [out_dim, rank]
    with safe_open(str(Path(adapter_dir) / "adapter_model.safetensors"), "pt") as fh:
        got = {k: fh.get_slice(k).get_shape() for k in fh.keys()}  # noqa: SIM118
    assert want and got == want, (sorted(set(got) ^ set(want)), {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v})


@contextlib.contextmanager
def random_fingerprints() -> Iterator[None]:
    """`datasets` names the cache file of every ``map`` by dill-pickling its arguments, which hold
    the tokenizer: about 5 s per map for Qwen's 151k-token one (for each of LLaMA-Factory's maps).
    A random name per map changes nothing else: loading, alignment, template encoding and filtering
    all run. (Fixture: ``fast_fingerprints``; module fixtures use this context.)"""
    import datasets.arrow_dataset
    import datasets.fingerprint
    import pytest

    def random_fingerprint(*args, **kwargs):
        return datasets.fingerprint.generate_random_fingerprint()

    with pytest.MonkeyPatch.context() as mp:
        for module in (datasets.fingerprint, datasets.arrow_dataset):
            mp.setattr(module, "update_fingerprint", random_fingerprint)
        yield
