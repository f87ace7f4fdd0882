"""A ``llamafactory-ext`` command run from the page, as LlamaBoard runs ``llamafactory-cli train``:
a subprocess in a session of its own, its output collected as it comes, its progress read from the
tqdm bar it prints, and an Abort that leaves no process and no half-written file behind.

Abort sends SIGINT to the whole process group first: every command then stops as on Ctrl-C (its
``KeyboardInterrupt`` unwinds the atomic writers, which delete their temp files, and releases the
folder lock); SIGTERM follows after a grace period and SIGKILL after that, for the group and for
any descendant that left it.
"""

from __future__ import annotations

import codecs
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CLI = [sys.executable, "-m", "llamafactory_ext.cli"]  # `llamafactory-ext` of this installation
KEEP_CHARS = 400_000  # output kept per job (the tail)
# the commands' own tqdm bars (unit "item"; other libraries' bars count "it"):
# "{desc}: {pct}%|{bar}| {n}/{total} [{elapsed}<{remaining}, {rate}{unit}]"
BAR = re.compile(r"(?P<desc>[^\r\n]*?):\s*\d+%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)\s*"
                 r"\[(?P<elapsed>[^<\]]*)<(?P<eta>[^,\]]*),\s*(?P<rate>\?|[\d.]+)(?P<unit>item/s|s/item)")


def shell_command(argv: list[str], cwd: str | os.PathLike) -> str:
    """The command as a user types it in a shell (``cd`` into the folder it ran in, then the command)."""
    return f"cd {shlex.quote(str(cwd))}\nllamafactory-ext {shlex.join(argv)}"


@dataclass
class Progress:
    desc: str
    done: int
    total: int
    rate: float | None  # items per second
    eta: str

    def text(self) -> str:
        rate = f"{self.rate:.2f} items/s" if self.rate is not None else "… items/s"
        return f"{self.desc}: {self.done}/{self.total} items · {rate} · ETA {self.eta or '?'}"


def last_progress(output: str) -> Progress | None:
    """The last tqdm bar state in a command's output (tqdm rewrites its line with ``\\r``)."""
    for line in reversed(re.split(r"[\r\n]", output[-20_000:])):
        m = BAR.search(line)
        if m is None:
            continue
        rate = None if m["rate"] == "?" else float(m["rate"])
        if rate is not None and m["unit"].startswith("s/"):
            rate = 1.0 / rate if rate > 0 else None
        return Progress(m["desc"].strip(), int(m["n"]), int(m["total"]), rate, m["eta"].strip())
    return None


def error_line(output: str) -> str | None:
    """The one-line error a command prints on bad input (``llamafactory-ext NAME: error: ...``)."""
    lines = [ln.strip() for ln in re.split(r"[\r\n]", output) if ln.startswith("llamafactory-ext ") and ": error: " in ln]
    return lines[-1] if lines else None


def group_members(pgid: int) -> list:
    """Live (non-zombie) processes of a process group."""
    import psutil

    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


class Job:
    """One running command; ``output()`` grows as it prints; ``abort()`` stops it and its children."""

    def __init__(self, argv: list[str], cwd: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> None:
        self.argv = [str(a) for a in argv]
        self.cwd = Path(cwd or Path.cwd())
        self.started = time.monotonic()
        self.aborted = False
        self._chunks: list[str] = []
        self._size = 0
        self._lock = threading.Lock()
        self.proc = subprocess.Popen([*CLI, *self.argv], cwd=self.cwd, env=env or dict(os.environ),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # its own process group: Abort reaches every child
        self.pgid = self.proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while chunk := os.read(fd, 65536):
            text = decoder.decode(chunk)
            with self._lock:
                self._chunks.append(text)
                self._size += len(text)
                if self._size > 2 * KEEP_CHARS:
                    kept = "".join(self._chunks)[-KEEP_CHARS:]
                    self._chunks, self._size = [kept], len(kept)
        self.proc.stdout.close()  # type: ignore[union-attr]

    def output(self) -> str:
        with self._lock:
            return "".join(self._chunks)

    def running(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout=5)  # the rest of its output
        return code

    def progress(self) -> Progress | None:
        return last_progress(self.output())

    def command(self) -> str:
        return shell_command(self.argv, self.cwd)

    def abort(self, grace: float = 10.0) -> None:
        """Stop the command and everything it started (returns at once; a thread escalates)."""
        if not self.running():
            return
        self.aborted = True
        threading.Thread(target=self.stop, args=(grace,), daemon=True).start()

    def stop(self, grace: float = 10.0) -> None:
        """SIGINT to the group, then SIGTERM, then SIGKILL; returns when nothing of it is left."""
        import psutil

        try:
            family = [psutil.Process(self.pgid), *psutil.Process(self.pgid).children(recursive=True)]
        except psutil.Error:
            family = []
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            alive = [p for p in {*family, *group_members(self.pgid)} if _alive(p)]
            if not alive:
                break
            for proc in alive:
                _signal(proc, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(_alive(p) for p in alive):
                self.proc.poll()  # reap the leader as soon as it exits
                time.sleep(0.1)
        self.proc.poll()


def _alive(proc) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(proc, sig: int) -> None:
    import psutil

    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass
