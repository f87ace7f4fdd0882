"""Where and when trials run: one at a time, one per GPU slot, or as Ray tasks.

``local`` runs one trial at a time; with ``G`` visible GPUs and ``gpus_per_trial=g`` it runs ``G // g``
trials at once, each with its own ``CUDA_VISIBLE_DEVICES``; CPU trials run ``parallel`` at a time. ``ray`` hands each trial to a Ray task
(``ray.remote(num_gpus=gpus_per_trial, num_cpus=cpus_per_trial)``) on an existing cluster
(``ray_address``, or ``RAY_ADDRESS``, or a local instance); the output folder must then be on a shared
file system. Trials that share tokenized data run in waves: the first of a group tokenizes
(LLaMA-Factory's ``tokenized_path``), the others wait for the next wave and load it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from llamafactory_ext.io import atomic_write_json, ensure_dir
from llamafactory_ext.sweep.config import RunOptions, SweepError, show
from llamafactory_ext.sweep.trials import Trial, run_recorded

OnDone = Callable[[Trial, dict], None]


def visible_gpus(cfg: RunOptions) -> list[str]:
    if cfg.gpus is not None:
        gpus = cfg.gpus if isinstance(cfg.gpus, list) else str(cfg.gpus).split(",")
        return [str(g).strip() for g in gpus if str(g).strip() != ""]
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() not in ("", "-1")]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def _tokenized_dir(path: str, cwd: str) -> Path:
    return Path(path) if Path(path).is_absolute() else Path(cwd) / path


def _tokenized_ready(path: str | None, cwd: str) -> bool:
    """A complete ``DatasetDict.save_to_disk`` folder: ``dataset_dict.json`` (written first) and, per
    split, ``state.json`` + ``dataset_info.json`` (written after the data)."""
    if path is None:
        return True
    p = _tokenized_dir(path, cwd)
    try:
        splits = json.loads((p / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all((p / s / "state.json").is_file() and (p / s / "dataset_info.json").is_file() for s in splits)


def _next_wave(pending: list[Trial]) -> list[Trial]:
    """All pending trials whose tokenized data exists, plus the first trial of each group that lacks it
    (that one tokenizes; the rest of its group waits for the next wave). A partial folder left by an
    interrupted tokenization is removed first: LLaMA-Factory would try to load any non-empty folder."""
    wave: list[Trial] = []
    opened: set[str] = set()
    for t in pending:
        if _tokenized_ready(t.data_group, t.cwd):
            wave.append(t)
        elif t.data_group not in opened:
            opened.add(t.data_group)  # type: ignore[arg-type]
            partial = _tokenized_dir(t.data_group, t.cwd)  # type: ignore[arg-type]
            if partial.exists():
                print(f"[sweep] removing incomplete tokenized data {partial} (interrupted run)", flush=True)
                shutil.rmtree(partial)
            wave.append(t)
    return wave


class _Reporter:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.started = time.time()
        self.lock = threading.Lock()

    def _eta(self) -> str:
        elapsed = time.time() - self.started
        left = self.total - self.done
        if not left:
            return f"elapsed {_hms(elapsed)}"
        return f"elapsed {_hms(elapsed)}, ETA ~{_hms(elapsed / self.done * left)}"

    def start(self, trial: Trial, where: str) -> None:
        with self.lock:
            print(f"[sweep] start {trial.name} ({show(trial.params)}){where}", flush=True)

    def finish(self, trial: Trial, state: dict) -> None:
        with self.lock:
            self.done += 1
            tag = f"[{self.done}/{self.total}, {self._eta()}]"
            if state.get("status") == "done":
                tp = state.get("trainable_params")
                extra = f", trainable {tp:,}" if isinstance(tp, int) else ""
                print(f"[sweep] {tag} {trial.name}: done{extra}", flush=True)
            else:
                print(
                    f"[sweep] {tag} {trial.name}: FAILED in {state.get('phase')} with exit code {state.get('exit_code')}"
                    f" (log: {state.get('log')})\n" + _indent(state.get("log_tail", "")[-2000:]),
                    flush=True,
                )


def _hms(seconds: float) -> str:
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def run_local(trials: list[Trial], cfg: RunOptions, on_done: OnDone) -> None:
    gpus = visible_gpus(cfg)
    if gpus and cfg.gpus_per_trial > 0:
        if cfg.gpus_per_trial > len(gpus):
            raise SweepError(f"gpus_per_trial={cfg.gpus_per_trial} but only {len(gpus)} GPU(s) are visible: {gpus}")
        slots = [gpus[i:i + cfg.gpus_per_trial] for i in range(0, len(gpus) - cfg.gpus_per_trial + 1, cfg.gpus_per_trial)]
    else:
        slots = [None] * cfg.parallel  # CPU trials: `parallel` at a time, environment unchanged
    reporter = _Reporter(len(trials))
    pending = list(trials)
    if len(slots) == 1:
        while pending:
            for t in _next_wave(pending):
                pending.remove(t)
                reporter.start(t, f" on GPU {','.join(slots[0])}" if slots[0] else "")
                state = run_recorded(t, slots[0])
                reporter.finish(t, state)
                on_done(t, state)
        return
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    free = list(slots)
    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        while pending:
            wave = _next_wave(pending)
            futures = {}
            queue = list(wave)
            while queue or futures:
                while queue and free:
                    t = queue.pop(0)
                    pending.remove(t)
                    slot = free.pop(0)
                    reporter.start(t, f" on GPU {','.join(slot)}" if slot else "")
                    futures[pool.submit(run_recorded, t, slot)] = (t, slot)
                finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for fut in finished:
                    t, slot = futures.pop(fut)
                    free.append(slot)
                    state = fut.result()
                    reporter.finish(t, state)
                    on_done(t, state)


def run_ray(trials: list[Trial], cfg: RunOptions, on_done: OnDone) -> None:
    try:
        import ray
    except ImportError:
        raise SweepError("backend=ray needs the 'ray' package: pip install 'ray[default]'") from None
    if not ray.is_initialized():
        address = cfg.ray_address or os.environ.get("RAY_ADDRESS")
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    have = ray.cluster_resources().get("GPU", 0)
    if cfg.gpus_per_trial > have:
        raise SweepError(
            f"backend=ray: each trial asks for num_gpus={cfg.gpus_per_trial} but the Ray cluster has {have:g} GPU(s); "
            "set gpus_per_trial (0 for CPU-only trials) or ray_address"
        )
    task = ray.remote(num_gpus=cfg.gpus_per_trial, num_cpus=cfg.cpus_per_trial, max_retries=0)(run_recorded)
    reporter = _Reporter(len(trials))
    pending = list(trials)
    while pending:
        wave = _next_wave(pending)
        refs = {}
        for t in wave:
            pending.remove(t)
            reporter.start(t, f" as a Ray task (num_gpus={cfg.gpus_per_trial})")
            refs[task.remote(t)] = t
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                t = refs.pop(ref)
                try:
                    state = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the worker died: record it, go on
                    state = {"name": t.name, "params": t.params, "status": "failed", "phase": "ray",
                             "exit_code": None, "log_tail": str(exc)[-2000:]}
                    atomic_write_json(ensure_dir(t.path(), "trial folder") / "trial.json", state)
                reporter.finish(t, state)
                on_done(t, state)


def run(trials: list[Trial], cfg: RunOptions, on_done: OnDone) -> None:
    (run_ray if cfg.backend == "ray" else run_local)(trials, cfg, on_done)
