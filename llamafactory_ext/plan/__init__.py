"""``llamafactory-ext plan``: parameters and GPU memory of a recipe from config.json (the command is
:mod:`llamafactory_ext.plan.command`; the formulas live in ``arch``, ``hybrid``, ``params``, ``memory``,
``fit``; ``measure=true`` in ``measure``, ``child``, ``random_model``, ``synthetic``, ``hardware``)."""

from __future__ import annotations

from llamafactory_ext.plan.arch import (
    PROJECTIONS,
    RESOURCES,
    SUPPORTED_TYPES,
    Arch,
    ModelNotFound,
    PlanError,
    arch_from_config,
    load_arch,
    load_model_config,
    max_positions,
    shipped_configs,
)
from llamafactory_ext.plan.command import (
    USAGE,
    PlanConfig,
    build_plan,
    length_warning,
    main,
    options_help,
    parse_args,
    plan_recipe,
    render_text,
)
from llamafactory_ext.plan.memory import (
    DTYPE_BYTES,
    GIB,
    OPTIM_BYTES,
    DeepSpeed,
    estimate,
    layer_activation_bytes,
    load_deepspeed,
    parse_mem,
)
from llamafactory_ext.plan.params import Params, count_params
from llamafactory_ext.plan.recipe import recipe_keys

__all__ = [
    "DTYPE_BYTES", "GIB", "OPTIM_BYTES", "PROJECTIONS", "RESOURCES", "SUPPORTED_TYPES", "USAGE", "Arch", "DeepSpeed",
    "ModelNotFound", "Params", "PlanConfig", "PlanError", "arch_from_config", "build_plan", "count_params", "estimate",
    "layer_activation_bytes", "length_warning", "load_arch", "load_deepspeed", "load_model_config", "main",
    "max_positions", "options_help", "parse_args", "parse_mem", "plan_recipe", "recipe_keys", "render_text",
    "shipped_configs",
]
