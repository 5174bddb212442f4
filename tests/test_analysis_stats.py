"""analysis.stats: each statistic against an independent computation (scipy, statsmodels, simulation, hand-made
cases)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.weightstats import ttost_paired

from analysis.stats import (bootstrap_interval, cohen_dz_interval, holm, minimum_detectable_dz,
                            mixed_model_contrasts, ols_fit, ols_formula, one_sample_test, paired_n_for_power,
                            paired_power, paired_test, proportion_ci, tost_paired, tost_power, z_minimum_detectable,
                            z_power)


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


# ------------------------------------------------------------------------------------------ paired tests
def test_paired_test_equals_scipy_and_hand_formulas():
    rng = np.random.default_rng(3)
    a = rng.normal(0.9, 0.05, 60)
    b = a - 0.1 + rng.normal(0, 0.02, 60)
    res = paired_test(a, b)
    ref = sps.ttest_rel(a, b)
    assert res["t"] == pytest.approx(ref.statistic, rel=1e-12) and res["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    d = a - b
    assert res["df"] == 59 and res["n"] == 60
    assert res["mean_diff"] == pytest.approx(d.mean()) and res["sd_diff"] == pytest.approx(d.std(ddof=1))
    half = sps.t.ppf(0.975, 59) * d.std(ddof=1) / math.sqrt(60)
    assert res["mean_diff_ci_low"] == pytest.approx(d.mean() - half, rel=1e-10)
    assert res["mean_diff_ci_high"] == pytest.approx(d.mean() + half, rel=1e-10)
    assert res["dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert res["dz_ci_low"] < res["dz"] < res["dz_ci_high"]
    # the power statement: at the minimum detectable dz the test has 80% power (noncentral t, by hand)
    tc = sps.t.ppf(0.975, 59)
    nc = res["mde_dz"] * math.sqrt(60)
    assert sps.nct.sf(tc, 59, nc) + sps.nct.cdf(-tc, 59, nc) == pytest.approx(0.8, abs=1e-6)
    assert res["mde"] == pytest.approx(res["mde_dz"] * res["sd_diff"])


def test_paired_test_drops_incomplete_pairs_and_refuses_one_pair():
    a = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    b = np.array([1.5, 2.5, 3.0, np.nan, 5.2])
    res = paired_test(a, b)
    ref = sps.ttest_rel([1.0, 2.0, 5.0], [1.5, 2.5, 5.2])
    assert res["n"] == 3 and res["p"] == pytest.approx(ref.pvalue)
    with pytest.raises(ValueError, match="at least 2"):
        paired_test([1.0], [2.0])


def test_one_sample_test_is_ttest_1samp():
    x = np.array([0.3, -0.1, 0.5, 0.2, 0.4, 0.1])
    res = one_sample_test(x, 0.1)
    ref = sps.ttest_1samp(x, 0.1)
    assert res["t"] == pytest.approx(ref.statistic) and res["p"] == pytest.approx(ref.pvalue)
    assert res["mean_diff"] == pytest.approx(x.mean() - 0.1)


def test_dz_interval_inverts_the_noncentral_t_and_approaches_the_normal_approximation():
    t, n = 2.7, 25
    low, high = cohen_dz_interval(t, n)
    # the defining property, checked with scipy's noncentral t directly
    assert sps.nct.cdf(t, n - 1, low * math.sqrt(n)) == pytest.approx(0.975, abs=1e-9)
    assert sps.nct.cdf(t, n - 1, high * math.sqrt(n)) == pytest.approx(0.025, abs=1e-9)
    # independent inversion: a dense grid of noncentrality parameters
    grid = np.linspace(-2, 8, 200001)
    cdf = sps.nct.cdf(t, n - 1, grid)
    assert grid[np.argmin(abs(cdf - 0.975))] / math.sqrt(n) == pytest.approx(low, abs=1e-4)
    # large n: dz +- 1.96 sqrt(1/n + dz^2 / 2n)
    n = 4000
    dz = 0.3
    low, high = cohen_dz_interval(dz * math.sqrt(n), n)
    se = math.sqrt(1 / n + dz**2 / (2 * n))
    assert low == pytest.approx(dz - 1.96 * se, abs=2e-3) and high == pytest.approx(dz + 1.96 * se, abs=2e-3)


def test_dz_interval_covers_the_true_effect_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    true_dz, n, reps = 0.5, 20, 600
    hits = 0
    for _ in range(reps):
        d = rng.normal(true_dz, 1.0, n)
        res = one_sample_test(d)
        hits += res["dz_ci_low"] <= true_dz <= res["dz_ci_high"]
    assert 0.92 <= hits / reps <= 0.98


def test_holm_on_a_hand_made_family():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm(p)[:4], [0.03, 0.06, 0.06, 0.02])
    assert math.isnan(holm(p)[4])
    assert np.all(np.isnan(holm([np.nan, np.nan])))
    np.testing.assert_allclose(holm([0.2, 0.9]), [0.4, 0.9])


# ---------------------------------------------------------------------------------------- equivalence
def test_tost_equals_statsmodels_ttost_paired():
    rng = np.random.default_rng(4)
    a = rng.normal(0.5, 0.1, 80)
    b = a + rng.normal(0.005, 0.03, 80)
    res = tost_paired(a, b, margin=0.02)
    p, lower, upper = ttost_paired(a, b, -0.02, 0.02)
    assert res["p_tost"] == pytest.approx(p, rel=1e-10)
    assert res["p_lower"] == pytest.approx(lower[1], rel=1e-10)
    assert res["p_upper"] == pytest.approx(upper[1], rel=1e-10)
    assert res["equivalent"] == (p < 0.05)
    # the 90% interval lies inside the margin exactly when TOST rejects
    inside = -0.02 < res["ci90_low"] and res["ci90_high"] < 0.02
    assert inside == res["equivalent"]
    with pytest.raises(ValueError):
        tost_paired(a, b, margin=0)


def test_tost_shows_equivalence_for_equal_samples_and_not_for_a_large_difference():
    rng = np.random.default_rng(5)
    a = rng.normal(0.5, 0.1, 200)
    assert tost_paired(a, a + rng.normal(0, 0.01, 200), 0.01)["equivalent"]
    assert not tost_paired(a, a + 0.05 + rng.normal(0, 0.01, 200), 0.01)["equivalent"]


def test_tost_power_matches_simulation():
    rng = np.random.default_rng(6)
    n, margin_dz, reps = 30, 0.6, 4000
    d = rng.normal(0.0, 1.0, (reps, n))
    # TOST's decision by hand, vectorised: both one-sided t statistics beyond the t(n-1) quantile
    se = d.std(axis=1, ddof=1) / math.sqrt(n)
    tc = sps.t.ppf(0.95, n - 1)
    shown = np.mean(((d.mean(axis=1) + margin_dz) / se > tc) & ((d.mean(axis=1) - margin_dz) / se < -tc))
    assert tost_power(margin_dz, n) == pytest.approx(shown, abs=0.025)
    assert tost_paired(d[0], np.zeros(n), margin_dz)["equivalent"] == bool(
        (d[0].mean() + margin_dz) / se[0] > tc and (d[0].mean() - margin_dz) / se[0] < -tc)
    assert tost_power(margin_dz, n, true_dz=0.3) < tost_power(margin_dz, n)
    assert tost_power(0.05, 10) < 1e-6  # a tiny margin is almost never shown


# --------------------------------------------------------------------------------------------- power
def test_paired_power_equals_the_noncentral_t_by_hand_and_inverts():
    n, dz = 40, 0.45
    tc = sps.t.ppf(0.975, n - 1)
    nc = dz * math.sqrt(n)
    assert paired_power(dz, n) == pytest.approx(sps.nct.sf(tc, n - 1, nc) + sps.nct.cdf(-tc, n - 1, nc), rel=1e-6)
    assert paired_power(minimum_detectable_dz(n), n) == pytest.approx(0.8, abs=1e-6)
    needed = paired_n_for_power(dz)
    assert paired_power(dz, math.ceil(needed)) >= 0.8 > paired_power(dz, math.floor(needed))
    assert paired_n_for_power(0.0) == math.inf
    # far in the tail (statsmodels gives NaN there): the normal approximation, within 1e-6 of 1
    assert paired_power(0.39, 366, 0.025) == pytest.approx(1.0, abs=1e-6)
    assert paired_power(1.2, 366, 0.025) == pytest.approx(1.0, abs=1e-12)


def test_z_power_and_minimum_detectable_effect():
    se = 0.05
    mde = z_minimum_detectable(se)
    assert mde == pytest.approx((1.959964 + 0.841621) * se, rel=1e-5)
    assert z_power(mde, se) == pytest.approx(0.8, abs=1e-3)  # the far tail adds ~1e-5
    assert z_power(0.0, se) == pytest.approx(0.05)


# -------------------------------------------------------------------------------------- mixed model
def test_mixed_model_contrast_equals_the_paired_t_in_a_balanced_design():
    """One value per image and category: REML's Wald SE of the category difference is sd(diff) / sqrt(n), the paired
    t-test's (when the between-image variance estimate is positive)."""
    rng = np.random.default_rng(8)
    n = 40
    image_effect = rng.normal(0, 0.3, n)
    a = 0.6 + image_effect + rng.normal(0, 0.1, n)
    b = 0.5 + image_effect + rng.normal(0, 0.1, n)
    data = pd.DataFrame({"image": np.r_[np.arange(n), np.arange(n)], "cat": ["a"] * n + ["b"] * n,
                         "y": np.r_[a, b]})
    res = mixed_model_contrasts(data, "y", "cat", "image", [("a", "b")]).iloc[0]
    ref = paired_test(a, b)
    assert res["estimate"] == pytest.approx(ref["mean_diff"], rel=1e-6)
    assert res["se"] == pytest.approx(ref["sd_diff"] / math.sqrt(n), rel=1e-3)
    assert res["n_obs"] == 2 * n and res["n_groups"] == n and res["converged"]
    assert res["group_var"] == pytest.approx(0.09, rel=0.5)


