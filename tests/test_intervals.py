"""gradeclip.intervals: the one proportion interval (model card and section V tables) and the mean interval."""
import json

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from analysis.stats import proportion_ci
from gradeclip.intervals import Z95, mean_interval, proportion, wilson_interval


def test_wilson_known_value_and_statsmodels():
    low, high = wilson_interval(8, 10)  # textbook value (e.g. statsmodels proportion_confint, wilson)
    assert (low, high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    for successes, n in ((0, 7), (3, 7), (7, 7), (412, 1000), (1, 1)):
        assert wilson_interval(successes, n) == pytest.approx(proportion_confint(successes, n, method="wilson"))
    assert all(np.isnan(wilson_interval(0, 0)))


def test_wilson_always_contains_the_proportion():
    for n in range(1, 60):
        for k in range(n + 1):
            low, high = wilson_interval(k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0


def test_analysis_proportion_ci_is_the_same_function_at_any_alpha():
    for alpha in (0.05, 0.1, 0.01):
        for successes, n in ((0, 5), (3, 7), (412, 1000)):
            res = proportion_ci(successes, n, alpha=alpha)
            z = float(sps.norm.isf(alpha / 2))
            assert (res["ci_low"], res["ci_high"]) == wilson_interval(successes, n, z=z)
            assert (res["ci_low"], res["ci_high"]) == pytest.approx(
                proportion_confint(successes, n, alpha=alpha, method="wilson"))
    assert Z95 == pytest.approx(float(sps.norm.isf(0.025)), rel=1e-15)


def test_proportion_and_mean_records():
    record = proportion(np.array([1, 0, 1, 1]))
    assert record["value"] == 0.75 and record["n"] == 4 and record["ci95"] == list(wilson_interval(3, 4))
    summary = mean_interval(np.array([1.0, 2.0, 3.0, 4.0]))
    half = Z95 * np.std([1, 2, 3, 4], ddof=1) / 2
    assert summary["ci95"] == pytest.approx([2.5 - half, 2.5 + half])
    one = mean_interval(np.array([0.25]))  # one value has no interval; the record stays valid JSON
    assert one["value"] == 0.25 and one["ci95"] is None
    json.dumps(one, allow_nan=False)
