"""A model built from its ``config.json`` alone, with random weights: nothing is downloaded.

:func:`meta_model` builds the transformers model class on the meta device (no memory), so its
parameter names and shapes are exactly those of the published checkpoint. :func:`write_random_model`
writes them as a safetensors checkpoint in the config's dtype (bf16 for Qwen3-8B / Llama-3-8B,
about 16 GB), one shard at a time, plus config.json and a tokenizer. LLaMA-Factory's own loader then
reads that folder like any downloaded model, so a ``quantization_bit: 4`` recipe gets bitsandbytes
4-bit Linear layers exactly as it would with the real weights.

The values are N(0, initializer_range) numbers from a 4-million-value random pool, tiled (norm
weights 1, biases 0): right for memory and speed, meaningless for accuracy. Generating and
writing them costs a disk write of the checkpoint size, not a random draw per weight.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

from llamafactory_ext.io import atomic_write_json, atomic_write_text, ensure_dir
from llamafactory_ext.plan.arch import PlanError

STAMP = "random_model.json"
STAMP_VERSION = 1
POOL = 1 << 22
SHARD_BYTES = 2 << 30
# Special tokens of the Llama-3 and Qwen chat formats: the byte-level stand-in tokenizer knows them
# all, so any of LLaMA-Factory's templates renders them as single tokens, as the real tokenizers do.
LLAMA3_SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                   "<|eot_id|>", "<|eom_id|>", "<|python_tag|>")
QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
QWEN3_TOKENS = 151669  # Qwen3's tokenizer: 151,643 BPE ranks + 26 added tokens


def hf_config(cfg: dict[str, Any]):
    """The transformers config object of a config.json dict."""
    from transformers import AutoConfig

    try:
        return AutoConfig.for_model(**cfg)
    except (KeyError, ValueError, TypeError) as exc:
        raise PlanError(f"config.json: transformers cannot build model_type {cfg.get('model_type')!r}: {exc}") from None


def meta_model(cfg: dict[str, Any]):
    """The causal-LM class of ``cfg`` built on the meta device: names and shapes, no memory."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(hf_config(cfg), dtype=checkpoint_dtype(cfg))


def checkpoint_dtype(cfg: dict[str, Any]):
    import torch

    name = str(cfg.get("torch_dtype") or cfg.get("dtype") or "float32").replace("torch.", "")
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise PlanError(f"config.json: unknown dtype {name!r}")
    return dtype


