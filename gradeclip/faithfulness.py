"""Faithfulness and localisation of explanation maps, measured on a model (paper section IV-B and IV-C2, and the
questions of Cui & Fan's critique, arXiv 2605.12952). Everything that runs the model is here; the metrics are in
``metrics.py`` and the tables in ``analysis/faithfulness.py``.

Tasks (each returns per-image numbers: the image is the unit of every table):

* zero-shot classification under image deletion and insertion, top-1 and top-5 hits (Table I): the explained text
  is the ground-truth class's (or the predicted class's) text, the classifier the mean of each class's prompt
  embeddings (one prompt per class in the toy world, the 80 OpenAI templates on ImageNet);
* retrieval under image deletion and insertion (Table II) and under text deletion and insertion (Table III):
  one caption per image, the pool is the evaluated images; image retrieval (IR, the caption finds its image among
  the pool) and text retrieval (TR, the image finds its caption), recall@1 and @5 of the pair's own partner, with
  the perturbed image (or caption) in place of the original;
* localisation (Table IV): pointing game and energy share of each map against the named object's mask
  (``metrics``, empty maps scored as misses, as the model card does);
* whose score a map explains: the recomputed network's scores against the model's (:func:`score_gap`), the
  model-parameter randomisation test (:func:`randomisation_test`, Adebayo et al. 2018).

Every perturbed image and text is scored by the unmodified model (its own ``encode_image`` / ``encode_text``),
whatever network the method explains. Maps are computed on the model's standard input (resize + center crop, the
inputs of the registry's methods) and put back on the image's pixels bilinearly (``geometry.grid_to_pixels``): the
authors computed Grad-ECLIP's maps on the keep-aspect input; outside a center crop the map is 0, and those pixels
(which the classifier does not see either) are changed last.

Toy world (the default): classification on single-object scenes with the 24 prompts "a <colour> <shape>" (the
form of the toy captions), retrieval on the localisation scenes (2-4 objects) captioned "a red cube and a blue
sphere" (colour and shape of every object, left to right), localisation on the same scenes against the exact masks,
rendered at the workflow's toyworld.image_size (the model's preprocessing resizes them) from the model card's
held-out seeds. Paper mode: an ImageNet val folder with a
labels file, COCO Karpathy val and COCO's instance masks (``datasets``).
"""
from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES
from PIL import Image

from . import baselines, geometry, method, metrics
from .adapters import ImageTower
from .datasets import (check_imagenet_root, coco_annotation_mask, karpathy_image_path, load_coco_annotations,
                       load_imagenet_labels, seeded_sample, study_coco_images)
from .explainer import GradECLIP
from .io import load_image
from .models import LoadedClip
from .toyworld import evaluate
from .toyworld.captions import describe
from .toyworld.vocabulary import COLORS, SHAPES
from .words import align

Tensor = torch.Tensor
# explain(clip, pixels, texts) -> maps (B, h, w): the registry's interface (``baselines``)
ExplainFunction = Callable[[LoadedClip, Tensor, Sequence[str]], "np.ndarray | Tensor"]
TOPK = (1, 5)
CLASSIFICATION_MEASURES = ("top1", "top5")
RETRIEVAL_MEASURES = ("ir1", "ir5", "tr1", "tr5")


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class LabelledImages:
    """Images with one class each. ``class_texts[c]``: the text a method explains for class c; ``classifier[c]``:
    the prompts whose mean embedding is class c's classifier weight."""

    ids: list[str]
    images: list[np.ndarray]  # (H, W, 3) uint8
    labels: np.ndarray  # (N,) class index
    class_names: list[str]
    class_texts: list[str]
    classifier: list[list[str]]


@dataclass
class CaptionedImages:
    ids: list[str]
    images: list[np.ndarray]
    captions: list[str]  # one per image


@dataclass
class NamedObjects:
    """Images with a text naming one object, its mask and the union of all objects' masks (the energy share's
    denominator); ``groups`` e.g. the named object's colour, per image."""

    ids: list[str]
    images: list[np.ndarray]
    texts: list[str]
    masks: list[np.ndarray]  # (H, W) bool
    objects: list[np.ndarray]
    groups: dict[str, list[str]] = field(default_factory=dict)


def toy_class_prompts() -> list[str]:
    return [f"a {c} {s}" for c in COLORS for s in SHAPES]


def toy_classification(n_images: int, image_size: int, seed: Optional[int] = None) -> LabelledImages:
    """Single-object toy scenes (the model card's zero-shot scenes of ``seed``, default its test seed), the class
    being "a <colour> <shape>" of the object (24 classes)."""
    scenes = evaluate.zero_shot_scenes(n_images, image_size, evaluate.ZERO_SHOT_SEED if seed is None else seed)
    prompts = toy_class_prompts()
    labels = [prompts.index(f"a {s.record['objects'][0]['color']} {s.record['objects'][0]['shape']}")
              for s in scenes]
    return LabelledImages([f"toy_{i:05d}" for i in range(len(scenes))], [s.image for s in scenes],
                          np.array(labels), [p[2:] for p in prompts], prompts, [[p] for p in prompts])


