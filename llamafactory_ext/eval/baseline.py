"""``baseline=``: a Δ only between runs that can be compared, and a paired test for every Δ.

The baseline is another eval output folder (``results.json`` + ``predictions.jsonl``), read through
``eval.results.Results``. Before any model is loaded (:func:`check_baseline_early`) and again on
the final rows (:func:`compare_with_baseline`) it must be:

- the same task on the same source (and split), with every mode being compared;
- the same items: ids, seeds AND content (each item's digest of question, options and gold:
  ``item_sha`` in every prediction row, ``content_sha256`` over all items in results.json);
- the same scoring protocol (:func:`protocol_record`): template, system prompt, max_new_tokens of
  each compared mode, cut-off policy, temperature (and top_p when sampling) and every option of
  the task (extractor, prompt variant, shots and the shots file's content, instruction, ...).
  Backend, device and dtype are recorded and shown, not compared.

Otherwise the run stops with exit status 2 in one line saying what differs. ``baseline_partial=true``
compares on the items (and modes) both runs share; ``baseline_protocol=ignore`` compares across
protocols, and the tables then say "protocols differ: ...". The comparison itself is paired per
item (``eval.report.paired_table``): Baseline and Model on the shared items, Δ with Newcombe's
interval, b and c, the exact McNemar p-value and its Holm adjustment over the categories.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from llamafactory_ext.config import UserError
from llamafactory_ext.eval.report import SCHEMA_VERSION, degenerate_warnings, paired_table, summarize
from llamafactory_ext.io import read_jsonl, sha256_file

# compared between a run and its baseline (with max_new_tokens per compared mode and the task's options)
COMPARED = ("template", "system", "cutoff", "temperature", "top_p")
# task options checked elsewhere (split: by check_baseline_early, which knows a file is one split)
OPTIONS_CHECKED_ELSEWHERE = ("split",)


class BaselineError(UserError):
    pass


def baseline_paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    results = p / "results.json" if p.is_dir() else p
    return results, results.parent / "predictions.jsonl"


def load_baseline(path: str | Path):
    """The baseline's :class:`~llamafactory_ext.eval.results.Results` (schema 3 only: older results
    record no scoring protocol, so nothing could say the two runs were scored alike)."""
    from llamafactory_ext.eval.results import Results, ResultsError, load_json

    results, _ = baseline_paths(path)
    if not results.is_file():
        raise BaselineError(f"baseline: file not found: {results}")
    try:
        data = load_json(results)
    except ResultsError as exc:
        raise BaselineError(f"baseline {exc}") from None
    if not isinstance(data.get("modes"), dict):
        raise BaselineError(f"baseline {results}: not an eval results.json (no 'modes' mapping)")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise BaselineError(f"baseline {results}: schema_version {data.get('schema_version')!r}, expected {SCHEMA_VERSION} "
                            "(older results record no scoring protocol); evaluate the baseline again with this version, "
                            "or re-score its predictions.jsonl with predictions=")
    try:
        return Results.from_dict(data, str(results), path=results)
    except ResultsError as exc:
        raise BaselineError(f"baseline: {exc}") from None


def source_record(source: str | None) -> dict[str, Any]:
    """What results.json records of the source: the name given and, for a local file, its sha256."""
    record: dict[str, Any] = {"source": source}
    if source and Path(source).is_file():
        record["sha256"] = sha256_file(Path(source))
    return record


_DIGESTS: dict[int, tuple[Any, str]] = {}  # id(item) -> (item, digest): each row of an item asks again


def item_digest(item: Any) -> str:
    """A short digest of one item's content (question, options, gold, category: every field the
    data layer read), the same whichever task or run holds it."""
    known = _DIGESTS.get(id(item))
    if known is not None and known[0] is item:  # the memo holds the item, so its id is not reused
        return known[1]
    data = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)} if dataclasses.is_dataclass(item) else item
    text = json.dumps(data, sort_keys=True, default=str)  # ASCII escapes: a lone surrogate cannot break it
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    if len(_DIGESTS) > 200_000:
        _DIGESTS.clear()
    _DIGESTS[id(item)] = (item, digest)
    return digest


def content_digest(digests: dict[str, str]) -> str:
    """One digest over ``{item id: item digest}``."""
    return hashlib.sha256("\n".join(f"{k}\t{v}" for k, v in sorted(digests.items())).encode("utf-8")).hexdigest()


def _device(cfg: Any) -> dict[str, Any]:
    if cfg.backend != "hf":
        return {"dtype": cfg.dtype}
    from llamafactory_ext.eval.engine import resolve_device, resolve_dtype

    device = resolve_device(cfg.device)
    return {"device": device.split(":")[0], "dtype": resolve_dtype(cfg.dtype, device)}


def protocol_record(r: Any) -> dict[str, Any]:
    """results.json ``protocol``: every setting of a resolved run that changes how outputs are
    made or scored (the reviewer's header shows it; :func:`protocol_differences` compares it)."""
    cfg, task = r.cfg, r.task
    options = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(task.options)}
    files = {k: sha256_file(Path(v)) for k, v in options.items() if isinstance(v, str) and v and Path(v).is_file()}
    # files the task reads that no option names (ITALIC's default 5_shots.jsonl next to the source)
    read = task.input_paths() if hasattr(task, "input_paths") else {}
    unnamed = {k: sha256_file(Path(v)) for k, v in read.items() if k not in files and Path(v).is_file()}
    return {
        "template": r.template, "system": r.system, "modes": list(r.modes),
        "max_new_tokens": {m: cfg.max_new_tokens or task.default_max_new_tokens[m] for m in r.modes},
        "cutoff": cfg.cutoff, "temperature": float(cfg.temperature or 0.0),
        "top_p": float(cfg.top_p) if cfg.top_p is not None else 1.0,
        "seeds": list(cfg.seeds) if cfg.seeds else [None], "backend": cfg.backend, **_device(cfg),
        "task_options": json.loads(json.dumps(options, default=str)), "option_files": files, "read_files": unnamed,
        "rescored_from": str(cfg.predictions) if cfg.predictions else None,
    }


