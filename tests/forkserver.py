"""A fork server for command lines the tests run many times: ``llamafactory-cli`` (train, export)
and ``llamafactory-ext``.

Every such process pays the same imports first (torch, transformers, peft, LLaMA-Factory: about
7 CPU-seconds here, against 1-2 s of training for a 2-step tiny run). The server pays them once,
then forks one child per command line. Each child is its own process: it runs the console script's
own entry point (``llamafactory.cli:main`` as ``llamafactory-cli`` does, ``llamafactory_ext.cli:main``)
with its own argv, working folder, environment (torch's thread count from its OMP_NUM_THREADS),
stdout / stderr files and exit status; an exception that escapes prints its traceback, as the
interpreter would. Children run side by side. What the tests check of a run (exit status, logged
ids, written files) is what the console script gives; tests whose point is the console script
itself (tests/e2e/test_train_lora.py, the study, the sweep, the demo) start it as a fresh process.

Client: :class:`ForkServer` (``run`` / ``start``; the session fixture ``forks`` in tests/conftest.py).
Server: this file run as a script (it imports nothing from ``tests``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

# warm imports of the server (optional ones are skipped when a module moved or is missing)
PRELOAD = ("torch", "transformers", "peft", "llamafactory.cli", "llamafactory.launcher", "llamafactory.train.tuner",
           "llamafactory.data.template", "llamafactory_ext.cli", "llamafactory_ext.eval.runner")


class Forked(subprocess.CompletedProcess):
    """A finished forked command line: a ``CompletedProcess`` with its ``pid`` and when it ``ended``
    (``time.monotonic()``, comparable between processes)."""

    def __init__(self, args: list[str], returncode: int, stdout: str, stderr: str, pid: int, ended: float) -> None:
        super().__init__(args, returncode, stdout, stderr)
        self.pid, self.ended = pid, ended


class ForkServer:
    """``run(entry, args, cwd=..., env=...) -> Forked``; ``start(...)`` returns a Future of it."""

    def __init__(self, folder: Path) -> None:
        from llamafactory_ext.runtime import cpu_env

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._log = open(folder / "server.log", "w", encoding="utf-8")  # noqa: SIM115 - open while the server runs
        self._proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._log, text=True, env=cpu_env(threads=1))
        self._pending: dict[int, tuple[Future, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._count = 0
        threading.Thread(target=self._read, daemon=True).start()

    def start(self, entry: str, args: list, cwd: Path | str | None = None, env: dict[str, str] | None = None) -> Future:
        from llamafactory_ext.runtime import cpu_env

        with self._lock:
            self._count += 1
            n = self._count
        request = {"id": n, "entry": entry, "argv": [str(a) for a in args], "cwd": str(cwd or os.getcwd()),
                   "env": env or cpu_env(), "stdout": str(self.folder / f"{n}.stdout"), "stderr": str(self.folder / f"{n}.stderr")}
        future: Future = Future()
        with self._lock:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the fork server has exited:\n{self.log_tail()}")
            self._pending[n] = (future, request)
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        return future

    def run(self, entry: str, args: list, cwd: Path | str | None = None, env: dict[str, str] | None = None,
            timeout: float = 900) -> Forked:
        return self.start(entry, args, cwd, env).result(timeout)

    def _read(self) -> None:
        try:
            for line in self._proc.stdout:
                msg = json.loads(line)
                with self._lock:
                    future, req = self._pending.pop(msg["id"])
                out, err = (Path(req[k]).read_text(encoding="utf-8", errors="replace") for k in ("stdout", "stderr"))
                future.set_result(Forked([req["entry"], *req["argv"]], msg["code"], out, err, msg["pid"], msg["ended"]))
        finally:
            with self._lock:  # the server is gone (or spoke nonsense): nothing pending will finish
                for future, _ in self._pending.values():
                    future.set_exception(RuntimeError(f"the fork server stopped answering:\n{self.log_tail()}"))
                self._pending.clear()

    def log_tail(self) -> str:
        self._log.flush()
        return (self.folder / "server.log").read_text(encoding="utf-8", errors="replace")[-3000:]

    def close(self) -> None:
        """No more command lines. With none running, the server is killed (its interpreter's own
        shutdown, torch and all, takes seconds); else it waits for its children, then exits."""
        with self._lock:
            running = bool(self._pending)
        self._proc.stdin.close()
        if not running:
            self._proc.kill()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()


# ----------------------------------------------------------------------------- server
def _child(request: dict[str, Any]) -> int:
    """In the forked child: become the command line, run its entry point, return its exit status."""
    import traceback

    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    sys.argv = [request["entry"], *request["argv"]]
    try:
        if request["entry"] == "llamafactory-cli":
            from llamafactory.cli import main as lf_main

            code = lf_main()  # as the console script: sys.exit(main())
        elif request["entry"] == "llamafactory-ext":
            from llamafactory_ext.cli import main as ext_main

            code = ext_main(request["argv"])
        else:
            raise ValueError(f"unknown entry {request['entry']!r}")
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the interpreter prints it and exits 1
        traceback.print_exc()
        code = 1
    return int(code or 0)


def _fork(request: dict[str, Any]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = _child(request)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def serve() -> None:
    """Read one JSON request a line on stdin, fork a child for each, answer ``{id, code, pid, ended}``
    on stdout as each child ends; on end of input, wait for the children and exit."""
    import importlib
    import selectors
    import time

    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what the imports print goes to the log, not into the answers
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            print(f"fork server: not preloaded: {name} ({exc})", file=sys.stderr)
    children: dict[int, int] = {}
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    buffer, reading = b"", True
    while reading or children:
        if reading and selector.select(timeout=0.05):
            chunk = os.read(0, 1 << 16)
            reading = bool(chunk)
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                children[_fork(request)] = request["id"]
        elif not reading:
            time.sleep(0.05)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            answers.write(json.dumps({"id": children.pop(pid), "code": os.waitstatus_to_exitcode(status), "pid": pid,
                                      "ended": time.monotonic()}) + "\n")


if __name__ == "__main__":
    serve()
