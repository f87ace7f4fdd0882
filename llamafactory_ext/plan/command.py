"""Trainable parameters and peak GPU memory of a LLaMA-Factory recipe, from ``config.json`` only;
with ``measure=true``, the same recipe measured on your own GPU with random weights.

    llamafactory-ext plan recipes/v3_mixed.yaml
    llamafactory-ext plan recipes/v3_mixed.yaml gpu_mem=24GB          # does not fit: prints the changes that do
    llamafactory-ext plan recipes/v3_mixed.yaml gpus=2 deepspeed=ds_configs/zero2.json gpu_mem=24GB
    llamafactory-ext plan anita_dpo_qlora gpu_mem=16GB                # a shipped recipe by name
    llamafactory-ext plan recipes/gsm8k_synth_qlora.yaml gpu_mem=12GB --json
    llamafactory-ext plan recipes/v3_mixed.yaml measure=true [steps=4] [generate=true]

Reads the recipe like ``llamafactory-cli train`` does (YAML + ``key=value`` overrides, so any
recipe key can be changed on the command line; an unknown key is an error with a "did you mean")
and the base model's ``config.json`` -- never the weights. ``model_name_or_path`` may be a local
directory, a Hub id found in the local Hugging Face cache, or one of the Hub ids whose config facts
ship with the project (Qwen3-8B, Qwen3-4B-Instruct-2507, Meta-Llama-3-8B and its fine-tunes), so it
works offline; a model another recipe writes (``saves/anita_sft_merged``, the ``export_dir`` of a merge
recipe) is planned with the config of the model that recipe merges into. An export (merge) recipe is
refused: it trains nothing. Model types: llama, mistral, qwen2, qwen3 (parameters and memory) and the
hybrid qwen3_5, qwen3_5_moe, qwen3_next (exact parameters; memory refused in one line, ``plan/hybrid.py``).

Printed: trainable / total parameters (counted the way PEFT and LLaMA-Factory count them) and
the peak memory of ONE GPU split into weights (at the recipe's precision, 4/8-bit incl.
quantization constants), trainable (LoRA) parameters, gradients, optimizer states (AdamW fp32,
8-bit optimizers, ZeRO-2/3 partitions over ``gpus``, CPU offload), DDP / DeepSpeed buffers, a DPO
reference model when there is one, activations for ``per_device_train_batch_size x cutoff_len``
tokens (x 2 for DPO pairs) with and without gradient checkpointing, the logits / loss buffers,
allocator fragmentation and the CUDA context; then whether it fits ``gpu_mem``, and when it does not,
the smallest changes that fit, each as ``key=value`` to paste with the peak it gives (``plan/fit.py``:
micro-batch, cutoff_len, gradient checkpointing, 4-bit QLoRA, ZeRO-2 offload, LoRA rank; single changes
first, the cheapest combination when no single one fits).

``measure=true`` (needs a CUDA GPU, downloads nothing): builds the model from its config.json
with random weights, runs ``steps`` real LLaMA-Factory training steps of the recipe on synthetic
rows exactly ``cutoff_len`` tokens long, and prints the measured memory next to each estimated
term with the error in %, the step time, tokens/s and the model FLOPs utilisation.
``generate=true`` adds the HF backend's decode tokens/s at ``batch_size`` next to the GPU's
memory-bandwidth bound. The formulas, their calibration and the GPU check are in docs/plan.md.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

from llamafactory_ext.config import ConfigError, describe, from_argv, is_config_path, option
from llamafactory_ext.plan import fit
from llamafactory_ext.plan.arch import Arch, PlanError
from llamafactory_ext.plan.memory import GIB, estimate, load_deepspeed, parse_mem
from llamafactory_ext.plan.params import count_params
from llamafactory_ext.plan.recipe import check_values, recipe_keys
from llamafactory_ext.plan.resolve import recipe_path, refuse_export, resolve_arch

USAGE = ("RECIPE.yaml [key=value ...] [gpus=N] [gpu_mem=24GB] [--json | format=json] "
         "[measure=true [steps=4] [generate=true [batch_size=8]]]")


@dataclasses.dataclass
class PlanConfig:
    """The planner's own keys; every other key is a recipe key (``recipe``)."""

    gpus: int = option(1, "GPUs the run is spread over (data parallel / ZeRO partitions)", ge=1)
    gpu_mem: str | None = option(None, "memory of one GPU, e.g. 24GB, 80GiB, 12288MiB (GB and GiB both mean 2**30 bytes: "
                                       "a '24 GB' card has 24 GiB); default: no fit check")
    format: Literal["text", "json"] = option("text", "text | json (--json is the same as format=json)")
    cuda_context_gb: float = option(0.75, "CUDA context + cuBLAS/NCCL workspaces outside PyTorch's allocator (GiB)", ge=0)
    fragmentation: float = option(0.05, "share of allocated memory lost to the caching allocator's fragmentation", ge=0, lt=1)
    dropout_mask_bytes: int = option(1, "bytes per element of a dropout mask: 1 on CUDA (bool), 2 on CPU", ge=1, le=4)
    measure: bool = option(False, "also measure the recipe on this machine's CUDA GPU: random weights, synthetic "
                                  "rows of cutoff_len tokens, a few real LLaMA-Factory steps (nothing downloaded)")
    steps: int = option(4, "measure: training steps (the first is warm-up: timings use the others)", ge=2, le=1000)
    generate: bool = option(False, "HF generation decode tokens/s on the same random-weight model, next to the "
                                   "memory-bandwidth bound (with or without measure=true; needs a CUDA GPU)")
    batch_size: int = option(8, "generate: prompts per generate call (the evaluator's HF default)", ge=1)
    gen_tokens: int = option(128, "generate: new tokens per prompt (256-token prompts)", ge=2, le=8192)
    model_dir: str | None = option(None, "measure: folder for the random-weight model (kept and reused when given; "
                                         "default: a temporary folder, removed afterwards)")
    tokenizer: str | None = option(None, "measure: a local tokenizer folder whose ids fit the model's vocabulary "
                                         "(default: Qwen3's real ids for Qwen models, else a byte-level stand-in)")
    recipe: dict[str, Any] = option({}, "the recipe's keys (every key that is not one of the above)")


