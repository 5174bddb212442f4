"""What the §V report says in words: findings paragraphs, the comparison with the paper and the power of each test,
all computed from the report's tables and the paper's numbers (``analysis/paper_reference.yaml``). No number in
the prose is typed: every one is read from a table here.

Tables come per head mode: ``modes = {"single": {key: DataFrame}, "multi": {...}}`` with the keys the §V rules
write (``table_viii``, ``addibility_tests``, ``fig14_score_tests``, ``fig14_r2_difference``, ``table_ix``,
``table_ix_chance_tests``, ``table_ix_contrasts``, ``location_ablation_tests``, ``kl_sensitivity``,
``attribute_by_colour``, ``concreteness_regressions``, ``concreteness_words``), and the run-wide ones in ``common``
(``toy_sanity``, ``toy_sanity_by_colour``).

Verdicts (``paper_comparison``): a claim of the paper about a direction **agrees** when this run's Holm-adjusted
test is significant in the paper's direction, **differs** when it is significant the other way, or not significant
although the test had at least 80% power for the paper's effect; **inconclusive** when it is not significant and
the power for the paper's effect is below 80% (or unknown); **not comparable** when the quantity cannot carry the
paper's meaning here: a level on a scale the paper does not define the same way, an absolute level of another model
and data set, or a result the toy world makes true by construction (location words, §V-C's vocabulary). A "no
difference" claim agrees when TOST shows equivalence within the stated margin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats as sps

from .attributes import (DEFAULT_KL_EPS, DEFAULT_OT_GRID, EMPTY_MAP_POLICY, HIGHER_IS_BETTER, KL_SENSITIVITY_EPS,
                         METRIC_LABELS)
from .stats import (minimum_detectable_dz, paired_n_for_power, paired_power, tost_power, z_minimum_detectable,
                    z_power)

REFERENCE_PATH = Path(__file__).with_name("paper_reference.yaml")
ALPHA = 0.05
POWER_TARGET = 0.8
TOST_CI = f"{100 * (1 - 2 * ALPHA):.0f}%"  # TOST at alpha shows equivalence when this interval is inside the margin
COMPARISON_COLUMNS = ("analysis", "quantity", "paper", "this_run", "verdict")
Tables = Mapping[str, pd.DataFrame]


def load_paper_reference(path: str | Path = REFERENCE_PATH) -> dict:
    """The paper's §V numbers (``analysis/paper_reference.yaml``)."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------- the paper's effects
def paper_table_viii_difference(ref: Mapping, method: str, groups: Sequence[str]) -> float:
    """The paper's add - ``method`` cosine, averaged over its Table VIII columns of ``groups`` (both phrase types)."""
    means = ref["table_viii"]["means"]
    diffs = [means["add"][p][g] - means[method][p][g] for p in ("matched", "mismatched") for g in groups
             if g in means["add"][p]]
    return float(np.mean(diffs)) if diffs else math.nan


def paper_category_gap(ref: Mapping, metric: str, a: str, b: str) -> float:
    """The paper's Table IX difference between categories a and b on ``metric``, oriented so that a positive value
    means a is better (higher for similarities, lower for distances)."""
    means = ref["table_ix"]["means"].get(metric, {})
    if a not in means or b not in means:
        return math.nan
    diff = means[a] - means[b]
    return float(diff if HIGHER_IS_BETTER[metric] else -diff)


def equivalence_margins(ref: Mapping) -> dict[str, float]:
    """The equivalence margin of the Appendix-B "no influence" claim, per metric tested: the smallest absolute
    difference between adjacent categories of the paper's ranking in its Table IX on that metric."""
    metric = ref["location_ablation"]["metric"]
    ranking = ref["table_ix"]["ranking"]
    gaps = [abs(paper_category_gap(ref, metric, a, b)) for a, b in zip(ranking[:-1], ranking[1:])]
    return {metric: float(min(gaps))}


def comparable_scale(ref: Mapping, metric: str) -> bool:
    return bool(ref["table_ix"].get("comparable_scale", {}).get(metric, False))


# ------------------------------------------------------------------------------------------ formatting
def num(x, digits: int = 3) -> str:
    """A number in prose: 3 significant digits (fixed point for |x| in [1e-3, 1e4)), "n/a" for NaN."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e4:
        decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
        return f"{x:.{decimals}f}"
    return f"{x:.{digits - 1}e}"


def ci(est, low, high) -> str:
    return f"{num(est)} [{num(low)}, {num(high)}]"


def p_text(p, label: str = "p") -> str:
    if p is None or not math.isfinite(float(p)):
        return f"{label} n/a"
    return f"{label} < 0.001" if p < 0.001 else f"{label} = {float(p):.3f}"


def mode_label(mode: str) -> str:
    return f'heads="{mode}"'


def mode_tag(mode: str) -> str:
    """The head mode in the comparison table's ``analysis`` column."""
    return f" [heads={mode}]"


