"""`gradeclip explain` in-process on a tiny model registered under a config name with a local checkpoint: a folder with
one corrupt image, a .txt list, every output file, the overlay colours against an independent blend, and no
temporary files left behind."""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from gradeclip import render
from gradeclip.cli import image_folder_names, main, slug, text_file_names
from gradeclip.explainer import GradECLIP
from gradeclip.models import load_clip
from tests.conftest import random_image
from tests.test_models import register_tiny_checkpoint


pytestmark = pytest.mark.usefixtures("one_torch_thread")


TEXTS = ["a dog", "a red cube on grass!"]
GOOD = {"landscape.png": (61, 43), "portrait.jpg": (40, 70)}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return register_tiny_checkpoint(tmp_path_factory.mktemp("model"))


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, (name, size) in enumerate(GOOD.items()):
        random_image(*size, seed=10 + i).save(folder / name)
    data = (folder / "landscape.png").read_bytes()
    (folder / "broken.png").write_bytes(data[:len(data) // 2])  # truncated
    (folder / "notes.txt").write_text("not an image, and not listed: the folder scan takes image suffixes only")
    return folder


def _run(model, source, out, *extra):
    name, checkpoint = model
    return main(["explain", str(source), *[a for t in TEXTS for a in ("--text", t)], "--out", str(out),
                 "--model", name, "--pretrained", str(checkpoint), "--quiet", *extra])


def _expected_blend(image: Image.Image, heatmap: np.ndarray) -> np.ndarray:
    """0.5 * jet(heatmap) + 0.5 * image, written out independently of gradeclip.render."""
    jet = matplotlib.colormaps["jet"](np.clip(heatmap, 0, 1))[..., :3] * 255.0
    return 0.5 * jet + 0.5 * np.asarray(image.convert("RGB"), dtype=np.float64)


def test_folder_with_a_corrupt_image(model, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(model, images, out, "--text-maps") == 3  # some images failed, the others were written
    captured = capsys.readouterr()
    assert "broken.png" in captured.err and "skipped" in captured.err
    failures = (out / "failures.txt").read_text().splitlines()
    assert len(failures) == 1 and failures[0].startswith(str(images / "broken.png") + "\t")
    assert "truncated" in failures[0]

    clip = load_clip(*model)
    ex = GradECLIP(clip)
    expected_files = {"scores.csv", "failures.txt"}
    for name, (w, h) in GOOD.items():
        stem = Path(name).stem
        image = Image.open(images / name).convert("RGB")
        reference = ex(image, TEXTS)
        words = ex.explain_texts(TEXTS, image)
        for text, ref, te in zip(TEXTS, reference, words):
            base = out / stem / slug(text)
            expected_files |= {f"{stem}/{slug(text)}{s}" for s in (".png", ".npz", ".words.csv", ".words.png")}
            # overlay: same size as the image, colours = 0.5 * jet(heat map) + 0.5 * image
            with Image.open(f"{base}.png") as png:
                assert png.format == "PNG" and png.size == (w, h) and png.mode == "RGB"
                pixels = np.asarray(png, dtype=np.float64)
            assert np.abs(pixels - _expected_blend(image, ref.heatmap)).max() <= 1.0
            # npz: the same grid, heat map, scores
            with np.load(f"{base}.npz") as z:
                assert {"grid", "heatmap", "score", "model_score"} <= set(z.files)
                np.testing.assert_allclose(z["grid"], ref.grid, rtol=1e-6, atol=1e-7)
                assert z["heatmap"].shape == (h, w)
                np.testing.assert_allclose(z["heatmap"].astype(np.float32), ref.heatmap, atol=1e-3)
                assert float(z["score"]) == pytest.approx(ref.score, abs=1e-6)
                assert float(z["model_score"]) == pytest.approx(ref.model_score, abs=1e-6)
                assert str(z["text"]) == text
            # words CSV: one row per word, importances summing to 1
            with open(f"{base}.words.csv", newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
            assert list(rows[0].keys()) == ["text", "word_index", "word", "score"]
            assert [r["word"] for r in rows] == [wd.text for wd in te.words]
            assert [int(r["word_index"]) for r in rows] == list(range(len(te.words)))
            assert all(r["text"] == text for r in rows)
            scores = np.array([float(r["score"]) for r in rows])
            assert scores.sum() == pytest.approx(1.0, abs=1e-5 * len(rows))
            np.testing.assert_allclose(scores, te.importance("sum"), atol=1e-6)
            with Image.open(f"{base}.words.png") as fig:
                assert fig.format == "PNG" and fig.size[0] > 100
    # summary
    with open(out / "scores.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    assert len(summary) == len(GOOD) * len(TEXTS)
    # nothing else in the output folder: no temporary files, no folder for the broken image
    found = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert found == expected_files
    assert not (out / "broken").exists()


def test_list_file_input(model, images, tmp_path, capsys):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two images\nimages/landscape.png\n\n{images / 'portrait.jpg'}\n")
    out = tmp_path / "out-list"
    assert _run(model, listing, out) == 0
    assert "wrote explanations of 2 images" in capsys.readouterr().out
    for name, (w, h) in GOOD.items():
        for text in TEXTS:
            with Image.open(out / Path(name).stem / f"{slug(text)}.png") as png:
                assert png.size == (w, h)
            assert (out / Path(name).stem / f"{slug(text)}.npz").is_file()
            assert not (out / Path(name).stem / f"{slug(text)}.words.csv").exists()  # no --text-maps
    assert not (out / "failures.txt").exists()
    assert not [p for p in out.rglob(".*")]


def test_keep_aspect_single_image(model, images, tmp_path):
    out = tmp_path / "out-keep"
    assert _run(model, images / "landscape.png", out, "--keep-aspect") == 0
    with np.load(out / "landscape" / f"{slug(TEXTS[0])}.npz") as z:
        assert z["grid"].shape == (round(43 / 8), round(61 / 8))
        assert z["heatmap"].shape == (43, 61)
        assert tuple(z["box"]) == (0.0, 0.0, 61.0, 43.0)


def test_only_bad_images_exit_1_and_bad_model_exit_2(model, images, tmp_path, capsys):
    assert _run(model, images / "broken.png", tmp_path / "o1") == 1
    assert "broken.png" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(model, empty, tmp_path / "o2") == 2
    assert "no images found" in capsys.readouterr().err
    code = main(["explain", str(images), "--text", "a dog", "--out", str(tmp_path / "o3"), "--model", "ViT-B-61",
                 "--pretrained", "none", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown architecture" in err and "Traceback" not in err


def test_no_two_inputs_share_an_output_path(model, tmp_path, capsys):
    """Images whose stems collide (a.png, a.jpg, and a-2.png, the name a numbering scheme would give the second a),
    and texts whose slugs collide ("a red cube", "a red cube!", "00 a red cube": the name an index prefix would give
    the first), each get their own files, and each row of scores.csv points at the files of its own pair."""
    folder = tmp_path / "images"
    folder.mkdir()
    sizes = {"a.png": (40, 30), "a.jpg": (36, 44), "a-2.png": (50, 20), "scores.csv.png": (30, 30)}
    for i, (name, size) in enumerate(sizes.items()):
        random_image(*size, seed=40 + i).save(folder / name)
    texts = ["a red cube", "a red cube!", "00 a red cube", "A red cube"]
    out = tmp_path / "out"
    name, checkpoint = model
    assert main(["explain", str(folder), *[a for t in texts for a in ("--text", t)], "--out", str(out),
                 "--model", name, "--pretrained", str(checkpoint), "--quiet", "--text-maps"]) == 0
    with open(out / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(sizes) * len(texts)
    assert {(r["image"], r["text"]) for r in rows} == {(str(folder / n), t) for n in sizes for t in texts}
    paths = [r[column] for r in rows for column in ("overlay_png", "map_npz", "words_csv")]
    assert len(set(paths)) == len(paths)  # no two pairs share a file
    assert len({r["folder"] for r in rows}) == len(sizes) and "scores.csv" not in {r["folder"] for r in rows}
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == set(paths) | {f"{Path(p).with_suffix('')}.png" for p in paths if p.endswith(".words.csv")} \
        | {"scores.csv"}
    for r in rows:  # each row's files hold its own image and text
        with np.load(out / r["map_npz"]) as z:
            assert str(z["text"]) == r["text"] and str(z["image"]) == r["image"]
            assert float(z["score"]) == pytest.approx(float(r["score"]), abs=1e-6)
            assert tuple(z["image_size"]) == sizes[Path(r["image"]).name]
        with Image.open(out / r["overlay_png"]) as png:
            assert png.size == sizes[Path(r["image"]).name]
        with open(out / r["words_csv"], newline="", encoding="utf-8") as f:
            assert {w["text"] for w in csv.DictReader(f)} == {r["text"]}


def test_output_names_are_unique_and_deterministic():
    cases = [["a.png", "a.jpg", "a-2.png"], ["x/a.png", "y/a.png", "a_png.gif"], ["A.png", "a.jpg"],
             ["scores.csv.png", "failures.txt.jpg", "b.png"], ["..png", "image.png", "a.b.png", "a.b.jpg"]]
    for names in cases:
        folders = image_folder_names([Path(n) for n in names])
        assert len({f.casefold() for f in folders}) == len(folders), folders
        assert not {f.casefold() for f in folders} & {"scores.csv", "failures.txt", ".", ".."}
        assert folders == image_folder_names([Path(n) for n in names])
    assert image_folder_names([Path("x/a.png"), Path("b.jpg")]) == ["a", "b"]  # a stem no other input has
    assert image_folder_names([Path(n) for n in ["a.png", "a.jpg", "a-2.png"]]) == ["a_png", "a_jpg", "a-2"]
    texts = ["a red cube", "a red cube!", "00 a red cube", "A red cube", "a dog", "x" * 60, "x" * 61]
    names = text_file_names(texts)
    assert len(set(names)) == len(names)
    assert names[4] == "a_dog"  # a slug no other text has stays plain
    assert names[0] != names[1] and names[0].startswith("a_red_cube-")
    assert text_file_names(list(reversed(texts))) == list(reversed(names))  # a text's name does not depend on order
    # no name is another's word-importance file
    files = {f"{n}{suffix}" for n in names for suffix in (".png", ".npz", ".words.csv", ".words.png")}
    assert len(files) == 4 * len(names)


def test_repeated_inputs_are_explained_once_with_a_warning(model, images, tmp_path, capsys):
    listing = tmp_path / "list.txt"
    listing.write_text("images/landscape.png\nimages/landscape.png\n")
    name, checkpoint = model
    out = tmp_path / "out-rep"
    assert main(["explain", str(listing), "--text", "a dog", "--text", "a dog", "--out", str(out), "--model", name,
                 "--pretrained", str(checkpoint), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "--text 'a dog' given more than once" in err and "landscape.png' given more than once" in err
    with open(out / "scores.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 1


def test_an_earlier_runs_summary_is_removed_before_a_run(model, images, tmp_path, monkeypatch):
    """A run that is killed must not leave an earlier run's scores.csv vouching for its half-written folder."""
    out = tmp_path / "out-stale"
    out.mkdir()
    (out / "scores.csv").write_text("image,folder,text,score,model_score\nold.png,old,a dog,0.1,0.1\n")
    (out / "failures.txt").write_text("old.png\tgone\n")
    seen = []

    def killed(*args, **kwargs):  # the first image's explanation: the run is under way
        seen.append([(out / name).exists() for name in ("scores.csv", "failures.txt")])
        raise KeyboardInterrupt

    monkeypatch.setattr(GradECLIP, "__call__", killed)
    name, checkpoint = model
    with pytest.raises(KeyboardInterrupt):
        main(["explain", str(images / "landscape.png"), "--text", "a dog", "--out", str(out), "--model", name,
              "--pretrained", str(checkpoint), "--quiet"])
    assert seen == [[False, False]] and not (out / "scores.csv").exists()


def test_overlay_matches_an_independent_blend_across_row_blocks():
    """Larger than one block of rows (render works in ~1M-pixel blocks), odd width."""
    image = random_image(1501, 900, seed=3)
    heat = np.random.default_rng(0).random((900, 1501)).astype(np.float32)
    heat[0, 0], heat[1, 1] = -0.5, 1.5  # clipped to [0, 1]
    got = np.asarray(render.overlay(image, heat), dtype=np.float64)
    assert np.abs(got - _expected_blend(image, heat)).max() <= 1.0
    with pytest.raises(ValueError, match="does not match"):
        render.overlay(image, heat[:-1])


def option_choices(parser, option):
    """The ``choices`` of ``option`` in ``parser`` and all its subcommands, one per command that has the option
    (None where it takes any value)."""
    import argparse

    for action in parser._actions:
        if option in action.option_strings:
            yield action.choices
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from option_choices(sub, option)


def test_spatial_choices_are_the_methods_own():
    """Both CLIs offer the spatial weights and head modes the method accepts (gradeclip.options, its one list)."""
    from gradeclip import method
    from gradeclip.cli import build_parser

    found = list(option_choices(build_parser(), "--spatial"))
    assert len(found) == 2  # gradeclip explain, gradeclip toyworld evaluate
    assert all(tuple(choices) == method.SPATIAL == ("loosened", "softmax", "none") for choices in found)
    heads = [c for c in option_choices(build_parser(), "--heads") if c is not None]
    assert heads and all(tuple(choices) == method.HEADS == ("single", "multi") for choices in heads)


def test_split_choices_are_the_evaluators_own():
    """``gradeclip toyworld evaluate --split`` lists the splits by hand (no torch import in the parser)."""
    from gradeclip.cli import build_parser
    from gradeclip.toyworld import evaluate

    found = list(option_choices(build_parser(), "--split"))
    assert len(found) == 4 and found[0] is None  # toyworld generate's --split is a free folder name
    for choices in found[1:]:  # evaluate, benchmark and compare
        assert sorted(choices) == sorted(evaluate.SPLIT_SEEDS)


def test_builtin_benchmark_methods_are_the_registrys_own():
    """``gradeclip toyworld benchmark --method`` names the registered methods by hand (no torch import in the
    parser), in the registry's order."""
    from gradeclip import baselines
    from gradeclip.toyworld import cli

    assert cli.BUILTIN_METHOD_NAMES == tuple(baselines.METHODS)


def test_help_and_parser_do_not_load_torch():
    """`gradeclip --help` (every sub-command's parser) answers without importing torch or open_clip: the commands
    import them when they run."""
    import subprocess
    import sys

    code = ("import sys, contextlib, io\n"
            "from gradeclip.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            "        main(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "loaded = [m for m in ('torch', 'open_clip') if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
