"""The planner's FLOPs, bytes per logit and decode bytes (plan/hardware.py, plan/memory.py) measured
by torch on the tiny Qwen3 on CPU, not restated from the formulas: torch.utils.flop_counter for one
training step (LoRA, full, gradient-checkpointing recompute, DPO's reference forward), torch's memory
profiler for the loss's bytes per logit, a dispatch mode for the weight bytes a decode step reads."""

from __future__ import annotations

import pytest

from llamafactory_ext import plan
from llamafactory_ext.plan import hardware

SEVEN = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


SEQ, BATCH = 16, 2  # one step of 2 sequences of 16 tokens


def _tiny(small_model, dtype=None, **config):
    """The tiny Qwen3's architecture (config.json of the fixture, ``config`` changed), random weights,
    eager attention (its matmuls are aten.bmm, which torch's FLOP counter knows on a CPU)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(str(small_model), **config)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=dtype or torch.float32)
    return model, plan.arch_from_config(cfg.to_dict(), "tiny")


def _counted_step(model, ids, gradient_checkpointing: bool = False) -> dict[str, int]:
    """What torch.utils.flop_counter counts in one training step: the forward's and the backward's
    aten.mm (every Linear: decoder layers, lm_head, LoRA A and B) and aten.bmm inside the decoder
    layers (attention: eager attention multiplies the whole S x S square; the rotary embedding's
    own small bmm sits outside the layers and has no backward)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})  # LLaMA-Factory's default (use_reentrant_gc)
    with FlopCounterMode(display=False) as forward:
        loss = model(input_ids=ids, labels=ids).loss
    with FlopCounterMode(display=False) as backward:
        loss.backward()
    fwd, bwd = forward.get_flop_counts(), backward.get_flop_counts()
    layers = [v for k, v in fwd.items() if k.rsplit(".", 2)[-2:-1] == ["layers"]]
    assert len(layers) == model.config.num_hidden_layers
    mm, bmm = torch.ops.aten.mm, torch.ops.aten.bmm
    return {"forward_mm": fwd["Global"].get(mm, 0), "forward_bmm": sum(v.get(bmm, 0) for v in layers),
            "backward_mm": bwd["Global"].get(mm, 0), "backward_bmm": bwd["Global"].get(bmm, 0)}


def _planned_split(arch, params, rank, **kw) -> dict[str, float]:
    """The planner's step FLOPs split into its matmul part (seq_len 0: no attention) and its causal
    attention part (the rest), per forward / backward / recompute / reference forward."""
    whole = hardware.train_step_flops(arch, params, rank, BATCH * SEQ, SEQ, **kw)
    matmul = hardware.train_step_flops(arch, params, rank, BATCH * SEQ, 0, **kw)
    return {**{f"{k}_mm": matmul[k] for k in matmul}, **{f"{k}_attn": whole[k] - matmul[k] for k in whole}}


