"""gradeclip.metrics against hand-made maps and slow plain references (loops written the way the authors' scripts
run, scipy where it has the function)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage, stats

from gradeclip import metrics as M


# ------------------------------------------------------------------------------------------------ minmax
def test_minmax_hand_made_and_constant_or_nonfinite_maps_become_zeros():
    np.testing.assert_allclose(M.minmax(np.array([[2.0, 4.0], [6.0, 10.0]])), [[0, 0.25], [0.5, 1.0]])
    for bad in (np.full((3, 3), 7.0), np.array([[1.0, np.nan]]), np.array([[0.0, np.inf]]), np.zeros((0,))):
        out = M.minmax(bad)
        assert np.all(out == 0) and not np.isnan(out).any()
    assert M.minmax(np.array([1, 3], dtype=np.int64)).dtype == np.float64
    assert M.minmax(np.array([1, 3], dtype=np.float32)).dtype == np.float32
    assert M.minmax(np.array([1.0, 3.0]), dtype=np.float32).dtype == np.float32


def test_minmax_of_a_stack_is_each_map_on_its_own_numpy_and_torch():
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(4, 5, 6))
    stack[1] = 3.0  # constant
    stack[2, 0, 0] = np.nan
    expected = np.stack([M.minmax(m) for m in stack])
    np.testing.assert_allclose(M.minmax(stack), expected)
    np.testing.assert_allclose(M.minmax(torch.tensor(stack)).numpy(), expected)
    assert np.all(expected[1] == 0) and np.all(expected[2] == 0)


def test_minmax_inplace_writes_into_the_input():
    a = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    copy = M.minmax(a)
    same = M.minmax(a, inplace=True)
    assert same is a
    np.testing.assert_array_equal(same, copy)


# ------------------------------------------------------------------------------------------------ pointing
def _mask(shape, rows, cols):
    m = np.zeros(shape, dtype=bool)
    m[rows, cols] = True
    return m


def test_pointing_hit_hand_made_maps_and_the_one_rule():
    mask = _mask((4, 4), slice(0, 2), slice(0, 2))
    hot = np.zeros((4, 4))
    hot[1, 1] = 5.0
    assert M.pointing_hit(hot, mask, empty="miss") == 1.0
    hot_out = np.zeros((4, 4))
    hot_out[3, 3] = 1.0
    assert M.pointing_hit(hot_out, mask, empty="undefined") == 0.0
    # ties: the first maximal pixel in row-major order ((0, 3) before (1, 1))
    tie = np.zeros((4, 4))
    tie[0, 3] = tie[1, 1] = 2.0
    assert M.pointing_hit(tie, mask, empty="miss") == 0.0
    # constant non-empty: a miss under either rule; empty: the caller's rule
    assert M.pointing_hit(np.full((4, 4), 0.3), mask, empty="undefined") == 0.0
    assert M.pointing_hit(np.zeros((4, 4)), mask, empty="miss") == 0.0
    assert np.isnan(M.pointing_hit(np.zeros((4, 4)), mask, empty="undefined"))
    assert np.isnan(M.pointing_hit(-np.ones((4, 4)) * np.arange(16).reshape(4, 4), mask, empty="undefined"))
    with pytest.raises(ValueError, match="empty must be one of"):
        M.pointing_hit(hot, mask, empty="nan")
    with pytest.raises(TypeError):
        M.pointing_hit(hot, mask)  # the empty-map rule is always the caller's explicit choice


def test_pointing_tolerance_against_scipy_distance_transform():
    rng = np.random.default_rng(2)
    for _ in range(20):
        mask = rng.random((9, 11)) < 0.1
        mask[rng.integers(9), rng.integers(11)] = True
        heat = rng.random((9, 11))
        idx = np.unravel_index(np.argmax(heat), heat.shape)
        distance = ndimage.distance_transform_edt(~mask)[idx]
        for tol in (0.5, 1.0, 2.5):
            assert M.pointing_hit(heat, mask, empty="miss", tolerance=tol) == float(distance <= tol)
        assert M.distance_to_mask(heat, mask) == pytest.approx(distance)


def test_pointing_outcome_splits_the_misses():
    masks = np.stack([_mask((4, 4), 0, 0), _mask((4, 4), 3, 3)])
    heat = np.zeros((4, 4))
    heat[0, 0] = 1
    assert M.pointing_outcome(heat, masks, 0) == "named"
    assert M.pointing_outcome(heat, masks, 1) == "other_object"
    heat = np.zeros((4, 4))
    heat[2, 1] = 1
    assert M.pointing_outcome(heat, masks, 0) == "background"
    assert M.pointing_outcome(np.ones((4, 4)), masks, 0) == "constant"
    assert M.pointing_outcome(np.zeros((4, 4)), masks, 0) == "constant"


def test_energy_share_hand_made_and_edge_cases():
    named = _mask((2, 4), slice(None), 0)
    other = _mask((2, 4), slice(None), 1)
    objects = named | other
    heat = np.array([[3.0, 1.0, 50.0, 0.0], [1.0, 3.0, 50.0, -7.0]])  # background mass (col 2) does not count
    assert M.energy_share(heat, named, objects, empty="miss") == pytest.approx(4 / 8)
    assert M.energy_share(heat, named, other, empty="miss") == pytest.approx(4 / 8)  # the union holds the mask
    background_only = np.zeros((2, 4))
    background_only[:, 2] = 1
    assert M.energy_share(background_only, named, objects, empty="undefined") == 0.0
    assert M.energy_share(np.zeros((2, 4)), named, objects, empty="miss") == 0.0
    assert np.isnan(M.energy_share(np.zeros((2, 4)), named, objects, empty="undefined"))
    assert M.uniform_energy_share(named, objects) == pytest.approx(0.5)
    assert M.uniform_pointing(named) == pytest.approx(0.25)
    # a constant map scores the uniform energy share
    assert M.energy_share(np.ones((2, 4)), named, objects, empty="miss") == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------ spearman
def test_spearman_against_scipy_with_ties_and_the_constant_rule():
    rng = np.random.default_rng(3)
    for _ in range(10):
        a = rng.integers(0, 5, size=(6, 7)).astype(float)  # many ties
        b = a + rng.normal(scale=2.0, size=a.shape)
        assert M.spearman(a, b) == pytest.approx(stats.spearmanr(a.ravel(), b.ravel()).statistic, abs=1e-12)
    np.testing.assert_allclose(M.average_ranks([3, 1, 3, 2]), stats.rankdata([3, 1, 3, 2]))
    assert M.spearman(np.ones((3, 3)), rng.random((3, 3))) == 0.0
    assert M.spearman(np.arange(9.0), -np.arange(9.0)) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="NaN"):
        M.spearman(np.array([1.0, np.nan]), np.array([1.0, 2.0]))


# ------------------------------------------------------------------------------------------------ deletion/insertion
def _reference_curve(image, heatmap, canvas, mode, steps, step_fraction, scorer):
    """The authors' loop: order by -heatmap (stable here), change step_size pixels per step in place, score after
    every step (no batching, no rank trick)."""
    h, w = heatmap.shape
    order = np.argsort(-heatmap.reshape(-1), kind="stable")
    per_step = max(1, int(h * w * step_fraction + 1e-9))
    current = image.copy() if mode == "deletion" else canvas.copy()
    values = [scorer(current)]
    for step in range(1, steps + 1):
        flat = order[(step - 1) * per_step:step * per_step]
        ys, xs = np.unravel_index(flat, (h, w))
        current[ys, xs] = canvas[ys, xs] if mode == "deletion" else image[ys, xs]
        values.append(scorer(current))
    return np.array(values)


def _pixel_score(img):
    """A stand-in model: two numbers per image (mean red; fraction of pure-white pixels)."""
    return np.array([img[..., 0].mean() / 255.0, (img == 255).all(axis=-1).mean()])


@pytest.mark.parametrize("mode", M.MODES)
@pytest.mark.parametrize("fill", M.FILLS)
def test_curves_equal_the_plain_stepwise_loop(mode, fill):
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (13, 17, 3), dtype=np.uint8) for _ in range(3)]
    images[0][2:6, 3:9] = 255
    maps = [rng.random((13, 17)) for _ in images]
    maps[1] = np.round(maps[1] * 3)  # ties
    calls = []

    def score(batch, owners):
        calls.append(len(batch))
        return np.stack([_pixel_score(im) for im in batch])

    curves = M.perturbation_curves(images, maps, score, mode=mode, steps=40, step_fraction=0.01, fill=fill,
                                   seed=9, batch_size=32)
    assert curves.values.shape == (3, 41, 2) and max(calls) <= 32
    for i, (image, heat) in enumerate(zip(images, maps)):
        canvas = M.fill_image(image, fill, M.random_generator(9, i))
        reference = _reference_curve(image, heat, canvas, mode, 40, 0.01, _pixel_score)
        np.testing.assert_allclose(curves.values[i], reference, atol=1e-12)
    # step 0: the unchanged image (deletion) or the bare canvas (insertion)
    assert curves.fractions[:, 0].tolist() == [0, 0, 0]
    np.testing.assert_allclose(curves.fractions[:, -1], 40 * 2 / (13 * 17))


def test_batch_size_and_score_every_do_not_change_the_numbers():
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (10, 10, 3), dtype=np.uint8) for _ in range(4)]
    maps = [rng.random((10, 10)) for _ in images]

    def score(batch, owners):
        return np.array([_pixel_score(im)[0] for im in batch])

    every = M.perturbation_curves(images, maps, score, mode="deletion", steps=100, batch_size=1000)
    small = M.perturbation_curves(images, maps, score, mode="deletion", steps=100, batch_size=7)
    tenth = M.perturbation_curves(images, maps, score, mode="deletion", steps=100, score_every=10, batch_size=50)
    np.testing.assert_array_equal(every.values, small.values)
    assert tenth.steps.tolist() == list(range(0, 101, 10))
    np.testing.assert_array_equal(tenth.values, every.values[:, ::10])
    # the AUC of every 10th step is the mean of those points (the scripts' ten perturbed scores)
    np.testing.assert_allclose(tenth.auc()[:, 0], every.values[:, 10::10, 0].mean(axis=1))


def test_the_random_fill_is_the_same_for_every_method_of_an_image_and_reproducible():
    image = np.full((8, 8, 3), 128, dtype=np.uint8)
    a = M.fill_image(image, "random", M.random_generator(0, 3))
    b = M.fill_image(image, "random", M.random_generator(0, 3))
    c = M.fill_image(image, "random", M.random_generator(0, 4))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any() and a.dtype == np.uint8 and a.max() <= 254
    assert np.all(M.fill_image(image, "mean", None) == 128)
    assert np.all(M.fill_image(image, "blur", None) == 128)  # blurring a flat image leaves it flat
    with pytest.raises(ValueError, match="random generator"):
        M.fill_image(image, "random", None)


def test_a_map_on_the_object_deletes_it_first_and_beats_one_off_it():
    """A white square of 4 % of a black image, a classifier that answers 'there is white'; deleting in the order of
    a map on the square kills the answer at the step that covers it, insertion brings it back there."""
    image = np.zeros((50, 50, 3), dtype=np.uint8)
    image[10:20, 10:20] = 255  # 100 px = 4 % of the pixels; a step is 12 px (0.5 % of 2500, truncated)
    on = np.zeros((50, 50))
    on[10:20, 10:20] = 1.0
    off = 1.0 - on

    def white(batch, owners):
        return np.array([(im == 255).all(axis=-1).sum() >= 50 for im in batch], dtype=float)

    deletion = M.perturbation_curves([image, image], [on, off], white, mode="deletion", fill="black")
    insertion = M.perturbation_curves([image, image], [on, off], white, mode="insertion", fill="black")
    assert deletion.values[0, :5, 0].tolist() == [1, 1, 1, 1, 1] and deletion.values[0, 5:, 0].max() == 0
    assert deletion.values[1, :, 0].min() == 1  # half the image deleted, none of it the square
    assert insertion.values[0, :5, 0].max() == 0 and insertion.values[0, 5:, 0].min() == 1
    d_auc, i_auc = deletion.auc()[:, 0], insertion.auc()[:, 0]
    np.testing.assert_allclose(d_auc, [0.04, 1.0])
    np.testing.assert_allclose(i_auc, [0.96, 0.0])
    np.testing.assert_allclose(M.imd(i_auc, d_auc), [0.92, -1.0])


def test_auc_is_the_right_riemann_sum_over_the_scored_steps():
    steps = np.array([0, 10, 20, 50])
    curve = np.array([9.0, 1.0, 2.0, 4.0])
    assert M.auc(curve, steps) == pytest.approx((1 * 10 + 2 * 10 + 4 * 30) / 50)
    with pytest.raises(ValueError):
        M.auc(curve, np.array([1, 2, 3, 4]))
    assert M.scored_steps(100, 30).tolist() == [0, 30, 60, 90, 100]
    assert M.step_size(200 * 200) == 200 and M.step_size(10) == 1


def test_maps_must_be_finite_and_at_the_image_resolution():
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    score = lambda batch, owners: np.zeros(len(batch))  # noqa: E731
    with pytest.raises(ValueError, match="resolution"):
        M.perturbation_curves([image], [np.zeros((2, 2))], score, mode="deletion")
    with pytest.raises(ValueError, match="NaN"):
        M.perturbation_curves([image], [np.full((4, 4), np.nan)], score, mode="deletion")


# ------------------------------------------------------------------------------------------------ text
def test_text_deletion_and_insertion_one_word_per_step():
    words = ["a", "large", "red", "cube"]
    importance = [0.1, 0.3, 0.9, 0.3]  # tie between large and cube: the earlier word first
    assert M.text_deletion(words, importance) == [
        "a large red cube", "a large cube", "a cube", "a", "", ""]
    assert M.text_insertion(words, importance) == [
        "", "red", "large red", "large red cube", "a large red cube", "a large red cube"]
    assert len(M.text_deletion(words, importance, steps=2)) == 3
    with pytest.raises(ValueError):
        M.text_deletion(words, [1.0])
