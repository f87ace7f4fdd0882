"""What would fit: the smallest recipe changes that bring the planned peak under ``gpu_mem``.

Each change is searched with the planner's own estimate (:func:`memory.estimate` on the recipe with the
change applied, parameters recounted), never with hand-written numbers. The changes, mildest first
within each:

| change | levels | cost (severity) |
|---|---|---|
| micro-batch | halve ``per_device_train_batch_size``, raise ``gradient_accumulation_steps`` so the sequences per step stay | 1 per halving (slower, same optimisation) |
| gradient checkpointing | ``disable_gradient_checkpointing=false`` when it is off | 1 (about a third slower) |
| ZeRO-2 offload | ``deepspeed=ds_configs/zero2_offload.json`` (optimizer states in CPU RAM) | 2 (slower; needs deepspeed) |
| 4-bit QLoRA | ``quantization_bit=4`` on a LoRA recipe | 3 (the base is quantized) |
| LoRA rank | halve ``lora_rank`` (``lora_alpha`` keeps its ratio) | 3 per halving (a smaller adapter) |
| cutoff_len | the largest multiple of 64 that fits | 3 per halving (longer rows are cut) |

Single changes come first: per kind, its mildest level that fits. When none fits alone, the cheapest
combination (the least total cost, then the fewest kinds) that fits is given.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llamafactory_ext.config import format_value
from llamafactory_ext.plan.arch import Arch
from llamafactory_ext.plan.memory import GIB, estimate, load_deepspeed
from llamafactory_ext.plan.params import count_params

CUTOFF_STEP = 64
OFFLOAD_CONFIG = "ds_configs/zero2_offload.json"


@dataclasses.dataclass
class Level:
    changes: dict[str, Any]
    what: str
    cost: float


@dataclasses.dataclass
class Move:
    kind: str
    levels: list[Level]  # mildest first


def _halvings(value: int, floor: int = 1) -> list[int]:
    out, v = [], value
    while v // 2 >= floor:
        v //= 2
        out.append(v)
    return out


def offload_config(path: str) -> str:
    """``ds_configs/zero2_offload.json`` as ``llamafactory-cli train`` will find it from here (the
    working folder), else the shipped copy's full path."""
    if Path(OFFLOAD_CONFIG).is_file():
        return OFFLOAD_CONFIG
    beside = Path(path).resolve().parent.parent / OFFLOAD_CONFIG
    if beside.is_file():
        return str(beside)
    from llamafactory_ext.shipped import shipped

    return str(shipped(OFFLOAD_CONFIG))


def batch_move(recipe: dict[str, Any]) -> Move:
    b, ga = int(recipe.get("per_device_train_batch_size", 8)), int(recipe.get("gradient_accumulation_steps", 1))
    levels = []
    for nb in _halvings(b):
        nga = math.ceil(b * ga / nb)
        levels.append(Level({"per_device_train_batch_size": nb, "gradient_accumulation_steps": nga},
                            f"micro-batch {b} -> {nb}, accumulation {ga} -> {nga}: {nb * nga} sequences per step as before, slower",
                            math.log2(b / nb)))
    return Move("micro-batch", levels)