def test_step_flops_equal_torchs_flop_counter_lora_full_and_recompute(small_model):
    """The planner's FLOPs (plan/hardware.py) against torch.utils.flop_counter on the tiny Qwen3 on
    CPU, forward and backward of one step: equal to the FLOP, for the matmuls of LoRA (frozen base:
    activation gradients everywhere, weight gradients only for A and B) and of full fine-tuning, for
    the gradient-checkpointing recompute (the decoder layers' forward once more) and for DPO's
    reference forward (the adapter off, no gradients). Attention: the dense eager kernel multiplies
    the whole S x S square, the planner counts the causal half that flash / SDPA computes, so
    torch's count is exactly twice the planner's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.flop_counter import FlopCounterMode

    ids = torch.randint(0, 200, (BATCH, SEQ))
    model, arch = _tiny(small_model)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=SEVEN.split(",")))
    lora.enable_input_require_grads()  # as LLaMA-Factory does for gradient checkpointing: layer 0 gets input gradients
    params = plan.count_params(arch, {"finetuning_type": "lora", "lora_rank": 4, "lora_target": "all"})
    assert params.trainable == sum(p.numel() for p in lora.parameters() if p.requires_grad)
    counted, planned = _counted_step(lora, ids), _planned_split(arch, params, 4, gradient_checkpointing=True)
    assert (counted["forward_mm"], counted["backward_mm"]) == (planned["forward_mm"], planned["backward_mm"])
    assert (counted["forward_bmm"], counted["backward_bmm"]) == (2 * planned["forward_attn"], 2 * planned["backward_attn"])
    lora.zero_grad()
    recomputed = _counted_step(lora, ids, gradient_checkpointing=True)  # the backward runs each layer's forward again
    assert recomputed["backward_mm"] - counted["backward_mm"] == planned["recompute_mm"]
    assert recomputed["backward_bmm"] - counted["backward_bmm"] == 2 * planned["recompute_attn"]
    with lora.disable_adapter(), torch.no_grad(), FlopCounterMode(display=False) as ref:
        lora(input_ids=ids)
    dpo = _planned_split(arch, params, 4, stage="dpo", reference="adapter disabled")
    assert ref.get_flop_counts()["Global"][torch.ops.aten.mm] == dpo["reference_forward_mm"]

    full_model, _ = _tiny(small_model)
    full = plan.count_params(arch, {"finetuning_type": "full"})
    assert full.trainable == sum(p.numel() for p in full_model.parameters())
    counted, planned = _counted_step(full_model, ids), _planned_split(arch, full, 0, gradient_checkpointing=False)
    assert (counted["forward_mm"], counted["backward_mm"]) == (planned["forward_mm"], planned["backward_mm"])
    assert (counted["forward_bmm"], counted["backward_bmm"]) == (2 * planned["forward_attn"], 2 * planned["backward_attn"])
    assert planned["recompute_mm"] == planned["recompute_attn"] == 0


def _loss_peak_bytes(small_model, vocab: int) -> int:
    """Peak bytes of the tensors one bf16 LoRA training step creates (forward + loss + backward, as
    the Trainer runs it: the outputs dropped before the backward), by torch's memory profiler."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    model, _ = _tiny(small_model, dtype=torch.bfloat16, vocab_size=vocab)
    model = get_peft_model(model, LoraConfig(r=4, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    ids = torch.randint(0, 200, (BATCH, SEQ))

    def step():
        model(input_ids=ids, labels=ids).loss.backward()

    step()  # LoRA gradients exist from here on, as in any step after the first
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        step()
    live = peak = 0
    for _, action, _, nbytes in sorted(prof._memory_profile().timeline, key=lambda event: event[0]):
        live += nbytes if action == Action.CREATE else -nbytes if action == Action.DESTROY else 0
        peak = max(peak, live)
    return peak


def test_bytes_per_logit_equal_torchs_memory_profile(small_model):
    """The planner's 12 bytes per token and vocabulary entry at the SFT / pt loss (plan/memory.py)
    against torch's memory profiler: two bf16 steps of the tiny model that differ only in the size
    of the vocabulary; the peak grows by exactly tokens x added vocabulary x 12 bytes."""
    from llamafactory_ext.plan import memory

    grown = _loss_peak_bytes(small_model, 8192) - _loss_peak_bytes(small_model, 4096)
    assert grown == BATCH * SEQ * 4096 * memory.LOGIT_BYTES == BATCH * SEQ * 4096 * 12


def test_decode_reads_every_weight_the_forward_touches():
    """decode_bound: one decode step reads every weight once (a tied embedding is the lm_head and is
    read whole; an untied one is a lookup of a few rows), at 2 bytes a parameter (bf16)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves
    from transformers import AutoModelForCausalLM, Qwen3Config

    class Reads(TorchDispatchMode):
        def __init__(self, weights):
            super().__init__()
            self.weights, self.read = weights, {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            for t in tree_leaves((args, kwargs)):
                if isinstance(t, torch.Tensor) and t.data_ptr() in self.weights and func is not torch.ops.aten.embedding.default:
                    self.read[t.data_ptr()] = t.untyped_storage().nbytes()
            return func(*args, **(kwargs or {}))

    spec = hardware.gpu_spec("NVIDIA H100 80GB HBM3")
    for tied in (True, False):
        cfg = Qwen3Config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                          num_key_value_heads=1, head_dim=32, tie_word_embeddings=tied)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        reads = Reads({p.data_ptr() for p in model.parameters()})
        with torch.no_grad(), reads:
            model(input_ids=torch.tensor([[5]]))
        b = hardware.decode_bound(plan.arch_from_config(cfg.to_dict(), "t"), 8, spec)
        assert b["weight_bytes_per_step"] == sum(reads.read.values()), tied
        assert b["tokens_per_s"] == pytest.approx(8 * 3.35e12 / b["weight_bytes_per_step"])  # H100 SXM: 3.35 TB/s
    assert hardware.gpu_spec("NVIDIA L40") is None and hardware.gpu_spec("NVIDIA L40S").name == "L40S"
