"""Bad and unusual inputs: unreadable files fail with an ImageLoadError naming the file (directly and through
GradECLIP), every PIL mode loads as RGB (16-bit rescaled, not clipped) and can be explained, degenerate sizes work,
a 100-megapixel image is explained with bounded memory, and empty/punctuation-only texts are handled."""
from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradeclip.explainer import GradECLIP
from gradeclip.files import atomic_write, atomic_write_bytes, atomic_write_text
from gradeclip.io import ImageLoadError, as_rgb_image, collect_images, load_image, to_rgb
from gradeclip.words import EmptyTextError
from tests.conftest import random_image


pytestmark = pytest.mark.usefixtures("one_torch_thread")


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def explainer(vit):
    return GradECLIP(vit)


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


# --------------------------------------------------------------------------------------- unreadable files
def _bad_files(tmp: Path) -> dict[str, Path]:
    img = random_image(64, 48, seed=5)
    png, jpg = _encoded(img, "PNG"), _encoded(img, "JPEG", quality=95)
    files = {
        "empty.png": b"",
        "truncated.png": png[:len(png) // 2],
        "truncated.jpg": jpg[:len(jpg) // 2],
        "notes.jpg": b"this is a text file, not an image\n" * 20,
    }
    paths = {}
    for name, data in files.items():
        (tmp / name).write_bytes(data)
        paths[name] = tmp / name
    paths["missing.png"] = tmp / "missing.png"
    return paths


def test_unreadable_files_raise_image_load_error_naming_the_file(tmp_path, explainer):
    for name, path in _bad_files(tmp_path).items():
        with pytest.raises(ImageLoadError) as err:
            load_image(path)
        assert str(path) in str(err.value), name
        assert "Traceback" not in str(err.value)
        # and the same through the explainer (image maps and word maps)
        with pytest.raises(ImageLoadError, match=str(path).replace(".", r"\.")):
            explainer(path, ["a dog"])
        with pytest.raises(ImageLoadError, match=str(path).replace(".", r"\.")):
            explainer.explain_text("a dog", str(path))
    assert "0 bytes" in str(pytest.raises(ImageLoadError, load_image, tmp_path / "empty.png").value)
    assert "no such file" in str(pytest.raises(ImageLoadError, load_image, tmp_path / "missing.png").value)


def test_truncated_file_fails_even_if_another_library_allows_truncated_images(tmp_path):
    """PIL's LOAD_TRUNCATED_IMAGES is a process-wide switch other code may turn on; a truncated file must still
    fail instead of being silently padded with grey."""
    from PIL import ImageFile
    paths = _bad_files(tmp_path)
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        for name in ("truncated.png", "truncated.jpg"):
            with pytest.raises(ImageLoadError, match="truncated"):
                load_image(paths[name])
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def test_collect_images_from_folder_list_and_file(tmp_path):
    for name in ("b.png", "a.JPG", "c.txt", "d.webp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in collect_images(tmp_path)] == ["a.JPG", "b.png", "d.webp"]
    lst = tmp_path / "list.txt"
    lst.write_text("# images\nb.png\n\n  a.JPG  \n/abs/x.png\n")
    assert collect_images(lst) == [tmp_path / "b.png", tmp_path / "a.JPG", Path("/abs/x.png")]
    assert collect_images(tmp_path / "b.png") == [tmp_path / "b.png"]
    with pytest.raises(FileNotFoundError, match="nolist.txt"):
        collect_images(tmp_path / "nolist.txt")


# --------------------------------------------------------------------------------------- image modes
def _mode_images() -> dict[str, tuple[bytes, str]]:
    rgb = random_image(40, 30, seed=7)
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40), dtype=np.uint8)))
    ramp = np.tile(np.linspace(0, 65535, 40).round().astype(np.uint16), (30, 1))
    return {
        "L.png": (_encoded(rgb.convert("L"), "PNG"), "L"),
        "RGBA.png": (_encoded(rgba, "PNG"), "RGBA"),
        "CMYK.jpg": (_encoded(rgb.convert("CMYK"), "JPEG", quality=95), "CMYK"),
        "P.png": (_encoded(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG"), "P"),
        "P.gif": (_encoded(rgb.convert("P"), "GIF"), "P"),
        "I16.png": (_encoded(Image.fromarray(ramp), "PNG"), "I;16"),
        "LA.png": (_encoded(rgb.convert("LA"), "PNG"), "LA"),
        "1.png": (_encoded(rgb.convert("1"), "PNG"), "1"),
    }


def test_every_mode_loads_as_rgb_and_can_be_explained(tmp_path, explainer):
    for name, (data, mode) in _mode_images().items():
        path = tmp_path / name
        path.write_bytes(data)
        with Image.open(path) as raw:
            assert raw.mode == mode, name  # the file really is in that mode
            raw.load()
            reference = np.asarray(raw.convert("RGB")) if mode != "I;16" else None
        img = load_image(path)
        assert img.mode == "RGB" and img.size == (40, 30), name
        if reference is not None:  # 8-bit modes: PIL's own conversion
            np.testing.assert_array_equal(np.asarray(img), reference, err_msg=name)
        out = explainer(path, ["a dog", "a cat"])
        assert len(out) == 2 and all(np.isfinite(e.heatmap).all() and e.heatmap.shape == (30, 40) for e in out)
        words = explainer.explain_text("a dog", path)
        assert np.isfinite(words.word_scores).all()


def test_uint8_arrays_are_images_and_other_inputs_are_named(tmp_path, explainer):
    img = random_image(40, 30, seed=3)
    path = tmp_path / "img.png"
    img.save(path)
    rgb = np.asarray(img)
    for array in (rgb, np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])):  # RGB, RGBA
        np.testing.assert_array_equal(np.asarray(as_rgb_image(array)), rgb)
    np.testing.assert_array_equal(np.asarray(as_rgb_image(rgb[..., 0])), np.repeat(rgb[..., :1], 3, axis=2))
    from_array, from_path = explainer(rgb, ["a dog"])[0], explainer(path, ["a dog"])[0]
    np.testing.assert_array_equal(from_array.grid, from_path.grid)
    assert explainer.explain_text("a dog", rgb).word_scores.tolist() == explainer.explain_text(
        "a dog", path).word_scores.tolist()
    for bad, message in ((rgb / 255.0, "uint8 .* got float64 of shape \\(30, 40, 3\\)"),
                         (rgb[..., :2], "got uint8 of shape \\(30, 40, 2\\)"),
                         (rgb.tolist(), "got list")):
        with pytest.raises(TypeError, match=message):
            explainer(bad, ["a dog"])


