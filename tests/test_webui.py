"""The web UI's parts without a browser: the data folder and the data sets it lists, recipes as
LlamaBoard fields (every shipped training recipe), the thinking format in the training arguments
LlamaBoard's own builder makes, the eval command a form makes, and the progress read from the
commands' own tqdm bars. The page itself is driven by tests/e2e/test_webui.py."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

from llamafactory_ext.webui.jobs import error_line, last_progress
from llamafactory_ext.webui.panel import fenced, key_values
from llamafactory_ext.webui.project import existing_datasets, find_data_folder, read_dataset_info
from tests.helpers import EXT, RECIPES_DIR, TRAIN_RECIPES


def _info(folder, entries):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_info.json").write_text(json.dumps(entries))


def test_data_folder_is_where_dataset_info_lists_existing_files(tmp_path):
    _info(tmp_path, {"a": {"file_name": "data/a.jsonl"}})  # today's checkout: top level, files not prepared
    assert find_data_folder(cwd=tmp_path) == tmp_path
    _info(tmp_path / "data", {"b": {"file_name": "b.jsonl"}})  # today's prepare: data/dataset_info.json
    (tmp_path / "data" / "b.jsonl").write_text("{}\n")
    assert find_data_folder(cwd=tmp_path) == tmp_path / "data"
    (tmp_path / "data" / "a.jsonl").write_text("{}\n")  # the convention: ./dataset_info.json -> data/NAME.jsonl
    assert find_data_folder(cwd=tmp_path) == tmp_path
    assert find_data_folder(str(tmp_path / "elsewhere"), cwd=tmp_path) == tmp_path / "elsewhere"
    assert find_data_folder(cwd=tmp_path / "empty") == tmp_path / "empty"


def test_only_datasets_whose_files_exist_are_listed(tmp_path):
    (tmp_path / "data" / "shards").mkdir(parents=True)
    (tmp_path / "data" / "here.jsonl").write_text("{}\n")
    (tmp_path / "data" / "shards" / "0.jsonl").write_text("{}\n")
    (tmp_path / "data" / "empty").mkdir()
    _info(tmp_path, {
        "here": {"file_name": "data/here.jsonl"}, "missing": {"file_name": "data/missing.jsonl"},
        "shards": {"file_name": "data/shards"}, "empty": {"file_name": "data/empty"},
        "hub": {"hf_hub_url": "owner/name"}, "pairs": {"file_name": "data/here.jsonl", "ranking": True},
    })
    assert existing_datasets(tmp_path, ranking=False) == ["here", "shards", "hub"]
    assert existing_datasets(tmp_path, ranking=True) == ["pairs"]
    (tmp_path / "dataset_info.json").write_text("{not json")
    assert existing_datasets(tmp_path, ranking=False) == []
    assert "cannot be read" in read_dataset_info(tmp_path)[1]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The page built in-process (not served), in a folder of its own (LlamaBoard writes
    llamaboard_cache/ into the working folder)."""
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("board"))
    try:
        from llamafactory_ext.webui.board import create_ui

        yield create_ui(".")
    finally:
        os.chdir(here)


def _train_args(board, values):
    """LlamaBoard's own ``_parse_train_args`` on the page's default values, some changed (by element id)."""
    data = {elem: elem.value for elem in board.train_inputs()}
    for elem_id, value in values.items():
        data[board.manager.get_elem_by_id(elem_id)] = value
    return board.runner._parse_train_args(data)


