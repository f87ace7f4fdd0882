"""The typed reader of an evaluation's outputs: ``Results.from_json(path_or_folder)``.

    from llamafactory_ext.eval.results import Results, header_lines
    res = Results.from_json("results/eval/italic")          # the folder, or its results.json
    think = res.modes["think"]
    think.overall.accuracy, think.overall.ci95, think.group("geography").chance, think.degenerate
    res.comparison.modes["think"]["total"].delta_ci95       # with baseline= (comparison.json)
    print("\\n".join(header_lines(res)))                     # the reviewer's settings table

Reads ``results.json`` of schema version 3 and 2 (2 lacks the protocol, chance levels and
degenerate flags: they read as empty / None) and the lm-eval suite's results (``suite``).
``comparison.json`` next to it is read when the run had a baseline. Any field of the wrong type
is a :class:`ResultsError` naming the file and the field (``.../results.json: field
'modes.think.total': expected an integer, got 'abc'``), never a KeyError later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamafactory_ext.config import UserError

READABLE = (2, 3)
TOTAL = "total"


class ResultsError(UserError):
    pass


class _Fields:
    """Typed access to one JSON object, errors naming file and field path."""

    def __init__(self, where: str, data: Any, path: str = "") -> None:
        if not isinstance(data, dict):
            raise ResultsError(f"{where}: field '{path or '.'}': expected an object, got {type(data).__name__}")
        self.where, self.data, self.path = where, data, path

    def _fail(self, key: str, what: str) -> ResultsError:
        return ResultsError(f"{self.where}: field '{self.path + '.' if self.path else ''}{key}': expected {what}, "
                            f"got {self.data.get(key)!r}"[:400])

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def int(self, key: str, default: int | None = None) -> int:
        v = self.data.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool):
            raise self._fail(key, "an integer")
        return v

    def num(self, key: str) -> float | None:
        v = self.data.get(key)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)):
            raise self._fail(key, "a number or null")
        return None if v is None else float(v)

    def str(self, key: str) -> str | None:
        v = self.data.get(key)
        if v is not None and not isinstance(v, str):
            raise self._fail(key, "a string or null")
        return v

    def interval(self, key: str) -> tuple[float, float] | None:
        v = self.data.get(key)
        if v is None:
            return None
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
            raise self._fail(key, "[low, high] or null")
        return float(v[0]), float(v[1])

    def obj(self, key: str) -> dict[str, Any]:
        v = self.data.get(key)
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise self._fail(key, "an object")
        return v

    def strings(self, key: str) -> tuple[str, ...]:
        v = self.data.get(key) or []
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self._fail(key, "a list of strings")
        return tuple(v)

    def sub(self, key: str) -> _Fields:
        return _Fields(self.where, self.obj(key), f"{self.path}.{key}" if self.path else key)


@dataclass(frozen=True)
class Block:
    """An accuracy: ``accuracy`` and ``ci95`` are None when there are no items (an undefined cell)."""

    correct: int
    total: int
    accuracy: float | None
    ci95: tuple[float, float] | None
    chance: float | None = None

    @property
    def defined(self) -> bool:
        return self.total > 0 and self.accuracy is not None

    @classmethod
    def read(cls, f: _Fields) -> Block:
        total = f.int("total")
        return cls(f.int("correct"), total, f.num("accuracy") if total else None, f.interval("ci95") if total else None,
                   f.num("chance"))


def _block(f: _Fields, key: str) -> Block | None:
    return Block.read(f.sub(key)) if f.has(key) else None


@dataclass(frozen=True)
class Paired:
    """A paired comparison of one group: ``first`` = the baseline (or no thinking), ``second`` = the
    model (or thinking), each on the shared items; Δ in percentage points."""

    n: int
    delta: float | None
    delta_ci95: tuple[float, float] | None
    model_only: int
    baseline_only: int
    p_value: float | None
    p_holm: float | None
    significant: bool
    test: str | None = None
    interval: str | None = None
    first: Block | None = None
    second: Block | None = None

    @classmethod
    def read(cls, f: _Fields) -> Paired:
        p = f.num("p_value")
        return cls(f.int("n"), f.num("delta"), f.interval("delta_ci95"), f.int("model_only", 0), f.int("baseline_only", 0),
                   p, f.num("p_holm") if f.has("p_holm") else p, bool(f.data.get("significant")), f.str("test"),
                   f.str("interval"), _block(f, "first"), _block(f, "second"))


def _paired_groups(f: _Fields) -> dict[str, Paired]:
    return {name: Paired.read(f.sub(name)) for name in f.data}


@dataclass(frozen=True)
class ModeStats:
    mode: str
    overall: Block
    completed: Block | None
    forced: Block | None
    categories: dict[str, Block]
    macros: dict[str, Block]
    missing: int
    unfinished: int
    unparsed: int
    cut_off: int
    tokens: dict[str, Any] = field(default_factory=dict)
    format: dict[str, Any] | None = None
    degenerate: tuple[str, ...] = ()
    accuracy_std: float | None = None
    seeds: tuple[int, ...] = ()
    category_mean: float | None = None
    mean_output_tokens: float | None = None
    wall_time_s: float | None = None

    def group(self, name: str) -> Block | None:
        """``total``, a category or a macro category."""
        return self.overall if name == TOTAL else self.categories.get(name) or self.macros.get(name)

    @classmethod
    def read(cls, mode: str, f: _Fields) -> ModeStats:
        cats, macros = f.sub("per_category"), f.sub("per_macro_category")
        seeds = f.data.get("seeds") or []
        return cls(mode, Block.read(f), _block(f, "completed"), _block(f, "forced_answer"),
                   {k: Block.read(cats.sub(k)) for k in cats.data}, {k: Block.read(macros.sub(k)) for k in macros.data},
                   f.int("missing", 0), f.int("unfinished", 0), f.int("unparsed", 0), f.int("cut_off", 0),
                   f.obj("tokens"), f.obj("format") or None, f.strings("degenerate"), f.num("accuracy_std"),
                   tuple(int(s) for s in seeds if isinstance(s, int)), f.num("category_mean"), f.num("mean_output_tokens"),
                   f.num("wall_time_s"))


@dataclass(frozen=True)
class Comparison:
    """comparison.json: this run against ``baseline`` on the shared items, per mode and group."""

    baseline: str | None
    partial: bool
    items_compared: int
    modes: dict[str, dict[str, Paired]]
    baseline_degenerate: dict[str, tuple[str, ...]] = field(default_factory=dict)
    protocol_differences: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def read(cls, f: _Fields) -> Comparison:
        modes = f.sub("modes")
        deg = f.sub("baseline_degenerate")
        return cls(f.str("baseline"), bool(f.data.get("partial")), f.int("items_compared", 0),
                   {m: _paired_groups(modes.sub(m)) for m in modes.data}, {m: deg.strings(m) for m in deg.data},
                   f.strings("protocol_differences"), f.data)


@dataclass(frozen=True)
class Results:
    """One evaluation. ``modes`` is empty for the lm-eval suite, whose figures are in ``suite``."""

    path: Path | None
    schema_version: int
    task: str
    source: dict[str, Any]
    items: dict[str, Any]
    protocol: dict[str, Any]
    model: dict[str, Any]
    config: dict[str, Any]
    modes: dict[str, ModeStats]
    think_vs_nothink: dict[str, Paired]
    warnings: tuple[str, ...] = ()
    baseline: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    comparison: Comparison | None = None
    suite: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def model_name(self) -> str | None:
        return self.model.get("model_name_or_path")

    @property
    def adapter(self) -> str | None:
        return self.model.get("adapter_name_or_path")

    @classmethod
    def from_json(cls, path: str | Path) -> Results:
        """``results.json`` (or the folder that holds it) and, with a baseline, its ``comparison.json``."""
        p = Path(path)
        file = p / "results.json" if p.is_dir() else p
        data = load_json(file)
        comparison = None
        if data.get("baseline") and (file.parent / "comparison.json").is_file():
            comparison = load_json(file.parent / "comparison.json")
        if "provenance" not in data and (file.parent / "provenance.json").is_file():  # written beside it
            data = {**data, "provenance": load_json(file.parent / "provenance.json")}
        return cls.from_dict(data, str(file), comparison, file)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "results", comparison: dict[str, Any] | None = None,
                  path: Path | None = None) -> Results:
        f = _Fields(where, data)
        version = f.int("schema_version")
        if version not in READABLE:
            raise ResultsError(f"{where}: field 'schema_version': {version} is not one this version reads "
                               f"({', '.join(map(str, READABLE))}); evaluate again with this version")
        modes = f.sub("modes")
        comp = Comparison.read(_Fields(str(Path(where).with_name("comparison.json")), comparison)) if comparison else None
        if comp is None and f.has("comparison") and not f.has("suite"):
            comp = Comparison.read(f.sub("comparison"))
        return cls(path, version, f.str("task") or "", f.obj("source"), f.obj("items"), f.obj("protocol"), f.obj("model"),
                   f.obj("config"), {m: ModeStats.read(m, modes.sub(m)) for m in modes.data},
                   _paired_groups(f.sub("think_vs_nothink")), f.strings("warnings"), f.str("baseline"), f.obj("versions"),
                   f.obj("provenance"), comp, f.obj("suite"), data)


def load_json(file: Path) -> dict[str, Any]:
    """A JSON object from ``file``; errors name the file."""
    if not file.is_file():
        raise ResultsError(f"{file}: file not found (an eval output folder holds results.json)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ResultsError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{file}: expected a JSON object, got {type(data).__name__}")
    return data


# ----------------------------------------------------------------------------- the reviewer's header

OPTION_LABELS = {"variant": "Prompt variant", "shots": "Shots", "shots_source": "Shots file", "extractor": "Extractor",
                 "split": "Split", "instruction": "Instruction"}
CUTOFF_TEXT = {"wrong": "an output cut at max_new_tokens is scored wrong",
               "force_answer": "an output cut at max_new_tokens is scored wrong; its thought is also closed and the "
                               "answer asked for (the forced-answer column)"}
STATISTICS = ("95 % Wilson intervals; Δ paired per item (seeds averaged per item): exact McNemar test and Newcombe's "
              "interval (method 10), or with several seeds a sign test and a paired bootstrap; Holm's adjustment over the "
              "categories and macro categories of a mode; chance = mean over the items of 1 / number of options")


def provenance_id(res: Results, role: str) -> str | None:
    """The content id the provenance record (``provenance.inputs``, as ``llamafactory_ext.provenance``
    writes it) holds for ``role`` (model, adapter, source): a Hub snapshot's commit, else the digest."""
    prov = res.provenance
    inputs = prov.get("inputs") if isinstance(prov.get("inputs"), dict) else {}
    entry = inputs.get(role, prov.get(role))
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        for key in ("commit", "digest", "sha256"):
            if isinstance(entry.get(key), str):
                return entry[key]
    return None


