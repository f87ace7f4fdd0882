"""Trainable parameters and peak GPU memory of a LLaMA-Factory recipe, from ``config.json`` only.

    llamafactory-ext plan recipes/v3_mixed.yaml
    llamafactory-ext plan recipes/v3_mixed.yaml gpus=2 deepspeed=ds_configs/zero2.json gpu_mem=24GB
    llamafactory-ext plan recipes/gsm8k_synth_qlora.yaml gpu_mem=12GB --json

Reads the recipe like ``llamafactory-cli train`` does (YAML + ``key=value`` overrides, so any
recipe key can be changed on the command line) and the base model's ``config.json`` -- never
the weights. ``model_name_or_path`` may be a local directory, a Hub id found in the local
Hugging Face cache, or one of the Hub ids whose config facts ship with the project (Qwen3-8B,
Qwen3-4B-Instruct-2507, Meta-Llama-3-8B and its fine-tunes), so it works offline.

Printed: trainable / total parameters (counted the way PEFT and LLaMA-Factory count them) and
the peak memory of ONE GPU split into weights (at the recipe's precision, 4/8-bit incl.
quantization constants), trainable (LoRA) parameters, gradients, optimizer states (AdamW fp32,
8-bit optimizers, ZeRO-2/3 partitions over ``gpus``, CPU offload), activations for
``per_device_train_batch_size x cutoff_len`` tokens with and without gradient checkpointing,
the logits / loss buffers, and the CUDA context; then whether it fits ``gpu_mem``.
The formulas and their calibration are in README SECTION:plan.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from llamafactory_ext.config import ConfigError, UserError, load_config, split_argv

USAGE = "RECIPE.yaml [key=value ...] [gpus=N] [gpu_mem=24GB] [--json | format=json]"

GIB = 1024**3
RESOURCES = Path(__file__).resolve().parent / "resources" / "model_configs"

# keys that belong to the planner, not to the recipe
PLAN_KEYS = {
    "gpus": "GPUs the run is spread over (data parallel / ZeRO partitions); default 1",
    "gpu_mem": "memory of one GPU, e.g. 24GB, 80GiB, 12288MiB (GB and GiB both mean 2**30 bytes: a '24 GB' card has 24 GiB); default: no fit check",
    "format": "text (default) or json",
    "cuda_context_gb": "CUDA context + cuBLAS/NCCL workspaces outside PyTorch's allocator; default 0.75",
    "fragmentation": "share of allocated memory lost to the caching allocator's fragmentation; default 0.05",
    "dropout_mask_bytes": "bytes per element of a dropout mask: 1 on CUDA (bool), 2 on CPU; default 1",
}


class PlanError(UserError):
    """The recipe or model config cannot be planned (message names the file / key)."""


# ---------------------------------------------------------------------------------------------
# model config
# ---------------------------------------------------------------------------------------------
SUPPORTED_TYPES = ("llama", "mistral", "qwen2", "qwen3")
PROJ_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
PROJ_MLP = ("gate_proj", "up_proj", "down_proj")
PROJECTIONS = PROJ_ATTN + PROJ_MLP


@dataclasses.dataclass(frozen=True)
class Arch:
    """The numbers of a decoder-only llama-like model that the plan needs."""

    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    attn_bias: bool  # bias on q/k/v (qwen2; llama's attention_bias also puts one on o_proj)
    o_bias: bool
    mlp_bias: bool
    qk_norm: bool  # qwen3: RMSNorm on q and k (head_dim weights each)
    dtype: str
    source: str

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linears(self) -> dict[str, tuple[int, int, bool]]:
        """Projection name -> (in_features, out_features, has_bias) of one decoder layer."""
        h, i = self.hidden, self.intermediate
        return {
            "q_proj": (h, self.q_dim, self.attn_bias),
            "k_proj": (h, self.kv_dim, self.attn_bias),
            "v_proj": (h, self.kv_dim, self.attn_bias),
            "o_proj": (self.q_dim, h, self.o_bias),
            "gate_proj": (h, i, self.mlp_bias),
            "up_proj": (h, i, self.mlp_bias),
            "down_proj": (i, h, self.mlp_bias),
        }

    def layer_norm_params(self) -> int:
        return 2 * self.hidden + (2 * self.head_dim if self.qk_norm else 0)

    def layer_linear_params(self) -> int:
        return sum(a * b + (b if bias else 0) for a, b, bias in self.linears().values())

    def layer_params(self) -> int:
        return self.layer_linear_params() + self.layer_norm_params()

    def embed_params(self) -> int:
        return self.vocab * self.hidden

    def total_params(self) -> int:
        lm_head = 0 if self.tied else self.vocab * self.hidden
        return self.layers * self.layer_params() + self.embed_params() + lm_head + self.hidden  # + final norm


def arch_from_config(cfg: dict[str, Any], source: str) -> Arch:
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED_TYPES:
        raise PlanError(
            f"{source}: model_type {model_type!r} is not supported by the planner "
            f"(supported: {', '.join(SUPPORTED_TYPES)}: decoder-only llama-like models)"
        )
    need = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    for key in need:
        if not isinstance(cfg.get(key), int) or cfg[key] <= 0:
            raise PlanError(f"{source}: config field {key!r} must be a positive integer, got {cfg.get(key)!r}")
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    attn_bias = bool(cfg.get("attention_bias", False)) or model_type == "qwen2"
    o_bias = bool(cfg.get("attention_bias", False)) and model_type in ("llama", "mistral")
    dtype = cfg.get("torch_dtype") or cfg.get("dtype") or "float32"
    return Arch(
        model_type=model_type,
        hidden=cfg["hidden_size"],
        intermediate=cfg["intermediate_size"],
        layers=cfg["num_hidden_layers"],
        heads=heads,
        kv_heads=kv,
        head_dim=head_dim,
        vocab=cfg["vocab_size"],
        tied=bool(cfg.get("tie_word_embeddings", model_type not in ("llama", "mistral", "qwen3"))),
        attn_bias=attn_bias,
        o_bias=o_bias,
        mlp_bias=bool(cfg.get("mlp_bias", False)),
        qk_norm=model_type == "qwen3",
        dtype=str(dtype),
        source=source,
    )


def shipped_configs() -> dict[str, str]:
    index = json.loads((RESOURCES / "index.json").read_text(encoding="utf-8"))
    return {k: v for k, v in index.items() if not k.startswith("_")}


def _hf_cache_config(model_id: str) -> Path | None:
    home = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface")), "hub"
    )
    snaps = Path(home) / ("models--" + model_id.replace("/", "--")) / "snapshots"
    if snaps.is_dir():
        for snap in sorted(snaps.iterdir()):
            if (snap / "config.json").is_file():
                return snap / "config.json"
    return None


def load_arch(model_name_or_path: str) -> Arch:
    """Local dir -> its config.json; Hub id -> local HF cache, else the shipped facts; else an error."""
    path = Path(model_name_or_path).expanduser()
    if path.is_dir():
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise PlanError(f"model_name_or_path {model_name_or_path}: no config.json in that directory")
    elif path.is_file() and path.name.endswith(".json"):
        cfg_file = path
    else:
        cfg_file = _hf_cache_config(model_name_or_path)
        if cfg_file is None:
            shipped = shipped_configs()
            name = shipped.get(model_name_or_path)
            if name is None:
                known = ", ".join(sorted(shipped))
                raise PlanError(
                    f"model_name_or_path {model_name_or_path!r}: not a local directory, not in the local Hugging Face "
                    f"cache, and no config facts ship for it (shipped: {known}). Download only its config: "
                    f"`huggingface-cli download {model_name_or_path} config.json --local-dir DIR` and pass "
                    f"model_name_or_path=DIR"
                )
            cfg_file = RESOURCES / name
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanError(f"{cfg_file}: cannot read config.json: {exc}") from exc
    if "text_config" in cfg and "hidden_size" not in cfg:
        cfg = {**cfg["text_config"], "tie_word_embeddings": cfg.get("tie_word_embeddings", False)}
    return arch_from_config(cfg, str(cfg_file))


# ---------------------------------------------------------------------------------------------
# recipe -> trainable parameters
# ---------------------------------------------------------------------------------------------
def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value]
    raise PlanError(f"expected a comma-separated list, got {value!r}")


@dataclasses.dataclass
class Params:
    method: str  # lora | qlora | full | freeze
    trainable: int
    total: int  # what PEFT / LLaMA-Factory print as "all params" (base + adapter)
    base: int
    lora_targets: list[str]
    lora_modules: int  # number of wrapped Linear modules
    frozen_linear: int  # frozen params inside decoder Linear layers (the ones bitsandbytes quantizes)
    frozen_other: int  # frozen embeddings, norms, lm_head (kept at compute precision)
    detail: str


def count_params(arch: Arch, recipe: dict[str, Any]) -> Params:
    ftype = str(recipe.get("finetuning_type", "lora"))
    base = arch.total_params()
    linear_total = arch.layers * arch.layer_linear_params()
    quant = recipe.get("quantization_bit")
    if ftype == "full":
        return Params("full", base, base, base, [], 0, 0, 0, "all parameters train")
    if ftype == "freeze":
        n = int(recipe.get("freeze_trainable_layers", 2))
        mods = _as_list(recipe.get("freeze_trainable_modules", "all")) or ["all"]
        ids = range(max(0, arch.layers - n), arch.layers) if n > 0 else range(min(-n, arch.layers))
        per_layer = {name: a * b + (b if bias else 0) for name, (a, b, bias) in arch.linears().items()}
        groups = {
            "self_attn": sum(per_layer[p] for p in PROJ_ATTN) + (2 * arch.head_dim if arch.qk_norm else 0),
            "mlp": sum(per_layer[p] for p in PROJ_MLP),
            "input_layernorm": arch.hidden,
            "post_attention_layernorm": arch.hidden,
        }
        if "all" in mods:
            per = arch.layer_params()
        else:
            unknown = [m for m in mods if m not in groups]
            if unknown:
                raise PlanError(f"freeze_trainable_modules: unknown module {unknown[0]!r} (choose from all, {', '.join(groups)})")
            per = sum(groups[m] for m in mods)
        trainable = per * len(ids)
        return Params("freeze", trainable, base, base, [], 0, 0, base - trainable,
                      f"{len(ids)} trainable layers ({','.join(mods)})")
    if ftype not in ("lora",):
        raise PlanError(f"finetuning_type {ftype!r} is not supported by the planner (lora, full, freeze)")
    rank = recipe.get("lora_rank", 8)
    if not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0:
        raise PlanError(f"lora_rank must be a positive integer, got {rank!r}")
    targets = _as_list(recipe.get("lora_target", "all")) or ["all"]
    if targets == ["all"]:
        # LLaMA-Factory's find_all_linear_modules: every Linear except lm_head
        targets = list(PROJECTIONS)
    allowed = set(PROJECTIONS) | {"lm_head"}
    unknown = [t for t in targets if t not in allowed]
    if unknown:
        raise PlanError(
            f"lora_target: module {unknown[0]!r} is not a Linear layer of a {arch.model_type} model "
            f"(choose from all, {', '.join(PROJECTIONS)}, lm_head)"
        )
    use_dora = bool(recipe.get("use_dora", False))
    lora = 0
    modules = 0
    for name, (fan_in, fan_out, _) in arch.linears().items():
        if name in targets:
            lora += arch.layers * (rank * (fan_in + fan_out) + (fan_out if use_dora else 0))
            modules += arch.layers
    if "lm_head" in targets:
        lora += rank * (arch.hidden + arch.vocab) + (arch.vocab if use_dora else 0)
        modules += 1
    extra = _as_list(recipe.get("additional_target"))
    saved = 0
    for name in extra:  # PEFT modules_to_save: a trainable copy next to the frozen original
        if name == "embed_tokens":
            saved += arch.embed_params()
        elif name == "lm_head":
            saved += arch.vocab * arch.hidden
        else:
            raise PlanError(f"additional_target: {name!r} not supported by the planner (embed_tokens, lm_head)")
    trainable = lora + saved
    method = "qlora" if quant in (4, 8) else "lora"
    label = "DoRA" if use_dora else "LoRA"
    detail = f"{label} r{rank} on {','.join(t for t in PROJECTIONS + ('lm_head',) if t in targets)} ({modules} modules)"
    if extra:
        detail += f" + full copies of {','.join(extra)}"
    frozen_linear = linear_total if quant in (4, 8) else 0
    return Params(method, trainable, base + trainable, base, [t for t in targets], modules,
                  frozen_linear, base - frozen_linear, detail)


# ---------------------------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------------------------
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


def estimate(arch: Arch, recipe: dict[str, Any], params: Params, gpus: int = 1, ds: DeepSpeed | None = None,
             cuda_context_gb: float = 0.75, fragmentation: float = 0.05, dropout_mask_bytes: int = 1) -> dict[str, Any]:
    notes: list[str] = []
    bf16, fp16 = bool(recipe.get("bf16", False)), bool(recipe.get("fp16", False))
    pure_bf16 = bool(recipe.get("pure_bf16", False))
    if bf16 or pure_bf16:
        compute = "bfloat16"
    elif fp16:
        compute = "float16"
    else:
        compute = arch.dtype if arch.dtype in DTYPE_BYTES else "float32"
        notes.append(f"no bf16/fp16 in the recipe: weights counted at the config's dtype ({compute}), as LLaMA-Factory infers it")
    wbytes = DTYPE_BYTES[compute]
    quant = recipe.get("quantization_bit")
    if quant not in (None, 4, 8):
        raise PlanError(f"quantization_bit must be 4, 8 or null, got {quant!r}")
    if ds is not None and ds.stage >= 1 and compute != "float32":
        wbytes = 2  # DeepSpeed casts the module to bf16/fp16; fp32 masters live in the optimizer partition
    n_train = params.trainable
    gc = not bool(recipe.get("disable_gradient_checkpointing", False))
    if recipe.get("gradient_checkpointing") is False and gc:
        notes.append("gradient_checkpointing: false is overridden by LLaMA-Factory, which enables it unless disable_gradient_checkpointing: true")
    # --- weights (frozen part) ---
    if params.method in ("full",):
        frozen = 0
    else:
        frozen = params.base - (n_train if params.method == "freeze" else 0)
    if quant == 4:
        double = bool(recipe.get("double_quantization", True))
        qb = Q4_BYTES_DQ if double else Q4_BYTES
        w_frozen = params.frozen_linear * qb + params.frozen_other * wbytes
        wdesc = (f"{params.frozen_linear:,} params 4-bit {recipe.get('quantization_type', 'nf4')}"
                 f"{' + double-quant' if double else ''} ({qb:.4f} B/param incl. absmax) + {params.frozen_other:,} at {compute}")
    elif quant == 8:
        rows = arch.layers * sum(o for _, o, _ in arch.linears().values())
        w_frozen = params.frozen_linear * Q8_BYTES + 4 * rows + params.frozen_other * wbytes
        wdesc = f"{params.frozen_linear:,} params int8 (+ fp32 row scales) + {params.frozen_other:,} at {compute}"
    else:
        w_frozen = frozen * wbytes
        wdesc = f"{frozen:,} frozen params at {compute} ({wbytes} B)"
    # --- trainable params, grads, optimizer ---
    optim = str(recipe.get("optim") or DEFAULT_OPTIM)
    if optim not in OPTIM_BYTES:
        notes.append(f"optim {optim!r} is not modelled: counted as AdamW (8 B/param)")
    obytes, odesc = OPTIM_BYTES.get(optim, (8.0, f"{optim} (as AdamW)"))
    master = 2 if pure_bf16 else 4  # LLaMA-Factory upcasts trainable params to fp32 (not with pure_bf16)
    if pure_bf16 and optim in OPTIM_BYTES and obytes == 8.0:
        obytes, odesc = 4.0, "AdamW m+v in bf16 (pure_bf16)"
    n = max(1, gpus)
    offload = bool(ds and ds.offload_optimizer)
    extra_rows: list[tuple[str, float, str]] = []
    if ds is None or ds.stage == 0:
        w_train = n_train * master
        grads = n_train * master
        opt = n_train * obytes
        tdesc = f"{n_train:,} trainable params, {'bf16' if pure_bf16 else 'fp32'}"
        gdesc = f"{'bf16' if pure_bf16 else 'fp32'}, one per trainable param"
        if n > 1:
            extra_rows.append(("DDP buckets", grads, "DistributedDataParallel keeps a bucket copy of the gradients"))
    else:
        # DeepSpeed's own estimators (estimate_zero2/zero3_model_states_mem_needs): 16-bit params and
        # 16-bit grads on every GPU; fp32 master + optimizer states + fp32 grads partitioned over N GPUs
        w_train = n_train * 2
        grads = n_train * 2 if ds.stage <= 2 else n_train * 2 / n
        part = n_train * (4 + obytes + 4) / n
        opt = 0.0 if offload else part
        tdesc = f"{n_train:,} trainable params bf16 (DeepSpeed), fp32 master in the optimizer partition"
        gdesc = "16-bit gradients" + (" (partitioned)" if ds.stage == 3 else "")
        odesc = (f"{odesc} + fp32 master + fp32 grads, partitioned over {n} GPU(s) (ZeRO-{ds.stage})"
                 if not offload else f"offloaded to CPU RAM ({part * n / GIB:.2f} GiB there)")
        if ds.stage == 3:
            layer_bytes = arch.layer_params() * 2
            w_train = w_train / n
            w_frozen = w_frozen / n + 2 * layer_bytes  # each GPU gathers ~2 layers at a time (prefetch)
            wdesc += f", partitioned over {n} GPU(s) (ZeRO-3) + 2 gathered layers"
            if ds.offload_param:
                w_frozen = 2 * layer_bytes
                wdesc += ", params offloaded to CPU"
        bucket = ds.reduce_bucket * 2 * (2 if ds.overlap_comm else 1)
        bucket = min(bucket, max(n_train, 1) * 2 * (2 if ds.overlap_comm else 1))
        extra_rows.append(("DeepSpeed buckets", bucket, "contiguous gradient bucket (reduce_bucket_size, capped at the trainable size)"))
    # --- activations ---
    bsz = int(recipe.get("per_device_train_batch_size", 8) or 8)
    cutoff = int(recipe.get("cutoff_len", 2048) or 2048)
    tokens = bsz * cutoff
    rank = int(recipe.get("lora_rank", 8)) if params.method in ("lora", "qlora") else 0
    dropout = float(recipe.get("lora_dropout", 0.0) or 0.0) if rank else 0.0
    fp32_master = params.method in ("full", "freeze") and not pure_bf16 and compute != "float32" and not (ds and ds.stage)
    per_layer = layer_activation_bytes(arch, params.method, rank, tuple(params.lora_targets), dropout,
                                       dropout_mask_bytes, fp32_master)
    if compute == "float32":
        per_layer *= 2  # fp32 activations
    resid = (4 if (fp32_master or compute == "float32") else 2) * arch.hidden  # hidden state between layers
    outer = 9 * arch.hidden  # embeddings out, final norm, lm_head input
    act_nogc = tokens * (arch.layers * per_layer + outer)
    act_gc = tokens * (arch.layers * resid + per_layer + outer)  # checkpoints + one layer recomputed
    # logits: bf16 logits, fp32 upcast for the loss, fp32 log-softmax (saved) and its gradient:
    # ~12 bytes per token per vocabulary entry at the loss / start of backward
    logits = tokens * arch.vocab * 12
    act = act_gc if gc else act_nogc
    allocated = w_frozen + w_train + grads + opt + sum(r[1] for r in extra_rows) + act + logits
    frag = allocated * fragmentation
    ctx = cuda_context_gb * GIB
    total = allocated + frag + ctx
    rows = [
        ("weights", w_frozen, wdesc),
        ("trainable params", w_train, tdesc + (f" [{params.detail}]" if params.method in ("lora", "qlora") else "")),
        ("gradients", grads, gdesc),
        ("optimizer states", opt, odesc),
        *extra_rows,
        ("activations", act, (f"{bsz} x {cutoff} = {tokens:,} tokens, gradient checkpointing "
                              + ("ON" if gc else "OFF")
                              + f" (ON: {act_gc / GIB:.2f} GiB, OFF: {act_nogc / GIB:.2f} GiB)")),
        ("logits + loss", logits, f"{tokens:,} tokens x {arch.vocab:,} vocab x 12 B (bf16 logits, fp32 copy, log-softmax, grad)"),
        ("allocator fragmentation", frag, f"{fragmentation:.0%} of the above"),
        ("CUDA context", ctx, "driver context, cuBLAS / NCCL workspaces (outside PyTorch's allocator)"),
    ]
    packing = recipe.get("packing")
    if packing is None:  # LLaMA-Factory: packing defaults to true for stage pt only
        packing = recipe.get("stage", "sft") == "pt"
    if not packing:
        notes.append("no packing: sequences shorter than cutoff_len use less activation memory than shown (the figure is the worst case)")
    return {
        "rows": rows,
        "total": total,
        "tokens": tokens,
        "gradient_checkpointing": gc,
        "activations_gc": act_gc,
        "activations_no_gc": act_nogc,
        "total_other_gc_setting": total - act + (act_nogc if gc else act_gc),
        "compute_dtype": compute,
        "optim": optim,
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------------
# command
# ---------------------------------------------------------------------------------------------
def build_plan(argv: list[str]) -> dict[str, Any]:
    args = list(argv)
    fmt = "text"
    if "--json" in args:
        args.remove("--json")
        fmt = "json"
    if not args or not args[0].endswith((".yaml", ".yml", ".json")) or "=" in args[0]:
        raise ConfigError(f"plan needs a recipe first: llamafactory-ext plan {USAGE}")
    path, overrides = split_argv(args)
    recipe = load_config(path, overrides)
    opts = {k: recipe.pop(k) for k in list(recipe) if k in PLAN_KEYS}
    fmt = str(opts.get("format", fmt))
    if fmt not in ("text", "json"):
        raise ConfigError(f"format must be text or json, got {fmt!r}")
    gpus = opts.get("gpus", 1)
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 1:
        raise ConfigError(f"gpus must be a positive integer, got {gpus!r}")
    model = recipe.get("model_name_or_path")
    if not model:
        raise PlanError(f"{path}: missing key 'model_name_or_path'")
    arch = load_arch(str(model))
    params = count_params(arch, recipe)
    ds = load_deepspeed(recipe.get("deepspeed"), path)
    mem = estimate(arch, recipe, params, gpus, ds, float(opts.get("cuda_context_gb", 0.75)),
                   float(opts.get("fragmentation", 0.05)), int(opts.get("dropout_mask_bytes", 1)))
    gpu_mem = parse_mem(opts.get("gpu_mem"))
    result = {
        "recipe": path,
        "model": str(model),
        "config_source": arch.source,
        "architecture": {k: v for k, v in dataclasses.asdict(arch).items() if k != "source"},
        "method": params.method,
        "detail": params.detail,
        "trainable_params": params.trainable,
        "total_params": params.total,
        "trainable_percent": 100.0 * params.trainable / params.total,
        "gpus": gpus,
        "deepspeed": dataclasses.asdict(ds) if ds else None,
        "tokens_per_device": mem["tokens"],
        "gradient_checkpointing": mem["gradient_checkpointing"],
        "compute_dtype": mem["compute_dtype"],
        "optim": mem["optim"],
        "memory_bytes": {name: int(round(v)) for name, v, _ in mem["rows"]},
        "memory_notes": {name: d for name, _, d in mem["rows"]},
        "activations_bytes": {"gradient_checkpointing": int(mem["activations_gc"]), "no_gradient_checkpointing": int(mem["activations_no_gc"])},
        "peak_bytes": int(round(mem["total"])),
        "peak_gib": round(mem["total"] / GIB, 2),
        "peak_gib_other_checkpointing_setting": round(mem["total_other_gc_setting"] / GIB, 2),
        "gpu_mem_bytes": gpu_mem,
        "fits": None if gpu_mem is None else bool(mem["total"] <= gpu_mem),
        "notes": mem["notes"],
    }
    result["_format"] = fmt
    return result


def render_text(r: dict[str, Any]) -> str:
    a = r["architecture"]
    lines = [
        f"plan for {r['recipe']}",
        f"model: {r['model']} ({a['model_type']}, {a['layers']} layers, hidden {a['hidden']}, "
        f"intermediate {a['intermediate']}, heads {a['heads']}/{a['kv_heads']} kv, vocab {a['vocab']:,}, "
        f"{'tied' if a['tied'] else 'untied'} embeddings; config: {r['config_source']})",
        f"method: {r['method']}: {r['detail']}",
        f"trainable params: {r['trainable_params']:,} || all params: {r['total_params']:,} || "
        f"trainable%: {r['trainable_percent']:.4f}",
        "",
        f"peak GPU memory per device ({r['gpus']} GPU(s)"
        + (f", DeepSpeed ZeRO-{r['deepspeed']['stage']}" if r["deepspeed"] else "")
        + f", {r['compute_dtype']}, optim {r['optim']}):",
    ]
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
    for note in r["notes"]:
        lines.append(f"note: {note}")
    lines.append("an estimate from config.json (formula and what it was checked against: README 'GPU memory planner')")
    return "\n".join(lines)


def options_help() -> str:
    lines = [f"  {k:<24} {v}" for k, v in PLAN_KEYS.items()]
    lines.append("  --json                   same as format=json")
    lines.append("  any recipe key           e.g. lora_rank=16 per_device_train_batch_size=2 cutoff_len=1024 deepspeed=ds_configs/zero2.json")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    result = build_plan(argv)
    fmt = result.pop("_format")
    if fmt == "json":
        print(json.dumps(result, indent=2))
    else:
        print(render_text(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
