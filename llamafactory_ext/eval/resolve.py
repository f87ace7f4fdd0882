"""From a checked ``EvalConfig`` to a resolved run (:class:`EvalRun`): the task, the template, the
thinking modes, the system prompt, the output folder and the warnings, with ``from_recipe`` read
once; and what guards its outputs (:func:`settings`): every setting that changes a prediction row
plus the content identity of every input the run reads (``provenance``: the source file or each
file of a source folder, the model and adapter folders with their tokenizer files, the files the
task's options name) and the package versions. Nothing here loads a model or an item.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamafactory_ext import provenance as pv
from llamafactory_ext.config import ConfigError, load_yaml
from llamafactory_ext.eval.options import OUTPUT_SETTINGS, SYSTEM_DEFAULT, THINKING, EvalConfig, EvalError, thinking_choice
from llamafactory_ext.eval.tasks import ItemTask, Task, task_class
from llamafactory_ext.thinking import NOTHINK, THINK


@dataclass
class EvalRun:
    """One evaluation, resolved: what the prediction loop, the probes and the reports work from."""

    cfg: EvalConfig               # the task's config class: EvalConfig's keys + the task's own options
    task: Task
    template: str
    modes: tuple[str, ...]
    system: str | None
    output_dir: Path
    warnings: list[str]
    recipe: dict[str, Any] = field(default_factory=dict)  # the from_recipe file, read once ({}: none)
    inputs: dict[str, Any] | None = None  # content identities, taken once (input_identities)

    @property
    def items_task(self) -> ItemTask:
        assert isinstance(self.task, ItemTask)
        return self.task

    @property
    def seeds(self) -> list[int | None]:
        """One run per seed (``[None]``: greedy, no seed)."""
        return list(self.cfg.seeds) if self.cfg.seeds else [None]


def default_output_dir(cfg: EvalConfig) -> Path:
    return Path(cfg.output_dir or f"results/eval/{cfg.task}")


def adapter_training_template(adapter: str | None) -> str | None:
    """Template recorded next to an adapter: ``training_args.yaml`` (LLaMA-Factory's web UI /
    our recipes) or ``llamaboard_config.yaml`` (``top.template``). None when not recorded."""
    if not adapter or not Path(adapter).is_dir():
        return None
    for name, key in (("training_args.yaml", "template"), ("llamaboard_config.yaml", "top.template")):
        p = Path(adapter) / name
        try:
            data = load_yaml(p) if p.is_file() else None
        except ConfigError:
            data = None
        if isinstance(data, dict) and data.get(key):
            return str(data[key])
    return None


def adapter_base_model(adapter: str | None) -> str | None:
    """``base_model_name_or_path`` of a PEFT adapter (adapter_config.json), if any."""
    p = Path(adapter or "") / "adapter_config.json"
    try:
        return json.loads(p.read_text(encoding="utf-8")).get("base_model_name_or_path") or None if adapter and p.is_file() else None
    except (OSError, ValueError):
        return None


def resolve_modes(thinking: Any, recipe: dict[str, Any], template: str, strict: bool = True) -> tuple[str, ...]:
    """The modes to evaluate: ``thinking=`` when given, else the modes the recipe trains, else both
    for a reasoning template. ``strict``: a think mode on a template without one is an error
    (otherwise it is dropped: ``inspect`` lints what an eval config would run)."""
    from llamafactory_ext.prompts import ModeError, is_reasoning_template, training_modes

    try:
        reasoning = is_reasoning_template(template)
    except ModeError as exc:
        raise EvalError(str(exc)) from None
    if thinking is not None:
        modes = THINKING[thinking_choice(thinking)]
    elif recipe:
        modes = training_modes(template, recipe.get("enable_thinking", True))
    else:
        modes = (THINK, NOTHINK) if reasoning else (NOTHINK,)
    if THINK in modes and not reasoning:
        if strict:
            raise EvalError(f"template {template!r} has no thinking mode: only 'nothink' exists (thinking=off); "
                            "use template=qwen3 for hybrid Qwen3 models")
        modes = tuple(m for m in modes if m == NOTHINK)
    return tuple(modes)


def read_recipe(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    if not Path(path).is_file():
        raise EvalError(f"from_recipe: file not found: {path}")
    return load_yaml(path)


def _from_recipe(cfg: EvalConfig, recipe: dict[str, Any], warnings: list[str]) -> None:
    if not cfg.model_name_or_path and recipe.get("model_name_or_path"):
        cfg.model_name_or_path = str(recipe["model_name_or_path"])
    if not cfg.adapter_name_or_path and recipe.get("output_dir") and recipe.get("finetuning_type", "lora") == "lora":
        if Path(recipe["output_dir"], "adapter_config.json").is_file():
            cfg.adapter_name_or_path = str(recipe["output_dir"])
        else:
            warnings.append(f"recipe output_dir {recipe['output_dir']!r} holds no adapter: evaluating the base model")


def _adapter_warnings(cfg: EvalConfig, template: str, warnings: list[str]) -> None:
    trained = adapter_training_template(cfg.adapter_name_or_path)
    if trained and trained != template:
        warnings.append(f"the adapter {cfg.adapter_name_or_path} was trained with template {trained!r} but prompts use {template!r}")
    base = adapter_base_model(cfg.adapter_name_or_path)
    if base and cfg.model_name_or_path and Path(base).name != Path(str(cfg.model_name_or_path)).name:
        warnings.append(f"the adapter {cfg.adapter_name_or_path} was trained on {base!r}, evaluated on {cfg.model_name_or_path!r}")


def resolve(cfg: EvalConfig) -> EvalRun:
    warnings: list[str] = []
    recipe = read_recipe(cfg.from_recipe)
    template = cfg.template or recipe.get("template") or "qwen3"
    if cfg.template and recipe.get("template") and cfg.template != recipe["template"]:
        warnings.append(f"template {cfg.template!r} differs from the recipe's training template {recipe['template']!r}")
    if cfg.thinking is not None:
        cfg.thinking = thinking_choice(cfg.thinking)
    modes = resolve_modes(cfg.thinking, recipe, template)
    _from_recipe(cfg, recipe, warnings)
    _adapter_warnings(cfg, template, warnings)
    if cfg.temperature is not None and not math.isfinite(cfg.temperature):
        raise EvalError(f"temperature must be a finite number (0 = greedy), got {cfg.temperature!r}")
    if cfg.seeds:
        if not cfg.temperature:
            raise EvalError("seeds=[...] gives mean ± std over sampled runs: set temperature > 0 (e.g. 0.6) too")
        if len(set(cfg.seeds)) != len(cfg.seeds):
            raise EvalError(f"seeds must be distinct, got {cfg.seeds}")
    task = task_class(cfg.task)(cfg)
    return EvalRun(cfg, task, template, modes, resolve_system(cfg.system, recipe, task), default_output_dir(cfg), warnings, recipe)


def resolve_system(system: str | None, recipe: dict[str, Any], task: Task) -> str | None:
    """The system prompt: ``auto`` (the default) is the recipe's ``default_system``, else the task's;
    ``system=`` (null) or ``''`` is none at all (None); any other text is used as it is."""
    if system == SYSTEM_DEFAULT:
        return recipe.get("default_system") or _task_system(task) or None
    return system or None


def _task_system(task: Task) -> str | None:
    return task.system() if isinstance(task, ItemTask) else None


def input_paths(r: EvalRun) -> dict[str, str]:
    """``{label: path or Hub id}`` of what the run reads: the source (each one of a list), the model,
    the adapter (the tokenizer comes from the model folder) and the task's own files (``shots``)."""
    cfg = r.cfg
    sources = cfg.source if isinstance(cfg.source, (list, tuple)) else [cfg.source] if cfg.source else []
    out = {("source" if len(sources) == 1 else f"source {i}"): str(s) for i, s in enumerate(sources, 1)}
    out.update(model=cfg.model_name_or_path, adapter=cfg.adapter_name_or_path)
    if isinstance(r.task, ItemTask):
        out.update(r.task.input_paths())
    return {label: path for label, path in out.items() if path}


