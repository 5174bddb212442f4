"""analysis.report and analysis.gallery: one self-contained HTML file, artifacts beside it, galleries from arrays."""

import base64
import hashlib
import re

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape

from analysis import artifacts as A
from analysis import gallery as G
from analysis import report as R
from analysis.figures import _figure

H, W = 20, 28


def _small_figure():
    fig = _figure(3, 2)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("x (units)")
    ax.set_ylabel("y (units)")
    return fig


@pytest.fixture()
def tables():
    t8 = pd.DataFrame([[0.975, 0.948, np.nan], [0.787, 0.581, 2e-5]], index=["add", "multiply"],
                      columns=pd.MultiIndex.from_tuples([("matched", "adj+noun"), ("mismatched", "adj+noun"),
                                                         ("p vs add", "")]))
    t9 = pd.DataFrame({"Color": [0.66, 50.0], "Location": [0.27, 50.0]}, index=["Cosine similarity", "n"])
    return {"table_viii": t8, "table_ix": t9,
            "my_extra": (pd.DataFrame({"word": ["<b>dog</b>"], "value": [1.5]}), "A custom caption & more"),
            "concreteness_words": pd.DataFrame({"word": [f"w{i}" for i in range(60)], "mean_importance": 0.5})}


def test_report_is_one_self_contained_file(tmp_path, tables, monkeypatch):
    png = tmp_path / "given.png"
    _small_figure().savefig(png, format="png", dpi=30)
    figures = {"fig18": _small_figure(), "fig17": png}
    galleries = {"fig13": _small_figure()}
    header = {"model": "gradeclip-toy-ViT", "checkpoint sha256": "abc123", "packages": {"numpy": "1.26"}}
    out = R.render_report(tmp_path / "report" / "report.html", tables, figures, galleries, header,
                          notes=["no verb+noun group"], dpi=40)
    assert list(out.parent.iterdir()) == [out]  # exactly one file, nothing temporary left
    text = out.read_text(encoding="utf-8")
    assert 'src="http' not in text and "<link" not in text and "<script src" not in text and "url(" not in text
    srcs = re.findall(r'src="([^"]*)"', text)
    assert len(srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs:  # each one decodes to a PNG
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for key in ("table_viii", "table_ix", "concreteness_words", "fig18", "fig17", "fig13"):  # each full caption
        assert A.caption(key) != key and str(escape(A.caption(key))) in text  # (as escaped), from its caption file
    assert "A custom caption &amp; more" in text  # given caption, escaped
    assert "&lt;b&gt;dog&lt;/b&gt;" in text and "<b>dog</b>" not in text  # cell content escaped
    assert "gradeclip-toy-ViT" in text and "abc123" in text and "numpy 1.26" in text
    assert "no verb+noun group" in text
    assert "2.00e-05" in text and "0.9750" in text  # number formats
    assert "<details>" in text  # the 60-row table is collapsed
    # sections in paper order: V-A before V-B before V-C
    assert text.index('id="v-a"') < text.index('id="v-b"') < text.index('id="v-c"') < text.index('id="other"')
    # no pandas index column: the index of table_viii (the methods) is a named first column, not an unnamed one
    assert "<th></th>" not in text and ">index<" in text


def test_report_shows_each_head_mode_side_by_side_with_findings_and_banner(tmp_path):
    t9 = {m: pd.DataFrame({"metric": ["Cosine similarity", "n texts"], "Color": [v, 10]}) for m, v in
          (("single", 0.61), ("multi", 0.72))}
    modes = {m: ({"table_ix": t9[m], "table_ix_contrasts": pd.DataFrame()}, {"fig15": _small_figure()})
             for m in ("single", "multi")}
    out = R.render_report(tmp_path / "r.html", {"paper_comparison": pd.DataFrame(
        {"analysis": ["§V-B"], "quantity": ["q"], "paper": ["0.66"], "this_run": ["0.61"], "verdict": ["agrees"]})},
        modes=modes, findings={"v-b": ["The colour maps find their objects."]}, banner="This is the toy world.",
        methods=["Unit of analysis: the image."], dpi=30)
    text = out.read_text()
    block = text[text.index('<div id="table_ix">'):text.index('<div id="table_ix_contrasts">')]
    assert block.count('class="mode-label"') == 2
    assert str(escape('heads="single"')) in block and str(escape('heads="multi"')) in block
    assert "0.6100" in block and "0.7200" in block
    assert "single/tables/table_ix.csv, multi/tables/table_ix.csv" in block
    assert '<p class="none">none</p>' in text  # an empty table says so
    figure = text[text.index('<figure id="fig15">'):]
    assert figure[:figure.index("</figure>")].count("<img") == 2
    assert text.index("The colour maps find their objects.") < text.index('<div id="table_ix">')
    assert text.index("This is the toy world.") < text.index("<section")
    assert 'id="paper"' in text and 'id="methods"' in text and "Unit of analysis: the image." in text


def test_display_frame_merges_intervals_hides_technical_columns_and_keeps_the_csv_whole(tmp_path):
    df = pd.DataFrame({"method": ["multiply"], "n": [58], "mean_diff": [0.2], "mean_diff_ci_low": [0.15],
                       "mean_diff_ci_high": [0.27], "sd_diff": [0.2], "t": [7.1], "df": [57.0], "p": [1e-9],
                       "dz": [0.9], "dz_ci_low": [0.6], "dz_ci_high": [1.2], "mde_dz": [0.37], "mde": [0.07],
                       "p_holm": [2e-9]})
    shown = R.display_frame(df)
    assert list(shown.columns) == ["method", "n", "difference", "p", "p (Holm)", "dz", "MDE (dz, 80%)"]
    assert shown["difference"].item() == "0.2000 [0.1500, 0.2700]" and shown["dz"].item() == "0.9000 [0.6000, 1.2000]"
    R.save_artifacts(tmp_path, {"tests": df})
    assert list(pd.read_csv(tmp_path / "tables" / "tests.csv").columns) == list(df.columns)
    contrasts = pd.DataFrame({"contrast": ["color vs shape"], "estimate": [0.4], "ci_low": [0.3], "ci_high": [0.5],
                              "se": [0.05], "mde": [0.14]})
    assert list(R.display_frame(contrasts).columns) == ["contrast", "estimate", "MDE (80%)"]


def test_report_refuses_external_references(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "_data_uri", lambda fig, dpi: "http://example.com/x.png")
    with pytest.raises(AssertionError, match="external"):
        R.render_report(tmp_path / "r.html", figures={"fig18": _small_figure()})
    assert not (tmp_path / "r.html").exists()


def test_save_artifacts_writes_csv_png_svg(tmp_path, tables):
    written = R.save_artifacts(tmp_path, tables, {"fig18": _small_figure()}, {"fig15": _small_figure()}, dpi=30)
    assert (tmp_path / "tables" / "table_viii.csv").is_file() and (tmp_path / "tables" / "my_extra.csv").is_file()
    t8 = pd.read_csv(tmp_path / "tables" / "table_viii.csv")
    assert list(t8.columns) == ["index", "matched | adj+noun", "mismatched | adj+noun", "p vs add"]  # never unnamed
    for key in ("fig18", "fig15"):
        png, svg = tmp_path / "figures" / f"{key}.png", tmp_path / "figures" / f"{key}.svg"
        assert png.read_bytes()[:4] == b"\x89PNG" and svg.read_text().lstrip().startswith("<?xml")
        assert written[key] == [png, svg]
    # a rerun writes byte-identical figures (no creation date, fixed SVG ids), so reruns show no spurious change
    again = tmp_path / "again"
    R.save_artifacts(again, None, {"fig18": _small_figure()}, None, dpi=30)
    for fmt in ("png", "svg"):
        assert (again / "figures" / f"fig18.{fmt}").read_bytes() == (tmp_path / "figures" / f"fig18.{fmt}").read_bytes()


def test_save_artifacts_writes_exactly_the_declared_files_and_load_artifacts_reads_them_back(tmp_path, tables):
    figures = {"fig18": _small_figure()}
    declared = [tmp_path / "tables" / f"{k}.csv" for k in tables] + A.figure_files(tmp_path, "fig18")
    other = tmp_path / "elsewhere.json"  # a declared output outside tables/ and figures/ is not the check's business
    # one table too many, one figure declared but not produced: refused before anything is written, naming both
    with pytest.raises(ValueError, match=r"undeclared key\(s\) my_extra .*declared but not produced: .*fig17\.png"):
        R.save_artifacts(tmp_path, tables, figures, declared=[p for p in declared if "my_extra" not in p.name]
                         + [other, *A.figure_files(tmp_path, "fig17")], dpi=30)
    assert not (tmp_path / "tables").exists() and not (tmp_path / "figures").exists()
    written = R.save_artifacts(tmp_path, tables, figures, declared=[*map(str, declared), other], dpi=30)
    assert sorted(p for ps in written.values() for p in ps) == sorted(declared)
    assert sorted(tmp_path.rglob("*.*")) == sorted(declared)
    back_tables, back_figures = R.load_artifacts(declared)  # the SVG copies are skipped
    assert set(back_tables) == set(tables) and back_figures == {"fig18": tmp_path / "figures" / "fig18.png"}
    pd.testing.assert_frame_equal(back_tables["concreteness_words"], tables["concreteness_words"])


def _snakemake_caption_text(path) -> str:
    """A caption file as Snakemake's report shows it: rendered with Jinja2, then reStructuredText to HTML (as
    snakemake.report does), then the HTML's text; docutils' complaints are kept as text (system-message)."""
    import html

    import jinja2
    from docutils.core import publish_parts

    source = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(path.read_text()).render()
    body = publish_parts(source, writer="html", settings_overrides={"report_level": 1, "halt_level": 5,
                                                                     "warning_stream": False})["body"]
    assert "system-message" not in body, (path.name, body)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_each_caption_reads_the_same_in_the_html_report_and_in_snakemakes_report():
    """One text per result: the HTML report's caption (analysis.artifacts.caption) is the text Snakemake renders from
    the same file, for every caption file (no RST markup or Jinja2 syntax that would make the two differ)."""
    keys = A.caption_keys()
    assert len(keys) > 40
    for key in keys:
        assert _snakemake_caption_text(A.caption_path(key)) == A.caption(key), key
    # e.g. "|" and a leading "(i)" are RST markup, escaped in the file, shown plainly in both reports
    assert A.caption("score_gap").startswith("(i) The score") and "|Δ cosine|" in A.caption("score_gap")
    with pytest.raises(KeyError, match="no caption for 'no_such_key'"):
        A.caption_path("no_such_key")
    assert A.caption("no_such_key") == "no_such_key"


def test_every_result_has_a_caption_and_every_caption_a_result():
    """The keys the study's steps declare (analysis.artifacts), the report's sections and the caption files agree:
    a caption file without a result, or a declared result without a caption, fails."""
    declared = {k for arts in (A.ATTRIBUTES, A.ADDIBILITY, A.CONCRETENESS, A.TOY_SANITY, A.REPORT, A.galleries(4),
                               A.faithfulness(["ground_truth", "prediction"], toy=True)) for k in arts.keys}
    sections = {k for _, _, keys in R.SECTIONS for k in keys}
    assert declared - set(A.caption_keys()) == set()
    assert sections - set(A.caption_keys()) == set()
    assert set(A.caption_keys()) - declared - sections == {"sam_contact_sheet"}  # the workflow's SAM contact sheet
    # keys that depend on the config: no galleries for 0 images, Fig. 8 per classification target, colour on the toy
    assert A.galleries(0).keys == ()
    paper = A.faithfulness(["ground_truth", "prediction"], toy=False)
    assert "localization_by_colour" not in paper.tables and "fig8_classification_prediction" in paper.figures


def test_run_header_hashes_and_versions(tmp_path):
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights" * 1000)
    h = R.run_header("toy", ckpt, data={"scenes": "toy val"}, config={"b": 1, "a": [1, 2]})
    assert h["checkpoint sha256"] == hashlib.sha256(b"weights" * 1000).hexdigest()
    assert h["config sha256"] == R.config_hash({"a": [1, 2], "b": 1})  # key order does not matter
    assert h["packages"]["numpy"] == np.__version__ and "date (UTC)" in h
    assert "pretrained tag" in R.run_header("ViT-B-16", "openai")["checkpoint"]


# ------------------------------------------------------------------------------------------ galleries
def _scene():
    image = np.full((H, W, 3), 150, np.uint8)
    m0 = np.zeros((H, W), bool)
    m0[3:9, 3:10] = True
    m1 = np.zeros((H, W), bool)
    m1[11:18, 15:25] = True
    image[m0] = (200, 30, 30)
    image[m1] = (30, 30, 200)
    return image, {0: m0, 1: m1}


def test_galleries_from_arrays():
    image, masks = _scene()
    maps = {("s1", t): masks[0] * 1.0 + 0.1 for t in ("cube", "red", "left cube", "left")}
    maps[("s1", "sphere")] = np.ones((5, 7))  # grid-sized map: resampled for display
    attrs = pd.DataFrame([
        {"image_id": "s1", "category": "shape", "text": "cube", "object_id": 0},
        {"image_id": "s1", "category": "color", "text": "red", "object_id": 0},
        {"image_id": "s1", "category": "location", "text": "left cube", "object_id": 0},
        {"image_id": "s1", "category": "shape", "text": "sphere", "object_id": 1},
        {"image_id": "s1", "category": "location_ablation", "text": "cube", "object_id": 0},
        {"image_id": "s1", "category": "location_ablation", "text": "left", "object_id": 0},
    ])
    words = {("s1", "left cube"): [("left", 0.1), ("cube", 0.9)]}
    rows, labels = G.attribute_gallery_rows(attrs, {"s1": image}, {"s1": masks}, maps, words=words)
    # Fig. 15's layout: one row per attribute type in the paper's order, the location row with its ablation texts
    assert labels == ["(a) shape", "(c) color", "(e) location"]
    assert [[p.label for p in r.panels] for r in rows] == [["“cube”", "“sphere”"], ["“red”"],
                                                            ["“left cube”", "“cube”", "“left”"]]
    assert rows[0].panels[1].mask is masks[1] and len(rows[0].panels[1].other_masks) == 1
    assert rows[2].panels[0].words == words[("s1", "left cube")]
    design = pd.DataFrame([{"image_id": "s1", "group": "adj+noun", "base": "cube", "matched": "red",
                            "mismatched": "blue", "matched_phrase": "red cube", "mismatched_phrase": "blue cube"}])
    amaps = {("s1", t): masks[0] * 1.0 for t in ("cube", "red", "blue", "red cube", "blue cube")}
    amaps[("s1", "blue")] = masks[0] * 0.01  # almost no mass: on the row's shared scale it looks almost empty
    arows = G.addibility_gallery_rows(design, {"s1": image}, amaps, scores={("s1", "red"): 0.31})
    assert [p.dashed for p in arows[0].panels] == [False, False, False, True, True]
    assert arows[0].panels[1].note == "peak 1 · score 0.310" and arows[0].panels[3].note == "peak 0.01"
    fig = G.heatmap_gallery(rows + arows, row_labels=labels + ["V-A"])
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>"]
    assert len(visible) == (1 + 2) + (1 + 1) + (1 + 3) + (1 + 5)
    # the shared scale: the faint map's overlay tops out at 1% of the colour bar, not at its top
    blue_ax = visible[-2]
    assert blue_ax.images[-1].get_array().max() == pytest.approx(0.01, abs=1e-3)
    # the text heat map is drawn under its panel: the words, in order, on coloured boxes
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts[texts.index("left"):texts.index("left") + 2] == ["left", "cube"]
    assert R.figure_png(fig, dpi=30)[:4] == b"\x89PNG"
    with pytest.raises(KeyError):
        G.addibility_gallery_rows(design, {"s1": image}, {}, None)
    assert set(G.addibility_gallery_keys(design, ["s1"])) == set(amaps)
    assert set(G.attribute_gallery_keys(attrs, ["s1"])) == set(maps)
    fig16 = G.mask_map_rows(attrs, "s1", image, masks, maps)
    assert [p.label for p in fig16[0].panels] == ["mask: “red”", "mask: “cube”", "mask: “left cube”"]
    assert all(p.show_mask_only for p in fig16[0].panels) and fig16[1].panels[0].heatmap is maps[("s1", "red")]


def test_gallery_plan_and_text_jobs():
    attrs = pd.DataFrame({"image_id": ["a", "b", "b", "b", "c"], "category": ["color", "color", "shape", "size",
                                                                            "shape"],
                          "text": ["red", "blue", "cube", "small cube", "sphere"], "object_id": [0, 0, 1, 1, 0]})
    assert G.richest_image(attrs) == "b"
    design = pd.DataFrame([{"image_id": i, "group": "adj+noun", "base": "cube", "matched": "red", "mismatched": "blue",
                            "matched_phrase": "red cube", "mismatched_phrase": "blue cube"} for i in ("a", "c")])
    images = pd.DataFrame({"image_id": ["a", "b", "c"], "path": ["a.png", "b.png", "c.png"]})
    plan = G.gallery_plan(design, attrs, 1, seed=0)
    assert plan["fig15"] == "b" and len(plan["fig13"]) == 1
    jobs = G.gallery_text_jobs(design, attrs, images, plan)
    assert list(jobs.columns) == ["caption_id", "image_id", "path", "text"]
    assert set(jobs.loc[jobs.image_id == "b", "text"]) == {"blue", "cube", "small cube"}
    assert not jobs.duplicated().any() and jobs["caption_id"].is_unique
    words = pd.DataFrame({"image_id": ["b", "b", "b"], "text": ["small cube"] * 3, "word_index": [1, 0, 2],
                          "word": ["cube", "small", "."], "is_word": [1, 1, 0], "importance": [0.2, 0.7, 0.1]})
    assert G.word_importances(words) == {("b", "small cube"): [("small", 0.7), ("cube", 0.2)]}


def test_pick_images_is_seeded_and_bounded():
    t = pd.DataFrame({"image_id": [f"i{k // 2}" for k in range(40)]})
    a = G.pick_images(t, 5, seed=1)
    assert a == G.pick_images(t, 5, seed=1) and len(set(a)) == 5
    assert a == sorted(a, key=lambda i: int(i[1:]))  # table order kept
    assert G.pick_images(t, 50) == [f"i{k}" for k in range(20)]


def test_fit_to_width_transposes_or_wraps_and_keeps_every_cell():
    few_rows = pd.DataFrame({"model": ["Fig. 18", "Fig. 17"], **{f"statistic_{i}": [0.1 * i, 0.2 * i]
                                                                  for i in range(20)}})
    (t,) = R.fit_to_width(few_rows)
    assert list(t.columns) == ["model", "Fig. 18", "Fig. 17"] and len(t) == 20  # transposed
    many = pd.DataFrame({"key": [f"row {i}" for i in range(12)], **{f"a_long_column_{i}": range(12)
                                                                     for i in range(30)}})
    parts = R.fit_to_width(many)
    assert len(parts) > 1 and all(p.columns[0] == "key" for p in parts)  # wrapped, the key column repeated
    assert sum(len(p.columns) - 1 for p in parts) == 30
    assert all(sum(R._column_px(p, c) for c in p.columns) <= R.DISPLAY_WIDTH_PX for p in parts)
    narrow = pd.DataFrame({"a": [1], "b": [2]})
    assert R.fit_to_width(narrow)[0] is narrow


def test_header_names_the_commit_and_says_when_the_tree_is_dirty(tmp_path, monkeypatch):
    import subprocess

    repo = tmp_path / "repo"
    (repo / "analysis").mkdir(parents=True)
    (repo / "analysis" / "x.py").write_text("a = 1\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert R._git_commit(repo) == head  # a clean tree: the commit alone, as the shipped report's header
    (repo / "reports").mkdir()
    (repo / "reports" / "report.html").write_text("old")
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "report"], check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (repo / "reports" / "report.html").write_text("new")  # the run rewriting the shipped report is not a code change
    assert R._git_commit(repo, outputs=[repo / "reports"]) == head
    assert R._git_commit(repo) == head + " (uncommitted changes)"
    (repo / "analysis" / "x.py").write_text("a = 2\n")
    assert R._git_commit(repo, outputs=[repo / "reports"]) == head + " (uncommitted changes)"