def _get(tables: Tables, key: str) -> pd.DataFrame:
    t = tables.get(key)
    return t if t is not None else pd.DataFrame()


# --------------------------------------------------------------------------------------------- verdicts
def directional_verdict(estimate: float, p_adjusted: float, paper_sign: int, power: float | None) -> str:
    """agrees / differs / inconclusive for a claim about a direction (module docstring)."""
    if p_adjusted is not None and math.isfinite(p_adjusted) and p_adjusted < ALPHA and math.isfinite(estimate):
        return "agrees" if np.sign(estimate) == paper_sign else "differs"
    if power is not None and math.isfinite(power) and power >= POWER_TARGET:
        return "differs"
    return "inconclusive"


def equivalence_verdict(row: Mapping) -> str:
    """agrees (equivalent within the margin) / differs (a significant difference beyond the margin: the 90%
    interval lies outside it) / inconclusive."""
    if row.get("equivalent") in (True, "True", 1):
        return "agrees"
    low, high, margin = row.get("ci90_low"), row.get("ci90_high"), row.get("margin")
    if margin is not None and low is not None and (low > margin or high < -margin):
        return "differs"
    return "inconclusive"


# ------------------------------------------------------------------------------------------------ power
def _table_viii_groups(tables: Tables) -> list[str]:
    t8 = _get(tables, "table_viii")
    return sorted({c.split(" | ")[1] for c in t8.columns if " | " in c})


def _tost_n_for_power(margin_dz: float, alpha: float = ALPHA, power: float = POWER_TARGET, n_max: int = 100_000
                      ) -> float:
    """Smallest n at which TOST with this margin (in SDs) reaches ``power`` when the true difference is 0."""
    if not margin_dz > 0:
        return math.inf
    lo, hi = 2, 4
    while tost_power(margin_dz, hi, alpha) < power:
        lo, hi = hi, hi * 2
        if hi > n_max:
            return math.inf
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if tost_power(margin_dz, mid, alpha) < power else (lo, mid)
    return float(hi)


