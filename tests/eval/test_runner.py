"""Runner on the small tiny Qwen3 (CPU, in-process): both modes with and without a LoRA adapter
trained in this session, resume after a kill, the settings fingerprint, seeds, from_recipe,
re-scoring ``predictions=`` and bad input named clearly."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import shutil
import statistics

import pytest

from llamafactory_ext.config import UserError
from llamafactory_ext.eval.options import NEUTRAL_SETTINGS, OUTPUT_SETTINGS, EvalConfig, config_class
from llamafactory_ext.eval.resolve import resolve, settings
from llamafactory_ext.eval.runner import run
from llamafactory_ext.eval.stats import token_stats
from llamafactory_ext.eval.tasks import TASKS
from llamafactory_ext.io import ResumeError, read_jsonl, settings_path
from tests.eval.common import (
    eval_cfg,
    make_cfg,
    rescore_cfg,
    rows_of,
    stable,
    write_rows,
)

MODES = {"think", "nothink"}


def _copy_run(base_run, dest):
    shutil.copytree(base_run["dir"], dest)
    return dest


# ----------------------------------------------------------------------------- runs


def test_both_modes_base_and_adapter(tmp_path, small_model, small_adapter, base_run):
    base = base_run["results"]
    tuned = run(eval_cfg(small_model, base_run["italic"], tmp_path / "tuned", adapter_name_or_path=str(small_adapter),
                         baseline=str(base_run["dir"])))
    for res in (base, tuned):
        assert res["schema_version"] == 3 and set(res["modes"]) == MODES
        for s in res["modes"].values():
            assert s["total"] == 5 and s["missing"] == 0
            assert s["correct"] + s["unfinished"] + s["unparsed"] + s["cut_off"] <= 5
            assert 0 < s["tokens"]["mean"] <= 4
    rows = rows_of(tmp_path / "tuned" / "predictions.jsonl")
    assert {(r["id"], r["mode"]) for r in rows} == {(str(i), m) for i in range(5) for m in MODES} and len(rows) == 10
    for r in rows:
        assert {"id", "mode", "seed", "output", "extracted", "method", "status", "gold", "correct", "num_tokens", "finished"} <= set(r)
        if r["finished"] is False:
            assert r["status"] == "cut_off" and r["correct"] is False
    # the adapter is applied: the engine's merged weights differ from the base model's
    import torch

    from llamafactory_ext.eval.engine import load_engine

    plain = dict(load_engine("hf", str(small_model), device="cpu").model.named_parameters())
    merged = dict(load_engine("hf", str(small_model), str(small_adapter), device="cpu").model.named_parameters())
    assert plain.keys() == merged.keys()
    assert any(not torch.equal(plain[k], merged[k]) for k in plain if "proj" in k)
    assert tuned["model"]["adapter_name_or_path"] == str(small_adapter)
    # comparison.json: per mode, the paired test of the two runs' own predictions
    comparison = json.loads((tmp_path / "tuned" / "comparison.json").read_text())
    assert set(comparison["modes"]) == MODES and comparison["partial"] is False and comparison["items_compared"] == 5
    base_rows = rows_of(base_run["dir"] / "predictions.jsonl")
    for mode, table in comparison["modes"].items():
        assert {"total", "geography", "orthography", "culture and commonsense"} <= set(table)
        for name, cell in table.items():
            got = {k: cell[k] for k in ("n", "delta", "model_only", "baseline_only", "p_value")}
            assert got == _expected_pair(base_rows, rows, mode, name), (mode, name)
    md = (tmp_path / "tuned" / "results.md").read_text()
    assert md.count("| Category | n | Chance | Baseline [95 % CI] | Model [95 % CI] | Δ (pp) [95 % CI] | p | p (Holm) |") == 2
    assert re.search(r"\| \*\*Total\*\* \| \*\*5\*\* \| \*\*[\d.]+\*\* \| \*\*\d+\.\d\d \[\d+\.\d, \d+\.\d\]\*\* \| "
                     r"\*\*\d+\.\d\d \[\d+\.\d, \d+\.\d\]\*\* \| \*\*[+-]\d+\.\d\d", md), md
    assert (tmp_path / "tuned" / "italic_think.png").stat().st_size > 1000
    assert (tmp_path / "tuned" / "italic_nothink.png").stat().st_size > 1000


def _expected_pair(base_rows, rows, mode, name):
    """b, c, Δ and the exact McNemar p of one cell, computed here from both runs' rows (scipy)."""
    from scipy.stats import binomtest

    def outcome(rs):
        return {r["id"]: bool(r["correct"]) for r in rs
                if r["mode"] == mode and name in ("total", r.get("category"), r.get("macro_category"))}

    first, second = outcome(base_rows), outcome(rows)
    assert first.keys() == second.keys()
    b = sum(second[k] and not first[k] for k in first)
    c = sum(first[k] and not second[k] for k in first)
    p = binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0
    n = len(first)
    delta = 100 * (sum(second.values()) - sum(first.values())) / n
    return {"n": n, "delta": pytest.approx(delta, abs=1e-3), "model_only": b, "baseline_only": c,
            "p_value": pytest.approx(p, abs=1e-6)}


