"""Evaluate a model (optionally + LoRA adapter) on ITALIC, GSM8K or a Mult-IT held-out split,
in thinking (``think``) and non-thinking (``nothink``) mode.

Prompts are encoded with LLaMA-Factory's own template code (``prompts.PromptEncoder``), with the
same template and thinking setting as training. Outputs are split at the last ``</think>``; the
answer is extracted by a named filter chain (strict first, flexible fallback) and the method
that matched is recorded. An output cut at ``max_new_tokens`` is wrong and counted as cut off
(``cutoff=force_answer`` also closes its thought and asks for the answer, reported in a column
of its own); in ``think`` mode an output without ``</think>`` is ``unfinished``, an output
without an extractable answer ``unparsed``.

Examples:
  llamafactory-ext eval recipes/eval/italic_zeroshot.yaml model_name_or_path=Qwen/Qwen3-8B
  llamafactory-ext eval recipes/eval/italic_zeroshot.yaml from_recipe=recipes/v3_mixed.yaml backend=vllm
  llamafactory-ext eval recipes/eval/gsm8k.yaml adapter_name_or_path=saves/gsm8k thinking=off
  llamafactory-ext eval task=italic predictions=other_tool.jsonl output_dir=results/rescored

Writes to ``output_dir`` (one run at a time: a lock refuses a second one): predictions.jsonl
(appended as items finish; a re-run with the same settings resumes, other settings are refused
unless overwrite=true), results.json (schema in report.py), results.md (Category | n | Baseline |
Model [95 % CI] | Δ | p per mode, and thinking vs non-thinking), one PNG per mode, and
comparison.json with baseline=.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llamafactory_ext.config import (
    UserError,
    combine,
    describe,
    from_argv,
    load_yaml,
    option,
)
from llamafactory_ext.eval.baseline import (
    check_baseline_early,
    compare_with_baseline,
    content_digest,
    item_digest,
    protocol_record,
    source_record,
)
from llamafactory_ext.eval.report import (
    SCHEMA_VERSION,
    degenerate_warnings,
    package_versions,
    paired_table,
    summarize,
    with_seeds,
    write_outputs,
)
from llamafactory_ext.eval.tasks import OK, TASKS, Task, task_class
from llamafactory_ext.io import (
    FolderLock,
    ResumableJsonl,
    check_settings,
    read_jsonl,
    settings_path,
    sha256_file,
    write_jsonl,
)
from llamafactory_ext.thinking import (
    MODES,
    NOTHINK,
    THINK,
    THOUGHT_WORDS,
    format_thinking,
    split_output,
    truncate_reasoning,
)

USAGE = "CONFIG.yaml [key=value ...]   (task=italic|gsm8k|multit|lm_eval adds that task's own keys)"
THINKING = {"on": (THINK,), "off": (NOTHINK,), "both": (THINK, NOTHINK), THINK: (THINK,), NOTHINK: (NOTHINK,)}
PREDICTIONS = "predictions.jsonl"
FORCED = "forced.jsonl"
FAITH_FRACTIONS = (0.25, 0.5, 0.75)


class EvalError(UserError):
    pass


@dataclass
class EvalConfig:
    """Keys every ``llamafactory-ext eval`` accepts (the task adds its own: ``--help`` lists them)."""

    # model
    model_name_or_path: str | None = option(None, "base model (local dir or Hub id); from_recipe fills it")
    adapter_name_or_path: str | None = option(None, "LoRA adapter dir (from_recipe: the recipe's output_dir if it holds one)")
    template: str | None = option(None, "LLaMA-Factory template (default: the recipe's, else qwen3)")
    from_recipe: str | None = option(None, "training recipe: inherits template, enable_thinking (-> modes), default_system, model, adapter")
    # task
    task: str = option("italic", "italic | gsm8k | multit | lm_eval (lm-evaluation-harness's Italian suite)", choices=tuple(TASKS))
    source: str | None = option(None, "Hub id or local file / folder (default: the public set)")
    limit: int | None = option(None, "first N items only", ge=1)
    system: str | None = option(None, "system prompt (default: the recipe's default_system, else the task's; '' = none)")
    thinking: str | bool | None = option(None, "on | off | both (default: the recipe's trained modes, else both for reasoning templates)")
    # generation
    backend: Literal["hf", "vllm"] = option("hf", "hf | vllm")
    batch_size: int | None = option(None, "prompts per generate call: hf default 8; vllm chunk default 256", ge=1)
    max_new_tokens: int | None = option(None, "default per task and mode: ITALIC 350 / 4096 (think), GSM8K 512 / 4096", ge=1)
    temperature: float | None = option(None, "0 = greedy (default)", ge=0.0)
    top_p: float | None = option(None, "nucleus sampling (default 1.0)", gt=0.0, le=1.0)
    seeds: list[int] | None = option(None, "with temperature > 0: one run per seed, pooled, with the std over seeds, e.g. [42,123,456]")
    device: str | None = option(None, "hf: cpu | cuda | cuda:1 (default: cuda when available)")
    dtype: str = option("auto", "hf/vllm dtype: auto | float32 | bfloat16 | float16", choices=("auto", "float32", "bfloat16", "float16"))
    gpu_memory_utilization: float = option(0.9, "vllm", gt=0.0, le=1.0)
    tensor_parallel_size: int = option(1, "vllm", ge=1)
    max_model_len: int | None = option(None, "vllm", ge=1)
    max_lora_rank: int = option(64, "vllm: largest LoRA rank to serve", ge=1)
    cutoff: Literal["wrong", "force_answer"] = option("wrong", "an output cut at max_new_tokens: wrong | force_answer (also close the thought and ask for the answer: its own column)")
    # outputs
    output_dir: str | None = option(None, "default results/eval/<task>")
    baseline: str | None = option(None, "an eval output folder (or its results.json) to compare with: Baseline, Δ and p columns")
    baseline_partial: bool = option(False, "compare with a baseline on the items both runs share (the report says so)")
    baseline_protocol: Literal["check", "ignore"] = option("check", "check: refuse a baseline scored under another protocol "
                                                          "(extractor, variant, shots, max_new_tokens, ...); ignore: compare, the tables say so")
    predictions: str | None = option(None, "re-score a JSONL of {id, mode, output[, seed, finished]} without a model")
    faithfulness: bool = option(False, "think mode: cut reasoning at 25/50/75 %, force the answer, report change rate")
    faithfulness_samples: int = option(50, "items in the faithfulness probe", ge=1)
    progress: bool = option(True, "progress bar (items/s, ETA) on stderr")
    overwrite: bool = option(False, "start over when output_dir holds predictions of other settings")


# Settings that change what a row of predictions.jsonl holds: a resume must match every one of
# them (with the task's own options, which all change prompts or scoring). Every other key of
# EvalConfig is listed in NEUTRAL_SETTINGS; tests/eval/test_runner.py fails on a key in neither.
OUTPUT_SETTINGS = ("model_name_or_path", "adapter_name_or_path", "template", "task", "source", "system", "backend",
                   "max_new_tokens", "temperature", "top_p", "device", "dtype", "max_model_len")
NEUTRAL_SETTINGS = ("from_recipe", "limit", "thinking", "batch_size", "seeds", "gpu_memory_utilization",
                    "tensor_parallel_size", "max_lora_rank", "cutoff", "output_dir", "baseline", "baseline_partial", "baseline_protocol",
                    "predictions", "faithfulness", "faithfulness_samples", "progress", "overwrite")


def config_class(task: str) -> type:
    return combine(f"eval_{task}_options", EvalConfig, task_class(task).options)


def options_help() -> str:
    lines = [describe(EvalConfig)]
    for name in TASKS:
        own = describe(task_class(name).options)
        if own:
            lines += ["", f"task={name} also takes:", own]
    return "\n".join(lines)


def parse(argv: list[str]) -> Any:
    """``[CONFIG.yaml] key=value ...`` -> the shared keys + the chosen task's own keys."""
    from llamafactory_ext.config import load_config, split_argv

    path, overrides = split_argv(argv)
    task = load_config(path, overrides).get("task", "italic")
    return from_argv(config_class(str(task)), argv)


