"""Statistics of the §V study beyond one scipy / statsmodels call: the one place for tests, effect sizes and power.

* OLS as one flat row with confidence intervals (:func:`ols_fit`, :func:`ols_formula`).
* The image is the unit: :func:`paired_test` (paired t over images, Cohen's dz with its exact noncentral-t
  interval, the minimum detectable effect at 80% power), :func:`one_sample_test`.
* Several tests of one family: :func:`holm` (raw and adjusted p are both reported by the callers).
* "No difference" claims: :func:`tost_paired` (two one-sided tests with a stated margin) and its exact power.
* Power: :func:`paired_power`, :func:`minimum_detectable_dz`, :func:`paired_n_for_power` (statsmodels
  ``TTestPower``), :func:`tost_power`, :func:`z_power` / :func:`z_minimum_detectable` for Wald tests.
* Several texts per image: :func:`mixed_model_contrasts` (statsmodels ``MixedLM``, random intercept per image).
* :func:`bootstrap_interval` over units (images), :func:`proportion_ci` (Wilson).

The numbers come from the libraries; tests/test_analysis_stats.py checks each against an independent computation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats as sps
from scipy.integrate import quad
from scipy.optimize import brentq
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from gradeclip.intervals import wilson_interval


def ols_fit(x: Sequence[float], y: Sequence[float], alpha: float = 0.05) -> dict[str, float]:
    """Simple linear regression ``y = intercept + slope * x`` (statsmodels OLS) as a flat dict.

    Keys: slope, slope_se, slope_ci_low, slope_ci_high, slope_p, intercept, intercept_ci_low,
    intercept_ci_high, intercept_p, r2, r2_adj, f_p, n, n_dropped. Pairs with a NaN/inf in x or y are
    dropped (counted in ``n_dropped``). CIs are ``1 - alpha`` t-intervals.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    n = int(keep.sum())
    if n < 3:
        raise ValueError(f"OLS needs at least 3 finite (x, y) pairs, got {n}")
    if np.ptp(x[keep]) == 0:
        raise ValueError("x is constant: the slope is not identifiable")
    res = sm.OLS(y[keep], sm.add_constant(x[keep], has_constant="add")).fit()
    ci = np.asarray(res.conf_int(alpha=alpha))
    return {
        "slope": float(res.params[1]),
        "slope_se": float(res.bse[1]),
        "slope_ci_low": float(ci[1, 0]),
        "slope_ci_high": float(ci[1, 1]),
        "slope_p": float(res.pvalues[1]),
        "intercept": float(res.params[0]),
        "intercept_ci_low": float(ci[0, 0]),
        "intercept_ci_high": float(ci[0, 1]),
        "intercept_p": float(res.pvalues[0]),
        "r2": float(res.rsquared),
        "r2_adj": float(res.rsquared_adj),
        "f_p": float(res.f_pvalue),
        "n": n,
        "n_dropped": int(len(x) - n),
    }


def ols_formula(formula: str, data: pd.DataFrame, alpha: float = 0.05) -> tuple[pd.DataFrame, dict[str, float]]:
    """Fit ``statsmodels.formula.api.ols(formula, data)`` (rows with missing values dropped by patsy).

    Returns ``(coefficients, model)``: a tidy coefficient table (index = term; columns estimate, se, t, p,
    ci_low, ci_high) and model-level statistics (r2, r2_adj, f_p, n, aic, bic).
    """
    res = smf.ols(formula, data=data).fit()
    ci = res.conf_int(alpha=alpha)
    coefs = pd.DataFrame(
        {
            "estimate": res.params,
            "se": res.bse,
            "t": res.tvalues,
            "p": res.pvalues,
            "ci_low": ci[0],
            "ci_high": ci[1],
        }
    )
    coefs.index.name = "term"
    model = {
        "r2": float(res.rsquared),
        "r2_adj": float(res.rsquared_adj),
        "f_p": float(res.f_pvalue),
        "n": int(res.nobs),
        "aic": float(res.aic),
        "bic": float(res.bic),
    }
    return coefs, model


