"""The comparison methods of ``gradeclip.baselines`` against independent references on tiny random CLIPs.

Each test says which kind of check it is:
- "re-implementation": the method written again here, differently (the model's own modules and torch's own
  attention where they expose what is needed, sequence-first layouts as the authors' code, loops where the library
  batches), on identical weights;
- "hand-computed": a small case whose answer is known by construction.
The comparisons with the authors' own code on seeded random ViT-B-16 weights are opt-in
(``tests/test_baselines_authors.py``): their code cannot be fetched in CI.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradeclip import baselines
from gradeclip.adapters import UnsupportedModelError
from tests.conftest import tiny_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = ["a red cube", "a small blue sphere", "gray"]


@pytest.fixture(scope="module")
def vit_ls():
    """A tiny ViT with layer scale (as the shipped toy CLIP has) and three blocks."""
    return tiny_clip("vit", seed=3, ls_init_value=0.1, layers=3)


def pixels_for(clip, n=3, seed=0, size=None):
    size = size or clip.preprocessing.size
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(seed))


def texts_embedded(clip, texts):
    with torch.no_grad():
        return F.normalize(clip.model.encode_text(clip.tokenizer(list(texts))).float(), dim=-1)


def minmax(m):
    lo = m.amin(dim=(-2, -1), keepdim=True)
    return (m - lo) / (m.amax(dim=(-2, -1), keepdim=True) - lo)


def run_blocks(visual, pixels, upto):
    """Tokens after the first ``upto`` blocks, by the model's own modules."""
    x = visual._embeds(pixels)
    for block in visual.transformer.resblocks[:upto]:
        x = block(x)
    return x