def parse_args(argv: list[str]) -> tuple[PlanConfig, str]:
    """``RECIPE.yaml key=value ...`` (or a recipe NAME) -> (checked PlanConfig, recipe path); ``--json`` = ``format=json``."""
    args = [a for a in argv if a != "--json"]
    if args and not is_config_path(args[0]):
        args[0] = recipe_path(args[0]) or args[0]
    if not args or not is_config_path(args[0]):
        raise ConfigError(f"plan needs a recipe first (a file, or a shipped recipe's name): llamafactory-ext plan {USAGE}")
    cfg = from_argv(PlanConfig, args, rest="recipe", rest_keys=recipe_keys)
    if "--json" in argv:
        cfg.format = "json"
    return cfg, args[0]


def length_warning(arch: Arch, recipe: dict[str, Any], cutoff: int) -> tuple[str | None, str | None]:
    """(warning, note) about ``cutoff_len`` against the model's longest trained sequence."""
    if arch.max_positions is None or cutoff <= arch.max_positions:
        return None, None
    scaling = recipe.get("rope_scaling")
    if scaling:
        return None, (f"cutoff_len {cutoff:,} > {arch.max_positions:,} ({arch.max_positions_from}): with rope_scaling="
                      f"{scaling} LLaMA-Factory scales RoPE by ceil(cutoff_len / the trained length) (configure_rope)")
    return (f"cutoff_len {cutoff:,} is past the model's maximum length {arch.max_positions:,} "
            f"({arch.max_positions_from}): positions beyond it were never trained; lower cutoff_len, "
            f"or set rope_scaling=yarn (LLaMA-Factory then scales RoPE by ceil(cutoff_len / {arch.max_positions:,}))"), None


def build_plan(argv: list[str]) -> dict[str, Any]:
    cfg, path = parse_args(argv)
    result = plan_recipe(cfg, path)
    result["_format"] = cfg.format
    return result


