"""Evaluate a model (optionally + LoRA adapter) on ITALIC, GSM8K or a Mult-IT held-out split,
in thinking (``think``) and non-thinking (``nothink``) mode.

Prompts are encoded with LLaMA-Factory's own template code (``prompts.PromptEncoder``),
with the same template and thinking setting as training. Outputs are split at the last
``</think>``; the answer is extracted by a named filter chain (strict first, flexible
fallback) and the method that matched is recorded. In ``think`` mode an output without a
closing ``</think>`` is wrong and tallied as ``unfinished``; an output without an
extractable answer is wrong and tallied as ``unparsed``.

Examples:
  llamafactory-ext eval recipes/eval/italic_zeroshot.yaml model_name_or_path=Qwen/Qwen3-8B
  llamafactory-ext eval recipes/eval/italic_zeroshot.yaml from_recipe=recipes/v3_mixed.yaml backend=vllm
  llamafactory-ext eval recipes/eval/gsm8k.yaml adapter_name_or_path=saves/gsm8k thinking=off
  llamafactory-ext eval task=italic predictions=other_tool.jsonl output_dir=results/rescored
  llamafactory-ext eval recipes/eval/compare.yaml prompts_file=prompts.txt

Writes to ``output_dir``: predictions.jsonl (appended as items finish; a re-run with the
same config resumes), results.json (schema in report.py / README), results.md (one table
per mode: Category | Baseline | Model | Δ), one PNG per mode.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamafactory_ext.config import UserError, describe, from_argv, load_yaml
from llamafactory_ext.eval.report import (
    SCHEMA_VERSION,
    atomic_write_json,
    atomic_write_text,
    load_baseline,
    merge_seeds,
    plot_categories,
    render_markdown,
    summarize,
)
from llamafactory_ext.eval.tasks import OK, TASKS, Task, get_task
from llamafactory_ext.thinking import (
    MODES,
    NOTHINK,
    THINK,
    format_thinking,
    split_output,
    truncate_reasoning,
)

USAGE = "CONFIG.yaml [key=value ...]"
THINKING = {"on": (THINK,), "off": (NOTHINK,), "both": (THINK, NOTHINK), THINK: (THINK,), NOTHINK: (NOTHINK,)}
PREDICTIONS = "predictions.jsonl"
RUN_FILE = "run.json"
FAITH_FRACTIONS = (0.25, 0.5, 0.75)


class EvalError(UserError):
    pass


def _f(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class EvalConfig:
    # model
    model_name_or_path: str | None = _f(None, "base model (local dir or Hub id); from_recipe fills it")
    adapter_name_or_path: str | None = _f(None, "LoRA adapter dir (from_recipe: the recipe's output_dir if it exists)")
    template: str | None = _f(None, "LLaMA-Factory template (default: the recipe's, else qwen3)")
    from_recipe: str | None = _f(None, "training recipe: inherits template, enable_thinking (-> modes), default_system, model, adapter")
    # task
    task: str = _f("italic", "italic | gsm8k | multit | compare")
    source: str | None = _f(None, "Hub id or local file (default: the public set)")
    split: str | None = _f(None, "gsm8k split (default test)")
    limit: int | None = _f(None, "first N items only")
    variant: str = _f("fast", "ITALIC/Mult-IT prompt: fast (letter only) | cot (last line 'Risposta: LETTERA')")
    shots: int = _f(0, "ITALIC few-shot examples (0 or up to 5)")
    shots_source: str | None = _f(None, "ITALIC 5_shots.jsonl (default: next to source)")
    system: str | None = _f(None, "system prompt (default: task's; ITALIC/Mult-IT 'Sei un assistente utile.')")
    instruction: str | None = _f(None, "GSM8K instruction appended to the question")
    extractor: str = _f("default", "extraction chain: default | strict | official_first_capital (ITALIC's official, comparison only)")
    thinking: str | bool | None = _f(None, "on | off | both (default: the recipe's modes, else both for reasoning templates)")
    # generation
    backend: str = _f("hf", "hf | vllm")
    batch_size: int | None = _f(None, "prompts per generate call: hf default 8; vllm chunk default 256")
    max_new_tokens: int | None = _f(None, "default per task and mode: ITALIC 350 / 4096 (think), GSM8K 512 / 4096")
    temperature: float | None = _f(None, "0 = greedy (default); compare: 0.6")
    top_p: float | None = _f(None, "nucleus sampling (default 1.0; compare: 0.95)")
    seeds: list[int] | None = field(default=None, metadata={"help": "with temperature > 0: one run per seed, mean ± std, e.g. [42,123,456]"})
    device: str | None = _f(None, "hf: cpu | cuda | cuda:1 (default: cuda when available)")
    dtype: str = _f("auto", "hf/vllm dtype: auto | float32 | bfloat16 | float16")
    gpu_memory_utilization: float = _f(0.9, "vllm")
    tensor_parallel_size: int = _f(1, "vllm")
    max_model_len: int | None = _f(None, "vllm")
    max_lora_rank: int = _f(64, "vllm: largest LoRA rank to serve")
    # outputs
    output_dir: str | None = _f(None, "default results/eval/<task>")
    baseline: str | None = _f(None, "a results.json (or its dir) to compare with: Baseline and Δ columns")
    predictions: str | None = _f(None, "re-score a JSONL of {id, mode, output[, seed]} without a model")
    faithfulness: bool = _f(False, "think mode: cut reasoning at 25/50/75 %, force the answer, report change rate")
    faithfulness_samples: int = _f(50, "items in the faithfulness probe")
    prompts_file: str | None = _f(None, "task=compare: .txt (one prompt a line), .jsonl ({prompt} rows) or .json list")
    progress: bool = _f(True, "progress bar (items/s, ETA) on stderr")
    overwrite: bool = _f(False, "start over when output_dir holds predictions of a different config")


def options_help() -> str:
    return describe(EvalConfig)


# ----------------------------------------------------------------------------- config resolution


@dataclass
class Resolved:
    cfg: EvalConfig
    template: str
    modes: tuple[str, ...]
    system: str | None
    output_dir: Path
    warnings: list[str]


def _recipe(path: str) -> dict[str, Any]:
    if not Path(path).is_file():
        raise EvalError(f"from_recipe: file not found: {path}")
    return load_yaml(path)


def adapter_training_template(adapter: str | None) -> str | None:
    """Template recorded next to an adapter: ``training_args.yaml`` (LLaMA-Factory's web UI /
    our recipes) or ``llamaboard_config.yaml`` (``top.template``). None when not recorded."""
    if not adapter or not Path(adapter).is_dir():
        return None
    import yaml

    for name, key in (("training_args.yaml", "template"), ("llamaboard_config.yaml", "top.template")):
        p = Path(adapter) / name
        if p.is_file():
            try:
                data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
            except Exception:  # noqa: BLE001, S112 - an unreadable file records no template
                continue
            if isinstance(data, dict) and data.get(key):
                return str(data[key])
    return None


def adapter_base_model(adapter: str | None) -> str | None:
    """``base_model_name_or_path`` of a PEFT adapter (adapter_config.json), if any."""
    p = Path(adapter or "") / "adapter_config.json"
    if not adapter or not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8")).get("base_model_name_or_path") or None
    except Exception:  # noqa: BLE001
        return None


def resolve(cfg: EvalConfig) -> Resolved:
    from llamafactory_ext.prompts import (
        ModeError,
        is_reasoning_template,
        training_modes,
    )

    warnings: list[str] = []
    if cfg.task not in TASKS and cfg.task != "compare":
        get_task(cfg.task, cfg)  # raises the "unknown task" error
    if cfg.backend not in ("hf", "vllm"):
        raise EvalError(f"unknown backend {cfg.backend!r}; known: hf, vllm")
    recipe: dict[str, Any] = _recipe(cfg.from_recipe) if cfg.from_recipe else {}
    template = cfg.template or recipe.get("template") or "qwen3"
    if cfg.template and recipe.get("template") and cfg.template != recipe["template"]:
        warnings.append(f"template {cfg.template!r} differs from the recipe's training template {recipe['template']!r}")
    try:
        reasoning = is_reasoning_template(template)
    except ModeError as exc:
        raise EvalError(str(exc)) from exc
    if cfg.thinking is not None:
        # YAML 1.1 (OmegaConf) reads on/off as booleans: thinking=off arrives as False
        cfg.thinking = {"True": "on", "False": "off", "true": "on", "false": "off"}.get(str(cfg.thinking), cfg.thinking)
        if cfg.thinking not in THINKING:
            raise EvalError(f"unknown thinking mode {cfg.thinking!r}; use on | off | both (or think | nothink)")
        modes = THINKING[cfg.thinking]
    elif recipe:
        modes = training_modes(template, recipe.get("enable_thinking", True))
    else:
        modes = (THINK, NOTHINK) if reasoning else (NOTHINK,)
    if THINK in modes and not reasoning:
        raise EvalError(
            f"template {template!r} has no thinking mode: only 'nothink' exists (thinking=off); "
            "use template=qwen3 for hybrid Qwen3 models"
        )
    if not cfg.model_name_or_path and recipe.get("model_name_or_path"):
        cfg.model_name_or_path = str(recipe["model_name_or_path"])
    if not cfg.adapter_name_or_path and recipe.get("output_dir") and recipe.get("finetuning_type", "lora") == "lora":
        if Path(recipe["output_dir"], "adapter_config.json").is_file():
            cfg.adapter_name_or_path = str(recipe["output_dir"])
        else:
            warnings.append(f"recipe output_dir {recipe['output_dir']!r} holds no adapter: evaluating the base model")
    system = cfg.system
    if system is None and recipe.get("default_system"):
        system = str(recipe["default_system"])
    trained = adapter_training_template(cfg.adapter_name_or_path)
    if trained and trained != template:
        warnings.append(
            f"the adapter {cfg.adapter_name_or_path} was trained with template {trained!r} but prompts use {template!r}"
        )
    base = adapter_base_model(cfg.adapter_name_or_path)
    if base and cfg.model_name_or_path and Path(base).name != Path(str(cfg.model_name_or_path)).name:
        warnings.append(f"the adapter {cfg.adapter_name_or_path} was trained on {base!r}, evaluated on {cfg.model_name_or_path!r}")
    out = Path(cfg.output_dir or f"results/eval/{cfg.task}")
    if cfg.seeds:
        if not cfg.temperature and cfg.task != "compare":
            raise EvalError("seeds=[...] gives mean ± std over sampled runs: set temperature > 0 (e.g. 0.6) too")
        if len(set(cfg.seeds)) != len(cfg.seeds):
            raise EvalError(f"seeds must be distinct, got {cfg.seeds}")
    if cfg.limit is not None and cfg.limit < 1:
        raise EvalError(f"limit must be >= 1, got {cfg.limit}")
    if cfg.baseline:
        load_baseline(cfg.baseline)  # fail early on a bad file
    return Resolved(cfg, template, tuple(modes), system, out, warnings)


# ----------------------------------------------------------------------------- predictions file


def row_key(row: dict[str, Any]) -> tuple[str, str, int | None]:
    return (str(row["id"]), str(row["mode"]), row.get("seed"))


def read_predictions(path: Path, repair_tail: bool = False) -> list[dict[str, Any]]:
    """Rows of a predictions JSONL. A truncated LAST line (a run killed mid-write) is cut off
    when ``repair_tail``; any other bad line is an error naming file and line."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")  # noqa: TRY004 - reported as a bad line below
        except (ValueError, UnicodeDecodeError) as exc:
            is_tail = n == len(lines) and not raw.endswith(b"\n")
            if repair_tail and is_tail:
                with open(path, "r+b") as fh:
                    fh.truncate(len(raw) - len(line))
                print(f"eval: {path}: dropped a half-written last line (line {n}); it will be regenerated", file=sys.stderr)
                break
            raise EvalError(f"{path}:{n}: corrupt predictions line ({exc})") from None
        for key in ("id", "mode", "output"):
            if key not in row:
                raise EvalError(f"{path}:{n}: missing field {key!r}")
        if row["mode"] not in MODES:
            raise EvalError(f"{path}:{n}: field 'mode': unknown mode {row['mode']!r}; known: {', '.join(MODES)}")
        if not isinstance(row["output"], str):
            raise EvalError(f"{path}:{n}: field 'output' must be a string")
        row["_line"] = n
        rows.append(row)
    return rows


