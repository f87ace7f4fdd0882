"""Running LLaMA-Factory from here: where ``llamafactory-cli`` is, the environment of a CPU
subprocess, and THE list of overrides a shipped recipe may need on CPU.

Ground floor (it imports only ``config``): the sweep's trials, the demo, ``plan`` and the tests use
it. Keep :data:`CPU_OVERRIDES` short: a recipe that needs more than this to run on CPU with the tiny
fixture is a bug in the recipe.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from llamafactory_ext.config import overrides_of

CPU_OVERRIDES: dict[str, object] = {
    "bf16": False,                 # no bf16 kernels on the CI CPU
    "fp16": False,
    "quantization_bit": None,      # bitsandbytes needs CUDA
    "deepspeed": None,             # ZeRO needs a GPU + torchrun
    "flash_attn": "auto",          # flash-attn 2 is a GPU extra
    "optim": "adamw_torch",        # 8-bit AdamW is bitsandbytes (CUDA)
    "report_to": "none",
}


def tiny_train_overrides(
    model_dir: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    max_steps: int = 2,
) -> list[str]:
    """``key=value`` overrides that run a shipped recipe on the tiny model on CPU."""
    keys: dict[str, object] = {
        "model_name_or_path": str(model_dir),
        "dataset_dir": str(dataset_dir),
        "output_dir": str(output_dir),
        "max_steps": max_steps,
        **CPU_OVERRIDES,
    }
    return overrides_of(keys)


def cpu_env(base: dict[str, str] | None = None, threads: int | None = None) -> dict[str, str]:
    """Environment for a ``llamafactory-cli`` subprocess on CPU, offline.

    ``threads``: OpenMP / MKL threads per process. One thread per process is what lets two
    processes share a 2-core machine: with two threads each, every parallel region waits for a
    descheduled thread and a tiny model's step gets ~5 times slower (measured: 0.2 s -> 1 s)."""
    env = dict(os.environ if base is None else base)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.update(
        {
            "CUDA_VISIBLE_DEVICES": "",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "TOKENIZERS_PARALLELISM": "false",
            "WANDB_DISABLED": "true",
            "DISABLE_VERSION_CHECK": "1",
        }
    )
    env.pop("FORCE_TORCHRUN", None)
    return env


def llamafactory_cli() -> str:
    """Path of the ``llamafactory-cli`` next to the running interpreter (the venv's)."""
    candidate = Path(sys.executable).parent / "llamafactory-cli"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("llamafactory-cli")
    if not found:
        raise RuntimeError("llamafactory-cli not found: install llamafactory==0.9.5")
    return found