# ----------------------------------------------------------------------------- config resolution


@dataclass
class Resolved:
    cfg: Any
    task: Task
    template: str
    modes: tuple[str, ...]
    system: str | None
    output_dir: Path
    warnings: list[str]


def adapter_training_template(adapter: str | None) -> str | None:
    """Template recorded next to an adapter: ``training_args.yaml`` (LLaMA-Factory's web UI /
    our recipes) or ``llamaboard_config.yaml`` (``top.template``). None when not recorded."""
    if not adapter or not Path(adapter).is_dir():
        return None
    import yaml

    for name, key in (("training_args.yaml", "template"), ("llamaboard_config.yaml", "top.template")):
        p = Path(adapter) / name
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) if p.is_file() else None
        except (OSError, yaml.YAMLError):
            data = None
        if isinstance(data, dict) and data.get(key):
            return str(data[key])
    return None


def adapter_base_model(adapter: str | None) -> str | None:
    """``base_model_name_or_path`` of a PEFT adapter (adapter_config.json), if any."""
    p = Path(adapter or "") / "adapter_config.json"
    try:
        return json.loads(p.read_text(encoding="utf-8")).get("base_model_name_or_path") or None if adapter and p.is_file() else None
    except (OSError, ValueError):
        return None


def resolve_modes(cfg: Any, recipe: dict[str, Any], template: str) -> tuple[str, ...]:
    from llamafactory_ext.prompts import (
        ModeError,
        is_reasoning_template,
        training_modes,
    )

    try:
        reasoning = is_reasoning_template(template)
    except ModeError as exc:
        raise EvalError(str(exc)) from None
    if cfg.thinking is not None:
        # YAML 1.1 reads on/off as booleans: thinking=off arrives as False
        cfg.thinking = {"True": "on", "False": "off", "true": "on", "false": "off"}.get(str(cfg.thinking), cfg.thinking)
        if cfg.thinking not in THINKING:
            raise EvalError(f"unknown thinking mode {cfg.thinking!r}; use on | off | both (or think | nothink)")
        modes = THINKING[cfg.thinking]
    elif recipe:
        modes = training_modes(template, recipe.get("enable_thinking", True))
    else:
        modes = (THINK, NOTHINK) if reasoning else (NOTHINK,)
    if THINK in modes and not reasoning:
        raise EvalError(f"template {template!r} has no thinking mode: only 'nothink' exists (thinking=off); "
                        "use template=qwen3 for hybrid Qwen3 models")
    return tuple(modes)


