"""Generation engines: prompt token ids in, decoded generations out.

``load_engine(backend, model_name_or_path, adapter_name_or_path=None, **options)`` returns
an engine with a ``tokenizer`` (for ``prompts.PromptEncoder``) and
``generate(prompts: list[list[int]], params: GenParams, on_result=None, progress=None)
-> list[Generation]``, results in prompt order. ``on_result(index, generation)`` is called as
soon as each prompt finishes (per batch for ``hf``, per chunk for ``vllm``) so callers can
append results to disk as they go.

- ``hf``: transformers ``generate``, truly batched: prompts are sorted by length, left
  padded to the longest of each batch (``batch_size``), generated together. CPU or GPU.
  A LoRA adapter is loaded with PEFT and merged.
- ``vllm``: ``vllm.LLM(...).generate`` from ``TokensPrompt(prompt_token_ids=...)`` with
  ``SamplingParams``; a LoRA adapter goes through ``LoRARequest`` (``enable_lora=True``).
  vLLM is imported only when this backend is chosen (``pip install -e ".[vllm]"``).

Greedy decoding is the default (``temperature=0``). ``Generation.finished`` is False when the
output was cut at ``max_new_tokens`` (no end-of-sequence token).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamafactory_ext.config import UserError

BACKENDS = ("hf", "vllm")


class EngineError(UserError):
    """Bad engine input: unknown backend, missing model or adapter path."""


@dataclass(frozen=True)
class GenParams:
    """Sampling parameters shared by both backends (greedy when ``temperature == 0``)."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class Generation:
    text: str
    token_ids: list[int] = field(default_factory=list)
    num_tokens: int = 0
    finished: bool = True  # False: cut at max_new_tokens


OnResult = Callable[[int, Generation], None]


def _looks_local(path: str) -> bool:
    """A path the user means as a local directory (not a Hub id ``owner/name``)."""
    p = str(path)
    if p.startswith(("/", ".", "~")) or p.count("/") != 1 or Path(p).exists():
        return True
    return Path(p.split("/")[0]).is_dir()  # ``models/tiny`` beside a models/ folder: a mistyped path


def check_model_path(path: str | None, what: str = "model_name_or_path") -> None:
    """A clear one-line error for a model or adapter path that cannot work (before loading)."""
    if not path:
        raise EngineError(f"{what} is required")
    p = Path(os.path.expanduser(path))
    if not p.exists():
        if _looks_local(path):
            raise EngineError(f"{what}: path not found: {path}")
        return  # a Hub id: checked when it is loaded
    if p.is_file():
        raise EngineError(f"{what}: {path} is a file; give the folder that holds the "
                          + ("adapter (adapter_config.json)" if "adapter" in what else "model (config.json)"))
    if "adapter" in what:
        if not (p / "adapter_config.json").is_file():
            checkpoints = sorted(p.glob("checkpoint-*"), key=lambda c: int(c.name.split("-")[-1]) if c.name.split("-")[-1].isdigit() else -1)
            if checkpoints:
                raise EngineError(f"{what}: {path} holds no adapter_config.json, only {len(checkpoints)} checkpoint folder(s) "
                                  f"(training did not finish?); pass one of them, e.g. {what}={checkpoints[-1]}")
            raise EngineError(f"{what}: {path} holds no adapter_config.json: not a LoRA adapter folder")
    elif not (p / "config.json").is_file():
        hint = " (it holds a LoRA adapter: pass it as adapter_name_or_path, with its base model)" if (p / "adapter_config.json").is_file() else ""
        raise EngineError(f"{what}: {path} holds no config.json: not a model folder{hint}")


def _load(what: str, path: str, loader: Callable[[], Any]) -> Any:
    """Run a ``from_pretrained``; a missing, private or unreachable model is one line, not a traceback."""
    try:
        return loader()
    except (OSError, ValueError, EnvironmentError) as exc:  # noqa: UP024 - HF raises OSError subclasses
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        offline = " (offline: HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise EngineError(f"cannot load {what} {path!r}{offline}: {reason[:300]}. Check the Hub id, or pass a local folder") from None


DEVICES = "auto, cpu, cuda, cuda:N (a GPU index) or mps"


