"""§V-B: how well an explanation map finds the object an attribute word names (Table IX, Appendix B).

Inputs are an explanation map (H×W, float, ≥ 0) and a ground-truth mask (H×W, bool) of the object(s) the
text names. For the distribution metrics both are normalised to probability distributions over pixels:

    p = map / map.sum()          q = mask / mask.sum()   (uniform over the object's pixels; an empty mask is an error)

One policy for empty maps, every metric (:data:`EMPTY_MAP_POLICY`): a map with no positive mass (all zero after
Grad-ECLIP's ReLU) explains nothing, so every metric of it is undefined (NaN); the table functions leave such rows
out of every metric and every comparison (complete cases) and count them (``map_empty``). Other edge cases:
a *constant* non-empty map has Pearson r = 0 (it carries no information about the mask) and misses the pointing
game (it has no maximum to point with); a map with no mass on any object has energy share 0. Pointing-game ties:
the first maximal pixel in row-major order. These are the rules of the toy CLIP's model card
(``gradeclip.toyworld.evaluate``) too.

Metrics (direction: ↑ higher is better, ↓ lower is better):

* ``cosine``  ↑  cosine similarity of p and q (scale-free, so the same as on the raw map and mask).
* ``pearson`` ↑  Pearson correlation of the pixel values.
* ``ot``      ↓  optimal-transport (earth mover's) distance between p and q, ``ot.emd2`` (exact network
  simplex, POT). Both distributions are first resampled by area (mass-preserving) onto a grid whose longer
  side has ``ot_grid`` cells (aspect kept). Ground metric: Euclidean distance between cell centres in
  image pixel coordinates divided by the image diagonal ``sqrt(H² + W²)``, so a cost is a fraction of the
  image diagonal and the distance lies in [0, 1). The paper does not state its cost or normalisation, so absolute
  values are not comparable with its Table IX (only orderings are).
* ``kl``      ↓  KL(q ‖ p) — the mask relative to the map, the direction used for saliency maps
  (Bylinskii et al., 2019): it charges the map for the object mass it misses. Natural log (nats). Both
  distributions are smoothed first, ``x ← (x + eps/n) / (1 + eps)`` with n pixels and ``eps = 1e-6`` total
  mass, because the mask (and often the map) has zeros and KL is otherwise infinite. The value depends on eps
  wherever the map has (near) zeros inside the mask, so ``kl_eps1e-03`` and ``kl_eps1e-09`` are computed
  beside it (:data:`KL_SENSITIVITY_EPS`) and the report shows the sensitivity; JS below is the bounded alternative.
* ``js``      ↓  Jensen–Shannon *divergence* (the square of scipy's Jensen–Shannon distance), natural log:
  0 for equal distributions, ln 2 ≈ 0.693 for disjoint ones. Needs no smoothing (the mixture is positive
  wherever either distribution is).
* ``pointing`` ↑  pointing game: 1 if the map's maximum lies inside the mask (or within
  ``pointing_tolerance`` pixels of it), else 0.
* ``mass_in_mask`` ↑  fraction of the map's total mass inside the named object's mask.
* ``energy_share`` ↑  mass inside the named object's mask / mass inside the union of all objects' masks
  of the image — how much of the object-directed attention goes to the right object, independent of the background.

Chance levels (:func:`attribute_metrics_table` with ``baselines=True``), scored against the same mask:

* ``uniform``: the constant map. Its metrics are computed as for any map except the two that a constant map
  cannot play fairly: its pointing game is its expected value (the argmax of a constant map is a uniformly random
  pixel: the mask's area fraction, as in the model card) and its Pearson r is 0 by the rule above.
* ``wrong object``: the map of a text of the same category that names another object of the same image ("blue"
  scored against the red object's mask; one such text per row, drawn reproducibly: :func:`wrong_object_text`);
  undefined when the image has none.

When a map and its mask differ in shape (patch-grid maps, pixel masks) the table functions upsample the
map to the mask bilinearly (``gradeclip.geometry.resize_map``, pixel-area grid) before measuring.
"""

from __future__ import annotations

import os
import re
import sys
import zlib
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.spatial import distance as spd
from scipy.special import rel_entr

from gradeclip import metrics as map_metrics
from gradeclip.geometry import resize_map

from .stats import holm, mixed_model_contrasts, paired_test, proportion_ci, tost_paired

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
#: KL is also computed with these smoothing masses, to show how much it depends on the choice.
KL_SENSITIVITY_EPS = (1e-3, 1e-9)
#: The map kinds of a metrics table with baselines: the explanation, then the two chance levels.
MAP_KINDS = ("explanation", "uniform", "wrong object")

