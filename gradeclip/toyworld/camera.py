"""The toy world's fixed camera: world coordinates -> pixel coordinates.

Convention (documented once, used everywhere):

* World axes follow CLEVR: the ground is the plane z = 0, ``x`` grows to the
  camera's right, ``y`` grows away from the camera ("behind"), ``z`` is up.
  An object's ``3d_coords`` is its centre, so ``z`` equals its radius.
* The camera is orthographic and looks down at the ground from the front.
  Image column depends only on ``x``; the row where an object touches the
  ground depends only on ``y``: objects further behind sit higher in the
  image, so *lower in the image means in front*.
* Object size on screen does not shrink with distance (no perspective), so
  "small" and "large" stay visually unambiguous at 64-128 px.
* ``pixel_coords`` is ``[column, row, depth]`` of the projected object centre,
  with integer column/row as in CLEVR and ``depth`` the distance from the
  camera plane at ``y = CAMERA_Y``.

Only + - * / are used, so results are bit-identical on every IEEE-754 machine.
"""

from dataclasses import dataclass

# CLEVR samples object positions uniformly in [-3, 3] x [-3, 3].
WORLD_EXTENT = 3.0
CAMERA_Y = -10.0

# CLEVR-format direction unit vectors in world coordinates (see module docstring).
DIRECTIONS: dict[str, list[float]] = {
    "left": [-1.0, 0.0, 0.0],
    "right": [1.0, 0.0, 0.0],
    "behind": [0.0, 1.0, 0.0],
    "front": [0.0, -1.0, 0.0],
    "above": [0.0, 0.0, 1.0],
    "below": [0.0, 0.0, -1.0],
}

# Fractions of the image size, so a scene looks the same at every resolution.
_PIXELS_PER_UNIT = 0.18  # horizontal and vertical scale of objects
_GROUND_ROWS_PER_UNIT = 0.075  # the ground is foreshortened: camera looks down at it
_GROUND_ROW_AT_ORIGIN = 0.60


@dataclass(frozen=True)
class Camera:
    image_size: int

    @property
    def pixels_per_unit(self) -> float:
        return _PIXELS_PER_UNIT * self.image_size

    def column(self, x: float) -> float:
        return self.image_size * 0.5 + x * self.pixels_per_unit

    def ground_row(self, y: float) -> float:
        """Image row where an object standing at depth ``y`` touches the ground."""
        return self.image_size * (_GROUND_ROW_AT_ORIGIN - y * _GROUND_ROWS_PER_UNIT)

    def pixel_coords(self, x: float, y: float, z: float) -> list:
        """CLEVR's ``pixel_coords``: [column, row, depth] of the point (x, y, z)."""
        row = self.ground_row(y) - z * self.pixels_per_unit
        # Rounded like the world coordinates, so the JSON stays readable.
        return [int(round(self.column(x))), int(round(row)), round(y - CAMERA_Y, 4)]