def plan_recipe(cfg: PlanConfig, path: str) -> dict[str, Any]:
    """The estimate for ``cfg.recipe`` (read from ``path`` + overrides) as a JSON-ready dict."""
    recipe = cfg.recipe
    refuse_export(recipe, path)
    model = recipe.get("model_name_or_path")
    if not model:
        raise PlanError(f"{path}: missing key 'model_name_or_path'")
    check_values(recipe, path)
    arch, resolved = resolve_arch(str(model), path)
    params = count_params(arch, recipe)
    result: dict[str, Any] = {
        "recipe": path,
        "model": str(model),
        "config_source": arch.source,
        "architecture": {k: v for k, v in dataclasses.asdict(arch).items() if k not in ("source", "hybrid")},
        "layer_types": list(arch.hybrid.layer_types) if arch.hybrid else None,
        "method": params.method,
        "detail": params.detail,
        "trainable_params": params.trainable,
        "total_params": params.total,
        "trainable_percent": 100.0 * params.trainable / params.total,
        "gpus": cfg.gpus,
        "gpu_mem_bytes": parse_mem(cfg.gpu_mem),
        "notes": [resolved] if resolved else [],
        "warnings": [],
    }
    if arch.hybrid is not None:  # the parameters are exact; the activations of these layers are not modelled
        result.update(memory_refused=hybrid_refusal(arch), fits=None, peak_bytes=None, peak_gib=None, fit_changes=None)
        return result
    memory = memory_plan(cfg, path, arch, params)
    memory["notes"] = result["notes"] + memory["notes"]
    result.update(memory)
    return result


def hybrid_refusal(arch: Arch) -> str:
    hy = arch.hybrid
    parts = [name for present, name in ((hy and "linear_attention" in hy.layer_types, "Gated DeltaNet linear attention"),
                                        (hy and "full_attention" in hy.layer_types, "gated softmax attention"),
                                        (hy and any(hy.sparse), "routed experts")) if present]
    return (f"memory not estimated for model_type {arch.model_type}: the activations its layers save ({', '.join(parts)}) "
            "are not modelled by the planner's formulas (they also depend on whether flash-linear-attention kernels are "
            "installed), so gpu_mem is not checked; the parameter counts above are exact")


def memory_plan(cfg: PlanConfig, path: str, arch: Arch, params: Any) -> dict[str, Any]:
    """The memory terms, the fit against ``gpu_mem`` and, when it does not fit, the changes that do."""
    recipe = cfg.recipe
    ds = load_deepspeed(recipe.get("deepspeed"), path)
    mem = estimate(arch, recipe, params, cfg.gpus, ds, cfg.cuda_context_gb, cfg.fragmentation, cfg.dropout_mask_bytes)
    gpu_mem = parse_mem(cfg.gpu_mem)
    warning, note = length_warning(arch, recipe, mem["setup"].cutoff)
    fits = None if gpu_mem is None else bool(mem["total"] <= gpu_mem)
    changes = None
    if fits is False:
        peak = fit.peak_of(arch, recipe, path, cfg.gpus, cfg.cuda_context_gb, cfg.fragmentation, cfg.dropout_mask_bytes)
        changes = fit.suggest(fit.moves(recipe, params.method, path), peak, gpu_mem)
    return {
        "stage": mem["stage"],
        "deepspeed": dataclasses.asdict(ds) if ds else None,
        "sequences_per_device": mem["sequences"],
        "tokens_per_device": mem["tokens"],
        "gradient_checkpointing": mem["gradient_checkpointing"],
        "compute_dtype": mem["compute_dtype"],
        "optim": mem["optim"],
        "memory_bytes": {name: round(v) for name, v, _ in mem["rows"]},
        "memory_notes": {name: d for name, _, d in mem["rows"]},
        "activations_bytes": {"gradient_checkpointing": int(mem["activations_gc"]), "no_gradient_checkpointing": int(mem["activations_no_gc"])},
        "allocated_bytes": round(mem["allocated"]),
        "peak_bytes": round(mem["total"]),
        "peak_gib": round(mem["total"] / GIB, 2),
        "peak_gib_other_checkpointing_setting": round(mem["total_other_gc_setting"] / GIB, 2),
        "fits": fits,
        "fit_changes": changes,
        "notes": [*mem["notes"], *([note] if note else [])],
        "warnings": [warning] if warning else [],
    }


