"""Grad-ECLIP itself: section III of Zhao et al. (arXiv 2502.18816), equation by equation, computed as the official
code computes it.

For one explained attention layer with query q (class token / EOS token / ResNet mean token), keys k_i and values
v_i of width D, and the score S = cos(image embedding, text embedding):

    (7)   o = sum_i A_i v_i,  A = softmax(q k^T / sqrt(D))      the attention output, ONE head over all D channels
                                                                (heads="multi": the model's own heads, section IV-C3)
    (15)  w_c = dS / do_c                                       channel weights: the gradient at the query row
    (19)  H_i = ReLU( sum_c w_c A_i v_ic )                      the map, with the attention row as spatial weight
    (20)  lambda_i = minmax_i cos(q, k_i)                       the "loosened" spatial weight that replaces A_i in
                                                                (19); raw q and k, normalised over the positions

``grad_eclip_map`` is (19)/(20). Where the ReLU goes, as the official notebooks do it: images take it per layer and
then sum over the explained layers (eq. 9's aggregation); texts sum the layers' maps first and take it after the
sum. The spatial weights are a table (``SPATIAL_WEIGHTS``): the loosened one (the paper's default), the softmax row
(eq. 19 as written) and none (lambda = 1, the paper's "w/o lambda").

With heads="single" the score S is the cosine of the network *as recomputed* with one head, a slightly different
network than the model; every result therefore also carries the model's own score (``model_score``).

The bookkeeping that makes this fast (one forward, only the query row of the last layer, one batched backward for K
texts) is in the helpers at the end of the file. ``explainer.py`` wraps all of it for images, strings and files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence

import torch
import torch.nn.functional as F

from .adapters import ExplainedLayer, UnsupportedModelError
from .options import HEADS, SPATIAL, HeadMode, SpatialWeight  # callers also read method.HEADS / method.SPATIAL

Tensor = torch.Tensor

ReluPlacement = Literal["per_layer", "after_sum"]


# ----------------------------------------------------------------------------------------------------------------
# The formulas
# ----------------------------------------------------------------------------------------------------------------

def single_head_attention(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """Eq. (7) with one head over all D channels: o = softmax(q k^T * D^-0.5) v (scale D^-0.5, not head_dim^-0.5).

    q: (N, R, D) query rows; k, v: (N, T, D); mask: additive (N, R, T) or None.
    Returns o (N, R, D) and the attention A (N, 1, R, T).
    """
    logits = _upcast(q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        logits = logits + mask.to(logits.dtype)
    attn = logits.softmax(dim=-1).to(v.dtype)
    return attn @ v, attn[:, None]


def channel_weights(scores: Tensor, traces: Sequence[LayerTrace], query: Tensor) -> list[Tensor]:
    """Eq. (15): w = dS / do at the query row, for every column of ``scores`` (N, K), from ONE batched backward.

    Returns one (K, N, D) tensor per layer. Samples of the batch are independent, so the gradient of the column
    sum gives every sample's own gradient; the K columns are vector-Jacobian products batched with vmap.
    """
    n, k = scores.shape
    os = [tr.o for tr in traces]
    if k == 1:
        grads = [g[None] for g in torch.autograd.grad(scores[:, 0].sum(), os)]
    else:
        eye = torch.eye(k, dtype=scores.dtype, device=scores.device)
        grad_out = eye[:, None, :].expand(k, n, k)
        grads = torch.autograd.grad(scores, os, grad_outputs=grad_out, is_grads_batched=True)
    return [_query_row(g, tr.o_rows, query) for tr, g in zip(traces, grads)]


def loosened_spatial_weight(q: Tensor, k: Tensor, attention_row: Tensor, positions: Tensor) -> Tensor:
    """Eq. (20): lambda_i = cos(q, k_i), min-max normalised to [0, 1] over ``positions``; 0 elsewhere.

    A constant similarity (e.g. a single position) carries no spatial preference: lambda = 1 there, not 0, so the
    map falls back to the channel-weighted values instead of vanishing.
    """
    cos = torch.einsum("nhd,nhtd->nht", F.normalize(_upcast(q), dim=-1), F.normalize(_upcast(k), dim=-1))
    return _minmax_over(cos, positions)


def softmax_spatial_weight(q: Tensor, k: Tensor, attention_row: Tensor, positions: Tensor) -> Tensor:
    """Eq. (19) as written: the query's own attention row A_i (practically raw attention as a spatial weight)."""
    return _upcast(attention_row)


