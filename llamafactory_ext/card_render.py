"""The text of a model card (``llamafactory-ext card``): front matter through ``huggingface_hub``,
then the sections a published adapter card has. Facts are gathered by ``card.py``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from llamafactory_ext.eval.results import Results, header_lines

MODE_LABEL = {"nothink": "no thinking", "think": "thinking"}
FORMAT = {True: "thinking rows (enable_thinking: true)", False: "non-thinking rows (enable_thinking: false)",
          None: "mixed rows (enable_thinking: null)"}
EXAMPLE = "Write one sentence about yourself."  # the usage snippet's message when the task renders none
HYPER_KEYS = ("model_name_or_path", "template", "finetuning_type", "lora_rank", "lora_alpha", "lora_dropout", "lora_target",
              "enable_thinking", "dataset", "cutoff_len", "packing", "neat_packing", "per_device_train_batch_size",
              "gradient_accumulation_steps", "learning_rate", "num_train_epochs", "max_steps", "lr_scheduler_type",
              "warmup_ratio", "warmup_steps", "optim", "bf16", "fp16", "quantization_bit", "deepspeed", "seed")


def _d(obj: Any) -> dict | None:
    return dataclasses.asdict(obj) if obj is not None else None


def _task(res: Results) -> Any:
    """The evaluated task's class in the registry (its categories, languages, Hub data set, example), or None."""
    from llamafactory_ext.eval.tasks import registered

    return registered(res.task)


def hub_dataset(res: Results) -> Any:
    """How the Hub names the evaluation data: the task's ``hub_dataset``; for data that are not on the
    Hub (its ``type`` is no Hub id), the file evaluated names it (``Mult-IT (eval_quiz.json)``)."""
    from llamafactory_ext.eval.tasks import HubDataset

    task = _task(res)
    source = str(res.source.get("source") or "")
    ds = (task and task.hub_dataset) or HubDataset(task.label if task else res.task, res.task)
    if "/" not in ds.type and source:
        return HubDataset(f"{ds.name} ({Path(source).name})", ds.type, None, None)
    return ds


def eval_results(res: Results) -> list[Any]:
    """One ``EvalResult`` per score of the model: each mode's total, category and macro category (%)."""
    from huggingface_hub import EvalResult

    ds = hub_dataset(res)
    shots = (res.protocol.get("task_options") or {}).get("shots")
    args = {"num_few_shot": shots} if isinstance(shots, int) else None
    out = []
    for mode, stats in res.modes.items():
        groups = [("all items", stats.overall), *stats.categories.items(), *stats.macros.items()]
        for group, block in groups:
            if not block.defined:
                continue
            out.append(EvalResult(
                task_type="text-generation", task_name="Text Generation", dataset_type=ds.type, dataset_name=ds.name,
                dataset_config=ds.config, dataset_split=res.config.get("split") or ds.split, dataset_args=args,
                metric_type="accuracy", metric_value=round(100 * block.accuracy, 2),
                metric_name=f"accuracy ({MODE_LABEL.get(mode, mode)}, {group}, n={block.total})"))
    return out


def front_matter(cfg: Any, res: Results, data: list[dict[str, Any]], base_model: str, name: str, peft_type: str) -> str:
    from huggingface_hub import ModelCardData

    hub_data = sorted({d["source"] for d in data if d.get("source") and "/" in d["source"] and not Path(d["source"]).exists()})
    language = cfg.language or list(getattr(_task(res), "languages", ())) or None
    template = res.model.get("template") or res.protocol.get("template")
    tags = ["llama-factory", "peft", peft_type.lower(), *([template] if template else []), res.task,
            f"base_model:adapter:{base_model}"]
    card_data = ModelCardData(base_model=base_model, library_name="peft", license=cfg.license, language=language,
                              datasets=hub_data or None, tags=tags, pipeline_tag="text-generation", model_name=name,
                              eval_results=eval_results(res) or None)
    return card_data.to_yaml()


