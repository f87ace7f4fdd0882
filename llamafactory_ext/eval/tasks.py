"""Evaluation tasks: one small module per task plus one registry line here.

A task knows how to load its items (through the data layer), how to build the chat turns of
one item, which system prompt it uses, how to extract and check an answer, and which category
an item belongs to. Its own options (``variant``, ``shots``, ``instruction``, ...) are a
dataclass next to it (``Task.options``): ``eval task=NAME`` accepts the shared keys of
``runner.EvalConfig`` plus those. Everything else (modes, engines, resume, reports) is shared
code in ``runner.py`` and ``report.py``.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

from llamafactory_ext.config import UserError, unknown_key_error
from llamafactory_ext.thinking import NOTHINK, THINK, split_output

# name -> "module:Class". Adding a task = one module + one line here + one test.
TASKS: dict[str, str] = {
    "italic": "llamafactory_ext.eval.italic:ItalicTask",
    "gsm8k": "llamafactory_ext.eval.gsm8k:GSM8KTask",
    "multit": "llamafactory_ext.eval.multit:MultITTask",
    "lm_eval": "llamafactory_ext.eval.lm_eval:LmEvalTask",
}

# outcome of one scored output
OK = "ok"
UNFINISHED = "unfinished"  # thinking mode, no closing </think>
UNPARSED = "unparsed"      # no answer could be extracted
CUT_OFF = "cut_off"        # stopped by max_new_tokens (scored wrong: cutoff=wrong)


class TaskError(UserError):
    pass


@dataclass
class Score:
    extracted: str | None
    method: str
    correct: bool
    status: str  # ok | unfinished | unparsed | cut_off


@dataclasses.dataclass
class NoOptions:
    """A task with no options of its own."""


class Task:
    """Base class. Subclasses set ``name`` (and ``options``) and implement the abstract methods."""

    name = ""
    options: ClassVar[type] = NoOptions
    categories: ClassVar[dict[str, list[str]]] = {}  # macro category -> categories, in table order
    # default max_new_tokens per mode (the published ITALIC protocol uses 350 without thinking)
    default_max_new_tokens: ClassVar[dict[str, int]] = {NOTHINK: 512, THINK: 4096}
    # tokens allowed for a forced final answer (faithfulness probe, cutoff=force_answer)
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

    def chance(self, item: Any) -> float | None:
        """The chance of answering ``item`` right by guessing (None: an open answer, no chance level)."""
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

    def score(self, output: str, item: Any, mode: str, finished: bool = True) -> Score:
        """Score one output; a cut-off output is wrong, whatever text it holds (``cutoff=wrong``)."""
        extracted, method = self.extract(output, item)
        if not finished:
            return Score(extracted, method, False, CUT_OFF)
        if mode == THINK and not split_output(output).closed:
            return Score(None, UNFINISHED, False, UNFINISHED)
        if extracted is None:
            return Score(None, method, False, UNPARSED)
        return Score(extracted, method, self.is_correct(extracted, item), OK)


def task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise TaskError(str(unknown_key_error(str(name), TASKS, "eval", "task")) + f"; known: {', '.join(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_task(name: str, cfg: Any) -> Task:
    return task_class(name)(cfg)
