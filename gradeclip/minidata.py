"""Miniature data in the real formats of the paper's study: ``gradeclip mini-data --out DIR`` (deterministic, seconds).

Nothing real can be downloaded on an offline machine, but everything about the real path except the numbers can run
on files that look exactly like the real ones::

    DIR/coco/val2014/COCO_val2014_%012d.jpg                   photographs from scikit-image's skimage.data (they ship
                                                              in its wheel) and toy-world renders; several not square
    DIR/coco/annotations/instances_val2014.json               COCO instances schema: polygons (iscrowd 0) and
                                                              uncompressed RLE (iscrowd 1, as in the real file), bbox,
                                                              area, COCO's 80 categories with their ids
    DIR/karpathy/dataset_coco.json                            Karpathy's split file: val, test, restval and train
                                                              images, five captions each (raw and tokens)
    DIR/clevr/CLEVR_v1.0/images/val/CLEVR_val_%06d.png        480 x 320 RGBA, toy-world scenes in CLEVR's vocabulary
    DIR/imagenet/val/ILSVRC2012_val_%08d.JPEG                 ImageNet val as unpacked from ILSVRC2012_img_val.tar:
    DIR/imagenet/val.txt                                      scikit-image photographs, labels '<file> <class index>'
    DIR/clevr/CLEVR_v1.0/scenes/CLEVR_val_scenes.json         CLEVR's schema; pixel_coords are where the objects are
    DIR/weights/open_clip_ViT-B-16_random.pt                  open_clip ViT-B-16 and RN50, seeded random weights
    DIR/weights/open_clip_RN50_random.pt                      (``pretrained=<path>``)
    DIR/weights/sam_vit_b_random.pth                          SAM vit_b from segment_anything's own builder, seeded
    DIR/MINI_DATA.json                                        what this is, and the SHA-256 of every file

The captions exercise every §V design: adjective + noun and verb + noun phrases on a COCO category of their image
(the §V-A triplets), words a mismatched phrase can take from other images, and plain captions for §V-C. Random
weights prove formats and wiring, not the paper's numbers.

The folder is written beside ``DIR`` and renamed into place: ``DIR`` is complete or absent. An existing ``DIR`` is
replaced only if mini-data made it.
"""
from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .extras import require
from .files import atomic_folder

MANIFEST = "MINI_DATA.json"
CLEVR_SIZE = (480, 320)  # width, height of CLEVR v1.0's images
MAX_SIDE = 640  # COCO's images are at most 640 pixels on their longer side
JPEG_QUALITY = 90
WEIGHT_FILES = {"ViT-B-16": "open_clip_ViT-B-16_random.pt", "RN50": "open_clip_RN50_random.pt",
                "sam_vit_b": "sam_vit_b_random.pth"}

#: COCO 2014's 80 instance categories: (id, name, supercategory); the ids have gaps, as in the real file.
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"), (8, "truck", "vehicle"),
    (9, "boat", "vehicle"), (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"), (16, "bird", "animal"),
    (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"), (20, "sheep", "animal"),
    (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"), (24, "zebra", "animal"),
    (25, "giraffe", "animal"), (27, "backpack", "accessory"), (28, "umbrella", "accessory"),
    (31, "handbag", "accessory"), (32, "tie", "accessory"), (33, "suitcase", "accessory"), (34, "frisbee", "sports"),
    (35, "skis", "sports"), (36, "snowboard", "sports"), (37, "sports ball", "sports"), (38, "kite", "sports"),
    (39, "baseball bat", "sports"), (40, "baseball glove", "sports"), (41, "skateboard", "sports"),
    (42, "surfboard", "sports"), (43, "tennis racket", "sports"), (44, "bottle", "kitchen"),
    (46, "wine glass", "kitchen"), (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"),
    (50, "spoon", "kitchen"), (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"),
    (54, "sandwich", "food"), (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"),
    (58, "hot dog", "food"), (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"),
    (62, "chair", "furniture"), (63, "couch", "furniture"), (64, "potted plant", "furniture"),
    (65, "bed", "furniture"), (67, "dining table", "furniture"), (70, "toilet", "furniture"),
    (72, "tv", "electronic"), (73, "laptop", "electronic"), (74, "mouse", "electronic"),
    (75, "remote", "electronic"), (76, "keyboard", "electronic"), (77, "cell phone", "electronic"),
    (78, "microwave", "appliance"), (79, "oven", "appliance"), (80, "toaster", "appliance"),
    (81, "sink", "appliance"), (82, "refrigerator", "appliance"), (84, "book", "indoor"), (85, "clock", "indoor"),
    (86, "vase", "indoor"), (87, "scissors", "indoor"), (88, "teddy bear", "indoor"), (89, "hair drier", "indoor"),
    (90, "toothbrush", "indoor"),
)
CATEGORY_ID = {name: cid for cid, name, _ in COCO_CATEGORIES}


# ----------------------------------------------------------------------------------------- COCO images
def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        data = require("skimage.data", "gradeclip.minidata")  # optional: the study extra

        if name == "motorcycle":
            return data.stereo_motorcycle()[0]
        image = getattr(data, name)()
        return (~image).astype(np.uint8) * 255 if image.dtype == bool else image  # the horse: black on white

    return load


@dataclass(frozen=True)
class Annotation:
    """One instance: a category and its region as polygon vertices in fractions of (width, height). Without a
    polygon the region comes from the picture: the exact masks of a toy render (its first sphere; with ``crowd``,
    its other spheres together), the dark pixels of the horse's silhouette. ``crowd`` regions are stored as RLE."""

    category: str
    polygon: tuple[tuple[float, float], ...] = ()
    crowd: bool = False


@dataclass(frozen=True)
class CocoImage:
    cocoid: int
    split: str  # Karpathy split: val, test, restval, train
    captions: tuple[str, ...]
    photo: str | None = None  # skimage.data name (None only for the train image, which is not written)
    toy: tuple = ()  # toy-world objects ((shape, color, material, size, x, y), ...) rendered instead of a photo
    annotations: tuple[Annotation, ...] = ()

    @property
    def folder(self) -> str:
        return "train2014" if self.split == "train" else "val2014"

    @property
    def filename(self) -> str:
        return f"COCO_{self.folder}_{self.cocoid:012d}.jpg"


_BOX = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))


def _box(x0, y0, x1, y1):
    return tuple((x0 + (x1 - x0) * u, y0 + (y1 - y0) * v) for u, v in _BOX)


def _ellipse(cx, cy, rx, ry, n=16):
    return tuple((cx + rx * np.cos(2 * np.pi * k / n), cy + ry * np.sin(2 * np.pi * k / n)) for k in range(n))


#: The miniature COCO: ten Karpathy val images (eight photographs, two toy renders), two test and one restval image
#: on disk, and one train image that is not (Karpathy's file lists train2014 images; the study never reads them).
COCO_IMAGES: tuple[CocoImage, ...] = (
    CocoImage(391001, "val", (
        "A smiling person in an orange space suit poses for a portrait.",
        "A young person wearing a space suit in front of a flag.",
        "An astronaut holding a white helmet next to a flag.",
        "Someone photographing a young person in a flight suit.",
        "Portrait of a happy woman in a spacesuit with a shuttle model."),
        photo="astronaut",
        annotations=(Annotation("person", ((0.08, 1.0), (0.14, 0.42), (0.3, 0.1), (0.5, 0.04), (0.68, 0.12),
                                           (0.8, 0.45), (0.88, 1.0))),)),
    CocoImage(391002, "val", (
        "A black and white photo of a person with a camera on a tripod.",
        "A man standing behind an old camera in a park.",
        "An old person looking through a camera.",
        "Someone watching a busy person with a tripod.",
        "A photographer in a dark coat taking a picture on the lawn."),
        photo="camera",
        annotations=(Annotation("person", ((0.22, 1.0), (0.28, 0.3), (0.4, 0.08), (0.55, 0.1), (0.66, 0.45),
                                           (0.62, 1.0))),)),
    CocoImage(391003, "val", (
        "An orange cat sitting on a wooden floor.",
        "A close up of a fluffy cat with green eyes.",
        "A striped cat staring at the camera.",
        "Someone petting a small orange cat.",
        "A ginger kitten looking up at its owner."),
        photo="cat",
        annotations=(Annotation("cat", ((0.04, 1.0), (0.12, 0.2), (0.3, 0.0), (0.7, 0.0), (0.9, 0.25),
                                        (0.97, 1.0))),)),
    CocoImage(391004, "val", (
        "A white cup of coffee on a saucer.",
        "A hot cup of coffee on a wooden table.",
        "Someone holding a full cup of coffee.",
        "A spoon resting beside a white cup.",
        "Latte art in a ceramic cup on a plate."),
        photo="coffee",
        annotations=(Annotation("cup", _ellipse(0.5, 0.5, 0.33, 0.36)),
                     Annotation("spoon", _box(0.05, 0.55, 0.2, 0.95)))),
    CocoImage(391005, "val", (
        "A red motorcycle parked in a garage.",
        "A man repairing a vintage motorcycle.",
        "A shiny motorcycle in a cluttered workshop.",
        "Someone riding a fast motorcycle down the road.",
        "A motorbike in front of a brick wall."),
        photo="motorcycle",
        annotations=(Annotation("motorcycle", ((0.05, 0.95), (0.12, 0.4), (0.35, 0.2), (0.75, 0.22),
                                               (0.95, 0.5), (0.97, 0.95))),)),
    CocoImage(391006, "val", (
        "The black silhouette of a horse on a white background.",
        "A cowboy riding a black horse.",
        "A drawing of a galloping horse.",
        "A big horse with a long tail.",
        "A dark shape of an animal on a plain page."),
        photo="horse"),  # its polygon is traced from the silhouette itself
    CocoImage(391007, "val", (
        "A round clock hanging on a wall.",
        "A blurry photo of an old clock.",
        "Someone shaking a small clock in front of the camera.",
        "A clock with black hands and white numbers.",
        "The face of a wall clock in motion."),
        photo="clock",
        annotations=(Annotation("clock", _ellipse(0.5, 0.5, 0.38, 0.45)),)),
    CocoImage(391008, "val", (
        "A rocket standing on a launch pad.",
        "A space shuttle ready for launch under a blue sky.",
        "A tall white rocket next to a service tower.",
        "The launch of a rocket on a clear day.",
        "A rocket pointing at the sky at Cape Canaveral."),
        photo="rocket"),  # no COCO category: captions only (§V-C)
    CocoImage(391009, "val", (
        "A red sports ball next to a blue cube.",
        "Three shiny sports balls on a grey floor.",
        "Someone kicking a small sports ball toward a cube.",
        "Colorful toys arranged on a plain surface.",
        "A metal cube and three rubber balls."),
        toy=(("sphere", "red", "rubber", "large", -1.6, 0.5), ("cube", "blue", "metal", "large", 0.4, -1.2),
             ("sphere", "yellow", "rubber", "small", 1.8, 1.6), ("sphere", "green", "rubber", "small", 2.2, -0.4)),
        annotations=(Annotation("sports ball"),  # the first sphere, a polygon
                     Annotation("sports ball", crowd=True))),  # the other spheres together: a crowd (RLE)
    CocoImage(391010, "val", (
        "A green sports ball beside a yellow cylinder.",
        "A large sports ball in front of a small cube.",
        "Someone throwing a green sports ball.",
        "Simple shapes on a grey background.",
        "A cylinder and a ball on the floor."),
        toy=(("sphere", "green", "metal", "large", -0.8, -1.5), ("cylinder", "yellow", "rubber", "large", 1.2, 0.8),
             ("cube", "purple", "rubber", "small", -2.0, 1.8)),
        annotations=(Annotation("sports ball"),)),
    CocoImage(391011, "test", (
        "Old coins on a dark table.",
        "A collection of silver coins.",
        "Rows of round coins in a museum display.",
        "Many small coins laid out on cloth.",
        "Ancient money on a black background."),
        photo="coins"),
    CocoImage(391012, "test", (
        "A page of printed text.",
        "Black letters on a white page.",
        "An old book page with a drawing.",
        "Text and a figure in a scanned page.",
        "A paragraph of writing on paper."),
        photo="page", annotations=(Annotation("book", _box(0.0, 0.0, 1.0, 1.0)),)),
    CocoImage(391013, "restval", (
        "A sky full of distant galaxies.",
        "Bright stars in a dark night sky.",
        "A telescope picture of deep space.",
        "Many small galaxies of different colors.",
        "Space with stars and galaxies."),
        photo="hubble_deep_field"),
    CocoImage(391014, "train", (
        "A person riding a bicycle down a street.",
        "A cyclist on a city road.",
        "A man on a bike next to parked cars.",
        "Someone cycling past a shop.",
        "A bicycle rider in traffic."),
        annotations=(Annotation("person", _box(0.3, 0.2, 0.6, 0.9)), Annotation("bicycle", _box(0.25, 0.5, 0.7, 1.0)))),
)


def _fit(image: np.ndarray) -> np.ndarray:
    """A photograph at most :data:`MAX_SIDE` pixels on its longer side, as COCO's."""
    h, w = image.shape[:2]
    if max(h, w) <= MAX_SIDE:
        return image
    scale = MAX_SIDE / max(h, w)
    size = (round(w * scale), round(h * scale))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def _pad(image: np.ndarray, mask: np.ndarray, width: int, fill) -> tuple[np.ndarray, np.ndarray, int]:
    """Pad a square render left and right to ``width`` columns; returns the image, the mask and the column offset."""
    left = (width - image.shape[1]) // 2
    right = width - image.shape[1] - left
    padded = np.pad(image, ((0, 0), (left, right), (0, 0)))
    padded[:, :left] = fill
    padded[:, image.shape[1] + left:] = fill
    return padded, np.pad(mask, ((0, 0), (left, right))), left


def _toy_render(objects: Sequence[tuple], height: int = 256, width: int = 384) -> tuple[np.ndarray, np.ndarray]:
    """A toy-world render of the given objects, padded to ``width`` (not square): (RGB image, instance mask)."""
    from .toyworld import Camera, ToyObject, ToyWorldConfig, render_objects

    background = ToyWorldConfig().background_rgb
    image, mask = render_objects([ToyObject(*o) for o in objects], Camera(height), background)
    image, mask, _ = _pad(image, mask, width, background)
    return image, mask


def polygon_mask(polygon: Sequence[tuple[float, float]], width: int, height: int) -> np.ndarray:
    """Boolean mask of a polygon given in pixel coordinates."""
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in polygon], fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def mask_polygon(mask: np.ndarray, tolerance: float = 1.0) -> list[float]:
    """The outline of a mask's largest region as COCO's flat polygon ``[x1, y1, x2, y2, ...]`` (pixel edges)."""
    measure = require("skimage.measure", "gradeclip.minidata")  # optional: the study extra

    contours = measure.find_contours(np.pad(mask.astype(float), 1), 0.5)
    contour = max(contours, key=len)
    # undo the padding; the last point repeats the first
    points = measure.approximate_polygon(contour, tolerance)[:-1] - 1
    return [round(float(v), 2) for row, col in points for v in (col + 0.5, row + 0.5)]


def rle_counts(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE of a mask (column-major run lengths, starting with a run of zeros), as stored in
    ``instances_*.json`` for ``iscrowd`` annotations."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    return ([0] + counts) if flat.size and flat[0] else counts


def _bbox(xs, ys) -> list[float]:
    x0, y0 = float(np.min(xs)), float(np.min(ys))
    return [round(x0, 2), round(y0, 2), round(float(np.max(xs)) - x0, 2), round(float(np.max(ys)) - y0, 2)]


def _polygon_area(flat: Sequence[float]) -> float:
    x, y = np.asarray(flat[0::2]), np.asarray(flat[1::2])
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def polygon_annotation(flat: list[float]) -> dict:
    """Segmentation, area and bbox of an iscrowd-0 instance (area: the polygon's area, as COCO's is in pixels)."""
    return {"segmentation": [flat], "area": round(_polygon_area(flat), 2), "iscrowd": 0,
            "bbox": _bbox(flat[0::2], flat[1::2])}


def rle_annotation(mask: np.ndarray) -> dict:
    """Segmentation (uncompressed RLE), area (pixels) and bbox of an iscrowd-1 instance."""
    ys, xs = np.nonzero(mask)
    bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)] \
        if len(xs) else [0.0, 0.0, 0.0, 0.0]  # whole pixels, as pycocotools' toBbox
    return {"segmentation": {"counts": rle_counts(mask), "size": [int(mask.shape[0]), int(mask.shape[1])]},
            "area": float(mask.sum()), "iscrowd": 1, "bbox": bbox}


def coco_picture(spec: CocoImage) -> tuple[np.ndarray, list[dict]]:
    """The picture of one miniature COCO image (uint8, RGB or grey) and its annotations (without ids)."""
    if spec.toy:
        image, instances = _toy_render(spec.toy)
        spheres = [k + 1 for k, o in enumerate(spec.toy) if o[0] == "sphere"]
        regions = []
        for a in spec.annotations:  # first a single sphere, then the remaining spheres as a crowd
            ids = spheres[1:] if a.crowd else spheres[:1]
            regions.append((a, np.isin(instances, ids)))
    else:
        image = _fit(_skimage(spec.photo)())
        h, w = image.shape[:2]
        if spec.photo == "horse":
            regions = [(Annotation("horse"), image < 128)]
        else:
            regions = [(a, polygon_mask([(x * (w - 1), y * (h - 1)) for x, y in a.polygon], w, h))
                       for a in spec.annotations]
    annotations = []
    for a, mask in regions:
        if a.crowd:
            ann = rle_annotation(mask)
        elif a.polygon and not spec.toy:
            h, w = image.shape[:2]
            ann = polygon_annotation([round(v, 2) for x, y in a.polygon for v in (x * (w - 1), y * (h - 1))])
        else:
            ann = polygon_annotation(mask_polygon(mask))
        annotations.append({**ann, "category_id": CATEGORY_ID[a.category]})
    return image, annotations


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def caption_tokens(raw: str) -> list[str]:
    """Karpathy's tokens: lower case, punctuation dropped."""
    return re.findall(r"[a-z0-9]+", raw.lower())


def write_coco(out: Path) -> dict:
    """``out/coco`` (images, instances) and ``out/karpathy/dataset_coco.json``; returns counts."""
    images, annotations, karpathy = [], [], []
    sentid = 0
    for imgid, spec in enumerate(COCO_IMAGES):
        sentences = []
        for raw in spec.captions:
            sentences.append({"tokens": caption_tokens(raw), "raw": raw, "imgid": imgid, "sentid": sentid})
            sentid += 1
        karpathy.append({"filepath": spec.folder, "sentids": [s["sentid"] for s in sentences],
                         "filename": spec.filename, "imgid": imgid, "split": spec.split, "sentences": sentences,
                         "cocoid": spec.cocoid})
        if spec.split == "train":  # instances_val2014.json lists val2014 images only; train2014 is not written
            continue
        picture, anns = coco_picture(spec)
        (out / "coco" / "val2014" / spec.filename).write_bytes(_jpeg(picture))
        images.append({"license": 1, "file_name": spec.filename,
                       "coco_url": f"http://images.cocodataset.org/val2014/{spec.filename}",
                       "height": int(picture.shape[0]), "width": int(picture.shape[1]),
                       "date_captured": "2013-11-14 11:18:45", "flickr_url": "", "id": spec.cocoid})
        for ann in anns:
            annotations.append({**ann, "image_id": spec.cocoid, "id": 900000 + len(annotations)})
    instances = {
        "info": {"description": "gradeclip mini-data: miniature COCO 2014 val in the real format (not COCO's data)",
                 "url": "https://cocodataset.org", "version": "1.0", "year": 2014, "contributor": "gradeclip-study",
                 "date_created": "2017-09-01 00:00:00"},
        "licenses": [{"url": "https://scikit-image.org/docs/stable/api/skimage.data.html", "id": 1,
                      "name": "the licenses of scikit-image's sample images (skimage.data)"}],
        "images": images, "annotations": annotations,
        "categories": [{"supercategory": s, "id": i, "name": n} for i, n, s in COCO_CATEGORIES],
    }
    (out / "coco" / "annotations" / "instances_val2014.json").write_text(json.dumps(instances))
    (out / "karpathy" / "dataset_coco.json").write_text(json.dumps({"images": karpathy, "dataset": "coco"}))
    return {"coco_images": len(images), "annotations": len(annotations),
            "karpathy": {s: sum(1 for k in karpathy if k["split"] == s) for s in ("val", "test", "restval", "train")}}


# ----------------------------------------------------------------------------------------- CLEVR
N_CLEVR_SCENES = 8


def clevr_scene(index: int, seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """Scene ``index`` of the miniature CLEVR val: its record in CLEVR's schema, its 480 x 320 RGBA picture and the
    exact instance mask (0 background, k + 1 object k; not written: CLEVR has none). A toy-world scene rendered at
    320 x 320 and padded with the background to CLEVR's width; pixel_coords move with it."""
    from .toyworld import ToyWorldConfig, generate_scene

    width, height = CLEVR_SIZE
    config = ToyWorldConfig(image_size=height, min_objects=3, max_objects=5)
    scene = generate_scene(seed, index, "val", config)
    image, mask, left = _pad(scene.image, scene.instance_mask, width, config.background_rgb)
    record = dict(scene.record, image_filename=f"CLEVR_val_{index:06d}.png", image_index=index, split="val")
    record["objects"] = [dict(o, pixel_coords=[o["pixel_coords"][0] + left, *o["pixel_coords"][1:]])
                         for o in scene.record["objects"]]
    rgba = np.concatenate([image, np.full((height, width, 1), 255, np.uint8)], axis=2)  # CLEVR's PNGs are RGBA
    return record, rgba, mask


def write_clevr(out: Path, seed: int) -> dict:
    from .clevr import write_scenes

    root = out / "clevr" / "CLEVR_v1.0"
    records = []
    for index in range(N_CLEVR_SCENES):
        record, rgba, _ = clevr_scene(index, seed)
        path = root / "images" / "val" / record["image_filename"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgba, mode="RGBA").save(path, format="PNG")
        records.append(record)
    info = {"split": "val", "license": "Creative Commons Attribution (CC BY 4.0)", "version": "1.0",
            "date": "2/14/2017", "generator": f"gradeclip mini-data (toy-world renders, seed {seed}; not CLEVR's data)"}
    write_scenes(root / "scenes" / "CLEVR_val_scenes.json", records, info)
    return {"clevr_scenes": len(records), "clevr_objects": sum(len(r["objects"]) for r in records)}


# ----------------------------------------------------------------------------------------- ImageNet val
#: (skimage.data photograph, ImageNet class index in the standard order, its name in open_clip's IMAGENET_CLASSNAMES)
IMAGENET_IMAGES: tuple[tuple[str, int, str], ...] = (
    ("chelsea", 281, "tabby cat"), ("coffee", 967, "espresso"), ("rocket", 812, "space shuttle"),
    ("camera", 759, "reflex camera"), ("clock", 409, "analog clock"), ("horse", 339, "common sorrel horse"),
)


def write_imagenet(out: Path) -> dict:
    """``out/imagenet/val/ILSVRC2012_val_%08d.JPEG`` (RGB JPEGs) and ``out/imagenet/val.txt`` (the labels file
    ``datasets.load_imagenet_labels`` reads)."""
    folder = out / "imagenet" / "val"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, (photo, index, _) in enumerate(IMAGENET_IMAGES, start=1):
        image = _skimage(photo)()
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        name = f"ILSVRC2012_val_{number:08d}.JPEG"
        (folder / name).write_bytes(_jpeg(np.ascontiguousarray(image[..., :3])))
        lines.append(f"{name} {index}")
    (out / "imagenet" / "val.txt").write_text("\n".join(lines) + "\n")
    return {"imagenet_images": len(lines)}


# ----------------------------------------------------------------------------------------- weights
def random_clip_checkpoint(model_name: str, path: str | os.PathLike, seed: int) -> Path:
    """An open_clip ``model_name`` with the weights of its own initialisation under ``torch.manual_seed(seed)``,
    saved as a checkpoint open_clip loads with ``pretrained=<path>`` (``state_dict`` plus the architecture it was
    made as, which :func:`gradeclip.models.load_clip` checks)."""
    import open_clip
    import torch

    from .models import TRAINING_METADATA_KEY

    torch.manual_seed(seed)
    model = open_clip.create_model(model_name, pretrained=None)
    meta = {"model_name": model_name, "weights": f"seeded random initialisation (gradeclip mini-data, seed {seed})"}
    path = Path(path)
    torch.save({"state_dict": model.state_dict(), TRAINING_METADATA_KEY: meta}, path)
    return path


def random_sam_checkpoint(model_type: str, path: str | os.PathLike, seed: int) -> Path:
    """A SAM ``model_type`` built by segment_anything's own builder with weights of its initialisation under
    ``torch.manual_seed(seed)``, saved as the plain state dict the builder loads (``checkpoint=<path>``)."""
    import torch

    # optional: the study extra
    segment_anything = require("segment_anything", "gradeclip.minidata.random_sam_checkpoint")
    torch.manual_seed(seed)
    sam = segment_anything.sam_model_registry[model_type](checkpoint=None)
    path = Path(path)
    torch.save(sam.state_dict(), path)
    return path


def write_weights(out: Path, seed: int) -> dict:
    folder = out / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("ViT-B-16", "RN50"):
        random_clip_checkpoint(name, folder / WEIGHT_FILES[name], seed)
    random_sam_checkpoint("vit_b", folder / WEIGHT_FILES["sam_vit_b"], seed)
    return {"weights": sorted(WEIGHT_FILES.values())}


# ----------------------------------------------------------------------------------------- all
def _sha256(path: Path) -> str:
    from .downloads import file_digest

    return file_digest(path, "sha256")


def write_mini_data(out: str | os.PathLike, seed: int = 0, weights: bool = True) -> dict:
    """Write the miniature data set to ``out`` (see the module docstring); returns its manifest."""
    out = Path(out)
    require(["skimage", *(["segment_anything"] if weights else [])], "gradeclip mini-data")  # before any work
    if out.exists() and not (out / MANIFEST).is_file():
        raise FileExistsError(f"{out} exists and was not made by gradeclip mini-data (no {MANIFEST}): choose another "
                              f"folder or remove it")
    with atomic_folder(out, replace=True) as staging:  # a run that fails half-way leaves no half-written folder
        for folder in ("coco/val2014", "coco/annotations", "karpathy"):
            (staging / folder).mkdir(parents=True)
        counts = {**write_coco(staging), **write_clevr(staging, seed), **write_imagenet(staging)}
        if weights:
            counts.update(write_weights(staging, seed))
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        manifest = {"what": "miniature data in the real formats of COCO 2014, Karpathy's splits, CLEVR v1.0, "
                            "ImageNet val, "
                            "open_clip and SAM checkpoints (random weights): formats and wiring, not the paper's "
                            "numbers", "made_by": "gradeclip mini-data", "seed": seed, "counts": counts,
                    "sha256": {str(p.relative_to(staging)): _sha256(p) for p in files}}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def add_minidata_command(subparsers) -> None:
    p = subparsers.add_parser("mini-data", help="miniature COCO / Karpathy / CLEVR / ImageNet val data and random-weight "
                                                "checkpoints in the real formats (for make paper-smoke)")
    p.add_argument("--out", "-o", required=True, help="output folder (replaced if mini-data made it)")
    p.add_argument("--seed", type=int, default=0, help="seed of the CLEVR scenes and of the random weights")
    p.add_argument("--no-weights", action="store_true", help="skip the ViT-B-16, RN50 and SAM checkpoints")
    p.set_defaults(func=_command)


def _command(args) -> int:
    try:
        manifest = write_mini_data(args.out, seed=args.seed, weights=not args.no_weights)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(manifest['sha256'])} files to {args.out}: {json.dumps(manifest['counts'])}")
    return 0
