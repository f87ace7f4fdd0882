"""The prediction loop of the item tasks: every missing (item, mode, seed) row generated in batches
and appended to ``predictions.jsonl`` as its batch finishes (a re-run resumes), each row scored
as it is written (:func:`score_row`); and ``predictions=FILE``, re-scoring rows written elsewhere
without a model. The rows resume only under the same settings and the same inputs (``resolve.settings``:
a replaced source file or a model retrained into the same folder is refused, naming what changed);
``provenance.json`` beside them records what they were made from.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from llamafactory_ext.eval.baseline import item_digest
from llamafactory_ext.eval.options import EvalConfig, EvalError
from llamafactory_ext.eval.resolve import EvalRun, provenance, settings
from llamafactory_ext.eval.tasks import ItemTask
from llamafactory_ext.io import ResumableJsonl, check_settings, read_jsonl, settings_path, sha256_file, write_jsonl
from llamafactory_ext.thinking import MODES, split_output

PREDICTIONS = "predictions.jsonl"
# optional fields of a row and the types they must have (a string "false" must not pass for False)
ROW_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "finished": ((bool,), "true or false"),
    "num_tokens": ((int,), "a whole number"),
    "prompt_tokens": ((int,), "a whole number"),
    "gen_time_s": ((int, float), "a number"),
    "seed": ((int, type(None)), "a whole number or null"),
}


def row_key(row: dict[str, Any]) -> tuple[str, str, int | None]:
    return (str(row["id"]), str(row["mode"]), row.get("seed"))


def check_rows(rows: list[dict[str, Any]], path: Path, known_ids: set[str] | None = None) -> list[dict[str, Any]]:
    """Rows of a predictions file with the fields scoring needs; errors name file, line and field."""
    seen: dict[tuple, int] = {}
    for row in rows:
        where = f"{path}: line {row.get('_line')}"
        for key in ("id", "mode", "output"):
            if key not in row:
                raise EvalError(f"{where}: missing field {key!r}")
        if row["mode"] not in MODES:
            raise EvalError(f"{where}, field 'mode': unknown mode {row['mode']!r}; known: {', '.join(MODES)}")
        if not isinstance(row["output"], str):
            raise EvalError(f"{where}, field 'output': must be a string")
        for key, (types, wanted) in ROW_TYPES.items():
            value = row.get(key)
            if key in row and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
                raise EvalError(f"{where}, field {key!r}: must be {wanted}, got {value!r}")
        if known_ids is not None and str(row["id"]) not in known_ids:
            raise EvalError(f"{where}, field 'id': {row['id']!r} is not an item of this task")
        key = row_key(row)
        if key in seen:
            raise EvalError(f"{where}: duplicate prediction for id {row['id']!r} mode {row['mode']!r} (first at line {seen[key]})")
        seen[key] = row["_line"]
    return rows


def this_run(r: EvalRun, items: list[Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of this run's items, modes and seeds: a resumed folder may hold more (limit,
    thinking and seeds are not part of the fingerprint), and no figure may count those."""
    wanted = {(r.items_task.item_id(it), seed) for it in items for seed in r.seeds}
    return [x for x in rows if x["mode"] in r.modes and (str(x["id"]), x.get("seed")) in wanted]


def score_row(task: ItemTask, item: Any, mode: str, output: str, seed: int | None, extra: dict[str, Any]) -> dict[str, Any]:
    parts = split_output(output)
    s = task.score(output, item, mode, finished=extra.get("finished", True) is not False)
    return {
        "id": task.item_id(item), "mode": mode, "seed": seed, "output": output, "extracted": s.extracted,
        "method": s.method, "status": s.status, "gold": task.gold(item), "correct": s.correct,
        "category": task.category(item), "macro_category": task.macro_category(item),
        "chance": task.chance(item), "item_sha": item_digest(item),
        "closed": parts.closed, "balanced": parts.balanced,
        "reasoning_words": len(parts.reasoning.split()) if parts.closed else None,
        **extra,
    }


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="item", disable=not enabled, dynamic_ncols=True,
                file=sys.stderr, smoothing=0.1)


class _FlushingBar:
    """Progress hook: make the batch's rows durable, then move the bar."""

    def __init__(self, writer: ResumableJsonl, bar) -> None:
        self.writer, self.bar = writer, bar

    def update(self, n: int) -> None:
        self.writer.flush()
        self.bar.update(n)


def encoders(engine, template: str, modes: tuple[str, ...]):
    from llamafactory_ext.prompts import PromptEncoder

    return {m: PromptEncoder(engine.tokenizer, template, m) for m in modes}


