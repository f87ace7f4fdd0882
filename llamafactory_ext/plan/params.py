"""Trainable and total parameters of a recipe, counted the way PEFT and LLaMA-Factory count them.

LLaMA-Factory logs ``trainable params: X || all params: Y`` (``count_parameters``) after
``load_model``; the stage (sft, pt, dpo) does not change it: a LoRA DPO run trains the same
adapter, and its reference model is the base with the adapter disabled (no second copy).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llamafactory_ext.plan.arch import PROJ_ATTN, PROJ_MLP, PROJECTIONS, Arch, PlanError
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


def count_params(arch: Arch, recipe: dict[str, Any]) -> Params:
    ftype = str(recipe.get("finetuning_type", "lora"))
    base = arch.total_params()
    if ftype == "full":
        return Params("full", base, base, base, [], 0, 0, 0, "all parameters train")
    if ftype == "freeze":
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
    if targets == ["all"]:
        targets = list(PROJECTIONS)
    allowed = set(PROJECTIONS) | {"lm_head"}
    unknown = [t for t in targets if t not in allowed]
    if unknown:
        raise PlanError(
            f"lora_target: module {unknown[0]!r} is not a Linear layer of a {arch.model_type} model "
            f"(choose from all, {', '.join(PROJECTIONS)}, lm_head)"
        )
    return targets


def _count_lora(arch: Arch, recipe: dict[str, Any], base: int) -> Params:
    rank = positive_int(recipe, "lora_rank", 8)
    targets = lora_targets(arch, recipe)
    use_dora = bool(recipe.get("use_dora", False))
    lora = 0
    modules = 0
    for name, (fan_in, fan_out, _) in arch.linears().items():
        if name in targets:
            lora += arch.layers * (rank * (fan_in + fan_out) + (fan_out if use_dora else 0))
            modules += arch.layers
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
    detail = f"{label} r{rank} on {','.join(t for t in PROJECTIONS + ('lm_head',) if t in targets)} ({modules} modules)"
    if extra:
        detail += f" + full copies of {','.join(extra)}"
    frozen_linear = arch.layers * arch.layer_linear_params() if quant in (4, 8) else 0
    return Params(method, trainable, base + trainable, base, list(targets), modules,
                  frozen_linear, base - frozen_linear, detail)
