"""The paper-mode workflow without running its models: what it plans from dataset roots and from finished
downloads, and what stops it before any job (dry runs and single cheap jobs; the full run is test_paper_smoke.py)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gradeclip import minidata as M
from gradeclip.downloads import EXTRACT_MARKER, RESOURCES, write_done_marker
from test_workflow import SNAKEMAKE, ROOT, small_config, snakemake

def planned_rules(out: subprocess.CompletedProcess) -> set[str]:
    """Rule names in the job stats of ``snakemake -n --quiet rules``."""
    return {line.split()[0] for line in (out.stdout + out.stderr).splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()}


def paper_config(tmp: Path, **data) -> Path:
    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    cfg["results"], cfg["reports"] = str(tmp / "results"), str(tmp / "reports")
    cfg["data"]["dir"] = str(tmp / "external")
    cfg["data"].update(data)
    path = tmp / "paper.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper") / "paper-mini"
    M.write_mini_data(out, weights=False)
    return out


def mini_config(tmp: Path, mini: Path) -> Path:
    """config/paper-mini.yaml on a mini-data folder without weights (an open_clip tag; an empty SAM file: nothing
    here runs a model)."""
    cfg = yaml.safe_load((ROOT / "config" / "paper-mini.yaml").read_text())
    cfg["results"], cfg["reports"] = str(tmp / "results"), str(tmp / "reports")
    cfg["model"]["pretrained"] = "openai"
    cfg["data"]["roots"] = {"coco": str(mini / "coco"), "karpathy": str(mini / "karpathy"),
                            "clevr": str(mini / "clevr" / "CLEVR_v1.0"), "imagenet": str(mini / "imagenet" / "val")}
    cfg["data"]["imagenet_labels"] = str(mini / "imagenet" / "val.txt")
    cfg["data"]["dir"] = str(tmp / "external")
    (tmp / "sam.pth").write_bytes(b"")
    cfg["sam"]["checkpoint"] = str(tmp / "sam.pth")
    path = tmp / "paper-mini.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_dataset_roots_replace_the_downloads(tmp_path, mini):
    cfg = mini_config(tmp_path, mini)
    plan = planned_rules(snakemake(cfg, "-n", "--quiet", "rules"))
    assert {"dataset_layout", "coco_triplets", "sam_masks", "study_design", "report"} <= plan
    assert not plan & {"download", "extract"}
    # the layout checks run (no model): counts from the roots
    snakemake(cfg, str(tmp_path / "results" / "data" / "coco_layout.json"))
    assert not (tmp_path / "external").exists()


def test_a_root_missing_an_image_fails_its_layout_check_naming_the_file(tmp_path, mini):
    broken = tmp_path / "mini"
    shutil.copytree(mini, broken)
    gone = next((broken / "coco" / "val2014").glob("*391004.jpg"))
    gone.unlink()
    cfg = mini_config(tmp_path, broken)
    out = snakemake(cfg, str(tmp_path / "results" / "data" / "coco_layout.json"), check=False)
    assert out.returncode != 0
    assert f"1 of 10 images of the Karpathy val split under {broken / 'coco'} missing: {gone}" in out.stdout + out.stderr


def test_missing_configured_inputs_stop_the_toy_run_before_any_job(tmp_path):
    """As a new user tried: a checkpoint that does not exist used to exit 0 with "Nothing to be done" next to an
    old report. Now every missing configured input is named with its config key, and no job runs."""
    cfg = small_config(tmp_path)
    changed = yaml.safe_load(cfg.read_text())
    keys = ("model.pretrained", "study.concreteness_ratings", "study.frequency_corpus")
    for key in keys:
        section, name = key.split(".")
        changed[section][name] = str(tmp_path / f"missing-{name}.pt")
    cfg.write_text(yaml.safe_dump(changed))
    out = snakemake(cfg, check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert [line for line in text.splitlines() if line.startswith("config error:")] == [
        f"config error: {key}: {tmp_path / ('missing-' + key.split('.')[1] + '.pt')} does not exist" for key in keys]
    assert "Nothing to be done" not in text and "Traceback" not in text
    assert not (tmp_path / "results").exists()


def test_missing_inputs_of_paper_mode_are_named_with_their_keys(tmp_path, mini):
    cfg = yaml.safe_load(mini_config(tmp_path, mini).read_text())
    cfg["data"]["roots"]["clevr"] = str(mini / "clevr")  # the parent of CLEVR_v1.0: a common slip
    cfg["data"]["roots"]["karpathy"] = None  # downloaded instead: its local copy must exist
    cfg["data"]["local_copies"]["karpathy_captions"] = str(tmp_path / "caption_datasets.zip")
    cfg["data"]["local_copies"]["coco_val2014"] = str(tmp_path / "val2014.zip")  # not used: COCO has a root
    cfg["sam"]["checkpoint"] = str(tmp_path / "sam_vit_b_01ec64.pth")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))

    def errors(config):
        path.write_text(yaml.safe_dump(config))
        out = snakemake(path, "-n", check=False)
        assert out.returncode != 0
        return sorted(line for line in (out.stdout + out.stderr).splitlines() if line.startswith("config error:"))

    assert errors(cfg) == sorted([
        f"config error: data.roots.clevr: {mini / 'clevr'} has no images/val/ (expected images/val/, "
        "scenes/CLEVR_val_scenes.json)",
        f"config error: data.roots.clevr: {mini / 'clevr'} has no scenes/CLEVR_val_scenes.json (expected images/val/, "
        "scenes/CLEVR_val_scenes.json)",
        f"config error: data.local_copies.karpathy_captions: {tmp_path / 'caption_datasets.zip'} does not exist",
        f"config error: sam.checkpoint: {tmp_path / 'sam_vit_b_01ec64.pth'} does not exist",
    ])
    cfg["data"]["roots"]["karpathy"] = str(tmp_path / "nowhere")
    cfg["sam"]["checkpoint"] = None  # vit_b: there is no registered download
    assert errors(cfg) == sorted([
        f"config error: data.roots.karpathy: {tmp_path / 'nowhere'} is not a folder (no such path)",
        f"config error: data.roots.clevr: {mini / 'clevr'} has no images/val/ (expected images/val/, "
        "scenes/CLEVR_val_scenes.json)",
        f"config error: data.roots.clevr: {mini / 'clevr'} has no scenes/CLEVR_val_scenes.json (expected images/val/, "
        "scenes/CLEVR_val_scenes.json)",
        "config error: sam.checkpoint: not set, and only SAM vit_h has a registered download: set it to a vit_b "
        "checkpoint file",
    ])


EXTRACTED = ("coco_val2014", "coco_annotations2014", "karpathy_captions", "clevr_v1")


def _downloaded_and_extracted(data_dir: Path, finished: bool) -> None:
    """What the download and extract rules leave: each verified file (sparse: the registry's size, no disk used)
    named by its .done marker, and each extraction folder with its completion marker. ``finished=False``: the files
    and folders without their markers (a run in progress)."""
    for name, resource in RESOURCES.items():
        path = data_dir / "downloads" / resource.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(resource.size_bytes or 1)
        marker = data_dir / "downloads" / f"{name}.done"
        if finished:
            write_done_marker(marker, path, resource)
        else:
            marker.write_text("")
    for name in EXTRACTED:
        (data_dir / "extracted" / name).mkdir(parents=True, exist_ok=True)
        if finished:
            (data_dir / "extracted" / name / EXTRACT_MARKER).write_text("{}\n")


def test_finished_downloads_are_not_planned_again_after_a_code_change(tmp_path):
    """A finished, checksum-verified download or extraction is never planned again, also when the rule's script
    changed (Snakemake's 'code has changed' would otherwise fetch tens of GB again); a missing one still is."""
    work = tmp_path / "workflow-copy"  # a copy whose scripts can be edited
    work.mkdir()
    for name in ("Snakefile", "environment.yml"):
        shutil.copy(ROOT / name, work / name)
    for name in ("workflow", "config"):
        shutil.copytree(ROOT / name, work / name)
    (work / "analysis").mkdir()  # the report rule's data input: the paper's numbers
    shutil.copy(ROOT / "analysis" / "paper_reference.yaml", work / "analysis" / "paper_reference.yaml")
    (work / "profiles").symlink_to("workflow/profiles")
    cfg = paper_config(tmp_path)
    data_dir = tmp_path / "external"

    def snakemake_in_copy(*args):
        out = subprocess.run(SNAKEMAKE + ["--snakefile", str(work / "Snakefile"), "--directory", str(work),
                                          "--configfile", str(cfg), "--cores", "2", *args],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        return out

    def plan():
        return planned_rules(snakemake_in_copy("-n", "--quiet", "rules")) & {"download", "extract"}

    # Snakemake records the jobs as its own (provenance: code, params), as when the rules ran ...
    _downloaded_and_extracted(data_dir, finished=False)
    snakemake_in_copy("--touch", *(str(data_dir / "extracted" / name) for name in EXTRACTED))
    _downloaded_and_extracted(data_dir, finished=True)  # ... and they finished (verified, complete)
    assert plan() == set()
    for script in ("download.py", "extract.py"):  # a code update
        path = work / "workflow" / "scripts" / script
        path.write_text(path.read_text() + "\n# changed\n")
    assert plan() == set()
    # what is not there is planned: an extraction (its folder deleted), then also a download (its file deleted)
    shutil.rmtree(data_dir / "extracted" / "clevr_v1")
    assert plan() == {"extract"}
    (data_dir / "downloads" / RESOURCES["clevr_v1"].filename).unlink()
    assert plan() == {"download", "extract"}
