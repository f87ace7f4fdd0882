"""Train + evaluate a grid of trials over training-recipe keys (e.g. ``lora_rank``), resumable.

``llamafactory-ext sweep SWEEP.yaml [key=value ...]`` expands ``grid`` into trials. Each trial is

1. ``llamafactory-cli train BASE.yaml <fixed> <grid values> <derived> tokenized_path=… output_dir=<sweep>/<trial>``
   (a real subprocess, logged to ``<sweep>/<trial>/train.log``), then
2. the evaluator, ``llamafactory-ext eval EVAL.yaml <overrides> model_name_or_path=… adapter_name_or_path=<trial>
   output_dir=<trial>/eval`` (logged to ``<trial>/eval.log``), when the sweep file has an ``eval`` section.

Sweep file keys (overrides use dots for nested keys: ``grid.lora_rank=[8,16]``, ``fixed.max_steps=10``):

  base            training recipe (``llamafactory-cli train`` YAML)
  grid            key -> list of values; trials are the Cartesian product, in file order
  derived         key -> expression over the trial's keys, e.g. ``lora_alpha: 2 * lora_rank``
  fixed           overrides applied to every trial (mapping, or a list of ``key=value`` strings)
  eval            ``{config: EVAL.yaml, overrides: {...}}``: the evaluator run after each training
  output_dir      the sweep folder (one sub-folder per trial, summary.csv / summary.md / *.png)
  name_format     trial folder name, e.g. ``r{lora_rank}`` (default ``lora_rank-8``)
  retry_failed    re-run trials recorded as failed (finished trials are always skipped)
  dry_run         print the trials and their exact commands, run nothing
  max_trials      run at most this many trials in this invocation, then stop (resume later)
  backend         ``local`` (this machine) or ``ray`` (Ray tasks with ``num_gpus`` requests)

Resuming: a trial whose adapter and ``eval/results.json`` exist is skipped; a trial whose training
finished but whose evaluation did not only re-runs the evaluation. A failed trial is recorded in
``<trial>/trial.json`` with the exit code and the log tail and the sweep goes on.

Data preprocessing runs once per group of trials that share the data-affecting keys (``dataset``,
``template``, ``cutoff_len``, ``packing``, ``enable_thinking``, the tokenizer…): the first trial of a
group writes LLaMA-Factory's ``tokenized_path`` (``<sweep>/tokenized/<hash>``), the others load it.

Scheduling: ``local`` runs one trial at a time; with ``G`` visible GPUs and ``gpus_per_trial=g`` it runs
``G // g`` trials at once, each with its own ``CUDA_VISIBLE_DEVICES``. ``ray`` hands each trial to a Ray
task (``ray.remote(num_gpus=gpus_per_trial, num_cpus=cpus_per_trial)``) on an existing cluster
(``ray_address``, or ``RAY_ADDRESS``, or a local instance); ``output_dir`` must be on a shared file system.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import operator
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

from llamafactory_ext.config import UserError

USAGE = "SWEEP.yaml [key=value ...]   (nested keys with dots: grid.lora_rank=[8,16] fixed.max_steps=10)"

# Keys the sweep sets itself for every trial.
RESERVED_KEYS = ("output_dir",)

# Fields of LLaMA-Factory's DataArguments that do NOT change the tokenized data.
_DATA_NEUTRAL = {
    "tokenized_path", "overwrite_cache", "preprocessing_batch_size", "preprocessing_num_workers",
    "data_shared_file_system", "eval_num_beams", "buffer_size",
}
# Keys outside DataArguments that change what LLaMA-Factory writes to tokenized_path.
_DATA_KEYS_EXTRA = {
    # tokenizer / processor (ModelArguments)
    "model_name_or_path", "model_revision", "cache_dir", "use_fast_tokenizer", "split_special_tokens",
    "add_tokens", "add_special_tokens", "new_special_tokens_config", "resize_vocab", "trust_remote_code",
    "image_max_pixels", "image_min_pixels", "image_do_pan_and_scan", "crop_to_patches", "video_max_pixels",
    "video_min_pixels", "video_fps", "video_maxlen", "use_audio_in_video", "audio_sampling_rate",
    # which preprocessing runs (FinetuningArguments / TrainingArguments)
    "stage", "seed", "data_seed", "do_train", "do_eval", "do_predict", "predict_with_generate",
}


class SweepError(UserError):
    """Bad sweep file, grid or override (the message names the key or trial)."""


@dataclasses.dataclass
class SweepConfig:
    base: str = dataclasses.field(metadata={"help": "training recipe (llamafactory-cli train YAML)"})
    output_dir: str = dataclasses.field(metadata={"help": "sweep folder: one sub-folder per trial + summaries"})
    grid: dict = dataclasses.field(default_factory=dict, metadata={"help": "key -> list of values (Cartesian product)"})
    derived: dict = dataclasses.field(
        default_factory=dict, metadata={"help": "key -> expression, e.g. lora_alpha: 2 * lora_rank"}
    )
    fixed: Any = dataclasses.field(default_factory=dict, metadata={"help": "overrides for every trial"})
    eval: Any = dataclasses.field(default=None, metadata={"help": "{config: EVAL.yaml, overrides: {...}} or null"})
    name_format: str | None = dataclasses.field(default=None, metadata={"help": "trial name, e.g. r{lora_rank}"})
    retry_failed: bool = dataclasses.field(default=False, metadata={"help": "re-run trials that failed before"})
    dry_run: bool = dataclasses.field(default=False, metadata={"help": "print trials and commands only"})
    max_trials: int | None = dataclasses.field(default=None, metadata={"help": "stop after running this many"})
    backend: Literal["local", "ray"] = dataclasses.field(default="local", metadata={"help": "local | ray"})
    gpus_per_trial: int = dataclasses.field(default=1, metadata={"help": "GPUs per trial (0: CPU trials)"})
    gpus: Any = dataclasses.field(
        default=None, metadata={"help": "local GPU ids to use, e.g. [0,1] (default: all visible)"}
    )
    cpus_per_trial: float = dataclasses.field(default=1.0, metadata={"help": "Ray: CPUs requested per trial"})
    ray_address: str | None = dataclasses.field(default=None, metadata={"help": "Ray: cluster address (or RAY_ADDRESS)"})
    tokenize_once: bool = dataclasses.field(
        default=True, metadata={"help": "share LLaMA-Factory's tokenized_path among trials with the same data"}
    )
    env: dict = dataclasses.field(default_factory=dict, metadata={"help": "extra environment for trial processes"})
    plot_x: str | None = dataclasses.field(default=None, metadata={"help": "grid key on the plots' x axis"})
    log_tail_lines: int = dataclasses.field(default=40, metadata={"help": "log lines kept for a failed trial"})


@dataclasses.dataclass
class Trial:
    name: str
    params: dict[str, Any]  # grid values + derived values (what the trial changes)
    overrides: list[str]  # the exact key=value list passed to llamafactory-cli train
    train_config: dict[str, Any]  # base + overrides, merged (for the evaluator and grouping)
    data_group: str | None  # tokenized_path used by this trial (None: no sharing)
    dir: str
    train_cmd: list[str]
    eval_cmd: list[str] | None
    cwd: str
    env: dict[str, str]
    log_tail_lines: int = 40


# --------------------------------------------------------------------------------------------
# config loading and validation
# --------------------------------------------------------------------------------------------


def load_sweep_config(argv: list[str]) -> tuple[SweepConfig, str]:
    """``SWEEP.yaml key=value ...`` -> config; nested overrides (``grid.lora_rank=[8]``) merge deeply."""
    from llamafactory_ext.config import build, load_config, split_argv

    path, overrides = split_argv(argv)
    data = load_config(path, overrides)  # deep merge, like llamafactory-cli
    where = path or "command line"
    return build(SweepConfig, data, where=where), where


def format_value(value: Any) -> str:
    """A value as ``llamafactory-cli`` reads it back from ``key=value`` (OmegaConf.from_cli)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if isinstance(value, str) and _cli_roundtrip(text) != value:
        text = json.dumps(value, ensure_ascii=False)
    return text


