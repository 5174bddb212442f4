"""Per-object instance masks for CLEVR scenes from Segment Anything (SAM) point prompts.

CLEVR ships no segmentation masks, so, as in the paper, every object of a scene is
segmented by SAM ViT-H prompted with one positive point at the object's projected
centre (``pixel_coords`` x, y of the CLEVR scenes JSON). Of SAM's three candidate masks
the one with the highest predicted IoU is kept. Where two objects' masks overlap, the
object nearer to the camera (smaller ``pixel_coords[2]``, CLEVR's depth) owns the
pixels, since it is the one occluding the other. The result is one uint8 instance-id
image per scene: 0 is background, ``i + 1`` is ``scene["objects"][i]``.

The masks were checked by eye in the paper; ``save_contact_sheet`` draws the overlays
and object indices for that check.

Scenes are plain dicts as in CLEVR's ``CLEVR_<split>_scenes.json`` (``objects`` with
``pixel_coords``; ``image_filename`` for the batch helpers).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Optional, Protocol, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .extras import require
from .io import write_instance_mask

PathLike = Union[str, os.PathLike]

# Instance ids are stored as uint8 with 0 for background.
MAX_OBJECTS = int(np.iinfo(np.uint8).max)


class MissingCheckpointError(FileNotFoundError):
    """The SAM checkpoint file is not where the config says it is."""


class PointPromptPredictor(Protocol):
    """The part of ``segment_anything.SamPredictor`` used here."""

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None: ...

    def predict(
        self,
        point_coords: Optional[np.ndarray] = None,
        point_labels: Optional[np.ndarray] = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def build_predictor(
    checkpoint: PathLike, model_type: str = "vit_h", device: Optional[str] = None
):
    """A ``segment_anything.SamPredictor`` for the checkpoint at ``checkpoint``.

    ``device`` defaults to CUDA when available. Raises ``MissingCheckpointError``
    naming the download URL and config key when the file does not exist.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise MissingCheckpointError(_missing_checkpoint_message(checkpoint, model_type))
    # Imported here so that the mask post-processing and plotting below work without
    # torch / segment_anything (e.g. when only re-drawing contact sheets).
    import torch

    # optional (the study extra): a core install fails here with one line naming it
    segment_anything = require("segment_anything", "gradeclip.sam_masks.build_predictor")
    SamPredictor, sam_model_registry = segment_anything.SamPredictor, segment_anything.sam_model_registry
    if model_type not in sam_model_registry:
        raise ValueError(
            f"Unknown SAM model type {model_type!r}; known: {', '.join(sam_model_registry)}."
        )
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    sam = sam_model_registry[model_type](checkpoint=str(checkpoint))
    sam.to(device)
    return SamPredictor(sam)


def _missing_checkpoint_message(checkpoint: Path, model_type: str) -> str:
    message = f"SAM checkpoint not found: {checkpoint}."
    if model_type in ("vit_h", "default"):
        from gradeclip.downloads import RESOURCES

        sam = RESOURCES["sam_vit_h"]
        message += (
            f" Download {sam.url} (sha256 {sam.sha256}), e.g. with "
            f"gradeclip.downloads.fetch_resource('sam_vit_h', folder), or set "
            f"`{sam.config_key}` in the workflow config to a pre-downloaded copy, or "
            f"`sam.checkpoint` to a checkpoint file."
        )
    else:
        message += f" Set `sam.checkpoint` in the workflow config to a {model_type} checkpoint file."
    return message


# --------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------


def _scene_objects(scene: Mapping) -> list[Mapping]:
    objects = list(scene.get("objects", []))
    if len(objects) > MAX_OBJECTS:
        raise ValueError(
            f"Scene has {len(objects)} objects; uint8 instance ids allow {MAX_OBJECTS}."
        )
    for index, obj in enumerate(objects):
        coords = obj.get("pixel_coords")
        if coords is None or len(coords) != 3:
            raise ValueError(
                f"Object {index} of scene {scene.get('image_filename', '?')} has no "
                f"pixel_coords [x, y, depth] (test-split scenes carry no objects)."
            )
    return objects


def object_depths(scene: Mapping) -> np.ndarray:
    """Camera depth of each object of ``scene`` (``pixel_coords[2]``), in object order."""
    return np.array([obj["pixel_coords"][2] for obj in _scene_objects(scene)], dtype=float)


def object_points(scene: Mapping, image_shape: Sequence[int]) -> np.ndarray:
    """(n, 2) x, y prompt points of the objects, clipped into an image of ``image_shape``."""
    height, width = image_shape[:2]
    points = np.array(
        [obj["pixel_coords"][:2] for obj in _scene_objects(scene)], dtype=float
    ).reshape(-1, 2)
    # An object centre can project just outside the frame; prompt at the nearest pixel.
    points[:, 0] = points[:, 0].clip(0, width - 1)
    points[:, 1] = points[:, 1].clip(0, height - 1)
    return points


