"""Peak GPU memory of one training step on ONE GPU, one function per term (docs/plan.md has the
formulas, where each coefficient comes from and what was measured against what).

:func:`read_setup` reads and checks, once, everything in the recipe that the terms depend on
(precision, optimizer, batch, DeepSpeed, stage); each ``*_term`` function returns one row
``(name, bytes, description)``; :func:`estimate` adds them up in a fixed order.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from llamafactory_ext.plan.arch import Arch, PlanError
from llamafactory_ext.plan.params import Params
from llamafactory_ext.plan.recipe import positive_int

GIB = 1024**3
Term = tuple[str, float, str]  # (row name, bytes, description)

DTYPE_BYTES = {"bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "float32": 4, "fp32": 4}

# bytes of optimizer state per trainable parameter (m + v for Adam-like)
OPTIM_BYTES: dict[str, tuple[float, str]] = {}
for _n in ("adamw_torch", "adamw_torch_fused", "adamw_hf", "adamw_apex_fused", "adamw_anyprecision",
           "adamw_torch_xla", "adamw_torch_npu_fused", "paged_adamw_32bit", "adamw_32bit", "adam"):
    OPTIM_BYTES[_n] = (8.0, "AdamW fp32 m+v")
for _n in ("adamw_bnb_8bit", "adamw_8bit", "paged_adamw_8bit", "adam_8bit"):
    # bitsandbytes blockwise 8-bit: 1 byte each for m and v + one fp32 absmax per 256-value block
    OPTIM_BYTES[_n] = (2.0 + 2 * 4 / 256, "8-bit AdamW (bitsandbytes, blockwise)")
OPTIM_BYTES.update({
    "ademamix": (12.0, "AdEMAMix fp32 (3 states)"),
    "ademamix_8bit": (3.0 + 3 * 4 / 256, "8-bit AdEMAMix"),
    "paged_ademamix_8bit": (3.0 + 3 * 4 / 256, "8-bit AdEMAMix"),
    "lion_32bit": (4.0, "Lion fp32 (1 state)"),
    "paged_lion_32bit": (4.0, "Lion fp32 (1 state)"),
    "lion_8bit": (1.0 + 4 / 256, "8-bit Lion"),
    "paged_lion_8bit": (1.0 + 4 / 256, "8-bit Lion"),
    "sgd": (0.0, "SGD without momentum"),
    "adagrad": (4.0, "Adagrad fp32 (1 state)"),
    "rmsprop": (4.0, "RMSprop fp32 (1 state)"),
    "adafactor": (0.0, "Adafactor (factored second moment: ~0)"),
})
DEFAULT_OPTIM = "adamw_torch"

# bitsandbytes 4-bit (nf4/fp4): 0.5 byte/param + absmax per 64-value block: fp32 (4 B), or with
# double quantization 8-bit (1 B) + an fp32 absmax per 256 blocks
Q4_BYTES_DQ = 0.5 + 1 / 64 + 4 / (64 * 256)
Q4_BYTES = 0.5 + 4 / 64
Q8_BYTES = 1.0  # LLM.int8: int8 weight (+ an fp32 scale per output row, added per layer below)

# Bytes per token and vocabulary entry at the loss. SFT / pt: bf16 logits, the fp32 copy the loss
# makes, the fp32 log-softmax it saves and its gradient (12). DPO with a reference model (read
# from LLaMA-Factory's CustomDPOTrainer, not yet measured): the policy's fp32 logits (kept for the
# reward metrics) and its saved log-softmax (8) are alive while the reference forward, under
# no_grad, makes its own fp32 logits and log-softmax (8; its bf16 logits are freed by then).
LOGIT_BYTES = 12
LOGIT_BYTES_DPO_REF = 16
STAGES = ("sft", "pt", "dpo")


def parse_mem(value: Any) -> int | None:
    """'24GB' / '24GiB' / '24' (GiB) / '12288MiB' -> bytes. GB is read as GiB (card sizes)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(float(value) * GIB)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(gib|gb|g|mib|mb|m|tib|tb|t)?\s*", str(value).lower())
    if not m:
        raise PlanError(f"gpu_mem: cannot read {value!r}; write e.g. 24GB, 80GiB or 12288MiB")
    num = float(m.group(1))
    unit = (m.group(2) or "gb")[0]
    return int(num * {"g": GIB, "m": 1024**2, "t": 1024**4}[unit])


