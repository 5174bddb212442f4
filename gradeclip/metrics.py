"""Map metrics: the one place for every number computed from an explanation map (paper section IV-B).

numpy (and torch where a map is a tensor), no pandas, no model: what is scored is passed in as a function, so
every metric here is tested with hand-made maps and scores against a slow plain reference.

Normalisation and localisation
* :func:`minmax`: each map min-max normalised to [0, 1]. Rule: a map without a finite positive range (constant, or
  holding NaN/inf) becomes all zeros, never NaN.
* :func:`pointing_hit` (pointing game), :func:`energy_share` (energy-based pointing game, Wang et al. 2020's
  Score-CAM energy), :func:`pointing_outcome`, :func:`distance_to_mask`, and the chance levels of a constant map
  :func:`uniform_pointing`, :func:`uniform_energy_share`. One rule for every map, :data:`MAP_RULES`:

  - a map's *mass* is its positive part; a map with no positive mass is **empty**: it explains nothing, and the
    caller says what that scores, always explicitly (``empty="miss"``: a failed map, pointing 0 and energy share 0,
    the toy model card's choice; ``empty="undefined"``: NaN, left out of means and counted, the section V tables'
    choice);
  - a *constant* non-empty map has no maximum to point with: a pointing miss;
  - a map with no mass on any object has energy share 0;
  - pointing ties go to the first maximal pixel in row-major order.
* :func:`spearman`: rank correlation of two maps (the model-parameter randomisation test of Adebayo et al. 2018);
  ties get average ranks, and a constant map has correlation 0 with anything (it carries no ranking).

Faithfulness (section IV-B1)
* :func:`perturbation_curves`: deletion and insertion. Pixels are ordered by the map (resized to the image by the
  caller), largest first; each step changes ``step_fraction`` of the image's pixels (0.5 %), ``steps`` steps (100),
  so the last step has changed half the image. Deletion replaces the first ``s`` steps' pixels of the image with a
  fill; insertion puts them onto a canvas of the fill. The perturbed images are scored by the caller's function
  (a task: zero-shot top-1/top-5 hits, retrieval recall) every ``score_every`` steps, many at once.
* :func:`auc` (the area under a curve, eq. 21-22) and :func:`imd` (insertion minus deletion, eq. 23).
* :func:`text_deletion` / :func:`text_insertion`: the text version, one word per step (5 steps).

What this follows: the authors' evaluation scripts, github Cyang-Zhao/Grad-Eclip @ 5c1b5cc,
``imagenet_eval_deletion.py`` and ``imagenet_eval_insertion.py`` (read, not copied; the repository has no
retrieval or text evaluation script, so those follow the paper's text, section IV-B1):

- order: ``np.argsort(-heatmap)`` over the min-max normalised map resized to the image; step size
  ``max(1, int(area / (2 L)))`` pixels with L = 100 steps, i.e. 0.5 % of the pixels;
- deletion fill: each deleted pixel gets a uniform random colour (``torch.rand(n, 3) * 255``, truncated to uint8);
  insertion starts from a black image (``np.zeros``) and copies the image's pixels in (here: ``fill="random"`` and
  ``fill="black"``, the defaults of :data:`DEFAULT_FILLS`);
- the perturbed image at original resolution goes through the model's standard preprocessing (the scorer's job).

Where this differs, and why:

- ties in the order go to the earlier pixel in row-major order (a stable sort); numpy's default quicksort leaves the
  order of equal values to the implementation, so a constant or coarse map deleted different pixels on another
  machine;
- the scripts score every 10th step (``cal_gap = 10``); here ``score_every`` says which (1 = every step, the curve
  of eq. 21-22; 10 = the scripts'), and :func:`auc` integrates whatever was scored;
- random fills are drawn once per image from a seeded generator (``seed`` and the image's index), so every method
  deletes into the same noise (paired comparisons over images), and a rerun gives the same numbers;
- the scripts' AUC is not in the repository; eq. 21-22 of the paper (lost in the text copy) sum the performance
  over the steps: :func:`auc` is the right Riemann sum over the scored steps 1..L, divided by L (the mean of the
  curve after step 0 when the steps are evenly spaced);
- fills ``"mean"`` (the image's mean colour) and ``"blur"`` (a Gaussian blur of the image, the insertion canvas of
  RISE, Petsiuk et al. 2018) are options of this project.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageFilter

Array = np.ndarray
MapLike = Union[np.ndarray, "torch.Tensor"]


def _is_tensor(x) -> bool:
    """Whether ``x`` is a torch tensor, without importing torch: this module is imported by numpy-only layers
    (``analysis.attributes``), and an object cannot be a tensor unless torch was imported already."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)

