"""Recipe keys and the recipe values the planner reads: unknown keys and impossible values are
errors that name the key, never a silent default."""

from __future__ import annotations

from typing import Any

from llamafactory_ext.config import ConfigError, check_range
from llamafactory_ext.recipe_keys import RECIPE_RANGES


def recipe_keys() -> set[str]:
    """Every key ``llamafactory-cli train`` accepts (``recipe_keys.llamafactory_train_keys``)."""
    from llamafactory_ext.recipe_keys import llamafactory_train_keys

    return llamafactory_train_keys()


def positive_int(recipe: dict[str, Any], key: str, default: int, where: str = "") -> int:
    """``recipe[key]`` as a positive integer; ``default`` only when the key is absent (LLaMA-Factory's
    own default). ``0``, ``null``, negatives, floats and text are errors that name the key."""
    if key not in recipe:
        return default
    value = recipe[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}{key} must be a positive integer, got {value!r}")
    return value


def check_values(recipe: dict[str, Any], where: str) -> None:
    """The ranges of :data:`llamafactory_ext.recipe_keys.RECIPE_RANGES` (the checks LLaMA-Factory leaves
    to the first training step), and positive integers where the planner multiplies."""
    for key, value in recipe.items():
        if key not in RECIPE_RANGES or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):  # e.g. lora_dropout=abc
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
        check_range(value, RECIPE_RANGES[key], key, where)
    for key, default in (("per_device_train_batch_size", 8), ("cutoff_len", 2048), ("gradient_accumulation_steps", 1)):
        positive_int(recipe, key, default, where)
    if str(recipe.get("finetuning_type", "lora")) == "lora":
        positive_int(recipe, "lora_rank", 8, where)
    quant = recipe.get("quantization_bit")
    if quant not in (None, 4, 8) or isinstance(quant, bool):
        raise ConfigError(f"{where}: quantization_bit must be 4, 8 or null for the planner, got {quant!r}")
