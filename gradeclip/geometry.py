"""Input geometry: from an image to the model's pixels, and from a patch-grid map back to the image's pixels.

Two modes:
- ``standard``: the model's own evaluation preprocessing (open_clip: resize the shortest side, center crop; or
  "squash"), reproduced here so that we also know *where* the crop came from;
- ``keep-aspect``: the official Grad-ECLIP preprocessing for maps (the authors' notebook grad_eclip_image.ipynb,
  github Cyang-Zhao/Grad-Eclip): each side resized to the nearest multiple of the patch size, no crop (the
  positional embeddings are resized in ``adapters``).

In both, a ``Registration`` records which rectangle of the original image the model's input covers, so a grid map
is put back on the original pixels (a center crop maps back to where it came from; outside it the map is 0):
:func:`grid_to_pixels`, the one upsampling of maps in the project (:func:`resize_map` for a map that covers the
whole image, :func:`heatmap` for the displayed map).

The way back is numpy only and this module imports torch/torchvision only inside the input side's functions, so
that the analysis layer (torch-free) maps grids to pixels through this module too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image

from . import metrics

if TYPE_CHECKING:
    import torch

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Preprocessing:
    """What the model expects: input size (h, w), normalisation, interpolation and open_clip's resize mode."""

    size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"

    @classmethod
    def from_open_clip(cls, cfg: dict) -> "Preprocessing":
        size = cfg.get("size", 224)
        size = (size, size) if isinstance(size, int) else tuple(size)
        mode = cfg.get("resize_mode", "shortest")
        if mode not in ("shortest", "squash"):
            raise ValueError(f"resize_mode {mode!r} is not supported (use 'shortest' or 'squash', or keep_aspect)")
        return cls(size=size, mean=tuple(cfg.get("mean", OPENAI_MEAN)), std=tuple(cfg.get("std", OPENAI_STD)),
                   interpolation=cfg.get("interpolation", "bicubic"), resize_mode=mode)


def _interp(name: str):
    from torchvision.transforms import InterpolationMode  # lazy: the input side only (see the module docstring)

    # "random" is accepted by open_clip and means bicubic at evaluation time
    return {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR,
            "nearest": InterpolationMode.NEAREST, "random": InterpolationMode.BICUBIC}[name]


def _normalise(img: Image.Image, prep: Preprocessing) -> torch.Tensor:
    from torchvision.transforms import functional as TF  # lazy: the input side only (see the module docstring)

    return TF.normalize(TF.to_tensor(img), prep.mean, prep.std)


def standard_input(img: Image.Image, prep: Preprocessing) -> tuple[torch.Tensor, Registration]:
    """The model's evaluation preprocessing (identical pixels to open_clip's ``image_transform``) and the
    rectangle of the original image that the crop covers."""
    from torchvision.transforms import functional as TF  # lazy: the input side only (see the module docstring)

    w, h = img.size
    th, tw = prep.size
    if prep.resize_mode == "squash":
        out = TF.resize(img, [th, tw], interpolation=_interp(prep.interpolation))
        return _normalise(out, prep), Registration((w, h), (0.0, 0.0, float(w), float(h)))
    if th == tw:
        # torchvision's Resize(int): shortest side to `th`, the other as int(th * long / short)
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(th * long / short)
        nw, nh = (th, new_long) if w <= h else (new_long, th)
    else:
        # open_clip's ResizeKeepRatio for non-square targets: scale so both sides cover the target. Same arithmetic
        # as open_clip (divide by min(h/th, w/tw)); multiplying by max(th/h, tw/w) instead rounds differently at
        # .5 ties (e.g. 10x25 -> (200, 201): 502.49999 vs 502.50001) and gives a different resize.
        ratio = min(h / th, w / tw)
        nw, nh = round(w / ratio), round(h / ratio)
    # open_clip builds ResizeKeepRatio(size) for non-square targets without passing its interpolation, so that
    # resize is always bicubic; Resize(int) for square targets uses the configured one.
    interp = _interp(prep.interpolation) if th == tw else _interp("bicubic")
    out = TF.resize(img, [nh, nw], interpolation=interp)
    top, left = int(round((nh - th) / 2.0)), int(round((nw - tw) / 2.0))
    out = TF.crop(out, top, left, th, tw)
    sx, sy = nw / w, nh / h
    box = (left / sx, top / sy, (left + tw) / sx, (top + th) / sy)
    return _normalise(out, prep), Registration((w, h), box)


def keep_aspect_size(width: int, height: int, patch: Sequence[int], max_short_side: int | None = 640,
                     max_tokens: int | None = 4096) -> tuple[int, int]:
    """(width, height) for keep-aspect input: each side rounded to the nearest multiple of the patch size
    (``int(x / P + 0.5) * P``, at least one patch), after scaling the short side down to ``max_short_side`` as the
    official code does for large images; ``max_tokens`` further bounds the number of patches (memory)."""
    ph, pw = patch
    scale = 1.0
    if max_short_side and min(width, height) > max_short_side:
        scale = max_short_side / min(width, height)
    if max_tokens:
        tokens = (width * scale / pw) * (height * scale / ph)
        if tokens > max_tokens:
            scale *= (max_tokens / tokens) ** 0.5
    new_w = max(pw, int(width * scale / pw + 0.5) * pw)
    new_h = max(ph, int(height * scale / ph + 0.5) * ph)
    return new_w, new_h


