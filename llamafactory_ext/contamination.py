"""Check that evaluation questions do not appear in training files.

    llamafactory-ext contamination [CONFIG.yaml] TRAIN... task=italic|gsm8k|multit [source=PATH]
                                   [output_dir=DIR] [ngram=13] [threshold=0.5] [limit=N] [on_error=fail|skip]
    llamafactory-ext contamination data/multit_mixed.jsonl task=multit source=data/multit_mixed_val.jsonl

Every argument without ``=`` is a training file (json, jsonl, parquet, csv, optionally .gz; a first
``.yaml`` argument is the config file, whose ``train_files`` list adds more): files written by
``llamafactory-ext prepare`` (sharegpt ``messages``, ``{"text": ...}``), other LLaMA-Factory shapes
(``conversations``/``from``/``value``, alpaca ``instruction``/``input``/``output``,
``prompt``/``chosen``/``rejected``) and raw sources (Mult-IT ``quiz.json``, ITALIC-shaped and
GSM8K-shaped rows). The evaluation items come from the evaluator's task of that name
(``eval.tasks``), read by its own loader: ITALIC, the GSM8K test split, a Mult-IT held-out set
(``source=`` a ``quiz.json``-shaped file or a prepared ``*_val.jsonl``); ``source=`` a local copy
instead of the Hub.

Two checks, both on text normalised by ``data.normalize.normalize_text`` (case folded, accents
removed, punctuation turned into spaces, whitespace collapsed):

- ``exact``: the normalised question of an evaluation item equals a question read from a
  training row (the question field of a raw row; in a prepared multiple-choice prompt the
  text between the instruction paragraph and the ``A) ...`` option lines; also the whole
  user text).
- ``ngram``: word n-grams (``ngram=13``). The item's words are its question followed by its
  option texts; its score against one training row is the share of its distinct n-grams found
  in that row, or the share of its question's n-grams when the question alone has at least n
  words (the larger of the two). A score >= ``threshold`` (0.5) is a match. An item with fewer
  than n words in all matches (score 1.0) only when its whole word sequence occurs contiguously
  in the row. The letters of option lines in a prompt (``A) ``, ``B. ``) are not counted as
  words, so a rendered prompt lines up with the item. An item matched ``exact`` by a row is not
  listed again as ``ngram`` for that row.

Writes ``contamination.json`` (``matched``, ``pairs``, ``per_category`` and run details) and
``contamination.md`` (summary, counts per category, matched pairs) to ``output_dir`` (default
``results/contamination/<task>``). A malformed row (invalid JSON, a known field of the wrong
type) stops the run naming file, row and field (``on_error=skip``: counted and listed instead);
a row with no text field we know is counted as unreadable, never dropped silently.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from llamafactory_ext.config import describe, from_argv, option
from llamafactory_ext.data.overlap import ContaminationError, EvalItem, Report, check_params, check_train_files, scan

USAGE = ("[CONFIG.yaml] TRAIN... task=italic|gsm8k|multit [source=PATH] [output_dir=DIR] [ngram=13] [threshold=0.5] "
         "[limit=N] [on_error=fail|skip]")
MAX_MD_PAIRS = 200


@dataclasses.dataclass
class ContaminationConfig:
    """Keys of ``llamafactory-ext contamination [CONFIG.yaml] TRAIN... key=value ...``."""

    task: str = option(help="evaluation task whose items are looked for: italic | gsm8k | multit (required)")
    train_files: list[str] = option([], "training files (also every argument without key=)")
    source: str | None = option(None, "evaluation data: local file or dir, or Hub id (default: the task's Hub copy)")
    output_dir: str | None = option(None, "where contamination.json/.md go (default results/contamination/<task>)")
    ngram: int = option(13, "word n-gram length of the ngram check (>= 1)")
    threshold: float = option(0.5, "ngram match: share of the item's n-grams found in one row (0 < t <= 1)")
    limit: int | None = option(None, "read at most N rows of each training file")
    on_error: Literal["fail", "skip"] = option("fail", "malformed row: fail (stop, naming file/row/field) or skip (count it)")


def options_help() -> str:
    from llamafactory_ext.eval.tasks import item_tasks

    return describe(ContaminationConfig) + "\n\ntasks: " + ", ".join(item_tasks())


def item_task(name: str, source: str | None = None) -> Any:
    """The evaluator's task ``name`` (an ``eval.tasks.ItemTask``) reading ``source``."""
    from llamafactory_ext.eval.options import task_for
    from llamafactory_ext.eval.tasks import ItemTask, item_tasks

    task = task_for(name, "", source=source)
    if not isinstance(task, ItemTask):
        raise ContaminationError(f"task={name} has no items of ours to look for ({task.label} loads its own data); "
                                 f"tasks with items: {', '.join(item_tasks())}")
    return task


