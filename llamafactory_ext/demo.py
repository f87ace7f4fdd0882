"""The main job: the format study in miniature, on a tiny Qwen3, on CPU, offline, in a few minutes.

    llamafactory-ext demo                          # writes demo_out/ (report.md first)
    llamafactory-ext demo output_dir=/tmp/demo     # elsewhere
    llamafactory-ext demo dry_run=true             # every command, nothing run

The published finding: the format of the training data decides which thinking mode improves
(V1 non-thinking rows, V2 thinking rows, V3 both). The demo runs the same study, with the shipped
recipes, on a model small enough for a CPU:

  1. fixture   a random tiny Qwen3 (Qwen's byte-level BPE cut to the few thousand tokens of the shipped texts)
  2. data      `llamafactory-ext prepare` on the shipped demo files: warm-up questions (with teacher
               traces and plain answers) and the study's questions (V1 / V2 / V3 data)
  3. warm-up   `llamafactory-cli train recipes/v3_mixed.yaml finetuning_type=full` on the warm-up
               questions: the base learns both answer formats and writes every word the LoRA will
               later need, but knows nothing of the study's questions
  4. study     `llamafactory-ext study`: the base evaluated once, then recipes/v1_nothink.yaml,
               v2_think.yaml and v3_mixed.yaml as LoRA on the study's questions, each evaluated in
               both modes on those questions and on held-out ones, with Δ and McNemar p-values
  5. report    report.md: the miniature Version Series next to the published one

Every command runs in OUTPUT_DIR (its recipes/ holds unchanged copies of the shipped recipes)
and is written to commands.sh; the only recipe overrides are the tiny-model / CPU ones, listed in
the report. Re-running reuses finished stages (force=true redoes them).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llamafactory_ext.config import (
    UserError,
    describe,
    format_value,
    from_argv,
    option,
    overrides_of,
)
from llamafactory_ext.io import (
    atomic_write_json,
    atomic_write_text,
    check_settings,
    ensure_dir,
)

USAGE = "[key=value ...]"
RECIPES = ("v1_nothink", "v2_think", "v3_mixed")
VERSIONS = (("V1", "v1_nothink", "non-thinking rows: the answer letter"),
            ("V2", "v2_think", "thinking rows: <think> trace + letter"),
            ("V3", "v3_mixed", "mixed: a thinking row and a non-thinking row per question"))
DEMO_FILES = ("warmup_quiz.json", "study_quiz.json", "eval_quiz.json", "traces.jsonl")
GROUPS = ("trained questions", "held-out questions")


class DemoError(UserError):
    pass


@dataclasses.dataclass
class DemoConfig:
    output_dir: str = option("demo_out", "report folder (models, data, study, report.md, commands.sh)")
    num_layers: int = option(4, "tiny model: decoder layers", ge=1, le=8)
    hidden_size: int = option(128, "tiny model: hidden size", ge=16, le=512)
    seed: int = option(0, "tiny model: init seed")
    warmup_epochs: float = option(30.0, "full-parameter warm-up epochs over the warm-up questions", gt=0)
    warmup_lr: float = option(5e-3, "warm-up learning rate", gt=0)
    train_epochs: float = option(30.0, "LoRA epochs of every version (V3 has two rows per question: twice the steps)", gt=0)
    train_lr: float = option(1e-2, "LoRA learning rate of every version", gt=0)
    cutoff_len: int = option(256, "packing length of every run (the recipes pack at 2048)", ge=32)
    max_new_tokens: int = option(64, "evaluation budget per answer (a demo trace is ~35 tokens)", ge=8)
    force: bool = option(False, "redo every stage")
    dry_run: bool = option(False, "print the commands, run nothing")


def options_help() -> str:
    return describe(DemoConfig)


@dataclasses.dataclass
class Stage:
    name: str
    title: str
    commands: list[list[str]]      # run in OUTPUT_DIR; argv[0] names a console script of this venv
    outputs: list[str]             # relative paths that exist once the stage is done
    show: tuple[str, ...] = ()     # log lines echoed to the console
    clean: tuple[str, ...] = ()    # removed before the stage runs again ...
    resumable: bool = False        # ... unless it resumes by itself (then only when redone from scratch)
    complete: Callable[[Path], bool] | None = None  # more than the outputs' existence
    inputs: tuple[str, ...] = ()   # files whose content is part of what the stage runs (study.yaml)
    threads: int | None = None     # OpenMP threads (default: the demo's one per process)


def study_complete(out: Path) -> bool:
    try:
        study = json.loads((out / "study" / "study.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(study["versions"]) and all(v["status"] == "done" for v in study["versions"])


# ---------------------------------------------------------------------------------------------
# what the demo runs
# ---------------------------------------------------------------------------------------------
def cpu_overrides(cfg: DemoConfig, lr: float, epochs: float) -> dict[str, Any]:
    """The tiny-model / CPU overrides of every training run (the report lists them)."""
    from llamafactory_ext.runtime import CPU_OVERRIDES

    return {**CPU_OVERRIDES, "learning_rate": lr, "num_train_epochs": epochs, "cutoff_len": cfg.cutoff_len,
            "gradient_accumulation_steps": 1, "logging_steps": 10, "save_steps": 100000}


def study_file(cfg: DemoConfig) -> dict[str, Any]:
    return {
        "title": "Format study in miniature (tiny Qwen3 on CPU, Mult-IT-style questions)",
        "output_dir": "study",
        "model": "models/tiny-qwen3-base",
        "versions": [{"name": n, "recipe": f"recipes/{r}.yaml", "format": f} for n, r, f in VERSIONS],
        "train_overrides": {"dataset_dir": "data", **cpu_overrides(cfg, cfg.train_lr, cfg.train_epochs)},
        "eval": {"config": "eval.yaml", "overrides": {}},
        "headline": list(GROUPS),
        "published": True,
        "gpus_per_trial": 0,
        "parallel": min(2, os.cpu_count() or 1),  # one thread each (cpu_env): two trials share two cores
        "env": {"CUDA_VISIBLE_DEVICES": ""},
    }


def eval_file(cfg: DemoConfig) -> dict[str, Any]:
    return {"task": "multit", "source": "demo_data/eval_quiz.json", "template": "qwen3", "device": "cpu",
            "dtype": "float32", "batch_size": 64, "max_new_tokens": cfg.max_new_tokens, "progress": False}


def stages(cfg: DemoConfig) -> list[Stage]:
    random_dir, base_dir = "models/tiny-qwen3-random", "models/tiny-qwen3-base"
    warm = {"model_name_or_path": random_dir, "dataset_dir": "warmup_data", "output_dir": base_dir,
            "finetuning_type": "full", **cpu_overrides(cfg, cfg.warmup_lr, cfg.warmup_epochs)}
    prepare = [["llamafactory-ext", "prepare", "multit_mixed", "source=demo_data/warmup_quiz.json",
                "traces=demo_data/traces.jsonl", "mix=all", "out_dir=warmup_data"]]
    prepare += [["llamafactory-ext", "prepare", name, "source=demo_data/study_quiz.json", "out_dir=data",
                 *(["traces=demo_data/traces.jsonl"] if name != "multit_nothink" else []), *(["mix=all"] if name == "multit_mixed" else [])]
                for name in ("multit_nothink", "multit_think", "multit_mixed")]
    return [
        Stage("fixture", f"random tiny Qwen3 ({cfg.num_layers} layers, hidden {cfg.hidden_size}), Qwen's BPE cut to the shipped texts",
              [["llamafactory-ext", "fixture", f"out_dir={random_dir}", f"num_layers={cfg.num_layers}",
                f"hidden_size={cfg.hidden_size}", f"seed={cfg.seed}", "vocab=small"]], [f"{random_dir}/config.json"],
              clean=(random_dir,)),
        Stage("data", "shipped demo files -> LLaMA-Factory data (warm-up; V1 / V2 / V3)", prepare,
              ["warmup_data/multit_mixed.jsonl", *[f"data/{n}.jsonl" for n in ("multit_nothink", "multit_think", "multit_mixed")]],
              ("wrote", "dropped"), inputs=tuple(f"demo_data/{n}" for n in DEMO_FILES)),
        Stage("warm-up", f"full-parameter SFT of the random model on the warm-up questions, {cfg.warmup_epochs:g} epochs",
              [["llamafactory-cli", "train", "recipes/v3_mixed.yaml", *overrides_of(warm)]], [f"{base_dir}/model.safetensors"],
              ("trainable params", "train_runtime"), clean=(base_dir,), inputs=("recipes/v3_mixed.yaml",),
              threads=os.cpu_count()),  # it runs alone: every core
        Stage("study", "baseline + V1 / V2 / V3 LoRA from the shipped recipes, both thinking modes",
              [["llamafactory-ext", "study", "study.yaml"]], ["study/study.json"], ("[study]", "[sweep]"),
              clean=("study",), resumable=True, complete=study_complete,
              inputs=("study.yaml", "eval.yaml", *(f"recipes/{r}.yaml" for r in RECIPES))),
    ]


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------
def _bin(name: str) -> str:
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.is_file() else name


def setup(out: Path, cfg: DemoConfig) -> None:
    """Recipes (unchanged copies), the demo's data files and the study / eval files, in OUTPUT_DIR."""
    import yaml

    from llamafactory_ext.shipped import resource, shipped

    ensure_dir(out / "recipes", "output_dir")
    for name in RECIPES:
        shutil.copyfile(shipped(f"recipes/{name}.yaml"), out / "recipes" / f"{name}.yaml")
    ensure_dir(out / "demo_data")
    for name in DEMO_FILES:
        shutil.copyfile(resource(f"demo/{name}"), out / "demo_data" / name)
    atomic_write_text(out / "study.yaml", yaml.safe_dump(study_file(cfg), sort_keys=False, allow_unicode=True))
    atomic_write_text(out / "eval.yaml", yaml.safe_dump(eval_file(cfg), sort_keys=False, allow_unicode=True))


