"""What the added tabs share: one command at a time per tab, its live status, its end.

Messages are the command's own: a bad input ends the command with exit status 2 and ONE line
``llamafactory-ext NAME: error: ...``, which the page shows as it is (never a traceback).
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llamafactory_ext.webui.jobs import Job, error_line

FOLLOW_EVERY_S = 1.0


def fenced(text: str, lang: str = "") -> str:
    """``text`` in a Markdown code block (a fence longer than any backtick run inside it)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def screen_lines(output: str, n: int = 40) -> str:
    """The last ``n`` lines as a terminal shows them (a ``\\r``-rewritten progress line: its last state)."""
    lines = [line.rsplit("\r", 1)[-1] for line in output.replace("\r\n", "\n").split("\n")]
    return "\n".join(line for line in lines[-n:])


def key_values(text: str, field: str) -> list[str]:
    """``key=value`` words typed in a box (shell quoting allowed); anything else is a one-line error."""
    try:
        words = shlex.split(text or "")
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None
    bad = [w for w in words if "=" not in w or w.startswith("=")]
    if bad:
        raise ValueError(f"{field}: {bad[0]!r} is not key=value")
    return words


def images(paths: list[Path]) -> list[tuple[Any, str]]:
    """PNGs as in-memory images with their names (the page then needs no permission to serve their folder)."""
    from PIL import Image

    loaded = []
    for path in paths:
        with Image.open(path) as img:
            loaded.append((img.copy(), path.name))
    return loaded


def elapsed(job: Job) -> str:
    seconds = int(time.monotonic() - job.started)
    return f"{seconds // 60}:{seconds % 60:02d}"


def ending(job: Job) -> str:
    """How the command ended, in one Markdown paragraph."""
    code = job.returncode
    if job.aborted:
        return (f"**Aborted** (exit {code}) after {elapsed(job)}: work that finished is kept; the same command "
                "(Start again) resumes it.")
    if code == 0:
        return f"**Done** in {elapsed(job)}."
    line = error_line(job.output())
    if line is not None:
        return f"**Error** (exit {code}):\n\n{fenced(line)}"
    return f"**Failed** (exit {code}) after {elapsed(job)}; the end of its output is below."


class Runs:
    """The command of one tab: at most one at a time, abortable, followed until it ends."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.job: Job | None = None

    def busy(self) -> bool:
        return self.job is not None and self.job.running()

    def start(self, argv: list[str]) -> Job:
        self.job = Job(argv, self.cwd)
        return self.job

    def abort(self) -> str:
        if not self.busy():
            return "Nothing is running."
        self.job.abort()  # type: ignore[union-attr]
        return "**Aborting** (SIGINT to the command's process group, then SIGTERM / SIGKILL if it lingers)…"

    def abort_all(self) -> None:
        """Server shutdown: stop the command and wait until nothing of it is left."""
        if self.busy():
            self.job.aborted = True  # type: ignore[union-attr]
            self.job.stop(grace=5.0)  # type: ignore[union-attr]

    def follow(self, job: Job, running: Any, finished: Any) -> Iterator[Any]:
        """``running(job)`` every second while it runs, then ``finished(job)`` once."""
        while job.running():
            yield running(job)
            time.sleep(FOLLOW_EVERY_S)
        job.wait()
        yield finished(job)
