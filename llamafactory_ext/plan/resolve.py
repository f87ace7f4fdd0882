"""Which recipe and which model config a ``plan`` reads.

- A bare name (``plan anita_dpo_qlora``) is ``./recipes/NAME.yaml`` when that exists, else the shipped recipe.
- An export (merge) recipe (``llamafactory-cli export``: it has ``export_dir``) trains nothing: refused in
  one line that names the recipe training the adapter it merges.
- A ``model_name_or_path`` that another recipe writes (``saves/anita_sft_merged``: the ``export_dir`` of
  ``recipes/anita_sft_merge.yaml``) does not exist before that recipe runs. A LoRA merge keeps the
  architecture, so the chain is followed (export_dir -> its model_name_or_path -> ...) to a model whose
  config.json is known: a local folder, the Hugging Face cache, or the facts shipped in
  ``resources/model_configs``. The plan says which model it read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llamafactory_ext.plan.arch import Arch, ModelNotFound, PlanError, load_arch


def recipe_path(arg: str) -> str | None:
    """``NAME`` -> the recipe file it names (``./recipes/NAME.yaml``, else the shipped one); None if none."""
    if "=" in arg or arg.startswith("-"):
        return None
    local = Path("recipes") / f"{arg.removeprefix('recipes/')}.yaml"
    if local.is_file():
        return str(local)
    from llamafactory_ext.config import UserError
    from llamafactory_ext.shipped import find_recipe

    try:
        return str(find_recipe(arg))
    except UserError:
        return None


def _recipe_folders(path: str) -> list[Path]:
    """Where sibling recipes are looked for: the recipe's own folder, then the shipped recipes."""
    from llamafactory_ext.shipped import PACKAGE

    shipped = [PACKAGE / "_shipped" / "recipes", PACKAGE.parent / "recipes"]  # a wheel's copy, a checkout's
    return list(dict.fromkeys([Path(path).resolve().parent, *(f.resolve() for f in shipped if f.is_dir())]))


def _read(f: Path) -> dict[str, Any] | None:
    """A neighbouring recipe, or None when it is not a readable mapping (not this plan's problem)."""
    from llamafactory_ext.config import UserError, load_yaml

    try:
        data = load_yaml(f)
    except UserError:
        return None
    return data if isinstance(data, dict) else None


def _siblings(path: str) -> list[tuple[Path, dict[str, Any]]]:
    found = ((f, _read(f)) for folder in _recipe_folders(path) for f in sorted(folder.glob("*.yaml")))
    return [(f, data) for f, data in found if data is not None]


def _same(a: Any, b: Any) -> bool:
    return a is not None and b is not None and Path(str(a)).as_posix().rstrip("/") == Path(str(b)).as_posix().rstrip("/")


def _shown(f: Path) -> str:
    try:
        return str(f.relative_to(Path.cwd()))
    except ValueError:
        return f"recipes/{f.name}"


def refuse_export(recipe: dict[str, Any], path: str) -> None:
    """An export recipe is refused in one line that names what to plan instead."""
    if not recipe.get("export_dir"):
        return
    adapter = recipe.get("adapter_name_or_path")
    trainer = next((f for f, data in _siblings(path) if adapter and _same(data.get("output_dir"), adapter)), None)
    instead = (f"plan the recipe that trains it: llamafactory-ext plan {_shown(trainer)}" if trainer
               else "plan the training recipe instead")
    raise PlanError(f"{path} is an export (merge) recipe for `llamafactory-cli export` (export_dir: {recipe['export_dir']}): "
                    f"it trains nothing, so there is no training memory to plan; {instead}")


def resolve_arch(model: str, path: str, depth: int = 6) -> tuple[Arch, str | None]:
    """The architecture of ``model``, following export (merge) recipes when it does not exist yet;
    (arch, note saying which model was read, or None)."""
    chain: list[str] = []
    current = model
    for _ in range(depth):
        try:
            arch = load_arch(current)
        except ModelNotFound as exc:
            producer = next(((f, d) for f, d in _siblings(path) if _same(d.get("export_dir"), current)), None)
            if producer is None or not producer[1].get("model_name_or_path"):
                raise exc from None
            chain.append(f"{current} is the export_dir of {_shown(producer[0])}, a merge into {producer[1]['model_name_or_path']}")
            current = str(producer[1]["model_name_or_path"])
            continue
        if not chain:
            return arch, None
        return arch, (f"model_name_or_path {model} does not exist yet: {'; '.join(chain)}. A LoRA merge keeps the "
                      f"architecture, so this plan reads {current}'s config.json")
    raise PlanError(f"model_name_or_path {model}: more than {depth} export recipes in a chain ({'; '.join(chain)})")
