"""The format study ("Version Series") as one command: a baseline and one trial per training recipe,
each evaluated in both thinking modes on the same items, in one table shaped like the published one.

    llamafactory-ext study recipes/studies/format.yaml dry_run=true     # every command, nothing run
    llamafactory-ext study recipes/studies/format.yaml prepare.source=[A/quiz.json,C/quiz.json] prepare.traces=traces.jsonl

Study file keys (nested with dots on the command line, e.g. ``eval.overrides.limit=500``):
``title``, ``output_dir``, ``model`` (the base model of every trial), ``versions`` (a list of
``{name, recipe, format, overrides}``: ``format`` is the "Training format" column), ``train_overrides``
(for every version), ``eval`` (``{config: EVAL.yaml, overrides: {...}}``; ``thinking`` is always
``both``), ``baseline`` (evaluate the base model too; default true), ``prepare`` (data sets to
convert first: ``{datasets: [...], source, traces, out_dir, options: {NAME: {...}}}``; skipped when
already prepared with the same options), ``headline`` (the groups the Version Series is given for:
``total`` and/or category / macro-category names), ``published`` (``auto``: the published figures
stand beside ours when the model is Qwen3-8B and the task ITALIC; ``true`` | ``false``), and the
run keys of ``sweep`` (``retry_failed``, ``max_trials``, ``backend: local|ray``, ``gpus_per_trial``, ...).

It is built on the sweep engine: one folder per trial (``baseline/``, ``V1/``, ...), resume,
``retry_failed``, GPU slots, Ray. The baseline is evaluated once, first; every version's evaluation
is then compared with it item by item (``eval baseline=``: Δ and exact McNemar p-values).
Outputs: ``study.md`` (the Version Series per headline group, with the published one beside it,
per-category tables of each mode, thinking format), ``study.json`` and ``study.png``.
"""

from __future__ import annotations