@pytest.mark.parametrize("fmt, expected", [("thinking", True), ("non-thinking", False), ("mixed", None)])
def test_thinking_format_reaches_the_training_arguments(page, tmp_path, fmt, expected):
    from llamafactory.hparams import DataArguments
    from llamafactory.webui.common import save_cmd
    from transformers import HfArgumentParser

    args = _train_args(page.board, {"top.model_name": "Custom", "top.model_path": "m", "train.dataset": ["d"],
                                    "train.thinking_format": fmt, "train.output_dir": str(tmp_path / "out")})
    with open(save_cmd(args), encoding="utf-8") as fh:  # the file LlamaBoard's Start button trains from
        written = yaml.safe_load(fh)
    (data_args,) = HfArgumentParser(DataArguments).parse_dict(written, allow_extra_keys=True)
    assert "enable_thinking" in written and data_args.enable_thinking is expected


def _same(a, b) -> bool:
    if a == b or str(a) == str(b):
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


@pytest.mark.parametrize("name", TRAIN_RECIPES)
def test_every_shipped_training_recipe_reaches_llamaboards_arguments(page, name):
    """Loaded into the page, each recipe's keys come out of LlamaBoard's own argument builder with the
    recipe's values (fields, or "Extra arguments" where no field can hold them); nothing is dropped."""
    from llamafactory.hparams import DataArguments

    board = page.board
    recipe = yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())
    update = page.recipe_row.load(str(RECIPES_DIR / f"{name}.yaml"), None, "Supervised Fine-Tuning")
    values = {board.manager.get_id_by_elem(e): v for e, v in update.items() if e in board.manager.get_elem_list()}
    args = _train_args(board, values)
    default = DataArguments.__dataclass_fields__["enable_thinking"].default
    assert args["enable_thinking"] is recipe.get("enable_thinking", default)
    for key in ("bf16", "fp16"):
        assert bool(args.get(key)) is bool(recipe.get(key)), key
    skipped = {"do_train", "dataset_dir", "bf16", "fp16", "enable_thinking"}  # dataset_dir: the page's Data dir stays
    for key, value in recipe.items():
        if key not in skipped and value is not None:
            assert _same(args.get(key), value), (key, value, args.get(key))


def test_recipe_values_that_llamaboard_would_replace_are_put_back_once(page):
    """A recipe changing the model name or the stage: LlamaBoard's own handlers then set the model path,
    template, data sets and packing; the row remembers what they will set and restores the recipe's."""
    from llamafactory.webui import control

    row = page.recipe_row
    values = {"top.model_name": "Custom", "top.model_path": "/my/model", "top.template": "qwen3",
              "train.training_stage": "DPO", "train.dataset": ["pairs"], "train.packing": False}
    pending = row._pending(values, model_name="Qwen3-8B-Thinking", stage="Supervised Fine-Tuning")
    _, template = control.get_model_info("Custom")  # what LlamaBoard will set for "Custom"
    assert pending["top.template"] == (template, "qwen3") and template != "qwen3"
    assert pending["train.dataset"] == ([], ["pairs"])
    restore = row._restorer("top.template")
    value, rest = restore(pending, template)
    assert value == "qwen3" and "top.template" not in rest and "train.dataset" in rest
    import gradio as gr

    assert restore(rest, "llama3") == (gr.skip(), gr.skip())  # a template the user chose stays
    assert row._pending(values, model_name="Custom", stage="DPO") == {}  # nothing changes: LlamaBoard sets nothing


def test_eval_command_from_the_form():
    from llamafactory_ext.webui.eval_tab import eval_argv

    top = {"model_name": "Qwen3-8B-Thinking", "model_path": "Qwen/Qwen3-8B", "finetuning_type": "lora",
           "checkpoint": ["v3"], "template": "qwen3"}
    form = {"task": "italic", "source": " it.jsonl ", "modes": "both", "limit": 8.0, "max_new_tokens": None,
            "backend": "hf", "cutoff": "force_answer", "baseline": "", "output_dir": "", "overwrite": True,
            "extra": "batch_size=16 'system=Sei un assistente.'"}
    assert eval_argv(top, form) == [
        "eval", "task=italic", "model_name_or_path=Qwen/Qwen3-8B", "adapter_name_or_path=saves/Qwen3-8B-Thinking/lora/v3",
        "template=qwen3", "source=it.jsonl", "thinking=both", "limit=8", "backend=hf", "cutoff=force_answer",
        "output_dir=results/eval/italic", "overwrite=true", "batch_size=16", "system=Sei un assistente."]
    lm_eval = eval_argv(top, {**form, "task": "lm_eval", "max_new_tokens": 64, "extra": "", "overwrite": False})
    assert not [a for a in lm_eval if a.split("=")[0] in ("thinking", "max_new_tokens", "cutoff")]
    with pytest.raises(ValueError, match="'batch_size' is not key=value"):
        eval_argv(top, {**form, "extra": "batch_size"})


