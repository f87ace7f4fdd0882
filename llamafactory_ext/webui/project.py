"""What the web UI reads from the project folder: where the data sets are registered, which of them
exist, the training recipes and study files it offers, and a recipe as Train-tab field values.

No gradio here (plain functions, tested without a browser).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DATASET_INFO = "dataset_info.json"
# The training formats (DECISIONS.md): thinking / non-thinking / mixed = enable_thinking true / false / null.
TRAINING_FORMATS: dict[str, bool | None] = {"thinking": True, "non-thinking": False, "mixed": None}


def training_format(enable_thinking: Any) -> str:
    """The training format's name for a recipe's ``enable_thinking`` (absent = LLaMA-Factory's default, true)."""
    for name, value in TRAINING_FORMATS.items():
        if value is enable_thinking:
            return name
    raise ValueError(f"enable_thinking must be true, false or null, not {enable_thinking!r}")


def find_data_folder(dataset_dir: str | os.PathLike | None = None, cwd: str | os.PathLike | None = None) -> Path:
    """THE answer to "where is the project's dataset_info.json" (the folder LlamaBoard's "Data dir" starts at).

    ``dataset_dir`` (given to ``llamafactory-ext webui``) wins. Otherwise the working folder
    (DECISIONS.md: the folder holding dataset_info.json is the project folder, and ``prepare``
    registers there), then ``data/`` (where today's ``prepare`` registers with its default
    ``out_dir``): the first whose dataset_info.json lists a file that exists, else the first that
    has one, else the working folder. Point this function at a new convention and the page follows.
    """
    if dataset_dir:
        return Path(dataset_dir)
    here = Path(cwd or Path.cwd())
    candidates = [folder for folder in (here, here / "data") if (folder / DATASET_INFO).is_file()]
    for folder in candidates:
        if any(entry_exists(folder, entry) for entry in read_dataset_info(folder)[0].values()):
            return folder
    return candidates[0] if candidates else here


def shown_path(folder: Path, cwd: str | os.PathLike | None = None) -> str:
    """``folder`` as the page shows it: relative to the working folder when inside it (``.``, ``data``)."""
    here = Path(cwd or Path.cwd()).resolve()
    try:
        return str(folder.resolve().relative_to(here)) or "."
    except ValueError:
        return str(folder.resolve())


def read_dataset_info(folder: str | os.PathLike) -> tuple[dict[str, Any], str | None]:
    """``folder/dataset_info.json`` as a dict, and a one-line problem when it is missing or unreadable."""
    path = Path(folder) / DATASET_INFO
    try:
        info = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        return {}, f"{path} does not exist (llamafactory-ext prepare NAME writes it)"
    except (OSError, ValueError) as exc:
        return {}, f"{path} cannot be read: {exc}"
    if not isinstance(info, dict):
        return {}, f"{path}: the top level must be an object of data set entries"
    return {k: v for k, v in info.items() if isinstance(v, dict)}, None


def entry_exists(folder: str | os.PathLike, entry: dict[str, Any]) -> bool:
    """An entry with a local ``file_name`` exists when that file (or a non-empty folder) does, as
    LlamaBoard's preview button decides; Hub, script and cloud entries have no local file to check."""
    if "file_name" not in entry:
        return True
    path = Path(folder) / str(entry["file_name"])
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def existing_datasets(folder: str | os.PathLike, ranking: bool) -> list[str]:
    """The entries of ``folder/dataset_info.json`` whose files exist, for a stage with (or without) pairs."""
    info, _ = read_dataset_info(folder)
    return [name for name, entry in info.items()
            if bool(entry.get("ranking", False)) == ranking and entry_exists(folder, entry)]


# ---------------------------------------------------------------------------------------------
# recipes and study files
# ---------------------------------------------------------------------------------------------
def _yaml_values(path: Path) -> dict[str, Any] | None:
    from llamafactory_ext.config import UserError, load_yaml

    try:
        return load_yaml(path)
    except UserError:
        return None


def is_training_recipe(values: dict[str, Any] | None) -> bool:
    """A recipe ``llamafactory-cli train`` runs (not an export / merge recipe, not an eval or study file)."""
    return bool(values) and bool(values.get("do_train")) and "stage" in values and "export_dir" not in values


def recipe_choices(cwd: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """(label, path) of every training recipe: the shipped ones, then ``recipes/*.yaml`` of the working folder."""
    from llamafactory_ext.shipped import shipped_root

    here = Path(cwd or Path.cwd())
    choices = []
    for path in sorted((shipped_root() / "recipes").glob("*.yaml")):
        if is_training_recipe(_yaml_values(path)):
            choices.append((f"{path.stem} (shipped)", str(path)))
    for path in sorted((here / "recipes").glob("*.yaml")):
        if is_training_recipe(_yaml_values(path)):
            choices.append((f"recipes/{path.name}", f"recipes/{path.name}"))  # relative: the commands run here
    return choices


def study_choices(cwd: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """(label, path) of the study files: ``recipes/studies/*.yaml`` here, then the shipped ones."""
    from llamafactory_ext.shipped import shipped_root

    here = Path(cwd or Path.cwd())
    local = [(f"recipes/studies/{p.name}",) * 2 for p in sorted((here / "recipes" / "studies").glob("*.yaml"))]
    ours = [(f"studies/{p.stem} (shipped)", str(p)) for p in sorted((shipped_root() / "recipes" / "studies").glob("*.yaml"))]
    return local + ours