def _table(title: str, rows: list[tuple[str, Any]]) -> list[str]:
    return [f"| {title} | Value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]


def details_lines(peft: dict[str, Any], counts: dict[str, Any], base_model: str, recipe: dict[str, Any]) -> list[str]:
    n, total = counts.get("count"), counts.get("all_params")
    share = f" of {total:,} ({100 * n / total:.4f} %)" if n and total else ""
    rows = [("Base model", f"`{base_model}`"), ("PEFT type", peft.get("peft_type")), ("Rank r", peft.get("r")),
            ("lora_alpha", peft.get("lora_alpha")), ("lora_dropout", peft.get("lora_dropout")),
            ("Target modules", ", ".join(sorted(peft.get("target_modules") or [])) or "—"),
            ("DoRA / rsLoRA", f"{bool(peft.get('use_dora'))} / {bool(peft.get('use_rslora'))}"),
            ("Trainable parameters", f"{n:,}{share} ({counts['source']})" if n else "not logged"),
            ("Template", f"`{recipe.get('template')}`" if recipe.get("template") else "—"),
            ("Training format", FORMAT.get(recipe.get("enable_thinking"), "—") if "enable_thinking" in recipe else "—")]
    return ["## Model details", "", *_table("Setting", rows)]


def data_lines(data: list[dict[str, Any]]) -> list[str]:
    lines = ["## Training data", ""]
    if not data:
        return [*lines, "The recipe as trained names no data set (or was not recorded)."]
    lines += ["| Data set | File | Rows (train / val) | Rows with a thinking trace | Formatting | Source |", "|---|---|---:|---:|---|---|"]
    for d in data:
        rows = f"{d['rows'] if d['rows'] is not None else '—'} / {d['val_rows'] if d['val_rows'] is not None else '—'}"
        rows += "" if d["manifest"] else " (counted: no prepare manifest)"
        lines.append(f"| {d['name']} | `{d['file']}` | {rows} | {d['traces'] if d['traces'] is not None else '—'} | "
                     f"{d['formatting'] or '—'} | {('`' + str(d['source']) + '`') if d['source'] else '—'} |")
    return lines


def hyper_lines(recipe: dict[str, Any], source: str, run_facts: list[str]) -> list[str]:
    import yaml

    rows = [(k, f"`{json.dumps(recipe[k], ensure_ascii=False)}`") for k in HYPER_KEYS if k in recipe]
    lines = ["## Training procedure", "", f"Trained with LLaMA-Factory (`llamafactory-cli train`); the recipe as trained: {source}.", ""]
    lines += _table("Hyperparameter", rows) if rows else ["No hyperparameters recorded."]
    if recipe:
        lines += ["", "<details><summary>The whole recipe as trained</summary>", "", "```yaml",
                  yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True).rstrip(), "```", "", "</details>"]
    return [*lines, "", "### Hardware and time", "", *[f"- {x}" for x in run_facts]]


def mode_table(res: Results, mode: str) -> list[str]:
    """Category | n | Baseline [95 % CI] | Model [95 % CI] | Δ (pp) [95 % CI], from the typed results."""
    from llamafactory_ext.eval.report_md import category_layout, ci, delta, title

    stats = res.modes[mode]
    comp = (res.comparison.modes.get(mode) if res.comparison else None) or {}
    layout = category_layout(getattr(_task(res), "categories", {}), {"per_category": stats.categories, "per_macro_category": stats.macros})
    rows = []
    for macro, cats in layout:
        rows += [(title(c), stats.categories.get(c), c) for c in cats]
        if macro is not None:
            rows.append((f"**{title(macro)}**", stats.macros.get(macro), macro))
    rows.append(("**Total**", stats.overall, "total"))
    lines = [f"### {res.task} · {MODE_LABEL.get(mode, mode)}", "",
             "| Category | n | Baseline [95 % CI] | Model [95 % CI] | Δ (pp) [95 % CI] |", "|---|---:|---:|---:|---:|"]
    for label, block, key in rows:
        cell = comp.get(key)
        lines.append(f"| {label} | {block.total if block else '—'} | {ci(_d(cell.first) if cell else None)} | {ci(_d(block))} | "
                     f"{delta(_d(cell))} |")
    return lines


