"""The §V study design on rendered scenes: the toy world (exact masks) and CLEVR (SAM's masks). See
``analysis.design`` for the tables it fills."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from gradeclip import sam_masks
from gradeclip.clevr import read_scenes
from gradeclip.datasets import study_clevr_scenes
from gradeclip.toyworld import dataset as toy_dataset
from gradeclip.toyworld.captions import (LOCATION_WORDS, object_caption, resolve_referring_expression,
                                         scene_caption as _scene_caption, unique_referring_expressions)
from gradeclip.toyworld.vocabulary import ATTRIBUTE_VALUES

from ..attributes import CATEGORY_ORDER
from . import (ATTRIBUTE_COLUMNS, CAPTION_COLUMNS, IMAGE_COLUMNS, LOCATION_ABLATION, StudyDesign,
                     keyed_rng)

#: Adjective kinds of the scene addibility design (CLEVR attribute categories that are adjectives).
SCENE_ADJECTIVE_KINDS = ("color", "material", "size")


def _scenes(scenes_doc) -> list[dict]:
    if isinstance(scenes_doc, (str, os.PathLike)):
        scenes_doc = read_scenes(scenes_doc)
    if isinstance(scenes_doc, Mapping):
        return list(scenes_doc["scenes"])
    return list(scenes_doc)


def scene_image_id(scene: Mapping) -> str:
    """A scene's image id: its file name without suffix (``TOY_val_000007``, ``CLEVR_val_000123``)."""
    return Path(scene["image_filename"]).stem


def scene_attribute_rows(scene: Mapping, categories: Sequence[str] = CATEGORY_ORDER,
                         location_ablation: bool = True) -> list[dict]:
    """§V-B rows of one scene (see the module docstring): single-category unique referring expressions, and
    for each location expression its Appendix-B ablation texts."""
    image_id = scene_image_id(scene)

    def row(category, text, k, variant):
        sel = resolve_referring_expression(scene, text)
        return {"image_id": image_id, "category": category, "text": text, "object_id": int(k),
                "variant": variant, "resolves_to": ",".join(map(str, sel)), "unique": sel == [k]}

    rows = []
    for ex in unique_referring_expressions(scene, tuple(categories)):
        if ex.category == "location":
            rows.append(row("location", ex.text, ex.object_index, "location+shape"))
            if location_ablation:
                side, shape = ex.text.split()
                if side not in LOCATION_WORDS:  # pragma: no cover - guarded by captions.referring_expression
                    raise AssertionError(f"unexpected location expression {ex.text!r}")
                rows.append(row(LOCATION_ABLATION, shape, ex.object_index, "shape"))
                rows.append(row(LOCATION_ABLATION, side, ex.object_index, "location"))
        else:
            rows.append(row(ex.category, ex.text, ex.object_index, ""))
    return rows


def scene_addibility_row(scene: Mapping, seed: int = 0,
                         kinds: Sequence[str] = SCENE_ADJECTIVE_KINDS) -> dict | None:
    """§V-A triplet of one scene: seeded object → base = its shape, matched = its word of a seeded adjective
    kind, mismatched = a seeded word of that kind worn by no object of the scene. None when no object has a
    kind with an absent word (e.g. one object of every colour, size and material — not possible with ≤ 5
    objects and CLEVR's 8 colours, but checked)."""
    objects = scene["objects"]
    if not objects:
        return None
    rng = keyed_rng(seed, "addibility", scene_image_id(scene))
    present = {kind: {o[kind] for o in objects} for kind in kinds}
    absent = {kind: [v for v in ATTRIBUTE_VALUES[kind] if v not in present[kind]] for kind in kinds}
    feasible = [kind for kind in kinds if absent[kind]]
    if not feasible:
        return None
    k = int(rng.integers(len(objects)))
    kind = feasible[int(rng.integers(len(feasible)))]
    obj = objects[k]
    base, matched = obj["shape"], obj[kind]
    mismatched = absent[kind][int(rng.integers(len(absent[kind])))]
    return {"image_id": scene_image_id(scene), "group": "adj+noun", "base": base, "matched": matched,
            "mismatched": mismatched, "matched_phrase": f"{matched} {base}",
            "mismatched_phrase": f"{mismatched} {base}", "object_id": k, "kind": kind}


def scene_caption_rows(scene: Mapping, object_captions: bool = True, scene_caption: bool = True) -> list[dict]:
    """§V-C captions of one scene from the toy world's templates: the full scene caption (``<id>:scene``) and
    one full description per object (``<id>:obj<k>``)."""
    image_id = scene_image_id(scene)
    rows = []
    if scene_caption and scene["objects"]:
        rows.append({"caption_id": f"{image_id}:scene", "image_id": image_id, "text": _scene_caption(scene).text})
    if object_captions:
        for k in range(len(scene["objects"])):
            rows.append({"caption_id": f"{image_id}:obj{k}", "image_id": image_id,
                         "text": object_caption(scene, k).text})
    return rows