def _cli_roundtrip(text: str) -> Any:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.from_cli([f"k={text}"]))["k"]
    except Exception:  # noqa: BLE001 - anything unparsable is quoted
        return object()


def _fixed_overrides(fixed: Any, where: str) -> dict[str, Any]:
    from llamafactory_ext.config import parse_overrides

    if fixed is None:
        return {}
    if isinstance(fixed, dict):
        return dict(fixed)
    if isinstance(fixed, (list, tuple)):
        for item in fixed:
            if not isinstance(item, str) or "=" not in item:
                raise SweepError(f"{where}: fixed: {item!r} is not a 'key=value' string")
        return parse_overrides(list(fixed))
    raise SweepError(f"{where}: fixed must be a mapping or a list of key=value strings, got {fixed!r}")


def llamafactory_train_keys() -> set[str]:
    """Every key ``llamafactory-cli train`` accepts: the init fields of its HfArgumentParser dataclasses."""
    from llamafactory.hparams import (
        DataArguments,
        FinetuningArguments,
        GeneratingArguments,
        ModelArguments,
        TrainingArguments,
    )

    keys: set[str] = set()
    for cls in (ModelArguments, DataArguments, TrainingArguments, FinetuningArguments, GeneratingArguments):
        keys.update(f.name for f in dataclasses.fields(cls) if f.init)
    return keys


