"""Cut-off thinking: an output stopped by max_new_tokens is scored wrong and counted (cutoff=wrong);
accuracy is reported over all items and over completed ones, with token mean / median / p95;
``cutoff=force_answer`` adds its own column (forced.jsonl, ``forced_answer``) and never changes
``accuracy``."""

from __future__ import annotations

import shutil

import pytest

from llamafactory_ext.eval.engine import Generation
from llamafactory_ext.eval.runner import run
from llamafactory_ext.eval.stats import token_stats
from llamafactory_ext.io import read_jsonl
from tests.eval.common import ScriptedEngine, eval_cfg, rescore_cfg, rows_of, write_rows


def test_thinking_run_cut_at_max_new_tokens(base_run):
    """The small model's think run with 4 new tokens: outputs are cut, counted and scored wrong."""
    s = base_run["results"]["modes"]["think"]
    rows = [r for r in rows_of(base_run["dir"] / "predictions.jsonl") if r["mode"] == "think"]
    cut = [r for r in rows if r["finished"] is False]
    assert cut, "4 new tokens must cut some thinking outputs"
    assert s["cut_off"] == len(cut) and s["format"]["cut_off"] == len(cut) / 5 > 0
    assert all(r["status"] == "cut_off" and r["correct"] is False and r["num_tokens"] == 4 for r in cut)
    done = [r for r in rows if r["finished"] is not False]
    assert (s["completed"]["total"], s["completed"]["correct"]) == (len(done), sum(r["correct"] for r in done))
    assert (s["total"], s["correct"]) == (5, sum(r["correct"] for r in rows))
    assert s["tokens"] == token_stats(r["num_tokens"] for r in rows) and s["tokens"]["p95"] <= 4
    assert "forced_answer" not in s
    md = (base_run["dir"] / "results.md").read_text(encoding="utf-8")
    assert "| Mode | n | Accuracy [95 % CI] | Cut off at max_new_tokens | Accuracy on completed | Forced-answer accuracy " \
           "| Tokens mean / median / p95 |" in md
    think_line = next(line for line in md.splitlines() if line.startswith("| think | 5 |"))
    assert f"| {len(cut)} ({100 * len(cut) / 5:.2f} %) |" in think_line, think_line


def test_cut_off_output_is_wrong_even_with_the_right_answer(tmp_path, italic_file):
    """Re-scored rows with ``finished``: a cut output holding the gold letter is wrong; completed
    accuracy and tokens are computed over the right rows."""
    pred = write_rows(tmp_path / "p.jsonl", [
        {"id": 0, "mode": "think", "output": "<think>\nRoma.\n</think>\n\nB", "finished": False, "num_tokens": 40},
        {"id": 1, "mode": "think", "output": "<think>\nQualcunno?\n</think>\n\nC", "finished": True, "num_tokens": 10},
        {"id": 2, "mode": "think", "output": "<think>\nDante.\n</think>\n\nB", "finished": True, "num_tokens": 20},
        {"id": 3, "mode": "think", "output": "<think>\nbasso, lungo", "finished": False, "num_tokens": 40},
        {"id": 0, "mode": "nothink", "output": "B", "finished": False, "num_tokens": 4},
    ])
    res = run(rescore_cfg(italic_file, pred, tmp_path / "o"))
    think, nothink = res["modes"]["think"], res["modes"]["nothink"]
    rows = {(r["id"], r["mode"]): r for r in rows_of(tmp_path / "o" / "predictions.jsonl")}
    assert rows[("0", "think")]["status"] == "cut_off" and rows[("0", "think")]["correct"] is False
    assert rows[("0", "think")]["extracted"] == "B"  # what it said is kept for reading, not scored
    assert rows[("0", "nothink")]["status"] == "cut_off" and nothink["correct"] == 0 and nothink["cut_off"] == 1
    assert (think["correct"], think["total"], think["cut_off"], think["unfinished"]) == (1, 4, 2, 0)
    assert think["accuracy"] == 0.25
    assert (think["completed"]["correct"], think["completed"]["total"], think["completed"]["accuracy"]) == (1, 2, 0.5)
    assert think["tokens"] == {"mean": 27.5, "median": 30.0, "p95": 40.0}
    assert think["format"]["cut_off"] == 0.5


