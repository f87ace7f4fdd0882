"""Running LLaMA-Factory from here: where ``llamafactory-cli`` is, the environment of a CPU
subprocess, and THE list of overrides a shipped recipe may need on CPU (:data:`CPU_OVERRIDES`; the
laptop profile, :data:`CPU_PROFILE`, adds a small ``cutoff_len``).

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
# The laptop route (`recipes copy NAME profile=cpu`, `sweep` / `study` `profile=cpu`): what a CPU cannot
# do, plus a small packing / truncation length so a step takes seconds, not minutes. The cutoff is kept
# out of CPU_OVERRIDES on purpose: the recipe tests compare LLaMA-Factory's encoding at the recipe's own
# cutoff_len.
CPU_CUTOFF_LEN = 256
CPU_PROFILE: dict[str, object] = {**CPU_OVERRIDES, "cutoff_len": CPU_CUTOFF_LEN}


# transformers 5.6 model types whose vision tower embeds patches with a Conv3d (grep nn.Conv3d in its models/):
# LLaMA-Factory 0.9.5 refuses to load them for training under torch 2.9.x (model/loader.py, pytorch issue 166122).
CONV3D_MODEL_TYPES = ("glm4v", "glm4v_moe", "qwen2_vl", "qwen2_5_vl", "qwen2_5_omni", "qwen3_vl", "qwen3_vl_moe",
                      "qwen3_omni_moe", "qwen3_5", "qwen3_5_moe")


def model_config(model: str | os.PathLike | None) -> dict | None:
    """``config.json`` of a local model folder, or of a Hub id already in the Hugging Face cache; None otherwise."""
    import json

    if not model:
        return None
    path = Path(model, "config.json")
    if not path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(str(model), "config.json")
        except Exception:  # noqa: BLE001 - not a valid repo id: nothing cached
            cached = None
        path = Path(cached) if isinstance(cached, str) else path
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def training_load_problem(model: str | os.PathLike | None) -> str | None:
    """Why ``llamafactory-cli train`` would refuse to load ``model`` on this installation, before it starts (None: no
    known reason). Today: a vision tower with a Conv3d patch embedding (Qwen3.5, Qwen3-VL, ...) under torch 2.9.x."""
    import importlib.metadata

    model_type = (model_config(model) or {}).get("model_type")
    torch_version = importlib.metadata.version("torch")
    if model_type in CONV3D_MODEL_TYPES and torch_version.startswith("2.9."):
        return (f"{model} is a {model_type} model whose vision tower has a Conv3d patch embedding: LLaMA-Factory 0.9.5 refuses "
                f"to train it under torch {torch_version} ('torch 2.9.x with Conv3D', pytorch issue 166122); train it with torch "
                "2.8 or 2.10+ (inspect and eval work as they are)")
    return None


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
