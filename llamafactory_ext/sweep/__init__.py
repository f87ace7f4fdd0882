"""``llamafactory-ext sweep``: train + evaluate a grid of trials (the command is
:mod:`llamafactory_ext.sweep.command`; ``config`` keys and checks, ``trials`` one trial, ``scheduling``
local / Ray, ``summary`` what a sweep reports)."""

from __future__ import annotations

from llamafactory_ext.sweep.command import USAGE, main, options_help, print_plan, run_all, select
from llamafactory_ext.sweep.config import RunOptions, SweepConfig, SweepError, load_sweep_config
from llamafactory_ext.sweep.trials import Trial, grid_trials

__all__ = ["USAGE", "RunOptions", "SweepConfig", "SweepError", "Trial", "grid_trials", "load_sweep_config", "main",
           "options_help", "print_plan", "run_all", "select"]
