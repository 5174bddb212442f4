"""Model loading: a local checkpoint under a registered config reproduces the original model's maps exactly; missing
weights, missing files, unknown names and unsupported precisions fail fast with one clear ModelLoadError."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gradeclip.explainer import GradECLIP
from gradeclip.models import ModelLoadError, load_clip, register_model_configs
from tests.conftest import TINY_TEXT, random_image, tiny_clip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY_VISION = {
    "vit": dict(layers=2, width=32, head_width=8, image_size=32, patch_size=8),
    "resnet": dict(layers=[1, 1, 1, 1], width=8, image_size=64, head_width=64),
}


def register_tiny_checkpoint(directory: Path, kind: str = "vit", seed: int = 0) -> tuple[str, Path]:
    """Write the config of ``tiny_clip(kind)`` as an open_clip model config and its weights as a checkpoint in
    ``directory``; register the config. Returns (model name, checkpoint path)."""
    name = f"gradeclip-test-tiny-{kind}"
    config = {"embed_dim": 24, "vision_cfg": TINY_VISION[kind], "text_cfg": TINY_TEXT}
    (directory / f"{name}.json").write_text(json.dumps(config))
    register_model_configs(directory)
    checkpoint = directory / f"{name}-seed{seed}.pt"
    torch.save(tiny_clip(kind, seed=seed).model.state_dict(), checkpoint)
    return name, checkpoint


def _explain(ex: GradECLIP, image, texts):
    maps = ex(image, texts)
    words = ex.explain_texts(texts, image)
    return maps, words


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_local_checkpoint_round_trip_gives_identical_maps(kind, tmp_path):
    name, checkpoint = register_tiny_checkpoint(tmp_path, kind)
    original = tiny_clip(kind)
    loaded = load_clip(name, str(checkpoint))
    assert loaded.name == name and loaded.pretrained == str(checkpoint)
    assert loaded.preprocessing == original.preprocessing
    assert not loaded.model.training
    image, texts = random_image(50, 37, seed=4), ["a dog on grass", "a red cube, 2024!"]
    for keep_aspect in (False, True) if kind == "vit" else (False,):
        (maps_a, words_a) = _explain(GradECLIP(original, keep_aspect=keep_aspect), image, texts)
        (maps_b, words_b) = _explain(GradECLIP(loaded, keep_aspect=keep_aspect), image, texts)
        assert all(m.grid.any() for m in maps_a) and all(w.word_scores.any() for w in words_a)  # not trivially equal
        for a, b in zip(maps_a, maps_b):
            np.testing.assert_array_equal(a.grid, b.grid)
            np.testing.assert_array_equal(a.heatmap, b.heatmap)
            assert a.score == b.score and a.model_score == b.model_score
        for a, b in zip(words_a, words_b):
            np.testing.assert_array_equal(a.word_scores, b.word_scores)
            assert a.words == b.words
    # the comparison can fail: other weights under the same config give other maps
    other = load_clip(name, str(register_tiny_checkpoint(tmp_path, kind, seed=1)[1]))
    a, b = GradECLIP(original)(image, texts)[0], GradECLIP(other)(image, texts)[0]
    assert a.score != b.score


def test_offline_missing_weights_fail_fast_with_a_clear_message(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 set after huggingface_hub was imported (as conftest does) must still mean offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as err:
        load_clip("ViT-B-16", "openai", cache_dir=str(cache))
    elapsed = time.monotonic() - start
    message = str(err.value)
    assert elapsed < 30, f"took {elapsed:.0f} s"
    assert "'ViT-B-16'" in message and "'openai'" in message and str(cache) in message
    assert "HF_HUB_OFFLINE" in message and "--pretrained" in message
    assert "Traceback" not in message and 'File "' not in message and ".." not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_offline_switch_is_restored(tmp_path, monkeypatch):
    """The loader leaves huggingface_hub's offline switch and the environment as it found them."""
    import huggingface_hub.constants as hc
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "yes")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE is set"):
        load_clip("ViT-B-16", "openai", cache_dir=str(tmp_path))
    assert hc.HF_HUB_OFFLINE is False
    assert os.environ["HF_HUB_OFFLINE"] == "yes"


