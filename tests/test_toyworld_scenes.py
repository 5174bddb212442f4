"""Toy world scene generator: determinism, exact masks, CLEVR schema, captions."""

import copy
import json
import sys
import subprocess
import os
from pathlib import Path

import numpy as np
import pytest

from gradeclip import clevr
from gradeclip.toyworld import (
    ATTRIBUTE_CATEGORIES,
    CAPTION_VOCABULARY,
    COLORS,
    MATERIALS,
    REFERRING_CATEGORIES,
    RELATION_PHRASES,
    SHAPES,
    SIZES,
    Camera,
    ToyObject,
    ToyWorldConfig,
    attribute_words,
    generate_scene,
    generate_scenes,
    load_scene_arrays,
    object_caption,
    referring_expression,
    relational_captions,
    render_objects,
    render_scene_record,
    render_without_object,
    resolve_referring_expression,
    scene_caption,
    scenes_path,
    unique_referring_expressions,
    write_dataset,
)
from gradeclip.toyworld import dataset as dataset_module
from gradeclip.toyworld.scenes import scene_record

TINY_CLEVR = Path(__file__).parent / "data" / "clevr_scenes_tiny.json"
CONFIG = ToyWorldConfig()
BACKGROUND = np.array(CONFIG.background_rgb, dtype=np.uint8)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _pixel_x(scene, k):
    return scene["objects"][k]["pixel_coords"][0]


# ---------------------------------------------------------------- determinism


def test_default_image_size_suits_a_patch_8_vit():
    assert CONFIG.image_size % 8 == 0 and CONFIG.image_size // 8 >= 12


def test_same_seed_and_index_give_identical_scene():
    a, b = generate_scene(7, 3), generate_scene(7, 3)
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.instance_mask, b.instance_mask)
    assert json.dumps(a.record) == json.dumps(b.record)


def test_scene_does_not_depend_on_dataset_size_or_start():
    batch = list(generate_scenes(seed=5, n=3, start_index=4))
    for offset, scene in enumerate(batch):
        alone = generate_scene(5, 4 + offset)
        assert np.array_equal(scene.image, alone.image)
        assert scene.record == alone.record


def test_different_seeds_give_different_scenes():
    for index in range(5):
        a, b = generate_scene(0, index), generate_scene(1, index)
        assert not np.array_equal(a.image, b.image)
        assert a.record["objects"] != b.record["objects"]


def test_write_dataset_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    write_dataset(tmp_path / "a", n_scenes=6, seed=11)
    write_dataset(tmp_path / "b", n_scenes=6, seed=11)
    write_dataset(tmp_path / "c", n_scenes=6, seed=12)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 6 + 6 + 1  # images, masks, scenes JSON
    assert a == b
    assert a.keys() == c.keys()
    differing = [name for name in a if a[name] != c[name]]
    assert len(differing) >= 12  # every image and most masks, plus the JSON
    assert "scenes/TOY_train_scenes.json" in differing


def _scene_digest_in_fresh_process(seed: int, index: int, hash_seed: str) -> str:
    """Generate a scene in a separate interpreter (other hash seed, fresh RNG state) and return its digest."""
    code = (
        "import hashlib, json, sys; from gradeclip.toyworld import generate_scene; "
        f"s = generate_scene({seed}, {index}); "
        "sys.stdout.write(hashlib.sha256(s.image.tobytes() + s.instance_mask.tobytes()"
        " + json.dumps(s.record).encode()).hexdigest())"
    )
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                          text=True).stdout


def test_scene_is_identical_across_processes():
    """Determinism does not hang on interpreter state: two fresh processes with different hash seeds agree."""
    a = _scene_digest_in_fresh_process(0, 1, "1")
    b = _scene_digest_in_fresh_process(0, 1, "12345")
    assert a == b and len(a) == 64


# ---------------------------------------------------------------------- masks


@pytest.mark.parametrize("index", range(10))
def test_instance_mask_is_exactly_the_painted_pixels(index):
    scene = generate_scene(3, index)
    camera = Camera(CONFIG.image_size)
    masks = scene.object_masks()
    assert masks.shape == (len(scene.objects), CONFIG.image_size, CONFIG.image_size)
    painted_alone = []
    for k, obj in enumerate(scene.objects):
        alone, _ = render_objects([obj], camera, CONFIG.background_rgb)
        painted = np.any(alone != BACKGROUND, axis=-1)
        assert painted.sum() > 20, f"object {k} paints almost nothing"
        assert np.array_equal(painted, masks[k]), f"object {k}: mask != painted pixels"
        assert np.array_equal(scene.image[painted], alone[painted])
        painted_alone.append(painted)
    assert np.sum(painted_alone, axis=0).max() <= 1, "objects overlap"
    assert np.all(scene.image[scene.instance_mask == 0] == BACKGROUND)
    assert set(np.unique(scene.instance_mask)) == set(range(len(scene.objects) + 1))