def power_table(modes: Mapping[str, Tables], ref: Mapping) -> pd.DataFrame:
    """Power of each §V-A and §V-B test for the paper's effect, per head mode.

    Paired t-tests over images (Table VIII): the paper's difference (its Table VIII columns of the word groups this
    run has) in units of this run's SD of the per-image differences (dz), at the family's Bonferroni level alpha/m
    (a lower bound on Holm's power). Mixed-model contrasts (Table IX ranking): the paper's difference against this
    run's standard error (Wald test, alpha/m), for the metrics whose scale is comparable with the paper's; the images
    needed for 80% power scale the SE as 1/sqrt(images). Appendix-B TOST: the power to show equivalence within the
    margin when the true difference is 0, at this run's SD. Tests for which the paper gives no effect size (Fig. 14's
    claims, the chance levels, which it does not test) get the minimum detectable effect only.
    """
    rows = []
    z80 = sps.norm.ppf(POWER_TARGET)
    for mode, tables in modes.items():
        tests = _get(tables, "addibility_tests")
        groups = _table_viii_groups(tables)
        m = max(1, len(tests))
        for r in tests.to_dict("records"):
            level = ALPHA / m
            effect = paper_table_viii_difference(ref, r["method"], groups)
            sd, n = r.get("sd_diff", math.nan), int(r.get("n", 0) or 0)
            dz = effect / sd if sd and math.isfinite(sd) and sd > 0 else math.nan
            mde_dz = minimum_detectable_dz(n, level) if n >= 2 else math.nan
            rows.append({"heads": mode, "analysis": "§V-A Table VIII", "test": f"add vs {r['method']} (paired t)",
                         "n": n, "unit": "images", "alpha": level, "paper_effect": effect, "paper_effect_standardised": dz,
                         "standardised_by": "sd_diff (dz)",
                         "power": paired_power(dz, n, level) if n >= 2 else math.nan,
                         "n_for_80": paired_n_for_power(dz, level), "mde": mde_dz * sd, "mde_dz": mde_dz})
        claims = _get(tables, "fig14_score_tests")
        for r in claims.to_dict("records"):
            level = ALPHA / max(1, len(claims))
            n = int(r.get("n", 0) or 0)
            mde_dz = minimum_detectable_dz(n, level) if n >= 2 else math.nan
            rows.append({"heads": mode, "analysis": "§V-A Fig. 14", "test": f"{r['claim']} (paired t)", "n": n,
                         "unit": "images", "alpha": level, "paper_effect": math.nan,
                         "paper_effect_standardised": math.nan, "standardised_by": "sd_diff (dz)",
                         "power": math.nan, "n_for_80": math.nan, "mde": mde_dz * r.get("sd_diff", math.nan),
                         "mde_dz": mde_dz})
        contrasts = _get(tables, "table_ix_contrasts")
        for metric, fam in contrasts.groupby("metric", sort=False) if len(contrasts) else []:
            level = ALPHA / len(fam)
            for r in fam.to_dict("records"):
                se, n = r["se"], int(r.get("n_groups", 0) or 0)
                effect = paper_category_gap(ref, metric, r["a"], r["b"]) if comparable_scale(ref, metric) else math.nan
                needed_se = abs(effect) / (sps.norm.ppf(1 - level / 2) + z80) if math.isfinite(effect) else math.nan
                n80 = n * (se / needed_se) ** 2 if math.isfinite(needed_se) and needed_se > 0 else math.nan
                rows.append({"heads": mode, "analysis": "§V-B Table IX ranking",
                             "test": f"{METRIC_LABELS.get(metric, metric)}: {r['contrast']} (mixed model)",
                             "n": n, "unit": "images", "alpha": level, "paper_effect": effect,
                             "paper_effect_standardised": effect / se if math.isfinite(effect) and se > 0 else math.nan,
                             "standardised_by": "se (z)",
                             "power": z_power(effect, se, level), "n_for_80": n80,
                             "mde": z_minimum_detectable(se, level), "mde_dz": math.nan})
        location = _get(tables, "location_ablation_tests")
        margins = equivalence_margins(ref)
        for r in location.to_dict("records"):
            n = int(r.get("n", 0) or 0)
            margin = r.get("margin", math.nan)
            if not (isinstance(margin, float) and math.isfinite(margin)) and r["variant"] == "location+shape":
                margin = margins.get(r["metric"], math.nan)  # the test could not run (too few images): power n/a
            if isinstance(margin, float) and math.isfinite(margin):
                sd = r.get("sd_diff", math.nan)
                margin_dz = margin / sd if sd is not None and math.isfinite(sd) and sd > 0 else math.nan
                rows.append({"heads": mode, "analysis": "§V-B Appendix B",
                             "test": f"{METRIC_LABELS.get(r['metric'], r['metric'])}: {r['variant']} ≡ "
                                     f"{r['baseline']} (TOST, margin {num(margin)})",
                             "n": n, "unit": "images", "alpha": ALPHA, "paper_effect": 0.0,
                             "paper_effect_standardised": 0.0, "standardised_by": "sd_diff (dz)",
                             "power": r.get("tost_power", math.nan),
                             "n_for_80": _tost_n_for_power(margin_dz) if math.isfinite(margin_dz) else math.nan,
                             "mde": math.nan, "mde_dz": math.nan})
    out = pd.DataFrame(rows)
    if len(out):
        out["meets_80"] = out["power"].map(lambda p: bool(p >= POWER_TARGET) if math.isfinite(p) else None)
    return out


# ----------------------------------------------------------------------------------- paper comparison
def _row(analysis: str, quantity: str, paper: str, this_run: str, verdict: str) -> dict:
    return dict(zip(COMPARISON_COLUMNS, (analysis, quantity, paper, this_run, verdict)))


def _power_of(power: pd.DataFrame, mode: str, test: str) -> float:
    if power.empty:
        return math.nan
    hit = power[(power["heads"] == mode) & (power["test"] == test)]
    return float(hit["power"].iloc[0]) if len(hit) else math.nan


