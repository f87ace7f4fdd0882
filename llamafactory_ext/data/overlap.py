"""Finding evaluation questions in training rows: the matching engine behind ``llamafactory-ext
contamination`` and the evaluator's warning when a recipe's prepared data overlaps the task.

It takes the evaluation items as :class:`EvalItem` (each eval task says what its items are:
``eval.tasks.ItemTask.overlap_item``) and knows no task. The items are indexed once
(:class:`EvalIndex`) and every training row, read in any shape by ``data/row_text.py``, is checked
against the index: a normalised exact question match (``data.normalize.normalize_text``) and the
share of an item's word n-grams found in the row. ``contamination.py`` documents both checks and
renders the report; this module only finds.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import itertools
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from llamafactory_ext.config import UserError
from llamafactory_ext.data.fields import RowProblem
from llamafactory_ext.data.normalize import normalize_text
from llamafactory_ext.data.row_text import SHAPES_HELP, RowText, read_row

ALL = "all"          # the one bucket of items without categories (a task that has none)
UNKNOWN = "unknown"  # an item without a category, in a task that has categories
MAX_LISTED_UNREADABLE = 20
BATCH_ROWS = 1024  # rows read before they are checked together


class ContaminationError(UserError):
    """Bad input to the contamination check (the message names file, row and field or key)."""


@dataclasses.dataclass(frozen=True)
class EvalItem:
    """What the checks need from an evaluation item."""

    id: str
    question: str
    options: tuple[str, ...] = ()
    category: str = ALL
    macro_category: str | None = None


# ---------------------------------------------------------------------------------------------
# index of the evaluation items
# ---------------------------------------------------------------------------------------------
# ``normalize_text`` works character by character and dominates the cost of a row. Every step of
# it (NFKD, dropping combining marks, casefold, punctuation to spaces) acts on one character at a
# time and it ends by splitting on whitespace, so it can be applied to the whitespace-separated
# tokens of a text one by one: the same words come out (tests/test_contamination.py checks this on
# the real data and on random text). Tokens repeat a lot (Zipf), so each distinct token is normalised once.
_token = functools.lru_cache(maxsize=None)(normalize_text)
TOKEN_CACHE_LIMIT = 1 << 20  # distinct tokens kept before the cache is emptied (bounded memory)


def normalized(text: str) -> str:
    """``normalize_text(text)``, computed token by token through a cache."""
    return " ".join(filter(None, map(_token, text.split())))


# Whole pieces repeat too (system prompts, the instruction of each category, option texts).
_piece = functools.lru_cache(maxsize=1 << 14)(normalized)


def _ngrams(words: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return zip(*(words[k:] for k in range(n)))


class EvalIndex:
    """The evaluation items indexed once: normalised question -> items (exact), hashed n-gram ->
    items (ngram, with a flag for n-grams inside the question), and items shorter than n words
    by their word sequence, reached through their first two words."""

    def __init__(self, items: Sequence[EvalItem], n: int) -> None:
        self.items = list(items)
        self.n = n
        self.exact: dict[str, list[int]] = defaultdict(list)
        self.grams: dict[int, list[int]] = defaultdict(list)  # hash -> [2 * item + (n-gram inside the question)]
        self.total = [0] * len(self.items)  # distinct n-grams of question + options
        self.total_q = [0] * len(self.items)  # distinct n-grams of the question alone
        self.short: dict[tuple[str, ...], list[int]] = defaultdict(list)
        self.anchors: dict[tuple[str, ...], set[int]] = defaultdict(set)  # first 1-2 words -> lengths
        self.empty: list[str] = []
        for i, item in enumerate(self.items):
            question = normalized(item.question)
            words = (question + " " + " ".join(map(normalized, item.options))).split()
            if not words:
                self.empty.append(item.id)
                continue
            if question:
                self.exact[question].append(i)
            if len(words) < n:
                seq = tuple(words)
                self.short[seq].append(i)
                self.anchors[seq[:2]].add(len(seq))
                continue
            q_grams = set(map(hash, _ngrams(question.split(), n)))
            all_grams = set(map(hash, _ngrams(words, n)))
            self.total[i], self.total_q[i] = len(all_grams), len(q_grams)
            for g in all_grams:
                self.grams[g].append(2 * i + (g in q_grams))
        self.exact, self.grams, self.short = dict(self.exact), dict(self.grams), dict(self.short)
        self.gram_keys = frozenset(self.grams)
        self.anchor_lengths = {k: sorted(v) for k, v in self.anchors.items()}
        self.bigram_anchors = {k for k in self.anchors if len(k) == 2}
        self.word_anchors = {k[0] for k in self.anchors if len(k) == 1}

    def exact_matches(self, questions: Iterable[str]) -> set[int]:
        found: set[int] = set()
        for q in questions:
            hit = self.exact.get(q)
            if hit:
                found.update(hit)
        return found

    def ngram_matches(self, words: list[str], threshold: float) -> dict[int, float]:
        """item -> score for the items of one training row that reach ``threshold``."""
        found: dict[int, float] = {}
        common = self.gram_keys.intersection(map(hash, _ngrams(words, self.n))) if len(words) >= self.n else ()
        if common:
            hits: Counter[int] = Counter()
            for g in common:
                hits.update(self.grams[g])
            if hits:
                full: Counter[int] = Counter()
                in_q: Counter[int] = Counter()
                for code, count in hits.items():
                    full[code >> 1] += count
                    if code & 1:
                        in_q[code >> 1] += count
                for i, count in full.items():
                    score = count / self.total[i]
                    if self.total_q[i]:
                        score = max(score, in_q[i] / self.total_q[i])
                    if score >= threshold:
                        found[i] = score
        if self.short:
            for i in self._short_matches(words):
                found[i] = 1.0
        return found

    def _short_matches(self, words: list[str]) -> set[int]:
        found: set[int] = set()
        starts: list[tuple[int, tuple[str, ...]]] = []
        if self.bigram_anchors and not self.bigram_anchors.isdisjoint(itertools.pairwise(words)):
            starts += [(i, bg) for i, bg in enumerate(itertools.pairwise(words)) if bg in self.bigram_anchors]
        if self.word_anchors and not self.word_anchors.isdisjoint(words):
            starts += [(i, (w,)) for i, w in enumerate(words) if w in self.word_anchors]
        for i, anchor in starts:
            for length in self.anchor_lengths[anchor]:
                hit = self.short.get(tuple(words[i:i + length]))
                if hit:
                    found.update(hit)
        return found


# ---------------------------------------------------------------------------------------------
# the check
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Pair:
    train_file: str
    train_row: int
    eval_id: str
    kind: str  # "exact" | "ngram"
    score: float


@dataclasses.dataclass
class Report:
    """Result of :func:`find_contamination`; :meth:`to_json` is the ``contamination.json`` schema."""

    task: str
    source: str | None
    train_files: list[str]
    ngram: int
    threshold: float
    items: int
    matched: int
    pairs: list[Pair]
    per_category: dict[str, dict[str, int]]
    per_macro_category: dict[str, dict[str, int]]
    matched_items: dict[str, dict[str, Any]]  # eval id -> category, kinds, question (matched only)
    rows_read: int
    unreadable_rows: int
    unreadable: list[dict[str, Any]]  # the first few, with file, row, field, reason
    per_file: dict[str, dict[str, int]]
    empty_items: list[str]
    elapsed_s: float

    @property
    def matched_exact(self) -> int:
        return sum(1 for v in self.matched_items.values() if "exact" in v["kinds"])

    @property
    def matched_ngram_only(self) -> int:
        return sum(1 for v in self.matched_items.values() if v["kinds"] == ["ngram"])

    def to_json(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "pairs": [dataclasses.asdict(p) for p in self.pairs],
            "per_category": self.per_category,
            "task": self.task,
            "source": self.source,
            "train_files": self.train_files,
            "items": self.items,
            "matched_exact": self.matched_exact,
            "matched_ngram_only": self.matched_ngram_only,
            "per_macro_category": self.per_macro_category,
            "matched_items": self.matched_items,
            "rows_read": self.rows_read,
            "unreadable_rows": self.unreadable_rows,
            "unreadable": self.unreadable,
            "per_file": self.per_file,
            "ngram": self.ngram,
            "threshold": self.threshold,
            "empty_items": self.empty_items,
            "elapsed_s": self.elapsed_s,
        }


def check_train_files(train_files: Sequence[str | Path] | str | Path) -> list[Path]:
    """The training files as paths, each an existing file of a type ``data.sources`` reads."""
    from llamafactory_ext.data.sources import local_format

    if isinstance(train_files, (str, Path)):
        train_files = [train_files]
    if not train_files:
        raise ContaminationError("no training file given: llamafactory-ext contamination [CONFIG.yaml] TRAIN... task=NAME")
    paths = []
    for f in train_files:
        path = Path(f).expanduser()
        if path.is_dir():
            raise ContaminationError(f"training file {path} is a folder; name the files in it (e.g. {path}/*.jsonl)")
        if not path.is_file():
            raise ContaminationError(f"training file not found: {path}")
        if local_format(path) is None:
            raise ContaminationError(f"{path}: unknown file type; training files must be .json, .jsonl, .parquet or .csv (optionally .gz)")
        paths.append(path)
    return paths


def check_params(ngram: int, threshold: float, limit: int | None, on_error: str) -> None:
    if ngram < 1:
        raise ContaminationError(f"ngram must be a positive integer, got {ngram}")
    if not 0.0 < threshold <= 1.0:
        raise ContaminationError(f"threshold must be in (0, 1], got {threshold}")
    if limit is not None and limit <= 0:
        raise ContaminationError(f"limit must be a positive integer, got {limit}")
    if on_error not in ("fail", "skip"):
        raise ContaminationError(f"on_error must be 'fail' or 'skip', got {on_error!r}")


def scan(
    train_files: Sequence[str | Path] | str | Path,
    items: Sequence[EvalItem],
    *,
    task: str = "",
    source: str | None = None,
    categories: dict[str, list[str]] | None = None,
    ngram: int = 13,
    threshold: float = 0.5,
    limit: int | None = None,
    on_error: str = "fail",
    progress: bool = False,
) -> Report:
    """Look for the evaluation ``items`` in ``train_files``.

    ``task`` and ``source`` are recorded in the report as given; ``categories`` (macro category ->
    categories) orders the per-category counts; ``limit`` reads at most N rows of each file;
    ``on_error="skip"`` counts malformed rows instead of raising. Raises
    :class:`ContaminationError` (a UserError) on bad input."""
    started = time.perf_counter()
    check_params(ngram, threshold, limit, on_error)
    paths = check_train_files(train_files)
    pairs: list[Pair] = []
    kinds: dict[int, set[str]] = defaultdict(set)
    unreadable: list[dict[str, Any]] = []
    per_file: dict[str, dict[str, int]] = {}
    # The index and the rows make no reference cycles; the cyclic collector would only walk the
    # growing index again and again (a fifth of the time on 100,000 rows), so it is paused.
    collecting = gc.isenabled()
    gc.disable()
    try:
        index = EvalIndex(items, ngram)
        for path in paths:
            _scan_file(path, index, threshold, limit, on_error, progress, pairs, kinds, unreadable, per_file)
    finally:
        if collecting:
            gc.enable()
    per_category, per_macro = _per_category(index.items, set(kinds), categories or {})
    matched_items = {
        index.items[i].id: {"category": index.items[i].category, "kinds": sorted(kinds[i]), "question": index.items[i].question}
        for i in sorted(kinds)
    }
    return Report(
        task=task, source=source, train_files=[str(p) for p in paths], ngram=ngram, threshold=threshold,
        items=len(index.items), matched=len(kinds), pairs=pairs, per_category=per_category, per_macro_category=per_macro,
        matched_items=matched_items, rows_read=sum(f["rows"] for f in per_file.values()),
        unreadable_rows=sum(f["unreadable"] for f in per_file.values()), unreadable=unreadable,
        per_file=per_file, empty_items=index.empty, elapsed_s=round(time.perf_counter() - started, 3),
    )


def _scan_file(path: Path, index: EvalIndex, threshold: float, limit: int | None, on_error: str, progress: bool,
               pairs: list[Pair], kinds: dict[int, set[str]], unreadable: list[dict[str, Any]],
               per_file: dict[str, dict[str, int]]) -> None:
    """Stream the rows of one training file through the index."""
    from llamafactory_ext.data.fields import RowError
    from llamafactory_ext.data.sources import open_source

    src = open_source(path)
    name = str(path)
    stats = {"rows": 0, "unreadable": 0, "pairs": 0}
    per_file[name] = stats
    first_keys: list[str] = []

    def count_unreadable(err: RowError) -> None:
        stats["unreadable"] += 1
        if len(unreadable) < MAX_LISTED_UNREADABLE:
            unreadable.append({"file": err.file, "row": err.row, "field": err.field, "reason": err.reason, "error": err.detail})

    def on_bad(err: RowError, raw: Any) -> None:  # on_error=skip only
        stats["rows"] += 1
        count_unreadable(err)

    bar = _progress_bar(src, progress)
    batch: list[tuple[int, RowText]] = []
    try:
        for number, row in src.rows(limit=limit, on_bad=on_bad if on_error == "skip" else None):
            stats["rows"] += 1
            if bar is not None and not stats["rows"] % 4096:
                bar.update(src.bytes_read - bar.n if src.format == "jsonl" else 4096)
            try:
                text = read_row(row)
            except RowProblem as exc:
                err = src.error(number, exc.field, exc.reason, exc.detail)
                if on_error == "fail":
                    raise err from None
                count_unreadable(err)
                continue
            if text is None or not any(p.strip() for p in text.pieces):
                fields = [str(k) for k in row]
                first_keys = first_keys or fields
                detail = (f"no text field this check knows (row has: {', '.join(fields) or 'no fields'})"
                          if text is None else "has no text")
                count_unreadable(src.error(number, None, "no_text" if text is None else "empty", detail))
                continue
            batch.append((number, text))
            if len(batch) >= BATCH_ROWS:
                _scan_batch(index, batch, threshold, name, pairs, kinds, stats)
                batch.clear()
                if _token.cache_info().currsize > TOKEN_CACHE_LIMIT:
                    _token.cache_clear()
        _scan_batch(index, batch, threshold, name, pairs, kinds, stats)
    finally:
        if bar is not None:
            bar.close()
    _check_scanned(path, stats, first_keys, on_error)


def _check_scanned(path: Path, stats: dict[str, int], first_keys: list[str], on_error: str) -> None:
    """A file with no row, or (on_error=fail) with no row this check can read, is an error: a
    "0 of N matched" from it would say nothing."""
    if not stats["rows"]:
        raise ContaminationError(f"{path}: no rows (an empty training file): nothing to check")
    if stats["unreadable"] == stats["rows"] and on_error == "fail":
        raise ContaminationError(
            f"{path}: no row has text this check can read (e.g. a row with fields: {', '.join(first_keys) or 'none'}); "
            f"known shapes: {SHAPES_HELP}")


def _scan_batch(index: EvalIndex, batch: list[tuple[int, RowText]], threshold: float, name: str,
                pairs: list[Pair], kinds: dict[int, set[str]], stats: dict[str, int]) -> None:
    """Check a batch of rows, one stage at a time over the batch (keeps each stage's tables hot)."""
    normed = [list(map(_piece, text.pieces)) for _, text in batch]
    exact = [index.exact_matches({" ".join(filter(None, n[a:b])) for a, b in text.spans})
             for (_, text), n in zip(batch, normed, strict=True)]
    near = [index.ngram_matches(" ".join(n).split(), threshold) for n in normed]
    for (number, _), found, close in zip(batch, exact, near, strict=True):
        if not found and not close:
            continue
        for i in sorted(found | close.keys()):
            kind = "exact" if i in found else "ngram"
            pairs.append(Pair(name, number, index.items[i].id, kind, 1.0 if kind == "exact" else round(close[i], 4)))
            kinds[i].add(kind)
            stats["pairs"] += 1


def _progress_bar(src: Any, enabled: bool):
    """A bar on stderr (only on a terminal): bytes of a JSONL file, else rows."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    desc = f"contamination {src.path.name}"
    if src.format == "jsonl" and not src.path.name.lower().endswith(".gz"):
        return tqdm(total=src.path.stat().st_size, unit="B", unit_scale=True, desc=desc, file=sys.stderr,
                    disable=None, mininterval=1.0)
    return tqdm(unit=" rows", desc=desc, file=sys.stderr, disable=None, mininterval=1.0)


def _per_category(items: Sequence[EvalItem], matched: set[int], order: dict[str, list[str]]):
    counts: dict[str, dict[str, int]] = {}
    macro_of: dict[str, str] = {cat: macro for macro, cats in order.items() for cat in cats}
    for i, item in enumerate(items):
        c = counts.setdefault(item.category, {"items": 0, "matched": 0})
        c["items"] += 1
        c["matched"] += i in matched
        if item.macro_category and item.category not in macro_of:
            macro_of[item.category] = item.macro_category
    known = [c for cats in order.values() for c in cats if c in counts]
    ordered = {c: counts[c] for c in known + sorted(set(counts) - set(known))}
    per_macro: dict[str, dict[str, int]] = {}
    for cat, c in ordered.items():
        macro = macro_of.get(cat)
        if macro:
            m = per_macro.setdefault(macro, {"items": 0, "matched": 0})
            m["items"] += c["items"]
            m["matched"] += c["matched"]
    macro_order = [m for m in order if m in per_macro] + sorted(set(per_macro) - set(order))
    return ordered, {m: per_macro[m] for m in macro_order}


