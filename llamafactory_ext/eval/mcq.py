"""Multiple-choice tasks (ITALIC, Mult-IT): the rendering of ``data.mcq`` and letter extraction.

Options shared by every multiple-choice task (:class:`MCQOptions`): the prompt ``variant``
(``fast``: the letter only, as the published zero-shot protocol and the Mult-IT training rows;
``cot``: a last line ``Risposta: LETTERA``) and the ``extractor`` chain (``default``,
``strict``, or ``official_first_capital``, ITALIC's own extractor, for comparison only).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

from llamafactory_ext.config import option
from llamafactory_ext.data import mcq
from llamafactory_ext.eval.extract import CHOICE_CHAINS, extract_choice
from llamafactory_ext.eval.tasks import ItemTask
from llamafactory_ext.thinking import NOTHINK, THINK


@dataclasses.dataclass
class MCQOptions:
    variant: Literal["fast", "cot"] = option("fast", "prompt: fast (letter only) | cot (last line 'Risposta: LETTERA')")
    extractor: str = option("default", "extraction chain: default | strict | official_first_capital (ITALIC's own, comparison only)",
                            choices=tuple(CHOICE_CHAINS))


class MCQTask(ItemTask):
    """Shared by ITALIC and Mult-IT: MCQItem rendering, letter extraction."""

    options: ClassVar[type] = MCQOptions
    default_max_new_tokens: ClassVar[dict[str, int]] = {NOTHINK: 350, THINK: 4096}
    languages: ClassVar[tuple[str, ...]] = ("it",)
    usage_example: ClassVar[str | None] = mcq.render_user(mcq.MCQItem(
        id="example", question="Qual è la capitale d'Italia?", answer="B", category="geography",
        options=[("A", "Milano"), ("B", "Roma"), ("C", "Napoli"), ("D", "Torino")]))
    answer_tokens = 16

    def gold(self, item: mcq.MCQItem) -> str:
        return item.answer

    def category(self, item: mcq.MCQItem) -> str | None:
        return item.category

    def macro_category(self, item: mcq.MCQItem) -> str | None:
        return item.macro_category

    def question(self, item: mcq.MCQItem) -> str:
        return item.question

    def option_texts(self, item: mcq.MCQItem) -> tuple[str, ...]:
        return tuple(text for _, text in item.options)

    def chance(self, item: mcq.MCQItem) -> float | None:
        return 1 / len(item.options) if item.options else None

    def system(self) -> str | None:
        return mcq.SYSTEM_PROMPT

    def shots(self) -> list[mcq.MCQItem]:
        return []

    def messages(self, item: mcq.MCQItem) -> list[dict[str, str]]:
        return mcq.build_messages(item, self.cfg.variant, self.shots())

    def extract(self, text: str, item: mcq.MCQItem) -> tuple[str | None, Any]:
        return extract_choice(text, item, self.cfg.extractor)
