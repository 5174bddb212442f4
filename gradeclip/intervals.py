"""Confidence intervals of the numbers the library reports (math and numpy only, no scipy or statsmodels: the
gradeclip layer does not depend on the study stack). The one owner of the proportion interval:
``analysis.stats.proportion_ci`` calls :func:`wilson_interval` too.

* :func:`wilson_interval`: Wilson's score interval of a proportion (what statsmodels' ``proportion_confint(...,
  method="wilson")`` computes, which the tests check it against), clamped so that it always contains the observed
  proportion. Its rule for no trials (n = 0): no proportion, NaN bounds.
* :func:`mean_interval`: mean +- z sd / sqrt(n), the normal-approximation interval of a mean (the model card's);
  none for fewer than two values.
"""
from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile (the model card's value since it was first written)


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of ``successes`` out of ``n`` at the normal quantile ``z`` (1.96: 95 %)."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # the interval contains p in exact arithmetic; clamping keeps it so at p = 0 or 1 despite rounding
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def proportion(hits: np.ndarray) -> dict:
    """The share of true values of ``hits`` with its Wilson 95 % interval, as a JSON-ready record."""
    hits = np.asarray(hits, dtype=np.float64)
    return {"value": float(hits.mean()), "ci95": list(wilson_interval(hits.sum(), len(hits))), "n": len(hits),
            "ci_method": "wilson"}


def mean_interval(values: np.ndarray, z: float = Z95) -> dict:
    """The mean of ``values`` with its normal-approximation interval (mean +- z sd / sqrt(n)), JSON-ready."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:  # no spread to estimate; None (JSON null) rather than NaN, which JSON does not have
        return {"value": mean, "ci95": None, "n": len(values), "ci_method": "normal"}
    half = z * float(values.std(ddof=1)) / math.sqrt(len(values))
    return {"value": mean, "ci95": [mean - half, mean + half], "n": len(values), "ci_method": "normal"}