def toy_localisation(n_images: int, image_size: int, seed: Optional[int] = None) -> NamedObjects:
    """The model card's localisation scenes (2-4 objects, one named by colour and shape, "a red cube")."""
    samples = evaluate.localisation_samples(n_images, image_size,
                                            evaluate.LOCALISATION_SEED if seed is None else seed)
    masks = [s.scene.object_masks() for s in samples]
    named = [s.scene.record["objects"][s.object_index] for s in samples]
    return NamedObjects([f"toy_{i:05d}" for i in range(len(samples))], [s.scene.image for s in samples],
                        [s.text for s in samples], [m[s.object_index] for m, s in zip(masks, samples)],
                        [m.any(axis=0) for m in masks],
                        {"color": [o["color"] for o in named], "shape": [o["shape"] for o in named],
                         "n_objects": [str(len(m)) for m in masks]})


def toy_caption(record: dict) -> str:
    """"a red cube and a blue sphere": colour and shape of every object, left to right."""
    objects = record["objects"]
    order = sorted(range(len(objects)), key=lambda k: (objects[k]["pixel_coords"][0], k))
    return " and ".join(f"a {describe(objects[k], ('color', 'shape'))}" for k in order)


def toy_retrieval(n_images: int, image_size: int, seed: Optional[int] = None) -> CaptionedImages:
    """The localisation scenes, each with :func:`toy_caption`."""
    samples = evaluate.localisation_samples(n_images, image_size,
                                            evaluate.LOCALISATION_SEED if seed is None else seed)
    return CaptionedImages([f"toy_{i:05d}" for i in range(len(samples))], [s.scene.image for s in samples],
                           [toy_caption(s.scene.record) for s in samples])


# ---------------------------------------------------------------------------------------------------------------
# The model: inputs, embeddings
# ---------------------------------------------------------------------------------------------------------------
def model_inputs(clip: LoadedClip, images: Sequence[np.ndarray]) -> tuple[Tensor, list[geometry.Registration]]:
    """The model's standard preprocessing of uint8 images and where each input lies on its image."""
    prepared = [geometry.standard_input(Image.fromarray(np.asarray(im)), clip.preprocessing) for im in images]
    return torch.stack([p[0] for p in prepared]), [p[1] for p in prepared]


@torch.no_grad()
def image_embeddings(clip: LoadedClip, images: Sequence[np.ndarray], batch_size: int = 64) -> Tensor:
    """L2-normalised embeddings (N, E) of uint8 images by the unmodified model."""
    dtype = next(clip.model.visual.parameters()).dtype
    out = []
    for start in range(0, len(images), batch_size):
        pixels, _ = model_inputs(clip, images[start:start + batch_size])
        out.append(F.normalize(clip.model.encode_image(pixels.to(clip.device, dtype)).float(), dim=-1))
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def text_embeddings(clip: LoadedClip, texts: Sequence[str], batch_size: int = 256) -> Tensor:
    """L2-normalised embeddings (N, E) by the unmodified model; the empty text is a text too (start and end tokens
    only: what is left after every word is deleted)."""
    out = []
    for start in range(0, len(texts), batch_size):
        tokens = clip.tokenizer(list(texts[start:start + batch_size])).to(clip.device)
        out.append(F.normalize(clip.model.encode_text(tokens).float(), dim=-1))
    return torch.cat(out) if out else torch.zeros(0)


def classifier_weights(clip: LoadedClip, classifier: Sequence[Sequence[str]]) -> Tensor:
    """(C, E): each class's prompt embeddings averaged and L2-normalised (``build_zero_shot_classifier`` of the
    authors' ``clip_utils.py``)."""
    flat = [p for prompts in classifier for p in prompts]
    emb = text_embeddings(clip, flat)
    bounds = np.cumsum([0] + [len(p) for p in classifier])
    return F.normalize(torch.stack([emb[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:])]), dim=-1)


def ranks_of(scores: Tensor, target: Tensor) -> Tensor:
    """How many candidates score strictly higher than the target, per row: rank 0 is a top-1 hit. scores (S, C),
    target (S,) column index; ties count in the target's favour."""
    own = scores.gather(1, target.view(-1, 1))
    return (scores > own).sum(dim=1)


