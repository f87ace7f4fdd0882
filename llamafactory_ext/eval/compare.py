"""``llamafactory-ext compare``: base and tuned model answer the same free prompts, side by side.

    llamafactory-ext compare recipes/compare/wikipedia.yaml
    llamafactory-ext compare model_name_or_path=BASE adapter_name_or_path=saves/x prompts_file=prompts.txt

The base is ``model_name_or_path`` alone, the tuned model the same base plus
``adapter_name_or_path`` (both required). Sampling defaults to temperature 0.6, top_p 0.95 and
256 new tokens (Qwen3's recommended thinking-mode sampling). Prompts: ``.txt`` (one prompt per
non-empty line), ``.jsonl`` (rows with ``prompt``, optional ``id``) or ``.json`` (a list of
strings or of such rows). Writes ``compare.jsonl`` and ``compare.md`` (one section per prompt
and mode) to ``output_dir``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

from llamafactory_ext.config import UserError, describe, from_argv, option
from llamafactory_ext.io import FolderLock, atomic_write_text, write_jsonl

USAGE = "[CONFIG.yaml] [key=value ...]"


@dataclasses.dataclass
class CompareConfig:
    model_name_or_path: str | None = option(None, "base model (local dir or Hub id)")
    adapter_name_or_path: str | None = option(None, "LoRA adapter: the tuned model is base + adapter")
    prompts_file: str | None = option(None, ".txt (one prompt a line), .jsonl ({prompt} rows) or .json list")
    template: str = option("qwen3", "LLaMA-Factory template")
    thinking: str | bool | None = option(None, "on | off | both (default: both for reasoning templates)")
    system: str | None = option(None, "system prompt (default: none)")
    limit: int | None = option(None, "first N prompts only", ge=1)
    backend: Literal["hf", "vllm"] = option("hf", "hf | vllm")
    batch_size: int = option(8, "prompts per generate call", ge=1)
    max_new_tokens: int = option(256, "tokens per answer", ge=1)
    temperature: float = option(0.6, "sampling temperature (0 = greedy)", ge=0.0)
    top_p: float = option(0.95, "nucleus sampling", gt=0.0, le=1.0)
    seed: int = option(0, "sampling seed")
    device: str | None = option(None, "hf: cpu | cuda (default: cuda when available)")
    dtype: str = option("auto", "auto | float32 | bfloat16 | float16", choices=("auto", "float32", "bfloat16", "float16"))
    output_dir: str = option("results/compare", "where compare.md and compare.jsonl go")


def options_help() -> str:
    return describe(CompareConfig)


def read_prompts(path: str | None) -> list[dict[str, str]]:
    if not path:
        raise UserError("compare needs prompts_file=PATH (.txt one prompt a line, .jsonl or .json)")
    p = Path(path)
    if not p.is_file():
        raise UserError(f"prompts_file: file not found: {p}")
    if p.suffix not in (".txt", ".jsonl", ".json"):
        raise UserError(f"prompts_file {p}: use .txt, .jsonl or .json")
    text = p.read_text(encoding="utf-8-sig")
    rows: list[Any]
    if p.suffix == ".txt":
        rows = [line.strip() for line in text.splitlines() if line.strip()]
    elif p.suffix == ".jsonl":
        from llamafactory_ext.io import read_jsonl

        rows = read_jsonl(p)
    else:
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise UserError(f"{p}: not valid JSON ({exc})") from None
        if not isinstance(rows, list):
            raise UserError(f"{p}: expected a JSON list of prompts")
    out = []
    for n, row in enumerate(rows, 1):
        if isinstance(row, str):
            out.append({"id": str(n - 1), "prompt": row})
        elif isinstance(row, dict) and isinstance(row.get("prompt"), str) and row["prompt"].strip():
            out.append({"id": str(row.get("id", n - 1)), "prompt": row["prompt"]})
        else:
            raise UserError(f"{p}: prompt {row.get('_line', n) if isinstance(row, dict) else n}: field 'prompt' missing or not a non-empty string")
    if not out:
        raise UserError(f"{p}: no prompts")
    return out


def generate(cfg: CompareConfig, prompts: list[dict[str, str]], modes: tuple[str, ...]) -> dict[tuple[str, str], dict[str, str]]:
    from llamafactory_ext.eval.engine import GenParams, check_model_path, load_engine
    from llamafactory_ext.prompts import PromptEncoder

    check_model_path(cfg.model_name_or_path)
    if not cfg.adapter_name_or_path:
        raise UserError("compare needs adapter_name_or_path (the tuned model = base + adapter)")
    check_model_path(cfg.adapter_name_or_path, "adapter_name_or_path")
    params = GenParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed)
    outputs: dict[tuple[str, str], dict[str, str]] = {}
    for label, adapter in (("base", None), ("tuned", cfg.adapter_name_or_path)):
        engine = load_engine(cfg.backend, cfg.model_name_or_path, adapter, batch_size=cfg.batch_size,
                             device=cfg.device, dtype=cfg.dtype)
        for mode in modes:
            enc = PromptEncoder(engine.tokenizer, cfg.template, mode)
            ids = [enc.encode([{"role": "user", "content": p["prompt"]}], cfg.system) for p in prompts]
            for p, g in zip(prompts, engine.generate(ids, params)):
                outputs.setdefault((p["id"], mode), {})[label] = g.text
        engine.close()
    return outputs


def run(cfg: CompareConfig) -> Path:
    from llamafactory_ext.eval.resolve import resolve_modes

    prompts = read_prompts(cfg.prompts_file)[: cfg.limit]
    modes = resolve_modes(cfg.thinking, {}, cfg.template)
    out = Path(cfg.output_dir)
    with FolderLock(out):
        outputs = generate(cfg, prompts, modes)
        rows = [{"id": p["id"], "mode": mode, "prompt": p["prompt"], **outputs[(p["id"], mode)]} for p in prompts for mode in modes]
        write_jsonl(out / "compare.jsonl", rows)
        md = ["# Side-by-side generations", "",
              (f"Base: `{cfg.model_name_or_path}` · tuned: `{cfg.model_name_or_path}` + `{cfg.adapter_name_or_path}` · "
               f"template `{cfg.template}` · temperature {cfg.temperature}, top_p {cfg.top_p}, "
               f"max_new_tokens {cfg.max_new_tokens}, seed {cfg.seed}"), ""]
        for row in rows:
            md += [f"## Prompt {row['id']} · mode `{row['mode']}`", "", "> " + row["prompt"].replace("\n", "\n> "), "",
                   "| Base | Tuned |", "|---|---|", f"| {_cell(row['base'])} | {_cell(row['tuned'])} |", ""]
        atomic_write_text(out / "compare.md", "\n".join(md))
    return out / "compare.md"


def _cell(text: str) -> str:
    return (text.strip() or "*(empty)*").replace("|", "\\|").replace("\n", "<br>")


def main(argv: list[str]) -> int:
    path = run(from_argv(CompareConfig, argv))
    print(f"compare: side-by-side generations in {path}")
    return 0
