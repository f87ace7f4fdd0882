"""The statistics every report carries (statsmodels / scipy do the work).

- :func:`wilson`: the 95 % Wilson score interval of ``correct / total`` as fractions
  (``statsmodels.stats.proportion.proportion_confint(method="wilson")``); None for no items.
- :func:`mcnemar_exact`: the exact (binomial) McNemar p-value of a paired comparison, from
  ``b`` (items right only in run 2) and ``c`` (right only in run 1)
  (``statsmodels.stats.contingency_tables.mcnemar(exact=True)``).
- :func:`newcombe_paired`: the 95 % interval of the difference of two paired proportions by
  Newcombe's method 10 (Newcombe 1998, Stat Med 17:2635, "square-and-add" of the two Wilson
  intervals, with his continuity-adjusted correlation φ).
- :func:`paired`: Δ, its interval, b, c and p for two runs of the same items.
- :func:`holm`: Holm-adjusted p-values of one family of tests (``statsmodels.stats.multitest``).
- :func:`token_stats`: mean, median and 95th percentile of generated tokens.

How the paired comparison treats seeds: the unit is the ITEM. With one row per item (greedy,
or one seed) each item is right or wrong in each run: Δ, the exact McNemar test and Newcombe's
interval. With several seeds per item, an item's score is the share of its seeds that are right
(pairs are matched per (item, seed), then averaged per item), never k independent items: the
test is the exact sign test over the items whose score differs (McNemar's test is that sign
test when every score is 0 or 1) and the interval a paired bootstrap over items
(``scipy.stats.bootstrap``, percentile, 2,000 resamples, fixed seed).

How to read them: the interval is the range of values consistent with the observed one at 95 %
confidence (narrow for many items, wide for a small category); the p-value is the chance of
seeing at least this many discordant items in favour of one run if both were equally good. A
report tests every category, so it also gives Holm's adjustment of those p-values (one family
per mode: its categories and macro categories); a Δ is marked ``*`` when the adjusted p < 0.05
(the total is a family of its own: its adjusted p is its p).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
TEST_MCNEMAR = "exact McNemar"
TEST_SIGN = "exact sign test over items (per-item accuracy over seeds)"
INTERVAL_NEWCOMBE = "Newcombe method 10 (paired, from Wilson intervals)"
INTERVAL_BOOTSTRAP = f"paired bootstrap over items (percentile, {BOOTSTRAP_RESAMPLES} resamples)"


def wilson(correct: int, total: int, alpha: float = ALPHA) -> list[float] | None:
    """``[low, high]`` of the Wilson score interval (fractions); None when there are no items."""
    if total <= 0:
        return None
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(correct, total, alpha=alpha, method="wilson")
    return [round(float(low), 6), round(float(high), 6)]


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for ``b`` and ``c`` discordant items (1.0 when none)."""
    if b + c == 0:
        return 1.0
    from statsmodels.stats.contingency_tables import mcnemar

    return float(mcnemar([[0, b], [c, 0]], exact=True).pvalue)


def newcombe_paired(both: int, second_only: int, first_only: int, neither: int, alpha: float = ALPHA) -> list[float]:
    """Newcombe's method 10 interval of ``p2 - p1`` (fractions) for paired binary outcomes:
    ``both`` right in the two runs, right only in the second, only in the first, in neither."""
    n = both + second_only + first_only + neither
    p2, p1 = (both + second_only) / n, (both + first_only) / n
    l2, u2 = _wilson_pair(both + second_only, n, alpha)
    l1, u1 = _wilson_pair(both + first_only, n, alpha)
    margins = (both + second_only) * (first_only + neither) * (both + first_only) * (second_only + neither)
    a = both * neither - second_only * first_only
    phi = 0.0
    if margins > 0:
        phi = (a - n / 2) / math.sqrt(margins) if a > n / 2 else (a / math.sqrt(margins) if a < 0 else 0.0)
    d = p2 - p1
    low = d - math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    high = d + math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    return [max(-1.0, low), min(1.0, high)]


def _wilson_pair(correct: int, total: int, alpha: float) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(correct, total, alpha=alpha, method="wilson")
    return float(low), float(high)


def _item(key: Any) -> Any:
    return key[0] if isinstance(key, tuple) else key