def data_keys() -> set[str]:
    """Keys whose value changes the data LLaMA-Factory tokenizes (and writes to ``tokenized_path``)."""
    from llamafactory.hparams import DataArguments

    return {f.name for f in dataclasses.fields(DataArguments) if f.init} - _DATA_NEUTRAL | _DATA_KEYS_EXTRA


_BIN_OPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_FUNCS = {"int": int, "float": float, "round": round, "min": min, "max": max, "str": str}


def eval_expression(expr: Any, names: dict[str, Any], key: str) -> Any:
    """Evaluate a ``derived`` rule: arithmetic over the trial's keys (``2 * lora_rank``), nothing else."""
    if not isinstance(expr, str):
        return expr  # a constant
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise SweepError(f"derived.{key}: cannot parse expression {expr!r}: {exc.msg}") from None

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise SweepError(
                    f"derived.{key}: unknown name {node.id!r} in {expr!r}; known: {', '.join(sorted(names)) or '(none)'}"
                )
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN_OPS:
            return _BIN_OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = ev(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
            return _FUNCS[node.func.id](*[ev(a) for a in node.args])
        raise SweepError(f"derived.{key}: only arithmetic on trial keys is allowed, got {expr!r}")

    value = ev(tree)
    if isinstance(value, float) and value.is_integer() and "/" in expr and "//" not in expr:
        value = int(value)  # "lora_rank / 2" -> 4, not 4.0 (LoRA ranks and alphas are ints)
    return value


def _slug(value: Any) -> str:
    text = format_value(value) if not isinstance(value, str) else value
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "_"


def trial_name(cfg: SweepConfig, params: dict[str, Any], where: str) -> str:
    if cfg.name_format:
        try:
            name = cfg.name_format.format(**params)
        except KeyError as exc:
            raise SweepError(
                f"{where}: name_format {cfg.name_format!r} names {exc.args[0]!r}, which is not a grid or derived key"
            ) from None
        except (ValueError, IndexError) as exc:
            raise SweepError(f"{where}: name_format {cfg.name_format!r}: {exc}") from None
        return re.sub(r"[^A-Za-z0-9._+=-]+", "_", name)
    return "_".join(f"{key}-{_slug(params[key])}" for key in cfg.grid)


def _visible_gpus(cfg: SweepConfig) -> list[str]:
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


def plan_trials(cfg: SweepConfig, where: str, cwd: str | None = None) -> list[Trial]:
    """Validate everything and expand the grid; raises :class:`SweepError` before any trial runs."""
    from llamafactory_ext.config import load_yaml
    from llamafactory_ext.testing import llamafactory_cli

    cwd = cwd or os.getcwd()
    base_path = Path(cfg.base)
    if not (Path(cwd) / base_path).is_file():
        raise SweepError(f"{where}: base recipe not found: {cfg.base}")
    base = load_yaml(Path(cwd) / base_path)

    if not isinstance(cfg.grid, dict) or not cfg.grid:
        raise SweepError(f"{where}: the grid is empty: give at least one key with a list of values")
    grid: dict[str, list] = {}
    for key, values in cfg.grid.items():
        if not isinstance(values, (list, tuple)):
            values = [values]
        if len(values) == 0:
            raise SweepError(f"{where}: grid.{key} has no values")
        grid[key] = list(values)
    fixed = _fixed_overrides(cfg.fixed, where)

    known = llamafactory_train_keys()
    import difflib

    def check(key: str, section: str) -> None:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SweepError(f"{where}: {section}{key}: LLaMA-Factory's train parser does not know the key {key!r}{hint}")

    for key in base:
        if key not in known:
            check(key, f"base recipe {cfg.base}: ")
    for section, keys in (("fixed.", fixed), ("grid.", grid), ("derived.", cfg.derived)):
        for key in keys:
            check(key, section)
            if key in RESERVED_KEYS:
                raise SweepError(f"{where}: {section}{key}: the sweep sets {key} per trial (<output_dir>/<trial>)")
    for key in cfg.derived:
        if key in grid:
            raise SweepError(f"{where}: derived.{key}: {key!r} is also a grid key")
    if cfg.plot_x is not None and cfg.plot_x not in grid:
        raise SweepError(f"{where}: plot_x {cfg.plot_x!r} is not a grid key")
    if cfg.backend == "local" and cfg.gpus_per_trial < 0:
        raise SweepError(f"{where}: gpus_per_trial must be >= 0")

    eval_cfg = _eval_section(cfg, where, cwd)
    dkeys = data_keys()
    user_tokenized = "tokenized_path" in fixed or "tokenized_path" in base
    share = cfg.tokenize_once and not user_tokenized and not {**base, **fixed}.get("streaming")
    out_root = Path(cfg.output_dir)
    cli = llamafactory_cli()
    env = {str(k): str(v) for k, v in (cfg.env or {}).items()}
    trials: list[Trial] = []
    seen: dict[str, dict] = {}
    for combo in itertools.product(*grid.values()):
        params = dict(zip(grid.keys(), combo))
        names = {**base, **fixed, **params}
        for key, expr in cfg.derived.items():
            try:
                params[key] = eval_expression(expr, names, key)
            except SweepError as exc:
                raise SweepError(f"{where}: {exc}") from None
            except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
                raise SweepError(f"{where}: derived.{key}: {expr!r} failed for {_show(params)}: {exc}") from None
            names[key] = params[key]
        name = trial_name(cfg, params, where)
        if name in seen:
            raise SweepError(
                f"{where}: two trials have the same name {name!r} ({_show(seen[name])} and {_show(params)}); "
                "use distinct grid values or a name_format that names every swept key"
            )
        seen[name] = params
        merged = {**base, **fixed, **params}
        overrides = {**fixed, **params}
        group = None
        if share:
            data_view = {k: merged.get(k) for k in sorted(dkeys) if k in merged}
            digest = hashlib.sha256(json.dumps(data_view, sort_keys=True, default=str).encode()).hexdigest()[:12]
            group = str(out_root / "tokenized" / digest)
            overrides["tokenized_path"] = group
        trial_dir = out_root / name
        overrides["output_dir"] = str(trial_dir)
        override_list = [f"{k}={format_value(v)}" for k, v in overrides.items()]
        merged["output_dir"] = str(trial_dir)
        eval_cmd = None
        if eval_cfg is not None:
            eval_over = dict(eval_cfg["overrides"])
            if merged.get("finetuning_type", "lora") == "full":
                eval_over["model_name_or_path"] = str(trial_dir)
            else:
                eval_over.setdefault("model_name_or_path", merged.get("model_name_or_path"))
                eval_over["adapter_name_or_path"] = str(trial_dir)
            if "from_recipe" not in eval_over and "from_recipe" not in eval_cfg["file_keys"]:
                # the evaluator takes template and thinking modes from the training recipe
                eval_over["from_recipe"] = cfg.base
            eval_over["output_dir"] = str(trial_dir / "eval")
            eval_cmd = [
                sys.executable, "-m", "llamafactory_ext.cli", "eval", eval_cfg["config"],
                *[f"{k}={format_value(v)}" for k, v in eval_over.items() if v is not None],
            ]
        trials.append(
            Trial(
                name=name, params=params, overrides=override_list, train_config=merged, data_group=group,
                dir=str(trial_dir), train_cmd=[cli, "train", cfg.base, *override_list], eval_cmd=eval_cmd,
                cwd=cwd, env=env, log_tail_lines=cfg.log_tail_lines,
            )
        )
    return trials


def _show(params: dict) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in params.items())


