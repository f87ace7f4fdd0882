"""The format study ("Version Series") as one command: a baseline and one trial per training recipe,
each evaluated in both thinking modes on the same items, in one table shaped like the published one.

    llamafactory-ext study recipes/studies/format.yaml dry_run=true     # every command, nothing run
    llamafactory-ext study recipes/studies/format.yaml prepare.source=[A/quiz.json,C/quiz.json] prepare.traces=traces.jsonl

Study file keys (nested with dots on the command line, e.g. ``eval.overrides.limit=500``):
``title``, ``output_dir``, ``model`` (the base model of every trial), ``versions`` (a list of
``{name, recipe, format, overrides}``: ``format`` is the "Training format" column), ``train_overrides``
(for every version), ``eval`` (``{config: EVAL.yaml, overrides: {...}}``; ``thinking`` is always
``both``), ``baseline`` (evaluate the base model too; default true), ``prepare`` (data sets to
convert first: ``{datasets: [...], source, traces, out_dir, options: {NAME: {...}}}``; skipped only
when ``data.manifest.prepared_with`` finds the prepared files current: the same options and the same
source and traces contents, else re-prepared, saying what changed), ``headline`` (the groups the Version Series is given for:
``total`` and/or category / macro-category names), ``published`` (``auto``: the published figures
stand beside ours when the model is Qwen3-8B and the task ITALIC; ``true`` | ``false``), and the
run keys of ``sweep`` (``retry_failed``, ``max_trials``, ``backend: local|ray``, ``gpus_per_trial``, ...).

It is built on the sweep engine: one folder per trial (``baseline/``, ``V1/``, ...), resume,
``retry_failed``, GPU slots, Ray. A trial whose inputs changed since it ran (its recipe as resolved,
its data files, the base model, the evaluator's config: ``sweep.inputs``) is stale: the study stops
before anything runs, naming each stale trial and what changed, unless ``overwrite=true`` (the stale
trials rerun, the others are kept). The baseline is evaluated once, first; every version's evaluation
is then compared with it item by item (``eval baseline=``: Δ and exact McNemar p-values).
Outputs: ``study.md`` (the Version Series per headline group, with the published one beside it,
per-category tables of each mode, thinking format), ``study.json`` and ``study.png``.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from llamafactory_ext.config import (
    argv_where,
    describe,
    format_value,
    from_argv,
    load_yaml,
    option,
)
from llamafactory_ext.data.folder import planned_registrations
from llamafactory_ext.study_md import published_table, render  # noqa: F401 - the report half, handed on (tests)
from llamafactory_ext.study_report import (  # noqa: F401 - the report half, handed on (tests, webui)
    BASELINE,
    _published,
    collect,
    directions,
    write_report,
)
from llamafactory_ext.sweep import print_plan, run_all
from llamafactory_ext.sweep.config import (
    RunOptions,
    SweepError,
    as_overrides,
    check_keys,
    check_trials_data,
    check_values,
    eval_section,
    profile_overrides,
)
from llamafactory_ext.sweep.inputs import refuse_stale, stale_trials
from llamafactory_ext.sweep.trials import Trial, make_trial, status

USAGE = "STUDY.yaml [key=value ...]   (nested keys with dots: eval.overrides.limit=500 prepare.traces=t.jsonl)"


@dataclasses.dataclass
class StudyConfig(RunOptions):
    title: str = option("Format study", "report title")
    output_dir: str = option("saves/studies/format", "study folder: one sub-folder per trial + study.md / .json / .png")
    model: str | None = option(None, "base model of every trial (model_name_or_path; default: each recipe's)")
    versions: list = option([], "[{name, recipe, format, overrides}]: one training trial each", path=("recipe",))
    train_overrides: dict = option({}, "recipe overrides for every version (e.g. dataset_dir, tiny-model / CPU switches)")
    eval: Any = option(None, "{config: EVAL.yaml, overrides: {...}}: the evaluation of every trial (both modes)", path=("config",))
    baseline: bool = option(True, "evaluate the base model too (the Δ columns need it)")
    prepare: dict = option({}, "{datasets: [...], source, traces, out_dir, options: {NAME: {...}}}: data converted first")
    headline: list = option(["total"], "groups of the Version Series table: total and/or category names")
    published: Any = option("auto", "auto | true | false: the published Qwen3-8B / ITALIC figures beside ours")
    report_to: Any = option(None, "tensorboard | wandb | all: log every finished trial's figures into its training run "
                                  "(default: each recipe's report_to; none: nothing)")


@dataclasses.dataclass
class Version:
    name: str
    recipe: str
    format: str = ""
    overrides: dict = dataclasses.field(default_factory=dict)


def options_help() -> str:
    return describe(StudyConfig)


def versions_of(cfg: StudyConfig, where: str, cwd: str) -> list[Version]:
    if not cfg.versions:
        raise SweepError(f"{where}: versions is empty: give at least one {{name, recipe, format}}")
    out = []
    for i, v in enumerate(cfg.versions):
        if not isinstance(v, dict) or not v.get("name") or not v.get("recipe"):
            raise SweepError(f"{where}: versions[{i}] needs a name and a recipe, got {v!r}")
        unknown = set(v) - {f.name for f in dataclasses.fields(Version)}
        if unknown:
            raise SweepError(f"{where}: versions[{i}]: unknown key {min(unknown)!r} (known: name, recipe, format, overrides)")
        version = Version(str(v["name"]), str(v["recipe"]), str(v.get("format") or ""), as_overrides(v.get("overrides"), where, f"versions[{i}].overrides"))
        if version.name == BASELINE or version.name in {o.name for o in out}:
            raise SweepError(f"{where}: versions[{i}]: the name {version.name!r} is taken")
        if not (Path(cwd) / version.recipe).is_file():
            raise SweepError(f"{where}: versions[{i}]: recipe not found: {version.recipe}")
        out.append(version)
    return out


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def prepare_commands(cfg: StudyConfig, where: str) -> list[tuple[str, dict[str, Any]]]:
    """(data set, options) for every data set of the ``prepare`` section, each with only the keys it takes."""
    from llamafactory_ext.data import get_spec
    from llamafactory_ext.data.prepare import options_class

    section = dict(cfg.prepare or {})
    names = section.pop("datasets", [])
    own = section.pop("options", {}) or {}
    out = []
    for name in names if isinstance(names, list) else [names]:
        fields = {f.name for f in dataclasses.fields(options_class(get_spec(name)))}
        values = {k: v for k, v in section.items() if k in fields and v is not None}
        values.update(own.get(name) or {})
        unknown = set(values) - fields
        if unknown:
            raise SweepError(f"{where}: prepare.options.{name}: {name} has no key {min(unknown)!r}")
        out.append((name, values))
    return out


def prepare_changes(name: str, values: dict[str, Any], cwd: str) -> list[str]:
    """What differs between data set ``name`` as prepared (its manifest) and preparing it now with
    ``values``: options, converter version, the contents of its source and traces files, the output
    itself (``data.manifest.prepared_with``). Empty: current, nothing to redo."""
    from llamafactory_ext.data import get_spec
    from llamafactory_ext.data.manifest import options_class, output_paths, prepared_with

    options = options_class(get_spec(name))(**values)
    return prepared_with(output_paths(name, Path(cwd) / options.out_dir)["manifest"], options, cwd)


def register_prepared(name: str, values: dict[str, Any], cwd: str) -> None:
    """Register data set ``name``'s prepared files where preparing it now would (an entry already there
    is kept as it is: ``data.folder.register``)."""
    from llamafactory_ext.data import get_spec
    from llamafactory_ext.data.folder import register
    from llamafactory_ext.data.manifest import options_class, output_paths

    options = options_class(get_spec(name))(**values)
    if not options.register:
        return
    paths = output_paths(name, Path(cwd) / options.out_dir)
    files = {name: paths["train"], **({f"{name}_val": paths["val"]} if paths["val"].is_file() else {})}
    register(get_spec(name), files, Path(cwd) / (options.dataset_info or "dataset_info.json"))


def run_prepare(steps: list[tuple[str, dict[str, Any]]], cwd: str, dry_run: bool) -> bool:
    """Prepare each data set that is not current; True when any was (the trials' data changed)."""
    prepared = False
    for name, values in steps:
        cmd = [sys.executable, "-m", "llamafactory_ext.cli", "prepare", name, *[f"{k}={format_value(v)}" for k, v in values.items()]]
        shown = "llamafactory-ext " + shlex.join(cmd[3:])
        if dry_run:
            print(f"    prepare: {shown}")
            continue
        changes = prepare_changes(name, values, cwd)
        if not changes:
            print(f"[study] skip prepare {name}: already prepared with these options and inputs", flush=True)
            register_prepared(name, values, cwd)  # prepared before the data-folder convention: registered now
            continue
        print(f"[study] prepare {name} ({'; '.join(changes)}): {shown}", flush=True)
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SweepError(f"prepare {name} failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")
        prepared = True
    return prepared


# ---------------------------------------------------------------------------------------------
# trials
# ---------------------------------------------------------------------------------------------
def build_trials(cfg: StudyConfig, where: str, cwd: str) -> list[Trial]:
    """The baseline (evaluation only) and one training trial per version, all checked up front."""
    versions = versions_of(cfg, where, cwd)
    spec = eval_section(cfg.eval, where, cwd, reserved=("output_dir", "adapter_name_or_path", "baseline", "thinking", "report_to"))
    if spec is None:
        raise SweepError(f"{where}: eval.config is required: the study evaluates every trial")
    spec["overrides"]["thinking"] = "both"
    common = {**profile_overrides(cfg.profile), **(cfg.train_overrides or {})}
    check_keys(common, "train_overrides.", where)
    check_values(common, f"{where}: train_overrides")
    out_root, env = Path(cfg.output_dir), {str(k): str(v) for k, v in (cfg.env or {}).items()}
    trials: list[Trial] = []
    first = load_yaml(Path(cwd) / versions[0].recipe)
    base_model = cfg.model or first.get("model_name_or_path")
    if cfg.baseline:
        spec_base = {**spec, "overrides": {**spec["overrides"], "template": first.get("template", "qwen3")}}
        trials.append(make_trial(name=BASELINE, params={"version": BASELINE}, recipe=None, base={"model_name_or_path": base_model},
                                 overrides={}, out_root=out_root, eval_spec=spec_base, cwd=cwd, env=env,
                                 log_tail_lines=cfg.log_tail_lines, overwrite=cfg.overwrite))
    extra = {"baseline": str(out_root / BASELINE / "eval")} if cfg.baseline else {}
    for v in versions:
        recipe = load_yaml(Path(cwd) / v.recipe)
        overrides = {**common, **v.overrides, **({"model_name_or_path": cfg.model} if cfg.model else {})}
        check_keys(v.overrides, f"versions.{v.name}.overrides.", where)
        check_values({**recipe, **overrides}, f"{where}: {v.name} ({v.recipe})")
        trials.append(make_trial(name=v.name, params={"version": v.name, "format": v.format}, recipe=v.recipe, base=recipe,
                                 overrides=overrides, out_root=out_root, eval_spec=spec, cwd=cwd, env=env, share=cfg.tokenize_once,
                                 log_tail_lines=cfg.log_tail_lines, eval_extra=extra, overwrite=cfg.overwrite))
    check_trials_data(trials, cfg.dry_run, "study", planned_registrations(prepare_commands(cfg, where), cwd))
    return trials


# ---------------------------------------------------------------------------------------------
# command
# ---------------------------------------------------------------------------------------------
def run(cfg: StudyConfig, where: str, cwd: str | None = None) -> dict[str, Any] | None:
    cwd = cwd or str(Path.cwd())
    steps = prepare_commands(cfg, where)
    trials = build_trials(cfg, where, cwd)
    if cfg.dry_run:
        print(f"{len(steps)} data set(s) to prepare first:" if steps else "no data to prepare first")
        run_prepare(steps, cwd, dry_run=True)
        print_plan(trials, {t.name: status(t) for t in trials})
        return None
    if run_prepare(steps, cwd, dry_run=False):
        trials = build_trials(cfg, where, cwd)  # the tokenized data's keys follow the new contents
    refuse_stale(stale_trials(trials), cfg.overwrite)  # before the baseline: nothing runs on stale inputs
    report = lambda t, s: write_report(cfg, trials)
    budget = cfg.max_trials
    first = [t for t in trials if t.name == BASELINE]
    if first:  # every version is compared with it: evaluate it alone, first
        ran = run_all(first, cfg, report, tag="study")
        budget = None if budget is None else budget - len(ran)
        if status(first[0]) != "done" or budget == 0:
            return write_report(cfg, trials)
    run_all([t for t in trials if t.name != BASELINE], dataclasses.replace(cfg, max_trials=budget), report, tag="study")
    return write_report(cfg, trials)


def main(argv: list[str]) -> int:
    cfg, where = from_argv(StudyConfig, argv), argv_where(argv)
    study = run(cfg, where)
    if study is None:
        return 0 if cfg.dry_run else 1
    out = Path(cfg.output_dir)
    print((out / "study.md").read_text(encoding="utf-8"))
    print(f"[study] wrote {out / 'study.md'}, {out / 'study.json'}, {out / 'study.png'}")
    pending = [v["name"] for v in study["versions"] if v["status"] != "done"]
    if pending:
        print(f"[study] not finished: {', '.join(pending)} (re-run the same command to resume)")
    return 1 if any(v["status"] == "failed" for v in study["versions"]) else 0
