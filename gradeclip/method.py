"""Grad-ECLIP itself (Zhao et al., arXiv 2502.18816, section III; the computation of the official code).

For an explained attention layer with values v_i, query q (class token / EOS token / ResNet mean token), keys k_i:

    o        = A v,  A = softmax(q k^T * D^-0.5)            single head over all D channels (paper eq. 7), or the
                                                           model's own heads with heads="multi" (section IV-C3)
    w_c      = d score / d o_c   at the query row          channel weights (eq. 17-18)
    lambda_i = minmax_i cos(q, k_i)                        "loosened" spatial weight (eq. 19-20); raw q, k
    map_i    = sum_c w_c * lambda_i * v_ic                 (eq. 21)

The score is the cosine of the L2-normalised image and text embeddings of the network *as recomputed*, so with
heads="single" it is the score of a slightly different network than the model; every result therefore also carries
the model's own score (``model_score``).

Images: last 1 layer, ReLU per layer, then summed over layers. Texts: last 8 layers, summed, then ReLU (the order
of the official notebooks); the query is the EOS token and lambda is normalised over all context positions.

Everything here works on tensors; ``explainer.py`` wraps it for images, strings and files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .adapters import ExplainedLayer, UnsupportedModelError

Tensor = torch.Tensor

HEADS = ("single", "multi")
SPATIAL = ("loosened", "softmax", "none")


def _upcast(t: Tensor) -> Tensor:
    """Half-precision values to float32 for softmax/cosines; float32 and float64 stay as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


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


def loosened_attention(q: Tensor, k: Tensor, positions: Tensor) -> Tensor:
    """lambda_i = cos(q, k_i), min-max normalised to [0, 1] over ``positions`` (bool, (N, T)); 0 elsewhere.

    q: (N, H, Dh) query of each head; k: (N, H, T, Dh). Returns (N, H, T).
    """
    cos = torch.einsum("nhd,nhtd->nht", F.normalize(_upcast(q), dim=-1), F.normalize(_upcast(k), dim=-1))
    return _minmax_over(cos, positions)


def _minmax_over(x: Tensor, positions: Tensor) -> Tensor:
    pos = positions[:, None, :]
    lo = x.masked_fill(~pos, float("inf")).amin(dim=-1, keepdim=True)
    hi = x.masked_fill(~pos, float("-inf")).amax(dim=-1, keepdim=True)
    span = hi - lo
    # Equal similarities everywhere (e.g. a single patch) carry no spatial preference: weight 1, not 0, so the map
    # falls back to the channel-weighted values instead of vanishing.
    out = torch.where(span > 0, (x - lo) / span.clamp_min(torch.finfo(x.dtype).tiny), torch.ones_like(x))
    return out.masked_fill(~pos, 0.0)


def _rows(t: Tensor, rows: Tensor) -> Tensor:
    """t[n, rows[n, r]] for t (N, T, ...) and rows (N, R)."""
    idx = rows.view(*rows.shape, *([1] * (t.dim() - 2))).expand(-1, -1, *t.shape[2:])
    return t.gather(1, idx)


@dataclass
class LayerTrace:
    """What the map of one explained layer needs: the attention output before out_proj (in the graph), and the
    values and spatial weights of the query row (detached)."""

    o: Tensor  # (N, R, D), R = all rows, or only the query row for the last layer
    o_rows: Tensor  # (N, R) index of each row of ``o`` in the sequence
    v: Tensor  # (N, T, D)
    spatial: Tensor  # (N, H, T): H = 1 for the single head, the model's heads with heads="multi"


def recomputed_forward(layers: Sequence[ExplainedLayer], x: Tensor, query: Tensor, *, heads: str = "single",
                       spatial: str = "loosened", mask: Optional[Tensor] = None,
                       spatial_positions: Optional[Tensor] = None) -> tuple[Tensor, list[LayerTrace]]:
    """Run ``layers`` on tokens ``x`` (N, T, D) with their attention recomputed, and return the pooled row after
    the last layer (N, D) and one ``LayerTrace`` per layer.

    query: (N,) the pooled row (class / EOS / mean token); mask: additive (T, T) or (N, T, T) attention mask;
    spatial_positions: bool (N, T), where lambda is min-max normalised (default: every position).
    Only the query row of the last layer is computed: it alone reaches the embedding.
    """
    if heads not in HEADS:
        raise ValueError(f"heads must be one of {HEADS}, got {heads!r}")
    if spatial not in SPATIAL:
        raise ValueError(f"spatial must be one of {SPATIAL}, got {spatial!r}")
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
            qq = _rows(q, query_rows)  # (N, 1, D)
            if spatial == "loosened":
                lam = loosened_attention(qq.reshape(n, n_heads, -1),
                                         k.reshape(n, t, n_heads, -1).transpose(1, 2), spatial_positions)
            elif spatial == "softmax":
                # the query's attention row: row 0 of the last layer (only the query row is computed there)
                lam = _upcast(weights[torch.arange(n), :, 0 if last else query])
            else:
                lam = torch.ones(n, n_heads, t, device=x.device)
        traces.append(LayerTrace(o=o, o_rows=rows, v=v.detach(), spatial=lam))
    return x[:, 0], traces


