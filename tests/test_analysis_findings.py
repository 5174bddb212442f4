"""analysis.findings: the paper's numbers as data, verdicts, power for the paper's effects, and findings written from
the tables (every number in a paragraph comes from a table or from the paper's reference file)."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from analysis import findings as F
from analysis.stats import paired_power, z_power

REF = F.load_paper_reference()


def test_reference_file_holds_the_papers_tables():
    t8 = REF["table_viii"]["means"]
    assert set(t8) == {"add", "multiply", "maximum"} and t8["add"]["matched"]["adj+noun"] == 0.9750
    t9 = REF["table_ix"]["means"]
    assert set(t9) == {"cosine", "pearson", "ot", "kl", "js"} and set(t9["cosine"]) == set(REF["table_ix"]["ranking"])
    for section in ("table_viii", "fig14", "table_ix", "location_ablation", "concreteness"):
        assert REF[section]["where"].startswith("§V"), section
    # numbers the plain-text copy lost are recorded as missing, with a note, not invented
    assert REF["concreteness"]["fig18"]["slope"] is None and REF["concreteness"]["fig18"]["note"]
    assert REF["fig14"]["regressions"]["matched"]["r2"] is None


def test_papers_effects_from_its_tables():
    # add - multiply over the adj+noun columns: ((0.9750 - 0.7871) + (0.9480 - 0.5810)) / 2
    assert F.paper_table_viii_difference(REF, "multiply", ["adj+noun"]) == pytest.approx((0.1879 + 0.3670) / 2)
    assert F.paper_table_viii_difference(REF, "maximum", ["adj+noun", "verb+noun"]) == pytest.approx(
        np.mean([0.9750 - 0.9619, 0.9814 - 0.9741, 0.9480 - 0.9319, 0.9755 - 0.9711]))
    assert F.paper_category_gap(REF, "cosine", "color", "shape") == pytest.approx(0.6654 - 0.5959)
    assert F.paper_category_gap(REF, "js", "color", "shape") == pytest.approx(0.3222 - 0.2881)  # lower is better
    # the smallest adjacent gap of the paper's ranking on cosine: shape - material
    assert F.equivalence_margins(REF) == {"cosine": pytest.approx(0.5959 - 0.5772)}


@pytest.mark.parametrize("estimate, p, sign, power, expected", [
    (0.2, 0.001, +1, None, "agrees"), (-0.2, 0.001, +1, None, "differs"),
    (0.01, 0.4, +1, 0.95, "differs"), (0.01, 0.4, +1, 0.3, "inconclusive"), (0.01, 0.4, +1, None, "inconclusive")])
def test_directional_verdicts(estimate, p, sign, power, expected):
    assert F.directional_verdict(estimate, p, sign, power) == expected


def test_equivalence_verdicts():
    assert F.equivalence_verdict({"equivalent": True}) == "agrees"
    assert F.equivalence_verdict({"equivalent": False, "ci90_low": 0.05, "ci90_high": 0.09, "margin": 0.02}) == "differs"
    assert F.equivalence_verdict({"equivalent": False, "ci90_low": -0.01, "ci90_high": 0.03, "margin": 0.02}) == \
        "inconclusive"


def _mode_tables(shift=0.0):
    t8 = pd.DataFrame({"method": ["add", "multiply", "maximum"], "matched | adj+noun": [0.86, 0.63, 0.84],
                       "mismatched | adj+noun": [0.84, 0.66, 0.81], "n images": [58, 58, 58],
                       "empty (left out)": [3, 3, 3]})
    tests = pd.DataFrame({"method": ["maximum", "multiply"], "reference": ["add", "add"], "n": [58, 58],
                          "mean_diff": [0.026 + shift, 0.21], "mean_diff_ci_low": [0.016, 0.15],
                          "mean_diff_ci_high": [0.036, 0.27], "sd_diff": [0.04, 0.23], "p": [1e-6, 1e-9],
                          "dz": [0.65, 0.9], "dz_ci_low": [0.37, 0.6], "dz_ci_high": [0.93, 1.2],
                          "mde_dz": [0.37, 0.37], "mde": [0.015, 0.085], "p_holm": [2e-6, 2e-9]})
    contrasts = pd.DataFrame({"metric": ["cosine"] * 4, "contrast": ["color vs shape", "shape vs material",
                                                                       "material vs size", "size vs location"],
                              "a": ["color", "shape", "material", "size"], "b": ["shape", "material", "size",
                                                                                 "location"],
                              "estimate": [0.39, 0.01, -0.05, 0.06], "ci_low": [0.31, -0.09, -0.16, -0.03],
                              "ci_high": [0.47, 0.12, 0.07, 0.15], "se": [0.04, 0.055, 0.059, 0.048],
                              "p": [1e-20, 0.8, 0.4, 0.2], "p_holm": [4e-20, 0.8, 0.8, 0.6], "mde": [0.11] * 4,
                              "n_groups": [60] * 4})
    location = pd.DataFrame({"metric": ["cosine"], "variant": ["location+shape"], "baseline": ["shape"], "n": [40],
                             "mean_diff": [0.012], "sd_diff": [0.09], "p": [0.3], "p_holm": [0.6],
                             "margin": [0.0187], "p_tost": [0.2], "ci90_low": [-0.01], "ci90_high": [0.035],
                             "equivalent": [False], "tost_power": [0.4]})
    regs = pd.DataFrame({"model": ["Fig. 18", "Fig. 17"], "slope": [0.05, 0.01], "slope_ci_low": [0.02, -0.02],
                         "slope_ci_high": [0.08, 0.04], "slope_p": [0.004, 0.5], "r2": [0.4, 0.03], "n": [17, 17]})
    return {"table_viii": t8, "addibility_tests": tests, "table_ix_contrasts": contrasts,
            "location_ablation_tests": location, "concreteness_regressions": regs,
            "concreteness_words": pd.DataFrame({"word": [f"w{i}" for i in range(17)]})}


def test_power_table_uses_the_papers_effects_at_the_family_level():
    power = F.power_table({"single": _mode_tables()}, REF).set_index("test")
    row = power.loc["add vs maximum (paired t)"]
    effect = F.paper_table_viii_difference(REF, "maximum", ["adj+noun"])
    assert row["paper_effect"] == pytest.approx(effect) and row["paper_effect_standardised"] == pytest.approx(effect / 0.04)
    assert row["standardised_by"] == "sd_diff (dz)"
    assert row["alpha"] == pytest.approx(0.025)  # two tests in the family: Bonferroni level, below Holm's power
    assert row["power"] == pytest.approx(paired_power(effect / 0.04, 58, 0.025))
    assert paired_power(effect / 0.04, math.ceil(row["n_for_80"]), 0.025) >= 0.8
    con = power.loc["Cosine similarity: shape vs material (mixed model)"]
    assert con["paper_effect"] == pytest.approx(0.5959 - 0.5772)
    # a mixed-model contrast is standardised by its standard error (a z), not by an SD of differences (a dz)
    assert con["paper_effect_standardised"] == pytest.approx((0.5959 - 0.5772) / 0.055)
    assert con["standardised_by"] == "se (z)"
    assert con["power"] == pytest.approx(z_power(0.5959 - 0.5772, 0.055, 0.05 / 4))
    assert not con["meets_80"] and con["n_for_80"] > 60
    tost = power.loc[[t for t in power.index if "TOST" in t][0]]
    assert tost["power"] == 0.4 and tost["n_for_80"] > 40


def test_power_table_lists_the_equivalence_test_that_could_not_run():
    """Too few images for the Appendix-B test (the rule writes n and a note, no statistics): the power table still
    lists the TOST, with its margin and no power, rather than leaving the test out."""
    tables = _mode_tables()
    tables["location_ablation_tests"] = pd.DataFrame({
        "metric": ["cosine", "cosine"], "variant": ["location+shape", "location"], "baseline": ["shape", "shape"],
        "n_objects": [2, 2], "n": [1, 1], "p": [np.nan, np.nan],
        "note": ["a paired test needs at least 2 complete pairs, got 1"] * 2, "p_holm": [np.nan, np.nan]})
    power = F.power_table({"single": tables}, REF)
    tost = power[power["analysis"] == "§V-B Appendix B"]
    assert len(tost) == 1 and "location+shape" in tost["test"].iloc[0]
    assert f"margin {F.num(F.equivalence_margins(REF)['cosine'])}" in tost["test"].iloc[0]
    assert tost["n"].iloc[0] == 1 and np.isnan(tost["power"].iloc[0]) and np.isnan(tost["n_for_80"].iloc[0])
    assert tost["meets_80"].iloc[0] is None


def test_paper_comparison_columns_and_verdicts():
    comp = F.paper_comparison({"single": _mode_tables()}, REF, toy=True)
    assert list(comp.columns) == ["analysis", "quantity", "paper", "this_run", "verdict"]
    assert not comp.duplicated().any()
    by = comp.set_index("quantity")
    assert by.loc["add − multiply: cosine with the phrase map, per image", "verdict"] == "agrees"
    # the toy world cannot show location or the concreteness study
    assert by.loc["Cosine similarity: size vs location (positive: size better)", "verdict"] == "not comparable"
    assert by.loc["slope of word importance on concreteness", "verdict"] == "not comparable"
    assert by.loc["mean cosine, add, matched adj+noun", "paper"] == "0.9750"
    real = F.paper_comparison({"single": _mode_tables()}, REF, toy=False).set_index("quantity")
    assert real.loc["slope of word importance on concreteness", "verdict"] == "agrees"
    # the ranking is the paper's claim: JSD's Table IX has material above shape, its text ranks shape above material
    js = _mode_tables()
    js["table_ix_contrasts"] = js["table_ix_contrasts"].assign(metric="js")
    js["table_ix_contrasts"].loc[1, ["estimate", "p_holm"]] = [0.05, 0.001]
    row = F.paper_comparison({"single": js}, REF, toy=True).set_index("quantity").loc[
        "JSD: shape vs material (positive: shape better)"]
    assert row["verdict"] == "agrees" and "material better by 0.0150" in row["paper"]
    # a reversed significant difference differs from the paper
    flipped = _mode_tables()
    flipped["addibility_tests"].loc[1, "mean_diff"] = -0.21
    again = F.paper_comparison({"single": flipped}, REF, toy=True).set_index("quantity")
    assert again.loc["add − multiply: cosine with the phrase map, per image", "verdict"] == "differs"


def _numbers(text):
    text = re.sub(r"Figs?\. \d+(?:, \d+)*", "", text)  # figure references are names, not results
    return set(re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text))


def test_every_number_in_the_findings_comes_from_a_table_or_the_paper():
    tables = _mode_tables()
    modes = {"single": tables, "multi": _mode_tables(shift=0.01)}
    paragraphs = F.findings(modes, {}, REF, toy=True)
    text = " ".join(p for ps in paragraphs.values() for p in ps)
    allowed = set()
    for t in [v for m in modes.values() for v in m.values()]:
        for value in t.select_dtypes("number").to_numpy().ravel():
            allowed |= {F.num(value), F.num(value, 2), F.num(100 * value, 2), f"{value:.3f}",
                        str(int(value)) if value == int(value) else ""}
        allowed |= {str(len(t))}

    def walk(node):
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            allowed.update({F.num(node), str(node)})
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(REF)
    allowed |= {F.num(v) for v in F.equivalence_margins(REF).values()}
    allowed |= {"1e-03", "1e-06", "1e-09", "0.001", "17", "0", "2"}  # eps values, "p < 0.001", ln 2
    assert text and _numbers(text) - allowed == set(), sorted(_numbers(text) - allowed)
    # and the prose follows the tables: another value, another sentence
    assert F.num(0.036) in " ".join(F.findings(modes, {}, REF, toy=True)["v-a"])
