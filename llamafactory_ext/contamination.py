"""Check that evaluation questions do not appear in training files.

    llamafactory-ext contamination TRAIN... task=italic|gsm8k [source=PATH] [output_dir=DIR]
                                   [ngram=13] [threshold=0.5] [limit=N] [on_error=fail|skip]

Every argument without ``=`` is a training file (json, jsonl, parquet, csv, optionally .gz):
files written by ``llamafactory-ext prepare`` (sharegpt ``messages``, ``{"text": ...}``), other
LLaMA-Factory shapes (``conversations``/``from``/``value``, alpaca ``instruction``/``input``/
``output``, ``prompt``/``chosen``/``rejected``) and raw sources (Mult-IT ``quiz.json``,
ITALIC-shaped and GSM8K-shaped rows). The evaluation items come from ``task`` (ITALIC or the
GSM8K test split; ``source=`` a local copy instead of the Hub).

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
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from llamafactory_ext.config import (
    ConfigError,
    build,
    describe,
    parse_overrides,
)
from llamafactory_ext.data.overlap import TASKS, Report, find_contamination

USAGE = ("TRAIN... task=italic|gsm8k [source=PATH] [output_dir=DIR] [ngram=13] [threshold=0.5] "
         "[limit=N] [on_error=fail|skip]")
MAX_MD_PAIRS = 200


@dataclasses.dataclass
class ContaminationConfig:
    """Keys of ``llamafactory-ext contamination TRAIN... key=value ...``."""

    task: str = dataclasses.field(metadata={"help": "evaluation set to look for: italic | gsm8k (required)"})
    source: str | None = dataclasses.field(default=None, metadata={"help": "evaluation data: local file or dir, or Hub id (default: the task's Hub copy)"})
    output_dir: str | None = dataclasses.field(default=None, metadata={"help": "where contamination.json/.md go (default results/contamination/<task>)"})
    ngram: int = dataclasses.field(default=13, metadata={"help": "word n-gram length of the ngram check (>= 1)"})
    threshold: float = dataclasses.field(default=0.5, metadata={"help": "ngram match: share of the item's n-grams found in one row (0 < t <= 1)"})
    limit: int | None = dataclasses.field(default=None, metadata={"help": "read at most N rows of each training file"})
    on_error: Literal["fail", "skip"] = dataclasses.field(default="fail", metadata={"help": "malformed row: fail (stop, naming file/row/field) or skip (count it)"})


def options_help() -> str:
    return describe(ContaminationConfig) + "\n\ntasks: " + ", ".join(TASKS)



# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------
def _share(matched: int, total: int) -> str:
    return f"{100 * matched / total:.2f} %" if total else "-"


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= n else text[: n - 1] + "…"


def render_markdown(report: Report) -> str:
    label = TASKS[report.task]().label if report.task in TASKS else report.task
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
    macro_of = {}
    if report.task in TASKS:
        macro_of = {c: m for m, cats in TASKS[report.task]().categories.items() for c in cats}
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
_OPTION = re.compile(r"^[A-Za-z_][\w.]*=")


def parse_argv(argv: Sequence[str]) -> tuple[list[str], ContaminationConfig]:
    """(training files, options): arguments without ``key=`` are files (a ``.json`` file too)."""
    files, overrides = [], []
    for arg in argv:
        if _OPTION.match(arg):
            overrides.append(arg)
        elif arg.startswith("-"):
            raise ConfigError(f"unknown flag {arg!r}; usage: llamafactory-ext contamination {USAGE}")
        else:
            files.append(arg)
    cfg = build(ContaminationConfig, parse_overrides(overrides), where="command line")
    if not files:
        raise ConfigError(f"no training file given; usage: llamafactory-ext contamination {USAGE}")
    return files, cfg


def main(argv: list[str]) -> int:
    files, cfg = parse_argv(argv)
    report = find_contamination(files, cfg.task, source=cfg.source, ngram=cfg.ngram, threshold=cfg.threshold,
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
