"""Runner on the tiny Qwen3 (CPU, in-process): both modes with and without a LoRA adapter
trained in this session, resume after a kill, seeds, baseline tables, bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from llamafactory_ext.config import UserError
from llamafactory_ext.eval.runner import EvalConfig, read_predictions, run
from tests.conftest import output_tail, run_cmd
from tests.eval.conftest import write_italic_sample

TIMING = ("gen_time_s",)


def _cfg(tiny_model, italic_file, out, **kw):
    base = {"task": "italic", "source": str(italic_file), "model_name_or_path": str(tiny_model), "output_dir": str(out),
            "max_new_tokens": 4, "batch_size": 3, "progress": False}
    base.update(kw)
    return EvalConfig(**base)


def _rows(path):
    rows = read_predictions(path)
    return sorted(({k: v for k, v in r.items() if k not in TIMING + ("_line",)} for r in rows),
                  key=lambda r: (r["mode"], int(r["id"])))


def _stable(results):
    """results.json without the fields that measure time."""
    out = json.loads(json.dumps(results))
    for s in out["modes"].values():
        s.pop("wall_time_s")
    out.pop("created_utc")
    return out


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, tiny_model):
    """One uninterrupted base-model run, both modes (shared by the tests below)."""
    out = tmp_path_factory.mktemp("base-run")
    italic = write_italic_sample(out / "italic.jsonl")
    results = run(_cfg(tiny_model, italic, out / "base", thinking="both"))
    return {"dir": out / "base", "italic": italic, "results": results}


def test_both_modes_base_and_adapter(tmp_path, tiny_model, tiny_adapter, base_run):
    italic_file = base_run["italic"]
    base = base_run["results"]
    tuned = run(_cfg(tiny_model, italic_file, tmp_path / "tuned", adapter_name_or_path=str(tiny_adapter),
                     baseline=str(base_run["dir"] / "results.json")))
    for res in (base, tuned):
        assert set(res["modes"]) == {"think", "nothink"}
        for s in res["modes"].values():
            assert s["total"] == 5 and s["missing"] == 0
            assert s["correct"] + s["unfinished"] + s["unparsed"] <= 5
            assert 0 < s["mean_output_tokens"] <= 4
    rows = _rows(tmp_path / "tuned" / "predictions.jsonl")
    assert len(rows) == 10 and {(r["id"], r["mode"]) for r in rows} == {(str(i), m) for i in range(5) for m in ("think", "nothink")}
    for r in rows:
        assert {"id", "mode", "output", "extracted", "method", "gold", "correct", "num_tokens", "finished"} <= set(r)
        if r["mode"] == "think" and not r["closed"]:
            assert r["status"] == "unfinished" and r["correct"] is False
    # the adapter is applied: the engine's merged weights differ from the base model's
    import torch

    from llamafactory_ext.eval.engine import load_engine

    plain = dict(load_engine("hf", str(tiny_model)).model.named_parameters())
    merged = dict(load_engine("hf", str(tiny_model), str(tiny_adapter)).model.named_parameters())
    assert plain.keys() == merged.keys()
    assert any(not torch.equal(plain[k], merged[k]) for k in plain if "proj" in k)
    assert tuned["model"]["adapter_name_or_path"] == str(tiny_adapter)
    md = (tmp_path / "tuned" / "results.md").read_text()
    assert md.count("| Category | Baseline | Model | Δ |") == 2
    import re

    assert re.search(r"\| \*\*Total\*\* \| \*\*\d+\.\d\d\*\* \| \*\*\d+\.\d\d\*\* \| \*\*[+-]\d+\.\d\d\*\* \|", md), md
    assert (tmp_path / "tuned" / "italic_think.png").stat().st_size > 1000
    assert (tmp_path / "tuned" / "italic_nothink.png").stat().st_size > 1000


def test_resume_after_kill_gives_identical_results(tmp_path, tiny_model, base_run):
    italic_file, full = base_run["italic"], base_run["results"]
    # a killed run: 3 finished rows, then a half-written line
    killed = tmp_path / "killed"
    shutil.copytree(base_run["dir"], killed)
    lines = (killed / "predictions.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (killed / "predictions.jsonl").write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2], encoding="utf-8")
    for name in ("results.json", "results.md"):
        (killed / name).unlink()
    resumed = run(_cfg(tiny_model, italic_file, killed, thinking="both"))
    assert _stable(resumed) == _stable(full) | {"config": _stable(resumed)["config"]}
    assert _rows(killed / "predictions.jsonl") == _rows(base_run["dir"] / "predictions.jsonl")
    assert len(read_predictions(killed / "predictions.jsonl")) == 10  # no duplicate, no missing row
    # a second re-run generates nothing and changes nothing
    before = (killed / "predictions.jsonl").read_bytes()
    again = run(_cfg(tiny_model, italic_file, killed, thinking="both"))
    assert (killed / "predictions.jsonl").read_bytes() == before
    assert _stable(again)["modes"] == _stable(full)["modes"]
    # another config in the same output_dir is refused
    with pytest.raises(UserError, match="different config"):
        run(_cfg(tiny_model, italic_file, killed, thinking="both", max_new_tokens=7))


def test_seeds_mean_and_std(tmp_path, tiny_model, italic_file):
    res = run(_cfg(tiny_model, italic_file, tmp_path / "s", thinking="off", temperature=0.6, top_p=0.95,
                   seeds=[42, 123, 456], limit=2))
    s = res["modes"]["nothink"]
    assert s["seeds"] == [42, 123, 456] and set(s["per_seed"]) == {"42", "123", "456"}
    assert s["total"] == 6 and "accuracy_std" in s
    rows = read_predictions(tmp_path / "s" / "predictions.jsonl")
    assert sorted({r["seed"] for r in rows}) == [42, 123, 456] and len(rows) == 6
    assert "±" in (tmp_path / "s" / "results.md").read_text()


def test_from_recipe_inherits_template_modes_and_adapter(tmp_path, tiny_model, tiny_adapter, tiny_recipe, italic_file):
    res = run(EvalConfig(task="italic", source=str(italic_file), from_recipe=str(tiny_recipe["recipe"]), limit=2,
                         max_new_tokens=4, output_dir=str(tmp_path / "r"), progress=False))
    assert res["model"]["model_name_or_path"] == str(tiny_model)
    assert res["model"]["adapter_name_or_path"] == str(tiny_adapter)
    assert res["model"]["template"] == "qwen3"
    assert set(res["modes"]) == {"think", "nothink"}  # enable_thinking: null trains both
    # a different template than the one the adapter was trained with is reported
    recorded = tmp_path / "adapter_copy"
    shutil.copytree(tiny_adapter, recorded)
    (recorded / "training_args.yaml").write_text("template: qwen3\nfinetuning_type: lora\n")
    res = run(_cfg(tiny_model, italic_file, tmp_path / "w", adapter_name_or_path=str(recorded), template="qwen3_nothink",
                   limit=1, max_new_tokens=2))
    assert any("trained with template 'qwen3'" in w for w in res["warnings"])
    assert "trained with template" in (tmp_path / "w" / "results.md").read_text()
    assert set(res["modes"]) == {"nothink"}  # qwen3_nothink has no thinking mode


def test_cli_end_to_end_gsm8k_and_compare(tmp_path, tiny_model, tiny_adapter, ext_cli):
    gsm = tmp_path / "gsm8k.jsonl"
    gsm.write_text("".join(json.dumps({"question": f"Quanto fa {i} + {i}?", "answer": f"{i}+{i}=<<{i}+{i}={2*i}>>{2*i}\n#### {2*i}"}) + "\n"
                           for i in range(3)), encoding="utf-8")
    proc = run_cmd([*ext_cli, "eval", "task=gsm8k", f"source={gsm}", f"model_name_or_path={tiny_model}",
                    f"adapter_name_or_path={tiny_adapter}", "thinking=both", "max_new_tokens=4", f"output_dir={tmp_path / 'g'}"])
    assert proc.returncode == 0, output_tail(proc)
    assert "eval gsm8k: think:" in proc.stdout and "item/s" in proc.stderr  # tqdm rate on stderr
    res = json.loads((tmp_path / "g" / "results.json").read_text())
    assert res["schema_version"] == 1 and res["modes"]["nothink"]["total"] == 3

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Parlami di Roma.\nChe cos'è la fotosintesi?\n", encoding="utf-8")
    run(EvalConfig(task="compare", prompts_file=str(prompts), model_name_or_path=str(tiny_model),
                   adapter_name_or_path=str(tiny_adapter), thinking="off", max_new_tokens=4, output_dir=str(tmp_path / "c")))
    md = (tmp_path / "c" / "compare.md").read_text()
    assert "temperature 0.6, top_p 0.95" in md and md.count("| Base | Tuned |") == 2
    rows = [json.loads(x) for x in (tmp_path / "c" / "compare.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["Parlami di Roma.", "Che cos'è la fotosintesi?"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task=italian"], "unknown task 'italian' (did you mean 'italic'?)"),
        (["thinking=maybe"], "unknown thinking mode 'maybe'"),
        (["template=qwen3_nothink", "thinking=on"], "has no thinking mode"),
        (["template=llama3", "thinking=both"], "has no thinking mode"),
        (["backend=tgi"], "unknown backend 'tgi'"),
        (["model_name_or_path=/nonexistent/model"], "model_name_or_path: path not found: /nonexistent/model"),
        (["adapter_name_or_path=missing_adapter"], "adapter_name_or_path: path not found: missing_adapter"),
        (["seeds=[1,2]"], "set temperature > 0"),
        (["baseline=/nope/results.json"], "baseline: file not found"),
        (["colour=red"], "unknown key 'colour'"),
    ],
)
def test_bad_input_clear_errors(tmp_path, tiny_model, italic_file, ext_cli, overrides, message):
    from llamafactory_ext.cli import main

    args = ["eval", f"source={italic_file}", f"model_name_or_path={tiny_model}", f"output_dir={tmp_path}", *overrides]
    proc_err = _run_main(main, args)
    assert proc_err[0] == 2 and message in proc_err[1]


def _run_main(main, args):
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue()


def test_corrupt_predictions_are_named(tmp_path, italic_file):
    from llamafactory_ext.cli import main

    pred = tmp_path / "p.jsonl"
    pred.write_text('{"id": "0", "mode": "nothink", "output": "B"}\n{"id": "1", "mode": "nothink", "outp\n', encoding="utf-8")
    code, err = _run_main(main, ["eval", f"source={italic_file}", f"predictions={pred}", f"output_dir={tmp_path / 'o'}"])
    assert code == 2 and f"{pred}:2: corrupt predictions line" in err
    pred.write_text('{"id": "0", "mode": "nothink"}\n', encoding="utf-8")
    code, err = _run_main(main, ["eval", f"source={italic_file}", f"predictions={pred}", f"output_dir={tmp_path / 'o'}"])
    assert code == 2 and f"{pred}:1: missing field 'output'" in err
    pred.write_text('{"id": "0", "mode": "thinking", "output": "B"}\n', encoding="utf-8")
    code, err = _run_main(main, ["eval", f"source={italic_file}", f"predictions={pred}", f"output_dir={tmp_path / 'o'}"])
    assert code == 2 and "unknown mode 'thinking'" in err
    pred.write_text('{"id": "99", "mode": "nothink", "output": "B"}\n', encoding="utf-8")
    code, err = _run_main(main, ["eval", f"source={italic_file}", f"predictions={pred}", f"output_dir={tmp_path / 'o'}"])
    assert code == 2 and "'99' is not an item of task italic" in err
    pred.write_text('{"id": "0", "mode": "nothink", "output": "B"}\n{"id": "0", "mode": "nothink", "output": "C"}\n', encoding="utf-8")
    code, err = _run_main(main, ["eval", f"source={italic_file}", f"predictions={pred}", f"output_dir={tmp_path / 'o'}"])
    assert code == 2 and "duplicate prediction" in err


def test_rescore_other_tool_output_with_missing_rows(tmp_path, italic_file):
    """predictions= accepts any tool's {id, mode, output}; items without a row are counted as missing."""
    pred = tmp_path / "other.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": 0, "mode": "think", "output": "<think>\nRoma è la capitale.\n</think>\n\nLa risposta è B"},
        {"id": 1, "mode": "think", "output": "<think>\nforse A"},
        {"id": 2, "mode": "think", "output": "<think>\n...\n</think>\n\nNon saprei."},
    ]), encoding="utf-8")
    res = run(EvalConfig(task="italic", source=str(italic_file), predictions=str(pred), output_dir=str(tmp_path / "o"),
                         progress=False))
    s = res["modes"]["think"]
    assert (s["correct"], s["total"], s["unfinished"], s["unparsed"], s["missing"]) == (1, 3, 1, 1, 2)
    assert s["methods"] == {"answer_line": 1}
    assert any("2 items have no prediction" in w for w in res["warnings"])
    official = run(EvalConfig(task="italic", source=str(italic_file), predictions=str(pred), output_dir=str(tmp_path / "off"),
                              extractor="official_first_capital", progress=False))
    assert official["modes"]["think"]["correct"] == 0  # the official extractor reads "L" from "La risposta è B"


