"""Input geometry: standard preprocessing is open_clip's own (pixel for pixel), the Registration box maps model-input
positions back to the original image (marker round trips), heat maps land where their grid cells are, and keep-aspect
grids have the shapes the real architectures give."""
from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from gradeclip import geometry
from gradeclip.explainer import GradECLIP
from gradeclip.geometry import (Preprocessing, Registration, grid_to_pixels, heatmap, keep_aspect_input, resize_map,
                                standard_input)
from gradeclip.models import load_clip
from tests.conftest import random_image


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# landscape, portrait, odd sizes, near-square, extreme aspect, tiny
SIZES = [(333, 250), (250, 333), (301, 199), (97, 411), (225, 224), (20, 150), (1, 1), (10, 25)]


# --------------------------------------------------------------------------------------- standard preprocessing
@pytest.mark.parametrize("target, interpolation", [
    (224, "bicubic"), ((192, 256), "bicubic"), ((256, 160), "bicubic"), ((200, 201), "bicubic"),
    (224, "bilinear"), ((192, 256), "bilinear")])
def test_standard_input_is_open_clips_preprocessing(target, interpolation):
    """Same tensor as open_clip.image_transform(is_train=False), for square and non-square targets (for which
    open_clip always resizes bicubically, whatever the configured interpolation)."""
    transform = open_clip.image_transform(target, is_train=False, interpolation=interpolation)
    size = (target, target) if isinstance(target, int) else target
    prep = Preprocessing(size=size, interpolation=interpolation)
    for i, (w, h) in enumerate(SIZES):
        img = random_image(w, h, seed=i)
        ours, reg = standard_input(img, prep)
        theirs = transform(img)
        assert ours.shape == theirs.shape == (3, *size), (w, h)
        assert torch.equal(ours, theirs), f"{w}x{h} -> {size} ({interpolation}) differs from open_clip"
        assert reg.image_size == (w, h)


def test_standard_input_squash_is_open_clips():
    transform = open_clip.image_transform(224, is_train=False, resize_mode="squash")
    img = random_image(301, 199, seed=3)
    ours, reg = standard_input(img, Preprocessing(resize_mode="squash"))
    assert torch.equal(ours, transform(img))
    assert reg.box == (0.0, 0.0, 301.0, 199.0)


# --------------------------------------------------------------------------------------- marker round trips
def _marker_image(w: int, h: int, x: int, y: int, side: int = 9) -> Image.Image:
    img = Image.new("RGB", (w, h), (0, 0, 0))
    ImageDraw.Draw(img).rectangle([x, y, x + side - 1, y + side - 1], fill=(255, 255, 255))
    return img


def _bright_centroid(pixels: torch.Tensor) -> tuple[float, float]:
    """Centroid (x, y) of the bright blob in a normalised model input, in continuous input coordinates (pixel i
    covers [i, i + 1))."""
    a = pixels.mean(0).numpy().astype(np.float64)
    a = a - a.min()
    a = np.where(a > 0.5 * a.max(), a, 0.0)  # the square, without bicubic ringing
    ys, xs = np.mgrid[0:a.shape[0], 0:a.shape[1]]
    return float((a * (xs + 0.5)).sum() / a.sum()), float((a * (ys + 0.5)).sum() / a.sum())


def _to_original(reg: Registration, input_size: tuple[int, int], x: float, y: float) -> tuple[float, float]:
    """An input position mapped through the Registration box (input (h, w) spans the box)."""
    (x0, y0, x1, y1), (ih, iw) = reg.box, input_size
    return x0 + x * (x1 - x0) / iw, y0 + y * (y1 - y0) / ih


@pytest.mark.parametrize("w, h, x, y", [(301, 199, 190, 40), (199, 301, 30, 210), (517, 233, 300, 150),
                                         (640, 480, 100, 300)])
