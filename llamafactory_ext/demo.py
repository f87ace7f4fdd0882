"""The whole pipeline on CPU in a few minutes: prepare -> train (recipes/v3_mixed.yaml) -> eval -> report.

    llamafactory-ext demo                          # tiny Qwen3 on CPU, writes demo_out/
    llamafactory-ext demo output_dir=/tmp/demo     # elsewhere
    llamafactory-ext demo model=Qwen/Qwen3-8B      # the same pipeline with the real model (GPU, network)
    llamafactory-ext demo model=Qwen/Qwen3-8B dry_run=true   # only print the commands

Stages (each one a real command, all of them written to OUTPUT_DIR/commands.sh):
  1. fixture   tiny Qwen3 (2 layers, hidden 64, Qwen3's real tokenizer ids), random weights
  2. data      split the built-in Mult-IT-shaped sample (every 5th question held out) and
               convert the training part (+ the sample traces) with `llamafactory-ext prepare`
               into multit_mixed (V3) and multit_nothink (warm-up)
  3. warm-up   a random tiny model cannot learn under LoRA, so the demo first gives it a
               "pre-training": a short FULL-parameter run of recipes/v1_nothink.yaml
               (finetuning_type=full, enable_thinking=true) on the training questions. The result
               plays the part of the base model: it answers in both modes, but its think block is
               always empty (it never reasons).
  4. train     `llamafactory-cli train recipes/v3_mixed.yaml` (LoRA, mixed thinking + non-thinking
               rows) with the tiny-model / CPU overrides of llamafactory_ext.testing and the few the
               demo needs (steps, learning rate, packing length); all listed in the report
  5. eval      `llamafactory-ext eval task=multit` on held-out and held-in sample questions, base
               and tuned model, thinking and non-thinking mode
  6. report    OUTPUT_DIR/report.md (tables, what changed), summary.json, plots, commands.sh

Re-running reuses finished stages (force=true redoes them). With ``model=`` there is no fixture
and no warm-up; the recipe runs unchanged except data set dir, output dir and ``max_steps``.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamafactory_ext.config import UserError, describe, from_argv

USAGE = "[key=value ...]"
REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(__file__).resolve().parent / "resources" / "samples"


class DemoError(UserError):
    pass


def _f(default: Any, help: str) -> Any:  # noqa: A002
    return field(default=default, metadata={"help": help})


@dataclass
class DemoConfig:
    output_dir: str = _f("demo_out", "report folder (models, data, eval results, report.md, commands.sh)")
    model: str | None = _f(None, "real base model (e.g. Qwen/Qwen3-8B): no fixture, no warm-up; default: the tiny Qwen3")
    recipe: str = _f("recipes/v3_mixed.yaml", "training recipe (LoRA SFT)")
    warmup_recipe: str = _f("recipes/v1_nothink.yaml", "recipe of the tiny model's full-parameter warm-up")
    num_layers: int = _f(2, "tiny model: decoder layers")
    hidden_size: int = _f(64, "tiny model: hidden size")
    seed: int = _f(0, "tiny model: init seed")
    heldout_every: int = _f(5, "every N-th sample question is held out from training (evaluation only)")
    warmup_steps: int = _f(80, "tiny model: full-parameter warm-up steps")
    warmup_lr: float = _f(3e-3, "tiny model: warm-up learning rate")
    train_steps: int | None = _f(None, "max_steps of the LoRA run (tiny default 40; real model: the recipe's epochs)")
    train_lr: float | None = _f(None, "learning_rate of the LoRA run (tiny default 5e-3; real model: the recipe's)")
    cutoff_len: int | None = _f(None, "packing length of the LoRA run (tiny default 256; real model: the recipe's)")
    max_new_tokens: int | None = _f(None, "eval generation budget (tiny default 64; real model: the task's 4096 think / 512 nothink)")
    backend: str = _f("hf", "eval backend: hf | vllm (real model)")
    force: bool = _f(False, "redo every stage")
    dry_run: bool = _f(False, "print the commands, run nothing")


def options_help() -> str:
    return describe(DemoConfig)


# ---------------------------------------------------------------------------------------------
# running commands
# ---------------------------------------------------------------------------------------------
def _bin(name: str) -> str:
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.is_file() else name


ENV_KEYS = ("CUDA_VISIBLE_DEVICES", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
            "TOKENIZERS_PARALLELISM", "DISABLE_VERSION_CHECK", "GRADIO_ANALYTICS_ENABLED", "WANDB_DISABLED")


class Runner:
    """Runs each stage's commands, logs them to commands.sh and stage logs, reports timings."""

    def __init__(self, out: Path, env: dict[str, str], dry_run: bool, total: int) -> None:
        self.out = out
        self.env = env
        self.dry_run = dry_run
        self.total = total
        self.index = 0
        self.commands: list[str] = []
        self.timings: dict[str, float] = {}
        self.reused: list[str] = []
        (out / "logs").mkdir(parents=True, exist_ok=True)

    def stage(self, name: str, title: str) -> None:
        self.index += 1
        self.current = name
        self.commands.append(f"\n# --- stage {self.index}/{self.total}: {name}: {title}")
        print(f"[demo {self.index}/{self.total}] {name}: {title}", flush=True)

    def note(self, text: str) -> None:
        self.commands.append(f"# {text}")

    def run(self, argv: list[str], log_name: str, show: tuple[str, ...] = ()) -> None:
        short = [Path(a).name if i == 0 else a for i, a in enumerate(argv)]
        line = " ".join(shlex.quote(a) for a in short)
        self.commands.append(line)
        if self.dry_run:
            print(f"  $ {line}")
            return
        print(f"  $ {line}", flush=True)
        log = self.out / "logs" / log_name
        t0 = time.perf_counter()
        with open(log, "w", encoding="utf-8") as fh:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
                                    cwd=str(REPO), bufsize=1)
            assert proc.stdout is not None
            for raw in proc.stdout:
                fh.write(raw)
                for part in raw.replace("\r", "\n").split("\n"):
                    if any(s in part for s in show):
                        print(f"    {part.strip()[:160]}", flush=True)
            code = proc.wait()
        if code != 0:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise DemoError(f"stage {self.current}: command failed (exit {code}): {line}\n--- {log} (tail) ---\n{tail}")
        print(f"    ({time.perf_counter() - t0:.1f} s, log: {log.relative_to(self.out)})", flush=True)

    def done(self, seconds: float, reused: bool = False) -> None:
        self.timings[self.current] = round(seconds, 1)
        if self.dry_run:
            return
        if reused:
            self.reused.append(self.current)
            print(f"  reused (finished earlier in {seconds:.1f} s; force=true redoes it)", flush=True)
        else:
            print(f"  done in {seconds:.1f} s", flush=True)

    def write_commands(self, header: list[str]) -> None:
        text = "\n".join(["#!/usr/bin/env bash", *header, "set -euo pipefail", *self.commands]) + "\n"
        _atomic_write(self.out / "commands.sh", text)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _fmt(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def _marker(out: Path, name: str) -> Path:
    return out / "stages" / f"{name}.json"


def _finished(out: Path, name: str, fingerprint: dict[str, Any], outputs: list[Path], force: bool) -> float | None:
    """Seconds the stage took when it finished earlier with the same inputs, else None."""
    m = _marker(out, name)
    if force or not m.is_file():
        return None
    try:
        data = json.loads(m.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if data.get("fingerprint") == fingerprint and all(p.exists() for p in outputs):
        return float(data.get("seconds", 0.0))
    return None


def _mark(out: Path, name: str, fingerprint: dict[str, Any], seconds: float) -> None:
    m = _marker(out, name)
    m.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(m, json.dumps({"fingerprint": fingerprint, "seconds": round(seconds, 1)}, indent=2))


# ---------------------------------------------------------------------------------------------
# pipeline
# ---------------------------------------------------------------------------------------------
def split_samples(quiz: Path, every: int, train_path: Path, eval_path: Path) -> tuple[int, int]:
    """Every ``every``-th question (from the 3rd) is held out. The eval file holds the held-out
    questions (category ``held_out``) and as many training questions (``held_in``)."""
    rows = json.loads(quiz.read_text(encoding="utf-8"))
    held = [r for i, r in enumerate(rows) if i % every == 2]
    train = [r for i, r in enumerate(rows) if i % every != 2]
    if not held or not train:
        raise DemoError(f"heldout_every={every} leaves no held-out or no training question in {quiz}")
    step = max(1, len(train) // len(held))
    held_in = train[::step][: len(held)]
    eval_rows = [{**r, "category": "held_out"} for r in held] + [{**r, "category": "held_in"} for r in held_in]
    _atomic_write(train_path, json.dumps(train, ensure_ascii=False, indent=1))
    _atomic_write(eval_path, json.dumps(eval_rows, ensure_ascii=False, indent=1))
    return len(train), len(held)


def _train_overrides(keys: dict[str, Any]) -> list[str]:
    return [f"{k}={_fmt(v)}" for k, v in keys.items()]


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    from llamafactory_ext.testing import CPU_OVERRIDES, cpu_env, tiny_train_overrides

    tiny = cfg.model is None
    out = Path(cfg.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # recipes are named relative to the repository root (the commands run there)
    recipe, warm_recipe = Path(cfg.recipe), Path(cfg.warmup_recipe)
    for r in (recipe, warm_recipe) if tiny else (recipe,):
        if not (r if r.is_absolute() else REPO / r).is_file():
            raise DemoError(f"recipe not found: {r} (relative paths are read from {REPO})")
    env = cpu_env() if tiny else {**os.environ, "TOKENIZERS_PARALLELISM": "false", "DISABLE_VERSION_CHECK": "1"}
    env["PYTHONUNBUFFERED"] = "1"
    total = 6 if tiny else 5
    R = Runner(out, env, cfg.dry_run, total)
    ext, lf = _bin("llamafactory-ext"), _bin("llamafactory-cli")
    t_all = time.perf_counter()
    data_dir = out / "data"
    models = out / "models"
    quiz = SAMPLES / "multit_quiz.json"
    traces = SAMPLES / "multit_traces.jsonl"
    train_steps = cfg.train_steps if cfg.train_steps is not None else (40 if tiny else None)
    train_lr = cfg.train_lr if cfg.train_lr is not None else (5e-3 if tiny else None)
    cutoff = cfg.cutoff_len if cfg.cutoff_len is not None else (256 if tiny else None)
    think_tokens = cfg.max_new_tokens or (64 if tiny else None)

    # 1. fixture ------------------------------------------------------------------------------
    if tiny:
        base_random = models / "tiny-qwen3-random"
        R.stage("fixture", f"tiny Qwen3 ({cfg.num_layers} layers, hidden {cfg.hidden_size}, seed {cfg.seed}), random weights")
        t0 = time.perf_counter()
        fp = {"layers": cfg.num_layers, "hidden": cfg.hidden_size, "seed": cfg.seed}
        if (prev := _finished(out, "fixture", fp, [base_random / "config.json"], cfg.force)) is not None:
            R.commands.append(f"llamafactory-ext fixture out_dir={base_random} num_layers={cfg.num_layers} hidden_size={cfg.hidden_size} seed={cfg.seed}")
            R.done(prev, reused=True)
        else:
            R.run([ext, "fixture", f"out_dir={base_random}", f"num_layers={cfg.num_layers}",
                   f"hidden_size={cfg.hidden_size}", f"seed={cfg.seed}"], "fixture.log")
            if not cfg.dry_run:
                _mark(out, "fixture", fp, time.perf_counter() - t0)
            R.done(time.perf_counter() - t0)

    # 2. data ---------------------------------------------------------------------------------
    R.stage("data", "built-in samples -> LLaMA-Factory data (held-out split for evaluation)")
    t0 = time.perf_counter()
    train_quiz, eval_quiz = data_dir / "multit_train.json", data_dir / "multit_eval.json"
    names = ["multit_mixed"] + (["multit_nothink"] if tiny else [])
    fp = {"every": cfg.heldout_every, "names": names}
    prepared = [data_dir / "data" / f"{n}.jsonl" for n in names] + [data_dir / "dataset_info.json", eval_quiz]
    prev_data = _finished(out, "data", fp, prepared, cfg.force)
    reuse = prev_data is not None
    R.note(f"(in-process) split {quiz.name}: every {cfg.heldout_every}th question held out -> {eval_quiz.name} "
           f"(held_out + as many held_in questions), the rest -> {train_quiz.name}")
    if not cfg.dry_run and not reuse:
        data_dir.mkdir(parents=True, exist_ok=True)
        n_train, n_held = split_samples(quiz, cfg.heldout_every, train_quiz, eval_quiz)
        print(f"  {n_train} training questions, {n_held} held out (+ {n_held} held-in for comparison)", flush=True)
        # the top-level registry: the recipes' `dataset: NAME` resolve through it
        shutil.copyfile(REPO / "dataset_info.json", data_dir / "dataset_info.json")
    R.note(f"cp dataset_info.json {data_dir}/dataset_info.json")
    sources = {
        "multit_mixed": [f"source={train_quiz}", f"traces={traces}"],
        "multit_nothink": [f"source={train_quiz}"],
        "synth_gsm8k": [f"source={SAMPLES / 'synth_gsm8k.jsonl'}"],
        "gsm8k": [f"source={SAMPLES / 'gsm8k_train.jsonl'}"],
    }
    if reuse:
        for n in names:
            R.commands.append(" ".join(["llamafactory-ext", "prepare", n, *sources[n], f"out_dir={data_dir / 'data'}"]))
        R.done(prev_data, reused=True)
    else:
        for n in names:
            R.run([ext, "prepare", n, *sources[n], f"out_dir={data_dir / 'data'}"], f"prepare_{n}.log",
                  show=("wrote", "dropped", "traces:"))
        if not cfg.dry_run:
            _mark(out, "data", fp, time.perf_counter() - t0)
        R.done(time.perf_counter() - t0)

    # 3. warm-up ------------------------------------------------------------------------------
    show_train = ("'loss'", "train_runtime", "trainable params")
    if tiny:
        base = models / "tiny-qwen3-warm"
        R.stage("warm-up", f"full-parameter SFT of the random tiny model, {cfg.warmup_steps} steps "
                           f"(no-thinking multiple-choice rows, empty think block trained)")
        t0 = time.perf_counter()
        warm_keys = {
            "finetuning_type": "full",  # LoRA cannot teach a random model (README: demo)
            # true: the empty think block is part of the trained answer, so the base answers in both
            # modes (think: `<think>\n\n</think>\n\nA`) without ever reasoning
            "enable_thinking": True,
            "learning_rate": cfg.warmup_lr,
            "gradient_accumulation_steps": 1,
            "cutoff_len": cutoff,
            "logging_steps": 5,
            "save_steps": 100000,
        }
        argv = [lf, "train", str(warm_recipe),
                *tiny_train_overrides(base_random, data_dir, base, max_steps=cfg.warmup_steps),
                *_train_overrides(warm_keys)]
        fp = {"argv": argv[2:]}
        if (prev := _finished(out, "warm-up", fp, [base / "model.safetensors"], cfg.force)) is not None:
            R.commands.append(" ".join(shlex.quote(a) for a in ["llamafactory-cli", *argv[1:]]))
            R.done(prev, reused=True)
        else:
            if base.exists() and not cfg.dry_run:
                shutil.rmtree(base)
            R.run(argv, "warmup.log", show=show_train)
            if not cfg.dry_run:
                _mark(out, "warm-up", fp, time.perf_counter() - t0)
            R.done(time.perf_counter() - t0)
    else:
        base = Path(cfg.model) if Path(cfg.model).is_dir() else cfg.model  # type: ignore[assignment]

    # 4. train --------------------------------------------------------------------------------
    adapter = models / "v3_mixed_lora"
    R.stage("train", f"llamafactory-cli train {cfg.recipe} (LoRA)")
    t0 = time.perf_counter()
    if tiny:
        overrides = tiny_train_overrides(base, data_dir, adapter, max_steps=train_steps or 40)
        extra = {"learning_rate": train_lr, "cutoff_len": cutoff, "gradient_accumulation_steps": 1,
                 "logging_steps": 5, "save_steps": 100000}
        overrides += _train_overrides(extra)
    else:
        keys = {"model_name_or_path": base, "dataset_dir": data_dir, "output_dir": adapter}
        if train_steps:
            keys["max_steps"] = train_steps
        if train_lr:
            keys["learning_rate"] = train_lr
        if cutoff:
            keys["cutoff_len"] = cutoff
        overrides = _train_overrides(keys)
    argv = [lf, "train", str(recipe), *overrides]
    fp = {"argv": argv[2:]}
    if (prev := _finished(out, "train", fp, [adapter / "adapter_model.safetensors"], cfg.force)) is not None:
        R.commands.append(" ".join(shlex.quote(a) for a in ["llamafactory-cli", *argv[1:]]))
        R.done(prev, reused=True)
    else:
        if adapter.exists() and not cfg.dry_run:
            shutil.rmtree(adapter)
        R.run(argv, "train.log", show=show_train)
        if not cfg.dry_run:
            _mark(out, "train", fp, time.perf_counter() - t0)
        R.done(time.perf_counter() - t0)

    # 5. eval ---------------------------------------------------------------------------------
    R.stage("eval", "base and tuned model, thinking and non-thinking mode, held-out + held-in questions")
    t0 = time.perf_counter()
    eval_dir = out / "eval"
    common = ["task=multit", f"source={eval_quiz}", "template=qwen3", "thinking=both", f"backend={cfg.backend}",
              "progress=false"]
    if tiny:
        common += ["device=cpu", "dtype=float32"]
    runs = {
        "base": [f"model_name_or_path={base}", f"output_dir={eval_dir / 'base'}"],
        "tuned": [f"model_name_or_path={base}", f"adapter_name_or_path={adapter}", f"output_dir={eval_dir / 'tuned'}",
                  f"baseline={eval_dir / 'base' / 'results.json'}"],
    }
    fp = {"common": common, "runs": runs, "max_new_tokens": think_tokens}
    outputs = [eval_dir / k / "results.json" for k in runs]
    prev_eval = _finished(out, "eval", fp, outputs, cfg.force)
    reuse = prev_eval is not None
    for name, args in runs.items():
        argv = [ext, "eval", *common, *args] + ([f"max_new_tokens={think_tokens}"] if think_tokens else [])
        if reuse:
            R.commands.append(" ".join(shlex.quote(a) for a in ["llamafactory-ext", *argv[1:]]))
        else:
            R.run(argv, f"eval_{name}.log", show=("eval multit:",))
    if reuse:
        R.done(prev_eval, reused=True)
    else:
        if not cfg.dry_run:
            _mark(out, "eval", fp, time.perf_counter() - t0)
        R.done(time.perf_counter() - t0)

    # 6. report -------------------------------------------------------------------------------
    R.stage("report", "report.md, summary.json, plots, commands.sh")
    t0 = time.perf_counter()
    header = [
        f"# Commands run by `llamafactory-ext demo{'' if tiny else ' model=' + str(cfg.model)}` "
        f"({time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}); run from the repository root {REPO}.",
        f"export PATH={Path(sys.executable).parent}:$PATH",
        *(f"export {k}={shlex.quote(env[k])}" for k in ENV_KEYS if k in env),
    ]
    R.write_commands(header)
    if cfg.dry_run:
        print(f"(dry run: nothing was run; commands in {out / 'commands.sh'})")
        return {}
    # wall time: this run's, plus the recorded time of stages reused from an earlier run
    summary = write_report(cfg, out, R, tiny, base, adapter, eval_dir,
                           {"train_steps": train_steps, "train_lr": train_lr, "cutoff_len": cutoff,
                            "max_new_tokens": think_tokens},
                           time.perf_counter() - t_all + sum(R.timings[k] for k in R.reused))
    R.done(time.perf_counter() - t0)
    print("\n".join(summary.pop("_final_lines")), flush=True)  # the last lines: what to run next
    return summary


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _pred_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def metrics_from_predictions(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """mode -> split (held_out | held_in | all) -> {accuracy, answered, closed_think, n} from predictions.jsonl."""
    rows = _pred_rows(path)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for mode in ("think", "nothink"):
        for split in ("held_out", "held_in", "all"):
            sel = [r for r in rows if r["mode"] == mode and (split == "all" or r.get("category") == split)]
            if not sel:
                continue
            n = len(sel)
            out.setdefault(mode, {})[split] = {
                "n": n,
                "accuracy": sum(bool(r["correct"]) for r in sel) / n,
                "answered": sum(r["status"] == "ok" for r in sel) / n,  # a letter could be extracted
                "closed_think": sum(bool(r["closed"]) for r in sel) / n,
                # a closed think block with something in it: the model reasoned before answering
                "reasoned": sum(bool(r["closed"]) and bool(r.get("reasoning_words")) for r in sel) / n,
            }
    return out


METRIC_LABEL = {
    "accuracy": "accuracy",
    "answered": "answer extracted (format compliance)",
    "closed_think": "closed </think> (thinking format)",
    "reasoned": "non-empty reasoning in the think block",
}
THINK_ONLY = ("closed_think", "reasoned")


def compare(base: dict, tuned: dict) -> list[dict[str, Any]]:
    diffs = []
    for mode in ("think", "nothink"):
        for split in ("held_out", "held_in"):
            b, t = base.get(mode, {}).get(split), tuned.get(mode, {}).get(split)
            if not b or not t:
                continue
            for metric in ("accuracy", "answered", "closed_think", "reasoned"):
                if mode == "nothink" and metric in THINK_ONLY:
                    continue
                delta = t[metric] - b[metric]
                diffs.append({"mode": mode, "split": split, "metric": metric, "base": b[metric], "tuned": t[metric],
                              "delta": delta, "n": t["n"], "items_changed": round(abs(delta) * t["n"])})
    return diffs


def _plot(out: Path, base: dict, tuned: dict, logs: dict[str, Path]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # noqa: BLE001
        return []
    written = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, mode in zip(axes, ("think", "nothink")):
        labels, bv, tv = [], [], []
        for split in ("held_out", "held_in"):
            for metric in ("accuracy", "answered") + (THINK_ONLY if mode == "think" else ()):
                if split in base.get(mode, {}) and split in tuned.get(mode, {}):
                    labels.append(f"{split}\n{metric}")
                    bv.append(100 * base[mode][split][metric])
                    tv.append(100 * tuned[mode][split][metric])
        x = range(len(labels))
        ax.bar([i - 0.2 for i in x], bv, 0.4, label="base")
        ax.bar([i + 0.2 for i in x], tv, 0.4, label="tuned (V3 LoRA)")
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylim(0, 105)
        ax.set_ylabel("%")
        ax.set_title(f"mode: {mode}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "base_vs_tuned.png", dpi=110)
    plt.close(fig)
    written.append("base_vs_tuned.png")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    plotted = False
    for name, log in logs.items():
        if not log.is_file():
            continue
        pts = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x.strip()]
        pts = [p for p in pts if "loss" in p and "current_steps" in p]
        if pts:
            ax.plot([p["current_steps"] for p in pts], [p["loss"] for p in pts], marker="o", ms=3, label=name)
            plotted = True
    if plotted:
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "training_loss.png", dpi=110)
        written.append("training_loss.png")
    plt.close(fig)
    return written


def _loss_summary(log: Path) -> str | None:
    if not log.is_file():
        return None
    pts = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x.strip()]
    pts = [p for p in pts if "loss" in p]
    if not pts:
        return None
    return f"{pts[0]['loss']:.2f} (step {pts[0].get('current_steps')}) -> {pts[-1]['loss']:.2f} (step {pts[-1].get('current_steps')})"


def next_steps(cfg: DemoConfig) -> list[str]:
    model = cfg.model if cfg.model and not Path(cfg.model).is_dir() else "Qwen/Qwen3-8B"
    return [
        "Next, on a GPU with the real model and data:",
        f"  llamafactory-ext plan {cfg.recipe} gpu_mem=24GB          # will it fit? (README: GPU memory planner)",
        "  llamafactory-ext distill ... ; llamafactory-ext prepare multit_mixed source=PATH/Multi-IT-A/quiz.json traces=PATH/traces.jsonl",
        f"  llamafactory-cli train {cfg.recipe}" + ("" if model == "Qwen/Qwen3-8B" else f" model_name_or_path={model}"),
        f"  llamafactory-ext eval task=italic from_recipe={cfg.recipe} backend=vllm thinking=both",
        f"  (or the whole demo pipeline on the sample data with the real model: llamafactory-ext demo model={model})",
    ]


def write_report(cfg: DemoConfig, out: Path, R: Runner, tiny: bool, base: Any, adapter: Path, eval_dir: Path,
                 knobs: dict[str, Any], wall: float) -> dict[str, Any]:
    bm = metrics_from_predictions(eval_dir / "base" / "predictions.jsonl")
    tm = metrics_from_predictions(eval_dir / "tuned" / "predictions.jsonl")
    diffs = compare(bm, tm)
    changed = [d for d in diffs if d["items_changed"] > 0]
    logs = {"warm-up (full)": Path(str(base)) / "trainer_log.jsonl", "V3 LoRA": adapter / "trainer_log.jsonl"} if tiny else \
        {"V3 LoRA": adapter / "trainer_log.jsonl"}
    plots = _plot(out, bm, tm, logs)
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (float("nan"),) * 3
    summary = {
        "model": "tiny Qwen3 (fixture + warm-up)" if tiny else str(cfg.model),
        "base": str(base),
        "adapter": str(adapter),
        "recipe": cfg.recipe,
        "knobs": knobs,
        "base_metrics": bm,
        "tuned_metrics": tm,
        "differences": diffs,
        "differs": bool(changed),
        "timings_s": R.timings,
        "reused_stages": R.reused,
        "wall_time_s": round(wall, 1),
        "load_average": [round(x, 2) for x in load],
        "cpu_count": os.cpu_count(),
        "plots": plots,
        "losses": {k: _loss_summary(v) for k, v in logs.items()},
    }
    _atomic_write(out / "summary.json", json.dumps(summary, indent=2))
    lines = [f"# llamafactory-ext demo: {summary['model']}", ""]
    lines += [
        "Pipeline: " + (" -> ".join(R.timings)) + f"; wall time {wall:.0f} s "
        f"(load average {load[0]:.1f} on {os.cpu_count()} CPUs at the end)"
        + (f"; reused stages: {', '.join(R.reused)}" if R.reused else "") + ".",
        "",
        "## What was trained",
        "",
    ]
    if tiny:
        lines += [
            f"- base: the tiny Qwen3 fixture ({cfg.num_layers} layers, hidden {cfg.hidden_size}, Qwen3's tokenizer ids), "
            f"warmed up by `llamafactory-cli train {cfg.warmup_recipe}` with finetuning_type=full, enable_thinking=true, "
            f"{cfg.warmup_steps} steps, learning_rate={cfg.warmup_lr}, on the training questions without traces: it answers "
            "in both modes, with an empty think block (it never reasons). LoRA cannot teach a randomly initialised model "
            f"(its random tied embeddings dominate), so this stands in for pre-training. Loss {summary['losses'].get('warm-up (full)')}.",
            f"- tuned: base + LoRA from `llamafactory-cli train {cfg.recipe}` (mixed thinking + non-thinking rows, "
            f"unchanged recipe except the overrides below). Loss {summary['losses'].get('V3 LoRA')}.",
            "- overrides of the recipe: `llamafactory_ext.testing.tiny_train_overrides` (model, data set dir, output dir, "
            f"max_steps={knobs['train_steps']}, CPU: bf16/quantization/deepspeed/flash-attn/8-bit optim off) plus what a "
            f"{knobs['train_steps']}-step run of a tiny model needs: learning_rate={knobs['train_lr']} (recipe: 1e-4), cutoff_len="
            f"{knobs['cutoff_len']} (recipe: 2048; packing stays on), gradient_accumulation_steps=1 (recipe: 8), "
            "logging_steps=5, save_steps=100000.",
        ]
    else:
        lines += [f"- base: {cfg.model}; tuned: base + LoRA from `llamafactory-cli train {cfg.recipe}` on the sample data."]
    n_out = tm.get("think", {}).get("held_out", {}).get("n", 0)
    lines += [
        f"- evaluation: `llamafactory-ext eval task=multit` on {n_out} held-out sample questions (never trained on) and "
        f"{n_out} held-in ones; greedy; max_new_tokens {knobs['max_new_tokens'] or 'task default'}; prompts from LLaMA-Factory's qwen3 template "
        "(think: generation starts after `<|im_start|>assistant\\n`; nothink: after the empty think block).",
        "",
        "## Base vs tuned",
        "",
        "| mode | questions | metric | base | tuned | Δ |",
        "|---|---|---|---:|---:|---:|",
    ]
    for d in diffs:
        lines.append(f"| {d['mode']} | {d['split'].replace('_', '-')} (n={d['n']}) | {METRIC_LABEL[d['metric']]} | "
                     f"{100 * d['base']:.1f} % | {100 * d['tuned']:.1f} % | {100 * d['delta']:+.1f} |")
    lines.append("")
    if changed:
        big = max(changed, key=lambda d: abs(d["delta"]))
        better = sum(d["delta"] > 0 for d in changed)
        lines.append(f"The tuned model differs from the base: {len(changed)} of {len(diffs)} measurements changed "
                     f"({better} up, {len(changed) - better} down; higher is better for all of them); the largest: "
                     f"{METRIC_LABEL[big['metric']]} in {big['mode']} mode on {big['split'].replace('_', '-')} questions, "
                     f"{100 * big['base']:.1f} % -> {100 * big['tuned']:.1f} %.")
    else:
        lines.append("The tuned model does NOT differ measurably from the base on these questions.")
    if tiny:
        lines.append("")
        lines.append("A 2-layer model cannot know the answers to held-out questions: expect accuracy near chance there "
                     "(held-in questions show what it memorised).")
        bt, tt = bm.get("think", {}).get("held_in", {}), tm.get("think", {}).get("held_in", {})
        if bt and tt and tt["closed_think"] < bt["closed_think"]:
            lines.append("In thinking mode the tuned model opens its think block but rarely closes it within the token budget: "
                         "the V3 rows ask it to write reasoning traces whose words the base never produced, and LoRA cannot "
                         "train the (tied) output embeddings those words would need. A real Qwen3 already writes such text; "
                         "on the tiny model this is the known limit of LoRA on a barely pre-trained base (README: demo).")
    lines += ["", "Per-mode tables by the evaluator (Category | Baseline | Model | Δ): `eval/tuned/results.md`; "
              "every generation: `eval/*/predictions.jsonl`.", ""]
    lines += [f"![{p}]({p})" for p in plots]
    lines += ["", "## Timings", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v}{' (reused)' if k in R.reused else ''} |" for k, v in R.timings.items()]
    lines += ["", "Exact commands: `commands.sh`.", "", "## Next", "", *next_steps(cfg)]
    _atomic_write(out / "report.md", "\n".join(lines) + "\n")
    final = ["", "| mode | questions | metric | base | tuned |"]
    final += [f"| {d['mode']} | {d['split']} | {d['metric']} | {100 * d['base']:.1f} % | {100 * d['tuned']:.1f} % |"
              for d in diffs]
    final.append(lines[[i for i, x in enumerate(lines) if x.startswith("The tuned model")][0]])
    final.append(f"report: {out / 'report.md'} (summary.json, commands.sh, {', '.join(plots)})")
    final.append(f"demo wall time {wall:.0f} s, load average {load[0]:.1f} on {os.cpu_count()} CPUs")
    final += ["", *next_steps(cfg)]
    summary["_final_lines"] = final
    return summary


def main(argv: list[str]) -> int:
    cfg = from_argv(DemoConfig, argv)
    run_demo(cfg)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
