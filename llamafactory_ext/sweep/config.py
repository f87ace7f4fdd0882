"""Options of ``sweep`` (and, through :class:`RunOptions`, of ``study``), and their checks.

Everything is checked before any trial starts: keys against LLaMA-Factory's own parser, values
against the types it converts to and the ranges of ``recipe_keys.RECIPE_RANGES`` (``lora_rank=0``,
``learning_rate=abc`` stop the sweep at once, naming the key), the evaluator's keys, names.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import operator
from pathlib import Path
from typing import Any, Literal

from llamafactory_ext.config import (
    ConfigError,
    UserError,
    format_value,
    option,
    parse_overrides,
)
from llamafactory_ext.recipe_keys import check_recipe

# Keys the engine sets itself for every trial.
RESERVED_KEYS = ("output_dir",)


class SweepError(UserError):
    """Bad sweep / study file, grid or override (the message names the key or trial)."""


@dataclasses.dataclass
class RunOptions:
    """How trials run: shared by ``sweep`` and ``study``."""

    retry_failed: bool = option(False, "re-run trials that failed before (finished trials are always skipped)")
    dry_run: bool = option(False, "print the trials and their exact commands, run nothing")
    max_trials: int | None = option(None, "run at most this many trials now, then stop (re-run to resume)", ge=1)
    overwrite: bool = option(False, "re-run trials whose recorded commands differ from today's (else: refused)")
    backend: Literal["local", "ray"] = option("local", "local (this machine) | ray (Ray tasks with num_gpus requests)")
    gpus_per_trial: int = option(1, "GPUs per trial (0: CPU trials)", ge=0)
    parallel: int = option(1, "CPU trials (gpus_per_trial=0 or no GPU) run this many at once", ge=1)
    gpus: Any = option(None, "local GPU ids to use, e.g. [0,1] (default: all visible)")
    cpus_per_trial: float = option(1.0, "Ray: CPUs requested per trial", gt=0)
    ray_address: str | None = option(None, "Ray: cluster address (or RAY_ADDRESS)")
    tokenize_once: bool = option(True, "share LLaMA-Factory's tokenized_path among trials with the same data")
    env: dict = option({}, "extra environment for trial processes")
    log_tail_lines: int = option(40, "log lines kept for a failed trial", ge=1)


@dataclasses.dataclass
class SweepConfig(RunOptions):
    base: str = option(None, "training recipe (llamafactory-cli train YAML)")
    output_dir: str = option(None, "sweep folder: one sub-folder per trial + summaries")
    grid: dict = option({}, "key -> list of values (Cartesian product)")
    derived: dict = option({}, "key -> expression, e.g. lora_alpha: 2 * lora_rank")
    fixed: Any = option({}, "overrides for every trial (mapping or list of key=value)")
    eval: Any = option(None, "{config: EVAL.yaml, overrides: {...}} or null")
    name_format: str | None = option(None, "trial name, e.g. r{lora_rank}")
    plot_x: str | None = option(None, "grid key on the plots' x axis")


def load_sweep_config(argv: list[str]) -> tuple[SweepConfig, str]:
    from llamafactory_ext.config import argv_where, from_argv

    cfg, where = from_argv(SweepConfig, argv), argv_where(argv)
    for key in ("base", "output_dir"):
        if not getattr(cfg, key):
            raise SweepError(f"{where}: missing required key {key!r}")
    return cfg, where


def as_overrides(value: Any, where: str, what: str) -> dict[str, Any]:
    """A mapping, or a list of ``key=value`` strings, as a dict."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (list, tuple)):
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise SweepError(f"{where}: {what}: {item!r} is not a 'key=value' string")
        return parse_overrides(list(value))
    raise SweepError(f"{where}: {what} must be a mapping or a list of key=value strings, got {value!r}")


def check_values(values: dict[str, Any], where: str) -> None:
    """LLaMA-Factory's parser types and choices, our ranges; SweepError naming ``where``."""
    try:
        check_recipe(values, where)
    except ConfigError as exc:
        raise SweepError(str(exc)) from None


def check_keys(keys: Any, section: str, where: str, reserved: bool = True) -> None:
    from llamafactory_ext.config import unknown_key_error
    from llamafactory_ext.recipe_keys import llamafactory_train_keys

    known = llamafactory_train_keys()
    for key in keys:
        if key not in known:
            msg = str(unknown_key_error(key, known, f"{where}: {section}{key}", "LLaMA-Factory key"))
            raise SweepError(msg.replace(f"{section}{key}: unknown LLaMA-Factory key", f"{section}{key}: LLaMA-Factory's train parser does not know the key"))
        if reserved and key in RESERVED_KEYS:
            raise SweepError(f"{where}: {section}{key}: the sweep sets {key} per trial (<output_dir>/<trial>)")