def model_forward(layers: Sequence[ExplainedLayer], x: Tensor, query: Tensor,
                  mask: Optional[Tensor] = None) -> Tensor:
    """The same layers with the model's own attention (no gradient): the model's own pooled row."""
    with torch.no_grad():
        pooled, _ = recomputed_forward(layers, x, query, heads="multi", spatial="none", mask=mask)
    return pooled


def channel_weights(scores: Tensor, traces: Sequence[LayerTrace], query: Tensor) -> list[Tensor]:
    """w = d score / d o at the query row, for every column of ``scores`` (N, K) from ONE batched backward.

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
    weights = []
    for tr, g in zip(traces, grads):
        # the query row of `o`: its position within the rows computed for this layer
        pos = (tr.o_rows == query[:, None]).float().argmax(dim=1)
        weights.append(g[:, torch.arange(n, device=g.device), pos])
    return weights


def layer_maps(weights: Tensor, trace: LayerTrace) -> Tensor:
    """map_t = sum_h lambda_t^h * sum_{c in head h} w_c v_tc, for (K, N, D) weights: returns (K, N, T)."""
    _, n, d = weights.shape
    heads = trace.spatial.shape[1]
    wv = (_upcast(weights)[:, :, None, :] * _upcast(trace.v)[None])  # (K, N, T, D)
    wv = wv.reshape(*wv.shape[:3], heads, d // heads).sum(-1)  # (K, N, T, H)
    return (wv * trace.spatial.transpose(1, 2)[None]).sum(-1)


def cosine_scores(embedding: Tensor, targets: Tensor) -> Tensor:
    """(N, K) cosine of each embedding (N, E) with each target embedding (K, E)."""
    return F.normalize(_upcast(embedding), dim=-1) @ F.normalize(_upcast(targets).to(embedding.device), dim=-1).T


@dataclass
class ImageMaps:
    grids: Tensor  # (N, K, h, w) raw maps, >= 0
    scores: Tensor  # (N, K) cosine of the recomputed network (the explained score)
    model_scores: Tensor  # (N, K) cosine of the model itself


def explain_image_tensor(tower, pixels: Tensor, text_embeddings: Tensor, *, layers: int = 1, heads: str = "single",
                         spatial: str = "loosened") -> ImageMaps:
    """Grad-ECLIP maps of a batch of images (N, 3, H, W) against K text embeddings (K, E): one forward of the image
    encoder, one batched backward for all K texts."""
    if layers < 1:  # tower.layers[-0:] would be every layer
        raise ValueError(f"the number of explained image layers must be at least 1, got {layers}")
    grid = tower.grid_of(pixels)
    n = pixels.shape[0]
    explained = tower.layers[-layers:]
    if len(explained) < layers:
        raise ValueError(f"the image tower has {len(tower.layers)} explainable layers, asked for {layers}")
    with torch.no_grad():
        x = tower.embed(pixels)
        for layer in tower.layers[:-layers]:
            x = layer.module(x)
    x = x.detach().requires_grad_(True)
    query = tower.query_rows(x)
    positions = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
    positions[:, tower.spatial_rows(x)] = True
    with torch.enable_grad():
        pooled, traces = recomputed_forward(explained, x, query, heads=heads, spatial=spatial,
                                            spatial_positions=positions)
        scores = cosine_scores(tower.finish(pooled), text_embeddings)
        weights = channel_weights(scores, traces, query)
    maps = sum(torch.relu(layer_maps(w, tr)) for w, tr in zip(weights, traces))  # ReLU per layer, then sum
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
                        heads: str = "single", spatial: str = "loosened") -> TokenMaps:
    """Grad-ECLIP token importances of texts (N, T) against image embeddings (N, E), one image per text (pass the
    same row N times for one image against N texts): one forward, one backward."""
    if layers < 1:  # tower.layers[-0:] would be every layer
        raise ValueError(f"the number of explained text layers must be at least 1, got {layers}")
    explained = tower.layers[-layers:]
    if len(explained) < layers:  # as for images; GradECLIP resolves a count beyond the depth (all, with a warning)
        raise ValueError(f"the text tower has {len(tower.layers)} explainable layers, asked for {layers}")
    mask = tower.attention_mask(token_ids)
    with torch.no_grad():
        x = tower.embed(token_ids)
        for layer in tower.layers[:-layers]:
            x = layer.module(x, attn_mask=mask)
    x = x.detach().requires_grad_(True)
    eos = tower.query_rows(token_ids)
    with torch.enable_grad():
        pooled, traces = recomputed_forward(explained, x, eos, heads=heads, spatial=spatial, mask=mask)
        emb = F.normalize(_upcast(tower.finish(pooled)), dim=-1)
        scores = (emb * F.normalize(_upcast(image_embeddings), dim=-1)).sum(-1)
        weights = channel_weights(scores[:, None], traces, eos)
    maps = torch.relu(sum(layer_maps(w, tr) for w, tr in zip(weights, traces)))[0]  # sum over layers, THEN ReLU
    positions = torch.arange(token_ids.shape[1], device=token_ids.device)[None]
    keep = (positions >= 1) & (positions < eos[:, None])
    if heads == "multi":
        model_scores = scores
    else:
        own = F.normalize(_upcast(tower.finish(model_forward(explained, x.detach(), eos, mask=mask))), dim=-1)
        model_scores = (own * F.normalize(_upcast(image_embeddings), dim=-1)).sum(-1)
    return TokenMaps((maps * keep).detach(), eos, scores.detach(), model_scores.detach())
