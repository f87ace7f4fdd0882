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

from llamafactory_ext.config import from_argv
from llamafactory_ext.eval.options import config_for, options_help
from llamafactory_ext.eval.predict import PREDICTIONS
from llamafactory_ext.eval.resolve import resolve
from llamafactory_ext.eval.runner import run_resolved

USAGE = "CONFIG.yaml [key=value ...]   (task=italic|gsm8k|multit|lm_eval adds that task's own keys)"
__all__ = ["USAGE", "main", "options_help"]


def main(argv: list[str]) -> int:
    r = resolve(from_argv(config_for, argv))
    results = run_resolved(r)
    print(f"eval {results['task']}: {r.task.summary_line(results)}")
    print(f"eval: wrote {r.output_dir / 'results.json'}, {r.output_dir / 'results.md'}, {r.output_dir / PREDICTIONS}")
    return 0