@pytest.mark.parametrize("orientation, turn", [(6, Image.Transpose.ROTATE_270), (3, Image.Transpose.ROTATE_180),
                                               (8, Image.Transpose.ROTATE_90), (2, Image.Transpose.FLIP_LEFT_RIGHT)])
def test_exif_orientation_is_honoured_for_paths_and_pil_images(orientation, turn, tmp_path, explainer):
    """A phone JPEG stored sideways with an orientation tag is explained upright: its path, the PIL image opened from
    it and an array of its upright pixels give the same map as an upright copy, and the map lies on the upright
    image. Written out independently of gradeclip.io: the upright pixels are the stored ones turned as EXIF 2.32
    says for the tag (6: the stored image is the scene turned 90 degrees left, so turn it right)."""
    scene = random_image(48, 30, seed=21)  # landscape: a sideways map would have the wrong shape
    stored = scene.transpose({6: Image.Transpose.ROTATE_90, 3: Image.Transpose.ROTATE_180,
                              8: Image.Transpose.ROTATE_270, 2: Image.Transpose.FLIP_LEFT_RIGHT}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    tagged = tmp_path / "phone.jpg"
    stored.save(tagged, quality=95, exif=exif.tobytes())
    with Image.open(tagged) as raw:
        assert raw.getexif()[0x0112] == orientation
        raw_pixels = np.asarray(raw.convert("RGB"))  # what PIL decodes, still as stored
    upright = np.asarray(Image.fromarray(raw_pixels).transpose(turn))
    assert upright.shape == (30, 48, 3)
    Image.fromarray(upright).save(tmp_path / "upright.png")  # the upright copy, lossless

    np.testing.assert_array_equal(np.asarray(load_image(tagged)), upright)
    with Image.open(tagged) as opened:
        np.testing.assert_array_equal(np.asarray(as_rgb_image(opened)), upright)
    texts = ["a dog", "a red cube"]
    reference = explainer(tmp_path / "upright.png", texts)
    for given in (tagged, Image.open(tagged), upright):
        for a, b in zip(explainer(given, texts), reference):
            assert a.registration.image_size == (48, 30) and a.heatmap.shape == (30, 48)
            np.testing.assert_array_equal(a.grid, b.grid)
            assert a.model_score == b.model_score
    sideways = explainer(raw_pixels, texts)[0]  # the stored pixels themselves: what was explained before
    assert sideways.heatmap.shape != (30, 48) or not np.array_equal(sideways.grid, reference[0].grid)


def test_images_without_pixels_are_refused_naming_the_size(tmp_path):
    for image in (np.zeros((0, 0, 3), np.uint8), np.zeros((4, 0), np.uint8)):
        with pytest.raises(ValueError, match="at least one pixel"):
            as_rgb_image(image)
    with pytest.raises(ValueError, match="no pixels"):
        as_rgb_image(Image.new("RGB", (3, 0)))


def test_16_bit_grayscale_is_rescaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 300).round().astype(np.uint16), (4, 1))
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    rgb = np.asarray(load_image(path)).astype(int)
    assert rgb.shape == (4, 300, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    expected = np.round(ramp.astype(np.float64) / 65535 * 255)  # independent reference
    assert np.abs(rgb[..., 0] - expected).max() <= 1
    assert rgb.min() == 0 and rgb.max() == 255
    assert np.all(np.diff(rgb[0, :, 0]) >= 0)  # monotone: no clipping plateau
    assert len(np.unique(rgb[0, :, 0])) > 200  # the whole range is used, not just 0 and 255
    # a dark 16-bit image stays dark (scaled by the bit depth, not by its own maximum)
    dark = tmp_path / "dark16.png"
    Image.fromarray((ramp // 256).astype(np.uint16)).save(dark)  # values 0..255 in a 16-bit file
    assert np.asarray(load_image(dark)).max() <= 1


def test_to_rgb_float_and_32_bit_images():
    f = Image.fromarray(np.linspace(0, 1, 50, dtype=np.float32).reshape(5, 10))
    assert f.mode == "F"
    arr = np.asarray(to_rgb(f))
    assert arr.shape == (5, 10, 3) and arr.min() == 0 and arr.max() == 255
    i32 = Image.fromarray(np.arange(50, dtype=np.int32).reshape(5, 10) * 1000)
    assert i32.mode == "I"
    assert np.asarray(to_rgb(i32)).max() > 128  # not clipped to 255 = white everywhere
    assert len(np.unique(np.asarray(to_rgb(i32)))) > 40


# --------------------------------------------------------------------------------------- degenerate sizes
@pytest.mark.parametrize("keep_aspect", [False, True])
@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_one_pixel_image_can_be_explained(keep_aspect, kind, vit, resnet, tmp_path):
    clip = vit if kind == "vit" else resnet
    ex = GradECLIP(clip, keep_aspect=keep_aspect)
    path = tmp_path / "one.png"
    Image.new("RGB", (1, 1), (200, 30, 90)).save(path)
    out = ex(path, ["a dog", "a red dot"])
    for e in out:
        assert e.heatmap.shape == (1, 1)
        assert np.isfinite(e.grid).all() and np.isfinite(e.heatmap).all()
        assert np.isfinite(e.score) and -1 <= e.score <= 1
    if keep_aspect:
        assert out[0].grid.shape == (1, 1)
    te = ex.explain_text("a red dot", path)
    assert np.isfinite(te.word_scores).all() and len(te.words) == 3


def test_huge_image_is_explained_with_bounded_memory(tmp_path):
    """A 10000 x 10000 image, loaded from a file, explained in keep-aspect mode, with its full-resolution heat map.

    Bound on the growth of peak RSS over the process after imports and model creation (torch alone is ~0.7 GB):
    1 GiB = the decoded image (PIL keeps RGB at 4 bytes per pixel: 381 MiB) + the heat map (10000^2 float32:
    381 MiB), although the image is freed before the map is made, + 260 MiB for everything else (a model input of at
    most 640 px on the short side, activations, allocator slack). Measured: ~0.4 GiB. A normalisation that is not
    in place (``(a - lo) / (hi - lo)``: two more full-size temporaries) measured 1.13 GiB; a float64 heat map, a
    torch sampling grid (H*W*2 floats) or a full-resolution model input (1.1 GiB as float32) are larger still.
    """
    path = tmp_path / "huge.png"
    # written by its own process, so that making it does not count in the measured one
    write = (f"from PIL import Image; Image.radial_gradient('L').resize((10000, 10000)).convert('RGB')"
             f".save({str(path)!r}, compress_level=1)")
    subprocess.run([sys.executable, "-c", write], check=True, timeout=120)
    # ru_maxrss of a child started by fork + exec also counts the parent's resident set at the fork (Linux keeps the
    # old memory map's high-water mark across exec): under a pytest process holding ViT-B-16 it starts at ~2 GB and
    # hides any growth. So on Linux the high-water mark of the child's own memory map (VmHWM) is reset after the
    # warm-up (/proc/self/clear_refs) and read at the end; ru_maxrss is the fallback and is reported too.
    script = textwrap.dedent(f"""
        import json, re, resource, sys
        sys.path.insert(0, {str(REPO)!r})
        import torch
        torch.set_num_threads(1)
        from PIL import Image
        from gradeclip.explainer import GradECLIP
        from tests.conftest import tiny_clip

        def peak():
            try:
                with open("/proc/self/status") as f:
                    return int(re.search(r"VmHWM:\\s+(\\d+) kB", f.read()).group(1)) * 1024, "VmHWM"
            except (OSError, AttributeError):
                return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "ru_maxrss"

        ex = GradECLIP(tiny_clip("vit"), keep_aspect=True)
        ex(Image.new("RGB", (64, 48)), ["warm up"])
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the high-water mark to the current resident set
        except OSError:
            pass
        base, how = peak()
        out = ex({str(path)!r}, ["a dog"])[0]
        hm = out.heatmap
        print(json.dumps(dict(base=base, peak=peak()[0], how=how,
                              ru_maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                              grid=list(out.grid.shape), shape=list(hm.shape), dtype=str(hm.dtype),
                              finite=bool((hm == hm).all()), lo=float(hm.min()), hi=float(hm.max()),
                              box=list(out.registration.box))))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    grown = res["peak"] - res["base"]
    print(f"10000^2 image: peak {res['how']} {res['peak'] / 2**20:.0f} MiB, {grown / 2**20:.0f} MiB over the loaded "
          f"model (ru_maxrss {res['ru_maxrss'] / 2**20:.0f} MiB)")
    assert grown > 300 * 2**20, "the measurement must see at least the 381 MiB heat map"
    assert grown < 2**30, f"peak RSS grew by {grown / 2**20:.0f} MiB"
    # the model input (grid x patch 8) stays within max_short_side = 640 and max_tokens = 4096
    assert min(res["grid"]) * 8 <= 640 and res["grid"][0] * res["grid"][1] <= 4096
    assert res["shape"] == [10000, 10000] and res["dtype"] == "float32" and res["finite"]
    assert res["lo"] == 0.0 and res["hi"] == pytest.approx(1.0)
    assert res["box"] == [0.0, 0.0, 10000.0, 10000.0]


# --------------------------------------------------------------------------------------- texts
@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_raises_value_error_naming_it(text, explainer):
    img = random_image(40, 30)
    with pytest.raises(ValueError) as err:
        explainer.explain_text(text, img)
    assert isinstance(err.value, EmptyTextError)
    assert repr(text) in str(err.value)
    with pytest.raises(EmptyTextError, match="empty"):
        explainer.explain_texts(["a dog", text], img)


def test_a_string_is_one_text_and_one_image_is_a_list_of_one(tmp_path, explainer):
    """Where a list is expected, a plain string is one text, never its characters; one image is one image, never
    the characters of its path or the rows of its array."""
    img = random_image(40, 30, seed=6)
    img.save(tmp_path / "one.png")
    as_list = explainer.explain_texts(["cube"], img)
    as_string = explainer.explain_texts("cube", img)
    assert [t.text for t in as_string] == ["cube"] and as_string[0].token_scores.tolist() == \
        as_list[0].token_scores.tolist()
    maps = explainer.explain_images([img], "cube")
    assert len(maps) == 1 and [m.text for m in maps[0]] == ["cube"]
    np.testing.assert_array_equal(maps[0][0].grid, explainer.explain_images([img], ["cube"])[0][0].grid)
    assert explainer.encode_texts("cube").shape[0] == 1
    for one in (str(tmp_path / "one.png"), tmp_path / "one.png", img, np.asarray(img)):
        got = explainer.explain_images(one, ["cube"])
        assert len(got) == 1
        np.testing.assert_array_equal(got[0][0].grid, maps[0][0].grid)
        assert explainer.encode_images(one).shape[0] == 1
    assert len(explainer.explain_text_pairs("cube", img)) == 1


@pytest.mark.parametrize("text", ["!!!", "?!", "... --- ..."])
def test_punctuation_only_text_is_explained_with_non_word_items(text, explainer):
    te = explainer.explain_text(text, random_image(40, 30))
    assert te.words and not any(w.is_word for w in te.words)
    assert [w.text for w in te.words] == text.split()
    assert len(te.word_scores) == len(te.words) and np.isfinite(te.word_scores).all()
    assert (te.word_scores >= 0).all()
    assert te.importance(words_only=True).size == 0
    imp = te.importance()
    assert imp.sum() == pytest.approx(1.0) or not imp.any()


# --------------------------------------------------------------------------------------- atomic writes
def test_atomic_writes_content_permissions_and_failures(tmp_path):
    text_path = atomic_write_text(tmp_path / "sub" / "a.csv", "x,y\r\n1,é\n")  # folder created, no newline change
    assert text_path.read_bytes() == "x,y\r\n1,é\n".encode("utf-8")
    assert atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    seen = []
    npz = atomic_write(tmp_path / "c.npz", lambda p: (seen.append(p), np.savez(p, a=np.arange(3))))
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".c.npz.") and seen[0].suffix == ".npz"
    with np.load(npz) as z:
        assert z["a"].tolist() == [0, 1, 2]
    for p in (text_path, tmp_path / "b.bin", npz):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644

    def failing(p):
        p.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "new.txt", failing)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "b.bin", failing)
    assert not (tmp_path / "new.txt").exists()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"  # the existing file is left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "c.npz", "sub"]  # no temporary files
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.csv"]


@pytest.mark.parametrize("value, is_file", [
    ("openai", False), ("laion2b_s34b_b88k", False), ("", False), (None, False),
    ("model.pt", True), ("model.pth", True), ("weights.bin", True), ("w.safetensors", True),
    ("ckpts/latest", True), ("/abs/path/no_suffix", True), ("tag.v2", False),
])
def test_a_pretrained_value_names_a_file_or_a_tag(value, is_file):
    """One rule for the CLI's model loading and the workflow's checkpoint inputs."""
    from gradeclip.files import names_checkpoint_file

    assert names_checkpoint_file(value) is is_file


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    from gradeclip.files import atomic_folder

    out = tmp_path / "made"
    with pytest.raises(RuntimeError):
        with atomic_folder(out) as staging:
            (staging / "half.txt").write_text("x")
            raise RuntimeError("stopped halfway")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no staging folder
    with atomic_folder(out) as staging:
        (staging / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first" and oct(out.stat().st_mode & 0o777) == "0o755"
    with pytest.raises(OSError):  # an existing folder is not replaced unless asked
        with atomic_folder(out) as staging:
            (staging / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    with atomic_folder(out, replace=True) as staging:
        (staging / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made"]


def test_instance_mask_round_trip_and_refusals(tmp_path):
    """One reader and one writer for the toy world's exact masks and SAM's CLEVR masks."""
    from gradeclip.io import read_instance_mask, write_instance_mask

    mask = np.random.default_rng(1).integers(0, 11, (32, 48), dtype=np.uint8)
    path = write_instance_mask(mask, tmp_path / "sub" / "mask.png")
    loaded = read_instance_mask(path)
    assert loaded.dtype == np.uint8 and loaded.flags.writeable
    np.testing.assert_array_equal(loaded, mask)
    assert sorted(p.name for p in path.parent.iterdir()) == ["mask.png"]  # no temporary file left
    with pytest.raises(ValueError, match="uint8"):
        write_instance_mask(np.zeros((4, 4), dtype=np.int32), tmp_path / "m.png")
    with pytest.raises(ValueError, match="uint8"):
        write_instance_mask(np.zeros((4, 4, 3), dtype=np.uint8), tmp_path / "m.png")
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="rgb.png.*mode RGB"):
        read_instance_mask(tmp_path / "rgb.png")
