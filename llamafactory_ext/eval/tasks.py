"""Evaluation tasks: the ONE task registry (``eval``, ``contamination`` and ``distill`` use it), one
small module per task plus one line here.

Two kinds of task:

- :class:`ItemTask`: items of our own (ITALIC, GSM8K, Mult-IT). A task knows how to load its items
  (through the data layer), the question text and option texts of an item (what ``contamination``
  looks for), the chat turns of one item, its system prompt, how to extract and check an answer,
  and which category / macro category an item belongs to. Everything else (modes, engines, resume,
  reports) is shared code: ``eval/predict.py``, ``eval/probes.py``, ``eval/runner.py``, ``report.py``.
- :class:`SuiteTask`: a benchmark suite with its own loop (``lm_eval``: lm-evaluation-harness's
  tasks, prompts and metrics). :meth:`SuiteTask.run` writes the outputs itself; it has no items
  for contamination or distill.

A task's own options (``variant``, ``shots``, ``instruction``, ...) are a dataclass next to it
(``Task.options``): ``eval task=NAME`` accepts the shared keys of ``eval.options.EvalConfig`` plus
those (``eval.options.config_class``). Shared code asks a task what it is (its kind, its
attributes); it never tests a task's name.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from llamafactory_ext.config import UserError, unknown_key_error
from llamafactory_ext.thinking import NOTHINK, THINK, split_output

if TYPE_CHECKING:
    from llamafactory_ext.data.overlap import EvalItem

# name -> "module:Class". Adding a task = one module + one line here + one fixture + one test.
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


@dataclass(frozen=True)
class HubDataset:
    """How the Hub names a task's evaluation data (a model card's ``model-index`` ``dataset``)."""

    name: str
    type: str            # the Hub id (or the task's own name when the data are not on the Hub)
    config: str | None = None
    split: str | None = None


class Task:
    """Base class of both kinds: a ``name``, a ``label`` for reports, its ``options`` and the
    config it runs with (``cfg``: an ``eval.options.EvalConfig`` that also holds the options)."""

    name = ""
    label = ""
    options: ClassVar[type] = NoOptions
    categories: ClassVar[dict[str, list[str]]] = {}  # macro category -> categories, in table order
    # the figures of a published study this task reproduces (study.py shows them beside ours): {model, versions}
    published: ClassVar[dict[str, Any] | None] = None
    # what a model card says of the task (card_render): the languages of its items, its data as the Hub
    # names it, and one user message rendered as the task renders its items (the card's usage snippet)
    languages: ClassVar[tuple[str, ...]] = ()
    hub_dataset: ClassVar[HubDataset | None] = None
    usage_example: ClassVar[str | None] = None

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.notes: list[str] = []  # what loading the items had to say (duplicates merged): the run's warnings

    def summary_line(self, results: dict[str, Any]) -> str:
        """One line of the results, for the terminal."""
        raise NotImplementedError


class ItemTask(Task):
    """Items of our own, generated and scored by the shared loop. Subclasses set ``name`` (and
    ``options``) and implement the abstract methods."""

    # default max_new_tokens per mode (the published ITALIC protocol uses 350 without thinking)
    default_max_new_tokens: ClassVar[dict[str, int]] = {NOTHINK: 512, THINK: 4096}
    # tokens allowed for a forced final answer (faithfulness probe, cutoff=force_answer)
    answer_tokens = 32

    # -- items
    def load(self) -> list[Any]:
        raise NotImplementedError

    def load_each(self, load_one: Callable[[Any, int | None], list[Any]]) -> list[Any]:
        """``load_one(source, limit)`` over ``cfg.source`` (one source, or a list read in turn), up to ``cfg.limit``."""
        sources = self.cfg.source if isinstance(self.cfg.source, (list, tuple)) else [self.cfg.source]
        items: list[Any] = []
        for one in sources:
            left = None if self.cfg.limit is None else self.cfg.limit - len(items)
            if left is not None and left <= 0:
                break
            items += load_one(one, left)
        return items

    def input_paths(self) -> dict[str, str]:
        """Files the task reads besides its source, by label: each option naming an existing file or
        folder (``shots_source``). Provenance identifies their contents."""
        values = {f.name: getattr(self.cfg, f.name, None) for f in dataclasses.fields(self.options)}
        return {k: v for k, v in values.items() if isinstance(v, str) and v and Path(v).exists()}

    def item_id(self, item: Any) -> str:
        return str(item.id)

    def gold(self, item: Any) -> str:
        raise NotImplementedError

    def category(self, item: Any) -> str | None:
        return None

    def macro_category(self, item: Any) -> str | None:
        return None

    def question(self, item: Any) -> str:
        """The question text alone (what the contamination check looks for)."""
        raise NotImplementedError

    def option_texts(self, item: Any) -> tuple[str, ...]:
        return ()

    def overlap_item(self, item: Any) -> EvalItem:
        """What ``data.overlap`` matches training rows against."""
        from llamafactory_ext.data.overlap import ALL, UNKNOWN, EvalItem

        category = self.category(item) or (UNKNOWN if self.categories else ALL)
        return EvalItem(self.item_id(item), self.question(item), self.option_texts(item), category, self.macro_category(item))

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

    def summary_line(self, results: dict[str, Any]) -> str:
        parts = []
        for mode, s in results.get("modes", {}).items():
            acc = f"{100 * s['accuracy']:.2f}% [{100 * s['ci95'][0]:.1f}, {100 * s['ci95'][1]:.1f}]"
            parts.append(f"{mode}: {acc} ({s['correct']}/{s['total']}, cut off {s['cut_off']}, unfinished {s['unfinished']}, "
                         f"unparsed {s['unparsed']})")
        return "; ".join(parts)


class SuiteTask(Task):
    """A suite with its own loop: :meth:`run` gets the resolved run (``eval.resolve.EvalRun``),
    writes results.json / results.md / predictions.jsonl itself and returns the results dict."""

    def run(self, run: Any) -> dict[str, Any]:
        raise NotImplementedError


def task_class(name: str, where: str = "eval") -> type[Task]:
    if name not in TASKS:
        raise TaskError(str(unknown_key_error(str(name), TASKS, where, "task")) + f"; known: {', '.join(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def registered(name: str | None) -> type[Task] | None:
    """The task class registered as ``name``; None for a name the registry does not hold (an
    evaluation made by another version, or none)."""
    return task_class(name) if name in TASKS else None


def get_task(name: str, cfg: Any) -> Task:
    return task_class(name)(cfg)


def item_tasks(kind: type[ItemTask] = ItemTask) -> list[str]:
    """The registered tasks of a kind (``ItemTask``: every task with items of our own)."""
    return [name for name in TASKS if issubclass(task_class(name), kind)]


def published_study() -> tuple[str, dict[str, Any]] | None:
    """(task, figures) of the task that carries a published study's figures, if one does."""
    for name in TASKS:
        figures = task_class(name).published
        if figures:
            return name, figures
    return None