def _from_recipe(cfg: Any, recipe: dict[str, Any], warnings: list[str]) -> None:
    if not cfg.model_name_or_path and recipe.get("model_name_or_path"):
        cfg.model_name_or_path = str(recipe["model_name_or_path"])
    if not cfg.adapter_name_or_path and recipe.get("output_dir") and recipe.get("finetuning_type", "lora") == "lora":
        if Path(recipe["output_dir"], "adapter_config.json").is_file():
            cfg.adapter_name_or_path = str(recipe["output_dir"])
        else:
            warnings.append(f"recipe output_dir {recipe['output_dir']!r} holds no adapter: evaluating the base model")


def _adapter_warnings(cfg: Any, template: str, warnings: list[str]) -> None:
    trained = adapter_training_template(cfg.adapter_name_or_path)
    if trained and trained != template:
        warnings.append(f"the adapter {cfg.adapter_name_or_path} was trained with template {trained!r} but prompts use {template!r}")
    base = adapter_base_model(cfg.adapter_name_or_path)
    if base and cfg.model_name_or_path and Path(base).name != Path(str(cfg.model_name_or_path)).name:
        warnings.append(f"the adapter {cfg.adapter_name_or_path} was trained on {base!r}, evaluated on {cfg.model_name_or_path!r}")