@pytest.mark.parametrize("mode", ["standard", "standard-nonsquare", "keep-aspect"])
def test_marker_maps_back_to_its_original_position(w, h, x, y, mode):
    side = 9
    img = _marker_image(w, h, x, y, side)
    if mode == "keep-aspect":
        pixels, reg = keep_aspect_input(img, Preprocessing(), (16, 16))
    else:
        prep = Preprocessing(size=(224, 224) if mode == "standard" else (192, 256))
        pixels, reg = standard_input(img, prep)
    ih, iw = pixels.shape[-2:]
    x0, y0, x1, y1 = reg.box
    assert x0 <= x and x + side <= x1 and y0 <= y and y + side <= y1, "marker must be inside the model's view"
    cx, cy = _bright_centroid(pixels)
    ox, oy = _to_original(reg, (ih, iw), cx, cy)
    one_input_pixel = max((x1 - x0) / iw, (y1 - y0) / ih)
    assert abs(ox - (x + side / 2)) <= one_input_pixel, (ox, x + side / 2)
    assert abs(oy - (y + side / 2)) <= one_input_pixel, (oy, y + side / 2)


# --------------------------------------------------------------------------------------- heat maps
def _peak_check(grid_shape, cell, reg):
    grid = np.zeros(grid_shape, dtype=np.float32)
    grid[cell] = 1.0
    hm = heatmap(grid, reg)
    assert hm.shape == (reg.image_size[1], reg.image_size[0])
    x0, y0, x1, y1 = reg.box
    cw, ch = (x1 - x0) / grid_shape[1], (y1 - y0) / grid_shape[0]  # one cell in original pixels
    ex, ey = x0 + (cell[1] + 0.5) * cw, y0 + (cell[0] + 0.5) * ch  # the cell's center on the original image
    # bilinear upsampling of one hot cell peaks at the cell center: the pixel nearest to it holds the maximum...
    # (within half a pixel of it, a bilinear tent falls by at most 0.5 / cell size along each axis)
    nearest = hm[min(int(ey), hm.shape[0] - 1), min(int(ex), hm.shape[1] - 1)]
    assert nearest >= (1 - 0.5 / cw) * (1 - 0.5 / ch) - 1e-6
    assert hm.max() == pytest.approx(1.0)
    # ...and every pixel at the maximum lies within the cell (a border cell is flat out to the box edge, as in
    # torch's align_corners=False interpolation)
    ys, xs = np.nonzero(hm >= hm.max() - 1e-6)
    assert np.all(np.abs(xs + 0.5 - ex) <= cw / 2 + 0.5) and np.all(np.abs(ys + 0.5 - ey) <= ch / 2 + 0.5)
    if 0 < cell[0] < grid_shape[0] - 1 and 0 < cell[1] < grid_shape[1] - 1:  # interior cell: a single peak
        iy, ix = np.unravel_index(np.argmax(hm), hm.shape)
        assert abs(ix + 0.5 - ex) <= 0.5 + 1e-6 and abs(iy + 0.5 - ey) <= 0.5 + 1e-6, ((ix, iy), (ex, ey))