# ---------------------------------------------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------------------------------------------
def grid_maps(explain: ExplainFunction, clip: LoadedClip, pixels: Tensor, texts: Sequence[str],
              batch_size: int = 32) -> list[Optional[np.ndarray]]:
    """Map b of image b for text b on the method's own grid, float64; None where it is not finite."""
    out: list[Optional[np.ndarray]] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start:start + batch_size])
        maps = explain(clip, pixels[start:start + len(chunk)], chunk)
        maps = maps.detach().float().cpu().numpy() if isinstance(maps, Tensor) else np.asarray(maps)
        if maps.ndim != 3 or len(maps) != len(chunk):
            raise ValueError(f"the method returned maps of shape {tuple(maps.shape)} for {len(chunk)} images; "
                             f"expected ({len(chunk)}, h, w)")
        out += [m if np.isfinite(m).all() else None for m in maps.astype(np.float64)]
    return out


def pixel_maps(grids: Sequence[Optional[np.ndarray]], registrations: Sequence[geometry.Registration]
               ) -> list[Optional[np.ndarray]]:
    """Each grid map bilinearly on its image's pixels (``geometry.grid_to_pixels``), float64."""
    return [None if g is None else geometry.grid_to_pixels(g, r).astype(np.float64)
            for g, r in zip(grids, registrations)]


def explain_images(explain: ExplainFunction, clip: LoadedClip, images: Sequence[np.ndarray], texts: Sequence[str],
                   batch_size: int = 32) -> list[Optional[np.ndarray]]:
    """Maps of image i for text i on the image's pixels (None where the method gave a non-finite map)."""
    pixels, registrations = model_inputs(clip, images)
    return pixel_maps(grid_maps(explain, clip, pixels, texts, batch_size), registrations)


# ---------------------------------------------------------------------------------------------------------------
# The compared methods
# ---------------------------------------------------------------------------------------------------------------
#: The methods every faithfulness table holds (issue 34), before the registry's other baselines join them.
CORE_METHODS = ("grad-eclip", "grad-eclip-multi", "grad-eclip-no-lambda", "raw-attention", "input-gradient",
                "gradient-x-input", "random")
#: What the paired tests compare every method against.
REFERENCE_METHOD = "grad-eclip"


def grad_eclip_no_lambda(clip: LoadedClip, pixels: Tensor, texts: Sequence[str]) -> Tensor:
    """Grad-ECLIP without the spatial weight lambda (``spatial="none"``: lambda = 1, the paper's Table VII
    ablation), one head over all channels as the paper recomputes."""
    return baselines.grad_eclip(clip, pixels, texts, heads="single", spatial="none")


def random_map(clip: LoadedClip, pixels: Tensor, texts: Sequence[str], seed: int = 0) -> Tensor:
    """A uniform random map on the input's pixels, the chance level of every map metric: drawn from a generator
    seeded by ``seed`` and the CRC-32 of the image's pixels and its text, so map b depends on image b and text b
    only (not on the batch) and a rerun gives the same map."""
    out = []
    for image, text in zip(pixels, texts):
        key = zlib.crc32(image.detach().float().cpu().numpy().tobytes() + str(text).encode())
        generator = torch.Generator().manual_seed(int(seed) * (1 << 32) + key)
        out.append(torch.rand(tuple(image.shape[-2:]), generator=generator, dtype=torch.float64))
    return torch.stack(out) if out else torch.zeros(0, *pixels.shape[-2:], dtype=torch.float64)


EXTRA_METHODS: dict[str, ExplainFunction] = {"grad-eclip-no-lambda": grad_eclip_no_lambda, "random": random_map}


def image_method(name: str) -> ExplainFunction:
    """A map method by name: one of :data:`EXTRA_METHODS` or of the registry (``baselines.get_method``)."""
    if name in EXTRA_METHODS:
        return EXTRA_METHODS[name]
    return baselines.get_method(name)


def image_methods(names: Sequence[str], clip: Optional[LoadedClip] = None) -> dict[str, ExplainFunction]:
    """The named methods; with ``clip``, each registry method is first checked to run on that model
    (``baselines.check_method``: a ViT-only method on a ResNet raises, naming it)."""
    out = {}
    for name in names:
        if clip is not None and name not in EXTRA_METHODS:
            baselines.check_method(name, clip)
        out[name] = image_method(name)
    return out


# explain_words(clip, captions, images) -> one (words, importances) pair per caption (words only, punctuation left
# out), each word's importance for the caption's own image.
WordExplainFunction = Callable[[LoadedClip, Sequence[str], Sequence[np.ndarray]], list]
TEXT_METHODS = ("grad-eclip", "grad-eclip-multi", "grad-eclip-no-lambda", "random")