def eval_section(value: Any, where: str, cwd: str, reserved: tuple[str, ...] = ("output_dir", "adapter_name_or_path")) -> dict | None:
    """``eval: {config: EVAL.yaml, overrides: {...}}`` checked against the evaluator's keys."""
    from llamafactory_ext.config import load_yaml, unknown_key_error

    if value in (None, {}, False):
        return None
    section = {"config": value} if isinstance(value, str) else dict(value) if isinstance(value, dict) else None
    if section is None:
        raise SweepError(f"{where}: eval must be a mapping {{config: EVAL.yaml, overrides: {{...}}}}")
    unknown = set(section) - {"config", "overrides"}
    if unknown:
        raise SweepError(f"{where}: eval: unknown key {min(unknown)!r} (known: config, overrides)")
    if not section.get("config"):
        raise SweepError(f"{where}: eval.config: the evaluator config file is required")
    if not (Path(cwd) / section["config"]).is_file():
        raise SweepError(f"{where}: eval.config: file not found: {section['config']}")
    overrides = as_overrides(section.get("overrides") or {}, where, "eval.overrides")
    file_keys = load_yaml(Path(cwd) / section["config"])
    from llamafactory_ext.eval.options import config_class

    known = {f.name for f in dataclasses.fields(config_class(str(overrides.get("task", file_keys.get("task", "italic")))))}
    for key in overrides:
        if key not in known:
            msg = str(unknown_key_error(key, known, f"{where}: eval.overrides.{key}", "key"))
            raise SweepError(msg.replace(f"eval.overrides.{key}: unknown key", f"eval.overrides.{key}: the evaluator has no key"))
        if key in reserved:
            raise SweepError(f"{where}: eval.overrides.{key}: the sweep sets {key} per trial")
    return {"config": section["config"], "overrides": overrides, "file_keys": set(file_keys)}


_BIN_OPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_FUNCS = {"int": int, "float": float, "round": round, "min": min, "max": max, "str": str}
# Bounds of a derived value: hyperparameters are small numbers and short texts. ``**`` is checked
# BEFORE it runs (10 ** 5000 or 2 ** 2 ** 40 would take the machine's memory and time), the rest after.
MAX_EXPONENT = 64
MAX_INT_BITS = 256
MAX_TEXT = 10_000


def _bounded(op: type, a: Any, b: Any, where: str) -> Any:
    """``a OP b`` unless it would be enormous: a SweepError naming the key instead."""
    if op is ast.Pow and isinstance(b, (int, float)) and not isinstance(b, bool):
        if abs(b) > MAX_EXPONENT:
            raise SweepError(f"{where}: exponent {b!r} is too large (at most {MAX_EXPONENT})")
        if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a).bit_length() * b > MAX_INT_BITS:
            raise SweepError(f"{where}: the power is too large (more than {MAX_INT_BITS} bits)")
    if op is ast.Mult and {type(a), type(b)} & {str} and isinstance(a if isinstance(b, str) else b, int):
        count, text = (a, b) if isinstance(b, str) else (b, a)
        if count * len(text) > MAX_TEXT:
            raise SweepError(f"{where}: the text would be {count * len(text)} characters long (at most {MAX_TEXT})")
    return _checked(_BIN_OPS[op](a, b), where)


def _checked(value: Any, where: str) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise SweepError(f"{where}: the value is too large (more than {MAX_INT_BITS} bits)")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise SweepError(f"{where}: the text is {len(value)} characters long (at most {MAX_TEXT})")
    if isinstance(value, complex) or (isinstance(value, float) and not math.isfinite(value)):
        raise SweepError(f"{where}: the value is {value!r}, not a finite real number")
    return value


def eval_expression(expr: Any, names: dict[str, Any], key: str) -> Any:
    """Evaluate a ``derived`` rule: arithmetic over the trial's keys (``2 * lora_rank``), nothing else,
    with bounded results (:data:`MAX_EXPONENT`, :data:`MAX_INT_BITS`, :data:`MAX_TEXT`)."""
    if not isinstance(expr, str):
        return expr  # a constant
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise SweepError(f"derived.{key}: cannot parse expression {expr!r}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurdly deep nesting
        raise SweepError(f"derived.{key}: cannot parse expression {expr[:80]!r}: {type(exc).__name__}") from None
    where = f"derived.{key}: {expr!r}" if len(expr) <= 80 else f"derived.{key}"

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise SweepError(f"derived.{key}: unknown name {node.id!r} in {expr!r}; known: {', '.join(sorted(names)) or '(none)'}")
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN_OPS:
            return _bounded(type(node.op), ev(node.left), ev(node.right), where)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = ev(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
            args = [ev(a) for a in node.args]
            if node.func.id == "round" and len(args) == 2 and isinstance(args[1], int) and abs(args[1]) > 400:
                raise SweepError(f"{where}: round() to {args[1]} digits (at most 400)")
            return _checked(_FUNCS[node.func.id](*args), where)
        raise SweepError(f"derived.{key}: only arithmetic on trial keys is allowed, got {expr!r}")

    try:
        value = ev(tree)
    except (ArithmeticError, TypeError, ValueError) as exc:  # 1 / 0, 10.0 ** 400, "a" - 1, int("x")
        raise SweepError(f"{where}: {type(exc).__name__}: {exc}") from None
    except RecursionError:
        raise SweepError(f"{where}: nested too deeply") from None
    if isinstance(value, float) and value.is_integer() and "/" in expr and "//" not in expr:
        value = int(value)  # "lora_rank / 2" -> 4, not 4.0 (LoRA ranks and alphas are ints)
    return value


def show(params: dict) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in params.items())
