"""What the study's steps write, and each result's caption: the one place that names them.

Every table and figure of the report has a key (``table_ix``, ``fig14``). A step writes its table ``<key>`` as
``<folder>/tables/<key>.csv`` and its figure ``<key>`` as ``<folder>/figures/<key>.png`` and ``.svg``
(:func:`analysis.report.save_artifacts`); the workflow declares exactly those files as the step's outputs, from the
keys below, and the step checks that what it wrote is what was declared.

Captions: one reStructuredText file per key, ``analysis/captions/<key>.rst``, read by the HTML report
(:func:`caption`) and given to Snakemake's ``report(caption=...)`` (:func:`caption_path`), so that both show one text.
A caption file is plain text that is also valid reStructuredText (a backslash escapes a character that RST would
read as markup, e.g. ``\\|`` or a leading ``\\(i)``) and holds no Jinja2 markup (Snakemake renders captions with
Jinja2 first); ``tests/test_analysis_report.py`` renders each one as Snakemake does and compares the text.

This module imports nothing heavy: the workflow reads it when it parses the Snakefile.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

CAPTION_DIR = Path(__file__).parent / "captions"
#: The formats each figure is written in (the HTML report embeds the PNG).
FIGURE_FORMATS = ("png", "svg")


@dataclass(frozen=True)
class Artifacts:
    """The keys of the tables and figures one step writes, in the order it writes them."""

    tables: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return self.tables + self.figures


# The §V summaries (analysis.pipeline: AttributeSummary.tables()/figures(), AddibilitySummary.tables()/figures(),
# concreteness_tables()/concreteness_figures()) and the toy-world sanity check (workflow rule toy_sanity).
ATTRIBUTES = Artifacts(
    tables=("table_ix", "table_ix_extra", "table_ix_chance", "table_ix_chance_tests", "table_ix_contrasts",
            "kl_sensitivity", "attribute_category_stats", "location_ablation", "location_ablation_tests",
            "pointing_game", "attribute_by_colour", "attribute_coverage"),
    figures=("fig_attributes",))
ADDIBILITY = Artifacts(
    tables=("table_viii", "addibility_tests", "addibility_tests_by_phrase_type", "fig14_score_tests",
            "fig14_regressions", "fig14_r2_difference", "fig14_map_similarity", "addibility_coverage"),
    figures=("fig14", "fig14_differences"))
CONCRETENESS = Artifacts(
    tables=("concreteness_regressions", "concreteness_controlled", "concreteness_words", "concreteness_top_bottom",
            "concreteness_missing"),
    figures=("fig17", "fig18"))
TOY_SANITY = Artifacts(tables=("toy_sanity", "toy_sanity_by_colour"))
#: The tables the report rule itself writes beside the report.
REPORT = Artifacts(tables=("design_summary", "paper_comparison", "power"))


def galleries(n_images: int) -> Artifacts:
    """The heat-map galleries (``analysis.pipeline.study_galleries``): Figs. 13, 15 and 16, none when the config
    asks for 0 images per gallery. (A gallery whose design table is empty is left out too, but then the §V-A or §V-B
    summary of the same run fails first: there are no maps to summarise.)"""
    return Artifacts(figures=("fig13", "fig15", "fig16") if n_images > 0 else ())


def curve_figure_key(task: str, target: str) -> str:
    """The key of a faithfulness curve figure (Fig. 8): one per classification target, one for retrieval."""
    if task == "classification":
        return "fig8_classification" if target == "ground_truth" else f"fig8_classification_{target}"
    return f"fig8_{task}"


def faithfulness(targets, toy: bool) -> Artifacts:
    """The faithfulness study's tables and figures (``analysis.faithfulness.build_tables`` of all six tasks):
    the classification curves per target of the config, and the localisation by colour only on the toy world (COCO's
    named objects have a category, not a colour)."""
    return Artifacts(
        tables=("faithfulness_image", "faithfulness_text", "localization",
                *(("localization_by_colour",) if toy else ()), "layers", "score_gap", "randomisation"),
        figures=(*(curve_figure_key("classification", t) for t in targets), curve_figure_key("retrieval", "caption"),
                 "fig8_text"))


# ----------------------------------------------------------------------------------------- files
def table_file(folder: str | os.PathLike, key: str) -> Path:
    return Path(folder) / "tables" / f"{key}.csv"


def figure_files(folder: str | os.PathLike, key: str) -> list[Path]:
    return [Path(folder) / "figures" / f"{key}.{fmt}" for fmt in FIGURE_FORMATS]


def files(folder: str | os.PathLike, artifacts: Artifacts) -> list[Path]:
    """Every file a step with these artifacts writes under ``folder``: tables, then figures (PNG, SVG)."""
    return [table_file(folder, k) for k in artifacts.tables] + [f for k in artifacts.figures
                                                                  for f in figure_files(folder, k)]


# -------------------------------------------------------------------------------------- captions
def caption_path(key: str) -> Path:
    """The caption file of ``key``; a key without one raises ``KeyError`` (the workflow asks only for real ones)."""
    path = CAPTION_DIR / f"{key}.rst"
    if not path.is_file():
        raise KeyError(f"no caption for {key!r}: add {path}")
    return path


def caption(key: str) -> str:
    """The caption of ``key`` as plain text (lines joined, RST's backslash escapes undone); the key itself when it
    has no caption file."""
    path = CAPTION_DIR / f"{key}.rst"
    if not path.is_file():
        return key
    return re.sub(r"\\(.)", r"\1", " ".join(path.read_text(encoding="utf-8").split()))


def caption_keys() -> list[str]:
    return sorted(p.stem for p in CAPTION_DIR.glob("*.rst"))
