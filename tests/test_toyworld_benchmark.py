"""The toy world as a benchmark for any explanation method: `benchmark_explanations` and `gradeclip toyworld
benchmark` score a method's maps exactly as the model card scores Grad-ECLIP."""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradeclip import baselines
from gradeclip.explainer import GradECLIP
from gradeclip.models import load_clip
from gradeclip.toyworld import evaluate as ev
from gradeclip.toyworld.cli import add_toyworld_commands
from gradeclip.toyworld.train import MODEL_NAME

CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "toy_clip" / "gradeclip-toy-ViT.pt"
TEST_SEED = ev.SPLIT_SEEDS["test"][1]
N = 24


@pytest.fixture(scope="module")
def toy_clip():
    return load_clip(MODEL_NAME, str(CHECKPOINT))


@pytest.fixture(scope="module")
def samples(toy_clip):
    return ev.localisation_samples(N, ev.model_input_size(toy_clip), TEST_SEED)


def mask_method(samples, pick):
    """An oracle that knows the scenes: for each scene in order, the pixel mask of the object ``pick(sample)``
    (one map per pixel of the 96-px input). It checks that it is handed the scenes' texts in the scenes' order."""
    position = 0

    def explain(clip, pixels, texts):
        nonlocal position
        batch = samples[position:position + len(texts)]
        assert list(texts) == [s.text for s in batch] and pixels.shape[0] == len(texts)
        position += len(texts)
        return np.stack([s.scene.object_masks()[pick(s)].astype(np.float32) for s in batch])

    return explain


def test_benchmark_reproduces_the_model_cards_scores(toy_clip):
    """Grad-ECLIP, the raw attention and the gradient baselines through the benchmark score what
    localisation_metrics (the model card's command) scores on the same scenes, overall and by group, with another
    batch size."""
    card = ev.localisation_metrics(toy_clip, N, seed=TEST_SEED)
    for method, heads, key in (("grad-eclip", "single", "grad_eclip"), ("grad-eclip-multi", "multi", "grad_eclip"),
                               ("raw-attention", "single", "raw_attention"),
                               ("input-gradient", "single", "input_gradient"),
                               ("gradient-x-input", "multi", "gradient_x_input")):
        result = ev.benchmark_explanations(baselines.METHODS[method], toy_clip, n_scenes=N, batch_size=10)
        expected = card[heads][key]
        assert result["n_scored"] == result["n_scenes"] == N and result["failed"] == []
        assert result["map"]["pointing"] == expected["pointing"]
        assert result["map"]["pointing_outcomes"] == expected["pointing_outcomes"]
        assert result["map"]["energy_share"]["value"] == pytest.approx(expected["energy_share"]["value"], abs=1e-6)
        if key == "grad_eclip":
            assert ({g: s["pointing"] for g, s in result["by_named_object"].items()}
                    == {g: s["pointing"] for g, s in card[heads]["grad_eclip_by_named_object"].items()})
            assert result["by_scene"].keys() == card[heads]["grad_eclip_by_scene"].keys()
        assert result["uniform"] == card[heads]["uniform"]


def test_benchmark_known_answers(toy_clip, samples):
    named = ev.benchmark_explanations(mask_method(samples, lambda s: s.object_index), toy_clip, n_scenes=N,
                                      batch_size=7)
    assert named["map"]["pointing"]["value"] == 1.0
    assert named["map"]["energy_share"]["value"] == pytest.approx(1.0)

    other = ev.benchmark_explanations(mask_method(samples, lambda s: (s.object_index + 1) % len(s.scene.objects)),
                                      toy_clip, n_scenes=N)
    assert other["map"]["pointing"]["value"] == 0.0
    assert other["map"]["pointing_outcomes"]["other_object"] == 1.0
    assert other["map"]["energy_share"]["value"] == pytest.approx(0.0)

    # a constant map never points (a miss by definition), and its energy share is the named object's share of the
    # objects' area: exactly the uniform map's expected value
    constant = ev.benchmark_explanations(lambda clip, pixels, texts: torch.ones(len(texts), 12, 12), toy_clip,
                                         n_scenes=N)
    assert constant["map"]["pointing_outcomes"]["constant"] == 1.0
    assert constant["map"]["energy_share"]["value"] == pytest.approx(constant["uniform"]["energy_share"]["value"],
                                                                     rel=1e-5)
    # the groups partition the scenes
    for groups in ("by_named_object", "by_scene"):
        colours = [g for g in constant[groups] if g.startswith(("color_", "objects_"))]
        assert sum(constant[groups][g]["n"] for g in colours) == N