def grid(clip, m, pixels):
    patch = clip.model.visual.patch_size[0] if hasattr(clip.model.visual, "patch_size") else 32
    return m.reshape(len(m), pixels.shape[-2] // patch, pixels.shape[-1] // patch)


def handwritten_block(block, x, keep):
    """One open_clip ResidualAttentionBlock written out sequence-first, as Chefer's and LeGrad's hooked CLIP blocks
    compute it: q is scaled before the product, heads live in the batch dimension of bmm. The attention
    probabilities (batch, heads, T, T) are appended to ``keep``."""
    attn = block.attn
    t, n, d = x.shape[1], x.shape[0], x.shape[2]
    heads = attn.num_heads
    seq = block.ln_1(x).transpose(0, 1)  # (T, N, D)
    q, k, v = F.linear(seq, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q = q * (d // heads) ** -0.5
    q = q.contiguous().view(t, n * heads, -1).transpose(0, 1)
    k = k.contiguous().view(t, n * heads, -1).transpose(0, 1)
    v = v.contiguous().view(t, n * heads, -1).transpose(0, 1)
    probs = torch.bmm(q, k.transpose(1, 2)).softmax(dim=-1).view(n, heads, t, t)
    keep.append(probs)
    o = torch.bmm(probs.view(n * heads, t, t), v).transpose(0, 1).reshape(t, n, d).transpose(0, 1)
    x = x + block.ls_1(attn.out_proj(o))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


# ---------------------------------------------------------------------------------------------------------------
# The registry and the architectures
# ---------------------------------------------------------------------------------------------------------------
def test_registry_names_the_issues_methods():
    """hand-computed: the names the issue asks for, next to the earlier ones."""
    assert set(baselines.METHODS) >= {"raw-attention", "rollout", "grad-cam", "game", "maskclip", "clip-surgery",
                                      "m2ib", "rise", "legrad", "attention-eclip", "grad-eclip", "grad-eclip-multi",
                                      "input-gradient", "gradient-x-input"}


@pytest.mark.parametrize("kind", ["vit", "custom", "resnet"])
def test_every_method_runs_or_names_the_method_and_architecture(kind):
    """hand-computed: on a ViT every method but attention-eclip gives one finite map per image on the patch grid
    (RISE and the pixel gradients: on the pixels); on a ResNet the ViT-only methods raise an error naming the method
    and the architecture, before and during the call."""
    clip = tiny_clip(kind, layers=3) if kind != "resnet" else tiny_clip("resnet")
    size = clip.preprocessing.size[0]
    pixels = pixels_for(clip)
    options = {"rise": {"n_masks": 20}, "m2ib": {"steps": 2, "samples": 2}}
    for name in baselines.METHODS:
        explain = baselines.get_method(name, **options.get(name, {}))
        if name == "attention-eclip":
            with pytest.raises(baselines.MethodNotAvailableError, match="2605.12952"):
                explain(clip, pixels, TEXTS)
            continue
        if kind == "resnet" and name in baselines.VIT_ONLY:
            for call in (lambda: explain(clip, pixels, TEXTS), lambda: baselines.check_method(name, clip)):
                with pytest.raises(UnsupportedModelError, match=rf"{name} is defined for ViT.*ResNet"):
                    call()
            continue
        baselines.check_method(name, clip)
        maps = explain(clip, pixels, TEXTS)
        side = size if name in ("rise", "input-gradient", "gradient-x-input") else size // (
            32 if kind == "resnet" else 8)
        assert tuple(maps.shape) == (3, side, side), name
        assert torch.isfinite(torch.as_tensor(maps)).all(), name
    assert set(baselines.RESNET_METHODS) | set(baselines.VIT_ONLY) | {"attention-eclip"} == set(baselines.METHODS)


def test_maps_of_a_batch_equal_maps_of_single_images(vit_ls):
    """hand-computed: the images of a batch are independent (the benchmark batches scenes)."""
    pixels = pixels_for(vit_ls)
    options = {"rise": {"n_masks": 30}, "m2ib": {"steps": 3, "samples": 3}}
    for name in baselines.METHODS:
        if name == "attention-eclip":
            continue
        explain = baselines.get_method(name, **options.get(name, {}))
        together = torch.as_tensor(explain(vit_ls, pixels, TEXTS))
        for i in range(len(TEXTS)):
            alone = torch.as_tensor(explain(vit_ls, pixels[i:i + 1], TEXTS[i:i + 1]))[0]
            torch.testing.assert_close(together[i], alone, rtol=1e-4, atol=1e-6, msg=name)


def test_methods_run_on_keep_aspect_inputs(vit):
    """hand-computed: a non-square input (4 x 6 patches) gives a 4 x 6 map; the model's embedding through the
    adapters equals its own encode_image at its input size."""
    pixels = pixels_for(vit, n=2, size=(32, 48))
    for name in ("raw-attention", "rollout", "grad-cam", "game", "maskclip", "clip-surgery", "legrad"):
        assert tuple(baselines.METHODS[name](vit, pixels, TEXTS[:2]).shape) == (2, 4, 6), name
    assert tuple(baselines.rise(vit, pixels, TEXTS[:2], n_masks=10).shape) == (2, 32, 48)
    assert tuple(baselines.m2ib(vit, pixels, TEXTS[:2], layer=0, steps=1).shape) == (2, 4, 6)
    square = pixels_for(vit, n=2)
    with torch.no_grad():
        torch.testing.assert_close(baselines.tower_image_embeddings(baselines.image_tower(vit), square),
                                   vit.model.encode_image(square), rtol=1e-5, atol=1e-6)


def test_options_are_checked():
    """hand-computed: unknown options and options of the wrong type are errors that name them."""
    with pytest.raises(ValueError, match="no option 'masks'.*n_masks"):
        baselines.get_method("rise", masks=10)
    with pytest.raises(ValueError, match="n_masks='many' must be a int"):
        baselines.get_method("rise", n_masks="many")
    with pytest.raises(ValueError, match="unknown method 'gradcam'"):
        baselines.get_method("gradcam")
    assert baselines.method_options("rise")["n_masks"] == 2000
    assert baselines.method_options("m2ib") == {"layer": -3, "beta": 0.1, "var": 1.0, "lr": 1.0, "steps": 10,
                                                "samples": 10, "seed": 0, "normalize": True}


def test_block_options_are_checked_against_the_models_depth_before_any_work():
    """hand-computed: on a ViT of 2 blocks M2IB's default block (-3) does not exist; check_method says so, naming the
    method and the option, before any image is explained; a block that exists passes, as the defaults do on 3."""
    shallow, deep = tiny_clip("vit", layers=2), tiny_clip("vit", layers=3)
    with pytest.raises(ValueError, match=r"m2ib's layer=-3 is outside the image tower's 2 blocks"):
        baselines.check_method("m2ib", shallow)
    baselines.check_method("m2ib", shallow, {"layer": -2})
    with pytest.raises(ValueError, match=r"legrad's layer_index=5 is outside"):
        baselines.check_method("legrad", deep, {"layer_index": 5})
    for name in baselines.BLOCK_OPTIONS:
        baselines.check_method(name, deep)
        assert baselines.BLOCK_OPTIONS[name] in baselines.method_options(name)


# ---------------------------------------------------------------------------------------------------------------
# Attention maps
# ---------------------------------------------------------------------------------------------------------------
def test_raw_attention_equals_torch_attention_weights(vit_ls, resnet):
    """re-implementation: torch's own multi-head attention (need_weights=True, heads averaged) on the last block's
    ln_1 tokens, class row; for the ResNet, F.multi_head_attention_forward with the attention pool's weights; the
    single-head row as softmax(q k^T / sqrt(D)) from in_proj's q and k."""
    pixels = pixels_for(vit_ls)
    visual = vit_ls.model.visual
    with torch.no_grad():
        x = run_blocks(visual, pixels, 2)
        last = visual.transformer.resblocks[-1]
        h = last.ln_1(x)
        _, weights = last.attn(h, h, h, need_weights=True, average_attn_weights=True)
        torch.testing.assert_close(baselines.raw_attention(vit_ls, pixels, TEXTS),
                                   grid(vit_ls, weights[:, 0, 1:], pixels), rtol=1e-5, atol=1e-7)
        q, k, _ = F.linear(h, last.attn.in_proj_weight, last.attn.in_proj_bias).chunk(3, dim=-1)
        single = torch.softmax(q[:, :1] @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)[:, 0, 1:]
        torch.testing.assert_close(baselines.raw_attention_single(vit_ls, pixels, TEXTS), grid(vit_ls, single, pixels),
                                   rtol=1e-5, atol=1e-7)

        rpix = pixels_for(resnet, n=2)
        pool = resnet.model.visual.attnpool
        v = resnet.model.visual
        feats = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(rpix)))))
        seq = feats.flatten(2).permute(2, 0, 1)
        seq = torch.cat([seq.mean(0, keepdim=True), seq]) + pool.positional_embedding[:, None]
        _, weights = F.multi_head_attention_forward(
            seq, seq, seq, seq.shape[-1], pool.num_heads, None,
            torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]), None, None, False, 0.0,
            pool.c_proj.weight, pool.c_proj.bias, training=False, need_weights=True, use_separate_proj_weight=True,
            q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight)
        torch.testing.assert_close(baselines.raw_attention(resnet, rpix, ["x", "y"]),
                                   weights[:, 0, 1:].reshape(2, 2, 2), rtol=1e-5, atol=1e-7)