# the gold letter of each question of tests.helpers.ITALIC_SAMPLE, by a phrase of it
GOLD = {"capitale d'Italia": "B", "SCRITTA CORRETTAMENTE": "C", "Divina Commedia": "A", "contrario di 'alto'": "A", "Bari": "C"}


def cut_mid_thought(text, max_new_tokens):
    """A trained model whose think-mode outputs stop mid-thought (cut at max_new_tokens); a
    continuation after a closed thought (the forced answer) is the gold letter of the question."""
    if text.endswith("</think>\n\n"):
        return Generation(next(v for k, v in GOLD.items() if k in text), [1], 1, True)
    return Generation("<think>\nDevo pensarci ancora un po", [1] * max_new_tokens, max_new_tokens, False)


def test_force_answer_is_its_own_column(tmp_path, small_model, italic_file, monkeypatch):
    from transformers import AutoTokenizer

    engine = ScriptedEngine(AutoTokenizer.from_pretrained(str(small_model)), cut_mid_thought)
    monkeypatch.setattr("llamafactory_ext.eval.engine.load_engine", lambda *a, **k: engine)
    out = tmp_path / "o"
    wrong = run(eval_cfg(small_model, italic_file, out, thinking="on", max_new_tokens=8))
    assert not (out / "forced.jsonl").exists() and "forced_answer" not in wrong["modes"]["think"]
    # cutoff is not part of the fingerprint: the same predictions, forced answers added
    res = run(eval_cfg(small_model, italic_file, out, thinking="on", max_new_tokens=8, cutoff="force_answer"))
    s = res["modes"]["think"]
    assert (s["accuracy"], s["correct"], s["cut_off"]) == (0.0, 0, 5)  # never merged into accuracy
    fa = s["forced_answer"]
    assert (fa["items"], fa["items_correct"], fa["correct"], fa["total"], fa["accuracy"]) == (5, 5, 5, 5, 1.0)
    forced = read_jsonl(out / "forced.jsonl")
    assert sorted(r["id"] for r in forced) == [str(i) for i in range(5)] and all(r["forced_correct"] for r in forced)
    # the forced prompt is the question, the cut thought, then the closing think words
    assert len(engine.after_thought) == 5
    assert all(p.endswith("<|im_start|>assistant\n<think>\nDevo pensarci ancora un po\n</think>\n\n") for p in engine.after_thought)
    md = (out / "results.md").read_text(encoding="utf-8")
    think_line = next(line for line in md.splitlines() if line.startswith("| think | 5 |"))
    assert "| 0.00 [" in think_line and "| 100.00 [" in think_line, think_line
    # a resume generates no forced answer twice
    run(eval_cfg(small_model, italic_file, out, thinking="on", max_new_tokens=8, cutoff="force_answer"))
    assert len(engine.after_thought) == 5 and len(read_jsonl(out / "forced.jsonl")) == 5


def test_force_answer_on_the_small_model(tmp_path, small_model, base_run):
    """The real path: the 4-token think run of the base model, cutoff=force_answer on a copy."""
    out = tmp_path / "o"
    shutil.copytree(base_run["dir"], out)
    res = run(eval_cfg(small_model, base_run["italic"], out, thinking="both", cutoff="force_answer"))
    base = base_run["results"]["modes"]
    cut = [r for r in rows_of(out / "predictions.jsonl") if r["mode"] == "think" and r["finished"] is False and not r["closed"]]
    forced = read_jsonl(out / "forced.jsonl")
    assert len(forced) == len(cut) > 0 and {r["id"] for r in forced} == {r["id"] for r in cut}
    s = res["modes"]["think"]
    assert (s["accuracy"], s["correct"]) == (base["think"]["accuracy"], base["think"]["correct"])
    assert s["forced_answer"]["items"] == len(cut)
    assert s["forced_answer"]["correct"] == s["correct"] + sum(bool(r["forced_correct"]) for r in forced)
    assert "forced_answer" not in res["modes"]["nothink"]  # only thinking outputs are forced
    assert all(r["num_tokens"] <= 4 for r in rows_of(out / "predictions.jsonl"))


@pytest.mark.parametrize("value", ["drop", "right"])
def test_cutoff_takes_only_the_documented_values(tmp_path, italic_file, value):
    from llamafactory_ext.config import ConfigError

    with pytest.raises(ConfigError, match="cutoff must be one of 'wrong', 'force_answer'"):
        rescore_cfg(italic_file, tmp_path / "p.jsonl", tmp_path / "o", cutoff=value)