def test_benchmark_scores_the_rest_when_a_map_is_not_finite(toy_clip, samples):
    bad = {3, 11}

    def explain(clip, pixels, texts, calls=[0]):
        maps = np.ones((len(texts), 12, 12))
        for i in range(len(texts)):
            if calls[0] + i in bad:
                maps[i, 0, 0] = np.nan
        calls[0] += len(texts)
        return maps

    result = ev.benchmark_explanations(explain, toy_clip, n_scenes=N, batch_size=8, name="half-broken")
    assert result["method"] == "half-broken" and result["n_scored"] == N - len(bad)
    assert [(f["scene"], f["text"]) for f in result["failed"]] == [(i, samples[i].text) for i in sorted(bad)]
    kept = [s for i, s in enumerate(samples) if i not in bad]
    assert result["uniform"] == ev.uniform_baseline(kept)


@pytest.mark.parametrize("shape", [(5, 12, 12), (8, 144)])
def test_benchmark_names_a_method_returning_the_wrong_shape(toy_clip, shape):
    with pytest.raises(ValueError, match=rf"wrong-shape returned maps of shape \({shape[0]}, .*scenes 0\.\.7"):
        ev.benchmark_explanations(lambda clip, pixels, texts: np.zeros(shape), toy_clip, n_scenes=8, batch_size=8,
                                  name="wrong-shape")
    with pytest.raises(ValueError, match="unknown split"):
        ev.benchmark_explanations(baselines.METHODS["raw-attention"], toy_clip, n_scenes=1, split="train")


def test_gradient_baselines_differentiate_each_images_own_score(toy_clip, samples):
    """``score_gradient`` (behind the input-gradient and gradient-x-input baselines) against central finite
    differences of an independently computed float64 score, along random directions; each image's gradient is its
    own score's alone (the same when computed on its own)."""
    clip64 = dataclasses.replace(toy_clip, model=copy.deepcopy(toy_clip.model).double())
    batch = samples[:3]
    texts = [s.text for s in batch]
    pixels = ev.scene_inputs(toy_clip, [s.scene for s in batch])[0].double()
    text_embeddings = GradECLIP(clip64).encode_texts(texts)
    gradient = baselines.score_gradient(clip64, pixels, text_embeddings)
    assert gradient.shape == pixels.shape and gradient.dtype == torch.float64

    with torch.no_grad():
        text = F.normalize(clip64.model.encode_text(toy_clip.tokenizer(texts)), dim=-1)

        def scores(images):
            return (F.normalize(clip64.model.encode_image(images), dim=-1) * text).sum(-1)

        generator = torch.Generator().manual_seed(0)
        for _ in range(2):
            direction = torch.randn(pixels.shape, generator=generator, dtype=torch.float64)
            eps = 1e-4
            numeric = (scores(pixels + eps * direction) - scores(pixels - eps * direction)) / (2 * eps)
            analytic = (gradient * direction).sum(dim=(1, 2, 3))
            assert numeric.abs().min() > 1e-3  # a real change to compare, not rounding noise
            torch.testing.assert_close(analytic, numeric, rtol=1e-4, atol=1e-7)

    alone = torch.cat([baselines.score_gradient(clip64, pixels[i:i + 1], text_embeddings[i:i + 1])
                       for i in range(len(batch))])
    torch.testing.assert_close(alone, gradient, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(baselines.input_gradient(clip64, pixels, texts), gradient.abs().amax(dim=1))
    torch.testing.assert_close(baselines.gradient_x_input(clip64, pixels, texts),
                               (gradient * pixels).sum(dim=1).clamp(min=0))
    assert not any(p.grad is not None for p in clip64.model.parameters())


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gradeclip")
    add_toyworld_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["toyworld", "benchmark", *argv])
    return args.func(args)


def test_cli_benchmarks_a_function_from_a_module(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_saliency.py").write_text(textwrap.dedent("""
        import torch

        def centre(clip, pixels, texts):
            grid = torch.zeros(len(texts), 12, 12)
            grid[:, 5:7, 5:7] = 1.0
            return grid
        """))
    # as a user runs it: the module in the working directory, which the console script does not put on sys.path
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    out = tmp_path / "centre.json"
    assert run_cli("--method", "my_saliency:centre", "--checkpoint", str(CHECKPOINT), "--out", str(out),
                   "--n-scenes", "6", "--split", "validation") == 0
    result = json.loads(out.read_text())
    assert result["method"] == "my_saliency:centre" and result["split"] == "validation" and result["n_scored"] == 6
    assert result["seed"] == ev.SPLIT_SEEDS["validation"][1]
    assert "6 of 6 scenes scored" in capsys.readouterr().out


@pytest.mark.parametrize("method, message", [("no_colon", "expected one of"),
                                             ("no_such_module_xyz:f", "no_such_module_xyz"),
                                             ("json:no_such_function", "no_such_function"),
                                             ("json:__doc__", "not callable")])
def test_cli_names_a_bad_method(tmp_path, capsys, method, message):
    assert run_cli("--method", method, "--checkpoint", str(CHECKPOINT), "--out", str(tmp_path / "x.json")) == 2
    err = capsys.readouterr().err
    assert method in err and message in err
    assert not (tmp_path / "x.json").exists()
