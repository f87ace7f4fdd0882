"""GSM8K (openai/gsm8k, main, test: 1,319 questions; id = 0-based row number). Items come
from ``data.gsm8k.load_gsm8k``; the answer is the number after ``The answer is`` / ``####`` /
``\\boxed{}`` (or the last number), compared numerically with the gold ``#### N``.

The SynthGSM8K / GSM8K training rows (``data.gsm8k.convert_row``) have the bare question as the
user turn and no system prompt; their targets end with "The answer is N.". Evaluation uses the
same prompt by default; ``instruction=`` appends a line for models trained otherwise."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from llamafactory_ext.config import option
from llamafactory_ext.eval.extract import NUMBER_CHAINS, extract_number, numbers_equal
from llamafactory_ext.eval.tasks import HubDataset, ItemTask
from llamafactory_ext.thinking import NOTHINK, THINK


@dataclasses.dataclass
class GSM8KOptions:
    split: str = option("test", "GSM8K split to evaluate (test: 1,319 questions)")
    instruction: str | None = option(None, "a line appended to each question (default: none, as in the training rows)")
    extractor: str = option("default", "extraction chain: default | strict", choices=tuple(NUMBER_CHAINS))


class GSM8KTask(ItemTask):
    name = "gsm8k"
    options: ClassVar[type] = GSM8KOptions
    default_max_new_tokens: ClassVar[dict[str, int]] = {NOTHINK: 512, THINK: 4096}
    answer_tokens = 32
    languages: ClassVar[tuple[str, ...]] = ("en",)
    hub_dataset: ClassVar[HubDataset | None] = HubDataset("GSM8K", "openai/gsm8k", "main", "test")
    usage_example: ClassVar[str | None] = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many "
                                           "clips in May. How many clips did Natalia sell altogether in April and May?")

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"GSM8K {self.cfg.split}"

    def load(self) -> list[dict[str, Any]]:
        from llamafactory_ext.data.gsm8k import load_gsm8k

        return load_gsm8k(self.cfg.source, split=self.cfg.split, limit=self.cfg.limit)

    def question(self, item: dict) -> str:
        return item["question"]

    def item_id(self, item: dict) -> str:
        return str(item["id"])

    def gold(self, item: dict) -> str:
        return str(item["gold"])

    def messages(self, item: dict) -> list[dict[str, str]]:
        user = item["question"].strip() + (f"\n\n{self.cfg.instruction}" if self.cfg.instruction else "")
        return [{"role": "user", "content": user}]

    def extract(self, text: str, item: dict) -> tuple[str | None, str]:
        return extract_number(text, self.cfg.extractor)

    def is_correct(self, extracted: str | None, item: dict) -> bool:
        return numbers_equal(extracted, self.gold(item))