def _header(r: dict[str, Any]) -> list[str]:
    a = r["architecture"]
    kinds = ""
    if r.get("layer_types"):
        counts = {k: r["layer_types"].count(k) for k in dict.fromkeys(r["layer_types"])}
        kinds = ", " + " + ".join(f"{n} {k}" for k, n in counts.items())
    return [
        f"plan for {r['recipe']}",
        (f"model: {r['model']} ({a['model_type']}, {a['layers']} layers{kinds}, hidden {a['hidden']}, "
         f"intermediate {a['intermediate']}, heads {a['heads']}/{a['kv_heads']} kv, vocab {a['vocab']:,}, "
         f"{'tied' if a['tied'] else 'untied'} embeddings; config: {r['config_source']})"),
        f"method: {r['method']}: {r['detail']}" + (f" (stage {r['stage']})" if r.get("stage", "sft") != "sft" else ""),
        (f"trainable params: {r['trainable_params']:,} || all params: {r['total_params']:,} || "
         f"trainable%: {r['trainable_percent']:.4f}"),
        "",
    ]


def render_text(r: dict[str, Any]) -> str:
    lines = _header(r)
    if r.get("memory_refused"):
        lines.append(r["memory_refused"])
    else:
        lines.append(f"peak GPU memory per device ({r['gpus']} GPU(s)"
                     + (f", DeepSpeed ZeRO-{r['deepspeed']['stage']}" if r["deepspeed"] else "")
                     + f", {r['compute_dtype']}, optim {r['optim']}):")
        for name, value in r["memory_bytes"].items():
            lines.append(f"  {name:<24} {value / GIB:8.2f} GiB  {r['memory_notes'][name]}")
        other = "OFF" if r["gradient_checkpointing"] else "ON"
        lines.append(f"  {'total (peak)':<24} {r['peak_gib']:8.2f} GiB  (with gradient checkpointing {other}: "
                     f"{r['peak_gib_other_checkpointing_setting']:.2f} GiB)")
        if r["gpu_mem_bytes"] is not None:
            cap = r["gpu_mem_bytes"] / GIB
            verdict = "FITS" if r["fits"] else "DOES NOT FIT"
            lines.append(f"fits in {cap:.1f} GiB: {verdict} ({r['peak_gib']:.2f} GiB needed, "
                         f"{cap - r['peak_gib']:+.2f} GiB headroom)")
            if r["fit_changes"] is not None:
                lines += fit.render(r["fit_changes"], cap)
    lines += [f"warning: {w}" for w in r.get("warnings", [])]
    lines += [f"note: {note}" for note in r["notes"]]
    lines.append("an estimate from config.json (formulas and what they were checked against: docs/plan.md)")
    return "\n".join(lines)


def options_help() -> str:
    return "\n".join([
        describe(PlanConfig),
        "  --json                   same as format=json",
        "  any recipe key           e.g. lora_rank=16 per_device_train_batch_size=2 cutoff_len=1024 deepspeed=ds_configs/zero2.json",
    ])


def main(argv: list[str]) -> int:
    cfg, path = parse_args(argv)
    result = plan_recipe(cfg, path)
    if (cfg.measure or cfg.generate) and result.get("memory_refused"):
        raise PlanError(f"measure=true / generate=true: the random-weight builder writes text-only llama-like models; "
                        f"{result['architecture']['model_type']} is not one of them (the counts above need no GPU)")
    if cfg.measure or cfg.generate:
        from llamafactory_ext.plan import measure

        if cfg.format == "text":  # the estimate first: it needs no GPU, and the measurement takes a minute
            print(render_text(result), flush=True)
        result["measure"] = measure.run(cfg, path, result)
        if cfg.format == "text":
            print(measure.render_text(result["measure"]))
    elif cfg.format == "text":
        print(render_text(result))
    if cfg.format == "json":
        print(json.dumps(result, indent=2))
    return 0