def no_spatial_weight(q: Tensor, k: Tensor, attention_row: Tensor, positions: Tensor) -> Tensor:
    """lambda_i = 1: the paper's "w/o lambda" ablation, the channel-weighted values alone."""
    return torch.ones(attention_row.shape, device=attention_row.device)


# Each takes the query row of each head q (N, H, Dh), the keys k (N, H, T, Dh), the query's attention row (N, H, T)
# and the positions lambda is normalised over (bool (N, T)), and returns lambda (N, H, T).
SPATIAL_WEIGHTS: dict[str, Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]] = {
    "loosened": loosened_spatial_weight,
    "softmax": softmax_spatial_weight,
    "none": no_spatial_weight,
}
assert tuple(SPATIAL_WEIGHTS) == SPATIAL


def grad_eclip_map(weights: Sequence[Tensor], traces: Sequence[LayerTrace], *, relu: ReluPlacement) -> Tensor:
    """Eq. (19)/(20) over the explained layers: H_i = ReLU(sum_c w_c lambda_i v_ic), per layer and then summed
    (``relu="per_layer"``, images) or summed and then ReLU'd (``relu="after_sum"``, texts). (K, N, D) weights per
    layer; returns (K, N, T).

    With the model's own heads, lambda is per head: sum_h lambda_i^h sum_{c in head h} w_c v_ic.
    """
    layer_maps = [_weighted_values(w, tr.v, tr.spatial) for w, tr in zip(weights, traces)]
    if relu == "per_layer":
        return sum(torch.relu(m) for m in layer_maps)
    if relu == "after_sum":
        return torch.relu(sum(layer_maps))
    raise ValueError(f"relu must be 'per_layer' or 'after_sum', got {relu!r}")


def cosine_scores(embedding: Tensor, targets: Tensor) -> Tensor:
    """(N, K) cosine of each embedding (N, E) with each target embedding (K, E): the score S."""
    return F.normalize(_upcast(embedding), dim=-1) @ F.normalize(_upcast(targets).to(embedding.device), dim=-1).T


def paired_cosine(embedding: Tensor, targets: Tensor) -> Tensor:
    """(N,) cosine of each embedding (N, E) with its own target (N, E): the score S of each text."""
    return (F.normalize(_upcast(embedding), dim=-1) * F.normalize(_upcast(targets), dim=-1)).sum(-1)


# ----------------------------------------------------------------------------------------------------------------
# Images and texts
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class ImageMaps:
    grids: Tensor  # (N, K, h, w) raw maps, >= 0
    scores: Tensor  # (N, K) cosine of the recomputed network (the explained score)
    model_scores: Tensor  # (N, K) cosine of the model itself


def explain_image_tensor(tower, pixels: Tensor, text_embeddings: Tensor, *, layers: int = 1,
                         heads: HeadMode = "single", spatial: SpatialWeight = "loosened") -> ImageMaps:
    """Grad-ECLIP maps of a batch of images (N, 3, H, W) against K text embeddings (K, E): one forward of the image
    encoder, one batched backward for all K texts. lambda is normalised over the patches."""
    if layers < 1:  # tower.layers[-0:] would be every layer
        raise ValueError(f"the number of explained image layers must be at least 1, got {layers}")
    grid = tower.grid_of(pixels)
    n = pixels.shape[0]
    explained = tower.layers[-layers:]
    if len(explained) < layers:
        raise ValueError(f"the image tower has {len(tower.layers)} explainable layers, asked for {layers}")
    x = _tokens_before(tower, explained, tower.embed(pixels))
    query = tower.query_rows(x)
    patches = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
    patches[:, tower.spatial_rows(x)] = True
    with torch.enable_grad():
        pooled, traces = recomputed_forward(explained, x, query, heads=heads, spatial=spatial,
                                            spatial_positions=patches)
        scores = cosine_scores(tower.finish(pooled), text_embeddings)
        weights = channel_weights(scores, traces, query)
    maps = grad_eclip_map(weights, traces, relu="per_layer")
    model_scores = scores if heads == "multi" else cosine_scores(
        tower.finish(model_forward(explained, x.detach(), query)), text_embeddings)
    grids = maps[:, :, tower.spatial_rows(x)].reshape(len(text_embeddings), n, *grid).transpose(0, 1)
    return ImageMaps(grids.detach(), scores.detach(), model_scores.detach())


