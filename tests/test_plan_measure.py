"""`llamafactory-ext plan`, the house rules (typed keys, named errors, length warning, DPO) and
`measure=true` as far as it runs without a GPU: the random-weight model builder (tiny model on CPU,
Qwen3-8B / Llama-3-8B on the meta device), the synthetic rows through LLaMA-Factory's own data
pipeline, the whole measurement pipeline on CPU (a real LLaMA-Factory training run in a child
process, whose logged count must equal the planner's), the comparison table, and the clear exit
without CUDA."""

from __future__ import annotations

import json
import math

import pytest

from llamafactory_ext import plan
from llamafactory_ext.config import UserError
from llamafactory_ext.plan import measure, synthetic
from llamafactory_ext.plan.random_model import (
    checkpoint_tensors,
    meta_model,
    write_byte_tokenizer,
    write_random_model,
)
from tests.helpers import output_tail, run_cmd

SEVEN = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
GIB = 1024**3


def _plan(*argv: str) -> dict:
    result = plan.build_plan(list(argv))
    result.pop("_format")
    return result


def _facts(name: str) -> dict:
    return json.loads((plan.RESOURCES / name).read_text())


# ---------------------------------------------------------------------------------------------
# house rules
# ---------------------------------------------------------------------------------------------
def test_misspelt_recipe_key_is_one_line_with_a_suggestion(ext_cli, repo_root):
    proc = run_cmd([*ext_cli, "plan", "recipes/v3_mixed.yaml", "lora_rnak=16"], cwd=repo_root)
    assert proc.returncode == 2, output_tail(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "lora_rnak" in lines[0] and "did you mean 'lora_rank'" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("override", ["lora_dropout=abc", "freeze_trainable_layers=x"])
def test_a_recipe_value_of_the_wrong_type_is_one_line(override, capsys):
    from llamafactory_ext.cli import main

    assert main(["plan", "recipes/v3_mixed.yaml", override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{override.partition('=')[0]} must be a number" in err and "Traceback" not in err


def test_recipe_keys_copy_equals_llamafactorys_own():
    import importlib.metadata
    import json

    from llamafactory_ext.recipe_keys import live_llamafactory_train_keys, llamafactory_train_keys
    from llamafactory_ext.shipped import resource

    fixed = json.loads(resource("llamafactory_keys.json").read_text())
    assert importlib.metadata.version("llamafactory") == fixed["llamafactory"]  # the pinned stack
    live = live_llamafactory_train_keys()
    assert set(fixed["keys"]) == live == llamafactory_train_keys(), (sorted(live - set(fixed["keys"])), sorted(set(fixed["keys"]) - live))


@pytest.mark.parametrize("override,key", [
    ("gpus=0", "gpus"), ("fragmentation=1.5", "fragmentation"), ("steps=1", "steps"), ("batch_size=0", "batch_size"),
    ("format=yaml", "format"),
    ("per_device_train_batch_size=0", "per_device_train_batch_size"), ("lora_rank=0", "lora_rank"),
    ("lora_rank=-4", "lora_rank"), ("cutoff_len=0", "cutoff_len"), ("cutoff_len=null", "cutoff_len"),
    ("per_device_train_batch_size=2.5", "per_device_train_batch_size"), ("lora_rank=abc", "lora_rank"),
    ("gradient_accumulation_steps=0", "gradient_accumulation_steps"), ("quantization_bit=3", "quantization_bit"),
])
def test_impossible_values_are_errors_naming_the_key(repo_root, override, key):
    with pytest.raises(UserError, match=key):
        _plan(str(repo_root / "recipes" / "v3_mixed.yaml"), override)


def test_json_flag_and_format_key_agree(repo_root):
    v3 = str(repo_root / "recipes" / "v3_mixed.yaml")
    assert plan.build_plan([v3, "--json"])["_format"] == plan.build_plan([v3, "format=json"])["_format"] == "json"


def test_cutoff_past_the_models_length_warns_in_text_and_json(repo_root, tmp_path):
    v3 = str(repo_root / "recipes" / "v3_mixed.yaml")
    r = _plan(v3, "cutoff_len=1000000000")
    assert len(r["warnings"]) == 1 and "40,960" in r["warnings"][0] and "max_position_embeddings" in r["warnings"][0]
    assert "warning: cutoff_len 1,000,000,000 is past the model's maximum length 40,960" in plan.render_text(r)
    assert _plan(v3)["warnings"] == [] and _plan(v3, "cutoff_len=40960")["warnings"] == []
    scaled = _plan(v3, "cutoff_len=100000", "rope_scaling=yarn")  # LLaMA-Factory enlarges the context itself
    assert scaled["warnings"] == [] and any("rope_scaling=yarn" in n for n in scaled["notes"])
    # a config that already carries YaRN scaling: original x factor is the limit
    cfg = {**_facts("Qwen3-8B.json"), "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    assert _plan(v3, f"model_name_or_path={tmp_path / 'm'}", "cutoff_len=131072")["warnings"] == []
    assert "131,072" in _plan(v3, f"model_name_or_path={tmp_path / 'm'}", "cutoff_len=131073")["warnings"][0]


# ---------------------------------------------------------------------------------------------
# DPO
# ---------------------------------------------------------------------------------------------
DPO = {"stage": "dpo", "do_train": True, "finetuning_type": "lora", "lora_rank": 32, "lora_target": SEVEN,
       "lora_dropout": 0.05, "quantization_bit": 4, "pref_beta": 0.1, "pref_loss": "sigmoid", "cutoff_len": 1024,
       "per_device_train_batch_size": 1, "bf16": True, "optim": "paged_adamw_8bit"}


def _planned(recipe: dict, arch_name: str = "Meta-Llama-3-8B.json") -> tuple[plan.Params, dict]:
    arch = plan.arch_from_config(_facts(arch_name), arch_name)
    params = plan.count_params(arch, recipe)
    return params, plan.estimate(arch, recipe, params)


def test_dpo_lora_counts_exactly_and_doubles_the_tokens():
    """Llama-3-8B QLoRA DPO (the ANITA set-up): the adapter is the same as for SFT (83,886,080 at r32),
    the reference is the base with the adapter disabled (no extra weights), each pair is two sequences,
    LLaMA-Factory's DPO trainer disables dropout, and the loss keeps policy + reference logits."""
    params, dpo = _planned(DPO)
    assert (params.trainable, params.total - params.trainable) == (83_886_080, 8_030_261_248)
    _, sft = _planned({**DPO, "stage": "sft", "lora_dropout": 0.0})
    rows, sft_rows = {r[0]: r[1] for r in dpo["rows"]}, {r[0]: r[1] for r in sft["rows"]}
    assert dpo["tokens"] == 2 * 1024 and dpo["sequences"] == 2
    assert "reference model" not in rows
    assert rows["weights"] == sft_rows["weights"] and rows["optimizer states"] == sft_rows["optimizer states"]
    assert rows["activations"] == pytest.approx(2 * sft_rows["activations"], rel=1e-12)  # dropout off in both
    assert rows["logits + loss"] == 2 * 1024 * 128_256 * 16
    assert any("adapter disabled" in n for n in dpo["notes"]) and any("disables dropout" in n for n in dpo["notes"])
    # ORPO / SimPO have no reference: the SFT-like 12 B per logit; full fine-tuning DPO loads a frozen copy
    assert {r[0]: r[1] for r in _planned({**DPO, "pref_loss": "orpo"})[1]["rows"]}["logits + loss"] == 2 * 1024 * 128_256 * 12
    full = {r[0]: r for r in _planned({**DPO, "finetuning_type": "full", "quantization_bit": None})[1]["rows"]}
    assert full["reference model"][1] == 2 * 8_030_261_248 and "frozen copy" in full["reference model"][2]


def test_dpo_count_equals_llamafactorys_load_model(byte_tokenizer_dir, tmp_path):
    """LLaMA-Factory's own argument parser + load_model for a LoRA DPO recipe on the tiny model:
    count_parameters (the numbers it logs) equals the planner's."""
    tiny_model = byte_tokenizer_dir
    from llamafactory.extras.misc import count_parameters
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_model, load_tokenizer

    recipe = {**DPO, "quantization_bit": None, "optim": "adamw_torch", "bf16": False, "lora_rank": 4, "lora_target": "all",
              "template": "qwen3", "model_name_or_path": str(tiny_model), "report_to": "none"}
    data = synthetic.write_dataset(tmp_path / "data", recipe, 2)
    args = measure.train_args(recipe, tiny_model, data, tmp_path / "out", 1, None)
    model_args, _, _, finetuning_args, _ = get_train_args(args)
    assert finetuning_args.stage == "dpo" and finetuning_args.use_ref_model
    model = load_model(load_tokenizer(model_args)["tokenizer"], model_args, finetuning_args, is_trainable=True)
    r = _plan_recipe(tmp_path, recipe)
    assert count_parameters(model) == (r["trainable_params"], r["total_params"])


def _plan_recipe(tmp_path, recipe: dict) -> dict:
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    return _plan(str(path))


# ---------------------------------------------------------------------------------------------
# random-weight model
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Qwen3-8B.json", "Meta-Llama-3-8B.json"])
def test_random_model_has_the_planned_parameters_on_the_meta_device(name):
    cfg = _facts(name)
    model = meta_model(cfg)
    planned = plan.arch_from_config(cfg, name).total_params()
    assert sum(p.numel() for p in model.parameters()) == planned
    assert sum(math.prod(shape) for _, shape in checkpoint_tensors(model)) == planned  # what would be written
    assert all(p.device.type == "meta" for p in model.parameters())


def test_random_model_of_the_tiny_config_loads_like_a_checkpoint(tiny_model, byte_tokenizer_dir, tmp_path):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    cfg = json.loads((tiny_model / "config.json").read_text())
    stamp = write_random_model(cfg, tmp_path / "m", tokenizer=str(byte_tokenizer_dir), shard_bytes=16 << 20)
    assert stamp["reused"] is False and (tmp_path / "m" / "model.safetensors.index.json").is_file()  # several shards
    model, info = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    fixture = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    planned = plan.arch_from_config(cfg, "tiny").total_params()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in fixture.parameters()) == planned
    with safe_open(str(tiny_model / "model.safetensors"), "pt") as fh:
        assert set(json.loads((tmp_path / "m" / "model.safetensors.index.json").read_text())["weight_map"]) == set(fh.keys())
    weight = model.model.layers[0].mlp.up_proj.weight
    assert 0.01 < float(weight.detach().std()) < 0.03 and bool((model.model.norm.weight == 1).all())
    assert write_random_model(cfg, tmp_path / "m", tokenizer=str(byte_tokenizer_dir), shard_bytes=16 << 20)["reused"] is True


def test_random_model_tokenizer_fits_the_vocabulary(tmp_path, monkeypatch):
    """Qwen models get the fixture tokenizer with Qwen3's real ids; others the byte-level stand-in,
    whose ids fit any vocabulary and which renders every chat format's special tokens as one token."""
    from transformers import AutoTokenizer

    from llamafactory_ext import fixtures
    from llamafactory_ext.plan import random_model

    called = []
    monkeypatch.setattr(fixtures, "build_tokenizer_json", lambda out: called.append(out))
    assert "Qwen3" in random_model.write_tokenizer(tmp_path, _facts("Qwen3-8B.json")) and called == [tmp_path]
    llama = tmp_path / "llama"
    llama.mkdir()
    assert "byte-level" in random_model.write_tokenizer(llama, _facts("Meta-Llama-3-8B.json"))
    tok = AutoTokenizer.from_pretrained(str(llama))
    assert len(tok) < 300 and tok.eos_token == "<|eot_id|>" and tok.bos_token == "<|begin_of_text|>"
    assert len(tok("<|start_header_id|>user<|end_header_id|>", add_special_tokens=False)["input_ids"]) == 6
    with pytest.raises(UserError, match="do not fit"):
        random_model.write_tokenizer(tmp_path / "x", {"vocab_size": 100, "model_type": "llama"}, tokenizer=str(llama))


# ---------------------------------------------------------------------------------------------
# synthetic rows through LLaMA-Factory's data pipeline
# ---------------------------------------------------------------------------------------------
# (recipe keys, tokenizer): "fixture" = the tiny model's tokenizer with Qwen3's real ids (what measure
# uses for a Qwen model), "bytes" = the byte-level stand-in (what it uses for a Llama-3 model; fast:
# `datasets` fingerprints a tokenizer by pickling its whole vocabulary, 4 s for Qwen's).
CASES = {
    "sft-packed": ({"stage": "sft", "template": "qwen3", "enable_thinking": None, "packing": True, "neat_packing": True,
                    "cutoff_len": 96}, "fixture"),
    "sft": ({"stage": "sft", "template": "qwen3", "enable_thinking": True, "packing": False, "cutoff_len": 96}, "bytes"),
    "dpo": ({"stage": "dpo", "template": "qwen3", "cutoff_len": 96}, "bytes"),
    "pt": ({"stage": "pt", "template": "llama3", "cutoff_len": 80}, "bytes"),
    "pt-packing": ({"stage": "pt", "template": "llama3", "packing": True, "cutoff_len": 80}, "bytes"),
    "llama3-sft": ({"stage": "sft", "template": "llama3", "packing": False, "cutoff_len": 64}, "bytes"),
}


@pytest.fixture(scope="module")
def byte_tokenizer_dir(tiny_model, tmp_path_factory):
    """The tiny model with the byte-level stand-in tokenizer (loads in milliseconds, not seconds)."""
    import shutil

    folder = tmp_path_factory.mktemp("byte-tokenizer")
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model / name, folder / name)
    write_byte_tokenizer(folder, "llama")
    return folder


@pytest.mark.parametrize("case", list(CASES))
def test_synthetic_rows_come_out_of_llamafactory_full_length(case, tiny_model, byte_tokenizer_dir, tmp_path,
                                                            fast_fingerprints):
    """Every sequence LLaMA-Factory builds from the synthetic rows, with the recipe's template, is
    exactly synthetic.sequence_length() long: cutoff_len, or the pack / block it fills."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    keys, tokenizer = CASES[case]
    recipe = {"finetuning_type": "lora", "lora_target": "all", "per_device_train_batch_size": 2, "report_to": "none", **keys}
    model_dir = tiny_model if tokenizer == "fixture" else byte_tokenizer_dir
    data = synthetic.write_dataset(tmp_path / "data", recipe, 5)
    args = measure.train_args({**recipe, "model_name_or_path": str(model_dir)}, model_dir, data, tmp_path / "out", 2, None)
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    stage = {"dpo": "rm"}.get(recipe["stage"], recipe["stage"])
    dataset = get_dataset(template, model_args, data_args, training_args, stage=stage, **tokenizer_module)["train_dataset"]
    want = synthetic.sequence_length(recipe)
    columns = ("chosen_input_ids", "rejected_input_ids") if stage == "rm" else ("input_ids",)
    lengths = {len(ids) for col in columns for ids in dataset[col]}
    assert len(dataset) >= 5 and lengths == {want}, (case, lengths, want)


# ---------------------------------------------------------------------------------------------
# the measurement
# ---------------------------------------------------------------------------------------------
def test_measure_without_cuda_is_one_clear_line(ext_cli, repo_root):
    proc = run_cmd([*ext_cli, "plan", "recipes/v3_mixed.yaml", "measure=true"], cwd=repo_root)
    assert proc.returncode == 2, output_tail(proc)
    assert "trainable params: 65,470,464" in proc.stdout  # the estimate first: it needs no GPU
    assert proc.stderr.strip().splitlines() == [
        ("llamafactory-ext plan: error: plan measure=true needs a CUDA GPU: none is visible "
        "(torch.cuda.is_available() is false); the estimate above needs none")]


def test_measure_changes_only_what_a_measurement_must(repo_root, tmp_path):
    from llamafactory_ext.plan.recipe import recipe_keys

    cfg, path = plan.parse_args([str(repo_root / "recipes" / "v3_mixed.yaml"), "deepspeed=ds_configs/zero2.json"])
    ds = plan.load_deepspeed(cfg.recipe["deepspeed"], path)
    args = measure.train_args(cfg.recipe, tmp_path / "m", tmp_path / "d", tmp_path / "o", 4, ds.path)
    assert set(args) <= recipe_keys()
    for key in ("lora_rank", "lora_alpha", "lora_dropout", "lora_target", "cutoff_len", "per_device_train_batch_size",
                "packing", "neat_packing", "template", "enable_thinking", "bf16", "disable_gradient_checkpointing"):
        assert args[key] == cfg.recipe[key], key
    assert args["deepspeed"] == str(repo_root / "ds_configs" / "zero2.json")
    assert (args["max_steps"], args["gradient_accumulation_steps"], args["dataset"]) == (4, 1, synthetic.DATASET)
    assert [m for m, _ in measure.required_packages(cfg.recipe)] == ["deepspeed"]
    q = plan.parse_args([str(repo_root / "recipes" / "wikipedia_it_pt.yaml")])[0].recipe
    assert [m for m, _ in measure.required_packages(q)] == ["bitsandbytes", "bitsandbytes"]


def test_measure_arguments_of_every_shipped_recipe_pass_llamafactorys_parser(repo_root, tiny_model, tmp_path):
    """What the measurement child hands to run_exp is accepted by LLaMA-Factory's own argument checks
    (evaluation, early stopping and checkpoint keys of the recipes switched off consistently); on CPU,
    so with the CPU overrides (no bf16, 4-bit or DeepSpeed here)."""
    from llamafactory.hparams import get_train_args

    from llamafactory_ext.config import load_yaml
    from llamafactory_ext.runtime import CPU_OVERRIDES

    for path in sorted((repo_root / "recipes").glob("*.yaml")):
        recipe = load_yaml(path)
        if not recipe.get("do_train"):
            continue
        data = synthetic.write_dataset(tmp_path / path.stem, recipe, 1)
        args = measure.train_args({**recipe, **CPU_OVERRIDES}, tiny_model, data, tmp_path / "out", 2, None)
        _, data_args, training_args, finetuning_args, _ = get_train_args(args)
        assert training_args.max_steps == 2 and training_args.eval_strategy == "no", path.name
        assert finetuning_args.stage == recipe.get("stage", "sft") and data_args.dataset == [synthetic.DATASET]


@pytest.mark.e2e
def test_measure_pipeline_on_cpu_runs_llamafactory_and_logs_the_planned_count(repo_root, tiny_model, byte_tokenizer_dir,
                                                                              tmp_path, monkeypatch):
    """measure.run end to end with the GPU check switched off: the tiny config is written with
    random weights, the shipped V3 recipe (CPU overrides from llamafactory_ext.runtime) trains 2
    steps in a child process through LLaMA-Factory's run_exp (what `llamafactory-cli train` runs),
    every step sees batch x cutoff_len tokens, and the count LLaMA-Factory logs is the planner's."""
    from llamafactory_ext.runtime import CPU_OVERRIDES, cpu_env

    for key, value in cpu_env({}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(measure, "require_cuda", lambda *args: None)
    overrides = [f"{k}={'null' if v is None else str(v).lower()}" for k, v in CPU_OVERRIDES.items()]
    cfg, path = plan.parse_args([str(repo_root / "recipes" / "v3_mixed.yaml"), f"model_name_or_path={tiny_model}",
                                 "cutoff_len=32", "per_device_train_batch_size=2", "measure=true", "steps=2", *overrides,
                                 f"model_dir={tmp_path / 'random'}", f"tokenizer={byte_tokenizer_dir}"])
    result = plan.plan_recipe(cfg, path)
    m = measure.run(cfg, path, result)
    assert m["status"] == "ok" and m["steps"] == 2, m
    assert m["llamafactory_logged"] == {"trainable_params": result["trainable_params"], "all_params": result["total_params"]}
    assert m["count_matches_plan"] is True
    assert [s["tokens"] for s in m["readings"]["steps"]] == [2 * 32] * 2  # packed: 31 tokens + 1 pad each
    assert m["speed"]["tokens_per_step"] == 64 and m["speed"]["mfu"] is None  # no GPU: no peak to compare with
    assert [r["measured_bytes"] for r in m["rows"]] == [None] * len(m["rows"])
    text = measure.render_text({**m, "device": "cpu"})
    assert "LLaMA-Factory logged trainable params" in text and "the planned count" in text
    assert json.loads(json.dumps(m)) == m  # plain JSON: it reads back equal


FAKE_STEPS = [
    {"step": 1, "seconds": 2.0, "tokens": 8192, "start": {}, "end": {"allocated": 17 * GIB, "reserved": 30 * GIB, "device_used": 31 * GIB},
     "peak_allocated": 30 * GIB, "peak_reserved": 32 * GIB},
    {"step": 2, "seconds": 1.0, "tokens": 8192, "start": {}, "end": {"allocated": 17 * GIB, "reserved": 33 * GIB, "device_used": 34 * GIB},
     "peak_allocated": 32 * GIB, "peak_reserved": 34 * GIB},
    {"step": 3, "seconds": 1.2, "tokens": 8192, "start": {}, "end": {"allocated": 17 * GIB, "reserved": 34 * GIB, "device_used": 35 * GIB},
     "peak_allocated": 32 * GIB, "peak_reserved": 34 * GIB},
]


def test_comparison_table_speed_and_report_from_readings(repo_root, tmp_path):
    cfg, path = plan.parse_args([str(repo_root / "recipes" / "v3_mixed.yaml"), "measure=true"])
    result = plan.plan_recipe(cfg, path)
    readings = {"status": "ok", "device": "NVIDIA H100 80GB HBM3", "versions": {"llamafactory": "0.9.5"},
                "after_load": {"allocated": int(15.5 * GIB)}, "steps": FAKE_STEPS,
                "logged": {"trainable_params": 65_470_464, "all_params": 8_256_205_824}}
    m = measure.compare(cfg, cfg.recipe, result, readings)
    rows = {r["term"]: r for r in m["rows"]}
    peak = rows["peak allocated"]
    assert peak["measured_bytes"] == 32 * GIB
    assert peak["error_percent"] == round(100 * (result["allocated_bytes"] - 32 * GIB) / (32 * GIB), 1)
    assert rows["outside PyTorch (CUDA context, cuBLAS, NCCL)"]["measured_bytes"] == GIB
    assert rows["gradients + activations + logits (within a step)"]["measured_bytes"] == 15 * GIB
    s = m["speed"]
    assert s["step_seconds"] == pytest.approx(1.1) and s["gpu"]["name"] == "H100 SXM"
    assert s["mfu"] == pytest.approx(s["flops"]["model"] / 1.1 / 989e12) and s["hfu"] > s["mfu"]
    assert m["count_matches_plan"] is True
    text = measure.render_text(m)
    assert "MFU" in text and "without the gradient-checkpointing recompute" in text and "peak allocated" in text
    (tmp_path / "r.json").write_text(json.dumps({**result, "measure": m}))
    from llamafactory_ext.plan import report

    assert report.main([str(tmp_path / "t.md"), "--note", "a note", str(tmp_path / "r.json"), str(tmp_path / "missing.json")]) == 0
    md = (tmp_path / "t.md").read_text()
    assert "| recipe | term | estimated | measured | error |" in md and "| `v3_mixed.yaml` (lora) | peak allocated |" in md
    assert "missing.json" in md and "- a note" in md


def test_every_shipped_training_recipe_plans(repo_root):
    """Every recipe that trains plans without an error or a warning (one trained from another recipe's
    output is planned on the shipped base of its template); recipes/anita_dpo_qlora.yaml (Llama-3-8B,
    QLoRA DPO, r16 on the seven projections) gets the exact count LLaMA-Factory logs."""
    from llamafactory_ext.config import load_yaml

    recipes = [p for p in sorted((repo_root / "recipes").glob("*.yaml")) if load_yaml(p).get("do_train")]
    assert len(recipes) >= 6
    for path in recipes:
        recipe = load_yaml(path)
        made_here = str(recipe["model_name_or_path"]).startswith("saves/")  # the output of another recipe
        base = "meta-llama/Meta-Llama-3-8B-Instruct" if recipe.get("template") == "llama3" else "Qwen/Qwen3-8B"
        r = _plan(str(path), *([f"model_name_or_path={base}"] if made_here else []))
        assert r["trainable_params"] > 0 and r["warnings"] == [], path.name
        if r["stage"] == "dpo":  # chosen + rejected
            assert r["sequences_per_device"] == 2 * recipe.get("per_device_train_batch_size", 8)
            assert r["tokens_per_device"] == r["sequences_per_device"] * recipe.get("cutoff_len", 2048)
        if path.name == "anita_dpo_qlora.yaml":
            assert (r["trainable_params"], r["total_params"]) == (41_943_040, 8_030_261_248 + 41_943_040)
