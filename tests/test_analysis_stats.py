"""analysis.stats: the wrappers reproduce the libraries and recover known answers."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.stats import ols_fit, ols_formula, paired_ttest, proportion_ci


def test_ols_recovers_known_slope_within_ci_and_matches_polyfit():
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 5, 400)
    y = 0.3 + 0.12 * x + rng.normal(0, 0.1, x.size)
    fit = ols_fit(x, y)
    assert fit["slope_ci_low"] < 0.12 < fit["slope_ci_high"]
    assert fit["intercept_ci_low"] < 0.3 < fit["intercept_ci_high"]
    slope, intercept = np.polyfit(x, y, 1)
    assert fit["slope"] == pytest.approx(slope, rel=1e-10)
    assert fit["intercept"] == pytest.approx(intercept, rel=1e-10)
    lr = sps.linregress(x, y)
    assert fit["slope_p"] == pytest.approx(lr.pvalue, rel=1e-6, abs=1e-300)
    assert fit["r2"] == pytest.approx(lr.rvalue**2, rel=1e-10)
    assert fit["n"] == 400 and fit["n_dropped"] == 0
    assert fit["slope_p"] < 1e-10


def test_ols_no_relationship_is_not_significant_and_nan_pairs_are_dropped():
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    y = rng.normal(size=300)
    x[:5] = np.nan
    fit = ols_fit(x, y)
    assert fit["n"] == 295 and fit["n_dropped"] == 5
    assert fit["slope_ci_low"] < 0 < fit["slope_ci_high"]
    assert fit["r2"] < 0.05


def test_ols_rejects_degenerate_input():
    with pytest.raises(ValueError):
        ols_fit([1, 1, 1, 1], [1, 2, 3, 4])
    with pytest.raises(ValueError):
        ols_fit([1, 2], [1, 2])


def test_ols_formula_multiple_regression_recovers_coefficients():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    df["y"] = 1.0 + 2.0 * df["a"] - 0.5 * df["b"] + rng.normal(0, 0.2, 500)
    coefs, model = ols_formula("y ~ a + b", df)
    for term, true in (("Intercept", 1.0), ("a", 2.0), ("b", -0.5)):
        assert abs(coefs.loc[term, "estimate"] - true) < 4 * coefs.loc[term, "se"]
        half = coefs.loc[term, "ci_high"] - coefs.loc[term, "estimate"]
        assert half == pytest.approx(1.9648 * coefs.loc[term, "se"], rel=1e-3)  # t(497) 97.5% quantile
    assert model["n"] == 500 and model["r2"] > 0.95
    beta, *_ = np.linalg.lstsq(np.column_stack([np.ones(500), df["a"], df["b"]]), df["y"], rcond=None)
    np.testing.assert_allclose(coefs["estimate"].to_numpy(), beta, rtol=1e-10)


def test_paired_ttest_equals_scipy_and_detects_known_difference():
    rng = np.random.default_rng(3)
    a = rng.normal(0.9, 0.05, 60)
    b = a - 0.1 + rng.normal(0, 0.02, 60)
    res = paired_ttest(a, b)
    ref = sps.ttest_rel(a, b)
    assert res["t"] == ref.statistic
    assert res["p"] == ref.pvalue
    assert res["df"] == 59 and res["n"] == 60
    assert res["mean_diff"] == pytest.approx(0.1, abs=0.01)
    assert res["diff_ci_low"] < 0.1 < res["diff_ci_high"]
    assert res["p"] < 1e-10


def test_paired_ttest_drops_incomplete_pairs():
    a = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    b = np.array([1.5, 2.5, 3.0, np.nan, 5.2])
    res = paired_ttest(a, b)
    ref = sps.ttest_rel([1.0, 2.0, 5.0], [1.5, 2.5, 5.2])
    assert res["n"] == 3 and res["p"] == pytest.approx(ref.pvalue)


def test_proportion_ci_wilson_known_values():
    res = proportion_ci(8, 10)
    # Wilson 95% interval for 8/10 (textbook value 0.490–0.943)
    assert res["rate"] == 0.8
    assert res["ci_low"] == pytest.approx(0.4902, abs=1e-3)
    assert res["ci_high"] == pytest.approx(0.9433, abs=1e-3)
    with pytest.raises(ValueError):
        proportion_ci(0, 0)
