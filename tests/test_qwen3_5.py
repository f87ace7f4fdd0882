"""Hybrid families after Qwen3: LLaMA-Factory's ``qwen3_5``, ``qwen3_5_nothink`` and ``qwen3_6`` templates have
Qwen3's text format but carry the ``qwen3_vl`` multimodal plugin, which asks for the model's processor on every
row. ``inspect`` passes the processor LLaMA-Factory loads (or refuses in one line naming the plugin), the
``arch=qwen3_5`` fixture ships one, ``eval`` runs on it, and a sweep / study refuses to train it before any run
where LLaMA-Factory itself would (a Conv3d vision tower under torch 2.9)."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from llamafactory_ext import cli
from tests.helpers import RECIPES_DIR, write_italic_sample

TEMPLATES = ("qwen3_5", "qwen3_5_nothink", "qwen3_6")


@pytest.fixture(scope="module")
def qwen3_5_model(tmp_path_factory):
    from llamafactory_ext.fixtures import ARCHS, build_tiny

    return build_tiny(ARCHS["qwen3_5"], tmp_path_factory.mktemp("qwen3_5") / "m", vocab="small")


def test_the_fixture_is_qwen3_5_shaped_with_a_processor(qwen3_5_model):
    from transformers import AutoProcessor

    config = json.loads((qwen3_5_model / "config.json").read_text())
    assert config["model_type"] == "qwen3_5" and config["text_config"]["layer_types"] == ["linear_attention", "full_attention"]
    processor = AutoProcessor.from_pretrained(qwen3_5_model)
    assert type(processor).__name__ == "Qwen3VLProcessor"
    assert processor.image_processor.merge_size == 2 and processor.video_processor.merge_size == 2


@pytest.mark.parametrize("template", TEMPLATES)
def test_prompts_are_qwen3s_token_for_token(tiny_tokenizer, template):
    """The evaluator's prompts under each template equal the qwen3 / qwen3_nothink ones (LLaMA-Factory's own code)."""
    from llamafactory_ext.prompts import PromptEncoder, is_reasoning_template

    same = "qwen3" if is_reasoning_template(template) else "qwen3_nothink"
    messages = [{"role": "user", "content": "Qual è la capitale d'Italia?"}]
    for mode in ("think", "nothink") if same == "qwen3" else ("nothink",):
        ours = PromptEncoder(tiny_tokenizer, template, mode).encode(messages, "Sei un assistente utile.")
        assert ours == PromptEncoder(tiny_tokenizer, same, mode).encode(messages, "Sei un assistente utile.")


def inspect_report(*args: str) -> dict:
    from llamafactory_ext.inspect.pipeline import inspect_recipe

    return inspect_recipe([str(RECIPES_DIR / "v3_mixed.yaml"), "samples=true", "n=1", *args])


@pytest.mark.parametrize("template", TEMPLATES)
def test_inspect_runs_with_the_processor_and_prompts_match_the_evaluator(qwen3_5_model, template):
    report = inspect_report(f"tokenizer={qwen3_5_model}", f"template={template}")
    modes = ["think", "nothink"] if template != "qwen3_5_nothink" else ["nothink"]
    assert report["settings"]["modes_trained"] == modes
    assert report["parity"] == dict.fromkeys(modes, "identical")


def test_inspect_without_a_processor_names_the_plugin_and_the_fix(small_model, capsys):
    rc = cli.main(["inspect", str(RECIPES_DIR / "v3_mixed.yaml"), "samples=true", f"tokenizer={small_model}", "template=qwen3_5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "template qwen3_5 carries LLaMA-Factory's Qwen3VLPlugin" in err[0] and "tokenizer=fixture" in err[0]


def test_eval_runs_both_modes_on_the_fixture(qwen3_5_model, tmp_path, capsys):
    source = write_italic_sample(tmp_path / "italic.jsonl")
    for template, modes in (("qwen3_5", {"think", "nothink"}), ("qwen3_5_nothink", {"nothink"})):
        out = tmp_path / template
        assert cli.main(["eval", "task=italic", f"source={source}", f"model_name_or_path={qwen3_5_model}", f"template={template}",
                         "max_new_tokens=3", "device=cpu", "dtype=float32", f"output_dir={out}", "progress=false"]) == 0
        results = json.loads((out / "results.json").read_text())
        assert set(results["modes"]) == modes and all(m["total"] == 5 for m in results["modes"].values())


def test_a_sweep_refuses_to_train_it_where_llamafactory_would(qwen3_5_model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text((RECIPES_DIR / "v3_mixed.yaml").read_text())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "multit_mixed.jsonl").write_text("{}\n")
    (tmp_path / "dataset_info.json").write_text('{"multit_mixed": {"file_name": "data/multit_mixed.jsonl"}}')
    (tmp_path / "s.yaml").write_text(f"base: r.yaml\ngrid: {{lora_rank: [4]}}\nfixed: {{model_name_or_path: {qwen3_5_model}}}\noutput_dir: o\n")
    rc = cli.main(["sweep", "s.yaml"])
    err = capsys.readouterr().err
    if not importlib.metadata.version("torch").startswith("2.9."):
        pytest.skip("LLaMA-Factory refuses Conv3d vision towers only under torch 2.9.x")
    assert rc == 2 and "is a qwen3_5 model whose vision tower has a Conv3d patch embedding" in err
    assert "torch 2.9.x with Conv3D" in err and not (tmp_path / "o").exists()