def grad_eclip_words(heads: str = "single", spatial: str = "loosened", text_layers: int = 8) -> WordExplainFunction:
    """Grad-ECLIP's word importances (raw, the sum over each word's tokens) of each caption for its own image."""
    def explain(clip: LoadedClip, captions: Sequence[str], images: Sequence[np.ndarray]) -> list:
        explainer = GradECLIP(clip, heads=heads, spatial=spatial, text_layers=text_layers)
        explained = explainer.explain_text_pairs(list(captions), [Image.fromarray(np.asarray(im)) for im in images])
        return [([w.text for w in e.words if w.is_word], e.importance(normalize=None, words_only=True))
                for e in explained]

    return explain


def random_words(clip: LoadedClip, captions: Sequence[str], images: Sequence[np.ndarray], seed: int = 0) -> list:
    """Random word importances (the chance level of text deletion and insertion), seeded by ``seed`` and the
    caption's CRC-32."""
    out = []
    for caption in captions:
        words = [w.text for w in align(clip.tokenizer, caption).words if w.is_word]
        rng = np.random.default_rng([int(seed), zlib.crc32(caption.encode())])
        out.append((words, rng.random(len(words))))
    return out


def text_method(name: str, text_layers: int = 8) -> WordExplainFunction:
    """A word-importance method by name (:data:`TEXT_METHODS`)."""
    makers = {"grad-eclip": lambda: grad_eclip_words("single", "loosened", text_layers),
              "grad-eclip-multi": lambda: grad_eclip_words("multi", "loosened", text_layers),
              "grad-eclip-no-lambda": lambda: grad_eclip_words("single", "none", text_layers),
              "random": lambda: random_words}
    if name not in makers:
        raise ValueError(f"unknown text method {name!r}; expected one of {', '.join(makers)}")
    return makers[name]()


# ---------------------------------------------------------------------------------------------------------------
# Deletion and insertion on images
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PerturbationSettings:
    """Section IV-B1's protocol (``metrics.perturbation_curves``); ``fills`` per mode, None = the authors'."""

    steps: int = metrics.DEFAULT_STEPS
    step_fraction: float = metrics.DEFAULT_STEP_FRACTION
    score_every: int = 1
    deletion_fill: Optional[str] = None
    insertion_fill: Optional[str] = None
    seed: int = 0
    batch_size: int = 128
    text_steps: int = metrics.DEFAULT_TEXT_STEPS

    def fill(self, mode: str) -> str:
        chosen = self.deletion_fill if mode == "deletion" else self.insertion_fill
        return chosen or metrics.DEFAULT_FILLS[mode]


def classification_scorer(clip: LoadedClip, classifier: Tensor, labels: np.ndarray) -> metrics.Scorer:
    """Scores perturbed images: (S, 2) top-1 and top-5 hits of the true class of each image's owner."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)

    def score(images: list, owners: np.ndarray) -> np.ndarray:
        emb = image_embeddings(clip, images, batch_size=len(images))
        rank = ranks_of(emb @ classifier.to(emb.device).T, labels[owners].to(emb.device))
        return torch.stack([rank < k for k in TOPK], dim=1).cpu().numpy()

    return score


def retrieval_scorer(image_emb: Tensor, caption_emb: Tensor, encode: Callable[[list], Tensor],
                     pool: np.ndarray) -> metrics.Scorer:
    """Scores perturbed images against the pool: (S, 4) IR@1, IR@5, TR@1, TR@5 of each image's own caption.
    ``pool[i]``: the pool index of pair i; ``encode``: perturbed images -> normalised embeddings."""

    def score(images: list, owners: np.ndarray) -> np.ndarray:
        return retrieval_hits(encode(images), None, image_emb, caption_emb, torch.as_tensor(pool[owners]))

    return score


def retrieval_hits(new_images: Optional[Tensor], new_captions: Optional[Tensor], image_emb: Tensor,
                   caption_emb: Tensor, index: Tensor) -> np.ndarray:
    """(S, 4) IR@1, IR@5, TR@1, TR@5 for S pairs of the pool, pair ``index[s]`` with its image replaced by
    ``new_images[s]`` or its caption by ``new_captions[s]`` (the other stays the original). IR: the caption's
    ranking of the pool's images; TR: the image's ranking of the pool's captions."""
    image_emb, caption_emb = image_emb.float(), caption_emb.float()
    img = image_emb[index] if new_images is None else new_images.float().to(image_emb.device)
    cap = caption_emb[index] if new_captions is None else new_captions.float().to(image_emb.device)
    own = (img * cap).sum(-1, keepdim=True)  # (S, 1)
    others_img = cap @ image_emb.T  # caption s against the pool's images (S, N)
    others_cap = img @ caption_emb.T  # image s against the pool's captions
    not_self = torch.ones_like(others_img, dtype=torch.bool)
    not_self[torch.arange(len(index)), index] = False
    ir_rank = ((others_img > own) & not_self).sum(1)
    tr_rank = ((others_cap > own) & not_self).sum(1)
    return torch.stack([ir_rank < 1, ir_rank < 5, tr_rank < 1, tr_rank < 5], dim=1).cpu().numpy()