def gen_params(r: EvalRun, mode: str, seed: int | None, max_new_tokens: int | None = None):
    from llamafactory_ext.eval.engine import GenParams

    cfg = r.cfg
    return GenParams(max_new_tokens=max_new_tokens or cfg.max_new_tokens or r.items_task.default_max_new_tokens[mode],
                     temperature=cfg.temperature or 0.0, top_p=cfg.top_p if cfg.top_p is not None else 1.0, seed=seed)


def engine_factory(cfg: EvalConfig):
    """A function that loads the engine on its first call (a re-run with nothing left loads none)."""
    from llamafactory_ext.eval.engine import load_engine

    loaded: list[Any] = []

    def get():
        if not loaded:
            loaded.append(load_engine(
                cfg.backend, cfg.model_name_or_path, cfg.adapter_name_or_path,
                batch_size=cfg.batch_size or (8 if cfg.backend == "hf" else 256), device=cfg.device, dtype=cfg.dtype,
                gpu_memory_utilization=cfg.gpu_memory_utilization, tensor_parallel_size=cfg.tensor_parallel_size,
                max_model_len=cfg.max_model_len, max_lora_rank=cfg.max_lora_rank))
        return loaded[0]

    return get


def generate_predictions(r: EvalRun, items: list[Any], engine, writer: ResumableJsonl, done: set[tuple]) -> None:
    """Generate every missing (id, mode, seed) row, appending each as its batch finishes."""
    task = r.items_task
    encs = encoders(engine, r.template, r.modes)
    for seed in r.seeds:
        for mode in r.modes:
            todo = [it for it in items if (task.item_id(it), mode, seed) not in done]
            if not todo:
                continue
            prompts = [encs[mode].encode(task.messages(it), r.system) for it in todo]
            bar = _progress(len(items), len(items) - len(todo), f"{task.name} {mode}" + (f" seed {seed}" if seed is not None else ""),
                            r.cfg.progress)
            last = [time.perf_counter()]

            def on_result(i: int, gen, mode=mode, seed=seed, todo=todo, prompts=prompts, last=last) -> None:
                now = time.perf_counter()
                extra = {"num_tokens": gen.num_tokens, "finished": gen.finished, "prompt_tokens": len(prompts[i]),
                         "gen_time_s": round(now - last[0], 4)}
                last[0] = now
                writer.append(score_row(task, todo[i], mode, gen.text, seed, extra))

            engine.generate(prompts, gen_params(r, mode, seed), on_result=on_result, progress=_FlushingBar(writer, bar))
            bar.close()


def predictions(r: EvalRun, items: list[Any], engine) -> list[dict[str, Any]]:
    """Resume ``predictions.jsonl`` (generating what is missing) and return this run's rows."""
    path = r.output_dir / PREDICTIONS
    task = r.items_task
    with ResumableJsonl(path, settings(r), r.cfg.overwrite, f"predictions in {r.output_dir}") as writer:
        rows = check_rows(writer.open(), path)
        if writer.repaired:
            print(f"eval: {path}: dropped a half-written last line; it is generated again", file=sys.stderr)
        provenance(r).write(r.output_dir)
        done = {row_key(x) for x in rows}
        if any((task.item_id(it), m, s) not in done for it in items for m in r.modes for s in r.seeds):
            generate_predictions(r, items, engine(), writer, done)
    return this_run(r, items, check_rows(read_jsonl(path), path))


def rescored_rows(r: EvalRun, items: list[Any]) -> tuple[list[dict[str, Any]], Path]:
    """``predictions=FILE``: {id, mode, output[, seed, finished]} rows re-extracted and re-scored, no
    model; the run's modes become the modes the file holds."""
    src = Path(r.cfg.predictions or "")
    if not src.is_file():
        raise EvalError(f"predictions: file not found: {src}")
    task = r.items_task
    by_id = {task.item_id(it): it for it in items}
    rows_in = check_rows(read_jsonl(src), src, set(by_id))
    if not rows_in:
        raise EvalError(f"{src}: no predictions")
    keep = ("num_tokens", "finished", "prompt_tokens", "gen_time_s")
    rows = [score_row(task, by_id[str(x["id"])], x["mode"], x["output"], x.get("seed"), {k: x[k] for k in keep if k in x})
            for x in rows_in]
    r.modes = tuple(m for m in MODES if any(x["mode"] == m for x in rows))
    return rows, src


def record_rescored(r: EvalRun, rows: list[dict[str, Any]], src: Path) -> None:
    """Write re-scored rows as this folder's predictions, recorded as re-scored: a model run into
    this folder must not resume from them, and a re-score must not silently replace a model run's."""
    path = r.output_dir / PREDICTIONS
    check_settings(settings_path(path), {**settings(r), "rescored_from": str(src.resolve()), "sha256": sha256_file(src)},
                   r.cfg.overwrite, f"predictions in {r.output_dir}", has_outputs=path.is_file() and path.stat().st_size > 0)
    write_jsonl(path, rows)
    provenance(r).write(r.output_dir)
