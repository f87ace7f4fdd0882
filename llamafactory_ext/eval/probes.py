"""Probes on finished think-mode outputs, each generating a short forced answer:

- ``cutoff=force_answer``: an output cut at ``max_new_tokens`` gets ``\\n</think>\\n\\n`` appended and
  a short answer generated (``task.answer_tokens``); its own column, resumable (``forced.jsonl``);
- ``faithfulness=true``: the reasoning cut at 25 / 50 / 75 %, the answer forced, the change rate
  counted (``faithfulness.jsonl``).
"""

from __future__ import annotations

from typing import Any

from llamafactory_ext.eval.predict import encoders, gen_params, row_key
from llamafactory_ext.eval.resolve import EvalRun, settings
from llamafactory_ext.eval.tasks import OK
from llamafactory_ext.io import ResumableJsonl, write_jsonl
from llamafactory_ext.thinking import NOTHINK, THINK, THOUGHT_WORDS, format_thinking, split_output, truncate_reasoning

FORCED = "forced.jsonl"
FAITH_FRACTIONS = (0.25, 0.5, 0.75)


def _output_ids(engine, row: dict[str, Any]) -> list[int]:
    return engine.tokenizer.encode(row["output"], add_special_tokens=False)


def force_answers(r: EvalRun, items: list[Any], rows: list[dict[str, Any]], engine_factory) -> list[dict[str, Any]]:
    """``cutoff=force_answer``: every think-mode output cut at max_new_tokens gets ``\\n</think>\\n\\n``
    appended and a short answer generated (``task.answer_tokens``). Kept in forced.jsonl (resumable)."""
    task = r.items_task
    cut = [x for x in rows if x["mode"] == THINK and x.get("finished") is False and not x.get("closed")]
    path = r.output_dir / FORCED
    with ResumableJsonl(path, {**settings(r), "answer_tokens": task.answer_tokens}, r.cfg.overwrite, f"{path}") as forced:
        have = {row_key(x): x for x in forced.open()}
        todo = [x for x in cut if row_key(x) not in have]
        if todo:
            engine = engine_factory()
            enc = encoders(engine, r.template, (THINK,))[THINK]
            by_id = {task.item_id(it): it for it in items}
            closing = engine.tokenizer.encode(THOUGHT_WORDS[1], add_special_tokens=False)
            prompts = [enc.encode(task.messages(by_id[x["id"]]), r.system) + _output_ids(engine, x) + closing for x in todo]
            gens = engine.generate(prompts, gen_params(r, THINK, None, task.answer_tokens))
            for x, gen in zip(todo, gens):
                s = task.score(gen.text, by_id[x["id"]], NOTHINK)
                row = {"id": x["id"], "mode": THINK, "seed": x.get("seed"), "forced_output": gen.text,
                       "forced_extracted": s.extracted, "forced_correct": s.correct}
                forced.append(row)
                have[row_key(row)] = row
    return [{**x, **{k: v for k, v in have[row_key(x)].items() if k.startswith("forced_")}} if row_key(x) in have else x for x in rows]


def _probe_items(r: EvalRun, items: list[Any], rows: list[dict[str, Any]]) -> list[tuple[Any, dict[str, Any], str]]:
    """(item, think-mode row, reasoning) of the first finished outputs with a reasoning to cut."""
    by_key = {row_key(x): x for x in rows}
    picked = []
    for it in items:
        row = by_key.get((r.items_task.item_id(it), THINK, r.seeds[0]))
        if row and row["status"] == OK and row["closed"] and split_output(row["output"]).reasoning.split():
            picked.append((it, row, split_output(row["output"]).reasoning))
        if len(picked) >= r.cfg.faithfulness_samples:
            break
    return picked


def faithfulness_probe(r: EvalRun, items: list[Any], rows: list[dict[str, Any]], engine) -> dict[str, Any]:
    """Cut the think-mode reasoning at 25/50/75 %, force the final answer, count changes."""
    task = r.items_task
    picked = _probe_items(r, items, rows)
    if not picked:
        return {"samples": 0, "fractions": {}, "note": "no finished think-mode outputs with a reasoning to probe"}
    enc = encoders(engine, r.template, (THINK,))[THINK]
    prompts, meta = [], []
    for it, row, reasoning in picked:
        base = enc.encode(task.messages(it), r.system)
        for frac in FAITH_FRACTIONS:
            forced = format_thinking(truncate_reasoning(reasoning, frac), "")
            prompts.append(base + engine.tokenizer.encode(forced, add_special_tokens=False))
            meta.append((it, row, frac))
    gens = engine.generate(prompts, gen_params(r, THINK, None, task.answer_tokens))
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
