"""Trials: what one unit of a sweep or study runs, and running it.

A :class:`Trial` is a training command (``llamafactory-cli train RECIPE k=v ... output_dir=<trial>``,
or none for an evaluation-only trial such as a study's baseline) and an evaluation command
(``llamafactory-ext eval EVAL.yaml ... output_dir=<trial>/eval``), run as real subprocesses with
their logs in the trial folder. :func:`run_trial` resumes: a finished training is not repeated,
a finished evaluation neither; what the trial consumes is recorded (``<trial>/provenance.json``:
the recipe and evaluator config as resolved, the data files, model and source contents, through
``sweep.inputs``) and a trial whose inputs changed is **stale** (:func:`status`): never done, refused
unless ``overwrite=true``, which reruns it from scratch. The shared tokenized data is keyed on
contents (``inputs.tokenized_key``). ``<trial>/trial.json`` holds the state: running, done or failed
(with exit code and log tail).

:func:`grid_trials` expands a sweep file's grid; ``study`` builds its trials with :func:`make_trial`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from llamafactory_ext import provenance as pv
from llamafactory_ext.config import format_value, load_yaml
from llamafactory_ext.io import atomic_write_json, ensure_dir, set_aside
from llamafactory_ext.sweep.config import (
    SweepConfig,
    SweepError,
    as_overrides,
    check_keys,
    check_values,
    eval_expression,
    eval_section,
    show,
)
from llamafactory_ext.sweep.inputs import has_outputs, stale_changes, tokenized_key, trial_provenance

# Fields of LLaMA-Factory's DataArguments that do NOT change the tokenized data.
_DATA_NEUTRAL = {
    "tokenized_path", "overwrite_cache", "preprocessing_batch_size", "preprocessing_num_workers",
    "data_shared_file_system", "eval_num_beams", "buffer_size",
}
# Keys outside DataArguments that change what LLaMA-Factory writes to tokenized_path.
_DATA_KEYS_EXTRA = {
    "model_name_or_path", "model_revision", "cache_dir", "use_fast_tokenizer", "split_special_tokens",
    "add_tokens", "add_special_tokens", "new_special_tokens_config", "resize_vocab", "trust_remote_code",
    "image_max_pixels", "image_min_pixels", "image_do_pan_and_scan", "crop_to_patches", "video_max_pixels",
    "video_min_pixels", "video_fps", "video_maxlen", "use_audio_in_video", "audio_sampling_rate",
    "stage", "seed", "data_seed", "do_train", "do_eval", "do_predict", "predict_with_generate",
}
ADAPTER_FILES = (
    "adapter_model.safetensors", "adapter_model.bin",
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)
_TRAINABLE_RE = re.compile(r"trainable params: ([\d,]+) \|\| all params: ([\d,]+)")


@dataclasses.dataclass
class Trial:
    name: str
    params: dict[str, Any]           # what the trial changes (summary columns)
    dir: str
    train_cmd: list[str] | None      # None: evaluation only (a study's baseline)
    eval_cmd: list[str] | None
    cwd: str
    env: dict[str, str]
    data_group: str | None = None    # tokenized_path shared with other trials (None: no sharing)
    overrides: list[str] = dataclasses.field(default_factory=list)
    train_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    log_tail_lines: int = 40
    overwrite: bool = False
    recipe: str | None = None        # the training recipe file, as given
    eval_args: list[str] = dataclasses.field(default_factory=list)  # EVAL.yaml key=value ... (what eval reads)

    def path(self) -> Path:
        d = Path(self.dir)
        return d if d.is_absolute() else Path(self.cwd) / d


def data_keys() -> set[str]:
    """Keys whose value changes the data LLaMA-Factory tokenizes (and writes to ``tokenized_path``)."""
    from llamafactory.hparams import DataArguments

    return {f.name for f in dataclasses.fields(DataArguments) if f.init} - _DATA_NEUTRAL | _DATA_KEYS_EXTRA


def data_key(recipe: dict[str, Any], cwd: str) -> str:
    """The content key of a recipe's tokenized data (``inputs.tokenized_key`` of its data keys)."""
    return tokenized_key({k: recipe.get(k) for k in sorted(data_keys()) if k in recipe}, recipe, cwd)