import dataclasses
import json
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
from llamafactory_ext.io import (
    atomic_write_json,
    atomic_write_text,
    ensure_dir,
    save_figure,
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
from llamafactory_ext.sweep.summary import track_trial
from llamafactory_ext.sweep.trials import Trial, make_trial, status
from llamafactory_ext.thinking import NOTHINK, THINK
from llamafactory_ext.tracking import report_targets

USAGE = "STUDY.yaml [key=value ...]   (nested keys with dots: eval.overrides.limit=500 prepare.traces=t.jsonl)"
BASELINE = "baseline"  # also the baseline's key in a task's published figures (eval.tasks.Task.published)
FLAT_PP = 1.0  # a published Δ smaller than this is "no change"


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


def _prepared(name: str, values: dict[str, Any], cwd: str) -> bool:
    """True when ``NAME.manifest.json`` records these very options (nothing to redo)."""
    from llamafactory_ext.data import get_spec
    from llamafactory_ext.data.prepare import options_class, output_paths

    wanted = dataclasses.asdict(options_class(get_spec(name))(**values))
    manifest = output_paths(name, Path(cwd) / wanted["out_dir"])["manifest"]
    try:
        return json.loads(manifest.read_text(encoding="utf-8"))["options"] == json.loads(json.dumps(wanted))
    except (OSError, ValueError, KeyError):
        return False


def run_prepare(steps: list[tuple[str, dict[str, Any]]], cwd: str, dry_run: bool) -> None:
    for name, values in steps:
        cmd = [sys.executable, "-m", "llamafactory_ext.cli", "prepare", name, *[f"{k}={format_value(v)}" for k, v in values.items()]]
        shown = "llamafactory-ext " + shlex.join(cmd[3:])
        if dry_run:
            print(f"    prepare: {shown}")
        elif _prepared(name, values, cwd):
            print(f"[study] skip prepare {name}: already prepared with these options", flush=True)
        else:
            print(f"[study] {shown}", flush=True)
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise SweepError(f"prepare {name} failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")


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
# the report
# ---------------------------------------------------------------------------------------------
def _results(trial: Trial) -> tuple[dict | None, dict | None]:
    d = trial.path() / "eval"
    out = []
    for name in ("results.json", "comparison.json"):
        try:
            out.append(json.loads((d / name).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            out.append(None)
    return out[0], out[1]


def group_block(mode_stats: dict[str, Any], group: str) -> dict[str, Any] | None:
    if group == "total":
        return mode_stats
    return (mode_stats.get("per_category") or {}).get(group) or (mode_stats.get("per_macro_category") or {}).get(group)


def collect(cfg: StudyConfig, trials: list[Trial]) -> dict[str, Any]:
    """study.json: per trial and mode, the headline groups with intervals, Δ and p vs the baseline."""
    rows = []
    for t in trials:
        results, comparison = _results(t)
        entry: dict[str, Any] = {"name": t.name, "format": t.params.get("format", ""), "status": status(t),
                                 "trial_dir": str(t.path()), "modes": {}}
        for mode in (NOTHINK, THINK):
            stats = (results or {}).get("modes", {}).get(mode)
            if stats is None:
                continue
            comp = ((comparison or {}).get("modes") or {}).get(mode) or {}
            entry["modes"][mode] = {
                "groups": {g: group_block(stats, g) for g in cfg.headline},
                "vs_baseline": {g: comp.get(g) for g in cfg.headline if comp.get(g)},
                "format": stats.get("format"), "cut_off": stats.get("cut_off"), "unfinished": stats.get("unfinished"),
                "tokens": stats.get("tokens"),
                "per_category": stats.get("per_category"), "per_macro_category": stats.get("per_macro_category"),
            }
        entry["model"] = (results or {}).get("model")
        entry["task"] = (results or {}).get("task")
        rows.append(entry)
    published = _published(cfg, rows)
    return {"title": cfg.title, "headline": list(cfg.headline), "versions": rows, "published": published,
            "directions": directions(rows, cfg.headline[0], published) if published else {}}


def _published(cfg: StudyConfig, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The published figures to stand beside ours: ``true``, the task registry's published study;
    ``auto``, the evaluated task's own (``Task.published``) when the base model is the one published."""
    from llamafactory_ext.eval.tasks import TASKS, published_study, task_class

    if cfg.published in (False, "false"):
        return None
    if cfg.published in (True, "true"):
        found = published_study()
        return found[1] if found else None
    models = [r["model"].get("model_name_or_path") for r in rows if r.get("model")]
    model = models[0] if models else cfg.model
    task = next((r["task"] for r in rows if r.get("task")), None)
    figures = task_class(task).published if task in TASKS else None
    return figures if figures and str(model or "").endswith(Path(figures["model"]).name) else None


def _delta_pp(row: dict[str, Any], mode: str, group: str) -> float | None:
    comp = row["modes"].get(mode, {}).get("vs_baseline", {}).get(group)
    return comp["delta"] if comp else None


def _agrees(comp: dict[str, Any], published: float) -> bool:
    """Our paired Δ against a published one: a published Δ under FLAT_PP is "no change" (ours agrees
    when it is not significant); otherwise ours agrees when it has the same sign."""
    if abs(published) < FLAT_PP:
        return not comp["significant"]
    return (comp["delta"] > 0) == (published > 0) and comp["delta"] != 0


def directions(rows: list[dict[str, Any]], group: str, published: dict[str, Any]) -> dict[str, str]:
    """One sentence per version: does the direction of each Δ agree with the published one?"""
    out = {}
    pub = published["versions"]
    for row in rows:
        if row["name"] not in pub or row["name"] == BASELINE:
            continue
        parts, disagree = [], []
        for mode, label in ((NOTHINK, "no thinking"), (THINK, "thinking")):
            comp = row["modes"].get(mode, {}).get("vs_baseline", {}).get(group)
            if not comp:
                continue
            theirs = pub[row["name"]][mode] - pub[BASELINE][mode]
            parts.append(f"{label} {comp['delta']:+.1f} pp{'' if comp['significant'] else ' (not significant)'} "
                         f"(published {theirs:+.2f})")
            if not _agrees(comp, theirs):
                disagree.append(label)
        if parts:
            verdict = ("the direction agrees with the published one in both modes" if not disagree
                       else f"the direction differs from the published one in {' and '.join(disagree)}")
            out[row["name"]] = f"{row['name']}: {', '.join(parts)}: {verdict}."
    return out


def _cell(block: dict | None) -> str:
    if not block:
        return "—"
    return f"{100 * block['accuracy']:.1f} [{100 * block['ci95'][0]:.1f}, {100 * block['ci95'][1]:.1f}] (n={block['total']})"


def _d(comp: dict | None) -> str:
    return "—" if not comp else f"{comp['delta']:+.1f}{' *' if comp['significant'] else ''} (p={comp['p_value']:.2g})"


def what_changed(row: dict[str, Any], group: str) -> str:
    parts = []
    for mode, label in ((NOTHINK, "no thinking"), (THINK, "thinking")):
        comp = row["modes"].get(mode, {}).get("vs_baseline", {}).get(group)
        if comp:
            word = "up" if comp["delta"] > 0 else "down" if comp["delta"] < 0 else "unchanged"
            parts.append(f"{label} {word}{'' if comp['significant'] else ' (not significant)'}")
    fmt = (row["modes"].get(THINK) or {}).get("format")
    if fmt:
        parts.append(f"closes </think> with a trace in {100 * fmt['nonempty_trace']:.0f} % of thinking outputs")
    return "; ".join(parts) or "—"


def series_table(study: dict[str, Any], group: str) -> list[str]:
    label = "all items" if group == "total" else group
    lines = [f"### Version Series: {label}", "",
             "| Version | Training format | No Thinking [95 % CI] | Δ (pp) | Thinking [95 % CI] | Δ (pp) | What changed |",
             "|---|---|---:|---:|---:|---:|---|"]
    for row in study["versions"]:
        cells = [row["name"] if row["name"] != BASELINE else "Baseline", row["format"] or ("—" if row["name"] == BASELINE else "")]
        for mode in (NOTHINK, THINK):
            m = row["modes"].get(mode, {})
            cells += [_cell((m.get("groups") or {}).get(group)), _d((m.get("vs_baseline") or {}).get(group))]
        cells.append(what_changed(row, group) if row["name"] != BASELINE else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def published_table(published: dict[str, Any]) -> list[str]:
    pub = published["versions"]
    lines = [published["title"], "",
             "| Version | No Thinking (Δ) | Thinking (Δ) |", "|---|---:|---:|"]
    for name, v in pub.items():
        cells = [f"{v[m]:.2f}" + ("" if name == BASELINE else f" ({v[m] - pub[BASELINE][m]:+.2f})") for m in (NOTHINK, THINK)]
        lines.append(f"| {'Baseline' if name == BASELINE else name} | {cells[0]} | {cells[1]} |")
    return lines


def category_tables(study: dict[str, Any]) -> list[str]:
    out = []
    for mode, label in ((NOTHINK, "no thinking"), (THINK, "thinking")):
        names: list[str] = []
        for row in study["versions"]:
            m = row["modes"].get(mode) or {}
            for key in ("per_category", "per_macro_category"):
                names += [n for n in (m.get(key) or {}) if n not in names]
        if not names:
            continue
        head = [r["name"] if r["name"] != BASELINE else "Baseline" for r in study["versions"]]
        out += ["", f"### Per category, {label}", "", "| Category | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
        for name in names:
            cells = []
            for row in study["versions"]:
                m = row["modes"].get(mode) or {}
                b = (m.get("per_category") or {}).get(name) or (m.get("per_macro_category") or {}).get(name)
                cells.append(f"{100 * b['accuracy']:.1f}" if b else "—")
            out.append(f"| {name.replace('_', ' ').capitalize()} | " + " | ".join(cells) + " |")
    return out


def format_table(study: dict[str, Any]) -> list[str]:
    lines = ["", "### Thinking format and token cost (thinking mode, all items)", "",
             "| Version | Closed </think> with a trace | Never closed </think> | Cut off | Tokens mean / median / p95 |",
             "|---|---:|---:|---:|---:|"]
    for row in study["versions"]:
        m = row["modes"].get(THINK) or {}
        fmt, tok = m.get("format") or {}, m.get("tokens") or {}
        toks = " / ".join("—" if tok.get(k) is None else f"{tok[k]:g}" for k in ("mean", "median", "p95"))
        trace = f"{100 * fmt['nonempty_trace']:.1f} %" if fmt else "—"
        lines.append(f"| {row['name'] if row['name'] != BASELINE else 'Baseline'} | {trace} | {m.get('unfinished', '—')} | "
                     f"{m.get('cut_off', '—')} | {toks} |")
    return lines


def render(study: dict[str, Any]) -> str:
    lines = [f"# {study['title']}", "",
             ("Intervals: 95 % Wilson. Δ: percentage points against the baseline on the same items, * when the exact "
             "McNemar test gives p < 0.05. An output cut at max_new_tokens counts as wrong."), ""]
    for group in study["headline"]:
        lines += [*series_table(study, group), ""]
    if study["published"]:
        lines += [*published_table(study["published"]), ""]
    if study["directions"]:
        lines += ["Direction against the published study:", "", *[f"- {s}" for s in study["directions"].values()], ""]
    lines += category_tables(study) + format_table(study)
    return "\n".join(lines) + "\n"


def plot(study: dict[str, Any], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    group = study["headline"][0]
    rows = [r for r in study["versions"] if r["modes"]]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 3, 4))
    for k, (mode, color) in enumerate(((NOTHINK, "#9aa5b1"), (THINK, "#2b6cb0"))):
        xs, vals, errs = [], [], [[], []]
        for i, row in enumerate(rows):
            b = ((row["modes"].get(mode) or {}).get("groups") or {}).get(group)
            if b:
                xs.append(i + (k - 0.5) * 0.38)
                vals.append(100 * b["accuracy"])
                errs[0].append(100 * (b["accuracy"] - b["ci95"][0]))
                errs[1].append(100 * (b["ci95"][1] - b["accuracy"]))
        ax.bar(xs, vals, 0.38, yerr=errs, capsize=3, color=color, label="no thinking" if mode == NOTHINK else "thinking")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(["Baseline" if r["name"] == BASELINE else r["name"] for r in rows])
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%) with 95 % interval")
    ax.set_title(f"{study['title']} ({'all items' if group == 'total' else group})")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def write_report(cfg: StudyConfig, trials: list[Trial]) -> dict[str, Any]:
    out = ensure_dir(cfg.output_dir, "output_dir")
    for t in trials:  # each finished trial once (<trial>/tracking.json), into its training run, as a sweep does
        report_to = cfg.report_to if cfg.report_to is not None else t.train_config.get("report_to")
        if status(t) == "done" and report_targets(report_to):
            track_trial(t, out.name, report_to)
    study = collect(cfg, trials)
    atomic_write_json(out / "study.json", study)
    atomic_write_text(out / "study.md", render(study))
    plot(study, out / "study.png")
    return study


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
    run_prepare(steps, cwd, dry_run=False)
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
