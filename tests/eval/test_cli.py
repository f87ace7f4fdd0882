"""``llamafactory-ext eval`` as a real command: bad input is one line on stderr with exit status 2
and no traceback; a value typed on the command line is taken literally; two runs into one
output_dir are kept apart by the folder lock.

All command lines start at once (module fixture), each in its own process: those that fail while
reading the config as ``python -m llamafactory_ext.cli``, the others (each needs torch,
transformers and LLaMA-Factory's templates first) forked from one process that paid those
imports once (``common.run_forked``), so the two runs of the lock test start at the same instant."""

from __future__ import annotations

import json
import os

import pytest

from llamafactory_ext.eval.runner import run
from tests.eval.common import (
    Launched,
    italic_rows,
    rescore_cfg,
    rows_of,
    run_forked,
    write_rows,
)
from tests.helpers import EXT, one_line_error, output_tail, write_italic_sample

# Errors found while the command line is read: run as real `python -m llamafactory_ext.cli` processes.
CONFIG_ERRORS = ("max_new_tokens_zero", "unknown_key", "unknown_task_key", "unknown_task")
LOCK_RUNS = ("lock_a", "lock_b")
# name -> (overrides, fragments the one error line must hold); {names} are filled in by the fixture
ERRORS: dict[str, tuple[list[str], list[str]]] = {
    "unknown_hub_model": (["model_name_or_path=nobody-here/no-such-model"],
                          ["cannot load the tokenizer of 'nobody-here/no-such-model'", "HF_HUB_OFFLINE", "Check the Hub id"]),
    "cuda_without_gpu": (["device=cuda"], ["device=cuda but no CUDA GPU is visible", "use device=cpu"]),
    "adapter_only_checkpoints": (["adapter_name_or_path={checkpoints}"],
                                 ["adapter_name_or_path: {checkpoints} holds no adapter_config.json, only 2 checkpoint folder(s)",
                                  "adapter_name_or_path={checkpoints}/checkpoint-10"]),
    "model_folder_without_model": (["model_name_or_path={empty}"], ["model_name_or_path: {empty} holds no config.json: not a model folder"]),
    "model_is_a_file": (["model_name_or_path={weights}"], ["model_name_or_path: {weights} is a file", "holds the model (config.json)"]),
    "output_is_a_file": (["output_dir={existing}"], ["output_dir {existing} is an existing file, not a folder"]),
    "output_cannot_be_created": (["output_dir={existing}/sub"], ["cannot create output_dir {existing}/sub", "Not a directory"]),
    "max_new_tokens_zero": (["max_new_tokens=0"], ["max_new_tokens must be >= 1, got 0"]),
    "unknown_key": (["max_new_token=8"], ["unknown key 'max_new_token' (did you mean 'max_new_tokens'?)"]),
    "unknown_task_key": (["varaint=cot"], ["unknown key 'varaint' (did you mean 'variant'?)"]),
    "unknown_task": (["task=italian"], ["unknown task 'italian' (did you mean 'italic'?)"]),
    "baseline_of_another_task": (["predictions={predictions}", "baseline={gsm_baseline}"],
                                 ["baseline {gsm_baseline} cannot be compared: it has task 'gsm8k' (this run: 'italic')"]),
}


