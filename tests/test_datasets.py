"""gradeclip.datasets: the one sampler of CLEVR scenes and COCO images, and the dataset-root layout checks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from analysis.design import coco as CD, scenes as SD, word_classes as WC
from gradeclip import datasets as DS
from gradeclip.clevr import write_scenes
from gradeclip.sam_masks import study_masks
from gradeclip.toyworld import ToyWorldConfig, generate_scene

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ sampler
def test_seeded_sample_keeps_file_order_and_grows_by_adding():
    items = [f"s{i:03d}" for i in range(200)]
    ten = DS.seeded_sample(items, 10, seed=3)
    assert len(ten) == 10 and len(set(ten)) == 10
    assert ten == sorted(ten, key=items.index)  # file order, not draw order
    assert set(ten) < set(DS.seeded_sample(items, 50, seed=3))  # a larger sample keeps the smaller one's picks
    assert DS.seeded_sample(items, 10, seed=3) == ten  # reproducible
    assert DS.seeded_sample(items, 10, seed=4) != ten  # and the seed matters
    assert DS.seeded_sample(items, None, seed=3) == items == DS.seeded_sample(items, 500, seed=3)
    # the sample is the head of the seeded order (the order the triplet selection visits images in)
    assert set(ten) == {items[i] for i in DS.seeded_order(200, 3)[:10]}
    with pytest.raises(ValueError):
        DS.seeded_sample(items, -1, seed=0)


class _FakePredictor:
    """SAM's point-prompt interface: a square around the prompt, so masks are known."""

    def set_image(self, image, image_format="RGB"):
        self.shape = image.shape[:2]

    def predict(self, point_coords, point_labels, multimask_output=True):
        masks = np.zeros((3, *self.shape), dtype=bool)
        x, y = point_coords[0].astype(int)
        masks[:, max(0, y - 2):y + 3, max(0, x - 2):x + 3] = True
        return masks, np.array([0.2, 0.9, 0.5]), None


@pytest.fixture(scope="module")
def clevr_root(tmp_path_factory):
    """A CLEVR v1.0 folder with 150 scenes (paper.yaml samples 50) and their (tiny) pictures."""
    root = tmp_path_factory.mktemp("clevr") / "CLEVR_v1.0"
    config = ToyWorldConfig(image_size=64, min_objects=1, max_objects=3)
    scenes = []
    for i in range(150):
        record = dict(generate_scene(5, i, "val", config).record, image_filename=f"CLEVR_val_{i:06d}.png",
                      split="val", image_index=i)
        path = root / "images" / "val" / record["image_filename"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGBA", (64, 64), (120, 120, 120, 255)).save(path)
        scenes.append(record)
    write_scenes(root / DS.CLEVR_SCENES, scenes, {"split": "val", "version": "1.0"})
    return root


def test_sam_masks_are_computed_for_exactly_the_scenes_of_the_attribute_design(clevr_root, tmp_path):
    """In paper mode the SAM rule (study_masks) and the study design (clevr_design) pick CLEVR scenes with one
    function: with paper.yaml's sample (50 scenes, seed 0) every scene the attribute study uses has its mask and no
    mask is computed for a scene it does not use (two samplers once shared 0 of 50 scenes)."""
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["clevr"]
    masks = tmp_path / "masks"
    scenes = study_masks(_FakePredictor(), clevr_root, masks, paper["n_images"], paper["seed"])
    design = SD.clevr_design(clevr_root / DS.CLEVR_SCENES, clevr_root / "images", masks, n_images=paper["n_images"],
                            seed=paper["seed"])
    attribute_images = set(design.attributes["image_id"])
    masked = {p.stem for p in masks.glob("*.png")}
    assert len(masked) == paper["n_images"] == len(scenes) < 150
    assert masked == set(design.images["image_id"])
    assert attribute_images <= masked and len(attribute_images) > 40  # scenes without a unique expression: few
    assert all(Path(p).is_file() for p in design.images["mask_path"])


def test_coco_design_and_triplet_manifest_draw_the_same_images(tmp_path):
    karpathy = ROOT / "tests" / "data" / "karpathy_dataset_coco_tiny.json"
    instances = ROOT / "tests" / "data" / "coco_instances_tiny.json"
    images = DS.study_coco_images(karpathy, 4, seed=2)
    assert [im["cocoid"] for im in images] == [im["cocoid"] for im in DS.seeded_sample(
        DS.load_karpathy(karpathy), 4, 2)]
    classes = WC.WordClasses(adjectives={"young", "brown", "white", "red", "black"},
                            verbs={"riding": "ride", "feeding": "feed", "standing": "stand"})
    table, stamp = CD.coco_triplet_manifest(karpathy, instances, tmp_path / "coco_triplets.csv", 1, seed=2,
                                           n_images=4, classes=classes)
    design = CD.coco_design(karpathy, None, "/coco", 1, seed=2, n_images=4, manifest=tmp_path / "coco_triplets.csv",
                           classes=classes)
    assert set(design.images["image_id"]) == {str(im["cocoid"]) for im in images}
    assert set(table["image_id"]) <= set(design.images["image_id"])
    # the stamp records the inputs' SHA-256, and the design's notes say where the triplets came from
    from gradeclip.downloads import file_digest
    assert stamp["inputs"]["karpathy_json"]["sha256"] == file_digest(karpathy)
    assert stamp["inputs"]["instances_json"]["sha256"] == file_digest(instances)
    assert json.loads((tmp_path / "coco_triplets.json").read_text()) == stamp
    assert any(file_digest(karpathy)[:16] in note for note in design.notes)
    # a manifest selected from another captions file is refused
    other = tmp_path / "dataset_coco.json"
    doc = json.loads(karpathy.read_text())
    doc["images"][0]["sentences"][0]["raw"] += " (edited)"
    other.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="select the triplets again"):
        CD.coco_design(other, None, "/coco", 1, seed=2, n_images=4, manifest=tmp_path / "coco_triplets.csv",
                      classes=classes)


