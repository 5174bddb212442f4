"""Numbers for the toy CLIP's model card, measured on held-out toy scenes (numpy only; no pandas, no scipy).

Two evaluations, each on its own seed: ``EVAL_SEEDS`` for the "test" split (the model card's numbers) and
``VALIDATION_SEEDS`` for the "validation" split (for comparing recipes and training seeds); training refuses both:

* zero-shot attributes: single-object scenes; the predicted value of a category is the prompt with the highest
  cosine among that category's prompts ("a red object" ... 8-way colour, "a cube" ... 3-way shape, "a small
  object" / "a large object" size). Accuracy with a Wilson 95% interval.
* localisation: scenes with 2-4 objects; in each scene one object that is unique by colour and shape is named
  ("a red cube", the training captions' form) and its map is scored against the exact instance masks:

  - pointing game: the pixel where the map, upsampled bilinearly to the image, is largest lies inside the named
    object's mask (ties: the first such pixel in row-major order; a constant map counts as a miss);
  - energy share: map mass inside the named object's mask / map mass inside all objects' masks (a map with no
    mass on any object scores 0);
  - where the argmax lies when it misses: on another object or on the background (``pointing_outcomes``).

  Three maps per text: Grad-ECLIP (heads "single" and "multi"), the class token's raw attention in the last block
  (softmax attention row over the patches, averaged over the model's heads; the same for every text), and a uniform
  map. The uniform map is scored by its expected value: its argmax is a uniformly random pixel, so its pointing
  game is the named object's area / image area, and its energy share is the named object's area / all objects'
  area. Proportions get Wilson 95% intervals, means a normal-approximation 95% interval (mean +- 1.96 sd / sqrt n).
  The single-head recomputation gap is the mean |score - model_score| of the explained (image, text) pairs.

``benchmark_explanations`` scores any other explanation method on the same scenes with the same definitions (the
toy world as a sanity benchmark: a method that does not find the named object here will not be trusted elsewhere).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gradeclip import geometry, metrics
from gradeclip.baselines import ExplainFunction, get_method, own_text_maps
from gradeclip.explainer import GradECLIP
from gradeclip.files import atomic_write_bytes
from gradeclip.intervals import mean_interval, proportion
from gradeclip.method import recomputed_forward
from gradeclip.metrics import (POINTING_OUTCOMES, distance_to_mask, pointing_outcome, uniform_energy_share,
                              uniform_pointing)
from gradeclip.models import LoadedClip
from gradeclip.options import HEADS
from gradeclip.toyworld.captions import unique_referring_expressions
from gradeclip.toyworld.layout import ToyWorldConfig
from gradeclip.toyworld.scenes import ToyScene, generate_scene, render_without_object
from gradeclip.toyworld.train import EVAL_SEEDS, VALIDATION_SEEDS
from gradeclip.toyworld.vocabulary import COLORS, MATERIALS, SHAPES, SIZES

ZERO_SHOT_SEED, LOCALISATION_SEED = EVAL_SEEDS
SPLIT_SEEDS = {"test": EVAL_SEEDS, "validation": VALIDATION_SEEDS}  # (zero-shot seed, localisation seed)
ZERO_SHOT_PROMPTS = {
    "color": [f"a {c} object" for c in COLORS],
    "shape": [f"a {s}" for s in SHAPES],
    "size": [f"a {s} object" for s in SIZES],
}
ZERO_SHOT_LABELS = {"color": list(COLORS), "shape": list(SHAPES), "size": list(SIZES)}
LOCALISATION_TEMPLATE = "a {}"  # around the referring expression "red cube"
LOCALISATION_OBJECTS = (2, 4)  # fewest and most objects in a localisation scene
# The named object of localisation scene (seed, index) is drawn from a child of the scene's seed sequence (numpy's
# spawn_key), a stream independent of the one that generated the scene: drawn from the scene's own generator again,
# its first number repeated the draw that set the object count, and every two-object scene named object 0.
NAMED_OBJECT_STREAM = 1
# the model card's baselines: its JSON key -> the registry's name (gradeclip.baselines.METHODS)
MODEL_CARD_BASELINES = {"raw_attention": "raw-attention", "input_gradient": "input-gradient",
                        "gradient_x_input": "gradient-x-input"}
TARGETS = {"zero_shot": {"color": 0.9, "shape": 0.8, "size": 0.8},
           "pointing": 0.65, "energy_share": 0.75, "margin_over_raw_attention": 0.15}


# ---------------------------------------------------------------------------------------------------------------
# Map metrics
# ---------------------------------------------------------------------------------------------------------------
# pointing game, energy share, where the argmax lies and the chance levels of a constant map are ``gradeclip.metrics``
# (one rule for every map, ``metrics.MAP_RULES``); the model card scores an empty map as a miss (empty="miss").


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------
def model_input_size(clip: LoadedClip) -> int:
    return int(clip.preprocessing.size[0])


def scene_inputs(clip: LoadedClip, scenes: Sequence[ToyScene]) -> tuple[torch.Tensor, list[geometry.Registration]]:
    """The model's own preprocessing of each scene image (what ``GradECLIP`` does with a PIL image)."""
    return image_inputs(clip, [s.image for s in scenes])


