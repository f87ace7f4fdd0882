"""Fixtures of the evaluator tests (helpers: tests/eval/common.py, tests/helpers.py).

- ``small_adapter``: a LoRA adapter trained on the small-vocabulary tiny Qwen3 (``small_model``)
  by a real ``llamafactory-cli train`` subprocess, once per test run (2 steps, CPU; the first
  worker trains behind the run's file lock, the other reuses it), started with the session when a
  collected test needs it.
- ``base_run``: one uninterrupted run of the small model on the ITALIC sample, both modes,
  4 new tokens, shared by the tests that resume it, compare with it or read its reports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamafactory_ext.data.mcq import SYSTEM_PROMPT, MCQItem, build_messages
from llamafactory_ext.thinking import format_thinking
from tests.conftest import once_per_run
from tests.eval.common import Launched, eval_cfg
from tests.helpers import output_tail, write_italic_sample

QUIZ = [
    MCQItem(id=str(i), question=q, options=list(zip("ABCD", opts)), answer=a, category="geography")
    for i, (q, opts, a) in enumerate([
        ("Qual è la capitale d'Italia?", ["Milano", "Roma", "Napoli", "Torino"], "B"),
        ("Quale fiume attraversa Firenze?", ["Arno", "Po", "Tevere", "Adige"], "A"),
        ("In quale regione si trova Bari?", ["Sicilia", "Calabria", "Puglia", "Molise"], "C"),
        ("Qual è il monte più alto d'Italia?", ["Etna", "Cervino", "Gran Sasso", "Monte Bianco"], "D"),
    ])
]


@pytest.fixture(scope="session")
def small_recipe(tmp_path_factory, small_model, repo_root) -> dict:
    """A mixed (enable_thinking: null) LoRA recipe on the small tiny Qwen3, its data dir and output dir
    (one per run: its output_dir is where ``small_adapter`` is trained)."""
    root = once_per_run(tmp_path_factory, "eval-recipe", lambda folder: _write_recipe(folder, small_model, repo_root))
    return {"recipe": root / "small_mixed.yaml", "dataset_dir": root / "ds", "output_dir": root / "adapter"}


def _write_recipe(root: Path, small_model: Path, repo_root: Path) -> Path:
    dataset_dir = root / "ds"
    (dataset_dir / "data").mkdir(parents=True)
    shutil.copy(repo_root / "dataset_info.json", dataset_dir / "dataset_info.json")
    info = json.loads((dataset_dir / "dataset_info.json").read_text())
    rows = []
    for n, item in enumerate(QUIZ * 2):
        answer = item.answer if n % 2 else format_thinking(f"La risposta giusta è {item.answer}.", item.answer)
        rows.append({"messages": [{"role": "system", "content": SYSTEM_PROMPT}, *build_messages(item),
                                  {"role": "assistant", "content": answer}]})
    with open(dataset_dir / info["multit_mixed"]["file_name"], "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    out = root / "adapter"
    recipe = root / "small_mixed.yaml"
    recipe.write_text(
        f"model_name_or_path: {small_model}\nstage: sft\ndo_train: true\nfinetuning_type: lora\nlora_rank: 4\n"
        "lora_alpha: 8\nlora_target: all\ndataset: multit_mixed\ntemplate: qwen3\nenable_thinking: null\n"
        f"cutoff_len: 256\nper_device_train_batch_size: 2\nlearning_rate: 5.0e-2\nlogging_steps: 1\n"
        f"save_steps: 100\noutput_dir: {out}\n"
    )
    return root


class AdapterTraining(threading.Thread):
    """Trains the adapter once per run, in the background: the first worker to get the run's lock
    starts ``llamafactory-cli train``; the other waits for it (in this thread) and reuses the adapter."""

    def __init__(self, tmp_path_factory, recipe: dict, model: Path) -> None:
        super().__init__(daemon=True)
        self.factory, self.recipe, self.model = tmp_path_factory, recipe, model
        self.launched: Launched | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            once_per_run(self.factory, "eval-adapter", self._train)
        except Exception as exc:  # noqa: BLE001 - reported by small_adapter, in the test that needs it
            self.error = str(exc)

    def _train(self, _folder: Path) -> Path:
        from llamafactory_ext.runtime import llamafactory_cli, tiny_train_overrides

        r = self.recipe
        self.launched = Launched([llamafactory_cli(), "train", r["recipe"], *tiny_train_overrides(self.model, r["dataset_dir"],
                                  r["output_dir"], max_steps=2)], _folder / "logs", "train")
        proc = self.launched.result()
        if proc.returncode != 0:
            raise RuntimeError(output_tail(proc))
        out = Path(r["output_dir"])  # what every worker reads back (result()): the command and its log
        (out / "train.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
        (out / "train.cmd.json").write_text(json.dumps([str(a) for a in proc.args]), encoding="utf-8")
        return out

    def result(self) -> subprocess.CompletedProcess:
        """The training command and its output (stdout + stderr), in whichever worker trained it."""
        self.join()
        assert self.error is None, self.error
        out = Path(self.recipe["output_dir"])
        args = json.loads((out / "train.cmd.json").read_text(encoding="utf-8"))
        return subprocess.CompletedProcess(args, 0, (out / "train.log").read_text(encoding="utf-8"), "")


@pytest.fixture(scope="session", autouse=True)
def _adapter_training(request, tmp_path_factory) -> Iterator[AdapterTraining | None]:
    """Starts the adapter's training with the session when a collected test needs the adapter, so
    the subprocess runs beside the first tests instead of holding up the first test that needs it."""
    if not any("small_adapter" in getattr(item, "fixturenames", ()) for item in request.session.items):
        yield None
        return
    training = AdapterTraining(tmp_path_factory, request.getfixturevalue("small_recipe"), request.getfixturevalue("small_model"))
    training.start()
    yield training
    if training.is_alive() and training.launched is not None and training.launched.proc.poll() is None:
        training.launched.proc.kill()  # the session stopped before the adapter was done
        training.launched.proc.wait()


@pytest.fixture(scope="session")
def small_adapter(_adapter_training, small_recipe) -> Path:
    """LoRA adapter trained in this run by a real ``llamafactory-cli train`` (2 steps, CPU)."""
    assert _adapter_training is not None
    _adapter_training.join()
    assert _adapter_training.error is None, _adapter_training.error
    out = small_recipe["output_dir"]
    assert (out / "adapter_config.json").is_file()
    return out


@pytest.fixture
def italic_file(tmp_path) -> Path:
    """The ITALIC-shaped sample (5 rows, 2-5 options) as a jsonl file (no dependency on ../shared)."""
    return write_italic_sample(tmp_path / "italic.jsonl")


@pytest.fixture(scope="session")
def base_run(tmp_path_factory, small_model) -> dict:
    """One uninterrupted run of the small model on the ITALIC sample, both modes (read-only: copy
    the folder before writing into it)."""
    from llamafactory_ext.eval.runner import run

    root = tmp_path_factory.mktemp("base-run")
    italic = write_italic_sample(root / "italic.jsonl")
    results = run(eval_cfg(small_model, italic, root / "base", thinking="both"))
    return {"dir": root / "base", "italic": italic, "results": results, "model": small_model}
