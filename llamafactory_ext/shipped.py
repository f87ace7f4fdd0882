"""The files that ship with the package: the recipes and configs, ``ds_configs/``, ``dataset_info.json`` and
``resources/`` (ground floor; the ``recipes`` command that lists and copies them is ``recipes.py``).

In a checkout the recipes, ``ds_configs/`` and ``dataset_info.json`` are the top-level folders;
a wheel carries a copy of them inside the package (``llamafactory_ext/_shipped/``, written by
``setup.py`` at build time), so the demo and the commands work from any folder after ``pip install .``.
``resources/`` (samples, demo data, model config facts) is package data in both cases.
"""

from __future__ import annotations

from pathlib import Path

from llamafactory_ext.config import UserError

PACKAGE = Path(__file__).resolve().parent
SHIPPED_DIRS = ("recipes", "ds_configs")
SHIPPED_FILES = ("dataset_info.json",)


def shipped_root() -> Path:
    """The folder holding ``recipes/``, ``ds_configs/`` and ``dataset_info.json`` (wheel copy first)."""
    inside = PACKAGE / "_shipped"
    if (inside / "recipes").is_dir():
        return inside
    checkout = PACKAGE.parent
    if (checkout / "recipes").is_dir():
        return checkout
    raise UserError("the shipped recipes are missing from this installation (reinstall llamafactory-ext)")


def shipped(rel: str) -> Path:
    """A shipped recipe, DeepSpeed config or dataset_info.json, by its path in the repository."""
    path = shipped_root() / rel
    if not path.exists():
        raise UserError(f"{rel} is not a shipped file; `llamafactory-ext recipes` lists them")
    return path


def resource(rel: str) -> Path:
    """A file under ``llamafactory_ext/resources`` (samples, demo data, model config facts)."""
    path = PACKAGE / "resources" / rel
    if not path.exists():
        raise UserError(f"built-in resource {path} is missing (reinstall llamafactory-ext)")
    return path


def recipe_names() -> list[str]:
    root = shipped_root() / "recipes"
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def first_line(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("# ").strip()
        if line.startswith("#") and text:
            return text
    return ""


def find_recipe(name: str) -> Path:
    rel = name.removeprefix("recipes/").removesuffix(".yaml")
    path = shipped_root() / "recipes" / f"{rel}.yaml"
    if not path.is_file():
        import difflib

        close = difflib.get_close_matches(rel, recipe_names(), n=1)
        raise UserError(f"no shipped recipe {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                        + "; `llamafactory-ext recipes` lists them")
    return path
