"""The paper's datasets on disk: their layouts, checking a dataset root, reading them, and the one sampler.

Layouts (what an extracted download or an existing copy on a cluster holds; the study reads nothing else)::

    COCO 2014 root        val2014/COCO_val2014_%012d.jpg, annotations/instances_val2014.json
    Karpathy root         dataset_coco.json (from caption_datasets.zip)
    CLEVR v1.0 root       images/val/CLEVR_val_%06d.png, scenes/CLEVR_val_scenes.json   (the CLEVR_v1.0 folder)
    ImageNet val root     ILSVRC2012_val_%08d.JPEG (the 50,000 images of ILSVRC2012_img_val.tar, unpacked flat), with
                          a labels file elsewhere (:data:`IMAGENET_LABELS_FORMAT`; faithfulness, section IV-B1)

:func:`root_problems` is the quick check made before a workflow starts (the root and the files above exist);
:func:`check_coco_root` and :func:`check_clevr_root` are the thorough ones (every image the study may use is there;
counts), run as a job.

The one sampler: :func:`seeded_sample` picks the study's CLEVR scenes (for the SAM masks and for the attribute
design) and its COCO images (for the captions and the triplets); :func:`seeded_order` is the order behind it, also
used to visit COCO images when selecting triplets. Whoever picks scenes or images with the same seed gets the same
ones.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .clevr import read_scenes

COCO_IMAGES = "val2014"
COCO_INSTANCES = "annotations/instances_val2014.json"
KARPATHY_JSON = "dataset_coco.json"
CLEVR_IMAGES = "images"
CLEVR_SCENES = "scenes/CLEVR_val_scenes.json"
CLEVR_SPLIT = "val"

#: What each kind of root must hold: (relative path, "file" or "dir").
ROOT_LAYOUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "coco": ((COCO_IMAGES, "dir"), (COCO_INSTANCES, "file")),
    "karpathy": ((KARPATHY_JSON, "file"),),
    "clevr": ((f"{CLEVR_IMAGES}/{CLEVR_SPLIT}", "dir"), (CLEVR_SCENES, "file")),
    "imagenet": (),  # the folder of val images itself; its labels file is checked on its own
}
IMAGENET_LABELS_FORMAT = ("one line per image, '<file name> <class index>': the file name in the val folder and the "
                          "class index 0-999 in the standard order (sorted WordNet ids, the order of open_clip's "
                          "IMAGENET_CLASSNAMES), as in Caffe's ILSVRC2012 val.txt; the devkit's "
                          "ILSVRC2012_validation_ground_truth.txt numbers classes differently (ILSVRC2012_ID) and is "
                          "not read")
#: How many missing files an error message lists by name.
LIST_MISSING = 10


class DatasetLayoutError(FileNotFoundError):
    """A dataset root lacks files the study needs; the message names them and counts them."""


# ------------------------------------------------------------------------------------------ sampler
def seeded_order(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(n)``: the order in which the study visits ``n`` items."""
    return np.random.default_rng(seed).permutation(n)


def seeded_sample(items: Sequence, n: int | None, seed: int) -> list:
    """``n`` of ``items`` (the first ``n`` of :func:`seeded_order`), returned in their original order; all of them
    when ``n`` is None or at least ``len(items)``. A larger ``n`` keeps every item a smaller one picked."""
    items = list(items)
    if n is None or n >= len(items):
        return items
    if n < 0:
        raise ValueError(f"cannot sample {n} items")
    return [items[i] for i in np.sort(seeded_order(len(items), seed)[:n])]


