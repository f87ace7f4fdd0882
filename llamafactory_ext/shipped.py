"""The files that ship with the package, and ``llamafactory-ext recipes`` (as torchtune's ``tune ls`` / ``tune cp``).

    llamafactory-ext recipes                       # every shipped recipe, with its first header line
    llamafactory-ext recipes copy v3_mixed         # -> ./recipes/v3_mixed.yaml (edit it, then llamafactory-cli train it)
    llamafactory-ext recipes copy eval/italic_zeroshot dest=my_eval.yaml

In a checkout the recipes, ``ds_configs/`` and ``dataset_info.json`` are the top-level folders;
a wheel carries a copy of them inside the package (``llamafactory_ext/_shipped/``, written by
``setup.py`` at build time), so the demo and the commands work from any folder after ``pip install .``.
``resources/`` (samples, demo data, model config facts) is package data in both cases.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from llamafactory_ext.config import UserError, from_argv, option
from llamafactory_ext.io import atomic_write_bytes

USAGE = "[list] | copy NAME [dest=PATH] [overwrite=true]"
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


@dataclasses.dataclass
class CopyOptions:
    name: list = option([], "the recipe to copy, e.g. v3_mixed or eval/italic_zeroshot")
    dest: str | None = option(None, "where to write it (default: ./recipes/NAME.yaml)")
    overwrite: bool = option(False, "replace an existing file")


def copy(argv: list[str]) -> Path:
    opts = from_argv(CopyOptions, argv, positional="name")
    if len(opts.name) != 1:
        raise UserError("usage: llamafactory-ext recipes copy NAME [dest=PATH]")
    src = find_recipe(str(opts.name[0]))
    rel = src.relative_to(shipped_root())
    dest = Path(opts.dest) if opts.dest else Path.cwd() / rel
    if dest.is_dir():
        raise UserError(f"{dest} is a folder; give dest=FILE.yaml")
    if dest.exists() and not opts.overwrite:
        raise UserError(f"{dest} exists; pass overwrite=true or dest=OTHER.yaml")
    return atomic_write_bytes(dest, src.read_bytes())


def listing() -> str:
    root = shipped_root() / "recipes"
    names = recipe_names()
    width = max(len(n) for n in names) + 2
    lines = [f"shipped recipes ({root}):"]
    lines += [f"  {name:<{width}}{first_line(root / f'{name}.yaml')}" for name in names]
    lines.append("copy one here to edit it: llamafactory-ext recipes copy NAME")
    return "\n".join(lines)


def options_help() -> str:
    return "  list                     the shipped recipes (default)\n  copy NAME [dest=PATH]    copy one into the current folder"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("list", "ls"):
        print(listing())
        return 0
    if argv[0] in ("copy", "cp"):
        print(f"copied to {copy(argv[1:])}")
        return 0
    raise UserError(f"unknown recipes action {argv[0]!r}: use list or copy NAME")