# ------------------------------------------------------------------------------------------ roots
def test_root_problems_name_the_key_and_what_is_missing(tmp_path):
    assert DS.root_problems("coco", tmp_path / "nowhere", "data.roots.coco") == [
        f"data.roots.coco: {tmp_path / 'nowhere'} is not a folder (no such path)"]
    (tmp_path / "val2014").mkdir()
    [problem] = DS.root_problems("coco", tmp_path, "data.roots.coco")
    assert problem.startswith(f"data.roots.coco: {tmp_path} has no annotations/instances_val2014.json")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2014.json").write_text("{}")
    assert DS.root_problems("coco", tmp_path, "data.roots.coco") == []
    assert len(DS.root_problems("clevr", tmp_path, "data.roots.clevr")) == 2


def test_layout_checks_count_and_name_missing_images(clevr_root, tmp_path):
    counts = DS.check_clevr_root(clevr_root)
    assert counts["scenes"] == counts["val_images"] == 150
    gone = clevr_root / "images" / "val" / "CLEVR_val_000007.png"
    gone.rename(tmp_path / gone.name)
    try:
        with pytest.raises(DS.DatasetLayoutError, match="1 of 150 .* missing: .*CLEVR_val_000007.png"):
            DS.check_clevr_root(clevr_root)
    finally:
        (tmp_path / gone.name).rename(gone)

    coco = tmp_path / "coco"
    (coco / "val2014").mkdir(parents=True)
    (coco / "annotations").mkdir()
    (coco / "annotations" / "instances_val2014.json").write_text("{}")
    karpathy = ROOT / "tests" / "data" / "karpathy_dataset_coco_tiny.json"
    val = DS.load_karpathy(karpathy)
    for im in val[1:]:
        (coco / im["filepath"] / im["filename"]).write_bytes(b"jpeg")
    with pytest.raises(DS.DatasetLayoutError, match=f"1 of {len(val)} images of the Karpathy val split .*"
                                                     f"{val[0]['filename']}"):
        DS.check_coco_root(coco, karpathy)
    (coco / val[0]["filepath"] / val[0]["filename"]).write_bytes(b"jpeg")
    counts = DS.check_coco_root(coco, karpathy)
    assert counts["karpathy_val_images_present"] == len(val) == counts["val2014_images"]
