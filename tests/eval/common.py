"""Plain helpers of the evaluator tests (fixtures: tests/eval/conftest.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from llamafactory_ext.io import read_jsonl

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


# A fork server for many short command lines: one process pays the imports every `eval` run pays
# (torch, transformers, LLaMA-Factory's templates: ~9 CPU-seconds here), then forks one child per
# command line. Each child is its own process running the CLI entry point (`cli.main`, as
# `python -m llamafactory_ext.cli` does) with its own stdout, stderr and exit status; an exception
# that escapes prints its traceback, as the interpreter would. All children run side by side.
_FORK_SERVER = r"""
import json, os, sys, traceback
import llamafactory_ext.cli as cli
import llamafactory_ext.eval.runner, llamafactory.data.template, transformers, torch  # noqa: E401,F401
cases = json.loads(open(sys.argv[1], encoding="utf-8").read())
sys.stdout.flush(); sys.stderr.flush()
children = {}
for name, case in cases.items():
    pid = os.fork()
    if pid == 0:
        for fd, path in ((1, case["stdout"]), (2, case["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        try:
            code = cli.main(case["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code or 0)
    children[pid] = name
import time
codes = {}
while children:
    pid, status = os.wait()
    codes[children.pop(pid)] = {"code": os.waitstatus_to_exitcode(status), "pid": pid, "ended": time.monotonic()}
open(sys.argv[2], "w", encoding="utf-8").write(json.dumps(codes))
"""


class Forked(subprocess.CompletedProcess):
    """A finished forked command line: a ``CompletedProcess`` with its ``pid`` and when it ``ended``."""

    def __init__(self, args: list[str], returncode: int, stdout: str, stderr: str, pid: int, ended: float) -> None:
        super().__init__(args, returncode, stdout, stderr)
        self.pid, self.ended = pid, ended


def run_forked(commands: dict[str, list[str]], folder: Path, timeout: float = 600) -> dict[str, Forked]:
    """``{name: [eval, key=value, ...]}`` -> ``{name: Forked}``, each run in its own process, all forked at once."""
    import sys

    folder.mkdir(parents=True, exist_ok=True)
    cases = {name: {"argv": [str(a) for a in argv], "stdout": str(folder / f"{name}.stdout"), "stderr": str(folder / f"{name}.stderr")}
             for name, argv in commands.items()}
    (folder / "cases.json").write_text(json.dumps(cases), encoding="utf-8")
    (folder / "fork_server.py").write_text(_FORK_SERVER, encoding="utf-8")
    server = Launched([sys.executable, folder / "fork_server.py", folder / "cases.json", folder / "codes.json"], folder, "server")
    done = server.result(timeout)
    assert done.returncode == 0 and (folder / "codes.json").is_file(), f"fork server failed:\n{done.stderr[-3000:]}"
    codes = json.loads((folder / "codes.json").read_text(encoding="utf-8"))
    return {name: Forked(["llamafactory-ext", *case["argv"]], codes[name]["code"],
                         Path(case["stdout"]).read_text(encoding="utf-8", errors="replace"),
                         Path(case["stderr"]).read_text(encoding="utf-8", errors="replace"),
                         codes[name]["pid"], codes[name]["ended"])
            for name, case in cases.items()}


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