def _check_rgb(image_rgb: np.ndarray) -> None:
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(
            f"Expected an H x W x 3 uint8 RGB image, got shape {image_rgb.shape} "
            f"dtype {image_rgb.dtype} (CLEVR PNGs are RGBA: convert them to RGB first)."
        )


def object_masks_for_scene(
    predictor: PointPromptPredictor, image_rgb: np.ndarray, scene: Mapping
) -> tuple[np.ndarray, np.ndarray]:
    """Best SAM mask per object: (n, H, W) bool masks and their (n,) predicted IoUs.

    One positive point prompt per object at its ``pixel_coords`` x, y; of the three
    multimask outputs the one with the highest predicted IoU is kept.
    """
    _check_rgb(image_rgb)
    height, width = image_rgb.shape[:2]
    points = object_points(scene, image_rgb.shape)
    masks = np.zeros((len(points), height, width), dtype=bool)
    scores = np.zeros(len(points), dtype=np.float32)
    if len(points) == 0:
        return masks, scores
    predictor.set_image(image_rgb)
    for index, point in enumerate(points):
        candidates, predicted_ious, _ = predictor.predict(
            point_coords=point[None, :],
            point_labels=np.ones(1, dtype=int),
            multimask_output=True,
        )
        best = int(np.argmax(predicted_ious))
        masks[index] = candidates[best]
        scores[index] = predicted_ious[best]
    return masks, scores


def resolve_overlaps_by_depth(object_masks: np.ndarray, depths: Sequence[float]) -> np.ndarray:
    """Instance-id image from possibly overlapping per-object masks.

    ``object_masks`` is (n, H, W) bool, ``depths`` the objects' camera depths. Each
    pixel goes to the nearest (smallest-depth) object whose mask covers it, ties to the
    lower object index; uncovered pixels are 0, object ``i`` is ``i + 1``.
    """
    object_masks = np.asarray(object_masks, dtype=bool)
    depths = np.asarray(depths, dtype=float)
    if object_masks.ndim != 3 or len(depths) != object_masks.shape[0]:
        raise ValueError(
            f"Need (n, H, W) masks and n depths; got masks {object_masks.shape} and "
            f"{len(depths)} depths."
        )
    if object_masks.shape[0] > MAX_OBJECTS:
        raise ValueError(f"At most {MAX_OBJECTS} objects fit in uint8 instance ids.")
    if object_masks.shape[0] == 0:
        return np.zeros(object_masks.shape[1:], dtype=np.uint8)
    depth_where_covered = np.where(object_masks, depths[:, None, None], np.inf)
    # argmin returns the first minimum, which gives ties to the lower index.
    nearest = depth_where_covered.argmin(axis=0)
    covered = object_masks.any(axis=0)
    return np.where(covered, nearest + 1, 0).astype(np.uint8)


