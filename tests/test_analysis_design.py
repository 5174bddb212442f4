"""analysis.design (and its scenes, coco and word_classes modules): the §V study design from toy scenes, CLEVR scenes and COCO (tiny files in the real formats)."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from analysis import design as D, wordnet_data as WN
from analysis.attributes import CATEGORY_ORDER
from analysis.design import coco as CD, scenes as SD, word_classes as WC
from gradeclip import datasets as DS
from gradeclip.jobs import load_jobs_tsv
from gradeclip.toyworld import ToyWorldConfig, generate_scene, resolve_referring_expression
from gradeclip.toyworld.vocabulary import ATTRIBUTE_VALUES

DATA = Path(__file__).parent / "data"
KARPATHY = DATA / "karpathy_dataset_coco_tiny.json"
INSTANCES = DATA / "coco_instances_tiny.json"
CLEVR = DATA / "clevr_scenes_tiny.json"
HAS_WORDNET = all((WN.DEBIAN_WORDNET_DIR / f).is_file() for f in WN.WORDNET_FILES)
needs_wordnet = pytest.mark.skipif(not HAS_WORDNET, reason="Debian WordNet (wordnet-base) not installed")


@pytest.fixture(scope="module")
def scenes():
    cfg = ToyWorldConfig(min_objects=2, max_objects=5)
    return {"info": {}, "scenes": [generate_scene(11, i, "val", cfg).record for i in range(40)]}


@pytest.fixture(scope="module")
def design(scenes):
    return SD.toy_design(scenes, "/data/toy")


def _scene_of(scenes):
    return {SD.scene_image_id(s): s for s in scenes["scenes"]}


# ------------------------------------------------------------------------------------------ toy
def test_attribute_texts_select_exactly_their_object(design, scenes):
    by_id = _scene_of(scenes)
    main = design.attributes[design.attributes["category"].isin(CATEGORY_ORDER)]
    assert set(main["category"]) == set(CATEGORY_ORDER)  # 40 scenes exercise every category
    for r in main.itertuples():
        assert resolve_referring_expression(by_id[r.image_id], r.text) == [r.object_id], r
        assert r.unique
    # one category at a time: colour/shape/material texts are one word, size/location name the shape too
    for r in main.itertuples():
        words = r.text.split()
        obj = by_id[r.image_id]["objects"][r.object_id]
        if r.category in ("color", "shape", "material"):
            assert words == [obj[r.category]]
        elif r.category == "size":
            assert words == [obj["size"], obj["shape"]]
        else:
            assert words[0] in ("left", "right") and words[1:] == [obj["shape"]]


def test_location_ablation_rows_accompany_every_location_text(design, scenes):
    a = design.attributes
    loc = a[a["category"] == "location"]
    abl = a[a["category"] == D.LOCATION_ABLATION]
    assert len(loc) > 0 and len(abl) == 2 * len(loc)
    assert set(loc["variant"]) == {"location+shape"}
    assert set(a.loc[~a["category"].isin(["location", D.LOCATION_ABLATION]), "variant"]) == {""}
    for r in loc.itertuples():
        side, shape = r.text.split()
        mine = abl[(abl["image_id"] == r.image_id) & (abl["object_id"] == r.object_id)]
        assert dict(zip(mine["variant"], mine["text"])) == {"shape": shape, "location": side}
    # the shape alone is never unique where a location expression was needed (that is why it was needed)
    assert not abl.loc[abl["variant"] == "shape", "unique"].any()
    by_id = _scene_of(scenes)
    for r in abl.itertuples():
        assert r.resolves_to == ",".join(map(str, resolve_referring_expression(by_id[r.image_id], r.text)))


def test_addibility_mismatched_word_is_absent_from_the_scene(design, scenes):
    by_id = _scene_of(scenes)
    add = design.addibility
    assert len(add) == len(scenes["scenes"]) and set(add["group"]) == {"adj+noun"}
    kinds = set()
    for r in add.itertuples():
        objects = by_id[r.image_id]["objects"]
        obj = objects[r.object_id]
        kinds.add(r.kind)
        assert r.base == obj["shape"] and r.matched == obj[r.kind]
        assert r.mismatched in ATTRIBUTE_VALUES[r.kind]
        assert all(o[r.kind] != r.mismatched for o in objects)
        assert (r.matched_phrase, r.mismatched_phrase) == (f"{r.matched} {r.base}", f"{r.mismatched} {r.base}")
    assert "color" in kinds
    assert any("verb" in n for n in design.notes)


def test_jobs_cover_every_text_and_round_trip(design, tmp_path):
    design.write(tmp_path)
    jobs = {j.image_id: j for j in load_jobs_tsv(tmp_path / "image_jobs.tsv", "image")}
    assert set(jobs) == set(design.images["image_id"])
    for image_id, job in jobs.items():
        need = set(design.attributes.loc[design.attributes["image_id"] == image_id, "text"])
        add = design.addibility[design.addibility["image_id"] == image_id]
        for col in ("base", "matched", "mismatched", "matched_phrase", "mismatched_phrase"):
            need |= set(add[col])
        assert set(job.texts) == need and len(job.texts) == len(set(job.texts))
        assert job.path == f"/data/toy/images/val/{image_id}.png"
    text_jobs = load_jobs_tsv(tmp_path / "text_jobs.tsv", "text")
    assert [(t.caption_id, t.text) for t in text_jobs] == list(zip(design.captions["caption_id"],
                                                                   design.captions["text"]))
    assert len(text_jobs) == len(design.images) + design.images["n_objects"].sum()  # scene + one per object
    back = D.StudyDesign.read(tmp_path)
    pd.testing.assert_frame_equal(back.attributes, design.attributes)
    pd.testing.assert_frame_equal(back.addibility, design.addibility)
    assert json.loads((tmp_path / "design.json").read_text())["notes"] == design.notes
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_toy_design_is_reproducible_and_per_image(scenes):
    a = SD.toy_design(scenes, "/d", seed=3)
    b = SD.toy_design(scenes, "/d", seed=3)
    pd.testing.assert_frame_equal(a.addibility, b.addibility)
    head = SD.toy_design(scenes, "/d", max_images=7, seed=3)
    pd.testing.assert_frame_equal(head.addibility, a.addibility.head(7))  # choices keyed by image, not by run
    other = SD.toy_design(scenes, "/d", seed=4)
    assert not other.addibility.equals(a.addibility)


def test_clevr_design_samples_scenes_and_points_at_sam_masks():
    d = SD.clevr_design(CLEVR, "/clevr/images", "/clevr/masks", n_images=1, seed=0)
    assert len(d.images) == 1 and d.addibility.empty and d.captions.empty
    r = d.images.iloc[0]
    assert r["path"] == f"/clevr/images/val/{r['image_id']}.png" and r["mask_path"] == f"/clevr/masks/{r['image_id']}.png"
    assert SD.clevr_design(CLEVR, "/i", "/m", n_images=1, seed=0).images["image_id"].tolist() == [r["image_id"]]
    assert len(SD.clevr_design(CLEVR, "/i", "/m", n_images=None).images) == 2


# ----------------------------------------------------------------------------------------- COCO
def _caption_words(image_id):
    doc = json.loads(KARPATHY.read_text())
    im = next(i for i in doc["images"] if str(i["cocoid"]) == image_id)
    return {w for s in im["sentences"] for w in re.findall(r"[a-z]+", s["raw"].lower())}


def test_coco_categories_streaming_parse_equals_json_load(tmp_path):
    doc = json.loads(INSTANCES.read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    expected = {}
    for a in doc["annotations"]:
        expected.setdefault(str(a["image_id"]), set()).add(names[a["category_id"]])
    expected = {k: sorted(v) for k, v in expected.items()}
    assert DS.load_coco_categories(INSTANCES) == expected
    # other key order and pretty-printing parse the same
    reordered = tmp_path / "instances.json"
    reordered.write_text(json.dumps({"categories": doc["categories"], "annotations": doc["annotations"],
                                     "images": doc["images"], "info": doc["info"]}, indent=2))
    assert DS.load_coco_categories(reordered) == expected


def _check_coco(d):
    cats = DS.load_coco_categories(INSTANCES)
    assert set(d.addibility["image_id"]).isdisjoint({"700", "800"})  # test/train images never used
    assert not d.addibility["image_id"].duplicated().any()
    for r in d.addibility.itertuples():
        words = _caption_words(r.image_id)
        assert r.base in cats[r.image_id]
        assert r.mismatched not in words  # absent from every caption of the image
        assert r.matched_phrase.startswith(r.matched) and r.matched_phrase.endswith(r.base)
        assert r.mismatched_phrase.startswith(r.mismatched) and r.mismatched_phrase.endswith(r.base)


@needs_wordnet
def test_coco_design_with_wordnet():
    d = CD.coco_design(KARPATHY, INSTANCES, "/coco", n_per_group=2, seed=0)
    _check_coco(d)
    assert d.addibility.groupby("group").size().to_dict() == {"adj+noun": 2, "verb+noun": 2}
    adj = d.addibility[d.addibility["group"] == "adj+noun"]
    assert all(r.matched in _caption_words(r.image_id) for r in adj.itertuples())
    assert len(d.captions) == 30 and set(d.captions["image_id"]) == {"100", "200", "300", "400", "500", "600"}
    assert d.images.set_index("image_id").loc["100", "path"] == "/coco/val2014/COCO_val2014_000000000100.jpg"
    again = CD.coco_design(KARPATHY, INSTANCES, "/coco", n_per_group=2, seed=0)
    pd.testing.assert_frame_equal(again.addibility, d.addibility)
    pd.testing.assert_frame_equal(again.image_jobs, d.image_jobs)


def _dict_classes():
    adjectives = {"young", "brown", "larger", "green", "adult", "sunny", "snowy", "red", "white", "fluffy", "blue",
                  "pink", "colorful", "black", "small", "gray", "fat", "sleepy"}
    verbs = {"standing": "stand", "grazing": "graze", "wearing": "wear", "going": "go", "riding": "ride",
             "poses": "pose", "feeding": "feed", "eating": "eat", "petting": "pet", "sitting": "sit",
             "catching": "catch", "jumping": "jump", "playing": "play", "leaping": "leap", "chasing": "chase",
             "sleeping": "sleep", "lying": "lie", "curled": "curl", "resting": "rest", "fed": "feed"}
    nouns = {"horses": "horse", "bears": "bear", "dogs": "dog"}
    return WC.WordClasses(adjectives=adjectives, verbs=verbs, nouns=nouns)


def test_coco_selection_rules_without_wordnet():
    classes = _dict_classes()
    d = CD.coco_design(KARPATHY, INSTANCES, "/coco", n_per_group=2, seed=1, classes=classes)
    _check_coco(d)
    assert d.addibility.groupby("group").size().to_dict() == {"adj+noun": 2, "verb+noun": 2}
    verb = d.addibility[d.addibility["group"] == "verb+noun"]
    stems = {"stand", "ride", "feed", "pet", "catch", "play", "chase", "sleep", "lie", "rest", "sit"}
    assert set(verb["matched"]) <= stems
    skis = verb[verb["base"] == "skis"]
    if len(skis) and skis.iloc[0]["matched"] == "stand":
        assert skis.iloc[0]["matched_phrase"] == "stand on skis"  # preposition kept
    # seeds are reproducible and matter
    pd.testing.assert_frame_equal(
        CD.coco_design(KARPATHY, INSTANCES, "/coco", n_per_group=2, seed=1, classes=classes).addibility, d.addibility)
    draws = {tuple(CD.coco_design(KARPATHY, INSTANCES, "/c", n_per_group=2, seed=s, classes=classes)
                   .addibility["mismatched"]) for s in range(6)}
    assert len(draws) > 1
    with pytest.warns(RuntimeWarning, match="only"):
        CD.coco_design(KARPATHY, INSTANCES, "/coco", n_per_group=10, seed=0, classes=classes)


def test_triplet_manifest_round_trip_and_check(tmp_path):
    classes = _dict_classes()
    d = CD.coco_design(KARPATHY, INSTANCES, "/coco", n_per_group=2, seed=0, classes=classes)
    path = CD.write_triplet_manifest(d.addibility, tmp_path / "coco_manifest_v1.csv")
    back = CD.read_triplet_manifest(path)
    assert list(back.columns) == list(CD.MANIFEST_COLUMNS) and not back["reviewed"].any()
    from_manifest = CD.coco_design(KARPATHY, None, "/coco", manifest=path, classes=classes)
    cols = list(D.ADDIBILITY_COLUMNS)
    pd.testing.assert_frame_equal(from_manifest.addibility[cols], d.addibility[cols])
    with pytest.raises(ValueError, match="not marked reviewed"):
        CD.read_triplet_manifest(path, require_reviewed=True)
    bad = back.copy()
    bad.loc[0, "mismatched"] = bad.loc[0, "matched"]  # a word that is in the captions
    bad.loc[0, "mismatched_phrase"] = bad.loc[0, "matched_phrase"]
    CD.write_triplet_manifest(bad, tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="occurs in a caption"):
        CD.coco_design(KARPATHY, None, "/coco", manifest=tmp_path / "bad.csv", classes=classes)


def test_design_rejects_texts_that_cannot_travel_in_a_job_list():
    images = pd.DataFrame([{"image_id": "1", "path": "/x.png", "mask_path": "", "n_objects": 1, "source": "t"}])
    attrs = pd.DataFrame([{"image_id": "1", "category": "color", "text": "red || blue", "object_id": 0,
                           "variant": "", "resolves_to": "0", "unique": True}])
    with pytest.raises(ValueError, match="job list"):
        D.StudyDesign(attrs, pd.DataFrame(), pd.DataFrame(), images)
