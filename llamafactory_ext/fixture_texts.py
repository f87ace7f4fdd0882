"""The texts a fixture's small vocabulary must tokenize exactly as the full one: every text the demo trains
or evaluates on, every string of the shipped samples, and the words of the templates and prompts
(``fixtures.py`` cuts the BPE to them)."""

from __future__ import annotations

import json


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def demo_texts() -> list[str]:
    """Every text the demo trains or evaluates on, as the qwen3 template lays it out."""
    from llamafactory_ext.data.mcq import SYSTEM_PROMPT, build_messages
    from llamafactory_ext.data.multit import parse_multit_row
    from llamafactory_ext.shipped import resource
    from llamafactory_ext.thinking import EMPTY_THINK, format_thinking

    texts = [SYSTEM_PROMPT, "system\n", "user\n", "assistant\n", "\n", EMPTY_THINK, *"ABCDE"]
    for name in ("warmup_quiz.json", "eval_quiz.json"):
        for i, row in enumerate(json.loads(resource(f"demo/{name}").read_text(encoding="utf-8"))):
            texts += [m["content"] for m in build_messages(parse_multit_row(row, i))]
    with open(resource("demo/traces.jsonl"), encoding="utf-8") as fh:
        texts += [format_thinking(json.loads(line)["trace"], "A") for line in fh if line.strip()]
    return texts


def shipped_texts() -> list[str]:
    """Every text the demo trains or evaluates on (as the qwen3 template lays it out) and every
    string of the shipped samples."""
    from llamafactory_ext.shipped import resource

    texts = demo_texts()
    for path in sorted(resource("samples").iterdir()):
        raw = path.read_text(encoding="utf-8")
        rows = json.loads(raw) if path.suffix == ".json" else [json.loads(line) for line in raw.splitlines() if line.strip()]
        texts += _strings(rows)
    return texts + ["The answer is ", "Risposta: ", " ".join("0123456789")]


def llama3_texts() -> list[str]:
    """What the small LLaMA-3 vocabulary must tokenize exactly as the full one: the shipped texts
    and the words of the ``llama3`` template and of the lm-eval okapi prompts."""
    return shipped_texts() + ["system", "user", "assistant", "\n\n", "Question: ", "\nAnswer:", *(f" {c}" for c in "ABCDE")]
