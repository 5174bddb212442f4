"""The §V study as steps over files: what the workflow's rules call.

Each step takes file paths (or DataFrames), returns tables and, where asked, writes them. Explanation outputs are
read with ``gradeclip.batch`` (image-map shards ``.npz``, word-importance shards ``.csv``); nothing here touches a
model.

* §V-B — :func:`attribute_shard_metrics` (one image-map shard → one metrics table; run per shard), then
  :func:`attribute_summary` (all metric tables → Table IX, Appendix-B location ablation, pointing game …).
* §V-A — :func:`addibility_summary` (image-map shards + the addibility design → Table VIII, t-tests, Fig. 14
  points, regressions). Streams shard by shard.
* §V-C — :func:`concreteness_summary` (word-importance CSV shards → :class:`~analysis.concreteness.ConcretenessStudy`).
  Each shard is reduced to per-word sums (``analysis.concreteness.word_importance_partial``) and the partials are
  added (``combine_word_partials``), so memory does not grow with the number of captions.

Maps: an image map is put on the image's pixels with ``gradeclip.geometry.grid_to_pixels`` (raw values, bilinear,
0 outside the model's view) unless a step says otherwise.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from gradeclip.batch import read_image_maps
from gradeclip.io import load_image, read_instance_mask
from gradeclip.geometry import grid_to_pixels

from . import addibility as AD
from . import attributes as AT
from . import concreteness as CO
from .design import LOCATION_ABLATION, StudyDesign
from .stats import proportion_ci
from .tables import read_table, write_table

# Lazy imports below: .figures and .gallery (matplotlib, slow to import) only where a figure is drawn.

MapKey = tuple[str, str]
TableLike = pd.DataFrame | str | os.PathLike


def _table(t: TableLike) -> pd.DataFrame:
    return t.copy() if isinstance(t, pd.DataFrame) else read_table(t)


# ------------------------------------------------------------------------------------------- maps
def iter_stored_maps(map_shards: str | os.PathLike | Iterable[str | os.PathLike]):
    """The ``gradeclip.batch.StoredMap`` rows of one shard or several, shard by shard."""
    shards = [map_shards] if isinstance(map_shards, (str, os.PathLike)) else list(map_shards)
    for path in shards:
        yield from read_image_maps(path)


def pixel_map(stored) -> np.ndarray:
    """A stored grid map on its image's pixels (``grid_to_pixels``; float64, clipped at 0)."""
    return np.clip(np.asarray(grid_to_pixels(stored.grid, stored.registration), dtype=np.float64), 0.0, None)


def _as_map(stored, resolution: str) -> np.ndarray:
    if resolution == "pixels":
        return pixel_map(stored)
    if resolution == "grid":
        return np.asarray(stored.grid, dtype=np.float64)
    raise ValueError(f"resolution must be 'pixels' or 'grid', got {resolution!r}")


def maps_by_image(map_shards, resolution: str = "pixels", images: Iterable[str] | None = None
                  ) -> Iterator[tuple[str, dict[str, np.ndarray], dict[str, tuple[float, float]]]]:
    """Per image (in shard order): ``(image_id, {text: map}, {text: (score, model_score)})``.

    Rows of one image are adjacent in a shard (``explain_image_jobs`` writes them so); only images in
    ``images`` are converted when it is given. An image split over two places raises (its maps would be seen
    twice or incompletely).
    """
    wanted = None if images is None else {str(i) for i in images}
    seen: set[str] = set()
    current, maps, scores = None, {}, {}
    for m in iter_stored_maps(map_shards):
        if m.image_id != current:
            if current is not None and (wanted is None or current in wanted):
                yield current, maps, scores
            if m.image_id in seen:
                raise ValueError(f"maps of image {m.image_id!r} are not contiguous in the shards")
            seen.add(m.image_id)
            current, maps, scores = m.image_id, {}, {}
        if wanted is not None and m.image_id not in wanted:
            continue
        maps[m.text] = _as_map(m, resolution)
        scores[m.text] = (m.score, m.model_score)
    if current is not None and (wanted is None or current in wanted):
        yield current, maps, scores


