"""``task=compare``: base and tuned model answer the same free prompts, side by side.

The base is ``model_name_or_path`` alone, the tuned model the same base plus
``adapter_name_or_path`` (both required). Sampling defaults to temperature 0.6, top_p 0.95,
256 new tokens. Prompts: ``.txt`` (one prompt per non-empty line), ``.jsonl`` (rows with
``prompt``, optional ``id``) or ``.json`` (a list of strings or of such rows). Writes
``compare.jsonl`` and ``compare.md`` (one section per prompt and mode) to ``output_dir``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llamafactory_ext.config import UserError
from llamafactory_ext.eval.report import atomic_write_text

DEFAULT_TEMPERATURE = 0.6
DEFAULT_TOP_P = 0.95
DEFAULT_MAX_NEW_TOKENS = 256


def read_prompts(path: str | None) -> list[dict[str, str]]:
    if not path:
        raise UserError("task=compare needs prompts_file=PATH (.txt one prompt a line, .jsonl or .json)")
    p = Path(path)
    if not p.is_file():
        raise UserError(f"prompts_file: file not found: {p}")
    text = p.read_text(encoding="utf-8")
    rows: list[Any]
    if p.suffix == ".txt":
        rows = [line.strip() for line in text.splitlines() if line.strip()]
    elif p.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"{p}:{n}: not valid JSON ({exc.msg})") from None
    elif p.suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{p}: not valid JSON ({exc.msg})") from None
        if not isinstance(rows, list):
            raise UserError(f"{p}: expected a JSON list of prompts")
    else:
        raise UserError(f"prompts_file {p}: use .txt, .jsonl or .json")
    out = []
    for n, row in enumerate(rows, 1):
        if isinstance(row, str):
            out.append({"id": str(n - 1), "prompt": row})
        elif isinstance(row, dict) and isinstance(row.get("prompt"), str) and row["prompt"].strip():
            out.append({"id": str(row.get("id", n - 1)), "prompt": row["prompt"]})
        else:
            raise UserError(f"{p}: prompt {n}: field 'prompt' missing or not a non-empty string")
    if not out:
        raise UserError(f"{p}: no prompts")
    return out


def run_compare(r) -> dict[str, Any]:
    from llamafactory_ext.eval.engine import GenParams, check_model_path, load_engine
    from llamafactory_ext.prompts import PromptEncoder

    cfg = r.cfg
    prompts = read_prompts(cfg.prompts_file)
    if cfg.limit:
        prompts = prompts[: cfg.limit]
    check_model_path(cfg.model_name_or_path)
    if not cfg.adapter_name_or_path:
        raise UserError("task=compare needs adapter_name_or_path (the tuned model = base + adapter)")
    check_model_path(cfg.adapter_name_or_path, "adapter_name_or_path")
    seed = cfg.seeds[0] if cfg.seeds else 0
    params = GenParams(
        max_new_tokens=cfg.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
        temperature=DEFAULT_TEMPERATURE if cfg.temperature is None else cfg.temperature,
        top_p=DEFAULT_TOP_P if cfg.top_p is None else cfg.top_p,
        seed=seed,
    )
    outputs: dict[tuple[str, str], dict[str, str]] = {}
    for label, adapter in (("base", None), ("tuned", cfg.adapter_name_or_path)):
        engine = load_engine(cfg.backend, cfg.model_name_or_path, adapter, batch_size=cfg.batch_size or 8,
                             device=cfg.device, dtype=cfg.dtype, gpu_memory_utilization=cfg.gpu_memory_utilization,
                             tensor_parallel_size=cfg.tensor_parallel_size, max_model_len=cfg.max_model_len,
                             max_lora_rank=cfg.max_lora_rank)
        for mode in r.modes:
            enc = PromptEncoder(engine.tokenizer, r.template, mode)
            ids = [enc.encode([{"role": "user", "content": p["prompt"]}], r.system) for p in prompts]
            gens = engine.generate(ids, params)
            for p, g in zip(prompts, gens):
                outputs.setdefault((p["id"], mode), {})[label] = g.text
        close = getattr(engine, "close", None)
        if close:
            close()
    r.output_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": p["id"], "mode": mode, "prompt": p["prompt"], "base": outputs[(p["id"], mode)]["base"],
         "tuned": outputs[(p["id"], mode)]["tuned"]}
        for p in prompts for mode in r.modes
    ]
    atomic_write_text(r.output_dir / "compare.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows))
    md = [
        "# Side-by-side generations",
        "",
        (f"Base: `{cfg.model_name_or_path}` · tuned: `{cfg.model_name_or_path}` + `{cfg.adapter_name_or_path}` · "
         f"template `{r.template}` · temperature {params.temperature}, top_p {params.top_p}, "
         f"max_new_tokens {params.max_new_tokens}, seed {seed}"),
        "",
    ]
    for row in rows:
        md += [f"## Prompt {row['id']} · mode `{row['mode']}`", "", "> " + row["prompt"].replace("\n", "\n> "), "",
               "| Base | Tuned |", "|---|---|",
               f"| {_cell(row['base'])} | {_cell(row['tuned'])} |", ""]
    if r.warnings:
        md += ["## Warnings", ""] + [f"- {w}" for w in r.warnings] + [""]
    atomic_write_text(r.output_dir / "compare.md", "\n".join(md))
    return {"task": "compare", "rows": len(rows), "output": str(r.output_dir / "compare.md"), "warnings": r.warnings}


def _cell(text: str) -> str:
    return (text.strip() or "*(empty)*").replace("|", "\\|").replace("\n", "<br>")
