"""The faithfulness probe: reasoning cut at 25/50/75 %, final answer forced, change rate.

The randomly initialised tiny model never closes a ``<think>`` block, so the think-mode
outputs here come from a scripted engine (a stand-in for a trained model's text; no GPU
involved): it answers with the letter named in the reasoning it is shown. Everything else is
the real code path: PromptEncoder with LLaMA-Factory's qwen3 template, the small tiny model's
tokenizer (Qwen's BPE), ``thinking.truncate_reasoning`` / ``format_thinking``, scoring and reports.
"""

from __future__ import annotations

import re

from llamafactory_ext.eval import probes
from llamafactory_ext.eval.engine import Generation
from llamafactory_ext.eval.runner import run
from tests.eval.common import ScriptedEngine, eval_cfg


def changes_its_mind(text, max_new_tokens):
    if text.endswith("</think>\n\n"):  # the probe: answer with the last letter the cut reasoning names
        named = re.findall(r"opzione ([A-E])", text.split("<think>\n")[-1])
        return Generation(named[-1] if named else "A", [1], 1, True)
    if text.endswith("<|im_start|>assistant\n"):  # think mode: change of mind half way
        return Generation("<think>\nPrima penso all'opzione A. Poi ci ripenso: è meglio l'opzione B, "
                          "anzi no, l'opzione C è giusta.\n</think>\n\nC", [1] * 30, 30, True)
    return Generation("C", [1], 1, True)


def test_faithfulness_probe(tmp_path, small_model, italic_file, monkeypatch):
    from transformers import AutoTokenizer

    engine = ScriptedEngine(AutoTokenizer.from_pretrained(str(small_model)), changes_its_mind)
    monkeypatch.setattr("llamafactory_ext.eval.engine.load_engine", lambda *a, **k: engine)
    res = run(eval_cfg(small_model, italic_file, tmp_path / "o", thinking="on", max_new_tokens=64,
                       faithfulness=True, faithfulness_samples=3))
    fa = res["modes"]["think"]["faithfulness"]
    assert fa["samples"] == 3 and set(fa["fractions"]) == {"0.25", "0.5", "0.75"}
    # 25 % of the reasoning names only A, 50 % reaches B, 75 % still B: the answer C changes every time
    assert [fa["fractions"][f]["change_rate"] for f in ("0.25", "0.5", "0.75")] == [1.0, 1.0, 1.0]
    assert len(engine.after_thought) == 9
    assert engine.after_thought[0].endswith("<|im_start|>assistant\n<think>\nPrima penso all'opzione A.\n</think>\n\n")
    assert "Faithfulness probe (3 items" in (tmp_path / "o" / "results.md").read_text()
    assert (tmp_path / "o" / "faithfulness.jsonl").read_text().count("\n") == 9
    assert probes.FAITH_FRACTIONS == (0.25, 0.5, 0.75)
    # without the think mode the probe is skipped, and said so
    res = run(eval_cfg(small_model, italic_file, tmp_path / "n", thinking="off", faithfulness=True))
    assert "faithfulness" not in res["modes"]["nothink"]
    assert any("faithfulness=true needs the think mode" in w for w in res["warnings"])