def score_row(task: Task, item: Any, mode: str, output: str, seed: int | None, extra: dict[str, Any]) -> dict[str, Any]:
    parts = split_output(output)
    s = task.score(output, item, mode)
    row = {
        "id": task.item_id(item),
        "mode": mode,
        "seed": seed,
        "output": output,
        "extracted": s.extracted,
        "method": s.method,
        "status": s.status,
        "gold": task.gold(item),
        "correct": s.correct,
        "category": task.category(item),
        "macro_category": task.macro_category(item),
        "closed": parts.closed,
        "balanced": parts.balanced,
        "reasoning_words": len(parts.reasoning.split()) if parts.closed else None,
    }
    row.update(extra)
    return row


# ----------------------------------------------------------------------------- run


def _fingerprint(r: Resolved) -> dict[str, Any]:
    c = r.cfg
    keys = ("model_name_or_path", "adapter_name_or_path", "task", "source", "split", "variant", "shots",
            "instruction", "extractor", "max_new_tokens", "temperature", "top_p")
    fp = {k: getattr(c, k) for k in keys}
    fp.update(template=r.template, system=r.system)
    return fp


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="item", disable=not enabled, dynamic_ncols=True,
                file=sys.stderr, smoothing=0.1)


class PredictionWriter:
    """Appends one JSON line per finished item, flushed and fsync'ed per batch."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the whole run, closed in close()

    def write(self, row: dict[str, Any]) -> None:
        self.fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    def flush(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.flush()
        self.fh.close()


class _FlushingBar:
    """Progress hook: flush the predictions file once per batch, then move the bar."""

    def __init__(self, writer: PredictionWriter, bar) -> None:
        self.writer, self.bar = writer, bar

    def update(self, n: int) -> None:
        self.writer.flush()
        self.bar.update(n)


def _encoders(engine, template: str, modes: tuple[str, ...]):
    from llamafactory_ext.prompts import PromptEncoder

    return {m: PromptEncoder(engine.tokenizer, template, m) for m in modes}


def generate_predictions(r: Resolved, task: Task, items: list[Any], engine) -> None:
    """Generate every missing (id, mode, seed) row into predictions.jsonl (resumable)."""
    from llamafactory_ext.eval.engine import GenParams

    cfg = r.cfg
    path = r.output_dir / PREDICTIONS
    done = {row_key(x) for x in read_predictions(path, repair_tail=True)}
    encoders = _encoders(engine, r.template, r.modes)
    seeds: list[int | None] = list(cfg.seeds) if cfg.seeds else [None]
    writer = PredictionWriter(path)
    try:
        for seed in seeds:
            for mode in r.modes:
                todo = [it for it in items if (task.item_id(it), mode, seed) not in done]
                label = f"{task.name} {mode}" + (f" seed {seed}" if seed is not None else "")
                if not todo:
                    continue
                prompts = [encoders[mode].encode(task.messages(it), r.system) for it in todo]
                params = GenParams(
                    max_new_tokens=cfg.max_new_tokens or task.default_max_new_tokens[mode],
                    temperature=cfg.temperature or 0.0,
                    top_p=cfg.top_p if cfg.top_p is not None else 1.0,
                    seed=seed,
                )
                bar = _progress(len(items), len(items) - len(todo), label, cfg.progress)
                last = [time.perf_counter()]

                def on_result(i: int, gen, mode=mode, seed=seed, todo=todo, prompts=prompts, last=last) -> None:
                    now = time.perf_counter()
                    extra = {"num_tokens": gen.num_tokens, "finished": gen.finished,
                             "prompt_tokens": len(prompts[i]), "gen_time_s": round(now - last[0], 4)}
                    last[0] = now
                    writer.write(score_row(task, todo[i], mode, gen.text, seed, extra))

                engine.generate(prompts, params, on_result=on_result, progress=_FlushingBar(writer, bar))
                bar.close()
    finally:
        writer.close()


def collect(r: Resolved, task: Task, items: list[Any], rows: list[dict[str, Any]], seeds: list[int | None],
            modes: tuple[str, ...]) -> dict[str, Any]:
    """results['modes'] from the final rows: item order, one row per (id, mode, seed)."""
    by_key = {row_key(x): x for x in rows}
    out: dict[str, Any] = {}
    for mode in modes:
        per_seed = {}
        for seed in seeds:
            mode_rows = [by_key[k] for k in ((task.item_id(it), mode, seed) for it in items) if k in by_key]
            per_seed[str(seed)] = summarize(mode_rows, len(items), mode)
        out[mode] = merge_seeds(per_seed) if len(seeds) > 1 else per_seed[str(seeds[0])]
    return out


def faithfulness_probe(r: Resolved, task: Task, items: list[Any], rows: list[dict[str, Any]], engine) -> dict[str, Any]:
    """Cut the think-mode reasoning at 25/50/75 %, force the final answer, count changes."""
    from llamafactory_ext.eval.engine import GenParams

    seed = r.cfg.seeds[0] if r.cfg.seeds else None
    by_key = {row_key(x): x for x in rows}
    picked = []
    for it in items:
        row = by_key.get((task.item_id(it), THINK, seed))
        if row and row["status"] == OK and row["closed"]:
            reasoning = split_output(row["output"]).reasoning
            if reasoning.split():
                picked.append((it, row, reasoning))
        if len(picked) >= r.cfg.faithfulness_samples:
            break
    if not picked:
        return {"samples": 0, "fractions": {}, "note": "no finished think-mode outputs with a reasoning to probe"}
    enc = _encoders(engine, r.template, (THINK,))[THINK]
    tok = engine.tokenizer
    prompts, meta = [], []
    for it, row, reasoning in picked:
        base = enc.encode(task.messages(it), r.system)
        for frac in FAITH_FRACTIONS:
            cut = truncate_reasoning(reasoning.replace("<think>", "").replace("</think>", ""), frac)
            forced = format_thinking(cut, "")
            prompts.append(base + tok.encode(forced, add_special_tokens=False))
            meta.append((it, row, frac))
    params = GenParams(max_new_tokens=task.answer_tokens, temperature=0.0)
    bar = _progress(len(prompts), 0, f"{task.name} faithfulness", r.cfg.progress)
    gens = engine.generate(prompts, params, progress=bar)
    bar.close()
    stats = {f: [0, 0, 0] for f in FAITH_FRACTIONS}  # changed, correct, n
    detail = []
    for (it, row, frac), gen in zip(meta, gens):
        s = task.score(gen.text, it, NOTHINK)  # continuation is the answer alone
        changed = s.extracted != row["extracted"]
        stats[frac][0] += changed
        stats[frac][1] += s.correct
        stats[frac][2] += 1
        detail.append({"id": task.item_id(it), "fraction": frac, "output": gen.text, "extracted": s.extracted,
                       "original": row["extracted"], "changed": changed, "correct": s.correct})
    atomic_write_text(r.output_dir / "faithfulness.jsonl",
                      "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in detail))
    return {
        "samples": len(picked),
        "fractions": {str(f): {"changed": c, "change_rate": c / n, "accuracy": k / n} for f, (c, k, n) in stats.items()},
    }


def write_reports(r: Resolved, task: Task, modes_stats: dict[str, Any], extra_warnings: list[str]) -> dict[str, Any]:
    cfg = r.cfg
    baseline = load_baseline(cfg.baseline) if cfg.baseline else None
    warnings = list(r.warnings) + extra_warnings
    for mode, s in modes_stats.items():
        if s["missing"]:
            warnings.append(f"mode {mode}: {s['missing']} items have no prediction (not counted in the accuracy)")
        if baseline and mode not in baseline["modes"]:
            warnings.append(f"baseline has no mode {mode!r}: no Δ for it")
    results = {
        "schema_version": SCHEMA_VERSION,
        "task": task.name,
        "modes": modes_stats,
        "model": {
            "model_name_or_path": cfg.model_name_or_path,
            "adapter_name_or_path": cfg.adapter_name_or_path,
            "template": r.template,
            "backend": cfg.backend,
        },
        "config": dataclasses.asdict(cfg) | {"template": r.template, "system": r.system, "modes": list(r.modes)},
        "warnings": warnings,
        "baseline": str(cfg.baseline) if cfg.baseline else None,
        "predictions_file": PREDICTIONS,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    cats = getattr(task, "categories", {}) or {}
    atomic_write_json(r.output_dir / "results.json", results)
    atomic_write_text(r.output_dir / "results.md", render_markdown(results, baseline, cats))
    plot_categories(results, baseline, r.output_dir, cats)
    for w in warnings:
        print(f"eval: warning: {w}", file=sys.stderr)
    return results


def rescore(r: Resolved, task: Task, items: list[Any]) -> dict[str, Any]:
    """predictions=FILE: re-extract and re-score {id, mode, output[, seed]} rows, no model."""
    src = Path(r.cfg.predictions)
    if not src.is_file():
        raise EvalError(f"predictions: file not found: {src}")
    by_id = {task.item_id(it): it for it in items}
    rows_in = read_predictions(src)
    seen: dict[tuple, int] = {}
    out_rows = []
    for row in rows_in:
        key = (str(row["id"]), row["mode"], row.get("seed"))
        if key in seen:
            raise EvalError(f"{src}:{row['_line']}: duplicate prediction for id {row['id']!r} mode {row['mode']!r} "
                            f"(first at line {seen[key]})")
        seen[key] = row["_line"]
        item = by_id.get(str(row["id"]))
        if item is None:
            raise EvalError(f"{src}:{row['_line']}: field 'id': {row['id']!r} is not an item of task {task.name}"
                            + (f" (limit={r.cfg.limit})" if r.cfg.limit else ""))
        extra = {k: row[k] for k in ("num_tokens", "finished", "prompt_tokens", "gen_time_s") if k in row}
        out_rows.append(score_row(task, item, row["mode"], row["output"], row.get("seed"), extra))
    if not out_rows:
        raise EvalError(f"{src}: no predictions")
    modes = tuple(m for m in MODES if any(x["mode"] == m for x in out_rows))
    seeds = sorted({x["seed"] for x in out_rows}, key=lambda s: (s is not None, s or 0))
    order = {task.item_id(it): i for i, it in enumerate(items)}
    out_rows.sort(key=lambda x: (seeds.index(x["seed"]), MODES.index(x["mode"]), order[x["id"]]))
    r.output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(r.output_dir / PREDICTIONS, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in out_rows))
    r.modes = modes
    return write_reports(r, task, collect(r, task, items, out_rows, seeds, modes), [f"re-scored from {src}"])


def run(cfg: EvalConfig) -> dict[str, Any]:
    """Run one evaluation; returns the results.json dict."""
    r = resolve(cfg)
    if cfg.task == "compare":
        from llamafactory_ext.eval.compare import run_compare

        return run_compare(r)
    task = get_task(cfg.task, cfg)
    if r.system is None:
        r.system = task.system()  # ITALIC / Mult-IT: data.mcq.SYSTEM_PROMPT; "" (system='') = none
    r.system = r.system or None
    items = task.load()
    if not items:
        raise EvalError(f"task {cfg.task}: no items loaded from {cfg.source or 'the default source'}")
    ids = [task.item_id(it) for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise EvalError(f"task {cfg.task}: duplicate item id {dup!r} in {cfg.source}")
    if cfg.predictions:
        return rescore(r, task, items)
    from llamafactory_ext.eval.engine import check_model_path, load_engine

    check_model_path(cfg.model_name_or_path)
    if cfg.adapter_name_or_path:
        check_model_path(cfg.adapter_name_or_path, "adapter_name_or_path")
    r.output_dir.mkdir(parents=True, exist_ok=True)
    run_file = r.output_dir / RUN_FILE
    fp = _fingerprint(r)
    pred_path = r.output_dir / PREDICTIONS
    if run_file.is_file() and pred_path.is_file():
        old = json.loads(run_file.read_text(encoding="utf-8"))
        if old != fp:
            if not cfg.overwrite:
                diff = sorted(k for k in set(old) | set(fp) if old.get(k) != fp.get(k))
                raise EvalError(
                    f"{r.output_dir} holds predictions of a different config (differs in: {', '.join(diff)}); "
                    "use another output_dir or overwrite=true"
                )
            pred_path.unlink()
    atomic_write_json(run_file, fp)
    engine = load_engine(
        cfg.backend, cfg.model_name_or_path, cfg.adapter_name_or_path,
        batch_size=cfg.batch_size or (8 if cfg.backend == "hf" else 256),
        device=cfg.device, dtype=cfg.dtype, gpu_memory_utilization=cfg.gpu_memory_utilization,
        tensor_parallel_size=cfg.tensor_parallel_size, max_model_len=cfg.max_model_len,
        max_lora_rank=cfg.max_lora_rank,
    )
    generate_predictions(r, task, items, engine)
    rows = read_predictions(pred_path)
    seeds: list[int | None] = list(cfg.seeds) if cfg.seeds else [None]
    modes_stats = collect(r, task, items, rows, seeds, r.modes)
    if cfg.faithfulness and THINK in r.modes:
        modes_stats[THINK]["faithfulness"] = faithfulness_probe(r, task, items, rows, engine)
    extra = []
    if cfg.faithfulness and THINK not in r.modes:
        extra.append("faithfulness=true needs the think mode: probe skipped")
    return write_reports(r, task, modes_stats, extra)


def summary_line(results: dict[str, Any]) -> str:
    parts = []
    for mode, s in results.get("modes", {}).items():
        acc = f"{100 * s['accuracy']:.2f}%" + (f" ± {100 * s['accuracy_std']:.2f}" if "accuracy_std" in s else "")
        parts.append(f"{mode}: {acc} ({s['correct']}/{s['total']}, unfinished {s['unfinished']}, unparsed {s['unparsed']})")
    return "; ".join(parts)


def main(argv: list[str]) -> int:
    cfg = from_argv(EvalConfig, argv)
    results = run(cfg)
    out = Path(cfg.output_dir or f"results/eval/{cfg.task}")
    if results.get("task") == "compare":
        print(f"eval: side-by-side generations in {out / 'compare.md'}")
    else:
        print(f"eval {results['task']}: {summary_line(results)}")
        print(f"eval: wrote {out / 'results.json'}, {out / 'results.md'}, {out / PREDICTIONS}")
    return 0


__all__ = ["EvalConfig", "EvalError", "main", "read_predictions", "resolve", "run"]