def collect_maps(map_shards, keys: Iterable[MapKey] | None = None, resolution: str = "pixels"
                 ) -> tuple[dict[MapKey, np.ndarray], pd.DataFrame]:
    """``({(image_id, text): map}, scores)`` for the wanted keys (all when None) — for galleries.

    scores: columns ``image_id, text, score, model_score``. Missing keys raise ``KeyError``.
    """
    want = None if keys is None else {(str(i), str(t)) for i, t in keys}
    images = None if want is None else {i for i, _ in want}
    maps, rows = {}, []
    for image_id, ms, sc in maps_by_image(map_shards, resolution, images):
        for text, m in ms.items():
            if want is None or (image_id, text) in want:
                maps[(image_id, text)] = m
                rows.append({"image_id": image_id, "text": text, "score": sc[text][0], "model_score": sc[text][1]})
    if want is not None:
        missing = sorted(want - set(maps))
        if missing:
            raise KeyError(f"no map in the shards for {missing[:5]}")
    return maps, pd.DataFrame(rows, columns=["image_id", "text", "score", "model_score"])


# ------------------------------------------------------------------------------------------ masks
def _read_instance_mask(path) -> np.ndarray:
    return np.asarray(read_instance_mask(path))


def mask_reader(masks_lookup) -> Callable[[str], np.ndarray]:
    """A function ``image_id → instance-id mask`` (H×W ints; 0 background, k + 1 = object k) from:

    * the path of the design's ``images.tsv`` (columns ``image_id, mask_path``) or such a DataFrame,
    * a mapping ``image_id → mask file path or array``,
    * a callable ``image_id → array`` (returned as is).
    """
    if callable(masks_lookup) and not isinstance(masks_lookup, (Mapping, pd.DataFrame)):
        return masks_lookup
    if isinstance(masks_lookup, (str, os.PathLike)):
        masks_lookup = read_table(masks_lookup)
    if isinstance(masks_lookup, pd.DataFrame):
        if not {"image_id", "mask_path"} <= set(masks_lookup.columns):
            raise ValueError("a mask table needs columns image_id and mask_path")
        masks_lookup = {str(i): p for i, p in zip(masks_lookup["image_id"], masks_lookup["mask_path"]) if str(p)}
    lookup = {str(k): v for k, v in masks_lookup.items()}

    def read(image_id: str) -> np.ndarray:
        try:
            v = lookup[str(image_id)]
        except KeyError:
            raise KeyError(f"no instance mask for image {image_id!r}") from None
        return np.asarray(v) if isinstance(v, np.ndarray) else _read_instance_mask(v)

    return read


def object_masks(instance_mask: np.ndarray) -> dict[int, np.ndarray]:
    """``{object_id: bool mask}`` from an instance-id mask (object k has id k + 1; empty objects absent)."""
    return {k - 1: m for k, m in AT.instance_masks(instance_mask).items()}