def image_inputs(clip: LoadedClip, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[geometry.Registration]]:
    prepared = [geometry.standard_input(Image.fromarray(image), clip.preprocessing) for image in images]
    return torch.stack([p[0] for p in prepared]), [p[1] for p in prepared]


@torch.no_grad()
def encode_images(clip: LoadedClip, pixels: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    chunks = [clip.model.encode_image(pixels[i:i + batch_size].to(clip.device)) for i in
              range(0, len(pixels), batch_size)]
    return F.normalize(torch.cat(chunks).float(), dim=-1)


# ---------------------------------------------------------------------------------------------------------------
# Zero-shot attributes
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class ZeroShot:
    labels: dict[str, list[str]]  # true value per category, per scene
    predicted: dict[str, list[str]]
    probabilities: dict[str, np.ndarray]  # (n, n_values): softmax of the model's logit scale x cosine


def zero_shot_scenes(n_scenes: int, image_size: int, seed: int = ZERO_SHOT_SEED) -> list[ToyScene]:
    config = ToyWorldConfig(image_size=image_size, min_objects=1, max_objects=1)
    return [generate_scene(seed, i, "eval", config) for i in range(n_scenes)]


def zero_shot_predictions(clip: LoadedClip, scenes: Sequence[ToyScene]) -> ZeroShot:
    explainer = GradECLIP(clip)
    images = encode_images(clip, scene_inputs(clip, scenes)[0])
    scale = clip.model.logit_scale.exp().item()
    labels, predicted, probabilities = {}, {}, {}
    for category, prompts in ZERO_SHOT_PROMPTS.items():
        logits = scale * images @ explainer.encode_texts(prompts).T
        probs = logits.softmax(dim=-1).double().cpu().numpy()
        values = ZERO_SHOT_LABELS[category]
        labels[category] = [s.record["objects"][0][category] for s in scenes]
        predicted[category] = [values[j] for j in probs.argmax(axis=1)]
        probabilities[category] = probs
    return ZeroShot(labels, predicted, probabilities)


def confusion(labels: Sequence[str], predicted: Sequence[str], values: Sequence[str]) -> dict:
    """``{true value: {predicted value: count}}`` over ``values`` in their order."""
    counts = Counter(zip(labels, predicted))
    return {t: {p: counts[(t, p)] for p in values} for t in values}


def zero_shot_metrics(clip: LoadedClip, n_scenes: int, seed: int = ZERO_SHOT_SEED) -> dict:
    scenes = zero_shot_scenes(n_scenes, model_input_size(clip), seed)
    result = zero_shot_predictions(clip, scenes)
    out = {"n_scenes": n_scenes, "seed": seed, "prompts": ZERO_SHOT_PROMPTS}
    for category in ZERO_SHOT_PROMPTS:
        hits = np.equal(result.labels[category], result.predicted[category])
        out[category] = {"accuracy": proportion(hits), "chance": 1 / len(ZERO_SHOT_LABELS[category]),
                         "confusion": confusion(result.labels[category], result.predicted[category],
                                                ZERO_SHOT_LABELS[category])}
    # shape errors by the object's size and material: show a shape prompt that has picked up another attribute
    # ("a cube" = large; rubber cubes read as "cylinder", metal cubes as "sphere")
    shapes, predicted = np.array(result.labels["shape"]), np.array(result.predicted["shape"])
    for category, values in (("size", SIZES), ("material", MATERIALS)):
        of_scene = np.array([s.record["objects"][0][category] for s in scenes])
        out["shape"][f"confusion_by_{category}"] = {
            value: confusion(shapes[of_scene == value], predicted[of_scene == value], ZERO_SHOT_LABELS["shape"])
            for value in values}
    return out


def zero_shot_reference(clip: LoadedClip, n_scenes: int = 12, seed: int = ZERO_SHOT_SEED) -> dict:
    """Predictions on a few held-out scenes, stored with a checkpoint so that a test can check that loading it
    still gives the same model."""
    result = zero_shot_predictions(clip, zero_shot_scenes(n_scenes, model_input_size(clip), seed))
    return {"seed": seed, "n_scenes": n_scenes, "image_size": model_input_size(clip), "prompts": ZERO_SHOT_PROMPTS,
            "predicted": result.predicted,
            "probabilities": {c: np.round(p, 6).tolist() for c, p in result.probabilities.items()}}


# ---------------------------------------------------------------------------------------------------------------
# Localisation
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class NamedObject:
    scene: ToyScene
    object_index: int
    text: str


def named_object_rng(seed: int, index: int) -> np.random.Generator:
    """The generator that picks the named object of localisation scene ``index`` of ``seed``: a spawned child of the
    scene's seed sequence (``scene_rng`` seeds the scene with ``[seed, index]``), so independent of the scene."""
    return np.random.default_rng(np.random.SeedSequence([seed, index], spawn_key=(NAMED_OBJECT_STREAM,)))


def localisation_samples(n_scenes: int, image_size: int, seed: int = LOCALISATION_SEED) -> list[NamedObject]:
    """Scenes 0, 1, ... of ``seed`` with 2-4 objects, each with one object named by colour and shape, chosen at
    random among the objects that this names uniquely (``named_object_rng``: seeded per scene, independent of the
    scene's own generator); scenes without one are skipped."""
    config = ToyWorldConfig(image_size=image_size, min_objects=LOCALISATION_OBJECTS[0],
                             max_objects=LOCALISATION_OBJECTS[1])
    samples, index = [], 0
    while len(samples) < n_scenes:
        scene = generate_scene(seed, index, "eval", config)
        expressions = unique_referring_expressions(scene.record, ("color+shape",))
        if expressions:
            chosen = expressions[int(named_object_rng(seed, index).integers(len(expressions)))]
            samples.append(NamedObject(scene, chosen.object_index, LOCALISATION_TEMPLATE.format(chosen.text)))
        index += 1
    return samples


def _last_block_input(explainer: GradECLIP, pixels: torch.Tensor) -> torch.Tensor:
    """The tokens entering the image tower's last block, (N, T, D)."""
    tower = explainer.image_tower
    x = tower.embed(pixels.to(explainer.device))
    for layer in tower.layers[:-1]:
        x = layer.module(x)
    return x


@torch.no_grad()
def spatial_weights(explainer: GradECLIP, pixels: torch.Tensor) -> torch.Tensor:
    """(N, H, h, w): the explainer's spatial weight lambda over the patches of the explained (last) block, one
    grid per head of the explained attention (H = 1 with heads="single"). It depends on the image only."""
    tower = explainer.image_tower
    x = _last_block_input(explainer, pixels)
    _, traces = recomputed_forward(tower.layers[-1:], x, tower.query_rows(x), heads=explainer.heads,
                                   spatial=explainer.spatial)
    lam = traces[0].spatial[:, :, tower.spatial_rows(x)].float()
    return lam.reshape(len(pixels), lam.shape[1], *tower.grid_of(pixels))


def spatial_weight_by_object_color(weights: np.ndarray, samples: Sequence[NamedObject], registrations) -> dict:
    """Mean of each head's spatial weight over an object's pixels, averaged over the objects of each colour (all
    objects of the scenes, named or not), and over the background pixels. A colour whose objects get little
    weight is one the map cannot show, whatever the text: lambda does not depend on it."""
    per_color: dict[str, list] = {}
    background = []
    for grids, sample, reg in zip(weights, samples, registrations):
        pixel_maps = np.stack([geometry.grid_to_pixels(g, reg) for g in grids])  # (H, height, width)
        masks = sample.scene.object_masks()
        for obj, mask in zip(sample.scene.record["objects"], masks):
            per_color.setdefault(obj["color"], []).append(pixel_maps[:, mask].mean(axis=1))
        background.append(pixel_maps[:, ~masks.any(axis=0)].mean(axis=1))
    summary = {c: {"n_objects": len(per_color[c]), "mean_per_head": np.mean(per_color[c], axis=0).tolist()}
               for c in COLORS if c in per_color}
    summary["background"] = {"n_scenes": len(background), "mean_per_head": np.mean(background, axis=0).tolist()}
    return summary


def _score_maps(grids: Sequence[np.ndarray], samples: Sequence[NamedObject], registrations) -> dict:
    """Per sample: the pointing outcome (POINTING_OUTCOMES) and the energy share; for the samples whose argmax is
    on the background, its distance to the named object's mask."""
    outcomes, shares, distances = [], [], []
    for grid, sample, reg in zip(grids, samples, registrations):
        pixel_map = geometry.grid_to_pixels(grid, reg)
        masks = sample.scene.object_masks()
        named, everything = masks[sample.object_index], masks.any(axis=0)
        outcomes.append(pointing_outcome(pixel_map, masks, sample.object_index))
        shares.append(metrics.energy_share(pixel_map, named, everything, empty="miss"))
        if outcomes[-1] == "background":
            distances.append(distance_to_mask(pixel_map, named))
    return {"outcomes": np.array(outcomes), "shares": np.array(shares),
            "background_distances": np.array(distances)}


def _scores(outcomes: np.ndarray, shares: np.ndarray) -> dict:
    return {"pointing": proportion(outcomes == "named"), "energy_share": mean_interval(shares)}


def _summary(scored: dict) -> dict:
    outcomes, background = scored["outcomes"], scored["background_distances"]
    return {**_scores(outcomes, scored["shares"]),
            "pointing_outcomes": {o: float(np.mean(outcomes == o)) for o in POINTING_OUTCOMES},
            # near misses (a patch's width) would point to the grid; far ones to the background tokens' content
            "background_miss_distance_px": {
                "quartiles": np.percentile(background, [25, 50, 75]).tolist() if len(background) else None,
                "n": int(len(background))}}


def scene_groups(samples: Sequence[NamedObject]) -> dict[str, np.ndarray]:
    """Boolean masks over ``samples`` by what else is in the scene: "objects_2" .. "objects_4" by object count,
    and whether another object has the named colour ("same_color_other" / "no_same_color_other"): each further
    object takes part of a map's mass, and one of the named colour far more (the model card's breakdown)."""
    objects = [s.scene.record["objects"] for s in samples]
    counts = np.array([len(objs) for objs in objects])
    same_color = np.array([any(o["color"] == objs[s.object_index]["color"]
                               for i, o in enumerate(objs) if i != s.object_index)
                           for s, objs in zip(samples, objects)], dtype=bool)
    fewest, most = LOCALISATION_OBJECTS
    groups = {f"objects_{n}": counts == n for n in range(fewest, most + 1)}
    groups.update({"same_color_other": same_color, "no_same_color_other": ~same_color})
    return groups


def named_object_groups(samples: Sequence[NamedObject]) -> dict[str, np.ndarray]:
    """Boolean masks over ``samples`` by what the text names: "color_<c>" for each colour, "shape_<s>" for each
    shape and "object_<c>_<s>" for each colour and shape of the vocabulary, three partitions of the samples; a
    method that fails on some words, or on some pairs of them, fails here."""
    named = [s.scene.record["objects"][s.object_index] for s in samples]
    groups = {f"color_{c}": np.array([o["color"] == c for o in named], dtype=bool) for c in COLORS}
    groups.update({f"shape_{sh}": np.array([o["shape"] == sh for o in named], dtype=bool) for sh in SHAPES})
    groups.update({f"object_{c}_{sh}": groups[f"color_{c}"] & groups[f"shape_{sh}"] for c in COLORS for sh in SHAPES})
    return groups


def _summary_by_group(scored: dict, groups: dict[str, np.ndarray]) -> dict:
    return {name: {"n": int(member.sum()), **_scores(scored["outcomes"][member], scored["shares"][member])}
            for name, member in groups.items() if member.any()}


def uniform_baseline(samples: Sequence[NamedObject]) -> dict:
    """The expected scores of a constant map (its argmax is a uniformly random pixel) on ``samples``."""
    hits, shares = [], []
    for s in samples:
        masks = s.scene.object_masks()
        hits.append(uniform_pointing(masks[s.object_index]))
        shares.append(uniform_energy_share(masks[s.object_index], masks.any(axis=0)))
    return {"pointing": mean_interval(hits), "energy_share": mean_interval(shares)}


@torch.no_grad()
def object_removal(clip: LoadedClip, samples: Sequence[NamedObject], pixels: torch.Tensor,
                   text_embeddings: torch.Tensor, batch_size: int = 64) -> dict:
    """The model's own answer to "which object made the text match", against which the maps are scored: the
    cosine of each sample's image and text minus the cosine with the image rendered again without one object,
    for every object of the scene (the drop). If the named object is what the model matches, removing it lowers
    the score most; the masks are then the right ground truth for this model, not only for the captions."""
    image_embeddings = encode_images(clip, pixels)
    text_embeddings = text_embeddings.float().to(image_embeddings.device)
    full = (image_embeddings * text_embeddings).sum(-1)
    drops = []  # per sample: (n_objects,) score drops
    for start in range(0, len(samples), batch_size):
        batch = samples[start:start + batch_size]
        owner = [i for i, s in enumerate(batch, start) for _ in s.scene.objects]
        removed, _ = image_inputs(clip, [render_without_object(s.scene, k) for s in batch
                                         for k in range(len(s.scene.objects))])
        scores = (encode_images(clip, removed) * text_embeddings[owner]).sum(-1)
        drop = (full[owner] - scores).cpu().double().numpy()
        bounds = np.cumsum([0] + [len(s.scene.objects) for s in batch])
        drops.extend(drop[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
    named = np.array([d[s.object_index] for d, s in zip(drops, samples)])
    others = [np.delete(d, s.object_index) for d, s in zip(drops, samples)]
    return {
        "n_scenes": len(samples),
        "named_object_drop": mean_interval(named),
        "other_object_drop": mean_interval(np.array([o.mean() for o in others])),
        "pointing": proportion(np.array([int(np.argmax(d)) == s.object_index for d, s in zip(drops, samples)])),
        "other_object_raises_score": proportion(np.concatenate(others) < 0),
    }


def localisation_metrics(clip: LoadedClip, n_scenes: int, seed: int = LOCALISATION_SEED,
                         heads: Sequence[str] = HEADS, batch_size: int = 32, spatial: str = "loosened",
                         image_layers: int = 1) -> dict:
    """Pointing game and energy share of Grad-ECLIP (``image_layers``: the number of last blocks whose maps it sums,
    1 in the paper; ``spatial``: its spatial weight, the paper's "loosened" or
    the ablations "softmax" / "none"), and the baselines of :data:`MODEL_CARD_BASELINES`
    (the registry's raw-attention, input-gradient and gradient-x-input, run by :func:`method_maps` as any method is)
    and a uniform map."""
    samples = localisation_samples(n_scenes, model_input_size(clip), seed)
    pixels, registrations = scene_inputs(clip, [s.scene for s in samples])
    explainers = {h: GradECLIP(clip, heads=h, spatial=spatial, image_layers=image_layers) for h in heads}
    text_embeddings = explainers[heads[0]].encode_texts([s.text for s in samples])

    grids = {h: [] for h in heads}
    gaps = {h: [] for h in heads}
    lambdas = {h: [] for h in heads}
    for start in range(0, len(samples), batch_size):
        batch = slice(start, start + batch_size)
        for h, explainer in explainers.items():
            own_grids, own_gaps = own_text_maps(explainer, pixels[batch], text_embeddings[batch])
            grids[h].append(own_grids.cpu().double().numpy())
            gaps[h].append(own_gaps.cpu())
            if spatial != "none":
                lambdas[h].append(spatial_weights(explainer, pixels[batch]).cpu().double().numpy())

    # the baselines, the same for either mode of Grad-ECLIP: the registry's methods, scored like any other method
    baselines = {}
    for key, name in MODEL_CARD_BASELINES.items():
        maps = method_maps(get_method(name), clip, pixels, [s.text for s in samples], batch_size, name)
        if any(m is None for m in maps):
            raise ValueError(f"{name} gave a map that is not finite on the model card's scenes")
        baselines[key] = _summary(_score_maps(maps, samples, registrations))
    raw_summary = baselines.pop("raw_attention")
    groups, named_groups = scene_groups(samples), named_object_groups(samples)
    uniform_summary = uniform_baseline(samples)
    areas = [s.scene.object_masks()[s.object_index].mean() for s in samples]

    out = {"n_scenes": len(samples), "seed": seed, "objects_per_scene": list(LOCALISATION_OBJECTS),
           "spatial": spatial, "image_layers": explainers[heads[0]].image_layers,  # the number used
           "text_template": LOCALISATION_TEMPLATE.format("{color} {shape}"),
           "image_size": model_input_size(clip), "mean_named_object_area_fraction": float(np.mean(areas)),
           "object_removal": object_removal(clip, samples, pixels, text_embeddings)}
    for h in heads:
        gap = torch.cat(gaps[h]).double().numpy()
        scored = _score_maps(np.concatenate(grids[h]), samples, registrations)
        grad = _summary(scored)
        out[h] = {
            "grad_eclip": grad,
            "grad_eclip_by_scene": _summary_by_group(scored, groups),
            "grad_eclip_by_named_object": _summary_by_group(scored, named_groups),
            "spatial_weight_by_object_color": spatial_weight_by_object_color(
                np.concatenate(lambdas[h]), samples, registrations) if spatial != "none" else None,
            "raw_attention": raw_summary,
            **baselines,
            "uniform": uniform_summary,
            "margin_over_raw_attention": {
                m: grad[m]["value"] - raw_summary[m]["value"] for m in ("pointing", "energy_share")},
            "score_gap": {"mean_abs": float(gap.mean()), "max_abs": float(gap.max()),
                          "definition": "|cosine of the recomputed network - cosine of the model|"},
        }
    return out


# ---------------------------------------------------------------------------------------------------------------
# Any explanation method
# ---------------------------------------------------------------------------------------------------------------
def _checked_maps(maps, n: int, first: int, method: str) -> list[Optional[np.ndarray]]:
    """The ``n`` maps of one call as float64 arrays; None for a map that is not finite everywhere. A result of the
    wrong shape breaks the method's contract and raises."""
    maps = maps.detach().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
    if maps.ndim != 3 or len(maps) != n:
        raise ValueError(f"{method} returned maps of shape {tuple(maps.shape)} for {n} scenes "
                         f"(scenes {first}..{first + n - 1}); expected ({n}, h, w)")
    maps = maps.astype(np.float64)
    return [m if np.isfinite(m).all() else None for m in maps]


def method_maps(explain: ExplainFunction, clip: LoadedClip, pixels: torch.Tensor, texts: Sequence[str],
                batch_size: int, name: str) -> list[Optional[np.ndarray]]:
    """The grid maps of any explanation method for image i and text i, ``batch_size`` at a time (float64; None for a
    map that is not finite): the one loop by which the model card and the benchmark run a method."""
    grids: list[Optional[np.ndarray]] = []
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start:start + batch_size])
        grids += _checked_maps(explain(clip, pixels[start:start + len(batch)], batch), len(batch), start, name)
    return grids


def benchmark_explanations(explain: ExplainFunction, clip: LoadedClip, n_scenes: int = 1000, split: str = "test",
                           batch_size: int = 32, name: Optional[str] = None) -> dict:
    """Score any explanation method on the localisation scenes of ``split``, as the model card scores Grad-ECLIP:
    pointing game, energy share and where the argmax lands, overall, by scene (``scene_groups``) and by named
    object (``named_object_groups``), next to a uniform map's expected scores. ``explain``: see ExplainFunction.

    A map with a NaN or infinite value is left out of the scores and listed under "failed" (scene index and
    text), and the rest are scored; "n_scored" says how many were."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_SEEDS)}")
    name = name or getattr(explain, "__name__", repr(explain))
    seed = SPLIT_SEEDS[split][1]
    samples = localisation_samples(n_scenes, model_input_size(clip), seed)
    pixels, registrations = scene_inputs(clip, [s.scene for s in samples])
    grids = method_maps(explain, clip, pixels, [s.text for s in samples], batch_size, name)
    scored_at = [i for i, g in enumerate(grids) if g is not None]
    kept = [samples[i] for i in scored_at]
    out = {"method": name, "model": _model_record(clip), "split": split, "seed": seed, "n_scenes": len(samples),
           "n_scored": len(kept),
           "failed": [{"scene": i, "text": samples[i].text, "error": "map is not finite"}
                      for i, g in enumerate(grids) if g is None]}
    if kept:
        scored = _score_maps([grids[i] for i in scored_at], kept, [registrations[i] for i in scored_at])
        out.update({"map": _summary(scored), "by_scene": _summary_by_group(scored, scene_groups(kept)),
                    "by_named_object": _summary_by_group(scored, named_object_groups(kept)),
                    "uniform": uniform_baseline(kept)})
    out["definitions"] = {k: DEFINITIONS[k] for k in ("pointing", "energy_share", "pointing_outcomes",
                                                      "background_miss_distance_px", "uniform", "ci95")}
    return out


# ---------------------------------------------------------------------------------------------------------------
# Everything
# ---------------------------------------------------------------------------------------------------------------
# What each key of the metrics (and of a benchmark's scores) means; written into every JSON they are in.
DEFINITIONS = {
    "pointing": "argmax of the map upsampled bilinearly to the image's pixels lies in the named object's "
                "mask; a constant map is a miss",
    "energy_share": "map mass in the named object's mask / map mass in all objects' masks (0 if none)",
    "pointing_outcomes": "fraction of scenes whose map argmax lies on the named object (= pointing), on "
                         "another object, on the background, or nowhere (constant map)",
    "background_miss_distance_px": "quartiles of the distance from the argmax to the named object's mask, "
                                   "over the maps whose argmax is on the background",
    "grad_eclip_by_scene": "the Grad-ECLIP scores on the scenes with 2, 3 or 4 objects, and on those with "
                           "or without another object of the named colour",
    "grad_eclip_by_named_object": "the Grad-ECLIP scores by the named object's colour (color_*), "
                                  "shape (shape_*), and both (object_<colour>_<shape>)",
    "spatial_weight_by_object_color": "Grad-ECLIP's spatial weight (lambda, per head of the explained "
                                      "attention, upsampled like the maps) averaged over each object's "
                                      "pixels, then over all objects of a colour; and over the background "
                                      "pixels of each scene, then over the scenes",
    "object_removal": "the model's score (cosine) minus its score with the image rendered again without "
                      "one object (the drop), for each object: mean drop for the named object and (per "
                      "scene, over the others) for the other objects; pointing = the named object's "
                      "removal drops the score most; other_object_raises_score = fraction of the other "
                      "objects whose removal raises the score",
    "spatial": "Grad-ECLIP's spatial weight: loosened (the paper), softmax or none (ablations)",
    "image_layers": "the number of last image blocks whose ReLU'd maps Grad-ECLIP sums: 1 (the paper) or "
                    "more (ablation); the spatial weights reported are the last block's",
    "raw_attention": "class token's softmax attention row over the patches in the last block, "
                     "averaged over heads",
    "input_gradient": "gradient saliency (Simonyan et al. 2014): max over the colour channels of |d score / d "
                      "pixel| of the model's cosine of each image with its own text, on the input's pixels",
    "gradient_x_input": "gradient x input (Shrikumar et al. 2016): sum over the colour channels of d score / d "
                        "pixel times the normalised pixel, ReLU'd, on the input's pixels",
    "uniform": "expected value for a constant map: pointing = named object's area / image area "
               "(argmax is a uniformly random pixel), energy share = named area / all objects' area",
    "ci95": "Wilson for proportions, mean +- 1.96 sd/sqrt(n) for means",
}


def _model_record(clip: LoadedClip) -> dict:
    return {"name": clip.name, "pretrained": str(clip.pretrained) if clip.pretrained else None}


def check_targets(metrics: dict) -> dict:
    """Which of the model card's targets the metrics meet."""
    checks = {f"zero_shot_{c}": metrics["zero_shot"][c]["accuracy"]["value"] >= t
              for c, t in TARGETS["zero_shot"].items()}
    for h in HEADS:
        block = metrics["localisation"].get(h)
        if block is None:
            continue
        for m in ("pointing", "energy_share"):
            checks[f"{h}_{m}"] = block["grad_eclip"][m]["value"] >= TARGETS[m]
            checks[f"{h}_{m}_margin_over_raw_attention"] = \
                block["margin_over_raw_attention"][m] >= TARGETS["margin_over_raw_attention"]
    return checks


def evaluate_clip(clip: LoadedClip, n_scenes: int = 1000, n_zero_shot: Optional[int] = None,
                  threads: Optional[int] = 2, spatial: str = "loosened", split: str = "test",
                  image_layers: int = 1) -> dict:
    """All model-card metrics of a loaded CLIP as one JSON-ready dict, on the scenes of ``split`` ("test": the
    model card's; "validation": for choosing between recipes and seeds)."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_SEEDS)}")
    zero_shot_seed, localisation_seed = SPLIT_SEEDS[split]
    if threads:
        torch.set_num_threads(threads)
    metrics = {
        "model": _model_record(clip),
        "split": split,
        "zero_shot": zero_shot_metrics(clip, n_zero_shot or n_scenes, seed=zero_shot_seed),
        "localisation": localisation_metrics(clip, n_scenes, seed=localisation_seed, spatial=spatial,
                                             image_layers=image_layers),
        "definitions": dict(DEFINITIONS),
        "targets": TARGETS,
    }
    metrics["targets_met"] = check_targets(metrics)
    return metrics


def write_json(data: dict, path: os.PathLike | str) -> Path:
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())
    return path