def test_layouts_keep_margins_and_objects_inside_the_image():
    for index in range(40):
        scene = generate_scene(4, index)
        objects = scene.objects
        for i in range(len(objects)):
            for j in range(i + 1, len(objects)):
                assert abs(objects[i].x - objects[j].x) >= CONFIG.margin
                assert abs(objects[i].y - objects[j].y) >= CONFIG.margin
        for mask in scene.object_masks():
            rows, cols = np.nonzero(mask)
            assert rows.min() > 0 and cols.min() > 0
            assert rows.max() < CONFIG.image_size - 1 and cols.max() < CONFIG.image_size - 1


def test_generator_covers_object_counts_and_whole_vocabulary():
    counts, seen = set(), {category: set() for category in ATTRIBUTE_CATEGORIES}
    for index in range(150):
        objects = generate_scene(9, index).record["objects"]
        counts.add(len(objects))
        for obj in objects:
            for category in ATTRIBUTE_CATEGORIES:
                seen[category].add(obj[category])
    assert counts == {1, 2, 3, 4, 5}
    assert seen == {"shape": set(SHAPES), "color": set(COLORS), "material": set(MATERIALS), "size": set(SIZES)}


@pytest.mark.parametrize("shape", SHAPES)
def test_metal_has_a_highlight_rubber_does_not(shape):
    camera = Camera(CONFIG.image_size)
    for color in COLORS:
        for size in SIZES:
            brightest = {}
            for material in MATERIALS:
                image, ids = render_objects([ToyObject(shape, color, material, size, 0.0, 0.0)],
                                            camera, CONFIG.background_rgb)
                # A highlight is near-white: all three channels high.
                brightest[material] = image[ids == 1].min(axis=-1).max()
            assert brightest["metal"] >= 190, (shape, color, size)
            assert brightest["rubber"] <= 130, (shape, color, size)


def test_shapes_and_sizes_have_different_silhouettes():
    camera = Camera(CONFIG.image_size)
    silhouettes = {}
    for shape in SHAPES:
        for size in SIZES:
            obj = ToyObject(shape, "red", "rubber", size, 0.0, 0.0)
            _, ids = render_objects([obj], camera, CONFIG.background_rgb)
            silhouettes[shape, size] = ids == 1
    keys = list(silhouettes)
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            m, n = silhouettes[keys[a]], silhouettes[keys[b]]
            iou = (m & n).sum() / (m | n).sum()
            # Large cube vs large cylinder is the closest pair (IoU ~0.86): both
            # have a boxy outline and differ mostly in top face and shading.
            assert iou < 0.9, (keys[a], keys[b], iou)
    for shape in SHAPES:
        assert silhouettes[shape, "large"].sum() > 3 * silhouettes[shape, "small"].sum()


def test_scene_can_be_rerendered_from_its_json_record():
    scene = generate_scene(2, 8)
    record = json.loads(json.dumps(scene.record))
    image, instance_mask = render_scene_record(record, CONFIG)
    assert np.array_equal(image, scene.image)
    assert np.array_equal(instance_mask, scene.instance_mask)


def test_removing_an_object_leaves_background_in_its_mask_and_every_other_pixel():
    scene = generate_scene(4, 2, config=ToyWorldConfig(min_objects=3, max_objects=4))
    masks = scene.object_masks()
    for k in range(len(scene.objects)):
        image = render_without_object(scene, k)
        assert np.array_equal(image[~masks[k]], scene.image[~masks[k]])
        assert (image[masks[k]] == BACKGROUND).all()
    n = len(scene.objects)
    with pytest.raises(IndexError, match=f"object {n} of a scene with {n} objects"):
        render_without_object(scene, n)


# --------------------------------------------------------------- CLEVR schema


def test_dataset_round_trips_through_the_shared_loader(tmp_path):
    path = write_dataset(tmp_path, n_scenes=5, seed=2, split="val")
    assert path == scenes_path(tmp_path, "val")
    document = clevr.read_scenes(path)
    generated = [generate_scene(2, index, split="val") for index in range(5)]
    assert document["scenes"] == [scene.record for scene in generated]
    assert document["info"]["seed"] == 2
    assert ToyWorldConfig.from_dict(document["info"]["config"]) == CONFIG
    for scene, record in zip(generated, document["scenes"]):
        assert record["image_filename"] == f"TOY_val_{record['image_index']:06d}.png"
        image, instance_mask = load_scene_arrays(tmp_path, record)
        assert np.array_equal(image, scene.image)
        assert np.array_equal(instance_mask, scene.instance_mask)

    copy_path = clevr.write_scenes(tmp_path / "copy.json", document["scenes"], document["info"])
    assert clevr.read_scenes(copy_path) == document
    assert not [p for p in tmp_path.rglob(".*")], "temporary files left behind"