def eval_lines(res: Results, study: dict[str, Any] | None) -> list[str]:
    lines = ["## Evaluation", "", *header_lines(res), ""]
    if study:
        from llamafactory_ext.study_md import alert_lines, series_section

        alerts = alert_lines(study)
        lines += [f"The Version Series of the study `{study.get('title')}` (this card describes one of its versions):", "",
                  *([*alerts, ""] if alerts else []), *series_section(study)]
    for mode in res.modes:
        lines += [*mode_table(res, mode), ""]
    lines.append("Intervals: 95 % Wilson; Δ paired per item against the baseline on the same items (Newcombe's interval), "
                 "* when p (Holm) < 0.05 in an exact McNemar test; outputs cut at max_new_tokens are scored wrong.")
    return lines


def usage_lines(base_model: str, repo: str, res: Results) -> list[str]:
    example = getattr(_task(res), "usage_example", None) or EXAMPLE
    system = res.protocol.get("system")
    messages = ([f'    {{"role": "system", "content": {json.dumps(system, ensure_ascii=False)}}},'] if system else [])
    messages.append(f'    {{"role": "user", "content": {json.dumps(example, ensure_ascii=False)}}},')
    thinking = "think" in res.modes
    tokens = (res.protocol.get("max_new_tokens") or {}).get("think" if thinking else "nothink", 512)
    call = ("text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, "
            f"enable_thinking={thinking})")
    return ["## Usage", "", "```python", "from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
            f'tokenizer = AutoTokenizer.from_pretrained("{base_model}")',
            f'model = AutoModelForCausalLM.from_pretrained("{base_model}", torch_dtype="auto", device_map="auto")',
            f'model = PeftModel.from_pretrained(model, "{repo}")', "", "messages = [", *messages, "]",
            *(["# enable_thinking=True: the model reasons in <think>...</think> first; False: Qwen3's non-thinking format"] if thinking else []),
            call, 'inputs = tokenizer(text, return_tensors="pt").to(model.device)',
            f"output = model.generate(**inputs, max_new_tokens={tokens})",
            "print(tokenizer.decode(output[0][inputs.input_ids.shape[1]:], skip_special_tokens=True))", "```"]


def limitation_lines(res: Results, counts: dict[str, Any], base_model: str) -> list[str]:
    out = [f"The evaluation of this model, mode `{m}`, is degenerate: {'; '.join(s.degenerate)}."
           for m, s in res.modes.items() if s.degenerate]
    comp = res.comparison
    if comp:
        out += [f"The baseline, mode `{m}`, is degenerate: {'; '.join(r)}; a Δ against it measures that, not this model."
                for m, r in comp.baseline_degenerate.items() if r]
        out += [f"The baseline was scored under another protocol: {'; '.join(comp.protocol_differences)}."] if comp.protocol_differences else []
        out += [f"Baseline and Δ cover only the {comp.items_compared} items both runs share."] if comp.partial else []
    if res.items.get("limit"):
        out.append(f"Evaluated on the first {res.items.get('count')} items of {res.task} only (limit={res.items['limit']}): "
                   "the intervals are wide and the items are not a random sample.")
    seen = " ".join(out)
    out += [w for w in res.warnings if "is degenerate:" not in w and not w.startswith("protocols differ") and w not in seen]
    if counts.get("count") and counts.get("stored") and counts["count"] != counts["stored"]:
        out.append(f"LLaMA-Factory logged {counts['count']:,} trainable parameters, the adapter file holds {counts['stored']:,}.")
    if Path(base_model).exists():
        out.append(f"`base_model` is a local folder ({base_model}): give `base_model=ORG/NAME` for a card on the Hub.")
    out.append("The figures hold for the evaluation protocol above (template, prompt, system prompt, max_new_tokens, "
               "greedy or sampled decoding); another protocol gives other numbers.")
    return ["## Limitations", "", *[f"- {x}" for x in out]]


def reproduce_lines(adapter: Path) -> list[str]:
    state = {}
    if (adapter / "trial.json").is_file():
        state = json.loads((adapter / "trial.json").read_text(encoding="utf-8"))
    cmds = [c for c in (state.get("train_cmd"), state.get("eval_cmd")) if c]
    if not cmds:
        return []
    return ["## Reproduce", "", "The commands the trial ran (trial.json):", "", "```bash", *cmds, "```", ""]
