"""A training recipe as LlamaBoard field values: which recipe key fills which element of the top bar
and the Train tab, and what goes to the Train tab's "Extra arguments" JSON (LlamaBoard's own way to
pass any other key: its ``Runner._parse_train_args`` applies that JSON last, so those keys win).

No gradio here: :func:`recipe_form` returns plain values; ``board.py`` puts them on the page.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamafactory_ext.data.folder import dataset_names
from llamafactory_ext.webui.project import DATASET_INFO, training_format

THINKING_ID = "train.thinking_format"  # the element this package adds to the Train tab
ALL_ROWS = "1000000000"  # "Max samples" for a recipe without max_samples: every row (LLaMA-Factory: min(N, rows))


def _text(value: Any) -> str:
    return str(value)


def _opt_text(value: Any) -> str:
    return "" if value is None else str(value)


# recipe key -> (element id, conversion to the element's value type)
FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "template": ("top.template", _text),
    "finetuning_type": ("top.finetuning_type", _text),
    "quantization_bit": ("top.quantization_bit", _text),
    "quantization_method": ("top.quantization_method", _text),
    "rope_scaling": ("top.rope_scaling", _text),
    "dataset": ("train.dataset", dataset_names),
    "cutoff_len": ("train.cutoff_len", int),
    "learning_rate": ("train.learning_rate", _text),
    "num_train_epochs": ("train.num_train_epochs", _text),
    "max_grad_norm": ("train.max_grad_norm", _text),
    "max_samples": ("train.max_samples", _text),
    "per_device_train_batch_size": ("train.batch_size", int),
    "gradient_accumulation_steps": ("train.gradient_accumulation_steps", int),
    "val_size": ("train.val_size", float),
    "lr_scheduler_type": ("train.lr_scheduler_type", _text),
    "logging_steps": ("train.logging_steps", int),
    "save_steps": ("train.save_steps", int),
    "warmup_steps": ("train.warmup_steps", float),
    "neftune_noise_alpha": ("train.neftune_alpha", float),
    "packing": ("train.packing", bool),
    "neat_packing": ("train.neat_packing", bool),
    "train_on_prompt": ("train.train_on_prompt", bool),
    "mask_history": ("train.mask_history", bool),
    "resize_vocab": ("train.resize_vocab", bool),
    "use_llama_pro": ("train.use_llama_pro", bool),
    "report_to": ("train.report_to", _text),
    "lora_rank": ("train.lora_rank", int),
    "lora_alpha": ("train.lora_alpha", float),
    "lora_dropout": ("train.lora_dropout", float),
    "loraplus_lr_ratio": ("train.loraplus_lr_ratio", float),
    "create_new_adapter": ("train.create_new_adapter", bool),
    "use_rslora": ("train.use_rslora", bool),
    "use_dora": ("train.use_dora", bool),
    "lora_target": ("train.lora_target", _text),
    "additional_target": ("train.additional_target", _opt_text),
    "pref_beta": ("train.pref_beta", float),
    "pref_ftx": ("train.pref_ftx", float),
    "pref_loss": ("train.pref_loss", _text),
    "output_dir": ("train.output_dir", _text),
}
# keys LlamaBoard's builder derives from other elements (read here, never sent as extra arguments)
DERIVED = {"do_train", "stage", "model_name_or_path", "bf16", "fp16", "pure_bf16", "enable_thinking", "dataset_dir"}


@dataclass
class RecipeForm:
    """Field values (element id -> value) and the keys left for "Extra arguments"."""

    path: str
    values: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)  # element ids the recipe does not set (back to their defaults)
    notes: list[str] = field(default_factory=list)
    custom_model: bool = False  # no LlamaBoard model name has this path and template: "Custom"


def model_choice(path: str, template: str | None) -> str | None:
    """The LlamaBoard model name whose hub path and default template are the recipe's, if there is one
    (choosing it makes LlamaBoard's own model-name handler fill the same path and template)."""
    from llamafactory.extras.constants import DEFAULT_TEMPLATE, SUPPORTED_MODELS, DownloadSource

    for name, sources in SUPPORTED_MODELS.items():
        if sources.get(DownloadSource.DEFAULT) == path and DEFAULT_TEMPLATE.get(name, "default") == (template or "default"):
            return name
    return None


def compute_type(recipe: dict[str, Any]) -> str:
    for key in ("pure_bf16", "bf16", "fp16"):
        if recipe.get(key):
            return key
    return "fp32"


def _stage_name(stage: str) -> str:
    from llamafactory.extras.constants import TRAINING_STAGES

    names = [name for name, key in TRAINING_STAGES.items() if key == stage]
    if not names:
        raise ValueError(f"stage {stage!r} is not one LlamaBoard trains ({', '.join(TRAINING_STAGES.values())})")
    return names[0]


def _model_and_data(form: RecipeForm, recipe: dict[str, Any], cwd: Path) -> None:
    path = str(recipe.get("model_name_or_path") or "")
    name = model_choice(path, recipe.get("template"))
    form.custom_model = name is None
    form.values.update({"top.model_name": name or "Custom", "top.model_path": path})
    dataset_dir = recipe.get("dataset_dir")
    if dataset_dir is not None:
        folder = Path(str(dataset_dir))
        folder = folder if folder.is_absolute() else cwd / folder
        if (folder / DATASET_INFO).is_file():
            form.values["train.dataset_dir"] = str(dataset_dir)
        else:
            form.notes.append(f"dataset_dir {dataset_dir} holds no {DATASET_INFO} here: Data dir kept")


def recipe_form(recipe: dict[str, Any], path: str, cwd: str | os.PathLike | None = None) -> RecipeForm:
    """The recipe's keys as top-bar / Train-tab values; every other key goes to "Extra arguments"."""
    form = RecipeForm(path=path)
    _model_and_data(form, recipe, Path(cwd or Path.cwd()))
    form.values["train.training_stage"] = _stage_name(str(recipe.get("stage", "sft")))
    form.values["train.compute_type"] = compute_type(recipe)
    form.values[THINKING_ID] = training_format(recipe.get("enable_thinking", True))
    for key, (elem_id, convert) in FIELDS.items():
        if key in recipe and recipe[key] is not None:
            form.values[elem_id] = convert(recipe[key])
        elif key == "max_samples":
            form.values[elem_id] = ALL_ROWS
        else:
            form.unset.append(elem_id)
    form.extra = {k: v for k, v in recipe.items() if k not in FIELDS and k not in DERIVED}
    return form