def _eval_section(cfg: SweepConfig, where: str, cwd: str) -> dict | None:
    if cfg.eval in (None, {}, False):
        return None
    if isinstance(cfg.eval, str):
        section: dict = {"config": cfg.eval}
    elif isinstance(cfg.eval, dict):
        section = dict(cfg.eval)
    else:
        raise SweepError(f"{where}: eval must be a mapping {{config: EVAL.yaml, overrides: {{...}}}}")
    unknown = set(section) - {"config", "overrides"}
    if unknown:
        raise SweepError(f"{where}: eval: unknown key {min(unknown)!r} (known: config, overrides)")
    if not section.get("config"):
        raise SweepError(f"{where}: eval.config: the evaluator config file is required")
    if not (Path(cwd) / section["config"]).is_file():
        raise SweepError(f"{where}: eval.config: file not found: {section['config']}")
    overrides = _fixed_overrides(section.get("overrides") or {}, where)
    try:
        from llamafactory_ext.eval.runner import EvalConfig
    except ImportError:  # pragma: no cover - the evaluator is part of the package
        EvalConfig = None
    if EvalConfig is not None:
        import difflib

        known = {f.name for f in dataclasses.fields(EvalConfig)}
        for key in overrides:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SweepError(f"{where}: eval.overrides.{key}: the evaluator has no key {key!r}{hint}")
    for key in ("output_dir", "adapter_name_or_path"):
        if key in overrides:
            raise SweepError(f"{where}: eval.overrides.{key}: the sweep sets {key} per trial")
    from llamafactory_ext.config import load_yaml

    file_keys = set(load_yaml(Path(cwd) / section["config"]))
    return {"config": section["config"], "overrides": overrides, "file_keys": file_keys}


