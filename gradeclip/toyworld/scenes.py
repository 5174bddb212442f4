"""Generate toy scenes: image, exact instance mask, and a CLEVR-schema record."""

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from gradeclip.clevr import compute_relationships
from gradeclip.toyworld.camera import DIRECTIONS, Camera
from gradeclip.toyworld.layout import ToyWorldConfig, sample_objects
from gradeclip.toyworld.objects import ToyObject
from gradeclip.toyworld.render import render_objects

TOYWORLD_VERSION = "1.0"
FILENAME_PREFIX = "TOY"


# eq=False: comparing arrays with == is ambiguous; compare fields explicitly.
@dataclass(frozen=True, eq=False)
class ToyScene:
    record: dict  # one entry of a CLEVR scenes file
    image: np.ndarray  # (H, W, 3) uint8
    instance_mask: np.ndarray  # (H, W) uint8; 0 = background, k + 1 = record["objects"][k]
    objects: tuple[ToyObject, ...]

    def object_masks(self) -> np.ndarray:
        """(n_objects, H, W) bool stack; entry k is the mask of object k."""
        return instance_masks_to_stack(self.instance_mask, len(self.objects))


def instance_masks_to_stack(instance_mask: np.ndarray, n_objects: int) -> np.ndarray:
    """Turn an id mask (0 = background, k + 1 = object k) into a bool stack."""
    ids = np.arange(1, n_objects + 1, dtype=instance_mask.dtype)
    return instance_mask[None, :, :] == ids[:, None, None]


def image_filename(split: str, index: int) -> str:
    """CLEVR-style name, e.g. ``TOY_train_000042.png``."""
    return f"{FILENAME_PREFIX}_{split}_{index:06d}.png"


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for scene ``index`` of dataset ``seed``.

    Seeding per scene (not one stream per dataset) makes every scene
    reproducible on its own, whatever n or start index a dataset used.
    """
    return np.random.default_rng([seed, index])


def scene_record(objects: Sequence[ToyObject], camera: Camera, index: int, split: str) -> dict:
    """The CLEVR scenes-JSON entry describing ``objects``."""
    clevr_objects = [obj.to_clevr(camera) for obj in objects]
    directions = {name: list(vector) for name, vector in DIRECTIONS.items()}
    return {
        "image_index": index,
        "image_filename": image_filename(split, index),
        "split": split,
        "objects": clevr_objects,
        "relationships": compute_relationships(clevr_objects, directions),
        "directions": directions,
    }


def generate_scene(seed: int, index: int = 0, split: str = "train",
                   config: ToyWorldConfig = ToyWorldConfig()) -> ToyScene:
    """Scene ``index`` of the dataset with this seed; same arguments, same bytes."""
    objects = tuple(sample_objects(scene_rng(seed, index), config))
    camera = Camera(config.image_size)
    image, instance_mask = render_objects(objects, camera, config.background_rgb)
    return ToyScene(scene_record(objects, camera, index, split), image, instance_mask, objects)


def generate_scenes(seed: int, n: int, split: str = "train", config: ToyWorldConfig = ToyWorldConfig(),
                    start_index: int = 0) -> Iterator[ToyScene]:
    """Scenes ``start_index .. start_index + n - 1`` of the dataset with this seed."""
    for index in range(start_index, start_index + n):
        yield generate_scene(seed, index, split, config)


def render_scene_record(record: dict, config: ToyWorldConfig = ToyWorldConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Re-render ``(image, instance_mask)`` from a toy scene's JSON record alone."""
    objects = [ToyObject.from_clevr(obj) for obj in record["objects"]]
    return render_objects(objects, Camera(config.image_size), config.background_rgb)


def render_without_object(scene: ToyScene, removed: int,
                          background_rgb: tuple[int, int, int] = ToyWorldConfig().background_rgb) -> np.ndarray:
    """The scene's image rendered again without object ``removed``, every other object where it was: the scene as
    it would look had that object never been placed (objects never overlap, so no other pixel changes)."""
    if not 0 <= removed < len(scene.objects):
        raise IndexError(f"object {removed} of a scene with {len(scene.objects)} objects")
    kept = [obj for k, obj in enumerate(scene.objects) if k != removed]
    image, _ = render_objects(kept, Camera(scene.image.shape[0]), background_rgb)
    return image


def dataset_info(seed: int, split: str, config: ToyWorldConfig) -> dict:
    """The ``info`` block of a toy scenes file; enough to regenerate every scene."""
    return {
        "version": f"toyworld-{TOYWORLD_VERSION}",
        "split": split,
        "license": "Procedurally generated; CC0",
        "generator": "gradeclip.toyworld",
        "seed": seed,
        "config": asdict(config),
        "conventions": (
            "x right, y away from the camera (behind), z up; orthographic camera looking down "
            "from the front: lower in the image = in front. pixel_coords = [column, row, depth] "
            "of the object centre. Instance masks: 0 = background, k + 1 = objects[k]."
        ),
    }
