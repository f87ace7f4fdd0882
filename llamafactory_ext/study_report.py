"""The format study's report: ``study.json``, ``study.md`` and ``study.png``, from the trial folders as
they are now (the command and its trials are ``study.py``; the Markdown is ``study_md.py``).

Every trial's evaluation is read through ``eval.results.Results`` (its ``results.json`` and, against
the baseline, ``comparison.json``), so study.json holds the evaluator's own figures:

- ``protocol``: the reviewer's settings table (``eval.results.header_rows``) merged over the trials:
  one value per setting, or every trial's value and the setting named in ``differs`` when the trials
  were evaluated differently (an adapter, a baseline or re-scored predictions differ by design);
- per trial and mode, the headline groups (accuracy, 95 % Wilson interval, chance level), every
  category and macro category, and ``vs_baseline``: each group's paired comparison as comparison.json
  holds it (Δ in percentage points with its paired 95 % interval, b / c, the exact McNemar p, Holm's
  adjusted ``p_holm``, ``significant`` = p_holm < 0.05), its degenerate flags and the baseline's;
- ``warnings``: degenerate runs (a version's or the baseline's), settings that differ, protocols
  compared with ``baseline_protocol=ignore``, files that cannot be read;
- ``published`` and ``directions``: does each version's Δ go the published way? A Δ counts as
  significant when p (Holm) < 0.05, as the ``*`` of the tables (``SIGNIFICANCE``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Protocol

from llamafactory_ext.eval.results import ModeStats, Paired, Results, ResultsError, header_rows
from llamafactory_ext.io import atomic_write_json, atomic_write_text, ensure_dir
from llamafactory_ext.study_md import BASELINE, MODES, comparison_of, label, plot, render
from llamafactory_ext.sweep.inputs import stale_changes
from llamafactory_ext.sweep.summary import read_eval, recorded_provenance, track_trial
from llamafactory_ext.sweep.trials import Trial, recorded_status, status
from llamafactory_ext.tracking import report_targets


class ReportSettings(Protocol):
    """What the report reads of ``study.StudyConfig`` (the command's options)."""

    title: str
    output_dir: str
    model: str | None
    headline: list
    published: Any
    report_to: Any


FLAT_PP = 1.0  # a published Δ smaller than this is "no change"
SIGNIFICANCE = ("p (Holm) < 0.05: the exact McNemar p of the comparison with the baseline on the same items, Holm-adjusted "
                "over the categories and macro categories of a mode (for all items, p (Holm) = p)")
# header rows that differ between trials by design: each trial's own value is listed, not flagged
PER_TRIAL = ("Adapter", "Baseline", "Predictions", "Protocols differ")


def _plain(obj: Any) -> Any:
    """A typed figure as plain JSON (tuples as lists); None stays None."""
    return None if obj is None else json.loads(json.dumps(dataclasses.asdict(obj)))


# ----------------------------------------------------------------------------- study.json


def mode_entry(stats: ModeStats, comparison: dict[str, Paired], headline: list[str]) -> dict[str, Any]:
    """One trial's figures in one mode: headline groups, every category, the comparison with the baseline."""
    return {"groups": {g: _plain(stats.group(g)) for g in headline},
            "vs_baseline": {g: _plain(cell) for g, cell in comparison.items()},
            "degenerate": list(stats.degenerate), "format": stats.format, "cut_off": stats.cut_off,
            "unfinished": stats.unfinished, "tokens": stats.tokens,
            "per_category": {k: _plain(b) for k, b in stats.categories.items()},
            "per_macro_category": {k: _plain(b) for k, b in stats.macros.items()}}


def trial_entry(trial: Trial, headline: list[str]) -> tuple[dict[str, Any], Results | None]:
    """study.json's row of one trial, and its typed evaluation (None: not evaluated, or unreadable)."""
    stale = stale_changes(trial)
    entry: dict[str, Any] = {"name": trial.name, "format": trial.params.get("format", ""),
                             "status": "stale" if stale else recorded_status(trial), "stale": stale,
                             "trial_dir": str(trial.path()), "provenance": recorded_provenance(trial), "modes": {},
                             "model": None, "task": None}
    try:
        res = read_eval(trial.path())
    except ResultsError as exc:
        entry["error"] = str(exc)
        return entry, None
    if res is None:
        return entry, None
    comp = res.comparison
    for mode, _ in MODES:
        if mode in res.modes:
            entry["modes"][mode] = mode_entry(res.modes[mode], comp.modes.get(mode, {}) if comp else {}, headline)
    entry.update(model=res.model, task=res.task)
    if comp:
        entry["comparison"] = {"baseline": comp.baseline, "partial": comp.partial, "items_compared": comp.items_compared,
                               "baseline_degenerate": {m: list(r) for m, r in comp.baseline_degenerate.items()},
                               "protocol_differences": list(comp.protocol_differences)}
    return entry, res


def protocol(evaluated: dict[str, Results]) -> dict[str, Any]:
    """The settings table over the trials: ``rows`` [[setting, value]], ``differs`` [settings whose
    value is not the same in every evaluated trial]."""
    values: dict[str, dict[str, str]] = {}
    for name, res in evaluated.items():
        for key, value in header_rows(res):
            values.setdefault(key, {})[name] = value
    rows, differs = [], []
    for key, per in values.items():
        same = len(set(per.values())) == 1
        if same and (key in PER_TRIAL or len(per) == len(evaluated)):
            shown = next(iter(per.values())) + (f" ({', '.join(map(label, per))})" if key in PER_TRIAL else "")
        else:
            if key not in PER_TRIAL:
                differs.append(key)
            shown = ("**differs**: " if key not in PER_TRIAL else "") + "; ".join(
                f"{label(n)}: {per.get(n, '—')}" for n in evaluated if key not in PER_TRIAL or n in per)
        rows.append([key, shown])
    return {"rows": rows, "differs": differs}


def _degenerate_warnings(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """A version's degenerate modes, and the baseline's (from its own evaluation, or as a version was
    compared with it), each once."""
    out, seen = [], set()
    for row in rows:
        flagged = [(row["name"], m, tuple(e["degenerate"])) for m, e in row["modes"].items() if e["degenerate"]]
        flagged += [(BASELINE, m, tuple(r)) for m, r in row.get("comparison", {}).get("baseline_degenerate", {}).items() if r]
        for name, mode, reasons in flagged:
            if (name, mode, reasons) in seen:
                continue
            seen.add((name, mode, reasons))
            if name == BASELINE:
                out.append({"kind": "degenerate baseline", "text": f"The baseline, mode `{mode}`: {'; '.join(reasons)}. "
                            "A Δ against it measures that, not the version."})
            else:
                out.append({"kind": "degenerate run", "text": f"{name}, mode `{mode}`: {'; '.join(reasons)}."})
    return out


def warnings(rows: list[dict[str, Any]], settings: dict[str, Any]) -> list[dict[str, str]]:
    """What must be read before any number of the study."""
    out = [{"kind": "unreadable results", "text": f"{label(r['name'])}: {r['error']}"} for r in rows if r.get("error")]
    if settings["differs"]:
        out.append({"kind": "settings differ", "text": (f"The trials were evaluated with another {', '.join(settings['differs'])} "
                    "(see the settings table): their figures are not measured the same way.")})
    out += _degenerate_warnings(rows)
    out += [{"kind": "protocols differ", "text": (f"{r['name']} was compared with a baseline scored under another protocol "
             f"(baseline_protocol=ignore): {'; '.join(r['comparison']['protocol_differences'])}.")}
            for r in rows if r.get("comparison", {}).get("protocol_differences")]
    return out


def collect(cfg: ReportSettings, trials: list[Trial]) -> dict[str, Any]:
    """study.json (the module docstring lists what it holds)."""
    rows, evaluated = [], {}
    for t in trials:
        entry, res = trial_entry(t, list(cfg.headline))
        rows.append(entry)
        if res is not None:
            evaluated[t.name] = res
    settings = protocol(evaluated)
    published = _published(cfg, rows)
    return {"title": cfg.title, "headline": list(cfg.headline), "protocol": settings, "significance": SIGNIFICANCE,
            "warnings": warnings(rows, settings), "versions": rows, "published": published,
            "directions": directions(rows, cfg.headline[0], published) if published else {}}


def _published(cfg: ReportSettings, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The published figures to stand beside ours: ``true``, the task registry's published study;
    ``auto``, the evaluated task's own (``Task.published``) when the base model is the one published."""
    from llamafactory_ext.eval.tasks import published_study, registered

    if cfg.published in (False, "false"):
        return None
    if cfg.published in (True, "true"):
        found = published_study()
        return found[1] if found else None
    models = [r["model"].get("model_name_or_path") for r in rows if r.get("model")]
    model = models[0] if models else cfg.model
    task = registered(next((r["task"] for r in rows if r.get("task")), None))
    figures = task.published if task else None
    return figures if figures and str(model or "").endswith(Path(figures["model"]).name) else None


# ----------------------------------------------------------------------------- directions


def _agrees(comp: dict[str, Any], published: float) -> bool:
    """Our paired Δ against a published one: a published Δ under FLAT_PP is "no change" (ours agrees
    when it is not significant, p (Holm) >= 0.05); otherwise ours agrees when it has the same sign."""
    if abs(published) < FLAT_PP:
        return not comp["significant"]
    return (comp["delta"] > 0) == (published > 0) and comp["delta"] != 0


def directions(rows: list[dict[str, Any]], group: str, published: dict[str, Any]) -> dict[str, str]:
    """One sentence per version: does the direction of each Δ agree with the published one?
    "Not significant" means p (Holm) >= 0.05, as the ``*`` of the tables (:data:`SIGNIFICANCE`)."""
    out = {}
    pub = published["versions"]
    for row in rows:
        if row["name"] not in pub or row["name"] == BASELINE:
            continue
        parts, disagree = [], []
        for mode, name in MODES:
            comp = comparison_of(row, mode, group)
            if not comp:
                continue
            theirs = pub[row["name"]][mode] - pub[BASELINE][mode]
            parts.append(f"{name} {comp['delta']:+.1f} pp{'' if comp['significant'] else ' (not significant)'} "
                         f"(published {theirs:+.2f})")
            if not _agrees(comp, theirs):
                disagree.append(name)
        if parts:
            verdict = ("the direction agrees with the published one in both modes" if not disagree
                       else f"the direction differs from the published one in {' and '.join(disagree)}")
            out[row["name"]] = f"{row['name']}: {', '.join(parts)}: {verdict}."
    return out


def write_report(cfg: ReportSettings, trials: list[Trial]) -> dict[str, Any]:

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
