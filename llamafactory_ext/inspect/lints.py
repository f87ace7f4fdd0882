"""The lints of ``inspect``: each one a code, a severity, one line why and one line fix."""

from __future__ import annotations

import json
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


def make_lints(az: Analyzer, stats: list[DatasetStats], recipe: dict[str, Any], model: str,
               chat_template: str | None, eval_path: str | None) -> list[dict[str, str]]:
    data = az.args.data
    out: list[dict[str, str]] = []
    for s in stats:
        kept = s.rows - s.dropped_rows
        if s.formatting == "openai":
            out.append(lint(
                "openai_formatting", "warning",
                f"{s.name} is registered with formatting: openai: LLaMA-Factory 0.9.5 appends \"detailed thinking off\" "
                "to every system prompt (or makes it the system prompt), so training prompts differ from the evaluator's",
                f"register {s.name} with formatting: sharegpt and tags {{role_tag: role, content_tag: content, user_tag: user, "
                "assistant_tag: assistant, system_tag: system}} (same rows, no extra text)"))
        if s.response_trained:
            out.append(lint(
                "empty_think_trained", "error",
                f"{s.name}: {s.response_trained} of {kept} rows have no trace, so with enable_thinking: true LLaMA-Factory puts "
                "the empty think block <think>\\n\\n</think>\\n\\n in their response and trains it: the model learns to "
                "answer a thinking prompt with an empty thought (it stops thinking)",
                "set enable_thinking: null (rows without a trace get the block masked in the prompt: Qwen3's own "
                "non-thinking format) or give every row a trace"))
        if data.enable_thinking is False and az.reasoning and s.rows_with_trace:
            out.append(lint(
                "traces_dropped", "warning",
                f"{s.name}: {s.rows_with_trace} of {kept} rows carry a <think> trace, but enable_thinking: false makes "
                "LLaMA-Factory remove every trace silently: only the answers are trained",
                "set enable_thinking: null to train the traces after a thinking prompt (the rows without one stay "
                "non-thinking), or strip the traces in the data if answers alone are meant"))
        if s.answer_lost_rows:
            out.append(lint(
                "cutoff_cuts_answers", "error",
                f"{s.name}: {s.answer_lost_rows} of {kept} rows lose (part of) their final answer to cutoff_len "
                f"{recipe.get('cutoff_len', data.cutoff_len)}: the model is trained on traces that never reach an answer",
                f"raise cutoff_len to at least {s.longest_row + (1 if data.packing else 0)} (the longest row), or drop or "
                "shorten the long rows"))
        elif s.cut_rows and az.stage == "sft":
            out.append(lint(
                "cutoff_cuts_rows", "warning",
                f"{s.name}: {s.cut_rows} of {kept} rows are cut by cutoff_len {recipe.get('cutoff_len', data.cutoff_len)} "
                "(their prompt or trace is shortened; every final answer survives)",
                f"raise cutoff_len to at least {s.longest_row + (1 if data.packing else 0)} (the longest row)"))
        elif s.cut_rows:
            out.append(lint(
                "cutoff_cuts_rows", "info",
                f"{s.name}: {s.cut_rows} of {kept} rows lose {s.dropped_tokens:,} tokens in all"
                + (": packing keeps whole cutoff_len blocks and drops each batch's tail" if data.packing
                   else f" to cutoff_len {recipe.get('cutoff_len', data.cutoff_len)}"),
                "raise preprocessing_batch_size to drop fewer tail tokens" if data.packing
                else f"raise cutoff_len to {s.longest_row} or set packing: true"))
        if s.dropped_rows:
            out.append(lint(
                "rows_dropped", "warning",
                f"{s.name}: LLaMA-Factory drops {s.dropped_rows} of {s.rows} rows as invalid (roles out of order, "
                "an odd number of turns, or an empty conversation)",
                "fix those rows in the data (llamafactory-ext prepare writes valid rows and counts rejects)"))
    if az.stage == "sft" and az.reasoning:
        if THINK not in az.trained_modes:
            out.append(lint(
                "think_mode_untrained", "warning",
                "no row trains the thinking mode: every training prompt is the non-thinking one, and the fine-tune "
                "still changes how the model thinks (the published V1 run, non-thinking data only, fell from 74.49 % "
                "to 59.33 % on ITALIC in thinking mode)",
                "mix rows with traces in and set enable_thinking: null (the published V3: 73.81 / 77.57), or evaluate "
                "this model in non-thinking mode only"))
        if NOTHINK not in az.trained_modes:
            out.append(lint(
                "nothink_mode_untrained", "info",
                "no row trains the non-thinking mode (prompts ending in the masked empty think block): that mode gets no "
                "training signal (the published V2 run kept it at 70.27 % against the baseline's 70.17 %)",
                "mix rows without traces in and set enable_thinking: null to train both modes"))
    if az.template_name == "qwen3_nothink":
        hybrid, evidence = is_hybrid_qwen3(model, chat_template)
        if hybrid:
            out.append(lint(
                "nothink_template_on_hybrid", "warning",
                f"template qwen3_nothink on {model}, a hybrid thinking Qwen3 ({evidence}): its prompts end at "
                "<|im_start|>assistant\\n with no empty think block, which is Qwen3's thinking prompt, not its "
                "non-thinking format: the model learns to answer straight away where it would think",
                "use template: qwen3 with enable_thinking: false (Qwen3's own non-thinking format, evaluator mode "
                "nothink); keep qwen3_nothink for models without a thinking mode (Qwen3-*-Instruct-2507)"))
    if data.tokenized_path:
        out.append(lint(
            "tokenized_path_set", "info",
            f"tokenized_path {data.tokenized_path}: when that folder holds data, llamafactory-cli train loads it and "
            "ignores every data argument; this report shows what the data arguments produce",
            "delete the folder (or drop tokenized_path) after changing data arguments"))
    if eval_path:
        modes, eval_template = eval_modes(eval_path)
        if az.template_name and eval_template != az.template_name:
            out.append(lint(
                "eval_template_differs", "warning",
                f"{eval_path} renders prompts with template {eval_template}, the recipe trains with {az.template_name}: "
                "evaluation prompts differ from the training prompts",
                f"set template: {az.template_name} in {eval_path} (or from_recipe: the recipe)"))
        for mode in modes:
            if mode not in az.trained_modes:
                out.append(lint(
                    "eval_mode_untrained", "warning",
                    f"{eval_path} evaluates mode {mode}, which this recipe never trains"
                    + (" (no row's prompt is the thinking prompt: the published V1 lost 15 points there)" if mode == THINK else ""),
                    f"train mode {mode} too (enable_thinking: null with "
                    f"{'traces' if mode == THINK else 'rows without traces'} in the data), or evaluate "
                    f"thinking={'off' if mode == THINK else 'on'} only"))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(out, key=lambda x: order[x["severity"]])


