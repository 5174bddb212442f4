"""Grad-ECLIP against an independent, plain re-implementation of the paper's formulas (full token rows, autograd on
detached leaves, no batching tricks), finite differences, and the model's own forward."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradeclip import method
from gradeclip.explainer import GradECLIP
from tests.conftest import random_image, tiny_clip


def _minmax(x):
    return (x - x.min(-1, keepdim=True).values) / (x.max(-1, keepdim=True).values - x.min(-1, keepdim=True).values)


def reference_vit_map(clip, pixels, text_emb, spatial="loosened"):
    """Grad-ECLIP on the last ViT block written out from the paper: single head over all D channels."""
    v = clip.model.visual
    x = v.conv1(pixels).flatten(2).transpose(1, 2)
    x = torch.cat([v.class_embedding.expand(x.shape[0], 1, -1), x], 1) + v.positional_embedding
    x = v.ln_pre(x)
    for blk in v.transformer.resblocks[:-1]:
        x = blk(x)
    blk = v.transformer.resblocks[-1]
    q, k, val = F.linear(blk.ln_1(x), blk.attn.in_proj_weight, blk.attn.in_proj_bias).chunk(3, -1)
    attn = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, -1)
    o = (attn @ val).detach().requires_grad_(True)
    y = x + blk.attn.out_proj(o)
    y = y + blk.mlp(blk.ln_2(y))
    emb = v.ln_post(y[:, 0]) @ v.proj
    score = F.cosine_similarity(emb, text_emb[None], dim=-1)
    w = torch.autograd.grad(score.sum(), o)[0][:, 0]  # (N, D) at the class token
    if spatial == "loosened":
        lam = _minmax(F.cosine_similarity(q[:, :1], k[:, 1:], dim=-1))
    elif spatial == "softmax":
        lam = attn[:, 0, 1:]
    else:
        lam = torch.ones_like(attn[:, 0, 1:])
    return torch.relu((val[:, 1:] * w[:, None]).sum(-1) * lam).detach(), score.detach()


def test_image_map_equals_reference_for_every_spatial_mode(vit):
    img = random_image(40, 32)
    for spatial in method.SPATIAL:
        ex = GradECLIP(vit, spatial=spatial)
        pixels, _ = ex.image_input(img)
        temb = ex.encode_texts(["a red cube"])[0]
        ref_map, ref_score = reference_vit_map(vit, pixels[None], temb, spatial)
        out = ex(img, ["a red cube"])[0]
        assert out.grid.shape == (4, 4)
        np.testing.assert_allclose(out.grid.ravel(), ref_map[0].numpy(), rtol=1e-4, atol=1e-6)
        # the score the map explains is the score it reports (single head network)
        assert out.score == pytest.approx(float(ref_score[0]), abs=1e-6)


def test_spatial_none_is_channel_weighted_values(vit):
    """map_i = ReLU(sum_c w_c v_ic) when lambda = 1; and the loosened map is that times lambda before the ReLU."""
    img = random_image(32, 32, seed=3)
    none = GradECLIP(vit, spatial="none")(img, ["blue"])[0].grid
    loose = GradECLIP(vit, spatial="loosened")(img, ["blue"])[0].grid
    # lambda in [0, 1] only scales each location, so the support can only shrink and values never grow
    assert np.all(loose <= none + 1e-7)
    assert np.all((loose > 0) <= (none > 0))


def test_channel_weights_equal_finite_difference_gradient():
    clip = tiny_clip("vit", seed=1, dtype=torch.float64)
    ex = GradECLIP(clip)
    pixels, _ = ex.image_input(random_image(32, 32, seed=1))
    pixels = pixels[None].double()
    temb = ex.encode_texts(["a small cube"]).double()
    tower = ex.image_tower
    with torch.no_grad():
        x = tower.embed(pixels)
        for layer in tower.layers[:-1]:
            x = layer.module(x)
    x = x.requires_grad_(True)
    query = tower.query_rows(x)
    with torch.enable_grad():
        pooled, traces = method.recomputed_forward(tower.layers[-1:], x, query)
        scores = method.cosine_scores(tower.finish(pooled), temb)
        w = method.channel_weights(scores, traces, query)[0][0, 0]  # (D,)
    layer = tower.layers[-1]
    o0 = traces[0].o.detach()

    def score_of(o):
        with torch.no_grad():
            return method.cosine_scores(tower.finish(layer.post(x[:, :1], o)[:, 0]), temb)[0, 0]

    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        d = torch.randn(o0.shape, generator=gen, dtype=torch.float64)
        eps = 1e-6
        fd = (score_of(o0 + eps * d) - score_of(o0 - eps * d)) / (2 * eps)
        assert float(fd) == pytest.approx(float(w @ d[0, 0]), rel=1e-5, abs=1e-9)


def test_batched_texts_equal_single_calls(vit):
    img = random_image(48, 32, seed=5)
    texts = ["a red cube", "a blue sphere", "metal", "two small cylinders"]
    ex = GradECLIP(vit)
    together = ex(img, texts)
    for t, exp in zip(texts, together):
        alone = ex(img, [t])[0]
        np.testing.assert_allclose(exp.grid, alone.grid, rtol=1e-5, atol=1e-7)
        assert exp.score == pytest.approx(alone.score, abs=1e-6)
    # different texts give different maps, and maps are >= 0
    assert not np.allclose(together[0].grid, together[1].grid)
    assert all((e.grid >= 0).all() for e in together)


def test_batch_of_images_equals_single_images(vit):
    images = [random_image(32, 32, seed=s) for s in range(3)]
    texts = ["a red cube", "a cyan sphere"]
    ex = GradECLIP(vit)
    batched = ex.explain_images(images, texts, batch_size=3)
    for img, row in zip(images, batched):
        single = ex(img, texts)
        for a, b in zip(row, single):
            np.testing.assert_allclose(a.grid, b.grid, rtol=1e-5, atol=1e-7)
            assert a.model_score == pytest.approx(b.model_score, abs=1e-6)


@pytest.mark.parametrize("kind", ["vit", "custom", "resnet"])
def test_model_score_is_the_models_own_score(kind):
    clip = tiny_clip(kind)
    ex = GradECLIP(clip)
    img = random_image(70, 50, seed=2)
    out = ex(img, ["a gray cylinder"])[0]
    with torch.no_grad():
        pixels, _ = ex.image_input(img)
        own = F.cosine_similarity(clip.model.encode_image(pixels[None]), ex.encode_texts(["a gray cylinder"]))
    assert out.model_score == pytest.approx(float(own), abs=1e-5)
    multi = GradECLIP(clip, heads="multi")(img, ["a gray cylinder"])[0]
    # with the model's own heads the explained network is the model itself
    assert multi.score == pytest.approx(float(own), abs=1e-5)


def test_single_head_recomputation_changes_the_score(vit):
    """heads='single' explains a different network: its score differs from the model's, and both are reported."""
    out = GradECLIP(vit)(random_image(32, 32), ["a purple cube"])[0]
    assert out.score != pytest.approx(out.model_score, abs=1e-7)