def resolve(cfg: Any) -> Resolved:
    warnings: list[str] = []
    if cfg.from_recipe and not Path(cfg.from_recipe).is_file():
        raise EvalError(f"from_recipe: file not found: {cfg.from_recipe}")
    recipe: dict[str, Any] = load_yaml(cfg.from_recipe) if cfg.from_recipe else {}
    template = cfg.template or recipe.get("template") or "qwen3"
    if cfg.template and recipe.get("template") and cfg.template != recipe["template"]:
        warnings.append(f"template {cfg.template!r} differs from the recipe's training template {recipe['template']!r}")
    modes = resolve_modes(cfg, recipe, template)
    _from_recipe(cfg, recipe, warnings)
    _adapter_warnings(cfg, template, warnings)
    if cfg.seeds:
        if not cfg.temperature:
            raise EvalError("seeds=[...] gives mean ± std over sampled runs: set temperature > 0 (e.g. 0.6) too")
        if len(set(cfg.seeds)) != len(cfg.seeds):
            raise EvalError(f"seeds must be distinct, got {cfg.seeds}")
    task = task_class(cfg.task)(cfg)
    system = cfg.system if cfg.system is not None else recipe.get("default_system") or task.system()
    out = Path(cfg.output_dir or f"results/eval/{cfg.task}")
    return Resolved(cfg, task, template, modes, system or None, out, warnings)


def settings(r: Resolved) -> dict[str, Any]:
    """Every setting that changes a prediction row (``OUTPUT_SETTINGS`` + the task's options)."""
    cfg = r.cfg
    data = {k: getattr(cfg, k) for k in OUTPUT_SETTINGS}
    data.update(template=r.template, system=r.system)
    data.update({f.name: getattr(cfg, f.name) for f in dataclasses.fields(r.task.options)})
    if cfg.source and Path(cfg.source).is_file():
        data["source_sha256"] = sha256_file(Path(cfg.source))
    if cfg.backend == "hf":
        from llamafactory_ext.eval.engine import resolve_device, resolve_dtype

        device = resolve_device(cfg.device)
        data.update(device=device.split(":")[0], dtype=resolve_dtype(cfg.dtype, device))
    return data


# ----------------------------------------------------------------------------- predictions


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
        if known_ids is not None and str(row["id"]) not in known_ids:
            raise EvalError(f"{where}, field 'id': {row['id']!r} is not an item of this task")
        key = row_key(row)
        if key in seen:
            raise EvalError(f"{where}: duplicate prediction for id {row['id']!r} mode {row['mode']!r} (first at line {seen[key]})")
        seen[key] = row["_line"]
    return rows


