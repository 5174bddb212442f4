"""Every explanation method of CLIP's image side other than Grad-ECLIP's formulas, one function each, and the
registry of all methods (Grad-ECLIP's included) by name.

A method is a function ``(clip, pixels, texts) -> maps``: ``pixels`` (B, 3, H, W) are B images as the model's
preprocessing gives them, ``texts`` B strings, and map b (a tensor (B, h, w)) says where image b matches text b,
larger = more important, on a grid laid over the input (the patch grid, or H x W pixels for RISE and the pixel
gradients). Batches hold independent images: map b does not depend on the other images of the batch. Keyword
options (``rise(..., n_masks=500)``) have the defaults of the code each docstring names. This is the interface of
the toy-world benchmark (``gradeclip toyworld benchmark --method NAME``) and of ``gradeclip explain --method NAME``.

q/k/v, tokens and the blocks' own sub-modules are read through ``adapters`` (nothing is monkey-patched), so every
method runs on any open_clip CLIP that ``adapters.ImageTower`` reads; a method that its authors define for ViTs only
raises ``UnsupportedModelError`` naming the method and the architecture on a ResNet.

Maps are returned as the method's own code returns them: min-max normalised per map where that code normalises
(CLIP Surgery, M2IB, LeGrad) or where the map is a signed similarity (MaskCLIP, RISE: normalised as the Grad-ECLIP
repository normalises every map before its evaluation), raw otherwise. The benchmark scores them as returned.

Authors' code followed (read, never copied into this repository; commits as fetched):
- Cyang-Zhao/Grad-Eclip @ 5c1b5cc (``generate_emap.py``): the paper's versions of raw attention, Grad-CAM, RISE;
- hila-chefer/Transformer-MM-Explainability @ 58eaea8 (``CLIP_explainability.ipynb``): GAME, rollout;
- xmed-lab/CLIP_Surgery @ d4696d4 (``clip/clip_surgery_model.py``, ``clip/clip.py``, ``demo.py``);
- YingWANGG/M2IB @ ce4d7a0 (``scripts/iba.py``, ``scripts/methods.py``, ``scripts/clip_wrapper.py``);
- WalBouss/LeGrad @ a9edb03 (``legrad/wrapper.py``);
- eclique/RISE @ d91ea00 (``explanations.py``);
- MaskCLIP: chongzhou/MaskCLIP could not be fetched here; its fork volgachen/MaskCLIP @ 3e9f6db
  (``mmseg/models/backbones/vit.py``, ``mmseg/models/decode_heads/maskclip_head.py``).
"""
from __future__ import annotations

import inspect
import math
import pkgutil
import sys
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import method, metrics
from .adapters import AttentionWeights, ImageTower, UnsupportedModelError
from .explainer import GradECLIP, ImageExplanation
from .models import LoadedClip

Tensor = torch.Tensor

# explain(clip, pixels, texts) -> maps (B, h, w), numpy or torch; see the module docstring.
ExplainFunction = Callable[[LoadedClip, Tensor, Sequence[str]], "np.ndarray | Tensor"]


class MethodNotAvailableError(ValueError):
    """A registered method that cannot be computed (its definition is not available); the message says why."""


# ---------------------------------------------------------------------------------------------------------------
# Shared steps
# ---------------------------------------------------------------------------------------------------------------
def image_tower(clip: LoadedClip) -> ImageTower:
    return ImageTower(clip.model.visual)


def text_embeddings(clip: LoadedClip, texts: Sequence[str]) -> Tensor:
    """L2-normalised embeddings (B, E) of the texts by the model's own text encoder."""
    return GradECLIP(clip).encode_texts(texts)


# The methods that their authors define for ViT image towers only, and why; on a ResNet they raise
# UnsupportedModelError naming the method and the architecture.
VIT_ONLY = {
    "rollout": "it multiplies the attention of a stack of transformer blocks; a ResNet has one attention layer",
    "game": "its relevance runs through the attention of transformer blocks (Chefer et al.'s CLIP code reads the "
            "ViT's blocks)",
    "m2ib": "its bottleneck sits between transformer blocks (the official wrapper reads the ViT's blocks)",
    "legrad": "it reads the attention of each transformer block (the official code covers ViTs and attention-"
              "pooling heads)",
}


def _require_vit(tower: ImageTower, name: str) -> None:
    if tower.kind != "vit":
        raise UnsupportedModelError(
            f"{name} is defined for ViT image towers only ({VIT_ONLY[name]}); this model's image tower is a ResNet "
            f"(open_clip ModifiedResNet). Methods that run on a ResNet CLIP: {', '.join(RESNET_METHODS)}")


@torch.no_grad()
def tokens_before(tower: ImageTower, pixels: Tensor, index: int) -> Tensor:
    """The tokens entering layer ``index`` of the image tower (0: the embedded input; len(layers): the output of
    the last layer), (N, T, D), through the model's own blocks."""
    x = tower.embed(pixels)
    for layer in tower.layers[:index]:
        x = layer.module(x)
    return x


def _spatial(tower: ImageTower, pixels: Tensor, rows: Tensor) -> Tensor:
    """(N, T) values of every token -> (N, h, w) over the patches (the class / mean token dropped)."""
    return rows[:, 1:].reshape(len(rows), *tower.grid_of(pixels))