def paper_comparison(modes: Mapping[str, Tables], ref: Mapping, toy: bool, power: pd.DataFrame | None = None
                     ) -> pd.DataFrame:
    """``reports/tables/paper_comparison.csv``: one row per quantity and head mode, columns analysis, quantity,
    paper, this_run, verdict (rules in the module docstring)."""
    power = power_table(modes, ref) if power is None else power
    rows = []
    t8ref, t9ref = ref["table_viii"], ref["table_ix"]
    for mode, tables in modes.items():
        tag = mode_tag(mode)
        # §V-A: the claim (add best), tested over images
        for r in _get(tables, "addibility_tests").to_dict("records"):
            test = f"add vs {r['method']} (paired t)"
            rows.append(_row(
                "§V-A Table VIII" + tag, f"add − {r['method']}: cosine with the phrase map, per image",
                f"add higher, p {t8ref['p_vs_add'][r['method']]} (n = {t8ref['n_images']} images)",
                f"{ci(r['mean_diff'], r['mean_diff_ci_low'], r['mean_diff_ci_high'])}, dz "
                f"{ci(r['dz'], r['dz_ci_low'], r['dz_ci_high'])}, {p_text(r['p_holm'], 'p_Holm')}, n = {r['n']}",
                directional_verdict(r["mean_diff"], r["p_holm"], +1, _power_of(power, mode, test))))
        # §V-A: levels (absolute cosines of another model and data set)
        t8 = _get(tables, "table_viii")
        for r in t8.to_dict("records"):
            for col, value in r.items():
                if " | " not in col:
                    continue
                ptype, group = col.split(" | ")
                paper = t8ref["means"].get(r["method"], {}).get(ptype, {}).get(group)
                rows.append(_row("§V-A Table VIII" + tag, f"mean cosine, {r['method']}, {ptype} {group}",
                                 num(paper, 4) if paper is not None else "not reported", num(value, 4),
                                 "not comparable"))
        for r in _get(tables, "fig14_score_tests").to_dict("records"):
            rows.append(_row("§V-A Fig. 14" + tag, f"{r['claim']}: score difference in the paper's direction, "
                             "per image", ref["fig14"]["score_claims"].get(r["claim"], "claimed"),
                             f"{ci(r['mean_diff'], r['mean_diff_ci_low'], r['mean_diff_ci_high'])}, "
                             f"{p_text(r['p_holm'], 'p_Holm')}, n = {r['n']}",
                             directional_verdict(r["mean_diff"], r["p_holm"], +1, None)))
        for r in _get(tables, "fig14_r2_difference").to_dict("records"):
            low, high = r["r2_diff_ci_low"], r["r2_diff_ci_high"]
            verdict = ("agrees" if low > 0 else "differs" if high < 0 else "inconclusive") \
                if math.isfinite(low) and math.isfinite(high) else "inconclusive"
            rows.append(_row("§V-A Fig. 14" + tag, f"R² matched − R² mismatched ({r['scale']} scale)",
                             "matched: strong linear trend; mismatched: R² extremely low (values lost in the text "
                             "copy; the paper fits ratios only)",
                             f"{num(r['r2_matched'])} − {num(r['r2_mismatched'])} = "
                             f"{ci(r['r2_diff'], low, high)} (bootstrap over images), n = {r['n']}", verdict))
        # §V-B: the ranking, tested
        for r in _get(tables, "table_ix_contrasts").to_dict("records"):
            metric = r["metric"]
            label = METRIC_LABELS.get(metric, metric)
            test = f"{label}: {r['contrast']} (mixed model)"
            # the claim is the paper's ranking (its text: color > shape > material > size > location); its Table IX
            # difference on this metric is shown beside it (on the metrics whose scale is not the paper's, and where
            # the table disagrees with the text, only the ranking is judged)
            gap = paper_category_gap(ref, metric, r["a"], r["b"])
            table = (f"{r['a']} better by {num(gap)}" if gap > 0 else f"{r['b']} better by {num(-gap)}") \
                if math.isfinite(gap) else "not reported"
            paper = f"{r['a']} ranked above {r['b']} in the text; Table IX: {table}"
            if toy and "location" in (r["a"], r["b"]):
                verdict = "not comparable"
            else:
                verdict = directional_verdict(r["estimate"], r["p_holm"], +1, _power_of(power, mode, test))
            rows.append(_row("§V-B Table IX" + tag, f"{label}: {r['contrast']} (positive: {r['a']} better)", paper,
                             f"{ci(r['estimate'], r['ci_low'], r['ci_high'])}, {p_text(r['p_holm'], 'p_Holm')}, "
                             f"n = {r['n_groups']} images", verdict))
        t9 = _get(tables, "table_ix")
        if len(t9):
            t9 = t9.set_index("metric")
            for metric, means in t9ref["means"].items():
                label = METRIC_LABELS.get(metric, metric)
                if label not in t9.index:
                    continue
                for cat, paper in means.items():
                    col = cat.capitalize()
                    if col in t9.columns:
                        rows.append(_row("§V-B Table IX" + tag, f"mean {label}, {cat}", num(paper, 4),
                                         num(t9.loc[label, col], 4), "not comparable"))
        # §V-B: Appendix B, "no influence"
        for r in _get(tables, "location_ablation_tests").to_dict("records"):
            if r["variant"] != "location+shape" or not (isinstance(r.get("margin"), float)
                                                        and math.isfinite(r["margin"])):
                continue
            rows.append(_row("§V-B Appendix B" + tag,
                             f"{METRIC_LABELS.get(r['metric'], r['metric'])}: location+shape − shape, per image "
                             f"(equivalence margin ±{num(r['margin'])})", "no influence: similarity unchanged",
                             f"{ci(r['mean_diff'], r['ci90_low'], r['ci90_high'])} ({TOST_CI} CI), "
                             f"{p_text(r['p_tost'], 'p_TOST')}, n = {r['n']}",
                             "not comparable" if toy else equivalence_verdict(r)))
        # §V-C
        regs = _get(tables, "concreteness_regressions")
        cref = ref["concreteness"]
        for r in regs.to_dict("records"):
            if r["model"] == "Fig. 18":
                verdict = "not comparable" if toy else directional_verdict(r["slope"], r["slope_p"], +1, None)
                rows.append(_row("§V-C Fig. 18" + tag, "slope of word importance on concreteness",
                                 f"positive, significant ({cref['n_words']} words; value lost in the text copy)",
                                 f"{ci(r['slope'], r['slope_ci_low'], r['slope_ci_high'])}, {p_text(r['slope_p'])}, "
                                 f"n = {r['n']} words", verdict))
            elif r["model"] == "Fig. 17":
                rows.append(_row("§V-C Fig. 17" + tag, "slope of word importance on log10 frequency",
                                 cref["fig17"]["claim"],
                                 f"{ci(r['slope'], r['slope_ci_low'], r['slope_ci_high'])}, {p_text(r['slope_p'])}, "
                                 f"n = {r['n']} words", "not comparable" if toy else
                                 ("agrees" if r["slope_p"] >= ALPHA else "differs")))
    out = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS)).drop_duplicates(ignore_index=True)
    is_level = out["quantity"].str.startswith("mean ")  # claims first, then the absolute levels
    return pd.concat([out[~is_level], out[is_level]], ignore_index=True)


