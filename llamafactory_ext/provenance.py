"""Provenance: the content identity of every input a run reads, so resume, caches, skips and
baselines compare what files CONTAIN, never only their paths and option values.

How to use it (the rooms: eval, sweep, study, demo, baseline)
--------------------------------------------------------------
::

    from llamafactory_ext import provenance as pv

    prov = pv.collect(
        inputs={"source": cfg.source, "model": cfg.model_name_or_path, "adapter": cfg.adapter_name_or_path,
                **pv.recipe_inputs(recipe, cwd)},          # model, adapter, data files of a recipe
        configs={f"eval {config_path}": resolved},         # the dict AFTER the key=value merge
        template=r.template)
    pv.check(out_dir, prov, overwrite=cfg.overwrite, what=f"predictions in {out_dir}",
             has_outputs=..., discard=...)   # "new" | "same" | "overwrite"; else one-line StaleInputs
    results["provenance"] = prov.to_json()   # embed it; pv.check already wrote out_dir/provenance.json

- A single identity fits into an existing settings dict: ``settings["model"] = pv.identify(path)``;
  ``io.check_settings`` then says ``model: content changed (sha 3f2a9c… -> 9b41e0…)``.
- Sweep / study status: ``pv.changes(trial_dir, prov)`` lists what changed since the trial ran
  (empty: same, or never recorded): a non-empty list means the trial is **stale**.
- A cache keyed on content (the tokenized data): ``pv.content_key(data_view, pv.identify(file), ...)``.
- ``prepare``'s manifest records ``inputs`` (source and side files): ``data.manifest.prepared_with``.

The identities themselves (what a file, folder, model or Hub id is, what it costs, what it can
miss) are made by ``identity.py``; this module re-exports ``identify`` and its kin.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import Any

from llamafactory_ext.diffs import changes as value_changes
from llamafactory_ext.diffs import identity_change, is_identity
from llamafactory_ext.identity import (  # noqa: F401 - handed on: pv.identify and its kin
    _MEMO,
    _sha,
    file_identity,
    file_sha256,
    folder_identity,
    hub_identity,
    hub_snapshot,
    identify,
    is_model_folder,
    remember_sha256,
)
from llamafactory_ext.io import ResumeError, atomic_write_json, check_settings

PACKAGES = ("llamafactory", "transformers", "peft", "torch", "llamafactory-ext")
RECORD = "provenance.json"


class StaleInputs(ResumeError):
    """Outputs were made from other inputs (the one-line message names every change)."""


# ---------------------------------------------------------------------------------------------
# versions, recipes
# ---------------------------------------------------------------------------------------------
@functools.cache
def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that shape a result (None: not installed)."""
    import importlib.metadata

    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _as_names(value: Any) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    return [str(x).strip() for x in items if str(x).strip()]


def recipe_inputs(recipe: dict[str, Any], cwd: str | os.PathLike = ".") -> dict[str, str]:
    """``{label: path or Hub id}`` of what a LLaMA-Factory recipe reads: the model, its adapters, and
    the file of every ``dataset`` / ``eval_dataset`` entry of ``DATASET_DIR/dataset_info.json``
    (``hf_hub_url`` entries as Hub ids), resolved as LLaMA-Factory resolves them (against ``cwd``)."""
    base = Path(cwd)
    out: dict[str, str] = {}
    if recipe.get("model_name_or_path"):
        out["model"] = str(recipe["model_name_or_path"])
    adapters = _as_names(recipe.get("adapter_name_or_path"))
    for i, adapter in enumerate(adapters, 1):
        out["adapter" if len(adapters) == 1 else f"adapter {i}"] = adapter
    names = _as_names(recipe.get("dataset")) + _as_names(recipe.get("eval_dataset"))
    data_dir = base / str(recipe.get("dataset_dir") or "data")
    info_path = data_dir / "dataset_info.json"
    if names:
        out["dataset_info"] = str(info_path)
    try:
        info = json.loads(info_path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        info = {}
    for name in names:
        entry = info.get(name) if isinstance(info, dict) else None
        if isinstance(entry, dict) and entry.get("file_name"):
            out[f"dataset {name}"] = str(data_dir / str(entry["file_name"]))
        elif isinstance(entry, dict) and entry.get("hf_hub_url"):
            out[f"dataset {name}"] = str(entry["hf_hub_url"])
    return out


# ---------------------------------------------------------------------------------------------
# the record
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Provenance:
    """What a run consumed: ``inputs`` (label -> identity), ``configs`` (label -> the dict as
    resolved after the merge), the ``template`` and the package ``versions``."""

    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    configs: dict[str, Any] = dataclasses.field(default_factory=dict)
    versions: dict[str, str | None] = dataclasses.field(default_factory=dict)
    template: str | None = None

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps({"provenance_version": 1, "template": self.template, "versions": self.versions,
                                      "inputs": self.inputs, "configs": self.configs}, default=str))

    @classmethod
    def from_json(cls, data: Any) -> Provenance:
        """A record read back (missing sections are empty; anything else is an unreadable record)."""
        if not isinstance(data, dict):
            return cls(configs={"(unreadable provenance record)": {"value": repr(data)[:80]}})
        return cls(inputs=dict(data.get("inputs") or {}), configs=dict(data.get("configs") or {}),
                   versions=dict(data.get("versions") or {}), template=data.get("template"))

    def write(self, out_dir: str | os.PathLike) -> Path:
        """``OUT_DIR/provenance.json``, written atomically."""
        return atomic_write_json(Path(out_dir) / RECORD, self.to_json())

    @classmethod
    def read(cls, out_dir: str | os.PathLike) -> Provenance | None:
        """The record in ``out_dir`` (None when there is none)."""
        path = Path(out_dir) / RECORD
        if not path.is_file():
            return None
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            return cls.from_json(None)

    def key(self) -> str:
        """A short key of the contents (paths left out): equal keys, equal inputs."""
        return content_key(self.to_json())[:16]