def checkpoint_tensors(model) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of what ``save_pretrained`` would write: each parameter once (a tied lm_head
    is the embedding: kept under its first name) plus persistent buffers."""
    seen: set[int] = set()
    out = []
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        out.append((name, tuple(tensor.shape)))
    return out


def _values(name: str, shape: tuple[int, ...], pool, dtype):
    import torch

    numel = math.prod(shape)
    if name.endswith("norm.weight") or (len(shape) == 1 and "norm" in name):
        return torch.ones(shape, dtype=dtype)
    if name.endswith(".bias"):
        return torch.zeros(shape, dtype=dtype)
    out = torch.empty(numel, dtype=dtype)
    offset = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % POOL
    for start in range(0, numel, POOL):
        n = min(POOL, numel - start)
        out[start:start + n] = pool[offset:offset + n]
    return out.view(shape)


def _shards(tensors: list[tuple[str, tuple[int, ...]]], itemsize: int, shard_bytes: int) -> list[list[tuple[str, tuple[int, ...]]]]:
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in tensors:
        nbytes = math.prod(shape) * itemsize
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += nbytes
    return shards


def _write_weights(cfg: dict[str, Any], out: Path, seed: int, shard_bytes: int) -> int:
    import torch
    from safetensors.torch import save_file

    dtype = checkpoint_dtype(cfg)
    tensors = checkpoint_tensors(meta_model(cfg))
    itemsize = torch.empty((), dtype=dtype).element_size()
    total = sum(math.prod(s) for _, s in tensors) * itemsize
    free = shutil.disk_usage(out).free
    if total > free - (1 << 30):
        raise PlanError(f"model_dir {out}: the random-weight model needs {total / 1e9:.1f} GB of disk, "
                        f"{free / 1e9:.1f} GB are free: pass model_dir=PATH on a larger disk")
    gen = torch.Generator().manual_seed(seed)
    std = float(cfg.get("initializer_range", 0.02))
    pool = torch.empty(2 * POOL, dtype=torch.float32).normal_(0.0, std, generator=gen).to(dtype)
    shards = _shards(tensors, itemsize, shard_bytes)
    weight_map = {}
    for k, shard in enumerate(shards, 1):
        fname = "model.safetensors" if len(shards) == 1 else f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: _values(n, s, pool, dtype).contiguous() for n, s in shard}, str(out / fname),
                  metadata={"format": "pt"})
        weight_map.update({n: fname for n, _ in shard})
    if len(shards) > 1:
        atomic_write_json(out / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    return total


def write_byte_tokenizer(out: Path, model_type: str) -> None:
    """A byte-level stand-in tokenizer (256 byte tokens + the chat formats' special tokens): every
    id fits any vocabulary; token counts, not ids, are what a memory measurement needs."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(LLAMA3_SPECIALS + QWEN_SPECIALS))
    tok.add_tokens(["<think>", "</think>"])
    tok.save(str(out / "tokenizer.json"))
    llama = model_type in ("llama", "mistral")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>" if llama else None,
        "eos_token": "<|eot_id|>" if llama else "<|im_end|>",
        "pad_token": "<|end_of_text|>" if llama else "<|endoftext|>",
        "model_max_length": 1 << 20,
        "clean_up_tokenization_spaces": False,
    }
    atomic_write_json(out / "tokenizer_config.json", config)


def write_tokenizer(out: Path, cfg: dict[str, Any], tokenizer: str | None = None) -> str:
    """A tokenizer whose ids fit ``cfg``'s vocabulary; returns where it came from."""
    vocab = int(cfg["vocab_size"])
    if tokenizer:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(tokenizer)
        except (OSError, ValueError) as exc:
            raise PlanError(f"tokenizer={tokenizer}: cannot load a tokenizer there: {str(exc).splitlines()[0]}") from None
        if len(tok) > vocab:
            raise PlanError(f"tokenizer={tokenizer}: {len(tok):,} tokens do not fit the model's vocabulary of {vocab:,}")
        tok.save_pretrained(str(out))
        return tokenizer
    if cfg.get("model_type") in ("qwen2", "qwen3") and vocab >= QWEN3_TOKENS:
        from llamafactory_ext.fixtures import build_tokenizer_json

        build_tokenizer_json(out)
        return "Qwen3's real vocabulary and ids (llamafactory_ext.fixtures)"
    write_byte_tokenizer(out, str(cfg.get("model_type")))
    return "byte-level stand-in with the Llama-3 / Qwen special tokens"


def write_random_model(cfg: dict[str, Any], out_dir: str | Path, tokenizer: str | None = None, seed: int = 0,
                       shard_bytes: int = SHARD_BYTES) -> dict[str, Any]:
    """``out_dir`` = config.json + random safetensors weights + tokenizer; re-used when a previous
    call wrote the same config, tokenizer and seed there. Returns the stamp (with ``reused``)."""
    out = ensure_dir(out_dir, "model_dir")
    stamp = {"version": STAMP_VERSION, "seed": seed, "tokenizer": tokenizer,
             "config_sha256": hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()}
    stamp_file = out / STAMP
    if stamp_file.is_file():
        old = json.loads(stamp_file.read_text(encoding="utf-8"))
        if {k: old.get(k) for k in stamp} == stamp:
            return {**old, "reused": True}
    stamp_file.unlink(missing_ok=True)
    hf_config(cfg).save_pretrained(str(out))
    stamp["checkpoint_bytes"] = _write_weights(cfg, out, seed, shard_bytes)
    stamp["tokenizer_source"] = write_tokenizer(out, cfg, tokenizer)
    atomic_write_text(stamp_file, json.dumps(stamp, indent=2) + "\n")
    return {**stamp, "reused": False}