@dataclass
class TokenMaps:
    token_scores: Tensor  # (N, T) raw importance of each context position (0 outside 1..eos-1), >= 0
    eos: Tensor  # (N,) EOS position of each text
    scores: Tensor  # (N,)
    model_scores: Tensor  # (N,)


def explain_text_tensor(tower, token_ids: Tensor, image_embeddings: Tensor, *, layers: int = 8,
                        heads: HeadMode = "single", spatial: SpatialWeight = "loosened") -> TokenMaps:
    """Grad-ECLIP token importances of texts (N, T) against image embeddings (N, E), one image per text (pass the
    same row N times for one image against N texts): one forward, one backward. The query is the EOS token and
    lambda is normalised over all context positions."""
    if layers < 1:  # tower.layers[-0:] would be every layer
        raise ValueError(f"the number of explained text layers must be at least 1, got {layers}")
    explained = tower.layers[-layers:]
    if len(explained) < layers:  # as for images; GradECLIP resolves a count beyond the depth (all, with a warning)
        raise ValueError(f"the text tower has {len(tower.layers)} explainable layers, asked for {layers}")
    mask = tower.attention_mask(token_ids)
    x = _tokens_before(tower, explained, tower.embed(token_ids), attn_mask=mask)
    eos = tower.query_rows(token_ids)
    with torch.enable_grad():
        pooled, traces = recomputed_forward(explained, x, eos, heads=heads, spatial=spatial, mask=mask)
        scores = paired_cosine(tower.finish(pooled), image_embeddings)
        weights = channel_weights(scores[:, None], traces, eos)
    maps = grad_eclip_map(weights, traces, relu="after_sum")[0]
    positions = torch.arange(token_ids.shape[1], device=token_ids.device)[None]
    words = (positions >= 1) & (positions < eos[:, None])
    if heads == "multi":
        model_scores = scores
    else:
        own = tower.finish(model_forward(explained, x.detach(), eos, mask=mask))
        model_scores = paired_cosine(own, image_embeddings)
    return TokenMaps((maps * words).detach(), eos, scores.detach(), model_scores.detach())


# ----------------------------------------------------------------------------------------------------------------
# Bookkeeping: the recomputed forward, row by row
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class LayerTrace:
    """What the map of one explained layer needs: the attention output before out_proj (in the graph), and the
    values and spatial weights of the query row (detached)."""

    o: Tensor  # (N, R, D), R = all rows, or only the query row for the last layer
    o_rows: Tensor  # (N, R) index of each row of ``o`` in the sequence
    v: Tensor  # (N, T, D)
    spatial: Tensor  # (N, H, T): H = 1 for the single head, the model's heads with heads="multi"


def recomputed_forward(layers: Sequence[ExplainedLayer], x: Tensor, query: Tensor, *, heads: HeadMode = "single",
                       spatial: SpatialWeight = "loosened", mask: Optional[Tensor] = None,
                       spatial_positions: Optional[Tensor] = None) -> tuple[Tensor, list[LayerTrace]]:
    """Run ``layers`` on tokens ``x`` (N, T, D) with their attention recomputed (eq. 7), and return the pooled row
    after the last layer (N, D) and one ``LayerTrace`` per layer.

    query: (N,) the pooled row (class / EOS / mean token); mask: additive (T, T) or (N, T, T) attention mask;
    spatial_positions: bool (N, T), where lambda is min-max normalised (default: every position).
    Only the query row of the last layer is computed: it alone reaches the embedding.
    """
    if heads not in HEADS:
        raise ValueError(f"heads must be one of {HEADS}, got {heads!r}")
    if spatial not in SPATIAL:
        raise ValueError(f"spatial must be one of {SPATIAL}, got {spatial!r}")
    spatial_weight = SPATIAL_WEIGHTS[spatial]
    n, t, _ = x.shape
    all_rows = torch.arange(t, device=x.device).expand(n, t)
    query_rows = query.view(n, 1)
    if spatial_positions is None:
        spatial_positions = torch.ones(n, t, dtype=torch.bool, device=x.device)
    if mask is not None and mask.dim() == 2:
        mask = mask.expand(n, t, t)
    traces = []
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        rows = query_rows if last else all_rows
        attn = layer.attention
        q, k, v = attn.qkv(layer.pre(x))
        q_rows = _rows(q, rows)
        mask_rows = _rows(mask, rows) if mask is not None else None
        if heads == "single":
            if attn.has_extras:
                raise UnsupportedModelError("heads='single' cannot recompute attention with qk-norm, scaled cosine "
                                            "or head scaling; use heads='multi'")
            o, weights = single_head_attention(q_rows, k, v, mask_rows)
            n_heads = 1
        else:
            o, weights = attn.model_attention(q_rows, k, v, rows, mask_rows)
            n_heads = attn.num_heads
        x = layer.post(_rows(x, rows), o)
        with torch.no_grad():
            q_query = _rows(q, query_rows).reshape(n, n_heads, -1)
            k_heads = k.reshape(n, t, n_heads, -1).transpose(1, 2)
            # the query's attention row: row 0 of the last layer (only the query row is computed there)
            attention_row = weights[torch.arange(n), :, 0 if last else query]
            lam = spatial_weight(q_query, k_heads, attention_row, spatial_positions)
        traces.append(LayerTrace(o=o, o_rows=rows, v=v.detach(), spatial=lam))
    return x[:, 0], traces