# --------------------------------------------------------------------------------------------
# running one trial (shared by the local and the Ray backends; runs on the worker)
# --------------------------------------------------------------------------------------------

ADAPTER_FILES = (
    "adapter_model.safetensors", "adapter_model.bin",  # LoRA / OFT adapters
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",  # full
)
_TRAINABLE_RE = re.compile(r"trainable params: ([\d,]+) \|\| all params: ([\d,]+)")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_state(trial_dir: str | Path) -> dict | None:
    path = Path(trial_dir) / "trial.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def training_done(trial_dir: Path) -> bool:
    return (trial_dir / "train_results.json").is_file() and any((trial_dir / f).is_file() for f in ADAPTER_FILES)


def eval_done(trial_dir: Path, has_eval: bool) -> bool:
    return not has_eval or (trial_dir / "eval" / "results.json").is_file()


def trial_complete(trial: Trial) -> bool:
    d = Path(trial.dir)
    state = read_state(d)
    return bool(state and state.get("status") == "done" and training_done(d) and eval_done(d, trial.eval_cmd is not None))


def _tail(path: Path, n: int) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def _run_logged(cmd: list[str], log: Path, cwd: str, env: dict[str, str]) -> tuple[int, float, float]:
    """Run ``cmd`` with stdout+stderr into ``log``; (exit code, seconds, peak RSS of the process tree in GiB)."""
    if log.exists():
        os.replace(log, log.with_suffix(".prev.log"))
    start = time.time()
    with open(log, "w", encoding="utf-8") as fh:
        fh.write("$ " + shlex.join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.time() - start, usage.ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def _train_metrics(trial_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    m = None
    for log_name in ("train.log", "train.prev.log"):
        text = (trial_dir / log_name).read_text(encoding="utf-8", errors="replace") if (trial_dir / log_name).is_file() else ""
        found = _TRAINABLE_RE.findall(text)
        if found:
            m = found[-1]
            break
    if m:
        out["trainable_params"] = int(m[0].replace(",", ""))
        out["all_params"] = int(m[1].replace(",", ""))
    results = trial_dir / "train_results.json"
    if results.is_file():
        data = json.loads(results.read_text())
        out["train_runtime_s"] = data.get("train_runtime")
        out["train_loss_mean"] = data.get("train_loss")
    final_loss = None
    peak_vram = None
    log = trial_dir / "trainer_log.jsonl"
    if log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("loss") is not None:
                final_loss = row["loss"]
            if row.get("vram_allocated"):
                peak_vram = max(peak_vram or 0.0, float(row["vram_allocated"]))
    if final_loss is None:
        state = trial_dir / "trainer_state.json"
        if state.is_file():
            for row in json.loads(state.read_text()).get("log_history", []):
                if "loss" in row:
                    final_loss = row["loss"]
    out["final_loss"] = final_loss
    out["peak_vram_gb"] = peak_vram
    return out


def run_trial(trial: Trial, gpu_ids: list[str] | None = None) -> dict[str, Any]:
    """Train (unless already trained) and evaluate one trial; write ``<trial>/trial.json``; return it."""
    d = Path(trial.dir)
    if not d.is_absolute():
        d = Path(trial.cwd) / d
    d.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(trial.env)
    env["RECORD_VRAM"] = "1"  # LLaMA-Factory logs peak GPU memory into trainer_log.jsonl
    if gpu_ids is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
    old = read_state(d) or {}
    state: dict[str, Any] = {
        "name": trial.name, "params": trial.params, "status": "running", "train_cmd": shlex.join(trial.train_cmd),
        "eval_cmd": shlex.join(trial.eval_cmd) if trial.eval_cmd else None, "started": time.time(),
        "host": os.uname().nodename, "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
        "attempts": int(old.get("attempts", 0)) + 1, "peak_rss_gb": old.get("peak_rss_gb"),
        "train_wall_s": old.get("train_wall_s"),
    }
    _atomic_write(d / "trial.json", json.dumps(state, indent=2))

    def fail(phase: str, code: int, log: Path) -> dict:
        state.update(status="failed", phase=phase, exit_code=code, log=str(log),
                     log_tail=_tail(log, trial.log_tail_lines), finished=time.time())
        state.update(_train_metrics(d))
        _atomic_write(d / "trial.json", json.dumps(state, indent=2))
        return state

    if not training_done(d):
        code, wall, rss = _run_logged(trial.train_cmd, d / "train.log", trial.cwd, env)
        state["train_wall_s"], state["peak_rss_gb"] = round(wall, 2), round(rss, 3)
        if code != 0 or not training_done(d):
            return fail("train", code if code != 0 else -1, d / "train.log")
    state.update(_train_metrics(d))
    if trial.eval_cmd and not eval_done(d, True):
        code, wall, _ = _run_logged(trial.eval_cmd, d / "eval.log", trial.cwd, env)
        state["eval_wall_s"] = round(wall, 2)
        if code != 0 or not eval_done(d, True):
            return fail("eval", code if code != 0 else -1, d / "eval.log")
    state.update(status="done", finished=time.time())
    state.pop("exit_code", None)
    state.pop("log_tail", None)
    _atomic_write(d / "trial.json", json.dumps(state, indent=2))
    return state


# --------------------------------------------------------------------------------------------
# scheduling
# --------------------------------------------------------------------------------------------


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
    import shutil

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
            print(f"[sweep] start {trial.name} ({_show(trial.params)}){where}", flush=True)

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


def _run_recorded(trial: Trial, gpu_ids: list[str] | None = None) -> dict[str, Any]:
    """:func:`run_trial`, with an unexpected error (not a failed subprocess) recorded as a failure too."""
    try:
        return run_trial(trial, gpu_ids)
    except Exception as exc:  # noqa: BLE001 - one broken trial must not stop the sweep
        import traceback

        state = {"name": trial.name, "params": trial.params, "status": "failed", "phase": "sweep",
                 "exit_code": None, "log_tail": traceback.format_exc()[-4000:], "error": repr(exc)}
        d = Path(trial.dir) if Path(trial.dir).is_absolute() else Path(trial.cwd) / trial.dir
        d.mkdir(parents=True, exist_ok=True)
        _atomic_write(d / "trial.json", json.dumps(state, indent=2))
        return state


def run_local(trials: list[Trial], cfg: SweepConfig, on_done) -> None:
    gpus = _visible_gpus(cfg)
    if gpus and cfg.gpus_per_trial > 0:
        if cfg.gpus_per_trial > len(gpus):
            raise SweepError(f"gpus_per_trial={cfg.gpus_per_trial} but only {len(gpus)} GPU(s) are visible: {gpus}")
        slots = [gpus[i:i + cfg.gpus_per_trial] for i in range(0, len(gpus) - cfg.gpus_per_trial + 1, cfg.gpus_per_trial)]
    else:
        slots = [None]  # one trial at a time, environment unchanged
    reporter = _Reporter(len(trials))
    pending = list(trials)
    if len(slots) == 1:
        while pending:
            for t in _next_wave(pending):
                pending.remove(t)
                reporter.start(t, f" on GPU {','.join(slots[0])}" if slots[0] else "")
                state = _run_recorded(t, slots[0])
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
                    reporter.start(t, f" on GPU {','.join(slot)}")
                    futures[pool.submit(_run_recorded, t, slot)] = (t, slot)
                finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for fut in finished:
                    t, slot = futures.pop(fut)
                    free.append(slot)
                    state = fut.result()
                    reporter.finish(t, state)
                    on_done(t, state)


def run_ray(trials: list[Trial], cfg: SweepConfig, on_done) -> None:
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
    task = ray.remote(num_gpus=cfg.gpus_per_trial, num_cpus=cfg.cpus_per_trial, max_retries=0)(_run_recorded)
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
                    Path(t.dir).mkdir(parents=True, exist_ok=True)
                    _atomic_write(Path(t.dir) / "trial.json", json.dumps(state, indent=2))
                reporter.finish(t, state)
                on_done(t, state)


# --------------------------------------------------------------------------------------------
# summary: CSV, Markdown, plots
# --------------------------------------------------------------------------------------------


def eval_metrics(results: dict) -> dict[str, float]:
    """``{"<metric>/<mode>": value}`` from an evaluator ``results.json`` (per-mode numeric scores)."""
    from llamafactory_ext.thinking import MODES

    out: dict[str, float] = {}

    def numeric(d: dict, mode: str, prefix: str = "") -> None:
        for k, v in d.items():
            if isinstance(v, dict) and not prefix and k == "format":
                numeric(v, mode, prefix=f"{k}.")  # thinking-format compliance: closed_think, cut_off, ...
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if k in ("correct", "total", "missing"):  # counts, not metrics
                continue
            out[f"{prefix}{k}/{mode}"] = float(v)

    modes = results.get("modes")
    if isinstance(modes, dict):
        for mode, block in modes.items():
            if isinstance(block, dict):
                numeric(block, mode)
    elif isinstance(modes, list):
        for block in modes:
            if isinstance(block, dict) and "mode" in block:
                numeric(block, block["mode"])
    for mode in MODES:
        if isinstance(results.get(mode), dict):
            numeric(results[mode], mode)
    return out


def collect_rows(trials: list[Trial]) -> list[dict[str, Any]]:
    rows = []
    for t in trials:
        d = Path(t.dir) if Path(t.dir).is_absolute() else Path(t.cwd) / t.dir
        state = read_state(d) or {"status": "pending"}
        row: dict[str, Any] = {"trial": t.name, "status": state.get("status", "pending"), **t.params}
        metrics = _train_metrics(d) if d.is_dir() else {}
        row["trainable_params"] = metrics.get("trainable_params")
        row["final_loss"] = metrics.get("final_loss")
        row["train_runtime_s"] = metrics.get("train_runtime_s")
        row["peak_vram_gb"] = metrics.get("peak_vram_gb")
        row["peak_rss_gb"] = state.get("peak_rss_gb")
        results = d / "eval" / "results.json"
        if results.is_file():
            try:
                row.update(eval_metrics(json.loads(results.read_text(encoding="utf-8"))))
            except (OSError, json.JSONDecodeError):
                pass
        if state.get("status") == "failed":
            row["error"] = f"{state.get('phase')}: exit {state.get('exit_code')}"
        rows.append(row)
    return rows


def _columns(rows: list[dict], params: list[str]) -> list[str]:
    fixed = ["trial", "status", *params, "trainable_params", "final_loss", "train_runtime_s", "peak_vram_gb", "peak_rss_gb"]
    # accuracy first (the headline), then the other metrics; each metric's modes side by side
    metric_cols = sorted({k for r in rows for k in r if "/" in k}, key=lambda k: (not k.startswith("accuracy/"), k))
    extra = ["error"] if any("error" in r for r in rows) else []
    return fixed + metric_cols + extra


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}" if abs(v) >= 10000 else str(v)
    return str(v)


def write_summary(out_dir: Path, trials: list[Trial], cfg: SweepConfig) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    params = list(trials[0].params) if trials else []
    rows = collect_rows(trials)
    cols = _columns(rows, params)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})
    _atomic_write(out_dir / "summary.csv", buf.getvalue())
    lines = [f"# Sweep over {', '.join(cfg.grid)} ({cfg.base})", ""]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
    done = sum(r["status"] == "done" for r in rows)
    failed = sum(r["status"] == "failed" for r in rows)
    lines += ["", f"{done} done, {failed} failed, {len(rows) - done - failed} not run, of {len(rows)} trials."]
    if failed:
        lines.append("Failed trials keep their exit code and log tail in `<trial>/trial.json`; re-run with `retry_failed=true`.")
    _atomic_write(out_dir / "summary.md", "\n".join(lines) + "\n")
    write_plots(out_dir, rows, cfg)
    return rows