def paired(first: Mapping[Any, bool], second: Mapping[Any, bool]) -> dict[str, Any]:
    """Compare two runs on the keys both have: ``first`` (the baseline, or no thinking) against
    ``second``. A key is an item id or an ``(item id, seed)`` pair; pairs of one item are averaged
    into that item's score (the module docstring says why and which test follows).

    Returns ``n`` (items), ``pairs`` (matched keys), ``delta`` and ``delta_ci95`` (percentage
    points, second - first), ``model_only`` (b: items better in ``second``), ``baseline_only``
    (c: better in ``first``), ``p_value``, ``test``, ``interval`` and ``significant`` (p < 0.05;
    :func:`with_holm` replaces it by the adjusted decision)."""
    per_item: dict[Any, list[tuple[bool, bool]]] = defaultdict(list)
    for key in second:
        if key in first:
            per_item[_item(key)].append((bool(first[key]), bool(second[key])))
    n, pairs = len(per_item), sum(len(v) for v in per_item.values())
    if n == 0:
        return {"n": 0, "pairs": 0, "delta": None, "delta_ci95": None, "model_only": 0, "baseline_only": 0,
                "p_value": None, "test": None, "interval": None, "significant": False}
    # in a fixed order (item ids as text), so the bootstrap draws the same resamples whatever the row order
    scores = [(sum(f for f, _ in v) / len(v), sum(s for _, s in v) / len(v)) for _, v in sorted(per_item.items(), key=lambda kv: str(kv[0]))]
    b = sum(1 for f, s in scores if s > f)
    c = sum(1 for f, s in scores if f > s)
    delta = sum(s - f for f, s in scores) / n
    if pairs == n:  # one outcome per item: McNemar and Newcombe
        both = sum(1 for f, s in scores if f and s)
        ci, test, interval = newcombe_paired(both, b, c, n - both - b - c), TEST_MCNEMAR, INTERVAL_NEWCOMBE
    else:
        ci, test, interval = bootstrap_mean([s - f for f, s in scores]), TEST_SIGN, INTERVAL_BOOTSTRAP
    p = mcnemar_exact(b, c)
    return {"n": n, "pairs": pairs, "delta": round(100 * delta, 4), "delta_ci95": [round(100 * x, 4) for x in ci],
            "model_only": b, "baseline_only": c, "p_value": round(p, 6), "test": test, "interval": interval,
            "significant": p < ALPHA}


def bootstrap_mean(values: Sequence[float], alpha: float = ALPHA) -> list[float]:
    """Percentile bootstrap interval of the mean of ``values`` (fixed seed: the same report twice)."""
    import numpy as np
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    if len(data) < 2 or np.all(data == data[0]):
        return [float(data.mean()), float(data.mean())]
    res = bootstrap((data,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=1 - alpha,
                    method="percentile", random_state=0, vectorized=True)
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of one family of p-values (same order)."""
    if not p_values:
        return []
    import gc

    from statsmodels.stats.multitest import multipletests

    gc.freeze()  # its Holm branch calls gc.collect(): ~2 s over a process holding torch and 10,000 rows
    try:
        return [round(float(p), 6) for p in multipletests(list(p_values), alpha=ALPHA, method="holm")[1]]
    finally:
        gc.unfreeze()


def with_holm(cells: dict[str, dict[str, Any]], family: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Add ``p_holm`` to every cell: Holm over the cells named in ``family`` (those with a test);
    any other cell is a family of its own (``p_holm`` = ``p_value``). ``significant`` becomes
    ``p_holm`` < 0.05."""
    names = [k for k in family if cells.get(k, {}).get("p_value") is not None]
    adjusted = dict(zip(names, holm([cells[k]["p_value"] for k in names])))
    for name, cell in cells.items():
        cell["p_holm"] = adjusted.get(name, cell.get("p_value"))
        cell["significant"] = cell["p_holm"] is not None and cell["p_holm"] < ALPHA
    return cells


def token_stats(tokens: Iterable[float]) -> dict[str, float | None]:
    """``{"mean", "median", "p95"}`` of generated-token counts (None when there are none)."""
    values = sorted(float(t) for t in tokens)
    if not values:
        return {"mean": None, "median": None, "p95": None}
    import numpy as np

    arr = np.asarray(values)
    return {"mean": round(float(arr.mean()), 2), "median": round(float(np.median(arr)), 2),
            "p95": round(float(np.percentile(arr, 95)), 2)}
