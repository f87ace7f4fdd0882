"""Preference pairs for DPO (and ORPO / SimPO / reward models): the generic ``preference``
data set, and the row layout every preference converter writes.

``preference`` reads any local file whose rows hold three strings, ``prompt``, ``chosen`` and
``rejected`` (optional ``system``), e.g. a pair exported from a labelling tool:

    {"system": "Sei un assistente utile.", "prompt": "Traduci 'cat'.", "chosen": "Gatto.", "rejected": "Cane."}

Output rows are LLaMA-Factory's pairwise sharegpt layout (``ranking: true``; LLaMA-Factory's
``SharegptDatasetConverter`` reads ``chosen`` / ``rejected`` as single message objects):

    {"messages": [{"role": "system", ...}, {"role": "user", "content": PROMPT}],
     "chosen": {"role": "assistant", "content": CHOSEN},
     "rejected": {"role": "assistant", "content": REJECTED}}

``messages`` holds the turns both answers share (an optional system turn first, then user /
assistant turns ending with a user turn); the system turn appears only when it is non-empty.
The dataset_info.json entry (``DatasetSpec.dataset_info_entry`` with ``ranking=True``) is
``{"formatting": "sharegpt", "ranking": true, "columns": {"messages": "messages", "chosen":
"chosen", "rejected": "rejected"}, "tags": {role_tag: role, ...}}``; train it with ``stage: dpo``
(or ``rm``).

Rejected rows (``RowProblem``, naming the field): a missing field, a non-string value, an
empty prompt / chosen / rejected. Dropped and counted: a pair whose two answers are the same
text (``identical_pair``: no preference to learn) and, with ``dedup=true`` (default), a pair
seen before (same prompt turns and answers: ``duplicate_pair``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from llamafactory_ext.config import option
from llamafactory_ext.data.fields import Drop, RowProblem, require_str, type_name
from llamafactory_ext.data.spec import Converted, DatasetSpec


@dataclasses.dataclass
class PreferenceOptions:
    dedup: bool = option(True, "drop repeated pairs (same prompt turns, chosen and rejected), counted as duplicate_pair")


def preference_spec(name: str, summary: str, make: Any, **kwargs: Any) -> DatasetSpec:
    """A pairwise data set: rows for ``stage: dpo`` (orpo / simpo via ``pref_loss``) or ``rm``, which
    LLaMA-Factory reads as ``stage: rm`` data with ``ranking: true``; not stratified (no categories)."""
    return DatasetSpec(name=name, summary=summary, make=make, options=PreferenceOptions, stage="rm", ranking=True,
                       sample=f"{name}.jsonl", stratified=False, **kwargs)


def ranking_row(prompt_turns: list[dict[str, str]], chosen: str, rejected: str) -> dict[str, Any]:
    """One pairwise row: the shared turns, then the two final assistant answers."""
    return {"messages": prompt_turns,
            "chosen": {"role": "assistant", "content": chosen},
            "rejected": {"role": "assistant", "content": rejected}}


def optional_str(row: dict, field: str) -> str:
    """An optional text field: missing or null -> ''; anything else must be a string."""
    value = row.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RowProblem(field, "wrong_type", f"expected a string, got {type_name(value)}")
    return value


class PairTally:
    """What every preference converter drops: identical answers and repeated pairs."""

    def __init__(self, dedup: bool) -> None:
        self.dedup = dedup
        self.seen: set[bytes] = set()  # 16-byte digests: flat enough for millions of pairs

    def check(self, row: dict[str, Any]) -> str:
        """The pair's key (its split group); raises Drop for a pair to leave out."""
        if row["chosen"]["content"] == row["rejected"]["content"]:
            raise Drop("identical_pair")
        key = hashlib.blake2b(json.dumps(row, ensure_ascii=False, sort_keys=True).encode("utf-8"), digest_size=16).digest()
        if self.dedup:
            if key in self.seen:
                raise Drop("duplicate_pair")
            self.seen.add(key)
        return key.hex()


class PreferenceConverter:
    def __init__(self, options: Any, context: Any = None) -> None:
        self.pairs = PairTally(options.dedup)

    def convert(self, row: dict, index: int) -> Converted:
        prompt = require_str(row, "prompt")
        chosen = require_str(row, "chosen")
        rejected = require_str(row, "rejected")
        system = optional_str(row, "system")
        turns = ([{"role": "system", "content": system}] if system.strip() else []) + [{"role": "user", "content": prompt}]
        out = ranking_row(turns, chosen, rejected)
        return Converted(out, None, self.pairs.check(out))

    def report(self) -> dict[str, Any]:
        return {"dedup": self.pairs.dedup}


SPEC = preference_spec(
    "preference", "any prompt / chosen / rejected file (optional system) -> pairwise rows for stage: dpo", PreferenceConverter,
    source_help="a local json / jsonl / parquet / csv file with string fields prompt, chosen, rejected (optional system)",
)
