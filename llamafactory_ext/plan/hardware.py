"""GPU peaks (dense bf16 tensor FLOPS, memory bandwidth), the FLOPs of a training step, and the
memory-bandwidth bound of decoding.

FLOPs accounting (per device and step, T tokens of sequences S long; a multiply-add is 2 FLOPs):
- forward: 2 x (matmul weights: decoder Linear layers + lm_head + LoRA A/B) x T, plus causal
  attention 2 x S x q_dim x T per layer (QK^T and AV over the S/2 earlier positions on average,
  what flash / SDPA attention computes);
- backward: activation gradients 2 x (matmul weights) x T + 2 x the attention forward; weight
  gradients 2 x (trainable matmul weights) x T -- so a frozen base costs ~4 N T, not 6 N T;
- DPO: the reference forward (no gradients) is part of the algorithm: counted as model FLOPs;
- gradient checkpointing recomputes each decoder layer's forward once: counted separately, so
  MFU ("model FLOPs utilisation") leaves it out and HFU ("hardware") includes it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llamafactory_ext.plan.arch import Arch
from llamafactory_ext.plan.params import Params


@dataclasses.dataclass(frozen=True)
class GpuSpec:
    name: str
    bf16_tflops: float  # dense (no sparsity) bf16 tensor-core peak, 10^12 FLOP/s
    bandwidth_tbs: float  # memory bandwidth, 10^12 B/s


# Matched in order against torch.cuda.get_device_name(), lower case: the first entry whose words all
# occur in the name wins, so specific entries come first. None = a card we do not guess for.
GPU_SPECS: list[tuple[tuple[str, ...], GpuSpec | None]] = [
    (("gh200",), None),  # H100 or H200 silicon with several memory options: not guessed
    (("h100", "pcie"), GpuSpec("H100 PCIe", 756.0, 2.0)),
    (("h100", "nvl"), GpuSpec("H100 NVL", 835.0, 3.9)),
    (("h200", "nvl"), None),  # lower clocks than the SXM H200: not guessed
    (("h200",), GpuSpec("H200", 989.0, 4.8)),
    (("h100",), GpuSpec("H100 SXM", 989.0, 3.35)),
    (("a100", "40gb"), GpuSpec("A100 40GB", 312.0, 1.555)),
    (("a100",), GpuSpec("A100 80GB", 312.0, 2.0)),
    (("l40s",), GpuSpec("L40S", 362.0, 0.864)),
    (("l4",), GpuSpec("L4", 121.0, 0.3)),
    (("4090",), GpuSpec("RTX 4090", 165.0, 1.008)),
    (("3090",), GpuSpec("RTX 3090", 71.0, 0.936)),
]


def gpu_spec(device_name: str) -> GpuSpec | None:
    """The entry for ``torch.cuda.get_device_name()``, e.g. "NVIDIA H100 80GB HBM3"; None if unknown."""
    tokens = set(device_name.lower().replace("-", " ").replace("_", " ").split())
    for words, spec in GPU_SPECS:
        if all(w in tokens for w in words):
            return spec
    return None


def _matmul_weights(arch: Arch) -> tuple[int, int]:
    """(decoder Linear weights, lm_head weights) -- biases and lookups are no matmul."""
    per_layer = sum(a * b for a, b, _ in arch.linears().values())
    return arch.layers * per_layer, arch.vocab * arch.hidden


def lora_weights(arch: Arch, params: Params, rank: int) -> int:
    lin = arch.linears()
    n = sum(arch.layers * rank * (lin[t][0] + lin[t][1]) for t in params.lora_targets if t in lin)
    return n + (rank * (arch.hidden + arch.vocab) if "lm_head" in params.lora_targets else 0)


def train_step_flops(arch: Arch, params: Params, rank: int, tokens: int, seq_len: int, stage: str = "sft",
                     reference: str | None = None, gradient_checkpointing: bool = True) -> dict[str, float]:
    """FLOPs of one training step on one device (see the module docstring)."""
    layers, head = _matmul_weights(arch)
    lora = lora_weights(arch, params, rank) if params.method in ("lora", "qlora") else 0
    trainable = lora if lora else (layers + head if params.method == "full" else params.trainable)
    attn = 2 * seq_len * arch.q_dim * arch.layers * tokens
    forward = 2 * (layers + head + lora) * tokens + attn
    backward = 2 * (layers + head + lora) * tokens + 2 * attn + 2 * trainable * tokens
    ref = 2 * (layers + head) * tokens + attn if (stage == "dpo" and reference) else 0.0
    recompute = 2 * (layers + lora) * tokens + attn if gradient_checkpointing else 0.0
    model = forward + backward + ref
    return {"forward": float(forward), "backward": float(backward), "reference_forward": float(ref),
            "recompute": float(recompute), "model": float(model), "hardware": float(model + recompute)}


def utilisation(flops: float, seconds: float, spec: GpuSpec | None) -> float | None:
    if spec is None or seconds <= 0:
        return None
    return flops / seconds / (spec.bf16_tflops * 1e12)


def decode_bytes_per_step(arch: Arch, bytes_per_param: float = 2.0) -> float:
    """Weight bytes one decode step reads: every matmul weight once (an untied embedding is a
    lookup of a few rows, not read whole; a tied one is the lm_head and is)."""
    params = arch.total_params() - (0 if arch.tied else arch.embed_params())
    return params * bytes_per_param


def decode_bound(arch: Arch, batch: int, spec: GpuSpec | None, bytes_per_param: float = 2.0) -> dict[str, Any]:
    """Upper bound of decode tokens/s: each step reads all weights once, ``batch`` tokens per step
    (KV-cache reads left out: small next to 16 GB of weights at these lengths)."""
    per_step = decode_bytes_per_step(arch, bytes_per_param)
    if spec is None:
        return {"weight_bytes_per_step": per_step, "bandwidth_tbs": None, "tokens_per_s": None}
    steps = spec.bandwidth_tbs * 1e12 / per_step
    return {"weight_bytes_per_step": per_step, "bandwidth_tbs": spec.bandwidth_tbs, "steps_per_s": steps,
            "tokens_per_s": steps * batch}
