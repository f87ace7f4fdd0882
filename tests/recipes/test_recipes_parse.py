"""Every shipped recipe parses with LLaMA-Factory's own argument parser, carries the published
hyperparameters as LLaMA-Factory reads them, and every command in its header parses too.

The parse runs in one subprocess (tests/recipes/parse_worker.py) through `read_args` +
`get_train_args` / `get_infer_args`, i.e. the `llamafactory-cli` code path. It needs no model
weights and no data files. What parsing itself requires on a CPU machine, and nothing else, is
neutralised:
  - `use_cpu=true`: transformers refuses `bf16: true` at parse time without a GPU unless told the
    run is on CPU ("Your setup doesn't support bf16/gpu");
  - a single-process torchrun environment (RANK=0, WORLD_SIZE=1, MASTER_ADDR/PORT): LLaMA-Factory
    refuses `deepspeed:` outside a distributed launch ("Please use FORCE_TORCHRUN=1"); with it,
    transformers really loads ds_configs/zero2.json (gloo on CPU);
  - the working directory is a scratch dir holding a copy of ds_configs/: `output_dir: saves/...`
    resolves there, so a user's existing saves/ cannot turn the parse into a resume.
Quantization (bitsandbytes), flash-attn and 8-bit AdamW are only checked when the model and
optimizer are built, so they stay as shipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from tests.helpers import (
    EXPORT_RECIPES,
    RECIPES,
    REPO,
    SFT_RECIPES,
    TRAIN_RECIPES,
    header_commands,
    header_lines,
    load_recipe,
    recipe_path,
)

PARSE_NEUTRALISE = ["use_cpu=true"]
SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Published (or best-practice) values, checked on the dataclasses LLaMA-Factory builds.
MULTIT = {
    "model.model_name_or_path": "Qwen/Qwen3-8B",
    "finetuning.stage": "sft", "finetuning.finetuning_type": "lora",
    "finetuning.lora_rank": 24, "finetuning.lora_alpha": 48, "finetuning.lora_dropout": 0.1,
    "finetuning.lora_target": SEVEN,
    "training.num_train_epochs": 1.0, "training.per_device_train_batch_size": 4,
    "training.gradient_accumulation_steps": 8, "training.lr_scheduler_type": "cosine",
    "training.warmup_steps": 0.05, "training.bf16": True, "training.learning_rate": 1.0e-4,
    # published packing at 2048: with packing LLaMA-Factory reads cutoff_len 2048 as 2047 (+1 pad) and
    # builds packed sequences of exactly 2048 tokens (data_args.__post_init__, PackedSupervisedDatasetProcessor)
    "data.cutoff_len": 2047, "data.packing": True, "data.neat_packing": True, "data.template": "qwen3",
    "model.block_diag_attn": True,  # neat_packing -> no attention across packed samples
}
EXPECTED: dict[str, dict] = {
    "v1_nothink": {**MULTIT, "data.dataset": ["multit_nothink"], "data.enable_thinking": False,
                   "training.output_dir": "saves/v1_nothink"},
    "v2_think": {**MULTIT, "data.dataset": ["multit_think"], "data.enable_thinking": True,
                 "training.output_dir": "saves/v2_think"},
    "v3_mixed": {**MULTIT, "data.dataset": ["multit_mixed"], "data.enable_thinking": None,
                 "training.output_dir": "saves/v3_mixed"},
    "v1_nothink_instruct": {**MULTIT, "model.model_name_or_path": "Qwen/Qwen3-4B-Instruct-2507",
                            "data.template": "qwen3_nothink", "data.dataset": ["multit_nothink"],
                            "training.output_dir": "saves/v1_nothink_instruct"},
    "gsm8k_synth_qlora": {
        "model.model_name_or_path": "Qwen/Qwen3-8B", "model.quantization_bit": 4, "model.quantization_method": "bnb",
        "model.quantization_type": "nf4", "model.double_quantization": True,
        "finetuning.lora_rank": 16, "finetuning.lora_alpha": 16, "finetuning.lora_dropout": 0.0,
        "finetuning.lora_target": SEVEN, "training.num_train_epochs": 3.0,
        "training.per_device_train_batch_size": 1, "training.gradient_accumulation_steps": 64,
        "training.learning_rate": 2.0e-4, "training.lr_scheduler_type": "cosine", "training.warmup_steps": 10,
        "training.optim": "adamw_bnb_8bit", "training.max_grad_norm": 1.0, "training.seed": 42,
        "data.cutoff_len": 1024, "data.template": "qwen3", "data.enable_thinking": True,
        "data.dataset": ["synth_gsm8k"], "training.output_dir": "saves/gsm8k_synth_qlora",
    },
    "wikipedia_it_pt": {
        "model.model_name_or_path": "swap-uniba/LLaMAntino-3-ANITA-8B-Inst-DPO-ITA",
        "finetuning.stage": "pt", "model.quantization_bit": 4, "model.disable_gradient_checkpointing": False,
        "finetuning.lora_rank": 32, "finetuning.lora_alpha": 8, "data.packing": True,
        "training.optim": "paged_adamw_8bit",
        "data.dataset": ["wikipedia_it"], "training.output_dir": "saves/wikipedia_it_pt",
    },
    "best_practice_zero2": {
        "model.model_name_or_path": "Qwen/Qwen3-8B", "model.flash_attn": "fa2",
        "model.disable_gradient_checkpointing": False,
        "finetuning.lora_rank": 32, "finetuning.lora_alpha": 64, "finetuning.lora_dropout": 0.05,
        "finetuning.lora_target": ["all"], "training.learning_rate": 2.0e-4, "training.lr_scheduler_type": "cosine",
        "training.warmup_steps": 0.05, "training.num_train_epochs": 3.0, "training.per_device_train_batch_size": 4,
        "training.gradient_accumulation_steps": 4, "data.cutoff_len": 650, "training.bf16": True, "training.seed": 42,
        "training.deepspeed": "ds_configs/zero2.json", "training.eval_strategy": "steps", "training.eval_steps": 100,
        "training.save_steps": 100, "training.do_eval": True, "training.load_best_model_at_end": True,
        "training.metric_for_best_model": "eval_loss", "training.greater_is_better": False,
        "finetuning.early_stopping_steps": 3, "data.eval_dataset": ["multit_mixed_val"],
        "data.template": "qwen3", "training.output_dir": "saves/best_practice_zero2",
    },
    "anita_sft_qlora": {
        "model.model_name_or_path": "meta-llama/Meta-Llama-3-8B-Instruct", "model.quantization_bit": 4,
        "model.quantization_type": "nf4", "finetuning.stage": "sft", "finetuning.finetuning_type": "lora",
        "finetuning.lora_target": SEVEN, "data.template": "llama3", "data.dataset": ["wizard_alpaca_dolly_orca"],
        "training.output_dir": "saves/anita_sft_qlora",
    },
    "anita_dpo_qlora": {
        "model.model_name_or_path": "saves/anita_sft_merged", "model.adapter_name_or_path": None, "model.quantization_bit": 4,
        "finetuning.stage": "dpo", "finetuning.pref_beta": 0.1, "finetuning.pref_loss": "sigmoid", "finetuning.pref_ftx": 0.0,
        "finetuning.ref_model": None, "finetuning.lora_target": SEVEN,
        "data.template": "llama3", "data.dataset": ["orpo_dpo_mix"], "training.output_dir": "saves/anita_dpo_qlora",
    },
    "anita_italian_qlora": {
        "model.model_name_or_path": "saves/anita_dpo_merged", "model.quantization_bit": 4, "finetuning.stage": "pt",
        "data.template": "llama3", "data.packing": True, "data.dataset": ["clean_mc4_it"],
        "training.output_dir": "saves/anita_italian_qlora",
    },
    "anita_sft_merge": {
        "model.model_name_or_path": "meta-llama/Meta-Llama-3-8B-Instruct", "model.adapter_name_or_path": ["saves/anita_sft_qlora"],
        "model.export_dir": "saves/anita_sft_merged", "model.infer_dtype": "bfloat16", "model.quantization_bit": None,
        "model.export_device": "cpu", "data.template": "llama3",
    },
    "anita_dpo_merge": {
        "model.model_name_or_path": "saves/anita_sft_merged", "model.adapter_name_or_path": ["saves/anita_dpo_qlora"],
        "model.export_dir": "saves/anita_dpo_merged", "model.infer_dtype": "bfloat16", "model.quantization_bit": None,
        "model.export_device": "cpu", "data.template": "llama3",
    },
    "gsm8k_synth_merge": {
        "model.model_name_or_path": "Qwen/Qwen3-8B", "model.adapter_name_or_path": ["saves/gsm8k_synth_qlora"],
        "model.export_dir": "saves/gsm8k_synth_merged", "model.infer_dtype": "bfloat16",
        "model.quantization_bit": None, "model.export_device": "cpu", "data.template": "qwen3",
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kind(name: str) -> str:
    return "export" if name in EXPORT_RECIPES else "train"


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    """All recipes and all their header commands, parsed in one subprocess."""
    work = tmp_path_factory.mktemp("parse")
    shutil.copytree(REPO / "ds_configs", work / "ds_configs")
    jobs = []
    for name in RECIPES:
        extra = PARSE_NEUTRALISE if _kind(name) == "train" else []
        jobs.append({"id": name, "kind": _kind(name), "recipe": str(recipe_path(name)), "overrides": extra})
        for i, (sub, _env, overrides) in enumerate(header_commands(name)):
            kind = "train" if sub == "train" else "export"
            jobs.append({"id": f"{name}#{i}", "kind": kind, "recipe": str(recipe_path(name)),
                         "overrides": overrides + (PARSE_NEUTRALISE if kind == "train" else [])})
    (work / "jobs.json").write_text(json.dumps(jobs), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_TORCHRUN",)}
    env.update({"CUDA_VISIBLE_DEVICES": "", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
                "HF_HUB_OFFLINE": "1", "DISABLE_VERSION_CHECK": "1", "PYTHONPATH": str(REPO),
                "LLAMAFACTORY_VERBOSITY": "WARN"})
    proc = subprocess.run([sys.executable, "-m", "tests.recipes.parse_worker", "jobs.json", "out.json"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((work / "out.json").read_text(encoding="utf-8"))


def _get(args: dict, dotted: str):
    group, field = dotted.split(".")
    return args[group][field]


def test_every_recipe_has_expectations():
    assert set(EXPECTED) == set(RECIPES), "a recipe was added or removed: list its published values here"
    assert {"v1_nothink", "v2_think", "v3_mixed", "best_practice_zero2", "gsm8k_synth_merge"} <= set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_parses_with_llamafactory(parsed, name):
    result = parsed[name]
    assert result["ok"], f"{name}: {result.get('error')}\n{result.get('trace')}"
    args = result["args"]
    wrong = {key: (_get(args, key), want) for key, want in EXPECTED[name].items() if _get(args, key) != want}
    assert not wrong, f"{name}: LLaMA-Factory read (got, published) = {wrong}"
    if name in TRAIN_RECIPES:
        assert args["data"]["dataset_dir"] == "."


@pytest.mark.parametrize("name", RECIPES)
def test_header_commands_parse_and_overrides_take_effect(parsed, name):
    commands = header_commands(name)
    assert commands, f"{name}: no llamafactory-cli command in the header"
    for i, (sub, _env, overrides) in enumerate(commands):
        result = parsed[f"{name}#{i}"]
        assert result["ok"], f"{name}: header command {i} ({' '.join(overrides)}) failed: {result.get('error')}"
        args = result["args"]
        for item in overrides:
            key, value = item.split("=", 1)
            group = next(g for g in args if key in args[g])
            got = args[group][key]
            got = ",".join(got) if isinstance(got, list) else got
            want = {"null": None}.get(value, value)
            assert str(got) == str(want) or (isinstance(got, (int, float)) and float(got) == float(value)), (
                f"{name}: `{item}` did not take effect (LLaMA-Factory read {got!r})"
            )


@pytest.mark.parametrize("name", TRAIN_RECIPES)
def test_header_documents_gpu_commands_and_data(name):
    text = "\n".join(header_lines(name))
    cmds = header_commands(name)
    trains = [(env, ov) for sub, env, ov in cmds if sub == "train"]
    # 2 GPUs with ZeRO-2
    assert any("CUDA_VISIBLE_DEVICES=0,1" in env and (
        "deepspeed=ds_configs/zero2.json" in ov or load_recipe(name).get("deepspeed") == "ds_configs/zero2.json")
        for env, ov in trains), f"{name}: no 2-GPU ZeRO-2 command"
    # 1 GPU: plain, or torchrun-forced DeepSpeed
    assert any("CUDA_VISIBLE_DEVICES=0,1" not in env for env, _ in trains), f"{name}: no 1-GPU command"
    if load_recipe(name).get("deepspeed"):
        assert any("FORCE_TORCHRUN=1" in env for env, _ in trains), f"{name}: DeepSpeed on 1 GPU needs FORCE_TORCHRUN=1"
    # an override example that changes base model, dataset, rank and output dir
    assert any({"model_name_or_path", "dataset", "lora_rank", "output_dir"} <= {o.split("=")[0] for o in ov}
               for _, ov in trains), f"{name}: no override example for model/dataset/rank/output dir"
    # which command creates its data
    for ds in str(load_recipe(name)["dataset"]).split(","):
        assert f"llamafactory-ext prepare {ds.strip()}" in text, f"{name}: header does not say how to prepare {ds}"


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_layout(name):
    cfg = load_recipe(name)
    text = recipe_path(name).read_text(encoding="utf-8")
    sections = [line for line in text.splitlines() if line.startswith("### ")]
    if name in TRAIN_RECIPES:
        assert sections == ["### model", "### method", "### dataset", "### output", "### train", "### eval"], sections
        assert cfg["output_dir"] == f"saves/{name}" and cfg["dataset_dir"] == "."
        info = json.loads((REPO / "dataset_info.json").read_text(encoding="utf-8"))
        for key in ("dataset", "eval_dataset"):
            for ds in str(cfg.get(key) or "").split(","):
                assert not ds or ds.strip() in info, f"{name}: {key} {ds} is not in dataset_info.json"
        if cfg.get("deepspeed"):
            ds_cfg = json.loads((REPO / cfg["deepspeed"]).read_text(encoding="utf-8"))
            assert ds_cfg["zero_optimization"]["stage"] == 2
    else:
        assert sections[:2] == ["### model", "### method"] and "### export" in sections
        assert cfg["export_dir"].startswith("saves/")


@pytest.mark.parametrize("name", SFT_RECIPES)
def test_thinking_setting_is_explicit_for_reasoning_templates(name):
    """`enable_thinking` defaults to true in LLaMA-Factory: a qwen3 recipe must say which mode it trains."""
    from llamafactory_ext.prompts import is_reasoning_template

    cfg = load_recipe(name)
    if is_reasoning_template(cfg["template"]):
        assert "enable_thinking" in cfg, f"{name}: set enable_thinking (true / false / null) explicitly"
    else:
        assert "enable_thinking" not in cfg, f"{name}: enable_thinking has no effect on {cfg['template']}"