# ------------------------------------------------------------------------------------------ §V-B
def attribute_shard_metrics(map_shard_npz: str | os.PathLike, attributes_table: TableLike, masks_lookup, *,
                            ot_grid: int = AT.DEFAULT_OT_GRID, kl_eps: float = AT.DEFAULT_KL_EPS,
                            pointing_tolerance: float = 0.0, baselines: bool = True,
                            out: str | os.PathLike | None = None) -> pd.DataFrame:
    """Metrics of every attribute text of the shard's images: its map (on the image's pixels) against the
    mask of the object it names (:func:`analysis.attributes.attribute_metrics_table`).

    attributes_table: the design's ``attributes`` table (or its TSV). Only rows of images in this shard are
    measured; a row of such an image without a map raises ``KeyError`` (nothing is dropped silently).
    masks_lookup: see :func:`mask_reader`. A named object with no mask pixels (fully hidden; possible with SAM
    masks) gets NaN metrics and ``status`` = ``"no mask pixels"``; other rows have ``status`` = ``"ok"``.
    baselines: also score each text's chance levels (uniform map, wrong-object map; ``analysis.attributes``).

    Returns the design columns plus ``map``, ``target``, the metrics, ``map_empty``, ``n_maps``, ``score``,
    ``model_score``, ``status``; written to ``out`` (CSV/TSV/Parquet by suffix) when given.
    """
    design = _table(attributes_table)
    design["image_id"] = design["image_id"].astype(str)
    read_mask = mask_reader(masks_lookup)
    parts = []
    ids_in_design = set(design["image_id"])
    for image_id, maps, scores in maps_by_image(map_shard_npz, "pixels", ids_in_design):
        rows = design[design["image_id"] == image_id]
        if rows.empty:
            continue
        objects = object_masks(read_mask(image_id))
        has_mask = rows["object_id"].map(lambda k: all(int(i) in objects for i in AT._object_ids(k)))
        keyed = {(image_id, t): m for t, m in maps.items()}
        image_parts = []
        if has_mask.any():
            measured = AT.attribute_metrics_table(rows[has_mask], keyed, {image_id: objects}, ot_grid=ot_grid,
                                                  kl_eps=kl_eps, pointing_tolerance=pointing_tolerance,
                                                  baselines=baselines)
            measured["status"] = "ok"
            image_parts.append(measured)
        if (~has_mask).any():
            hidden = rows[~has_mask].copy()
            hidden["map"] = "explanation"
            hidden["target"] = hidden["object_id"].astype(str)
            hidden["status"] = "no mask pixels"
            image_parts.append(hidden)
        for part in image_parts:
            part["score"] = [scores[t][0] if t in scores else np.nan for t in part["text"]]
            part["model_score"] = [scores[t][1] if t in scores else np.nan for t in part["text"]]
        parts += image_parts
    columns = list(design.columns) + ["map", "target", *AT.METRICS, "map_empty", "n_maps", "score", "model_score",
                                      "status"]
    result = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    result = result.reindex(columns=columns + [c for c in result.columns if c not in columns])
    if out is not None:
        write_table(result, out)
    return result