def protocol_differences(theirs: dict[str, Any], ours: dict[str, Any], modes: list[str]) -> list[str]:
    """``'extractor 'x' there, 'y' here'`` for each compared setting that differs."""
    out = []
    sampled = theirs.get("temperature") or ours.get("temperature")
    for key in COMPARED:
        if key == "top_p" and not sampled:
            continue  # greedy: top_p changes nothing
        if theirs.get(key) != ours.get(key):
            out.append(f"{key} {theirs.get(key)!r} there, {ours.get(key)!r} here")
    for mode in modes:
        a, b = (theirs.get("max_new_tokens") or {}).get(mode), (ours.get("max_new_tokens") or {}).get(mode)
        if a != b:
            out.append(f"max_new_tokens[{mode}] {a} there, {b} here")
    t_opts, o_opts = theirs.get("task_options") or {}, ours.get("task_options") or {}
    t_files, o_files = theirs.get("option_files") or {}, ours.get("option_files") or {}
    for key in sorted((set(t_opts) | set(o_opts)) - set(OPTIONS_CHECKED_ELSEWHERE)):
        if key in t_files and key in o_files:
            if t_files[key] != o_files[key]:
                out.append(f"{key}: the file's content differs (sha256 {t_files[key][:12]} there, {o_files[key][:12]} here)")
        elif t_opts.get(key) != o_opts.get(key):
            out.append(f"{key} {t_opts.get(key)!r} there, {o_opts.get(key)!r} here")
    t_read, o_read = theirs.get("read_files") or {}, ours.get("read_files") or {}
    for key in sorted(set(t_read) & set(o_read)):
        if t_read[key] != o_read[key]:
            out.append(f"{key} file: its content differs (sha256 {t_read[key][:12]} there, {o_read[key][:12]} here)")
    return out


