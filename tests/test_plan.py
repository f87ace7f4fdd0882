"""`llamafactory-ext plan`: exact parameter counts (published figures, PEFT on the tiny model; the
count LLaMA-Factory logs in a real training run is in tests/test_plan_measure.py) and the memory
formula's activation term against the tensors autograd really saves for backward on a small Qwen3."""

from __future__ import annotations

import json
import re

import pytest

from llamafactory_ext import plan
from llamafactory_ext.config import UserError
from tests.helpers import output_tail, run_cmd

SEVEN = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


def _plan(*argv: str) -> dict:
    result = plan.build_plan(list(argv))
    result.pop("_format")
    return result


@pytest.mark.parametrize("name", ["v1_nothink", "v2_think", "v3_mixed"])
def test_published_multit_recipes_count_exactly(repo_root, name):
    r = _plan(str(repo_root / "recipes" / f"{name}.yaml"))
    assert r["trainable_params"] == 65_470_464
    assert r["total_params"] == 8_256_205_824


def test_gsm8k_qlora_recipe_counts_exactly(repo_root):
    r = _plan(str(repo_root / "recipes" / "gsm8k_synth_qlora.yaml"))
    assert r["method"] == "qlora"
    assert r["trainable_params"] == 43_646_976


def test_llama3_r32_seven_projections(repo_root):
    r = _plan(str(repo_root / "recipes" / "v3_mixed.yaml"), "model_name_or_path=meta-llama/Meta-Llama-3-8B",
              "lora_rank=32", f"lora_target={SEVEN}")
    assert r["trainable_params"] == 83_886_080
    # Llama-3-8B has 8,030,261,248 parameters (untied 128,256-token embeddings)
    assert r["total_params"] - r["trainable_params"] == 8_030_261_248


def test_lora_target_all_is_every_linear_but_lm_head(repo_root):
    recipe = str(repo_root / "recipes" / "v3_mixed.yaml")
    assert _plan(recipe, "lora_target=all")["trainable_params"] == _plan(recipe, f"lora_target={SEVEN}")["trainable_params"]
    with_head = _plan(recipe, f"lora_target={SEVEN},lm_head")["trainable_params"]
    assert with_head - 65_470_464 == 24 * (4096 + 151_936)
    assert _plan(recipe, "lora_target=q_proj,v_proj")["trainable_params"] == 36 * 24 * ((4096 + 4096) + (4096 + 1024))


@pytest.mark.parametrize("target,rank,dora", [("all", 4, False), ("q_proj,v_proj,down_proj", 3, False), ("all", 2, True)])
def test_tiny_model_count_equals_peft(tiny_model, tmp_path, target, rank, dora):
    """The planner's count from config.json alone equals PEFT's count on the real tiny model, with
    LLaMA-Factory's own target expansion (find_all_linear_modules) for `all`."""
    from llamafactory.model.model_utils.misc import find_all_linear_modules
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    targets = find_all_linear_modules(model, freeze_vision_tower=True) if target == "all" else target.split(",")
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=8, target_modules=targets, use_dora=dora))
    trainable, total = peft_model.get_nb_trainable_parameters()
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model_name_or_path: {tiny_model}\nfinetuning_type: lora\nlora_rank: {rank}\n"
                      f"lora_target: {target}\nuse_dora: {str(dora).lower()}\n")
    r = _plan(str(recipe))
    assert (r["trainable_params"], r["total_params"]) == (trainable, total)
    assert r["architecture"]["tied"] is True  # the fixture ties embeddings: counted once