# ------------------------------------------------------------------------------------------ findings
def _verdict_of(comparison: pd.DataFrame, analysis_prefix: str, mode: str, quantity_start: str) -> str:
    hit = comparison[comparison["analysis"].str.startswith(analysis_prefix)
                     & comparison["analysis"].str.endswith(mode_tag(mode))
                     & comparison["quantity"].str.startswith(quantity_start)]
    return hit["verdict"].iloc[0] if len(hit) else "n/a"


def _same_in_every_mode(modes: Mapping[str, Tables], key: str) -> bool:
    """Whether a table is identical in every head mode (e.g. the CLIP scores of Fig. 14: the model's own)."""
    found = [t.get(key) for t in modes.values()]
    return len(found) > 1 and all(f is not None for f in found) and all(f.equals(found[0]) for f in found[1:])


def _modes_for(modes: Mapping[str, Tables], key: str) -> list[tuple[str, str]]:
    """(mode, label) pairs to report ``key`` for: one 'both head modes' entry when the table is the same in all."""
    if _same_in_every_mode(modes, key):
        first = next(iter(modes))
        return [(first, "both head modes (the model's own scores)")]
    return [(m, mode_label(m)) for m in modes]


def _va_paragraphs(modes, ref, comparison) -> list[str]:
    t8ref = ref["table_viii"]
    out = [f"Question (Table VIII): is the heat map of a phrase closest to the sum of its two words' maps, rather "
           f"than to their product or maximum? The paper finds addition best on {t8ref['n_images']} COCO images "
           f"(paired t-tests, p {t8ref['p_vs_add']['multiply']} against each other method)."]
    for mode, tables in modes.items():
        tests = _get(tables, "addibility_tests")
        if tests.empty:
            continue
        t8 = _get(tables, "table_viii")
        parts = [f"add − {r['method']} = {ci(r['mean_diff'], r['mean_diff_ci_low'], r['mean_diff_ci_high'])} "
                 f"(dz {ci(r['dz'], r['dz_ci_low'], r['dz_ci_high'])}, {p_text(r['p_holm'], 'Holm p')}; "
                 f"{_verdict_of(comparison, '§V-A Table VIII', mode, 'add − ' + r['method'])})"
                 for r in tests.to_dict("records")]
        empty = int(t8["empty (left out)"].iloc[0]) if "empty (left out)" in t8 else 0
        out.append(f"This run, {mode_label(mode)}: {'; '.join(parts)}, over n = {int(tests['n'].max())} images "
                   f"(cosine averaged over each image's phrase types; {empty} image × phrase cases with an empty map "
                   f"left out of every method).")
    claims = []
    for mode, label in _modes_for(modes, "fig14_score_tests"):
        st = _get(modes[mode], "fig14_score_tests")
        if st.empty:
            continue
        parts = [f"{r['claim']}: {ci(r['mean_diff'], r['mean_diff_ci_low'], r['mean_diff_ci_high'])} "
                 f"({p_text(r['p_holm'], 'Holm p')}; {_verdict_of(comparison, '§V-A Fig. 14', mode, r['claim'])})"
                 for r in st.to_dict("records")]
        claims.append(f"{label}: " + "; ".join(parts))
    if claims:
        out.append("Fig. 14, the paper's reading of the scores, tested over images as score differences (positive = "
                   "the paper's direction): " + " — ".join(claims) + ".")
    r2s = []
    for mode, label in _modes_for(modes, "fig14_r2_difference"):
        r2 = _get(modes[mode], "fig14_r2_difference")
        for r in r2.to_dict("records"):
            r2s.append(f"{label}, {r['scale']}: R² matched {num(r['r2_matched'])} vs mismatched "
                       f"{num(r['r2_mismatched'])}, difference {ci(r['r2_diff'], r['r2_diff_ci_low'], r['r2_diff_ci_high'])}"
                       + (f" ({_verdict_of(comparison, '§V-A Fig. 14', mode, 'R² matched')})"
                          if r["scale"] == "ratio" else ""))
    if r2s:
        out.append("Fig. 14 (right): the paper reports a strong linear trend for matched phrases and an extremely low "
                   "R² for mismatched ones, on scores divided by the base word's score. Dividing both axes by the same "
                   "noisy base score correlates them by construction, so the fits are also made on differences "
                   "(score − base score): " + "; ".join(r2s) + ".")
    return out