EMPTY_MAP_POLICY = ("A map with no positive mass (all zero after Grad-ECLIP's ReLU) explains nothing: every metric of "
                    "it is undefined, and its row is left out of every metric and comparison (complete cases); each "
                    "table counts these empty maps. A constant non-empty map has Pearson r = 0 and misses the "
                    "pointing game; a map with no mass on any object has energy share 0; pointing ties go to the "
                    "first maximal pixel in row-major order.")


def kl_column(eps: float) -> str:
    """Column name of KL(mask ‖ map) at smoothing mass ``eps``: ``kl`` for the default, else ``kl_eps1e-03``…"""
    return "kl" if eps == DEFAULT_KL_EPS else f"kl_eps{eps:.0e}"

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
        import ot  # lazy: imported once, with the backend switches above set
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return ot


# --------------------------------------------------------------------------------------------- inputs
def is_empty_map(heatmap: np.ndarray) -> bool:
    """Whether a map has no positive mass (the empty-map policy of the module docstring)."""
    return map_metrics.is_empty_map(heatmap)


def map_distribution(heatmap: np.ndarray) -> np.ndarray:
    """An explanation map as a probability distribution (float64, sums to 1).

    Raises on NaN/inf or negative values (clip or shift a signed map first: the choice is the caller's) and on an
    empty map (no mass: there is no distribution; see :data:`EMPTY_MAP_POLICY`).
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
        raise ValueError("explanation map is empty (no mass): its metrics are undefined")
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


def _check_pair(heatmap: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(p, q), or None for an empty map (after the checks that apply to any map)."""
    q = mask_distribution(mask)
    a = np.asarray(heatmap, dtype=np.float64)
    if a.shape != q.shape:
        raise ValueError(f"map {a.shape} and mask {q.shape} differ in shape; resample with upsample_map first")
    if a.ndim == 2 and np.all(np.isfinite(a)) and not (a < 0).any() and is_empty_map(a):
        return None
    return map_distribution(a), q


