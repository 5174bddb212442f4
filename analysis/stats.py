"""Thin, tidy wrappers over scipy / statsmodels for the §V study.

Only what the libraries do not hand over in one call lives here: OLS results as one flat row with
confidence intervals (statsmodels returns a results object), a paired t-test row with the CI of the mean
difference (scipy returns a result object), and a proportion with its Wilson interval. The numbers come
from the libraries unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint


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


def paired_ttest(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> dict[str, float]:
    """Paired t-test of ``a - b`` (``scipy.stats.ttest_rel``, two-sided) as a flat dict.

    Keys: t, p, df, n, mean_a, mean_b, mean_diff, diff_ci_low, diff_ci_high (``1 - alpha`` CI of the mean
    difference). Pairs with a NaN in either sample are dropped before the test.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-D of equal length, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 2:
        raise ValueError(f"a paired t-test needs at least 2 complete pairs, got {len(a)}")
    res = sps.ttest_rel(a, b)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    return {
        "t": float(res.statistic),
        "p": float(res.pvalue),
        "df": float(res.df),
        "n": int(len(a)),
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "mean_diff": float((a - b).mean()),
        "diff_ci_low": float(ci.low),
        "diff_ci_high": float(ci.high),
    }


def proportion_ci(successes: int, n: int, alpha: float = 0.05, method: str = "wilson") -> dict[str, float]:
    """A proportion with its confidence interval (``statsmodels ... proportion_confint``, Wilson by default)."""
    if n <= 0:
        raise ValueError("n must be positive")
    low, high = proportion_confint(successes, n, alpha=alpha, method=method)
    return {"successes": int(successes), "n": int(n), "rate": successes / n, "ci_low": float(low), "ci_high": float(high)}
