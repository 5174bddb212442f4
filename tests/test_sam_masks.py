"""Tests for gradeclip.sam_masks.

The real SAM ViT-H checkpoint cannot be fetched here, so the SAM plumbing is tested
with a tiny, randomly initialised SAM assembled from segment_anything's own modules
(as segment_anything/build_sam.py does, with small widths and a 64-pixel input).
Its masks are meaningless; only shapes, dtypes, value ranges and file round-trips are
checked. Depth-ordered overlap resolution is tested on synthetic masks.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from gradeclip import sam_masks
from gradeclip.io import read_instance_mask
from gradeclip.sam_masks import (
    MissingCheckpointError,
    build_predictor,
    masks_for_scene,
    resolve_overlaps_by_depth,
    save_contact_sheet,
)

HEIGHT, WIDTH = 32, 48  # CLEVR's 320 x 480, scaled down


def _scene(*objects):
    return {
        "image_filename": "CLEVR_val_000000.png",
        "objects": [{"shape": "cube", "pixel_coords": list(coords)} for coords in objects],
    }


SCENE = _scene((10, 8, 12.5), (30, 20, 9.0), (47, 31, 14.0))


@pytest.fixture(scope="module")
def tiny_predictor():
    from segment_anything import SamPredictor
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    torch.manual_seed(0)
    image_size, patch_size, embed_dim = 64, 16, 32
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=image_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=1,
            num_heads=2,
            mlp_ratio=2,
            out_chans=embed_dim,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            window_size=0,
            global_attn_indexes=(),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=embed_dim,
            image_embedding_size=(image_size // patch_size, image_size // patch_size),
            input_image_size=(image_size, image_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=1, embedding_dim=embed_dim, mlp_dim=64, num_heads=2
            ),
            transformer_dim=embed_dim,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
    ).eval()
    return SamPredictor(sam)


def _random_image(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


# ------------------------------------------------------------------- overlap resolution


def test_nearer_object_wins_overlap():
    masks = np.zeros((3, 4, 6), dtype=bool)
    masks[0, :, 0:4] = True  # far
    masks[1, :, 2:6] = True  # near, overlaps object 0 in columns 2-3
    masks[2, 0, 5] = True  # farthest, inside object 1
    depths = [10.0, 5.0, 20.0]
    expected = np.array([[1, 1, 2, 2, 2, 2]] * 4, dtype=np.uint8)
    result = resolve_overlaps_by_depth(masks, depths)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)


def test_overlap_does_not_depend_on_object_order():
    masks = np.zeros((2, 3, 3), dtype=bool)
    masks[0] = True
    masks[1, 1, 1] = True
    # Object 1 is nearer and wins its pixel; swapping the objects must give the same
    # ownership with swapped ids.
    a = resolve_overlaps_by_depth(masks, [8.0, 2.0])
    b = resolve_overlaps_by_depth(masks[::-1], [2.0, 8.0])
    assert a[1, 1] == 2 and (a == 1).sum() == 8
    assert b[1, 1] == 1 and (b == 2).sum() == 8


def test_equal_depths_go_to_lower_index_and_background_is_zero():
    masks = np.zeros((2, 2, 2), dtype=bool)
    masks[:, 0, 0] = True
    result = resolve_overlaps_by_depth(masks, [3.0, 3.0])
    np.testing.assert_array_equal(result, [[1, 0], [0, 0]])


def test_no_objects_gives_empty_mask():
    result = resolve_overlaps_by_depth(np.zeros((0, 5, 7), dtype=bool), [])
    assert result.shape == (5, 7) and result.dtype == np.uint8 and not result.any()


def test_mismatched_depths_rejected():
    with pytest.raises(ValueError, match="depths"):
        resolve_overlaps_by_depth(np.zeros((2, 3, 3), dtype=bool), [1.0])


# ------------------------------------------------------------------- prompting plumbing


class _RecordingPredictor:
    """Returns three known candidate masks per prompt and records the prompts."""

    def __init__(self, candidates, scores):
        self.candidates, self.scores = candidates, scores
        self.prompts = []
        self.image_shape = None

    def set_image(self, image, image_format="RGB"):
        self.image_shape = image.shape

    def predict(self, point_coords=None, point_labels=None, multimask_output=True):
        assert multimask_output
        self.prompts.append((point_coords.copy(), point_labels.copy()))
        return self.candidates, self.scores, None


def test_best_iou_candidate_is_kept_and_points_are_pixel_coords():
    candidates = np.zeros((3, HEIGHT, WIDTH), dtype=bool)
    candidates[0, :4] = True
    candidates[1, :8] = True
    candidates[2, :16] = True
    predictor = _RecordingPredictor(candidates, np.array([0.2, 0.9, 0.5]))
    scene = _scene((10, 8, 12.5), (60, -3, 9.0))  # second centre lies outside the frame
    object_masks, scores = sam_masks.object_masks_for_scene(predictor, _random_image(), scene)
    np.testing.assert_array_equal(object_masks[0], candidates[1])
    np.testing.assert_allclose(scores, [0.9, 0.9])
    assert predictor.image_shape == (HEIGHT, WIDTH, 3)
    (point0, label0), (point1, _) = predictor.prompts
    np.testing.assert_array_equal(point0, [[10, 8]])
    np.testing.assert_array_equal(label0, [1])
    np.testing.assert_array_equal(point1, [[WIDTH - 1, 0]])  # clipped into the image


def test_scene_without_pixel_coords_is_rejected():
    with pytest.raises(ValueError, match="pixel_coords"):
        masks_for_scene(
            _RecordingPredictor(None, None), _random_image(), {"objects": [{"shape": "cube"}]}
        )


def test_rgba_image_is_rejected():
    rgba = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="RGB"):
        masks_for_scene(_RecordingPredictor(None, None), rgba, SCENE)


# ------------------------------------------------------------------- tiny real SAM


def test_tiny_sam_instance_mask_shape_dtype_and_range(tiny_predictor):
    mask = masks_for_scene(tiny_predictor, _random_image(), SCENE)
    assert mask.shape == (HEIGHT, WIDTH)
    assert mask.dtype == np.uint8
    assert mask.min() >= 0 and mask.max() <= len(SCENE["objects"])


def test_tiny_sam_scene_without_objects(tiny_predictor):
    mask = masks_for_scene(tiny_predictor, _random_image(), {"objects": []})
    assert mask.shape == (HEIGHT, WIDTH) and not mask.any()


def test_masks_for_scenes_writes_pngs(tiny_predictor, tmp_path):
    image_dir = tmp_path / "images"
    image_dir.mkdir()
    rgba = np.dstack([_random_image(), np.full((HEIGHT, WIDTH), 255, np.uint8)])
    Image.fromarray(rgba).save(image_dir / SCENE["image_filename"])  # CLEVR PNGs are RGBA
    (path,) = sam_masks.masks_for_scenes(tiny_predictor, [SCENE], image_dir, tmp_path / "masks")
    assert path == tmp_path / "masks" / "CLEVR_val_000000.png"
    mask = read_instance_mask(path)
    assert mask.shape == (HEIGHT, WIDTH) and mask.max() <= 3


# ------------------------------------------------------------------- files


def test_contact_sheet(tmp_path):
    images = [_random_image(seed) for seed in range(3)]
    masks = []
    for _ in images:
        mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
        mask[2:10, 5:15] = 1
        mask[15:30, 25:40] = 2
        masks.append(mask)
    with_scenes = save_contact_sheet(
        images, masks, tmp_path / "sheet.png", scenes=[SCENE] * 3, columns=2
    )
    with Image.open(with_scenes) as sheet:
        assert sheet.mode == "RGB"
        assert sheet.size == (2 * WIDTH, 2 * (HEIGHT + 20))
    without_scenes = save_contact_sheet(images[:1], masks[:1], tmp_path / "plain.png")
    assert without_scenes.exists()


def test_overlay_tints_only_masked_pixels():
    image = np.full((HEIGHT, WIDTH, 3), 100, dtype=np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    mask[0, 0] = 1
    overlaid = sam_masks.overlay_instances(image, mask)
    assert not np.array_equal(overlaid[0, 0], image[0, 0])
    np.testing.assert_array_equal(overlaid[1:], image[1:])


# ------------------------------------------------------------------- checkpoint


def test_missing_checkpoint_error_names_path_url_and_config_key(tmp_path):
    missing = tmp_path / "sam_vit_h_4b8939.pth"
    with pytest.raises(MissingCheckpointError) as raised:
        build_predictor(missing)
    message = str(raised.value)
    assert str(missing) in message
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth" in message
    assert "local_copies.sam_vit_h" in message
    assert isinstance(raised.value, FileNotFoundError)