def keep_aspect_input(img: Image.Image, prep: Preprocessing, patch: Sequence[int], max_short_side: int | None = 640,
                      max_tokens: int | None = 4096) -> tuple[torch.Tensor, Registration]:
    w, h = img.size
    nw, nh = keep_aspect_size(w, h, patch, max_short_side, max_tokens)
    from torchvision.transforms import functional as TF  # lazy: the input side only (see the module docstring)

    out = TF.resize(img, [nh, nw], interpolation=_interp("bicubic"))
    return _normalise(out, prep), Registration((w, h), (0.0, 0.0, float(w), float(h)))


# -----------------------------------------------------------------------------------------------------------------
# The way back: grid maps onto the image's pixels (numpy only)
# -----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Registration:
    """Where the model's input lies on the original image: the box (x0, y0, x1, y1) in original pixel units
    (may be fractional) and the original size (width, height)."""

    image_size: tuple[int, int]
    box: tuple[float, float, float, float]


def _bilinear_weights(n_out: int, start: float, stop: float, n_in: int) -> np.ndarray:
    """(n_out, n_in) matrix of 1-D bilinear weights (align_corners=False) that maps ``n_in`` grid cells spread
    over [start, stop) in output pixel units onto output pixels 0..n_out-1; rows of pixels outside are zero.

    Written by hand because bilinear upsampling is separable: two small matrices put a 14x14 grid on a
    10000x10000 image without the H*W*2 sampling grid that torch's grid_sample would need.
    """
    centers = np.arange(n_out, dtype=np.float64) + 0.5
    src = (centers - start) * (n_in / (stop - start)) - 0.5
    src_c = np.clip(src, 0, n_in - 1)
    i0 = np.floor(src_c).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    t = src_c - i0
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(weights, (rows, i0), 1 - t)
    np.add.at(weights, (rows, i1), t)
    weights[(centers < start) | (centers > stop)] = 0.0
    return weights


def minmax(a: np.ndarray, inplace: bool = False) -> np.ndarray:
    """Min-max normalise to [0, 1] in float32 (``metrics.minmax``, its one rule: a constant map gives zeros, never
    NaN). ``inplace`` writes the result into ``a`` when it is already a float32 array instead of allocating another
    one (a full-resolution heat map of a 10000x10000 image is 400 MB)."""
    return metrics.minmax(np.asarray(a, dtype=np.float32), inplace=inplace, dtype=np.float32)


def grid_to_pixels(grid: np.ndarray, reg: Registration, dtype=np.float32) -> np.ndarray:
    """Upsample a (h, w) grid map bilinearly onto the original image's pixels; 0 outside the model's view. The one
    upsampling of maps in the project (:func:`resize_map` is the same with the whole image as the view)."""
    w, h = reg.image_size
    x0, y0, x1, y1 = reg.box
    wy = _bilinear_weights(h, y0, y1, grid.shape[0]).astype(dtype)
    wx = _bilinear_weights(w, x0, x1, grid.shape[1]).astype(dtype)
    return wy @ np.asarray(grid, dtype=dtype) @ wx.T


def resize_map(grid: np.ndarray, shape: tuple[int, int], dtype=np.float64) -> np.ndarray:
    """A (h, w) map resampled bilinearly onto ``shape`` = (H, W) pixels that it covers whole (align_corners=False,
    edge values clamped: what ``scipy.ndimage.zoom(order=1, mode="nearest", grid_mode=True)`` computes)."""
    height, width = shape
    return grid_to_pixels(np.asarray(grid), Registration((width, height), (0.0, 0.0, float(width), float(height))),
                          dtype)


def _inside(n_out: int, start: float, stop: float) -> slice:
    """The output pixels whose centers lie in [start, stop] (those ``_bilinear_weights`` does not zero)."""
    centers = np.arange(n_out, dtype=np.float64) + 0.5
    idx = np.flatnonzero((centers >= start) & (centers <= stop))
    return slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0)


def heatmap(grid: np.ndarray, reg: Registration) -> np.ndarray:
    """The displayed heat map: the grid upsampled to the original pixels, min-max normalised to [0, 1] over the
    pixels the model saw, and 0 outside them.

    Normalising over the model's view only (not over the whole image, where the zeros outside a center crop would
    act as the minimum) makes the map inside the crop independent of whether there is a crop, and a constant grid
    give zeros everywhere instead of a uniformly "hot" crop box.

    The grid is min-max normalised first: float32 upsampling weights do not sum to exactly 1, so the upsampled map of
    a constant grid varies by rounding noise, which the final min-max would blow up to a full [0, 1] pattern.
    """
    pixels = grid_to_pixels(minmax(grid), reg)
    (w, h), (x0, y0, x1, y1) = reg.image_size, reg.box
    view = pixels[_inside(h, y0, y1), _inside(w, x0, x1)]
    if view.size:
        minmax(view, inplace=True)  # a view of our own upsampled map: normalised in place (memory, see minmax)
    return pixels