def image_curves(clip: LoadedClip, images: Sequence[np.ndarray], maps: Sequence[np.ndarray], score: metrics.Scorer,
                 settings: PerturbationSettings, indices: Sequence[int]) -> dict[str, metrics.Curves]:
    """Deletion and insertion curves of each (image, map) pair under ``score``."""
    return {mode: metrics.perturbation_curves(
        images, maps, score, mode=mode, steps=settings.steps, step_fraction=settings.step_fraction,
        score_every=settings.score_every, fill=settings.fill(mode), seed=settings.seed, indices=indices,
        batch_size=settings.batch_size) for mode in metrics.MODES}


@dataclass
class MethodCurves:
    """One method's curves on one task: ``kept`` the images (indices into the data) whose map was finite."""

    method: str
    task: str
    target: str
    measures: tuple[str, ...]
    kept: np.ndarray
    curves: dict[str, metrics.Curves]
    failed: list[int]


def classification_faithfulness(clip: LoadedClip, data: LabelledImages, methods: dict[str, ExplainFunction],
                                settings: PerturbationSettings, targets: Sequence[str] = ("ground_truth",),
                                batch_size: int = 32) -> tuple[list[MethodCurves], dict]:
    """Table I: each method's deletion and insertion curves of top-1/top-5 zero-shot hits, explaining the true class
    (``ground_truth``) and/or the model's top-1 class (``prediction``). Also returns the unperturbed accuracy."""
    classifier = classifier_weights(clip, data.classifier)
    emb = image_embeddings(clip, data.images)
    predicted = (emb @ classifier.to(emb.device).T).argmax(1).cpu().numpy()
    rank = ranks_of(emb @ classifier.to(emb.device).T, torch.as_tensor(data.labels).to(emb.device)).cpu().numpy()
    base = {"n": len(data.images), "n_classes": len(data.class_names),
            **{f"top{k}": float(np.mean(rank < k)) for k in TOPK},
            **{f"chance_top{k}": min(k, len(data.class_names)) / len(data.class_names) for k in TOPK}}
    score = classification_scorer(clip, classifier, data.labels)
    out = []
    for target in targets:
        if target not in ("ground_truth", "prediction"):
            raise ValueError(f"target must be ground_truth or prediction, got {target!r}")
        classes = data.labels if target == "ground_truth" else predicted
        texts = [data.class_texts[c] for c in classes]
        for name, explain in methods.items():
            out.append(_method_curves(clip, data.images, texts, explain, score, settings, name, "classification",
                                      target, CLASSIFICATION_MEASURES, batch_size))
    return out, base


def _method_curves(clip, images, texts, explain, score, settings, name, task, target, measures, batch_size):
    maps = explain_images(explain, clip, images, texts, batch_size)
    kept = np.array([i for i, m in enumerate(maps) if m is not None], dtype=np.int64)
    failed = [i for i, m in enumerate(maps) if m is None]

    def kept_score(batch: list, owners: np.ndarray) -> np.ndarray:
        return score(batch, kept[owners])

    curves = image_curves(clip, [images[i] for i in kept], [maps[i] for i in kept], kept_score, settings,
                          indices=kept.tolist())
    return MethodCurves(name, task, target, measures, kept, curves, failed)


def retrieval_faithfulness(clip: LoadedClip, data: CaptionedImages, methods: dict[str, ExplainFunction],
                           settings: PerturbationSettings, batch_size: int = 32) -> tuple[list[MethodCurves], dict]:
    """Table II: each method's deletion and insertion curves of IR/TR recall@1/@5, the map explaining each image's
    own caption. Also returns the unperturbed recalls."""
    image_emb = image_embeddings(clip, data.images)
    caption_emb = text_embeddings(clip, data.captions)
    everyone = torch.arange(len(data.images))
    hits = retrieval_hits(None, None, image_emb, caption_emb, everyone)
    base = {"n": len(data.images), **dict(zip(RETRIEVAL_MEASURES, hits.mean(0).tolist())),
            "chance_1": 1 / len(data.images), "chance_5": min(5, len(data.images)) / len(data.images)}
    score = retrieval_scorer(image_emb, caption_emb, lambda ims: image_embeddings(clip, ims, len(ims)),
                             np.arange(len(data.images)))
    out = [_method_curves(clip, data.images, data.captions, explain, score, settings, name, "retrieval",
                          "caption", RETRIEVAL_MEASURES, batch_size) for name, explain in methods.items()]
    return out, base