def run_command(argv: list[str], out: Path, env: dict[str, str], log: Path, show: tuple[str, ...]) -> None:
    with open(log, "a", encoding="utf-8") as fh:
        fh.write("$ " + shlex.join(argv) + "\n")
        fh.flush()
        proc = subprocess.Popen([_bin(argv[0]), *argv[1:]], cwd=out, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert proc.stdout is not None
        for raw in proc.stdout:
            fh.write(raw)
            for part in raw.replace("\r", "\n").split("\n"):
                if any(s in part for s in show):
                    print(f"    {part.strip()[:160]}", flush=True)
        code = proc.wait()
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise DemoError(f"command failed (exit {code}): {shlex.join(argv)}\n--- {log} (tail) ---\n{tail}")


def stage_settings(stage: Stage, out: Path, before: dict[str, Any] | None) -> dict[str, Any]:
    """What a stage depends on: its commands, the content identity of the files they read
    (``provenance``), and everything before it (a new warm-up invalidates the study even though the
    study's own command did not change), so a rerun says what changed: ``inputs.study.yaml: content
    changed (sha 3f2a9c… -> 9b41e0…)``, ``after.commands[0][3]: 'a1' -> 'a2'``."""
    from llamafactory_ext import provenance

    inputs = {p: {**provenance.identify(out / p), "path": p} for p in stage.inputs if (out / p).exists()}
    return {"commands": stage.commands, "inputs": inputs, "after": before}


def run_stage(stage: Stage, out: Path, env: dict[str, str], force: bool, before: dict[str, Any] | None = None) -> tuple[float, bool]:
    """(seconds, reused): a stage whose settings (``stage_settings``) and outputs are unchanged is not run again."""
    record = out / "stages" / f"{stage.name}.json"
    changed = check_settings(out / "stages" / f"{stage.name}.settings.json", stage_settings(stage, out, before),
                             overwrite=True, what=f"stage {stage.name}", has_outputs=record.is_file(),
                             discard=lambda: record.unlink(missing_ok=True))  # the stage is not done before the record changes
    finished = all((out / p).exists() for p in stage.outputs) and (stage.complete is None or stage.complete(out))
    if not force and changed == "same" and record.is_file() and finished:
        return float(json.loads(record.read_text())["seconds"]), True
    record.unlink(missing_ok=True)
    if not stage.resumable or force or changed != "same":
        for rel in stage.clean:
            shutil.rmtree(out / rel, ignore_errors=True)
    log = out / "logs" / f"{stage.name}.log"
    log.unlink(missing_ok=True)
    if stage.threads:
        env = {**env, "OMP_NUM_THREADS": str(stage.threads), "MKL_NUM_THREADS": str(stage.threads)}
    started = time.perf_counter()
    for argv in stage.commands:
        print(f"  $ {shlex.join(argv)}", flush=True)
        run_command(argv, out, env, log, stage.show)
    if stage.complete is not None and not stage.complete(out):
        raise DemoError(f"stage {stage.name} did not finish; its log: {log}")
    seconds = time.perf_counter() - started
    atomic_write_json(record, {"seconds": round(seconds, 1)})
    return seconds, False


def write_commands(out: Path, plan: list[Stage], env: dict[str, str]) -> None:
    lines = ["#!/usr/bin/env bash", f"# Commands of `llamafactory-ext demo`, run in {out} (this folder).",
             f"export PATH={Path(sys.executable).parent}:$PATH",
             *(f"export {k}={shlex.quote(env[k])}" for k in ("CUDA_VISIBLE_DEVICES", "HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM") if k in env),
             "set -euo pipefail", f"cd {shlex.quote(str(out))}"]
    for i, stage in enumerate(plan, 1):
        lines += [f"\n# --- stage {i}/{len(plan)}: {stage.name}: {stage.title}", *(shlex.join(a) for a in stage.commands)]
    atomic_write_text(out / "commands.sh", "\n".join(lines) + "\n")


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    from llamafactory_ext.runtime import cpu_env

    out = ensure_dir(Path(cfg.output_dir).resolve(), "output_dir")
    env = {**cpu_env(threads=1), "PYTHONUNBUFFERED": "1"}
    plan = stages(cfg)
    setup(out, cfg)
    write_commands(out, plan, env)
    timings: dict[str, float] = {}
    reused: list[str] = []
    before: dict[str, Any] | None = None
    started = time.perf_counter()
    for i, stage in enumerate(plan, 1):
        print(f"[demo {i}/{len(plan) + 1}] {stage.name}: {stage.title}", flush=True)
        if cfg.dry_run:
            for argv in stage.commands:
                print(f"  $ {shlex.join(argv)}")
            continue
        ensure_dir(out / "logs")
        timings[stage.name], was_reused = run_stage(stage, out, env, cfg.force, before)
        before = stage_settings(stage, out, before)
        reused += [stage.name] if was_reused else []
        print(f"  {'reused (finished earlier in' if was_reused else 'done in'} {timings[stage.name]:.1f} s{')' if was_reused else ''}", flush=True)
    if cfg.dry_run:
        print(f"(dry run: nothing was run; commands in {out / 'commands.sh'})")
        return {}
    print(f"[demo {len(plan) + 1}/{len(plan) + 1}] report: report.md, summary.json", flush=True)
    wall = time.perf_counter() - started + sum(timings[k] for k in reused)
    return write_report(cfg, out, timings, reused, wall)


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def beats(study: dict[str, Any]) -> list[dict[str, Any]]:
    """Per version and trained mode: is the version's 95 % interval on the trained questions entirely
    above the baseline's? (V1 trains non-thinking, V2 thinking, V3 both.)"""
    trained_modes = {"V1": ("nothink",), "V2": ("think",), "V3": ("nothink", "think")}
    rows = {r["name"]: r for r in study["versions"]}
    base = rows.get("baseline", {"modes": {}})
    out = []
    for name, modes in trained_modes.items():
        for mode in modes:
            b = ((base["modes"].get(mode) or {}).get("groups") or {}).get(GROUPS[0])
            v = ((rows.get(name, {"modes": {}})["modes"].get(mode) or {}).get("groups") or {}).get(GROUPS[0])
            if b and v:
                out.append({"version": name, "mode": mode, "baseline": b["ci95"], "version_ci": v["ci95"],
                            "beats": v["ci95"][0] > b["ci95"][1]})
    return out


def report_lines(cfg: DemoConfig, study: dict[str, Any], checks: list[dict[str, Any]]) -> list[str]:
    lines = ["# llamafactory-ext demo: the format study in miniature", "",
             ("A random tiny Qwen3 learns, in a full-parameter warm-up, to answer multiple-choice questions in both "
             "formats on one set of questions; the shipped V1 / V2 / V3 recipes then train LoRA adapters on another "
             "set, which the base never saw. Every model answers those questions (and held-out ones) in both modes."),
             "", "## The Version Series, in miniature", ""]
    study_md = (Path(cfg.output_dir).resolve() / "study" / "study.md").read_text(encoding="utf-8")
    lines += study_md.split("\n", 2)[2].splitlines()
    lines += ["", ("Does each version beat the base on the questions it trained on, in the mode(s) it trained, by more than "
              "the 95 % interval (its interval entirely above the base's)?"), ""]
    for c in checks:
        lines.append(f"- {c['version']} {c['mode']}: base [{100 * c['baseline'][0]:.1f}, {100 * c['baseline'][1]:.1f}], "
                     f"{c['version']} [{100 * c['version_ci'][0]:.1f}, {100 * c['version_ci'][1]:.1f}]: "
                     + ("yes" if c["beats"] else "NO"))
    return lines


def write_report(cfg: DemoConfig, out: Path, timings: dict[str, float], reused: list[str], wall: float) -> dict[str, Any]:
    study = json.loads((out / "study" / "study.json").read_text(encoding="utf-8"))
    checks = beats(study)
    lines = report_lines(cfg, study, checks)
    over = study_file(cfg)["train_overrides"]
    lines += ["", "## What ran", "",
              ("- the shipped recipes, unchanged copies in `recipes/`; warm-up: `recipes/v3_mixed.yaml` with "
              "`finetuning_type=full` (and its own data, learning rate and epochs below)."),
              "- tiny-model / CPU overrides of every training run: " + ", ".join(f"`{k}={format_value(v)}`" for k, v in over.items()),
              (f"- warm-up: `learning_rate={format_value(cfg.warmup_lr)}`, `num_train_epochs={format_value(cfg.warmup_epochs)}`; "
              f"evaluation: greedy, `max_new_tokens={cfg.max_new_tokens}`, prompts from LLaMA-Factory's qwen3 template."),
              "- every command: `commands.sh`; logs: `logs/` and `study/<trial>/`.", "", "## Timings", "",
              "| stage | seconds |", "|---|---:|", *[f"| {k} | {v:.1f}{' (reused)' if k in reused else ''} |" for k, v in timings.items()],
              f"| **total** | **{wall:.0f}** |", "", "## Next", "", *next_steps()]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    summary = {"timings_s": timings, "reused_stages": reused, "wall_time_s": round(wall, 1), "checks": checks,
               "all_beat_base": all(c["beats"] for c in checks) and len(checks) == 4, "study": "study/study.json",
               "cpu_count": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    atomic_write_json(out / "summary.json", summary)
    print("\n".join(report_lines(cfg, study, checks)[6:]))
    print(f"\nreport: {out / 'report.md'}  (study: {out / 'study'}, commands: {out / 'commands.sh'})")
    print(f"demo wall time {wall:.0f} s on {os.cpu_count()} CPUs\n")
    print("\n".join(next_steps()))
    return summary


def next_steps() -> list[str]:
    return [
        "Next, on a GPU with the real model and data:",
        "  llamafactory-ext plan recipes/v3_mixed.yaml gpu_mem=80GB            # will it fit?",
        "  llamafactory-ext inspect recipes/v3_mixed.yaml                      # what exactly is trained",
        "  llamafactory-ext study recipes/studies/format.yaml dry_run=true     # the published study, command by command",
    ]


def main(argv: list[str]) -> int:
    run_demo(from_argv(DemoConfig, argv))
    return 0
