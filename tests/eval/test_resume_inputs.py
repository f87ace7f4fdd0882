"""An eval resumes only from the same inputs (issue 21, "Eval" and "other ways to change an input"):
the settings that guard predictions.jsonl carry the content identity of the source (each file of a
source folder), the model folder (weights and tokenizer files) and the adapter. One real run of the
small tiny Qwen3 on a source FOLDER; then each input is changed the way a user would change it, and
the resume is refused in one line naming the input and the file that changed (no model is loaded
for a refusal); restored, it resumes. Plus the eval edge cases of the issue: ``finished: "false"``
and other mistyped fields in re-scored rows, ``system=``, ``temperature=inf``, a Mult-IT ``mix=all``
split, and ``thinking=off`` into a folder that held both modes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from llamafactory_ext.io import ResumeError, read_jsonl
from tests.eval.common import eval_cfg, rescore_cfg, stable, write_rows
from tests.helpers import ITALIC_SAMPLE, write_italic_sample, write_jsonl


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, small_model) -> dict:
    """A source folder (italic.jsonl + LICENSE), a copy of the small model, one real run (nothink,
    2 items, 2 new tokens). Tests that change an input restore it before they end."""
    from llamafactory_ext.eval.runner import run

    root = tmp_path_factory.mktemp("inputs")
    src = root / "src"
    src.mkdir()
    write_italic_sample(src / "italic.jsonl")
    (src / "LICENSE").write_text("MIT\n")
    model = root / "model"
    shutil.copytree(small_model, model)
    cfg = {"thinking": "off", "limit": 2, "max_new_tokens": 2}
    results = run(eval_cfg(model, src, root / "out", **cfg))
    return {"root": root, "src": src, "model": model, "out": root / "out", "cfg": cfg, "results": results}


def _resume(ctx: dict, **extra):
    from llamafactory_ext.eval.runner import run

    return run(eval_cfg(ctx["model"], ctx["src"], ctx["out"], **{**ctx["cfg"], **extra}))


def _refused(ctx: dict) -> str:
    before = (ctx["out"] / "predictions.jsonl").read_bytes()
    with pytest.raises(ResumeError) as err:
        _resume(ctx)
    assert (ctx["out"] / "predictions.jsonl").read_bytes() == before  # nothing generated, nothing discarded
    message = str(err.value)
    assert "\n" not in message and message.endswith("pass overwrite=true to start over"), message
    return message


def test_provenance_json_is_written_and_embedded_in_results(folder_run):
    import transformers

    out, src, model = folder_run["out"], folder_run["src"], folder_run["model"]
    recorded = json.loads((out / "provenance.json").read_text())
    assert folder_run["results"]["provenance"] == recorded
    files = recorded["inputs"]["source"]["files"]
    assert set(files) == {"italic.jsonl", "LICENSE"}  # every file of the source folder
    assert files["italic.jsonl"]["digest"] == sha(src / "italic.jsonl")
    weights = recorded["inputs"]["model"]["files"]
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"):
        assert weights[name]["digest"] == sha(model / name), name  # a small weight file is hashed whole
    assert recorded["versions"]["transformers"] == transformers.__version__
    assert recorded["configs"]["eval"]["max_new_tokens"] == 2 and recorded["template"] == "qwen3"
    settings = json.loads((out / "predictions.jsonl.settings.json").read_text())
    assert settings["inputs"] == recorded["inputs"] and settings["versions"] == recorded["versions"]


# Each change: (what it does to the folders, restore) and the words the refusal must hold.
def _replace_source(ctx):
    path = ctx["src"] / "italic.jsonl"
    old = path.read_bytes()
    write_jsonl(path, [{**ITALIC_SAMPLE[1], "question": "Un'altra domanda?"}, *ITALIC_SAMPLE[1:]])
    return lambda: path.write_bytes(old)


def _edit_in_place_same_size_and_mtime(ctx):
    path = ctx["src"] / "italic.jsonl"
    st, old = path.stat(), path.read_bytes()
    path.write_bytes(old.replace(b"Roma", b"Rome"))  # the gold option's text changes, not the size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    return lambda: path.write_bytes(old)


def _symlink_to_another_file(ctx):
    path = ctx["src"] / "italic.jsonl"
    other = write_jsonl(ctx["root"] / "other.jsonl", [{**r, "answer": "A"} for r in ITALIC_SAMPLE])
    path.rename(path.with_name("italic.bak"))
    path.symlink_to(other)

    def restore():
        path.unlink()
        path.with_name("italic.bak").rename(path)
    return restore


def _perturbed_weights(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    save_file({k: v + 0.5 for k, v in tensors.items()}, folder / "model.safetensors", metadata={"format": "pt"})


def _retrained_into_the_same_folder(ctx):
    path = ctx["model"] / "model.safetensors"
    old = path.read_bytes()
    _perturbed_weights(ctx["model"])
    assert path.stat().st_size == len(old)
    return lambda: path.write_bytes(old)


def _tokenizer_changed_weights_kept(ctx):
    path = ctx["model"] / "tokenizer_config.json"
    old = path.read_bytes()
    path.write_text(json.dumps({**json.loads(old), "model_max_length": 64}))
    return lambda: path.write_bytes(old)


def _model_folder_swapped(ctx):
    model = ctx["model"]
    other = model.with_name("another-model")
    shutil.copytree(model, other)
    _perturbed_weights(other)
    model.rename(model.with_name("model.orig"))
    other.rename(model)

    def restore():
        shutil.rmtree(model)
        model.with_name("model.orig").rename(model)
    return restore


CHANGES = {
    "source_file_replaced": (_replace_source, ["inputs.source: content changed (sha", "italic.jsonl size"]),
    "edited_in_place_same_size_and_mtime": (_edit_in_place_same_size_and_mtime, ["inputs.source: content changed", "italic.jsonl content changed"]),
    "replaced_by_a_symlink": (_symlink_to_another_file, ["inputs.source: content changed", "italic.jsonl"]),
    "model_retrained_into_the_same_folder": (_retrained_into_the_same_folder, ["inputs.model: content changed", "model.safetensors content changed"]),
    "tokenizer_file_changed_weights_kept": (_tokenizer_changed_weights_kept, ["inputs.model: content changed", "tokenizer_config.json size"]),
    "model_folder_swapped_for_another_model": (_model_folder_swapped, ["inputs.model: content changed", "model.safetensors content changed"]),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_changed_input_is_refused_naming_it_and_resumes_once_restored(folder_run, monkeypatch, change):
    def no_engine(*a, **k):
        raise AssertionError("neither a refusal nor a complete resume loads a model")

    monkeypatch.setattr("llamafactory_ext.eval.engine.load_engine", no_engine)
    make, words = CHANGES[change]
    restore = make(folder_run)
    try:
        message = _refused(folder_run)
    finally:
        restore()
    assert message.startswith(f"predictions in {folder_run['out']} were made with other settings (")
    for word in words:
        assert word in message, message
    assert "inputs.adapter" not in message and "versions" not in message
    resumed = _resume(folder_run)  # the same contents again: resumed, nothing generated
    assert stable(resumed)["modes"] == stable(folder_run["results"])["modes"]


def test_overwrite_reruns_on_the_new_contents(folder_run, tmp_path):
    from llamafactory_ext.eval.runner import run

    out = shutil.copytree(folder_run["out"], tmp_path / "out")
    restore = _replace_source(folder_run)
    try:
        res = run(eval_cfg(folder_run["model"], folder_run["src"], out, **folder_run["cfg"], overwrite=True))
        new_sha = sha(folder_run["src"] / "italic.jsonl")
    finally:
        restore()
    recorded = json.loads((out / "provenance.json").read_text())
    assert recorded["inputs"]["source"]["files"]["italic.jsonl"]["digest"] == new_sha != sha(folder_run["src"] / "italic.jsonl")
    assert res["provenance"] == recorded
    rows = read_jsonl(out / "predictions.jsonl")
    assert [r["gold"] for r in sorted(rows, key=lambda r: r["id"])] == ["C", "C"]  # the new first question's gold


def test_a_changed_adapter_config_is_refused(small_model, small_adapter, italic_file, tmp_path, monkeypatch):
    from llamafactory_ext.eval.runner import run

    adapter = shutil.copytree(small_adapter, tmp_path / "adapter")
    cfg = {"adapter_name_or_path": str(adapter), "thinking": "off", "limit": 1, "max_new_tokens": 1}
    first = run(eval_cfg(small_model, italic_file, tmp_path / "o", **cfg))
    # the config is part of the adapter's identity, read as PEFT reads it (its module sets in any order)
    ident = first["provenance"]["inputs"]["adapter"]["files"]["adapter_config.json"]
    assert ident["canonical"] == "json" and ident["size"] == (adapter / "adapter_config.json").stat().st_size
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": 2 * config["lora_alpha"]}))
    monkeypatch.setattr("llamafactory_ext.eval.engine.load_engine", lambda *a, **k: pytest.fail("a refusal loads no model"))
    with pytest.raises(ResumeError, match=r"inputs\.adapter: content changed \(sha \w+… -> \w+…; adapter_config\.json "):
        run(eval_cfg(small_model, italic_file, tmp_path / "o", **cfg))


# ----------------------------------------------------------------------------- edge cases


def _main(args: list[str]) -> tuple[int, str]:
    from llamafactory_ext.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue()


@pytest.mark.parametrize("field, value, wanted", [
    ("finished", "false", "true or false"), ("finished", 0, "true or false"), ("gen_time_s", "abc", "a number"),
    ("num_tokens", "5", "a whole number"), ("num_tokens", True, "a whole number"), ("num_tokens", 2.5, "a whole number"),
    ("prompt_tokens", [3], "a whole number"), ("seed", "42", "a whole number or null"),
])
def test_mistyped_fields_of_rescored_rows_are_one_line(tmp_path, italic_file, field, value, wanted):
    """``finished: "false"`` used to score a cut-off output as right; ``gen_time_s: "abc"`` was a traceback."""
    good = {"id": 0, "mode": "nothink", "output": "B", "finished": False, "num_tokens": 3, "gen_time_s": 0.5}
    pred = write_rows(tmp_path / "p.jsonl", [good, {**good, "id": 1, field: value}])
    code, err = _main(["eval", f"source={italic_file}", f"predictions={pred}", f"output_dir={tmp_path / 'o'}", "progress=false"])
    assert code == 2, err
    assert err.strip() == f"llamafactory-ext eval: error: {pred}: line 2, field {field!r}: must be {wanted}, got {value!r}", err
    assert not (tmp_path / "o" / "results.json").exists()


def test_a_boolean_false_finished_is_still_cut_off(tmp_path, italic_file):
    from llamafactory_ext.eval.runner import run

    pred = write_rows(tmp_path / "p.jsonl", [{"id": 0, "mode": "nothink", "output": "B", "finished": False}])
    s = run(rescore_cfg(italic_file, pred, tmp_path / "o"))["modes"]["nothink"]
    assert (s["correct"], s["cut_off"]) == (0, 1)  # "B" is the gold letter, but the output was cut off


def test_system_empty_means_no_system_prompt(small_model, italic_file, base_run, tmp_path):
    from transformers import AutoTokenizer

    from llamafactory_ext.config import from_argv
    from llamafactory_ext.eval.options import config_for
    from llamafactory_ext.eval.resolve import resolve, settings
    from llamafactory_ext.eval.runner import run
    from llamafactory_ext.prompts import PromptEncoder

    common = [f"source={italic_file}", f"model_name_or_path={small_model}", "device=cpu"]
    given = {"(not given)": [], "system=": ["system="], "system=''": ["system=''"], "system=null": ["system=null"]}
    runs = {name: resolve(from_argv(config_for, [*common, *extra])) for name, extra in given.items()}
    assert runs["(not given)"].system == "Sei un assistente utile."  # the task's (ITALIC's published protocol)
    assert all(r.system is None for name, r in runs.items() if name != "(not given)")
    tok = AutoTokenizer.from_pretrained(str(small_model))
    enc = PromptEncoder(tok, "qwen3", "nothink")
    user = [{"role": "user", "content": "Ciao?"}]
    assert "<|im_start|>system\nSei un assistente utile.<|im_end|>" in enc.render(user, runs["(not given)"].system)
    assert "<|im_start|>system" not in enc.render(user, runs["system="].system)
    assert settings(runs["system="])["system"] is None != settings(runs["(not given)"])["system"]
    # a folder made with the default prompt is not resumed without one
    out = shutil.copytree(base_run["dir"], tmp_path / "o")
    with pytest.raises(ResumeError, match=r"system: 'Sei un assistente utile\.' -> None"):
        run(eval_cfg(small_model, base_run["italic"], out, thinking="both", system=None))


@pytest.mark.parametrize("value, message", [("inf", "temperature must be a finite number (0 = greedy), got inf"),
                                            ("nan", "temperature must be >= 0.0, got nan")])
def test_a_temperature_that_is_not_a_number_is_refused(tmp_path, small_model, italic_file, value, message):
    code, err = _main(["eval", f"source={italic_file}", f"model_name_or_path={small_model}", f"temperature={value}",
                       f"output_dir={tmp_path / 'o'}", "progress=false"])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_multit_mix_all_split_counts_each_question_once(tmp_path):
    """``prepare multit_mixed mix=all val_size=...`` writes each held-out question twice (with a trace
    and without): the eval merges them and says how many."""
    from importlib import resources

    from llamafactory_ext.cli import main
    from llamafactory_ext.eval.runner import run

    samples = resources.files("llamafactory_ext") / "resources" / "samples"
    code = main(["prepare", "multit_mixed", f"source={samples / 'multit_quiz.json'}", f"traces={samples / 'multit_traces.jsonl'}",
                 "mix=all", "val_size=0.4", f"out_dir={tmp_path / 'data'}", f"dataset_info={tmp_path / 'dataset_info.json'}"])
    assert code == 0
    val = tmp_path / "data" / "multit_mixed_val.jsonl"
    users = [next(m["content"] for m in row["messages"] if m["role"] == "user") for row in read_jsonl(val)]
    distinct = list(dict.fromkeys(users))
    assert len(users) > len(distinct) > 0  # the split holds questions twice
    golds = {}
    for row, user in zip(read_jsonl(val), users):
        golds.setdefault(user, row["messages"][-1]["content"].rsplit("\n", 1)[-1].strip())
    pred = write_rows(tmp_path / "p.jsonl", [{"id": i, "mode": "nothink", "output": golds[u]}
                                             for i, u in enumerate(users) if users.index(u) == i])
    res = run(rescore_cfg(val, pred, tmp_path / "o", task="multit"))
    s = res["modes"]["nothink"]
    assert (s["total"], s["correct"], s["missing"]) == (len(distinct), len(distinct), 0)
    merged = len(users) - len(distinct)
    assert any(w.startswith(f"{val}: {merged} duplicate question(s) merged") for w in res["warnings"]), res["warnings"]


def test_thinking_off_into_a_folder_with_both_modes_is_refused(small_model, base_run, tmp_path):
    from llamafactory_ext.config import UserError
    from llamafactory_ext.eval.runner import run

    out = shutil.copytree(base_run["dir"], tmp_path / "o")
    before = (out / "results.json").read_bytes()
    with pytest.raises(UserError) as err:
        run(eval_cfg(small_model, base_run["italic"], out, thinking="off"))
    assert str(err.value) == (f"{out / 'results.json'} holds mode(s) think, nothink but this run evaluates nothink only: its "
                              "figures for think would be lost; evaluate every mode again (thinking=both: rows already generated "
                              "are reused), write elsewhere (output_dir=), or pass overwrite=true to replace them")
    assert (out / "results.json").read_bytes() == before
    again = run(eval_cfg(small_model, base_run["italic"], out, thinking="both"))  # both modes: resumed, both kept
    assert set(again["modes"]) == {"think", "nothink"}