@dataclasses.dataclass
class DeepSpeed:
    stage: int
    offload_optimizer: bool
    offload_param: bool
    reduce_bucket: int
    overlap_comm: bool
    path: str


def load_deepspeed(value: Any, recipe_path: str | None) -> DeepSpeed | None:
    if value in (None, "", False):
        return None
    if isinstance(value, dict):
        cfg, where = value, "deepspeed (inline)"
    else:
        candidates = [Path(str(value))]
        if recipe_path:  # recipes name ds_configs/ relative to the repo root, i.e. the recipe's parent dir
            rp = Path(recipe_path).resolve().parent
            candidates += [rp / str(value), rp.parent / str(value)]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise PlanError(f"deepspeed: config file {value!r} not found (looked in {', '.join(map(str, candidates))})")
        try:
            cfg = json.loads(found.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise PlanError(f"{found}: not valid JSON: {exc}") from exc
        where = str(found)
    zero = cfg.get("zero_optimization") or {}
    stage = int(zero.get("stage", 0))
    if stage not in (0, 1, 2, 3):
        raise PlanError(f"{where}: zero_optimization.stage must be 0-3, got {stage}")

    def _offloaded(key: str) -> bool:
        off = zero.get(key) or {}
        return isinstance(off, dict) and off.get("device") in ("cpu", "nvme")

    bucket = zero.get("reduce_bucket_size", 5e8)
    bucket = int(float(bucket)) if not isinstance(bucket, str) or bucket != "auto" else int(5e8)
    return DeepSpeed(stage, _offloaded("offload_optimizer"), _offloaded("offload_param"), bucket,
                     bool(zero.get("overlap_comm", False)), where)


# Activation bytes saved for backward, per token, per decoder layer (bf16 activations).
# Calibrated against autograd's saved tensors on HF Qwen3 layers (torch 2.9, transformers 5.6,
# SDPA/flash attention: no s x s score matrix); tests/test_plan.py re-measures them.
def layer_activation_bytes(arch: Arch, method: str, rank: int = 0, targets: tuple[str, ...] = (),
                           dropout: float = 0.0, mask_bytes: int = 1, fp32_master: bool = False) -> float:
    h, i, q, kv = arch.hidden, arch.intermediate, arch.q_dim, arch.kv_dim
    heads = 8 * arch.heads + 4 * arch.kv_heads + 8  # softmax log-sum-exp (fp32) and RMSNorm rstd rows
    if method in ("full", "freeze"):
        # fp32 master weights under bf16 autocast make every RMSNorm output fp32: 26h instead of 16h
        return (26 if fp32_master else 16) * h + 8 * i + 10 * q + 10 * kv + heads
    # frozen 16-bit / 4-bit base + LoRA: the base Linear saves nothing for its frozen weight; each
    # LoRA branch keeps its (dropped-out) input and its r-dim hidden
    base = 18 * h + 8 * i + 10 * q + 8 * kv + heads
    lin = arch.linears()
    lora = sum(2 * rank for t in targets if t in lin)
    if dropout > 0:  # every LoRA module draws its own dropout: output (2 B) + mask per input element
        lora += sum((2 + mask_bytes) * lin[t][0] for t in targets if t in lin)
    return base + lora


@dataclasses.dataclass
class Setup:
    """What the memory terms depend on, read from the recipe once."""

    stage: str
    compute: str  # dtype of activations and frozen weights
    wbytes: int  # bytes per frozen 16/32-bit weight (DeepSpeed casts the module to 16 bit)
    quant: int | None
    double_quant: bool
    quant_type: str
    pure_bf16: bool
    master: int  # bytes per trainable parameter (fp32 upcast unless pure_bf16)
    optim: str
    obytes: float
    odesc: str
    gpus: int
    ds: DeepSpeed | None
    gc: bool
    batch: int
    cutoff: int
    seqs: int  # sequences per device and step (DPO: chosen + rejected of every pair)
    rank: int
    dropout: float  # effective LoRA dropout (LLaMA-Factory's DPO trainer disables dropout)
    fp32_master: bool
    reference: str | None  # DPO reference: "adapter" (base, adapter disabled) | "copy" | "model" | None
    logit_bytes: int
    notes: list[str]

    @property
    def tokens(self) -> int:
        return self.seqs * self.cutoff


def _compute_dtype(arch: Arch, recipe: dict[str, Any], notes: list[str]) -> str:
    if bool(recipe.get("bf16", False)) or bool(recipe.get("pure_bf16", False)):
        return "bfloat16"
    if bool(recipe.get("fp16", False)):
        return "float16"
    compute = arch.dtype if arch.dtype in DTYPE_BYTES else "float32"
    notes.append(f"no bf16/fp16 in the recipe: weights counted at the config's dtype ({compute}), as LLaMA-Factory infers it")
    return compute


def _optimizer(recipe: dict[str, Any], pure_bf16: bool, notes: list[str]) -> tuple[str, float, str]:
    optim = str(recipe.get("optim") or DEFAULT_OPTIM)
    if optim not in OPTIM_BYTES:
        notes.append(f"optim {optim!r} is not modelled: counted as AdamW (8 B/param)")
    obytes, odesc = OPTIM_BYTES.get(optim, (8.0, f"{optim} (as AdamW)"))
    if pure_bf16 and optim in OPTIM_BYTES and obytes == 8.0:
        obytes, odesc = 4.0, "AdamW m+v in bf16 (pure_bf16)"
    return optim, obytes, odesc


def _stage(recipe: dict[str, Any], params: Params, notes: list[str]) -> tuple[str, str | None]:
    """The stage and, for DPO, where the reference log-probabilities come from (LLaMA-Factory's
    ``use_ref_model``: every preference loss but orpo and simpo)."""
    stage = str(recipe.get("stage", "sft"))
    if stage not in STAGES:
        notes.append(f"stage {stage!r} is not modelled: memory counted as for sft")
        return stage, None
    if stage != "dpo" or str(recipe.get("pref_loss", "sigmoid")) in ("orpo", "simpo"):
        return stage, None
    if recipe.get("ref_model"):
        notes.append(f"DPO reference model {recipe['ref_model']!r}: counted with the base model's architecture")
        return stage, "model"
    if params.method in ("lora", "qlora"):
        notes.append("DPO with LoRA: the reference is the base model with the adapter disabled (no second copy)")
        return stage, "adapter"
    return stage, "copy"


def read_setup(arch: Arch, recipe: dict[str, Any], params: Params, gpus: int = 1,
               ds: DeepSpeed | None = None) -> Setup:
    notes: list[str] = []
    compute = _compute_dtype(arch, recipe, notes)
    pure_bf16 = bool(recipe.get("pure_bf16", False))
    wbytes = DTYPE_BYTES[compute]
    quant = recipe.get("quantization_bit")
    if quant not in (None, 4, 8):
        raise PlanError(f"quantization_bit must be 4, 8 or null, got {quant!r}")
    if ds is not None and ds.stage >= 1 and compute != "float32":
        wbytes = 2  # DeepSpeed casts the module to bf16/fp16; fp32 masters live in the optimizer partition
    gc = not bool(recipe.get("disable_gradient_checkpointing", False))
    if recipe.get("gradient_checkpointing") is False and gc:
        notes.append("gradient_checkpointing: false is overridden by LLaMA-Factory, which enables it unless disable_gradient_checkpointing: true")
    optim, obytes, odesc = _optimizer(recipe, pure_bf16, notes)
    stage, reference = _stage(recipe, params, notes)
    batch = positive_int(recipe, "per_device_train_batch_size", 8)
    cutoff = positive_int(recipe, "cutoff_len", 2048)
    rank = positive_int(recipe, "lora_rank", 8) if params.method in ("lora", "qlora") else 0
    dropout = float(recipe.get("lora_dropout", 0.0) or 0.0) if rank else 0.0
    if stage == "dpo" and dropout > 0:
        notes.append(f"lora_dropout {dropout} has no effect: LLaMA-Factory's DPO trainer disables dropout")
        dropout = 0.0
    fp32_master = params.method in ("full", "freeze") and not pure_bf16 and compute != "float32" and not (ds and ds.stage)
    return Setup(stage=stage, compute=compute, wbytes=wbytes, quant=quant,
                 double_quant=bool(recipe.get("double_quantization", True)),
                 quant_type=str(recipe.get("quantization_type", "nf4")), pure_bf16=pure_bf16,
                 master=2 if pure_bf16 else 4,  # LLaMA-Factory upcasts trainable params to fp32 (not with pure_bf16)
                 optim=optim, obytes=obytes, odesc=odesc, gpus=max(1, gpus), ds=ds, gc=gc, batch=batch,
                 cutoff=cutoff, seqs=batch * (2 if stage == "dpo" else 1), rank=rank, dropout=dropout,
                 fp32_master=fp32_master, reference=reference,
                 logit_bytes=LOGIT_BYTES_DPO_REF if reference else LOGIT_BYTES, notes=notes)


def _zero(s: Setup) -> bool:
    """DeepSpeed ZeRO 1-3 runs (stage 0 behaves like plain DDP)."""
    return s.ds is not None and s.ds.stage != 0


# ---------------------------------------------------------------------------------------------
# the terms
# ---------------------------------------------------------------------------------------------
def weights_term(arch: Arch, params: Params, s: Setup) -> Term:
    """Frozen weights: 16/32-bit, or bitsandbytes 4/8-bit for the decoder Linear layers; ZeRO-3
    keeps 1/N of them plus about two gathered layers (prefetch)."""
    frozen = 0 if params.method == "full" else params.base - (params.trainable if params.method == "freeze" else 0)
    if s.quant == 4:
        qb = Q4_BYTES_DQ if s.double_quant else Q4_BYTES
        w = params.frozen_linear * qb + params.frozen_other * s.wbytes
        desc = (f"{params.frozen_linear:,} params 4-bit {s.quant_type}{' + double-quant' if s.double_quant else ''} "
                f"({qb:.4f} B/param incl. absmax) + {params.frozen_other:,} at {s.compute}")
    elif s.quant == 8:
        rows = arch.layers * sum(o for _, o, _ in arch.linears().values())
        w = params.frozen_linear * Q8_BYTES + 4 * rows + params.frozen_other * s.wbytes
        desc = f"{params.frozen_linear:,} params int8 (+ fp32 row scales) + {params.frozen_other:,} at {s.compute}"
    else:
        w = frozen * s.wbytes
        desc = f"{frozen:,} frozen params at {s.compute} ({s.wbytes} B)"
    if _zero(s) and s.ds.stage == 3:  # type: ignore[union-attr]
        layer_bytes = arch.layer_params() * 2
        w = w / s.gpus + 2 * layer_bytes
        desc += f", partitioned over {s.gpus} GPU(s) (ZeRO-3) + 2 gathered layers"
        if s.ds.offload_param:  # type: ignore[union-attr]
            w = 2 * layer_bytes
            desc += ", params offloaded to CPU"
    return ("weights", w, desc)


def trainable_term(params: Params, s: Setup) -> Term:
    """Trainable parameters: fp32 (LLaMA-Factory's upcast), bf16 under DeepSpeed (master in the partition)."""
    n = params.trainable
    lora = f" [{params.detail}]" if params.method in ("lora", "qlora") else ""
    if not _zero(s):
        return ("trainable params", n * s.master, f"{n:,} trainable params, {'bf16' if s.pure_bf16 else 'fp32'}{lora}")
    w = n * 2 / s.gpus if s.ds.stage == 3 else n * 2  # type: ignore[union-attr]
    return ("trainable params", w, f"{n:,} trainable params bf16 (DeepSpeed), fp32 master in the optimizer partition{lora}")


def gradients_term(params: Params, s: Setup) -> Term:
    n = params.trainable
    if not _zero(s):
        return ("gradients", n * s.master, f"{'bf16' if s.pure_bf16 else 'fp32'}, one per trainable param")
    stage3 = s.ds.stage == 3  # type: ignore[union-attr]
    return ("gradients", n * 2 / s.gpus if stage3 else n * 2, "16-bit gradients" + (" (partitioned)" if stage3 else ""))


def optimizer_term(params: Params, s: Setup) -> Term:
    """Optimizer states; under ZeRO DeepSpeed's own estimator (estimate_zero2/zero3_model_states_mem_needs):
    fp32 master + states + fp32 grads partitioned over N GPUs, or offloaded to CPU RAM."""
    n = params.trainable
    if not _zero(s):
        return ("optimizer states", n * s.obytes, s.odesc)
    part = n * (4 + s.obytes + 4) / s.gpus
    if s.ds.offload_optimizer:  # type: ignore[union-attr]
        return ("optimizer states", 0.0, f"offloaded to CPU RAM ({part * s.gpus / GIB:.2f} GiB there)")
    return ("optimizer states", part,
            f"{s.odesc} + fp32 master + fp32 grads, partitioned over {s.gpus} GPU(s) (ZeRO-{s.ds.stage})")  # type: ignore[union-attr]


def buffer_terms(params: Params, s: Setup) -> list[Term]:
    """DDP's gradient buckets (more than one GPU) or DeepSpeed's contiguous reduce bucket."""
    n = params.trainable
    if not _zero(s):
        if s.gpus > 1:
            return [("DDP buckets", n * s.master, "DistributedDataParallel keeps a bucket copy of the gradients")]
        return []
    copies = 2 if s.ds.overlap_comm else 1  # type: ignore[union-attr]
    bucket = min(s.ds.reduce_bucket * 2 * copies, max(n, 1) * 2 * copies)  # type: ignore[union-attr]
    return [("DeepSpeed buckets", bucket, "contiguous gradient bucket (reduce_bucket_size, capped at the trainable size)")]


def reference_terms(arch: Arch, params: Params, s: Setup, recipe: dict[str, Any]) -> list[Term]:
    """DPO's reference model when it is a second model: LLaMA-Factory loads a frozen copy of the
    base (full / freeze fine-tuning, same quantization) or ``ref_model`` (``ref_model_quantization_bit``)."""
    if s.reference not in ("copy", "model"):
        return []
    quant = s.quant if s.reference == "copy" else recipe.get("ref_model_quantization_bit")
    linear = arch.layers * arch.layer_linear_params()
    if quant == 4:
        w = linear * (Q4_BYTES_DQ if s.double_quant else Q4_BYTES) + (params.base - linear) * s.wbytes
    elif quant == 8:
        w = linear * Q8_BYTES + (params.base - linear) * s.wbytes
    else:
        w = params.base * s.wbytes
    where = "a frozen copy of the base" if s.reference == "copy" else f"ref_model {recipe.get('ref_model')}"
    if _zero(s) and s.ds.stage == 3:  # type: ignore[union-attr]
        w = w / s.gpus
        where += f", partitioned over {s.gpus} GPU(s) (ZeRO-3)"
    bits = f"{quant}-bit" if quant else s.compute
    return [("reference model", w, f"DPO reference: {where} ({params.base:,} params, {bits}, no gradients)")]


def activation_bytes(arch: Arch, params: Params, s: Setup, mask_bytes: int) -> tuple[float, float]:
    """(with, without) gradient checkpointing: every layer's saved tensors, or each layer's input
    (the checkpoint) plus one layer recomputed at a time; 9h per token outside the layers."""
    per_layer = layer_activation_bytes(arch, params.method, s.rank, tuple(params.lora_targets), s.dropout,
                                       mask_bytes, s.fp32_master)
    if s.compute == "float32":
        per_layer *= 2  # fp32 activations
    resid = (4 if (s.fp32_master or s.compute == "float32") else 2) * arch.hidden  # hidden state between layers
    outer = 9 * arch.hidden  # embeddings out, final norm, lm_head input
    act_nogc = s.tokens * (arch.layers * per_layer + outer)
    act_gc = s.tokens * (arch.layers * resid + per_layer + outer)  # checkpoints + one layer recomputed
    return act_gc, act_nogc


def activations_term(act_gc: float, act_nogc: float, s: Setup) -> Term:
    pairs = f"2 x {s.batch} x {s.cutoff} = {s.tokens:,} tokens (chosen + rejected)" if s.stage == "dpo" \
        else f"{s.batch} x {s.cutoff} = {s.tokens:,} tokens"
    return ("activations", act_gc if s.gc else act_nogc,
            f"{pairs}, gradient checkpointing {'ON' if s.gc else 'OFF'} (ON: {act_gc / GIB:.2f} GiB, OFF: {act_nogc / GIB:.2f} GiB)")


def logits_term(arch: Arch, s: Setup) -> Term:
    if s.logit_bytes == LOGIT_BYTES:
        what = "bf16 logits, fp32 copy, log-softmax, grad"
    else:
        what = "policy fp32 logits + log-softmax kept while the reference forward makes its own"
    return ("logits + loss", s.tokens * arch.vocab * s.logit_bytes,
            f"{s.tokens:,} tokens x {arch.vocab:,} vocab x {s.logit_bytes} B ({what})")


def estimate(arch: Arch, recipe: dict[str, Any], params: Params, gpus: int = 1, ds: DeepSpeed | None = None,
             cuda_context_gb: float = 0.75, fragmentation: float = 0.05, dropout_mask_bytes: int = 1) -> dict[str, Any]:
    s = read_setup(arch, recipe, params, gpus, ds)
    act_gc, act_nogc = activation_bytes(arch, params, s, dropout_mask_bytes)
    rows = [weights_term(arch, params, s), trainable_term(params, s), gradients_term(params, s),
            optimizer_term(params, s), *buffer_terms(params, s), *reference_terms(arch, params, s, recipe),
            activations_term(act_gc, act_nogc, s), logits_term(arch, s)]
    allocated = 0.0
    for _, value, _ in rows:
        allocated += value
    frag = allocated * fragmentation
    ctx = cuda_context_gb * GIB
    total = allocated + frag + ctx
    rows += [("allocator fragmentation", frag, f"{fragmentation:.0%} of the above"),
             ("CUDA context", ctx, "driver context, cuBLAS / NCCL workspaces (outside PyTorch's allocator)")]
    packing = recipe.get("packing")
    if packing is None:  # LLaMA-Factory: packing defaults to true for stage pt only
        packing = s.stage == "pt"
    if not packing:
        s.notes.append("no packing: sequences shorter than cutoff_len use less activation memory than shown (the figure is the worst case)")
    act = act_gc if s.gc else act_nogc
    return {
        "rows": rows,
        "allocated": allocated,
        "total": total,
        "tokens": s.tokens,
        "sequences": s.seqs,
        "stage": s.stage,
        "gradient_checkpointing": s.gc,
        "activations_gc": act_gc,
        "activations_no_gc": act_nogc,
        "total_other_gc_setting": total - act + (act_nogc if s.gc else act_gc),
        "compute_dtype": s.compute,
        "optim": s.optim,
        "notes": s.notes,
        "setup": s,
    }
