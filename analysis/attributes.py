"""§V-B: how well an explanation map finds the object an attribute word names (Table IX, Appendix B).

Inputs are an explanation map (H×W, float, ≥ 0) and a ground-truth mask (H×W, bool) of the object(s) the
text names. For the distribution metrics both are normalised to probability distributions over pixels:

    p = map / map.sum()          (a map with no mass at all is taken as uniform: it localises nothing)
    q = mask / mask.sum()        (uniform over the object's pixels; an empty mask is an error)

Metrics (direction: ↑ higher is better, ↓ lower is better):

* ``cosine``  ↑  cosine similarity of p and q (scale-free, so the same as on the raw map and mask).
* ``pearson`` ↑  Pearson correlation of the pixel values; NaN for a constant map (no variance: undefined).
* ``ot``      ↓  optimal-transport (earth mover's) distance between p and q, ``ot.emd2`` (exact network
  simplex, POT). Both distributions are first resampled by area (mass-preserving) onto a grid whose longer
  side has ``ot_grid`` cells (aspect kept). Ground metric: Euclidean distance between cell centres in
  image pixel coordinates divided by the image diagonal ``sqrt(H² + W²)``, so a cost is a fraction of the
  image diagonal and the distance lies in [0, 1).
* ``kl``      ↓  KL(q ‖ p) — the mask relative to the map, the direction used for saliency maps
  (Bylinskii et al., 2019): it charges the map for the object mass it misses. Natural log (nats). Both
  distributions are smoothed first, ``x ← (x + eps/n) / (1 + eps)`` with n pixels and ``eps = 1e-6`` total
  mass, because the mask (and often the map) has zeros and KL is otherwise infinite.
* ``js``      ↓  Jensen–Shannon *divergence* (the square of scipy's Jensen–Shannon distance), natural log:
  0 for equal distributions, ln 2 ≈ 0.693 for disjoint ones. Needs no smoothing (the mixture is positive
  wherever either distribution is).
* ``pointing`` ↑  pointing game: 1 if the map's maximum lies inside the mask (or within
  ``pointing_tolerance`` pixels of it), else 0; NaN for a constant map (no maximum to point with).
* ``mass_in_mask`` ↑  fraction of the map's total mass inside the named object's mask.
* ``energy_share`` ↑  mass inside the named object's mask / mass inside the union of all objects' masks
  of the image (NaN if the map puts no mass on any object) — how much of the object-directed attention
  goes to the right object, independent of the background.

When a map and its mask differ in shape (patch-grid maps, pixel masks) the table functions upsample the
map to the mask bilinearly (``scipy.ndimage.zoom``, order 1, pixel-area grid) before measuring.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy import stats as sps
from scipy.spatial import distance as spd

from .stats import paired_ttest, proportion_ci

#: ``True`` when a higher value is better.
HIGHER_IS_BETTER = {
    "cosine": True,
    "pearson": True,
    "ot": False,
    "kl": False,
    "js": False,
    "pointing": True,
    "mass_in_mask": True,
    "energy_share": True,
}
METRICS = tuple(HIGHER_IS_BETTER)
#: Row labels of Table IX for the paper's five metrics, then the extra ones.
METRIC_LABELS = {
    "cosine": "Cosine similarity",
    "pearson": "Correlation",
    "ot": "OTD",
    "kl": "KLD",
    "js": "JSD",
    "pointing": "Pointing game",
    "mass_in_mask": "Mass in mask",
    "energy_share": "Energy share",
}
PAPER_METRICS = ("cosine", "pearson", "ot", "kl", "js")
CATEGORY_ORDER = ("color", "shape", "material", "size", "location")

DEFAULT_OT_GRID = 32
DEFAULT_KL_EPS = 1e-6

LOCATION_WORDS = frozenset({"left", "right", "front", "behind"})
SHAPE_WORDS = frozenset({"sphere", "spheres", "ball", "balls", "cube", "cubes", "block", "blocks",
                         "cylinder", "cylinders"})
VARIANT_ORDER = ("shape", "location+shape", "location")


_POT_BACKEND_SWITCHES = ("POT_BACKEND_DISABLE_PYTORCH", "POT_BACKEND_DISABLE_JAX", "POT_BACKEND_DISABLE_CUPY",
                         "POT_BACKEND_DISABLE_TENSORFLOW")


def _pot():
    """Import POT without its optional array backends.

    ``import ot`` otherwise imports torch (and jax, tensorflow, cupy when installed) to register backends;
    this layer works on numpy only and must not pull a model framework in. The switches are POT's own
    environment variables, set only for the import and restored afterwards.
    """
    if "ot" in sys.modules:
        return sys.modules["ot"]
    saved = {k: os.environ.get(k) for k in _POT_BACKEND_SWITCHES}
    os.environ.update({k: "1" for k in _POT_BACKEND_SWITCHES})
    try:
        import ot
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return ot


# --------------------------------------------------------------------------------------------- inputs
def map_distribution(heatmap: np.ndarray) -> np.ndarray:
    """An explanation map as a probability distribution (float64, sums to 1).

    Raises on NaN/inf or negative values (clip or shift a signed map first: the choice is the caller's).
    A map with zero total mass becomes the uniform distribution.
    """
    a = np.asarray(heatmap, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected an H×W map, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("explanation map contains NaN or inf")
    if (a < 0).any():
        raise ValueError("explanation map has negative values; clip (np.clip(m, 0, None)) or shift it first")
    total = a.sum()
    if total <= 0:
        return np.full(a.shape, 1.0 / a.size)
    return a / total


def mask_distribution(mask: np.ndarray) -> np.ndarray:
    """A ground-truth mask as the uniform distribution over its pixels (float64, sums to 1)."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"expected an H×W mask, got shape {m.shape}")
    m = m.astype(bool)
    area = m.sum()
    if area == 0:
        raise ValueError("ground-truth mask is empty")
    return m / float(area)


def _check_pair(heatmap: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, q = map_distribution(heatmap), mask_distribution(mask)
    if p.shape != q.shape:
        raise ValueError(f"map {p.shape} and mask {q.shape} differ in shape; resample with upsample_map first")
    return p, q


def upsample_map(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling of a map to ``shape`` (pixel-area grid, edges clamped), clipped at 0."""
    a = np.asarray(heatmap, dtype=np.float64)
    if a.shape == tuple(shape):
        return a
    factors = (shape[0] / a.shape[0], shape[1] / a.shape[1])
    out = ndimage.zoom(a, factors, order=1, mode="nearest", grid_mode=True)
    if out.shape != tuple(shape):  # zoom rounds the output shape; factors above make it exact, check anyway
        raise AssertionError(f"zoom produced {out.shape}, wanted {shape}")
    return np.clip(out, 0.0, None)


def instance_masks(instance_map: np.ndarray, background: int = 0) -> dict[int, np.ndarray]:
    """Split an instance-id image (H×W ints) into ``{instance_id: bool mask}``, background excluded."""
    inst = np.asarray(instance_map)
    return {int(v): inst == v for v in np.unique(inst) if v != background}


# --------------------------------------------------------------------------------------- the metrics
def cosine_similarity(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Cosine similarity between the map and the mask distributions, in [0, 1]."""
    p, q = _check_pair(heatmap, mask)
    return float(1.0 - spd.cosine(p.ravel(), q.ravel()))


def pearson_correlation(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of pixel values (``scipy.stats.pearsonr``); NaN for a constant map or full mask."""
    p, q = _check_pair(heatmap, mask)
    if np.ptp(p) == 0 or np.ptp(q) == 0:
        return float("nan")
    return float(sps.pearsonr(p.ravel(), q.ravel()).statistic)


def smooth_distribution(x: np.ndarray, eps: float = DEFAULT_KL_EPS) -> np.ndarray:
    """``(x / x.sum() + eps / n) / (1 + eps)``: mix in ``eps`` total mass spread uniformly over n cells."""
    a = np.asarray(x, dtype=np.float64).ravel()
    a = a / a.sum()
    return (a + eps / a.size) / (1.0 + eps)


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = DEFAULT_KL_EPS, base: float | None = None) -> float:
    """KL(p ‖ q) of two non-negative arrays after normalising and smoothing both (``smooth_distribution``).

    ``scipy.stats.entropy(p, q, base)``; natural log unless ``base`` is given. Asymmetric by definition.
    """
    return float(sps.entropy(smooth_distribution(p, eps), smooth_distribution(q, eps), base=base))


def js_divergence(p: np.ndarray, q: np.ndarray, base: float | None = None) -> float:
    """Jensen–Shannon divergence of two non-negative arrays (normalised first); nats unless ``base``.

    ``scipy.spatial.distance.jensenshannon`` returns the JS *distance* (a square root); squared here.
    Symmetric; 0 iff equal; ln 2 (1 in base 2) for disjoint supports.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    q = np.asarray(q, dtype=np.float64).ravel()
    return float(spd.jensenshannon(p, q, base=base) ** 2)


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """``W[i, r]`` = length of overlap between output cell i and input pixel r, in input-pixel units.

    Written by hand because no scipy/numpy routine does exact area (mass-preserving) resampling for
    non-integer factors (scipy.ndimage.zoom interpolates; cv2.INTER_AREA would add OpenCV).
    """
    edges = np.linspace(0.0, n_in, n_out + 1)
    pix = np.arange(n_in, dtype=np.float64)
    lo = np.maximum(edges[:-1, None], pix[None, :])
    hi = np.minimum(edges[1:, None], pix[None, :] + 1.0)
    return np.clip(hi - lo, 0.0, None)


def ot_grid_shape(shape: tuple[int, int], grid: int = DEFAULT_OT_GRID) -> tuple[int, int]:
    """The OT grid for an image of ``shape``: ``grid`` cells on the longer side, aspect kept (≥ 1 cell)."""
    h, w = shape
    scale = grid / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def area_resample(x: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Resample a 2-D mass array onto ``out_shape`` cells by area; the total mass is preserved."""
    a = np.asarray(x, dtype=np.float64)
    return _area_weights(a.shape[0], out_shape[0]) @ a @ _area_weights(a.shape[1], out_shape[1]).T


def ot_distance(heatmap: np.ndarray, mask: np.ndarray, grid: int = DEFAULT_OT_GRID) -> float:
    """Earth mover's distance between map and mask distributions (see module docstring for the metric).

    Zero-mass cells are dropped before ``ot.emd2`` (exact: they carry no mass), which keeps it fast.
    """
    p, q = _check_pair(heatmap, mask)
    return _ot_between(p, q, grid)


def _ot_between(p: np.ndarray, q: np.ndarray, grid: int) -> float:
    h, w = p.shape
    gh, gw = ot_grid_shape((h, w), grid)
    a = area_resample(p, (gh, gw)).ravel()
    b = area_resample(q, (gh, gw)).ravel()
    yy, xx = np.meshgrid((np.arange(gh) + 0.5) * h / gh, (np.arange(gw) + 0.5) * w / gw, indexing="ij")
    centres = np.stack([yy.ravel(), xx.ravel()], axis=1) / np.hypot(h, w)
    ia, ib = a > 0, b > 0
    a, b = a[ia] / a[ia].sum(), b[ib] / b[ib].sum()
    ot = _pot()
    # scipy's cdist is exact; ot.dist("euclidean") expands |x-y|² and leaves ~1e-9 on the diagonal
    cost = spd.cdist(centres[ia], centres[ib], metric="euclidean")
    return float(ot.emd2(a, b, cost, numItermax=10_000_000))


def pointing_hit(heatmap: np.ndarray, mask: np.ndarray, tolerance: float = 0.0) -> float:
    """1.0 if the map's argmax (first in row-major order on ties) is within ``tolerance`` pixels of the mask.

    NaN for a constant map. Distance to the mask via ``scipy.ndimage.distance_transform_edt``.
    """
    a = np.asarray(heatmap, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if a.shape != m.shape:
        raise ValueError(f"map {a.shape} and mask {m.shape} differ in shape")
    if not m.any():
        raise ValueError("ground-truth mask is empty")
    if np.ptp(a) == 0:
        return float("nan")
    idx = np.unravel_index(int(np.argmax(a)), a.shape)
    if tolerance <= 0:
        return float(m[idx])
    return float(ndimage.distance_transform_edt(~m)[idx] <= tolerance)


def mass_in_mask(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the map's total mass inside the mask (a uniform map gives the mask's area fraction)."""
    p, q = _check_pair(heatmap, mask)
    return float(p[q > 0].sum())


def energy_share(heatmap: np.ndarray, mask: np.ndarray, all_object_masks: Iterable[np.ndarray]) -> float:
    """Map mass on the named object(s) / map mass on the union of all object masks (NaN if none)."""
    p, q = _check_pair(heatmap, mask)
    union = q > 0
    for other in all_object_masks:
        other = np.asarray(other, dtype=bool)
        if other.shape != union.shape:
            raise ValueError(f"object mask {other.shape} differs from map {union.shape}")
        union |= other
    denom = p[union].sum()
    return float(p[q > 0].sum() / denom) if denom > 0 else float("nan")


def map_mask_metrics(
    heatmap: np.ndarray,
    mask: np.ndarray,
    all_object_masks: Iterable[np.ndarray] | None = None,
    *,
    ot_grid: int = DEFAULT_OT_GRID,
    kl_eps: float = DEFAULT_KL_EPS,
    pointing_tolerance: float = 0.0,
) -> dict[str, float]:
    """Every metric of this module for one map and its ground-truth mask (same shape), as a dict.

    ``energy_share`` is NaN when ``all_object_masks`` is not given.
    """
    p, q = _check_pair(heatmap, mask)
    raw = np.asarray(heatmap, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sps.ConstantInputWarning)
        pearson = pearson_correlation(heatmap, mask)
    return {
        "cosine": float(1.0 - spd.cosine(p.ravel(), q.ravel())),
        "pearson": pearson,
        "ot": _ot_between(p, q, ot_grid),
        "kl": kl_divergence(q, p, eps=kl_eps),  # KL(mask ‖ map)
        "js": js_divergence(p, q),
        "pointing": pointing_hit(raw, mask, pointing_tolerance),
        "mass_in_mask": float(p[q > 0].sum()),
        "energy_share": energy_share(heatmap, mask, all_object_masks) if all_object_masks is not None
        else float("nan"),
        "map_empty": bool(raw.sum() <= 0),
    }


# ------------------------------------------------------------------------------------------- tables
def _object_ids(value) -> tuple:
    """``object_id`` cell → tuple of ids (a text may name several objects, e.g. all red ones)."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        return (value,)
    return tuple(value)


def attribute_metrics_table(
    rows: pd.DataFrame,
    maps: Mapping[tuple[Hashable, str], np.ndarray],
    masks: Mapping[Hashable, Mapping[Hashable, np.ndarray]],
    *,
    ot_grid: int = DEFAULT_OT_GRID,
    kl_eps: float = DEFAULT_KL_EPS,
    pointing_tolerance: float = 0.0,
) -> pd.DataFrame:
    """Per-text metrics for the attribute experiment.

    rows:  one row per (image, text) with columns ``image_id``, ``category`` (color/shape/material/size/
           location), ``text``, ``object_id`` (one id, or a list/tuple of ids when the text names several
           objects: their masks are united). Other columns are carried through (e.g. ``variant``).
    maps:  ``(image_id, text) → H×W`` explanation map (≥ 0). Upsampled to the mask shape if smaller.
    masks: ``image_id → {object_id: H×W bool}`` for *all* objects of the image (the union of the others
           is the denominator of ``energy_share``).

    Returns ``rows`` plus ``target`` (the object ids as a string) and one column per metric. Missing maps or
    masks raise ``KeyError`` naming them: nothing is dropped silently.
    """
    required = {"image_id", "category", "text", "object_id"}
    if not required <= set(rows.columns):
        raise ValueError(f"rows needs columns {sorted(required)}, has {list(rows.columns)}")
    missing_maps = [(r.image_id, r.text) for r in rows.itertuples() if (r.image_id, r.text) not in maps]
    if missing_maps:
        raise KeyError(f"no explanation map for {missing_maps[:5]}{' …' if len(missing_maps) > 5 else ''}")
    records = []
    for r in rows.itertuples(index=False):
        if r.image_id not in masks:
            raise KeyError(f"no masks for image {r.image_id!r}")
        objects = masks[r.image_id]
        ids = _object_ids(r.object_id)
        absent = [i for i in ids if i not in objects]
        if absent:
            raise KeyError(f"image {r.image_id!r} has no mask for object(s) {absent}")
        target = np.logical_or.reduce([np.asarray(objects[i], dtype=bool) for i in ids])
        heatmap = upsample_map(maps[(r.image_id, r.text)], target.shape)
        others = [np.asarray(m, dtype=bool) for k, m in objects.items() if k not in ids]
        metrics = map_mask_metrics(heatmap, target, others, ot_grid=ot_grid, kl_eps=kl_eps,
                                   pointing_tolerance=pointing_tolerance)
        records.append({"target": ",".join(str(i) for i in sorted(ids, key=str)), **metrics})
    return pd.concat([rows.reset_index(drop=True), pd.DataFrame.from_records(records, index=range(len(rows)))],
                     axis=1)


def table_ix(metrics: pd.DataFrame, metrics_shown: Sequence[str] = PAPER_METRICS,
             categories: Sequence[str] = CATEGORY_ORDER) -> pd.DataFrame:
    """Table IX layout: rows = metrics (paper labels), columns = attribute categories, cells = means.

    Categories absent from ``metrics`` are omitted; others not in ``categories`` are appended in sorted
    order. NaNs (e.g. Pearson of a constant map) are skipped by the mean. The last row ``n`` is the number
    of texts per category.
    """
    present = list(metrics["category"].unique())
    order = [c for c in categories if c in present] + sorted(c for c in present if c not in categories)
    grouped = metrics.groupby("category")
    table = grouped[list(metrics_shown)].mean().T.reindex(columns=order)
    table.index = [METRIC_LABELS.get(m, m) for m in metrics_shown]
    table.loc["n"] = grouped.size().reindex(order).astype(float)
    table.columns = [str(c).capitalize() for c in order]
    table.columns.name = "category"
    return table


def pointing_game_table(metrics: pd.DataFrame, by: str = "category", alpha: float = 0.05) -> pd.DataFrame:
    """Pointing-game hit rate per group with a Wilson ``1 - alpha`` interval (constant maps excluded)."""
    rows = []
    for key, g in metrics.dropna(subset=["pointing"]).groupby(by, sort=False):
        rows.append({by: key, **proportion_ci(int(g["pointing"].sum()), len(g), alpha=alpha)})
    return pd.DataFrame(rows)


def location_variant(text: str, location_words: Iterable[str] = LOCATION_WORDS,
                     shape_words: Iterable[str] = SHAPE_WORDS) -> str | None:
    """Appendix-B variant of a text: ``"shape"`` ("sphere"), ``"location+shape"`` ("left sphere"),
    ``"location"`` ("left"), or None when it has neither kind of word."""
    tokens = set(re.findall(r"[a-z]+", text.lower()))
    has_loc, has_shape = bool(tokens & set(location_words)), bool(tokens & set(shape_words))
    if has_loc and has_shape:
        return "location+shape"
    if has_shape:
        return "shape"
    if has_loc:
        return "location"
    return None


def _with_variant(metrics: pd.DataFrame, variant_col: str | None) -> pd.DataFrame:
    df = metrics.copy()
    if variant_col is None:
        df["variant"] = df["text"].map(location_variant)
        variant_col = "variant"
    return df.rename(columns={variant_col: "variant"}).dropna(subset=["variant"])


def location_ablation_table(metrics: pd.DataFrame, metrics_shown: Sequence[str] = PAPER_METRICS,
                            variant_col: str | None = None) -> pd.DataFrame:
    """Appendix-B layout: rows = metrics, columns = shape / location+shape / location, cells = means.

    The variant is read from ``variant_col`` if given, else derived from the text (:func:`location_variant`).
    Texts that are none of the three are ignored. The last row ``n`` counts texts per variant.
    """
    df = _with_variant(metrics, variant_col)
    order = [v for v in VARIANT_ORDER if v in set(df["variant"])]
    grouped = df.groupby("variant")
    table = grouped[list(metrics_shown)].mean().T.reindex(columns=order)
    table.index = [METRIC_LABELS.get(m, m) for m in metrics_shown]
    table.loc["n"] = grouped.size().reindex(order).astype(float)
    table.columns.name = "variant"
    return table


def location_ablation_tests(metrics: pd.DataFrame, metric: str = "cosine", variant_col: str | None = None,
                            baseline: str = "shape") -> pd.DataFrame:
    """Paired t-tests of each variant against ``baseline`` on ``metric``, pairing texts that describe the
    same object(s) of the same image (``image_id``, ``target``). One row per comparison."""
    df = _with_variant(metrics, variant_col)
    wide = df.pivot_table(index=["image_id", "target"], columns="variant", values=metric, aggfunc="mean")
    out = []
    for variant in VARIANT_ORDER:
        if variant == baseline or variant not in wide or baseline not in wide:
            continue
        pair = wide[[variant, baseline]].dropna()
        if len(pair) < 2:
            continue
        out.append({"metric": metric, "variant": variant, "baseline": baseline,
                    **paired_ttest(pair[variant], pair[baseline])})
    return pd.DataFrame(out)