def _vb_paragraphs(modes, ref, comparison, toy: bool) -> list[str]:
    t9ref = ref["table_ix"]
    out = []
    chance = []
    for mode, tables in modes.items():
        ct = _get(tables, "table_ix_chance_tests")
        if ct.empty:
            continue
        cos = ct[ct["metric"] == "cosine"]
        beats = []
        for baseline, g in cos.groupby("baseline", sort=False):
            won = [r["category"] for r in g.to_dict("records") if r["p_holm"] < ALPHA and r["mean_diff"] > 0]
            lost = [r["category"] for r in g.to_dict("records") if r["p_holm"] < ALPHA and r["mean_diff"] < 0]
            beats.append(f"beats the {baseline.replace(' ', '-')} map for {', '.join(won) or 'no category'}"
                         + (f" and loses to it for {', '.join(lost)}" if lost else ""))
        cells = ct[(ct["p_holm"] < ALPHA) & (ct["mean_diff"] > 0)]
        uniform = ct[ct["baseline"] == "uniform"]
        share = uniform["baseline_wins"]
        chance.append(f"{mode_label(mode)}: on cosine similarity the map {'; '.join(beats)} (Holm, over images); over "
                      f"all five metrics it is better than chance in {len(cells)} of {len(ct)} (metric, category, "
                      f"baseline) cells; the uniform map scores better than the real map on "
                      f"{num(100 * share.min(), 2)}–{num(100 * share.max(), 2)}% of the texts, depending on the "
                      f"metric and category")
    out.append(f"Question (Table IX): how well does the map of an attribute word find the object it names, by "
               f"attribute type? The paper ranks {' > '.join(t9ref['ranking'])} on {t9ref['n_images']} CLEVR images, "
               f"without a chance level. Chance levels here: a uniform map and the map of another object's word in "
               f"the same image, on the same texts. " + ("; ".join(chance) + "." if chance else ""))
    ranking = []
    for mode, tables in modes.items():
        con = _get(tables, "table_ix_contrasts")
        if con.empty:
            continue
        cos = con[con["metric"] == "cosine"]
        parts = [f"{r['contrast']} {ci(r['estimate'], r['ci_low'], r['ci_high'])} ({p_text(r['p_holm'], 'Holm p')}; "
                 f"{_verdict_of(comparison, '§V-B Table IX', mode, 'Cosine similarity: ' + r['contrast'])})"
                 for r in cos.to_dict("records")]
        ranking.append(f"{mode_label(mode)}: " + "; ".join(parts))
    if ranking:
        out.append("The paper's ranking, adjacent pairs on cosine similarity (a linear mixed model with a random "
                   "intercept per image; positive = the first category is better): " + " — ".join(ranking) + ".")
    loc = []
    for mode, tables in modes.items():
        lt = _get(tables, "location_ablation_tests")
        for r in lt.to_dict("records"):
            if r["variant"] == "location+shape" and isinstance(r.get("margin"), float) and math.isfinite(r["margin"]):
                loc.append(f"{mode_label(mode)}: location+shape − shape = {ci(r['mean_diff'], r['ci90_low'], r['ci90_high'])}"
                           f" ({TOST_CI} CI) against the margin ±{num(r['margin'])}, {p_text(r['p_tost'], 'TOST p')}, "
                           f"{'equivalent' if r['equivalent'] in (True, 'True') else 'equivalence not shown'} "
                           f"(TOST power {num(r['tost_power'], 2)}, n = {r['n']} images)")
    if loc:
        margin = equivalence_margins(ref)
        metric = next(iter(margin))
        out.append(f"Appendix B: the paper reads location words as bringing no influence. Tested for equivalence on "
                   f"{METRIC_LABELS.get(metric, metric).lower()} with the margin ±{num(margin[metric])}, the smallest "
                   f"difference between adjacent categories in the paper's Table IX: " + "; ".join(loc) + "."
                   + (" In the toy world this is true by construction (its CLIP never saw a location word, and its "
                      "training images were mirrored at random): not comparable with the paper." if toy else ""))
    colour = []
    for mode, tables in modes.items():
        bc = _get(tables, "attribute_by_colour")
        if bc.empty or "pointing" not in bc:
            continue
        colour.append(f"{mode_label(mode)}: " + ", ".join(f"{r['colour']} {num(r['pointing'], 2)}"
                                                          for r in bc.to_dict("records")))
    if colour:
        out.append("Pointing game of the colour texts by colour word (a per-colour view; the toy sanity check above "
                   "has the same on held-out scenes): " + "; ".join(colour) + ".")
    kl = []
    for mode, tables in modes.items():
        ks = _get(tables, "kl_sensitivity")
        if ks.empty:
            continue
        kls = ks[ks["divergence"].str.startswith("KLD")]
        cats = [c for c in ks.columns if c != "divergence"]
        span = [f"{c.lower()} {num(kls[c].iloc[0])} → {num(kls[c].iloc[-1])}" for c in cats]
        kl.append(f"{mode_label(mode)}: " + ", ".join(span))
    if kl:
        eps = sorted({DEFAULT_KL_EPS, *KL_SENSITIVITY_EPS}, reverse=True)
        out.append(f"KLD depends on its smoothing mass eps (Table IX uses {DEFAULT_KL_EPS:.0e}; the paper states "
                   f"none): from eps = {eps[0]:.0e} to {eps[-1]:.0e} the category means move " + "; ".join(kl)
                   + ". JSD needs no smoothing and is "
                   "bounded (0 to ln 2). The OT distance uses a ground cost in fractions of the image diagonal; its "
                   "absolute values are not comparable with the paper's, whose cost and normalisation are not "
                   "stated.")
    return out