def reference_resnet_map(clip, pixels, text_emb):
    v = clip.model.visual
    feats = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(pixels))))).flatten(2).transpose(1, 2)
    x = torch.cat([feats.mean(1, keepdim=True), feats], 1) + v.attnpool.positional_embedding
    pool = v.attnpool
    q, k, val = pool.q_proj(x), pool.k_proj(x), pool.v_proj(x)
    attn = torch.softmax(q[:, :1] @ k.transpose(1, 2) / q.shape[-1] ** 0.5, -1)
    o = (attn @ val).detach().requires_grad_(True)
    score = F.cosine_similarity(pool.c_proj(o[:, 0]), text_emb[None], dim=-1)
    w = torch.autograd.grad(score.sum(), o)[0][:, 0]
    lam = _minmax(F.cosine_similarity(q[:, :1], k[:, 1:], dim=-1))
    return torch.relu((val[:, 1:] * w[:, None]).sum(-1) * lam).detach()


def test_resnet_map_equals_reference(resnet):
    ex = GradECLIP(resnet)
    img = random_image(64, 64, seed=4)
    pixels, _ = ex.image_input(img)
    ref = reference_resnet_map(resnet, pixels[None], ex.encode_texts(["a yellow sphere"])[0])
    out = ex(img, ["a yellow sphere"])[0]
    assert out.grid.shape == (2, 2)
    np.testing.assert_allclose(out.grid.ravel(), ref[0].numpy(), rtol=1e-4, atol=1e-7)


