"""Tables, figures and findings of the faithfulness study (paper section IV, and Cui & Fan's critique) from the
per-image numbers that ``gradeclip.faithfulness`` measures.

The image is the unit of every table: a curve's AUC, a pointing hit, a rank correlation is one number per image
(per image and method), means carry a 95% t-interval over images (Wilson for the pointing game's hit rate), and a
method is compared with Grad-ECLIP (:data:`gradeclip.faithfulness.REFERENCE_METHOD`) by a paired t-test over the
images both explained (``analysis.stats.paired_test``: the mean difference with its CI, Cohen's dz with its CI),
Holm-adjusted within each family (one task, target, measure and metric, over the methods). Directions: deletion
AUC lower = more faithful, insertion AUC and IMD higher = more faithful; differences are always method − reference.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from gradeclip.files import atomic_write_text

from .artifacts import curve_figure_key
from .stats import holm, paired_test, proportion_ci

# Lazy imports below, each for one reason: gradeclip.faithfulness (torch, the models) only in the functions that run a
# task, so that the tables, figures and findings need neither; matplotlib (slow to import) only where a figure is drawn.

AUC_METRICS = ("deletion", "insertion", "imd")
#: A method's map "changed" under the randomisation test when the upper 95% bound of its mean rank correlation with
#: the original map is below this (Adebayo et al. 2018 judge by eye; a random map, which ignores the model, stays 1).
RANDOMISATION_CHANGED_BELOW = 0.5
MEASURE_LABELS = {"top1": "top-1 accuracy", "top5": "top-5 accuracy", "ir1": "IR@1", "ir5": "IR@5", "tr1": "TR@1",
                  "tr5": "TR@5"}


# ---------------------------------------------------------------------------------------------------------------
# Small statistics
# ---------------------------------------------------------------------------------------------------------------
def mean_ci(values: Sequence[float], alpha: float = 0.05) -> dict[str, float]:
    """Mean over the finite values with its ``1 - alpha`` t-interval (a single value, or no spread: the interval is
    the mean itself; none: NaN); ``n`` the values used."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0}
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "ci_low": mean, "ci_high": mean, "n": 1}
    half = float(sps.t.ppf(1 - alpha / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(len(x))}


def _paired(a: np.ndarray, b: np.ndarray, alpha: float) -> dict[str, float]:
    """``paired_test`` of a - b, or NaNs (with the reason) when it cannot run (fewer than 2 pairs)."""
    try:
        t = paired_test(a, b, alpha)
    except ValueError as err:
        return {"n_pairs": int(np.sum(np.isfinite(a) & np.isfinite(b))), "diff": math.nan, "diff_ci_low": math.nan,
                "diff_ci_high": math.nan, "dz": math.nan, "dz_ci_low": math.nan, "dz_ci_high": math.nan,
                "p": math.nan, "note": str(err)}
    return {"n_pairs": t["n"], "diff": t["mean_diff"], "diff_ci_low": t["mean_diff_ci_low"],
            "diff_ci_high": t["mean_diff_ci_high"], "dz": t["dz"], "dz_ci_low": t["dz_ci_low"],
            "dz_ci_high": t["dz_ci_high"], "p": t["p"]}


def _holm_within(table: pd.DataFrame, family: Sequence[str], p: str = "p", out: str = "p_holm") -> pd.DataFrame:
    table = table.copy()
    table[out] = np.nan
    for _, index in table.groupby(list(family), sort=False).groups.items():
        table.loc[index, out] = holm(table.loc[index, p].to_numpy(dtype=float))
    return table


# ---------------------------------------------------------------------------------------------------------------
# Deletion and insertion
# ---------------------------------------------------------------------------------------------------------------
def auc_records(results, ids: Sequence[str]) -> pd.DataFrame:
    """One row per method, task, target, measure and image: deletion and insertion AUC and IMD
    (``metrics.Curves.auc``, ``metrics.imd``); ``results`` are ``faithfulness.MethodCurves``, ``ids`` the data's
    image ids (indexed by each result's ``kept``)."""
    frames = []
    for r in results:
        deletion, insertion = r.curves["deletion"].auc(), r.curves["insertion"].auc()
        for j, measure in enumerate(r.measures):
            frames.append(pd.DataFrame({
                "method": r.method, "task": r.task, "target": r.target, "measure": measure,
                "image_id": [ids[i] for i in r.kept], "deletion": deletion[:, j], "insertion": insertion[:, j],
                "imd": insertion[:, j] - deletion[:, j]}))
    columns = ["method", "task", "target", "measure", "image_id", *AUC_METRICS]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def curve_means(results) -> pd.DataFrame:
    """Mean curves (Fig. 8): method, task, target, mode, measure, step, fraction (of the pixels or words changed,
    mean over images), value (mean over images), n."""
    rows = []
    for r in results:
        for mode, c in r.curves.items():
            for j, measure in enumerate(r.measures):
                for p, step in enumerate(c.steps):
                    rows.append({"method": r.method, "task": r.task, "target": r.target, "mode": mode,
                                 "measure": measure, "step": int(step),
                                 "fraction": float(c.fractions[:, p].mean()) if len(c.fractions) else math.nan,
                                 "value": float(c.values[:, p, j].mean()) if len(c.values) else math.nan,
                                 "n": int(len(c.values))})
    return pd.DataFrame(rows)


def auc_table(records: pd.DataFrame, reference: str, alpha: float = 0.05,
              by: Sequence[str] = ("task", "target", "measure")) -> pd.DataFrame:
    """Per group (``by``) and method: n images, deletion / insertion / IMD means with 95% CIs over images, and for
    each of the three the paired test against ``reference`` on the images both methods explained (columns
    ``<metric>_vs_ref``, its CI, ``<metric>_dz``, ``<metric>_p``, ``<metric>_p_holm``; Holm within the group and
    metric, over the methods other than the reference). The reference's own row has no test."""
    out = []
    for key, group in records.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        ref = group[group["method"] == reference].set_index("image_id")
        for method, rows in group.groupby("method", sort=False):
            row = dict(zip(by, key), method=method, n=len(rows))
            mine = rows.set_index("image_id")
            for metric in AUC_METRICS:
                m = mean_ci(mine[metric], alpha)
                row.update({metric: m["mean"], f"{metric}_ci_low": m["ci_low"], f"{metric}_ci_high": m["ci_high"]})
            for metric in AUC_METRICS:
                if method == reference or ref.empty:
                    t = {"diff": math.nan, "diff_ci_low": math.nan, "diff_ci_high": math.nan, "dz": math.nan,
                         "dz_ci_low": math.nan, "dz_ci_high": math.nan, "p": math.nan, "n_pairs": 0}
                else:
                    both = mine[[metric]].merge(ref[[metric]], left_index=True, right_index=True, suffixes=("", "_ref"))
                    t = _paired(both[metric].to_numpy(float), both[f"{metric}_ref"].to_numpy(float), alpha)
                row.update({f"{metric}_vs_ref": t["diff"], f"{metric}_vs_ref_ci_low": t["diff_ci_low"],
                            f"{metric}_vs_ref_ci_high": t["diff_ci_high"], f"{metric}_dz": t["dz"],
                            f"{metric}_dz_ci_low": t["dz_ci_low"], f"{metric}_dz_ci_high": t["dz_ci_high"],
                            f"{metric}_p": t["p"]})
            row["n_pairs"] = t["n_pairs"]
            row["reference"] = reference
            out.append(row)
    table = pd.DataFrame(out)
    if table.empty:
        return table
    for metric in AUC_METRICS:
        table = _holm_within(table, list(by), f"{metric}_p", f"{metric}_p_holm")
    return table


def display_auc_table(table: pd.DataFrame) -> pd.DataFrame:
    """The report's view of :func:`auc_table`: the means with their CIs and IMD against the reference (the CSV keeps
    every column)."""
    keep = [c for c in ("task", "target", "measure", "method", "n") if c in table]
    keep += [c for m in AUC_METRICS for c in (m, f"{m}_ci_low", f"{m}_ci_high")]
    keep += ["imd_vs_ref", "imd_vs_ref_ci_low", "imd_vs_ref_ci_high", "imd_dz", "imd_p_holm"]
    return table[keep].rename(columns={"imd_p_holm": "p_holm"})


# ---------------------------------------------------------------------------------------------------------------
# Localisation
# ---------------------------------------------------------------------------------------------------------------
def localisation_records(scores: Mapping[str, Mapping[str, np.ndarray]], ids: Sequence[str],
                         groups: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """One row per method and image: pointing, energy_share, empty, constant, the constant map's chance levels and
    each group label (e.g. the named object's colour)."""
    frames = []
    for method, s in scores.items():
        frames.append(pd.DataFrame({"method": method, "image_id": list(ids), **{k: np.asarray(v) for k, v in s.items()},
                                    **{g: list(v) for g, v in groups.items()}}))
    return pd.concat(frames, ignore_index=True)


def localisation_table(records: pd.DataFrame, reference: str, group_by: Sequence[str] = (),
                       alpha: float = 0.05) -> pd.DataFrame:
    """Table IV: per method (and each level of each ``group_by`` column; ``all`` first): n images, pointing rate with
    its Wilson CI, energy share with its t CI, the constant map's expected values (chance), empty and constant maps
    counted, and the paired tests against ``reference`` on the same images (pointing and energy share, method −
    reference), Holm within each group and metric over the methods."""
    out = []
    splits = [("all", "all", records)]
    for g in group_by:
        splits += [(g, str(level), rows) for level, rows in records.groupby(g, sort=True)]
    for group_by_name, level, rows in splits:
        ref = rows[rows["method"] == reference].set_index("image_id")
        for method, mine in rows.groupby("method", sort=False):
            mine = mine.set_index("image_id")
            hits = mine["pointing"].dropna()
            pointing = proportion_ci(int(hits.sum()), len(hits), alpha=alpha) if len(hits) else {}
            energy = mean_ci(mine["energy_share"], alpha)
            row = {"group_by": group_by_name, "group": level, "method": method, "n": int(len(hits)),
                   "pointing": pointing.get("rate", math.nan), "pointing_ci_low": pointing.get("ci_low", math.nan),
                   "pointing_ci_high": pointing.get("ci_high", math.nan),
                   "energy_share": energy["mean"], "energy_share_ci_low": energy["ci_low"],
                   "energy_share_ci_high": energy["ci_high"],
                   "chance_pointing": float(mine["uniform_pointing"].mean()),
                   "chance_energy_share": float(mine["uniform_energy_share"].mean()),
                   "empty_maps": int(np.nansum(mine["empty"])), "constant_maps": int(np.nansum(mine["constant"]))}
            for metric in ("pointing", "energy_share"):
                if method == reference or ref.empty:
                    t = {"diff": math.nan, "diff_ci_low": math.nan, "diff_ci_high": math.nan, "dz": math.nan, "p": math.nan}
                else:
                    both = mine[[metric]].merge(ref[[metric]], left_index=True, right_index=True, suffixes=("", "_ref"))
                    t = _paired(both[metric].to_numpy(float), both[f"{metric}_ref"].to_numpy(float), alpha)
                row.update({f"{metric}_vs_ref": t["diff"], f"{metric}_vs_ref_ci_low": t["diff_ci_low"],
                            f"{metric}_vs_ref_ci_high": t["diff_ci_high"], f"{metric}_dz": t["dz"],
                            f"{metric}_p": t["p"]})
            row["reference"] = reference
            out.append(row)
    table = pd.DataFrame(out)
    for metric in ("pointing", "energy_share"):
        table = _holm_within(table, ["group_by", "group"], f"{metric}_p", f"{metric}_p_holm")
    return table


def localisation_rate_table(table: pd.DataFrame, methods: Sequence[str], group_by: str) -> pd.DataFrame:
    """Pointing and energy share of ``methods`` per level of ``group_by`` (critique (iv): by head mode and colour)."""
    rows = table[(table["group_by"] == group_by) & table["method"].isin(methods)]
    keep = ["group", "method", "n", "pointing", "pointing_ci_low", "pointing_ci_high", "energy_share",
            "energy_share_ci_low", "energy_share_ci_high", "chance_pointing", "chance_energy_share"]
    return rows[keep].rename(columns={"group": group_by}).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------------
# Whose score does the map explain?
# ---------------------------------------------------------------------------------------------------------------
ALL_PROMPTS, OWN_TEXT = "every class prompt", "own text"


def score_gap_table(gaps: Mapping[str, tuple[np.ndarray, np.ndarray]],
                    zero_shot: Mapping[str, Mapping[str, np.ndarray]], alpha: float = 0.05) -> pd.DataFrame:
    """Critique (i), per head mode: ``gaps[(heads, texts)]`` = (recomputed, model) cosines (N images, K texts) from
    ``faithfulness.score_gap`` (texts: :data:`ALL_PROMPTS`, every image against every class prompt, or
    :data:`OWN_TEXT`, each image against the text naming its object, K = 1); per image the mean |Δ cosine| and the share of its texts whose cosine changes sign,
    averaged over images with 95% CIs; the mean cosine of each network; and ``zero_shot[heads]`` the per-image top-1
    hits of the model and of the recomputed network (``faithfulness.recomputed_zero_shot``) with the paired
    difference (recomputed − model) over images."""
    rows = []
    for key, (recomputed, model) in gaps.items():
        heads, texts = key if isinstance(key, tuple) else (key, "")
        delta = np.abs(recomputed - model).mean(axis=1)
        flips = (np.sign(recomputed) != np.sign(model)).mean(axis=1)
        d, f = mean_ci(delta, alpha), mean_ci(flips, alpha)
        row = {"heads": heads, "texts": texts, "n_images": int(recomputed.shape[0]),
               "n_texts": int(recomputed.shape[1]),
               "cosine_model": float(model.mean()), "cosine_recomputed": float(recomputed.mean()),
               "abs_delta_cosine": d["mean"], "abs_delta_cosine_ci_low": d["ci_low"],
               "abs_delta_cosine_ci_high": d["ci_high"],
               "sign_flips": f["mean"], "sign_flips_ci_low": f["ci_low"], "sign_flips_ci_high": f["ci_high"]}
        if heads in zero_shot and texts != OWN_TEXT:
            hits = zero_shot[heads]
            t = _paired(hits["recomputed"], hits["model"], alpha)
            row.update({"top1_model": float(np.mean(hits["model"])), "top1_recomputed": float(np.mean(hits["recomputed"])),
                        "top1_diff": t["diff"], "top1_diff_ci_low": t["diff_ci_low"],
                        "top1_diff_ci_high": t["diff_ci_high"], "top1_p": t["p"], "n_zero_shot": len(hits["model"])})
        rows.append(row)
    return pd.DataFrame(rows)


def randomisation_table(correlations: Mapping[str, np.ndarray], levels: Sequence[int], n_blocks: int,
                        alpha: float = 0.05) -> pd.DataFrame:
    """Critique (iii): per method and number of randomised top blocks k, the mean Spearman correlation of the maps
    with the original maps (95% CI over images) and whether the map changed (:data:`RANDOMISATION_CHANGED_BELOW`)."""
    rows = []
    for method, rho in correlations.items():
        for j, k in enumerate(levels):
            m = mean_ci(rho[:, j], alpha)
            rows.append({"method": method, "blocks_randomised": int(k), "of_blocks": int(n_blocks), "n": m["n"],
                         "spearman": m["mean"], "spearman_ci_low": m["ci_low"], "spearman_ci_high": m["ci_high"],
                         "changed": bool(m["ci_high"] < RANDOMISATION_CHANGED_BELOW) if m["n"] else False})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# Figures and findings
# ---------------------------------------------------------------------------------------------------------------
def curves_figure(means: pd.DataFrame, task: str, target: str, measures: Sequence[str], x_label: str):
    """Fig. 8: mean deletion (left) and insertion (right) curves of every method for one task and target, one row
    per measure; x the fraction of the pixels (or words) changed."""
    import matplotlib  # lazy: see the imports

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = means[(means["task"] == task) & (means["target"] == target)]
    methods = list(dict.fromkeys(rows["method"]))
    colours = plt.cm.tab20(np.linspace(0, 1, 20))
    fig, axes = plt.subplots(len(measures), 2, figsize=(9, 2.8 * len(measures) + 0.8), squeeze=False)
    for i, measure in enumerate(measures):
        for j, mode in enumerate(("deletion", "insertion")):
            ax = axes[i, j]
            for method, curve in rows[(rows["measure"] == measure) & (rows["mode"] == mode)].groupby("method",
                                                                                                       sort=False):
                k = methods.index(method)
                style = {"lw": 2.4, "color": "black"} if method == "grad-eclip" else \
                    {"lw": 1.2, "color": colours[k % 20], "ls": ("-", "--", ":")[(k // 20) % 3]}
                ax.plot(curve["fraction"], curve["value"], label=method, **style)
            ax.set_title(f"{task} ({target}): {mode}, {MEASURE_LABELS.get(measure, measure)}", fontsize=9)
            ax.set_xlabel(x_label)
            ax.set_ylabel(MEASURE_LABELS.get(measure, measure))
            ax.set_ylim(-0.02, 1.02)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(5, max(1, len(labels))), frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.02 * ((len(labels) - 1) // 5), 1, 1))
    return fig


def _fmt(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.3f}"


def _ci(row, col) -> str:
    return f"{_fmt(row[col])} [{_fmt(row[f'{col}_ci_low'])}, {_fmt(row[f'{col}_ci_high'])}]"


def faithfulness_findings(image: pd.DataFrame, reference: str, alpha: float = 0.05) -> list[str]:
    """One sentence per (task, target, measure): the method with the highest mean IMD, the reference's IMD, and how
    many methods differ from the reference after Holm (better / worse)."""
    out = []
    for (task, target, measure), g in image.groupby(["task", "target", "measure"], sort=False):
        best = g.loc[g["imd"].idxmax()]
        ref = g[g["method"] == reference]
        if ref.empty:
            continue
        ref = ref.iloc[0]
        others = g[g["method"] != reference]
        better = others[(others["imd_p_holm"] < alpha) & (others["imd_vs_ref"] > 0)]["method"].tolist()
        worse = others[(others["imd_p_holm"] < alpha) & (others["imd_vs_ref"] < 0)]["method"].tolist()
        out.append(f"{task} ({target}), {MEASURE_LABELS.get(measure, measure)}, n = {int(ref['n'])} images: "
                   f"{reference} IMD {_ci(ref, 'imd')} (deletion {_fmt(ref['deletion'])}, insertion "
                   f"{_fmt(ref['insertion'])}); highest IMD: {best['method']} ({_fmt(best['imd'])}). Higher IMD than "
                   f"{reference} after Holm: {', '.join(better) or 'none'}; lower: {', '.join(worse) or 'none'}.")
    return out


def whose_score_answer(gap: pd.DataFrame, image: pd.DataFrame, randomisation: pd.DataFrame,
                       alpha: float = 0.05) -> str:
    """One paragraph: whose score the single-head maps explain (the gap to the model's own score, with the
    multi-head recomputation as the control), whether the multi-head maps are more faithful to the unmodified model,
    and whether Grad-ECLIP's maps depend on the model's parameters."""
    def gap_row(heads, texts):
        rows = gap[(gap["heads"] == heads) & (gap.get("texts", pd.Series([""] * len(gap))) == texts)]
        return rows.iloc[0] if len(rows) else None

    single = gap_row("single", OWN_TEXT) if "texts" in gap else gap_row("single", "")
    multi = gap_row("multi", OWN_TEXT) if "texts" in gap else gap_row("multi", "")
    prompts = gap_row("single", ALL_PROMPTS)
    parts = []
    if single is not None:
        differs = single["abs_delta_cosine_ci_low"] > 0
        parts.append(
            f"The single-head maps explain the score of the recomputed network, {'not' if differs else 'and it equals'} "
            f"the model's: for an image and the text naming its object it scores {_fmt(single['cosine_recomputed'])} "
            f"where the model scores {_fmt(single['cosine_model'])} (mean |Δ cosine| {_ci(single, 'abs_delta_cosine')}, "
            f"sign flips {_ci(single, 'sign_flips')})")
        if prompts is not None and np.isfinite(prompts.get("top1_recomputed", np.nan)):
            parts[-1] += (f", and as a zero-shot classifier it reaches top-1 {_fmt(prompts['top1_recomputed'])} "
                          f"against the model's {_fmt(prompts['top1_model'])}")
        parts[-1] += "."
    if multi is not None:
        same = multi["abs_delta_cosine"] < 1e-4
        parts.append(f"With the model's own heads the recomputed network {'is' if same else 'is not'} the model "
                     f"(mean |Δ cosine| {_fmt(multi['abs_delta_cosine'])}), so multi-head maps explain "
                     f"{'the model' if same else 'another network'}'s score.")
    pairs = image[(image["method"] == "grad-eclip-multi") & image["imd_p_holm"].notna()] if len(image) else image
    if len(pairs):
        better = int(((pairs["imd_p_holm"] < alpha) & (pairs["imd_vs_ref"] > 0)).sum())
        worse = int(((pairs["imd_p_holm"] < alpha) & (pairs["imd_vs_ref"] < 0)).sum())
        parts.append(f"Scored on the unmodified model, multi-head maps have a higher IMD than single-head maps in "
                     f"{better} of {len(pairs)} task measures and a lower one in {worse} (Holm, α = {alpha}).")
    if not randomisation.empty:
        top = randomisation[randomisation["blocks_randomised"] == randomisation["blocks_randomised"].max()]
        grad = top[top["method"].str.startswith("grad-eclip")]
        if len(grad):
            parts.append("Grad-ECLIP's maps " + ("change" if grad["changed"].all() else "do not all change") +
                         " when the model's image blocks are randomised (" + ", ".join(
                             f"{r.method} ρ = {_fmt(r.spearman)}" for r in grad.itertuples()) +
                         "): they depend on the model's parameters.")
    return " ".join(parts)


def whose_score_findings(gap: pd.DataFrame, image: pd.DataFrame, randomisation: pd.DataFrame,
                         by_colour: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """The answer of "Whose score does the map explain?" from the numbers (critique (i)-(iv)): a first paragraph
    that answers, then one per point."""
    out = [whose_score_answer(gap, image, randomisation, alpha)]
    for _, r in gap.iterrows():
        text = (f"(i) heads=\"{r['heads']}\", {r['texts']}: the network Grad-ECLIP explains scores a mean cosine of "
                f"{_fmt(r['cosine_recomputed'])} against the model's {_fmt(r['cosine_model'])} "
                f"({int(r['n_images'])} images × {int(r['n_texts'])} texts); mean |Δ cosine| per image "
                f"{_ci(r, 'abs_delta_cosine')}, sign flips {_ci(r, 'sign_flips')}.")
        if "top1_model" in r and np.isfinite(r.get("top1_model", np.nan)):
            text += (f" Zero-shot top-1: recomputed {_fmt(r['top1_recomputed'])}, model {_fmt(r['top1_model'])} "
                     f"(difference {_ci(r, 'top1_diff')}, p = {_fmt(r['top1_p'])}, n = {int(r['n_zero_shot'])}).")
        out.append(text)
    heads = image[image["method"].isin(["grad-eclip", "grad-eclip-multi"])]
    for (task, target, measure), g in heads.groupby(["task", "target", "measure"], sort=False):
        if len(g) < 2 or measure not in ("top1", "ir1", "tr1"):
            continue
        single, multi = (g[g["method"] == m].iloc[0] for m in ("grad-eclip", "grad-eclip-multi"))
        out.append(f"(ii) {task} ({target}), {MEASURE_LABELS.get(measure, measure)}, scored on the unmodified "
                   f"model: IMD single-head {_ci(single, 'imd')}, multi-head {_ci(multi, 'imd')}; multi − single "
                   f"{_ci(multi, 'imd_vs_ref')} (p Holm {_fmt(multi['imd_p_holm'])}).")
    if not randomisation.empty:
        top = randomisation[randomisation["blocks_randomised"] == randomisation["blocks_randomised"].max()]
        changed = top[top["changed"]]["method"].tolist()
        kept = top[~top["changed"]]["method"].tolist()
        out.append(f"(iii) With all {int(top['of_blocks'].iloc[0])} image blocks randomised (top down), the maps "
                   f"changed (upper 95% bound of the mean Spearman correlation with the original map below "
                   f"{RANDOMISATION_CHANGED_BELOW}) for: {', '.join(changed) or 'none'}; not for: "
                   f"{', '.join(kept) or 'none'}.")
    if not by_colour.empty:
        parts = [f"{r['method']} on {r['color']}: {_fmt(r['pointing'])}" for _, r in by_colour.iterrows()]
        out.append("(iv) Pointing game by named colour: " + "; ".join(parts) + ".")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Running the study: one task per job (the workflow's rule faithfulness_task), the tables from all of them
# ---------------------------------------------------------------------------------------------------------------
TASKS = ("classification", "retrieval", "text", "localisation", "layers", "critique")


def settings_from_config(options: Mapping):
    """``faithfulness.PerturbationSettings`` from the workflow's ``faithfulness`` config block."""
    from gradeclip.faithfulness import PerturbationSettings  # lazy (torch): see the imports

    return PerturbationSettings(steps=int(options["steps"]), step_fraction=float(options["step_fraction"]),
                                score_every=int(options["score_every"]),
                                deletion_fill=options.get("deletion_fill"), insertion_fill=options.get("insertion_fill"),
                                seed=int(options["seed"]), batch_size=int(options.get("batch_size", 128)),
                                text_steps=int(options["text_steps"]))


def toy_data(task: str, n_images: int, image_size: int):
    """The toy world's data of a task (``gradeclip.faithfulness``): labelled single-object scenes, captioned scenes,
    or scenes with a named object and its exact mask."""
    from gradeclip import faithfulness as fa  # lazy (torch): see the imports

    if task == "classification":
        return fa.toy_classification(n_images, image_size)
    if task in ("retrieval", "text"):
        return fa.toy_retrieval(n_images, image_size)
    return fa.toy_localisation(n_images, image_size)


def paper_data(task: str, data: Mapping, options: Mapping):
    """The paper's data of a task (``gradeclip.faithfulness``): ImageNet val images with their labels, COCO Karpathy
    val images with their first caption, or those with a named COCO category and its instances' mask; ``data`` the
    paths (the workflow's), ``options`` the faithfulness config (n_images, seed_data, imagenet_templates/classes)."""
    from gradeclip import faithfulness as fa  # lazy (torch): see the imports

    n, seed = int(options["n_images"]), int(options.get("seed_data", 0))
    if task == "classification":
        return fa.imagenet_classification(data["imagenet_root"], data["imagenet_labels"], n, seed,
                                          templates=options.get("imagenet_templates", "openai"),
                                          classes=options.get("imagenet_classes", "all"))
    if task in ("retrieval", "text"):
        return fa.coco_retrieval(data["coco_root"], data["karpathy_json"], n, seed)
    return fa.coco_localisation(data["coco_root"], data["instances_json"], data["karpathy_json"], n, seed)


def _all_methods(options: Mapping) -> list[str]:
    return list(dict.fromkeys([*options["methods"], *(options.get("baselines") or [])]))


def run_task(task: str, clip, data_for, options: Mapping) -> dict[str, object]:
    """Run one task and return what it writes: ``<name>`` -> DataFrame (per-image records, mean curves, tables) or
    dict (unperturbed scores). ``data_for(kind)``: the data of "classification", "retrieval" or "localisation"."""
    from gradeclip import faithfulness as fa  # lazy (torch): see the imports

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    settings = settings_from_config(options)
    methods = fa.image_methods(_all_methods(options), clip)
    if task == "classification":
        data = data_for("classification")
        results, base = fa.classification_faithfulness(clip, data, methods, settings, options.get("targets", ["ground_truth"]))
        return {"auc": auc_records(results, data.ids), "curves": curve_means(results), "base": base}
    if task == "retrieval":
        data = data_for("retrieval")
        results, base = fa.retrieval_faithfulness(clip, data, methods, settings)
        return {"auc": auc_records(results, data.ids), "curves": curve_means(results), "base": base}
    if task == "text":
        data = data_for("retrieval")
        text_methods = {name: fa.text_method(name) for name in options["text_methods"]}
        results, base = fa.text_faithfulness(clip, data, text_methods, settings.text_steps)
        return {"auc": auc_records(results, data.ids), "curves": curve_means(results), "base": base}
    if task == "localisation":
        data = data_for("localisation")
        scores = fa.localisation_by_method(clip, data, methods)
        return {"per_image": localisation_records(scores, data.ids, data.groups)}
    if task == "layers":
        counts = [int(c) for c in options["layers"]]
        results = fa.layer_faithfulness(clip, data_for("classification"), data_for("retrieval"), counts, settings)
        ids = {"classification": data_for("classification").ids, "retrieval": data_for("retrieval").ids}
        records = pd.concat([auc_records([r], ids[r.task]) for r in results], ignore_index=True)
        return {"auc": records, "curves": curve_means(results)}
    # critique: whose score the map explains, and the randomisation test
    labelled, named = data_for("classification"), data_for("localisation")
    gaps, zero_shot = {}, {}
    for heads in ("single", "multi"):
        gaps[(heads, ALL_PROMPTS)] = fa.score_gap(clip, named.images, labelled.class_texts, heads)
        recomputed, model = fa.score_gap(clip, named.images, named.texts, heads)
        gaps[(heads, OWN_TEXT)] = (np.diag(recomputed)[:, None], np.diag(model)[:, None])
        zero_shot[heads] = fa.recomputed_zero_shot(clip, labelled, heads)
    n = int(options["randomisation_images"])
    blocks = len(fa.image_blocks(clip))
    levels = sorted({min(int(k), blocks) for k in options["randomisation_levels"]})
    correlations = {name: fa.randomisation_test(explain, clip, named.images[:n], named.texts[:n], levels,
                                                int(options["seed"]))
                    for name, explain in methods.items()}
    per_image = pd.concat([pd.DataFrame({"method": name, "image_id": named.ids[:n], "blocks_randomised": k,
                                         "spearman": rho[:, j]})
                           for name, rho in correlations.items() for j, k in enumerate(levels)], ignore_index=True)
    return {"score_gap": score_gap_table(gaps, zero_shot), "randomisation": randomisation_table(correlations, levels, blocks),
            "randomisation_per_image": per_image}


def write_task(out_dir, written: Mapping[str, object]) -> None:
    """Each DataFrame as ``<name>.csv``, each dict as ``<name>.json``, atomically; a ``done.json`` last (what the
    tables rule checks)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, value in written.items():
        if isinstance(value, pd.DataFrame):
            atomic_write_text(out / f"{name}.csv", value.to_csv(index=False))
        else:
            atomic_write_text(out / f"{name}.json", json.dumps(value, indent=1, sort_keys=True))
    atomic_write_text(out / "done.json", json.dumps(sorted(written)))


def read_task(task_dir) -> dict[str, object]:
    """What :func:`write_task` wrote (refuses a folder without ``done.json``: an interrupted job)."""
    folder = Path(task_dir)
    if not (folder / "done.json").is_file():
        raise FileNotFoundError(f"{folder}: no done.json (the task did not finish); rerun its job")
    out: dict[str, object] = {}
    for name in json.loads((folder / "done.json").read_text()):
        csv, js = folder / f"{name}.csv", folder / f"{name}.json"
        out[name] = pd.read_csv(csv, dtype={"image_id": str}) if csv.is_file() else json.loads(js.read_text())
    return out


LOCALISATION_GROUPS = ("color", "shape", "n_objects", "category")


def build_tables(tasks: Mapping[str, Mapping[str, object]], reference: str) -> tuple[dict, dict]:
    """The tables (CSV name -> DataFrame) and figures (key -> matplotlib Figure) of the study from each task's
    output (:func:`read_task`); a task missing from ``tasks`` leaves its tables out."""
    tables, figures = {}, {}
    image = [tasks[t] for t in ("classification", "retrieval") if t in tasks]
    if image:
        table = auc_table(pd.concat([t["auc"] for t in image], ignore_index=True), reference)
        unperturbed = {(task, m): tasks[task]["base"].get(m) for task in ("classification", "retrieval") if task in tasks
                       for m in ("top1", "top5", "ir1", "ir5", "tr1", "tr5")}
        table.insert(4, "unperturbed", [unperturbed.get((r.task, r.measure), math.nan) for r in table.itertuples()])
        tables["faithfulness_image"] = table
        for task in ("classification", "retrieval"):
            if task in tasks:
                curves = tasks[task]["curves"]
                measures = ["top1"] if task == "classification" else ["ir1", "tr1"]
                for target in curves["target"].unique():
                    figures[curve_figure_key(task, target)] = curves_figure(curves, task, target, measures,
                                                                            "fraction of pixels changed")
    if "text" in tasks:
        tables["faithfulness_text"] = auc_table(tasks["text"]["auc"], reference)
        figures["fig8_text"] = curves_figure(tasks["text"]["curves"], "text", "caption", ["ir1", "tr1"],
                                             "fraction of words changed")
    if "localisation" in tasks:
        per_image = tasks["localisation"]["per_image"]
        groups = [g for g in LOCALISATION_GROUPS if g in per_image]
        table = localisation_table(per_image, reference, groups)
        tables["localization"] = table
        if "color" in groups:
            tables["localization_by_colour"] = localisation_rate_table(table, ["grad-eclip", "grad-eclip-multi"],
                                                                       "color")
    if "layers" in tasks:
        records = tasks["layers"]["auc"]
        first = sorted(records["method"].unique(), key=lambda m: int(m.split("=")[1]))[0]
        tables["layers"] = auc_table(records, first)
    if "critique" in tasks:
        tables["score_gap"] = tasks["critique"]["score_gap"]
        tables["randomisation"] = tasks["critique"]["randomisation"]
    return tables, figures




def report_findings(tables: Mapping[str, pd.DataFrame], reference: str) -> dict[str, list[str]]:
    """The paragraphs at the top of each section, from the tables."""
    out: dict[str, list[str]] = {}
    if "faithfulness_image" in tables:
        out["faithfulness"] = faithfulness_findings(tables["faithfulness_image"], reference)
    if "faithfulness_text" in tables:
        out.setdefault("faithfulness", []).extend(faithfulness_findings(tables["faithfulness_text"], reference))
    if "localization" in tables:
        loc = tables["localization"]
        rows = loc[loc["group_by"] == "all"].sort_values("pointing", ascending=False)
        out["localisation"] = ["Pointing game over all images (n = {}): ".format(int(rows["n"].max())) + "; ".join(
            f"{r.method} {_fmt(r.pointing)}" for r in rows.itertuples()) +
            f". A constant map's expected pointing: {_fmt(rows['chance_pointing'].iloc[0])}; energy share "
            f"{_fmt(rows['chance_energy_share'].iloc[0])}."]
    if "layers" in tables:
        lay = tables["layers"]
        out["layers"] = [f"{r.task} ({r.measure}): " + ", ".join(
            f"{m.method} IMD {_fmt(m.imd)}" for m in g.itertuples()) for r, g in
            ((g.iloc[0], g) for _, g in lay.groupby(["task", "measure"], sort=False))]
    if "score_gap" in tables:
        image = tables.get("faithfulness_image", pd.DataFrame(columns=["method", "task", "target", "measure"]))
        out["whose-score"] = whose_score_findings(tables["score_gap"], image,
                                                  tables.get("randomisation", pd.DataFrame()),
                                                  tables.get("localization_by_colour", pd.DataFrame()))
    return out


def display_tables(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The report's views (the CSVs keep every column and row): AUC tables without the per-metric tests other than
    IMD's, the localisation table over all images only."""
    out = {}
    for key, table in tables.items():
        if key in ("faithfulness_image", "faithfulness_text", "layers"):
            out[key] = display_auc_table(table)
        elif key == "localization":
            keep = ["method", "n", "pointing", "pointing_ci_low", "pointing_ci_high", "energy_share",
                    "energy_share_ci_low", "energy_share_ci_high", "chance_pointing", "chance_energy_share",
                    "pointing_vs_ref", "pointing_vs_ref_ci_low", "pointing_vs_ref_ci_high", "pointing_p_holm",
                    "energy_share_vs_ref", "energy_share_vs_ref_ci_low", "energy_share_vs_ref_ci_high",
                    "energy_share_p_holm", "empty_maps"]
            out[key] = table[table["group_by"] == "all"][keep]
        else:
            out[key] = table
    return out
