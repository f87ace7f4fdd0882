"""mlabonne/orpo-dpo-mix-40k: the preference pairs of LLaMAntino-3-ANITA's DPO stage.

Rows (Hub split ``train``, ~44k): ``chosen`` and ``rejected`` are whole conversations, lists of
``{"role", "content"}`` messages that share their prompt turns and differ in the final assistant
turn; ``source`` names the subset the pair comes from; some versions also carry ``prompt`` and
``question`` (the first user turn as text: not needed, not read).

Output: LLaMA-Factory's pairwise sharegpt layout (see :mod:`llamafactory_ext.data.preference`):
the shared turns in ``messages`` (a leading ``system`` turn kept, then user / assistant turns
ending with a user turn), the two final assistant turns as ``chosen`` / ``rejected``. Train it
with ``stage: dpo`` (``recipes/anita_dpo_qlora.yaml``).

Rejected rows (RowProblem naming the field): ``chosen`` / ``rejected`` missing or not a list of
``{"role": str, "content": str}`` (``wrong_type``), empty (``empty``), a list whose last turn is not
the assistant's (``not_assistant_last``), turns out of order (``bad_turn_order``: LLaMA-Factory
needs system?, user, assistant, ..., user before the answer, and silently skips other rows), an
empty final answer (``empty``), and ``rejected`` whose prompt turns differ from ``chosen``'s
(``prompt_mismatch``). Dropped and counted: ``identical_pair`` and, with ``dedup=true``,
``duplicate_pair``. The manifest counts the pairs per ``source``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from llamafactory_ext.data.fields import RowProblem, require, type_name
from llamafactory_ext.data.preference import PairTally, preference_spec, ranking_row
from llamafactory_ext.data.spec import Converted

HUB_ID = "mlabonne/orpo-dpo-mix-40k"
ROLES = ("system", "user", "assistant")


def _messages(row: dict, field: str) -> list[dict[str, str]]:
    """``row[field]`` as a checked list of {role, content} messages ending with the assistant's."""
    value = require(row, field)
    if not isinstance(value, list):
        raise RowProblem(field, "wrong_type", f"expected a list of messages, got {type_name(value)}")
    if not value:
        raise RowProblem(field, "empty", "has no messages")
    out = []
    for i, msg in enumerate(value, start=1):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str) or not isinstance(msg.get("content"), str):
            raise RowProblem(field, "wrong_type", f"message {i} must be an object with string 'role' and 'content', got {str(msg)[:80]!r}")
        if msg["role"] not in ROLES:
            raise RowProblem(field, "bad_role", f"message {i} has role {msg['role']!r}; expected one of {', '.join(ROLES)}")
        out.append({"role": msg["role"], "content": msg["content"]})
    if out[-1]["role"] != "assistant":
        raise RowProblem(field, "not_assistant_last", f"the last message is the {out[-1]['role']}'s, not the assistant's answer")
    if not out[-1]["content"].strip():
        raise RowProblem(field, "empty", "the final assistant answer is empty")
    turns = out[:-1]
    body = turns[1:] if turns and turns[0]["role"] == "system" else turns
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(body))]
    if not body or [m["role"] for m in body] != expected or body[-1]["role"] != "user":
        roles = " -> ".join(m["role"] for m in out)
        raise RowProblem(field, "bad_turn_order", f"turns {roles}: expected [system ->] user -> assistant -> ... -> user -> assistant")
    if any(not m["content"].strip() for m in body if m["role"] == "user"):
        raise RowProblem(field, "empty", "a user turn is empty")
    return out


class OrpoDpoMixConverter:
    def __init__(self, options: Any, context: Any = None) -> None:
        self.pairs = PairTally(options.dedup)
        self.sources: Counter[str] = Counter()

    def convert(self, row: dict, index: int) -> Converted:
        chosen = _messages(row, "chosen")
        rejected = _messages(row, "rejected")
        if chosen[:-1] != rejected[:-1]:
            n = next((i for i, (a, b) in enumerate(zip(chosen[:-1], rejected[:-1])) if a != b), min(len(chosen), len(rejected)) - 1)
            raise RowProblem("rejected", "prompt_mismatch", f"its prompt turns differ from chosen's (first difference at message {n + 1})")
        turns = chosen[:-1]
        if turns[0]["role"] == "system" and not turns[0]["content"].strip():
            turns = turns[1:]  # an empty system turn is no system prompt
        out = ranking_row(turns, chosen[-1]["content"], rejected[-1]["content"])
        group = self.pairs.check(out)
        source = row.get("source")
        self.sources[source if isinstance(source, str) and source else "(none)"] += 1
        return Converted(out, None, group)

    def report(self) -> dict[str, Any]:
        return {"dedup": self.pairs.dedup, "pairs_per_source": dict(self.sources.most_common())}


SPEC = preference_spec(
    "orpo_dpo_mix", "mlabonne/orpo-dpo-mix-40k preference pairs -> pairwise rows for stage: dpo (ANITA's DPO data)",
    OrpoDpoMixConverter, default_source=HUB_ID,
)