def scene_design(scenes: Iterable[Mapping], image_path_of: Callable[[Mapping], os.PathLike | str],
                 mask_path_of: Callable[[Mapping], os.PathLike | str] | None, *, seed: int = 0,
                 attributes: bool = True, addibility: bool = True, captions: bool = True,
                 source: str = "scenes", params: Mapping | None = None) -> StudyDesign:
    """The design for CLEVR-schema scenes (toy world or real CLEVR); see :func:`toy_design`, :func:`clevr_design`."""
    scenes = list(scenes)
    attr_rows, add_rows, cap_rows, image_rows, notes = [], [], [], [], []
    skipped_add = []
    for scene in scenes:
        image_id = scene_image_id(scene)
        image_rows.append({"image_id": image_id, "path": str(image_path_of(scene)),
                           "mask_path": str(mask_path_of(scene)) if mask_path_of else "",
                           "n_objects": len(scene["objects"]), "source": source})
        if attributes:
            attr_rows += scene_attribute_rows(scene)
        if addibility:
            r = scene_addibility_row(scene, seed)
            if r is None:
                skipped_add.append(image_id)
            else:
                add_rows.append(r)
        if captions:
            cap_rows += scene_caption_rows(scene)
    if addibility:
        notes.append("§V-A: adjective+noun group only — the scene captions are built from articles, attribute "
                     "words and spatial prepositions and contain no verbs, so there is no verb+noun group.")
        notes.append("§V-A: base = the shape noun of one seeded object; matched = its own color, material or "
                     "size word (seeded kind); mismatched = a word of the same kind that no object of the scene "
                     "has.")
        if skipped_add:
            notes.append(f"§V-A: {len(skipped_add)} scene(s) without a possible mismatched adjective were left "
                         f"out: {', '.join(skipped_add[:10])}")
    if attributes:
        notes.append("§V-B: one unique referring expression per (object, single attribute category); size and "
                     "location expressions carry the shape noun ('small cube', 'left sphere') because the "
                     "category alone names no object. Appendix-B ablation rows (category location_ablation) "
                     "use the shape noun and the location word alone for the same object; they need not be "
                     "unique (column unique).")
    design = StudyDesign(pd.DataFrame(attr_rows, columns=list(ATTRIBUTE_COLUMNS)),
                         pd.DataFrame(add_rows), pd.DataFrame(cap_rows, columns=list(CAPTION_COLUMNS)),
                         pd.DataFrame(image_rows, columns=list(IMAGE_COLUMNS)), notes,
                         {"source": source, "seed": seed, "n_images": len(scenes), **dict(params or {})})
    return design


def toy_design(scenes_doc, dataset_dir: str | os.PathLike, max_images: int | None = None, *,
               seed: int = 0) -> StudyDesign:
    """The study design for a toy-world dataset written by ``gradeclip.toyworld.write_dataset``.

    scenes_doc: the scenes document (dict), a list of scene dicts, or the path of the scenes JSON.
    dataset_dir: the dataset's root (``images/<split>/``, ``masks/<split>/``); image and mask paths are built
    under it with ``gradeclip.toyworld.dataset.image_path`` / ``mask_path``.
    max_images: use the first ``max_images`` scenes (file order) only.
    """
    scenes = _scenes(scenes_doc)[:max_images]
    return scene_design(scenes, lambda s: toy_dataset.image_path(dataset_dir, s),
                        lambda s: toy_dataset.mask_path(dataset_dir, s),
                        seed=seed, source="toyworld",
                        params={"dataset_dir": str(dataset_dir), "max_images": max_images})


def clevr_design(scenes_doc, images_dir: str | os.PathLike, masks_dir: str | os.PathLike,
                 n_images: int | None = 50, seed: int = 0, *, addibility: bool = False,
                 captions: bool = False) -> StudyDesign:
    """The §V-B design for real CLEVR: ``n_images`` scenes sampled with ``seed`` (paper: 50 of val).

    images_dir: CLEVR's ``images`` folder (``<split>/<image_filename>`` below it); masks_dir: the SAM masks
    folder (``gradeclip.sam_masks.mask_path``). The §V-A and §V-C parts are off by default (the paper uses
    COCO for them).
    """
    scenes = study_clevr_scenes(_scenes(scenes_doc), n_images, seed)
    return scene_design(scenes, lambda s: Path(images_dir) / s["split"] / s["image_filename"],
                        lambda s: sam_masks.mask_path(masks_dir, s["image_filename"]), seed=seed, attributes=True,
                        addibility=addibility, captions=captions, source="clevr",
                        params={"images_dir": str(images_dir), "masks_dir": str(masks_dir),
                                "n_images_requested": n_images})