def test_mixed_model_recovers_known_category_effects_with_several_rows_per_image():
    rng = np.random.default_rng(9)
    rows = []
    truth = {"color": 0.6, "shape": 0.4, "size": 0.35}
    for image in range(120):
        u = rng.normal(0, 0.2)
        for cat, mu in truth.items():
            for _ in range(rng.integers(0, 3)):  # 0-2 texts per category: unbalanced
                rows.append({"image": image, "cat": cat, "y": mu + u + rng.normal(0, 0.1)})
    data = pd.DataFrame(rows)
    res = mixed_model_contrasts(data, "y", "cat", "image", [("color", "shape"), ("shape", "size"), ("color", "x")])
    res = res.set_index("contrast")
    for contrast, true in (("color vs shape", 0.2), ("shape vs size", 0.05)):
        assert res.loc[contrast, "ci_low"] < true < res.loc[contrast, "ci_high"]
    assert res.loc["color vs shape", "p"] < 1e-10
    assert np.isnan(res.loc["color vs x", "estimate"]) and res.loc["color vs x", "note"]


def test_bootstrap_interval_of_a_mean_is_close_to_the_t_interval():
    rng = np.random.default_rng(10)
    x = rng.normal(1.0, 2.0, 200)
    est, low, high = bootstrap_interval(lambda idx: x[idx].mean(), len(x), n_boot=3000, seed=1)
    half = sps.t.ppf(0.975, 199) * x.std(ddof=1) / math.sqrt(200)
    assert est == pytest.approx(x.mean())
    assert low == pytest.approx(x.mean() - half, abs=0.06) and high == pytest.approx(x.mean() + half, abs=0.06)
    assert bootstrap_interval(lambda idx: x[idx].mean(), len(x), n_boot=50, seed=1) == \
        bootstrap_interval(lambda idx: x[idx].mean(), len(x), n_boot=50, seed=1)


def test_proportion_ci_wilson_known_values():
    res = proportion_ci(8, 10)
    # Wilson 95% interval for 8/10 (textbook value 0.490–0.943)
    assert res["rate"] == 0.8
    assert res["ci_low"] == pytest.approx(0.4902, abs=1e-3)
    assert res["ci_high"] == pytest.approx(0.9433, abs=1e-3)
    empty = proportion_ci(0, 0)  # no trials: no proportion (gradeclip.intervals' rule)
    assert all(math.isnan(empty[k]) for k in ("rate", "ci_low", "ci_high")) and empty["n"] == 0
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        proportion_ci(5, 3)