def this_run(r: Resolved, items: list[Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of this run's items, modes and seeds: a resumed folder may hold more (limit,
    thinking and seeds are not part of the fingerprint), and no figure may count those."""
    wanted = {(r.task.item_id(it), seed) for it in items for seed in _seeds(r.cfg)}
    return [x for x in rows if x["mode"] in r.modes and (str(x["id"]), x.get("seed")) in wanted]


def score_row(task: Task, item: Any, mode: str, output: str, seed: int | None, extra: dict[str, Any]) -> dict[str, Any]:
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


def _encoders(engine, template: str, modes: tuple[str, ...]):
    from llamafactory_ext.prompts import PromptEncoder

    return {m: PromptEncoder(engine.tokenizer, template, m) for m in modes}


def _params(r: Resolved, mode: str, seed: int | None, max_new_tokens: int | None = None):
    from llamafactory_ext.eval.engine import GenParams

    cfg = r.cfg
    return GenParams(max_new_tokens=max_new_tokens or cfg.max_new_tokens or r.task.default_max_new_tokens[mode],
                     temperature=cfg.temperature or 0.0, top_p=cfg.top_p if cfg.top_p is not None else 1.0, seed=seed)


def _seeds(cfg: Any) -> list[int | None]:
    return list(cfg.seeds) if cfg.seeds else [None]


def generate_predictions(r: Resolved, items: list[Any], engine, writer: ResumableJsonl, done: set[tuple]) -> None:
    """Generate every missing (id, mode, seed) row, appending each as its batch finishes."""
    task = r.task
    encoders = _encoders(engine, r.template, r.modes)
    for seed in _seeds(r.cfg):
        for mode in r.modes:
            todo = [it for it in items if (task.item_id(it), mode, seed) not in done]
            if not todo:
                continue
            prompts = [encoders[mode].encode(task.messages(it), r.system) for it in todo]
            bar = _progress(len(items), len(items) - len(todo), f"{task.name} {mode}" + (f" seed {seed}" if seed is not None else ""),
                            r.cfg.progress)
            last = [time.perf_counter()]

            def on_result(i: int, gen, mode=mode, seed=seed, todo=todo, prompts=prompts, last=last) -> None:
                now = time.perf_counter()
                extra = {"num_tokens": gen.num_tokens, "finished": gen.finished, "prompt_tokens": len(prompts[i]),
                         "gen_time_s": round(now - last[0], 4)}
                last[0] = now
                writer.append(score_row(task, todo[i], mode, gen.text, seed, extra))

            engine.generate(prompts, _params(r, mode, seed), on_result=on_result, progress=_FlushingBar(writer, bar))
            bar.close()


def force_answers(r: Resolved, items: list[Any], rows: list[dict[str, Any]], engine_factory) -> list[dict[str, Any]]:
    """``cutoff=force_answer``: every think-mode output cut at max_new_tokens gets ``\\n</think>\\n\\n``
    appended and a short answer generated (``task.answer_tokens``). Kept in forced.jsonl (resumable)."""
    cut = [x for x in rows if x["mode"] == THINK and x.get("finished") is False and not x.get("closed")]
    path = r.output_dir / FORCED
    with ResumableJsonl(path, {**settings(r), "answer_tokens": r.task.answer_tokens}, r.cfg.overwrite, f"{path}") as forced:
        have = {row_key(x): x for x in forced.open()}
        todo = [x for x in cut if row_key(x) not in have]
        if todo:
            engine = engine_factory()
            enc = _encoders(engine, r.template, (THINK,))[THINK]
            by_id = {r.task.item_id(it): it for it in items}
            closing = engine.tokenizer.encode(THOUGHT_WORDS[1], add_special_tokens=False)
            prompts = [enc.encode(r.task.messages(by_id[x["id"]]), r.system) + _output_ids(engine, x) + closing for x in todo]
            gens = engine.generate(prompts, _params(r, THINK, None, r.task.answer_tokens))
            for x, gen in zip(todo, gens):
                s = r.task.score(gen.text, by_id[x["id"]], NOTHINK)
                row = {"id": x["id"], "mode": THINK, "seed": x.get("seed"), "forced_output": gen.text,
                       "forced_extracted": s.extracted, "forced_correct": s.correct}
                forced.append(row)
                have[row_key(row)] = row
    return [{**x, **{k: v for k, v in have[row_key(x)].items() if k.startswith("forced_")}} if row_key(x) in have else x for x in rows]


def _output_ids(engine, row: dict[str, Any]) -> list[int]:
    return engine.tokenizer.encode(row["output"], add_special_tokens=False)


def faithfulness_probe(r: Resolved, items: list[Any], rows: list[dict[str, Any]], engine) -> dict[str, Any]:
    """Cut the think-mode reasoning at 25/50/75 %, force the final answer, count changes."""
    task = r.task
    by_key = {row_key(x): x for x in rows}
    picked = []
    for it in items:
        row = by_key.get((task.item_id(it), THINK, _seeds(r.cfg)[0]))
        if row and row["status"] == OK and row["closed"] and split_output(row["output"]).reasoning.split():
            picked.append((it, row, split_output(row["output"]).reasoning))
        if len(picked) >= r.cfg.faithfulness_samples:
            break
    if not picked:
        return {"samples": 0, "fractions": {}, "note": "no finished think-mode outputs with a reasoning to probe"}
    enc = _encoders(engine, r.template, (THINK,))[THINK]
    prompts, meta = [], []
    for it, row, reasoning in picked:
        base = enc.encode(task.messages(it), r.system)
        for frac in FAITH_FRACTIONS:
            forced = format_thinking(truncate_reasoning(reasoning, frac), "")
            prompts.append(base + engine.tokenizer.encode(forced, add_special_tokens=False))
            meta.append((it, row, frac))
    gens = engine.generate(prompts, _params(r, THINK, None, task.answer_tokens))
    stats = {f: [0, 0, 0] for f in FAITH_FRACTIONS}  # changed, correct, n
    detail = []
    for (it, row, frac), gen in zip(meta, gens):
        s = task.score(gen.text, it, NOTHINK)  # the continuation is the answer alone
        changed = s.extracted != row["extracted"]
        stats[frac][0] += changed
        stats[frac][1] += s.correct
        stats[frac][2] += 1
        detail.append({"id": task.item_id(it), "fraction": frac, "output": gen.text, "extracted": s.extracted,
                       "original": row["extracted"], "changed": changed, "correct": s.correct})
    write_jsonl(r.output_dir / "faithfulness.jsonl", detail)
    return {"samples": len(picked),
            "fractions": {str(f): {"changed": c, "change_rate": c / n, "accuracy": k / n} for f, (c, k, n) in stats.items()}}


# ----------------------------------------------------------------------------- results


def ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()


def collect(r: Resolved, items: list[Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """results['modes'] from the final rows (one row per (id, mode, seed); all seeds pooled)."""
    wanted = {r.task.item_id(it) for it in items}
    out: dict[str, Any] = {}
    for mode in r.modes:
        mode_rows = [x for x in rows if x["mode"] == mode and str(x["id"]) in wanted]
        out[mode] = with_seeds(summarize(mode_rows, len(items) * len(_seeds(r.cfg)), mode), mode_rows)
    return out


def items_record(r: Resolved, items: list[Any]) -> dict[str, Any]:
    """results.json ``items``: how many (and the limit asked for), which (digest of the ids), what they
    hold (digest of every item's content) and the seeds."""
    ids = [r.task.item_id(it) for it in items]
    return {"count": len(ids), "limit": r.cfg.limit, "ids_sha256": ids_digest(ids),
            "content_sha256": content_digest({r.task.item_id(it): item_digest(it) for it in items}), "seeds": _seeds(r.cfg)}


def results_dict(r: Resolved, items: list[Any], rows: list[dict[str, Any]], modes_stats: dict[str, Any],
                 warnings: list[str]) -> dict[str, Any]:
    cfg = r.cfg
    out = {
        "schema_version": SCHEMA_VERSION,
        "task": r.task.name,
        "source": source_record(cfg.source),
        "items": items_record(r, items),
        "protocol": protocol_record(r),
        "versions": package_versions(),
        "modes": modes_stats,
        "model": {"model_name_or_path": cfg.model_name_or_path, "adapter_name_or_path": cfg.adapter_name_or_path,
                  "template": r.template, "backend": cfg.backend},
        "config": dataclasses.asdict(cfg) | {"template": r.template, "system": r.system, "modes": list(r.modes)},
        "warnings": warnings,
        "baseline": str(cfg.baseline) if cfg.baseline else None,
        "predictions_file": PREDICTIONS,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if THINK in modes_stats and NOTHINK in modes_stats:
        out["think_vs_nothink"] = paired_table(rows, NOTHINK, rows, THINK)
    warnings.extend(degenerate_warnings(modes_stats))  # the same list finish() prints
    return out


def finish(r: Resolved, items: list[Any], rows: list[dict[str, Any]], extra_warnings: list[str],
           modes_stats: dict[str, Any] | None = None) -> dict[str, Any]:
    modes_stats = modes_stats or collect(r, items, rows)
    warnings = list(r.warnings) + extra_warnings
    for mode, s in modes_stats.items():
        if s["missing"]:
            warnings.append(f"mode {mode}: {s['missing']} items have no prediction (not counted in the accuracy)")
    results = results_dict(r, items, rows, modes_stats, warnings)
    baseline, comparison = compare_with_baseline(r, results, rows) if r.cfg.baseline else (None, None)
    if comparison and comparison["partial"]:
        warnings.append(f"compared with the baseline on the {comparison['items_compared']} items both runs share (baseline_partial=true)")
    write_outputs(r.output_dir, results, baseline, comparison, r.task.categories)
    for w in warnings:
        print(f"eval: warning: {w}", file=sys.stderr)
    return results


def rescore(r: Resolved, items: list[Any]) -> dict[str, Any]:
    """predictions=FILE: re-extract and re-score {id, mode, output[, seed, finished]} rows, no model."""
    src = Path(r.cfg.predictions)
    if not src.is_file():
        raise EvalError(f"predictions: file not found: {src}")
    by_id = {r.task.item_id(it): it for it in items}
    rows_in = check_rows(read_jsonl(src), src, set(by_id))
    if not rows_in:
        raise EvalError(f"{src}: no predictions")
    keep = ("num_tokens", "finished", "prompt_tokens", "gen_time_s")
    out_rows = [score_row(r.task, by_id[str(x["id"])], x["mode"], x["output"], x.get("seed"), {k: x[k] for k in keep if k in x})
                for x in rows_in]
    r.modes = tuple(m for m in MODES if any(x["mode"] == m for x in out_rows))
    path = r.output_dir / PREDICTIONS
    with FolderLock(r.output_dir):
        # the re-scored rows are recorded as such: a model run into this folder must not resume from
        # them, and a re-score must not silently replace a model run's predictions
        check_settings(settings_path(path), {**settings(r), "rescored_from": str(src.resolve()), "sha256": sha256_file(src)},
                       r.cfg.overwrite, f"predictions in {r.output_dir}", has_outputs=path.is_file() and path.stat().st_size > 0)
        write_jsonl(path, out_rows)
        return finish(r, items, out_rows, [f"re-scored from {src}"])


def load_items(r: Resolved) -> list[Any]:
    items = r.task.load()
    if not items:
        raise EvalError(f"task {r.task.name}: no items loaded from {r.cfg.source or 'the default source'}")
    ids = [r.task.item_id(it) for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise EvalError(f"task {r.task.name}: duplicate item id {dup!r} in {r.cfg.source}")
    return items


def _engine_factory(cfg: Any):
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


def run(cfg: Any) -> dict[str, Any]:
    """Run one evaluation (resuming what is already in output_dir); returns the results.json dict."""
    r = resolve(cfg)
    if getattr(r.task, "external", False):  # a suite with its own loop (task=lm_eval): it writes the outputs itself
        return r.task.run(r)
    items = load_items(r)
    if cfg.predictions:
        return rescore(r, items)
    from llamafactory_ext.eval.engine import check_model_path

    check_model_path(cfg.model_name_or_path)
    if cfg.adapter_name_or_path:
        check_model_path(cfg.adapter_name_or_path, "adapter_name_or_path")
    if cfg.baseline:
        check_baseline_early(r, items_record(r, items))
    extra = _contamination_warnings(r, items)
    engine = _engine_factory(cfg)
    with FolderLock(r.output_dir):
        path = r.output_dir / PREDICTIONS
        with ResumableJsonl(path, settings(r), cfg.overwrite, f"predictions in {r.output_dir}") as writer:
            rows = check_rows(writer.open(), path)
            if writer.repaired:
                print(f"eval: {path}: dropped a half-written last line; it is generated again", file=sys.stderr)
            done = {row_key(x) for x in rows}
            if any((r.task.item_id(it), m, s) not in done for it in items for m in r.modes for s in _seeds(cfg)):
                generate_predictions(r, items, engine(), writer, done)
        rows = this_run(r, items, check_rows(read_jsonl(path), path))
        if cfg.cutoff == "force_answer" and THINK in r.modes:
            rows = force_answers(r, items, rows, engine)
        modes_stats = collect(r, items, rows)
        if cfg.faithfulness and THINK in r.modes:
            modes_stats[THINK]["faithfulness"] = faithfulness_probe(r, items, rows, engine())
        elif cfg.faithfulness:
            extra.append("faithfulness=true needs the think mode: probe skipped")
        return finish(r, items, rows, extra, modes_stats)


def _contamination_warnings(r: Resolved, items: list[Any]) -> list[str]:
    """With from_recipe: do the recipe's prepared training files hold evaluation questions?"""
    from llamafactory_ext.data.overlap import TASKS as CHECKED
    from llamafactory_ext.data.overlap import find_contamination

    if not r.cfg.from_recipe or r.task.name not in CHECKED:
        return []
    files = recipe_dataset_files(r.cfg.from_recipe)
    if not files:
        return []
    report = find_contamination([str(f) for f in files], r.task.name, items=items)
    if not report.matched:
        return []
    source = f" source={r.cfg.source}" if r.cfg.source else ""
    return [(f"{report.matched} of {len(items)} evaluation items appear in the recipe's training data "
            f"({', '.join(f.name for f in files)}); details: llamafactory-ext contamination {' '.join(map(str, files))} "
            f"task={r.task.name}{source}")]


def recipe_dataset_files(recipe_path: str) -> list[Path]:
    """The prepared files a recipe trains on, when they exist locally (dataset_dir/dataset_info.json)."""
    recipe = load_yaml(recipe_path)
    dataset_dir = Path(str(recipe.get("dataset_dir") or "data"))
    info_path = dataset_dir / "dataset_info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return []
    names = [n.strip() for n in str(recipe.get("dataset") or "").split(",") if n.strip()]
    files = [dataset_dir / info[n]["file_name"] for n in names if isinstance(info.get(n), dict) and info[n].get("file_name")]
    return [f for f in files if f.is_file()]


def summary_line(results: dict[str, Any]) -> str:
    if "suite" in results:  # task=lm_eval: lm-eval's own metrics
        return "; ".join(f"{v['name']} {v['metric']} {v['value']:.4f} (n {v['n']}, {v['shots']}-shot)" for v in results["suite"].values())
    parts = []
    for mode, s in results.get("modes", {}).items():
        acc = f"{100 * s['accuracy']:.2f}% [{100 * s['ci95'][0]:.1f}, {100 * s['ci95'][1]:.1f}]"
        parts.append(f"{mode}: {acc} ({s['correct']}/{s['total']}, cut off {s['cut_off']}, unfinished {s['unfinished']}, unparsed {s['unparsed']})")
    return "; ".join(parts)


def main(argv: list[str]) -> int:
    cfg = parse(argv)
    results = run(cfg)
    out = Path(cfg.output_dir or f"results/eval/{cfg.task}")
    print(f"eval {results['task']}: {summary_line(results)}")
    print(f"eval: wrote {out / 'results.json'}, {out / 'results.md'}, {out / PREDICTIONS}")
    return 0


__all__ = ["EvalConfig", "EvalError", "main", "parse", "resolve", "run"]
