"""Evaluation figures to TensorBoard and W&B, beside the training's own curves (ground floor: no torch at import).

One call, for ``sweep`` now and ``eval`` / ``study`` later::

    from llamafactory_ext import tracking
    tracking.log_results(results, output_dir, report_to="tensorboard,wandb", run_name="r16", step=120,
                         extra={"trainable_params": 16_384, "final_loss": 2.61}, comparison=comparison)

``results`` is an evaluator ``results.json`` dict (``comparison`` its ``comparison.json`` when there was a
baseline). Logged scalars (fractions as in results.json; Δ in percentage points as comparison.json has it):

- ``eval/accuracy/<mode>`` and ``eval/accuracy/<mode>/<category>`` (ITALIC's categories, ...);
- ``eval/cut_off_share/<mode>``: the share of outputs stopped by ``max_new_tokens``;
- ``eval/delta_pp/<mode>``: Δ against the baseline, when there is one;
- ``train/<key>`` for every ``extra`` figure (trainable parameters, final loss, ...).

**TensorBoard** (always, when ``torch.utils.tensorboard`` or ``tensorboardX`` is importable): the same
layout as LLaMA-Factory's ``report_to: tensorboard``, i.e. transformers' ``TensorBoardCallback``: the event
file goes to ``$TENSORBOARD_LOGGING_DIR`` when set, else into the newest ``<output_dir>/runs/<run>`` folder
the training wrote (so the evaluation lands in the training's run, at its last step), else a new
``runs/<Mon DD_HH-MM-SS>_<host>`` folder named as transformers names it.

**W&B** (when ``report_to`` names ``wandb`` or ``all``, and ``wandb`` is installed): a run named as the
training's (``run_name``), in ``$WANDB_PROJECT`` (default ``huggingface``, transformers' default), honouring
``WANDB_MODE=offline``; the figures are logged at ``train/global_step = step`` (the training's x axis) and
set as the run's summary. Without ``wandb`` the W&B part is skipped with one line saying so.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

ALL = ("tensorboard", "wandb")


def report_targets(report_to: Any) -> list[str]:
    """LLaMA-Factory / transformers ``report_to`` (None, "none", "all", "a,b", a list) -> the targets here."""
    if report_to is None:
        return []
    items = report_to if isinstance(report_to, (list, tuple)) else str(report_to).split(",")
    names = {str(x).strip().lower() for x in items if str(x).strip()}
    if "all" in names:
        return list(ALL)
    return [n for n in ALL if n in names]


def results_scalars(results: dict[str, Any], comparison: dict[str, Any] | None = None) -> dict[str, float]:
    """The scalars of one evaluator ``results.json`` (+ ``comparison.json``), tagged as the module says."""
    out: dict[str, float] = {}
    for mode, block in (results.get("modes") or {}).items():
        if isinstance(block.get("accuracy"), (int, float)):
            out[f"eval/accuracy/{mode}"] = float(block["accuracy"])
        for cat, sub in sorted((block.get("per_category") or {}).items()):
            if isinstance(sub, dict) and isinstance(sub.get("accuracy"), (int, float)):
                out[f"eval/accuracy/{mode}/{cat}"] = float(sub["accuracy"])
        if block.get("total"):
            out[f"eval/cut_off_share/{mode}"] = float(block.get("cut_off", 0)) / float(block["total"])
    for mode, table in ((comparison or {}).get("modes") or {}).items():
        total = (table or {}).get("total") or {}
        if isinstance(total.get("delta"), (int, float)):
            out[f"eval/delta_pp/{mode}"] = float(total["delta"])
    return out


def default_run_dir(output_dir: str | Path) -> Path:
    """Where transformers' TensorBoardCallback writes: $TENSORBOARD_LOGGING_DIR, else the newest
    ``output_dir/runs/*`` (the training's run), else a new ``runs/<Mon DD_HH-MM-SS>_<host>``."""
    env = os.environ.get("TENSORBOARD_LOGGING_DIR")
    if env:
        return Path(env).expanduser()
    runs = Path(output_dir) / "runs"
    existing = sorted((p for p in runs.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime) if runs.is_dir() else []
    if existing:
        return existing[-1]
    return runs / (datetime.now().strftime("%b%d_%H-%M-%S") + "_" + socket.gethostname())


_SAID: set[str] = set()


def _say(message: str) -> None:
    """A skip notice, once per process (a sweep would repeat it for every trial)."""
    if message not in _SAID:
        _SAID.add(message)
        print(f"[tracking] {message}", file=sys.stderr, flush=True)


def _summary_writer():
    """transformers' choice: torch.utils.tensorboard, else tensorboardX; None when neither imports."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            return None
    return SummaryWriter


def to_tensorboard(scalars: dict[str, float], run_dir: Path, step: int) -> Path | None:
    writer_class = _summary_writer()
    if writer_class is None:
        _say("TensorBoard skipped: neither tensorboard nor tensorboardX is installed (pip install tensorboard)")
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    writer = writer_class(log_dir=str(run_dir))
    try:
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, step)
        writer.flush()
    finally:
        writer.close()
    return run_dir


def to_wandb(scalars: dict[str, float], folder: Path, step: int, run_name: str | None, group: str | None) -> str | None:
    try:
        import wandb
    except ImportError:
        _say("W&B skipped: report_to names wandb, but wandb is not installed (pip install wandb)")
        return None
    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "huggingface"), name=run_name, group=group,
                     job_type="eval", dir=str(folder), reinit="create_new")
    try:
        run.define_metric("train/global_step")
        run.define_metric("*", step_metric="train/global_step", step_sync=True)
        run.log({**scalars, "train/global_step": step})
        run.summary.update(scalars)
        return str(run.id)
    finally:
        run.finish()


def log_results(results: dict[str, Any], output_dir: str | Path, report_to: Any = None, run_name: str | None = None,
                step: int = 0, extra: dict[str, Any] | None = None, comparison: dict[str, Any] | None = None,
                group: str | None = None) -> dict[str, Any]:
    """Log one evaluation (+ ``extra`` training figures) to TensorBoard and, when ``report_to`` names it, W&B.

    Returns ``{"scalars": {...}, "step": step, "tensorboard": run folder | None, "wandb": run id | None}``."""
    scalars = results_scalars(results, comparison)
    for key, value in (extra or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            scalars[f"train/{key}"] = float(value)
    run_dir = default_run_dir(output_dir)
    record: dict[str, Any] = {"scalars": scalars, "step": step, "tensorboard": None, "wandb": None}
    tensorboard = to_tensorboard(scalars, run_dir, step)
    record["tensorboard"] = str(tensorboard) if tensorboard else None
    if "wandb" in report_targets(report_to):
        record["wandb"] = to_wandb(scalars, Path(output_dir), step, run_name, group)
    return record
