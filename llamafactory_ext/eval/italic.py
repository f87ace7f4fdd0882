"""ITALIC (NAACL 2025): 10,000 Italian multiple-choice questions, 12 categories, 2 macro
categories, 2-5 options. Items come from ``data.italic.load_italic`` (Hub schema or the
GitHub jsonl; id = 0-based row number). Prompts follow the published zero-shot protocol
through ``data.mcq``: system "Sei un assistente utile.", an Italian instruction naming the
category, ``A) ...`` option lines; ``variant`` ``fast`` (letter only) or ``cot`` (last line
``Risposta: LETTERA``); ``shots=5`` prepends the 5 official examples.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from llamafactory_ext.config import option
from llamafactory_ext.data import mcq
from llamafactory_ext.eval.mcq import MCQOptions, MCQTask
from llamafactory_ext.eval.tasks import HubDataset, TaskError
from llamafactory_ext.thinking import NOTHINK, THINK

CATEGORIES = mcq.ITALIC_CATEGORIES  # table order: culture and commonsense, then language capability
# The published Version Series this task reproduces (``study``): Qwen3-8B fine-tuned on Mult-IT,
# ITALIC zero-shot, greedy, accuracy in %.
PUBLISHED: dict[str, Any] = {
    "model": "Qwen/Qwen3-8B", "task": "italic",
    "title": "Published (Qwen3-8B fine-tuned on Mult-IT, ITALIC zero-shot, greedy):",
    "versions": {"baseline": {NOTHINK: 70.17, THINK: 74.49}, "V1": {NOTHINK: 73.77, THINK: 59.33},
                 "V2": {NOTHINK: 70.27, THINK: 77.87}, "V3": {NOTHINK: 73.81, THINK: 77.57}},
}


@dataclasses.dataclass
class ItalicOptions(MCQOptions):
    shots: int = option(0, "few-shot examples from ITALIC's 5_shots.jsonl (0-5; the leaderboard is zero-shot)", ge=0, le=5)
    shots_source: str | None = option(None, "ITALIC's 5_shots.jsonl (default: next to source)")


class ItalicTask(MCQTask):
    name = "italic"
    label = "ITALIC"
    options: ClassVar[type] = ItalicOptions
    categories: ClassVar[dict[str, list[str]]] = CATEGORIES
    published: ClassVar[dict[str, Any] | None] = PUBLISHED
    hub_dataset: ClassVar[HubDataset | None] = HubDataset("ITALIC", "Crisp-Unimib/ITALIC", "default", "train")

    def load(self) -> list[mcq.MCQItem]:
        from llamafactory_ext.data.italic import load_italic

        return self.load_each(lambda source, limit: load_italic(source, limit=limit))

    def shots_path(self) -> str | None:
        """``shots_source``, else ``5_shots.jsonl`` next to a local source."""
        path = self.cfg.shots_source
        if not path and self.cfg.source and Path(self.cfg.source).exists():
            folder = Path(self.cfg.source) if Path(self.cfg.source).is_dir() else Path(self.cfg.source).parent
            path = str(folder / "5_shots.jsonl")
        return path

    def input_paths(self) -> dict[str, str]:
        shots = self.shots_path() if self.cfg.shots and not self.cfg.shots_source else None  # the default file next to the source
        return {**super().input_paths(), **({"shots": shots} if shots and Path(shots).is_file() else {})}

    def shots(self) -> list[mcq.MCQItem]:
        n = self.cfg.shots
        if n == 0:
            return []
        if hasattr(self, "_shots"):
            return self._shots
        from llamafactory_ext.data.italic import load_italic_shots

        path = self.shots_path()
        if not path or not Path(path).is_file():
            raise TaskError(f"shots={n} needs shots_source=PATH (ITALIC's 5_shots.jsonl); not found: {path}")
        shots = load_italic_shots(path)
        if n > len(shots):
            raise TaskError(f"shots={n} but {path} has only {len(shots)} examples")
        self._shots = shots[:n]
        return self._shots