def proportion_ci(successes: int, n: int, alpha: float = 0.05) -> dict[str, float]:
    """A proportion with its Wilson ``1 - alpha`` interval (``gradeclip.intervals.wilson_interval``, the one owner
    of the proportion interval and of its rule: no trials (n = 0), no proportion, NaN; the model card's intervals
    are the same function)."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    low, high = wilson_interval(successes, n, z=float(sps.norm.isf(alpha / 2)))
    return {"successes": int(successes), "n": int(n), "rate": successes / n if n else float("nan"),
            "ci_low": float(low), "ci_high": float(high)}


# ------------------------------------------------------------------------------ tests over images
def cohen_dz_interval(t: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact ``1 - alpha`` interval of Cohen's dz from a one-sample / paired t statistic with ``n`` pairs.

    dz = t / sqrt(n) and t follows a noncentral t(df = n - 1, nc = dz * sqrt(n)); the interval inverts the
    noncentral t's CDF in nc (Steiger & Fouladi's method; what MBESS ``ci.sm`` computes). NaN when t is not finite.
    """
    if n < 2 or not np.isfinite(t):
        return math.nan, math.nan
    df = n - 1

    def nc_for(prob: float) -> float:
        # nct.cdf(t, df, nc) falls monotonically in nc; bracket the root around t. Far from t scipy's nct.cdf can
        # return NaN where the true value is 1 (nc well below t) or 0 (well above): use those limits there.
        def f(nc: float) -> float:
            c = sps.nct.cdf(t, df, nc)
            return (c if np.isfinite(c) else float(nc < t)) - prob

        lo, hi = t - 10.0, t + 10.0
        while f(lo) < 0:
            lo -= 10.0
        while f(hi) > 0:
            hi += 10.0
        return brentq(f, lo, hi, xtol=1e-12, rtol=1e-12, maxiter=500)

    return nc_for(1 - alpha / 2) / math.sqrt(n), nc_for(alpha / 2) / math.sqrt(n)


