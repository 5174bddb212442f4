"""Toy world: procedurally rendered CLEVR-style scenes with exact masks and captions.

A seeded, pure-numpy stand-in for CLEVR: 1-5 objects with CLEVR's shapes,
colours, materials and sizes on a plain background, each with an exact
instance mask and a record in CLEVR's scenes-JSON schema (read by
:mod:`gradeclip.clevr`). It is the offline ground truth for scoring
explanation maps. Conventions (axes, camera, mask ids) are in ``camera.py``.

Typical use::

    from gradeclip.toyworld import generate_scene, unique_referring_expressions
    scene = generate_scene(seed=0, index=7)
    scene.image, scene.instance_mask, scene.record
    unique_referring_expressions(scene.record)

    write_dataset("out/toyworld", n_scenes=1000, seed=0, split="train")
"""

from gradeclip.toyworld.camera import DIRECTIONS, Camera
from gradeclip.toyworld.captions import (
    CAPTION_VOCABULARY,
    REFERRING_CATEGORIES,
    RELATION_PHRASES,
    Caption,
    ReferringExpression,
    attribute_words,
    describe,
    object_caption,
    referring_expression,
    relational_captions,
    resolve_referring_expression,
    scene_caption,
    unique_referring_expressions,
)
from gradeclip.toyworld.dataset import (
    image_path,
    load_scene_arrays,
    mask_path,
    read_image,
    read_instance_mask,
    scenes_path,
    write_dataset,
)
from gradeclip.toyworld.layout import ToyWorldConfig, sample_objects
from gradeclip.toyworld.objects import ToyObject
from gradeclip.toyworld.render import render_objects
from gradeclip.toyworld.scenes import (
    ToyScene,
    dataset_info,
    generate_scene,
    generate_scenes,
    instance_masks_to_stack,
    render_scene_record,
    render_without_object,
)
from gradeclip.toyworld.vocabulary import (
    ATTRIBUTE_CATEGORIES,
    ATTRIBUTE_VALUES,
    COLOR_RGB,
    COLORS,
    MATERIALS,
    SHAPES,
    SIZES,
)

__all__ = [
    "ATTRIBUTE_CATEGORIES", "ATTRIBUTE_VALUES", "CAPTION_VOCABULARY", "COLOR_RGB", "COLORS",
    "Camera", "Caption", "DIRECTIONS", "MATERIALS", "REFERRING_CATEGORIES", "RELATION_PHRASES",
    "ReferringExpression", "SHAPES", "SIZES", "ToyObject", "ToyScene", "ToyWorldConfig",
    "attribute_words", "dataset_info", "describe", "generate_scene", "generate_scenes", "image_path",
    "instance_masks_to_stack", "load_scene_arrays", "mask_path", "object_caption", "read_image",
    "read_instance_mask", "referring_expression", "relational_captions", "render_objects",
    "render_scene_record", "render_without_object", "resolve_referring_expression", "sample_objects", "scene_caption",
    "scenes_path", "unique_referring_expressions", "write_dataset",
]