# ---------------------------------------------------------------------------------------------------------------
# Min-max normalisation
# ---------------------------------------------------------------------------------------------------------------
MINMAX_RULE = "each map to [0, 1]; a map without a finite positive range (constant, or with NaN/inf) becomes zeros"


def minmax(maps: MapLike, *, inplace: bool = False, dtype=None) -> MapLike:
    """Each map min-max normalised to [0, 1] over its last two axes (a 1-D array is one map); :data:`MINMAX_RULE`.

    numpy: the result keeps a floating input's dtype (others become float64, or ``dtype``); ``inplace`` writes it
    into the input when that already has the result's dtype (a full-resolution heat map of a large image is
    hundreds of MB). torch: a new tensor, the input's floating dtype, on its device.
    """
    if _is_tensor(maps):
        import torch

        x = maps if maps.is_floating_point() else maps.double()
        axes = tuple(range(max(x.dim() - 2, 0), x.dim()))
        lo = x.amin(dim=axes, keepdim=True)
        span = x.amax(dim=axes, keepdim=True) - lo
        ok = torch.isfinite(span) & (span > 0)
        out = (x - lo) / torch.where(ok, span, torch.ones_like(span))
        return torch.where(ok, out, torch.zeros_like(out))
    a = np.asarray(maps)
    target = np.dtype(dtype) if dtype is not None else (a.dtype if a.dtype.kind == "f" else np.dtype(np.float64))
    a = a.astype(target, copy=False)
    out = a if inplace and a is maps else np.empty_like(a)
    if a.ndim <= 2:  # one map: scalar bounds, no temporaries of the map's size
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if not (np.isfinite(hi - lo) and hi - lo > 0):
            out[...] = 0
            return out
        np.subtract(a, target.type(lo), out=out)
        out /= target.type(hi - lo)
        return out
    axes = (-2, -1)
    with np.errstate(invalid="ignore", over="ignore"):
        lo = a.min(axis=axes, keepdims=True)
        span = a.max(axis=axes, keepdims=True) - lo
    ok = np.isfinite(span) & (span > 0)
    np.subtract(a, np.where(ok, lo, 0).astype(target), out=out)
    out /= np.where(ok, span, 1).astype(target)
    np.copyto(out, 0, where=~np.broadcast_to(ok, out.shape))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Localisation: pointing game, energy share
# ---------------------------------------------------------------------------------------------------------------
EmptyRule = Literal["miss", "undefined"]
EMPTY_RULES = ("miss", "undefined")
MAP_RULES = ("a map's mass is its positive part; a map with no positive mass is empty and scores as the caller "
             "says: empty='miss' (pointing 0, energy share 0) or empty='undefined' (NaN, left out and counted); a "
             "constant non-empty map misses the pointing game; a map with no mass on any object has energy share "
             "0; pointing ties go to the first maximal pixel in row-major order")


def _check_empty_rule(empty: str) -> None:
    if empty not in EMPTY_RULES:
        raise ValueError(f"empty must be one of {EMPTY_RULES} (what an empty map scores), got {empty!r}")


def is_empty_map(pixel_map: np.ndarray) -> bool:
    """Whether a map has no positive mass (the empty-map rule of :data:`MAP_RULES`)."""
    a = np.asarray(pixel_map, dtype=np.float64)
    return not float(np.maximum(a, 0).sum()) > 0


