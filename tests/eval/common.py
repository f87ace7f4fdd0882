"""Plain helpers of the evaluator tests (fixtures: tests/eval/conftest.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from llamafactory_ext.io import read_jsonl
from tests.forkserver import Forked, ForkServer

TIMING = ("gen_time_s", "_line")


def make_cfg(**values: Any) -> Any:
    """A checked eval config: the shared keys + the chosen task's own keys (``eval.options.config_class``)."""
    from llamafactory_ext.config import build
    from llamafactory_ext.eval.options import config_class

    return build(config_class(str(values.get("task", "italic"))), values, where="test")


def eval_cfg(model: Path | str, source: Path | str, out: Path | str, **values: Any) -> Any:
    """A short run: 4 new tokens, one batch, no progress bar (overridable)."""
    base = {"task": "italic", "source": str(source), "model_name_or_path": str(model), "output_dir": str(out),
            "max_new_tokens": 4, "batch_size": 5, "progress": False}
    return make_cfg(**{**base, **values})


def rescore_cfg(source: Path | str, predictions: Path | str, out: Path | str, **values: Any) -> Any:
    """``predictions=`` re-scoring, no model."""
    base = {"task": "italic", "source": str(source), "predictions": str(predictions), "output_dir": str(out), "progress": False}
    return make_cfg(**{**base, **values})


def rows_of(path: Path | str) -> list[dict[str, Any]]:
    """Rows of a predictions file without the fields that measure time, in (mode, seed, id) order."""
    rows = [{k: v for k, v in r.items() if k not in TIMING} for r in read_jsonl(path)]
    return sorted(rows, key=lambda r: (r["mode"], r.get("seed") or 0, int(r["id"])))


def stable(results: dict[str, Any]) -> dict[str, Any]:
    """results.json without the fields that measure time."""
    out = json.loads(json.dumps(results))
    for s in out["modes"].values():
        s.pop("wall_time_s")
    out.pop("created_utc")
    return out


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def italic_rows(n: int, categories: tuple[str, ...] = ("geography", "orthography")) -> list[dict[str, Any]]:
    """``n`` ITALIC-shaped rows (GitHub layout), gold letter cycling A-D, categories alternating."""
    macro = {"geography": "culture and commonsense", "history": "culture and commonsense",
             "orthography": "language capability", "syntax": "language capability"}
    return [{"question": f"Domanda numero {i}?", "options": [{"A": "uno"}, {"B": "due"}, {"C": "tre"}, {"D": "quattro"}],
             "answer": "ABCD"[i % 4], "category": categories[i % len(categories)],
             "macro_category": macro[categories[i % len(categories)]]} for i in range(n)]


class Launched:
    """A real subprocess started now, its output going to files (no pipe to fill up while it runs);
    ``result()`` waits for it and returns a ``CompletedProcess`` (for ``output_tail`` / ``one_line_error``)."""

    def __init__(self, args: list, folder: Path, name: str, env: dict[str, str] | None = None) -> None:
        from llamafactory_ext.runtime import cpu_env

        folder.mkdir(parents=True, exist_ok=True)
        self.paths = folder / f"{name}.stdout", folder / f"{name}.stderr"
        with open(self.paths[0], "w") as out, open(self.paths[1], "w") as err:
            self.proc = subprocess.Popen([str(a) for a in args], stdout=out, stderr=err, text=True,
                                         env=env or cpu_env(threads=1))

    def result(self, timeout: float = 600) -> subprocess.CompletedProcess:
        self.proc.wait(timeout=timeout)
        out, err = (p.read_text(encoding="utf-8", errors="replace") for p in self.paths)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)


def run_forked(commands: dict[str, list[str]], folder: Path, timeout: float = 600) -> dict[str, Forked]:
    """``{name: [eval, key=value, ...]}`` -> ``{name: Forked}``: each command line its own
    ``llamafactory-ext`` process forked by one server that paid the imports once (tests/forkserver.py),
    all forked at once."""
    server = ForkServer(folder)
    try:
        started = {name: server.start("llamafactory-ext", argv) for name, argv in commands.items()}
        return {name: future.result(timeout) for name, future in started.items()}
    finally:
        server.close()


class ScriptedEngine:
    """Stands in for a model (the evaluator's engine interface): ``reply(text, max_new_tokens)``
    gives the :class:`Generation` for each decoded prompt; prompts that continue after a closed
    thought (a forced answer, a faithfulness probe) are kept in ``after_thought``."""

    def __init__(self, tokenizer: Any, reply: Any) -> None:
        self.tokenizer = tokenizer
        self.reply = reply
        self.after_thought: list[str] = []

    def generate(self, prompts, params, on_result=None, progress=None, batch_size=None):
        out = []
        for i, ids in enumerate(prompts):
            text = self.tokenizer.decode(ids)
            if text.endswith("</think>\n\n"):
                self.after_thought.append(text)
            gen = self.reply(text, params.max_new_tokens)
            out.append(gen)
            if on_result:
                on_result(i, gen)
        if progress is not None:
            progress.update(len(prompts))
        return out