def test_loader_reads_real_clevr_format():
    document = clevr.read_scenes(TINY_CLEVR)
    assert document["info"]["version"] == "1.0"
    scenes = document["scenes"]
    assert [s["image_filename"] for s in scenes] == ["CLEVR_val_000000.png", "CLEVR_val_000001.png"]
    assert scenes[0]["objects"][1]["shape"] == "cube"
    for scene in scenes:
        assert scene["relationships"] == clevr.compute_relationships(scene["objects"], scene["directions"])
    # Captioning treats real CLEVR like toy scenes.
    assert object_caption(scenes[0], 0).text == "a large brown rubber cylinder"
    assert resolve_referring_expression(scenes[1], "left sphere") == [1]
    assert referring_expression(scenes[1], 0, "location") == "right sphere"


def test_write_then_read_real_clevr_is_lossless(tmp_path):
    document = clevr.read_scenes(TINY_CLEVR)
    path = clevr.write_scenes(tmp_path / "scenes.json", document["scenes"], document["info"])
    assert clevr.read_scenes(path) == document


def test_relationships_follow_clevr_convention_and_pixels():
    for index in range(30):
        scene = generate_scene(6, index)
        record, n = scene.record, len(scene.objects)
        bottoms = [np.nonzero(mask)[0].max() for mask in scene.object_masks()]
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                # CLEVR: j in relationships["left"][i] means j is left of i.
                j_left_of_i = _pixel_x(record, j) < _pixel_x(record, i)
                assert (j in record["relationships"]["left"][i]) == j_left_of_i
                assert (j in record["relationships"]["right"][i]) == (not j_left_of_i)
                # Lower in the image (larger ground row) = in front.
                j_in_front = bottoms[j] > bottoms[i]
                assert (j in record["relationships"]["front"][i]) == j_in_front
                assert (j in record["relationships"]["behind"][i]) == (not j_in_front)


# ------------------------------------------------------------------- captions


def _words_of(phrase):
    words = phrase.split()
    assert words[0] == "a"
    return words[1:]


def test_captions_only_use_attributes_of_the_objects_they_name():
    for index in range(40):
        record = generate_scene(8, index).record
        objects = record["objects"]
        for k, obj in enumerate(objects):
            caption = object_caption(record, k)
            assert _words_of(caption.text) == list(attribute_words(obj).values())

        caption = scene_caption(record)
        phrases = caption.text.split(" and ")
        assert sorted(caption.object_indices) == list(range(len(objects)))
        xs_in_text_order = [_pixel_x(record, k) for k in caption.object_indices]
        assert xs_in_text_order == sorted(xs_in_text_order)  # left to right
        for phrase, k in zip(phrases, caption.object_indices):
            assert _words_of(phrase) == list(attribute_words(objects[k]).values())

        captions = relational_captions(record)
        n = len(objects)
        assert len(captions) == 2 * n * (n - 1)  # every ordered pair: left or right, front or behind
        for caption in captions:
            j, i = caption.object_indices
            first, second = caption.text.split(f" {RELATION_PHRASES[caption.relation]} ")
            assert set(_words_of(first)) <= set(attribute_words(objects[j]).values())
            assert set(_words_of(second)) <= set(attribute_words(objects[i]).values())
            assert j in record["relationships"][caption.relation][i]
            if caption.relation == "left":
                assert _pixel_x(record, j) < _pixel_x(record, i)
            if caption.relation == "right":
                assert _pixel_x(record, j) > _pixel_x(record, i)

        for text in [c.text for c in captions] + [caption.text]:
            assert set(text.split()) <= CAPTION_VOCABULARY  # templates only: no verbs


def test_referring_expressions_select_exactly_their_object():
    n_found = {category: 0 for category in REFERRING_CATEGORIES}
    for index in range(80):
        record = generate_scene(10, index).record
        objects = record["objects"]
        for expression in unique_referring_expressions(record):
            k, category = expression.object_index, expression.category
            n_found[category] += 1
            assert resolve_referring_expression(record, expression.text) == [k]
            words = expression.text.split()
            same_shape = [m for m, o in enumerate(objects) if o["shape"] == objects[k]["shape"]]
            if category in ("color", "shape", "material"):
                assert words == [objects[k][category]]
                assert sum(o[category] == words[0] for o in objects) == 1
            elif category == "size":
                assert words == [objects[k]["size"], objects[k]["shape"]] and len(same_shape) >= 2
            elif category == "location":
                assert words[1] == objects[k]["shape"] and len(same_shape) >= 2
                xs = [_pixel_x(record, m) for m in same_shape]
                expected = min(xs) if words[0] == "left" else max(xs)
                assert _pixel_x(record, k) == expected
            else:
                assert words == [objects[k]["color"], objects[k]["shape"]]

        # Where a category gives nothing, it really does not single the object out.
        for k, obj in enumerate(objects):
            for category in ("color", "shape", "material"):
                if referring_expression(record, k, category) is None:
                    assert sum(o[category] == obj[category] for o in objects) >= 2
    assert all(count > 0 for count in n_found.values()), n_found