def test_missing_local_checkpoint_file(tmp_path):
    missing = tmp_path / "weights" / "model.pt"
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as err:
        load_clip("ViT-B-16", str(missing))
    assert time.monotonic() - start < 5
    assert str(missing) in str(err.value) and "'ViT-B-16'" in str(err.value) and "not found" in str(err.value)


def test_corrupt_local_checkpoint_file(tmp_path):
    name, _ = register_tiny_checkpoint(tmp_path)
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError) as err:
        load_clip(name, str(bad))
    assert str(bad) in str(err.value) and name in str(err.value)
    assert "not a torch/open_clip checkpoint" in str(err.value) and "Hugging Face" not in str(err.value)
    assert "Traceback" not in str(err.value)


@pytest.mark.parametrize("name", ["ViT-B-61", "not-a-model"])
def test_unknown_model_name(name):
    with pytest.raises(ModelLoadError) as err:
        load_clip(name, None)
    message = str(err.value)
    assert repr(name) in message and "unknown architecture" in message and "list_models" in message
    assert len(message) < 400  # not open_clip's list of every architecture
    assert "cache" not in message  # no download advice for a name that does not exist
    if name == "ViT-B-61":
        assert "ViT-B-16" in message  # closest names


def test_unknown_tag_lists_the_known_ones(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        load_clip("ViT-B-16", "no_such_tag", cache_dir=str(tmp_path))
    assert "'no_such_tag'" in str(err.value) and "openai" in str(err.value)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_on_cpu_is_refused(precision):
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match=f"{precision}.*CUDA.*fp32"):
        load_clip("ViT-B-16", None, precision=precision)
    assert time.monotonic() - start < 5  # refused before building anything
    with pytest.raises(ModelLoadError, match="precision must be one of"):
        load_clip("ViT-B-16", None, precision="fp8")


def test_devices_are_checked_against_what_torch_sees(monkeypatch):
    """`--device cuda` without a GPU, an index beyond the GPUs there are, or a misspelt device: one ModelLoadError
    naming it before anything is loaded; devices that exist pass (a one-GPU machine simulated here)."""
    from gradeclip.models import checked_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="device cuda: torch sees no CUDA GPU .*use --device cpu"):
        checked_device("cuda")
    with pytest.raises(ModelLoadError, match="'gpu0' is not a torch device"):
        checked_device("gpu0")
    assert checked_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert checked_device("cuda") == torch.device("cuda") and checked_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ModelLoadError, match=r"device cuda:1: torch sees 1 CUDA GPU here \(cuda:0\)"):
        checked_device("cuda:1")


def test_explainer_from_a_workflow_config(tmp_path):
    """GradECLIP.from_config takes the schema's model and method sections as they are and builds the explainer
    they describe; a key the schema does not know, or one it requires that is missing, is named."""
    import yaml

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow" / "schemas" /
                             "config.schema.yaml").read_text())["properties"]
    assert set(GradECLIP.MODEL_KEYS) == set(schema["model"]["properties"]) == set(schema["model"]["required"])
    assert set(GradECLIP.METHOD_KEYS) == set(schema["method"]["properties"]) == set(schema["method"]["required"])
    name, checkpoint = register_tiny_checkpoint(tmp_path, "vit")
    model = {"name": name, "pretrained": str(checkpoint), "device": "cpu", "precision": "fp32"}
    method = {"heads": "multi", "spatial": "none", "image_layers": 2, "text_layers": 1, "keep_aspect": True}
    ex = GradECLIP.from_config(model, method)
    assert (ex.heads, ex.spatial, ex.image_layers, ex.text_layers, ex.keep_aspect) == ("multi", "none", 2, 1, True)
    image = random_image(40, 24, seed=2)
    direct = GradECLIP(load_clip(name, str(checkpoint)), heads="multi", spatial="none", image_layers=2,
                       text_layers=1, keep_aspect=True)
    np.testing.assert_array_equal(ex(image, "a cube")[0].grid, direct(image, "a cube")[0].grid)
    with pytest.raises(ValueError, match=r"'method': unknown key\(s\) \['head'\]; missing key\(s\) \['heads'\]"):
        GradECLIP.from_config(model, {**{k: v for k, v in method.items() if k != "heads"}, "head": "single"})
