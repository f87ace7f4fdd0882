"""YAML config + ``key=value`` overrides, the same syntax as ``llamafactory-cli``.

``llamafactory-cli train x.yaml lora_rank=16`` merges ``OmegaConf.from_cli(overrides)`` into
the YAML; we do exactly the same, so a value typed on the command line means the same thing
to both tools (``8`` is an int, ``true`` a bool, ``[8,16]`` a list).

Commands describe their options with a dataclass; :func:`build` checks every key against
it and fails with a message that names the unknown key (and the closest known one).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any


class UserError(Exception):
    """Bad input from the user (file, row, field or key named in the message).

    The CLI prints the message and exits with status 2 instead of a traceback.
    Commands raise subclasses of it for their own input errors.
    """


class ConfigError(UserError, ValueError):
    """A config file or an override is wrong; the message names the file/key."""


def is_config_path(arg: str) -> bool:
    return arg.endswith((".yaml", ".yml", ".json")) and "=" not in arg


def split_argv(argv: list[str]) -> tuple[str | None, list[str]]:
    """``[CONFIG.yaml] key=value ...`` -> (config path or None, overrides)."""
    config = None
    overrides: list[str] = []
    for i, arg in enumerate(argv):
        if i == 0 and is_config_path(arg):
            config = arg
        elif "=" in arg and not arg.startswith("-"):
            overrides.append(arg)
        else:
            raise ConfigError(
                f"unexpected argument {arg!r}: expected [CONFIG.yaml] followed by key=value overrides"
            )
    return config, overrides


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    for item in overrides:
        key = item.split("=", 1)[0]
        if not key or "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
    return OmegaConf.to_container(OmegaConf.from_cli(list(overrides)), resolve=True)  # type: ignore[return-value]


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    from omegaconf import OmegaConf

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        if p.suffix == ".json":
            import json

            data = json.loads(p.read_text(encoding="utf-8"))
        else:
            data = OmegaConf.to_container(OmegaConf.load(p), resolve=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise ConfigError(f"{p}: cannot parse: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of key: value, got {type(data).__name__}")
    return data


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """YAML (or JSON) file merged with ``key=value`` overrides; overrides win."""
    data = load_yaml(path) if path else {}
    if overrides:
        data = deep_merge(data, parse_overrides(overrides))
    return data


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Nested merge like ``OmegaConf.merge`` (what llamafactory-cli does): ``grid.lora_rank=[8]``
    replaces one key of ``grid``, not the whole mapping. Lists and scalars are replaced."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: {key}: bad value {value!r}")
    if tp is Any or tp is object:
        return value
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {key} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key} must be a list, got {value!r}")
        inner = args[0] if args else Any
        return [_coerce(v, inner, key, where) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a mapping, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{where}: {key} must be an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
        return str(value)
    return value


T = typing.TypeVar("T")


def build(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Instantiate the dataclass ``cls`` from ``data``; unknown keys are an error."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: unknown key {key!r}{hint}. Known keys: {', '.join(sorted(fields))}")
    kwargs = {k: _coerce(v, hints[k], k, where) for k, v in data.items()}
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key {missing[0]!r}")
    return cls(**kwargs)


def from_argv(cls: type[T], argv: list[str], defaults: dict[str, Any] | None = None) -> T:
    """``[CONFIG.yaml] key=value ...`` -> ``cls`` instance (file, then overrides)."""
    path, overrides = split_argv(argv)
    data = dict(defaults or {})
    data.update(load_config(path, overrides))
    where = path or "command line"
    return build(cls, data, where=where)


def describe(cls: type) -> str:
    """One line per option: name, default and the docstring-ish ``help`` metadata."""
    lines = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = repr(f.default_factory())  # type: ignore[misc]
        else:
            default = "(required)"
        helptext = f.metadata.get("help", "")
        lines.append(f"  {f.name:<24} {default:<22} {helptext}")
    return "\n".join(lines)