def resolve_device(device: str | None) -> str:
    """``auto`` (cuda when a GPU is visible, else cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; anything
    else, or a device this machine lacks, is one line naming the accepted ones."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    name, _, index = str(device).partition(":")
    if name not in ("cpu", "cuda", "mps") or (index and (name != "cuda" or not index.isdecimal() or not index.isascii())):
        raise EngineError(f"device={device} is not a device this evaluator runs on; use {DEVICES}")
    if name == "cuda" and not torch.cuda.is_available():
        raise EngineError(f"device={device} but no CUDA GPU is visible (torch.cuda.is_available() is false); use device=cpu")
    if name == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise EngineError(f"device={device} but only {torch.cuda.device_count()} CUDA GPU(s) are visible (cuda:0 ...)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise EngineError(f"device={device} but Apple's MPS backend is not available here; use device=cpu")
    return str(device)


def resolve_dtype(dtype: str | None, device: str) -> str:
    import torch

    if dtype in (None, "", "auto"):
        return "bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"
    if dtype not in ("float32", "bfloat16", "float16"):
        raise EngineError(f"dtype must be auto, float32, bfloat16 or float16, got {dtype!r}")
    return str(dtype)


def _resolve(path: str) -> str:
    p = os.path.expanduser(path)
    return p if Path(p).exists() else path


class Engine:
    """What both backends share: prompts in batches, results in prompt order, ``on_result`` as each
    batch finishes, a progress hook, and freeing the GPU on ``close``. A backend implements
    ``_generate_batch(batch, params, index)``; ``_order`` may regroup prompts (HF: longest first)."""

    def __init__(self, model_name_or_path: str, adapter_name_or_path: str | None, batch_size: int) -> None:
        """Both paths checked before anything loads (a typo fails in a second, not after a download)."""
        check_model_path(model_name_or_path)
        if adapter_name_or_path:
            check_model_path(adapter_name_or_path, "adapter_name_or_path")
        self.model_name_or_path = model_name_or_path
        self.adapter_name_or_path = adapter_name_or_path
        self.batch_size = max(1, int(batch_size))  # prompts per generate call

    def _order(self, prompts: list[list[int]]) -> list[int]:
        return list(range(len(prompts)))

    def _generate_batch(self, batch: list[list[int]], params: GenParams, index: int) -> list[Generation]:
        raise NotImplementedError

    def generate(self, prompts: list[list[int]], params: GenParams, on_result: OnResult | None = None,
                 progress: Any = None, batch_size: int | None = None) -> list[Generation]:
        size = max(1, int(batch_size or self.batch_size))
        order = self._order(prompts)
        results: list[Generation | None] = [None] * len(prompts)
        for b, start in enumerate(range(0, len(order), size)):
            idx = order[start:start + size]
            for i, gen in zip(idx, self._generate_batch([list(prompts[i]) for i in idx], params, b)):
                results[i] = gen
                if on_result is not None:
                    on_result(i, gen)
            if progress is not None:
                progress.update(len(idx))
        return results  # type: ignore[return-value]

    def close(self) -> None:
        """Free the GPU for the next engine (compare loads base, then tuned)."""
        self.model = self.llm = None
        import gc

        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001, S110 - never raise while closing
            pass


class HFEngine(Engine):
    """transformers ``generate``, batched with left padding."""

    backend = "hf"

    def __init__(
        self,
        model_name_or_path: str,
        adapter_name_or_path: str | None = None,
        batch_size: int = 8,
        device: str | None = None,
        dtype: str = "auto",
        merge_adapter: bool = True,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        super().__init__(model_name_or_path, adapter_name_or_path, batch_size)
        self.device = device = resolve_device(device)
        torch_dtype = getattr(torch, resolve_dtype(dtype, device))
        path = _resolve(model_name_or_path)
        self.tokenizer = _load("the tokenizer of", model_name_or_path, lambda: AutoTokenizer.from_pretrained(path))
        model = _load("model", model_name_or_path, lambda: AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype))
        if adapter_name_or_path:
            from peft import PeftModel

            model = _load("adapter", adapter_name_or_path, lambda: PeftModel.from_pretrained(model, _resolve(adapter_name_or_path)))
            if merge_adapter:
                model = model.merge_and_unload()
        self.model = model.to(device).eval()
        gen_cfg = getattr(self.model, "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None) if gen_cfg is not None else None
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(self.tokenizer.eos_token_id)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = getattr(gen_cfg, "pad_token_id", None) or next(iter(self.eos_ids))
        self.pad_id = int(pad)

    def _order(self, prompts: list[list[int]]) -> list[int]:
        # longest first: similar lengths share a batch (less padding) and OOM shows up early
        return sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))

    def _generate_batch(self, batch: list[list[int]], params: GenParams, index: int) -> list[Generation]:
        import torch

        if not params.greedy and params.seed is not None:
            torch.manual_seed(params.seed + index)
        width = max(len(p) for p in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):  # left padding
            if ids:
                input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
                attention[row, width - len(ids):] = 1
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": self.pad_id,
            "eos_token_id": sorted(self.eos_ids),
        }
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device), **kwargs
            )
        new = out[:, width:].tolist()
        results = []
        for seq in new:
            ids: list[int] = []
            finished = False
            for tok in seq:
                if tok in self.eos_ids:
                    finished = True
                    break
                ids.append(tok)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            results.append(Generation(text=text, token_ids=ids, num_tokens=len(ids), finished=finished))
        return results


def _lora_rank_slot(adapter: str, requested: int) -> int:
    """vLLM serves LoRA ranks up to ``max_lora_rank`` (8, 16, 32, 64, 128, 256, ...): raise it to
    fit the adapter's ``r`` (the published Mult-IT rank 24 needs 32)."""
    import json

    rank = requested
    try:
        r = int(json.loads((Path(_resolve(adapter)) / "adapter_config.json").read_text(encoding="utf-8")).get("r") or 0)
    except Exception:  # noqa: BLE001 - a Hub adapter or an unreadable config: keep the request
        r = 0
    while rank < r:
        rank *= 2
    return rank


