"""The keys of ``llamafactory-ext eval``: :class:`EvalConfig` (shared by every task) and, per task,
one class that also holds that task's own options (:func:`config_class`: a subclass of both, so a
run's config is typed as an ``EvalConfig`` and as the task's options).

The command reads them with ``config.from_argv(config_for, argv)``: the config file is read once,
and its ``task`` (or ``task=`` on the command line) picks the class.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Literal

from llamafactory_ext.config import UserError, describe, option
from llamafactory_ext.eval.tasks import TASKS, Task, task_class
from llamafactory_ext.thinking import NOTHINK, THINK

# thinking= -> modes (on / off: YAML 1.1 booleans arrive as True / False, see thinking_choice)
THINKING = {"on": (THINK,), "off": (NOTHINK,), "both": (THINK, NOTHINK), THINK: (THINK,), NOTHINK: (NOTHINK,)}
DEFAULT_TASK = "italic"
SYSTEM_DEFAULT = "auto"  # system=: the recipe's default_system, else the task's ('' or null: no system prompt)


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
    task: str = option(DEFAULT_TASK, "italic | gsm8k | multit | lm_eval (lm-evaluation-harness's Italian suite)", choices=tuple(TASKS))
    source: str | None = option(None, "Hub id or local file / folder (default: the public set)")
    limit: int | None = option(None, "first N items only", ge=1)
    system: str | None = option(SYSTEM_DEFAULT, "system prompt: auto = the recipe's default_system, else the task's; "
                                "'' or nothing (system=) = none")
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


@functools.cache
def config_class(task: str) -> type[EvalConfig]:
    """The config class of ``task``: EvalConfig's keys, then the task's own (a subclass of both)."""
    options = task_class(task).options
    return dataclasses.make_dataclass(f"Eval{options.__name__}", [], bases=(options, EvalConfig))


def config_for(data: dict[str, Any]) -> type[EvalConfig]:
    """The config class the keys ask for (``task``, default italic): ``from_argv(config_for, argv)``."""
    return config_class(str(data.get("task", DEFAULT_TASK)))


def task_for(name: str, where: str = "eval", **values: Any) -> Task:
    """Task ``name`` with its default options and ``values`` (checked by the caller's own config:
    ``contamination`` and ``distill`` pass ``source``, ``limit`` and the like)."""
    cls = task_class(name, where)
    return cls(config_class(name)(task=name, **values))


def thinking_choice(value: Any) -> str:
    """``thinking=`` as typed: YAML 1.1 reads on / off as booleans, so ``thinking=off`` arrives as False."""
    choice = {"True": "on", "False": "off", "true": "on", "false": "off"}.get(str(value), value)
    if choice not in THINKING:
        raise EvalError(f"unknown thinking mode {value!r}; use on | off | both (or think | nothink)")
    return choice


def options_help() -> str:
    lines = [describe(EvalConfig)]
    for name in TASKS:
        own = describe(task_class(name).options)
        if own:
            lines += ["", f"task={name} also takes:", own]
    return "\n".join(lines)
