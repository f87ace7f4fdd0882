"""The statistics every report carries: Wilson intervals and exact McNemar tests (statsmodels).

- :func:`wilson` — the 95 % Wilson score interval of ``correct / total`` as fractions
  (``statsmodels.stats.proportion.proportion_confint(method="wilson")``).
- :func:`mcnemar_exact` — the exact (binomial) McNemar p-value of a paired comparison, from
  ``b`` (items right only in run 1) and ``c`` (right only in run 2)
  (``statsmodels.stats.contingency_tables.mcnemar(exact=True)``).
- :func:`paired` — b, c, Δ and p for two runs of the same items, from their per-item outcomes.
- :func:`token_stats` — mean, median and 95th percentile of generated tokens.

How to read them: the interval is the range of accuracies consistent with the observed one at
95 % confidence (narrow for many items, wide for a small category); the p-value is the chance
of seeing at least this many discordant items in favour of one run if both runs were equally
good, so a Δ marked ``*`` (p < 0.05) is unlikely to be noise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

ALPHA = 0.05


def wilson(correct: int, total: int, alpha: float = ALPHA) -> list[float]:
    """``[low, high]`` of the Wilson score interval (fractions); ``[0, 1]`` for no items."""
    if total <= 0:
        return [0.0, 1.0]
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(correct, total, alpha=alpha, method="wilson")
    return [round(float(low), 6), round(float(high), 6)]


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for ``b`` and ``c`` discordant items (1.0 when none)."""
    if b + c == 0:
        return 1.0
    from statsmodels.stats.contingency_tables import mcnemar

    table = [[0, b], [c, 0]]
    return float(mcnemar(table, exact=True).pvalue)


def paired(first: dict[Any, bool], second: dict[Any, bool]) -> dict[str, Any]:
    """Compare two runs on the items both have: ``first`` vs ``second`` (item -> correct).

    Returns ``n``, ``delta`` (percentage points, second - first), ``model_only`` (b: right only in
    ``second``), ``baseline_only`` (c: right only in ``first``), ``p_value`` and ``significant``."""
    common = [k for k in second if k in first]
    b = sum(1 for k in common if second[k] and not first[k])
    c = sum(1 for k in common if first[k] and not second[k])
    n = len(common)
    acc1 = sum(1 for k in common if first[k]) / n if n else 0.0
    acc2 = sum(1 for k in common if second[k]) / n if n else 0.0
    p = mcnemar_exact(b, c)
    return {"n": n, "delta": round(100 * (acc2 - acc1), 4), "model_only": b, "baseline_only": c,
            "p_value": round(p, 6), "significant": p < ALPHA}


def token_stats(tokens: Iterable[float]) -> dict[str, float | None]:
    """``{"mean", "median", "p95"}`` of generated-token counts (None when there are none)."""
    values = sorted(float(t) for t in tokens)
    if not values:
        return {"mean": None, "median": None, "p95": None}
    import numpy as np

    arr = np.asarray(values)
    return {"mean": round(float(arr.mean()), 2), "median": round(float(np.median(arr)), 2),
            "p95": round(float(np.percentile(arr, 95)), 2)}
