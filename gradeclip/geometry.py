"""Input geometry: from an image to the model's pixels, and from a patch-grid map back to the image's pixels.

Two modes:
- ``standard``: the model's own evaluation preprocessing (open_clip: resize the shortest side, center crop; or
  "squash"), reproduced here so that we also know *where* the crop came from;
- ``keep-aspect``: the official Grad-ECLIP preprocessing for maps (the authors' notebook grad_eclip_image.ipynb,
  github Cyang-Zhao/Grad-Eclip): each side resized to the nearest multiple of the patch size, no crop (the
  positional embeddings are resized in ``adapters``).

In both, a ``Registration`` records which rectangle of the original image the model's input covers, so a grid map
is put back on the original pixels (a center crop maps back to where it came from; outside it the map is 0) by
``gradeclip.upsampling``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from .upsampling import Registration  # the way back (grid map -> image pixels) is numpy only: gradeclip.upsampling

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Preprocessing:
    """What the model expects: input size (h, w), normalisation, interpolation and open_clip's resize mode."""

    size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"

    @classmethod
    def from_open_clip(cls, cfg: dict) -> "Preprocessing":
        size = cfg.get("size", 224)
        size = (size, size) if isinstance(size, int) else tuple(size)
        mode = cfg.get("resize_mode", "shortest")
        if mode not in ("shortest", "squash"):
            raise ValueError(f"resize_mode {mode!r} is not supported (use 'shortest' or 'squash', or keep_aspect)")
        return cls(size=size, mean=tuple(cfg.get("mean", OPENAI_MEAN)), std=tuple(cfg.get("std", OPENAI_STD)),
                   interpolation=cfg.get("interpolation", "bicubic"), resize_mode=mode)


def _interp(name: str) -> InterpolationMode:
    # "random" is accepted by open_clip and means bicubic at evaluation time
    return {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR,
            "nearest": InterpolationMode.NEAREST, "random": InterpolationMode.BICUBIC}[name]


def _normalise(img: Image.Image, prep: Preprocessing) -> torch.Tensor:
    return TF.normalize(TF.to_tensor(img), prep.mean, prep.std)


def standard_input(img: Image.Image, prep: Preprocessing) -> tuple[torch.Tensor, Registration]:
    """The model's evaluation preprocessing (identical pixels to open_clip's ``image_transform``) and the
    rectangle of the original image that the crop covers."""
    w, h = img.size
    th, tw = prep.size
    if prep.resize_mode == "squash":
        out = TF.resize(img, [th, tw], interpolation=_interp(prep.interpolation))
        return _normalise(out, prep), Registration((w, h), (0.0, 0.0, float(w), float(h)))
    if th == tw:
        # torchvision's Resize(int): shortest side to `th`, the other as int(th * long / short)
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(th * long / short)
        nw, nh = (th, new_long) if w <= h else (new_long, th)
    else:
        # open_clip's ResizeKeepRatio for non-square targets: scale so both sides cover the target. Same arithmetic
        # as open_clip (divide by min(h/th, w/tw)); multiplying by max(th/h, tw/w) instead rounds differently at
        # .5 ties (e.g. 10x25 -> (200, 201): 502.49999 vs 502.50001) and gives a different resize.
        ratio = min(h / th, w / tw)
        nw, nh = round(w / ratio), round(h / ratio)
    # open_clip builds ResizeKeepRatio(size) for non-square targets without passing its interpolation, so that
    # resize is always bicubic; Resize(int) for square targets uses the configured one.
    interp = _interp(prep.interpolation) if th == tw else InterpolationMode.BICUBIC
    out = TF.resize(img, [nh, nw], interpolation=interp)
    top, left = int(round((nh - th) / 2.0)), int(round((nw - tw) / 2.0))
    out = TF.crop(out, top, left, th, tw)
    sx, sy = nw / w, nh / h
    box = (left / sx, top / sy, (left + tw) / sx, (top + th) / sy)
    return _normalise(out, prep), Registration((w, h), box)


def keep_aspect_size(width: int, height: int, patch: Sequence[int], max_short_side: int | None = 640,
                     max_tokens: int | None = 4096) -> tuple[int, int]:
    """(width, height) for keep-aspect input: each side rounded to the nearest multiple of the patch size
    (``int(x / P + 0.5) * P``, at least one patch), after scaling the short side down to ``max_short_side`` as the
    official code does for large images; ``max_tokens`` further bounds the number of patches (memory)."""
    ph, pw = patch
    scale = 1.0
    if max_short_side and min(width, height) > max_short_side:
        scale = max_short_side / min(width, height)
    if max_tokens:
        tokens = (width * scale / pw) * (height * scale / ph)
        if tokens > max_tokens:
            scale *= (max_tokens / tokens) ** 0.5
    new_w = max(pw, int(width * scale / pw + 0.5) * pw)
    new_h = max(ph, int(height * scale / ph + 0.5) * ph)
    return new_w, new_h


def keep_aspect_input(img: Image.Image, prep: Preprocessing, patch: Sequence[int], max_short_side: int | None = 640,
                      max_tokens: int | None = 4096) -> tuple[torch.Tensor, Registration]:
    w, h = img.size
    nw, nh = keep_aspect_size(w, h, patch, max_short_side, max_tokens)
    out = TF.resize(img, [nh, nw], interpolation=InterpolationMode.BICUBIC)
    return _normalise(out, prep), Registration((w, h), (0.0, 0.0, float(w), float(h)))
