"""LLaMA-Factory's recipe keys and values: every key ``llamafactory-cli train`` accepts (read from
LLaMA-Factory's own argument dataclasses, or the copy shipped for the installed version), and a
recipe's values checked by LLaMA-Factory's own parser plus the ranges it leaves unchecked
(:data:`RECIPE_RANGES`). Used by ``sweep``, ``study``, ``plan`` and ``inspect``; ground floor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llamafactory_ext.config import ConfigError, check_range, format_value, unknown_key_error

# Ranges LLaMA-Factory itself does not check before a run starts (a zero rank or batch would fail
# deep inside a trial, hours later): sweep, study and plan check them first.
RECIPE_RANGES: dict[str, dict[str, float]] = {
    "lora_rank": {"ge": 1}, "lora_alpha": {"gt": 0}, "lora_dropout": {"ge": 0, "lt": 1},
    "per_device_train_batch_size": {"ge": 1}, "per_device_eval_batch_size": {"ge": 1},
    "gradient_accumulation_steps": {"ge": 1}, "cutoff_len": {"ge": 1}, "learning_rate": {"gt": 0},
    "num_train_epochs": {"gt": 0}, "warmup_steps": {"ge": 0}, "max_samples": {"ge": 1}, "pref_beta": {"gt": 0},
    "freeze_trainable_layers": {"ge": -1000}, "save_steps": {"gt": 0}, "logging_steps": {"gt": 0},
}


def _parser_actions() -> dict[str, Any]:
    from llamafactory.hparams import (
        DataArguments,
        FinetuningArguments,
        GeneratingArguments,
        ModelArguments,
        TrainingArguments,
    )
    from transformers import HfArgumentParser

    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments, FinetuningArguments, GeneratingArguments))
    return {a.dest: a for a in parser._actions if a.dest != "help"}


def live_llamafactory_train_keys() -> set[str]:
    """Every key ``llamafactory-cli train`` accepts, read from LLaMA-Factory's argument dataclasses
    (imports transformers and LLaMA-Factory: several seconds)."""
    return set(_parser_actions())


def llamafactory_train_keys() -> set[str]:
    """Every key ``llamafactory-cli train`` accepts: the list shipped in ``resources/llamafactory_keys.json``
    when the installed LLaMA-Factory is the version it was read from (instant; a test keeps it equal
    to the live list), else the live list."""
    import importlib.metadata

    fixed = json.loads((Path(__file__).resolve().parent / "resources" / "llamafactory_keys.json").read_text(encoding="utf-8"))
    try:
        installed = importlib.metadata.version("llamafactory")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    return set(fixed["keys"]) if installed == fixed["llamafactory"] else live_llamafactory_train_keys()


def check_recipe(values: dict[str, Any], where: str) -> None:
    """Each key known to LLaMA-Factory's parser, each value of the type its parser converts to,
    within the choices it offers and the ranges of :data:`RECIPE_RANGES`; else a ConfigError."""
    actions = _parser_actions()
    for key, value in values.items():
        if key not in actions:
            raise unknown_key_error(key, actions, where, "LLaMA-Factory key")
        action = actions[key]
        if value is not None and callable(action.type) and not isinstance(value, (dict, list)):
            try:
                converted = action.type(format_value(value) if isinstance(value, bool) else str(value))
            except (TypeError, ValueError):
                kind = getattr(action.type, "__name__", "value")
                raise ConfigError(f"{where}: {key} must be a valid {kind}, got {value!r}") from None
            if action.choices and converted not in action.choices and str(converted) not in map(str, action.choices):
                raise ConfigError(f"{where}: {key} must be one of {', '.join(map(str, action.choices))}, got {value!r}")
            value = converted
        if key in RECIPE_RANGES:
            check_range(value, RECIPE_RANGES[key], key, where)
