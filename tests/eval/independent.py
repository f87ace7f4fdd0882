"""Statistics recomputed independently of ``eval.stats`` (scipy, and by hand from the papers) and the
ITALIC-shaped rows the report audits draw predictions for: shared by tests/eval/test_report_audit.py
(results.md) and tests/test_study_report.py (study.md / study.json)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from llamafactory_ext.io import read_jsonl
from tests.eval.common import italic_rows

CATEGORIES = ("geography", "history", "orthography", "syntax")
N = 48


def audit_rows() -> list[dict]:
    """N ITALIC-shaped rows over four categories; every fifth row has three options (chance 1/3)."""
    rows = italic_rows(N, CATEGORIES)
    for i, row in enumerate(rows):
        if i % 5 == 0 and row["answer"] != "D":
            row["options"] = row["options"][:3]
    return rows


def wrong_letter(row: dict) -> str:
    """The first option letter that is not the answer."""
    return next(next(iter(o)) for o in row["options"] if next(iter(o)) != row["answer"])


def wilson(k: int, n: int) -> list[float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [ci.low, ci.high]


def mcnemar(b: int, c: int) -> float:
    from scipy.stats import binomtest

    return binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0


def newcombe10(pairs: list[tuple[bool, bool]]) -> list[float]:
    """Newcombe (1998) method 10 for the difference second - first, written out from the paper:
    square-and-add of the Wilson limits with the continuity-adjusted phi."""
    n = len(pairs)
    e = sum(1 for f, s in pairs if s and f)          # both right
    f_ = sum(1 for f, s in pairs if s and not f)     # right only in the second
    g = sum(1 for f, s in pairs if f and not s)      # right only in the first
    h = n - e - f_ - g
    p2, p1 = (e + f_) / n, (e + g) / n
    l2, u2 = wilson(e + f_, n)
    l1, u1 = wilson(e + g, n)
    denom = (e + f_) * (g + h) * (e + g) * (f_ + h)
    a = e * h - f_ * g
    phi = 0.0 if denom == 0 else ((a - n / 2) / math.sqrt(denom) if a > n / 2 else (a / math.sqrt(denom) if a < 0 else 0.0))
    d = p2 - p1
    low = d - math.sqrt((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2)
    high = d + math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    return [100 * max(-1.0, low), 100 * min(1.0, high)]


def holm(ps: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment, by hand: the i-th smallest p times (m - i), running maximum, at most 1."""
    order = sorted(ps, key=ps.get)
    out, running = {}, 0.0
    for i, name in enumerate(order):
        running = max(running, min(1.0, (len(ps) - i) * ps[name]))
        out[name] = running
    return out


def outcomes(path: Path, mode: str) -> dict[str, dict]:
    """id -> row of one mode, read back from a predictions.jsonl file."""
    return {r["id"]: r for r in read_jsonl(path) if r["mode"] == mode}


def groups(rows: dict[str, dict]) -> dict[str, list[str]]:
    """Item ids per group: total, each category, each macro category."""
    out: dict[str, list[str]] = defaultdict(list)
    for i, r in rows.items():
        for g in ("total", r["category"], r["macro_category"]):
            out[g].append(i)
    return out
