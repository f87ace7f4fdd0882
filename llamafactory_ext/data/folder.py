"""Where a project's data lives: the folder that holds ``dataset_info.json`` (the data-folder convention).

- ``llamafactory-ext prepare NAME`` writes ``data/NAME.jsonl`` and registers it in ``./dataset_info.json``
  of the working folder (``file_name: data/NAME.jsonl``; the file is created when absent and merged
  under a lock). ``out_dir=`` moves the data files, ``dataset_info=`` the registration; ``file_name`` is
  relative to the folder of the ``dataset_info.json`` it is written in (absolute when outside it).
- The shipped recipes say ``dataset_dir: .``: LLaMA-Factory reads ``dataset_info.json`` from the working
  folder (it resolves ``dataset_dir`` against the working folder, default ``data``).
- :func:`check_recipe_data` catches a mismatch before anything runs (``inspect``, ``sweep``, ``study``):
  no ``dataset_info.json`` in the recipe's ``dataset_dir``, a data set not registered there, or a
  registered file that does not exist, each in one line naming the recipe, the data set and the command
  that fixes it. :func:`recipe_data_files` gives ``eval from_recipe=`` the same files.
- :func:`data_folder` and :func:`registered_datasets` are what a UI needs: the folder to start at and
  the entries whose files exist.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from llamafactory_ext.config import UserError
from llamafactory_ext.io import FolderLock, atomic_write_json

INFO = "dataset_info.json"
LLAMAFACTORY_DATASET_DIR = "data"  # DataArguments.dataset_dir's default in LLaMA-Factory 0.9.5
REMOTE_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")


class DataFolderError(UserError):
    """A recipe's data is not where the recipe reads it (the message says how to fix it)."""


def data_folder(dataset_dir: str | os.PathLike | None = None, cwd: str | os.PathLike | None = None) -> Path:
    """The folder whose ``dataset_info.json`` lists a project's data: ``dataset_dir`` (relative to the
    working folder, as LLaMA-Factory reads it) when given, else the working folder itself."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    return (base / dataset_dir) if dataset_dir not in (None, "") else base


def read_info(info_path: Path, hint: str = "fix it or pass register=false") -> dict[str, Any]:
    """A ``dataset_info.json`` as a dict (``{}`` when absent); a malformed one is a UserError naming it."""
    if not info_path.exists():
        return {}
    try:
        info = json.loads(info_path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{info_path}: not valid JSON ({exc}); {hint}") from None
    if not isinstance(info, dict):
        raise UserError(f"{info_path}: not a JSON object of data set entries; {hint}")
    return info


def entry_path(folder: Path, entry: Any) -> Path | None:
    """The local file (or folder) of a ``dataset_info.json`` entry, None for a Hub / remote entry."""
    if not isinstance(entry, dict) or any(k in entry for k in REMOTE_KEYS) or not entry.get("file_name"):
        return None
    return folder / str(entry["file_name"])


def registered_datasets(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The entries of ``folder/dataset_info.json`` whose local files exist (``{}`` without the file)."""
    folder = Path(folder)
    info = read_info(folder / INFO, hint="fix it")
    out = {}
    for name, entry in info.items():
        path = entry_path(folder, entry)
        if path is not None and path.exists():
            out[name] = entry
    return out


# ---------------------------------------------------------------------------------------------
# registering (prepare)
# ---------------------------------------------------------------------------------------------
def relative_name(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path.resolve())


def register(spec: Any, files: dict[str, Path], info_file: str | os.PathLike | None) -> tuple[Path, list[str]]:
    """Add the entries ``{name: file}`` of data set ``spec`` to ``info_file`` (default ``./dataset_info.json``),
    file names relative to its folder. The read-modify-write holds a lock beside the file (two ``prepare``
    runs keep both entries); the file is replaced atomically. An entry that exists is left as it is (a
    warning when it points at another file). Returns (the file, the entries added)."""
    info_path = Path(info_file) if info_file else Path(INFO)
    base = info_path.resolve().parent
    with FolderLock(info_path.parent, "dataset_info folder", name=f".{info_path.name}.lock", label=info_path, wait=120, remove=True):
        info = read_info(info_path)
        changed = []
        for key, path in files.items():
            rel = relative_name(path, base)
            if key not in info:
                info[key] = spec.dataset_info_entry(rel)
                changed.append(key)
            elif not isinstance(info[key], dict):
                raise UserError(f"{info_path}: entry {key!r} is {type(info[key]).__name__} {str(info[key])[:60]!r}, not a mapping "
                                "(file_name, formatting, columns...); fix or remove it, or pass register=false")
            elif info[key].get("file_name") != rel:
                print(f"warning: {info_path}: entry {key!r} points at {info[key].get('file_name')!r}, not at the file just "
                      f"written ({rel!r}); recipes reading {info_path.parent} train on the former (edit or remove the entry "
                      "to switch)", file=sys.stderr)
        if changed:
            atomic_write_json(info_path, info)
    return info_path, changed