def collect(inputs: dict[str, Any] | None = None, configs: dict[str, Any] | None = None,
            template: str | None = None, full: bool = False) -> Provenance:
    """A :class:`Provenance` for a run: each input (a path, a Hub id, or an identity already made)
    identified, each config kept as it was resolved; the versions of :data:`PACKAGES`."""
    idents = {label: value if is_identity(value) else identify(value, full=full)
              for label, value in (inputs or {}).items() if value not in (None, "")}
    return Provenance(inputs=idents, configs=dict(configs or {}), versions=versions(), template=template)


def content_key(*parts: Any) -> str:
    """The sha256 of ``parts`` with every identity reduced to its digest (a moved file with the same
    bytes keeps its key): the key of a cache that must follow content (tokenized data)."""
    def strip(value: Any) -> Any:
        if is_identity(value):
            return value["digest"]
        if isinstance(value, dict):
            return {str(k): strip(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value

    return _sha(strip(list(parts)))


def diff(old: Provenance, new: Provenance) -> list[str]:
    """One line per change: ``recipe recipes/v3_mixed.yaml: learning_rate 0.0001 -> 0.0002``,
    ``data/multit_mixed.jsonl: content changed (sha 3f2a9c… -> 9b41e0…)``, ``transformers: 5.6.0 -> 5.7.0``."""
    lines = []
    for label in sorted(set(old.inputs) | set(new.inputs)):
        a, b = old.inputs.get(label), new.inputs.get(label)
        name = _named(label, b or a)
        if a is None or b is None:
            lines.append(f"{name}: {'no longer an input' if b is None else 'a new input'}")
        elif is_identity(a) and is_identity(b):
            change = identity_change(a, b)
            lines += [f"{name}: {change}"] if change else []
        elif a != b:
            lines.append(f"{name}: content changed")
    for label in sorted(set(old.configs) | set(new.configs)):
        if label not in old.configs or label not in new.configs:
            lines.append(f"{label}: {'a new config' if label not in old.configs else 'no longer a config'}")
            continue
        lines += [f"{label}: {key} {change}" for key, change in value_changes(old.configs[label], new.configs[label])]
    if old.template != new.template:
        lines.append(f"template: {old.template} -> {new.template}")
    for name in sorted(set(old.versions) | set(new.versions)):
        if old.versions.get(name) != new.versions.get(name):
            lines.append(f"{name}: {old.versions.get(name) or '(not installed)'} -> {new.versions.get(name) or '(not installed)'}")
    return lines


def _named(label: str, ident: Any) -> str:
    """A role label gets its path (``model saves/x``); a label that is a path stays as it is."""
    path = str(ident.get("path") or "") if isinstance(ident, dict) else ""
    return label if not path or "/" in label or path in label else f"{label} {path}"


def _differ(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return diff(Provenance.from_json(old), Provenance.from_json(new))


def changes(out_dir: str | os.PathLike, current: Provenance) -> list[str]:
    """What changed since ``out_dir``'s outputs were made (empty: the same, or never recorded).
    A sweep or study trial with a non-empty list is stale."""
    old = Provenance.read(out_dir)
    return [] if old is None else diff(old, current)


def check(out_dir: str | os.PathLike, current: Provenance, overwrite: bool = False, what: str | None = None,
          has_outputs: bool = True, discard: Any = None) -> str:
    """Resume only from the same inputs: ``"new"``, ``"same"`` or ``"overwrite"`` (``discard()`` ran
    first), as ``io.check_settings``; outputs made from other inputs raise :class:`StaleInputs`
    naming every change in one line, unless ``overwrite``. Records ``OUT_DIR/provenance.json``."""
    try:
        return check_settings(Path(out_dir) / RECORD, current.to_json(), overwrite, what or f"outputs in {out_dir}",
                              has_outputs, discard, differ=_differ, max_shown=None, made_with="other inputs")
    except ResumeError as exc:
        raise StaleInputs(str(exc)) from None