def model_forward(layers: Sequence[ExplainedLayer], x: Tensor, query: Tensor,
                  mask: Optional[Tensor] = None) -> Tensor:
    """The same layers with the model's own attention (no gradient): the model's own pooled row."""
    with torch.no_grad():
        pooled, _ = recomputed_forward(layers, x, query, heads="multi", spatial="none", mask=mask)
    return pooled


def _tokens_before(tower, explained: Sequence[ExplainedLayer], x: Tensor, **kwargs) -> Tensor:
    """The tokens entering the first explained layer (no gradient before it), as a leaf that requires grad."""
    with torch.no_grad():
        for layer in tower.layers[:len(tower.layers) - len(explained)]:
            x = layer.module(x, **kwargs)
    return x.detach().requires_grad_(True)


def _weighted_values(weights: Tensor, v: Tensor, spatial: Tensor) -> Tensor:
    """sum_h lambda_t^h * sum_{c in head h} w_c v_tc for (K, N, D) weights, (N, T, D) values and (N, H, T)
    lambda: (K, N, T), before the ReLU."""
    _, n, d = weights.shape
    heads = spatial.shape[1]
    wv = (_upcast(weights)[:, :, None, :] * _upcast(v)[None])  # (K, N, T, D)
    wv = wv.reshape(*wv.shape[:3], heads, d // heads).sum(-1)  # (K, N, T, H)
    return (wv * spatial.transpose(1, 2)[None]).sum(-1)


def _query_row(grad: Tensor, o_rows: Tensor, query: Tensor) -> Tensor:
    """(K, N, R, D) gradients -> (K, N, D) at each sample's query row (its position among the rows computed)."""
    n = grad.shape[1]
    pos = (o_rows == query[:, None]).float().argmax(dim=1)
    return grad[:, torch.arange(n, device=grad.device), pos]


def _rows(t: Tensor, rows: Tensor) -> Tensor:
    """t[n, rows[n, r]] for t (N, T, ...) and rows (N, R)."""
    idx = rows.view(*rows.shape, *([1] * (t.dim() - 2))).expand(-1, -1, *t.shape[2:])
    return t.gather(1, idx)


def _minmax_over(x: Tensor, positions: Tensor) -> Tensor:
    """Min-max normalisation of x (N, H, T) over ``positions`` (bool (N, T)), 0 outside; a constant -> 1."""
    pos = positions[:, None, :]
    lo = x.masked_fill(~pos, float("inf")).amin(dim=-1, keepdim=True)
    hi = x.masked_fill(~pos, float("-inf")).amax(dim=-1, keepdim=True)
    span = hi - lo
    out = torch.where(span > 0, (x - lo) / span.clamp_min(torch.finfo(x.dtype).tiny), torch.ones_like(x))
    return out.masked_fill(~pos, 0.0)


def _upcast(t: Tensor) -> Tensor:
    """Half-precision values to float32 for softmax/cosines; float32 and float64 stay as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
