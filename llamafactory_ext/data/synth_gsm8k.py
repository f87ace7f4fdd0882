"""SynthGSM8K-50K (Hub ``clarkkitchen22/SynthGSM8K-50K``, split ``train``): the maths SFT set.

Columns ``id`` (NOT unique), ``question``, ``solution`` (``<<...>>`` notes, a ``#### N`` line),
``answer`` (may look like ``108.0``). Target, as published:
``<think>\\n{solution without notes and #### line}\\n</think>\\n\\nThe answer is N.`` with N
canonical (``108.0`` -> ``108``, no thousands commas). When the solution's ``#### N`` and the
``answer`` column disagree the row is rejected (``answer_mismatch``). Exact duplicate
questions are dropped and counted (``duplicate_question``; ``dedup=false`` keeps them).
"""

from __future__ import annotations

from llamafactory_ext.data.gsm8k import GSM8KConverter, MathOptions
from llamafactory_ext.data.spec import DatasetSpec

HUB_ID = "clarkkitchen22/SynthGSM8K-50K"

SPEC = DatasetSpec(
    name="synth_gsm8k",
    summary="SynthGSM8K-50K: <think> solution + 'The answer is N.', duplicate questions dropped",
    make=lambda options, context: GSM8KConverter(options, solution_field="solution", answer_field="answer"),
    options=MathOptions,
    default_source=HUB_ID,
    version="2",
    sample="synth_gsm8k.jsonl",
)
