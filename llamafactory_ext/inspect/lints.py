"""The lints of ``inspect``: each one a code, a severity, one line why and one line fix."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llamafactory_ext.config import load_yaml
from llamafactory_ext.inspect.analysis import Analyzer, DatasetStats, InspectError
from llamafactory_ext.thinking import NOTHINK, THINK

SEVERITIES = ("error", "warning", "info")


def lint(code: str, severity: str, message: str, fix: str) -> dict[str, str]:
    assert severity in SEVERITIES
    return {"code": code, "severity": severity, "message": message, "fix": fix}


def is_hybrid_qwen3(model: str, chat_template: str | None) -> tuple[bool, str]:
    """Whether ``model`` is a hybrid (thinking + non-thinking) Qwen3, and the evidence.

    The reliable test is the model's own chat template: hybrid Qwen3 (Qwen3-8B, Qwen3-4B, ...)
    reads ``enable_thinking``; Qwen3-*-Instruct-2507 (no thinking) and Qwen3-*-Thinking-2507 (always
    thinking) do not. Without the template (tokenizer replaced, a Hub id not downloaded) the name
    decides: a Qwen3 whose name lacks ``Instruct-2507`` / ``Thinking-2507``.
    """
    if chat_template is None:
        local = Path(model)
        for file in (local / "chat_template.jinja", local / "tokenizer_config.json"):
            if file.is_file():
                text = file.read_text(encoding="utf-8", errors="replace")
                if file.suffix == ".json":
                    try:
                        value = json.loads(text).get("chat_template")
                    except ValueError:
                        value = None
                    text = value if isinstance(value, str) else None
                if text:
                    chat_template = text
                    break
    if chat_template is not None:
        if "enable_thinking" in chat_template:
            return True, "its chat template reads enable_thinking"
        return False, "its chat template has no enable_thinking switch"
    low = Path(model).name.lower() if Path(model).exists() else model.lower()
    hybrid = "qwen3" in low and "instruct-2507" not in low and "thinking-2507" not in low
    return hybrid, "its name is a Qwen3 without Instruct-2507 / Thinking-2507"


def eval_modes(eval_path: str) -> tuple[tuple[str, ...], str | None]:
    """(modes the evaluator config runs, its template), resolved as ``eval.resolve.resolve`` does
    (a think mode on a template without one is dropped here, not an error)."""
    from llamafactory_ext.eval.options import EvalError
    from llamafactory_ext.eval.resolve import read_recipe, resolve_modes

    if not Path(eval_path).is_file():
        raise InspectError(f"eval config not found: {eval_path}")
    cfg = load_yaml(eval_path)
    recipe_path = str(cfg.get("from_recipe") or "")
    recipe = read_recipe(recipe_path) if recipe_path and Path(recipe_path).is_file() else {}
    template = str(cfg.get("template") or recipe.get("template") or "qwen3")
    try:
        return resolve_modes(cfg.get("thinking"), recipe, template, strict=False), template
    except EvalError as exc:
        raise InspectError(f"{eval_path}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# the lints: one small function per lint code, each returning the lints it raises (none: [])
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Context:
    """What a lint may look at: the analysed recipe and the evaluator config it is checked against."""

    az: Analyzer
    recipe: dict[str, Any]
    model: str
    chat_template: str | None
    eval_path: str | None

    @property
    def data(self) -> Any:
        return self.az.args.data

    @property
    def cutoff(self) -> Any:
        return self.recipe.get("cutoff_len", self.data.cutoff_len)

    def longest(self, s: DatasetStats) -> int:
        return s.longest_row + (1 if self.data.packing else 0)

    @functools.cached_property
    def eval(self) -> tuple[tuple[str, ...], str | None]:
        assert self.eval_path
        return eval_modes(self.eval_path)


def openai_formatting(ctx: Context, s: DatasetStats) -> list[dict[str, str]]:
    if s.formatting != "openai":
        return []
    return [lint(
        "openai_formatting", "warning",
        f"{s.name} is registered with formatting: openai: LLaMA-Factory 0.9.5 appends \"detailed thinking off\" "
        "to every system prompt (or makes it the system prompt), so training prompts differ from the evaluator's",
        f"register {s.name} with formatting: sharegpt and tags {{role_tag: role, content_tag: content, user_tag: user, "
        "assistant_tag: assistant, system_tag: system}} (same rows, no extra text)")]


def empty_think_trained(ctx: Context, s: DatasetStats) -> list[dict[str, str]]:
    if not s.response_trained:
        return []
    return [lint(
        "empty_think_trained", "error",
        f"{s.name}: {s.response_trained} of {s.rows - s.dropped_rows} rows have no trace, so with enable_thinking: true "
        "LLaMA-Factory puts the empty think block <think>\\n\\n</think>\\n\\n in their response and trains it: the model "
        "learns to answer a thinking prompt with an empty thought (it stops thinking)",
        "set enable_thinking: null (rows without a trace get the block masked in the prompt: Qwen3's own "
        "non-thinking format) or give every row a trace")]


def traces_dropped(ctx: Context, s: DatasetStats) -> list[dict[str, str]]:
    if not (ctx.data.enable_thinking is False and ctx.az.reasoning and s.rows_with_trace):
        return []
    return [lint(
        "traces_dropped", "warning",
        f"{s.name}: {s.rows_with_trace} of {s.rows - s.dropped_rows} rows carry a <think> trace, but enable_thinking: false "
        "makes LLaMA-Factory remove every trace silently: only the answers are trained",
        "set enable_thinking: null to train the traces after a thinking prompt (the rows without one stay "
        "non-thinking), or strip the traces in the data if answers alone are meant")]


def cutoff_cuts_answers(ctx: Context, s: DatasetStats) -> list[dict[str, str]]:
    if not s.answer_lost_rows:
        return []
    return [lint(
        "cutoff_cuts_answers", "error",
        f"{s.name}: {s.answer_lost_rows} of {s.rows - s.dropped_rows} rows lose (part of) their final answer to cutoff_len "
        f"{ctx.cutoff}: the model is trained on traces that never reach an answer",
        f"raise cutoff_len to at least {ctx.longest(s)} (the longest row), or drop or shorten the long rows")]


def cutoff_cuts_rows(ctx: Context, s: DatasetStats) -> list[dict[str, str]]:
    """Rows cut with every answer kept (``cutoff_cuts_answers`` says more when an answer is lost)."""
    if not s.cut_rows or s.answer_lost_rows:
        return []
    kept = s.rows - s.dropped_rows
    if ctx.az.stage == "sft":
        return [lint(
            "cutoff_cuts_rows", "warning",
            f"{s.name}: {s.cut_rows} of {kept} rows are cut by cutoff_len {ctx.cutoff} "
            "(their prompt or trace is shortened; every final answer survives)",
            f"raise cutoff_len to at least {ctx.longest(s)} (the longest row)")]
    packing = ctx.data.packing
    return [lint(
        "cutoff_cuts_rows", "info",
        f"{s.name}: {s.cut_rows} of {kept} rows lose {s.dropped_tokens:,} tokens in all"
        + (": packing keeps whole cutoff_len blocks and drops each batch's tail" if packing else f" to cutoff_len {ctx.cutoff}"),
        "raise preprocessing_batch_size to drop fewer tail tokens" if packing else f"raise cutoff_len to {s.longest_row} or set packing: true")]


def rows_dropped(ctx: Context, s: DatasetStats) -> list[dict[str, str]]:
    if not s.dropped_rows:
        return []
    return [lint(
        "rows_dropped", "warning",
        f"{s.name}: LLaMA-Factory drops {s.dropped_rows} of {s.rows} rows as invalid (roles out of order, "
        "an odd number of turns, or an empty conversation)",
        "fix those rows in the data (llamafactory-ext prepare writes valid rows and counts rejects)")]


def think_mode_untrained(ctx: Context) -> list[dict[str, str]]:
    if not (ctx.az.stage == "sft" and ctx.az.reasoning and THINK not in ctx.az.trained_modes):
        return []
    return [lint(
        "think_mode_untrained", "warning",
        "no row trains the thinking mode: every training prompt is the non-thinking one, and the fine-tune "
        "still changes how the model thinks (the published V1 run, non-thinking data only, fell from 74.49 % "
        "to 59.33 % on ITALIC in thinking mode)",
        "mix rows with traces in and set enable_thinking: null (the published V3: 73.81 / 77.57), or evaluate "
        "this model in non-thinking mode only")]


def nothink_mode_untrained(ctx: Context) -> list[dict[str, str]]:
    if not (ctx.az.stage == "sft" and ctx.az.reasoning and NOTHINK not in ctx.az.trained_modes):
        return []
    return [lint(
        "nothink_mode_untrained", "info",
        "no row trains the non-thinking mode (prompts ending in the masked empty think block): that mode gets no "
        "training signal (the published V2 run kept it at 70.27 % against the baseline's 70.17 %)",
        "mix rows without traces in and set enable_thinking: null to train both modes")]


def nothink_template_on_hybrid(ctx: Context) -> list[dict[str, str]]:
    if ctx.az.template_name != "qwen3_nothink":
        return []
    hybrid, evidence = is_hybrid_qwen3(ctx.model, ctx.chat_template)
    if not hybrid:
        return []
    return [lint(
        "nothink_template_on_hybrid", "warning",
        f"template qwen3_nothink on {ctx.model}, a hybrid thinking Qwen3 ({evidence}): its prompts end at "
        "<|im_start|>assistant\\n with no empty think block, which is Qwen3's thinking prompt, not its "
        "non-thinking format: the model learns to answer straight away where it would think",
        "use template: qwen3 with enable_thinking: false (Qwen3's own non-thinking format, evaluator mode "
        "nothink); keep qwen3_nothink for models without a thinking mode (Qwen3-*-Instruct-2507)")]


def tokenized_path_set(ctx: Context) -> list[dict[str, str]]:
    if not ctx.data.tokenized_path:
        return []
    return [lint(
        "tokenized_path_set", "info",
        f"tokenized_path {ctx.data.tokenized_path}: when that folder holds data, llamafactory-cli train loads it and "
        "ignores every data argument; this report shows what the data arguments produce",
        "delete the folder (or drop tokenized_path) after changing data arguments")]


def eval_template_differs(ctx: Context) -> list[dict[str, str]]:
    if not ctx.eval_path:
        return []
    _, eval_template = ctx.eval
    if not ctx.az.template_name or eval_template == ctx.az.template_name:
        return []
    return [lint(
        "eval_template_differs", "warning",
        f"{ctx.eval_path} renders prompts with template {eval_template}, the recipe trains with {ctx.az.template_name}: "
        "evaluation prompts differ from the training prompts",
        f"set template: {ctx.az.template_name} in {ctx.eval_path} (or from_recipe: the recipe)")]


def eval_mode_untrained(ctx: Context) -> list[dict[str, str]]:
    if not ctx.eval_path:
        return []
    return [lint(
        "eval_mode_untrained", "warning",
        f"{ctx.eval_path} evaluates mode {mode}, which this recipe never trains"
        + (" (no row's prompt is the thinking prompt: the published V1 lost 15 points there)" if mode == THINK else ""),
        f"train mode {mode} too (enable_thinking: null with {'traces' if mode == THINK else 'rows without traces'} in the data), "
        f"or evaluate thinking={'off' if mode == THINK else 'on'} only")
        for mode in ctx.eval[0] if mode not in ctx.az.trained_modes]


# Per data set, then per recipe; in this order before the sort by severity. A new lint is one
# function and one line here.
DATASET_LINTS: list[Callable[[Context, DatasetStats], list[dict[str, str]]]] = [
    openai_formatting, empty_think_trained, traces_dropped, cutoff_cuts_answers, cutoff_cuts_rows, rows_dropped,
]
RECIPE_LINTS: list[Callable[[Context], list[dict[str, str]]]] = [
    think_mode_untrained, nothink_mode_untrained, nothink_template_on_hybrid, tokenized_path_set, eval_template_differs,
    eval_mode_untrained,
]


def make_lints(az: Analyzer, stats: list[DatasetStats], recipe: dict[str, Any], model: str,
               chat_template: str | None, eval_path: str | None) -> list[dict[str, str]]:
    ctx = Context(az, recipe, model, chat_template, eval_path)
    out = [x for s in stats for check in DATASET_LINTS for x in check(ctx, s)]
    out += [x for check in RECIPE_LINTS for x in check(ctx)]
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(out, key=lambda x: order[x["severity"]])
