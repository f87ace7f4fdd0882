"""GSM8K (openai/gsm8k, main, test: 1,319 questions; id = 0-based row number). Items come
from ``data.gsm8k.load_gsm8k``; the answer is the number after ``The answer is`` / ``####`` /
``\\boxed{}`` (or the last number), compared numerically with the gold ``#### N``."""

from __future__ import annotations

from typing import Any, ClassVar

from llamafactory_ext.eval.extract import NUMBER_CHAINS, extract_number, numbers_equal
from llamafactory_ext.eval.tasks import Task, TaskError
from llamafactory_ext.thinking import NOTHINK, THINK

# The SynthGSM8K / GSM8K training rows (data.gsm8k.convert_row) have the bare question as the
# user turn and no system prompt; the targets end with "The answer is N.". Evaluation uses the
# same prompt by default; ``instruction=`` appends a line for models trained otherwise.
INSTRUCTION = ""
INSTRUCTION_EXPLICIT = 'Solve the problem step by step. End your reply with the line "The answer is N."'



class GSM8KTask(Task):
    name = "gsm8k"
    default_max_new_tokens: ClassVar[dict[str, int]] = {NOTHINK: 512, THINK: 4096}
    answer_tokens = 32

    def load(self) -> list[dict[str, Any]]:
        from llamafactory_ext.data.gsm8k import load_gsm8k

        split = getattr(self.cfg, "split", None) or "test"
        return load_gsm8k(getattr(self.cfg, "source", None), split=split, limit=getattr(self.cfg, "limit", None))

    def item_id(self, item: dict) -> str:
        return str(item["id"])

    def gold(self, item: dict) -> str:
        return str(item["gold"])

    def system(self) -> str | None:
        return getattr(self.cfg, "system", None) or None

    def messages(self, item: dict) -> list[dict[str, str]]:
        instruction = getattr(self.cfg, "instruction", None)
        instruction = INSTRUCTION if instruction is None else instruction
        user = item["question"].strip() + (f"\n\n{instruction}" if instruction else "")
        return [{"role": "user", "content": user}]

    def extract(self, text: str, item: dict) -> tuple[str | None, str]:
        chain = getattr(self.cfg, "extractor", "default") or "default"
        if chain not in NUMBER_CHAINS:
            raise TaskError(f"extractor for gsm8k must be one of {', '.join(NUMBER_CHAINS)}, got {chain!r}")
        return extract_number(text, chain)

    def is_correct(self, extracted: str | None, item: dict) -> bool:
        return numbers_equal(extracted, self.gold(item))

    def wrong_answer(self, item: dict) -> str:
        from llamafactory_ext.eval.extract import canonical, parse_number

        return f"The answer is {canonical(parse_number(self.gold(item)) + 1)}."

    def gold_output(self, item: dict) -> str:
        return f"The answer is {self.gold(item)}."
