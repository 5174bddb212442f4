"""Pure-numpy rasterisation of toy objects, with exact instance masks.

Every object is a small "glyph" built from flat parts (a cube is a front square
plus a lighter top face and a darker side face; a sphere is a disc; a cylinder
is a rectangle body with a rounded bottom and an elliptical top). Each pixel
whose centre falls inside a part is painted with a colour from a per-pixel
normal (Lambert shading; metal adds a Blinn-Phong highlight), and exactly those
pixels form the object's mask. There is no anti-aliasing and no shadow, so
the mask is precisely "the pixels painted for this object".

Only + - * / sqrt and comparisons are used (no pow/exp/trig, no text
rendering), all in float64: these are correctly rounded under IEEE-754, so
images are bit-identical across machines and numpy builds.
"""

import math
from dataclasses import dataclass

import numpy as np

from gradeclip.toyworld.camera import Camera
from gradeclip.toyworld.objects import ToyObject
from gradeclip.toyworld.vocabulary import COLOR_RGB

# Glyph proportions, in units of the object's on-screen radius.
CUBE_HALF_SIDE = 0.85  # CLEVR also shrinks cubes so they look as big as spheres
CUBE_FACE_DEPTH = 0.5  # oblique offset of the top and side faces, in half sides
CYLINDER_BODY_HEIGHT = 1.6
CYLINDER_ELLIPSE = 0.35  # semi-minor axis of the top and bottom ellipses


def _unit(x: float, y: float, z: float) -> tuple[float, float, float]:
    norm = math.sqrt(x * x + y * y + z * z)
    return (x / norm, y / norm, z / norm)


# Camera-space vectors: x right, y up, z towards the viewer.
LIGHT = _unit(-0.45, 0.55, 0.70)  # key light from the upper left front
HALF_VECTOR = _unit(LIGHT[0], LIGHT[1], LIGHT[2] + 1.0)  # Blinn-Phong, viewer on +z


@dataclass(frozen=True)
class Box:
    """Axis-aligned pixel-space bounds of a glyph (continuous coordinates)."""

    left: float
    top: float
    right: float
    bottom: float

    def separated_from(self, other: "Box", gap: float) -> bool:
        return (
            self.right + gap <= other.left
            or other.right + gap <= self.left
            or self.bottom + gap <= other.top
            or other.bottom + gap <= self.top
        )

    def inside_image(self, image_size: int, border: float) -> bool:
        return (
            self.left >= border
            and self.top >= border
            and self.right <= image_size - border
            and self.bottom <= image_size - border
        )


def _glyph_anchor(obj: ToyObject, camera: Camera) -> tuple[float, float, float]:
    """(centre column, ground row, on-screen radius) of an object's glyph."""
    return camera.column(obj.x), camera.ground_row(obj.y), obj.radius * camera.pixels_per_unit


def object_box(obj: ToyObject, camera: Camera) -> Box:
    """Bounds that contain every pixel the object can paint."""
    u, ground, r = _glyph_anchor(obj, camera)
    if obj.shape == "sphere":
        return Box(u - r, ground - 2.0 * r, u + r, ground)
    if obj.shape == "cube":
        half = CUBE_HALF_SIDE * r
        depth = CUBE_FACE_DEPTH * half
        width = 2.0 * half + depth
        return Box(u - width / 2.0, ground - 2.0 * half - depth, u + width / 2.0, ground)
    if obj.shape == "cylinder":
        height = CYLINDER_BODY_HEIGHT * r + 2.0 * CYLINDER_ELLIPSE * r
        return Box(u - r, ground - height, u + r, ground)
    raise ValueError(f"unknown shape {obj.shape!r}")


def _sphere_parts(u, ground, r, px, py):
    dx = (px - u) / r
    dy = (py - (ground - r)) / r
    rr = dx * dx + dy * dy
    nz = np.sqrt(np.maximum(1.0 - rr, 0.0))
    return [(rr <= 1.0, dx, -dy, nz)]


def _cube_parts(u, ground, r, px, py):
    half = CUBE_HALF_SIDE * r
    depth = CUBE_FACE_DEPTH * half
    left = u - (2.0 * half + depth) / 2.0
    right = left + 2.0 * half
    top = ground - 2.0 * half
    # Face coordinates in [-1, 1]; bulging the flat faces' normals slightly
    # gives smooth shading and lets a metal cube show a highlight spot.
    a = (px - (left + half)) / half
    b = ((ground - half) - py) / half
    front = (px >= left) & (px <= right) & (py >= top) & (py <= ground)

    rise = top - py  # how far into the oblique top face
    top_face = (rise >= 0.0) & (rise <= depth) & (px >= left + rise) & (px <= right + rise)
    a_top = (px - rise - (left + half)) / half

    run = px - right  # how far into the oblique side face
    side = (run >= 0.0) & (run <= depth) & (py >= top - run) & (py <= ground - run)
    b_side = ((ground - half - run) - py) / half

    ones = np.ones_like(a)
    return [
        (front, 0.5 * a, 0.5 * b, ones),
        (side, ones, 0.3 * b_side, 0.6 * ones),
        (top_face, 0.4 * a_top, ones, 0.7 * ones),
    ]