def masks_for_scene(
    predictor: PointPromptPredictor, image_rgb: np.ndarray, scene: Mapping
) -> np.ndarray:
    """uint8 instance-id mask (H, W) of ``scene``: 0 background, i+1 = object i."""
    object_masks, _ = object_masks_for_scene(predictor, image_rgb, scene)
    return resolve_overlaps_by_depth(object_masks, object_depths(scene))


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def load_rgb(path: PathLike) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB (CLEVR's RGBA PNGs lose their alpha)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def mask_path(out_dir: PathLike, image_filename: str) -> Path:
    """Where the mask of CLEVR image ``image_filename`` goes: same stem, .png."""
    return Path(out_dir) / (Path(image_filename).stem + ".png")


def masks_for_scenes(
    predictor: PointPromptPredictor,
    scenes: Iterable[Mapping],
    image_dir: PathLike,
    out_dir: PathLike,
) -> list[Path]:
    """Compute and save the instance mask of each scene's ``image_filename``; return paths."""
    written = []
    for scene in scenes:
        image = load_rgb(Path(image_dir) / scene["image_filename"])
        mask = masks_for_scene(predictor, image, scene)
        written.append(write_instance_mask(mask, mask_path(out_dir, scene["image_filename"])))
    return written


def study_masks(
    predictor: PointPromptPredictor,
    clevr_root: PathLike,
    out_dir: PathLike,
    n_images: Optional[int],
    seed: int,
) -> list[Mapping]:
    """Masks of the study's CLEVR scenes: the ``n_images`` scenes that
    ``gradeclip.datasets.study_clevr_scenes`` picks with ``seed`` from the CLEVR v1.0
    folder ``clevr_root`` (the attribute design picks with the same function), one PNG
    each in ``out_dir``. Returns those scenes."""
    from gradeclip.datasets import CLEVR_IMAGES, CLEVR_SCENES, CLEVR_SPLIT, study_clevr_scenes

    clevr_root = Path(clevr_root)
    scenes = study_clevr_scenes(clevr_root / CLEVR_SCENES, n_images, seed)
    masks_for_scenes(predictor, scenes, clevr_root / CLEVR_IMAGES / CLEVR_SPLIT, out_dir)
    return scenes


# --------------------------------------------------------------------------------------
# Contact sheet for the manual check
# --------------------------------------------------------------------------------------


def _palette(n_colors: int) -> np.ndarray:
    """(n_colors, 3) uint8 distinct colours; index 0 is unused (background)."""
    import matplotlib

    colormap = matplotlib.colormaps["tab10"]
    rgb = np.array([colormap(i % colormap.N)[:3] for i in range(max(n_colors, 1))])
    return (rgb * 255).round().astype(np.uint8)


def overlay_instances(
    image_rgb: np.ndarray, instance_mask: np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """``image_rgb`` with each instance tinted in its own colour (uint8 RGB)."""
    _check_rgb(image_rgb)
    if instance_mask.shape != image_rgb.shape[:2]:
        raise ValueError(
            f"Mask shape {instance_mask.shape} differs from image {image_rgb.shape[:2]}."
        )
    palette = _palette(int(instance_mask.max()))
    colours = palette[(instance_mask.astype(int) - 1) % len(palette)]
    tinted = (1 - alpha) * image_rgb + alpha * colours
    return np.where(instance_mask[..., None] > 0, tinted, image_rgb).round().astype(np.uint8)


def _label_positions(
    instance_mask: np.ndarray, scene: Optional[Mapping]
) -> dict[int, tuple[float, float]]:
    """Object index -> x, y of its label: the prompt point if known, else mask centroid."""
    if scene is not None:
        points = object_points(scene, instance_mask.shape)
        return {i: (float(x), float(y)) for i, (x, y) in enumerate(points)}
    positions = {}
    for instance_id in np.unique(instance_mask):
        if instance_id == 0:
            continue
        ys, xs = np.nonzero(instance_mask == instance_id)
        positions[int(instance_id) - 1] = (float(xs.mean()), float(ys.mean()))
    return positions


def save_contact_sheet(
    images: Sequence[np.ndarray],
    instance_masks: Sequence[np.ndarray],
    path: PathLike,
    scenes: Optional[Sequence[Mapping]] = None,
    titles: Optional[Sequence[str]] = None,
    columns: int = 4,
    alpha: float = 0.5,
) -> Path:
    """Grid PNG of images with their instance masks overlaid and object indices drawn.

    Labels show the 0-based object index ``i`` (mask value ``i + 1``); with ``scenes``
    they sit on the SAM prompt point, which is marked, otherwise on the mask centroid.
    Titles default to the scenes' ``image_filename``.
    """
    if len(images) != len(instance_masks):
        raise ValueError(f"{len(images)} images but {len(instance_masks)} masks.")
    if scenes is not None and len(scenes) != len(images):
        raise ValueError(f"{len(images)} images but {len(scenes)} scenes.")
    if not images:
        raise ValueError("No images for the contact sheet.")
    if titles is None and scenes is not None:
        titles = [scene.get("image_filename", "") for scene in scenes]

    font = ImageFont.load_default(size=14)
    caption_height = 20
    cell_height = max(image.shape[0] for image in images) + caption_height
    cell_width = max(image.shape[1] for image in images)
    columns = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / columns)
    sheet = Image.new("RGB", (columns * cell_width, rows * cell_height), "white")
    draw = ImageDraw.Draw(sheet)

    for index, (image, mask) in enumerate(zip(images, instance_masks)):
        left = (index % columns) * cell_width
        top = (index // columns) * cell_height
        sheet.paste(Image.fromarray(overlay_instances(image, mask, alpha)), (left, top))
        scene = scenes[index] if scenes is not None else None
        for object_index, (x, y) in _label_positions(mask, scene).items():
            x, y = left + x, top + y
            if scene is not None:
                draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill="red")
            draw.text(
                (x + 4, y - 4), str(object_index), fill="white", font=font,
                stroke_width=2, stroke_fill="black", anchor="ls",
            )
        if titles is not None:
            draw.text(
                (left + 4, top + image.shape[0] + caption_height // 2),
                titles[index], fill="black", font=font, anchor="lm",
            )

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path