def test_resume_after_kill_gives_identical_rows(tmp_path, small_model, base_run, capsys):
    full = base_run["results"]
    killed = _copy_run(base_run, tmp_path / "killed")
    lines = (killed / "predictions.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(lines) == 10
    # a killed run: 3 finished rows, then a half-written line
    (killed / "predictions.jsonl").write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2], encoding="utf-8")
    for name in ("results.json", "results.md"):
        (killed / name).unlink()
    resumed = run(eval_cfg(small_model, base_run["italic"], killed, thinking="both"))
    assert "dropped a half-written last line; it is generated again" in capsys.readouterr().err
    assert rows_of(killed / "predictions.jsonl") == rows_of(base_run["dir"] / "predictions.jsonl")
    assert len(read_jsonl(killed / "predictions.jsonl")) == 10  # no duplicate, no missing row
    assert stable(resumed)["modes"] == stable(full)["modes"]
    assert resumed["think_vs_nothink"] == full["think_vs_nothink"]
    # a second re-run generates nothing and changes nothing
    before = (killed / "predictions.jsonl").read_bytes()
    again = run(eval_cfg(small_model, base_run["italic"], killed, thinking="both"))
    assert (killed / "predictions.jsonl").read_bytes() == before
    assert stable(again)["modes"] == stable(full)["modes"]


def test_neutral_settings_resume_without_generating(tmp_path, small_model, base_run, monkeypatch):
    out = _copy_run(base_run, tmp_path / "o")
    before = (out / "predictions.jsonl").read_bytes()

    def no_engine(*a, **k):
        raise AssertionError("a complete resume must not load a model")

    monkeypatch.setattr("llamafactory_ext.eval.engine.load_engine", no_engine)
    res = run(eval_cfg(small_model, base_run["italic"], out, thinking="both", batch_size=2, limit=3, device="cpu",
                       progress=True, faithfulness_samples=3))
    assert (out / "predictions.jsonl").read_bytes() == before
    # every figure is of the 3 items asked for, not of every row the folder holds
    assert all(s["total"] == 3 and s["missing"] == 0 for s in res["modes"].values())
    assert res["items"]["count"] == 3 and res["think_vs_nothink"]["total"]["n"] == 3
    # one mode where results.json held two is refused (tests/eval/test_resume_inputs.py); overwrite=true replaces it
    one_mode = run(eval_cfg(small_model, base_run["italic"], out, thinking="off", limit=2, overwrite=True))
    assert (out / "predictions.jsonl").read_bytes() == before  # the same settings: resumed, nothing discarded
    assert set(one_mode["modes"]) == {"nothink"} and one_mode["modes"]["nothink"]["total"] == 2
    assert "think_vs_nothink" not in one_mode


def test_resume_with_fewer_seeds_reports_only_those(tmp_path, small_model, italic_file):
    out = tmp_path / "s"
    both = run(eval_cfg(small_model, italic_file, out, thinking="off", temperature=0.6, seeds=[1, 2], limit=2))
    assert both["modes"]["nothink"]["total"] == 4
    one = run(eval_cfg(small_model, italic_file, out, thinking="off", temperature=0.6, seeds=[2], limit=2))
    s = one["modes"]["nothink"]
    assert (s["total"], s["missing"]) == (2, 0) and "per_seed" not in s
    seed2 = [r for r in rows_of(out / "predictions.jsonl") if r["seed"] == 2]
    assert s["correct"] == sum(r["correct"] for r in seed2) and s["tokens"] == token_stats(r["num_tokens"] for r in seed2)