def _code(value: Any) -> str:
    return "none" if value in (None, "") else f"`{str(value).replace('|', '/').replace(chr(10), ' ')}`"


def _with_id(res: Results, role: str, path: Any, fallback: str | None = None) -> str:
    pid = provenance_id(res, role) or fallback
    return _code(path) + (f" · id `{pid[:16]}`" if pid else "")


def _items_text(res: Results) -> str:
    items, count = res.items, res.items.get("count")
    limit = items.get("limit")
    text = f"{count}: the first {count} of the source (limit={limit})" if limit else f"all {count} of the source"
    seeds = [s for s in items.get("seeds") or [] if s is not None]
    return text + (f" × {len(seeds)} seeds" if len(seeds) > 1 else "")


def _sampling(p: dict[str, Any]) -> str:
    seeds = [s for s in p.get("seeds") or [] if s is not None]
    if not p.get("temperature"):
        return "greedy (temperature 0)"
    return (f"temperature {p['temperature']:g}, top_p {p.get('top_p', 1.0):g}"
            + (f", seeds {', '.join(map(str, seeds))}" if seeds else ""))


def header_rows(res: Results) -> list[tuple[str, str]]:
    """(setting, value) for every setting that changes a number, in reading order."""
    p, src = res.protocol, res.source
    rows = [("Model", _with_id(res, "model", res.model_name)),
            ("Adapter", _with_id(res, "adapter", res.adapter) if res.adapter else "none (the base model)"),
            ("Template", _code(res.model.get("template") or p.get("template"))),
            ("Task", f"`{res.task}`, source " + (_with_id(res, "source", src["source"], src.get("sha256"))
                                                  if src.get("source") else "the public set"))]
    if res.items.get("count") is not None:
        rows.append(("Items", _items_text(res)))
    for key, value in (p.get("task_options") or {}).items():
        rows.append((OPTION_LABELS.get(key, key), _code(value) if value not in (None, "") else "—"))
    if p:
        rows += [("System prompt", _code(p.get("system"))),
                 ("max_new_tokens", " · ".join(f"{m} {n}" for m, n in (p.get("max_new_tokens") or {}).items()) or "—"),
                 ("Sampling", _sampling(p)),
                 ("Backend", _code(p.get("backend")) + "".join(f", {k} {p[k]}" for k in ("device", "dtype") if p.get(k))),
                 ("Cut-off policy", f"`{p.get('cutoff')}`: {CUTOFF_TEXT.get(p.get('cutoff'), '')}".rstrip(": "))]
        if p.get("rescored_from"):
            rows.append(("Predictions", (f"re-scored from {_code(p['rescored_from'])}: no model ran here, the generation "
                                        "settings above are as configured, not verified")))
    if res.versions:
        rows.append(("Versions", " · ".join(f"{k} {v}" for k, v in res.versions.items())))
    if res.baseline:
        rows.append(("Baseline", _code(res.baseline)))
    if res.comparison and res.comparison.protocol_differences:
        rows.append(("Protocols differ", "; ".join(res.comparison.protocol_differences) + " (baseline_protocol=ignore)"))
    if res.modes:
        rows.append(("Statistics", STATISTICS))
    return rows


def header_lines(res: Results) -> list[str]:
    """The settings table every report starts with (results.md; study.md, the demo and cards reuse it)."""
    return ["| Setting | Value |", "|---|---|", *[f"| {k} | {v} |" for k, v in header_rows(res)]]