class VLLMEngine(Engine):
    """``vllm.LLM`` offline generation from prompt token ids; LoRA via ``LoRARequest``.

    The GPU path is verified only where a GPU was available; the test suite checks the
    integration against a fake ``vllm`` module with vLLM's call signatures.
    """

    backend = "vllm"

    def __init__(
        self,
        model_name_or_path: str,
        adapter_name_or_path: str | None = None,
        batch_size: int = 256,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        max_lora_rank: int = 64,
        seed: int = 0,
        **_: Any,
    ) -> None:
        try:
            import vllm  # noqa: F401
            from vllm import LLM
        except ImportError as exc:
            raise EngineError(
                "backend=vllm needs the vllm package (GPU only): pip install -e \".[vllm]\"; or use backend=hf"
            ) from exc
        from transformers import AutoTokenizer

        super().__init__(model_name_or_path, adapter_name_or_path, batch_size)
        self.tokenizer = _load("the tokenizer of", model_name_or_path, lambda: AutoTokenizer.from_pretrained(_resolve(model_name_or_path)))
        kwargs: dict[str, Any] = {
            "model": _resolve(model_name_or_path),
            "tokenizer": _resolve(model_name_or_path),
            "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization,
            "tensor_parallel_size": tensor_parallel_size,
            "seed": seed,
        }
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        self.lora_request = None
        if adapter_name_or_path:
            from vllm.lora.request import LoRARequest

            kwargs.update(enable_lora=True, max_lora_rank=_lora_rank_slot(adapter_name_or_path, max_lora_rank))
            self.lora_request = LoRARequest("adapter", 1, _resolve(adapter_name_or_path))
        self.llm = LLM(**kwargs)

    def _generate_batch(self, batch: list[list[int]], params: GenParams, index: int) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        sampling = SamplingParams(
            n=1,
            temperature=0.0 if params.greedy else params.temperature,
            top_p=1.0 if params.greedy else params.top_p,
            max_tokens=params.max_new_tokens,
            seed=params.seed,
            skip_special_tokens=True,
        )
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in batch], sampling, use_tqdm=False,
                                    lora_request=self.lora_request)
        return [Generation(text=o.outputs[0].text, token_ids=list(o.outputs[0].token_ids), num_tokens=len(o.outputs[0].token_ids),
                           finished=o.outputs[0].finish_reason != "length") for o in outputs]


def load_engine(
    backend: str,
    model_name_or_path: str,
    adapter_name_or_path: str | None = None,
    **options: Any,
) -> HFEngine | VLLMEngine:
    """``hf`` or ``vllm`` engine; options: batch_size, device, dtype (hf); gpu_memory_utilization,
    tensor_parallel_size, max_model_len, max_lora_rank, seed (vllm)."""
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    check_model_path(model_name_or_path)
    if adapter_name_or_path:
        check_model_path(adapter_name_or_path, "adapter_name_or_path")
    if backend == "hf":
        hf_keys = {"batch_size", "device", "dtype", "merge_adapter"}
        return HFEngine(model_name_or_path, adapter_name_or_path, **{k: v for k, v in options.items() if k in hf_keys and v is not None})
    return VLLMEngine(model_name_or_path, adapter_name_or_path, **{k: v for k, v in options.items() if v is not None})