def test_full_and_freeze_counts_match_the_model(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    total = sum(p.numel() for p in model.parameters())
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model_name_or_path: {tiny_model}\nfinetuning_type: full\n")
    assert _plan(str(recipe))["trainable_params"] == total == _plan(str(recipe))["total_params"]
    last = sum(p.numel() for n, p in model.named_parameters() if ".layers.1." in n)
    assert _plan(str(recipe), "finetuning_type=freeze", "freeze_trainable_layers=1")["trainable_params"] == last


def _saved_bytes_per_token_layer(monkey_cfg: dict, **kw) -> float:
    """Bytes autograd saves for backward per token per decoder layer (difference 2 vs 1 layers and
    128 vs 64 tokens removes the per-model and per-weight terms)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    def measure(layers: int, seq: int) -> int:
        torch.manual_seed(0)
        cfg = Qwen3Config(vocab_size=512, num_hidden_layers=layers, tie_word_embeddings=False, **monkey_cfg)
        cfg._attn_implementation = "sdpa"
        model = Qwen3ForCausalLM(cfg).to(torch.float32 if kw.get("fp32_master") else torch.bfloat16)
        if kw.get("rank"):
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=kw["rank"], lora_alpha=8, lora_dropout=kw.get("dropout", 0.0),
                                                     target_modules=SEVEN.split(",")))
            for p in model.parameters():
                if p.requires_grad:
                    p.data = p.data.float()  # LLaMA-Factory upcasts trainable params
        model.train()
        seen: dict = {}

        def pack(t):
            st = t.untyped_storage()
            seen[(st.data_ptr(), st.nbytes())] = st.nbytes()
            return t

        ids = torch.randint(0, 512, (1, seq))
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=ids, labels=ids)
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        return sum(v for k, v in seen.items() if k[0] not in params)

    return ((measure(2, 128) - measure(1, 128)) - (measure(2, 64) - measure(1, 64))) / 64


@pytest.mark.parametrize("case", [
    {"method": "full", "fp32_master": True},
    {"method": "lora", "rank": 8},
    {"method": "lora", "rank": 4, "dropout": 0.1},
])
def test_activation_formula_matches_autograd_saved_tensors(case):
    """Two shapes with different hidden / intermediate / head counts: the formula is exact on CPU
    (mask_bytes=2 there: CPU dropout saves a bf16 mask, CUDA a bool one)."""
    for dims in ({"hidden_size": 128, "intermediate_size": 384, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32},
                 {"hidden_size": 192, "intermediate_size": 256, "num_attention_heads": 6, "num_key_value_heads": 1, "head_dim": 64}):
        arch = plan.arch_from_config({"model_type": "qwen3", "vocab_size": 512, "num_hidden_layers": 1,
                                      "tie_word_embeddings": False, **dims}, "test")
        kw = {k: v for k, v in case.items() if k != "method"}
        measured = _saved_bytes_per_token_layer(dims, **kw)
        formula = plan.layer_activation_bytes(arch, case["method"], case.get("rank", 0), tuple(SEVEN.split(",")),
                                              case.get("dropout", 0.0), mask_bytes=2, fp32_master=case.get("fp32_master", False))
        assert formula == measured, (dims, case, formula, measured)


def test_memory_terms_move_the_right_way(repo_root):
    v3 = str(repo_root / "recipes" / "v3_mixed.yaml")
    base = _plan(v3, "gpu_mem=80GB")
    gib = 1024**3
    mem = base["memory_bytes"]
    # bf16 frozen weights: 2 bytes per frozen parameter; LoRA params, grads fp32; AdamW 8 B/param
    assert mem["weights"] == 2 * 8_190_735_360
    assert mem["trainable params"] == mem["gradients"] == 4 * 65_470_464
    assert mem["optimizer states"] == 8 * 65_470_464
    assert base["fits"] is True
    assert _plan(v3, "gpu_mem=24GB")["fits"] is False
    # 8-bit AdamW: about a quarter of the AdamW states
    assert _plan(v3, "optim=adamw_bnb_8bit")["memory_bytes"]["optimizer states"] < mem["optimizer states"] / 3.5
    # ZeRO-2: optimizer partition halves from 1 to 2 GPUs; CPU offload removes it from the GPU
    z1 = _plan(v3, "deepspeed=ds_configs/zero2.json")["memory_bytes"]["optimizer states"]
    z2 = _plan(v3, "deepspeed=ds_configs/zero2.json", "gpus=2")["memory_bytes"]["optimizer states"]
    assert z2 == pytest.approx(z1 / 2, abs=2)
    assert _plan(v3, "deepspeed=ds_configs/zero2_offload.json")["memory_bytes"]["optimizer states"] == 0
    # 4-bit weights incl. quantization constants: ~0.516 B per quantized parameter
    q = _plan(v3, "quantization_bit=4")
    assert 5.5 * gib < q["memory_bytes"]["weights"] < 5.8 * gib
    # gradient checkpointing: activations shrink by an order of magnitude; doubling the batch doubles them
    off = _plan(v3, "disable_gradient_checkpointing=true")
    assert off["memory_bytes"]["activations"] > 10 * mem["activations"]
    assert off["activations_bytes"] == base["activations_bytes"]
    big = _plan(v3, "per_device_train_batch_size=8")
    assert big["memory_bytes"]["activations"] == pytest.approx(2 * mem["activations"], rel=1e-6)
    assert base["peak_gib"] == pytest.approx(sum(mem.values()) / gib, abs=0.01)


def test_config_sources_and_errors(tmp_path, repo_root):
    v3 = str(repo_root / "recipes" / "v3_mixed.yaml")
    with pytest.raises(UserError, match="no shipped facts"):
        _plan(v3, "model_name_or_path=acme/unknown-7b")
    empty = tmp_path / "empty_model"
    empty.mkdir()
    with pytest.raises(UserError, match="no config.json"):
        _plan(v3, f"model_name_or_path={empty}")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 8}))
    with pytest.raises(UserError, match="model_type 'gpt2' is not supported"):
        _plan(v3, f"model_name_or_path={tmp_path / 'm'}")
    with pytest.raises(UserError, match="lora_target: module 'qkv'"):
        _plan(v3, "lora_target=qkv")
    with pytest.raises(UserError, match="gpu_mem"):
        _plan(v3, "gpu_mem=lots")
    with pytest.raises(UserError, match="deepspeed: config file"):
        _plan(v3, "deepspeed=nope.json")
    with pytest.raises(UserError, match="recipe first"):
        _plan("gpus=2")
    # a local model directory is read instead of the shipped facts
    (tmp_path / "q").mkdir()
    cfg = json.loads((plan.RESOURCES / "Qwen3-8B.json").read_text())
    (tmp_path / "q" / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 18}))
    assert _plan(v3, f"model_name_or_path={tmp_path / 'q'}")["trainable_params"] == 65_470_464 // 2


def test_cli_text_and_json(ext_cli, repo_root):
    recipe = repo_root / "recipes" / "gsm8k_synth_qlora.yaml"
    proc = run_cmd([*ext_cli, "plan", recipe, "gpu_mem=12GB"], cwd=repo_root)
    assert proc.returncode == 0, output_tail(proc)
    assert "trainable params: 43,646,976 || all params: 8,234,382,336" in proc.stdout
    for row in ("weights", "trainable params", "gradients", "optimizer states", "activations", "CUDA context"):
        assert re.search(rf"^  {row}\s+\d+\.\d\d GiB", proc.stdout, flags=re.MULTILINE), row
    assert "fits in 12.0 GiB: FITS" in proc.stdout
    proc = run_cmd([*ext_cli, "plan", recipe, "gpu_mem=6GB", "--json"], cwd=repo_root)
    assert proc.returncode == 0, output_tail(proc)
    data = json.loads(proc.stdout)
    assert data["fits"] is False and data["trainable_params"] == 43_646_976
    assert set(data["activations_bytes"]) == {"gradient_checkpointing", "no_gradient_checkpointing"}
    proc = run_cmd([*ext_cli, "plan", recipe, "model_name_or_path=acme/x"], cwd=repo_root)
    assert proc.returncode == 2 and "acme/x" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# what would fit
# ---------------------------------------------------------------------------------------------
GIB = 1024**3


def _qwen3_8b_v3_peak(batch: int, cutoff: int) -> float:
    """docs/plan.md's formula written out by hand for recipes/v3_mixed.yaml (Qwen3-8B, LoRA r24 on the seven
    projections, dropout 0.1, bf16, AdamW, gradient checkpointing on, 1-byte CUDA dropout masks)."""
    h, i, layers, heads, kv_heads, head_dim, vocab, r = 4096, 12288, 36, 32, 8, 128, 151_936, 24
    q, kv = heads * head_dim, kv_heads * head_dim
    frozen, trainable = 8_190_735_360, 65_470_464
    fan_in = 3 * h + q + 2 * h + i  # q, k, v, o, gate, up, down
    per_layer = 18 * h + 8 * i + 10 * q + 8 * kv + (8 * heads + 4 * kv_heads + 8) + 2 * r * 7 + (2 + 1) * fan_in
    tokens = batch * cutoff
    activations = tokens * (layers * 2 * h + per_layer + 9 * h)
    logits = 12 * tokens * vocab
    allocated = 2 * frozen + (4 + 4 + 8) * trainable + activations + logits
    return allocated * 1.05 + 0.75 * GIB


def test_v3_mixed_at_24gb_lists_changes_that_fit_and_are_the_mildest(repo_root):
    r = _plan(str(repo_root / "recipes" / "v3_mixed.yaml"), "gpu_mem=24GB")
    assert r["fits"] is False and r["peak_bytes"] == pytest.approx(_qwen3_8b_v3_peak(4, 2048), abs=2)
    by_key = {tuple(e["changes"]): e for e in r["fit_changes"]}
    assert all(not e["combination"] for e in r["fit_changes"])
    batch = by_key[("per_device_train_batch_size", "gradient_accumulation_steps")]
    assert batch["changes"] == {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 32}  # 4 x 8 = 1 x 32
    assert _qwen3_8b_v3_peak(1, 2048) <= 24 * GIB < _qwen3_8b_v3_peak(2, 2048)  # batch 2 would not fit
    assert batch["peak_bytes"] == pytest.approx(_qwen3_8b_v3_peak(1, 2048), abs=2)
    cutoff = by_key[("cutoff_len",)]["changes"]["cutoff_len"]
    assert cutoff % 64 == 0 and _qwen3_8b_v3_peak(4, cutoff) <= 24 * GIB < _qwen3_8b_v3_peak(4, cutoff + 64)
    # 4-bit alone, ZeRO-2 offload alone, a lower rank alone: none saves the ~14 GiB (not offered)
    assert set(by_key) == {("per_device_train_batch_size", "gradient_accumulation_steps"), ("cutoff_len",)}
    # every suggestion, pasted back as key=value, fits
    for e in r["fit_changes"]:
        again = _plan(str(repo_root / "recipes" / "v3_mixed.yaml"), "gpu_mem=24GB", *e["paste"].split())
        assert again["fits"] is True and again["peak_bytes"] == e["peak_bytes"]


def test_no_single_change_fits_then_the_cheapest_combination(repo_root):
    v3 = str(repo_root / "recipes" / "v3_mixed.yaml")
    r = _plan(v3, "gpu_mem=12GB")
    (combo,) = r["fit_changes"]
    assert combo["combination"] and combo["peak_gib"] <= 12
    assert _plan(v3, "gpu_mem=12GB", *combo["paste"].split())["fits"] is True
    for kind_keys in (("quantization_bit",), ("per_device_train_batch_size",)):  # each part is needed
        fewer = [kv for kv in combo["paste"].split() if kv.split("=")[0] not in kind_keys]
        assert _plan(v3, "gpu_mem=12GB", *fewer)["fits"] is False
    assert _plan(v3, "gpu_mem=80GB")["fit_changes"] is None  # it fits: nothing to suggest
    text = plan.render_text(r)
    assert "no single change fits; the cheapest combination that does:" in text and combo["paste"] in text


def test_export_recipes_are_refused_in_one_line(ext_cli, repo_root):
    for name in ("anita_sft_merge", "anita_dpo_merge", "gsm8k_synth_merge"):
        proc = run_cmd([*ext_cli, "plan", f"recipes/{name}.yaml"], cwd=repo_root)
        assert proc.returncode == 2, output_tail(proc)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "is an export (merge) recipe for `llamafactory-cli export`" in lines[0]
    assert "plan the recipe that trains it: llamafactory-ext plan recipes/gsm8k_synth_qlora.yaml" in lines[0]


def test_a_model_that_a_merge_recipe_writes_is_planned_with_its_base(repo_root, monkeypatch):
    """recipes/anita_dpo_qlora.yaml trains on saves/anita_sft_merged, the export_dir of anita_sft_merge.yaml
    (Meta-Llama-3-8B-Instruct + the SFT adapter): same architecture, so Llama-3-8B's counts."""
    monkeypatch.chdir(repo_root)
    r = _plan("anita_dpo_qlora")  # a shipped recipe by name
    assert r["recipe"].endswith("anita_dpo_qlora.yaml") and r["model"] == "saves/anita_sft_merged"
    assert r["trainable_params"] == 32 * 16 * (4096 + 4096 + 4096 + 1024 + 4096 + 1024 + 4096 + 4096 + 3 * (4096 + 14336))
    assert r["total_params"] - r["trainable_params"] == 8_030_261_248
    assert any("export_dir of recipes/anita_sft_merge.yaml" in n and "Meta-Llama-3-8B-Instruct" in n for n in r["notes"])
    # two merges deep: anita_italian_qlora trains on saves/anita_dpo_merged (DPO merge of the SFT merge)
    r = _plan("anita_italian_qlora")
    assert r["total_params"] - r["trainable_params"] == 8_030_261_248
    with pytest.raises(UserError, match="pass the model it starts from instead, e.g. model_name_or_path=Qwen/Qwen3-8B"):
        _plan("anita_dpo_qlora", "model_name_or_path=saves/not_made_by_any_recipe")
