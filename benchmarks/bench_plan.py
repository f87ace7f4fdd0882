"""Speed of ``llamafactory-ext plan`` and of the random-weight model writer behind ``measure=true``,
next to baselines measured in the same run.

    python benchmarks/bench_plan.py                 # about a minute on a 2-core machine
    python benchmarks/bench_plan.py --layers 8      # a bigger model for the writer (36 = Qwen3-8B, 16 GB)

1. ``plan RECIPE`` as a whole process (import, YAML, recipe keys checked, estimate, text), next to
   ``python -c "import llamafactory.hparams"`` -- what checking the recipe keys against
   LLaMA-Factory's live argument dataclasses would cost on every call (the planner checks them
   against a fixed copy of the 0.9.5 list instead; a test keeps the copy equal to the live list).
   Goal: under a second.
2. ``write_random_model`` for Qwen3-8B's shapes cut to ``--layers`` decoder layers (embeddings and
   lm_head at full size): GB/s of safetensors written, next to writing the same number of bytes
   of one repeated block with plain ``file.writelines`` (the disk's floor on this machine) and to
   drawing every value with ``torch.randn`` (what the pool of random values avoids).

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed_process(args: list[str], runs: int = 3) -> float:
    """Best wall time of ``runs`` runs of a subprocess (seconds)."""
    best = float("inf")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(args, cwd=REPO, env=env, capture_output=True, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def bench_plan() -> None:
    py = sys.executable
    plan_s = timed_process([py, "-m", "llamafactory_ext.cli", "plan", "recipes/v3_mixed.yaml", "gpu_mem=24GB"])
    keys_s = timed_process([py, "-c", "import llamafactory.hparams"], runs=1)
    print(f"plan recipes/v3_mixed.yaml, whole process: {plan_s:.2f} s (best of 3)")
    print(f"  baseline, `import llamafactory.hparams` alone (a live key check's cost): {keys_s:.2f} s")


def bench_writer(layers: int, workdir: Path) -> None:
    import torch

    from llamafactory_ext.plan import RESOURCES
    from llamafactory_ext.plan.random_model import meta_model, write_random_model

    cfg = {**json.loads((RESOURCES / "Qwen3-8B.json").read_text()), "num_hidden_layers": layers}
    meta_model(cfg)  # imports transformers' model code: timed below without it
    t0 = time.perf_counter()
    stamp = write_random_model(cfg, workdir / "model", tokenizer=None)
    seconds = time.perf_counter() - t0
    size = stamp["checkpoint_bytes"]
    print(f"write_random_model, Qwen3-8B shapes with {layers} layers: {size / 1e9:.2f} GB in {seconds:.1f} s "
          f"({size / 1e9 / seconds:.2f} GB/s, Qwen3's tokenizer built too)")
    block = os.urandom(1 << 24)
    t0 = time.perf_counter()
    with open(workdir / "floor.bin", "wb") as fh:
        fh.writelines(block for _ in range(size // len(block) + 1))  # no fsync: the writer does none either
    floor = time.perf_counter() - t0
    print(f"  baseline, plain file.writelines of the same bytes: {floor:.1f} s ({size / 1e9 / floor:.2f} GB/s)")
    n = 1 << 26
    t0 = time.perf_counter()
    torch.empty(n, dtype=torch.float32).normal_(0, 0.02).to(torch.bfloat16)
    per_value = (time.perf_counter() - t0) / n
    print(f"  baseline, torch.randn for every value: {size / 2 * per_value:.1f} s of drawing alone "
          f"({torch.get_num_threads()} threads)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2, help="decoder layers of the Qwen3-8B-shaped model to write")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-plan-"))
    try:
        bench_plan()
        bench_writer(args.layers, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