def reference_text_map(clip, text, image_emb, layers):
    m = clip.model
    tokens = clip.tokenizer([text])
    eos = int(tokens.argmax())
    x = m.token_embedding(tokens) + m.positional_embedding
    blocks = m.transformer.resblocks
    for blk in blocks[:-layers]:
        x = blk(x, attn_mask=m.attn_mask)
    os_, vs, lams = [], [], []
    for blk in blocks[-layers:]:
        q, k, val = F.linear(blk.ln_1(x), blk.attn.in_proj_weight, blk.attn.in_proj_bias).chunk(3, -1)
        attn = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5 + m.attn_mask, -1)
        o = attn @ val
        os_.append(o)
        vs.append(val)
        lams.append(_minmax(F.cosine_similarity(q[:, eos:eos + 1], k, dim=-1)))  # over all 77 positions
        x = x + blk.attn.out_proj(o)
        x = x + blk.mlp(blk.ln_2(x))
    emb = m.ln_final(x)[:, eos] @ m.text_projection
    score = F.cosine_similarity(emb, image_emb, dim=-1)
    grads = torch.autograd.grad(score.sum(), os_)
    total = sum((val * g[:, eos:eos + 1]).sum(-1) * lam for val, g, lam in zip(vs, grads, lams))
    return torch.relu(total)[0, 1:eos].detach(), float(score.detach())  # sum over layers, THEN ReLU


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_text_map_equals_reference(vit, layers):
    ex = GradECLIP(vit, text_layers=layers)
    img = random_image(32, 32, seed=7)
    text = "a large red metal cube left of a small sphere"
    ref, ref_score = reference_text_map(vit, text, ex.encode_images([img]), layers)
    out = ex.explain_text(text, img)
    np.testing.assert_allclose(out.token_scores, ref.numpy(), rtol=1e-4, atol=1e-7)
    assert out.score == pytest.approx(ref_score, abs=1e-6)
    # word scores are sums of their tokens; normalisations
    assert out.word_scores.sum() == pytest.approx(out.token_scores.sum())
    assert out.importance("sum").sum() == pytest.approx(1.0)
    assert out.importance("max").max() == pytest.approx(1.0)