def _identify(label: str, path: str) -> dict[str, Any] | None:
    from llamafactory_ext.data.sources import looks_like_hub_id

    if label.startswith("source") and not Path(path).exists() and looks_like_hub_id(path):
        return pv.hub_identity(path, None, "dataset")
    return pv.identify(path)


def input_identities(r: EvalRun) -> dict[str, Any]:
    """The content identity of every input (:func:`input_paths`), taken once per run: what the
    predictions were made from, also when a file changes while the run goes on."""
    if r.inputs is None:
        r.inputs = {label: _identify(label, path) for label, path in input_paths(r).items()}
    return r.inputs


def provenance(r: EvalRun) -> pv.Provenance:
    """``provenance.json`` of the output folder and ``results.json``'s ``provenance``: the inputs'
    identities, the resolved settings (``configs.eval``), the template and the package versions."""
    return pv.Provenance(inputs=input_identities(r), configs={"eval": output_settings(r)}, versions=pv.versions(),
                         template=r.template)


def settings(r: EvalRun) -> dict[str, Any]:
    """What guards ``predictions.jsonl`` (and ``forced.jsonl``): every setting that changes a row, the
    content of every input (``inputs.source: content changed (sha …; italic.jsonl content changed)``)
    and the versions of the packages that shape a result."""
    return {**output_settings(r), "inputs": input_identities(r), "versions": pv.versions()}


def output_settings(r: EvalRun) -> dict[str, Any]:
    """Every setting that changes a prediction row (``OUTPUT_SETTINGS`` + the task's options)."""
    cfg = r.cfg
    data = {k: getattr(cfg, k) for k in OUTPUT_SETTINGS}
    data.update(template=r.template, system=r.system)
    data.update({f.name: getattr(cfg, f.name) for f in dataclasses.fields(r.task.options)})
    if cfg.backend == "hf":
        from llamafactory_ext.eval.engine import resolve_device, resolve_dtype

        device = resolve_device(cfg.device)
        data.update(device=device.split(":")[0], dtype=resolve_dtype(cfg.dtype, device))
    return data


def load_items(r: EvalRun) -> list[Any]:
    task = r.items_task
    items = task.load()
    r.warnings += task.notes
    if not items:
        raise EvalError(f"task {task.name}: no items loaded from {r.cfg.source or 'the default source'}")
    ids = [task.item_id(it) for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise EvalError(f"task {task.name}: duplicate item id {dup!r} in {r.cfg.source}")
    return items


def recipe_dataset_files(recipe: dict[str, Any]) -> list[Path]:
    """The prepared files a recipe trains on, when they exist locally (dataset_dir/dataset_info.json)."""
    dataset_dir = Path(str(recipe.get("dataset_dir") or "data"))
    try:
        info = json.loads((dataset_dir / "dataset_info.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return []
    names = [n.strip() for n in str(recipe.get("dataset") or "").split(",") if n.strip()]
    files = [dataset_dir / info[n]["file_name"] for n in names if isinstance(info.get(n), dict) and info[n].get("file_name")]
    return [f for f in files if f.is_file()]