def find_contamination(
    train_files: Sequence[str | Path] | str | Path,
    task: str,
    source: str | None = None,
    ngram: int = 13,
    threshold: float = 0.5,
    limit: int | None = None,
    on_error: str = "fail",
    items: Sequence[Any] | None = None,
    progress: bool = False,
) -> Report:
    """Look for the items of the evaluator's task ``task`` in ``train_files`` (``data.overlap.scan``).

    The items are read by the task's own loader from ``source``, or given as ``items`` (the task's
    items, e.g. what the evaluator has loaded already, or :class:`EvalItem` objects)."""
    spec = item_task(task, source)
    check_params(ngram, threshold, limit, on_error)
    paths = check_train_files(train_files)
    loaded = spec.load() if items is None else items
    eval_items = [x if isinstance(x, EvalItem) else spec.overlap_item(x) for x in loaded]
    return scan(paths, eval_items, task=task, source=source, categories=spec.categories, ngram=ngram, threshold=threshold,
                limit=limit, on_error=on_error, progress=progress)


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------
def _share(matched: int, total: int) -> str:
    return f"{100 * matched / total:.2f} %" if total else "-"


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= n else text[: n - 1] + "…"


def _label_and_categories(name: str) -> tuple[str, dict[str, list[str]]]:
    from llamafactory_ext.eval.tasks import TASKS

    if name not in TASKS:
        return name, {}
    task = item_task(name)
    return task.label, task.categories


def render_markdown(report: Report) -> str:
    label, categories = _label_and_categories(report.task)
    files = ", ".join(f"`{f}`" for f in report.train_files)
    lines = [
        f"# Contamination check: {label}",
        "",
        (f"{report.matched} of {report.items} {label} items ({_share(report.matched, report.items)}) appear in "
         f"{files} ({report.rows_read} rows read, {report.unreadable_rows} unreadable): {report.matched_exact} as an "
         f"exact normalised question, {report.matched_ngram_only} more through {report.ngram}-gram overlap "
         f"(score >= {report.threshold:g}: share of the item's question + option n-grams found in one row). "
         f"{len(report.pairs)} matched (row, item) pairs."),
        "",
        "| Category | Items | Matched | Share |",
        "|---|---:|---:|---:|",
    ]
    macro_of = {c: m for m, cats in categories.items() for c in cats}
    shown_macro: set[str] = set()
    for cat, c in report.per_category.items():
        macro = macro_of.get(cat)
        if macro and macro not in shown_macro and macro in report.per_macro_category:
            m = report.per_macro_category[macro]
            lines.append(f"| **{macro}** | **{m['items']}** | **{m['matched']}** | **{_share(m['matched'], m['items'])}** |")
            shown_macro.add(macro)
        lines.append(f"| {cat} | {c['items']} | {c['matched']} | {_share(c['matched'], c['items'])} |")
    if len(report.per_category) > 1:
        lines.append(f"| **total** | **{report.items}** | **{report.matched}** | **{_share(report.matched, report.items)}** |")
    lines += ["", "## Matched pairs", ""]
    if not report.pairs:
        lines.append("None.")
    else:
        names = [Path(f).name for f in report.train_files]
        unique = len(set(names)) == len(names)  # file names alone, unless two files share one
        lines += ["| Training file:row | Eval id | Kind | Score | Question |", "|---|---|---|---:|---|"]
        for p in report.pairs[:MAX_MD_PAIRS]:
            question = report.matched_items.get(p.eval_id, {}).get("question", "")
            where = Path(p.train_file).name if unique else p.train_file
            lines.append(f"| `{where}:{p.train_row}` | {p.eval_id} | {p.kind} | {p.score:.2f} | {_short(question)} |")
        if len(report.pairs) > MAX_MD_PAIRS:
            lines += ["", f"{len(report.pairs) - MAX_MD_PAIRS} more pairs are listed in contamination.json."]
    if report.unreadable_rows:
        lines += ["", (f"{report.unreadable_rows} training rows could not be read (no text field this check knows, "
                       "or malformed with on_error=skip); the first ones are listed in contamination.json (`unreadable`).")]
    return "\n".join(lines) + "\n"


def write_report(report: Report, output_dir: str | Path) -> dict[str, Path]:
    from llamafactory_ext.io import atomic_write_json, atomic_write_text, ensure_dir

    out = ensure_dir(output_dir, "output_dir")
    return {
        "json": atomic_write_json(out / "contamination.json", report.to_json()),
        "md": atomic_write_text(out / "contamination.md", render_markdown(report)),
    }


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    cfg = from_argv(ContaminationConfig, argv, positional="train_files", config_suffixes=(".yaml", ".yml"))
    report = find_contamination(cfg.train_files, cfg.task, source=cfg.source, ngram=cfg.ngram, threshold=cfg.threshold,
                                limit=cfg.limit, on_error=cfg.on_error, progress=True)
    paths = write_report(report, cfg.output_dir or Path("results") / "contamination" / cfg.task)
    exact_pairs = sum(p.kind == "exact" for p in report.pairs)
    print(f"contamination {cfg.task}: {report.rows_read} rows read from {len(report.train_files)} file(s) "
          f"against {report.items} items in {report.elapsed_s:.1f} s ({report.unreadable_rows} unreadable)")
    print(f"  exact: {report.matched_exact} items matched ({exact_pairs} pairs)")
    print(f"  ngram: {report.matched_ngram_only} more items matched ({report.ngram}-grams, score >= {report.threshold:g}; "
          f"{len(report.pairs) - exact_pairs} pairs)")
    print(f"  matched: {report.matched} of {report.items} items ({_share(report.matched, report.items)})")
    if report.unreadable_rows:
        first = report.unreadable[0]
        print(f"warning: {report.unreadable_rows} rows could not be read (first: {first['file']} row {first['row']}: "
              f"{first['error']}); counted and listed in contamination.json", file=sys.stderr)
    for path in paths.values():
        print(f"  wrote {path}")
    return 0
