"""Reasoning traces from a teacher for multiple-choice questions, kept only when correct.

``llamafactory-ext distill CONFIG.yaml [key=value ...]`` asks a teacher model each question of a
multiple-choice data set (Mult-IT, or ITALIC-shaped data: ``dataset`` names the evaluator's
multiple-choice task whose loader reads ``source``) in thinking mode, up to
``samples_per_question`` times, and keeps the first sample that passes every filter:

  no_close_think    the output has no closing ``</think>`` (unfinished or cut at max_new_tokens)
  malformed_tags    ``<think>`` / ``</think>`` inside the trace or the answer
  empty_trace       ``<think>`` block with nothing in it
  no_answer         no option letter could be extracted after ``</think>``
  wrong_answer      the final answer is not the gold letter
  answer_mismatch   the final answer disagrees with the letter the trace names at its end
  duplicate_trace   exactly the same trace text was already kept for another question

Prompts are the training prompts of the Mult-IT converters: system "Sei un assistente utile.",
the user turn of ``data.mcq.build_messages`` (variant ``fast``; the task's own ``messages``), encoded by LLaMA-Factory's own
template in ``think`` mode (``prompts.PromptEncoder``). Outputs are split at the last ``</think>``
(``thinking.split_output``); the answer letter comes from the evaluator's extraction chain
(``eval.extract.extract_choice``).

Output (``output``, JSONL, one row per question, appended as questions finish; a re-run with the
same settings resumes): ``key`` (``data.multit.item_key``: the join key of ``prepare multit_think`` /
``multit_mixed traces=FILE``), ``id``, ``category``, ``trace``, ``answer``, ``gold``, ``correct``,
``reason`` (``kept`` or the last sample's rejection), ``prompt_tokens``, ``completion_tokens``,
``sample`` (0-based index of the sample the row describes), ``rejected`` (reasons of the samples
before it). Next to it: ``<output>.rejects.jsonl`` (every rejected sample with its raw text),
``<output>.settings.json`` (the settings, checked on resume: other settings are refused unless
``overwrite=true``) and ``<output>.summary.json`` (counts). One distill per output file at a time.

Example:
  llamafactory-ext distill recipes/distill/multit_qwen3.yaml source=PATH/Multi-IT-A/quiz.json
  llamafactory-ext prepare multit_think source=PATH/Multi-IT-A/quiz.json traces=data/traces/multit_qwen3.jsonl
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from llamafactory_ext.config import UserError, option
from llamafactory_ext.io import FolderLock, ResumableJsonl, atomic_write_json

USAGE = "CONFIG.yaml [key=value ...]   (nested keys with dots: teacher.model=Qwen/Qwen3-8B)"

KEPT = "kept"
REASONS = (
    "no_close_think", "malformed_tags", "empty_trace", "no_answer", "wrong_answer", "answer_mismatch",
    "duplicate_trace",
)
# Settings that change what a row means: a resumed run must use the same ones.
_META_KEYS = ("source", "dataset", "teacher", "samples_per_question", "temperature", "top_p", "max_new_tokens",
              "seed", "variant", "system")


class DistillError(UserError):
    """Bad distill config or input (the message names the key, file or row)."""


@dataclasses.dataclass
class DistillConfig:
    source: str | list[str] | None = option(None, "multiple-choice file (Mult-IT quiz.json, ITALIC jsonl), a list of files, or a Hub id")
    output: str | None = option(None, "traces JSONL to write / resume")
    teacher: dict = option({}, "{model: ..., adapter: null, template: qwen3}")
    dataset: str = option("multit", "the evaluator's multiple-choice task whose loader reads source: multit | italic")
    backend: Literal["hf", "vllm"] = option("hf", "hf | vllm (the evaluator's engines)")
    samples_per_question: int = option(1, "k: tries per question, the first good one is kept", ge=1)
    temperature: float = option(0.6, "sampling temperature (Qwen3 thinking: 0.6)", ge=0.0)
    top_p: float = option(0.95, "nucleus sampling (Qwen3 thinking: 0.95)", gt=0.0, le=1.0)
    seed: int = option(42, "sampling seed (sample j uses seed + 1000 j)")
    max_new_tokens: int = option(4096, "longest output; longer ones are no_close_think", ge=1)
    limit: int | None = option(None, "first N questions only", ge=1)
    variant: Literal["fast", "cot"] = option("fast", "user prompt variant (the Mult-IT converters train 'fast')")
    system: str | None = option(None, "system prompt (default: 'Sei un assistente utile.')")
    batch_size: int = option(8, "questions per generate call (vllm: use 256+)", ge=1)
    engine: dict = option({}, "extra options of the evaluator's engines: device, dtype, gpu_memory_utilization, ...")
    overwrite: bool = option(False, "start over when output has other settings")
    progress: bool = option(True, "progress bar (items/s, ETA) on stderr")


@dataclasses.dataclass
class Teacher:
    model: str
    adapter: str | None = None
    template: str = "qwen3"


def teacher_of(cfg: DistillConfig, where: str) -> Teacher:
    data = dict(cfg.teacher or {})
    known = {f.name for f in dataclasses.fields(Teacher)}
    for key in data:
        if key not in known:
            raise DistillError(f"{where}: teacher.{key}: unknown key (known: {', '.join(sorted(known))})")
    if not data.get("model"):
        raise DistillError(f"{where}: teacher.model is required (a local model dir or a Hub id)")
    return Teacher(model=str(data["model"]), adapter=data.get("adapter") or None, template=str(data.get("template") or "qwen3"))


# ----------------------------------------------------------------------------- filters


@dataclasses.dataclass
class Verdict:
    reason: str  # KEPT or one of REASONS
    trace: str
    answer: str | None
    method: str
    trace_letter: str | None


_TAIL_CHARS = 300


def trace_letter(reasoning: str, item: Any) -> str | None:
    """The option letter the trace names at its end ("... quindi la risposta è B."), or None.

    Looks at the last ``_TAIL_CHARS`` characters (from a line start) with the evaluator's strict
    filters: an answer phrase (``risposta è B``, ``answer: C``, ``opzione D``), else a bold or
    marked letter on the last line."""
    from llamafactory_ext.eval.extract import CHOICE_FILTERS

    text = reasoning.rstrip()
    if not text:
        return None
    tail = text[-_TAIL_CHARS:]
    if len(text) > _TAIL_CHARS and "\n" in tail:
        tail = tail[tail.index("\n") + 1:]
    options = [(str(letter).strip().upper(), str(t)) for letter, t in item.options]
    letters = [letter for letter, _ in options]
    found = CHOICE_FILTERS["answer_line"](tail, letters, options)
    if found:
        return found
    last_line = tail.splitlines()[-1] if tail.splitlines() else ""
    for name in ("bare_letter", "bold_letter", "marked_letter"):
        found = CHOICE_FILTERS[name](last_line, letters, options)
        if found:
            return found
    return None


def judge(text: str, item: Any, kept_traces: set[str]) -> Verdict:
    """Apply the filters, in order, to one teacher output for ``item``."""
    from llamafactory_ext.eval.extract import extract_choice
    from llamafactory_ext.thinking import THINK_CLOSE, THINK_OPEN, split_output

    split = split_output(text)
    trace = split.reasoning
    if not split.closed:
        return Verdict("no_close_think", trace, None, "none", None)
    if THINK_OPEN in trace or THINK_CLOSE in trace or THINK_OPEN in split.answer:
        return Verdict("malformed_tags", trace, None, "none", None)
    if not trace.strip():
        return Verdict("empty_trace", trace, None, "none", None)
    letter, method = extract_choice(text, item)
    if letter is None:
        return Verdict("no_answer", trace, None, method, None)
    named = trace_letter(trace, item)
    if letter != item.answer:
        return Verdict("wrong_answer", trace, letter, method, named)
    if named is not None and named != letter:
        return Verdict("answer_mismatch", trace, letter, method, named)
    if _trace_hash(trace) in kept_traces:
        return Verdict("duplicate_trace", trace, letter, method, named)
    return Verdict(KEPT, trace, letter, method, named)


def _trace_hash(trace: str) -> str:
    return hashlib.sha256(trace.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- I/O


def question_task(cfg: DistillConfig, where: str = "config") -> Any:
    """The evaluator's multiple-choice task ``dataset`` (an ``eval.mcq.MCQTask``) reading ``source``:
    its loader, prompt and system prompt are the ones evaluation uses."""
    from llamafactory_ext.eval.mcq import MCQTask
    from llamafactory_ext.eval.options import task_for
    from llamafactory_ext.eval.tasks import item_tasks, task_class

    if not issubclass(task_class(cfg.dataset, f"{where}: dataset"), MCQTask):
        raise DistillError(f"{where}: dataset={cfg.dataset}: distill asks multiple-choice questions; "
                           f"the multiple-choice tasks are {', '.join(item_tasks(MCQTask))}")
    return task_for(cfg.dataset, source=cfg.source, limit=cfg.limit, variant=cfg.variant)


def load_items(cfg: DistillConfig) -> list[Any]:
    return question_task(cfg).load()


def engine_options(cfg: DistillConfig, where: str) -> dict[str, Any]:
    """``engine``, each key checked against the options of the evaluator's engines (a misspelt key
    would otherwise be ignored)."""
    import inspect

    from llamafactory_ext.config import unknown_key_error
    from llamafactory_ext.eval.engine import HFEngine, VLLMEngine

    known = {name for cls in (HFEngine, VLLMEngine) for name, p in inspect.signature(cls.__init__).parameters.items()
             if p.kind is p.POSITIONAL_OR_KEYWORD} - {"self", "model_name_or_path", "adapter_name_or_path"}
    for key in cfg.engine or {}:
        if key not in known:
            raise DistillError(str(unknown_key_error(f"engine.{key}", {f"engine.{k}" for k in known}, where)))
    return dict(cfg.engine or {})


def key_of(item: Any) -> str:
    from llamafactory_ext.data.multit import item_key

    return item_key(item)


def _meta(cfg: DistillConfig, teacher: Teacher) -> dict:
    data = {k: getattr(cfg, k) for k in _META_KEYS if k != "teacher"}
    data["teacher"] = dataclasses.asdict(teacher)
    return data


def _side(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


# ----------------------------------------------------------------------------- run


@dataclasses.dataclass
class Stats:
    asked: Counter = dataclasses.field(default_factory=Counter)  # per category
    kept: Counter = dataclasses.field(default_factory=Counter)
    samples: int = 0
    rejections: Counter = dataclasses.field(default_factory=Counter)  # per sample, by reason
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add_row(self, row: dict) -> None:
        cat = row.get("category") or "(none)"
        self.asked[cat] += 1
        if row.get("reason") == KEPT:
            self.kept[cat] += 1
        for reason in row.get("rejected", []):
            self.rejections[reason] += 1
        if row.get("reason") != KEPT:
            self.rejections[row.get("reason")] += 1
        self.samples += int(row.get("sample", 0)) + 1

    def table(self) -> str:
        lines = ["| Category | Asked | Kept | Yield |", "|---|---:|---:|---:|"]
        for cat in sorted(self.asked):
            lines.append(f"| {cat} | {self.asked[cat]} | {self.kept[cat]} | {_pct(self.kept[cat], self.asked[cat])} |")
        total_a, total_k = sum(self.asked.values()), sum(self.kept.values())
        lines.append(f"| **all** | **{total_a}** | **{total_k}** | **{_pct(total_k, total_a)}** |")
        lines += ["", f"Samples generated: {self.samples}. Rejected samples by filter:", "",
                  "| Filter | Samples |", "|---|---:|"]
        for reason in REASONS:
            lines.append(f"| {reason} | {self.rejections.get(reason, 0)} |")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "asked": sum(self.asked.values()), "kept": sum(self.kept.values()),
            "yield": (sum(self.kept.values()) / sum(self.asked.values())) if self.asked else 0.0,
            "samples": self.samples,
            "rejections": {r: self.rejections.get(r, 0) for r in REASONS},
            "per_category": {c: {"asked": self.asked[c], "kept": self.kept[c],
                                 "yield": self.kept[c] / self.asked[c] if self.asked[c] else 0.0}
                             for c in sorted(self.asked)},
        }


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f} %" if b else "-"


def _check(cfg: DistillConfig, where: str) -> Path:
    if not cfg.source:
        raise DistillError(f"{where}: source is required (Mult-IT: PATH/Multi-IT-A/quiz.json; dataset=italic: ITALIC jsonl)")
    if not cfg.output:
        raise DistillError(f"{where}: output is required (the traces JSONL to write, e.g. data/traces/multit.jsonl)")
    out = Path(cfg.output)
    if out.is_dir():
        raise DistillError(f"{where}: output={out} is a folder; give a file name, e.g. output={out / 'traces.jsonl'}")
    return out


def _todo(items: list[Any], done: set[str], log: Callable[[str], None], source: Any) -> list[tuple[str, Any]]:
    todo, seen, repeated = [], set(), 0
    for item in items:
        key = key_of(item)
        if key in seen:
            repeated += 1  # the same question twice in the source: asked once
            continue
        seen.add(key)
        if key not in done:
            todo.append((key, item))
    if repeated:
        log(f"distill: {repeated} repeated question(s) in {source} (same question and options) asked once")
    return todo


def _ask(cfg: DistillConfig, engine: Any, prompts: dict[str, list[int]], chunk: list[tuple[str, Any]],
         kept_traces: set[str], rejects: ResumableJsonl) -> dict[str, dict]:
    """Up to ``samples_per_question`` samples per question; the first that passes every filter is kept."""
    from llamafactory_ext.eval.engine import GenParams

    state: dict[str, dict] = {key: {"rejected": []} for key, _ in chunk}
    pending = list(chunk)
    for j in range(cfg.samples_per_question):
        if not pending:
            break
        params = GenParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed + 1000 * j)
        still = []
        for (key, item), gen in zip(pending, engine.generate([prompts[key] for key, _ in pending], params)):
            verdict = judge(gen.text, item, kept_traces)
            state[key].update(verdict=verdict, sample=j, completion_tokens=gen.num_tokens, finished=gen.finished)
            if verdict.reason == KEPT:
                kept_traces.add(_trace_hash(verdict.trace))
                continue
            rejects.append({"key": key, "id": item.id, "sample": j, "reason": verdict.reason, "answer": verdict.answer,
                            "trace_letter": verdict.trace_letter, "gold": item.answer, "finished": gen.finished,
                            "completion_tokens": gen.num_tokens, "text": gen.text})
            if j + 1 < cfg.samples_per_question:
                state[key]["rejected"].append(verdict.reason)
                still.append((key, item))
        pending = still
    return state


def _row(key: str, item: Any, st: dict, prompt_tokens: int) -> dict:
    v: Verdict = st["verdict"]
    return {"key": key, "id": item.id, "category": item.category, "trace": v.trace, "answer": v.answer, "gold": item.answer,
            "correct": v.answer == item.answer, "reason": v.reason, "prompt_tokens": prompt_tokens,
            "completion_tokens": st["completion_tokens"], "sample": st["sample"], "rejected": st["rejected"],
            "method": v.method, "finished": st["finished"]}


def _encoder(cfg: DistillConfig, teacher: Teacher, engine: Any, where: str):
    from llamafactory_ext.prompts import ModeError, PromptEncoder
    from llamafactory_ext.thinking import THINK

    try:
        return PromptEncoder(engine.tokenizer, teacher.template, THINK)
    except ModeError as exc:
        raise DistillError(f"{where}: teacher.template: {exc}") from None


def run(cfg: DistillConfig, where: str = "config", engine: Any = None, log: Callable[[str], None] = print) -> Stats:
    """Distill ``cfg``; ``engine`` (tests) replaces ``eval.engine.load_engine(...)``: anything with a
    ``tokenizer`` and ``generate(prompts, params) -> [Generation]``."""
    out = _check(cfg, where)
    teacher = teacher_of(cfg, where)
    engine_keys = engine_options(cfg, where)
    task = question_task(cfg, where)
    items = task.load()
    if not items:
        raise DistillError(f"{cfg.source}: no questions")
    meta = _meta(cfg, teacher)
    with FolderLock(out.parent, "output", name=f".{out.name}.lock", label=out), \
            ResumableJsonl(out, meta, cfg.overwrite, f"traces in {out}") as traces, \
            ResumableJsonl(_side(out, ".rejects.jsonl"), meta, cfg.overwrite, f"rejected samples beside {out}") as rejects:
        done_rows = traces.open()
        rejects.open()
        for row in done_rows:
            if not isinstance(row.get("key"), str) or "reason" not in row:
                raise DistillError(f"{out}: line {row['_line']}: not a distill row (needs 'key' and 'reason'); "
                                   "write elsewhere or pass overwrite=true")
        if traces.repaired:
            log(f"distill: dropped an incomplete last line of {out} (interrupted run); that question is asked again")
        stats = Stats()
        kept_traces = {_trace_hash(r.get("trace", "")) for r in done_rows if r.get("reason") == KEPT}
        for row in done_rows:
            stats.add_row(row)
        todo = _todo(items, {r["key"] for r in done_rows}, log, cfg.source)
        if done_rows:
            log(f"distill: resuming {out}: {len(done_rows)} question(s) already done, {len(todo)} to go")
        if todo:
            if engine is None:
                from llamafactory_ext.eval.engine import load_engine

                engine = load_engine(cfg.backend, teacher.model, teacher.adapter,
                                     **{"batch_size": cfg.batch_size, "seed": cfg.seed, **engine_keys})
            encoder = _encoder(cfg, teacher, engine, where)
            system = cfg.system if cfg.system is not None else task.system()
            started = time.time()
            bar = _bar(cfg, len(todo))
            for start in range(0, len(todo), cfg.batch_size):
                chunk = todo[start:start + cfg.batch_size]
                prompts = {key: encoder.encode(task.messages(item), system) for key, item in chunk}
                state = _ask(cfg, engine, prompts, chunk, kept_traces, rejects)
                for key, item in chunk:
                    row = _row(key, item, state[key], len(prompts[key]))
                    traces.append(row)
                    stats.add_row(row)
                rejects.flush()
                traces.flush()
                if bar is not None:
                    bar.update(len(chunk))
                    bar.set_postfix(kept=f"{sum(stats.kept.values())}/{sum(stats.asked.values())}")
            if bar is not None:
                bar.close()
            log(f"distill: {len(todo)} question(s) in {time.time() - started:.1f} s")
    _finish(cfg, out, stats, log)
    return stats


def _bar(cfg: DistillConfig, total: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="distill", unit="q", file=sys.stderr, dynamic_ncols=True)


def _finish(cfg: DistillConfig, out: Path, stats: Stats, log: Callable[[str], None]) -> None:
    summary = stats.as_dict() | {"output": str(out), "source": cfg.source}
    atomic_write_json(_side(out, ".summary.json"), summary)
    log(f"\nTraces: {out} (rows with \"reason\": \"kept\" are used by `prepare multit_think|multit_mixed traces=...`)")
    log(f"Rejected samples: {_side(out, '.rejects.jsonl')}\n")
    log(stats.table())


# ----------------------------------------------------------------------------- CLI


def options_help() -> str:
    from llamafactory_ext.config import describe

    return describe(DistillConfig)


def main(argv: list[str]) -> int:
    """``CONFIG.yaml key=value ...``; nested overrides merge (``teacher.model=...`` keeps ``teacher.template``)."""
    from llamafactory_ext.config import argv_where, from_argv

    run(from_argv(DistillConfig, argv), argv_where(argv))
    return 0