# ---------------------------------------------------------------------------------------------
# checking a recipe before it runs
# ---------------------------------------------------------------------------------------------
def dataset_names(value: Any) -> list[str]:
    """LLaMA-Factory's ``dataset`` / ``eval_dataset``: a comma-separated string or a list."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    return [str(n).strip() for n in items if str(n).strip()]


def recipe_folder(recipe: dict[str, Any], cwd: str | os.PathLike | None = None) -> Path:
    """The folder a recipe's ``dataset_dir`` names (LLaMA-Factory's default ``data``), against ``cwd``."""
    return data_folder(str(recipe.get("dataset_dir") or LLAMAFACTORY_DATASET_DIR), cwd)


def recipe_data_files(recipe: dict[str, Any], cwd: str | os.PathLike | None = None) -> list[Path]:
    """The local files a recipe trains on that exist (``dataset`` in its ``dataset_dir``)."""
    folder = recipe_folder(recipe, cwd)
    try:
        info = registered_datasets(folder)
    except UserError:
        return []
    return [entry_path(folder, info[n]) for n in dataset_names(recipe.get("dataset")) if n in info]  # type: ignore[misc]


def fix_command(name: str, folder: Path, cwd: Path, entry: Any = None) -> str:
    """The ``prepare`` command that makes data set ``name`` (or its ``_val`` split) available in ``folder``."""
    from llamafactory_ext.data import REGISTRY, get_spec

    base = name.removesuffix("_val") if name.endswith("_val") and name.removesuffix("_val") in REGISTRY else name
    if base not in REGISTRY:
        return f"register {name} in {_shown(folder / INFO, cwd)} (LLaMA-Factory's dataset_info.json format)"
    out_dir = "data"
    target = entry_path(folder, entry) if entry is not None else None
    if target is not None and target.name == f"{name}.jsonl":
        out_dir = _shown(target.parent, cwd)
    elif folder.resolve() != cwd.resolve():
        out_dir = _shown(folder, cwd)  # LLaMA-Factory's own layout: DIR/dataset_info.json beside DIR/NAME.jsonl
    cmd = prepare_command(get_spec(base), out_dir)
    if folder.resolve() != cwd.resolve():
        cmd += f" dataset_info={_shown(folder / INFO, cwd)}"
    return cmd + (" val_size=0.1" if base != name else "")


def _shown(path: Path, cwd: Path) -> str:
    try:
        return str(path.resolve().relative_to(cwd.resolve())) or "."
    except ValueError:
        return str(path)


def prepare_command(spec: Any, out_dir: str = "data") -> str:
    """The command that creates ``spec``'s file, with the keys it needs (``--list``, the checks, the docs)."""
    cmd = f"llamafactory-ext prepare {spec.name}"
    if spec.default_source is None:
        cmd += " source=PATH"
    for key in spec.sample_options:
        cmd += f" {key}=PATH"
    if out_dir != "data":
        cmd += f" out_dir={out_dir}"
    return cmd


def planned_registrations(steps: Iterable[tuple[str, dict[str, Any]]], cwd: str | os.PathLike) -> list[tuple[str, Path]]:
    """(data set, the dataset_info.json it will be registered in) for each ``(NAME, prepare options)`` about to
    run (a study's prepare section), with its ``_val`` split when ``val_size`` is set."""
    out = []
    for name, values in steps:
        if values.get("register", True) is not False:
            info = Path(cwd) / str(values.get("dataset_info") or INFO)
            out += [(name, info)] + ([(f"{name}_val", info)] if values.get("val_size") else [])
    return out


def data_problem(recipe: dict[str, Any], cwd: str | os.PathLike | None = None,
                 planned: Iterable[tuple[str, Path]] = (), keys: tuple[str, ...] = ("dataset", "eval_dataset")) -> tuple[str, str] | None:
    """(data set, what is wrong and the fix) for the first data set of ``recipe`` (its ``keys``) that LLaMA-Factory
    could not load from its ``dataset_dir``; None when all are there (or will be: ``planned`` holds the
    (name, dataset_info.json) pairs a study prepares first)."""
    cwd_path = Path(cwd) if cwd is not None else Path.cwd()
    if str(recipe.get("dataset_dir") or "").startswith(("ONLINE", "REMOTE:")):
        return None
    folder = recipe_folder(recipe, cwd_path)
    info_path = folder / INFO
    soon = {n for n, p in planned if Path(p).resolve() == info_path.resolve()}
    names = [n for key in keys for n in dataset_names(recipe.get(key))]
    try:
        info = read_info(info_path, hint="fix it") if info_path.is_file() else None
    except UserError as exc:
        return (names or ["?"])[0], str(exc)
    for name in names:
        if name in soon:
            continue
        shown = _shown(info_path, cwd_path)
        entry = (info or {}).get(name)
        if info is None:
            why = f"dataset_dir {_shown(folder, cwd_path)} has no {INFO}"
        elif entry is None:
            close = difflib.get_close_matches(name, list(info), n=1)
            why = f"not registered in {shown}" + (f" (did you mean {close[0]!r}?)" if close else "")
        else:
            path = entry_path(folder, entry)
            if path is None or path.exists():
                continue
            why = f"{shown} points at {entry.get('file_name')}, which does not exist"
        return name, f"{why}; fix: {fix_command(name, folder, cwd_path, entry)}"
    return None


def check_recipe_data(recipe: dict[str, Any], where: str, cwd: str | os.PathLike | None = None,
                      planned: Iterable[tuple[str, Path]] = (), keys: tuple[str, ...] = ("dataset", "eval_dataset")) -> None:
    """Raise :class:`DataFolderError` (one line: recipe, data set, fix) when a data set of ``recipe`` is
    missing from its ``dataset_dir``."""
    problem = data_problem(recipe, cwd, planned, keys)
    if problem is not None:
        raise DataFolderError(f"{where}: data set {problem[0]}: {problem[1]}")