def category_stats(metrics: pd.DataFrame, by: str = "category", metrics_shown: Sequence[str] = AT.METRICS,
                   alpha: float = 0.05) -> pd.DataFrame:
    """Long table: per group and metric the mean, SD, n and the ``1 - alpha`` t-interval of the mean over the texts
    (explanation maps, empty maps left out)."""
    rows = []
    metrics = AT.explanation_rows(metrics)
    metrics = metrics[~metrics["map_empty"].astype(bool)] if "map_empty" in metrics else metrics
    for key, g in metrics.groupby(by, sort=False):
        for m in metrics_shown:
            x = pd.to_numeric(g[m], errors="coerce").dropna().to_numpy(dtype=float)
            n = len(x)
            mean = float(x.mean()) if n else math.nan
            sd = float(x.std(ddof=1)) if n > 1 else math.nan
            half = float(sps.t.ppf(1 - alpha / 2, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
            rows.append({by: key, "metric": m, "label": AT.METRIC_LABELS.get(m, m),
                         "higher_is_better": AT.HIGHER_IS_BETTER.get(m), "mean": mean, "sd": sd, "n": n,
                         "ci_low": mean - half, "ci_high": mean + half})
    out = pd.DataFrame(rows)
    order = {"category": AT.CATEGORY_ORDER, "variant": AT.VARIANT_ORDER}.get(by)
    if order and len(out):
        rank = {k: i for i, k in enumerate(order)}
        out = out.assign(_r=out[by].map(lambda k: rank.get(k, len(rank)))).sort_values(
            ["_r", by], kind="mergesort").drop(columns="_r").reset_index(drop=True)
    return out


@dataclass
class AttributeSummary:
    """§V-B results (see :func:`attribute_summary`)."""

    metrics: pd.DataFrame  # all per-text rows (status ok), every map kind
    table_ix: pd.DataFrame  # Table IX: paper metrics × category, with n and empty-map counts
    table_ix_extra: pd.DataFrame  # pointing game, mass in mask, energy share × category
    chance: pd.DataFrame  # Table IX beside its chance levels (uniform, wrong object), one complete-case set
    chance_tests: pd.DataFrame  # explanation vs each chance level, per category, over images
    contrasts: pd.DataFrame  # the paper's ranking of categories: mixed model, adjacent pairs, Holm per metric
    kl_sensitivity: pd.DataFrame  # KLD per category at eps 1e-3 / 1e-6 / 1e-9, and JSD
    category_stats: pd.DataFrame  # long: mean, SD, CI per category and metric
    location_ablation: pd.DataFrame  # Appendix B: metric × (shape, location+shape, location)
    location_tests: pd.DataFrame  # the variants vs shape over images; TOST where a margin is given
    pointing_game: pd.DataFrame  # hit rate with Wilson CI per category, uniform's expected rate
    by_colour: pd.DataFrame  # colour texts per colour word: pointing, energy share, cosine
    coverage: pd.DataFrame  # per category: rows designed, measured, missing, skipped, empty maps

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"table_ix": self.table_ix, "table_ix_extra": self.table_ix_extra, "table_ix_chance": self.chance,
                "table_ix_chance_tests": self.chance_tests, "table_ix_contrasts": self.contrasts,
                "kl_sensitivity": self.kl_sensitivity, "attribute_category_stats": self.category_stats,
                "location_ablation": self.location_ablation, "location_ablation_tests": self.location_tests,
                "pointing_game": self.pointing_game, "attribute_by_colour": self.by_colour,
                "attribute_coverage": self.coverage}

    def figures(self) -> dict:
        from .figures import fig_attribute_metrics

        return {"fig_attributes": fig_attribute_metrics(self.category_stats, self.location_ablation_long(),
                                                        chance=self.chance_levels())}

    def chance_levels(self) -> pd.DataFrame:
        """Long: category, metric, map (uniform / wrong object), mean over the complete cases."""
        cc = AT.complete_cases(self.metrics[self.metrics["category"].isin(AT.CATEGORY_ORDER)])
        cc = cc[cc["map"] != "explanation"]
        return cc.melt(id_vars=["category", "map"], value_vars=list(AT.PAPER_METRICS), var_name="metric") \
            .groupby(["category", "map", "metric"], sort=False)["value"].mean().reset_index()

    def location_ablation_long(self) -> pd.DataFrame:
        ab = AT.explanation_rows(self.metrics)
        ab = ab[ab["variant"].astype(str).isin(AT.VARIANT_ORDER)
                & ab["category"].isin(["location", LOCATION_ABLATION])]
        return category_stats(ab, by="variant", metrics_shown=AT.PAPER_METRICS) if len(ab) else pd.DataFrame()


def colour_breakdown(metrics: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The colour category per colour word (the toy CLIP's single-head maps miss some colour families): texts,
    pointing game with its Wilson interval, mean energy share and cosine (explanation maps, empty maps counted)."""
    rows = AT.explanation_rows(metrics)
    rows = rows[rows["category"] == "color"]
    out = []
    for word, g in rows.groupby("text", sort=True):
        kept = g[~g["map_empty"].astype(bool)]
        row = {"colour": word, "n_texts": len(kept), "empty_maps": int(g["map_empty"].sum())}
        if len(kept):
            pg = proportion_ci_row(kept["pointing"], alpha)
            row.update(pointing=pg["rate"], pointing_ci_low=pg["ci_low"], pointing_ci_high=pg["ci_high"],
                       energy_share=float(kept["energy_share"].mean()), cosine=float(kept["cosine"].mean()))
        out.append(row)
    return pd.DataFrame(out)


def proportion_ci_row(hits: pd.Series, alpha: float = 0.05) -> dict:
    return proportion_ci(int(hits.sum()), len(hits), alpha=alpha)


def attribute_summary(metric_tables: Iterable[TableLike], design_attributes: TableLike | None = None,
                      alpha: float = 0.05, equivalence_margins: Mapping[str, float] | None = None
                      ) -> AttributeSummary:
    """Aggregate the per-shard tables of :func:`attribute_shard_metrics` into the §V-B results.

    Table IX uses the five categories' rows only (not the ablation rows); the Appendix-B ablation uses the
    ``location`` rows (variant location+shape) and the ``location_ablation`` rows (shape, location), paired by
    object, with TOST for the metrics that ``equivalence_margins`` gives a margin (metric → margin in its units).
    With ``design_attributes`` the coverage table also counts designed rows that no shard measured (failed
    images) — they are reported, not silently ignored.
    """
    parts = [_table(t) for t in metric_tables]
    allrows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if allrows.empty:
        raise ValueError("no attribute metrics to summarise")
    allrows["image_id"] = allrows["image_id"].astype(str)
    if "status" not in allrows:
        allrows["status"] = "ok"
    if "map" not in allrows:
        allrows["map"] = "explanation"
    if "variant" not in allrows:
        allrows["variant"] = ""
    allrows["variant"] = allrows["variant"].fillna("").astype(str)
    allrows["map_empty"] = allrows["map_empty"].fillna(False).astype(bool) if "map_empty" in allrows else False
    dup = allrows.duplicated(subset=["image_id", "category", "text", "object_id", "map"])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} attribute rows measured twice (same shard given twice?)")
    ok = allrows[allrows["status"] == "ok"].copy()
    main = ok[ok["category"].isin(AT.CATEGORY_ORDER)]
    extra_metrics = ("pointing", "mass_in_mask", "energy_share")
    ablation = ok[(ok["category"].isin(["location", LOCATION_ABLATION])) & ok["variant"].isin(AT.VARIANT_ORDER)]
    if len(ablation):
        loc_table = AT.location_ablation_table(ablation, variant_col="variant")
        loc_tests = AT.location_ablation_tests(ablation, variant_col="variant", margins=equivalence_margins,
                                               alpha=alpha)
    else:
        loc_table, loc_tests = pd.DataFrame(), pd.DataFrame()

    expl = AT.explanation_rows(allrows)
    cov = expl.groupby("category").agg(measured=("status", lambda s: int((s == "ok").sum())),
                                       skipped=("status", lambda s: int((s != "ok").sum())),
                                       empty_maps=("map_empty", lambda s: int(s.sum())))
    if design_attributes is not None:
        d = _table(design_attributes)
        d["image_id"] = d["image_id"].astype(str)
        key = ["image_id", "category", "text", "object_id"]
        designed = d.groupby("category").size().rename("designed")
        merged = d[key].merge(expl[key].drop_duplicates(), on=key, how="left", indicator=True)
        missing = merged[merged["_merge"] == "left_only"].groupby("category").size().rename("missing")
        cov = pd.concat([designed, cov, missing], axis=1).fillna(0).astype(int)
        cov = cov[["designed", "measured", "missing", "skipped", "empty_maps"]]
        if cov["missing"].sum():
            warnings.warn(f"{int(cov['missing'].sum())} designed attribute rows have no metrics "
                          "(images missing from the shards)", RuntimeWarning, stacklevel=2)
    order = [c for c in (*AT.CATEGORY_ORDER, LOCATION_ABLATION) if c in cov.index]
    cov = cov.reindex(order + [c for c in cov.index if c not in order]).reset_index(names="category")
    has_baselines = set(AT.MAP_KINDS) <= set(main["map"])
    return AttributeSummary(
        metrics=ok.reset_index(drop=True),
        table_ix=AT.table_ix(main),
        table_ix_extra=AT.table_ix(main, metrics_shown=extra_metrics),
        chance=AT.chance_table(main) if has_baselines else pd.DataFrame(),
        chance_tests=AT.chance_tests(main, alpha=alpha) if has_baselines else pd.DataFrame(),
        contrasts=AT.category_contrasts(main, alpha=alpha),
        kl_sensitivity=AT.kl_sensitivity_table(main),
        category_stats=category_stats(main, alpha=alpha),
        location_ablation=loc_table,
        location_tests=loc_tests,
        pointing_game=AT.pointing_game_table(main, alpha=alpha),
        by_colour=colour_breakdown(main, alpha),
        coverage=cov,
    )


# ------------------------------------------------------------------------------------------ §V-A
@dataclass
class AddibilitySummary:
    """§V-A results (see :func:`addibility_summary`)."""

    scores: pd.DataFrame  # long: image × phrase type × method → cosine (+ empty)
    table_viii: pd.DataFrame
    tests: pd.DataFrame  # add vs each other method, over images (one family, Holm)
    tests_by_phrase_type: pd.DataFrame  # … within each group and phrase type (one family, Holm)
    points: pd.DataFrame  # Fig. 14 (left)
    regressions: pd.DataFrame  # phrase relative score ~ word relative score, ratio and difference scales
    r2_difference: pd.DataFrame  # R² matched - R² mismatched with a bootstrap CI, per scale
    score_tests: pd.DataFrame  # the paper's Fig. 14 claims about scores, over images (one family, Holm)
    map_similarity: pd.DataFrame  # map similarity to the base word per text kind
    coverage: pd.DataFrame  # per group: designed, measured, missing images, empty cases
    notes: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"table_viii": self.table_viii, "addibility_tests": self.tests,
                "addibility_tests_by_phrase_type": self.tests_by_phrase_type,
                "fig14_score_tests": self.score_tests, "fig14_regressions": self.regressions,
                "fig14_r2_difference": self.r2_difference, "fig14_map_similarity": self.map_similarity,
                "addibility_coverage": self.coverage}

    def figures(self) -> dict:
        from .figures import fig14

        return {"fig14": fig14(self.points), "fig14_differences": fig14(self.points, scale="difference")}


def addibility_summary(map_shards: Iterable[str | os.PathLike], addibility_design: TableLike, *,
                       resolution: str = "pixels", score: str = "model_score", strict: bool = False,
                       alpha: float = 0.05) -> AddibilitySummary:
    """§V-A from the image-map shards: Table VIII, tests over images, Fig. 14 points, regressions and claims.

    Maps are taken at ``resolution`` ("pixels": on the image, as the paper's heat maps; "grid": the patch grid)
    and min-max normalised (:mod:`analysis.addibility`). ``score``: ``model_score`` (the model's own cosine,
    the paper's CLIP matching score) or ``score`` (the explained recomputation). Shards are read one image at
    a time; only the design's images are converted. Design images missing from every shard are listed in
    ``coverage`` (``strict``: raise instead).
    """
    if score not in ("model_score", "score"):
        raise ValueError("score must be 'model_score' or 'score'")
    design = _table(addibility_design)
    design["image_id"] = design["image_id"].astype(str)
    if design["image_id"].duplicated().any():
        raise ValueError("the addibility design has more than one row for an image")
    by_image = design.set_index("image_id", drop=False)
    score_parts, point_parts, seen = [], [], set()
    for image_id, maps, sc in maps_by_image(map_shards, resolution, set(design["image_id"])):
        if image_id not in by_image.index:
            continue
        sub = by_image.loc[[image_id]].reset_index(drop=True)
        keyed = {(image_id, t): m for t, m in maps.items()}
        pick = 1 if score == "model_score" else 0
        score_parts.append(AD.addibility_table(sub, keyed))
        point_parts.append(AD.fig14_points(sub, keyed, {(image_id, t): v[pick] for t, v in sc.items()}))
        seen.add(image_id)
    missing = sorted(set(design["image_id"]) - seen)
    if missing and strict:
        raise KeyError(f"no maps for addibility image(s) {missing[:10]}")
    if not score_parts:
        raise ValueError("none of the addibility design's images is in the shards")
    notes = []
    if missing:
        notes.append(f"{len(missing)} design image(s) have no maps: {', '.join(missing[:10])}")
        warnings.warn(notes[-1], RuntimeWarning, stacklevel=2)
    scores = pd.concat(score_parts, ignore_index=True)
    points = pd.concat(point_parts, ignore_index=True)
    cov = design.groupby("group").size().rename("designed").to_frame()
    cov["measured"] = design[design["image_id"].isin(seen)].groupby("group").size()
    cov = cov.fillna(0).astype(int)
    cov["missing"] = cov["designed"] - cov["measured"]
    cases = scores.drop_duplicates(["image_id", "phrase_type"])
    cov["empty_cases"] = cases.groupby("group")["empty"].sum().reindex(cov.index).fillna(0).astype(int)
    return AddibilitySummary(
        scores=scores,
        table_viii=AD.table_viii(scores),
        tests=AD.method_tests(scores, alpha=alpha),
        tests_by_phrase_type=AD.method_tests(scores, by=("group", "phrase_type"), alpha=alpha),
        points=points,
        regressions=AD.fig14_regressions(points),
        r2_difference=AD.r2_difference(points),
        score_tests=AD.score_claim_tests(points, alpha),
        map_similarity=AD.map_similarity_summary(points),
        coverage=cov.reset_index(),
        notes=notes,
    )


# ------------------------------------------------------------------------------------------ §V-C
WORD_SHARD_DTYPES = {"caption_id": str, "image_id": str, "word": str, "word_index": "int64", "is_word": "int64",
                     "importance": "float64"}


def read_word_shard(path: str | os.PathLike, words_only: bool = True) -> pd.DataFrame:
    """A word-importance CSV shard as ``sentence_id, word_index, word, importance`` (+ image_id, is_word).

    ``words_only`` drops punctuation items (``is_word`` = 0) before anything else, so the per-sentence maximum
    is taken over words. Every column has its declared dtype, also in a shard without rows (a CSV carries no
    types: an image shard whose images have no captions is written as its header alone).
    """
    df = pd.read_csv(path, usecols=["caption_id", "image_id", "word_index", "word", "is_word", "importance"],
                     dtype=WORD_SHARD_DTYPES, keep_default_na=False, na_values={"importance": ["", "nan", "NaN"]})
    if words_only:
        df = df[df["is_word"].astype(int) == 1]
    return df.rename(columns={"caption_id": "sentence_id"})


def concreteness_words(word_csv_shards: Iterable[str | os.PathLike], top_n: int | None = 1000, *,
                       exclude: Iterable[str] = (), words_only: bool = True) -> pd.DataFrame:
    """The word-importance table of all shards, read one shard at a time (memory: one shard + the vocabulary).

    A caption found in two shards raises (its per-sentence normalisation would be split)."""
    partials, seen = [], set()
    for path in word_csv_shards:
        df = read_word_shard(path, words_only)
        ids = set(df["sentence_id"].unique())
        again = ids & seen
        if again:
            raise ValueError(f"{path}: caption(s) already seen in another shard: {sorted(again)[:5]}")
        seen |= ids
        partials.append(CO.word_importance_partial(df))
    return CO.combine_word_partials(partials, top_n, exclude)


def concreteness_summary(word_csv_shards: Iterable[str | os.PathLike], top_n: int | None = 1000, *,
                         exclude: Iterable[str] = (), words_only: bool = True, source: str = "brysbaert",
                         lemma_fallback: bool = True, ratings: Mapping[str, float] | None = None,
                         counts: pd.Series | None = None) -> CO.ConcretenessStudy:
    """§V-C from word-importance CSV shards: top-``top_n`` words by frequency in the analysed captions, their
    mean per-sentence-normalised importance, concreteness, frequency and the regressions (``ratings``,
    ``counts``: see :func:`analysis.concreteness.concreteness_study_from_words`)."""
    words = concreteness_words(word_csv_shards, top_n, exclude=exclude, words_only=words_only)
    return CO.concreteness_study_from_words(words, source=source, lemma_fallback=lemma_fallback, ratings=ratings,
                                            counts=counts)


def _fit_row(name: str, formula: str, fit: Mapping) -> dict:
    return {"model": name, "formula": formula, **dict(fit)}


def concreteness_tables(study: CO.ConcretenessStudy) -> dict[str, pd.DataFrame]:
    """Report tables of a :class:`~analysis.concreteness.ConcretenessStudy`."""
    regs = pd.DataFrame([
        _fit_row("Fig. 18", "importance ~ concreteness", study.concreteness_fit),
        _fit_row("Fig. 17", "importance ~ log10 frequency", study.frequency_fit),
    ])
    controlled = study.controlled_coefs.rename_axis("term").reset_index()
    for k, v in study.controlled_model.items():
        controlled[f"model_{k}"] = v
    words = study.words.copy()
    top = words.sort_values("mean_importance", ascending=False)
    return {"concreteness_regressions": regs, "concreteness_controlled": controlled,
            "concreteness_words": words, "concreteness_top_bottom": top_bottom(top, 15),
            "concreteness_missing": study.missing}


def top_bottom(ranked: pd.DataFrame, n: int = 15) -> pd.DataFrame:
    """The ``n`` first and the ``n`` last rows of a ranked table, without repeating a row when it has fewer than
    2n rows (then the first half and the rest), with a column ``end`` saying which end each row is from."""
    k = min(n, (len(ranked) + 1) // 2)
    top = ranked.head(k).assign(end="most important")
    bottom = ranked.iloc[max(k, len(ranked) - n):].assign(end="least important")
    out = pd.concat([top, bottom], ignore_index=True)
    return out[["end", *[c for c in out.columns if c != "end"]]]


def concreteness_figures(study: CO.ConcretenessStudy, annotate: int | None = None) -> dict:
    """Figs. 17 and 18 of a :class:`~analysis.concreteness.ConcretenessStudy`; ``annotate`` as in
    :func:`analysis.figures.fig17` (None: every word labelled up to its limit, as the report's captions say)."""
    from .figures import fig17, fig18

    return {"fig17": fig17(study.words, annotate=annotate), "fig18": fig18(study.words, annotate=annotate)}


# ----------------------------------------------------------------------------------------- galleries
def study_galleries(design_dir: str | os.PathLike, map_shards: Iterable[str | os.PathLike], n_images: int = 4,
                    seed: int = 0, words: TableLike | None = None) -> dict:
    """The report's heat-map galleries: ``{"fig13": Figure, "fig15": Figure, "fig16": Figure}`` (one whose design
    table is empty is left out): Fig. 13 for ``n_images`` images drawn with ``seed`` from the addibility design,
    Figs. 15 and 16 for the richest image of the attribute design (``analysis.gallery.gallery_plan``). ``words``:
    the word importances of the gallery texts (``gradeclip.batch`` CSV of ``gallery_text_jobs``) for the text heat
    maps."""
    from .gallery import (addibility_gallery_keys, addibility_gallery_rows, attribute_gallery_keys,
                          attribute_gallery_rows, gallery_plan, heatmap_gallery, mask_map_rows, word_importances)

    design = StudyDesign.read(design_dir)
    shards = list(map_shards)
    images_table = design.images.set_index(design.images["image_id"].astype(str))
    plan = gallery_plan(design.addibility, design.attributes, n_images, seed)
    word_maps = word_importances(_table(words)) if words is not None else {}
    figures = {}

    def load(ids):
        return {i: np.asarray(load_image(images_table.loc[i, "path"])) for i in ids}

    if plan["fig13"]:
        maps, scores = collect_maps(shards, addibility_gallery_keys(design.addibility, plan["fig13"]))
        score_of = {(str(r.image_id), r.text): r.model_score for r in scores.itertuples(index=False)}
        rows = addibility_gallery_rows(design.addibility, load(plan["fig13"]), maps, score_of, words=word_maps)
        figures["fig13"] = heatmap_gallery(rows, scale="row")
    if plan["fig15"] is not None:
        image_id = plan["fig15"]
        maps, scores = collect_maps(shards, attribute_gallery_keys(design.attributes, [image_id]))
        score_of = {(str(r.image_id), r.text): r.model_score for r in scores.itertuples(index=False)}
        image = load([image_id])
        masks = {image_id: object_masks(_read_instance_mask(images_table.loc[image_id, "mask_path"]))}
        rows, labels = attribute_gallery_rows(design.attributes, image, masks, maps, score_of, words=word_maps)
        figures["fig15"] = heatmap_gallery(rows, scale="figure", row_labels=labels)
        figures["fig16"] = heatmap_gallery(mask_map_rows(design.attributes, image_id, image[image_id],
                                                         masks[image_id], maps), scale="figure")
    return figures
