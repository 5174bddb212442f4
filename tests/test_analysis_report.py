"""analysis.report and analysis.gallery: one self-contained HTML file, artifacts beside it, galleries from arrays."""

import base64
import hashlib
import re

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape

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
    assert 'src="http' not in text and "<link" not in text and "<script" not in text and "url(" not in text
    srcs = re.findall(r'src="([^"]*)"', text)
    assert len(srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs:  # each one decodes to a PNG
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for key in ("table_viii", "table_ix", "concreteness_words"):  # every table's full caption (as escaped)
        assert str(escape(R.TABLE_CAPTIONS[key])) in text
    for key in ("fig18", "fig17", "fig13"):
        assert str(escape(R.FIGURE_CAPTIONS[key])) in text
    assert "A custom caption &amp; more" in text  # given caption, escaped
    assert "&lt;b&gt;dog&lt;/b&gt;" in text and "<b>dog</b>" not in text  # cell content escaped
    assert "gradeclip-toy-ViT" in text and "abc123" in text and "numpy 1.26" in text
    assert "no verb+noun group" in text
    assert "2.00e-05" in text and "0.9750" in text  # number formats
    assert "<details>" in text  # the 60-row table is collapsed
    # sections in paper order: V-A before V-B before V-C
    assert text.index('id="v-a"') < text.index('id="v-b"') < text.index('id="v-c"') < text.index('id="other"')


def test_report_refuses_external_references(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "_data_uri", lambda fig, dpi: "http://example.com/x.png")
    with pytest.raises(AssertionError, match="external"):
        R.render_report(tmp_path / "r.html", figures={"fig18": _small_figure()})
    assert not (tmp_path / "r.html").exists()


def test_save_artifacts_writes_csv_png_svg(tmp_path, tables):
    written = R.save_artifacts(tmp_path, tables, {"fig18": _small_figure()}, {"fig15": _small_figure()}, dpi=30)
    assert (tmp_path / "tables" / "table_viii.csv").is_file() and (tmp_path / "tables" / "my_extra.csv").is_file()
    t8 = pd.read_csv(tmp_path / "tables" / "table_viii.csv")
    assert list(t8.columns) == ["index", "matched | adj+noun", "mismatched | adj+noun", "p vs add"]
    for key in ("fig18", "fig15"):
        png, svg = tmp_path / "figures" / f"{key}.png", tmp_path / "figures" / f"{key}.svg"
        assert png.read_bytes()[:4] == b"\x89PNG" and svg.read_text().lstrip().startswith("<?xml")
        assert written[key] == [png, svg]
    # a rerun writes byte-identical figures (no creation date, fixed SVG ids), so reruns show no spurious change
    again = tmp_path / "again"
    R.save_artifacts(again, None, {"fig18": _small_figure()}, None, dpi=30)
    for fmt in ("png", "svg"):
        assert (again / "figures" / f"fig18.{fmt}").read_bytes() == (tmp_path / "figures" / f"fig18.{fmt}").read_bytes()


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
    maps = {("s1", t): masks[0] * 1.0 + 0.1 for t in ("cube", "red", "left cube")}
    maps[("s1", "sphere")] = np.ones((5, 7))  # grid-sized map: resampled for display
    attrs = pd.DataFrame([
        {"image_id": "s1", "category": "shape", "text": "cube", "object_id": 0},
        {"image_id": "s1", "category": "color", "text": "red", "object_id": 0},
        {"image_id": "s1", "category": "location", "text": "left cube", "object_id": 0},
        {"image_id": "s1", "category": "shape", "text": "sphere", "object_id": 1},
        {"image_id": "s1", "category": "location_ablation", "text": "left", "object_id": 0},
    ])
    rows = G.attribute_gallery_rows(attrs, {"s1": image}, {"s1": masks}, maps, max_panels=8)
    assert len(rows) == 1 and [p.label for p in rows[0].panels] == ["“red”", "“cube”", "“sphere”", "“left cube”"]
    assert rows[0].panels[2].mask is masks[1] and len(rows[0].panels[2].other_masks) == 1
    design = pd.DataFrame([{"image_id": "s1", "group": "adj+noun", "base": "cube", "matched": "red",
                            "mismatched": "blue", "matched_phrase": "red cube", "mismatched_phrase": "blue cube"}])
    amaps = {("s1", t): masks[0] * 1.0 for t in ("cube", "red", "blue", "red cube", "blue cube")}
    arows = G.addibility_gallery_rows(design, {"s1": image}, amaps, scores={("s1", "red"): 0.31})
    assert [p.dashed for p in arows[0].panels] == [False, False, False, True, True]
    assert arows[0].panels[1].note == "CLIP score 0.310"
    fig = G.heatmap_gallery(rows + arows, title="gallery")
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert len(visible) == 1 + 4 + 1 + 5
    assert R.figure_png(fig, dpi=30)[:4] == b"\x89PNG"
    with pytest.raises(KeyError):
        G.addibility_gallery_rows(design, {"s1": image}, {}, None)
    assert set(G.addibility_gallery_keys(design, ["s1"])) == set(amaps)
    assert set(G.attribute_gallery_keys(attrs, ["s1"])) == set(maps)  # the ablation text is not shown


def test_pick_images_is_seeded_and_bounded():
    t = pd.DataFrame({"image_id": [f"i{k // 2}" for k in range(40)]})
    a = G.pick_images(t, 5, seed=1)
    assert a == G.pick_images(t, 5, seed=1) and len(set(a)) == 5
    assert a == sorted(a, key=lambda i: int(i[1:]))  # table order kept
    assert G.pick_images(t, 50) == [f"i{k}" for k in range(20)]