def attention_forward(layers, x: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Run ``layers`` on tokens ``x`` (N, T, D) with the model's own multi-head attention over all rows, and return
    each layer's softmax attention (N, heads, T, T) and output tokens, in the autograd graph when ``x`` is."""
    n, t, _ = x.shape
    rows = torch.arange(t, device=x.device).expand(n, t)
    out = []
    for layer in layers:
        q, k, v = layer.attention.qkv(layer.pre(x))
        o, attention = layer.attention.model_attention(q, k, v, rows, None)
        x = layer.post(x, o)
        out.append((attention, x))
    return out


def model_image_embeddings(clip: LoadedClip, pixels: Tensor, tower: Optional[ImageTower] = None) -> Tensor:
    """The unmodified model's image embeddings (N, E) of preprocessed pixels, unnormalised and differentiable: the
    model's own ``encode_image`` at its input size, the same blocks through ``adapters`` (positional embeddings
    resized) at any other size (keep-aspect inputs)."""
    tower = tower or image_tower(clip)
    pixels = pixels.to(clip.device, tower.dtype)
    if tower.grid_of(pixels) == tuple(tower.native_grid):
        return clip.model.encode_image(pixels)
    return tower_image_embeddings(tower, pixels)


def tower_image_embeddings(tower: ImageTower, pixels: Tensor) -> Tensor:
    """The model's image embeddings through ``adapters`` at any input size: the blocks but the last as the model
    runs them, the last one's query row with the model's own attention (``method.recomputed_forward``)."""
    x = tower.embed(pixels)
    for layer in tower.layers[:-1]:
        x = layer.module(x)
    pooled, _ = method.recomputed_forward(tower.layers[-1:], x, tower.query_rows(x), heads="multi", spatial="none")
    return tower.finish(pooled)


def _cosine_rows(features: Tensor, texts: Tensor) -> Tensor:
    """Cosine of each row of features (B, ..., E) with its own image's text embedding texts (B, E): (B, ...)."""
    features = F.normalize(features.float(), dim=-1)
    texts = F.normalize(texts.float().to(features.device), dim=-1)
    return torch.einsum("b...e,be->b...", features, texts)


# ---------------------------------------------------------------------------------------------------------------
# Grad-ECLIP (the formulas are in method.py)
# ---------------------------------------------------------------------------------------------------------------
def own_text_maps(explainer: GradECLIP, pixels: Tensor, text_embeddings: Tensor) -> tuple[Tensor, Tensor]:
    """Image i explained against text i: the Grad-ECLIP grids (N, h, w) and |recomputed score - model score| (N,).
    Computed as every image against every text of the batch (one forward, one backward), read off the diagonal."""
    maps = explainer.explain_pixels(pixels, text_embeddings)
    diagonal = torch.arange(len(pixels))
    own = (diagonal, diagonal)
    return maps.grids[own], (maps.scores[own] - maps.model_scores[own]).abs()


def grad_eclip(clip: LoadedClip, pixels: Tensor, texts: Sequence[str], heads: str = "single",
               spatial: str = "loosened") -> Tensor:
    """Grad-ECLIP (``method.py``), last image layer; ``heads="single"`` is the paper's recomputation."""
    explainer = GradECLIP(clip, heads=heads, spatial=spatial)
    return own_text_maps(explainer, pixels, explainer.encode_texts(texts))[0]


def grad_eclip_multi(clip: LoadedClip, pixels: Tensor, texts: Sequence[str], spatial: str = "loosened") -> Tensor:
    """Grad-ECLIP with the model's own attention heads (the paper's section IV-C3 ablation)."""
    return grad_eclip(clip, pixels, texts, heads="multi", spatial=spatial)


# ---------------------------------------------------------------------------------------------------------------
# Attention maps
# ---------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def raw_attention(clip: LoadedClip, pixels: Tensor, texts: Sequence[str], heads: str = "multi") -> Tensor:
    """Raw attention: the class token's softmax attention row over the patches in the last block (ViT), or the
    mean token's in the attention pool (ResNet); the same map for every text. ``heads="multi"``: the model's own
    heads, averaged. ``heads="single"``: one head over all D channels, softmax(q k^T D^-0.5), the row that the
    Grad-ECLIP repository (``generate_emap.py``, ``clip_encode_dense`` -> ``attn[0, :1, 1:]``) uses as its raw
    attention baseline, i.e. Grad-ECLIP's single-head recomputation."""
    if heads not in method.HEADS:
        raise ValueError(f"heads must be one of {method.HEADS}, got {heads!r}")
    tower = image_tower(clip)
    x = tokens_before(tower, pixels.to(clip.device), len(tower.layers) - 1)
    last = tower.layers[-1]
    q, k, v = last.attention.qkv(last.pre(x))
    query = tower.query_rows(x)[:, None]
    if heads == "multi":
        _, attention = last.attention.model_attention(q[:, :1], k, v, query, None)  # (N, heads, 1, T)
        row = attention.float().mean(dim=1)[:, 0]
    else:
        _, attention = method.single_head_attention(q[:, :1], k, v, None)  # (N, 1, 1, T)
        row = attention.float()[:, 0, 0]
    return _spatial(tower, pixels, row)


def raw_attention_single(clip: LoadedClip, pixels: Tensor, texts: Sequence[str]) -> Tensor:
    """``raw_attention`` with heads="single" (the Grad-ECLIP repository's raw attention)."""
    return raw_attention(clip, pixels, texts, heads="single")


@torch.no_grad()
def rollout(clip: LoadedClip, pixels: Tensor, texts: Sequence[str], start_layer: int = 0) -> Tensor:
    """Attention rollout (Abnar & Zuidema 2020) from the class token: each block's attention averaged over its
    heads, plus the identity for the residual, rows renormalised, multiplied from ``start_layer`` (Python index:
    -1 is the last block alone) to the last block; the class row over the patches. Text-independent.

    Follows ``compute_rollout_attention`` of hila-chefer/Transformer-MM-Explainability, which the Grad-ECLIP
    repository copies (``generate_emap.py``). There it is fed by ``mm_interpret(..., rollout=True)``, whose default
    start_layer=-1 keeps the last block alone (half the head-mean raw attention, off the class token's own entry);
    the default here, 0, is rollout as its paper defines it. ViT only: a ResNet has one attention layer."""
    tower = image_tower(clip)
    _require_vit(tower, "rollout")
    n_layers = len(tower.layers)
    start = _layer_index(start_layer, n_layers, "start_layer")
    x = tokens_before(tower, pixels.to(clip.device), 0)
    means = [attention.float().mean(dim=1) for attention, _ in attention_forward(tower.layers, x)]
    eye = torch.eye(x.shape[1], device=x.device)
    augmented = [(a + eye) / (a + eye).sum(dim=-1, keepdim=True) for a in means]
    joint = augmented[start]
    for a in augmented[start + 1:]:
        joint = a @ joint
    return _spatial(tower, pixels, joint[:, 0])


def _layer_index(index: int, n_layers: int, what: str) -> int:
    if not -n_layers <= index < n_layers:
        raise ValueError(f"{what}={index} is outside the image tower's {n_layers} blocks "
                         f"(0..{n_layers - 1}, or -{n_layers}..-1 from the end)")
    return index % n_layers


# ---------------------------------------------------------------------------------------------------------------
# Gradient maps
# ---------------------------------------------------------------------------------------------------------------
def grad_cam(clip: LoadedClip, pixels: Tensor, texts: Sequence[str], heads: str = "multi") -> Tensor:
    """Grad-CAM (Selvaraju et al. 2017) of the image-text cosine: channel weights = the score's gradient averaged
    over the positions, map = ReLU(sum_c weight_c * activation_c).

    ViT: on the tokens entering the last block (the Grad-ECLIP repository's ``grad_cam``: "the feature outputs of
    the last second attention layer"), the gradient averaged over all tokens, the class token included, as there.
    ResNet: on the trunk's last feature map (``layer4``, what the attention pool reads), the gradient averaged over
    its cells: Grad-CAM's own CNN layer. ``heads="multi"``: the score of the model itself; ``heads="single"``: the
    score of the last block recomputed with one head (``method.recomputed_forward``), which is what the Grad-ECLIP
    repository differentiates (its ``c`` comes from ``clip_encode_dense``)."""
    tower = image_tower(clip)
    targets = text_embeddings(clip, texts)
    pixels = pixels.to(clip.device)
    with torch.enable_grad():
        if tower.kind == "vit":
            x = tokens_before(tower, pixels, len(tower.layers) - 1).detach().requires_grad_(True)
            pooled, _ = method.recomputed_forward(tower.layers[-1:], x, tower.query_rows(x), heads=heads,
                                                  spatial="none")
            score = _cosine_rows(tower.finish(pooled), targets)
            gradient, = torch.autograd.grad(score.sum(), x)
            weights = gradient.float().mean(dim=1)  # (N, D): over all tokens
            cam = torch.einsum("ntd,nd->nt", x.detach().float(), weights)
            return torch.relu(_spatial(tower, pixels, cam))
        with torch.no_grad():
            features = tower.feature_map(pixels)
        features = features.detach().requires_grad_(True)
        tokens = tower.pool_tokens(features)
        pooled, _ = method.recomputed_forward(tower.layers, tokens, tower.query_rows(tokens), heads=heads,
                                              spatial="none")
        score = _cosine_rows(tower.finish(pooled), targets)
        gradient, = torch.autograd.grad(score.sum(), features)
    weights = gradient.float().mean(dim=(2, 3))  # (N, C): over the cells
    return torch.relu(torch.einsum("nchw,nc->nhw", features.detach().float(), weights))


def grad_cam_single(clip: LoadedClip, pixels: Tensor, texts: Sequence[str]) -> Tensor:
    """``grad_cam`` with heads="single" (the Grad-ECLIP repository's Grad-CAM)."""
    return grad_cam(clip, pixels, texts, heads="single")


def game(clip: LoadedClip, pixels: Tensor, texts: Sequence[str], start_layer: int = -1) -> Tensor:
    """GAME (Chefer et al., ICCV 2021, "Generic Attention-model Explainability"), image encoder, driven by the
    image-text logit (the model's logit scale x cosine): for each block from ``start_layer`` on, the gradient of
    the logit with respect to the block's attention probabilities times those probabilities, negative values
    clipped, averaged over the heads (cam); R = I, then R <- R + cam @ R block by block; the class row of R over
    the patches.

    Follows ``interpret`` of hila-chefer/Transformer-MM-Explainability ``CLIP_explainability.ipynb`` (copied as
    ``mm_interpret`` into the Grad-ECLIP repository), including its default start_layer=-1: the last block alone.
    ViT only (the notebook defines it for the ViT's blocks)."""
    tower = image_tower(clip)
    _require_vit(tower, "game")
    n_layers = len(tower.layers)
    start = _layer_index(start_layer, n_layers, "start_layer")
    targets = text_embeddings(clip, texts)
    x = tokens_before(tower, pixels.to(clip.device), start).detach().requires_grad_(True)
    with torch.enable_grad():
        passes = attention_forward(tower.layers[start:], x)
        logits = clip.model.logit_scale.exp().float() * _cosine_rows(tower.finish(passes[-1][1][:, 0]), targets)
        attentions = [attention for attention, _ in passes]
        gradients = torch.autograd.grad(logits.sum(), attentions)
    relevance = torch.eye(x.shape[1], device=x.device).expand(len(x), -1, -1)
    for attention, gradient in zip(attentions, gradients):
        cam = (gradient.float() * attention.detach().float()).clamp(min=0).mean(dim=1)
        relevance = relevance + cam @ relevance
    return _spatial(tower, pixels, relevance[:, 0])


def legrad(clip: LoadedClip, pixels: Tensor, texts: Sequence[str], layer_index: int = -2,
           normalize: bool = True) -> Tensor:
    """LeGrad (Bousselham et al. 2024): for each block from ``layer_index`` on, the text's cosine with the block's
    output read as an image embedding (all tokens averaged, ``ln_post``, projection); its gradient with respect to
    that block's attention probabilities, negative values clipped, averaged over the heads and over the query
    rows; the patch columns summed over the blocks, then min-max normalised per map (``normalize=False``: the sum).

    Follows ``LeWrapper.compute_legrad_clip`` of WalBouss/LeGrad @ a9edb03, default layer_index=-2 (the last two
    blocks); the official code sums the maps after upsampling them to the pixels and normalises there, this sums
    and normalises them on the patch grid (upsampling is linear, so only the normalisation's extremes differ).
    Not the ``legrad-torch`` package: its 1.1 requires open_clip_torch<=2.23.0 (this project pins 3.3.0), and its
    1.0, which installs beside 3.3.0, runs open_clip's blocks sequence-first while open_clip 3.x runs them
    batch-first (README, "Comparison methods"). ViT only (the official code defines it for ViTs and
    attention-pooling heads)."""
    tower = image_tower(clip)
    _require_vit(tower, "legrad")
    n_layers = len(tower.layers)
    start = _layer_index(layer_index, n_layers, "layer_index")
    targets = text_embeddings(clip, texts)
    x = tokens_before(tower, pixels.to(clip.device), start).detach().requires_grad_(True)
    total = 0.0
    with torch.enable_grad():
        for attention, tokens in attention_forward(tower.layers[start:], x):
            score = _cosine_rows(tower.finish(tokens.mean(dim=1)), targets)
            gradient, = torch.autograd.grad(score.sum(), attention, retain_graph=True)
            total = total + gradient.float().clamp(min=0).mean(dim=1).mean(dim=1)  # heads, then query rows
    relevance = _spatial(tower, pixels, total)
    return metrics.minmax(relevance) if normalize else relevance


# ---------------------------------------------------------------------------------------------------------------
# Dense similarity maps
# ---------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def maskclip(clip: LoadedClip, pixels: Tensor, texts: Sequence[str], normalize: bool = True) -> Tensor:
    """MaskCLIP (Zhou et al., ECCV 2022): each position's dense image feature, cosine with the text, min-max
    normalised per map (``normalize=False``: the cosines).

    ViT: the last block computed with its value embedding v in place of the attention output (out-projection,
    residual, MLP), then ``ln_post`` and the projection on every patch token (MaskCLIP's ``return_qkv`` path of
    ``vit.py`` and ``MaskClipHead``). ResNet: the attention pool's value and output projections applied to each
    cell of the trunk's feature map, without positional embedding (``MaskClipHead`` with ``attn_pooling=False``).
    The text is used as given (MaskCLIP's segmentation embeds class names in 85 prompt templates), and neither of
    MaskCLIP's optional refinements (key smoothing, prompt denoising) is applied. The Grad-ECLIP repository's
    ``mask_clip`` computes the same features and also multiplies the map by the cosine of the class token's key
    with each patch's key; that factor is not MaskCLIP's and is left out."""
    tower = image_tower(clip)
    targets = text_embeddings(clip, texts)
    pixels = pixels.to(clip.device)
    if tower.kind == "vit":
        x = tokens_before(tower, pixels, len(tower.layers) - 1)
        last = tower.layers[-1]
        _, _, v = last.attention.qkv(last.pre(x))
        dense = tower.finish(last.post(x, v)[:, 1:])  # (N, h*w, E)
        sims = _cosine_rows(dense, targets).reshape(len(pixels), *tower.grid_of(pixels))
    else:
        features = tower.feature_map(pixels)
        pool = tower.layers[-1].attention
        cells = features.flatten(2).transpose(1, 2)  # (N, h*w, C)
        dense = pool.out(F.linear(cells, pool.v_weight, pool.v_bias))
        sims = _cosine_rows(dense, targets).reshape(len(pixels), *features.shape[-2:])
    return metrics.minmax(sims) if normalize else sims


# The 85 prompt templates of CLIP Surgery's ``encode_text_with_prompt_ensemble`` (xmed-lab/CLIP_Surgery clip/clip.py):
# the 80 ImageNet templates of OpenAI's CLIP plus five scene templates, in that code's order.
SURGERY_TEMPLATES = (
    'a bad photo of a {}.', 'a photo of many {}.', 'a sculpture of a {}.', 'a photo of the hard to see {}.',
    'a low resolution photo of the {}.', 'a rendering of a {}.', 'graffiti of a {}.', 'a bad photo of the {}.',
    'a cropped photo of the {}.', 'a tattoo of a {}.', 'the embroidered {}.', 'a photo of a hard to see {}.',
    'a bright photo of a {}.', 'a photo of a clean {}.', 'a photo of a dirty {}.', 'a dark photo of the {}.',
    'a drawing of a {}.', 'a photo of my {}.', 'the plastic {}.', 'a photo of the cool {}.',
    'a close-up photo of a {}.', 'a black and white photo of the {}.', 'a painting of the {}.',
    'a painting of a {}.', 'a pixelated photo of the {}.', 'a sculpture of the {}.', 'a bright photo of the {}.',
    'a cropped photo of a {}.', 'a plastic {}.', 'a photo of the dirty {}.', 'a jpeg corrupted photo of a {}.',
    'a blurry photo of the {}.', 'a photo of the {}.', 'a good photo of the {}.', 'a rendering of the {}.',
    'a {} in a video game.', 'a photo of one {}.', 'a doodle of a {}.', 'a close-up photo of the {}.',
    'a photo of a {}.', 'the origami {}.', 'the {} in a video game.', 'a sketch of a {}.', 'a doodle of the {}.',
    'a origami {}.', 'a low resolution photo of a {}.', 'the toy {}.', 'a rendition of the {}.',
    'a photo of the clean {}.', 'a photo of a large {}.', 'a rendition of a {}.', 'a photo of a nice {}.',
    'a photo of a weird {}.', 'a blurry photo of a {}.', 'a cartoon {}.', 'art of a {}.', 'a sketch of the {}.',
    'a embroidered {}.', 'a pixelated photo of a {}.', 'itap of the {}.', 'a jpeg corrupted photo of the {}.',
    'a good photo of a {}.', 'a plushie {}.', 'a photo of the nice {}.', 'a photo of the small {}.',
    'a photo of the weird {}.', 'the cartoon {}.', 'art of the {}.', 'a drawing of the {}.',
    'a photo of the large {}.', 'a black and white photo of a {}.', 'the plushie {}.', 'a dark photo of a {}.',
    'itap of a {}.', 'graffiti of the {}.', 'a toy {}.', 'itap of my {}.', 'a photo of a cool {}.',
    'a photo of a small {}.', 'a tattoo of the {}.', 'there is a {} in the scene.',
    'there is the {} in the scene.', 'this is a {} in the scene.', 'this is the {} in the scene.',
    'this is one {} in the scene.')


@torch.no_grad()
def prompt_ensemble(clip: LoadedClip, texts: Sequence[str], templates: Sequence[str] = SURGERY_TEMPLATES) -> Tensor:
    """(K, E): each text put into every template, each prompt's embedding L2-normalised, averaged over the
    templates and normalised again (CLIP Surgery's ``encode_text_with_prompt_ensemble``)."""
    unique = list(dict.fromkeys(texts))
    prompts = [template.format(text) for text in unique for template in templates]
    embeddings = text_embeddings(clip, prompts).reshape(len(unique), len(templates), -1)
    by_text = dict(zip(unique, F.normalize(embeddings.mean(dim=1), dim=-1)))
    return torch.stack([by_text[text] for text in texts])


def _value_value_attention(attention: AttentionWeights, v: Tensor) -> Tensor:
    """CLIP Surgery's v-v self-attention: per head, softmax(v v^T * head_dim^-0.5) v, heads concatenated (N, T, D)."""
    heads = attention.split_heads(v)  # (N, H, T, Dh)
    weights = ((heads @ heads.transpose(-1, -2)) * heads.shape[-1] ** -0.5).float().softmax(dim=-1).to(v.dtype)
    o = weights @ heads
    n, h, t, dh = o.shape
    return o.transpose(1, 2).reshape(n, t, h * dh)


@torch.no_grad()
def clip_surgery(clip: LoadedClip, pixels: Tensor, texts: Sequence[str], blocks: int = 6,
                 templates: Sequence[str] = SURGERY_TEMPLATES, normalize: bool = True) -> Tensor:
    """CLIP Surgery (Li et al. 2023/2025), as its official code computes one text's map, min-max normalised
    (``normalize=False``: the similarities).

    Architecture surgery, ViT: the last ``blocks`` blocks (6 in ``clip_surgery_model.py``; all of them if the tower
    has fewer) get a second path; at each, v-v self-attention (softmax(v v^T) v per head, v from the original
    path's ln_1 tokens) goes through the block's out-projection and is added to the second path, without MLP; the
    original path is the model's own block. The class token comes from the original path, the patches from the
    second; ``ln_post`` and the projection on every token. ResNet: the attention pool with q = k = v = its value
    projection (the official ``AttentionPool2d`` replacement, in which both paths are that v-v attention).
    Feature surgery for a single text (``demo.py``, "CLIP Surgery for a single text"): similarity of each
    L2-normalised token feature with (text - redundant), both prompt ensembles (``prompt_ensemble``), the redundant
    one of the empty string; then min-max over the patches (``get_similarity_map``).

    Differences from the official code: positional embeddings of other input sizes are resized bicubically (it uses
    bilinear); layer scale and the other parts of open_clip blocks are applied on the second path's branch as in the
    block. The Grad-ECLIP repository's copy predates the official "fix norm issue" commit (it L2-normalises the
    image features over the tokens, not the channels) and calls the feature surgery without redundant features."""
    tower = image_tower(clip)
    pixels = pixels.to(clip.device)
    if tower.kind == "vit":
        n_blocks = min(blocks, len(tower.layers))
        if n_blocks < 1:
            raise ValueError(f"clip-surgery needs at least one surgery block, got blocks={blocks}")
        original = tokens_before(tower, pixels, len(tower.layers) - n_blocks)
        second = original
        rows = torch.arange(original.shape[1], device=original.device).expand(len(original), -1)
        for layer in tower.layers[-n_blocks:]:
            if layer.attention.has_extras:
                raise UnsupportedModelError("clip-surgery's v-v attention is defined for plain multi-head "
                                            "attention; this ViT's blocks use qk-norm, scaled cosine attention or "
                                            "head scaling")
            q, k, v = layer.attention.qkv(layer.pre(original))
            o, _ = layer.attention.model_attention(q, k, v, rows, None)
            second = second + layer.branch(_value_value_attention(layer.attention, v))
            original = layer.post(original, o)
        tokens = torch.cat([original[:, :1], second[:, 1:]], dim=1)
        features = tower.finish(tokens)
    else:
        pool = tower.layers[-1].attention
        tokens = tower.embed(pixels)
        features = pool.out(_value_value_attention(pool, F.linear(tokens, pool.v_weight, pool.v_bias)))
    target = prompt_ensemble(clip, texts, templates) - prompt_ensemble(clip, [""], templates)
    sims = torch.einsum("nte,ne->nt", F.normalize(features.float(), dim=-1), target.float().to(features.device))
    sims = _spatial(tower, pixels, sims)
    return metrics.minmax(sims) if normalize else sims


# ---------------------------------------------------------------------------------------------------------------
# Information bottleneck
# ---------------------------------------------------------------------------------------------------------------
def m2ib(clip: LoadedClip, pixels: Tensor, texts: Sequence[str], layer: int = -3, beta: float = 0.1,
         var: float = 1.0, lr: float = 1.0, steps: int = 10, samples: int = 10, seed: int = 0,
         normalize: bool = True) -> Tensor:
    """M2IB (Wang et al., NeurIPS 2023), image side, with its official defaults: an information bottleneck on the
    tokens after block ``layer`` (vlayer=9 of a 12-block ViT, i.e. -3), z = x * lambda + (1 - lambda) * eps with
    lambda = sigmoid(alpha) per token and channel (alpha = 5 at first), eps ~ N(0, ``var``); alpha is trained for
    ``steps`` = 10 Adam steps (``lr`` = 1) on ``samples`` = 10 noise draws of the one image, minimising
    beta * mean KL(N(x lambda, (1-lambda)^2) || N(0, 1)) - mean cosine(text, image embedding), beta = 0.1. The map
    is the KL of the last forward pass summed over the channels, on the patches, min-max normalised
    (``normalize=False``: the KL sums).

    Follows ``vision_heatmap_iba`` / ``IBAInterpreter`` of YingWANGG/M2IB @ ce4d7a0. ``var`` enters as in that code
    (its Estimator's std is sqrt(var); the bottleneck's noise is standard normal scaled by 1 - lambda, so var = 1
    is the only value it effectively supports). The text embedding is the model's own (as M2IB's main path,
    transformers' CLIPModel.get_text_features, gives it); M2IB's wrapper for OpenAI-format models (``ClipWrapper``,
    which the Grad-ECLIP repository uses) drops the causal mask and applies the text projection twice. Each image
    draws its noise from its own generator seeded with ``seed``, so a map does not depend on the batch; the cost is
    ``steps`` x ``samples`` forward and backward passes through the blocks above ``layer``. ViT only (the official
    wrapper reads the ViT's blocks)."""
    tower = image_tower(clip)
    _require_vit(tower, "m2ib")
    n_layers = len(tower.layers)
    index = _layer_index(layer, n_layers, "layer")
    targets = text_embeddings(clip, texts)
    device = clip.device
    x = tokens_before(tower, pixels.to(device), index + 1).float()  # the output of block `index`
    upper = tower.layers[index + 1:]
    n, t, d = x.shape
    alpha = torch.full((n, 1, t, d), 5.0, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([alpha], lr=lr)
    generators = [torch.Generator(device=device).manual_seed(seed) for _ in range(n)]
    capacity = None
    with torch.enable_grad():
        for _ in range(steps):
            lam = torch.sigmoid(alpha)
            mu = x[:, None] * lam
            noise_var = (1 - lam) ** 2
            capacity = -0.5 * (1 + torch.log(noise_var) - mu ** 2 - noise_var)  # (N, 1, T, D)
            eps = torch.stack([torch.randn((samples, t, d), generator=g, device=device) for g in generators])
            z = (mu + noise_var.sqrt() * eps).reshape(n * samples, t, d).to(tower.dtype)
            for block in upper:
                z = block.module(z)
            cosine = _cosine_rows(tower.finish(z[:, 0]).reshape(n, samples, -1), targets)  # (N, samples)
            loss = (beta * capacity.mean(dim=(1, 2, 3)) - cosine.mean(dim=1)).sum()
            optimizer.zero_grad()
            alpha.grad, = torch.autograd.grad(loss, alpha)
            optimizer.step()
    saliency = _spatial(tower, pixels, torch.nansum(capacity.detach()[:, 0], dim=-1))
    return metrics.minmax(saliency) if normalize else saliency


# ---------------------------------------------------------------------------------------------------------------
# Perturbation
# ---------------------------------------------------------------------------------------------------------------
def _linear_resize_weights(n_in: int, n_out: int) -> Tensor:
    """(n_out, n_in) weights of 1-D linear interpolation from n_in to n_out samples, pixel centres aligned
    (align_corners=False), mirrored at the edges without repeating the edge sample (scikit-image's
    ``resize(order=1, mode="reflect")``, i.e. scipy.ndimage's "mirror" mode, which RISE's mask generator uses)."""
    src = (torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    low = torch.floor(src)
    frac = src - low
    low = low.long()

    def mirror(i: Tensor) -> Tensor:
        if n_in == 1:
            return torch.zeros_like(i)
        period = 2 * (n_in - 1)
        i = i.remainder(period)
        return torch.where(i > n_in - 1, period - i, i)

    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    weights.index_put_((rows, mirror(low)), 1 - frac, accumulate=True)
    weights.index_put_((rows, mirror(low + 1)), frac, accumulate=True)
    return weights


def rise_masks(n_masks: int, size: tuple[int, int], cells: int = 8, p1: float = 0.5,
               generator: Optional[torch.Generator] = None) -> Tensor:
    """RISE's random masks (N, H, W) in [0, 1]: a ``cells`` x ``cells`` grid of cells kept with probability p1,
    upsampled linearly to (cells + 1) x cell size, and cropped at a random shift of less than one cell
    (``RISE.generate_masks`` of eclique/RISE, with torch's generator in place of numpy's)."""
    h, w = size
    cell = (math.ceil(h / cells), math.ceil(w / cells))
    up = ((cells + 1) * cell[0], (cells + 1) * cell[1])
    grid = (torch.rand((n_masks, cells, cells), generator=generator) < p1).double()
    large = _linear_resize_weights(cells, up[0]) @ grid @ _linear_resize_weights(cells, up[1]).T
    dy = torch.randint(0, cell[0], (n_masks,), generator=generator)
    dx = torch.randint(0, cell[1], (n_masks,), generator=generator)
    masks = torch.stack([large[i, y:y + h, x:x + w] for i, (y, x) in enumerate(zip(dy.tolist(), dx.tolist()))])
    return masks.float()


@torch.no_grad()
def rise(clip: LoadedClip, pixels: Tensor, texts: Sequence[str], n_masks: int = 2000, cells: int = 8,
         p1: float = 0.5, batch_size: int = 100, seed: int = 0, normalize: bool = True) -> Tensor:
    """RISE (Petsiuk et al., BMVC 2018) on the image-text cosine: the model scores each image multiplied by each of
    ``n_masks`` random masks (``rise_masks``; the normalised pixels, so a masked pixel is the dataset mean colour);
    the map is the mask average weighted by the scores, / (n_masks * p1), on the input's pixels, min-max
    normalised (``normalize=False``: the weighted average). Defaults as the Grad-ECLIP repository runs it (``generate_emap.py``: N=2000, s=8, p1=0.5, batches of
    50; RISE's own ImageNet notebook uses N=6000, p1=0.1). The masks come from a generator seeded with ``seed``, the
    same for every image of the call; the cost is ``n_masks`` forward passes per image, in batches of
    ``batch_size`` masked images. Model-agnostic: ViT and ResNet."""
    masks = rise_masks(n_masks, tuple(pixels.shape[-2:]), cells, p1, torch.Generator().manual_seed(seed))
    saliency = rise_saliency(clip, pixels, text_embeddings(clip, texts), masks, p1, batch_size)
    return metrics.minmax(saliency) if normalize else saliency


@torch.no_grad()
def rise_saliency(clip: LoadedClip, pixels: Tensor, targets: Tensor, masks: Tensor, p1: float,
                  batch_size: int = 100) -> Tensor:
    """RISE's saliency of each image (B, 3, H, W) for its text embedding (B, E) with given masks (N, H, W):
    sum_n cos(image * mask_n, text) * mask_n / (N * p1)."""
    tower = image_tower(clip)
    pixels = pixels.to(clip.device)
    masks = masks.to(clip.device, torch.float32)
    n_masks = len(masks)
    scores = torch.empty(len(pixels), n_masks, device=clip.device)
    for b in range(len(pixels)):
        for start in range(0, n_masks, batch_size):
            chunk = masks[start:start + batch_size]
            embeddings = model_image_embeddings(clip, pixels[b] * chunk[:, None], tower)
            scores[b, start:start + len(chunk)] = _cosine_rows(embeddings, targets[b].expand(len(chunk), -1))
    return torch.einsum("bn,nhw->bhw", scores, masks) / n_masks / p1


# ---------------------------------------------------------------------------------------------------------------
# Pixel gradients (model-agnostic)
# ---------------------------------------------------------------------------------------------------------------
def score_gradient(clip: LoadedClip, pixels: Tensor, text_embeddings: Tensor) -> Tensor:
    """d cos(image i, text i) / d pixels of image i, (B, 3, S, S): the unmodified model's score, each image against
    its own (L2-normalised) text embedding. Written out rather than taken from captum, whose Saliency wraps this one
    autograd call."""
    dtype = next(clip.model.visual.parameters()).dtype  # an fp16/bf16 model takes its own dtype's pixels
    inputs = pixels.detach().to(clip.device, dtype).requires_grad_(True)
    with torch.enable_grad():
        image_embeddings = F.normalize(model_image_embeddings(clip, inputs).float(), dim=-1)
        # in eval mode nothing mixes the images of a batch (a ResNet's BatchNorm uses its running statistics), so the
        # gradient of the summed scores gives each image the gradient of its own score; autograd.grad leaves the
        # model's parameters without .grad
        return torch.autograd.grad((image_embeddings * text_embeddings).sum(), inputs)[0]


def gradient_saliency(gradient: Tensor) -> Tensor:
    """Gradient saliency (Simonyan et al. 2014), a model-agnostic baseline: max over the colour channels of
    |d score / d pixel|, (B, S, S) from ``score_gradient``'s (B, 3, S, S)."""
    return gradient.abs().amax(dim=1)


def gradient_times_input(gradient: Tensor, pixels: Tensor) -> Tensor:
    """Gradient x input (Shrikumar et al. 2016), a model-agnostic baseline: sum over the colour channels of
    d score / d pixel times the (normalised) pixel, ReLU'd like Grad-ECLIP's maps to keep the evidence for the text."""
    return (gradient * pixels.to(gradient.device)).sum(dim=1).clamp(min=0)


def input_gradient(clip: LoadedClip, pixels: Tensor, texts: Sequence[str]) -> Tensor:
    """``gradient_saliency`` as a method."""
    return gradient_saliency(score_gradient(clip, pixels, text_embeddings(clip, texts)))


def gradient_x_input(clip: LoadedClip, pixels: Tensor, texts: Sequence[str]) -> Tensor:
    """``gradient_times_input`` as a method."""
    return gradient_times_input(score_gradient(clip, pixels, text_embeddings(clip, texts)), pixels)


# ---------------------------------------------------------------------------------------------------------------
# Not available
# ---------------------------------------------------------------------------------------------------------------
ATTENTION_ECLIP_MISSING = (
    "attention-eclip is not available: Cui & Fan's critique (arXiv 2605.12952, 'Debunking Grad-ECLIP') names "
    "Attention-ECLIP, an attention-based method it says is equivalent to Grad-ECLIP, but its definition could not be "
    "found: the paper's text and code were not reachable from this project (only its abstract, which gives no "
    "formula), and it is not implemented from a guess. Compare with grad-eclip-multi and raw-attention meanwhile.")


def attention_eclip(clip: LoadedClip, pixels: Tensor, texts: Sequence[str]) -> Tensor:
    """Attention-ECLIP (Cui & Fan 2026): not implemented, see ``ATTENTION_ECLIP_MISSING``."""
    raise MethodNotAvailableError(ATTENTION_ECLIP_MISSING)


# ---------------------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------------------
METHODS: dict[str, ExplainFunction] = {
    "grad-eclip": grad_eclip,
    "grad-eclip-multi": grad_eclip_multi,
    "raw-attention": raw_attention,
    "raw-attention-single": raw_attention_single,
    "rollout": rollout,
    "grad-cam": grad_cam,
    "grad-cam-single": grad_cam_single,
    "game": game,
    "maskclip": maskclip,
    "clip-surgery": clip_surgery,
    "m2ib": m2ib,
    "rise": rise,
    "legrad": legrad,
    "attention-eclip": attention_eclip,
    "input-gradient": input_gradient,
    "gradient-x-input": gradient_x_input,
}
# The methods that run on a ResNet CLIP (attention-eclip raises MethodNotAvailableError on any model).
RESNET_METHODS = tuple(name for name in METHODS if name not in VIT_ONLY and name != "attention-eclip")


def method_options(name: str) -> dict[str, object]:
    """The keyword options of a registered method and their defaults."""
    parameters = list(inspect.signature(get_method(name)).parameters.values())[3:]
    return {p.name: p.default for p in parameters}


def get_method(name: str, **options) -> ExplainFunction:
    """The registered method ``name``, with ``options`` (keyword arguments of its function) bound. Unknown names
    and options are a ValueError that lists the known ones."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    function = METHODS[name]
    if not options:
        return function
    defaults = {p.name: p.default for p in list(inspect.signature(function).parameters.values())[3:]}
    for key, value in options.items():
        if key not in defaults:
            raise ValueError(f"method {name!r} has no option {key!r}; its options: "
                             f"{', '.join(defaults) if defaults else 'none'}")
        expected = type(defaults[key])
        fits = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if expected in (bool, int, float, str) and (not fits or (expected is int and isinstance(value, bool))):
            raise ValueError(f"method {name!r}: option {key}={value!r} must be a {expected.__name__} "
                             f"(default {defaults[key]!r})")

    def bound(clip: LoadedClip, pixels: Tensor, texts: Sequence[str]):
        return function(clip, pixels, texts, **options)

    bound.__name__ = name
    return bound


def resolve_method(spec: str, options: Optional[dict] = None, flag: str = "method") -> ExplainFunction:
    """A registered method's name (with ``options`` bound, ``get_method``), or MODULE:FUNCTION, a function of the
    user's resolved by the standard library's ``pkgutil.resolve_name`` (the working directory importable, as it is
    under ``python -m``: the ``gradeclip`` console script puts its own folder first on sys.path instead)."""
    if spec in METHODS:
        return get_method(spec, **(options or {}))
    if options:
        raise ValueError(f"{flag} {spec!r}: options apply to the registered methods, not to a function of yours")
    if ":" not in spec:
        raise ValueError(f"{flag} {spec!r}: expected one of {', '.join(METHODS)} or MODULE:FUNCTION")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        function = pkgutil.resolve_name(spec)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{flag} {spec!r}: {err}") from err
    if not callable(function):
        raise ValueError(f"{flag} {spec!r} is not callable")
    return function


# The option of a method that picks an image block, checked against the model's depth before any work.
BLOCK_OPTIONS = {"rollout": "start_layer", "game": "start_layer", "legrad": "layer_index", "m2ib": "layer"}


def check_method(name: str, clip: LoadedClip, options: Optional[dict] = None) -> None:
    """Raise before any work when the registered method ``name`` cannot run on this model: unavailable, defined for
    ViTs and the model is a ResNet, or its block option (:data:`BLOCK_OPTIONS`, as given in ``options`` or its
    default) outside the model's blocks (M2IB's default -3 on a ViT of 2 blocks). Names of user functions pass."""
    if name == "attention-eclip":
        raise MethodNotAvailableError(ATTENTION_ECLIP_MISSING)
    if name in VIT_ONLY:
        _require_vit(image_tower(clip), name)
    if name in BLOCK_OPTIONS:
        key = BLOCK_OPTIONS[name]
        value = (options or {}).get(key, method_options(name)[key])
        _layer_index(value, len(image_tower(clip).layers), f"{name}'s {key}")


def explain_image(explainer: GradECLIP, explain: ExplainFunction, image, texts: Sequence[str],
                  text_embeddings: Optional[Tensor] = None) -> list:
    """One image (path, PIL image or uint8 array) explained by any method against each of K texts, as Grad-ECLIP's
    ``ImageExplanation``s (what ``gradeclip explain --method`` writes): the image prepared by the explainer
    (standard or keep-aspect input, with its registration), the method called once on K copies of it, and
    ``score`` = ``model_score`` = the model's own cosine (a baseline explains the model itself)."""
    texts = list(texts)
    if text_embeddings is None:
        text_embeddings = explainer.encode_texts(texts)
    pixels, registration = explainer.image_input(image)
    batch = pixels[None].expand(len(texts), -1, -1, -1).to(explainer.device)
    maps = explain(explainer.clip, batch, texts)
    maps = maps.detach().float().cpu().numpy() if isinstance(maps, Tensor) else np.asarray(maps, dtype=np.float32)
    with torch.no_grad():
        embedding = F.normalize(model_image_embeddings(explainer.clip, pixels[None]).float(), dim=-1)
    scores = (embedding @ text_embeddings.float().to(embedding.device).T)[0].cpu()
    return [ImageExplanation(text, grid, float(score), float(score), registration)
            for text, grid, score in zip(texts, maps, scores)]
