"""From a patch-grid map back to the image's pixels (numpy only): the one upsampling of maps in the project.

A ``Registration`` (made by ``gradeclip.geometry`` with the model's input) records which rectangle of the original
image the model's input covers; :func:`grid_to_pixels` puts a grid map bilinearly on the original pixels (0 outside
that rectangle), :func:`resize_map` is the same for a map that covers the whole image (the section V tables, when a
map and its mask differ in shape), and :func:`heatmap` is the displayed, min-max normalised map.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import minmax as minmax_maps


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
    return minmax_maps(np.asarray(a, dtype=np.float32), inplace=inplace, dtype=np.float32)


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
