"""The hybrid Qwen families after Qwen3 (transformers 5.6: qwen3_5, qwen3_5_moe, qwen3_next) in the planner:
its counts, from config.json alone, against LLaMA-Factory's own ``init_adapter`` (LoRA through PEFT, full
tuning with the vision tower frozen) on tiny instances of transformers' own classes, loaded the way
LLaMA-Factory loads them (AutoModelForImageTextToText for the vision-language ones)."""

from __future__ import annotations

import json

import pytest

from llamafactory_ext import plan
from llamafactory_ext.config import UserError

TEXT = {"vocab_size": 320, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "linear_key_head_dim": 8, "linear_value_head_dim": 12,
        "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_conv_kernel_dim": 3, "moe_intermediate_size": 24,
        "shared_expert_intermediate_size": 20, "num_experts": 6, "num_experts_per_tok": 2}
VISION = {"depth": 2, "hidden_size": 32, "intermediate_size": 48, "num_heads": 2, "out_hidden_size": 64,
          "num_position_embeddings": 16}
CASES = {
    "qwen3_5": {"text_config": TEXT, "vision_config": VISION},
    "qwen3_5_moe": {"text_config": {k: v for k, v in TEXT.items() if k != "intermediate_size"}, "vision_config": VISION},
    "qwen3_next": {**TEXT, "num_hidden_layers": 6, "mlp_only_layers": [0], "decoder_sparse_step": 2},
    "qwen3_5_text": {**TEXT, "layer_types": ["full_attention", "linear_attention", "linear_attention", "full_attention"]},
}


def _model(model_type: str, tmp_path):
    """(folder with config.json, the model LLaMA-Factory would load from it, with random weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    cfg = AutoConfig.for_model(model_type, **CASES[model_type])
    folder = tmp_path / model_type
    cfg.save_pretrained(folder)  # config.json exactly as a published checkpoint carries it
    load = AutoModelForImageTextToText if type(cfg) in AutoModelForImageTextToText._model_mapping else AutoModelForCausalLM
    torch.manual_seed(0)
    return folder, cfg, load.from_config(cfg)


def _llamafactory_counts(cfg, model, **finetuning) -> tuple[int, int]:
    from llamafactory.extras.misc import count_parameters
    from llamafactory.hparams import FinetuningArguments, ModelArguments
    from llamafactory.model.adapter import init_adapter

    model_args = ModelArguments(model_name_or_path="unused")
    finetuning_args = FinetuningArguments(**finetuning)
    model = init_adapter(cfg, model, model_args, finetuning_args, is_trainable=True)
    return count_parameters(model)


def _plan(folder, **recipe) -> dict:
    argv = ["recipes/v3_mixed.yaml", f"model_name_or_path={folder}", *[f"{k}={v}" for k, v in recipe.items()]]
    result = plan.build_plan(argv)
    result.pop("_format")
    return result


@pytest.mark.parametrize("model_type", list(CASES))
@pytest.mark.parametrize("target,rank", [("all", 4), ("q_proj,v_proj,down_proj,out_proj", 3)])
def test_lora_counts_equal_llamafactory_init_adapter(model_type, target, rank, tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    if target != "all" and model_type == "qwen3_next":
        target = "q_proj,in_proj_qkvz,shared_expert_gate"
    folder, cfg, model = _model(model_type, tmp_path)
    expected = _llamafactory_counts(cfg, model, finetuning_type="lora", lora_target=target, lora_rank=rank)
    r = _plan(folder, lora_target=target, lora_rank=rank)
    assert (r["trainable_params"], r["total_params"]) == expected
    assert r["memory_refused"].startswith(f"memory not estimated for model_type {model_type}")
    assert r["peak_bytes"] is None and r["fits"] is None


@pytest.mark.parametrize("model_type", ["qwen3_5", "qwen3_5_moe", "qwen3_next"])
def test_full_tuning_counts_equal_llamafactory(model_type, tmp_path, repo_root, monkeypatch):
    """Full tuning: every parameter of the text model trains; the vision tower and merger stay frozen."""
    monkeypatch.chdir(repo_root)
    folder, cfg, model = _model(model_type, tmp_path)
    expected = _llamafactory_counts(cfg, model, finetuning_type="full")
    r = _plan(folder, finetuning_type="full")
    assert (r["trainable_params"], r["total_params"]) == expected
    assert r["total_params"] == sum(p.numel() for p in model.parameters())


def test_the_default_layer_pattern_and_the_experts_are_counted(tmp_path, repo_root, monkeypatch):
    """Every 4th layer full attention (transformers' default), routed experts counted in total, not as LoRA targets."""
    monkeypatch.chdir(repo_root)
    folder, _, model = _model("qwen3_5_moe", tmp_path)
    r = _plan(folder, lora_target="all")
    assert r["layer_types"] == ["linear_attention"] * 3 + ["full_attention"]
    experts = sum(p.numel() for n, p in model.named_parameters() if ".mlp.experts." in n)
    assert experts == 4 * 6 * 3 * 24 * 64  # layers x experts x (gate, up, down) x moe_intermediate x hidden
    assert "experts" not in r["detail"] and "shared_expert_gate" in r["detail"] and "in_proj_qkv" in r["detail"]


def test_cli_prints_exact_counts_and_refuses_memory_in_one_line(tmp_path, repo_root, ext_cli):
    from tests.helpers import output_tail, run_cmd

    folder, _, _ = _model("qwen3_5", tmp_path)
    proc = run_cmd([*ext_cli, "plan", "recipes/v3_mixed.yaml", f"model_name_or_path={folder}", "gpu_mem=24GB"], cwd=repo_root)
    assert proc.returncode == 0, output_tail(proc)
    assert "trainable params:" in proc.stdout and "3 linear_attention + 1 full_attention" in proc.stdout
    refusal = [line for line in proc.stdout.splitlines() if line.startswith("memory not estimated")]
    assert len(refusal) == 1 and "Gated DeltaNet" in refusal[0]
    proc = run_cmd([*ext_cli, "plan", "recipes/v3_mixed.yaml", f"model_name_or_path={folder}", "measure=true"], cwd=repo_root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_freeze_and_bad_layer_types_are_one_line_errors(tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    folder, _, _ = _model("qwen3_next", tmp_path)
    with pytest.raises(UserError, match="freeze is not modelled for the hybrid qwen3_next"):
        _plan(folder, finetuning_type="freeze")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["layer_types"] = ["mamba"] * cfg["num_hidden_layers"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="layer_types must list 6 entries"):
        _plan(folder)


@pytest.mark.parametrize("model_type", ["qwen3_5", "qwen3_5_moe", "qwen3_next"])
def test_transformers_default_configs_count_like_the_meta_device_model(model_type, tmp_path, repo_root, monkeypatch):
    """The full-size configs transformers 5.6 ships as defaults (Qwen3.5-9B / 35B-A3B / Qwen3-Next-80B-A3B
    style): the planner's base count equals the parameters of the class built on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    monkeypatch.chdir(repo_root)
    cfg = AutoConfig.for_model(model_type)
    cfg.save_pretrained(tmp_path)
    load = AutoModelForImageTextToText if type(cfg) in AutoModelForImageTextToText._model_mapping else AutoModelForCausalLM
    with torch.device("meta"):
        model = load.from_config(cfg)
    r = _plan(tmp_path, lora_target="all")
    assert r["total_params"] - r["trainable_params"] == sum(p.numel() for p in model.parameters())