def test_multit_heldout_rescoring(tmp_path):
    """task=multit reads Mult-IT-shaped files (letter or index answers) through data.multit."""
    from importlib import resources

    from llamafactory_ext.data.multit import load_multit

    quiz = resources.files("llamafactory_ext") / "resources" / "samples" / "multit_quiz.json"
    items = load_multit(str(quiz))
    pred = tmp_path / "p.jsonl"
    pred.write_text("".join(json.dumps({"id": it.id, "mode": "nothink", "output": f"Risposta: {it.answer}"}) + "\n"
                            for it in items), encoding="utf-8")
    res = run(EvalConfig(task="multit", source=str(quiz), predictions=str(pred), output_dir=str(tmp_path / "o"),
                         progress=False))
    assert res["modes"]["nothink"]["accuracy"] == 1.0 and res["modes"]["nothink"]["total"] == len(items)
    with pytest.raises(UserError, match="task=multit needs source"):
        run(EvalConfig(task="multit", predictions=str(pred), output_dir=str(tmp_path / "o"), progress=False))


def test_multit_prepared_val_split_round_trip(tmp_path):
    """The held-out split written by `prepare multit_mixed val_size=...` (sharegpt rows, thinking and
    plain answers) is read back: re-rendering each item gives the stored user turn exactly."""
    from llamafactory_ext.data.samples import prepare_samples
    from llamafactory_ext.eval.tasks import get_task

    ds = prepare_samples(tmp_path / "ds", names=["multit_mixed"], val_size=0.3)
    val = next((ds / "data").glob("multit_mixed_val.jsonl"))
    stored = [json.loads(x) for x in val.read_text(encoding="utf-8").splitlines()]
    task = get_task("multit", EvalConfig(task="multit", source=str(val)))
    items = task.load()
    assert len(items) == len(stored) > 0
    for item, row in zip(items, stored):
        user = next(m["content"] for m in row["messages"] if m["role"] == "user")
        assert task.messages(item)[-1]["content"] == user
        assert item.answer in item.letters
    pred = tmp_path / "p.jsonl"
    pred.write_text("".join(json.dumps({"id": it.id, "mode": "think", "output": f"<think>\nx\n</think>\n\n{it.answer}"}) + "\n"
                            for it in items), encoding="utf-8")
    res = run(EvalConfig(task="multit", source=str(val), predictions=str(pred), output_dir=str(tmp_path / "o"), progress=False))
    assert res["modes"]["think"]["accuracy"] == 1.0