@pytest.mark.parametrize(
    "override, named",
    [
        ({"backend": "vllm"}, "backend: 'hf' -> 'vllm'"),
        ({"dtype": "bfloat16"}, "dtype: 'float32' -> 'bfloat16'"),
        ({"variant": "cot"}, "variant: 'fast' -> 'cot'"),
        ({"shots_source": "SHOTS"}, "shots_source: None -> "),
        ({"max_new_tokens": 7}, "max_new_tokens: 4 -> 7"),
        ({"system": "Sei un esperto."}, "system: 'Sei un assistente utile.' -> 'Sei un esperto.'"),
        ({"device": "GPU"}, "device: 'cpu' -> 'cuda'"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_resume_with_other_settings_is_refused(tmp_path, small_model, base_run, monkeypatch, override, named):
    out = _copy_run(base_run, tmp_path / "o")
    before = (out / "predictions.jsonl").read_bytes()
    if override.get("shots_source") == "SHOTS":
        override = {"shots_source": str(tmp_path / "5_shots.jsonl")}
    if override.get("device") == "GPU":  # as if a GPU were visible: the default device becomes cuda
        monkeypatch.setattr("llamafactory_ext.eval.engine.resolve_device", lambda device: "cuda")
        monkeypatch.setattr("llamafactory_ext.eval.engine.resolve_dtype", lambda dtype, device: "float32")
        override = {}
    with pytest.raises(ResumeError) as err:
        run(eval_cfg(small_model, base_run["italic"], out, thinking="both", **override))
    message = str(err.value)
    assert named in message and "overwrite=true" in message, message
    assert (out / "predictions.jsonl").read_bytes() == before


def test_overwrite_starts_over(tmp_path, small_model, base_run):
    out = _copy_run(base_run, tmp_path / "o")
    res = run(eval_cfg(small_model, base_run["italic"], out, thinking="both", max_new_tokens=2, overwrite=True))
    rows = rows_of(out / "predictions.jsonl")
    assert len(rows) == 10 and all(r["num_tokens"] <= 2 for r in rows)  # nothing kept from the 4-token run
    assert all(s["total"] == 5 for s in res["modes"].values())
    assert json.loads(settings_path(out / "predictions.jsonl").read_text())["max_new_tokens"] == 2
    run(eval_cfg(small_model, base_run["italic"], out, thinking="both", max_new_tokens=2))  # now it resumes


def test_empty_predictions_left_by_a_failed_start_do_not_block_the_next_run(tmp_path, small_model, italic_file):
    """A run that stops before its first row (a model that fails to load) leaves an empty
    predictions.jsonl and its settings: the corrected command must run, not be refused."""
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    out = tmp_path / "o"
    with pytest.raises(UserError, match="cannot load"):
        run(eval_cfg(broken, italic_file, out, thinking="off", limit=1))
    assert (out / "predictions.jsonl").stat().st_size == 0
    res = run(eval_cfg(small_model, italic_file, out, thinking="off", limit=1, max_new_tokens=2))
    assert res["modes"]["nothink"]["total"] == 1


# ----------------------------------------------------------------------------- fingerprint


def test_every_setting_is_fingerprinted_or_declared_neutral():
    fields = [f.name for f in dataclasses.fields(EvalConfig)]
    in_both = set(OUTPUT_SETTINGS) & set(NEUTRAL_SETTINGS)
    in_neither = set(fields) - set(OUTPUT_SETTINGS) - set(NEUTRAL_SETTINGS)
    assert not in_both, f"in both OUTPUT_SETTINGS and NEUTRAL_SETTINGS: {sorted(in_both)}"
    assert not in_neither, f"EvalConfig fields in neither OUTPUT_SETTINGS nor NEUTRAL_SETTINGS: {sorted(in_neither)}"
    assert set(OUTPUT_SETTINGS) | set(NEUTRAL_SETTINGS) == set(fields), "names that are not EvalConfig fields"
    # every registered task (whatever its options) yields a config with the shared keys + its own
    for name in TASKS:
        own = {f.name for f in dataclasses.fields(config_class(name))}
        assert set(fields) <= own, name


@pytest.mark.parametrize("task", ["italic", "gsm8k", "multit"])
def test_settings_hold_every_output_setting_and_task_option(tmp_path, task):
    from llamafactory_ext.eval.tasks import task_class

    cfg = make_cfg(task=task, model_name_or_path=str(tmp_path), source=str(tmp_path / "x.jsonl"), device="cpu")
    got = settings(resolve(cfg))
    options = {f.name for f in dataclasses.fields(task_class(task).options)}
    assert set(OUTPUT_SETTINGS) | options <= set(got)
    assert not set(NEUTRAL_SETTINGS) & set(got), "a neutral setting in the fingerprint blocks harmless resumes"


# ----------------------------------------------------------------------------- seeds, recipes


def test_seeds_pool_every_figure(tmp_path, small_model, italic_file):
    seeds = [42, 123, 456]
    res = run(eval_cfg(small_model, italic_file, tmp_path / "s", thinking="on", temperature=0.6, top_p=0.95,
                       seeds=seeds, limit=3, max_new_tokens=6))
    s = res["modes"]["think"]
    rows = rows_of(tmp_path / "s" / "predictions.jsonl")
    assert len(rows) == 9 and sorted({r["seed"] for r in rows}) == seeds
    assert res["items"]["seeds"] == seeds
    # every figure pools all seeds
    assert (s["total"], s["correct"]) == (9, sum(r["correct"] for r in rows))
    assert s["cut_off"] == sum(r["finished"] is False for r in rows) and s["format"]["cut_off"] == s["cut_off"] / 9
    assert s["format"]["closed_think"] == sum(bool(r["closed"]) for r in rows) / 9
    assert s["completed"]["total"] == sum(r["finished"] is not False for r in rows)
    assert s["tokens"] == token_stats(r["num_tokens"] for r in rows)
    # per-seed accuracies and their standard deviation
    per = {str(seed): sum(r["correct"] for r in rows if r["seed"] == seed) / 3 for seed in seeds}
    assert s["seeds"] == seeds and {k: v["accuracy"] for k, v in s["per_seed"].items()} == per
    assert s["accuracy_std"] == pytest.approx(statistics.stdev(per.values()))
    assert s["accuracy"] == pytest.approx(statistics.fmean(per.values()))
    # seeds do sample: the three runs do not all write the same text
    outputs = {seed: [r["output"] for r in rows if r["seed"] == seed] for seed in seeds}
    assert len({tuple(v) for v in outputs.values()}) > 1
    assert "over seeds)" in (tmp_path / "s" / "results.md").read_text()


def test_from_recipe_inherits_template_modes_and_adapter(tmp_path, small_model, small_adapter, small_recipe, italic_file):
    res = run(make_cfg(task="italic", source=str(italic_file), from_recipe=str(small_recipe["recipe"]), limit=2,
                       max_new_tokens=2, output_dir=str(tmp_path / "r"), progress=False))
    assert res["model"]["model_name_or_path"] == str(small_model)
    assert res["model"]["adapter_name_or_path"] == str(small_adapter)
    assert res["model"]["template"] == "qwen3"
    assert set(res["modes"]) == MODES  # enable_thinking: null trains both
    # a different template than the one the adapter was trained with is reported
    recorded = tmp_path / "adapter_copy"
    shutil.copytree(small_adapter, recorded)
    (recorded / "training_args.yaml").write_text("template: qwen3\nfinetuning_type: lora\n")
    res = run(eval_cfg(small_model, italic_file, tmp_path / "w", adapter_name_or_path=str(recorded), template="qwen3_nothink",
                       limit=1, max_new_tokens=2))
    assert any("trained with template 'qwen3'" in w for w in res["warnings"])
    assert "trained with template" in (tmp_path / "w" / "results.md").read_text()
    assert set(res["modes"]) == {"nothink"}  # qwen3_nothink has no thinking mode


def test_gsm8k_run_summary_and_progress(tmp_path, small_model, capsys):
    from llamafactory_ext.cli import main

    gsm = write_rows(tmp_path / "gsm8k.jsonl", [
        {"question": f"Quanto fa {i} + {i}?", "answer": f"{i}+{i}=<<{i}+{i}={2 * i}>>{2 * i}\n#### {2 * i}"} for i in range(3)])
    code = main(["eval", "task=gsm8k", f"source={gsm}", f"model_name_or_path={small_model}", "thinking=both",
                 "max_new_tokens=3", f"output_dir={tmp_path / 'g'}"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert re.search(r"eval gsm8k: think: \d+\.\d\d% \[\d+\.\d, \d+\.\d\] \(\d/3, cut off \d", out.out), out.out
    assert "item/s" in out.err  # tqdm rate on stderr
    res = json.loads((tmp_path / "g" / "results.json").read_text())
    assert res["schema_version"] == 3 and res["task"] == "gsm8k" and res["modes"]["nothink"]["total"] == 3
    assert "per_category" not in res["modes"]["nothink"]  # GSM8K has no categories
    assert res["config"]["split"] == "test" and res["config"]["instruction"] is None  # the task's own options


# ----------------------------------------------------------------------------- bad input


def _run_main(args):
    from llamafactory_ext.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task=italian"], "unknown task 'italian' (did you mean 'italic'?)"),
        (["thinking=maybe"], "unknown thinking mode 'maybe'"),
        (["template=qwen3_nothink", "thinking=on"], "has no thinking mode"),
        (["template=llama3", "thinking=both"], "has no thinking mode"),
        (["backend=tgi"], "backend must be one of 'hf', 'vllm', got 'tgi'"),
        (["model_name_or_path=/nonexistent/model"], "model_name_or_path: path not found: /nonexistent/model"),
        (["adapter_name_or_path=missing_adapter"], "adapter_name_or_path: path not found: missing_adapter"),
        (["seeds=[1,2]"], "set temperature > 0"),
        (["temperature=0.6", "seeds=[1,1]"], "seeds must be distinct"),
        (["baseline=/nope/results.json"], "baseline: file not found"),
        (["colour=red"], "unknown key 'colour'"),
        (["variant=slow"], "variant must be one of 'fast', 'cot', got 'slow'"),
        (["task=gsm8k", "variant=cot"], "unknown key 'variant'"),  # an ITALIC option is not a GSM8K key
        (["shots=5", "shots_source=/nope/5_shots.jsonl"], "shots=5 needs shots_source=PATH"),
    ],
)
def test_bad_input_clear_errors(tmp_path, small_model, italic_file, overrides, message):
    args = ["eval", f"source={italic_file}", f"model_name_or_path={small_model}", f"output_dir={tmp_path / 'o'}",
            "max_new_tokens=2", "progress=false", *overrides]
    code, err = _run_main(args)
    assert code == 2 and message in err, err
    assert not (tmp_path / "o" / "predictions.jsonl").exists() or (tmp_path / "o" / "predictions.jsonl").stat().st_size == 0


def test_corrupt_predictions_are_named(tmp_path, italic_file):
    pred = tmp_path / "p.jsonl"
    base = ["eval", f"source={italic_file}", f"predictions={pred}", f"output_dir={tmp_path / 'o'}"]
    cases = [
        ('{"id": "0", "mode": "nothink", "output": "B"}\n{"id": "1", "mode": "nothink", "outp\n', f"{pred}: line 2: not a JSON object row"),
        ('{"id": "0", "mode": "nothink"}\n', f"{pred}: line 1: missing field 'output'"),
        ('{"id": "0", "mode": "thinking", "output": "B"}\n', f"{pred}: line 1, field 'mode': unknown mode 'thinking'"),
        ('{"id": "99", "mode": "nothink", "output": "B"}\n', "field 'id': '99' is not an item of this task"),
        ('{"id": "0", "mode": "nothink", "output": "B"}\n{"id": "0", "mode": "nothink", "output": "C"}\n', "line 2: duplicate prediction"),
        ('{"id": "0", "mode": "nothink", "output": 3}\n', "field 'output': must be a string"),
    ]
    for text, message in cases:
        pred.write_text(text, encoding="utf-8")
        code, err = _run_main(base)
        assert code == 2 and message in err, (text, err)


def test_rescore_other_tool_output_with_missing_rows(tmp_path, italic_file):
    """predictions= accepts any tool's {id, mode, output}; items without a row are counted as missing."""
    pred = write_rows(tmp_path / "other.jsonl", [
        {"id": 0, "mode": "think", "output": "<think>\nRoma è la capitale.\n</think>\n\nLa risposta è B"},
        {"id": 1, "mode": "think", "output": "<think>\nforse A"},
        {"id": 2, "mode": "think", "output": "<think>\n...\n</think>\n\nNon saprei."},
    ])
    res = run(rescore_cfg(italic_file, pred, tmp_path / "o"))
    s = res["modes"]["think"]
    assert (s["correct"], s["total"], s["unfinished"], s["unparsed"], s["missing"]) == (1, 3, 1, 1, 2)
    assert s["methods"] == {"answer_line": 1}
    assert any("2 items have no prediction" in w for w in res["warnings"])
    official = run(rescore_cfg(italic_file, pred, tmp_path / "off", extractor="official_first_capital"))
    assert official["modes"]["think"]["correct"] == 0  # the official extractor reads "L" from "La risposta è B"
    # the re-scored rows are written as predictions.jsonl of the output folder
    assert [r["extracted"] for r in rows_of(tmp_path / "o" / "predictions.jsonl")] == ["B", None, None]


def test_a_rescore_does_not_replace_other_predictions_unless_told(tmp_path, italic_file):
    """Re-scored rows are recorded as such: another file re-scored (or a model run) into the same
    folder is refused, naming what differs, until overwrite=true."""
    first = write_rows(tmp_path / "a.jsonl", [{"id": 0, "mode": "nothink", "output": "B"}])
    second = write_rows(tmp_path / "b.jsonl", [{"id": 0, "mode": "nothink", "output": "C"}])
    run(rescore_cfg(italic_file, first, tmp_path / "o"))
    run(rescore_cfg(italic_file, first, tmp_path / "o"))  # the same re-score again is fine
    with pytest.raises(ResumeError, match=r"rescored_from: .*a\.jsonl.* -> .*b\.jsonl.*overwrite=true"):
        run(rescore_cfg(italic_file, second, tmp_path / "o"))
    assert [r["output"] for r in rows_of(tmp_path / "o" / "predictions.jsonl")] == ["B"]
    run(rescore_cfg(italic_file, second, tmp_path / "o", overwrite=True))
    assert [r["output"] for r in rows_of(tmp_path / "o" / "predictions.jsonl")] == ["C"]


def test_a_baseline_on_another_gsm8k_split_is_refused(tmp_path):
    """GSM8K ids are row numbers: under the same folder source, split=train and split=test give
    the same ids for other questions; the Δ would compare different questions."""
    folder = tmp_path / "gsm8k"
    folder.mkdir()
    for split in ("train", "test"):
        write_rows(folder / f"{split}.jsonl", [{"question": f"{split} {i} + {i}?", "answer": f"#### {2 * i}"} for i in range(3)])
    pred = write_rows(tmp_path / "p.jsonl", [{"id": i, "mode": "nothink", "output": f"{2 * i}"} for i in range(3)])
    run(rescore_cfg(folder, pred, tmp_path / "test", task="gsm8k", split="test"))
    with pytest.raises(UserError, match=r"cannot be compared: it has split 'test' \(this run: 'train'\)"):
        run(rescore_cfg(folder, pred, tmp_path / "train", task="gsm8k", split="train", baseline=str(tmp_path / "test")))
    run(rescore_cfg(folder, pred, tmp_path / "test2", task="gsm8k", split="test", baseline=str(tmp_path / "test")))


def test_multit_heldout_rescoring(tmp_path):
    """task=multit reads Mult-IT-shaped files (letter or index answers) through data.multit."""
    from importlib import resources

    from llamafactory_ext.data.multit import load_multit

    quiz = resources.files("llamafactory_ext") / "resources" / "samples" / "multit_quiz.json"
    items = load_multit(str(quiz))
    pred = write_rows(tmp_path / "p.jsonl", [{"id": it.id, "mode": "nothink", "output": f"Risposta: {it.answer}"} for it in items])
    res = run(rescore_cfg(quiz, pred, tmp_path / "o", task="multit"))
    assert res["modes"]["nothink"]["accuracy"] == 1.0 and res["modes"]["nothink"]["total"] == len(items)
    with pytest.raises(UserError, match="task=multit needs source"):
        run(make_cfg(task="multit", predictions=str(pred), output_dir=str(tmp_path / "o2"), progress=False))


def test_multit_prepared_val_split_round_trip(tmp_path):
    """The held-out split written by `prepare multit_mixed val_size=...` (sharegpt rows, thinking and
    plain answers) is read back: re-rendering each item gives the stored user turn exactly."""
    from llamafactory_ext.data.samples import prepare_samples
    from llamafactory_ext.eval.tasks import get_task

    ds = prepare_samples(tmp_path / "ds", names=["multit_mixed"], val_size=0.3)
    val = next((ds / "data").glob("multit_mixed_val.jsonl"))
    stored = [json.loads(x) for x in val.read_text(encoding="utf-8").splitlines()]
    task = get_task("multit", make_cfg(task="multit", source=str(val)))
    items = task.load()
    assert len(items) == len(stored) > 0
    for item, row in zip(items, stored):
        user = next(m["content"] for m in row["messages"] if m["role"] == "user")
        assert task.messages(item)[-1]["content"] == user
        assert item.answer in item.letters
    pred = write_rows(tmp_path / "p.jsonl", [{"id": it.id, "mode": "think", "output": f"<think>\nx\n</think>\n\n{it.answer}"}
                                             for it in items])
    res = run(rescore_cfg(val, pred, tmp_path / "o", task="multit"))
    assert res["modes"]["think"]["accuracy"] == 1.0
