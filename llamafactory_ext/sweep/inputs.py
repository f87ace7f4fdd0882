"""What a sweep or study trial consumes, as one provenance record, and what follows from it.

- :func:`trial_provenance`: the recipe as resolved (base recipe + fixed + grid values + overrides,
  a dict, so a change reads ``recipe recipes/v3_mixed.yaml: learning_rate 0.0001 -> 0.0002``), the
  evaluator's config as resolved (its file merged with the trial's overrides), the
  ``dataset_info.json`` entries of the recipe's data sets and the content of every file they
  resolve to (as LLaMA-Factory resolves them, against the trial's working folder), the model (a
  study's base), the files the evaluator reads (its ``source``), the template and the package
  versions. ``<trial>/provenance.json`` records it when the trial runs (``trials.run_trial``).
- :func:`stale_changes`: what changed since then. A trial with changes is **stale**: never done,
  shown as stale with its changes, rerun only with ``overwrite=true`` (:func:`refuse_stale` stops
  a sweep or study before anything runs, naming every stale trial).
- :func:`tokenized_key`: the key of the shared tokenized cache (``tokenized_path``): the recipe's
  data keys, the data files' contents and entries and the tokenizer files' contents, so a data set
  re-prepared under the same name gets a new cache folder instead of the old rows.

Identities are memoised per process (``provenance``): a status check over many trials reads each
file once.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Protocol

from llamafactory_ext import provenance as pv
from llamafactory_ext.config import load_config


class Trial(Protocol):
    """What the inputs of a trial are read from (``sweep.trials.Trial``)."""

    name: str
    cwd: str
    recipe: str | None
    train_config: dict[str, Any]
    eval_args: list[str]

    def path(self) -> Path: ...


DERIVED = {"tokenized_path"}  # set by the sweep from the contents below: its value is not an input
# evaluator keys that name the trial's own outputs or another trial's (a study's baseline), not inputs
EVAL_OWN = {"output_dir", "adapter_name_or_path", "baseline"}
# evaluator keys that change no number (how the run is shown, logged or restarted): a trial is not stale over them
EVAL_NO_NUMBER = {"progress", "overwrite", "report_to"}
TOKENIZER_FILE = re.compile(r"tokenizer.*|vocab\..*|merges\.txt|special_tokens_map\.json|added_tokens\.json|"
                            r"chat_template\..*|.*\.tiktoken|spiece\.model|sentencepiece.*\.model")


def _shown(path: str | os.PathLike, cwd: str) -> str:
    """A path as a person reads it: relative to the trial's folder when inside it."""
    try:
        return str(Path(path).relative_to(cwd))
    except ValueError:
        return str(path)


def identify_at(value: Any, cwd: str, *also: Path) -> dict[str, Any] | None:
    """The identity of a path as the trial's processes resolve it (against ``cwd``, then each of
    ``also``), or of a Hub id; the path shown is the one given."""
    if value in (None, ""):
        return None
    given = Path(str(value)).expanduser()
    for base in (Path(cwd), *also):
        local = given if given.is_absolute() else base / given
        if local.exists():
            return {**pv.identify(local), "path": str(value)}
    return {**pv.identify(str(value)), "path": str(value)}


