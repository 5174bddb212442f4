"""Loading a CLIP through open_clip's own factory and cache: model name + pretrained tag, ``hf-hub:`` names, or a
local checkpoint file; device and precision; one clear error when the weights are not there (offline machines)."""
from __future__ import annotations

import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import open_clip
import torch

from .geometry import Preprocessing

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
PRECISIONS = ("fp32", "fp16", "bf16")


class ModelLoadError(RuntimeError):
    """The model could not be created or its weights could not be found; the message says what to do."""


@dataclass
class LoadedClip:
    """A CLIP ready to be explained: the model (eval mode), its tokenizer and its preprocessing."""

    model: torch.nn.Module
    tokenizer: Any
    preprocessing: Preprocessing
    name: str
    pretrained: Optional[str]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def register_model_configs(directory: Path = MODEL_CONFIG_DIR) -> None:
    """Make the project's own model configs (the toy CLIP) known to open_clip's factory by name."""
    if directory.is_dir():
        open_clip.add_model_config(directory)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connection to the Hugging Face hub; without it, huggingface_hub retries for over a minute
    before failing on an offline machine."""
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _offline_if_unreachable():
    """Switch huggingface_hub to its cache-only mode for the duration of a load when the hub cannot be reached,
    so that cached weights still load and missing ones fail at once."""
    if os.environ.get("HF_HUB_OFFLINE") or _hub_reachable():
        yield False
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hc  # read at import time by huggingface_hub, so set it there too
        previous = hc.HF_HUB_OFFLINE
        hc.HF_HUB_OFFLINE = True
    except (ImportError, AttributeError):  # pragma: no cover - older huggingface_hub
        hc, previous = None, None
    try:
        yield True
    finally:
        os.environ.pop("HF_HUB_OFFLINE", None)
        if hc is not None:
            hc.HF_HUB_OFFLINE = previous


def _cache_location(cache_dir: Optional[str]) -> str:
    if cache_dir:
        return str(cache_dir)
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
        return str(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def load_clip(name: str, pretrained: Optional[str] = None, *, device: str | torch.device = "cpu",
              precision: str = "fp32", cache_dir: Optional[str] = None) -> LoadedClip:
    """Create an open_clip CLIP in eval mode.

    name: an open_clip architecture (``ViT-B-16``, ``RN50``, the toy ``gradeclip-toy-ViT``...) or ``hf-hub:org/repo``.
    pretrained: an open_clip tag (``openai``, ``laion2b_s34b_b88k``...), a local checkpoint file, or None for random
    weights. Raises ``ModelLoadError`` with one actionable message (never a hub traceback) when it fails.
    """
    register_model_configs()
    if precision not in PRECISIONS:
        raise ModelLoadError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    device = torch.device(device)
    if precision != "fp32" and device.type != "cuda":
        raise ModelLoadError(f"precision {precision} needs a CUDA device (got {device}); use fp32 on the CPU")
    if pretrained and Path(pretrained).suffix in (".pt", ".pth", ".bin", ".safetensors") \
            and not Path(pretrained).is_file():
        raise ModelLoadError(f"checkpoint file for model {name!r} not found: {pretrained}")
    what = f"model {name!r}" + (f" with pretrained weights {pretrained!r}" if pretrained else "")
    offline = False
    try:
        with _offline_if_unreachable() as offline:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=device, precision=precision, cache_dir=cache_dir)
            tokenizer = open_clip.get_tokenizer(name, cache_dir=cache_dir)
    except Exception as err:  # open_clip/hub raise RuntimeError, OSError, HTTP errors...: one message for all
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        known = name.startswith("hf-hub:") or name in open_clip.list_models()
        hint = ("" if known else f" Unknown architecture; see open_clip.list_models() "
                                 f"(e.g. ViT-B-16, RN50).")
        if known and pretrained and not Path(pretrained).exists():
            tags = open_clip.list_pretrained_tags_by_model(name) if not name.startswith("hf-hub:") else []
            if tags and pretrained not in tags:
                hint = f" Known tags for {name}: {', '.join(tags)}."
        offline_note = (" The Hugging Face hub could not be reached from this machine, so only the local cache "
                        "was searched." if offline else "")
        raise ModelLoadError(
            f"could not load {what}: {first_line}.{hint}{offline_note} Looked in the cache at "
            f"{_cache_location(cache_dir)}. To use it offline, download the weights once on a machine with "
            f"internet (same cache dir), or pass a local checkpoint file as pretrained "
            f"(--pretrained /path/to/checkpoint.pt).") from None
    model.eval()
    cfg = open_clip.get_model_preprocess_cfg(model)
    logging.getLogger(__name__).debug("loaded %s (%s) on %s", name, pretrained, device)
    return LoadedClip(model, tokenizer, Preprocessing.from_open_clip(cfg), name, pretrained)
