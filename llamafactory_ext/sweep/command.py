"""Train + evaluate a grid of trials over training-recipe keys (e.g. ``lora_rank``), resumable.

``llamafactory-ext sweep SWEEP.yaml [key=value ...]`` expands ``grid`` into trials. Each trial is

1. ``llamafactory-cli train BASE.yaml <fixed> <grid values> <derived> tokenized_path=… output_dir=<sweep>/<trial>``
   (a real subprocess, logged to ``<sweep>/<trial>/train.log``), then
2. the evaluator, ``llamafactory-ext eval EVAL.yaml <overrides> model_name_or_path=… adapter_name_or_path=<trial>
   output_dir=<trial>/eval`` (logged to ``<trial>/eval.log``), when the sweep file has an ``eval`` section.

Sweep file keys (overrides use dots for nested keys: ``grid.lora_rank=[8,16]``, ``fixed.max_steps=10``):
``base``, ``grid``, ``derived`` (``lora_alpha: 2 * lora_rank``), ``fixed``, ``eval``
(``{config: EVAL.yaml, overrides: {...}}``), ``output_dir``, ``name_format`` (``r{lora_rank}``),
``plot_x``, and the run keys shared with ``study``: ``retry_failed``, ``dry_run``, ``max_trials``,
``overwrite``, ``backend`` (``local`` | ``ray``), ``gpus_per_trial``, ``gpus``, ``cpus_per_trial``,
``ray_address``, ``tokenize_once``, ``env``.

Every key and value is checked against LLaMA-Factory's own parser (and ranges such as
``lora_rank >= 1``) before any trial runs. Resuming: a finished trial is skipped, a trial whose
training finished re-runs only its evaluation, a failed one is recorded in ``<trial>/trial.json``
(exit code and log tail) and the sweep goes on; a trial whose commands changed since it ran is
stale: nothing runs until ``overwrite=true`` (it reruns the stale trials, the others are kept). Package layout: ``config`` (keys and checks), ``trials``
(one trial: build and run), ``scheduling`` (local GPU slots, Ray), ``summary`` (Markdown, JSON, CSV, plots).

Outputs: ``summary.md`` (trial | changed keys | trainable | final loss | accuracy per mode [95 % CI] | Δ |
time), ``summary.json`` (everything), ``summary.csv``, one PNG per metric; each finished trial's figures
are logged to TensorBoard in the trial's own ``runs/`` folder, beside its training curves, and to W&B when
the recipe's ``report_to`` names it (``llamafactory_ext.tracking``).
"""

from __future__ import annotations

import shlex
import threading
from pathlib import Path

from llamafactory_ext.io import FolderLock, atomic_write_json, ensure_dir
from llamafactory_ext.sweep.config import (
    RunOptions,
    SweepConfig,
    load_sweep_config,
    show,
)
from llamafactory_ext.sweep.inputs import refuse_stale, stale_trials
from llamafactory_ext.sweep.scheduling import run as run_trials
from llamafactory_ext.sweep.summary import track_trial, write_summary
from llamafactory_ext.sweep.trials import Trial, grid_trials, recorded_status, status

USAGE = "SWEEP.yaml [key=value ...]   (nested keys with dots: grid.lora_rank=[8,16] fixed.max_steps=10)"


def options_help() -> str:
    from llamafactory_ext.config import describe

    return describe(SweepConfig)


def print_plan(trials: list[Trial], statuses: dict[str, str]) -> None:
    print(f"{len(trials)} trial(s):")
    for i, t in enumerate(trials, 1):
        print(f"\n[{i}] {t.name}  ({show(t.params)})  status: {statuses[t.name]}")
        if t.train_cmd:
            print("    train: " + shlex.join(t.train_cmd))
        if t.eval_cmd:
            print("    eval:  " + shlex.join(t.eval_cmd))


def select(trials: list[Trial], cfg: RunOptions, tag: str = "sweep") -> list[Trial]:
    """The trials to run now: not done, not failed (unless retry_failed), at most max_trials; stale
    ones (their inputs changed) stop everything unless overwrite=true, which reruns them."""
    stale = stale_trials(trials)
    refuse_stale(stale, cfg.overwrite)
    todo = []
    for t in trials:
        state = "stale" if t.name in stale else recorded_status(t)
        if state == "stale":
            print(f"[{tag}] rerun {t.name}: stale ({'; '.join(stale[t.name])})", flush=True)
            todo.append(t)
        elif state == "done":
            print(f"[{tag}] skip {t.name}: already done", flush=True)
        elif state == "failed" and not cfg.retry_failed:
            print(f"[{tag}] skip {t.name}: failed before (re-run it with retry_failed=true)", flush=True)
        else:
            todo.append(t)
    if cfg.max_trials is not None and len(todo) > cfg.max_trials:
        print(f"[{tag}] max_trials={cfg.max_trials}: running {cfg.max_trials} of {len(todo)} remaining trial(s)", flush=True)
        todo = todo[: cfg.max_trials]
    return todo


def run_all(trials: list[Trial], cfg: RunOptions, on_done, tag: str = "sweep", before=None) -> list[Trial]:
    """Run the selected trials; ``before()`` runs once the selection passed its checks. One sweep or
    study at a time per output_dir: a second one fails at once (two would train into the same trials)."""
    with FolderLock(cfg.output_dir):
        todo = select(trials, cfg, tag)
        if before is not None:
            before()
        if todo:
            lock = threading.Lock()

            def done(trial: Trial, state: dict) -> None:
                with lock:
                    on_done(trial, state)

            run_trials(todo, cfg, done)
        return todo


def main(argv: list[str]) -> int:
    cfg, where = load_sweep_config(argv)
    trials = grid_trials(cfg, where)
    if cfg.dry_run:
        print_plan(trials, {t.name: status(t) for t in trials})
        return 0
    out_dir = ensure_dir(cfg.output_dir, "output_dir")
    plan = {"sweep": where, "base": cfg.base, "grid": cfg.grid, "derived": cfg.derived,
            "trials": [{"name": t.name, "params": t.params, "train_cmd": shlex.join(t.train_cmd or []),
                        "eval_cmd": shlex.join(t.eval_cmd) if t.eval_cmd else None} for t in trials]}
    group = Path(cfg.output_dir).name

    def finished(trial: Trial, state: dict) -> None:
        if state.get("status") == "done":
            track_trial(trial, group)
        write_summary(out_dir, trials, cfg)

    run_all(trials, cfg, finished, before=lambda: atomic_write_json(out_dir / "sweep_plan.json", plan))
    for t in trials:  # a trial finished by a sweep that was killed before it logged
        if status(t) == "done":
            track_trial(t, group)
    rows = write_summary(out_dir, trials, cfg)
    failed = [r["trial"] for r in rows if r["status"] == "failed"]
    not_run = [r["trial"] for r in rows if r["status"] not in ("done", "failed")]
    print(f"\n[sweep] summary: {out_dir / 'summary.md'} (everything: summary.json, summary.csv)")
    print((Path(out_dir) / "summary.md").read_text(encoding="utf-8"))
    if not_run:
        print(f"[sweep] {len(not_run)} trial(s) not run yet: re-run the same command to resume")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main(sys.argv[1:]))