def _vc_paragraphs(modes, ref, comparison, toy: bool) -> list[str]:
    cref = ref["concreteness"]
    out = []
    for mode, tables in modes.items():
        regs = _get(tables, "concreteness_regressions")
        if regs.empty:
            continue
        r18 = regs[regs["model"] == "Fig. 18"].iloc[0]
        r17 = regs[regs["model"] == "Fig. 17"].iloc[0]
        out.append(f"{mode_label(mode)}: the slope of mean word importance on concreteness is "
                   f"{ci(r18['slope'], r18['slope_ci_low'], r18['slope_ci_high'])} per rating point "
                   f"({p_text(r18['slope_p'])}, R² {num(r18['r2'])}, n = {int(r18['n'])} words; "
                   f"{_verdict_of(comparison, '§V-C Fig. 18', mode, 'slope')}); on log10 frequency the slope is "
                   f"{ci(r17['slope'], r17['slope_ci_low'], r17['slope_ci_high'])} ({p_text(r17['slope_p'])}).")
    head = (f"Question (Figs. 17, 18): does CLIP weigh concrete words more, independently of their frequency? The "
            f"paper finds a significant positive slope over the {cref['n_words']} most frequent COCO caption words and "
            f"no obvious relation with frequency.")
    if toy:
        n_words = max((len(_get(t, "concreteness_words")) for t in modes.values()), default=0)
        head += (f" The toy captions have a vocabulary of {n_words} words (attribute words, shape nouns, function "
                 f"words): the regressions run, but they cannot show the paper's claim, which is about a natural "
                 f"vocabulary (not comparable).")
    return [head] + out


def _run_paragraphs(common: Tables, toy: bool) -> list[str]:
    sanity = _get(common, "toy_sanity")
    if sanity.empty:
        return []
    rows = sanity[sanity["map"].str.startswith("Grad-ECLIP")]
    uniform = sanity[sanity["map"] == "uniform map"]
    parts = [f"{r['map'].split(', ')[1].split(' ')[0]}: pointing {ci(r['pointing'], r['pointing_ci_low'], r['pointing_ci_high'])}, "
             f"energy share {ci(r['energy_share'], r['energy_share_ci_low'], r['energy_share_ci_high'])}"
             for r in rows.to_dict("records")]
    text = (f"Toy sanity check ({int(sanity['n_scenes'].iloc[0])} held-out scenes with exact masks): " + "; ".join(parts))
    if len(uniform):
        text += f"; a uniform map points at the named object with probability {num(uniform['pointing'].iloc[0])}"
    out = [text + "."]
    by_colour = _get(common, "toy_sanity_by_colour")
    if len(by_colour) and {"single_pointing", "multi_pointing"} <= set(by_colour.columns):
        gap = by_colour.assign(gap=by_colour["multi_pointing"] - by_colour["single_pointing"]).sort_values("gap")
        worst = gap.tail(4)
        out.append("Per colour of the named object (table below), the single-head maps fall furthest behind the "
                   "multi-head maps for " + ", ".join(f"{r['colour']} ({num(r['single_pointing'], 2)} vs "
                                                      f"{num(r['multi_pointing'], 2)})"
                                                      for r in worst.iloc[::-1].to_dict("records"))
                   + ": the paper's single-head recomputation moves these conclusions most.")
    return out


