"""One toy-world object: its CLEVR attributes and its place on the ground."""

from dataclasses import dataclass

from gradeclip.toyworld.camera import Camera
from gradeclip.toyworld.vocabulary import COLORS, MATERIALS, SHAPES, SIZE_RADIUS, SIZES


@dataclass(frozen=True)
class ToyObject:
    shape: str
    color: str
    material: str
    size: str
    x: float  # world coordinates of the ground contact point, see camera.py
    y: float

    def __post_init__(self):
        for category, value, allowed in (
            ("shape", self.shape, SHAPES),
            ("color", self.color, COLORS),
            ("material", self.material, MATERIALS),
            ("size", self.size, SIZES),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {category} {value!r}; expected one of {allowed}")

    @property
    def radius(self) -> float:
        return SIZE_RADIUS[self.size]

    def to_clevr(self, camera: Camera) -> dict:
        """The object as an entry of a CLEVR scene's ``objects`` list."""
        center = [self.x, self.y, self.radius]
        return {
            "shape": self.shape,
            "color": self.color,
            "material": self.material,
            "size": self.size,
            "3d_coords": center,
            # Toy objects are drawn unrotated; CLEVR stores degrees.
            "rotation": 0.0,
            "pixel_coords": camera.pixel_coords(*center),
        }

    @classmethod
    def from_clevr(cls, obj: dict) -> "ToyObject":
        """Inverse of :meth:`to_clevr`; lets a scene be re-rendered from its JSON alone."""
        x, y, _ = obj["3d_coords"]
        return cls(obj["shape"], obj["color"], obj["material"], obj["size"], float(x), float(y))