def test_progress_is_read_from_the_commands_own_bar():
    """tqdm as the eval command sets it up (unit "item"), rewriting its line with \r; another library's
    bar (unit "it") is not taken for it."""
    from tqdm import tqdm

    out = io.StringIO()
    out.write("Loading weights: 100%|##########| 24/24 [00:00<00:00, 999.00it/s]\n")
    bar = tqdm(total=40, desc="italic think", unit="item", file=out, mininterval=0, miniters=1, ascii=True)
    bar.update(8)
    bar.update(4)
    assert out.getvalue().count("\r") >= 2
    progress = last_progress(out.getvalue())
    assert (progress.desc, progress.done, progress.total) == ("italic think", 12, 40)
    assert progress.rate is not None and progress.rate > 0 and "12/40 items" in progress.text()
    assert last_progress("Loading weights: 100%|##########| 24/24 [00:00<00:00, 999.00it/s]") is None
    slow = last_progress("gsm8k nothink:  25%|##5       | 1/4 [00:04<00:12, 4.00s/item]")
    assert slow.rate == 0.25 and slow.eta == "00:12"


def test_messages_are_the_commands_own_lines():
    out = "Loading...\nllamafactory-ext eval: error: output_dir x is in use by pid 7 on h since 10:00:00; wait\n"
    assert error_line(out) == "llamafactory-ext eval: error: output_dir x is in use by pid 7 on h since 10:00:00; wait"
    assert error_line("Traceback (most recent call last):\n  ValueError: boom\n") is None
    assert fenced("see `llamafactory-ext eval --help` and ```x```").startswith("````\n")
    with pytest.raises(ValueError, match="Overrides: No closing quotation"):
        key_values("a='b", "Overrides")


def test_webui_refuses_a_busy_port_in_one_line_without_importing_gradio():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = subprocess.run([*EXT, "webui", f"port={port}"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [(f"llamafactory-ext webui: error: cannot listen on 127.0.0.1:{port}: "
                                                "Address already in use (another server there? choose port=N)")]
    code = ("import sys, contextlib, io\nfrom llamafactory_ext.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['webui', '--help'])\n"
            "print([m for m in ('torch', 'gradio', 'llamafactory') if m in sys.modules])")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert shown.stdout.strip() == "[]"


def test_study_results_are_found_where_the_command_says_it_wrote_them(tmp_path):
    """``study``'s last lines name study.md (then study.json, study.png): the tab shows those files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llamafactory_ext.webui.study_tab import study_outputs

    out = tmp_path / "saves" / "studies" / "mine"
    out.mkdir(parents=True)
    (out / "study.md").write_text("| Version | No thinking | Thinking |\n|---|---|---|\n| V3 | 73.81 | 77.57 |\n")
    fig = plt.figure(figsize=(2, 1))
    fig.savefig(out / "study.png")
    plt.close(fig)
    printed = f"[study] V3: done\n[study] wrote {out / 'study.md'}, {out / 'study.json'}, {out / 'study.png'}\n"
    table, png = study_outputs(printed)
    assert "| V3 | 73.81 | 77.57 |" in table and png.size == (200, 100)
    assert study_outputs("2 trial(s):\n[1] V1 ...") == (None, None)  # a dry run writes nothing
