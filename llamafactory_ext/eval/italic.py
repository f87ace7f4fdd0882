"""ITALIC (NAACL 2025): 10,000 Italian multiple-choice questions, 12 categories, 2 macro
categories, 2-5 options. Items come from ``data.italic.load_italic`` (Hub schema or the
GitHub jsonl; id = 0-based row number). Prompts follow the published zero-shot protocol
through ``data.mcq``: system "Sei un assistente utile.", an Italian instruction naming the
category, ``A) ...`` option lines; ``variant`` ``fast`` (letter only) or ``cot`` (last line
``Risposta: LETTERA``); ``shots=5`` prepends the 5 official examples.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from llamafactory_ext.data import mcq
from llamafactory_ext.eval.extract import CHOICE_CHAINS, extract_choice
from llamafactory_ext.eval.tasks import Task, TaskError
from llamafactory_ext.thinking import NOTHINK, THINK

# Table order: culture and commonsense, then language capability (published layout).
CATEGORIES: dict[str, list[str]] = {
    mcq.MACRO_CULTURE: ["art_history", "civic_education", "current_events", "geography", "history", "literature", "tourism"],
    mcq.MACRO_LANGUAGE: ["lexicon", "morphology", "orthography", "synonyms_and_antonyms", "syntax"],
}


class MCQTask(Task):
    """Shared by ITALIC and Mult-IT: MCQItem rendering, letter extraction."""

    has_categories = True
    default_max_new_tokens: ClassVar[dict[str, int]] = {NOTHINK: 350, THINK: 4096}
    answer_tokens = 16

    def gold(self, item: mcq.MCQItem) -> str:
        return item.answer

    def category(self, item: mcq.MCQItem) -> str | None:
        return item.category

    def macro_category(self, item: mcq.MCQItem) -> str | None:
        return item.macro_category

    def system(self) -> str | None:
        system = getattr(self.cfg, "system", None)
        return mcq.SYSTEM_PROMPT if system is None else (system or None)

    def shots(self) -> list[mcq.MCQItem]:
        return []

    def messages(self, item: mcq.MCQItem) -> list[dict[str, str]]:
        variant = getattr(self.cfg, "variant", "fast") or "fast"
        if variant not in mcq.VARIANTS:
            raise TaskError(f"variant must be one of {', '.join(mcq.VARIANTS)}, got {variant!r}")
        return mcq.build_messages(item, variant, self.shots())

    def extract(self, text: str, item: mcq.MCQItem) -> tuple[str | None, str]:
        chain = getattr(self.cfg, "extractor", "default") or "default"
        if chain not in CHOICE_CHAINS:
            raise TaskError(f"extractor must be one of {', '.join(CHOICE_CHAINS)}, got {chain!r}")
        return extract_choice(text, item, chain)

    def wrong_answer(self, item: mcq.MCQItem) -> str:
        return next(letter for letter in item.letters if letter != item.answer)

    def gold_output(self, item: mcq.MCQItem) -> str:
        return item.answer


class ItalicTask(MCQTask):
    name = "italic"
    categories = CATEGORIES

    def load(self) -> list[mcq.MCQItem]:
        from llamafactory_ext.data.italic import load_italic

        return load_italic(getattr(self.cfg, "source", None), limit=getattr(self.cfg, "limit", None))

    def shots(self) -> list[mcq.MCQItem]:
        n = int(getattr(self.cfg, "shots", 0) or 0)
        if n == 0:
            return []
        if hasattr(self, "_shots"):
            return self._shots
        from llamafactory_ext.data.italic import load_italic_shots

        path = getattr(self.cfg, "shots_source", None)
        if not path:
            source = getattr(self.cfg, "source", None)
            if source and Path(source).exists():
                folder = Path(source) if Path(source).is_dir() else Path(source).parent
                path = str(folder / "5_shots.jsonl")
        if not path or not Path(path).is_file():
            raise TaskError(f"shots={n} needs shots_source=PATH (ITALIC's 5_shots.jsonl); not found: {path}")
        shots = load_italic_shots(path)
        if n > len(shots):
            raise TaskError(f"shots={n} but {path} has only {len(shots)} examples")
        self._shots = shots[:n]
        return self._shots