def upsample_map(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map on ``shape`` pixels (``gradeclip.geometry.resize_map``: bilinear, pixel-area grid, edges clamped),
    clipped at 0; a map already of that shape is returned as it is (float64)."""
    a = np.asarray(heatmap, dtype=np.float64)
    if a.shape == tuple(shape):
        return a
    return np.clip(resize_map(a, shape), 0.0, None)


def instance_masks(instance_map: np.ndarray, background: int = 0) -> dict[int, np.ndarray]:
    """Split an instance-id image (H×W ints) into ``{instance_id: bool mask}``, background excluded."""
    inst = np.asarray(instance_map)
    return {int(v): inst == v for v in np.unique(inst) if v != background}


# --------------------------------------------------------------------------------------- the metrics
def vector_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two arrays taken as vectors; NaN when either is all zero. The dot products go through einsum, not
    BLAS: OpenBLAS's threaded ddot took ~10 ms per call on a busy 2-core machine (einsum: ~10 µs)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"arrays differ in size: {a.size} vs {b.size}")
    norm = np.sqrt(np.einsum("i,i->", a, a) * np.einsum("i,i->", b, b))
    return float(np.einsum("i,i->", a, b) / norm) if norm > 0 else float("nan")


def _cosine(p: np.ndarray, q: np.ndarray) -> float:
    return vector_cosine(p, q)


def _pearson(p: np.ndarray, q: np.ndarray) -> float:
    if np.ptp(q) == 0:
        return float("nan")  # a mask covering the whole image: nothing to correlate with
    if np.ptp(p) == 0:
        return 0.0  # a constant map carries no information about the mask
    return vector_cosine(p - p.mean(), q - q.mean())  # Pearson's r: the cosine of the centred values


def cosine_similarity(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Cosine similarity between the map and the mask distributions, in [0, 1]; NaN for an empty map."""
    pair = _check_pair(heatmap, mask)
    return float("nan") if pair is None else _cosine(*pair)


def pearson_correlation(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of pixel values (``scipy.stats.pearsonr``); 0 for a constant map, NaN for an empty one."""
    pair = _check_pair(heatmap, mask)
    return float("nan") if pair is None else _pearson(*pair)


def smooth_distribution(x: np.ndarray, eps: float = DEFAULT_KL_EPS) -> np.ndarray:
    """``(x / x.sum() + eps / n) / (1 + eps)``: mix in ``eps`` total mass spread uniformly over n cells."""
    a = np.asarray(x, dtype=np.float64).ravel()
    a = a / a.sum()
    return (a + eps / a.size) / (1.0 + eps)


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = DEFAULT_KL_EPS, base: float | None = None) -> float:
    """KL(p ‖ q) of two non-negative arrays after normalising and smoothing both (``smooth_distribution``).

    ``sum(rel_entr(p, q))`` (what ``scipy.stats.entropy(p, q, base)`` computes, without its per-call overhead);
    natural log unless ``base`` is given. Asymmetric by definition.
    """
    value = float(np.sum(rel_entr(smooth_distribution(p, eps), smooth_distribution(q, eps))))
    return value / np.log(base) if base is not None else value


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
    """Earth mover's distance between map and mask distributions (see module docstring for the metric); NaN for an
    empty map. Zero-mass cells are dropped before ``ot.emd2`` (exact: they carry no mass), which keeps it fast.
    """
    pair = _check_pair(heatmap, mask)
    return float("nan") if pair is None else _ot_between(*pair, grid)


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
    """1.0 if the map's argmax (first in row-major order on ties) is within ``tolerance`` pixels of the mask, else
    0.0; a constant map misses (0.0) and an empty map is undefined (NaN): ``gradeclip.metrics.pointing_hit`` with
    ``empty="undefined"`` (the rule of :data:`EMPTY_MAP_POLICY`). An empty mask is an error.
    """
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        raise ValueError("ground-truth mask is empty")
    return map_metrics.pointing_hit(heatmap, m, empty="undefined", tolerance=tolerance)


def mass_in_mask(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the map's total mass inside the mask (a uniform map gives the mask's area fraction)."""
    pair = _check_pair(heatmap, mask)
    return float("nan") if pair is None else float(pair[0][pair[1] > 0].sum())


def _object_union(mask: np.ndarray, all_object_masks: Iterable[np.ndarray]) -> np.ndarray:
    union = np.asarray(mask, dtype=bool).copy()
    for other in all_object_masks:
        other = np.asarray(other, dtype=bool)
        if other.shape != union.shape:
            raise ValueError(f"object mask {other.shape} differs from map {union.shape}")
        union |= other
    return union


def energy_share(heatmap: np.ndarray, mask: np.ndarray, all_object_masks: Iterable[np.ndarray]) -> float:
    """Map mass on the named object(s) / map mass on the union of all object masks (0 if the map has no mass on any
    object; NaN for an empty map)."""
    pair = _check_pair(heatmap, mask)
    if pair is None:
        return float("nan")
    p, q = pair  # the map as a distribution: the same ratio, and the sums this table always had
    return map_metrics.energy_share(p, q > 0, _object_union(mask, all_object_masks), empty="undefined")


def map_mask_metrics(
    heatmap: np.ndarray,
    mask: np.ndarray,
    all_object_masks: Iterable[np.ndarray] | None = None,
    *,
    ot_grid: int = DEFAULT_OT_GRID,
    kl_eps: float = DEFAULT_KL_EPS,
    kl_sensitivity: Sequence[float] = KL_SENSITIVITY_EPS,
    pointing_tolerance: float = 0.0,
) -> dict[str, float]:
    """Every metric of this module for one map and its ground-truth mask (same shape), as a dict, plus
    ``map_empty``. An empty map gives NaN for every metric; ``energy_share`` is NaN when ``all_object_masks`` is not
    given. KL is computed at ``kl_eps`` (key ``kl``) and at each of ``kl_sensitivity`` (keys from :func:`kl_column`).
    """
    pair = _check_pair(heatmap, mask)
    kl_keys = [kl_column(e) for e in kl_sensitivity if e != kl_eps]
    if pair is None:
        return {**{k: float("nan") for k in (*METRICS, *kl_keys)}, "map_empty": True}
    p, q = pair
    out = {
        "cosine": _cosine(p, q),
        "pearson": _pearson(p, q),
        "ot": _ot_between(p, q, ot_grid),
        "kl": kl_divergence(q, p, eps=kl_eps),  # KL(mask ‖ map)
        "js": js_divergence(p, q),
        "pointing": pointing_hit(heatmap, mask, pointing_tolerance),
        "mass_in_mask": float(p[q > 0].sum()),
        "energy_share": energy_share(heatmap, mask, all_object_masks) if all_object_masks is not None
        else float("nan"),
        "map_empty": False,
    }
    for eps, key in zip([e for e in kl_sensitivity if e != kl_eps], kl_keys):
        out[key] = kl_divergence(q, p, eps=eps)
    return out


def uniform_map_metrics(mask: np.ndarray, all_object_masks: Iterable[np.ndarray] | None = None, *,
                        ot_grid: int = DEFAULT_OT_GRID, kl_eps: float = DEFAULT_KL_EPS,
                        kl_sensitivity: Sequence[float] = KL_SENSITIVITY_EPS) -> dict[str, float]:
    """The chance level of a constant map against ``mask``: :func:`map_mask_metrics` of a constant map, except the
    pointing game, which is its expected value (the mask's area fraction: a constant map's argmax is a uniformly
    random pixel), and Pearson r, 0 by the constant-map rule."""
    m = np.asarray(mask, dtype=bool)
    out = map_mask_metrics(np.ones(m.shape), m, all_object_masks, ot_grid=ot_grid, kl_eps=kl_eps,
                           kl_sensitivity=kl_sensitivity)
    out["pointing"] = float(m.mean())
    return out


# ------------------------------------------------------------------------------------------- tables
def _object_ids(value) -> tuple:
    """``object_id`` cell → tuple of ids (a text may name several objects, e.g. all red ones)."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        return (value,)
    return tuple(value)


def _mean_metrics(dicts: Sequence[Mapping[str, float]], keys: Sequence[str]) -> dict[str, float]:
    """Mean of each metric in ``keys`` over the non-empty maps of ``dicts``; all NaN (and map_empty) when none."""
    kept = [d for d in dicts if not d["map_empty"]]
    if not kept:
        return {**{k: float("nan") for k in keys}, "map_empty": True}
    return {**{k: float(np.mean([d[k] for d in kept])) for k in keys}, "map_empty": False}


def wrong_object_text(image_id, text: str, candidates: Sequence[str]) -> str:
    """The wrong-object text of a row: one of ``candidates`` (texts of the same category naming other objects of the
    same image), drawn reproducibly from the image and the text (CRC-32, not Python's salted hash), so that the
    baseline does not favour the first object of a scene."""
    return sorted(candidates)[zlib.crc32(f"{image_id}|{text}".encode("utf-8")) % len(candidates)]


def attribute_metrics_table(
    rows: pd.DataFrame,
    maps: Mapping[tuple[Hashable, str], np.ndarray],
    masks: Mapping[Hashable, Mapping[Hashable, np.ndarray]],
    *,
    ot_grid: int = DEFAULT_OT_GRID,
    kl_eps: float = DEFAULT_KL_EPS,
    kl_sensitivity: Sequence[float] = KL_SENSITIVITY_EPS,
    pointing_tolerance: float = 0.0,
    baselines: bool = False,
) -> pd.DataFrame:
    """Per-text metrics for the attribute experiment.

    rows:  one row per (image, text) with columns ``image_id``, ``category`` (color/shape/material/size/
           location), ``text``, ``object_id`` (one id, or a list/tuple of ids when the text names several
           objects: their masks are united). Other columns are carried through (e.g. ``variant``).
    maps:  ``(image_id, text) → H×W`` explanation map (≥ 0). Upsampled to the mask shape if smaller.
    masks: ``image_id → {object_id: H×W bool}`` for *all* objects of the image (the union of the others
           is the denominator of ``energy_share``).
    baselines: also score the chance levels (module docstring) of each row of the five Table IX categories.

    Returns ``rows`` plus ``map`` (:data:`MAP_KINDS`; only "explanation" without baselines), ``target`` (the object
    ids as a string), one column per metric, ``map_empty`` and ``n_maps`` (1, or 0 for a wrong-object row without
    another object's text). Missing maps or masks raise ``KeyError`` naming them: nothing is dropped silently.
    """
    required = {"image_id", "category", "text", "object_id"}
    if not required <= set(rows.columns):
        raise ValueError(f"rows needs columns {sorted(required)}, has {list(rows.columns)}")
    missing_maps = [(r.image_id, r.text) for r in rows.itertuples() if (r.image_id, r.text) not in maps]
    if missing_maps:
        raise KeyError(f"no explanation map for {missing_maps[:5]}{' …' if len(missing_maps) > 5 else ''}")
    rows = rows.reset_index(drop=True)
    kw = dict(ot_grid=ot_grid, kl_eps=kl_eps, kl_sensitivity=kl_sensitivity)
    out_rows, records = [], []
    uniform_cache: dict[tuple, dict] = {}  # the uniform map's metrics depend on the image and target only
    for i, r in enumerate(rows.itertuples(index=False)):
        if r.image_id not in masks:
            raise KeyError(f"no masks for image {r.image_id!r}")
        objects = masks[r.image_id]
        ids = _object_ids(r.object_id)
        absent = [k for k in ids if k not in objects]
        if absent:
            raise KeyError(f"image {r.image_id!r} has no mask for object(s) {absent}")
        target = np.logical_or.reduce([np.asarray(objects[k], dtype=bool) for k in ids])
        others = [np.asarray(m, dtype=bool) for k, m in objects.items() if k not in ids]
        target_name = ",".join(str(k) for k in sorted(ids, key=str))

        def measure(heatmap):
            return map_mask_metrics(upsample_map(heatmap, target.shape), target, others,
                                    pointing_tolerance=pointing_tolerance, **kw)

        explained = measure(maps[(r.image_id, r.text)])
        keys = [k for k in explained if k != "map_empty"]
        out_rows.append(i)
        records.append({"map": "explanation", "target": target_name, **explained, "n_maps": 1})
        if not baselines or r.category not in CATEGORY_ORDER:
            continue
        out_rows.append(i)
        key = (r.image_id, target_name)
        if key not in uniform_cache:
            uniform_cache[key] = uniform_map_metrics(target, others, **kw)
        records.append({"map": "uniform", "target": target_name, **uniform_cache[key], "n_maps": 1})
        wrong = list(dict.fromkeys(o.text for o in rows.itertuples(index=False)
                                   if o.image_id == r.image_id and o.category == r.category and o.text != r.text
                                   and not set(_object_ids(o.object_id)) & set(ids)))
        scored = [measure(maps[(r.image_id, wrong_object_text(r.image_id, r.text, wrong))])] if wrong else []
        out_rows.append(i)
        records.append({"map": "wrong object", "target": target_name,
                        **_mean_metrics(scored, keys),
                        "n_maps": sum(not d["map_empty"] for d in scored)})
    base = rows.iloc[out_rows].reset_index(drop=True)
    return pd.concat([base, pd.DataFrame.from_records(records, index=range(len(records)))], axis=1)


def explanation_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """The explanation maps' rows of a metrics table (all rows when it has no ``map`` column)."""
    return metrics[metrics["map"] == "explanation"] if "map" in metrics else metrics


def _category_order(present: Iterable[str], categories: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(present))
    return [c for c in categories if c in present] + sorted(c for c in present if c not in categories)


def table_ix(metrics: pd.DataFrame, metrics_shown: Sequence[str] = PAPER_METRICS,
             categories: Sequence[str] = CATEGORY_ORDER) -> pd.DataFrame:
    """Table IX layout: one row per metric (paper labels, column ``metric``), one column per attribute category,
    cells = mean over the texts with a non-empty explanation map; then the rows ``n texts``, ``n images`` (that
    the means are over; the same for every metric) and ``empty maps (left out)``.

    Categories absent from ``metrics`` are omitted; others not in ``categories`` are appended in sorted order.
    """
    rows = explanation_rows(metrics)
    order = _category_order(rows["category"], categories)
    kept = rows[~rows["map_empty"].astype(bool)]
    grouped = kept.groupby("category")
    table = grouped[list(metrics_shown)].mean().T.reindex(columns=order)
    table.loc["n texts"] = grouped.size().reindex(order).fillna(0)
    table.loc["n images"] = grouped["image_id"].nunique().reindex(order).fillna(0)
    table.loc["empty maps (left out)"] = rows.groupby("category")["map_empty"].sum().reindex(order).fillna(0)
    table.index = [METRIC_LABELS.get(m, m) for m in metrics_shown] + list(table.index[len(metrics_shown):])
    table.columns = [str(c).capitalize() for c in order]
    return table.rename_axis("metric").reset_index()


def complete_cases(metrics: pd.DataFrame, kinds: Sequence[str] = MAP_KINDS) -> pd.DataFrame:
    """Rows of a baselines table whose text has a non-empty map of every kind in ``kinds`` (one complete-case set
    for a comparison of map kinds)."""
    key = ["image_id", "category", "text", "target"]
    ok = metrics[metrics["map"].isin(kinds) & ~metrics["map_empty"].astype(bool)]
    counts = ok.groupby(key)["map"].nunique()
    complete = counts[counts == len(kinds)].index
    return ok.set_index(key).loc[lambda d: d.index.isin(complete)].reset_index()


def chance_table(metrics: pd.DataFrame, metrics_shown: Sequence[str] = PAPER_METRICS,
                 categories: Sequence[str] = CATEGORY_ORDER) -> pd.DataFrame:
    """Table IX with its chance levels: for each metric the mean of the explanation map, the uniform map and the
    wrong-object map per category, all over one complete-case set (texts whose three maps are all defined); then
    ``n texts`` and ``n images`` of that set and the texts left out of it. Columns: metric, map, one per category."""
    cc = complete_cases(metrics[metrics["category"].isin(categories)])
    order = _category_order(cc["category"], categories)
    parts = []
    for m in metrics_shown:
        t = cc.pivot_table(index="map", columns="category", values=m, aggfunc="mean").reindex(
            index=list(MAP_KINDS), columns=order)
        parts.append(t.reset_index().assign(metric=METRIC_LABELS.get(m, m)))
    first = cc[cc["map"] == MAP_KINDS[0]].groupby("category")
    texts = metrics[(metrics["map"] == MAP_KINDS[0]) & metrics["category"].isin(order)].groupby("category").size()
    left_out = texts.reindex(order).fillna(0) - first.size().reindex(order).fillna(0)
    for label, values in (("n texts", first.size()), ("n images", first["image_id"].nunique()),
                          ("texts left out (an empty map, or no other object of the category)", left_out)):
        parts.append(pd.DataFrame([{"metric": label, "map": "", **values.reindex(order).fillna(0).to_dict()}]))
    out = pd.concat(parts, ignore_index=True)
    out = out[["metric", "map", *order]]
    out.columns = ["metric", "map", *[str(c).capitalize() for c in order]]
    return out


def per_image_means(rows: pd.DataFrame, value: str, by: Sequence[str]) -> pd.DataFrame:
    """Average ``value`` within each image (and ``by`` group): the image is the unit of the tests."""
    return rows.groupby(["image_id", *by], sort=False)[value].mean().reset_index()


def _oriented(metric: str, better: pd.Series, worse: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(a, b) such that a - b > 0 means ``better`` is better on ``metric``."""
    return (better, worse) if HIGHER_IS_BETTER[metric] else (worse, better)


def chance_tests(metrics: pd.DataFrame, metrics_shown: Sequence[str] = PAPER_METRICS,
                 categories: Sequence[str] = CATEGORY_ORDER, alpha: float = 0.05) -> pd.DataFrame:
    """Does the explanation map beat each chance level? Per metric, baseline and category: paired t-test over images
    of the per-image mean (complete cases, :func:`complete_cases`), oriented so that a positive difference means the
    explanation is better; Cohen's dz with its CI; Holm within each (metric, baseline) family over the categories;
    ``baseline_wins``: the share of texts on which the baseline scores better than the explanation."""
    cc = complete_cases(metrics[metrics["category"].isin(categories)])
    out = []
    for m in metrics_shown:
        for baseline in MAP_KINDS[1:]:
            family = []
            for cat in _category_order(cc["category"], categories):
                sub = cc[cc["category"] == cat]
                wide = sub.pivot_table(index=["image_id", "text", "target"], columns="map", values=m)
                per_image = wide.groupby(level="image_id").mean()
                a, b = _oriented(m, per_image["explanation"], per_image[baseline])
                ta, tb = _oriented(m, wide["explanation"], wide[baseline])
                row = {"metric": m, "baseline": baseline, "category": cat, "n_texts": len(wide)}
                try:
                    row.update(paired_test(a.to_numpy(), b.to_numpy(), alpha))
                except ValueError as err:
                    row.update(n=len(per_image), p=np.nan, note=str(err))
                row["baseline_wins"] = float((tb > ta).mean()) if len(wide) else np.nan
                family.append(row)
            adjusted = holm([r["p"] for r in family])
            for r, p in zip(family, adjusted):
                r["p_holm"] = p
            out += family
    return pd.DataFrame(out)


def category_contrast_pairs(categories: Sequence[str] = CATEGORY_ORDER) -> list[tuple[str, str]]:
    """Adjacent categories in the paper's ranking (color > shape > material > size > location)."""
    return list(zip(categories[:-1], categories[1:]))


def category_contrasts(metrics: pd.DataFrame, metrics_shown: Sequence[str] = PAPER_METRICS,
                       categories: Sequence[str] = CATEGORY_ORDER, alpha: float = 0.05) -> pd.DataFrame:
    """The paper's ranking of the categories, tested: for each metric, a linear mixed model of the per-text value on
    the category with a random intercept per image (``analysis.stats.mixed_model_contrasts``), and the difference of
    each adjacent pair in the paper's order, oriented so that a positive ``estimate`` means the first category is
    better; Holm within each metric's family. Beside it, the same contrast as a paired test over the images that have
    both categories (per-image means): n_images, dz and its CI."""
    rows = explanation_rows(metrics)
    rows = rows[rows["category"].isin(categories) & ~rows["map_empty"].astype(bool)]
    pairs = category_contrast_pairs([c for c in categories if c in set(rows["category"])])
    out = []
    for m in metrics_shown:
        sign = 1.0 if HIGHER_IS_BETTER[m] else -1.0
        fit = mixed_model_contrasts(rows, m, "category", "image_id", pairs, alpha)
        for col in ("estimate", "ci_low", "ci_high"):
            fit[col] = sign * fit[col]
        if sign < 0:
            fit["ci_low"], fit["ci_high"] = fit["ci_high"].copy(), fit["ci_low"].copy()
        fit["z"] = sign * fit["z"]
        fit["p_holm"] = holm(fit["p"])
        per_image = per_image_means(rows, m, ["category"]).pivot(index="image_id", columns="category", values=m)
        paired = []
        for a, b in pairs:
            both = per_image[[a, b]].dropna() if {a, b} <= set(per_image.columns) else pd.DataFrame(columns=[a, b])
            x, y = _oriented(m, both[a], both[b])
            try:
                t = paired_test(x.to_numpy(), y.to_numpy(), alpha)
                paired.append({"n_images_both": t["n"], "dz": t["dz"], "dz_ci_low": t["dz_ci_low"],
                               "dz_ci_high": t["dz_ci_high"]})
            except ValueError:
                paired.append({"n_images_both": len(both), "dz": np.nan, "dz_ci_low": np.nan, "dz_ci_high": np.nan})
        out.append(pd.concat([fit.assign(metric=m), pd.DataFrame(paired)], axis=1))
    result = pd.concat(out, ignore_index=True)
    lead = ["metric", "contrast", "a", "b", "estimate", "ci_low", "ci_high", "se", "z", "p", "p_holm", "mde"]
    return result[lead + [c for c in result.columns if c not in lead]]


def kl_sensitivity_table(metrics: pd.DataFrame, categories: Sequence[str] = CATEGORY_ORDER) -> pd.DataFrame:
    """Mean KL(mask ‖ map) per category at each smoothing mass (the KL columns present), with JS beside it: how
    much Table IX's KLD row owes to the choice of eps. Explanation maps, non-empty."""
    rows = explanation_rows(metrics)
    rows = rows[rows["category"].isin(categories) & ~rows["map_empty"].astype(bool)]
    order = _category_order(rows["category"], categories)
    kl_cols = sorted((c for c in rows.columns if c == "kl" or c.startswith("kl_eps")),
                     key=lambda c: -(DEFAULT_KL_EPS if c == "kl" else float(c[len("kl_eps"):])))
    out = []
    for c in kl_cols + ["js"]:
        eps = DEFAULT_KL_EPS if c == "kl" else (float(c[len("kl_eps"):]) if c != "js" else np.nan)
        label = f"KLD, eps = {eps:.0e}" + (" (Table IX)" if c == "kl" else "") if c != "js" else "JSD (no eps)"
        means = rows.groupby("category")[c].mean().reindex(order)
        out.append({"divergence": label, **{str(k).capitalize(): v for k, v in means.items()}})
    out.append({"divergence": "n texts (non-empty maps)",
                **{str(k).capitalize(): v for k, v in rows.groupby("category").size().reindex(order).items()}})
    return pd.DataFrame(out)


def pointing_game_table(metrics: pd.DataFrame, by: str = "category", alpha: float = 0.05) -> pd.DataFrame:
    """Pointing-game hit rate of the explanation maps per group with a Wilson ``1 - alpha`` interval (empty maps
    left out), and the uniform map's expected rate (mean mask area fraction) when the table has baselines."""
    rows = []
    expl = explanation_rows(metrics)
    uniform = metrics[metrics["map"] == "uniform"] if "map" in metrics else metrics.iloc[:0]
    for key, g in expl[~expl["map_empty"].astype(bool)].groupby(by, sort=False):
        row = {by: key, **proportion_ci(int(g["pointing"].sum()), len(g), alpha=alpha)}
        u = uniform[uniform[by] == key]["pointing"]
        row["uniform_expected"] = float(u.mean()) if len(u) else np.nan
        rows.append(row)
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
    df = explanation_rows(metrics).copy()
    if variant_col is None:
        df["variant"] = df["text"].map(location_variant)
        variant_col = "variant"
    return df.rename(columns={variant_col: "variant"}).dropna(subset=["variant"])


def _ablation_wide(metrics: pd.DataFrame, metric: str, variant_col: str | None) -> tuple[pd.DataFrame, int]:
    """(image_id, target) × variant values over the complete cases (all three variants non-empty), and the number
    of objects left out because a variant's map was empty."""
    df = _with_variant(metrics, variant_col)
    df = df[df["variant"].isin(VARIANT_ORDER)]
    empty = df.groupby(["image_id", "target"])["map_empty"].any()
    wide = df[~df["map_empty"].astype(bool)].pivot_table(index=["image_id", "target"], columns="variant",
                                                          values=metric, aggfunc="mean")
    wide = wide.reindex(columns=[v for v in VARIANT_ORDER if v in wide.columns]).dropna()
    return wide, int(empty.sum())


def location_ablation_table(metrics: pd.DataFrame, metrics_shown: Sequence[str] = PAPER_METRICS,
                            variant_col: str | None = None) -> pd.DataFrame:
    """Appendix-B layout: rows = metrics (column ``metric``), columns = shape / location+shape / location, cells =
    means over the objects whose three texts all have a non-empty map (one complete-case set); then ``n objects``,
    ``n images`` and ``objects left out (empty map)``.

    The variant is read from ``variant_col`` if given, else derived from the text (:func:`location_variant`).
    Texts that are none of the three are ignored.
    """
    rows, n, left_out = [], None, 0
    for m in metrics_shown:
        wide, left_out = _ablation_wide(metrics, m, variant_col)
        rows.append({"metric": METRIC_LABELS.get(m, m), **wide.mean().to_dict()})
        n = wide
    if n is None or n.empty:
        return pd.DataFrame(columns=["metric", *VARIANT_ORDER])
    images = n.index.get_level_values("image_id").nunique()
    rows += [{"metric": "n objects", **{v: len(n) for v in n.columns}},
             {"metric": "n images", **{v: images for v in n.columns}},
             {"metric": "objects left out (empty map)", **{v: left_out for v in n.columns}}]
    out = pd.DataFrame(rows)
    return out[["metric", *[v for v in VARIANT_ORDER if v in out.columns]]]


def location_ablation_tests(metrics: pd.DataFrame, metrics_shown: Sequence[str] = PAPER_METRICS,
                            variant_col: str | None = None, baseline: str = "shape",
                            margins: Mapping[str, float] | None = None, alpha: float = 0.05,
                            equivalence_variants: Sequence[str] = ("location+shape",)) -> pd.DataFrame:
    """Appendix B, tested over images: for each metric and each variant, the per-image mean of the per-object
    difference variant - ``baseline`` (complete cases), oriented so that a positive difference means the variant is
    better; paired t-test with dz and its CI; Holm over the whole table (one family). Where ``margins`` gives an
    equivalence margin for the metric (in its units), the paper's "no influence" claim (adding the location word,
    ``equivalence_variants``) is tested with TOST: p_tost, the 90% interval, equivalent, and TOST's power at this
    n."""
    out = []
    for m in metrics_shown:
        wide, _ = _ablation_wide(metrics, m, variant_col)
        if baseline not in wide:
            continue
        per_image = wide.groupby(level="image_id").mean()
        for variant in VARIANT_ORDER:
            if variant == baseline or variant not in per_image:
                continue
            a, b = _oriented(m, per_image[variant], per_image[baseline])
            row = {"metric": m, "variant": variant, "baseline": baseline, "n_objects": len(wide)}
            try:
                row.update(paired_test(a.to_numpy(), b.to_numpy(), alpha))
            except ValueError as err:
                row.update(n=len(per_image), p=np.nan, note=str(err))
                out.append(row)
                continue
            margin = (margins or {}).get(m) if variant in equivalence_variants else None
            if margin:
                t = tost_paired(a.to_numpy(), b.to_numpy(), margin, alpha)
                row.update(margin=margin, p_tost=t["p_tost"], ci90_low=t["ci90_low"], ci90_high=t["ci90_high"],
                           equivalent=t["equivalent"], tost_power=t["power"])
            out.append(row)
    table = pd.DataFrame(out)
    if len(table):
        table["p_holm"] = holm(table["p"])
    return table