def test_batched_texts_for_one_image_equal_single_calls(vit):
    ex = GradECLIP(vit, text_layers=2)
    img = random_image(32, 32, seed=8)
    texts = ["a red cube", "the small metal sphere is left of the cube", "cyan!"]
    together = ex.explain_texts(texts, img)
    for t, exp in zip(texts, together):
        alone = ex.explain_text(t, img)
        np.testing.assert_allclose(exp.word_scores, alone.word_scores, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_more_layers_than_a_tower_has_means_all_of_them_with_a_warning(kind, vit, resnet):
    """One rule for images and texts: a count beyond the depth explains every layer and says how deep the tower
    is; the maps are those of exactly that many layers."""
    clip = vit if kind == "vit" else resnet
    img, texts = random_image(40, 30, seed=3), ["a red cube", "a dog"]
    image_depth = 2 if kind == "vit" else 1  # tiny ViT: 2 blocks; ResNet: its attention pool
    deep = GradECLIP(clip, image_layers=5, text_layers=3)
    assert deep.image_layers == image_depth
    exact = GradECLIP(clip, image_layers=image_depth, text_layers=3)
    with pytest.warns(UserWarning, match=rf"image_layers=5 is more than the {'ResNet ' if kind == 'resnet' else ''}"
                                         rf"image tower's depth \({image_depth} layers?\): explaining all"):
        deep_maps = deep(img, texts)
    for a, b in zip(deep_maps, exact(img, texts)):
        np.testing.assert_array_equal(a.grid, b.grid)
    deep_text = GradECLIP(clip, text_layers=100)
    assert deep_text.text_layers == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        deep_text(img, texts)  # images only: the text tower's depth is no news yet
    with pytest.warns(UserWarning, match=r"text_layers=100 is more than the text tower's depth \(3 layers\)"):
        deep_words = deep_text.explain_texts(texts, img)
    for a, b in zip(deep_words, exact.explain_texts(texts, img)):
        np.testing.assert_array_equal(a.token_scores, b.token_scores)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        deep_text.explain_texts(texts, img)  # once per explainer
    assert GradECLIP(clip, text_layers=2).explain_text(texts[0], img).token_scores.tolist() != \
        exact.explain_text(texts[0], img).token_scores.tolist()  # the count matters: the test can fail


def test_method_functions_refuse_counts_beyond_the_depth_alike(vit):
    """The formulas' own functions take exactly the layers they are given, for images and texts alike (the
    explainer resolves a larger count before calling them)."""
    ex = GradECLIP(vit)
    pixels, _ = ex.image_input(random_image(32, 32))
    with pytest.raises(ValueError, match="the image tower has 2 explainable layers, asked for 3"):
        method.explain_image_tensor(ex.image_tower, pixels[None], ex.encode_texts(["x"]), layers=3)
    ids = ex.tokenizer(["a red cube"])
    with pytest.raises(ValueError, match="the text tower has 3 explainable layers, asked for 4"):
        method.explain_text_tensor(ex.text_tower, ids, ex.encode_images([random_image(32, 32)]), layers=4)
    with pytest.raises(ValueError, match="image layers must be at least 1, got 0"):
        method.explain_image_tensor(ex.image_tower, pixels[None], ex.encode_texts(["x"]), layers=0)
    with pytest.raises(ValueError, match="text layers must be at least 1, got 0"):
        method.explain_text_tensor(ex.text_tower, ids, ex.encode_images([random_image(32, 32)]), layers=0)


def test_multi_head_maps_are_sums_over_heads(vit):
    out = GradECLIP(vit, heads="multi")(random_image(32, 32, seed=9), ["green"])[0]
    assert out.grid.shape == (4, 4) and (out.grid >= 0).all() and np.isfinite(out.grid).all()


def test_gradient_flows_with_frozen_parameters():
    clip = tiny_clip("vit", seed=2)
    clip.model.requires_grad_(False)  # users often freeze models; the method must not depend on param grads
    out = GradECLIP(clip)(random_image(32, 32), ["a cube"])[0]
    assert out.grid.max() > 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_give_float32_maps_close_to_fp32(dtype):
    """fp16/bf16 weights (the CUDA options): attention softmax and cosines run in float32, maps stay faithful."""
    img = random_image(32, 32, seed=11)
    full = GradECLIP(tiny_clip("vit"))(img, ["a red cube"])[0]
    half = GradECLIP(tiny_clip("vit", dtype=dtype))(img, ["a red cube"])[0]
    assert half.grid.dtype == np.float32 and np.isfinite(half.grid).all()
    assert np.corrcoef(full.grid.ravel(), half.grid.ravel())[0, 1] > 0.99
    assert half.score == pytest.approx(full.score, abs=0.02)


def test_single_patch_map_falls_back_to_channel_weighted_values(vit):
    """With one patch (a tiny keep-aspect input) min-max of cos(q, k) is undefined: lambda is 1, not 0."""
    img = random_image(8, 8, seed=12)  # keep-aspect with patch 8 gives one patch
    loose = GradECLIP(vit, keep_aspect=True)(img, ["a cube"])[0].grid
    plain = GradECLIP(vit, keep_aspect=True, spatial="none")(img, ["a cube"])[0].grid
    assert loose.shape == (1, 1)
    np.testing.assert_allclose(loose, plain, rtol=1e-6)


def test_relu_placement_of_eq_19_per_layer_and_after_sum():
    """Hand-made two-layer case: one channel, one head, lambda = 1. Layer maps (w * v) are [+2, -1] and [-3, +2] at
    two positions: ReLU per layer then sum gives [2, 2]; sum then ReLU gives [0, 1]."""
    ones = torch.ones(1, 1, 2)
    traces = [method.LayerTrace(o=torch.zeros(1, 1, 1), o_rows=torch.zeros(1, 1, dtype=torch.long),
                                v=torch.tensor([[[a], [b]]]), spatial=ones) for a, b in ((2.0, -1.0), (-3.0, 2.0))]
    weights = [torch.ones(1, 1, 1)] * 2
    per_layer = method.grad_eclip_map(weights, traces, relu="per_layer")
    after_sum = method.grad_eclip_map(weights, traces, relu="after_sum")
    assert per_layer.tolist() == [[[2.0, 2.0]]]
    assert after_sum.tolist() == [[[0.0, 1.0]]]
    with pytest.raises(ValueError, match="relu"):
        method.grad_eclip_map(weights, traces, relu="none")


def test_spatial_weight_table_is_the_option_list():
    assert tuple(method.SPATIAL_WEIGHTS) == method.SPATIAL
    q, k = torch.randn(2, 1, 4), torch.randn(2, 1, 5, 4)
    row = torch.softmax(torch.randn(2, 1, 5), -1)
    everywhere = torch.ones(2, 5, dtype=torch.bool)
    loose = method.SPATIAL_WEIGHTS["loosened"](q, k, row, everywhere)
    assert loose.amin(-1).eq(0).all() and loose.amax(-1).eq(1).all()  # min-max over the positions
    assert torch.equal(method.SPATIAL_WEIGHTS["softmax"](q, k, row, everywhere), row)
    assert torch.equal(method.SPATIAL_WEIGHTS["none"](q, k, row, everywhere), torch.ones(2, 1, 5))