def _empty_score(empty: str) -> float:
    _check_empty_rule(empty)
    return 0.0 if empty == "miss" else float("nan")


def distance_to_mask(pixel_map: np.ndarray, mask: np.ndarray) -> float:
    """Euclidean distance in pixels from the map's argmax (first in row-major order) to the nearest pixel of
    ``mask`` (0 inside it; inf for an empty mask)."""
    row, col = np.unravel_index(int(np.argmax(pixel_map)), np.shape(pixel_map))
    inside = np.argwhere(mask)
    if not len(inside):
        return float("inf")
    return float(np.hypot(inside[:, 0] - row, inside[:, 1] - col).min())


def pointing_hit(pixel_map: np.ndarray, mask: np.ndarray, *, empty: EmptyRule, tolerance: float = 0.0) -> float:
    """Pointing game: 1.0 if the map's largest pixel (ties: the first in row-major order) lies in ``mask`` or within
    ``tolerance`` pixels of it, else 0.0. A constant map misses; an empty map scores as ``empty`` says (0.0 or NaN).
    The map and the mask have the same shape (upsample a grid map to the pixels first)."""
    a = np.asarray(pixel_map, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if a.shape != m.shape:
        raise ValueError(f"map {a.shape} and mask {m.shape} differ in shape")
    _check_empty_rule(empty)
    if is_empty_map(a):
        return _empty_score(empty)
    if not a.max() > a.min():
        return 0.0
    if tolerance > 0:
        return float(distance_to_mask(a, m) <= tolerance)
    return float(m.flat[int(np.argmax(a))])


POINTING_OUTCOMES = ("named", "other_object", "background", "constant")


def pointing_outcome(pixel_map: np.ndarray, masks: np.ndarray, named: int) -> str:
    """Where the map's largest pixel lies: on the ``named`` object (the pointing game's hit), on another object, on
    the background, or nowhere (a constant map, an empty one included). ``masks``: (K, H, W) instance masks.
    Splitting the misses tells a model that confuses objects from one whose background tokens carry the text."""
    if pointing_hit(pixel_map, masks[named], empty="miss"):
        return "named"
    a = np.asarray(pixel_map)
    if not a.max() > a.min():
        return "constant"
    return "other_object" if pointing_hit(a, masks.any(axis=0), empty="miss") else "background"


def energy_share(pixel_map: np.ndarray, mask: np.ndarray, objects: np.ndarray, *, empty: EmptyRule) -> float:
    """Energy-based pointing game: the map's mass in ``mask`` / its mass in ``objects`` (the union of all objects'
    masks, which holds ``mask``); 0 when the map has no mass on any object; an empty map scores as ``empty`` says.
    Mass = the positive part of the map, summed in the map's own floating dtype (a float32 map's sums are float32's,
    as the toy model card computed them; other maps become float64)."""
    a = np.asarray(pixel_map)
    a = np.maximum(a if a.dtype.kind == "f" else a.astype(np.float64), 0)
    m, o = np.asarray(mask, dtype=bool), np.asarray(objects, dtype=bool)
    if not a.shape == m.shape == o.shape:
        raise ValueError(f"map {a.shape}, mask {m.shape} and objects {o.shape} differ in shape")
    _check_empty_rule(empty)
    if not a.sum() > 0:
        return _empty_score(empty)
    on_objects = float(a[o | m].sum())
    return float(a[m].sum()) / on_objects if on_objects > 0 else 0.0


def uniform_pointing(mask: np.ndarray) -> float:
    """Expected pointing game of a constant map scored as chance: its argmax is a uniformly random pixel, so the
    mask's area fraction."""
    return float(np.asarray(mask, dtype=bool).mean())


def uniform_energy_share(mask: np.ndarray, objects: np.ndarray) -> float:
    """Energy share of a constant map: the mask's area / all objects' area."""
    m, o = np.asarray(mask, dtype=bool), np.asarray(objects, dtype=bool)
    return float(m.sum()) / float((o | m).sum())


# ---------------------------------------------------------------------------------------------------------------
# Rank correlation (randomisation test)
# ---------------------------------------------------------------------------------------------------------------
def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties given the mean of the ranks they span (scipy's ``rankdata``)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    ends = np.r_[starts[1:], len(v)]
    ranks = np.empty(len(v), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps of the same size (the Pearson correlation of their average ranks); a
    constant map has correlation 0 with anything (it carries no ranking). NaN/inf values are an error."""
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"maps differ in size: {x.size} vs {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("a map holds NaN or inf values")
    rx, ry = average_ranks(x) - (len(x) + 1) / 2.0, average_ranks(y) - (len(y) + 1) / 2.0
    norm = np.sqrt(np.einsum("i,i->", rx, rx) * np.einsum("i,i->", ry, ry))
    return float(np.einsum("i,i->", rx, ry) / norm) if norm > 0 else 0.0


# ---------------------------------------------------------------------------------------------------------------
# Deletion and insertion
# ---------------------------------------------------------------------------------------------------------------
Mode = Literal["deletion", "insertion"]
MODES = ("deletion", "insertion")
Fill = Literal["random", "black", "mean", "blur"]
FILLS = ("random", "black", "mean", "blur")
#: The authors' scripts: deleted pixels become random colours; insertion starts from a black image.
DEFAULT_FILLS = {"deletion": "random", "insertion": "black"}
DEFAULT_STEPS = 100
DEFAULT_STEP_FRACTION = 0.005
DEFAULT_BLUR_SIGMA = 10.0


def step_size(n_pixels: int, step_fraction: float = DEFAULT_STEP_FRACTION) -> int:
    """Pixels changed per step: ``max(1, int(n_pixels * step_fraction))`` (the scripts' ``int(area / (2 L))``)."""
    if not 0 < step_fraction <= 1:
        raise ValueError(f"step_fraction must be in (0, 1], got {step_fraction}")
    return max(1, int(n_pixels * step_fraction + 1e-9))  # 1e-9: 200 * 0.005 is 1.0, not 0.99999...


def scored_steps(steps: int = DEFAULT_STEPS, score_every: int = 1) -> np.ndarray:
    """The steps at which a curve is scored: 0 (the unchanged image, or the bare canvas), every ``score_every``-th
    step, and the last step."""
    if steps < 1 or score_every < 1:
        raise ValueError(f"steps and score_every must be at least 1, got {steps} and {score_every}")
    return np.unique(np.r_[np.arange(0, steps + 1, score_every), steps])


def pixel_rank(heatmap: np.ndarray) -> np.ndarray:
    """(H, W) int: each pixel's place in the deletion order, 0 = the largest value; ties in row-major order."""
    h = np.asarray(heatmap, dtype=np.float64)
    if h.ndim != 2:
        raise ValueError(f"expected an (H, W) map at the image's resolution, got shape {h.shape}")
    if not np.isfinite(h).all():
        raise ValueError("the map holds NaN or inf values: no pixel order")
    order = np.argsort(-h.ravel(), kind="stable")
    rank = np.empty(h.size, dtype=np.int64)
    rank[order] = np.arange(h.size)
    return rank.reshape(h.shape)


def fill_image(image: np.ndarray, fill: Fill, rng: Optional[np.random.Generator] = None,
               blur_sigma: float = DEFAULT_BLUR_SIGMA) -> np.ndarray:
    """What replaces the image's pixels (H, W, 3) uint8: uniform random colours (the deletion script's
    ``torch.rand * 255`` truncated), black (the insertion script's canvas), the image's mean colour, or the image
    blurred with a Gaussian of ``blur_sigma`` pixels."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {img.dtype} {img.shape}")
    if fill == "random":
        if rng is None:
            raise ValueError("fill='random' needs a random generator")
        return (rng.random(img.shape) * 255.0).astype(np.uint8)
    if fill == "black":
        return np.zeros_like(img)
    if fill == "mean":
        return np.broadcast_to(np.round(img.reshape(-1, 3).mean(axis=0)).astype(np.uint8), img.shape).copy()
    if fill == "blur":
        return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(blur_sigma)))
    raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")


def perturbed_images(image: np.ndarray, rank: np.ndarray, counts: Sequence[int], fill: np.ndarray,
                     mode: Mode) -> np.ndarray:
    """(S, H, W, 3) uint8: for each count c, the image with its first c pixels of ``rank`` replaced by ``fill``
    (deletion), or ``fill`` with the image's first c pixels put in (insertion)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    changed = rank[None] < np.asarray(counts, dtype=np.int64)[:, None, None]  # (S, H, W)
    first, rest = (fill, image) if mode == "deletion" else (image, fill)
    return np.where(changed[..., None], first[None], rest[None])


def random_generator(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index``'s random fill: the same for every method that explains it."""
    return np.random.default_rng([seed, index])


# score(images, owners) -> values: ``images`` a list of S perturbed (H, W, 3) uint8 images, ``owners`` (S,) the index
# of the (image, map) pair each comes from; returns (S,) or (S, M) values (e.g. top-1 and top-5 hits).
Scorer = Callable[[list, np.ndarray], "np.ndarray | torch.Tensor"]


@dataclass
class Curves:
    """Deletion or insertion curves of N (image, map) pairs: ``values`` (N, P, M) at ``steps`` (P,) (step 0
    first); ``fractions`` (N, P) the fraction of each image's pixels changed at each scored step."""

    mode: str
    steps: np.ndarray
    values: np.ndarray
    fractions: np.ndarray
    total_steps: int

    def auc(self) -> np.ndarray:
        """(N, M) area under each curve (:func:`auc`)."""
        return auc(self.values, self.steps, axis=1)


def perturbation_curves(images: Sequence[np.ndarray], heatmaps: Sequence[np.ndarray], score: Scorer, *,
                        mode: Mode, steps: int = DEFAULT_STEPS, step_fraction: float = DEFAULT_STEP_FRACTION,
                        score_every: int = 1, fill: Optional[Fill] = None, seed: int = 0,
                        indices: Optional[Sequence[int]] = None, blur_sigma: float = DEFAULT_BLUR_SIGMA,
                        batch_size: int = 128) -> Curves:
    """Deletion or insertion curves of each image (H, W, 3) uint8 under its map (H, W) at the image's resolution.

    The scored steps (:func:`scored_steps`) of all pairs are made and passed to ``score`` in batches of up to
    ``batch_size`` images (the steps of one image together, several images per call when they fit): the model runs
    once per batch. ``fill`` defaults to the authors' (:data:`DEFAULT_FILLS`); a random fill is drawn per image from
    :func:`random_generator` with ``seed`` and the image's entry of ``indices`` (default: its position), so methods
    explaining the same image delete into the same noise."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if len(images) != len(heatmaps):
        raise ValueError(f"{len(images)} images but {len(heatmaps)} maps")
    fill = fill or DEFAULT_FILLS[mode]
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    indices = list(range(len(images))) if indices is None else list(indices)
    at = scored_steps(steps, score_every)
    values: list[Optional[np.ndarray]] = [None] * len(images)
    fractions = np.zeros((len(images), len(at)))
    pending_images: list[np.ndarray] = []
    pending_owners: list[int] = []

    def flush() -> None:
        if not pending_images:
            return
        out = score(pending_images, np.asarray(pending_owners))
        out = out.detach().cpu().numpy() if _is_tensor(out) else np.asarray(out)
        out = out.reshape(len(pending_images), -1).astype(np.float64)
        owners = np.asarray(pending_owners)
        for owner in np.unique(owners):
            rows = out[owners == owner]
            values[owner] = rows if values[owner] is None else np.concatenate([values[owner], rows])
        pending_images.clear()
        pending_owners.clear()

    for i, (image, heatmap) in enumerate(zip(images, heatmaps)):
        image = np.asarray(image)
        if np.shape(heatmap) != image.shape[:2]:
            raise ValueError(f"pair {i}: map {np.shape(heatmap)} is not at the image's resolution {image.shape[:2]}")
        rank = pixel_rank(heatmap)
        per_step = step_size(rank.size, step_fraction)
        counts = np.minimum(at * per_step, rank.size)
        fractions[i] = counts / rank.size
        rng = random_generator(seed, indices[i]) if fill == "random" else None
        canvas = fill_image(image, fill, rng, blur_sigma)
        for start in range(0, len(counts), batch_size):
            chunk = counts[start:start + batch_size]
            if len(pending_images) + len(chunk) > batch_size:
                flush()
            pending_images.extend(perturbed_images(image, rank, chunk, canvas, mode))
            pending_owners.extend([i] * len(chunk))
    flush()
    stacked = np.stack(values) if values else np.zeros((0, len(at), 1))
    return Curves(mode, at, stacked, fractions, steps)


def auc(values: np.ndarray, steps: np.ndarray, axis: int = -1) -> np.ndarray:
    """Area under curves scored at ``steps`` (P,), step 0 first, along ``axis`` of ``values``: the right Riemann sum
    sum_j f(s_j) (s_j - s_{j-1}) / s_P over the scored steps after 0, i.e. (1 / L) sum_{l=1}^{L} f_l when every
    step is scored (eq. 21-22), the mean of the scored points when they are evenly spaced."""
    steps = np.asarray(steps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if len(steps) < 2 or steps[0] != 0 or np.any(np.diff(steps) <= 0):
        raise ValueError(f"steps must start at 0 and increase, got {steps}")
    weights = np.diff(steps) / steps[-1]
    axis = axis % v.ndim
    if v.shape[axis] != len(steps):
        raise ValueError(f"{len(steps)} steps but curves of shape {v.shape}")
    body = np.take(v, np.arange(1, len(steps)), axis=axis)
    shape = [1] * v.ndim
    shape[axis] = len(weights)
    return (body * weights.reshape(shape)).sum(axis=axis)


def imd(insertion_auc, deletion_auc):
    """Insertion minus deletion (eq. 23): higher = more faithful."""
    return np.asarray(insertion_auc) - np.asarray(deletion_auc)


# ---------------------------------------------------------------------------------------------------------------
# Text deletion and insertion
# ---------------------------------------------------------------------------------------------------------------
DEFAULT_TEXT_STEPS = 5


def word_order(importances: Sequence[float]) -> np.ndarray:
    """Word indices from the most to the least important; ties go to the earlier word."""
    v = np.asarray(importances, dtype=np.float64)
    if not np.isfinite(v).all():
        raise ValueError("word importances hold NaN or inf values")
    return np.argsort(-v, kind="stable")


def text_steps(words: Sequence[str], importances: Sequence[float], mode: Mode,
               steps: int = DEFAULT_TEXT_STEPS) -> list[str]:
    """The texts of a text deletion or insertion curve, steps 0..``steps``: step s deletes (or inserts, onto the
    empty text) the s most important words, one word per step, the rest kept in their order and joined by spaces.
    Beyond the number of words a curve stays at the empty (deletion) or full (insertion) text."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if len(words) != len(importances):
        raise ValueError(f"{len(words)} words but {len(importances)} importances")
    order = word_order(importances)
    texts = []
    for s in range(steps + 1):
        chosen = set(order[:s].tolist())
        keep = [w for k, w in enumerate(words) if (k in chosen) == (mode == "insertion")]
        texts.append(" ".join(keep))
    return texts


def text_deletion(words: Sequence[str], importances: Sequence[float], steps: int = DEFAULT_TEXT_STEPS) -> list[str]:
    return text_steps(words, importances, "deletion", steps)


def text_insertion(words: Sequence[str], importances: Sequence[float], steps: int = DEFAULT_TEXT_STEPS) -> list[str]:
    return text_steps(words, importances, "insertion", steps)
