"""`make paper-smoke`, once: the paper-mode workflow end to end on miniature data in the real formats (COCO 2014 +
Karpathy, CLEVR v1.0, open_clip ViT-B-16 and RN50, SAM vit_b; random weights), on the CPU.

It runs the README's command as it is, in the repository (its outputs are the make target's own folders, which are
removed first so that nothing of an earlier run can pass for this one): data/paper-mini/, results-paper-mini/,
reports-paper-mini/ and results-paper-mini-rn50/. Deselect with `-m "not paper_smoke"`.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis.design import StudyDesign
from analysis.tables import read_table
from gradeclip.batch import read_image_maps
from gradeclip.jobs import jobs_in_shard, load_jobs_tsv, shard_count
from gradeclip.downloads import file_digest

pytestmark = pytest.mark.paper_smoke

ROOT = Path(__file__).resolve().parents[1]
MODE = "single"  # the paper's head mode, config/paper-mini.yaml's method.heads: outputs under <results>/explanations/single/
OUTPUTS = ("results-paper-mini", "reports-paper-mini", "results-paper-mini-rn50", "reports-paper-mini-rn50")


def _merged(*names: str) -> dict:
    config = {}
    for name in names:
        for key, value in yaml.safe_load((ROOT / "config" / name).read_text()).items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


@pytest.fixture(scope="module")
def smoke():
    for name in OUTPUTS:
        shutil.rmtree(ROOT / name, ignore_errors=True)
    start = time.time()
    out = subprocess.run(["make", "paper-smoke", f"VENV={sys.prefix}", f"PYTHON={sys.executable}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=3600)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-6000:]
    print(f"make paper-smoke: {time.time() - start:.0f} s")
    return log


def _expected_pairs(results: Path, per_shard: int) -> dict[str, tuple[set, set]]:
    """Per shard file name: the (image_id, text) pairs of its image jobs and the caption ids of its text jobs."""
    images = load_jobs_tsv(results / "design" / "image_jobs.tsv", "image")
    texts = load_jobs_tsv(results / "design" / "text_jobs.tsv", "text")
    expected = {}
    for i in range(shard_count(images, per_shard)):
        expected[f"images/shard_{i:04d}.npz"] = {(j.image_id, t) for j in jobs_in_shard(images, i, per_shard)
                                                  for t in j.texts}
    for i in range(shard_count(texts, per_shard)):
        expected[f"texts/shard_{i:04d}.csv"] = {j.caption_id for j in jobs_in_shard(texts, i, per_shard)}
    return expected


def _check_shards(results: Path, per_shard: int) -> None:
    """Every explanation shard holds exactly its images x texts (captions), none is empty, and there are as many as
    the design's images make (not as many as the config's counts would)."""
    expected = _expected_pairs(results, per_shard)
    explanations = results / "explanations" / MODE
    written = {str(p.relative_to(explanations)) for p in explanations.rglob("shard_*.*")
               if not p.name.endswith(".failures.tsv")}
    assert written == set(expected)
    for name, want in expected.items():
        assert want, f"{name}: an empty shard"
        path = explanations / name
        if name.startswith("images/"):
            got = [(m.image_id, m.text) for m in read_image_maps(path)]
            assert len(got) == len(set(got)) and set(got) == want, name
        else:
            captions = pd.read_csv(path, dtype={"caption_id": str})
            assert set(captions["caption_id"]) == want, name
        assert not path.with_name(path.name + ".failures.tsv").exists()


def test_roots_are_used_and_nothing_is_downloaded(smoke):
    assert "rule download" not in smoke and "rule extract" not in smoke
    assert not (ROOT / "data" / "paper-mini" / "external").exists()
    layout = json.loads((ROOT / "results-paper-mini" / "data" / "coco_layout.json").read_text())
    assert layout["karpathy_val_images_present"] == 10 and layout["val2014_images"] >= 12


def test_every_report_table_is_non_empty(smoke):
    reports = ROOT / "reports-paper-mini"
    tables = sorted((reports / "tables").glob("*.csv")) + sorted((reports / MODE / "tables").glob("*.csv"))
    names = {t.stem for t in tables}
    assert {"table_viii", "table_ix", "concreteness_regressions", "location_ablation", "pointing_game",
            "design_summary", "paper_comparison", "power"} <= names
    for table in tables:
        assert len(pd.read_csv(table)) > 0, table.name
    html = (reports / "report.html").read_text()
    for caption in ("Table VIII", "Table IX", "Fig. 14", "Fig. 18", "§V-A triplets selected"):
        assert caption in html


def test_coco_triplets_are_a_stamped_rule_output_listed_in_the_report(smoke):
    design = ROOT / "results-paper-mini" / "design"
    stamp = json.loads((design / "coco_triplets.json").read_text())
    mini = ROOT / "data" / "paper-mini"
    assert stamp["inputs"]["karpathy_json"]["sha256"] == file_digest(mini / "karpathy" / "dataset_coco.json")
    assert stamp["inputs"]["instances_json"]["sha256"] == file_digest(
        mini / "coco" / "annotations" / "instances_val2014.json")
    triplets = read_table(design / "coco_triplets.csv")
    assert triplets.groupby("group").size().to_dict() == {"adj+noun": 2, "verb+noun": 2}
    assert read_table(design / "addibility.tsv")["matched_phrase"].tolist() == triplets["matched_phrase"].tolist()
    html = (ROOT / "reports-paper-mini" / "report.html").read_text()
    for phrase in triplets["matched_phrase"].tolist() + triplets["mismatched_phrase"].tolist():
        assert phrase in html
    assert stamp["inputs"]["karpathy_json"]["sha256"][:16] in html  # the design notes carry the stamp


def test_masked_scenes_are_the_designs_scenes(smoke):
    results = ROOT / "results-paper-mini"
    config = _merged("paper-mini.yaml")
    masks = {p.stem for p in (results / "clevr_masks").glob("*.png")}
    design = StudyDesign.read(results / "design")
    clevr = design.images[design.images["source"] == "clevr"]
    assert masks == set(clevr["image_id"]) and len(masks) == config["clevr"]["n_images"]
    assert set(design.attributes["image_id"]) == masks
    assert all(Path(p).is_file() for p in clevr["mask_path"])


def test_every_shard_holds_the_expected_images_and_texts(smoke):
    config = _merged("paper-mini.yaml")
    per_shard = config["shards"]["images_per_shard"]
    _check_shards(ROOT / "results-paper-mini", per_shard)
    # the shards follow the design's images: the config's counts would have made another number of shards
    design = StudyDesign.read(ROOT / "results-paper-mini" / "design")
    by_config = math.ceil((config["coco"]["n_images"] + config["clevr"]["n_images"]) / per_shard)
    by_design = {kind: shard_count(load_jobs_tsv(ROOT / "results-paper-mini" / "design" / f"{kind}_jobs.tsv", kind),
                                   per_shard) for kind in ("image", "text")}
    assert by_design != {"image": by_config, "text": by_config}
    assert len(design.image_jobs) < config["coco"]["n_images"] + config["clevr"]["n_images"]


def test_photos_are_explained_with_their_aspect_ratio(smoke):
    design = StudyDesign.read(ROOT / "results-paper-mini" / "design")
    coco = set(design.images.loc[design.images["source"] == "coco", "image_id"])
    maps = [m for p in sorted((ROOT / "results-paper-mini" / "explanations" / MODE / "images").glob("*.npz"))
            for m in read_image_maps(p) if m.image_id in coco]
    non_square = [m for m in maps if m.registration.image_size[0] != m.registration.image_size[1]]
    assert non_square
    for m in non_square:  # keep_aspect: the patch grid has the photo's shape (a centre crop would be 14 x 14)
        w, h = m.registration.image_size
        gh, gw = m.grid.shape
        assert gh != gw and abs(gw / gh - w / h) < 0.15 * (w / h)


def test_the_resnet_run_wrote_maps(smoke):
    results = ROOT / "results-paper-mini-rn50"
    config = _merged("paper-mini.yaml", "paper-mini-rn50.yaml")
    assert config["model"]["name"] == "RN50"
    _check_shards(results, config["shards"]["images_per_shard"])
    maps = [m for p in sorted((results / "explanations" / MODE / "images").glob("*.npz")) for m in read_image_maps(p)]
    assert maps and all(np.isfinite(m.grid).all() and np.isfinite(m.score) for m in maps)
    assert any(m.grid.max() > 0 for m in maps)
    # a ResNet's grid: 32 pixels a cell where a ViT-B-16 has 16
    vit = {(m.image_id, m.text): m.grid.shape for p in (ROOT / "results-paper-mini" / "explanations" / MODE /
                                                         "images").glob("*.npz") for m in read_image_maps(p)}
    shared = [(m.grid.shape, vit[(m.image_id, m.text)]) for m in maps if (m.image_id, m.text) in vit]
    assert shared and all(r[0] * 2 <= v[0] + 1 and r[1] * 2 <= v[1] + 1 for r, v in shared)
    assert (results / "explanations" / MODE / "texts").glob("shard_*.csv")
    words = pd.concat(pd.read_csv(p) for p in sorted((results / "explanations" / MODE / "texts").glob("shard_*.csv")))
    assert len(words) and np.isfinite(words["importance"]).all()


def test_the_faithfulness_target_ran_on_vit_b16(smoke):
    """Section IV in paper mode: miniature ImageNet val (classification) and COCO (retrieval, pointing), explained
    and scored by open_clip's ViT-B-16 with random weights (its 12 blocks: Table VI's layers and the randomisation
    test reach the first block)."""
    config = _merged("paper-mini.yaml")["faithfulness"]
    tables = ROOT / "reports-paper-mini" / "tables"
    image = pd.read_csv(tables / "faithfulness_image.csv")
    assert set(image["task"]) == {"classification", "retrieval"} and image["n"].max() == config["n_images"]
    assert set(image["method"]) == set(config["methods"]) and np.isfinite(image["imd"]).all()
    assert set(pd.read_csv(tables / "faithfulness_text.csv")["method"]) == set(config["text_methods"])
    assert set(pd.read_csv(tables / "layers.csv")["method"]) == {f"layers={k}" for k in config["layers"]} == \
        {"layers=1", "layers=12"}
    randomisation = pd.read_csv(tables / "randomisation.csv")
    assert set(randomisation["of_blocks"]) == {12} and set(randomisation["blocks_randomised"]) == {1, 12}
    localisation = pd.read_csv(tables / "localization.csv")
    assert "category" in set(localisation["group_by"]) and (localisation["n"] > 0).all()
    assert set(pd.read_csv(tables / "score_gap.csv")["heads"]) == {"single", "multi"}
    assert "Whose score does the map explain?" in (ROOT / "reports-paper-mini" / "faithfulness.html").read_text()
