"""Read, write and validate scene files in CLEVR's scenes-JSON schema.

The same code reads real CLEVR (``CLEVR_v1.0/scenes/CLEVR_val_scenes.json``)
and the toy world's scenes, so captions, referring expressions and scoring
never care which one they got. Scenes stay plain dicts, exactly as in the
file, so writing what was read gives the same JSON back.

Schema (only what is checked here; other keys are kept and ignored)::

    {"info": {...},
     "scenes": [{"image_index": int, "image_filename": str, "split": str,
                 "objects": [{"shape", "color", "material", "size": str,
                              "pixel_coords": [x, y, depth],
                              "3d_coords": [x, y, z], "rotation": number}, ...],
                 "relationships": {"left"|"right"|"front"|"behind":
                                   [[j, ...] for each object i]},
                 "directions": {"left"|"right"|"front"|"behind"|...: [x, y, z]}},
                ...]}

CLEVR's relationship convention: ``j in relationships["left"][i]`` means
object j is left of object i.
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from .files import atomic_write_bytes

SCENE_KEYS = ("image_index", "image_filename", "split", "objects", "relationships", "directions")
OBJECT_KEYS = ("shape", "color", "material", "size", "pixel_coords", "3d_coords", "rotation")
RELATIONS = ("left", "right", "front", "behind")
# CLEVR's render_images.py: j is related to i along a direction when the
# displacement i -> j projected on that direction exceeds this.
CLEVR_RELATION_EPS = 0.2


class SceneFormatError(ValueError):
    """A scenes file or scene dict does not follow CLEVR's schema."""


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scene_name(scene: Mapping, position) -> str:
    name = "scene" if position is None else f"scene {position}"
    filename = scene.get("image_filename") if isinstance(scene, Mapping) else None
    return f"{name} ({filename})" if isinstance(filename, str) else name


def _check_vector(value, where: str, key: str) -> None:
    if not (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3
            and all(_is_number(v) for v in value)):
        raise SceneFormatError(f"{where}: {key!r} must be a list of 3 numbers, got {value!r}")


def _validate_object(obj, where: str) -> None:
    if not isinstance(obj, Mapping):
        raise SceneFormatError(f"{where}: must be a JSON object, got {type(obj).__name__}")
    missing = [k for k in OBJECT_KEYS if k not in obj]
    if missing:
        raise SceneFormatError(f"{where}: missing key(s) {', '.join(map(repr, missing))}")
    for key in ("shape", "color", "material", "size"):
        if not isinstance(obj[key], str):
            raise SceneFormatError(f"{where}: {key!r} must be a string, got {obj[key]!r}")
    _check_vector(obj["pixel_coords"], where, "pixel_coords")
    _check_vector(obj["3d_coords"], where, "3d_coords")
    if not _is_number(obj["rotation"]):
        raise SceneFormatError(f"{where}: 'rotation' must be a number, got {obj['rotation']!r}")


def validate_scene(scene, position: int | None = None) -> None:
    """Raise :class:`SceneFormatError` naming the scene (and object) if ``scene`` is malformed.

    ``position`` is the scene's index in the file, used only in messages.
    """
    name = _scene_name(scene, position)
    if not isinstance(scene, Mapping):
        raise SceneFormatError(f"{name}: must be a JSON object, got {type(scene).__name__}")
    missing = [k for k in SCENE_KEYS if k not in scene]
    if missing:
        raise SceneFormatError(f"{name}: missing key(s) {', '.join(map(repr, missing))}")
    if not _is_int(scene["image_index"]):
        raise SceneFormatError(f"{name}: 'image_index' must be an integer, got {scene['image_index']!r}")
    for key in ("image_filename", "split"):
        if not isinstance(scene[key], str):
            raise SceneFormatError(f"{name}: {key!r} must be a string, got {scene[key]!r}")

    objects = scene["objects"]
    if not isinstance(objects, list):
        raise SceneFormatError(f"{name}: 'objects' must be a list, got {type(objects).__name__}")
    for k, obj in enumerate(objects):
        _validate_object(obj, f"{name}, object {k}")

    directions = scene["directions"]
    if not isinstance(directions, Mapping):
        raise SceneFormatError(f"{name}: 'directions' must be a JSON object")
    for relation in RELATIONS:
        if relation not in directions:
            raise SceneFormatError(f"{name}: 'directions' is missing {relation!r}")
        _check_vector(directions[relation], f"{name}, directions", relation)

    relationships = scene["relationships"]
    if not isinstance(relationships, Mapping):
        raise SceneFormatError(f"{name}: 'relationships' must be a JSON object")
    n = len(objects)
    for relation in RELATIONS:
        where = f"{name}, relationships[{relation!r}]"
        related = relationships.get(relation)
        if not isinstance(related, list) or len(related) != n:
            raise SceneFormatError(f"{where}: must be a list with one entry per object ({n})")
        for i, js in enumerate(related):
            if not isinstance(js, list) or not all(_is_int(j) and 0 <= j < n and j != i for j in js):
                raise SceneFormatError(
                    f"{where}[{i}]: must list indices of other objects (0..{n - 1}), got {js!r}"
                )


def validate_scenes_document(document, source: str = "scenes document") -> None:
    """Check a whole ``{"info": ..., "scenes": [...]}`` document; errors start with ``source``."""
    if not isinstance(document, Mapping):
        raise SceneFormatError(f"{source}: top level must be a JSON object with 'info' and 'scenes'")
    for key, kind in (("info", Mapping), ("scenes", list)):
        if key not in document:
            raise SceneFormatError(f"{source}: missing top-level key {key!r}")
        if not isinstance(document[key], kind):
            raise SceneFormatError(f"{source}: top-level {key!r} has the wrong type")
    for position, scene in enumerate(document["scenes"]):
        try:
            validate_scene(scene, position)
        except SceneFormatError as error:
            raise SceneFormatError(f"{source}: {error}") from None


def read_scenes(path) -> dict:
    """Load and validate a CLEVR-schema scenes file; returns the whole document."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SceneFormatError(f"{path}: not valid JSON: {error}") from None
    validate_scenes_document(document, source=str(path))
    return document


def write_scenes(path, scenes: Sequence[dict], info: Mapping) -> Path:
    """Validate and atomically write ``{"info": info, "scenes": scenes}`` to ``path``."""
    document = {"info": dict(info), "scenes": list(scenes)}
    validate_scenes_document(document, source=str(path))
    path = Path(path)
    # One line, like CLEVR's own scenes files (they hold up to 70k scenes).
    atomic_write_bytes(path, json.dumps(document).encode("utf-8"))
    return path


def compute_relationships(objects: Sequence[Mapping], directions: Mapping,
                          eps: float = CLEVR_RELATION_EPS) -> dict[str, list[list[int]]]:
    """CLEVR's ``compute_all_relationships``: j is in ``result[rel][i]`` when
    ``(coords_j - coords_i) . directions[rel] > eps`` (i.e. j is ``rel`` of i)."""
    result = {}
    for relation in RELATIONS:
        direction = directions[relation]
        result[relation] = [
            [
                j
                for j, other in enumerate(objects)
                if j != i
                and sum((other["3d_coords"][k] - obj["3d_coords"][k]) * direction[k] for k in range(3)) > eps
            ]
            for i, obj in enumerate(objects)
        ]
    return result