def _cylinder_parts(u, ground, r, px, py):
    ellipse = CYLINDER_ELLIPSE * r
    bottom_center = ground - ellipse
    top_center = bottom_center - CYLINDER_BODY_HEIGHT * r
    dx = (px - u) / r
    dx2 = dx * dx
    dy_bottom = (py - bottom_center) / ellipse
    dy_top = (py - top_center) / ellipse
    straight = (np.abs(dx) <= 1.0) & (py >= top_center) & (py <= bottom_center)
    body = straight | (dx2 + dy_bottom * dy_bottom <= 1.0)
    top_face = dx2 + dy_top * dy_top <= 1.0
    # The body is lit like a vertical cylinder (normal varies with column only),
    # which is what makes it read as round next to a flat-faced cube. Tilting
    # the normals slightly upwards (the camera looks down) puts a metal
    # cylinder's highlight on a full-height bright stripe.
    body_nz = np.sqrt(np.maximum(1.0 - dx2, 0.0))
    tilt = np.full_like(dx2, 0.3)
    return [
        (body, dx, tilt, body_nz),
        (top_face, 0.4 * dx, np.ones_like(dx2), 0.35 - 0.3 * dy_top),
    ]


_PARTS = {"sphere": _sphere_parts, "cube": _cube_parts, "cylinder": _cylinder_parts}


def _shade(base_rgb: np.ndarray, material: str, nx, ny, nz) -> np.ndarray:
    """RGB floats for pixels with (unnormalised) normals nx, ny, nz."""
    inv = 1.0 / np.sqrt(nx * nx + ny * ny + nz * nz)
    nx, ny, nz = nx * inv, ny * inv, nz * inv
    diffuse = np.maximum(nx * LIGHT[0] + ny * LIGHT[1] + nz * LIGHT[2], 0.0)[..., None]
    if material == "rubber":
        return base_rgb * (0.35 + 0.8 * diffuse)
    # Metal: darker body, sharp white highlight (exponent 32 by repeated squaring,
    # avoiding pow()).
    color = np.minimum(base_rgb * (0.25 + 0.65 * diffuse), 255.0)
    spec = np.maximum(nx * HALF_VECTOR[0] + ny * HALF_VECTOR[1] + nz * HALF_VECTOR[2], 0.0)
    for _ in range(5):
        spec = spec * spec
    return color + (255.0 - color) * (0.95 * spec[..., None])


@dataclass(frozen=True)
class Sprite:
    """An object's painted pixels inside the image window rows x cols."""

    rows: slice
    cols: slice
    mask: np.ndarray  # (h, w) bool
    rgb: np.ndarray  # (h, w, 3) uint8, meaningful where mask


def rasterize(obj: ToyObject, camera: Camera, background_rgb) -> Sprite:
    """Paint one object: exact pixel mask and colours (never equal to the background)."""
    box = object_box(obj, camera)
    size = camera.image_size
    # Pixel i covers [i, i+1) and is inside a part if its centre i + 0.5 is.
    row0 = max(0, math.ceil(box.top - 0.5))
    row1 = min(size - 1, math.floor(box.bottom - 0.5))
    col0 = max(0, math.ceil(box.left - 0.5))
    col1 = min(size - 1, math.floor(box.right - 0.5))
    rows, cols = slice(row0, max(row0, row1 + 1)), slice(col0, max(col0, col1 + 1))
    py = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None] + 0.5
    px = np.arange(cols.start, cols.stop, dtype=np.float64)[None, :] + 0.5
    py, px = np.broadcast_arrays(py, px)

    u, ground, r = _glyph_anchor(obj, camera)
    base = np.asarray(COLOR_RGB[obj.color], dtype=np.float64)
    mask = np.zeros(px.shape, dtype=bool)
    rgb = np.zeros(px.shape + (3,), dtype=np.uint8)
    for region, nx, ny, nz in _PARTS[obj.shape](u, ground, r, px, py):
        if not region.any():
            continue
        shaded = _shade(base, obj.material, nx[region], ny[region], nz[region])
        rgb[region] = np.clip(np.floor(shaded + 0.5), 0.0, 255.0).astype(np.uint8)
        mask |= region

    # An object pixel that happened to equal the background colour would be
    # invisible; nudge it so "pixels differing from the background" == mask.
    background = np.asarray(background_rgb, dtype=np.uint8)
    clash = mask & np.all(rgb == background, axis=-1)
    if clash.any():
        rgb[clash, 0] = background[0] + 1 if background[0] < 255 else background[0] - 1
    return Sprite(rows, cols, mask, rgb)


def render_objects(objects, camera: Camera, background_rgb) -> tuple[np.ndarray, np.ndarray]:
    """Render objects on a plain background.

    Returns ``(image, instance_mask)``: image is (H, W, 3) uint8; instance_mask
    is (H, W) uint8 with 0 = background and ``k + 1`` = ``objects[k]``.
    Objects are painted back to front, so if two ever overlap the mask holds the
    visible (nearer) one; generated scenes never overlap.
    """
    if len(objects) > 254:
        raise ValueError("at most 254 objects fit in a uint8 instance mask")
    size = camera.image_size
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[...] = np.asarray(background_rgb, dtype=np.uint8)
    instance_mask = np.zeros((size, size), dtype=np.uint8)
    back_to_front = sorted(range(len(objects)), key=lambda k: -objects[k].y)
    for k in back_to_front:
        sprite = rasterize(objects[k], camera, background_rgb)
        image[sprite.rows, sprite.cols][sprite.mask] = sprite.rgb[sprite.mask]
        instance_mask[sprite.rows, sprite.cols][sprite.mask] = k + 1
    return image, instance_mask