def _same_source(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.get("sha256") and b.get("sha256"):
        return a["sha256"] == b["sha256"]
    return (a.get("source") or None) == (b.get("source") or None)


def _items_key(record: dict[str, Any]) -> tuple:
    return record.get("ids_sha256"), sorted(map(str, record.get("seeds") or [None]))


def _check_task(r: Any, base: Any) -> None:
    problems = []
    if base.task != r.task.name:
        problems.append(f"task {base.task!r} (this run: {r.task.name!r})")
    if not _same_source(base.source, source_record(r.cfg.source)):
        problems.append(f"source {base.source.get('source')!r} (this run: {r.cfg.source!r}, or its content differs)")
    theirs_split = base.config.get("split")
    from_file = bool(r.cfg.source) and Path(r.cfg.source).is_file()  # a file is one split whatever split= says
    if hasattr(r.cfg, "split") and not from_file and theirs_split not in (None, r.cfg.split):
        # a Hub id or a folder of {split}.jsonl: row-number ids name other questions in another split
        problems.append(f"split {theirs_split!r} (this run: {r.cfg.split!r})")
    if problems:
        raise BaselineError(f"baseline {r.cfg.baseline} cannot be compared: it has {'; '.join(problems)}")


def check_baseline_early(r: Any, items: dict[str, Any] | None = None):
    """Task, source, modes, protocol and (given this run's ``items`` record of results.json) items,
    seeds and content of the baseline, checked before generating anything."""
    base = load_baseline(r.cfg.baseline)
    _check_task(r, base)
    missing = [m for m in r.modes if m not in base.modes]
    if missing and not r.cfg.baseline_partial:
        raise BaselineError(f"baseline {r.cfg.baseline} has no mode {', '.join(missing)} (it has {', '.join(base.modes)}); "
                            "evaluate it in that mode too, or pass baseline_partial=true to compare only the modes both have")
    diffs = protocol_differences(base.protocol, protocol_record(r), [m for m in r.modes if m in base.modes])
    if diffs and getattr(r.cfg, "baseline_protocol", "check") != "ignore":
        raise BaselineError(f"baseline {r.cfg.baseline} was scored under another protocol: {'; '.join(diffs)}; "
                            "pass baseline_protocol=ignore to compare anyway (the tables then say so)")
    theirs = base.items
    if items is not None and not r.cfg.baseline_partial:
        if _items_key(theirs) != _items_key(items):
            raise BaselineError(f"baseline {r.cfg.baseline} has other items: {theirs.get('count')} items, seeds {theirs.get('seeds')} "
                                f"there, {items['count']} items, seeds {items['seeds']} here (limit or seeds differ?); "
                                "pass baseline_partial=true to compare the shared ones")
        if theirs.get("content_sha256") and items.get("content_sha256") and theirs["content_sha256"] != items["content_sha256"]:
            raise BaselineError(f"baseline {r.cfg.baseline} has the same item ids with other content (question, options or "
                                "gold differ): its source changed since; evaluate the baseline again on this source")
    return base


def _check_content(r: Any, base: Any, rows: list[dict[str, Any]], base_rows: list[dict[str, Any]], items: dict[str, Any]) -> None:
    """The items both runs hold must be the same questions: per item digest when both runs' rows
    carry one, else the digest over all items (refused under baseline_partial: it cannot tell)."""
    ours = {str(x["id"]): x.get("item_sha") for x in rows}
    theirs = {str(x["id"]): x.get("item_sha") for x in base_rows}
    shared = sorted(ours.keys() & theirs.keys())
    if all(ours[i] and theirs[i] for i in shared):
        differ = [i for i in shared if ours[i] != theirs[i]]
        if differ:
            raise BaselineError(f"baseline {r.cfg.baseline} has other content for {len(differ)} of the {len(shared)} shared items "
                                f"(question, options or gold differ; first: id {differ[0]!r}): its source changed since")
        return
    a, b = base.items.get("content_sha256"), items.get("content_sha256")
    if not r.cfg.baseline_partial and a and b and a != b:
        raise BaselineError(f"baseline {r.cfg.baseline} has the same item ids with other content (question, options or gold differ)")
    if r.cfg.baseline_partial:
        raise BaselineError(f"baseline {r.cfg.baseline}: its prediction rows (or this run's) carry no item digest (written by an "
                            "older version), so the content of the shared items cannot be checked; re-score them with predictions=")


def _shared_modes(r: Any, results: dict[str, Any], rows: list[dict[str, Any]], base: Any,
                  base_rows: list[dict[str, Any]]) -> tuple[list[str], bool, int]:
    modes = [m for m in results["modes"] if m in base.modes]
    partial, compared = len(modes) < len(results["modes"]), 0
    for mode in modes:
        ours = {(str(x["id"]), x.get("seed")) for x in rows if x["mode"] == mode}
        theirs = {(str(x["id"]), x.get("seed")) for x in base_rows if x["mode"] == mode}
        if ours != theirs:
            if not r.cfg.baseline_partial:
                raise BaselineError(
                    f"baseline {r.cfg.baseline} has other items in mode {mode}: {len(theirs)} items there, {len(ours)} here, "
                    f"{len(ours & theirs)} shared (limit or seeds differ?); pass baseline_partial=true to compare the shared ones")
            partial = True
        compared = max(compared, len(ours & theirs))
    return modes, partial, compared


def compare_with_baseline(r: Any, results: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
    """(baseline Results, comparison.json) from both runs' predictions, paired per item. Warnings
    (degenerate baseline, differing protocols) are appended to ``results["warnings"]``."""
    base = check_baseline_early(r)
    _, pred_path = baseline_paths(r.cfg.baseline)
    if not pred_path.is_file():
        raise BaselineError(f"baseline: {pred_path} is missing: the paired test needs the baseline's per-item predictions")
    base_rows = read_jsonl(pred_path)
    _check_content(r, base, rows, base_rows, results["items"])
    modes, partial, compared = _shared_modes(r, results, rows, base, base_rows)
    table = {mode: paired_table(base_rows, mode, rows, mode) for mode in modes}
    ours = {(str(x["id"]), x.get("seed"), x["mode"]) for x in rows}
    shared = {m: [x for x in base_rows if x["mode"] == m and (str(x["id"]), x.get("seed"), m) in ours] for m in modes}
    degenerate = {m: summarize(shared[m], len(shared[m]), m)["degenerate"] for m in modes}
    diffs = protocol_differences(base.protocol, results.get("protocol") or {}, modes)
    results["warnings"].extend(degenerate_warnings({m: {"degenerate": d} for m, d in degenerate.items()}, "the baseline"))
    if diffs:
        results["warnings"].append(f"protocols differ from the baseline's (baseline_protocol=ignore): {'; '.join(diffs)}")
    comparison = {"schema_version": SCHEMA_VERSION, "baseline": str(r.cfg.baseline), "partial": partial,
                  "items_compared": compared, "modes": table, "baseline_degenerate": degenerate, "protocol_differences": diffs}
    return base, comparison


# ----------------------------------------------------------------------------- the lm-eval suite


def per_sample(rows: list[dict[str, Any]], task: str, metric: str) -> dict[Any, bool] | None:
    """doc id -> right or wrong, from lm-eval's per-sample log (``predictions.jsonl``) of one task;
    None when the metric is not a 0 / 1 score per document (no paired test then)."""
    values = {r["doc_id"]: r[metric] for r in rows if r.get("task") == task and r.get(metric) is not None}
    if any(v not in (0, 1, True, False) for v in values.values()):
        return None
    return {doc: bool(v) for doc, v in values.items()}


def suite_paired(comparison: dict[str, dict[str, Any]], baseline: str | Path, rows: list[dict[str, Any]],
                 suite: dict[str, dict[str, Any]]) -> list[str]:
    """Add the paired test of each task (``eval.stats.paired`` over the documents both per-sample
    logs hold: b, c, the exact McNemar p and Newcombe's interval of Δ) to ``comparison[task]``;
    returns warnings for the tasks that get none."""
    from llamafactory_ext.eval.stats import paired

    _, path = baseline_paths(baseline)
    if not rows or not path.is_file():
        return [f"no paired test: {'the baseline' if rows else 'this run'} kept no per-sample log (log_samples=true)"]
    base_rows, warnings = read_jsonl(path), []
    for task, cell in comparison.items():
        metric = suite[task]["metric"]
        first, second = per_sample(base_rows, task, metric), per_sample(rows, task, metric)
        if not first or not second:
            warnings.append(f"{task}: no paired test ({metric} is not a per-document 0 / 1 score in both logs)")
            continue
        cell["paired"] = paired(first, second)
    return warnings