@pytest.mark.parametrize("w, h", [(301, 199), (199, 301), (640, 97)])
def test_one_hot_cell_peaks_at_its_position_in_both_modes(w, h):
    img = random_image(w, h)
    _, reg = standard_input(img, Preprocessing())
    assert reg.box != (0.0, 0.0, float(w), float(h)), "the standard mode must crop these images"
    for cell in [(0, 0), (3, 10), (13, 13), (6, 2)]:
        _peak_check((14, 14), cell, reg)
    pixels, reg = keep_aspect_input(img, Preprocessing(), (16, 16))
    shape = (pixels.shape[-2] // 16, pixels.shape[-1] // 16)
    for cell in [(0, 0), (shape[0] - 1, shape[1] - 1), (shape[0] // 2, shape[1] // 3)]:
        _peak_check(shape, cell, reg)


@pytest.mark.parametrize("w, h", [(301, 199), (199, 301)])
def test_heatmap_is_zero_outside_the_crop_box(w, h):
    _, reg = standard_input(random_image(w, h), Preprocessing())
    x0, y0, x1, y1 = reg.box
    grid = np.random.default_rng(0).uniform(1.0, 2.0, (14, 14)).astype(np.float32)  # > 0 everywhere
    hm = heatmap(grid, reg)
    cols, rows = np.arange(w) + 0.5, np.arange(h) + 0.5
    outside = ~((cols >= x0) & (cols <= x1))[None, :] | ~((rows >= y0) & (rows <= y1))[:, None]
    assert outside.any() and (~outside).any()
    assert np.all(hm[outside] == 0)
    # inside: the normalised upsampled grid, spanning [0, 1] over the model's view
    inside = hm[~outside]
    assert inside.min() == pytest.approx(0.0, abs=1e-6) and inside.max() == pytest.approx(1.0)
    raw = grid_to_pixels(grid, reg)[~outside]
    np.testing.assert_allclose(inside, (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-5)


def test_heatmap_inside_the_crop_does_not_depend_on_the_crop():
    """The crop region normalised on its own equals the keep-aspect style full-box map of the same grid."""
    _, reg = standard_input(random_image(448, 224), Preprocessing())  # crop box = x in [112, 336), exactly 224 px
    assert reg.box == (112.0, 0.0, 336.0, 224.0)
    grid = np.random.default_rng(1).uniform(5.0, 10.0, (7, 7)).astype(np.float32)
    cropped = heatmap(grid, reg)
    alone = heatmap(grid, Registration((224, 224), (0.0, 0.0, 224.0, 224.0)))
    np.testing.assert_allclose(cropped[:, 112:336], alone, atol=1e-6)


@pytest.mark.parametrize("grid_shape, size", [((7, 5), (53, 91)), ((14, 14), (224, 224)), ((14, 14), (10, 9)),
                                              ((15, 20), (240, 320)), ((1, 1), (5, 7)), ((3, 4), (3, 4))])
def test_grid_to_pixels_full_box_equals_torch_bilinear(grid_shape, size):
    grid = np.random.default_rng(2).normal(size=grid_shape).astype(np.float32)
    h, w = size
    ours = grid_to_pixels(grid, Registration((w, h), (0.0, 0.0, float(w), float(h))))
    ref = F.interpolate(torch.from_numpy(grid)[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grid_shape, size", [((7, 5), (53, 91)), ((14, 14), (224, 224)), ((14, 14), (10, 9)),
                                              ((1, 1), (5, 7)), ((3, 4), (3, 4)), ((14, 14), (480, 320))])
def test_resize_map_equals_scipy_zoom_in_float64(grid_shape, size):
    """resize_map (the upsampling the section V tables use for maps of another shape than their mask) is scipy's
    order-1 zoom on the pixel-area grid with clamped edges, to float64 rounding."""
    from scipy import ndimage

    grid = np.random.default_rng(3).normal(size=grid_shape)
    factors = (size[0] / grid_shape[0], size[1] / grid_shape[1])
    ref = ndimage.zoom(grid, factors, order=1, mode="nearest", grid_mode=True)
    assert ref.shape == size
    ours = resize_map(grid, size)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("value", [0.0, 3.0, 1e-30])
def test_constant_grid_gives_zeros_never_nan(value):
    grid = np.full((14, 14), value, dtype=np.float32)
    for reg in [standard_input(random_image(301, 199), Preprocessing())[1],
                Registration((301, 199), (0.0, 0.0, 301.0, 199.0)), Registration((1, 1), (0.0, 0.0, 1.0, 1.0))]:
        hm = heatmap(grid, reg)
        assert np.isfinite(hm).all()
        assert np.all(hm == 0), (value, reg)
    assert np.all(geometry.minmax(np.full((3, 3), np.float32(7))) == 0)


def test_minmax_inplace_and_copy_agree_and_copy_leaves_input():
    a = np.random.default_rng(3).normal(size=(5, 6)).astype(np.float32)
    before = a.copy()
    out = geometry.minmax(a)
    np.testing.assert_array_equal(a, before)
    assert out.min() == 0 and out.max() == pytest.approx(1.0)
    same = geometry.minmax(a, inplace=True)
    assert same is a
    np.testing.assert_allclose(same, out, atol=1e-7)


# --------------------------------------------------------------------------------------- keep-aspect sizes
def test_keep_aspect_size_rounds_each_side_to_the_nearest_patch_multiple():
    assert geometry.keep_aspect_size(320, 240, (16, 16)) == (320, 240)
    assert geometry.keep_aspect_size(301, 199, (16, 16)) == (304, 192)  # 18.8 -> 19, 12.4 -> 12 patches
    assert geometry.keep_aspect_size(1, 1, (16, 16)) == (16, 16)  # at least one patch
    assert geometry.keep_aspect_size(7, 300, (16, 16)) == (16, 304)


@pytest.mark.parametrize("w, h", [(2000, 1000), (1000, 3000), (641, 5000), (10000, 10000)])
def test_keep_aspect_scales_large_images_to_the_max_short_side(w, h):
    nw, nh = geometry.keep_aspect_size(w, h, (16, 16), max_short_side=640, max_tokens=None)
    scale = 640 / min(w, h)
    assert abs(min(nw, nh) - 640) <= 8  # the short side is 640, rounded to a multiple of 16
    assert abs(nw - w * scale) <= 8 and abs(nh - h * scale) <= 8
    assert nw % 16 == 0 and nh % 16 == 0
    # the token bound caps the number of patches further, keeping the aspect ratio
    bw, bh = geometry.keep_aspect_size(w, h, (16, 16), max_short_side=640, max_tokens=1024)
    assert (bw // 16) * (bh // 16) <= 1024 * 1.1
    assert bw / bh == pytest.approx(w / h, rel=0.1)
    # small images are not scaled
    assert geometry.keep_aspect_size(600, 500, (16, 16), max_short_side=640) == (608, 496)


# --------------------------------------------------------------------------------------- real architectures
@pytest.fixture(scope="module")
def vit_b16():
    return GradECLIP(load_clip("ViT-B-16", None), keep_aspect=True)


@pytest.fixture(scope="module")
def rn50():
    return GradECLIP(load_clip("RN50", None), keep_aspect=True)


def test_vit_b16_keep_aspect_grid(vit_b16):
    img = random_image(320, 240)
    out = vit_b16(img, ["a photo of a dog"])[0]
    assert vit_b16.image_tower.patch_size == (16, 16)
    assert out.grid.shape == (15, 20)  # h = 240 / 16, w = 320 / 16
    assert out.heatmap.shape == (240, 320)
    assert np.isfinite(out.grid).all() and (out.grid >= 0).all()
    # the standard mode of the same model gives its native 14 x 14 grid
    pixels, _ = vit_b16.image_input(img, keep_aspect=False)
    assert vit_b16.image_tower.grid_of(pixels[None]) == (14, 14)


def test_vit_b16_keep_aspect_inputs_for_other_sizes(vit_b16):
    for w, h in [(333, 250), (250, 333), (2000, 1000)]:
        pixels, reg = vit_b16.image_input(random_image(w, h))
        nw, nh = geometry.keep_aspect_size(w, h, (16, 16))
        assert pixels.shape == (3, nh, nw) and reg.box == (0.0, 0.0, float(w), float(h))
        assert vit_b16.image_tower.grid_of(pixels[None]) == (nh // 16, nw // 16)
    pixels, _ = vit_b16.image_input(random_image(2000, 1000))
    assert min(pixels.shape[-2:]) == 640  # max_short_side


def test_rn50_keep_aspect_grid(rn50):
    w, h = 300, 170  # 9.4 and 5.3 patches of 32: no rounding ties
    out = rn50(random_image(w, h), ["a photo of a dog"])[0]
    assert out.grid.shape == (round(h / 32), round(w / 32)) == (5, 9)
    assert out.heatmap.shape == (h, w)
    assert np.isfinite(out.grid).all()
    pixels, _ = rn50.image_input(random_image(150, 420))
    assert rn50.image_tower.grid_of(pixels[None]) == (round(420 / 32), round(150 / 32))
