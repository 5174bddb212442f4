"""Shared fixtures: small randomly initialised open_clip CLIPs built from configs (no weights are downloaded)."""
from __future__ import annotations

import os

import numpy as np
import open_clip
import pytest
import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from PIL import Image

from gradeclip.geometry import Preprocessing
from gradeclip.models import LoadedClip

# Tests never reach the network: model loading must use local files or fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_TEXT = dict(context_length=77, vocab_size=49408, width=32, heads=4, layers=3)


def tiny_clip(kind: str = "vit", seed: int = 0, dtype=torch.float32, **vision) -> LoadedClip:
    """A tiny CLIP with the real tokenizer: ViT (image 32, patch 8, 2 layers), ViT with open_clip's own Attention
    ("custom" blocks), or ModifiedResNet (image 64); ``vision`` overrides fields of the vision config."""
    torch.manual_seed(seed)
    if kind == "resnet":
        vcfg = CLIPVisionCfg(layers=[1, 1, 1, 1], width=8, image_size=64, head_width=64, **vision)
        size = 64
    else:
        vcfg = CLIPVisionCfg(**{**dict(layers=2, width=32, head_width=8, image_size=32, patch_size=8,
                                       block_type="custom" if kind == "custom" else None), **vision})
        size = 32
    model = CLIP(embed_dim=24, vision_cfg=vcfg, text_cfg=CLIPTextCfg(**TINY_TEXT)).eval().to(dtype)
    # random init leaves LayerNorm at identity and many biases at 0; perturb everything so no formula is trivially
    # satisfied by symmetric weights
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return LoadedClip(model, open_clip.get_tokenizer("ViT-B-16"), Preprocessing(size=(size, size)), f"tiny-{kind}",
                      None)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``): tiny models
    run far faster on one thread than on a thread pool competing for a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def vit():
    return tiny_clip("vit")


@pytest.fixture(scope="session")
def resnet():
    return tiny_clip("resnet")


@pytest.fixture(scope="session")
def custom_vit():
    return tiny_clip("custom")


def random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
