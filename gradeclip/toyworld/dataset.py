"""Write a toy dataset to disk in CLEVR's layout, and read its arrays back.

Layout (mirrors ``CLEVR_v1.0/``)::

    out_dir/images/<split>/TOY_<split>_000000.png    RGB image
    out_dir/masks/<split>/TOY_<split>_000000.png     uint8 ids: 0 = background, k + 1 = object k
    out_dir/scenes/TOY_<split>_scenes.json           CLEVR scenes JSON

Every file is written to a temporary name and renamed, and the scenes JSON is
written last, so its presence means the dataset is complete.
"""

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from gradeclip.clevr import write_scenes
from gradeclip.files import atomic_write_bytes
from gradeclip.io import read_instance_mask, write_instance_mask
from gradeclip.toyworld.layout import ToyWorldConfig
from gradeclip.toyworld.scenes import FILENAME_PREFIX, dataset_info, generate_scenes


def scenes_path(out_dir, split: str) -> Path:
    return Path(out_dir) / "scenes" / f"{FILENAME_PREFIX}_{split}_scenes.json"


def image_path(out_dir, scene: Mapping) -> Path:
    return Path(out_dir) / "images" / scene["split"] / scene["image_filename"]


def mask_path(out_dir, scene: Mapping) -> Path:
    return Path(out_dir) / "masks" / scene["split"] / scene["image_filename"]


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) RGB or (H, W) grey uint8 array."""
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 array, got {array.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_dataset(out_dir, n_scenes: int, seed: int, split: str = "train",
                  config: ToyWorldConfig = ToyWorldConfig(), start_index: int = 0) -> Path:
    """Render scenes ``start_index ..`` of dataset ``seed`` to ``out_dir``; returns the scenes JSON path."""
    if n_scenes < 0:
        raise ValueError(f"n_scenes must be >= 0, got {n_scenes}")
    json_path = scenes_path(out_dir, split)
    # A scenes JSON from an earlier run would vouch for images being replaced now.
    json_path.unlink(missing_ok=True)
    records = []
    for scene in generate_scenes(seed, n_scenes, split, config, start_index):
        atomic_write_bytes(image_path(out_dir, scene.record), encode_png(scene.image))
        write_instance_mask(scene.instance_mask, mask_path(out_dir, scene.record))
        records.append(scene.record)
    return write_scenes(json_path, records, dataset_info(seed, split, config))


def read_image(path) -> np.ndarray:
    """(H, W, 3) uint8 RGB array of an image file."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def load_scene_arrays(out_dir, scene: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """``(image, instance_mask)`` of one scene record of a dataset written by :func:`write_dataset`."""
    return read_image(image_path(out_dir, scene)), read_instance_mask(mask_path(out_dir, scene))
