"""The one place that reads a CLIP's attention layers from their own parameters.

Grad-ECLIP recomputes the explained attention layers itself (single head over all channels, see ``method.py``),
so it needs the q/k/v/out projections of each layer as plain tensors. open_clip has several attention modules:
``nn.MultiheadAttention`` in the default blocks of open_clip 3.x, its own ``Attention`` in "custom" blocks (and in
newer releases), and ``AttentionPool2d`` at the end of the ResNet towers. Nothing here modifies a module or patches a
class: the adapters only *read* weights and call the block's own sub-modules (layer norms, MLP, layer scale).

Three views are built on top of that:
- ``AttentionWeights``: projections of one attention layer, and the model's own (multi-head) attention;
- ``ExplainedLayer``: one layer as ``x -> post(x, attention(pre(x)))``, so the method can swap the attention;
- ``ImageTower`` / ``TextTower``: embedding, the stack of layers, pooling and projection of each tower.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


class UnsupportedModelError(ValueError):
    """The model (or one of its layers) has a structure Grad-ECLIP cannot be computed on."""


# ---------------------------------------------------------------------------------------------------------------
# One attention layer
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AttentionWeights:
    """The projections of one attention layer, read from its module (no copy of the data, no mutation)."""

    q_weight: Tensor
    q_bias: Optional[Tensor]
    k_weight: Tensor
    k_bias: Optional[Tensor]
    v_weight: Tensor
    v_bias: Optional[Tensor]
    out_weight: Tensor
    out_bias: Optional[Tensor]
    num_heads: int
    # Extras of open_clip's own ``Attention`` (identity / None for the standard CLIP layers).
    q_norm: Callable[[Tensor], Tensor] = nn.Identity()
    k_norm: Callable[[Tensor], Tensor] = nn.Identity()
    head_scale: Optional[Tensor] = None
    inner_norm: Callable[[Tensor], Tensor] = nn.Identity()
    logit_scale: Optional[Tensor] = None
    logit_scale_max: float = math.log(100.0)

    @property
    def width(self) -> int:
        return self.q_weight.shape[0]

    @property
    def has_extras(self) -> bool:
        """True when the layer uses qk-norm, scaled-cosine attention or head scaling (open_clip custom blocks)."""
        return not (isinstance(self.q_norm, nn.Identity) and isinstance(self.k_norm, nn.Identity)
                    and self.head_scale is None and self.logit_scale is None)

    def qkv(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Raw q, k, v (the in-projection, bias included) of tokens ``h`` of shape (N, T, D)."""
        return (F.linear(h, self.q_weight, self.q_bias), F.linear(h, self.k_weight, self.k_bias),
                F.linear(h, self.v_weight, self.v_bias))

    def out(self, o: Tensor) -> Tensor:
        """The output projection (after the optional inner norm of open_clip's custom blocks)."""
        return F.linear(self.inner_norm(o), self.out_weight, self.out_bias)

    def split_heads(self, t: Tensor) -> Tensor:
        n, length, d = t.shape
        return t.reshape(n, length, self.num_heads, d // self.num_heads).transpose(1, 2)

    def model_attention(self, q: Tensor, k: Tensor, v: Tensor, q_rows: Tensor,
                        mask: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """The layer's own multi-head attention for the query rows ``q_rows``.

        q: (N, R, D) queries of the selected rows; k, v: (N, T, D); mask: additive (N, R, T) or None.
        Returns the attention output before ``out`` (N, R, D) and the attention weights (N, heads, R, T).
        """
        qh, kh, vh = self.split_heads(q), self.split_heads(k), self.split_heads(v)
        qh, kh = self.q_norm(qh), self.k_norm(kh)
        if self.logit_scale is not None:  # scaled cosine attention (Swin v2), as open_clip's Attention does it
            logits = F.normalize(qh, dim=-1) @ F.normalize(kh, dim=-1).transpose(-1, -2)
            logits = logits * torch.clamp(self.logit_scale, max=self.logit_scale_max).exp()
        else:
            logits = (qh @ kh.transpose(-1, -2)) * qh.shape[-1] ** -0.5
        if logits.dtype in (torch.float16, torch.bfloat16):  # softmax in float32 for half-precision models
            logits = logits.float()
        if mask is not None:
            logits = logits + mask[:, None].to(logits.dtype)
        attn = logits.softmax(dim=-1).to(v.dtype)
        o = attn @ vh
        if self.head_scale is not None:
            o = o * self.head_scale
        n, _, r, hd = o.shape
        return o.transpose(1, 2).reshape(n, r, hd * self.num_heads), attn


def attention_weights(module: nn.Module) -> AttentionWeights:
    """Read the projections of an attention module: nn.MultiheadAttention, open_clip's Attention, the ResNet
    AttentionPool2d, or any module with open_clip-style (``in_proj_weight``/``out_proj``) or timm-style
    (``qkv``/``proj``) parameters."""
    if isinstance(module, nn.MultiheadAttention):
        if module.bias_k is not None or module.add_zero_attn:
            raise UnsupportedModelError("nn.MultiheadAttention with bias_k/add_zero_attn is not supported")
        if module._qkv_same_embed_dim:
            qw, kw, vw = module.in_proj_weight.chunk(3)
        else:
            qw, kw, vw = module.q_proj_weight, module.k_proj_weight, module.v_proj_weight
        qb, kb, vb = module.in_proj_bias.chunk(3) if module.in_proj_bias is not None else (None, None, None)
        return AttentionWeights(qw, qb, kw, kb, vw, vb, module.out_proj.weight, module.out_proj.bias,
                                module.num_heads)
    if all(hasattr(module, a) for a in ("q_proj", "k_proj", "v_proj", "c_proj")):  # ResNet AttentionPool2d
        return AttentionWeights(module.q_proj.weight, module.q_proj.bias, module.k_proj.weight, module.k_proj.bias,
                                module.v_proj.weight, module.v_proj.bias, module.c_proj.weight, module.c_proj.bias,
                                module.num_heads)
    if hasattr(module, "in_proj_weight") and hasattr(module, "out_proj"):  # open_clip's own Attention
        bias = getattr(module, "in_proj_bias", None)
        qw, kw, vw = module.in_proj_weight.chunk(3)
        qb, kb, vb = bias.chunk(3) if bias is not None else (None, None, None)
        return AttentionWeights(
            qw, qb, kw, kb, vw, vb, module.out_proj.weight, module.out_proj.bias, module.num_heads,
            q_norm=getattr(module, "ln_q", nn.Identity()), k_norm=getattr(module, "ln_k", nn.Identity()),
            head_scale=getattr(module, "head_scale", None), inner_norm=getattr(module, "ln_inner", nn.Identity()),
            logit_scale=getattr(module, "logit_scale", None),
            logit_scale_max=getattr(module, "logit_scale_max", math.log(100.0)))
    if hasattr(module, "qkv") and hasattr(module, "proj") and hasattr(module, "num_heads"):  # timm-style fused qkv
        qw, kw, vw = module.qkv.weight.chunk(3)
        qb, kb, vb = module.qkv.bias.chunk(3) if module.qkv.bias is not None else (None, None, None)
        return AttentionWeights(qw, qb, kw, kb, vw, vb, module.proj.weight, module.proj.bias, module.num_heads,
                                q_norm=getattr(module, "q_norm", nn.Identity()),
                                k_norm=getattr(module, "k_norm", nn.Identity()))
    raise UnsupportedModelError(f"cannot read q/k/v from attention module of type {type(module).__name__}")


# ---------------------------------------------------------------------------------------------------------------
# One explained layer: x -> post(x, attention(pre(x)))
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExplainedLayer:
    """A layer whose attention the method recomputes. ``pre`` gives the tokens the attention reads (ln_1 for a
    transformer block), ``post(x_rows, o_rows)`` the layer output at those rows from the attention output ``o``
    before the output projection (residual + MLP for a block, just the projection for the ResNet pool), and
    ``branch(o)`` what the attention adds to the residual stream (output projection and layer scale of a block,
    without the residual and the MLP; the projection for the pool), for methods that rebuild a block's paths
    (CLIP Surgery)."""

    attention: AttentionWeights
    pre: Callable[[Tensor], Tensor]
    post: Callable[[Tensor, Tensor], Tensor]
    module: nn.Module
    branch: Callable[[Tensor], Tensor]


def residual_block_layer(block: nn.Module) -> ExplainedLayer:
    """open_clip's ResidualAttentionBlock / CustomResidualAttentionBlock (pre-norm transformer block)."""
    if hasattr(block, "ln_1_kv"):
        raise UnsupportedModelError("cross-attention blocks are not supported")
    attn = attention_weights(block.attn)
    ls_1 = getattr(block, "ls_1", nn.Identity())
    ls_2 = getattr(block, "ls_2", nn.Identity())
    ln_attn = getattr(block, "ln_attn", nn.Identity())

    def branch(o: Tensor) -> Tensor:
        return ls_1(ln_attn(attn.out(o)))

    def post(x: Tensor, o: Tensor) -> Tensor:
        x = x + branch(o)
        return x + ls_2(block.mlp(block.ln_2(x)))

    return ExplainedLayer(attn, block.ln_1, post, block, branch)


def attention_pool_layer(pool: nn.Module) -> ExplainedLayer:
    """The ResNet tower's AttentionPool2d: one attention layer whose query is the mean token; its projected output
    at that row is the image embedding."""
    attn = attention_weights(pool)
    return ExplainedLayer(attn, lambda x: x, lambda x, o: attn.out(o), pool, attn.out)


# ---------------------------------------------------------------------------------------------------------------
# Positional embeddings on other grids (keep-aspect inputs)
# ---------------------------------------------------------------------------------------------------------------
def resize_grid_embedding(pos: Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> Tensor:
    """Resize a (1 + h*w, D) positional embedding (leading class/mean-token row kept as is) to a new grid,
    bicubically with align_corners=False as in the official Grad-ECLIP code."""
    if tuple(old_grid) == tuple(new_grid):
        return pos
    cls, grid = pos[:1], pos[1:]
    d = grid.shape[-1]
    grid = grid.reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], d).to(pos.dtype)
    return torch.cat([cls, grid], dim=0)


# ---------------------------------------------------------------------------------------------------------------
# Towers
# ---------------------------------------------------------------------------------------------------------------
class ImageTower:
    """The image side of an open_clip CLIP as: tokens = embed(pixels); layers; embedding = finish(pooled row).

    For a ViT the query row is the class token (index 0) and ``finish`` is ln_post + proj. For a ModifiedResNet the
    trunk (stem + residual stages) is the embedding, the only explained layer is the attention pool, and its query
    row is the mean token (index 0); ``finish`` is the identity.
    """

    def __init__(self, visual: nn.Module):
        self.visual = visual
        if hasattr(visual, "transformer") and hasattr(visual, "conv1"):
            self.kind = "vit"
            if getattr(visual, "attn_pool", None) is not None:
                raise UnsupportedModelError("ViT towers with an attentional pooler (CoCa) are not supported")
            if visual.pool_type != "tok" or visual.final_ln_after_pool:
                raise UnsupportedModelError(
                    f"ViT pool_type={visual.pool_type!r} is not supported: Grad-ECLIP explains the class token")
            self.patch_size = tuple(visual.patch_size)
            self.native_grid = tuple(visual.grid_size)
            self.layers = [residual_block_layer(b) for b in visual.transformer.resblocks]
        elif hasattr(visual, "attnpool") and hasattr(visual, "layer4"):
            self.kind = "resnet"
            # Total stride of ModifiedResNet: stem /4 then three strided stages (x2 each) = 32.
            self.patch_size = (32, 32)
            side = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
            self.native_grid = (side // 32, side // 32)
            self.layers = [attention_pool_layer(visual.attnpool)]
        else:
            raise UnsupportedModelError(f"unsupported image tower {type(visual).__name__} "
                                        "(expected open_clip VisionTransformer or ModifiedResNet)")

    @property
    def dtype(self) -> torch.dtype:
        return self.layers[0].attention.q_weight.dtype

    def grid_of(self, pixels: Tensor) -> tuple[int, int]:
        return pixels.shape[-2] // self.patch_size[0], pixels.shape[-1] // self.patch_size[1]

    def embed(self, pixels: Tensor) -> Tensor:
        """Tokens entering the first layer, (N, 1 + h*w, D); positional embeddings resized to the input grid."""
        v = self.visual
        pixels = pixels.to(self.dtype)
        grid = self.grid_of(pixels)
        if self.kind == "vit":
            x = v.conv1(pixels).flatten(2).transpose(1, 2)
            cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
            x = torch.cat([cls, x], dim=1)
            x = x + resize_grid_embedding(v.positional_embedding, self.native_grid, grid).to(x.dtype)
            return v.ln_pre(x)  # patch dropout is the identity in eval mode
        return self.pool_tokens(self.feature_map(pixels))

    def feature_map(self, pixels: Tensor) -> Tensor:
        """ResNet only: the trunk's last feature map (N, C, h, w), what the attention pool reads (Grad-CAM's layer,
        MaskCLIP's dense features)."""
        if self.kind != "resnet":
            raise UnsupportedModelError("feature_map is the ResNet trunk's output; a ViT has tokens (embed)")
        v = self.visual
        return v.layer4(v.layer3(v.layer2(v.layer1(v.stem(pixels.to(self.dtype))))))

    def pool_tokens(self, features: Tensor) -> Tensor:
        """ResNet only: the attention pool's input tokens from a feature map (N, C, h, w): the mean token first,
        then the cells in row-major order, plus the positional embedding (resized to the map's grid)."""
        x = features.flatten(2).transpose(1, 2)  # (N, h*w, C)
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
        pos = resize_grid_embedding(self.visual.attnpool.positional_embedding, self.native_grid,
                                    tuple(features.shape[-2:]))
        return x + pos.to(x.dtype)

    def query_rows(self, tokens: Tensor) -> Tensor:
        return torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)

    def spatial_rows(self, tokens: Tensor) -> slice:
        """Rows that form the spatial map (the patches / feature-map cells)."""
        return slice(1, None)

    def finish(self, pooled: Tensor) -> Tensor:
        if self.kind == "vit":
            pooled = self.visual.ln_post(pooled)
            return pooled @ self.visual.proj if self.visual.proj is not None else pooled
        return pooled


class TextTower:
    """The text side: open_clip's CLIP keeps the text modules on the model itself, CustomTextCLIP in ``.text``."""

    def __init__(self, model: nn.Module):
        text = getattr(model, "text", None)
        src = text if text is not None else model
        if getattr(src, "cls_emb", None) is not None:
            raise UnsupportedModelError("text towers with an appended class token (CoCa) are not supported")
        if not hasattr(src, "token_embedding"):
            raise UnsupportedModelError(f"unsupported text tower in {type(model).__name__} (HF text towers are "
                                        "not supported)")
        self.src = src
        self.pool_type = getattr(src, "text_pool_type", getattr(src, "pool_type", "argmax"))
        if self.pool_type not in ("argmax", "eos", "last"):
            raise UnsupportedModelError(f"text pool_type={self.pool_type!r} is not supported")
        self.eos_id = getattr(src, "text_eos_id", getattr(src, "eos_id", None))
        self.context_length = src.positional_embedding.shape[0]
        self.layers = [residual_block_layer(b) for b in src.transformer.resblocks]

    @property
    def dtype(self) -> torch.dtype:
        return self.layers[0].attention.q_weight.dtype

    def embed(self, token_ids: Tensor) -> Tensor:
        x = self.src.token_embedding(token_ids).to(self.dtype)
        return x + self.src.positional_embedding[: token_ids.shape[1]].to(self.dtype)

    def attention_mask(self, token_ids: Tensor) -> Optional[Tensor]:
        """Additive (T, T) causal mask, or None for bidirectional text towers."""
        mask = getattr(self.src, "attn_mask", None)
        if mask is None:
            return None
        t = token_ids.shape[1]
        return mask[:t, :t]

    def query_rows(self, token_ids: Tensor) -> Tensor:
        """The pooled (EOS) position of each text, as open_clip's text_global_pool picks it."""
        if self.pool_type == "argmax":
            return token_ids.argmax(dim=-1)
        if self.pool_type == "eos":
            return (token_ids == self.eos_id).int().argmax(dim=-1)
        return torch.full((token_ids.shape[0],), token_ids.shape[1] - 1, dtype=torch.long, device=token_ids.device)

    def finish(self, pooled: Tensor) -> Tensor:
        pooled = self.src.ln_final(pooled)
        proj = self.src.text_projection
        if proj is None:
            return pooled
        return proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj
