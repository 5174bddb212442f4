"""gradeclip mini-data: miniature COCO / Karpathy / CLEVR files in the real formats, read back by the real readers
(pycocotools for COCO's annotations, gradeclip.clevr for CLEVR's scenes, the study's own selection code), and
random-weight checkpoints that open_clip and segment_anything load."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from analysis import wordnet_data as WN
from analysis.design import coco as CD
from gradeclip import datasets as DS
from gradeclip import minidata as M
from gradeclip.cli import main
from gradeclip.clevr import read_scenes
from gradeclip.downloads import file_digest

HAS_WORDNET = all((WN.DEBIAN_WORDNET_DIR / f).is_file() for f in WN.WORDNET_FILES)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini") / "paper-mini"
    assert main(["mini-data", "--out", str(out), "--no-weights"]) == 0
    return out


def test_mini_data_is_deterministic_and_replaces_only_its_own_folder(mini, tmp_path):
    again = tmp_path / "again"
    M.write_mini_data(again, weights=False)
    first = json.loads((mini / M.MANIFEST).read_text())
    assert json.loads((again / M.MANIFEST).read_text()) == first
    for name, digest in first["sha256"].items():  # the manifest is true to the files
        assert file_digest(mini / name) == digest, name
    M.write_mini_data(again, weights=False)  # made by mini-data: replaced
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert main(["mini-data", "--out", str(foreign), "--no-weights"]) == 2
    assert (foreign / "notes.txt").read_text() == "keep"


def test_layout_is_what_the_study_reads(mini):
    assert DS.root_problems("coco", mini / "coco", "coco") == []
    assert DS.root_problems("karpathy", mini / "karpathy", "karpathy") == []
    assert DS.root_problems("clevr", mini / "clevr" / "CLEVR_v1.0", "clevr") == []
    coco = DS.check_coco_root(mini / "coco", mini / "karpathy" / DS.KARPATHY_JSON)
    assert coco["val2014_images"] >= 12 and coco["karpathy_images_by_split"] == {
        "restval": 1, "test": 2, "train": 1, "val": 10}
    assert DS.check_clevr_root(mini / "clevr" / "CLEVR_v1.0")["scenes"] == M.N_CLEVR_SCENES


def test_coco_images_are_real_jpegs_several_not_square(mini):
    files = sorted((mini / "coco" / "val2014").glob("COCO_val2014_*.jpg"))
    assert len(files) >= 12
    sizes = []
    for f in files:
        with Image.open(f) as im:
            assert im.format == "JPEG" and im.mode in ("RGB", "L") and max(im.size) <= 640
            sizes.append(im.size)
        assert len(f.stem.split("_")[-1]) == 12
    assert sum(w != h for w, h in sizes) >= 6
    assert any(Image.open(f).mode == "L" for f in files)  # COCO has grey JPEGs too


def test_instances_file_reads_with_pycocotools(mini):
    """The instances JSON as pycocotools reads it: polygons for single objects, uncompressed RLE for crowds (as in
    COCO's own instances_val2014.json); area and bbox agree with pycocotools' own from the segmentation."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from torchvision.models._meta import _COCO_CATEGORIES

    coco = COCO(str(mini / "coco" / "annotations" / "instances_val2014.json"))
    # COCO's category ids and names (torchvision's copy, indexed by id, as an independent reference)
    assert {c["id"]: c["name"] for c in coco.dataset["categories"]} == {
        i: name for i, name in enumerate(_COCO_CATEGORIES) if name not in ("N/A", "__background__")}
    assert {c["supercategory"] for c in coco.dataset["categories"]} >= {"person", "animal", "kitchen", "sports"}
    anns = coco.dataset["annotations"]
    assert {a["iscrowd"] for a in anns} == {0, 1}
    for a in anns:
        image = coco.imgs[a["image_id"]]
        assert (mini / "coco" / "val2014" / image["file_name"]).is_file()
        rle = coco.annToRLE(a)
        mask = coco.annToMask(a)
        assert mask.shape == (image["height"], image["width"]) and mask.sum() > 0
        if a["iscrowd"]:
            assert isinstance(a["segmentation"]["counts"], list)
            assert a["area"] == float(mask_utils.area(rle)) == float(mask.sum())
            assert a["bbox"] == [float(v) for v in mask_utils.toBbox(rle)]
        else:
            assert isinstance(a["segmentation"], list) and len(a["segmentation"][0]) >= 6
            assert a["area"] == pytest.approx(float(mask_utils.area(rle)), rel=0.01)
            assert a["bbox"] == pytest.approx([float(v) for v in mask_utils.toBbox(rle)], abs=1.0)


def test_rle_counts_by_hand():
    mask = np.array([[0, 1, 1], [0, 1, 0]], dtype=bool)  # column-major: 0 0 | 1 1 | 1 0
    assert M.rle_counts(mask) == [2, 3, 1]
    assert M.rle_counts(np.ones((2, 2), bool)) == [0, 4]  # a run of zeros first, even when empty
    assert M.rle_counts(np.zeros((1, 3), bool)) == [3]


def test_karpathy_file_has_the_fields_and_tokens_of_the_real_one(mini):
    doc = json.loads((mini / "karpathy" / "dataset_coco.json").read_text())
    assert doc["dataset"] == "coco"
    sentids = set()
    for im in doc["images"]:
        assert {"filepath", "sentids", "filename", "imgid", "split", "sentences", "cocoid"} <= set(im)
        assert im["filename"] == f"COCO_{im['filepath']}_{im['cocoid']:012d}.jpg"
        assert [s["sentid"] for s in im["sentences"]] == im["sentids"] and len(im["sentences"]) == 5
        for s in im["sentences"]:
            assert s["tokens"] == [t for t in s["raw"].lower().replace(".", " ").replace(",", " ").split()]
            sentids.add(s["sentid"])
    assert len(sentids) == 5 * len(doc["images"])


@pytest.mark.skipif(not HAS_WORDNET, reason="Debian WordNet (wordnet-base) not installed")
def test_captions_exercise_every_addibility_design(mini):
    """The triplet selection finds adjective + noun and verb + noun phrases on the images' COCO categories, with
    mismatched words taken from other images; and images without any category still give §V-C captions."""
    images = DS.study_coco_images(mini / "karpathy" / "dataset_coco.json", None, 0)
    table, _ = CD.select_coco_triplets(images, DS.load_coco_categories(
        mini / "coco" / "annotations" / "instances_val2014.json"), 3, 0)
    assert table.groupby("group").size().to_dict() == {"adj+noun": 3, "verb+noun": 3}
    assert CD.check_triplets(table, images) == []
    assert (table["mismatched"] != table["matched"]).all()


def test_clevr_pictures_are_480_by_320_rgba_with_pixel_coords_on_their_objects(mini):
    scenes = read_scenes(mini / "clevr" / "CLEVR_v1.0" / "scenes" / "CLEVR_val_scenes.json")
    assert scenes["info"]["version"] == "1.0" and len(scenes["scenes"]) == M.N_CLEVR_SCENES
    for scene in scenes["scenes"]:
        with Image.open(mini / "clevr" / "CLEVR_v1.0" / "images" / "val" / scene["image_filename"]) as im:
            assert im.size == M.CLEVR_SIZE and im.mode == "RGBA"
            picture = np.asarray(im)
        record, rgba, mask = M.clevr_scene(scene["image_index"], 0)
        assert record == scene and np.array_equal(rgba, picture)
        for k, obj in enumerate(scene["objects"]):
            x, y, depth = obj["pixel_coords"]
            assert mask[y, x] == k + 1, (scene["image_filename"], k)  # the prompt point lies on its own object
            assert depth > 0


@pytest.mark.usefixtures("one_torch_thread")
def test_random_weights_load_in_their_own_architecture_only(tmp_path):
    from gradeclip.models import ModelLoadError, load_clip

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = M.random_clip_checkpoint("RN50", tmp_path / "a" / "rn50.pt", seed=0)
    b = M.random_clip_checkpoint("RN50", tmp_path / "b" / "rn50.pt", seed=0)
    assert file_digest(a) == file_digest(b)  # deterministic, byte for byte (torch.save records the file's name)
    clip = load_clip("RN50", str(a))
    import torch
    torch.manual_seed(0)
    import open_clip
    reference = open_clip.create_model("RN50", pretrained=None).state_dict()
    loaded = clip.model.state_dict()
    assert all(torch.equal(reference[k], loaded[k]) for k in reference)  # the seed's own initialisation
    with pytest.raises(ModelLoadError, match="RN50"):
        load_clip("ViT-B-16", str(a))
    b.unlink()
    sam = M.random_sam_checkpoint("vit_b", tmp_path / "sam.pth", seed=0)
    from gradeclip.sam_masks import build_predictor

    predictor = build_predictor(sam, "vit_b", device="cpu")
    assert predictor.model.image_encoder.img_size == 1024


def test_imagenet_val_folder_and_labels_read_back(mini):
    """The miniature ImageNet val: flat ILSVRC2012_val_%08d.JPEG files and a labels file with open_clip's class
    indices, as datasets reads and checks them."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    counts = DS.check_imagenet_root(mini / "imagenet" / "val", mini / "imagenet" / "val.txt")
    assert counts["labelled_images"] == counts["images_in_folder"] == len(M.IMAGENET_IMAGES)
    pairs = DS.load_imagenet_labels(mini / "imagenet" / "val.txt")
    for (name, index), (_, expected, class_name) in zip(pairs, M.IMAGENET_IMAGES):
        assert IMAGENET_CLASSNAMES[index] == class_name and index == expected
        with Image.open(mini / "imagenet" / "val" / name) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and name.startswith("ILSVRC2012_val_")


def test_coco_masks_decode_as_pycocotools_does(mini):
    """datasets.coco_annotation_mask against pycocotools: RLE crowds exactly (uncompressed and compressed counts),
    polygons up to boundary pixels (a different rasteriser)."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    coco = COCO(str(mini / "coco" / "annotations" / "instances_val2014.json"))
    doc = DS.load_coco_annotations(mini / "coco" / "annotations" / "instances_val2014.json", list(coco.imgs))
    assert sum(len(v) for v in doc["annotations"].values()) == len(coco.dataset["annotations"])
    for a in coco.dataset["annotations"]:
        size = coco.imgs[a["image_id"]]
        ours = DS.coco_annotation_mask(a, size["height"], size["width"])
        theirs = coco.annToMask(a).astype(bool)
        if a["iscrowd"]:
            np.testing.assert_array_equal(ours, theirs)
            compressed = mask_utils.frPyObjects(a["segmentation"], size["height"], size["width"])
            as_string = dict(a, segmentation={"counts": compressed["counts"].decode(), "size": compressed["size"]})
            np.testing.assert_array_equal(DS.coco_annotation_mask(as_string, size["height"], size["width"]), theirs)
        else:
            assert (ours & theirs).sum() / (ours | theirs).sum() > 0.9


def test_imagenet_labels_errors_name_the_line(tmp_path):
    bad = tmp_path / "val.txt"
    bad.write_text("ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG n01440764\n")
    with pytest.raises(ValueError, match=r"val.txt:2: .*class index 0-999"):
        DS.load_imagenet_labels(bad)
    (tmp_path / "imgs").mkdir()
    bad.write_text("ILSVRC2012_val_00000001.JPEG 65\n")
    with pytest.raises(DS.DatasetLayoutError, match="1 of 1 labelled images"):
        DS.check_imagenet_root(tmp_path / "imgs", bad)
