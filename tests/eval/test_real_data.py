"""The real ITALIC (10,000 rows) and GSM8K test (1,319 rows) files in ../shared/data: every row
loads, renders, and scores 100 % when the output is the gold answer and 0 % when it is a
wrong option / number, through the real re-scoring path (``predictions=``, no model)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import pytest

from llamafactory_ext.data.mcq import SYSTEM_PROMPT
from llamafactory_ext.data.numbers import canonical, parse_number
from llamafactory_ext.eval.runner import run
from llamafactory_ext.eval.tasks import get_task
from llamafactory_ext.thinking import EMPTY_THINK, THINK
from tests.eval.common import make_cfg, rescore_cfg, write_rows

pytestmark = pytest.mark.shared_data


def _rescore(tmp_path, name, task, source, rows):
    return run(rescore_cfg(source, write_rows(tmp_path / f"{name}.jsonl", rows), tmp_path / name, task=task))


def _wrong_letter(item):
    return next(letter for letter in item.letters if letter != item.answer)


def _wrong_number(item):
    return f"The answer is {canonical(parse_number(item['gold']) + 1)}."


def test_italic_every_row_renders_and_scores(tmp_path, italic_dir, tiny_tokenizer):
    from llamafactory_ext.prompts import PromptEncoder

    task = get_task("italic", make_cfg(task="italic", source=str(italic_dir / "italic.jsonl")))
    items = task.load()
    assert len(items) == 10_000
    assert [it.id for it in items] == [str(i) for i in range(10_000)]
    assert Counter(len(it.options) for it in items) == {4: 7466, 3: 2464, 5: 68, 2: 2}
    assert Counter(it.macro_category for it in items) == {"culture and commonsense": 5966, "language capability": 4034}
    assert len({it.category for it in items}) == 12
    # every row renders: instruction naming the category, the question, one "X) text" line per option
    for it in items:
        user = task.messages(it)[-1]["content"]
        for letter, text in it.options:
            assert f"\n{letter}) {text.strip()}" in user
    # encoding through LLaMA-Factory's template: a sample covering every category and option count
    sample = {(it.category, len(it.options)): it for it in items}
    sample.update({"ac": next(it for it in items if it.letters == ["A", "C"])})
    think = PromptEncoder(tiny_tokenizer, "qwen3", "think")
    nothink = PromptEncoder(tiny_tokenizer, "qwen3", "nothink")
    for it in sample.values():
        text = tiny_tokenizer.decode(think.encode(task.messages(it), task.system()))
        assert text.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n")
        assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
        ids = nothink.encode(task.messages(it), task.system())
        assert tiny_tokenizer.decode(ids).endswith("<|im_start|>assistant\n" + EMPTY_THINK)
        assert ids[-7:] == [151644, 77091, 198, 151667, 271, 151668, 271]  # Qwen3's ids: <think>\n\n</think>\n\n

    gold_rows, wrong_rows = [], []
    for it in items:
        gold_rows += [{"id": it.id, "mode": "nothink", "output": it.answer},
                      {"id": it.id, "mode": "think", "output": f"<think>\nCi penso.\n</think>\n\nRisposta: {it.answer}"}]
        wrong = _wrong_letter(it)
        assert wrong != it.answer and wrong in it.letters
        wrong_rows += [{"id": it.id, "mode": "nothink", "output": f"**{wrong}**"},
                       {"id": it.id, "mode": "think", "output": f"<think>\nCi penso.\n</think>\n\n{wrong}"}]
    good = _rescore(tmp_path, "gold", "italic", italic_dir / "italic.jsonl", gold_rows)
    bad = _rescore(tmp_path, "wrong", "italic", italic_dir / "italic.jsonl", wrong_rows)
    for mode in ("think", "nothink"):
        g, b = good["modes"][mode], bad["modes"][mode]
        assert (g["correct"], g["total"], g["accuracy"], g["unparsed"], g["unfinished"]) == (10_000, 10_000, 1.0, 0, 0)
        assert (b["correct"], b["total"], b["accuracy"], b["unparsed"]) == (0, 10_000, 0.0, 0)
        assert len(g["per_category"]) == 12 and all(v["accuracy"] == 1.0 for v in g["per_category"].values())
        assert sum(v["total"] for v in g["per_category"].values()) == 10_000
        assert g["per_macro_category"]["culture and commonsense"]["total"] == 5966
        assert g["per_category"]["current_events"]["total"] == 92
    assert good["modes"][THINK]["format"]["closed_think"] == 1.0
    md = (tmp_path / "gold" / "results.md").read_text()
    assert re.search(r"^\| Current events \| 92 \| [\d.]+ \| 100\.00 \[96\.0, 100\.0\] \|$", md, re.MULTILINE), md
    assert re.search(r"^\| \*\*Language capability\*\* \| \*\*4034\*\* \| \*\*[\d.]+\*\* \| \*\*100\.00 \[99\.9, 100\.0\]\*\* \|$", md, re.MULTILINE), md
    assert good["items"]["count"] == 10_000
    assert good["source"]["sha256"] == hashlib.sha256((italic_dir / "italic.jsonl").read_bytes()).hexdigest()


def test_gsm8k_every_row_renders_and_scores(tmp_path, gsm8k_dir):
    task = get_task("gsm8k", make_cfg(task="gsm8k", source=str(gsm8k_dir)))
    items = task.load()
    assert len(items) == 1319 and [it["id"] for it in items] == [str(i) for i in range(1319)]
    for it in items:
        assert task.messages(it)[-1]["content"].startswith(it["question"].strip())
    # gold outputs in several published shapes; wrong = gold + 1
    shapes = [
        lambda g: f"The answer is {g}.",
        lambda g: f"<think>\nCalcolo.\n</think>\n\n#### {g}",
        lambda g: f"Quindi \\boxed{{{g}}}",
        lambda g: f"She earns ${int(g):,} in total." if g.lstrip("-").isdigit() else f"The answer is {g}.",
    ]
    gold_rows, wrong_rows = [], []
    for n, it in enumerate(items):
        out = shapes[n % len(shapes)](it["gold"])
        gold_rows.append({"id": it["id"], "mode": "nothink", "output": out.replace("<think>\nCalcolo.\n</think>\n\n", "")})
        gold_rows.append({"id": it["id"], "mode": "think", "output": "<think>\nCalcolo.\n</think>\n\n" + shapes[0](it["gold"])})
        wrong_rows.append({"id": it["id"], "mode": "nothink", "output": _wrong_number(it)})
        wrong_rows.append({"id": it["id"], "mode": "think", "output": "<think>\nThe answer is " + it["gold"] + "\n</think>\n\n" + _wrong_number(it)})
    good = _rescore(tmp_path, "gold", "gsm8k", gsm8k_dir, gold_rows)
    bad = _rescore(tmp_path, "wrong", "gsm8k", gsm8k_dir, wrong_rows)
    for mode in ("think", "nothink"):
        assert (good["modes"][mode]["correct"], good["modes"][mode]["total"]) == (1319, 1319)
        assert (bad["modes"][mode]["correct"], bad["modes"][mode]["total"], bad["modes"][mode]["unparsed"]) == (0, 1319, 0)
    assert set(good["modes"]["nothink"]["methods"]) == {"answer_is", "hashes", "boxed", "last_number"}


def test_italic_five_shot_prompt(italic_dir):
    task = get_task("italic", make_cfg(task="italic", source=str(italic_dir / "italic.jsonl"), shots=5, limit=3))
    items = task.load()
    messages = task.messages(items[0])
    assert [m["role"] for m in messages] == ["user", "assistant"] * 5 + ["user"]
    shots = [m["content"] for m in messages[1:-1:2]]
    assert all(len(s) == 1 and s.isupper() for s in shots)  # fast variant: the letter alone
    cot = get_task("italic", make_cfg(task="italic", source=str(italic_dir), shots=5, variant="cot", limit=1))
    assert cot.messages(items[0])[1]["content"].startswith("Risposta: ")