def layer_faithfulness(clip: LoadedClip, labelled: Optional[LabelledImages], captioned: Optional[CaptionedImages],
                       layer_counts: Sequence[int], settings: PerturbationSettings, heads: str = "single",
                       batch_size: int = 32) -> list[MethodCurves]:
    """Table VI: Grad-ECLIP's curves with the maps of the last ``L`` image layers summed, for each L, on the
    classification (ground-truth class) and retrieval tasks; the method's name is ``layers=L``."""
    methods = {}
    for count in layer_counts:
        explainer = GradECLIP(clip, image_layers=int(count), heads=heads)

        def explain(c, pixels, texts, explainer=explainer):
            maps = explainer.explain_pixels(pixels, explainer.encode_texts(texts))
            diagonal = torch.arange(len(pixels))
            return maps.grids[diagonal, diagonal]

        methods[f"layers={explainer.image_layers}"] = explain
    out = []
    if labelled is not None:
        out += classification_faithfulness(clip, labelled, methods, settings, ("ground_truth",), batch_size)[0]
    if captioned is not None:
        out += retrieval_faithfulness(clip, captioned, methods, settings, batch_size)[0]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Deletion and insertion on texts
# ---------------------------------------------------------------------------------------------------------------
def text_faithfulness(clip: LoadedClip, data: CaptionedImages, methods: dict[str, WordExplainFunction],
                      steps: int = metrics.DEFAULT_TEXT_STEPS) -> tuple[list[MethodCurves], dict]:
    """Table III: each text method's deletion and insertion curves of IR/TR recall@1/@5, deleting (inserting) one
    word per step in the order of its word importances, the caption's own image fixed."""
    image_emb = image_embeddings(clip, data.images)
    caption_emb = text_embeddings(clip, data.captions)
    hits = retrieval_hits(None, None, image_emb, caption_emb, torch.arange(len(data.images)))
    base = {"n": len(data.images), **dict(zip(RETRIEVAL_MEASURES, hits.mean(0).tolist()))}
    at = np.arange(steps + 1)
    out = []
    for name, explain in methods.items():
        explained = explain(clip, data.captions, data.images)
        kept = np.array([i for i, (_, imp) in enumerate(explained) if np.isfinite(imp).all()], dtype=np.int64)
        curves = {}
        for mode in metrics.MODES:
            texts = [t for i in kept for t in metrics.text_steps(*explained[i], mode=mode, steps=steps)]
            index = torch.as_tensor(np.repeat(kept, len(at)))
            values = retrieval_hits(None, text_embeddings(clip, texts), image_emb, caption_emb, index)
            n_words = np.array([max(len(explained[i][0]), 1) for i in kept])
            curves[mode] = metrics.Curves(mode, at, values.reshape(len(kept), len(at), -1).astype(np.float64),
                                          np.minimum(at[None] / n_words[:, None], 1.0), steps)
        out.append(MethodCurves(name, "text", "caption", RETRIEVAL_MEASURES, kept, curves,
                                [i for i in range(len(explained)) if i not in set(kept.tolist())]))
    return out, base


# ---------------------------------------------------------------------------------------------------------------
# Localisation
# ---------------------------------------------------------------------------------------------------------------
def localisation_scores(maps: Sequence[Optional[np.ndarray]], data: NamedObjects) -> dict[str, np.ndarray]:
    """Per image: pointing hit, energy share (``metrics``; an empty map scores as a miss, the model card's rule),
    whether the map was empty or constant, and a constant map's expected scores (the chance level). NaN where the
    method gave a non-finite map."""
    n = len(data.images)
    out = {k: np.full(n, np.nan) for k in ("pointing", "energy_share", "empty", "constant")}
    for i, (m, mask, objects) in enumerate(zip(maps, data.masks, data.objects)):
        if m is None:
            continue
        out["pointing"][i] = metrics.pointing_hit(m, mask, empty="miss")
        out["energy_share"][i] = metrics.energy_share(m, mask, objects, empty="miss")
        out["empty"][i] = float(metrics.is_empty_map(m))
        out["constant"][i] = float(not m.max() > m.min())
    out["uniform_pointing"] = np.array([metrics.uniform_pointing(mask) for mask in data.masks])
    out["uniform_energy_share"] = np.array([metrics.uniform_energy_share(mask, o)
                                            for mask, o in zip(data.masks, data.objects)])
    return out


def localisation_by_method(clip: LoadedClip, data: NamedObjects, methods: dict[str, ExplainFunction],
                           batch_size: int = 32) -> dict[str, dict[str, np.ndarray]]:
    """Table IV: :func:`localisation_scores` of each method's maps (each image's map for its own text)."""
    return {name: localisation_scores(explain_images(explain, clip, data.images, data.texts, batch_size), data)
            for name, explain in methods.items()}