def test_location_expression_on_a_hand_built_scene():
    camera = Camera(CONFIG.image_size)
    objects = [
        ToyObject("sphere", "red", "metal", "small", 1.5, 0.0),
        ToyObject("sphere", "blue", "rubber", "large", -1.5, 1.0),
        ToyObject("cube", "red", "rubber", "large", 0.0, -1.5),
    ]
    record = scene_record(objects, camera, index=0, split="test")
    assert referring_expression(record, 1, "location") == "left sphere"
    assert referring_expression(record, 0, "location") == "right sphere"
    assert referring_expression(record, 2, "location") is None  # the only cube
    assert referring_expression(record, 2, "shape") == "cube"
    assert referring_expression(record, 0, "color") is None  # two red objects
    assert referring_expression(record, 0, "color+shape") == "red sphere"
    assert referring_expression(record, 0, "size") == "small sphere"
    assert resolve_referring_expression(record, "red") == [0, 2]
    with pytest.raises(ValueError, match="unknown referring category 'texture'"):
        referring_expression(record, 0, "texture")


# ------------------------------------------------------------------ bad input


def _tiny_document():
    return json.loads(TINY_CLEVR.read_text())


def _corrupt(mutate):
    document = _tiny_document()
    document["scenes"] += copy.deepcopy(document["scenes"])  # scenes 0..3
    mutate(document)
    return document


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["scenes"][3].pop("objects"), r"scene 3 \(CLEVR_val_000001\.png\): missing key\(s\) 'objects'"),
        (lambda d: d["scenes"][1]["objects"][2].pop("color"), r"scene 1 .*object 2: missing key\(s\) 'color'"),
        (lambda d: d["scenes"][2]["objects"][0].update(pixel_coords=[1, 2]), r"scene 2 .*object 0: 'pixel_coords'"),
        (lambda d: d["scenes"][0]["relationships"]["left"].pop(), r"scene 0 .*relationships\['left'\]"),
        (lambda d: d["scenes"][1]["relationships"]["front"][0].append(7), r"scene 1 .*relationships\['front'\]\[0\]"),
        (lambda d: d["scenes"][2].update(image_index="2"), r"scene 2 .*'image_index' must be an integer"),
        (lambda d: d.pop("scenes"), r"missing top-level key 'scenes'"),
    ],
)
def test_malformed_scene_files_name_the_bad_item(tmp_path, mutate, message):
    path = tmp_path / "bad_scenes.json"
    path.write_text(json.dumps(_corrupt(mutate)))
    with pytest.raises(clevr.SceneFormatError, match=message) as error:
        clevr.read_scenes(path)
    assert str(path) in str(error.value)


def test_invalid_json_is_reported_with_its_path(tmp_path):
    path = tmp_path / "truncated.json"
    path.write_text(TINY_CLEVR.read_text()[:200])
    with pytest.raises(clevr.SceneFormatError, match="not valid JSON"):
        clevr.read_scenes(path)


def test_write_scenes_refuses_invalid_scenes_and_writes_nothing(tmp_path):
    scenes = _tiny_document()["scenes"]
    del scenes[1]["directions"]
    with pytest.raises(clevr.SceneFormatError, match=r"scene 1 .*'directions'"):
        clevr.write_scenes(tmp_path / "out.json", scenes, {})
    assert list(tmp_path.iterdir()) == []


def test_bad_attributes_and_config_are_rejected():
    with pytest.raises(ValueError, match="unknown color 'pink'"):
        ToyObject("cube", "pink", "metal", "small", 0.0, 0.0)
    with pytest.raises(ValueError, match="image_size"):
        ToyWorldConfig(image_size=16)
    with pytest.raises(ValueError, match="min_objects"):
        ToyWorldConfig(min_objects=3, max_objects=2)


def test_interrupted_write_leaves_no_complete_looking_dataset(tmp_path, monkeypatch):
    write_dataset(tmp_path, n_scenes=2, seed=0)  # an earlier, complete dataset
    real_encode = dataset_module.encode_png
    calls = []

    def failing_encode(array):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_encode(array)

    monkeypatch.setattr(dataset_module, "encode_png", failing_encode)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(tmp_path, n_scenes=4, seed=1)
    assert not scenes_path(tmp_path, "train").exists()
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files left behind
    assert os.listdir(tmp_path / "images" / "train")  # the images written so far are whole files