# ------------------------------------------------------------------------------------------ readers
def load_karpathy(path: str | os.PathLike, split: str = "val") -> list[dict]:
    """Images of one split of Karpathy's ``dataset_coco.json``, in file order."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    images = [im for im in doc["images"] if im.get("split") == split]
    if not images:
        raise ValueError(f"{path}: no images in split {split!r}")
    return images


def karpathy_image_path(images_root: str | os.PathLike, image: Mapping) -> Path:
    """Where a Karpathy image lives under a COCO root: ``<root>/<filepath>/<filename>`` (filepath is val2014/...)."""
    return Path(images_root) / image.get("filepath", "") / image["filename"]


def study_coco_images(karpathy_json: str | os.PathLike, n_images: int | None, seed: int,
                      split: str = "val") -> list[dict]:
    """The COCO images of the study: ``n_images`` of the Karpathy ``split`` (all when None), by :func:`seeded_sample`."""
    return seeded_sample(load_karpathy(karpathy_json, split), n_images, seed)


def study_clevr_scenes(scenes, n_images: int | None, seed: int) -> list[dict]:
    """The CLEVR scenes of the study: ``n_images`` of a scenes document, its path or a list of scenes, by
    :func:`seeded_sample`. The SAM masks and the attribute design both call this."""
    if isinstance(scenes, (str, os.PathLike)):
        scenes = read_scenes(scenes)
    if isinstance(scenes, Mapping):
        scenes = scenes["scenes"]
    return seeded_sample(list(scenes), n_images, seed)


def _top_level_items(text: str):
    """``(key, value)`` of a JSON object's top level, decoding one value at a time; the value of a key whose
    value is an array is yielded as an iterator over its elements (decoded one by one), so a 160 MB COCO
    annotation file never exists as one big Python object."""
    dec = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")
    pos = ws.match(text, 0).end()
    if text[pos:pos + 1] != "{":
        raise ValueError("expected a JSON object at the top level")
    pos = ws.match(text, pos + 1).end()
    while text[pos:pos + 1] != "}":
        key, pos = dec.raw_decode(text, pos)
        pos = ws.match(text, pos).end()
        if text[pos:pos + 1] != ":":
            raise ValueError(f"expected ':' after key {key!r}")
        pos = ws.match(text, pos + 1).end()
        if text[pos:pos + 1] == "[":
            items, pos = _array_items(text, pos, dec, ws)
            yield key, items
        else:
            value, pos = dec.raw_decode(text, pos)
            yield key, value
        pos = ws.match(text, pos).end()
        if text[pos:pos + 1] == ",":
            pos = ws.match(text, pos + 1).end()


def _array_items(text: str, pos: int, dec, ws):
    """Decode the array starting at ``pos`` element by element; returns (list-like iterator, end position).
    The elements are decoded eagerly but only their positions are kept, then decoded again lazily."""
    starts = []
    pos = ws.match(text, pos + 1).end()
    while text[pos:pos + 1] != "]":
        starts.append(pos)
        _, pos = dec.raw_decode(text, pos)  # skip over it (the object is dropped at once)
        pos = ws.match(text, pos).end()
        if text[pos:pos + 1] == ",":
            pos = ws.match(text, pos + 1).end()
    return (dec.raw_decode(text, p)[0] for p in starts), pos + 1


def load_coco_categories(instances_json: str | os.PathLike) -> dict[str, list[str]]:
    """``str(image_id) → sorted category names`` with at least one instance, from a COCO instances JSON.

    The file is parsed one annotation at a time (the official ``instances_val2014.json`` would take ~1.5 GB
    as one Python object; this keeps about its size in text)."""
    text = Path(instances_json).read_text(encoding="utf-8")
    names: dict[int, str] = {}
    pairs: list[tuple[int, int]] = []
    for key, value in _top_level_items(text):
        if key == "categories":
            names = {c["id"]: c["name"] for c in value}
        elif key == "annotations":
            pairs = [(a["image_id"], a["category_id"]) for a in value]
    if not names:
        raise ValueError(f"{instances_json}: no 'categories'")
    per_image: dict[str, set[str]] = defaultdict(set)
    for image_id, category_id in pairs:
        per_image[str(image_id)].add(names[category_id])
    return {k: sorted(v) for k, v in per_image.items()}


# ------------------------------------------------------------------------------------------ roots
def root_problems(kind: str, root: str | os.PathLike, key: str) -> list[str]:
    """One line per problem with a dataset root of ``kind`` (coco, karpathy, clevr) given by config ``key``: the root
    or a file of its layout (:data:`ROOT_LAYOUTS`) is missing. Empty when the root looks right. Only stats files."""
    root = Path(root)
    if not root.is_dir():
        return [f"{key}: {root} is not a folder" + (" (no such path)" if not root.exists() else "")]
    problems = []
    for rel, kind_of in ROOT_LAYOUTS[kind]:
        p = root / rel
        if not (p.is_dir() if kind_of == "dir" else p.is_file()):
            problems.append(f"{key}: {root} has no {rel}{'/' if kind_of == 'dir' else ''} (expected "
                            + ", ".join(f"{r}{'/' if k == 'dir' else ''}" for r, k in ROOT_LAYOUTS[kind]) + ")")
    return problems


def _require_root(kind: str, root: Path, *files: str | os.PathLike) -> None:
    """Raise :class:`DatasetLayoutError` with every problem of the root (:func:`root_problems`) and of the files
    beside it that a check needs (a split file, a labels file), in one message."""
    problems = root_problems(kind, root, str(root)) + [f"{f}: no such file" for f in files if not Path(f).is_file()]
    if problems:
        raise DatasetLayoutError("; ".join(problems))


def _missing_files(paths: Sequence[Path], what: str) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        names = ", ".join(str(p) for p in missing[:LIST_MISSING])
        more = f" and {len(missing) - LIST_MISSING} more" if len(missing) > LIST_MISSING else ""
        raise DatasetLayoutError(f"{len(missing)} of {len(paths)} {what} missing: {names}{more}")


def _count_files(folder: Path, suffixes: tuple[str, ...]) -> int:
    with os.scandir(folder) as it:
        return sum(1 for e in it if e.name.lower().endswith(suffixes))


def check_coco_root(coco_root: str | os.PathLike, karpathy_json: str | os.PathLike, split: str = "val") -> dict:
    """Check a COCO 2014 root against Karpathy's split file: every image of ``split`` must exist under the root
    (``filepath/filename``), and the instances file must be there. Returns counts; raises
    :class:`DatasetLayoutError` naming missing files."""
    coco_root = Path(coco_root)
    _require_root("coco", coco_root, karpathy_json)
    doc = json.loads(Path(karpathy_json).read_text(encoding="utf-8"))
    splits = Counter(im.get("split") for im in doc["images"])
    images = [im for im in doc["images"] if im.get("split") == split]
    if not images:
        raise DatasetLayoutError(f"{karpathy_json}: no images in split {split!r} (splits: {dict(splits)})")
    _missing_files([karpathy_image_path(coco_root, im) for im in images],
                   f"images of the Karpathy {split} split under {coco_root}")
    return {"coco_root": str(coco_root), "karpathy_json": str(karpathy_json),
            "instances_json": str(coco_root / COCO_INSTANCES),
            "instances_json_bytes": (coco_root / COCO_INSTANCES).stat().st_size,
            "val2014_images": _count_files(coco_root / COCO_IMAGES, (".jpg", ".jpeg")),
            "karpathy_images_by_split": dict(sorted(splits.items())),
            f"karpathy_{split}_images_present": len(images),
            f"karpathy_{split}_captions": sum(len(im.get("sentences", [])) for im in images)}


def check_clevr_root(clevr_root: str | os.PathLike, split: str = CLEVR_SPLIT) -> dict:
    """Check a CLEVR v1.0 folder: the scenes file is valid and every scene's image exists. Returns counts; raises
    :class:`DatasetLayoutError` naming missing files (:class:`gradeclip.clevr.SceneFormatError` for a bad file)."""
    clevr_root = Path(clevr_root)
    _require_root("clevr", clevr_root)
    scenes = read_scenes(clevr_root / CLEVR_SCENES)["scenes"]
    images = clevr_root / CLEVR_IMAGES / split
    _missing_files([images / s["image_filename"] for s in scenes], f"images of {CLEVR_SCENES} under {images}")
    return {"clevr_root": str(clevr_root), "scenes": len(scenes),
            "objects": sum(len(s["objects"]) for s in scenes),
            f"{split}_images": _count_files(images, (".png",))}


# ------------------------------------------------------------------------------------------ ImageNet val
def load_imagenet_labels(path: str | os.PathLike) -> list[tuple[str, int]]:
    """``(file name, class index)`` of each line of an ImageNet val labels file (:data:`IMAGENET_LABELS_FORMAT`);
    a malformed line is a ``ValueError`` naming the file, the line and the format."""
    out = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or not 0 <= int(parts[1]) < 1000:
            raise ValueError(f"{path}:{number}: {line.strip()!r} is not '<file name> <class index 0-999>' "
                             f"({IMAGENET_LABELS_FORMAT})")
        out.append((parts[0], int(parts[1])))
    if not out:
        raise ValueError(f"{path}: no labels ({IMAGENET_LABELS_FORMAT})")
    return out


def check_imagenet_root(root: str | os.PathLike, labels: str | os.PathLike) -> dict:
    """Check an ImageNet val folder against its labels file: every labelled image is there. Returns counts;
    raises :class:`DatasetLayoutError` naming missing files."""
    root = Path(root)
    _require_root("imagenet", root, labels)
    pairs = load_imagenet_labels(labels)
    _missing_files([root / name for name, _ in pairs], f"labelled images under {root}")
    return {"imagenet_root": str(root), "imagenet_labels": str(labels), "labelled_images": len(pairs),
            "classes": len({c for _, c in pairs}),
            "images_in_folder": _count_files(root, (".jpeg", ".jpg", ".png"))}


# ------------------------------------------------------------------------------------------ COCO instance masks
def load_coco_annotations(instances_json: str | os.PathLike, image_ids: Sequence[int]) -> dict:
    """The instances of some COCO images: ``{"categories": {id: name}, "images": {image_id: {"height", "width"}},
    "annotations": {image_id: [annotation, ...]}}``, read one annotation at a time (see
    :func:`load_coco_categories`)."""
    wanted = {int(i) for i in image_ids}
    text = Path(instances_json).read_text(encoding="utf-8")
    out: dict = {"categories": {}, "images": {}, "annotations": defaultdict(list)}
    for key, value in _top_level_items(text):
        if key == "categories":
            out["categories"] = {c["id"]: c["name"] for c in value}
        elif key == "images":
            out["images"] = {im["id"]: {"height": im["height"], "width": im["width"]} for im in value
                             if im["id"] in wanted}
        elif key == "annotations":
            for a in value:
                if a["image_id"] in wanted:
                    out["annotations"][a["image_id"]].append(a)
    out["annotations"] = dict(out["annotations"])
    return out


def coco_annotation_mask(annotation: Mapping, height: int, width: int) -> np.ndarray:
    """(height, width) bool mask of one COCO instance: polygons (``iscrowd`` 0) filled with PIL (outline included;
    pycocotools' own rasteriser can differ on boundary pixels), or RLE (``iscrowd`` 1: uncompressed counts,
    column-major, as in the instances files of 2014, or a compressed string), exactly as pycocotools decodes it."""
    seg = annotation["segmentation"]
    if isinstance(seg, list):
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for flat in seg:
            if len(flat) >= 6:
                draw.polygon([(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)], fill=1, outline=1)
        return np.asarray(canvas, dtype=bool)
    counts = seg["counts"]
    h, w = seg.get("size", (height, width))
    if isinstance(counts, str):
        counts = _decode_rle_string(counts)
    flat = np.zeros(h * w, dtype=bool)
    pos = 0
    for k, run in enumerate(counts):
        if k % 2:
            flat[pos:pos + run] = True
        pos += run
    return flat.reshape(w, h).T


def _decode_rle_string(s: str) -> list[int]:
    """COCO's compressed RLE counts (pycocotools ``rleFrString``)."""
    counts, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts
