"""Mult-IT held-out split: the same rendering and extraction as ITALIC (``data.mcq``).

``source`` is either a Mult-IT-shaped file (``quiz.json`` rows: ``question``, ``choices``,
``answer``; read by ``data.multit.load_multit``) or the held-out split that
``llamafactory-ext prepare multit_* val_size=0.1`` writes (``data/multit_*_val.jsonl``,
sharegpt ``messages`` rows): the user turn is parsed back into the question and its options
(it was rendered by ``data.mcq.render_user``, so rendering it again gives the same prompt) and
the gold letter is the assistant turn after its last ``</think>``. A split prepared with
``mix=all`` holds each question twice (with a trace and without): rows with the same question and
options (``data.normalize.question_key``) are one item, counted once, and the run says how many
were merged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from llamafactory_ext.data import mcq
from llamafactory_ext.eval.mcq import MCQTask
from llamafactory_ext.eval.tasks import HubDataset, TaskError
from llamafactory_ext.thinking import split_output

_INTRO = re.compile(r"^La seguente è una domanda a scelta multipla(?: di (?P<cat>.+?))?\. ")
_OPTION = re.compile(r"^([A-E])\) (.*)$")
_CATEGORY_EN = {v: k for k, v in mcq.CATEGORY_IT.items()}


def item_from_messages(messages: list, index: int) -> mcq.MCQItem:
    """A prepared sharegpt row -> MCQItem; ValueError naming what is wrong."""
    if not isinstance(messages, list):
        raise ValueError("field 'messages' must be a list")  # noqa: TRY004 - a row problem, reported with its line
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    answers = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    if not users or not answers:
        raise ValueError("field 'messages' needs a user and an assistant turn")
    user, answer = str(users[-1].get("content", "")), str(answers[-1].get("content", ""))
    m = _INTRO.match(user)
    if not m or "\n\n" not in user:
        raise ValueError("field 'messages': the user turn is not a rendered multiple-choice question")
    body = user.split("\n\n", 1)[1].split("\n")
    options: list[tuple[str, str]] = []
    while body and _OPTION.match(body[-1]):
        letter, text = _OPTION.match(body.pop()).groups()
        options.insert(0, (letter, text))
    if len(options) < 2 or not body:
        raise ValueError("field 'messages': the user turn has no question or fewer than 2 'X) option' lines")
    gold = split_output(answer).answer.strip()
    if gold not in [letter for letter, _ in options]:
        raise ValueError(f"field 'messages': the assistant answer {gold!r} is not one of the option letters")
    cat = m.group("cat")
    return mcq.MCQItem(id=str(index), question="\n".join(body), options=options, answer=gold,
                       category=_CATEGORY_EN.get(cat, cat) if cat else None)


class MultITTask(MCQTask):
    name = "multit"
    label = "Mult-IT"
    categories: ClassVar[dict[str, list[str]]] = {}
    hub_dataset: ClassVar[HubDataset | None] = HubDataset("Mult-IT", "multit")  # not on the Hub: a card names the file

    def load(self) -> list[mcq.MCQItem]:
        source, limit = self.cfg.source, self.cfg.limit
        if not source:
            raise TaskError("task=multit needs source=PATH: a quiz.json-shaped file or a prepared data/multit_*_val.jsonl")
        if not isinstance(source, (list, tuple)) and _is_prepared(Path(source)):
            items, merged = load_prepared(Path(source), limit)
            self.notes = [(f"{source}: {merged} duplicate question(s) merged (the same question and options, e.g. a "
                          "mix=all split holds each question with and without a trace): each is counted once")] if merged else []
            return items
        from llamafactory_ext.data.multit import load_multit

        return load_multit(source, limit=limit)  # one quiz.json or several, read in turn


def _is_prepared(path: Path) -> bool:
    """A JSONL file of sharegpt ``messages`` rows (what ``prepare multit_* val_size=...`` writes)."""
    from llamafactory_ext.data.sources import open_source

    if path.suffix != ".jsonl" or not path.is_file():
        return False
    first = next(open_source(str(path)).rows(limit=1), None)
    return first is not None and "messages" in first[1]


def load_prepared(path: Path, limit: int | None) -> tuple[list[mcq.MCQItem], int]:
    """(items, duplicates merged): one item per question and options, the first row's; ``limit``
    counts items. Copies with another gold letter are an error naming both lines."""
    from llamafactory_ext.data.multit import item_key
    from llamafactory_ext.data.sources import open_source

    items: list[mcq.MCQItem] = []
    seen: dict[str, tuple[int, mcq.MCQItem]] = {}
    merged = 0
    for index, (number, row) in enumerate(open_source(str(path)).rows()):
        try:
            item = item_from_messages(row.get("messages"), index)
        except ValueError as exc:
            raise TaskError(f"{path}:{number}: {exc}") from None
        key = item_key(item)
        if key in seen:
            first_line, first = seen[key]
            if first.answer != item.answer:
                raise TaskError(f"{path}:{number}: field 'messages': the same question as line {first_line} with another "
                                f"answer ({item.answer!r}, there {first.answer!r})")
            merged += 1
            continue
        if limit is not None and len(items) >= limit:
            break
        seen[key] = (number, item)
        items.append(item)
    return items, merged
