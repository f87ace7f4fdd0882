"""One phase of ``plan measure=true`` in its own process, so each starts with an empty GPU:

    python -m llamafactory_ext.plan.child train SPEC.json       (under torchrun for DeepSpeed / several GPUs)
    python -m llamafactory_ext.plan.child generate SPEC.json

``train`` is what ``llamafactory-cli train`` runs (``llamafactory.train.tuner.run_exp``, as its
``launcher.py`` does) with one extra callback, :class:`MemoryProbe`, that writes the readings to
``SPEC["readings"]`` after every step (so an out-of-memory run still leaves them). The final
``save_model`` is skipped: a random-weight result is not worth the disk. ``generate`` loads the
model with the evaluator's HF engine and times ``generate`` at a fixed batch.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from llamafactory_ext.io import atomic_write_json


def _cuda() -> bool:
    return torch.cuda.is_available()


def memory_now() -> dict[str, int]:
    """Allocated / reserved by PyTorch's allocator and used on the whole device (as nvidia-smi shows)."""
    if not _cuda():
        return {}
    free, total = torch.cuda.mem_get_info()
    return {"allocated": torch.cuda.memory_allocated(), "reserved": torch.cuda.memory_reserved(),
            "device_used": total - free}


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"torch": torch.__version__, "python": sys.version.split()[0]}
    for name in ("transformers", "llamafactory", "peft", "deepspeed", "bitsandbytes"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


class Readings:
    """The JSON file the parent reads: written atomically, by rank 0 only."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rank0 = int(os.environ.get("RANK", "0")) == 0
        self.data: dict[str, Any] = {"status": "running", "versions": _versions(), "cuda": _cuda()}
        if _cuda():
            if "LOCAL_RANK" in os.environ:  # under torchrun: this rank's GPU, before a context lands on GPU 0
                torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
            free, total = torch.cuda.mem_get_info()  # creates this process's CUDA context
            self.data.update(device=torch.cuda.get_device_name(), device_total_bytes=total,
                             device_used_at_start=total - free)

    def save(self) -> None:
        if self.rank0:
            atomic_write_json(self.path, self.data)

    def finish(self, status: str, error: str | None = None) -> None:
        self.data["status"] = status
        if error:
            self.data["error"] = error
        self.save()


class MemoryProbe(TrainerCallback):
    """Memory after load, before the first step, and the peak, time and tokens of every step."""

    def __init__(self, readings: Readings) -> None:
        self.readings = readings
        self.data = readings.data
        self.data["steps"] = []
        self._t0 = 0.0
        self._tokens0 = 0

    def _sync(self) -> None:
        if _cuda():
            torch.cuda.synchronize()

    def on_init_end(self, args, state, control, **kwargs):
        self.data["after_load"] = memory_now()  # the model is on the GPU now, unless DeepSpeed moves it later
        self.readings.save()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from llamafactory.extras.misc import count_parameters

        self.data["before_first_step"] = memory_now()
        self.data["world_size"] = args.world_size
        if model is not None:
            self.data["trainable_params"], self.data["all_params"] = count_parameters(model)
        self.readings.save()

    def on_step_begin(self, args, state, control, **kwargs):
        self._sync()
        if _cuda():
            torch.cuda.reset_peak_memory_stats()
        self._start = memory_now()
        self._tokens0 = state.num_input_tokens_seen
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._sync()
        seconds = time.perf_counter() - self._t0
        step: dict[str, Any] = {"step": state.global_step, "seconds": seconds,
                                "tokens": (state.num_input_tokens_seen - self._tokens0) // max(1, args.world_size),
                                "start": self._start, "end": memory_now()}
        if _cuda():
            step.update(peak_allocated=torch.cuda.max_memory_allocated(), peak_reserved=torch.cuda.max_memory_reserved())
        self.data["steps"].append(step)
        self.readings.save()


def _skip_final_save() -> None:
    from transformers import Trainer

    Trainer.save_model = lambda self, *args, **kwargs: None  # type: ignore[method-assign]


def train(spec: dict[str, Any]) -> int:
    from llamafactory.train.tuner import run_exp

    readings = Readings(spec["readings"])
    readings.save()
    _skip_final_save()
    try:
        run_exp(args=spec["args"], callbacks=[MemoryProbe(readings)])
    except torch.OutOfMemoryError as exc:
        if _cuda():  # how far it got: the peak before the failed allocation
            readings.data.update(oom_peak_allocated=torch.cuda.max_memory_allocated(),
                                 oom_peak_reserved=torch.cuda.max_memory_reserved())
        readings.finish("oom", str(exc).strip().splitlines()[0] if str(exc).strip() else "CUDA out of memory")
        return 3
    readings.finish("ok")
    return 0


def _timed_generate(model, input_ids, attention, new_tokens: int, pad_id: int, eos: list[int]) -> float:
    """Seconds for ``generate`` of exactly ``new_tokens`` tokens per row (min_new_tokens holds EOS back)."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.inference_mode():
        model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
                       pad_token_id=pad_id, eos_token_id=eos)
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def generate(spec: dict[str, Any]) -> int:
    from llamafactory_ext.eval.engine import HFEngine

    readings = Readings(spec["readings"])
    batch, prompt, new = int(spec["batch_size"]), int(spec["prompt_tokens"]), int(spec["new_tokens"])
    try:
        engine = HFEngine(spec["model_dir"], batch_size=batch, device="cuda")
        readings.data["weights_allocated"] = torch.cuda.memory_allocated()
        readings.data["dtype"] = str(engine.model.dtype).replace("torch.", "")
        ids = engine.tokenizer(" ciao" * prompt, add_special_tokens=False)["input_ids"][:prompt]
        input_ids = torch.tensor([ids] * batch, device="cuda")
        attention = torch.ones_like(input_ids)
        eos = sorted(engine.eos_ids)
        _timed_generate(engine.model, input_ids, attention, 2, engine.pad_id, eos)  # warm-up
        torch.cuda.reset_peak_memory_stats()
        prefill = _timed_generate(engine.model, input_ids, attention, 1, engine.pad_id, eos)
        total = _timed_generate(engine.model, input_ids, attention, new, engine.pad_id, eos)
    except torch.OutOfMemoryError as exc:
        readings.finish("oom", str(exc).strip().splitlines()[0])
        return 3
    readings.data.update(batch_size=batch, prompt_tokens=len(ids), new_tokens=new, prefill_seconds=prefill,
                         total_seconds=total, decode_seconds=total - prefill,
                         decode_tokens_per_s=batch * (new - 1) / max(total - prefill, 1e-9),
                         peak_allocated=torch.cuda.max_memory_allocated(), peak_reserved=torch.cuda.max_memory_reserved())
    readings.finish("ok")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("train", "generate"):
        print("usage: python -m llamafactory_ext.plan.child train|generate SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    return train(spec) if argv[0] == "train" else generate(spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
