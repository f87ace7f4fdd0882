"""YAML config + ``key=value`` overrides, read exactly as ``llamafactory-cli`` reads them.

``llamafactory-cli train x.yaml lora_rank=16`` does ``OmegaConf.merge(OmegaConf.load(x.yaml),
OmegaConf.from_cli(overrides))``; :func:`load_config` does the same, so a value typed on the
command line means the same thing to both tools (``8`` is an int, ``true`` a bool, ``[8,16]`` a
list, ``grid.lora_rank=[8]`` replaces one key of ``grid``). One difference, on purpose: a value
typed on the command line is taken literally, so ``system=${HOME}`` is the text ``${HOME}``, never
an interpolation (the YAML file's own ``${...}`` references still resolve).

Every command describes its options with a dataclass whose fields carry ``help`` and, where a
value has a range, ``ge`` / ``gt`` / ``le`` / ``lt`` / ``choices`` metadata (:func:`option`).
:func:`from_argv` reads ``[CONFIG.yaml] key=value ...`` into that dataclass: unknown keys are
named with a "did you mean", wrong types and out-of-range values name the key. :func:`combine`
joins a command's own options with the options of the data set or task chosen at run time.
:func:`format_value` writes a value back in the ``key=value`` syntax both tools read. LLaMA-Factory's
own recipe keys and values are checked in ``recipe_keys.py``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


class UserError(Exception):
    """Bad input from the user (file, row, field or key named in the message).

    The CLI prints the message and exits with status 2 instead of a traceback.
    Commands raise subclasses of it for their own input errors.
    """


class ConfigError(UserError, ValueError):
    """A config file or an override is wrong; the message names the file/key."""


# ---------------------------------------------------------------------------------------------
# reading: file + overrides
# ---------------------------------------------------------------------------------------------
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
            raise ConfigError(f"unexpected argument {arg!r}: expected [CONFIG.yaml] followed by key=value overrides")
    return config, overrides


def _omegaconf_error(where: str, exc: Exception) -> ConfigError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ConfigError(f"{where}: {first}")


def _cli_config(overrides: list[str]):
    """``OmegaConf.from_cli`` with ``${`` escaped: command-line values are literal text."""
    from omegaconf import OmegaConf

    items = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        items.append(f"{key}={value.replace('${', chr(92) + '${')}")
    try:
        return OmegaConf.from_cli(items)
    except Exception as exc:  # noqa: BLE001 - OmegaConf's errors and yaml.YAMLError of a value (e.g. k="\${x}"), in one line
        raise _omegaconf_error("command line", exc) from None


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["a=1", "b.c=[x,y]"]`` -> ``{"a": 1, "b": {"c": ["x", "y"]}}`` (values literal)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(_cli_config(overrides), resolve=True)  # type: ignore[return-value]


def _file_config(path: Path):
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not path.is_file():
        raise ConfigError(f"config file not found: {path}" if not path.exists() else f"{path} is not a file")
    try:
        if path.suffix == ".json":
            conf = OmegaConf.create(json.loads(path.read_text(encoding="utf-8-sig")))
        else:
            conf = OmegaConf.load(path)
        OmegaConf.to_container(conf, resolve=True)  # surface bad ${...} references here, naming the file
    except (OmegaConfBaseException, ValueError, OSError) as exc:
        raise _omegaconf_error(f"{path}: cannot parse", exc) from None
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError and friends, re-raised with the file name
        raise _omegaconf_error(f"{path}: cannot parse", exc) from None
    if not isinstance(OmegaConf.to_container(conf), dict):
        raise ConfigError(f"{path}: the top level must be a mapping of key: value")
    return conf


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML (or JSON) config file as a plain dict, its ``${...}`` references resolved."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(_file_config(Path(path)), resolve=True)  # type: ignore[return-value]


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """``OmegaConf.merge(file, from_cli(overrides))`` as a plain dict; overrides win."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    base = _file_config(Path(path)) if path else OmegaConf.create({})
    if not overrides:
        return OmegaConf.to_container(base, resolve=True)  # type: ignore[return-value]
    try:
        merged = OmegaConf.merge(base, _cli_config(overrides))
        return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise _omegaconf_error(str(path or "command line"), exc) from None


def format_value(value: Any) -> str:
    """A value as ``key=value`` text that ``OmegaConf.from_cli`` (llamafactory-cli) reads back equal."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if isinstance(value, str) and _cli_roundtrip(text) != value:
        quoted = "'" + text.replace("'", "''") + "'"  # YAML single quotes: no escapes to collide with \${
        text = quoted if _cli_roundtrip(quoted) == value else json.dumps(value, ensure_ascii=False)
    return text


def _cli_roundtrip(text: str) -> Any:
    """What the command line (``parse_overrides``, values literal) reads back from ``k=text``."""
    try:
        return parse_overrides([f"k={text}"])["k"]
    except Exception:  # noqa: BLE001 - anything unparsable is quoted
        return object()


def overrides_of(values: dict[str, Any]) -> list[str]:
    """``{"a": 1, "b": None}`` -> ``["a=1", "b=null"]``."""
    return [f"{k}={format_value(v)}" for k, v in values.items()]


# ---------------------------------------------------------------------------------------------
# typed options
# ---------------------------------------------------------------------------------------------
def option(default: Any = dataclasses.MISSING, help: str = "", **checks: Any) -> Any:
    """A dataclass field with ``help`` and range metadata (``ge``, ``gt``, ``le``, ``lt``, ``choices``)."""
    meta = {"help": help, **checks}
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


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
    return _scalar(value, tp, key, where)


def _scalar(value: Any, tp: Any, key: str, where: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
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


_BOUNDS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "ge": (lambda v, b: v >= b, ">="),
    "gt": (lambda v, b: v > b, ">"),
    "le": (lambda v, b: v <= b, "<="),
    "lt": (lambda v, b: v < b, "<"),
}


def check_range(value: Any, meta: dict[str, Any] | Any, key: str, where: str) -> None:
    """Raise a :class:`ConfigError` naming ``key`` when ``value`` is outside the field's range."""
    if value is None:
        return
    values = value if isinstance(value, list) else [value]
    for v in values:
        if "choices" in meta and v not in meta["choices"]:
            raise ConfigError(f"{where}: {key} must be one of {', '.join(map(str, meta['choices']))}, got {v!r}")
        for name, (ok, sign) in _BOUNDS.items():
            if name in meta and isinstance(v, (int, float)) and not ok(v, meta[name]):
                raise ConfigError(f"{where}: {key} must be {sign} {meta[name]}, got {v!r}")


def unknown_key_error(key: str, known: Iterable[str], where: str, what: str = "key") -> ConfigError:
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{where + ': ' if where else ''}unknown {what} {key!r}{hint}")


T = typing.TypeVar("T")


def build(cls: type[T], data: dict[str, Any], where: str = "config", typed: Iterable[str] = ()) -> T:
    """Instantiate the dataclass ``cls`` from ``data``: unknown keys, types and ranges checked. An
    error about a key in ``typed`` (given on the command line) names the command line, not ``where``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    typed = set(typed)

    def at(key: str) -> str:
        return "command line" if key in typed else where

    for key in data:
        if key not in fields:
            raise unknown_key_error(key, fields, at(key))
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(value, hints[key], key, at(key))
        check_range(kwargs[key], fields[key].metadata, key, at(key))
    missing = [
        name for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key {missing[0]!r}")
    return cls(**kwargs)


def combine(name: str, *classes: type) -> type:
    """One dataclass holding the fields of ``classes`` (a command's options + a data set's or task's)."""
    seen: dict[str, dataclasses.Field] = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            seen.setdefault(f.name, f)
    specs = []
    for f in seen.values():
        kwargs = {"metadata": f.metadata}
        if f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            kwargs["default_factory"] = f.default_factory  # type: ignore[misc]
        hints = typing.get_type_hints(next(c for c in classes if f.name in {x.name for x in dataclasses.fields(c)}))
        specs.append((f.name, hints[f.name], dataclasses.field(**kwargs)))
    required = [s for s in specs if s[2].default is dataclasses.MISSING and s[2].default_factory is dataclasses.MISSING]  # type: ignore[misc]
    return dataclasses.make_dataclass(name, required + [s for s in specs if s not in required])


def argv_where(argv: list[str]) -> str:
    """What an error about a key of ``argv`` names: its config file, else ``command line``."""
    return split_argv(argv)[0] or "command line"


_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def _positional_split(argv: list[str], suffixes: tuple[str, ...]) -> tuple[str | None, list[str], list[str]]:
    """(config file, values, overrides) of ``[CONFIG.yaml] VALUE... key=value ...``: a first argument
    ending in one of ``suffixes`` is the config file; ``-flags`` are refused."""
    path = argv[0] if argv and suffixes and argv[0].endswith(suffixes) and not _OVERRIDE.match(argv[0]) else None
    values, overrides = [], []
    for arg in argv[1 if path else 0:]:
        if _OVERRIDE.match(arg):
            overrides.append(arg)
        elif arg.startswith("-"):
            raise ConfigError(f"unknown flag {arg!r}: options are key=value")
        else:
            values.append(arg)
    return path, values, overrides


def from_argv(
    cls: type[T] | Callable[[dict[str, Any]], type[T]],
    argv: list[str],
    *,
    positional: str | None = None,
    config_suffixes: tuple[str, ...] = (),
    rest: str | None = None,
    rest_keys: Callable[[], set[str]] | None = None,
) -> T:
    """``[CONFIG.yaml] key=value ...`` -> a checked ``cls`` instance (file, then overrides): the one
    way every command reads its arguments. The config file is read once.

    ``cls``: the options dataclass, or a function of the merged keys that returns it (``eval``
    picks the class of the chosen ``task``, which adds that task's own keys).
    ``positional``: arguments without ``key=`` go, as a list, to that field; the first one is the
    config file only when it ends in one of ``config_suffixes``.
    ``rest``: keys that are not fields of the class go, as a dict, to that field, each checked
    against ``rest_keys()`` (e.g. ``plan`` takes any LLaMA-Factory recipe key).
    """
    if positional:
        path, values, overrides = _positional_split(argv, config_suffixes)
    else:
        values, (path, overrides) = [], split_argv(argv)
    data = load_config(path, overrides)
    where = path or "command line"
    typed = {o.partition("=")[0].split(".")[0] for o in overrides}
    if not dataclasses.is_dataclass(cls):
        cls = cls(data)
    if positional:
        listed = data.get(positional)
        data[positional] = [*values, *(listed if isinstance(listed, (list, tuple)) else [] if listed is None else [listed])]
    if rest:
        own = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        extra = {k: data.pop(k) for k in list(data) if k not in own}
        allowed = rest_keys() if rest_keys else None
        for key in extra:
            if allowed is not None and key not in allowed:
                raise unknown_key_error(key, set(allowed) | own, "command line" if key in typed else where)
        data[rest] = {**extra, **(data.get(rest) or {})}
    return build(cls, data, where=where, typed=typed)  # type: ignore[arg-type]


def describe(cls: type) -> str:
    """One line per option: name, default, range and the ``help`` metadata."""
    lines = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = repr(f.default_factory())  # type: ignore[misc]
        else:
            default = "(required)"
        bounds = ", ".join(f"{sign} {f.metadata[k]}" for k, (_, sign) in _BOUNDS.items() if k in f.metadata)
        helptext = f.metadata.get("help", "") + (f" [{bounds}]" if bounds else "")
        lines.append(f"  {f.name:<24} {default:<22} {helptext}")
    return "\n".join(lines)
