"""Trainable and total parameters of a recipe, counted the way PEFT and LLaMA-Factory count them.

LLaMA-Factory logs ``trainable params: X || all params: Y`` (``count_parameters``) after
``load_model``; the stage (sft, pt, dpo) does not change it: a LoRA DPO run trains the same
adapter, and its reference model is the base with the adapter disabled (no second copy).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llamafactory_ext.plan.arch import PROJ_ATTN, PROJ_MLP, Arch, PlanError
from llamafactory_ext.plan.recipe import positive_int


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value]
    raise PlanError(f"expected a comma-separated list, got {value!r}")


@dataclasses.dataclass
class Params:
    method: str  # lora | qlora | full | freeze
    trainable: int
    total: int  # what PEFT / LLaMA-Factory print as "all params" (base + adapter)
    base: int
    lora_targets: list[str]
    lora_modules: int  # number of wrapped Linear modules
    frozen_linear: int  # frozen params inside decoder Linear layers (the ones bitsandbytes quantizes)
    frozen_other: int  # frozen embeddings, norms, lm_head (kept at compute precision)
    detail: str


def frozen_vision(arch: Arch, recipe: dict[str, Any]) -> int:
    """Vision-tower and merger parameters LLaMA-Factory keeps frozen (``freeze_vision_tower`` and
    ``freeze_multi_modal_projector``, both true by default)."""
    if arch.hybrid is None:
        return 0
    tower = arch.hybrid.vision_tower if recipe.get("freeze_vision_tower", True) else 0
    return tower + (arch.hybrid.vision_merger if recipe.get("freeze_multi_modal_projector", True) else 0)


def count_params(arch: Arch, recipe: dict[str, Any]) -> Params:
    ftype = str(recipe.get("finetuning_type", "lora"))
    base = arch.total_params()
    if ftype == "full":
        frozen = frozen_vision(arch, recipe)
        detail = "all parameters train" + (f" but the frozen vision tower / merger ({frozen:,})" if frozen else "")
        return Params("full", base - frozen, base, base, [], 0, 0, frozen, detail)
    if ftype == "freeze":
        if arch.hybrid is not None:
            raise PlanError(f"finetuning_type freeze is not modelled for the hybrid {arch.model_type} layers: "
                            "plan finetuning_type=lora or full")
        return _count_freeze(arch, recipe, base)
    if ftype not in ("lora",):
        raise PlanError(f"finetuning_type {ftype!r} is not supported by the planner (lora, full, freeze)")
    return _count_lora(arch, recipe, base)


def _count_freeze(arch: Arch, recipe: dict[str, Any], base: int) -> Params:
    n = int(recipe.get("freeze_trainable_layers", 2))
    mods = _as_list(recipe.get("freeze_trainable_modules", "all")) or ["all"]
    ids = range(max(0, arch.layers - n), arch.layers) if n > 0 else range(min(-n, arch.layers))
    per_layer = {name: a * b + (b if bias else 0) for name, (a, b, bias) in arch.linears().items()}
    groups = {
        "self_attn": sum(per_layer[p] for p in PROJ_ATTN) + (2 * arch.head_dim if arch.qk_norm else 0),
        "mlp": sum(per_layer[p] for p in PROJ_MLP),
        "input_layernorm": arch.hidden,
        "post_attention_layernorm": arch.hidden,
    }
    if "all" in mods:
        per = arch.layer_params()
    else:
        unknown = [m for m in mods if m not in groups]
        if unknown:
            raise PlanError(f"freeze_trainable_modules: unknown module {unknown[0]!r} (choose from all, {', '.join(groups)})")
        per = sum(groups[m] for m in mods)
    trainable = per * len(ids)
    return Params("freeze", trainable, base, base, [], 0, 0, base - trainable,
                  f"{len(ids)} trainable layers ({','.join(mods)})")


def lora_targets(arch: Arch, recipe: dict[str, Any]) -> list[str]:
    """``lora_target`` expanded: ``all`` = every Linear but lm_head (LLaMA-Factory's find_all_linear_modules)."""
    targets = _as_list(recipe.get("lora_target", "all")) or ["all"]
    names = arch.linear_names()
    if targets == ["all"]:
        targets = list(names)
    unknown = [t for t in targets if t not in set(names) | {"lm_head"}]
    if unknown:
        raise PlanError(
            f"lora_target: module {unknown[0]!r} is not a Linear layer of a {arch.model_type} model "
            f"(choose from all, {', '.join(names)}, lm_head)"
        )
    return targets


def _count_lora(arch: Arch, recipe: dict[str, Any], base: int) -> Params:
    rank = positive_int(recipe, "lora_rank", 8)
    targets = lora_targets(arch, recipe)
    use_dora = bool(recipe.get("use_dora", False))
    lora = 0
    modules = 0
    for i in range(arch.layers):
        for name, (fan_in, fan_out, _) in arch.layer_linears(i).items():
            if name in targets:
                lora += rank * (fan_in + fan_out) + (fan_out if use_dora else 0)
                modules += 1
    if "lm_head" in targets:
        lora += rank * (arch.hidden + arch.vocab) + (arch.vocab if use_dora else 0)
        modules += 1
    extra = _as_list(recipe.get("additional_target"))
    saved = 0
    for name in extra:  # PEFT modules_to_save: a trainable copy next to the frozen original
        if name == "embed_tokens":
            saved += arch.embed_params()
        elif name == "lm_head":
            saved += arch.vocab * arch.hidden
        else:
            raise PlanError(f"additional_target: {name!r} not supported by the planner (embed_tokens, lm_head)")
    trainable = lora + saved
    quant = recipe.get("quantization_bit")
    method = "qlora" if quant in (4, 8) else "lora"
    label = "DoRA" if use_dora else "LoRA"
    detail = f"{label} r{rank} on {','.join(t for t in [*arch.linear_names(), 'lm_head'] if t in targets)} ({modules} modules)"
    if extra:
        detail += f" + full copies of {','.join(extra)}"
    frozen_linear = arch.decoder_linear_params() if quant in (4, 8) else 0
    return Params(method, trainable, base + trainable, base, list(targets), modules,
                  frozen_linear, base - frozen_linear, detail)
