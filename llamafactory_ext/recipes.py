"""``llamafactory-ext recipes``: list the shipped recipes and configs, and copy them out to edit (as
torchtune's ``tune ls`` / ``tune cp``).

    llamafactory-ext recipes                                  # every shipped file with its first header line
    llamafactory-ext recipes copy v3_mixed                    # -> ./recipes/v3_mixed.yaml (+ the DeepSpeed configs it names)
    llamafactory-ext recipes copy studies/format              # + the recipes and the evaluator config it names
    llamafactory-ext recipes copy v3_mixed profile=cpu        # a variant that trains on a CPU (header: what changed)
    llamafactory-ext recipes copy --all DIR                   # every shipped recipe, config and DeepSpeed file, into DIR
    llamafactory-ext recipes copy eval/italic_zeroshot dest=my_eval.yaml

A copy brings what it refers to, in the shipped layout, so it works where it lands: a study's recipes and
evaluator config, a sweep's base recipe and evaluator config, an evaluator config's ``from_recipe``,
compare's prompts file (paths in those files are relative to the file's own folder: ``config.option(...,
path=True)``), and the DeepSpeed configs a recipe names (``ds_configs/...``, relative to the working
folder, as LLaMA-Factory reads them). ``dest=DIR`` copies into DIR instead of the working folder;
``dest=FILE.yaml`` renames a file that refers to nothing. Nothing is overwritten without ``overwrite=true``.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path
from typing import Literal

from llamafactory_ext.config import UserError, format_value, from_argv, load_yaml, option, path_values
from llamafactory_ext.io import atomic_write_bytes, atomic_write_text
from llamafactory_ext.shipped import find_recipe, first_line, recipe_names, shipped_root

USAGE = "[list] | copy NAME [dest=DIR|FILE.yaml] [profile=cpu] [overwrite=true] | copy --all DIR [profile=cpu] [overwrite=true]"
# recipes/<folder>/*.yaml -> the options class whose path fields name the files it refers to
KINDS = {
    "studies": "llamafactory_ext.study:StudyConfig",
    "sweeps": "llamafactory_ext.sweep.config:SweepConfig",
    "eval": "llamafactory_ext.eval.options:EvalConfig",
    "compare": "llamafactory_ext.eval.compare:CompareConfig",
}
DS_CONFIG = re.compile(r"\bds_configs/[\w.-]+\.json\b")


@dataclasses.dataclass
class CopyOptions:
    name: list = option([], "the recipe or config to copy, e.g. v3_mixed or studies/format (--all DIR: everything into DIR)")
    dest: str | None = option(None, "folder to copy into (default: the working folder), or FILE.yaml for one file")
    profile: Literal["cpu"] | None = option(None, "cpu: training recipes get runtime.CPU_PROFILE (a header lists each change)")
    overwrite: bool = option(False, "replace existing files")


# ---------------------------------------------------------------------------------------------
# what a shipped file refers to
# ---------------------------------------------------------------------------------------------
def kind_class(rel: Path) -> type | None:
    """The options class of a shipped config (``recipes/studies/x.yaml`` -> StudyConfig); None for a training recipe."""
    target = KINDS.get(rel.parts[1]) if len(rel.parts) > 2 and rel.parts[0] == "recipes" else None
    if target is None:
        return None
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def references(src: Path, root: Path) -> list[Path]:
    """The shipped files ``src`` refers to (absolute): path fields of its options class, DeepSpeed configs."""
    if src.suffix not in (".yaml", ".yml"):
        return []
    refs = [root / m for m in DS_CONFIG.findall(src.read_text(encoding="utf-8"))]
    cls = kind_class(src.relative_to(root))
    if cls is not None:
        refs += [src.parent / p for p in path_values(cls, load_yaml(src))]
    out = []
    for ref in refs:
        ref = ref.resolve()
        if ref.is_relative_to(root.resolve()) and ref.is_file() and ref not in out:
            out.append(ref)
    return out


def closure(files: list[Path], root: Path) -> list[Path]:
    """``files`` and everything they refer to, transitively, in order of discovery."""
    out: list[Path] = []
    todo = [f.resolve() for f in files]
    while todo:
        f = todo.pop(0)
        if f not in out:
            out.append(f)
            todo += references(f, root)
    return out


# ---------------------------------------------------------------------------------------------
# the CPU variant of a training recipe
# ---------------------------------------------------------------------------------------------
def cpu_changes(recipe: dict) -> dict[str, tuple[object, object]]:
    """``{key: (old, new)}``: the keys of ``runtime.CPU_PROFILE`` the recipe sets to another value, and
    ``cutoff_len`` when it is unset (LLaMA-Factory's default, 2048). Every other unset key already has a
    CPU-safe default in LLaMA-Factory (bf16, fp16, quantization, DeepSpeed, flash-attn are opt-in)."""
    from llamafactory_ext.runtime import CPU_PROFILE

    changes = {}
    for key, new in CPU_PROFILE.items():
        if key in recipe and recipe[key] != new:
            changes[key] = (recipe[key], new)
        elif key not in recipe and key == "cutoff_len":
            changes[key] = ("unset: 2048", new)
    return changes


def cpu_variant(text: str, name: str) -> tuple[str, list[str]]:
    """The recipe ``text`` with :func:`cpu_changes` applied in place (comments kept, a header on top saying
    what changed); returns (text, ``key: old -> new`` lines). Checked: it parses to the recipe + the changes."""
    import yaml

    recipe = yaml.safe_load(text)
    changes = cpu_changes(recipe)
    lines, out, skip = text.splitlines(), [], False
    for line in lines:
        key = line.split(":", 1)[0] if re.match(r"^[A-Za-z_]\w*:", line) else None
        if skip and re.match(r"^\s+#", line):
            continue  # the replaced value's own comment lines
        skip = key in changes
        out.append(f"{key}: {format_value(changes[key][1])}  # cpu profile (was: {format_value(recipe[key])})" if skip else line)
    added = [f"{k}: {format_value(new)}  # cpu profile ({old})" for k, (old, new) in changes.items() if k not in recipe]
    if added:
        out += ["", "### cpu profile", *added]
    shown = [f"{k}: {old if isinstance(old, str) and old.startswith('unset') else format_value(old)} -> {format_value(new)}"
             for k, (old, new) in changes.items()]
    header = [f"# CPU variant of {name}, written by `llamafactory-ext recipes copy {name} profile=cpu` (runtime.CPU_PROFILE):",
              "# it trains on a CPU, slowly: for trying the recipe out on a small model, not for results.",
              "# Changed (key: old -> new):", *([f"#   {s}" for s in shown] or ["#   nothing"]),
              "# The shipped header follows; its GPU commands (DeepSpeed, bf16, QLoRA) describe the shipped recipe.", "#"]
    result = "\n".join(header + out) + "\n"
    want = {**recipe, **{k: new for k, (_, new) in changes.items()}}
    if yaml.safe_load(result) != want:  # pragma: no cover - a bug in the line rewriting, never silent
        raise RuntimeError(f"the CPU variant of {name} does not parse back to the recipe with {shown}")
    return result, shown


def is_training_recipe(rel: Path, path: Path) -> bool:
    return len(rel.parts) == 2 and rel.parts[0] == "recipes" and "export_dir" not in load_yaml(path)


# ---------------------------------------------------------------------------------------------
# copying
# ---------------------------------------------------------------------------------------------
def _targets(opts: CopyOptions, root: Path, everything: bool) -> tuple[list[Path], Path, Path | None]:
    """(shipped files, destination folder, a single destination file or None)."""
    if everything:
        if len(opts.name) != 1 or opts.dest:
            raise UserError("usage: llamafactory-ext recipes copy --all DIR [profile=cpu] [overwrite=true]")
        files = sorted(p for d in ("recipes", "ds_configs") for p in (root / d).rglob("*") if p.is_file())
        return files, Path(str(opts.name[0])), None
    if len(opts.name) != 1:
        raise UserError("usage: llamafactory-ext recipes copy NAME [dest=DIR|FILE.yaml] [profile=cpu] [overwrite=true]")
    files = closure([find_recipe(str(opts.name[0]))], root)
    dest = Path(opts.dest) if opts.dest else Path.cwd()
    if opts.dest and dest.suffix in (".yaml", ".yml") and not dest.is_dir():
        if len(files) > 1:
            raise UserError(f"{opts.name[0]} refers to {', '.join(str(f.relative_to(root)) for f in files[1:])}: "
                            f"copy it into a folder (dest=DIR, or no dest) so the relative paths still work")
        return files, dest.parent, dest
    return files, dest, None


def copy(argv: list[str]) -> list[tuple[Path, list[str]]]:
    """Copy what the arguments name; returns (each file written, its CPU changes)."""
    everything = bool(argv) and argv[0] == "--all"
    opts = from_argv(CopyOptions, argv[1:] if everything else argv, positional="name")
    root = shipped_root()
    files, dest, single = _targets(opts, root, everything)
    plan = [(f, single if single is not None else dest / f.relative_to(root)) for f in files]
    if single is not None and single.is_dir():
        raise UserError(f"{single} is a folder; give dest=FILE.yaml")
    existing = [d for _, d in plan if d.exists()]
    if existing and not opts.overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UserError(f"{existing[0]} exists{more}; pass overwrite=true to replace, or dest=ANOTHER_FOLDER")
    written = []
    for src, target in plan:
        rel = src.relative_to(root)
        if opts.profile == "cpu" and src.suffix == ".yaml" and is_training_recipe(rel, src):
            text, shown = cpu_variant(src.read_text(encoding="utf-8"), str(rel.with_suffix("")).removeprefix("recipes/"))
            written.append((atomic_write_text(target, text), shown))
        else:
            written.append((atomic_write_bytes(target, src.read_bytes()), []))
    return written


def listing() -> str:
    root = shipped_root() / "recipes"
    names = recipe_names()
    width = max(len(n) for n in names) + 2
    lines = [f"shipped recipes ({root}):"]
    lines += [f"  {name:<{width}}{first_line(root / f'{name}.yaml')}" for name in names]
    lines.append("copy one here to edit it (with what it refers to): llamafactory-ext recipes copy NAME [profile=cpu]")
    return "\n".join(lines)


def options_help() -> str:
    return ("  list                                the shipped recipes (default)\n"
            "  copy NAME [dest=DIR|FILE.yaml]      copy one (and what it refers to) into the working folder or DIR\n"
            "  copy --all DIR                      copy every shipped recipe, config and DeepSpeed file into DIR\n"
            "  profile=cpu                         training recipes become CPU variants (header: what changed)\n"
            "  overwrite=true                      replace existing files")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("list", "ls"):
        print(listing())
        return 0
    if argv[0] not in ("copy", "cp"):
        raise UserError(f"unknown recipes action {argv[0]!r}: use list, copy NAME or copy --all DIR")
    written = copy(argv[1:])
    for path, changes in written:
        shown = path.resolve().relative_to(Path.cwd().resolve()) if path.resolve().is_relative_to(Path.cwd().resolve()) else path
        print(f"copied {shown}" + (f"  (cpu profile: {'; '.join(changes)})" if changes else ""))
    return 0
