"""The hybrid Qwen families after Qwen3, read from ``config.json`` alone, as transformers 5.6 builds them.

- ``qwen3_5`` / ``qwen3_5_moe`` (``Qwen3_5ForConditionalGeneration`` / ``Qwen3_5MoeForConditionalGeneration``,
  what LLaMA-Factory loads through ``AutoModelForImageTextToText``): a vision tower + merger, then a text
  model whose ``layer_types`` mix ``linear_attention`` (Gated DeltaNet) and ``full_attention`` (gated
  softmax attention: ``q_proj`` makes the query AND a gate, so it is twice ``heads x head_dim`` wide);
  ``qwen3_5_moe`` replaces every MLP with routed experts + a shared expert.
- ``qwen3_5_text`` / ``qwen3_5_moe_text``: the same text model alone (``...ForCausalLM``).
- ``qwen3_next`` (``Qwen3NextForCausalLM``): text only, the same two layer kinds (the linear layer's
  projections fused as ``in_proj_qkvz`` / ``in_proj_ba``), MoE layers unless listed in ``mlp_only_layers``
  or skipped by ``decoder_sparse_step``.

What LoRA can wrap is what LLaMA-Factory's ``find_all_linear_modules`` finds: every ``nn.Linear`` of the
text layers (the routed experts are 3-D ``nn.Parameter`` tensors and the router is not a Linear, so
neither gets an adapter; the vision tower and merger are excluded while ``freeze_vision_tower`` /
``freeze_multi_modal_projector`` hold, their defaults). ``tests/test_plan_hybrid.py`` checks every count
against PEFT on tiny instances of transformers' own classes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

HYBRID_TYPES = ("qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text", "qwen3_next")
COMPOSITE_TYPES = ("qwen3_5", "qwen3_5_moe")  # vision tower + merger + text model
LINEAR, FULL = "linear_attention", "full_attention"
# transformers 5.6 defaults (Qwen3_5TextConfig / Qwen3NextConfig) for keys a config.json may leave out
DEFAULTS = {"linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
            "linear_num_key_heads": 16, "linear_num_value_heads": 32, "full_attention_interval": 4,
            "decoder_sparse_step": 1}


@dataclasses.dataclass(frozen=True)
class Hybrid:
    """What differs from a llama-like layer: the layer kinds, the linear attention, the experts, the vision tower."""

    layer_types: tuple[str, ...]
    fused_in_proj: bool  # qwen3_next: in_proj_qkvz + in_proj_ba; qwen3_5: in_proj_qkv, _z, _b, _a
    lin_key_dim: int  # linear_num_key_heads x linear_key_head_dim
    lin_value_dim: int  # linear_num_value_heads x linear_value_head_dim
    lin_value_heads: int
    lin_value_head_dim: int
    conv_kernel: int
    sparse: tuple[bool, ...]  # per layer: routed experts (True) or a dense MLP
    experts: int
    moe_intermediate: int
    shared_intermediate: int
    vision_tower: int  # parameters of the vision blocks, patch and position embeddings (0: text only)
    vision_merger: int  # the merger (LLaMA-Factory's "multi-modal projector")


def _get(cfg: dict[str, Any], key: str) -> int:
    value = cfg.get(key, DEFAULTS.get(key))
    return int(value) if value is not None else 0


def layer_types(cfg: dict[str, Any]) -> tuple[str, ...]:
    """``layer_types`` as the config classes fill it: every ``full_attention_interval``-th layer is full."""
    layers = int(cfg["num_hidden_layers"])
    given = cfg.get("layer_types")
    if given:
        return tuple(str(t) for t in given)
    every = _get(cfg, "full_attention_interval")
    return tuple(LINEAR if (i + 1) % every else FULL for i in range(layers))


def sparse_layers(cfg: dict[str, Any], model_type: str) -> tuple[bool, ...]:
    layers = int(cfg["num_hidden_layers"])
    if model_type.startswith("qwen3_5_moe"):
        return (True,) * layers
    if model_type == "qwen3_next":
        only_mlp = set(cfg.get("mlp_only_layers") or [])
        step = _get(cfg, "decoder_sparse_step")
        experts = _get(cfg, "num_experts")
        return tuple(i not in only_mlp and experts > 0 and (i + 1) % step == 0 for i in range(layers))
    return (False,) * layers


def vision_params(vcfg: dict[str, Any] | None) -> tuple[int, int]:
    """(tower, merger) parameters of a Qwen3.5 vision config (transformers' Qwen3_5VisionConfig defaults)."""
    if vcfg is None:
        return 0, 0
    d = {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "in_channels": 3, "patch_size": 16,
         "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": 3584, "num_position_embeddings": 2304}
    v = {k: int(vcfg.get(k, default)) for k, default in d.items()}
    h, i = v["hidden_size"], v["intermediate_size"]
    patch = v["in_channels"] * v["temporal_patch_size"] * v["patch_size"] ** 2 * h + h  # Conv3d with bias
    block = 2 * (2 * h) + (h * 3 * h + 3 * h) + (h * h + h) + (h * i + i) + (i * h + h)  # 2 LayerNorms, qkv, proj, fc1, fc2
    tower = patch + v["num_position_embeddings"] * h + v["depth"] * block
    merged = h * v["spatial_merge_size"] ** 2
    merger = 2 * h + (merged * merged + merged) + (merged * v["out_hidden_size"] + v["out_hidden_size"])
    return tower, merger


def layer_types_problem(cfg: dict[str, Any]) -> str | None:
    """Why a hybrid config's ``layer_types`` cannot be planned (None when it can)."""
    kinds = layer_types(cfg)
    if len(kinds) != int(cfg["num_hidden_layers"]) or set(kinds) - {LINEAR, FULL}:
        return f"layer_types must list {cfg['num_hidden_layers']} entries of {LINEAR} / {FULL}, got {list(kinds)!r}"
    return None


def hybrid_from_config(cfg: dict[str, Any], model_type: str, vision: dict[str, Any] | None) -> Hybrid:
    """The hybrid layout of a config whose ``layer_types`` passed :func:`layer_types_problem`."""
    kinds = layer_types(cfg)
    tower, merger = vision_params(vision)
    return Hybrid(
        layer_types=kinds, fused_in_proj=model_type == "qwen3_next",
        lin_key_dim=_get(cfg, "linear_num_key_heads") * _get(cfg, "linear_key_head_dim"),
        lin_value_dim=_get(cfg, "linear_num_value_heads") * _get(cfg, "linear_value_head_dim"),
        lin_value_heads=_get(cfg, "linear_num_value_heads"), lin_value_head_dim=_get(cfg, "linear_value_head_dim"),
        conv_kernel=_get(cfg, "linear_conv_kernel_dim"), sparse=sparse_layers(cfg, model_type),
        experts=_get(cfg, "num_experts"), moe_intermediate=_get(cfg, "moe_intermediate_size"),
        shared_intermediate=_get(cfg, "shared_expert_intermediate_size"), vision_tower=tower, vision_merger=merger,
    )


def layer_linears(hy: Hybrid, i: int, hidden: int, intermediate: int, heads: int, kv_heads: int, head_dim: int,
                  bias: bool) -> dict[str, tuple[int, int, bool]]:
    """Linear name -> (in, out, bias) of decoder layer ``i`` (the names LoRA targets)."""
    h = hidden
    out: dict[str, tuple[int, int, bool]] = {}
    if hy.layer_types[i] == FULL:
        out.update(q_proj=(h, 2 * heads * head_dim, bias), k_proj=(h, kv_heads * head_dim, bias),
                   v_proj=(h, kv_heads * head_dim, bias), o_proj=(heads * head_dim, h, bias))
    elif hy.fused_in_proj:
        out.update(in_proj_qkvz=(h, 2 * hy.lin_key_dim + 2 * hy.lin_value_dim, False),
                   in_proj_ba=(h, 2 * hy.lin_value_heads, False), out_proj=(hy.lin_value_dim, h, False))
    else:
        out.update(in_proj_qkv=(h, 2 * hy.lin_key_dim + hy.lin_value_dim, False), in_proj_z=(h, hy.lin_value_dim, False),
                   in_proj_b=(h, hy.lin_value_heads, False), in_proj_a=(h, hy.lin_value_heads, False),
                   out_proj=(hy.lin_value_dim, h, False))
    mlp = hy.shared_intermediate if hy.sparse[i] else intermediate
    out.update(gate_proj=(h, mlp, False), up_proj=(h, mlp, False), down_proj=(mlp, h, False))
    if hy.sparse[i]:
        out["shared_expert_gate"] = (h, 1, False)
    return out


def layer_other_params(hy: Hybrid, i: int, hidden: int, head_dim: int) -> int:
    """Parameters of layer ``i`` outside its Linear layers: norms, q/k norms, the short convolution,
    ``dt_bias`` / ``A_log``, the gated norm, the router and the routed experts."""
    n = 2 * hidden  # input_layernorm, post_attention_layernorm
    if hy.layer_types[i] == FULL:
        n += 2 * head_dim  # q_norm, k_norm
    else:
        n += (2 * hy.lin_key_dim + hy.lin_value_dim) * hy.conv_kernel  # depthwise conv1d, no bias
        n += 2 * hy.lin_value_heads + hy.lin_value_head_dim  # dt_bias, A_log, gated RMSNorm
    if hy.sparse[i]:
        n += hy.experts * hidden  # router
        n += hy.experts * 3 * hy.moe_intermediate * hidden  # gate_up_proj (E, 2I, h) + down_proj (E, h, I)
    return n


def linear_names(hy: Hybrid) -> list[str]:
    """Every Linear name of the text layers, in a fixed order (LoRA ``all``)."""
    order = ["q_proj", "k_proj", "v_proj", "o_proj", "in_proj_qkvz", "in_proj_ba", "in_proj_qkv", "in_proj_z",
             "in_proj_b", "in_proj_a", "out_proj", "gate_proj", "up_proj", "down_proj", "shared_expert_gate"]
    present: set[str] = set()
    for i in range(len(hy.layer_types)):
        present |= set(layer_linears(hy, i, 1, 1, 1, 1, 1, False))
    return [n for n in order if n in present]