@pytest.fixture(scope="module")
def launched(tmp_path_factory, small_model):
    """Every error case, plus one run with ``system=${HOME}``, started at once as real subprocesses."""
    root = tmp_path_factory.mktemp("cli")
    italic = write_italic_sample(root / "italic.jsonl")
    names = {"checkpoints": root / "adapter", "empty": root / "empty-model", "weights": root / "model.safetensors",
             "existing": root / "a-file", "predictions": root / "p.jsonl", "gsm_baseline": root / "gsm" / "out"}
    for step in (2, 10):
        (names["checkpoints"] / f"checkpoint-{step}").mkdir(parents=True)
        (names["checkpoints"] / f"checkpoint-{step}" / "adapter_config.json").write_text("{}")
    names["empty"].mkdir()
    names["weights"].write_bytes(b"\0" * 16)
    names["existing"].write_text("not a folder\n")
    write_rows(names["predictions"], [{"id": "0", "mode": "nothink", "output": "B"}])
    (root / "gsm").mkdir()
    gsm = write_rows(root / "gsm" / "gsm8k.jsonl", [{"question": "1 + 1?", "answer": "1+1=2\n#### 2"}])
    run(rescore_cfg(gsm, write_rows(root / "gsm" / "p.jsonl", [{"id": "0", "mode": "nothink", "output": "2"}]),
                    names["gsm_baseline"], task="gsm8k"))

    common = ["eval", f"source={italic}", f"model_name_or_path={small_model}", "thinking=off", "limit=1",
              "max_new_tokens=2", "progress=false"]
    argv = {name: [*common, f"output_dir={root / 'out' / name}", *(o.format(**names) for o in overrides)]
            for name, (overrides, _) in ERRORS.items()}
    argv["literal"] = [*common, f"output_dir={root / 'out' / 'literal'}", "system=${HOME}"]
    # two evaluations into one output_dir, enough work that the first still holds the lock
    source = write_rows(root / "italic40.jsonl", italic_rows(40))
    for name in LOCK_RUNS:
        argv[name] = ["eval", f"source={source}", f"model_name_or_path={small_model}", "thinking=both", "max_new_tokens=8",
                      "batch_size=8", "progress=false", f"output_dir={root / 'shared-out'}"]
    cold = {name: Launched([*EXT, *argv.pop(name)], root / "logs", name) for name in CONFIG_ERRORS}
    results = run_forked(argv, root / "forked")
    results.update({name: p.result() for name, p in cold.items()})
    return {"results": results, "names": names, "root": root}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_input_is_one_line_exit_2(launched, name):
    proc = launched["results"][name]
    line = one_line_error(proc)
    assert line.startswith("llamafactory-ext eval: error: "), line
    for fragment in ERRORS[name][1]:
        assert fragment.format(**launched["names"]) in line, output_tail(proc)


def test_dollar_brace_value_is_taken_literally(launched, small_model, italic_file):
    proc = launched["results"]["literal"]
    assert proc.returncode == 0, output_tail(proc)
    assert "eval italic: nothink:" in proc.stdout
    results = json.loads((launched["root"] / "out" / "literal" / "results.json").read_text())
    assert results["config"]["system"] == "${HOME}" and os.environ.get("HOME") != "${HOME}"
    # the prompt holds the literal text, exactly as the run renders it
    from transformers import AutoTokenizer

    from llamafactory_ext.config import from_argv
    from llamafactory_ext.eval.options import config_for
    from llamafactory_ext.eval.resolve import resolve
    from llamafactory_ext.prompts import PromptEncoder

    r = resolve(from_argv(config_for, [f"source={italic_file}", f"model_name_or_path={small_model}", "system=${HOME}", "thinking=off"]))
    assert r.system == "${HOME}"
    encoder = PromptEncoder(AutoTokenizer.from_pretrained(str(small_model)), r.template, "nothink")
    prompt = encoder.render(r.task.messages(r.task.load()[0]), r.system)
    assert prompt.startswith("<|im_start|>system\n${HOME}<|im_end|>\n"), prompt


def test_two_runs_into_one_output_dir(launched):
    """Started at once: one fails fast naming the folder, the other finishes; no duplicate rows."""
    runs = [launched["results"][name] for name in LOCK_RUNS]
    out = launched["root"] / "shared-out"
    assert sorted(p.returncode for p in runs) == [0, 2], "\n".join(output_tail(p) for p in runs)
    loser = next(p for p in runs if p.returncode == 2)
    winner = next(p for p in runs if p.returncode == 0)
    line = one_line_error(loser)
    assert f"output_dir {out} is in use by pid {winner.pid}" in line, line
    assert loser.ended < winner.ended, "the second run must fail at once, not wait for the lock"
    assert "eval italic: think:" in winner.stdout
    rows = rows_of(out / "predictions.jsonl")
    keys = [(r["id"], r["mode"], r["seed"]) for r in rows]
    assert len(keys) == len(set(keys)) == 80
    assert json.loads((out / "results.json").read_text())["modes"]["think"]["total"] == 40
    assert not list(out.glob(".*.tmp-*"))  # no temp file left behind