# ---------------------------------------------------------------------------------------------------------------
# Whose score does the map explain?
# ---------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def recomputed_image_embeddings(clip: LoadedClip, pixels: Tensor, heads: str = "single", layers: int = 1) -> Tensor:
    """L2-normalised image embeddings (N, E) of the network Grad-ECLIP explains: the last ``layers`` blocks with
    their attention recomputed (``method.recomputed_forward``; heads="single": one head over all channels)."""
    tower = ImageTower(clip.model.visual)
    x = tower.embed(pixels.to(clip.device))
    for layer in tower.layers[:-layers]:
        x = layer.module(x)
    pooled, _ = method.recomputed_forward(tower.layers[-layers:], x, tower.query_rows(x), heads=heads,
                                          spatial="none")
    return F.normalize(tower.finish(pooled).float(), dim=-1)


def score_gap(clip: LoadedClip, images: Sequence[np.ndarray], texts: Sequence[str], heads: str = "single",
              layers: int = 1, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Cosines (N, K) of every image with every text: of the network Grad-ECLIP explains with ``heads`` (the score
    its maps explain) and of the unmodified model."""
    texts_emb = text_embeddings(clip, texts)
    recomputed, model = [], []
    for start in range(0, len(images), batch_size):
        pixels, _ = model_inputs(clip, images[start:start + batch_size])
        recomputed.append(recomputed_image_embeddings(clip, pixels, heads, layers) @ texts_emb.T)
    model = image_embeddings(clip, images, batch_size) @ texts_emb.T
    return torch.cat(recomputed).cpu().double().numpy(), model.cpu().double().numpy()


def recomputed_zero_shot(clip: LoadedClip, data: LabelledImages, heads: str = "single", layers: int = 1,
                         batch_size: int = 64) -> dict[str, np.ndarray]:
    """Per image, the zero-shot top-1 hit (ground-truth class) of the unmodified model and of the network
    Grad-ECLIP explains (:func:`recomputed_image_embeddings` with ``heads``), the same classifier for both."""
    classifier = classifier_weights(clip, data.classifier)
    recomputed = []
    for start in range(0, len(data.images), batch_size):
        pixels, _ = model_inputs(clip, data.images[start:start + batch_size])
        recomputed.append(recomputed_image_embeddings(clip, pixels, heads, layers))
    labels = torch.as_tensor(np.asarray(data.labels), dtype=torch.long)
    out = {}
    for name, emb in (("model", image_embeddings(clip, data.images, batch_size)), ("recomputed", torch.cat(recomputed))):
        rank = ranks_of(emb @ classifier.to(emb.device).T, labels.to(emb.device))
        out[name] = (rank < 1).cpu().numpy().astype(np.float64)
    return out


def image_blocks(clip: LoadedClip) -> list[torch.nn.Module]:
    """The image tower's blocks from the input up: a ViT's transformer blocks; a ResNet's four stages and its
    attention pool."""
    visual = clip.model.visual
    if hasattr(visual, "transformer"):
        return list(visual.transformer.resblocks)
    return [visual.layer1, visual.layer2, visual.layer3, visual.layer4, visual.attnpool]


def randomised_copy(clip: LoadedClip, blocks: int, seed: int = 0) -> LoadedClip:
    """A copy of the model with the parameters of its last ``blocks`` image blocks redrawn (cascading, top down:
    Adebayo et al. 2018): each tensor from a normal distribution with the tensor's own mean and standard deviation
    (a constant tensor, e.g. a LayerNorm's untrained scale, keeps its value), seeded."""
    model = copy.deepcopy(clip.model)
    copied = replace(clip, model=model)
    generator = torch.Generator().manual_seed(seed)
    for block in image_blocks(copied)[len(image_blocks(copied)) - blocks:]:
        for p in block.parameters():
            with torch.no_grad():
                mean, std = p.float().mean(), p.float().std() if p.numel() > 1 else torch.tensor(0.0)
                noise = torch.randn(p.shape, generator=generator)
                p.copy_((mean + std * noise).to(p.dtype))
    return copied


def randomisation_test(explain: ExplainFunction, clip: LoadedClip, images: Sequence[np.ndarray],
                       texts: Sequence[str], levels: Sequence[int], seed: int = 0,
                       batch_size: int = 32) -> np.ndarray:
    """(N, len(levels)) Spearman rank correlation between each image's map under the model and under the model
    with its last k image blocks randomised, for each k of ``levels`` (NaN where a map is not finite). A map that
    explains the model changes as the model is destroyed (correlation falls towards 0)."""
    pixels, _ = model_inputs(clip, images)
    original = grid_maps(explain, clip, pixels, texts, batch_size)
    out = np.full((len(images), len(levels)), np.nan)
    for j, k in enumerate(levels):
        changed = grid_maps(explain, randomised_copy(clip, int(k), seed), pixels, texts, batch_size)
        for i, (a, b) in enumerate(zip(original, changed)):
            if a is not None and b is not None:
                out[i, j] = metrics.spearman(a, b)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Paper mode: ImageNet val, COCO Karpathy val and instances
# ---------------------------------------------------------------------------------------------------------------
IMAGENET_EXPLAIN_TEMPLATE = "a photo of a {}."


def _read_rgb(path) -> np.ndarray:
    return np.asarray(load_image(path).convert("RGB"))


def _short_side_at_most(image: np.ndarray, limit: Optional[int]) -> np.ndarray:
    """The authors' evaluation scripts first shrink an image whose short side exceeds 640 px."""
    h, w = image.shape[:2]
    if not limit or min(h, w) <= limit:
        return image
    scale = min(h, w) / limit
    return np.asarray(Image.fromarray(image).resize((int(w / scale), int(h / scale))))


def imagenet_classification(root, labels_file, n_images: Optional[int], seed: int, templates: str = "openai",
                            classes: str = "all", explain_template: str = IMAGENET_EXPLAIN_TEMPLATE,
                            max_short_side: Optional[int] = 640) -> LabelledImages:
    """``n_images`` labelled ImageNet val images (``datasets.seeded_sample``), the zero-shot classifier over all
    1000 classes (``classes="all"``) or only those of the sample (``"present"``, for miniature data), each class the
    mean of the 80 OpenAI prompt embeddings (``templates="openai"``) or of ``explain_template`` alone
    (``"single"``). The methods explain ``explain_template`` of a class (one text: the registry's methods take
    strings; the authors' Grad-ECLIP explained the 80-prompt mean embedding)."""
    check_imagenet_root(root, labels_file)  # every labelled image is there, before any is read (names the missing)
    pairs = seeded_sample(load_imagenet_labels(labels_file), n_images, seed)
    chosen = sorted({c for _, c in pairs}) if classes == "present" else list(range(len(IMAGENET_CLASSNAMES)))
    if classes not in ("all", "present"):
        raise ValueError(f"classes must be 'all' or 'present', got {classes!r}")
    if templates not in ("openai", "single"):
        raise ValueError(f"templates must be 'openai' or 'single', got {templates!r}")
    names = [IMAGENET_CLASSNAMES[c] for c in chosen]
    prompts = [[t(n) for t in OPENAI_IMAGENET_TEMPLATES] if templates == "openai" else [explain_template.format(n)]
               for n in names]
    position = {c: i for i, c in enumerate(chosen)}
    images = [_short_side_at_most(_read_rgb(Path(root) / name), max_short_side) for name, _ in pairs]
    return LabelledImages([name for name, _ in pairs], images, np.array([position[c] for _, c in pairs]), names,
                          [explain_template.format(n) for n in names], prompts)


def coco_retrieval(coco_root, karpathy_json, n_images: Optional[int], seed: int,
                   max_short_side: Optional[int] = 640) -> CaptionedImages:
    """``n_images`` of Karpathy's val split (the study's sampler), each with its first caption; the pool is these
    images (the paper: all 5,000)."""
    chosen = study_coco_images(karpathy_json, n_images, seed)
    return CaptionedImages([str(im["cocoid"]) for im in chosen],
                           [_short_side_at_most(_read_rgb(karpathy_image_path(coco_root, im)), max_short_side)
                            for im in chosen],
                           [im["sentences"][0]["raw"].strip() for im in chosen])


def coco_localisation(coco_root, instances_json, karpathy_json, n_images: Optional[int], seed: int,
                      template: str = IMAGENET_EXPLAIN_TEMPLATE) -> NamedObjects:
    """``n_images`` of Karpathy's val split with at least one instance, each with one of its categories (drawn
    with a generator seeded by ``seed`` and the image id): the text ``template`` of the category's name, the mask
    the union of its instances, the objects the union of all instances. Full resolution (masks are exact)."""
    chosen = study_coco_images(karpathy_json, n_images, seed)
    doc = load_coco_annotations(instances_json, [im["cocoid"] for im in chosen])
    out = NamedObjects([], [], [], [], [], {"category": []})
    for im in chosen:
        anns = doc["annotations"].get(int(im["cocoid"]), [])
        if not anns:
            continue
        size = doc["images"][int(im["cocoid"])]
        masks = [coco_annotation_mask(a, size["height"], size["width"]) for a in anns]
        categories = sorted({a["category_id"] for a in anns})
        pick = categories[int(np.random.default_rng([seed, int(im["cocoid"])]).integers(len(categories)))]
        named = np.any([m for m, a in zip(masks, anns) if a["category_id"] == pick], axis=0)
        if not named.any():
            continue
        out.ids.append(str(im["cocoid"]))
        out.images.append(_read_rgb(karpathy_image_path(coco_root, im)))
        out.texts.append(template.format(doc["categories"][pick]))
        out.masks.append(named)
        out.objects.append(np.any(masks, axis=0))
        out.groups["category"].append(doc["categories"][pick])
    return out