def test_rollout_equals_a_numpy_product_of_torch_attention(vit_ls):
    """re-implementation: each block's head-averaged attention from torch's multi-head attention, then in numpy
    0.5 * (A + I) (rows of A sum to 1) multiplied from the first block (start_layer=0) or from the second."""
    pixels = pixels_for(vit_ls)
    visual = vit_ls.model.visual
    with torch.no_grad():
        x = visual._embeds(pixels)
        attentions = []
        for block in visual.transformer.resblocks:
            h = block.ln_1(x)
            attentions.append(block.attn(h, h, h, need_weights=True)[1].double().numpy())
            x = block(x)
    eye = np.eye(attentions[0].shape[-1])
    for start in (0, 1, -1):
        joint = 0.5 * (attentions[start] + eye)
        for a in attentions[start % 3 + 1:]:
            joint = np.einsum("nij,njk->nik", 0.5 * (a + eye), joint)
        expected = torch.from_numpy(joint[:, 0, 1:]).float()
        torch.testing.assert_close(baselines.rollout(vit_ls, pixels, TEXTS, start_layer=start),
                                   grid(vit_ls, expected, pixels), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="start_layer=3 is outside the image tower's 3 blocks"):
        baselines.rollout(vit_ls, pixels, TEXTS, start_layer=3)


# ---------------------------------------------------------------------------------------------------------------
# Gradient maps
# ---------------------------------------------------------------------------------------------------------------
def test_grad_cam_equals_autograd_through_the_models_own_modules(vit_ls):
    """re-implementation: the score through the model's own last block and pooling (ViT) or attention pool
    (ResNet), its gradient with respect to that block's input tokens / the layer4 feature map by autograd,
    weights averaged over tokens / cells, ReLU of the weighted sum."""
    pixels = pixels_for(vit_ls)
    text = texts_embedded(vit_ls, TEXTS)
    visual = vit_ls.model.visual
    with torch.no_grad():
        x = run_blocks(visual, pixels, 2)
    x.requires_grad_(True)
    out = visual.transformer.resblocks[-1](x)
    score = F.cosine_similarity(visual.ln_post(out[:, 0]) @ visual.proj, text, dim=-1)
    gradient, = torch.autograd.grad(score.sum(), x)
    expected = torch.relu((x.detach()[:, 1:] * gradient.mean(dim=1, keepdim=True)).sum(-1))
    torch.testing.assert_close(baselines.grad_cam(vit_ls, pixels, TEXTS), grid(vit_ls, expected, pixels),
                               rtol=1e-4, atol=1e-7)

    resnet = tiny_clip("resnet", seed=3)  # a tiny random ResNet whose first map is positive (ReLU leaves something)
    rpix = pixels_for(resnet, n=2, seed=1)
    rtext = texts_embedded(resnet, TEXTS[:2])
    v = resnet.model.visual
    with torch.no_grad():
        feats = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(rpix)))))
    feats.requires_grad_(True)
    score = F.cosine_similarity(v.attnpool(feats), rtext, dim=-1)
    gradient, = torch.autograd.grad(score.sum(), feats)
    expected = torch.relu((feats.detach() * gradient.mean(dim=(2, 3), keepdim=True)).sum(1))
    assert expected.abs().max() > 0  # something to compare
    torch.testing.assert_close(baselines.grad_cam(resnet, rpix, TEXTS[:2]), expected, rtol=1e-4, atol=1e-8)