def cutoff_move(recipe: dict[str, Any]) -> Move:
    c = int(recipe.get("cutoff_len", 2048))
    levels = [Level({"cutoff_len": n}, f"cutoff_len {c} -> {n}: rows longer than {n} tokens are cut", 3 * math.log2(c / n))
              for n in range((c - 1) // CUTOFF_STEP * CUTOFF_STEP, CUTOFF_STEP - 1, -CUTOFF_STEP)]
    return Move("cutoff_len", levels)


def rank_move(recipe: dict[str, Any]) -> Move:
    r = int(recipe.get("lora_rank", 8))
    alpha = recipe.get("lora_alpha")
    levels = []
    for nr in _halvings(r):
        changes: dict[str, Any] = {"lora_rank": nr}
        what = f"LoRA rank {r} -> {nr}: a smaller adapter"
        if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and (alpha * nr) % r == 0:
            changes["lora_alpha"] = int(alpha * nr // r)
            what += f" (lora_alpha {alpha} -> {changes['lora_alpha']}: same alpha / rank)"
        levels.append(Level(changes, what, 3 * math.log2(r / nr)))
    return Move("LoRA rank", levels)


def moves(recipe: dict[str, Any], method: str, path: str) -> list[Move]:
    """The changes that apply to this recipe (one already in place is not offered)."""
    out = [batch_move(recipe)]
    if recipe.get("disable_gradient_checkpointing"):
        out.append(Move("gradient checkpointing", [Level({"disable_gradient_checkpointing": False},
                                                         "gradient checkpointing on: each layer recomputed in backward, about a third slower", 1)]))
    ds = load_deepspeed(recipe.get("deepspeed"), path)
    if not (ds and ds.offload_optimizer):
        out.append(Move("ZeRO-2 offload", [Level({"deepspeed": offload_config(path)},
                                                 "ZeRO-2, optimizer states in CPU RAM (needs deepspeed; one GPU: FORCE_TORCHRUN=1)", 2)]))
    if method == "lora":
        out.append(Move("4-bit QLoRA", [Level({"quantization_bit": 4}, "4-bit QLoRA: NF4 base weights (bitsandbytes)", 3)]))
    if method in ("lora", "qlora"):
        out.append(rank_move(recipe))
    out.append(cutoff_move(recipe))
    return [m for m in out if m.levels]


def peak_of(arch: Arch, recipe: dict[str, Any], path: str, gpus: int, context_gb: float, frag: float,
            mask_bytes: int) -> Callable[[dict[str, Any]], float]:
    """changes -> the planned peak bytes of the recipe with those changes."""
    def peak(changes: dict[str, Any]) -> float:
        r = {**recipe, **changes}
        ds = load_deepspeed(r.get("deepspeed"), path)
        return float(estimate(arch, r, count_params(arch, r), gpus, ds, context_gb, frag, mask_bytes)["total"])
    return peak


def _mildest(levels: list[Level], fits: Callable[[Level], bool]) -> Level | None:
    """The first level that fits (levels grow monotonically milder -> harsher; bisect long lists)."""
    if len(levels) <= 8:
        return next((lv for lv in levels if fits(lv)), None)
    if not fits(levels[-1]):
        return None
    lo, hi = 0, len(levels) - 1  # hi fits
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(levels[mid]):
            hi = mid
        else:
            lo = mid + 1
    return levels[lo]


def _coarse(levels: list[Level]) -> list[Level]:
    """At most ~8 levels for combinations (every k-th, the harshest kept)."""
    step = max(1, len(levels) // 8)
    return levels[step - 1::step] if step > 1 else levels


def suggest(all_moves: list[Move], peak: Callable[[dict[str, Any]], float], limit: float) -> list[dict[str, Any]]:
    """Single changes that fit, else the cheapest fitting combination; [] when nothing fits."""
    def fits(lv: Level) -> bool:
        return peak(lv.changes) <= limit

    singles = [(m, _mildest(m.levels, fits)) for m in all_moves]
    found = [_entry([m.kind], [lv], peak) for m, lv in singles if lv is not None]
    if found:
        return sorted(found, key=lambda e: e["cost"])
    best = None  # (cost, number of kinds, moves, levels): the least total cost, then the fewest kinds
    for size in range(2, len(all_moves) + 1):
        for combo in itertools.combinations(all_moves, size):
            for levels in itertools.product(*(_coarse(m.levels) for m in combo)):
                key = (sum(lv.cost for lv in levels), size)
                if best is not None and key >= best[:2]:
                    continue
                if peak(_merge(levels)) <= limit:
                    best = (*key, list(combo), list(levels))
    if best is None:
        return []
    moves_, levels = best[2], best[3]
    for k, move in enumerate(moves_):  # a coarse level back to the mildest one that fits, the others kept
        others = levels[:k] + levels[k + 1:]
        levels[k] = _mildest(move.levels, lambda lv, others=others: peak(_merge([*others, lv])) <= limit) or levels[k]
    return [_entry([m.kind for m in moves_], levels, peak)]


def _merge(levels: list[Level]) -> dict[str, Any]:
    return {k: v for lv in levels for k, v in lv.changes.items()}


def _entry(kinds: list[str], levels: list[Level], peak: Callable[[dict[str, Any]], float]) -> dict[str, Any]:
    changes = _merge(levels)
    total = peak(changes)
    return {"kinds": kinds, "changes": changes, "paste": " ".join(f"{k}={format_value(v)}" for k, v in changes.items()),
            "peak_bytes": round(total), "peak_gib": round(total / GIB, 2), "what": "; ".join(lv.what for lv in levels),
            "cost": sum(lv.cost for lv in levels), "combination": len(levels) > 1}


def render(fit: list[dict[str, Any]], limit_gib: float) -> list[str]:
    if not fit:
        return [(f"no change the planner knows (micro-batch, cutoff_len, gradient checkpointing, 4-bit, ZeRO-2 offload, "
                 f"LoRA rank) brings it under {limit_gib:.1f} GiB: more GPUs (gpus=N with ZeRO-3) or a larger card")]
    head = ("changes that fit, one at a time (paste any one; each planned with this estimate):" if not fit[0]["combination"]
            else "no single change fits; the cheapest combination that does:")
    width = max(len(e["paste"]) for e in fit)
    return [head] + [f"  {e['paste']:<{width}}  {e['peak_gib']:6.2f} GiB  {e['what']}" for e in fit]
