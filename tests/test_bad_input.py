"""Every user mistake found so far, as one table: the input (a command line, or a call of the Python API) and what
must come of it: the exit status and a fragment of the one error line (command line), or the exception / warning
and a fragment of its message (API). The next bad input found is one more row.

Command lines run in-process (``gradeclip.cli.main``) on a tiny model registered under a config name with a local
checkpoint; placeholders in them: {model} {ckpt} (that model and its weights), {img} (a good image), {broken} (a
truncated image), {images} (a folder holding both), {empty} (an empty folder), {tmp} (the test's folder, where
``afile`` is a plain file, ``notckpt.pt`` a text file, ``list.pt`` a torch file holding a list, ``binary.txt`` a
list file that is not text and ``rn.pt`` the weights of a tiny ResNet CLIP).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np
import pytest
import torch
from PIL import Image

from gradeclip.cli import main
from gradeclip.explainer import GradECLIP
from gradeclip.io import ImageLoadError
from gradeclip.models import ModelLoadError, load_clip
from gradeclip.words import EmptyTextError
from tests.conftest import random_image
from tests.test_models import register_tiny_checkpoint


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass(frozen=True)
class Case:
    """``given``: a command line (a list, with placeholders) or a function ``(explainer, files) -> anything``;
    ``expect``: the exit status (command line) or the exception / warning class (API); ``fragment``: a regular
    expression the message must contain."""

    given: Union[list, Callable]
    expect: Union[int, type]
    fragment: str


def explain(*extra: str) -> list[str]:
    return ["explain", "{img}", "--text", "a red cube", "--out", "{tmp}/out", "--model", "{model}",
            "--pretrained", "{ckpt}", "--quiet", *extra]


def explain_source(source: str, *extra: str) -> list[str]:
    return ["explain", source, "--text", "a red cube", "--out", "{tmp}/out", "--model", "{model}",
            "--pretrained", "{ckpt}", "--quiet", *extra]


def with_option(option: str, value: str) -> list[str]:
    """``explain()`` with ``option`` set to ``value`` (replacing it where ``explain`` already has it)."""
    argv = explain()
    if option in argv:
        argv[argv.index(option) + 1] = value
        return argv
    return argv + [option, value]


TOY = ["--checkpoint", "{ckpt}", "--model", "{model}"]

CASES = {
    # --- command line: output folder
    "out is a file": Case(with_option("--out", "{tmp}/afile"), 2, r"--out .*afile is a file, not a folder"),
    "out below a file": Case(with_option("--out", "{tmp}/afile/sub"), 2, r"afile is a file, not a folder"),
    "out under /proc": Case(with_option("--out", "/proc/gradeclip-out"), 2, r"cannot write in /proc/gradeclip-out"),
    "out unwritable (/sys)": Case(with_option("--out", "/sys/gradeclip-out"), 2, r"cannot write in /sys/gradeclip-out"),
    # --- command line: inputs
    "missing list file": Case(explain_source("{tmp}/missing.txt"), 2, r"image list .*missing\.txt not found"),
    "list file not text": Case(explain_source("{tmp}/binary.txt"), 2, r"binary\.txt is not UTF-8 text"),
    "missing image": Case(explain_source("{tmp}/nope.png"), 2, r"nope\.png: no such image file, folder or list"),
    "empty folder": Case(explain_source("{empty}"), 2, r"no images found in .*empty"),
    "only a broken image": Case(explain_source("{broken}"), 1, r"broken\.png: unreadable or truncated image"),
    "one broken image of two": Case(explain_source("{images}"), 3, r"1 of 2 images skipped"),
    "empty --text": Case(explain("--text", "  "), 2, r"empty --text '  '"),
    "text without tokens, --text-maps": Case(explain("--text", "\ufeff", "--text-maps"), 2,
                                             r"has no tokens after CLIP's text cleaning"),
    # --- command line: model and device
    "device cuda without a GPU": Case(explain("--device", "cuda"), 2, r"device cuda: torch sees no CUDA GPU"),
    "device that does not exist": Case(explain("--device", "gpu0"), 2, r"device 'gpu0' is not a torch device"),
    "fp16 on the CPU": Case(explain("--precision", "fp16"), 2, r"precision fp16 needs a CUDA device"),
    "not a checkpoint (text)": Case(with_option("--pretrained", "{tmp}/notckpt.pt"), 2,
                                    r"notckpt\.pt \(the weights for model .*\) is not a torch/open_clip checkpoint"),
    "not a checkpoint (a list)": Case(with_option("--pretrained", "{tmp}/list.pt"), 2,
                                      r"list\.pt .* is not a torch/open_clip checkpoint: it holds a list"),
    "checkpoint of another model": Case(with_option("--pretrained", "{tmp}/rn.pt"), 2,
                                        r"rn\.pt: a checkpoint, but its weights do not fit model"),
    "pretrained is a folder": Case(with_option("--pretrained", "{tmp}"), 2, r"is a folder: pretrained must be"),
    "missing checkpoint": Case(with_option("--pretrained", "{tmp}/gone.pt"), 2, r"not found: .*gone\.pt"),
    "unknown model": Case(with_option("--model", "ViT-B-61"), 2, r"unknown architecture 'ViT-B-61'"),
    # --- command line: option values (argparse: exit status 2)
    "image layers 0": Case(explain("--image-layers", "0"), 2, r"argument --image-layers: must be a whole number >= 1"),
    "image layers 1.5": Case(explain("--image-layers", "1.5"), 2, r"argument --image-layers: .*got '1\.5'"),
    "text layers -1": Case(explain("--text-layers", "-1"), 2, r"argument --text-layers: must be a whole number >= 1"),
    "heads bogus": Case(explain("--heads", "all"), 2, r"argument --heads: invalid choice"),
    # --- command line: toyworld
    "generate --n -3": Case(["toyworld", "generate", "--out", "{tmp}/gen", "--n", "-3", "--seed", "1"], 2,
                            r"argument --n: must be a whole number >= 0, got -3"),
    "generate --seed -1": Case(["toyworld", "generate", "--out", "{tmp}/gen", "--n", "1", "--seed", "-1"], 2,
                               r"argument --seed: must be a whole number >= 0"),
    "generate min > max objects": Case(["toyworld", "generate", "--out", "{tmp}/gen", "--n", "1", "--seed", "1",
                                        "--min-objects", "3", "--max-objects", "2"], 2,
                                       r"min_objects <= max_objects, got 3, 2"),
    "generate --out is a file": Case(["toyworld", "generate", "--out", "{tmp}/afile", "--n", "1", "--seed", "1"], 2,
                                     r"afile is a file, not a folder"),
    "train --steps 0": Case(["toyworld", "train", "--out", "{tmp}/t.pt", "--steps", "0"], 2,
                            r"argument --steps: must be a whole number >= 1, got 0"),
    "train --minutes -1": Case(["toyworld", "train", "--out", "{tmp}/t.pt", "--minutes", "-1"], 2,
                               r"argument --minutes: must be a number > 0"),
    "train --out is a folder": Case(["toyworld", "train", "--out", "{tmp}", "--steps", "1"], 2,
                                    r"--out .* is a folder; give a file name"),
    "evaluate --n-scenes 0": Case(["toyworld", "evaluate", *TOY, "--out", "{tmp}/m.json", "--n-scenes", "0"], 2,
                                  r"argument --n-scenes: must be a whole number >= 1, got 0"),
    "evaluate --out is a folder": Case(["toyworld", "evaluate", *TOY, "--out", "{tmp}"], 2,
                                       r"is a folder; give a file name"),
    "evaluate --reference unwritable": Case(["toyworld", "evaluate", *TOY, "--out", "{tmp}/m.json", "--reference",
                                             "/sys/ref.json"], 2, r"--reference /sys/ref\.json: cannot write in /sys"),
    "evaluate not a checkpoint": Case(["toyworld", "evaluate", "--checkpoint", "{tmp}/notckpt.pt", "--model",
                                       "{model}", "--out", "{tmp}/m.json"], 2, r"not a torch/open_clip checkpoint"),
    "benchmark --batch-size 0": Case(["toyworld", "benchmark", "--method", "raw-attention", *TOY, "--out",
                                      "{tmp}/b.json", "--batch-size", "0"], 2, r"argument --batch-size: must be"),
    "benchmark --threads -2": Case(["toyworld", "benchmark", "--method", "raw-attention", *TOY, "--out",
                                    "{tmp}/b.json", "--threads", "-2"], 2, r"argument --threads: must be"),
    # --- Python API: the constructor checks the layer counts
    "image_layers=0": Case(lambda ex, f: GradECLIP(ex.clip, image_layers=0), ValueError,
                           r"image_layers must be at least 1 .*got 0"),
    "image_layers='1'": Case(lambda ex, f: GradECLIP(ex.clip, image_layers="1"), TypeError,
                             r"image_layers must be a whole number of layers .*got '1' \(str\)"),
    "image_layers=1.5": Case(lambda ex, f: GradECLIP(ex.clip, image_layers=1.5), TypeError,
                             r"image_layers must be a whole number .*got 1\.5 \(float\)"),
    "image_layers=True": Case(lambda ex, f: GradECLIP(ex.clip, image_layers=True), TypeError, r"\(bool\)"),
    "text_layers=0": Case(lambda ex, f: GradECLIP(ex.clip, text_layers=0), ValueError, r"text_layers must be at least 1"),
    "text_layers='1'": Case(lambda ex, f: GradECLIP(ex.clip, text_layers="1"), TypeError, r"text_layers must be a whole"),
    "text_layers=1.5": Case(lambda ex, f: GradECLIP(ex.clip, text_layers=1.5), TypeError, r"text_layers must be a whole"),
    "image_layers beyond the depth": Case(lambda ex, f: GradECLIP(ex.clip, image_layers=100)(f["img"], "x"),
                                          UserWarning, r"image_layers=100 is more than the image tower's depth "
                                                       r"\(2 layers\): explaining all 2"),
    "text_layers beyond the depth": Case(lambda ex, f: GradECLIP(ex.clip, text_layers=100).explain_text("x", f["img"]),
                                         UserWarning, r"text_layers=100 is more than the text tower's depth \(3 layers\)"),
    # --- Python API: texts
    "empty text for a map": Case(lambda ex, f: ex(f["img"], [""]), EmptyTextError, r"text '' is empty"),
    "no texts": Case(lambda ex, f: ex.explain_texts([], f["img"]), ValueError, r"no texts given"),
    "None as the text": Case(lambda ex, f: ex.explain_text(None, f["img"]), TypeError,
                             r"the text must be a string; got NoneType"),
    "None among the texts": Case(lambda ex, f: ex(f["img"], ["a dog", None]), TypeError,
                                 r"text 1 must be a string; got NoneType"),
    "a number as the texts": Case(lambda ex, f: ex.explain_images([f["img"]], 3), TypeError,
                                  r"texts must be a string or a list of strings; got int"),
    "text embeddings of other texts": Case(
        lambda ex, f: ex.explain_images([f["img"]], ["a", "b"], text_embeddings=ex.encode_texts(["a"])), ValueError,
        r"1 text embeddings for 2 texts"),
    "one text for two images": Case(lambda ex, f: ex.explain_text_pairs("cube", [f["img"], f["img"]]), ValueError,
                                    r"1 texts but 2 images"),
    # --- Python API: images
    "a (0, 0, 3) array": Case(lambda ex, f: ex(np.zeros((0, 0, 3), np.uint8), ["x"]), ValueError,
                              r"at least one pixel; got shape \(0, 0, 3\)"),
    "a (5, 0) array": Case(lambda ex, f: ex(np.zeros((5, 0), np.uint8), ["x"]), ValueError, r"at least one pixel"),
    "a PIL image without pixels": Case(lambda ex, f: ex(Image.new("RGB", (0, 4)), ["x"]), ValueError,
                                       r"has no pixels \(size 0 x 4\)"),
    "a float array": Case(lambda ex, f: ex(np.zeros((8, 8, 3)), ["x"]), TypeError, r"must be uint8 .*float64"),
    "None as the image": Case(lambda ex, f: ex(None, ["x"]), TypeError, r"an image must be .*got NoneType"),
    "a folder as the image": Case(lambda ex, f: ex(f["tmp"], ["x"]), ImageLoadError, r"a folder, not an image file"),
    "no images to encode": Case(lambda ex, f: ex.encode_images([]), ValueError, r"no images given"),
    "not a checkpoint (API)": Case(lambda ex, f: load_clip(f["model"], str(f["tmp"] / "notckpt.pt")),
                                   ModelLoadError, r"is not a torch/open_clip checkpoint"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("bad-input")
    model, ckpt = register_tiny_checkpoint(tmp)
    _, resnet_ckpt = register_tiny_checkpoint(tmp, "resnet")
    resnet_ckpt.rename(tmp / "rn.pt")
    images = tmp / "images"
    images.mkdir()
    random_image(40, 30).save(images / "good.png")
    data = (images / "good.png").read_bytes()
    (images / "broken.png").write_bytes(data[:len(data) // 2])
    (tmp / "empty").mkdir()
    (tmp / "afile").write_text("a plain file")
    (tmp / "notckpt.pt").write_text("this is not a checkpoint")
    torch.save([1, 2, 3], tmp / "list.pt")
    (tmp / "binary.txt").write_bytes(bytes(range(128, 256)))
    return {"tmp": tmp, "model": model, "ckpt": ckpt, "img": images / "good.png", "broken": images / "broken.png",
            "images": images, "empty": tmp / "empty"}


@pytest.fixture(scope="module")
def explainer(files):
    return GradECLIP(load_clip(files["model"], str(files["ckpt"])))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, files, explainer, capsys):
    case = CASES[name]
    if isinstance(case.given, list):
        if "--device" in case.given and torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        argv = [a.format(**files) for a in case.given]
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
        err = capsys.readouterr().err
        assert code == case.expect, err
        assert "Traceback" not in err
        errors = [line for line in err.splitlines() if re.match(r"(gradeclip.*: )?error: ", line)]
        message = errors[0] if errors else err
        assert len(errors) <= 1, err  # one error line (a batch's skipped images are listed one each, then counted)
        assert re.search(case.fragment, message if errors else err), err
    elif issubclass(case.expect, Warning):
        with pytest.warns(case.expect, match=case.fragment):
            case.given(explainer, files)
    else:
        with pytest.raises(case.expect, match=case.fragment):
            case.given(explainer, files)