def test_grad_cam_single_differentiates_the_single_head_recomputation(vit):
    """re-implementation: as the Grad-ECLIP repository's grad_cam, the score of the last block recomputed with one
    head over all channels (written out here), gradient w.r.t. that block's input."""
    pixels = pixels_for(vit)
    text = texts_embedded(vit, TEXTS)
    visual = vit.model.visual
    with torch.no_grad():
        x = run_blocks(visual, pixels, 1)
    x.requires_grad_(True)
    block = visual.transformer.resblocks[-1]
    q, k, v = F.linear(block.ln_1(x), block.attn.in_proj_weight, block.attn.in_proj_bias).chunk(3, dim=-1)
    o = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1) @ v
    y = x + block.attn.out_proj(o)
    y = y + block.mlp(block.ln_2(y))
    score = F.cosine_similarity(visual.ln_post(y[:, 0]) @ visual.proj, text, dim=-1)
    gradient, = torch.autograd.grad(score.sum(), x)
    expected = torch.relu((x.detach()[:, 1:] * gradient.mean(dim=1, keepdim=True)).sum(-1))
    torch.testing.assert_close(baselines.grad_cam_single(vit, pixels, TEXTS), grid(vit, expected, pixels),
                               rtol=1e-4, atol=1e-7)


def test_game_equals_chefers_relevance_on_handwritten_blocks(vit_ls):
    """re-implementation: the blocks written out sequence-first as Chefer's CLIP does, the logit
    (logit scale x cosine) differentiated w.r.t. each block's attention probabilities, then R += cam @ R."""
    pixels = pixels_for(vit_ls)
    text = texts_embedded(vit_ls, TEXTS)
    visual = vit_ls.model.visual
    for start in (-1, 0):
        probs = []
        with torch.no_grad():
            x = run_blocks(visual, pixels, start % 3)
        x.requires_grad_(True)
        y = x
        for block in visual.transformer.resblocks[start % 3:]:
            y = handwritten_block(block, y, probs)
        logit = vit_ls.model.logit_scale.exp() * F.cosine_similarity(visual.ln_post(y[:, 0]) @ visual.proj, text)
        grads = torch.autograd.grad(logit.sum(), probs)
        r = torch.eye(y.shape[1]).repeat(len(y), 1, 1)
        for p, g in zip(probs, grads):
            cam = (g * p.detach()).clamp(min=0).mean(dim=1)
            r = r + torch.bmm(cam, r)
        torch.testing.assert_close(baselines.game(vit_ls, pixels, TEXTS, start_layer=start),
                                   grid(vit_ls, r[:, 0, 1:], pixels), rtol=1e-4, atol=1e-6)


