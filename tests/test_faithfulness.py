"""gradeclip.faithfulness (tasks on a model) and analysis.faithfulness (tables): known answers on the toy world and
hand-made cases against plain references.

Known answers used: deleting the named object's own pixels first (an oracle map, the exact mask) destroys the
class faster, and inserting them first restores it faster, than a random map; the multi-head recomputation is the
model itself (score gap 0, same zero-shot hits); a random map ignores the model (randomisation test: Spearman 1)
while Grad-ECLIP's maps change when the model is destroyed; an oracle map points at its object every time."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from analysis import faithfulness as AF
from gradeclip import faithfulness as fa
from gradeclip import metrics
from gradeclip.models import load_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "data" / "toy_clip" / "gradeclip-toy-ViT.pt"
N = 16
SIZE = 128
FAST = fa.PerturbationSettings(steps=20, step_fraction=0.025, score_every=5)  # 20 steps of 2.5%: half the image


@pytest.fixture(scope="module")
def toy_clip():
    return load_clip("gradeclip-toy-ViT", str(CHECKPOINT))


@pytest.fixture(scope="module")
def labelled():
    return fa.toy_classification(N, SIZE)


@pytest.fixture(scope="module")
def named():
    return fa.toy_localisation(N, SIZE)


def object_masks(data: fa.LabelledImages) -> list[np.ndarray]:
    from gradeclip.toyworld import evaluate

    scenes = evaluate.zero_shot_scenes(len(data.images), SIZE, evaluate.ZERO_SHOT_SEED)
    return [s.object_masks()[0].astype(np.float64) for s in scenes]


# ---------------------------------------------------------------------------------------------------------------
# Scoring pieces against plain references
# ---------------------------------------------------------------------------------------------------------------
def test_retrieval_hits_equal_a_plain_ranking_loop():
    rng = np.random.default_rng(0)
    images = torch.nn.functional.normalize(torch.as_tensor(rng.normal(size=(9, 5))), dim=-1)
    captions = torch.nn.functional.normalize(torch.as_tensor(rng.normal(size=(9, 5))), dim=-1)
    new = torch.nn.functional.normalize(torch.as_tensor(rng.normal(size=(4, 5))), dim=-1)
    index = torch.tensor([0, 3, 3, 8])
    got = fa.retrieval_hits(new, None, images, captions, index)
    for s, i in enumerate(index.tolist()):
        own = float(new[s] @ captions[i])
        ir_rank = sum(float(captions[i] @ images[j]) > own for j in range(9) if j != i)
        tr_rank = sum(float(new[s] @ captions[j]) > own for j in range(9) if j != i)
        assert got[s].tolist() == [ir_rank < 1, ir_rank < 5, tr_rank < 1, tr_rank < 5]
    unchanged = fa.retrieval_hits(None, None, images, captions, torch.arange(9))
    assert unchanged.shape == (9, 4)


def test_ranks_count_strictly_higher_scores():
    scores = torch.tensor([[0.5, 0.5, 0.2], [0.1, 0.9, 0.9]])
    assert fa.ranks_of(scores, torch.tensor([1, 0])).tolist() == [0, 2]  # a tie counts for the target


def test_random_map_depends_on_its_image_and_text_only(toy_clip, labelled):
    pixels, _ = fa.model_inputs(toy_clip, labelled.images[:3])
    texts = labelled.class_texts[:3]
    batch = fa.random_map(toy_clip, pixels, texts)
    alone = fa.random_map(toy_clip, pixels[1:2], texts[1:2])
    assert torch.equal(batch[1], alone[0])
    assert not torch.equal(batch[0], batch[1])
    assert not torch.equal(fa.random_map(toy_clip, pixels[:1], ["another text"])[0], batch[0])


# ---------------------------------------------------------------------------------------------------------------
# Known answers on the toy world
# ---------------------------------------------------------------------------------------------------------------
def test_oracle_maps_beat_random_maps_in_deletion_and_insertion(toy_clip, labelled):
    classifier = fa.classifier_weights(toy_clip, labelled.classifier)
    score = fa.classification_scorer(toy_clip, classifier, labelled.labels)
    oracle = object_masks(labelled)
    rng = np.random.default_rng(1)
    noise = [rng.random(m.shape) for m in oracle]
    kept = np.arange(N)
    # insertion onto a blurred copy (RISE's canvas): on the authors' black canvas the toy CLIP recognises almost
    # nothing until half the image is in, whatever the order
    settings = replace(FAST, insertion_fill="blur")
    good = fa.image_curves(toy_clip, labelled.images, oracle, score, settings, kept)
    chance = fa.image_curves(toy_clip, labelled.images, noise, score, settings, kept)
    top1 = 0
    assert good["deletion"].auc()[:, top1].mean() < chance["deletion"].auc()[:, top1].mean() - 0.2
    assert good["insertion"].auc()[:, top1].mean() > chance["insertion"].auc()[:, top1].mean() + 0.2
    # step 0 of deletion is the unperturbed image, whatever the map: the model's own top-1 hits
    emb = fa.image_embeddings(toy_clip, labelled.images)
    hits = (fa.ranks_of(emb @ classifier.T, torch.as_tensor(labelled.labels)) < 1).numpy()
    np.testing.assert_array_equal(good["deletion"].values[:, 0, top1], hits)
    np.testing.assert_array_equal(chance["deletion"].values[:, 0, top1], hits)


def test_classification_and_retrieval_tasks_report_their_baselines(toy_clip, labelled):
    methods = fa.image_methods(["raw-attention", "random"], toy_clip)
    results, base = fa.classification_faithfulness(toy_clip, labelled, methods, FAST)
    assert [r.method for r in results] == ["raw-attention", "random"]
    assert base["n"] == N and base["chance_top1"] == pytest.approx(1 / 24) and base["top5"] >= base["top1"]
    for r in results:
        assert r.curves["deletion"].values.shape == (N, len(metrics.scored_steps(20, 5)), 2)
    # step 0 of deletion: the unperturbed accuracy, the same for every method
    assert results[0].curves["deletion"].values[:, 0, 0].mean() == pytest.approx(base["top1"])
    captioned = fa.toy_retrieval(8, SIZE)
    results, base = fa.retrieval_faithfulness(toy_clip, captioned, methods, FAST)
    assert set(base) >= {"ir1", "tr1", "chance_1"} and base["chance_1"] == pytest.approx(1 / 8)
    assert results[1].curves["insertion"].values.shape[2] == 4


def test_multi_head_recomputation_is_the_model_and_single_head_is_not(toy_clip, labelled, named):
    recomputed, model = fa.score_gap(toy_clip, named.images, labelled.class_texts, heads="multi")
    np.testing.assert_allclose(recomputed, model, atol=1e-5)
    single, model = fa.score_gap(toy_clip, named.images, labelled.class_texts, heads="single")
    assert np.abs(single - model).mean() > 0.01
    hits = fa.recomputed_zero_shot(toy_clip, labelled, heads="multi")
    np.testing.assert_array_equal(hits["recomputed"], hits["model"])


def test_randomisation_test_separates_a_model_free_map_from_grad_eclip(toy_clip, named):
    images, texts = named.images[:6], named.texts[:6]
    rho_random = fa.randomisation_test(fa.random_map, toy_clip, images, texts, [1, 3])
    np.testing.assert_allclose(rho_random, 1.0)
    rho_grad = fa.randomisation_test(fa.image_method("grad-eclip"), toy_clip, images, texts, [3])
    assert np.nanmean(rho_grad) < 0.9
    # the copy is randomised, the model is not
    before = [p.clone() for p in toy_clip.model.visual.parameters()]
    fa.randomised_copy(toy_clip, 2)
    assert all(torch.equal(a, b) for a, b in zip(before, toy_clip.model.visual.parameters()))


def test_oracle_maps_point_at_their_object(named):
    scores = fa.localisation_scores([m.astype(np.float64) for m in named.masks], named)
    np.testing.assert_array_equal(scores["pointing"], 1.0)
    np.testing.assert_allclose(scores["energy_share"], 1.0)
    flat = fa.localisation_scores([np.ones(m.shape) for m in named.masks], named)
    np.testing.assert_array_equal(flat["pointing"], 0.0)  # a constant map misses
    np.testing.assert_allclose(flat["energy_share"], flat["uniform_energy_share"])


def test_text_deletion_step_zero_is_the_unperturbed_caption(toy_clip):
    captioned = fa.toy_retrieval(6, SIZE)
    results, base = fa.text_faithfulness(toy_clip, captioned, {"random": fa.random_words}, steps=3)
    deletion = results[0].curves["deletion"]
    assert deletion.values.shape == (6, 4, 4)
    assert deletion.values[:, 0, 0].mean() == pytest.approx(base["ir1"])
    assert np.all(deletion.fractions[:, 1] > 0)
    words, importance = fa.random_words(toy_clip, captioned.captions[:1], captioned.images[:1])[0]
    assert words == captioned.captions[0].split()
    assert len(importance) == len(words)


# ---------------------------------------------------------------------------------------------------------------
# Tables: against scipy / statsmodels and hand-made records
# ---------------------------------------------------------------------------------------------------------------
def records_of(values: dict[str, np.ndarray]) -> pd.DataFrame:
    frames = []
    for method, (deletion, insertion) in values.items():
        frames.append(pd.DataFrame({"method": method, "task": "classification", "target": "ground_truth",
                                    "measure": "top1", "image_id": [f"i{k}" for k in range(len(deletion))],
                                    "deletion": deletion, "insertion": insertion, "imd": insertion - deletion}))
    return pd.concat(frames, ignore_index=True)


def test_auc_table_is_paired_over_images_with_holm():
    rng = np.random.default_rng(3)
    ref = (rng.random(20), rng.random(20))
    values = {"grad-eclip": ref, "a": (ref[0] + 0.1 + 0.05 * rng.normal(size=20), ref[1]),
              "b": (rng.random(20), rng.random(20))}
    table = AF.auc_table(records_of(values), "grad-eclip").set_index("method")
    a_imd = values["a"][1] - values["a"][0]
    ref_imd = ref[1] - ref[0]
    expected = sps.ttest_rel(a_imd, ref_imd)
    assert table.loc["a", "imd_vs_ref"] == pytest.approx((a_imd - ref_imd).mean())
    assert table.loc["a", "imd_p"] == pytest.approx(expected.pvalue)
    low, high = expected.confidence_interval()
    assert (table.loc["a", "imd_vs_ref_ci_low"], table.loc["a", "imd_vs_ref_ci_high"]) == (pytest.approx(low),
                                                                                          pytest.approx(high))
    holm = multipletests(table.loc[["a", "b"], "imd_p"], method="holm")[1]
    np.testing.assert_allclose(table.loc[["a", "b"], "imd_p_holm"], holm)
    assert math.isnan(table.loc["grad-eclip", "imd_p"])
    m = sps.t.interval(0.95, 19, loc=ref[0].mean(), scale=sps.sem(ref[0]))
    assert table.loc["grad-eclip", "deletion_ci_low"] == pytest.approx(m[0])
    # only the images both methods explained are paired
    partial = records_of(values)
    partial = partial[~((partial["method"] == "a") & (partial["image_id"] == "i0"))]
    assert AF.auc_table(partial, "grad-eclip").set_index("method").loc["a", "n_pairs"] == 19


def test_localisation_table_wilson_intervals_chance_and_groups():
    ids = [f"i{k}" for k in range(10)]
    hits = {"grad-eclip": np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 1.0]), "random": np.zeros(10)}
    scores = {m: {"pointing": h, "energy_share": h * 0.5, "empty": np.zeros(10), "constant": np.zeros(10),
                  "uniform_pointing": np.full(10, 0.1), "uniform_energy_share": np.full(10, 0.3)}
              for m, h in hits.items()}
    records = AF.localisation_records(scores, ids, {"color": ["red"] * 5 + ["blue"] * 5})
    table = AF.localisation_table(records, "grad-eclip", ["color"])
    row = table[(table["group_by"] == "all") & (table["method"] == "grad-eclip")].iloc[0]
    low, high = proportion_confint(8, 10, method="wilson")
    assert (row["pointing"], row["pointing_ci_low"], row["pointing_ci_high"]) == (0.8, pytest.approx(low),
                                                                                  pytest.approx(high))
    assert row["chance_pointing"] == pytest.approx(0.1)
    rnd = table[(table["group_by"] == "all") & (table["method"] == "random")].iloc[0]
    assert rnd["pointing_vs_ref"] == pytest.approx(-0.8)
    red = table[(table["group"] == "red") & (table["method"] == "grad-eclip")].iloc[0]
    assert red["n"] == 5 and red["pointing"] == pytest.approx(0.8)


def test_score_gap_table_from_hand_made_cosines():
    recomputed = np.array([[0.1, -0.2], [0.3, 0.4]])
    model = np.array([[0.2, 0.1], [0.3, 0.2]])
    hits = {"model": np.array([1.0, 1.0]), "recomputed": np.array([0.0, 1.0])}
    row = AF.score_gap_table({"single": (recomputed, model)}, {"single": hits}).iloc[0]
    assert row["abs_delta_cosine"] == pytest.approx(np.mean([(0.1 + 0.3) / 2, (0.0 + 0.2) / 2]))
    assert row["sign_flips"] == pytest.approx(0.25)
    assert (row["top1_model"], row["top1_recomputed"], row["top1_diff"]) == (1.0, 0.5, -0.5)


def test_whole_study_in_process_writes_every_table(toy_clip, tmp_path):
    """Every task of the workflow's target, tiny, through run_task / write_task / read_task / build_tables and the
    report page (the rule wiring is planned in tests/test_workflow.py)."""
    from analysis.report import render_report

    options = {"n_images": 6, "methods": ["grad-eclip", "grad-eclip-multi", "random"], "baselines": [],
               "text_methods": ["grad-eclip", "random"], "targets": ["ground_truth"], "steps": 10,
               "step_fraction": 0.05, "score_every": 5, "text_steps": 2, "seed": 0, "layers": [1, 3],
               "randomisation_images": 3, "randomisation_levels": [1, 3]}
    cache = {}

    def data_for(kind):
        return cache.setdefault(kind, AF.toy_data(kind, options["n_images"], SIZE))

    for task in AF.TASKS:
        AF.write_task(tmp_path / task, AF.run_task(task, toy_clip, data_for, options))
    tasks = {task: AF.read_task(tmp_path / task) for task in AF.TASKS}
    tables, figures = AF.build_tables(tasks, fa.REFERENCE_METHOD)
    assert set(tables) >= {"faithfulness_image", "faithfulness_text", "localization", "layers", "score_gap",
                           "randomisation", "localization_by_colour"}
    image = tables["faithfulness_image"]
    assert set(image["task"]) == {"classification", "retrieval"}
    assert set(image["method"]) == {"grad-eclip", "grad-eclip-multi", "random"}
    assert image["n"].eq(6).all() and image["unperturbed"].between(0, 1).all()
    assert set(tables["layers"]["method"]) == {"layers=1", "layers=3"}
    assert set(tables["score_gap"]["heads"]) >= {"single", "multi"}
    assert set(figures) == {"fig8_classification", "fig8_retrieval", "fig8_text"}
    findings = AF.report_findings(tables, fa.REFERENCE_METHOD)
    assert set(findings) == {"faithfulness", "localisation", "layers", "whose-score"}
    html = render_report(tmp_path / "faithfulness.html", AF.display_tables(tables), figures,
                         title="faithfulness", findings=findings)
    text = Path(html).read_text()
    assert "Whose score does the map explain?" in text and "(iii)" in text
    with pytest.raises(FileNotFoundError, match="done.json"):
        AF.read_task(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------------------------
# Paper-mode data on the miniature data (formats and wiring; random weights)
# ---------------------------------------------------------------------------------------------------------------
def test_paper_data_readers_on_the_mini_data(tmp_path, vit):
    from gradeclip import minidata

    write = minidata.write_mini_data(tmp_path / "mini", weights=False)
    root = tmp_path / "mini"
    assert write
    imagenet = fa.imagenet_classification(root / "imagenet" / "val", root / "imagenet" / "val.txt", None, 0,
                                          templates="single", classes="present")
    assert len(imagenet.images) == len(minidata.IMAGENET_IMAGES)
    by_file = {f"ILSVRC2012_val_{k:08d}.JPEG": name for k, (_, _, name) in enumerate(minidata.IMAGENET_IMAGES, 1)}
    assert [imagenet.class_names[c] for c in imagenet.labels] == [by_file[i] for i in imagenet.ids]
    assert len(imagenet.class_names) == len(set(by_file.values()))  # classes="present": only the sample's
    assert all(min(im.shape[:2]) <= 640 for im in imagenet.images)
    coco = fa.coco_retrieval(root / "coco", root / "karpathy" / "dataset_coco.json", 4, 0)
    assert len(coco.images) == len(coco.captions) == 4 and all(c for c in coco.captions)
    located = fa.coco_localisation(root / "coco", root / "coco" / "annotations" / "instances_val2014.json",
                                   root / "karpathy" / "dataset_coco.json", None, 0)
    assert len(located.images) > 0
    for image, mask, objects, text in zip(located.images, located.masks, located.objects, located.texts):
        assert mask.shape == image.shape[:2] and mask.any() and not (mask & ~objects).any()
        assert text.startswith("a photo of a ")
    # the tasks run on these data with any model (random weights: wiring, not numbers)
    settings = fa.PerturbationSettings(steps=4, step_fraction=0.1, score_every=2)
    results, base = fa.classification_faithfulness(vit, imagenet, {"random": fa.random_map}, settings)
    assert results[0].curves["deletion"].values.shape == (len(imagenet.images), 3, 2)
    results, base = fa.retrieval_faithfulness(vit, coco, {"random": fa.random_map}, settings)
    assert base["n"] == 4
    scores = fa.localisation_by_method(vit, located, {"random": fa.random_map})["random"]
    assert np.isfinite(scores["pointing"]).all()


def test_paper_mode_target_refuses_without_imagenet(tmp_path):
    """`snakemake faithfulness` in paper mode without an ImageNet root stops before any job and names the keys to
    set. (The target itself runs in paper mode, on ViT-B-16 with random weights, in make paper-smoke:
    tests/test_paper_smoke.py.)"""
    import subprocess
    import sys

    import yaml

    from gradeclip import minidata

    minidata.write_mini_data(tmp_path / "mini", weights=False)
    config = yaml.safe_load((ROOT / "config" / "paper-mini.yaml").read_text())
    mini = str(tmp_path / "mini")
    config["data"]["roots"] = {k: v.replace("data/paper-mini", mini) for k, v in config["data"]["roots"].items()}
    config["data"]["imagenet_labels"] = config["data"]["imagenet_labels"].replace("data/paper-mini", mini)
    config["model"] = {"name": "gradeclip-toy-ViT", "pretrained": str(CHECKPOINT), "device": "cpu",
                       "precision": "fp32"}
    config["sam"]["checkpoint"] = str(CHECKPOINT)  # checked to exist at parse time; the target does not read it
    config.update(results=str(tmp_path / "results"), reports=str(tmp_path / "reports"))
    path = tmp_path / "config.yaml"
    # without ImageNet the target says what to set, naming the keys
    config["data"]["roots"]["imagenet"] = None
    path.write_text(yaml.safe_dump(config))
    out = subprocess.run([sys.executable, "-m", "snakemake", "faithfulness", "-n", "--cores", "1", "--configfile",
                          str(path)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0 and "data.roots.imagenet" in out.stdout + out.stderr
