"""The demo's own wall time, stage by stage, on a fresh output folder (the goal: at most 5 minutes on
2 cores after the set-up), with the CPU time of its process tree and the load average around it (the
machine may be shared: a loaded machine stretches the wall time, not the CPU time); then, measured in
the same run, what its speed choices buy: a training step of the small-vocabulary tiny Qwen3 against
the full-vocabulary one, and one thread per process against two.

    .venv/bin/python benchmarks/bench_demo.py [--keep DIR] [--runs N] [--seeds 1,2] [--skip-demo] [--skip-steps]

--runs N     N fresh runs of the same demo: are their tables identical? (the README's table is one)
--seeds a,b  one more fresh run per fixture seed (seed=a ...): how far another initialisation moves
             the held-out table (the spread a reader may expect from a change of seed)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP = r"""
import sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained(sys.argv[1]); m.train()
x = torch.randint(0, 800, (4, 256))
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
times = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter(); m(input_ids=x, labels=x).loss.backward(); opt.step(); opt.zero_grad(); times.append(time.perf_counter() - t)
times.sort(); print(times[len(times) // 2])
"""


def step_time(model: Path, threads: int, steps: int = 12, busy: bool = False) -> float:
    """Median seconds per training step (4 x 256 tokens, full-parameter); ``busy``: while a second
    process does the same on the other core (as the demo's two parallel trials do)."""
    cmd = [sys.executable, "-c", STEP, str(model), str(threads), str(steps)]
    other = subprocess.Popen([sys.executable, "-c", STEP, str(model), str(threads), str(steps * 3)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if busy else None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    finally:
        if other is not None:
            other.kill()
            other.wait()
    return float(out)


def run_demo(out: Path, *overrides: str) -> dict | None:
    """One fresh demo run: its summary.json plus the wall time, the CPU time of its process tree and
    the load average before and after; None (and the log tail printed) when it failed."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "GRADIO_ANALYTICS_ENABLED": "False"}
    load, before = os.getloadavg()[0], resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "llamafactory_ext.cli", "demo", f"output_dir={out}", "force=true", *overrides],
                          env=env, capture_output=True, text=True, check=False)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return None
    summary = json.loads((out / "summary.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**summary, "wall": wall, "cpu": cpu, "load": (load, os.getloadavg()[0]), "out": out}


def tables(out: Path) -> list[str]:
    """The report's result lines (held-out and trained tables, the checks), without the timings."""
    lines = (out / "report.md").read_text(encoding="utf-8").splitlines()
    return lines[:lines.index("## What ran")]


def show(run: dict, label: str) -> None:
    print(f"\n{label}: {run['wall']:.0f} s wall ({run['wall'] / 60:.1f} min; goal <= 5 min), "
          f"{run['cpu']:.0f} s CPU (user + sys of the process tree), load average {run['load'][0]:.2f} -> {run['load'][1]:.2f}")
    for stage, seconds in run["timings_s"].items():
        print(f"  {stage:<10} {seconds:7.1f} s")
    for c in run["checks"]:
        verdict = {True: "yes", False: "NO", None: "reported"}[c["ok"]]
        p = "< 1e-6" if c["p_value"] < 1e-6 else f"= {c['p_value']:.2g}"
        print(f"  held-out: {c['version']} {c['mode']:<7} {c['claim']:<9} {c['delta']:+6.1f} pp  p {p}  -> {verdict}")
    print(f"  the published finding reproduced on the held-out questions: {run['finding_reproduced']}")


def held_out_accuracy(out: Path) -> dict[str, float]:
    study = json.loads((out / "study" / "study.json").read_text())
    return {f"{v['name']} {m}": 100 * v["modes"][m]["groups"]["held-out questions"]["accuracy"]
            for v in study["versions"] for m in ("nothink", "think") if m in v["modes"]}


def demos(root: Path, runs: int, seeds: list[str]) -> int:
    done = []
    for i in range(runs):
        run = run_demo(root / f"demo{i + 1}")
        if run is None:
            return 1
        show(run, f"demo, fresh run {i + 1}")
        done.append(run)
    if runs > 1:
        same = all(tables(r["out"]) == tables(done[0]["out"]) for r in done[1:])
        print(f"\n{runs} fresh runs print identical tables: {same}")
    spread = [held_out_accuracy(done[0]["out"])] if done else []
    for seed in seeds:
        run = run_demo(root / f"seed{seed}", f"seed={seed}")
        if run is None:
            return 1
        show(run, f"demo, fixture seed={seed}")
        spread.append(held_out_accuracy(run["out"]))
    if len(spread) > 1:
        print(f"\nheld-out accuracy (%) over {len(spread)} fixture seeds (0{''.join(', ' + s for s in seeds)}): min / max")
        for key in spread[0]:
            values = [s[key] for s in spread if key in s]
            print(f"  {key:<16} {min(values):5.1f} / {max(values):5.1f}")
    return 0


def steps(root: Path) -> None:
    from llamafactory_ext.fixtures import build_tiny_qwen3

    full = build_tiny_qwen3(root / "full", num_layers=4, hidden_size=128)
    small = build_tiny_qwen3(root / "small", num_layers=4, hidden_size=128, vocab="small")
    print("\ntraining step, 4 x 256 tokens, the demo's model shape (4 layers, hidden 128), median of 12:")
    s1, f1 = step_time(small, 1), step_time(full, 1)
    print(f"  small vocabulary (demo):         {s1:.3f} s")
    print(f"  full Qwen3 vocabulary (151,936): {f1:.3f} s   ({f1 / s1:.1f}x slower)")
    a2 = step_time(small, 2)
    print(f"  small vocabulary, 2 threads:     {a2:.3f} s   (alone; the demo pins one thread, also for the warm-up)")
    b1, b2 = step_time(small, 1, busy=True), step_time(small, 2, busy=True)
    print("with a second training process on the other core (the study runs two trials at once):")
    print(f"  1 thread per process (demo):     {b1:.3f} s")
    print(f"  2 threads per process:           {b2:.3f} s   ({b2 / b1:.1f}x slower)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", help="run the demo in this folder (default: a temporary one)")
    ap.add_argument("--runs", type=int, default=1, help="fresh runs of the default demo (2: are the tables identical?)")
    ap.add_argument("--seeds", default="", help="comma-separated fixture seeds to run besides (the spread over seeds)")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-steps", action="store_true")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="bench-demo-"))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the run")
    if not args.skip_demo and demos(root, args.runs, [s for s in args.seeds.split(",") if s]):
        return 1
    if not args.skip_steps:
        steps(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