def test_legrad_equals_per_block_gradients_on_handwritten_blocks(vit_ls):
    """re-implementation: LeWrapper.compute_legrad_clip's steps on blocks written out sequence-first: each block's
    output tokens averaged, ln_post, projection, cosine with the text; its own gradient w.r.t. that block's
    attention probabilities (one autograd call per block), clipped, averaged over heads and rows; summed; min-max."""
    pixels = pixels_for(vit_ls)
    text = texts_embedded(vit_ls, TEXTS)
    visual = vit_ls.model.visual
    for layer_index in (-2, 0):
        start = layer_index % 3
        with torch.no_grad():
            x = run_blocks(visual, pixels, start)
        x.requires_grad_(True)
        probs, outputs = [], []
        y = x
        for block in visual.transformer.resblocks[start:]:
            y = handwritten_block(block, y, probs)
            outputs.append(y)
        total = 0
        for p, out in zip(probs, outputs):
            feature = F.normalize(visual.ln_post(out.mean(dim=1)) @ visual.proj, dim=-1)
            g, = torch.autograd.grad((feature * text).sum(), p, retain_graph=True)
            total = total + g.clamp(min=0).mean(dim=1).mean(dim=1)[:, 1:]
        torch.testing.assert_close(baselines.legrad(vit_ls, pixels, TEXTS, layer_index=layer_index),
                                   minmax(grid(vit_ls, total, pixels)), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Dense similarity maps
# ---------------------------------------------------------------------------------------------------------------
def test_maskclip_equals_the_value_path_of_the_last_block(vit_ls, resnet):
    """re-implementation: MaskCLIP's ``return_qkv`` path (v from in_proj, out_proj, + residual, + MLP, ln_post,
    proj) and its ResNet head (v_proj then c_proj on each cell), cosine with the text, min-max."""
    pixels = pixels_for(vit_ls)
    text = texts_embedded(vit_ls, TEXTS)
    visual = vit_ls.model.visual
    with torch.no_grad():
        x = run_blocks(visual, pixels, 2)
        block = visual.transformer.resblocks[-1]
        v = F.linear(block.ln_1(x), block.attn.in_proj_weight, block.attn.in_proj_bias).chunk(3, dim=-1)[2]
        y = x + block.ls_1(block.attn.out_proj(v))
        y = y + block.ls_2(block.mlp(block.ln_2(y)))
        dense = visual.ln_post(y[:, 1:]) @ visual.proj
        sims = F.cosine_similarity(dense, text[:, None], dim=-1)
        torch.testing.assert_close(baselines.maskclip(vit_ls, pixels, TEXTS), minmax(grid(vit_ls, sims, pixels)),
                                   rtol=1e-4, atol=1e-6)

        rpix = pixels_for(resnet, n=2)
        rv = resnet.model.visual
        feats = rv.layer4(rv.layer3(rv.layer2(rv.layer1(rv.stem(rpix)))))
        cells = feats.permute(0, 2, 3, 1)
        dense = rv.attnpool.c_proj(rv.attnpool.v_proj(cells))
        sims = F.cosine_similarity(dense, texts_embedded(resnet, TEXTS[:2])[:, None, None], dim=-1)
        torch.testing.assert_close(baselines.maskclip(resnet, rpix, TEXTS[:2]), minmax(sims), rtol=1e-4, atol=1e-6)


class SurgeryAttention(torch.nn.Module):
    """CLIP Surgery's dual-path attention as its clip_surgery_model.py writes it (B, N, C), for the reference."""

    def __init__(self, attn):
        super().__init__()
        self.attn = attn

    def forward(self, x):
        b, n, c = x.shape
        heads = self.attn.num_heads
        qkv = F.linear(x, self.attn.in_proj_weight, self.attn.in_proj_bias)
        qkv = qkv.reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scale = (c // heads) ** -0.5
        attn_ori = ((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1)
        attn = ((v @ v.transpose(-2, -1)) * scale).softmax(dim=-1)
        x_ori = (attn_ori @ v).transpose(1, 2).reshape(b, n, c)
        x_new = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.attn.out_proj(x_new), self.attn.out_proj(x_ori)


def test_clip_surgery_equals_the_official_dual_path_and_feature_surgery(vit_ls, resnet):
    """re-implementation: the dual path as clip_surgery_model.py's ResidualAttentionBlock runs it (the new path adds
    the v-v attention without FFN; its input is always the original path's ln_1 tokens), the class token from the
    original path, ln_post and proj on all tokens; text features by the prompt ensemble written as a loop; feature
    surgery with the empty string's redundant features, min-max over the patches. ResNet: q = k = v = v_proj."""
    pixels = pixels_for(vit_ls)
    visual = vit_ls.model.visual
    templates = baselines.SURGERY_TEMPLATES

    def ensemble(model_clip, text):
        feats = texts_embedded(model_clip, [t.format(text) for t in templates])
        mean = feats.mean(dim=0)
        return mean / mean.norm()

    with torch.no_grad():
        for blocks in (2, 6):  # the tower has 3: 6 means all of them
            first = 3 - min(blocks, 3)
            x = run_blocks(visual, pixels, first)
            x_ori, x_new = x, x.clone()
            for block in visual.transformer.resblocks[first:]:
                new_res, ori_res = SurgeryAttention(block.attn)(block.ln_1(x_ori))
                x_ori = x_ori + block.ls_1(ori_res)
                x_ori = x_ori + block.ls_2(block.mlp(block.ln_2(x_ori)))
                x_new = x_new + block.ls_1(new_res)
            x_new[:, 0] = x_ori[:, 0]
            feats = visual.ln_post(x_new) @ visual.proj
            feats = feats / feats.norm(dim=-1, keepdim=True)
            redundant = ensemble(vit_ls, "")
            sims = torch.stack([feats[i, 1:] @ (ensemble(vit_ls, t) - redundant) for i, t in enumerate(TEXTS)])
            torch.testing.assert_close(baselines.clip_surgery(vit_ls, pixels, TEXTS, blocks=blocks),
                                       minmax(grid(vit_ls, sims, pixels)), rtol=1e-4, atol=1e-5)

        rpix = pixels_for(resnet, n=2)
        rv = resnet.model.visual
        pool = rv.attnpool
        feats = rv.layer4(rv.layer3(rv.layer2(rv.layer1(rv.stem(rpix)))))
        seq = feats.flatten(2).transpose(1, 2)
        seq = torch.cat([seq.mean(1, keepdim=True), seq], 1) + pool.positional_embedding
        b, n, c = seq.shape
        v = pool.v_proj(seq).reshape(b, n, pool.num_heads, -1).transpose(1, 2)
        o = ((v @ v.transpose(-2, -1)) * v.shape[-1] ** -0.5).softmax(-1) @ v
        out = pool.c_proj(o.transpose(1, 2).reshape(b, n, c))
        out = out / out.norm(dim=-1, keepdim=True)
        redundant = ensemble(resnet, "")
        sims = torch.stack([out[i, 1:] @ (ensemble(resnet, t) - redundant) for i, t in enumerate(TEXTS[:2])])
        torch.testing.assert_close(baselines.clip_surgery(resnet, rpix, TEXTS[:2]), minmax(sims.reshape(2, 2, 2)),
                                   rtol=1e-4, atol=1e-5)


def test_prompt_ensemble_of_one_template_is_the_text_embedding(vit):
    """hand-computed: with the single template '{}' the ensemble is the text's own normalised embedding."""
    torch.testing.assert_close(baselines.prompt_ensemble(vit, TEXTS, templates=("{}",)), texts_embedded(vit, TEXTS))


# ---------------------------------------------------------------------------------------------------------------
# M2IB
# ---------------------------------------------------------------------------------------------------------------
def reference_m2ib(clip, pixels, text, layer, beta=0.1, steps=10, samples=10, lr=1.0, seed=0):
    """IBAInterpreter's loop for one image, as M2IB's iba.py writes it: a bottleneck module after block ``layer``
    inside a full forward of ``samples`` copies, Adam on alpha, loss.backward(); the last forward's capacity."""
    visual = clip.model.visual

    class Bottleneck(torch.nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.alpha = torch.nn.Parameter(torch.full((1, *shape), 5.0))
            self.capacity = None

        def forward(self, x, generator):
            lamb = torch.sigmoid(self.alpha).expand(x.shape[0], x.shape[1], -1)
            mu, var = x * lamb, (1 - lamb) ** 2
            self.capacity = -0.5 * (1 + torch.log(var) - mu ** 2 - var)
            return mu + var.sqrt() * mu.new_empty(mu.shape).normal_(generator=generator)

    with torch.no_grad():
        shape = run_blocks(visual, pixels, layer + 1).shape[1:]
    bottleneck = Bottleneck(shape)
    optimizer = torch.optim.Adam(bottleneck.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    batch = pixels.expand(samples, -1, -1, -1)
    for _ in range(steps):
        optimizer.zero_grad()
        x = visual._embeds(batch)
        for i, block in enumerate(visual.transformer.resblocks):
            x = block(x)
            if i == layer:
                x = bottleneck(x, generator)
        image = visual.ln_post(x[:, 0]) @ visual.proj
        fitting = F.cosine_similarity(text.expand(samples, -1), image, eps=1e-6).mean()
        loss = beta * bottleneck.capacity.mean() - fitting
        loss.backward()
        optimizer.step()
    clip.model.zero_grad(set_to_none=True)
    return torch.nansum(bottleneck.capacity.detach().mean(dim=0), dim=-1)[1:]


def test_m2ib_equals_the_official_training_loop(vit_ls):
    """re-implementation: M2IB's bottleneck training for each image on its own (iba.py's structure), against the
    batched one, at the bottleneck after the first block and at the default (-3: the first of three blocks)."""
    pixels = pixels_for(vit_ls, n=2)
    text = texts_embedded(vit_ls, TEXTS[:2])
    for layer, steps in ((1, 4), (-3, 3)):
        maps = baselines.m2ib(vit_ls, pixels, TEXTS[:2], layer=layer, steps=steps, samples=3)
        for i in range(2):
            expected = reference_m2ib(vit_ls, pixels[i:i + 1], text[i:i + 1], layer % 3, steps=steps, samples=3)
            torch.testing.assert_close(maps[i], minmax(expected.reshape(1, 4, 4))[0], rtol=1e-3, atol=1e-4)
    assert all(p.grad is None for p in vit_ls.model.parameters())  # the library leaves no gradient on the model


def test_m2ib_layer_must_exist(vit):
    with pytest.raises(ValueError, match="layer=-3 is outside the image tower's 2 blocks"):
        baselines.m2ib(vit, pixels_for(vit, n=1), TEXTS[:1])


# ---------------------------------------------------------------------------------------------------------------
# RISE
# ---------------------------------------------------------------------------------------------------------------
def test_rise_mask_upsampling_equals_scipy_mirror_zoom():
    """re-implementation: RISE upsamples its cell grid with scikit-image's resize(order=1, mode='reflect'), which is
    scipy.ndimage.zoom(order=1, mode='mirror', grid_mode=True); the library's weights against scipy's zoom."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for cells, size in ((8, 108), (8, 252), (3, 12), (5, 7)):
        grid = (rng.random((cells, cells)) < 0.5).astype(np.float64)
        weights = baselines._linear_resize_weights(cells, size).numpy()
        expected = ndimage.zoom(grid, size / cells, order=1, mode="mirror", grid_mode=True)
        np.testing.assert_allclose(weights @ grid @ weights.T, expected, atol=1e-12)


def test_rise_masks_are_cropped_upsampled_cell_grids():
    """hand-computed: all-kept cells give masks of ones; a mask lies in [0, 1] and has the requested size; the cells
    kept come out near p1 on average."""
    ones = baselines.rise_masks(4, (20, 30), cells=4, p1=1.0, generator=torch.Generator().manual_seed(0))
    assert ones.shape == (4, 20, 30) and torch.allclose(ones, torch.ones_like(ones))
    masks = baselines.rise_masks(400, (24, 24), cells=6, p1=0.3, generator=torch.Generator().manual_seed(1))
    assert masks.min() >= 0 and masks.max() <= 1
    assert abs(float(masks.mean()) - 0.3) < 0.03


def test_rise_is_the_score_weighted_mask_average(vit):
    """re-implementation: the same masks (same seed), each masked image scored alone by encode_image, the weighted
    sum / (N p1) in float64, min-max."""
    pixels = pixels_for(vit, n=2)
    text = texts_embedded(vit, TEXTS[:2])
    masks = baselines.rise_masks(40, (32, 32), 8, 0.5, torch.Generator().manual_seed(0)).double()
    expected = []
    with torch.no_grad():
        for i in range(2):
            scores = [float(F.cosine_similarity(vit.model.encode_image(pixels[i:i + 1] * m.float()), text[i:i + 1]))
                      for m in masks]
            expected.append((torch.tensor(scores, dtype=torch.float64)[:, None, None] * masks).sum(0) / 40 / 0.5)
    got = baselines.rise(vit, pixels, TEXTS[:2], n_masks=40, batch_size=7)
    torch.testing.assert_close(got, minmax(torch.stack(expected)).float(), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    from tests.test_models import register_tiny_checkpoint

    folder = tmp_path_factory.mktemp("models")
    return {kind: register_tiny_checkpoint(folder, kind) for kind in ("vit", "resnet")}


def _explain(model, image, out, *extra):
    from gradeclip.cli import main

    name, checkpoint = model
    return main(["explain", str(image), "--text", "a red cube", "--text", "sky", "--out", str(out), "--model", name,
                 "--pretrained", str(checkpoint), "--quiet", *extra])


@pytest.mark.parametrize("keep_aspect", [False, True])
def test_explain_command_writes_any_methods_maps(registered, tmp_path, keep_aspect):
    """re-implementation: `gradeclip explain --method rollout` writes, for each text, the map the function computes
    on the image's model input (standard or keep-aspect), with the model's own cosine as its score."""
    from gradeclip.explainer import GradECLIP
    from gradeclip.models import load_clip
    from tests.conftest import random_image

    image = tmp_path / "wide.png"
    random_image(61, 43, seed=4).save(image)
    extra = ["--keep-aspect"] if keep_aspect else []
    assert _explain(registered["vit"], image, tmp_path / "out", "--method", "rollout", *extra) == 0
    clip = load_clip(*registered["vit"])
    explainer = GradECLIP(clip, keep_aspect=keep_aspect)
    pixels, _ = explainer.image_input(image)
    expected = baselines.rollout(clip, pixels[None], ["a red cube"])[0].numpy()
    with np.load(tmp_path / "out" / "wide" / "a_red_cube.npz") as saved:
        np.testing.assert_allclose(saved["grid"], expected, rtol=1e-6)
        assert str(saved["method"]) == "rollout"
        with torch.no_grad():
            own = F.cosine_similarity(baselines.model_image_embeddings(clip, pixels[None]),
                                      texts_embedded(clip, ["a red cube"]))
        assert float(saved["score"]) == pytest.approx(float(own), abs=1e-5) == float(saved["model_score"])
    assert (tmp_path / "out" / "wide" / "sky.png").is_file()


@pytest.mark.parametrize("kind, extra, message", [
    ("resnet", ["--method", "rollout"], "rollout is defined for ViT image towers only"),
    ("vit", ["--method", "attention-eclip"], "arXiv 2605.12952"),
    ("vit", ["--method", "rise", "--heads", "multi"], "--heads is an option of Grad-ECLIP"),
    ("vit", ["--method", "rise", "--method-option", "masks=3"], "no option 'masks'"),
    ("vit", ["--method", "no_such_method"], "expected one of grad-eclip"),
])
def test_explain_command_refuses_before_any_work(registered, tmp_path, capsys, kind, extra, message):
    from tests.conftest import random_image

    image = tmp_path / "img.png"
    random_image(64, 64).save(image)
    assert _explain(registered[kind], image, tmp_path / "out", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing written


def test_benchmark_command_scores_a_method_with_options(tmp_path, capsys):
    """hand-computed: `gradeclip toyworld benchmark --method rise --n-scenes 8` scores all 8 scenes and records its
    options; a bad option is one error line and exit code 2."""
    import argparse
    import json
    from pathlib import Path

    from gradeclip.toyworld.cli import add_toyworld_commands

    checkpoint = Path(__file__).resolve().parents[1] / "data" / "toy_clip" / "gradeclip-toy-ViT.pt"

    def run(*argv):
        parser = argparse.ArgumentParser(prog="gradeclip")
        add_toyworld_commands(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["toyworld", "benchmark", "--checkpoint", str(checkpoint), *argv])
        return args.func(args)

    out = tmp_path / "rise.json"
    assert run("--method", "rise", "--n-scenes", "8", "--method-option", "n_masks=40", "--out", str(out)) == 0
    result = json.loads(out.read_text())
    assert result["method"] == "rise" and result["method_options"] == {"n_masks": 40}
    assert result["n_scored"] == 8 and 0 <= result["map"]["pointing"]["value"] <= 1
    assert run("--method", "rise", "--method-option", "n_masks", "--out", str(tmp_path / "x.json")) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert run("--method", "attention-eclip", "--out", str(tmp_path / "y.json")) == 2
    assert "not available" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "y.json").exists()


# Cheap options for the slow methods, where a test only needs every method to run through a command
# (and a bottleneck inside the tiny ViT's 2 blocks: M2IB's default layer=-3 is the toy CLIP's first of 3)
QUICK_OPTIONS = {"rise": ["--method-option", "n_masks=16"],
                 "m2ib": ["--method-option", "steps=1", "--method-option", "samples=2", "--method-option", "layer=-2"]}


def test_every_registered_name_runs_from_both_commands(registered, tmp_path, capsys):
    """hand-computed: each registry name is accepted by `gradeclip explain --method NAME` (a map per text, the
    method recorded) and by `gradeclip toyworld benchmark --method NAME` (2 toy scenes scored); attention-eclip
    is refused by both with exit status 2 and its reason."""
    import argparse
    import json
    from pathlib import Path

    from gradeclip.toyworld.cli import BUILTIN_METHOD_NAMES, add_toyworld_commands
    from tests.conftest import random_image

    assert BUILTIN_METHOD_NAMES == tuple(baselines.METHODS)
    image = tmp_path / "img.png"
    random_image(64, 64).save(image)
    checkpoint = Path(__file__).resolve().parents[1] / "data" / "toy_clip" / "gradeclip-toy-ViT.pt"
    parser = argparse.ArgumentParser(prog="gradeclip")
    add_toyworld_commands(parser.add_subparsers(dest="command", required=True))
    for name in baselines.METHODS:
        out, scores = tmp_path / name, tmp_path / f"{name}.json"
        extra = ["--method", name, *QUICK_OPTIONS.get(name, [])]
        status = _explain(registered["vit"], image, out, *extra)
        args = parser.parse_args(["toyworld", "benchmark", "--checkpoint", str(checkpoint), "--n-scenes", "2",
                                  "--out", str(scores), *extra])
        benchmark_status = args.func(args)
        if name == "attention-eclip":
            assert status == benchmark_status == 2
            assert capsys.readouterr().err.count("not available") == 2
            continue
        assert status == benchmark_status == 0, name
        with np.load(out / "img" / "a_red_cube.npz") as saved:
            assert str(saved["method"]) == name and np.isfinite(saved["grid"]).all()
        assert json.loads(scores.read_text())["n_scored"] == 2, name