def recipe_data(recipe: dict[str, Any], cwd: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(inputs, configs) of a recipe: the model's and every data file's identity, by label
    (``model``, ``dataset multit_mixed``), and the ``dataset_info.json`` entries of its data sets
    (``{"dataset_info ds/dataset_info.json": {name: entry}}``: another data set registered in the same
    file changes nothing)."""
    paths = pv.recipe_inputs(recipe, cwd)
    info_path = paths.pop("dataset_info", None)
    inputs = {label: identify_at(_shown(path, cwd) if label.startswith("dataset ") else path, cwd)
              for label, path in paths.items()}
    if not info_path:
        return inputs, {}
    try:
        info = json.loads(Path(info_path).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        info = {}
    names = [label.split(" ", 1)[1] for label in paths if label.startswith("dataset ")]
    entries = {name: info.get(name) for name in names} if isinstance(info, dict) else {}
    return inputs, {f"dataset_info {_shown(info_path, cwd)}": entries}


def _eval_view(trial: Trial) -> tuple[str, dict[str, Any], Path]:
    """(label, the evaluator's config as it will resolve it, the config file's folder)."""
    config, *overrides = trial.eval_args
    path = Path(config) if Path(config).is_absolute() else Path(trial.cwd) / config
    return f"eval {config}", load_config(path, overrides), path.parent


def _eval_inputs(trial: Trial, resolved: dict[str, Any], config_dir: Path, have: dict[str, Any]) -> dict[str, Any]:
    """The files the evaluator reads (source, shots, ...), and the model when no recipe named it."""
    out: dict[str, Any] = {}
    for key, value in resolved.items():
        if key in EVAL_OWN or not isinstance(value, str) or not value or value == trial.recipe:
            continue
        if key == "model_name_or_path":
            if "model" not in have:
                out["model"] = identify_at(value, trial.cwd, config_dir)
        elif any((base / value).exists() for base in (Path(trial.cwd), config_dir)):
            out[f"eval {key}"] = identify_at(value, trial.cwd, config_dir)
    return out


def trial_provenance(trial: Trial) -> pv.Provenance:
    """Everything ``trial`` consumes, identified now (see the module docstring)."""
    inputs: dict[str, Any] = {}
    configs: dict[str, Any] = {}
    template = None
    if trial.recipe is not None:
        recipe = {k: v for k, v in trial.train_config.items() if k not in DERIVED}
        configs[f"recipe {trial.recipe}"] = recipe
        data, entries = recipe_data(recipe, trial.cwd)
        inputs.update(data)
        configs.update(entries)
        template = recipe.get("template")
    if trial.eval_args:
        label, resolved, config_dir = _eval_view(trial)
        configs[label] = {k: v for k, v in resolved.items() if k not in EVAL_NO_NUMBER}
        inputs.update(_eval_inputs(trial, resolved, config_dir, inputs))
        template = template or resolved.get("template")
    return pv.collect(inputs={k: v for k, v in inputs.items() if v is not None}, configs=configs, template=template)


def has_outputs(trial_dir: Path) -> bool:
    """Anything in the trial folder besides its provenance record."""
    return trial_dir.is_dir() and any(p.name != pv.RECORD for p in trial_dir.iterdir())


def stale_changes(trial: Trial) -> list[str]:
    """What changed since the trial's outputs were made (empty: the same inputs, or nothing made)."""
    d = trial.path()
    if not has_outputs(d):
        return []
    return pv.changes(d, trial_provenance(trial))


def stale_trials(trials: list[Trial]) -> dict[str, list[str]]:
    """``{trial name: its changes}`` of every stale trial."""
    return {t.name: changes for t in trials if (changes := stale_changes(t))}


def refuse_stale(stale: dict[str, list[str]], overwrite: bool) -> None:
    """Stop before anything runs when trials are stale, naming each with its changes (one line),
    unless ``overwrite`` (they rerun; the other trials are kept)."""
    if stale and not overwrite:
        listed = ", ".join(f"{name} ({'; '.join(changes)})" for name, changes in stale.items())
        raise pv.StaleInputs(f"stale trial(s), made from other inputs than today's: {listed}; pass overwrite=true to rerun "
                             "them (the other trials are kept), or use another output_dir")


def tokenizer_identity(model: dict[str, Any] | None) -> Any:
    """The tokenizer files of a model's identity (tokenizer.json, vocab, merges, ...): a retrained
    model with the same tokenizer keeps its tokenized data. The whole identity when none is listed."""
    files = {k: v for k, v in ((model or {}).get("files") or {}).items() if TOKENIZER_FILE.fullmatch(k)}
    return {"kind": "tokenizer", "files": files, "digest": pv.content_key(files)} if files else model


def tokenized_key(data_view: dict[str, Any], recipe: dict[str, Any], cwd: str) -> str:
    """12 hex digits naming the tokenized data of ``recipe``: its data keys (``data_view``), the
    dataset_info entries and contents of its data files, and its tokenizer's files."""
    inputs, entries = recipe_data(recipe, cwd)
    data = {label: ident for label, ident in inputs.items() if label.startswith("dataset ")}
    return pv.content_key(data_view, list(entries.values()), data, tokenizer_identity(inputs.get("model")))[:12]
