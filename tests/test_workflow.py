"""The Snakemake workflow end to end on the smallest toy-world config, and the behaviour a Snakemake user expects:
nothing to do on a second run, a config change reruns only what depends on it, a run killed with SIGKILL and
resumed ends with the same outputs, and the config schema names the bad key."""
from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def small_config(tmp: Path, **toy) -> Path:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["results"] = str(tmp / "results")
    cfg["reports"] = str(tmp / "reports")
    cfg["toyworld"].update({"n_scenes": 4, "sanity_scenes": 8, **toy})
    cfg["shards"]["images_per_shard"] = 2
    cfg["study"]["gallery_size"] = 2
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake(configfile: Path, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    cmd = SNAKEMAKE + ["--configfile", str(configfile), "--cores", "2", *args]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out


def _outputs(tmp: Path) -> dict[str, bytes]:
    """Every table and every explanation shard's content (the report HTML carries a date, so it is excluded)."""
    files = {}
    for p in sorted((tmp / "reports").rglob("*.csv")) + sorted((tmp / "results").rglob("shard_*.*")):
        files[str(p.relative_to(tmp))] = p.read_bytes()
    return files


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workflow")
    cfg = small_config(tmp)
    snakemake(cfg)
    return tmp, cfg


def test_whole_workflow_produces_the_report(finished_run):
    tmp, _ = finished_run
    html = (tmp / "reports" / "report.html").read_text()
    for caption in ("Table VIII", "Table IX", "Fig. 14", "Fig. 18", "Fig. 15", "Fig. 16"):
        assert caption in html
    assert 'src="http' not in html and "data:image/png;base64," in html
    assert 'class="banner"' in html and 'class="findings"' in html  # the toy world's frame, findings in words
    for mode in ("single", "multi"):  # the default run explains with both head modes
        for name in ("table_viii", "addibility_tests", "table_ix", "table_ix_chance", "table_ix_contrasts",
                     "location_ablation_tests", "kl_sensitivity", "concreteness_regressions"):
            assert (tmp / "reports" / mode / "tables" / f"{name}.csv").stat().st_size > 0
    comparison = pd.read_csv(tmp / "reports" / "tables" / "paper_comparison.csv")
    assert list(comparison.columns) == ["analysis", "quantity", "paper", "this_run", "verdict"]
    assert set(comparison["verdict"]) <= {"agrees", "differs", "inconclusive", "not comparable"}
    assert {"[heads=single]", "[heads=multi]"} <= {a[a.index("["):] for a in comparison["analysis"]}
    power = pd.read_csv(tmp / "reports" / "tables" / "power.csv")
    assert {"§V-A Table VIII", "§V-B Table IX ranking", "§V-B Appendix B"} <= set(power["analysis"])
    for csv in (tmp / "reports").rglob("*.csv"):  # no pandas index column, no repeated row
        table = pd.read_csv(csv)
        assert not {"index", "Unnamed: 0"} & set(table.columns) and not table.duplicated().any(), csv
    sanity = pd.read_csv(tmp / "reports" / "tables" / "toy_sanity.csv")
    assert list(sanity["map"])[:2] == ['Grad-ECLIP, heads="single" (this run)', 'Grad-ECLIP, heads="multi" (this run)']
    assert (sanity["n_scenes"] == 8).all() and "Toy-world sanity check" in html
    by_colour = pd.read_csv(tmp / "reports" / "tables" / "toy_sanity_by_colour.csv")
    assert {"single_pointing", "multi_pointing"} <= set(by_colour.columns) and by_colour["n"].sum() == 8
    # the design summary heading the report counts what the design rule wrote: every table covers the 4 scenes
    design = pd.read_csv(tmp / "reports" / "tables" / "design_summary.csv").set_index("table")
    counts = json.loads((tmp / "results" / "design" / "design.json").read_text())["counts"]
    assert design["rows"].to_dict() == counts and (design["images"] == 4).all()
    assert "Study design: rows and images" in html
    for mode in ("single", "multi"):
        for name in ("fig13", "fig14", "fig14_differences", "fig15", "fig16", "fig17", "fig18", "fig_attributes"):
            assert (tmp / "reports" / mode / "figures" / f"{name}.png").exists(), (mode, name)
            assert (tmp / "reports" / mode / "figures" / f"{name}.svg").exists(), (mode, name)
    assert list((ROOT / "logs").glob("explain_images/*/shard_*.log"))


def test_report_fits_the_page_in_chromium(finished_run):
    from browser_layout import PRINT_WIDTH_PX, layout

    html = (finished_run[0] / "reports" / "report.html").read_text()
    for width, print_media in ((1400, False), (PRINT_WIDTH_PX, True)):
        measured = layout(html, width, print_media)
        assert measured["tables"] > 20 and measured["too_wide"] == [], measured


def test_second_run_has_nothing_to_do(finished_run):
    _, cfg = finished_run
    out = snakemake(cfg, "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_snakemake_report_captions_every_figure(finished_run):
    """Snakemake's own report shows every figure and table of the run, each with the caption the HTML report gives it
    (one caption file per result, analysis/captions/<key>.rst)."""
    from analysis.artifacts import caption

    tmp, cfg = finished_run
    report = tmp / "snakemake_report.html"
    snakemake(cfg, "--report", str(report))
    html = report.read_text(errors="replace")
    results = sorted((tmp / "reports").rglob("*.png")) + sorted((tmp / "reports").rglob("*.csv"))
    assert {"table_viii", "table_ix", "fig14", "fig15", "fig16", "fig18", "toy_sanity", "power"} <= {
        p.stem for p in results}
    for path in results:
        assert path.name in html, path.name
        assert snakemake_report_caption(html, path) == caption(path.stem), path


def snakemake_report_caption(html: str, path: Path) -> str:
    """The caption Snakemake's report gives a result file, as text: its entry is ``"<path>": {..., "caption": "<p>
    ...</p>", ...}`` in the report's embedded JSON."""
    import html as html_lib

    entry = html.index(json.dumps(str(path.resolve())) + ": {")
    start = html.index('"caption": ', entry) + len('"caption": ')
    rendered, _ = json.JSONDecoder().raw_decode(html, start)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", rendered)).split())


def test_every_file_the_workflow_writes_is_a_declared_output(finished_run):
    """No rule writes a file it does not declare: every file under the run's results/ and reports/ is an output of
    the finished DAG (snakemake --summary), or lies inside a declared directory()."""
    tmp, cfg = finished_run
    summary = snakemake(cfg, "--summary").stdout.splitlines()
    declared = {Path(line.split("\t")[0]).resolve() for line in summary[1:] if line.strip()}
    assert declared
    written = [p.resolve() for folder in ("results", "reports") for p in (tmp / folder).rglob("*") if p.is_file()]
    undeclared = [str(p) for p in written if p not in declared and not any(d in p.parents for d in declared)]
    assert undeclared == []
    assert not (ROOT / "workflow" / "report").exists()  # the captions' one place is analysis/captions/


def test_config_change_reruns_only_dependent_rules(finished_run):
    tmp, cfg = finished_run
    changed = yaml.safe_load(cfg.read_text())
    changed["study"]["gallery_size"] = 1
    cfg2 = tmp / "changed.yaml"
    cfg2.write_text(yaml.safe_dump(changed))
    out = snakemake(cfg2, "-n", "--quiet", "rules")
    text = out.stdout + out.stderr
    rules = {line.split()[0] for line in text.splitlines()
             if line.strip() and line.split()[0] in {"galleries", "gallery_words", "report", "explain_images",
                                                      "explain_texts", "toy_scenes", "study_design",
                                                      "attribute_metrics"}}
    assert rules == {"galleries", "gallery_words", "report"}, text


def test_killed_run_resumes_to_identical_outputs(finished_run, tmp_path):
    reference, _ = finished_run
    cfg = small_config(tmp_path)
    proc = subprocess.Popen(SNAKEMAKE + ["--configfile", str(cfg), "--cores", "2"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # kill the whole run (snakemake and its jobs) once the first explanation shard exists
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "results" / "explanations").rglob("shard_*.npz")):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "reports" / "report.html").exists()
    # a SIGKILLed snakemake cannot remove its lock: --unlock is the documented first step, and the default profile's
    # rerun-incomplete then redoes the job that was cut off
    snakemake(cfg, "--unlock")
    snakemake(cfg)
    assert _outputs(tmp_path).keys() == _outputs(reference).keys()
    for name, content in _outputs(tmp_path).items():
        assert content == _outputs(reference)[name], name


def test_schema_rejects_a_bad_config_naming_the_key():
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    good = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    validate(copy.deepcopy(good), schema)
    bad = copy.deepcopy(good)
    bad["toyworld"]["n_scenes"] = "many"
    with pytest.raises(WorkflowError, match="n_scenes"):
        validate(bad, schema)
    typo = copy.deepcopy(good)
    typo["method"]["head"] = "single"
    with pytest.raises(WorkflowError, match="head"):
        validate(typo, schema)


def test_paper_config_is_valid_and_plans_the_real_data_rules():
    out = subprocess.run(SNAKEMAKE + ["--configfile", "config/paper.yaml", "-n", "--quiet", "rules"], cwd=ROOT,
                         capture_output=True, text=True)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    # the explanation shards are planned once the study design (a checkpoint) knows its images
    for rule in ("download", "extract", "dataset_layout", "coco_triplets", "sam_masks", "study_design", "report"):
        assert rule in text


def test_optional_frequency_corpus_and_ratings_file_enter_the_dag(tmp_path):
    corpus = tmp_path / "openwebtext"
    corpus.mkdir()
    (corpus / "doc1.txt").write_text("a red cube and a red sphere")
    ratings = tmp_path / "Concreteness_ratings_Brysbaert_et_al_BRM.txt"
    ratings.write_text("Word\tBigram\tConc.M\nred\t0\t4.1\ncube\t0\t4.9\n")
    cfg = small_config(tmp_path)
    changed = yaml.safe_load(cfg.read_text())
    changed["study"].update(frequency_corpus=str(corpus), concreteness_ratings=str(ratings))
    cfg.write_text(yaml.safe_dump(changed))
    plan = snakemake(cfg, "-n", "--quiet", "rules")
    assert "corpus_word_counts" in plan.stdout + plan.stderr
    counts_csv = tmp_path / "results" / "analysis" / "corpus_word_counts.csv"
    snakemake(cfg, str(counts_csv))  # only that rule's job
    assert counts_csv.read_text().splitlines() == ["word,count", "a,2", "red,2", "and,1", "cube,1", "sphere,1"]


def test_sanity_check_leaves_the_dag_with_zero_scenes(tmp_path):
    plan = snakemake(small_config(tmp_path), "-n", "--quiet", "rules")
    assert "toy_sanity" in plan.stdout + plan.stderr
    plan = snakemake(small_config(tmp_path, sanity_scenes=0), "-n", "--quiet", "rules")
    assert "toy_sanity" not in plan.stdout + plan.stderr


def test_no_galleries_planned_for_zero_gallery_images(tmp_path):
    """study.gallery_size 0: the galleries write nothing, so no gallery job is planned and the report needs none."""
    counts = job_counts(snakemake(small_config(tmp_path), "-n", "--quiet", "rules").stdout)
    assert counts.get("galleries") == 2 and counts.get("report") == 1
    cfg = small_config(tmp_path)
    changed = yaml.safe_load(cfg.read_text())
    changed["study"]["gallery_size"] = 0
    cfg.write_text(yaml.safe_dump(changed))
    counts = job_counts(snakemake(cfg, "-n", "--quiet", "rules").stdout)
    assert "galleries" not in counts and "gallery_words" not in counts and counts.get("report") == 1


def job_counts(plan: str) -> dict[str, int]:
    """{rule: jobs} from the job stats table of a dry run."""
    counts = {}
    for line in plan.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_faithfulness_is_its_own_target(tmp_path):
    """`snakemake faithfulness` plans one job per task and the report page; the default target does not include it
    (make run keeps its time); the tasks themselves run in tests/test_faithfulness.py."""
    cfg = small_config(tmp_path)
    counts = job_counts(snakemake(cfg, "faithfulness", "-n", "--quiet", "rules").stdout)
    assert counts.get("faithfulness_task") == 6 and counts.get("faithfulness") == 1
    assert not {"faithfulness", "faithfulness_task"} & set(job_counts(snakemake(cfg, "-n", "--quiet", "rules").stdout))
