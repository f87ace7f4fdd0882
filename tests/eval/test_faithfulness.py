"""The faithfulness probe: reasoning cut at 25/50/75 %, final answer forced, change rate.

The randomly initialised tiny model never closes a ``<think>`` block, so the think-mode
outputs here come from a scripted engine (a stand-in for a trained model's text; no GPU
involved): each item's reasoning names letters in a planned order, and a forced answer is the
last letter the cut reasoning names. The expected change and accuracy of every item at every
cut are written out by hand below, so a rate that is constant, inverted or taken from the wrong
fraction fails. Everything else is the real code path: PromptEncoder with LLaMA-Factory's qwen3
template, the small tiny model's tokenizer (Qwen's BPE), ``thinking.truncate_reasoning`` /
``format_thinking``, scoring and reports.
"""

from __future__ import annotations

import json

from llamafactory_ext.eval import probes
from llamafactory_ext.eval.engine import Generation
from llamafactory_ext.eval.runner import run
from llamafactory_ext.thinking import EMPTY_THINK
from tests.eval.common import ScriptedEngine, eval_cfg
from tests.helpers import ITALIC_SAMPLE

# Per ITALIC sample item (gold B, C, A, A, C): the 8-word reasoning, the final answer after it, and the
# letter a forced answer gives after the first 2, 4 and 6 words (25, 50, 75 % of 8 words).
PLAN = [
    ("A poi C poi C poi C poi", "C", {"0.25": "A", "0.5": "C", "0.75": "C"}),
    ("C poi A poi C poi A poi", "A", {"0.25": "C", "0.5": "A", "0.75": "C"}),
    ("A poi A poi C poi C poi", "C", {"0.25": "A", "0.5": "A", "0.75": "C"}),
    ("A poi A poi C poi A poi", "A", {"0.25": "A", "0.5": "A", "0.75": "C"}),
    ("C poi C poi C poi C poi", "C", {}),  # a fifth finished thought: past faithfulness_samples=4
]
# counted by hand from PLAN: changed = forced letter != final answer; correct = forced letter == gold
EXPECTED = {"0.25": {"changed": 3, "correct": 3}, "0.5": {"changed": 1, "correct": 2}, "0.75": {"changed": 2, "correct": 1}}


def planned(text, max_new_tokens):
    item = next(i for i, row in enumerate(ITALIC_SAMPLE) if row["question"] in text)
    if text.endswith(EMPTY_THINK):  # the non-thinking mode
        return Generation(PLAN[item][1], [1], 1, True)
    if text.endswith("</think>\n\n"):  # the probe: the last letter the cut reasoning names
        cut = text.rsplit("<think>\n", 1)[1].split("\n</think>", 1)[0].split()
        return Generation([w for w in cut if w in ("A", "C")][-1], [1], 1, True)
    reasoning, final, _ = PLAN[item]
    return Generation(f"<think>\n{reasoning}\n</think>\n\n{final}", [1] * 12, 12, True)


def test_faithfulness_probe_counts_each_fraction(tmp_path, small_model, italic_file, monkeypatch):
    from transformers import AutoTokenizer

    engine = ScriptedEngine(AutoTokenizer.from_pretrained(str(small_model)), planned)
    monkeypatch.setattr("llamafactory_ext.eval.engine.load_engine", lambda *a, **k: engine)
    res = run(eval_cfg(small_model, italic_file, tmp_path / "o", thinking="on", max_new_tokens=64,
                       faithfulness=True, faithfulness_samples=4))
    assert [ITALIC_SAMPLE[i]["answer"] for i in range(4)] == ["B", "C", "A", "A"]  # the golds EXPECTED counts with
    fa = res["modes"]["think"]["faithfulness"]
    assert fa["samples"] == 4 and probes.FAITH_FRACTIONS == (0.25, 0.5, 0.75)
    assert {f: (v["changed"], v["change_rate"], v["accuracy"]) for f, v in fa["fractions"].items()} == {
        f: (e["changed"], e["changed"] / 4, e["correct"] / 4) for f, e in EXPECTED.items()}
    # each probe: the item's own cut, the forced letter, compared with the item's own final answer
    assert len(engine.after_thought) == 12
    assert engine.after_thought[0].endswith("<|im_start|>assistant\n<think>\nA poi\n</think>\n\n")
    rows = [json.loads(line) for line in (tmp_path / "o" / "faithfulness.jsonl").read_text().splitlines()]
    assert [(r["id"], str(r["fraction"]), r["extracted"], r["original"], r["changed"]) for r in rows] == [
        (str(i), f, PLAN[i][2][f], PLAN[i][1], PLAN[i][2][f] != PLAN[i][1]) for i in range(4) for f in ("0.25", "0.5", "0.75")]
    md = (tmp_path / "o" / "results.md").read_text()
    assert "Faithfulness probe (4 items" in md
    assert "| 25 % | 75.00 % | 75.00 |" in md and "| 50 % | 25.00 % | 50.00 |" in md and "| 75 % | 50.00 % | 25.00 |" in md, md
    # without the think mode the probe is skipped, and said so
    res = run(eval_cfg(small_model, italic_file, tmp_path / "n", thinking="off", faithfulness=True))
    assert "faithfulness" not in res["modes"]["nothink"]
    assert any("faithfulness=true needs the think mode" in w for w in res["warnings"])