def eval_command(eval_spec: dict, train_config: dict[str, Any], trial_dir: Path, recipe: str | None,
                 extra: dict[str, Any] | None = None) -> list[str]:
    """``python -m llamafactory_ext.cli eval EVAL.yaml ...`` for a trained (or base, recipe None) model."""
    over = dict(eval_spec["overrides"])
    if recipe is None:
        over.setdefault("model_name_or_path", train_config.get("model_name_or_path"))
    elif train_config.get("finetuning_type", "lora") == "full":
        over["model_name_or_path"] = str(trial_dir)
    else:
        over.setdefault("model_name_or_path", train_config.get("model_name_or_path"))
        over["adapter_name_or_path"] = str(trial_dir)
    if recipe is not None and "from_recipe" not in over and "from_recipe" not in eval_spec["file_keys"]:
        over["from_recipe"] = recipe  # template and thinking modes of the training recipe
    over.update(extra or {})
    over["output_dir"] = str(trial_dir / "eval")
    return [sys.executable, "-m", "llamafactory_ext.cli", "eval", eval_spec["config"],
            *[f"{k}={format_value(v)}" for k, v in over.items() if v is not None]]


def make_trial(
    *,
    name: str,
    params: dict[str, Any],
    recipe: str | None,
    base: dict[str, Any],
    overrides: dict[str, Any],
    out_root: Path,
    eval_spec: dict | None,
    cwd: str,
    env: dict[str, str],
    share: bool = False,
    log_tail_lines: int = 40,
    eval_extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Trial:
    """One trial (every argument by keyword): ``recipe`` (None: evaluation only) on top of the
    ``base`` recipe keys with ``overrides``, in ``out_root / name``, evaluated with ``eval_spec``
    (``eval_extra``: more evaluator keys, e.g. ``baseline``). ``params`` are the trial's summary
    columns; ``share`` tokenizes once for every trial with the same data keys (``tokenized_path``)."""
    from llamafactory_ext.runtime import llamafactory_cli

    trial_dir = out_root / name
    merged = {**base, **overrides, "output_dir": str(trial_dir)}
    overrides = dict(overrides)
    group = None
    if share and recipe is not None:
        group = str(out_root / "tokenized" / data_key(merged, cwd))
        overrides["tokenized_path"] = group
    overrides["output_dir"] = str(trial_dir)
    override_list = [f"{k}={format_value(v)}" for k, v in overrides.items()]
    train_cmd = [llamafactory_cli(), "train", recipe, *override_list] if recipe is not None else None
    eval_cmd = eval_command(eval_spec, merged, trial_dir, recipe, eval_extra) if eval_spec else None
    return Trial(name=name, params=params, dir=str(trial_dir), train_cmd=train_cmd, eval_cmd=eval_cmd, cwd=cwd, env=env,
                 data_group=group, overrides=override_list, train_config=merged, log_tail_lines=log_tail_lines, overwrite=overwrite,
                 recipe=recipe, eval_args=eval_cmd[4:] if eval_cmd else [])


# --------------------------------------------------------------------------------------------
# a sweep's grid
# --------------------------------------------------------------------------------------------
def trial_name(cfg: SweepConfig, params: dict[str, Any], where: str) -> str:
    if cfg.name_format:
        try:
            name = cfg.name_format.format(**params)
        except KeyError as exc:
            raise SweepError(f"{where}: name_format {cfg.name_format!r} names {exc.args[0]!r}, which is not a grid or derived key") from None
        except (ValueError, IndexError) as exc:
            raise SweepError(f"{where}: name_format {cfg.name_format!r}: {exc}") from None
        return re.sub(r"[^A-Za-z0-9._+=-]+", "_", name)
    return "_".join(f"{key}-{_slug(params[key])}" for key in cfg.grid)


def _slug(value: Any) -> str:
    text = format_value(value) if not isinstance(value, str) else value
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "_"


def _grid(cfg: SweepConfig, where: str) -> dict[str, list]:
    if not isinstance(cfg.grid, dict) or not cfg.grid:
        raise SweepError(f"{where}: the grid is empty: give at least one key with a list of values")
    grid = {}
    for key, values in cfg.grid.items():
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if not values:
            raise SweepError(f"{where}: grid.{key} has no values")
        grid[key] = values
    return grid


def _combos(cfg: SweepConfig, grid: dict[str, list], names: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """Every grid combination with its derived keys, values checked by LLaMA-Factory's parser."""
    out = []
    for combo in itertools.product(*grid.values()):
        params = dict(zip(grid.keys(), combo))
        scope = {**names, **params}
        for key, expr in cfg.derived.items():
            try:
                params[key] = eval_expression(expr, scope, key)
            except SweepError as exc:
                raise SweepError(f"{where}: {exc}") from None
            except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
                raise SweepError(f"{where}: derived.{key}: {expr!r} failed for {show(params)}: {exc}") from None
            scope[key] = params[key]
        check_values(params, f"{where}: trial {show(params)}")
        out.append(params)
    return out


def grid_trials(cfg: SweepConfig, where: str, cwd: str | None = None) -> list[Trial]:
    """Validate everything and expand the grid; raises :class:`SweepError` before any trial runs."""
    cwd = cwd or os.getcwd()
    if not (Path(cwd) / cfg.base).is_file():
        raise SweepError(f"{where}: base recipe not found: {cfg.base}")
    base = load_yaml(Path(cwd) / cfg.base)
    grid = _grid(cfg, where)
    fixed = as_overrides(cfg.fixed, where, "fixed")
    check_keys(base, f"base recipe {cfg.base}: ", where, reserved=False)
    for section, keys in (("fixed.", fixed), ("grid.", grid), ("derived.", cfg.derived)):
        check_keys(keys, section, where)
    check_values(fixed, f"{where}: fixed")
    for key in cfg.derived:
        if key in grid:
            raise SweepError(f"{where}: derived.{key}: {key!r} is also a grid key")
    if cfg.plot_x is not None and cfg.plot_x not in grid:
        raise SweepError(f"{where}: plot_x {cfg.plot_x!r} is not a grid key")
    spec = eval_section(cfg.eval, where, cwd)
    share = cfg.tokenize_once and "tokenized_path" not in {**base, **fixed} and not {**base, **fixed}.get("streaming")
    env = {str(k): str(v) for k, v in (cfg.env or {}).items()}
    trials: list[Trial] = []
    seen: dict[str, dict] = {}
    for params in _combos(cfg, grid, {**base, **fixed}, where):
        name = trial_name(cfg, params, where)
        if name in seen:
            raise SweepError(f"{where}: two trials have the same name {name!r} ({show(seen[name])} and {show(params)}); "
                             "use distinct grid values or a name_format that names every swept key")
        seen[name] = params
        trials.append(make_trial(name=name, params=params, recipe=cfg.base, base=base, overrides={**fixed, **params},
                                 out_root=Path(cfg.output_dir), eval_spec=spec, cwd=cwd, env=env, share=share,
                                 log_tail_lines=cfg.log_tail_lines, overwrite=cfg.overwrite))
    return trials


# --------------------------------------------------------------------------------------------
# running one trial (local and Ray backends; runs on the worker)
# --------------------------------------------------------------------------------------------
def read_state(trial_dir: str | Path) -> dict | None:
    path = Path(trial_dir) / "trial.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def training_done(trial: Trial) -> bool:
    d = trial.path()
    return trial.train_cmd is None or ((d / "train_results.json").is_file() and any((d / f).is_file() for f in ADAPTER_FILES))


def eval_done(trial: Trial) -> bool:
    return trial.eval_cmd is None or (trial.path() / "eval" / "results.json").is_file()


def trial_complete(trial: Trial) -> bool:
    state = read_state(trial.path())
    return bool(state and state.get("status") == "done" and training_done(trial) and eval_done(trial))


def recorded_status(trial: Trial) -> str:
    """done | failed | interrupted | pending: ``trial.json``'s status, checked against the outputs (a
    trial recorded done whose adapter or eval results are gone is interrupted, and runs again)."""
    if trial_complete(trial):
        return "done"
    state = (read_state(trial.path()) or {}).get("status", "pending")
    return "interrupted" if state in ("running", "done") else state


def status(trial: Trial) -> str:
    """stale (its inputs changed since it ran: ``inputs.stale_changes``) | done | failed | interrupted | pending."""
    return "stale" if stale_changes(trial) else recorded_status(trial)


def _tail(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _run_logged(cmd: list[str], log: Path, cwd: str, env: dict[str, str]) -> tuple[int, float, float]:
    """Run ``cmd`` with stdout+stderr into ``log``; (exit code, seconds, peak RSS of the process tree in GiB)."""
    if log.exists():
        set_aside(log, log.with_suffix(".prev.log").name, replace=True)
    start = time.time()
    with open(log, "w", encoding="utf-8") as fh:
        fh.write("$ " + shlex.join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            _, code, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        proc.returncode = os.waitstatus_to_exitcode(code)
    return proc.returncode, time.time() - start, usage.ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def train_metrics(trial_dir: Path) -> dict[str, Any]:
    """Trainable parameters (LLaMA-Factory's log line), runtime, final loss, peak VRAM of a trial."""
    out: dict[str, Any] = {}
    for log_name in ("train.log", "train.prev.log"):
        found = _TRAINABLE_RE.findall(_tail(trial_dir / log_name, 10**6))
        if found:
            out["trainable_params"], out["all_params"] = (int(x.replace(",", "")) for x in found[-1])
            break
    results = trial_dir / "train_results.json"
    if results.is_file():
        data = json.loads(results.read_text())
        out["train_runtime_s"], out["train_loss_mean"] = data.get("train_runtime"), data.get("train_loss")
    final_loss = peak_vram = None
    log = trial_dir / "trainer_log.jsonl"
    for line in log.read_text(encoding="utf-8").splitlines() if log.is_file() else []:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        final_loss = row.get("loss", final_loss)
        if row.get("vram_allocated"):
            peak_vram = max(peak_vram or 0.0, float(row["vram_allocated"]))
    out["final_loss"], out["peak_vram_gb"] = final_loss, peak_vram
    return out


def set_aside_torn_checkpoints(d: Path, name: str) -> list[Path]:
    """Rename each ``checkpoint-N`` that a killed run left half-written, and return the new paths.

    LLaMA-Factory resumes from the highest ``checkpoint-N`` in ``output_dir`` (transformers'
    ``get_last_checkpoint``), whole or not, and a run killed while saving leaves one without a
    readable ``trainer_state.json`` (the Trainer writes it last): the resume would fail with "Can't
    find a valid checkpoint". Renamed to ``torn-checkpoint-N``, it is kept for a look and the resume
    starts from the last whole checkpoint (or from step 0).
    """
    moved = []
    for ckpt in sorted(d.glob("checkpoint-*")):
        if not (ckpt.is_dir() and re.fullmatch(r"checkpoint-\d+", ckpt.name)):
            continue
        try:
            json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
            continue
        except (OSError, ValueError):
            pass
        target = set_aside(ckpt, f"torn-{ckpt.name}")
        moved.append(target)
        print(f"[sweep] {name}: {ckpt.name} was cut while saving (no readable trainer_state.json): moved to "
              f"{target.name}; training resumes from the last whole checkpoint", flush=True)
    return moved


def _phase(trial: Trial, state: dict[str, Any], phase: str, cmd: list[str], env: dict[str, str]) -> bool:
    """Run one phase (train | eval); record a failure in ``state``; True when it succeeded."""
    d = trial.path()
    log = d / f"{phase}.log"
    if phase == "train" and d.exists():
        for stale in ("train_results.json",):  # a resume must not count an old run as finished
            (d / stale).unlink(missing_ok=True)
        set_aside_torn_checkpoints(d, trial.name)
    code, wall, rss = _run_logged(cmd, log, trial.cwd, env)
    state[f"{phase}_wall_s"] = round(wall, 2)
    if phase == "train":
        state["peak_rss_gb"] = round(rss, 3)
    done = training_done(trial) if phase == "train" else eval_done(trial)
    if code == 0 and done:
        return True
    state.update(status="failed", phase=phase, exit_code=code if code != 0 else -1, log=str(log),
                 log_tail=_tail(log, trial.log_tail_lines), finished=time.time())
    return False


def run_trial(trial: Trial, gpu_ids: list[str] | None = None) -> dict[str, Any]:
    """Train (unless trained) and evaluate (unless evaluated) one trial; write and return ``trial.json``."""
    d = ensure_dir(trial.path(), "trial folder")
    def discard() -> None:
        for child in d.iterdir():
            if child.name != pv.RECORD:
                shutil.rmtree(child) if child.is_dir() else child.unlink()

    prov = trial_provenance(trial)
    if trial.data_group and Path(trial.data_group).name != data_key(trial.train_config, trial.cwd):
        raise pv.StaleInputs(f"trial {trial.name}: its data or tokenizer changed since the trials were planned "
                             f"(tokenized_path {trial.data_group} is keyed on the old contents); run the command again")
    pv.check(d, prov, trial.overwrite, f"outputs of trial {trial.name}", has_outputs=has_outputs(d), discard=discard)
    env = {**os.environ, **trial.env, "RECORD_VRAM": "1"}  # LLaMA-Factory logs peak GPU memory
    if gpu_ids is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
    old = read_state(d) or {}
    state: dict[str, Any] = {
        "name": trial.name, "params": trial.params, "status": "running", "started": time.time(),
        "train_cmd": shlex.join(trial.train_cmd) if trial.train_cmd else None,
        "eval_cmd": shlex.join(trial.eval_cmd) if trial.eval_cmd else None,
        "host": os.uname().nodename, "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
        "attempts": int(old.get("attempts", 0)) + 1, "peak_rss_gb": old.get("peak_rss_gb"), "train_wall_s": old.get("train_wall_s"),
    }
    atomic_write_json(d / "trial.json", state)
    ok = training_done(trial) or _phase(trial, state, "train", trial.train_cmd, env)  # type: ignore[arg-type]
    if ok and not eval_done(trial):
        ok = _phase(trial, state, "eval", trial.eval_cmd, env)  # type: ignore[arg-type]
    state.update(train_metrics(d))
    if ok:
        state.update(status="done", finished=time.time())
    atomic_write_json(d / "trial.json", state)
    return state


def run_recorded(trial: Trial, gpu_ids: list[str] | None = None) -> dict[str, Any]:
    """:func:`run_trial`, with an unexpected error recorded as that trial's failure (the sweep goes on)."""
    from llamafactory_ext.config import UserError

    try:
        return run_trial(trial, gpu_ids)
    except UserError:
        raise  # a refused resume: the user must decide (overwrite=true or another output_dir)
    except Exception as exc:  # noqa: BLE001 - one broken trial must not stop the sweep
        import traceback

        state = {"name": trial.name, "params": trial.params, "status": "failed", "phase": "sweep",
                 "exit_code": None, "log_tail": traceback.format_exc()[-4000:], "error": repr(exc)}
        atomic_write_json(ensure_dir(trial.path(), "trial folder") / "trial.json", state)
        return state
