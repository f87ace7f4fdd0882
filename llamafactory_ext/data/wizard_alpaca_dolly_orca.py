"""Chat-Error/wizard_alpaca_dolly_orca: the instruction data of LLaMAntino-3-ANITA's SFT stage
(WizardLM, Alpaca, Dolly and Orca instructions in English; Hub parquet, splits ``train`` / ``test``).

Rows have the Alpaca layout: ``instruction``, ``input`` (may be empty or null), ``output``, and,
in the Orca part, ``system``. Both layouts (with or without ``system``) are accepted.

Each row becomes one sharegpt conversation:

- a ``system`` turn only when the row's ``system`` is non-empty;
- the user turn: ``instruction``, or ``instruction + "\\n\\n" + input`` when ``input`` is non-empty;
- the assistant turn: ``output``.

Rejected rows (RowProblem naming the field): ``instruction`` or ``output`` missing, not a string
or empty; ``input`` or ``system`` present but not a string (null counts as empty). Dropped and
counted: with ``dedup=true`` (default), a repeated row (same system, user turn and answer:
``duplicate_row``). Train it with ``recipes/anita_sft_qlora.yaml`` (template ``llama3``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from llamafactory_ext.config import option
from llamafactory_ext.data.fields import Drop, require_str
from llamafactory_ext.data.normalize import question_key
from llamafactory_ext.data.preference import optional_str
from llamafactory_ext.data.spec import Converted, DatasetSpec

HUB_ID = "Chat-Error/wizard_alpaca_dolly_orca"


@dataclasses.dataclass
class WizardOptions:
    dedup: bool = option(True, "drop repeated rows (same system, user turn and answer), counted as duplicate_row")


def user_turn(instruction: str, input_text: str) -> str:
    return f"{instruction}\n\n{input_text}" if input_text.strip() else instruction


class WizardConverter:
    def __init__(self, options: Any, context: Any = None) -> None:
        self.dedup = options.dedup
        self.seen: set[bytes] = set()
        self.with_system = 0
        self.with_input = 0

    def convert(self, row: dict, index: int) -> Converted:
        instruction = require_str(row, "instruction")
        output = require_str(row, "output")
        input_text = optional_str(row, "input")
        system = optional_str(row, "system")
        messages = [{"role": "system", "content": system}] if system.strip() else []
        messages += [{"role": "user", "content": user_turn(instruction, input_text)}, {"role": "assistant", "content": output}]
        key = hashlib.blake2b(json.dumps(messages, ensure_ascii=False).encode("utf-8"), digest_size=16).digest()
        if self.dedup:
            if key in self.seen:
                raise Drop("duplicate_row")
            self.seen.add(key)
        self.with_system += bool(system.strip())
        self.with_input += bool(input_text.strip())
        # the split keeps every answer to one prompt on one side (group: the normalised prompt)
        return Converted({"messages": messages}, None, question_key(user_turn(instruction, input_text), [system]))

    def report(self) -> dict[str, Any]:
        return {"dedup": self.dedup, "rows_with_system": self.with_system, "rows_with_input": self.with_input}


SPEC = DatasetSpec(
    name="wizard_alpaca_dolly_orca",
    summary="Chat-Error/wizard_alpaca_dolly_orca (alpaca rows, optional system) -> chats (ANITA's SFT data)",
    make=WizardConverter,
    options=WizardOptions,
    default_source=HUB_ID,
    sample="wizard_alpaca_dolly_orca.jsonl",
    stratified=False,
)
