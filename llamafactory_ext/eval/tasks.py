"""Evaluation tasks: one small module per task plus one registry line here.

A task knows how to load its items (through the data layer), how to build the chat turns
of one item, which system prompt it uses, how to extract and check an answer, and which
category an item belongs to. Everything else (modes, engines, resume, reports) is shared
code in ``runner.py`` and ``report.py``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

from llamafactory_ext.config import UserError
from llamafactory_ext.thinking import NOTHINK, THINK, split_output

# name -> "module:Class". Adding a task = one module + one line here + one test.
TASKS: dict[str, str] = {
    "italic": "llamafactory_ext.eval.italic:ItalicTask",
    "gsm8k": "llamafactory_ext.eval.gsm8k:GSM8KTask",
    "multit": "llamafactory_ext.eval.multit:MultITTask",
}

# outcome of one scored output
OK = "ok"
UNFINISHED = "unfinished"  # thinking mode, no closing </think>
UNPARSED = "unparsed"      # no answer could be extracted


class TaskError(UserError):
    pass


@dataclass
class Score:
    extracted: str | None
    method: str
    correct: bool
    status: str  # ok | unfinished | unparsed


class Task:
    """Base class. Subclasses set ``name`` and implement the abstract methods."""

    name = ""
    has_categories = False
    # default max_new_tokens per mode (the published ITALIC protocol uses 350 without thinking)
    default_max_new_tokens: ClassVar[dict[str, int]] = {NOTHINK: 512, THINK: 4096}
    # probe: tokens allowed for the forced final answer after a truncated reasoning
    answer_tokens = 32

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    # -- items
    def load(self) -> list[Any]:
        raise NotImplementedError

    def item_id(self, item: Any) -> str:
        return str(item.id)

    def gold(self, item: Any) -> str:
        raise NotImplementedError

    def category(self, item: Any) -> str | None:
        return None

    def macro_category(self, item: Any) -> str | None:
        return None

    # -- prompts
    def system(self) -> str | None:
        return None

    def messages(self, item: Any) -> list[dict[str, str]]:
        raise NotImplementedError

    # -- scoring
    def extract(self, text: str, item: Any) -> tuple[str | None, str]:
        raise NotImplementedError

    def is_correct(self, extracted: str | None, item: Any) -> bool:
        return extracted is not None and extracted == self.gold(item)

    def wrong_answer(self, item: Any) -> str:
        """An output that is a wrong answer (tests, sanity checks)."""
        raise NotImplementedError

    def gold_output(self, item: Any) -> str:
        """An output that states the gold answer (tests, sanity checks)."""
        return self.gold(item)

    def score(self, output: str, item: Any, mode: str) -> Score:
        parts = split_output(output)
        if mode == THINK and not parts.closed:
            return Score(None, UNFINISHED, False, UNFINISHED)
        extracted, method = self.extract(output, item)
        if extracted is None:
            return Score(None, method, False, UNPARSED)
        return Score(extracted, method, self.is_correct(extracted, item), OK)


def get_task(name: str, cfg: Any) -> Task:
    if name not in TASKS:
        import difflib

        close = difflib.get_close_matches(str(name), list(TASKS) + ["compare"], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TaskError(f"unknown task {name!r}{hint}; known: {', '.join(list(TASKS) + ['compare'])}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg)
