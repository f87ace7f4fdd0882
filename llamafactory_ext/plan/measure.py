"""``plan measure=true``: the recipe measured on this machine's GPU, next to the estimate.

1. The model is written from its config.json with random weights (``random_model``), in a
   temporary folder or ``model_dir`` (kept and reused); nothing is downloaded.
2. Synthetic rows exactly ``cutoff_len`` tokens long (``synthetic``) go through LLaMA-Factory's
   own data pipeline with the recipe's template.
3. A child process (``child``; under torchrun for DeepSpeed or several GPUs, as
   ``llamafactory-cli train`` launches it) runs ``steps`` real training steps with the recipe's
   own settings -- LoRA / QLoRA, gradient checkpointing, cutoff_len, batch, DeepSpeed config --
   changed only where a measurement must: model, data, output folder, ``max_steps``,
   ``gradient_accumulation_steps=1`` (gradients accumulate in place: the peak is the same, and
   every step then includes the optimizer update), no evaluation, no checkpoints, no reports.
4. The readings are compared with the estimate term by term; step time, tokens/s and MFU follow.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llamafactory_ext.config import UserError
from llamafactory_ext.io import atomic_write_json
from llamafactory_ext.plan import hardware, synthetic
from llamafactory_ext.plan.arch import load_arch, load_model_config
from llamafactory_ext.plan.memory import GIB, estimate, load_deepspeed
from llamafactory_ext.plan.params import count_params
from llamafactory_ext.plan.random_model import write_random_model

NO_CUDA = "plan {what}=true needs a CUDA GPU: none is visible (torch.cuda.is_available() is false); {estimate} needs none"
LOGGED_COUNT = re.compile(r"trainable params: ([\d,]+) \|\| all params: ([\d,]+)")
PROMPT_TOKENS = 256  # generate=true: prompt length (ITALIC / GSM8K prompts are 100-400 tokens)


class MeasureError(UserError):
    """The measurement cannot run (no GPU, a missing package) or failed (the log is named)."""


def _say(message: str) -> None:
    print(f"[plan measure] {message}", file=sys.stderr, flush=True)


def require_cuda(gpus: int, what: str = "measure", estimate: str = "the estimate above") -> None:
    import torch

    if not torch.cuda.is_available():
        raise MeasureError(NO_CUDA.format(what=what, estimate=estimate))
    visible = torch.cuda.device_count()
    if gpus > visible:
        raise MeasureError(f"gpus={gpus} but only {visible} CUDA GPU(s) are visible")


def required_packages(recipe: dict[str, Any]) -> list[tuple[str, str]]:
    """(module, why) for the GPU extras this recipe needs."""
    need = []
    if recipe.get("quantization_bit") in (4, 8):
        need.append(("bitsandbytes", f"quantization_bit: {recipe['quantization_bit']}"))
    optim = str(recipe.get("optim") or "")
    if "8bit" in optim or optim.startswith("paged_"):
        need.append(("bitsandbytes", f"optim: {optim}"))
    if recipe.get("deepspeed"):
        need.append(("deepspeed", f"deepspeed: {recipe['deepspeed']}"))
    return need


def check_packages(recipe: dict[str, Any]) -> None:
    import importlib.util

    for module, why in required_packages(recipe):
        if importlib.util.find_spec(module) is None:
            raise MeasureError(f"this recipe needs {module} ({why}), which is not installed: pip install {module}")


def train_args(recipe: dict[str, Any], model_dir: Path, data_dir: Path, out_dir: Path, steps: int,
               deepspeed_path: str | None) -> dict[str, Any]:
    """The recipe with only what a measurement must change (module docstring, step 3)."""
    args = dict(recipe)
    args.update(
        model_name_or_path=str(model_dir), adapter_name_or_path=None, dataset_dir=str(data_dir),
        dataset=synthetic.DATASET, eval_dataset=None, val_size=0.0, max_samples=None, streaming=False,
        tokenized_path=None, overwrite_cache=True, preprocessing_num_workers=None, dataloader_num_workers=0,
        output_dir=str(out_dir), overwrite_output_dir=True, resume_from_checkpoint=None, do_train=True,
        do_eval=False, do_predict=False, max_steps=steps, gradient_accumulation_steps=1, logging_steps=1,
        save_strategy="no", eval_strategy="no", load_best_model_at_end=False, early_stopping_steps=None,
        report_to="none", plot_loss=False, push_to_hub=False, include_num_input_tokens_seen="all",
    )
    if recipe.get("deepspeed") and not isinstance(recipe["deepspeed"], dict) and deepspeed_path:
        args["deepspeed"] = str(Path(deepspeed_path).resolve())  # the child runs in its own folder
    if recipe.get("ref_model"):
        args["ref_model"] = str(model_dir)  # a separate reference model: the same random weights
    return args


def child_env(gpus: int, torchrun: bool, work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DISABLE_VERSION_CHECK="1",
               TOKENIZERS_PARALLELISM="false", WANDB_DISABLED="true", GRADIO_ANALYTICS_ENABLED="False",
               HF_DATASETS_CACHE=str(work / "datasets_cache"))
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if not visible:
        import torch

        visible = [str(i) for i in range(torch.cuda.device_count())]
    env["CUDA_VISIBLE_DEVICES"] = ",".join(visible[:gpus])  # exactly `gpus` devices, as the plan assumes
    if torchrun and env.get("OPTIM_TORCH", "1") not in ("0", "false", "False"):  # what LLaMA-Factory's launcher sets
        env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
        env.setdefault("TORCH_NCCL_AVOID_RECORD_STREAMS", "1")
    return env


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "y", "yes")  # LLaMA-Factory's is_env_enabled


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(mode: str, spec: dict[str, Any], work: Path, gpus: int = 1, torchrun: bool = False) -> dict[str, Any]:
    """Run one child phase; its readings, or a MeasureError naming the log."""
    spec_path, log = work / f"{mode}_spec.json", work / f"{mode}.log"
    atomic_write_json(spec_path, spec)
    cmd = [sys.executable, "-m", "llamafactory_ext.plan.child", mode, str(spec_path)]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--node_rank", "0",
               "--nproc_per_node", str(gpus), "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *cmd[1:]]
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=child_env(gpus, torchrun, work), cwd=work,
                              check=False)  # a failed run is read from its log below
    readings_file = Path(spec["readings"])
    readings = json.loads(readings_file.read_text(encoding="utf-8")) if readings_file.is_file() else {}
    text = log.read_text(encoding="utf-8", errors="replace")
    logged = LOGGED_COUNT.search(text)
    if logged:  # the line LLaMA-Factory's load_model logs
        readings["logged"] = {"trainable_params": int(logged.group(1).replace(",", "")),
                              "all_params": int(logged.group(2).replace(",", ""))}
    if readings.get("status") in ("ok", "oom"):
        return readings
    tail = "\n".join(text.splitlines()[-15:])
    raise MeasureError(f"the {mode} run failed (exit {proc.returncode}); full log kept at {log}; last lines:\n{tail}")


def run(cfg: Any, path: str, result: dict[str, Any]) -> dict[str, Any]:
    """Measure ``cfg.recipe`` (already planned into ``result``) on this machine's GPU: training
    when ``cfg.measure``, HF generation when ``cfg.generate``, on one random-weight model."""
    what = "measure" if cfg.measure else "generate"
    require_cuda(cfg.gpus, what, "the estimate above" if cfg.format == "text" else f"the estimate (plan without {what}=true)")
    if cfg.measure:
        check_packages(cfg.recipe)
    work = Path(tempfile.mkdtemp(prefix="llamafactory-ext-measure-"))
    ok = False
    try:
        model_dir = Path(cfg.model_dir).expanduser().resolve() if cfg.model_dir else work / "model"
        _say(f"writing {result['model']} with random weights to {model_dir} (config.json only, nothing downloaded)")
        t0 = time.perf_counter()
        model_cfg, _ = load_model_config(result["config_source"])  # the config the estimate used (a merge chain resolved)
        stamp = write_random_model(model_cfg, model_dir, cfg.tokenizer)
        out: dict[str, Any] = {"model_dir": str(model_dir) if cfg.model_dir else None, "model_reused": stamp["reused"],
                               "model_build_seconds": time.perf_counter() - t0, "tokenizer": stamp.get("tokenizer_source")}
        if cfg.measure:
            out.update(measure_training(cfg, path, result, model_dir, work))
        if cfg.generate:
            _say(f"generating with the HF backend at batch {cfg.batch_size}")
            gen_spec = {"model_dir": str(model_dir), "batch_size": cfg.batch_size, "prompt_tokens": PROMPT_TOKENS,
                        "new_tokens": cfg.gen_tokens, "readings": str(work / "generate_readings.json")}
            out["generate"] = generation(cfg.recipe, launch("generate", gen_spec, work))
        ok = True
        return out
    finally:
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:  # keep the logs, drop the (large) random weights
            shutil.rmtree(work / "model", ignore_errors=True)


def measure_training(cfg: Any, path: str, result: dict[str, Any], model_dir: Path, work: Path) -> dict[str, Any]:
    """Synthetic rows, ``cfg.steps`` steps through LLaMA-Factory in a child, readings vs the estimate."""
    recipe = cfg.recipe
    sequences = result["sequences_per_device"] // (2 if result["stage"] == "dpo" else 1)
    data_dir = synthetic.write_dataset(work / "data", recipe, cfg.steps * sequences * cfg.gpus + 1)
    ds = load_deepspeed(recipe.get("deepspeed"), path)
    torchrun = bool(recipe.get("deepspeed")) or cfg.gpus > 1 or _env_flag("FORCE_TORCHRUN")
    spec = {"args": train_args(recipe, model_dir, data_dir, work / "output", cfg.steps, ds.path if ds else None),
            "readings": str(work / "train_readings.json")}
    _say(f"training {cfg.steps} steps through LLaMA-Factory{' (torchrun)' if torchrun else ''}: log {work / 'train.log'}")
    return compare(cfg, recipe, result, launch("train", spec, work, cfg.gpus, torchrun))


# ---------------------------------------------------------------------------------------------
# readings -> comparison
# ---------------------------------------------------------------------------------------------
def _row(term: str, estimated: float | None, measured: float | None) -> dict[str, Any]:
    error = None
    if estimated is not None and measured:
        error = round(100.0 * (estimated - measured) / measured, 1)
    return {"term": term, "estimated_bytes": None if estimated is None else round(estimated),
            "measured_bytes": None if measured is None else int(measured), "error_percent": error}


def memory_rows(result: dict[str, Any], readings: dict[str, Any]) -> list[dict[str, Any]]:
    """Estimated vs measured, for every sum of terms a reading isolates (docs/plan.md)."""
    est = result["memory_bytes"]
    states = est["weights"] + est["trainable params"]
    between = states + est["optimizer states"] + sum(
        est.get(k, 0) for k in ("DDP buckets", "DeepSpeed buckets", "reference model"))
    within = est["gradients"] + est["activations"] + est["logits + loss"]
    steps = [s for s in readings.get("steps") or [] if "peak_allocated" in s]  # none without CUDA
    after_load = (readings.get("after_load") or {}).get("allocated")
    last = steps[-1]["end"] if steps else {}
    persistent = last.get("allocated")
    peak_alloc = max((s["peak_allocated"] for s in steps), default=None)
    peak_res = max((s["peak_reserved"] for s in steps), default=None)
    outside = last["device_used"] - last["reserved"] if last else None
    rows = []
    if result["deepspeed"] is None:  # DeepSpeed moves the model to the GPU only when training starts
        rows.append(_row("weights + trainable params (after load)", states, after_load))
    rows += [
        _row("+ optimizer states, buffers (between steps)", between, persistent),
        _row("gradients + activations + logits (within a step)", within,
             None if peak_alloc is None or persistent is None else peak_alloc - persistent),
        _row("peak allocated", result["allocated_bytes"], peak_alloc),
        _row("peak reserved (+ fragmentation)", result["allocated_bytes"] + est["allocator fragmentation"], peak_res),
        _row("outside PyTorch (CUDA context, cuBLAS, NCCL)", est["CUDA context"], outside),
        _row("peak GPU memory (reserved + outside)", result["peak_bytes"],
             None if peak_res is None or outside is None else peak_res + outside),
    ]
    return rows


def speed(cfg: Any, recipe: dict[str, Any], result: dict[str, Any], readings: dict[str, Any]) -> dict[str, Any]:
    """Median step time of the steps after the first (warm-up), tokens/s and MFU / HFU."""
    steps = (readings.get("steps") or [])[1:]
    if not steps:
        return {}
    seconds = statistics.median(s["seconds"] for s in steps)
    tokens = int(statistics.median(s["tokens"] for s in steps)) or result["tokens_per_device"]
    arch = load_arch(str(recipe["model_name_or_path"]))
    params = count_params(arch, recipe)
    setup = estimate(arch, recipe, params, cfg.gpus, load_deepspeed(recipe.get("deepspeed"), result["recipe"]))["setup"]
    flops = hardware.train_step_flops(arch, params, setup.rank, tokens, synthetic.sequence_length(recipe), setup.stage,
                                      setup.reference, setup.gc)
    spec = hardware.gpu_spec(readings.get("device", ""))
    return {
        "step_seconds": seconds, "steps_timed": len(steps), "tokens_per_step": tokens,
        "tokens_per_s_per_gpu": tokens / seconds, "flops": flops,
        "gpu": None if spec is None else {"name": spec.name, "bf16_tflops": spec.bf16_tflops,
                                          "bandwidth_tbs": spec.bandwidth_tbs},
        "mfu": hardware.utilisation(flops["model"], seconds, spec),
        "hfu": hardware.utilisation(flops["hardware"], seconds, spec),
    }


def compare(cfg: Any, recipe: dict[str, Any], result: dict[str, Any], readings: dict[str, Any]) -> dict[str, Any]:
    steps = readings.get("steps") or []
    return {
        "status": readings["status"],
        "error": readings.get("error"),
        "device": readings.get("device"),
        "device_total_bytes": readings.get("device_total_bytes"),
        "gpus": cfg.gpus,
        "steps": len(steps),
        "sequence_length": synthetic.sequence_length(recipe),
        "versions": readings.get("versions"),
        "llamafactory_logged": readings.get("logged"),
        "count_matches_plan": None if not readings.get("logged") else
        (readings["logged"]["trainable_params"], readings["logged"]["all_params"]) == (result["trainable_params"], result["total_params"]),
        "rows": memory_rows(result, readings),
        "speed": speed(cfg, recipe, result, readings) if readings["status"] == "ok" else {},
        "readings": readings,
    }


def generation(recipe: dict[str, Any], readings: dict[str, Any]) -> dict[str, Any]:
    """Measured decode tokens/s next to the bandwidth bound (bf16 weights, as the evaluator loads them)."""
    arch = load_arch(str(recipe["model_name_or_path"]))
    spec = hardware.gpu_spec(readings.get("device", ""))
    bound = hardware.decode_bound(arch, int(readings.get("batch_size") or 1), spec)
    got = readings.get("decode_tokens_per_s")
    share = got / bound["tokens_per_s"] if got and bound.get("tokens_per_s") else None
    return {"status": readings["status"], "error": readings.get("error"), "device": readings.get("device"),
            "readings": readings, "bound": bound, "share_of_bound": share}


# ---------------------------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------------------------
def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value / GIB:.2f} GiB"


def render_text(m: dict[str, Any]) -> str:
    lines = ["", (f"random-weight model {'re-used' if m.get('model_reused') else 'written'} in "
                 f"{m.get('model_build_seconds', 0):.0f} s (tokenizer: {m.get('tokenizer')})")]
    if "rows" in m:
        lines += _training_lines(m)
    if m.get("generate"):
        lines += _generate_lines(m["generate"])
    return "\n".join(lines)


def _training_lines(m: dict[str, Any]) -> list[str]:
    versions = m.get("versions") or {}
    lines = [(f"measured on {m.get('device')} ({m['gpus']} GPU(s); LLaMA-Factory {versions.get('llamafactory', '?')}, "
             f"torch {versions.get('torch', '?')}): {m['steps']} steps, sequences {m['sequence_length']} tokens long")]
    if m["status"] == "oom":
        r = m.get("readings") or {}
        peak = r.get("oom_peak_reserved")
        seen = f"; {_gib(peak)} reserved of {_gib(r.get('device_total_bytes'))} when it failed" if peak else ""
        lines.append(f"OUT OF MEMORY after {m['steps']} step(s): the recipe does not fit this GPU{seen} ({m.get('error')})")
    logged = m.get("llamafactory_logged") or {}
    if logged:
        lines.append(f"LLaMA-Factory logged trainable params: {logged['trainable_params']:,} || all params: {logged['all_params']:,} "
                     f"({'the planned count' if m.get('count_matches_plan') else 'NOT the planned count'})")
    lines.append(f"  {'term':<50} {'estimated':>11} {'measured':>11} {'error':>8}")
    for row in m["rows"]:
        err = "-" if row["error_percent"] is None else f"{row['error_percent']:+.1f} %"
        lines.append(f"  {row['term']:<50} {_gib(row['estimated_bytes']):>11} {_gib(row['measured_bytes']):>11} {err:>8}")
    return lines + _speed_lines(m.get("speed") or {}, m.get("device"))


def _speed_lines(s: dict[str, Any], device: str | None) -> list[str]:
    if not s:
        return []
    line = (f"speed: {s['step_seconds']:.3f} s/step (median of {s['steps_timed']} steps after the warm-up), "
            f"{s['tokens_per_s_per_gpu']:,.0f} tokens/s per GPU; {s['flops']['model']:.3g} model FLOPs per step")
    if s["gpu"] is None:
        return [line, f"MFU: unknown GPU {device!r}: no bf16 peak on file (add it to GPU_SPECS in llamafactory_ext/plan/hardware.py)"]
    return [line, (f"MFU {100 * s['mfu']:.1f} % of the {s['gpu']['name']}'s {s['gpu']['bf16_tflops']:.0f} TFLOPS dense bf16, "
                  f"without the gradient-checkpointing recompute ({100 * s['hfu']:.1f} % counting it)")]


def _generate_lines(g: dict[str, Any]) -> list[str]:
    r = g["readings"]
    if g["status"] != "ok":
        return [f"generation: {g['status']} ({g.get('error')})"]
    line = (f"generation (HF backend as `eval` loads it, {r.get('dtype')}, batch {r['batch_size']}, {r['prompt_tokens']}-token "
            f"prompts, {r['new_tokens']} new tokens): {r['decode_tokens_per_s']:,.0f} tokens/s decode "
            f"({r['decode_tokens_per_s'] / r['batch_size']:,.1f} per sequence)")
    b = g["bound"]
    if b.get("tokens_per_s") is None:
        return [line, f"bandwidth bound: unknown GPU {g.get('device')!r} (no bandwidth on file)"]
    return [line, (f"memory-bandwidth bound: {r['batch_size']} x {b['bandwidth_tbs']} TB/s / "
                  f"{b['weight_bytes_per_step'] / 1e9:.1f} GB of weights per step = {b['tokens_per_s']:,.0f} tokens/s: "
                  f"HF reaches {100 * g['share_of_bound']:.0f} % of it (vLLM's continuous batching and CUDA graphs get much closer)")]
