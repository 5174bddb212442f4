"""Random scene layouts: how many objects, their attributes, and where they stand."""

from dataclasses import dataclass

import numpy as np

from gradeclip.toyworld.camera import WORLD_EXTENT, Camera
from gradeclip.toyworld.objects import ToyObject
from gradeclip.toyworld.render import object_box
from gradeclip.toyworld.vocabulary import COLORS, MATERIALS, SHAPES, SIZES


@dataclass(frozen=True)
class ToyWorldConfig:
    """Everything that, together with a seed, determines a toy scene."""

    # 128 px = 16 x 16 patches for a ViT with patch size 8; small objects then
    # span about two patches, large ones about four.
    image_size: int = 128
    min_objects: int = 1
    max_objects: int = 5
    background_rgb: tuple[int, int, int] = (150, 150, 150)
    # Like CLEVR's --margin: any two objects differ by at least this much (world
    # units) along x and along y, so left/right and front/behind are never
    # ambiguous (CLEVR's relationship threshold is 0.2).
    margin: float = 0.4
    # Minimum empty pixels between the bounding boxes of two objects.
    gap_px: float = 2.0
    max_placement_tries: int = 200
    max_layout_restarts: int = 100

    def __post_init__(self):
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32, got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(
                f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}"
            )
        if len(self.background_rgb) != 3 or not all(0 <= c <= 255 for c in self.background_rgb):
            raise ValueError(f"background_rgb must be three values in 0..255, got {self.background_rgb}")

    @classmethod
    def from_dict(cls, values: dict) -> "ToyWorldConfig":
        """Inverse of ``dataclasses.asdict`` after a JSON round trip (lists -> tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _choice(rng: np.random.Generator, values: tuple[str, ...]) -> str:
    return values[int(rng.integers(len(values)))]


def _fits(candidate: ToyObject, placed: list[ToyObject], camera: Camera, config: ToyWorldConfig) -> bool:
    box = object_box(candidate, camera)
    if not box.inside_image(camera.image_size, border=1.0):
        return False
    for other in placed:
        if abs(candidate.x - other.x) < config.margin or abs(candidate.y - other.y) < config.margin:
            return False
        if not box.separated_from(object_box(other, camera), config.gap_px):
            return False
    return True


def sample_objects(rng: np.random.Generator, config: ToyWorldConfig) -> list[ToyObject]:
    """Sample 1..max objects with CLEVR attributes at non-overlapping positions.

    Like CLEVR's generator: attributes uniformly at random, positions uniform on
    the ground and rejected until they keep their distance; after too many
    rejections the whole layout starts over.
    """
    camera = Camera(config.image_size)
    n_objects = int(rng.integers(config.min_objects, config.max_objects + 1))
    for _ in range(config.max_layout_restarts):
        placed: list[ToyObject] = []
        for _ in range(n_objects):
            attributes = dict(
                shape=_choice(rng, SHAPES),
                color=_choice(rng, COLORS),
                material=_choice(rng, MATERIALS),
                size=_choice(rng, SIZES),
            )
            for _ in range(config.max_placement_tries):
                # Rounded so the JSON holds exactly the coordinates that were rendered.
                x, y = (round(float(v), 4) for v in rng.uniform(-WORLD_EXTENT, WORLD_EXTENT, size=2))
                candidate = ToyObject(x=x, y=y, **attributes)
                if _fits(candidate, placed, camera, config):
                    placed.append(candidate)
                    break
            else:
                break  # this object does not fit: start the layout over
        if len(placed) == n_objects:
            return placed
    raise RuntimeError(
        f"could not place {n_objects} objects in a {config.image_size}px image with "
        f"margin={config.margin}, gap_px={config.gap_px}; relax them"
    )