def paired_test(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> dict[str, float]:
    """Paired t-test of ``a - b`` over units (images), with the effect size beside the p-value.

    Keys: n, mean_a, mean_b, mean_diff (a - b) with its ``1 - alpha`` t-interval (mean_diff_ci_low/high), sd_diff,
    t, df, p (two-sided, ``scipy.stats.ttest_rel``), Cohen's dz = mean_diff / sd_diff with its exact interval
    (:func:`cohen_dz_interval`), and mde_dz / mde: the smallest dz (and difference, dz * sd_diff) the test detects
    with 80% power at ``alpha`` (:func:`minimum_detectable_dz`). Pairs with a NaN in either sample are dropped.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-D of equal length, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = len(a)
    if n < 2:
        raise ValueError(f"a paired test needs at least 2 complete pairs, got {n}")
    d = a - b
    sd = float(d.std(ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        res = sps.ttest_rel(a, b)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    dz = float(d.mean() / sd) if sd > 0 else math.nan
    dz_low, dz_high = cohen_dz_interval(float(res.statistic), n, alpha) if sd > 0 else (math.nan, math.nan)
    mde = minimum_detectable_dz(n, alpha)
    return {
        "n": n,
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "mean_diff": float(d.mean()),
        "mean_diff_ci_low": float(ci.low),
        "mean_diff_ci_high": float(ci.high),
        "sd_diff": sd,
        "t": float(res.statistic),
        "df": float(res.df),
        "p": float(res.pvalue),
        "dz": dz,
        "dz_ci_low": dz_low,
        "dz_ci_high": dz_high,
        "mde_dz": mde,
        "mde": mde * sd,
    }


def one_sample_test(x: Sequence[float], mu: float = 0.0, alpha: float = 0.05) -> dict[str, float]:
    """:func:`paired_test` of ``x`` against the constant ``mu`` (one value per unit: a difference already taken)."""
    x = np.asarray(x, dtype=float)
    return paired_test(x, np.full_like(x, mu), alpha)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values of one family of tests (``statsmodels multipletests(method="holm")``);
    NaN entries (tests that could not be run) stay NaN and do not count towards the family size."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def tost_paired(a: Sequence[float], b: Sequence[float], margin: float, alpha: float = 0.05) -> dict[str, float]:
    """Equivalence test (two one-sided t-tests, Schuirmann 1987) of the paired mean difference ``a - b`` within
    ``(-margin, margin)``.

    Keys: n, mean_diff, sd_diff, margin, p_lower (H0: mean <= -margin), p_upper (H0: mean >= margin), p_tost (the
    larger: equivalence is shown when p_tost < alpha), the ``1 - 2 alpha`` interval of the mean difference (the one
    that lies inside the margin exactly when TOST rejects), equivalent (bool), and power: the probability of showing
    equivalence at this n when the true difference is 0 and the SD is sd_diff (:func:`tost_power`).
    """
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be positive, got {margin}")
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = len(d)
    if n < 2:
        raise ValueError(f"an equivalence test needs at least 2 complete pairs, got {n}")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    df = n - 1
    if se > 0:
        p_lower = float(sps.t.sf((mean + margin) / se, df))
        p_upper = float(sps.t.cdf((mean - margin) / se, df))
    else:
        p_lower = 0.0 if mean > -margin else 1.0
        p_upper = 0.0 if mean < margin else 1.0
    half = float(sps.t.ppf(1 - alpha, df) * se)
    p_tost = max(p_lower, p_upper)
    return {"n": n, "mean_diff": mean, "sd_diff": sd, "margin": float(margin), "p_lower": p_lower,
            "p_upper": p_upper, "p_tost": p_tost, "ci90_low": mean - half, "ci90_high": mean + half,
            "equivalent": bool(p_tost < alpha),
            "power": tost_power(margin / sd, n, alpha) if sd > 0 else math.nan}


# ------------------------------------------------------------------------------------------- power
def paired_power(dz: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired (one-sample) t-test at effect dz with n pairs (statsmodels ``TTestPower``).

    Where the noncentral t's tail is out of scipy's numerical range (large n and dz: statsmodels returns NaN there,
    at a power within 1e-6 of 1), the normal approximation Phi(nc - t_c) + Phi(-nc - t_c) is used instead.
    """
    if not np.isfinite(dz) or n < 2:
        return math.nan
    power = float(np.ravel(TTestPower().power(effect_size=abs(dz), nobs=n, alpha=alpha, alternative="two-sided"))[0])
    if math.isfinite(power):
        return power
    tc, nc = sps.t.ppf(1 - alpha / 2, n - 1), abs(dz) * math.sqrt(n)
    return float(sps.norm.cdf(nc - tc) + sps.norm.cdf(-nc - tc))


def minimum_detectable_dz(n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest |dz| the two-sided paired t-test with n pairs detects with ``power`` at ``alpha``."""
    if n < 2:
        return math.nan
    # solve_power returns a scalar or, when its root finder falls back, a 1-element array
    return float(np.ravel(TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power,
                                                   alternative="two-sided"))[0])


def paired_n_for_power(dz: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Pairs the two-sided paired t-test needs to detect |dz| with ``power`` at ``alpha`` (not rounded up)."""
    if not np.isfinite(dz) or dz == 0:
        return math.inf
    return float(np.ravel(TTestPower().solve_power(effect_size=abs(dz), nobs=None, alpha=alpha, power=power,
                                                   alternative="two-sided"))[0])


def tost_power(margin_dz: float, n: int, alpha: float = 0.05, true_dz: float = 0.0) -> float:
    """Exact power of the paired TOST with margin ``margin_dz`` (in SDs of the differences) at n pairs when the
    true mean difference is ``true_dz`` SDs.

    TOST rejects when -margin + t_c s/sqrt(n) < mean < margin - t_c s/sqrt(n) (t_c: the t(n-1) quantile 1 - alpha);
    mean ~ N(true, 1/n) and s ~ sqrt(chi2(n-1)/(n-1)) are independent, so the power is the integral over s of the
    normal probability of that interval (Owen 1965; computed by quadrature).
    """
    if n < 2 or not margin_dz > 0:
        return math.nan
    df = n - 1
    tc = float(sps.t.ppf(1 - alpha, df))
    rn = math.sqrt(n)

    def integrand(s: float) -> float:
        upper = rn * (margin_dz - true_dz) - tc * s
        lower = rn * (-margin_dz - true_dz) + tc * s
        if upper <= lower:
            return 0.0
        # density of s = sqrt(chi2_df / df): f(s) = chi2.pdf(df s^2) * 2 df s
        return (sps.norm.cdf(upper) - sps.norm.cdf(lower)) * sps.chi2.pdf(df * s * s, df) * 2 * df * s

    s_max = rn * margin_dz / tc  # beyond it the acceptance interval is empty
    value, _ = quad(integrand, 0.0, s_max, limit=200)
    return float(min(1.0, max(0.0, value)))


def z_power(effect: float, se: float, alpha: float = 0.05) -> float:
    """Power of a two-sided Wald (z) test of an estimate with standard error ``se`` at true value ``effect``."""
    if not (np.isfinite(effect) and np.isfinite(se)) or se <= 0:
        return math.nan
    z = sps.norm.ppf(1 - alpha / 2)
    lam = abs(effect) / se
    return float(sps.norm.cdf(lam - z) + sps.norm.cdf(-lam - z))


def z_minimum_detectable(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest |effect| a two-sided Wald test with standard error ``se`` detects with ``power`` at ``alpha``
    (ignoring the far tail: (z_(1-alpha/2) + z_power) * se)."""
    if not np.isfinite(se) or se <= 0:
        return math.nan
    return float((sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)) * se)


# -------------------------------------------------------------------------------------- mixed model
def mixed_model_contrasts(data: pd.DataFrame, value: str, category: str, group: str,
                          contrasts: Sequence[tuple[str, str]], alpha: float = 0.05) -> pd.DataFrame:
    """Linear mixed model ``value ~ category`` with a random intercept per ``group`` (statsmodels ``MixedLM``, REML),
    and the differences between pairs of categories.

    One row per contrast (a, b): estimate = mean of a - mean of b (fixed effects), its Wald SE, z, two-sided p and
    ``1 - alpha`` interval, mde (the smallest |difference| detectable with 80% power at ``alpha``,
    :func:`z_minimum_detectable`), and the fit's n_obs, n_groups, group_var (between-group variance), resid_var,
    converged. Categories absent from the data give a row of NaN with a note.
    """
    df = data[[value, category, group]].dropna()
    present = [c for c in dict.fromkeys(c for pair in contrasts for c in pair) if c in set(df[category])]
    df = df[df[category].isin(present)]
    rows = []
    fit = None
    if len(present) >= 2 and df[group].nunique() >= 2:
        ref = present[0]
        df = df.assign(_cat=pd.Categorical(df[category], categories=present))
        model = smf.mixedlm(f"Q('{value}') ~ C(_cat, Treatment('{ref}'))", df, groups=df[group])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; 'converged' is reported per row
            fit = model.fit(reml=True)
    z = sps.norm.ppf(1 - alpha / 2)
    for a, b in contrasts:
        row = {"contrast": f"{a} vs {b}", "a": a, "b": b}
        if fit is None or a not in present or b not in present:
            rows.append({**row, "estimate": math.nan, "se": math.nan, "z": math.nan, "p": math.nan,
                         "ci_low": math.nan, "ci_high": math.nan, "mde": math.nan,
                         "note": "category missing or too few groups"})
            continue
        names = list(fit.fe_params.index)
        weights = pd.Series(0.0, index=names)
        for cat, sign in ((a, 1.0), (b, -1.0)):
            if cat != present[0]:
                weights[f"C(_cat, Treatment('{present[0]}'))[T.{cat}]"] += sign
        cov = fit.cov_params().loc[names, names]
        est = float(weights @ fit.fe_params)
        se = float(np.sqrt(weights @ cov @ weights))
        rows.append({**row, "estimate": est, "se": se, "z": est / se, "p": float(2 * sps.norm.sf(abs(est / se))),
                     "ci_low": est - z * se, "ci_high": est + z * se, "mde": z_minimum_detectable(se, alpha),
                     "note": ""})
    out = pd.DataFrame(rows)
    out["n_obs"] = len(df) if fit is not None else 0
    out["n_groups"] = int(df[group].nunique()) if fit is not None else 0
    out["group_var"] = float(fit.cov_re.iloc[0, 0]) if fit is not None else math.nan
    out["resid_var"] = float(fit.scale) if fit is not None else math.nan
    out["converged"] = bool(fit.converged) if fit is not None else False
    return out


# ------------------------------------------------------------------------------------------ bootstrap
def bootstrap_interval(statistic: Callable[[np.ndarray], float], n_units: int, n_boot: int = 2000,
                       alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """Percentile bootstrap over units: ``statistic(indices)`` is evaluated on the full sample (indices
    0..n-1) and on ``n_boot`` resamples of the units with replacement (seeded). Returns (estimate, low, high);
    resamples where the statistic is not finite are skipped."""
    rng = np.random.default_rng(seed)
    full = float(statistic(np.arange(n_units)))
    draws = np.array([statistic(rng.integers(0, n_units, n_units)) for _ in range(n_boot)], dtype=float)
    draws = draws[np.isfinite(draws)]
    if len(draws) < n_boot / 2:
        return full, math.nan, math.nan
    return full, float(np.quantile(draws, alpha / 2)), float(np.quantile(draws, 1 - alpha / 2))
