"""Template captions and referring expressions for CLEVR-schema scenes.

Works on scene dicts as read by :mod:`gradeclip.clevr`, so real CLEVR scenes
get the same texts as toy scenes. Every text is built only from articles,
attribute words and spatial prepositions ("left of", "in front of", ...),
so captions contain no verbs by construction.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gradeclip.clevr import RELATIONS
from gradeclip.toyworld.vocabulary import ATTRIBUTE_CATEGORIES, ATTRIBUTE_VALUES

RELATION_PHRASES: dict[str, str] = {
    "left": "left of",
    "right": "right of",
    "front": "in front of",
    "behind": "behind",
}
LOCATION_WORDS = ("left", "right")
REFERRING_CATEGORIES = ("color", "shape", "material", "size", "location", "color+shape")

# Every word any template here can emit; tests use it to prove captions are verb-free.
CAPTION_VOCABULARY: frozenset[str] = frozenset(
    {"a", "and"}
    | {word for phrase in RELATION_PHRASES.values() for word in phrase.split()}
    | set(LOCATION_WORDS)
    | {value for values in ATTRIBUTE_VALUES.values() for value in values}
)


@dataclass(frozen=True)
class Caption:
    text: str
    object_indices: tuple[int, ...]  # the objects the caption names, in text order
    relation: str | None = None  # CLEVR relation key, for relational captions


@dataclass(frozen=True)
class ReferringExpression:
    text: str
    object_index: int  # the one object the text determines
    category: str  # one of REFERRING_CATEGORIES


def attribute_words(obj: Mapping) -> dict[str, str]:
    """The object's word per attribute category, in description order."""
    return {category: obj[category] for category in ATTRIBUTE_CATEGORIES}


def describe(obj: Mapping, categories: Sequence[str] = ATTRIBUTE_CATEGORIES) -> str:
    """Noun phrase without article in CLEVR's word order, e.g. "large red metal cube"."""
    unknown = set(categories) - set(ATTRIBUTE_CATEGORIES)
    if unknown:
        raise ValueError(f"unknown attribute categories {sorted(unknown)}")
    return " ".join(obj[c] for c in ATTRIBUTE_CATEGORIES if c in categories)


def object_caption(scene: Mapping, index: int) -> Caption:
    """Full description of one object: "a large red metal cube"."""
    return Caption(f"a {describe(scene['objects'][index])}", (index,))


def scene_caption(scene: Mapping) -> Caption:
    """All objects fully described, left to right: "a small blue rubber sphere and a large ..."."""
    objects = scene["objects"]
    order = sorted(range(len(objects)), key=lambda k: (objects[k]["pixel_coords"][0], k))
    return Caption(" and ".join(f"a {describe(objects[k])}" for k in order), tuple(order))


def relational_captions(scene: Mapping, relations: Sequence[str] = RELATIONS,
                        categories: Sequence[str] = ("color", "shape")) -> list[Caption]:
    """Every true pairwise relation, e.g. "a red cube left of a blue sphere".

    Follows CLEVR's convention: ``j in relationships["left"][i]`` (j is left
    of i) gives "a <j> left of a <i>".
    """
    objects = scene["objects"]
    captions = []
    for relation in relations:
        phrase = RELATION_PHRASES[relation]
        for i, related in enumerate(scene["relationships"][relation]):
            for j in related:
                text = f"a {describe(objects[j], categories)} {phrase} a {describe(objects[i], categories)}"
                captions.append(Caption(text, (j, i), relation))
    return captions


def _indices_with(objects: Sequence[Mapping], **attributes: str) -> list[int]:
    return [k for k, obj in enumerate(objects) if all(obj[c] == v for c, v in attributes.items())]


def _is_extreme(scene: Mapping, index: int, group: Sequence[int], side: str) -> bool:
    """Whether every other object of ``group`` lies to the opposite side of ``index``.

    Uses the scene's own relationships, so it holds for real CLEVR scenes too
    (where pairs closer than CLEVR's threshold are neither left nor right).
    """
    opposite = "right" if side == "left" else "left"
    beyond = set(scene["relationships"][opposite][index])
    return all(k in beyond for k in group if k != index)


def referring_expression(scene: Mapping, index: int, category: str) -> str | None:
    """Text naming object ``index`` through one attribute category, or None if that
    category does not single it out in this scene.

    * "color" / "shape" / "material": the bare word ("red", "cube", "metal");
      valid when no other object shares it.
    * "size": size + shape ("small cube"); valid when the shape alone is
      ambiguous (two or more cubes) and the size picks exactly this one.
    * "location": "left"/"right" + shape ("left sphere"); valid when the shape
      alone is ambiguous and the object is the left-/right-most of that shape.
    * "color+shape": "red cube"; valid when it is the only red cube.
    """
    objects = scene["objects"]
    obj = objects[index]
    if category in ("color", "shape", "material"):
        return obj[category] if _indices_with(objects, **{category: obj[category]}) == [index] else None
    if category == "color+shape":
        unique = _indices_with(objects, color=obj["color"], shape=obj["shape"]) == [index]
        return f"{obj['color']} {obj['shape']}" if unique else None
    same_shape = _indices_with(objects, shape=obj["shape"])
    if len(same_shape) < 2:
        return None  # the shape word alone already names it: the category adds nothing
    if category == "size":
        unique = _indices_with(objects, shape=obj["shape"], size=obj["size"]) == [index]
        return f"{obj['size']} {obj['shape']}" if unique else None
    if category == "location":
        for side in LOCATION_WORDS:
            if _is_extreme(scene, index, same_shape, side):
                return f"{side} {obj['shape']}"
        return None
    raise ValueError(f"unknown referring category {category!r}; expected one of {REFERRING_CATEGORIES}")


def unique_referring_expressions(scene: Mapping,
                                 categories: Sequence[str] = REFERRING_CATEGORIES) -> list[ReferringExpression]:
    """All valid (object, category) referring expressions of a scene, by object then category."""
    expressions = []
    for index in range(len(scene["objects"])):
        for category in categories:
            text = referring_expression(scene, index, category)
            if text is not None:
                expressions.append(ReferringExpression(text, index, category))
    return expressions


def resolve_referring_expression(scene: Mapping, text: str) -> list[int]:
    """Indices of the objects a referring expression of this module selects.

    Independent of how the expression was chosen: attribute words filter the
    objects; a leading "left"/"right" then keeps the extreme one(s) of them.
    """
    words = text.split()
    side = words[0] if words and words[0] in LOCATION_WORDS else None
    required = {}
    for word in words[1:] if side else words:
        category = next((c for c, values in ATTRIBUTE_VALUES.items() if word in values), None)
        if category is None:
            raise ValueError(f"{word!r} in {text!r} is not an attribute word")
        required[category] = word
    matches = _indices_with(scene["objects"], **required)
    if side:
        matches = [k for k in matches if _is_extreme(scene, k, matches, side)]
    return matches