def write_plots(out_dir: Path, rows: list[dict], cfg: SweepConfig) -> list[Path]:
    """One PNG per metric: x = the swept key, one line per thinking mode (and per other grid value)."""
    grid_keys = list(cfg.grid)
    x_key = cfg.plot_x or grid_keys[0]
    others = [k for k in grid_keys if k != x_key]
    numeric_x = all(isinstance(r.get(x_key), (int, float)) for r in rows)
    series_names = ["trainable_params", "final_loss", "train_runtime_s", "peak_vram_gb"]
    metrics: dict[str, set[str]] = {}
    for r in rows:
        for k, v in r.items():
            if "/" in k and v is not None:
                name, mode = k.rsplit("/", 1)
                metrics.setdefault(name, set()).add(mode)
    for name in series_names:
        if any(r.get(name) is not None for r in rows):
            metrics.setdefault(name, {""})
    if not metrics:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, modes in sorted(metrics.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        drew = False
        for mode in sorted(modes):
            col = f"{name}/{mode}" if mode else name
            groups: dict[tuple, list] = {}
            for r in rows:
                if r.get(col) is None:
                    continue
                groups.setdefault(tuple(r.get(k) for k in others), []).append((r[x_key], r[col]))
            for other_vals, pts in groups.items():
                if numeric_x:
                    pts.sort(key=lambda p: p[0])
                label = " ".join(filter(None, [mode, _show(dict(zip(others, other_vals))) if others else ""]))
                xs = [p[0] if numeric_x else str(p[0]) for p in pts]
                ax.plot(xs, [p[1] for p in pts], marker="o", label=label or name)
                drew = True
        if not drew:
            plt.close(fig)
            continue
        ax.set_xlabel(x_key)
        ax.set_ylabel(name)
        ax.set_title(f"{name} vs {x_key}")
        if numeric_x:
            ax.set_xticks(sorted({r[x_key] for r in rows}))
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        os.replace(tmp, path)
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def options_help() -> str:
    from llamafactory_ext.config import describe

    return describe(SweepConfig)


def print_plan(trials: list[Trial], statuses: dict[str, str]) -> None:
    print(f"{len(trials)} trial(s):")
    for i, t in enumerate(trials, 1):
        print(f"\n[{i}] {t.name}  ({_show(t.params)})  status: {statuses[t.name]}")
        print("    train: " + shlex.join(t.train_cmd))
        if t.eval_cmd:
            print("    eval:  " + shlex.join(t.eval_cmd))


def main(argv: list[str]) -> int:
    cfg, where = load_sweep_config(argv)
    if cfg.max_trials is not None and cfg.max_trials < 1:
        raise SweepError(f"{where}: max_trials must be >= 1")
    trials = plan_trials(cfg, where)
    out_dir = Path(cfg.output_dir)
    statuses = {}
    for t in trials:
        state = read_state(t.dir) or {}
        statuses[t.name] = "done" if trial_complete(t) else state.get("status", "pending")
        if statuses[t.name] == "running":
            statuses[t.name] = "interrupted"
    if cfg.dry_run:
        print_plan(trials, statuses)
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = {"sweep": where, "base": cfg.base, "grid": cfg.grid, "derived": cfg.derived,
            "trials": [{"name": t.name, "params": t.params, "train_cmd": shlex.join(t.train_cmd),
                        "eval_cmd": shlex.join(t.eval_cmd) if t.eval_cmd else None} for t in trials]}
    _atomic_write(out_dir / "sweep_plan.json", json.dumps(plan, indent=2, default=str))

    todo = []
    for t in trials:
        status = statuses[t.name]
        if status == "done":
            print(f"[sweep] skip {t.name}: already done ({'adapter and eval results exist' if t.eval_cmd else 'adapter exists'})", flush=True)
        elif status == "failed" and not cfg.retry_failed:
            print(f"[sweep] skip {t.name}: failed before (re-run it with retry_failed=true)", flush=True)
        else:
            todo.append(t)
    if cfg.max_trials is not None and len(todo) > cfg.max_trials:
        print(f"[sweep] max_trials={cfg.max_trials}: running {cfg.max_trials} of {len(todo)} remaining trial(s)", flush=True)
        todo = todo[: cfg.max_trials]

    lock = threading.Lock()

    def on_done(trial: Trial, state: dict) -> None:
        with lock:
            write_summary(out_dir, trials, cfg)

    if todo:
        (run_ray if cfg.backend == "ray" else run_local)(todo, cfg, on_done)
    rows = write_summary(out_dir, trials, cfg)
    failed = [r["trial"] for r in rows if r["status"] == "failed"]
    not_run = [r["trial"] for r in rows if r["status"] not in ("done", "failed")]
    print(f"\n[sweep] summary: {out_dir / 'summary.md'} and {out_dir / 'summary.csv'}")
    print((out_dir / "summary.md").read_text(encoding="utf-8"))
    if not_run:
        print(f"[sweep] {len(not_run)} trial(s) not run yet: re-run the same command to resume")
    return 1 if failed else 0