def findings(modes: Mapping[str, Tables], common: Tables, ref: Mapping, toy: bool,
             comparison: pd.DataFrame | None = None) -> dict[str, list[str]]:
    """Findings paragraphs per report section (``run``, ``v-a``, ``v-b``, ``v-c``), each number from a table."""
    comparison = paper_comparison(modes, ref, toy) if comparison is None else comparison
    return {"run": _run_paragraphs(common, toy), "v-a": _va_paragraphs(modes, ref, comparison),
            "v-b": _vb_paragraphs(modes, ref, comparison, toy), "v-c": _vc_paragraphs(modes, ref, comparison, toy)}


def toy_banner(modes: Mapping[str, Tables]) -> str:
    """What the toy world is and what it cannot show (for the top of a toy-CLIP report)."""
    n_words = max((len(_get(t, "concreteness_words")) for t in modes.values()), default=0)
    return ("This report explains the toy CLIP, not a real one. The toy world renders CLEVR-style scenes (CLEVR's "
            "shapes, colours, materials and sizes) with exact object masks, and the toy CLIP was trained by this "
            "project on captions built from those attribute words. It is a sanity benchmark with ground truth, not "
            "a stand-in for CLIP: it cannot show what the paper's location results mean (its captions never contain a "
            "location word and its training images were mirrored at random, so 'left' and 'right' carry nothing by "
            f"construction), nor the concreteness study of §V-C (its captions have a {n_words}-word vocabulary). "
            "Verdicts marked 'not comparable' below follow from this; the others test whether the paper's analyses "
            "recover known structure.")


def methods_notes(ref: Mapping) -> list[str]:
    """The rules every number of the report follows (the report's last section)."""
    margin = equivalence_margins(ref)
    metric = next(iter(margin))
    eps = sorted({DEFAULT_KL_EPS, *KL_SENSITIVITY_EPS}, reverse=True)
    return [
        "Unit of analysis: the image. Values are averaged within an image first (its two phrase types in §V-A, its "
        "texts of one category in §V-B, its objects in Appendix B), then paired tests run over images. The Table IX "
        "ranking uses a linear mixed model of the per-text values with a random intercept per image (statsmodels "
        "MixedLM, REML), which keeps every text and accounts for texts that share an image.",
        f"Effect sizes: every p is shown with its effect, the mean difference with its {100 * (1 - ALPHA):.0f}% "
        "t-interval and Cohen's dz (mean difference / SD of the per-image differences) with its exact interval "
        "(inverting the noncentral t), or the mixed model's estimate with its Wald interval.",
        "Multiple tests: Holm's step-down correction within each family, raw and adjusted p both shown. Families: "
        "the Table VIII tests against add; the same within each word group and phrase type; the four Fig. 14 score "
        "claims; the chance comparisons of each (metric, chance level) over the categories; the ranking contrasts "
        "of each metric; the Appendix-B table.",
        f"\"No difference\" (Appendix B): two one-sided tests (TOST) with the margin ±{num(margin[metric])} on "
        f"{METRIC_LABELS.get(metric, metric).lower()}, the smallest difference between adjacent categories of the "
        f"paper's ranking in its Table IX; equivalence is shown when the {TOST_CI} interval lies inside the margin.",
        f"Power: each test table gives the minimum detectable effect with {100 * POWER_TARGET:.0f}% power at its n "
        f"(alpha {ALPHA}); the power table gives, for the paper's own effects, the power at the Holm family's "
        "smallest level alpha/m (a lower bound on Holm's power) and the n that 80% power needs.",
        "Empty maps. " + EMPTY_MAP_POLICY + " In §V-A an image × phrase case whose phrase map or either word map "
        "has no contrast is left out of every combination method; a product of two non-empty word maps that is all "
        "zero scores cosine 0 (the method's own prediction). Each table counts what it left out.",
        "Chance levels (Table IX): a uniform map (its pointing game is its expected value, the mask's area fraction; "
        "its Pearson r is 0) and the map of another object's word of the same category in the same image, scored "
        "against the named object's mask, on the texts that have both.",
        f"KLD is KL(mask ‖ map) in nats after mixing eps of uniform mass into both distributions; Table IX uses eps "
        f"= {DEFAULT_KL_EPS:.0e} and the sensitivity table {', '.join(f'{e:.0e}' for e in eps)}. JSD (nats, 0 to "
        "ln 2) needs no smoothing. OTD is the exact earth mover's distance (POT) between map and mask on a grid of "
        f"{DEFAULT_OT_GRID} cells along the longer side, ground cost = Euclidean distance in fractions of the image "
        "diagonal; the paper states neither its cost nor its normalisation, so absolute OTD values are not "
        "comparable with its Table IX.",
        "Fig. 14 is fitted on the paper's ratios (score / base score) and on differences (score − base score): "
        "dividing both axes by the same noisy base score correlates them by construction and inflates R².",
    ]
