"""The user-facing object: ``GradECLIP(clip)(image, texts)`` returns one heat map per text, and
``explain_text(text, image)`` the importance of each word. It handles images, strings, batching and geometry;
the formulas are in ``method.py``."""
from __future__ import annotations

import numbers
import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import geometry, method
from .adapters import ImageTower, TextTower
from .geometry import Preprocessing, Registration
from .io import as_rgb_image
from .models import LoadedClip, load_clip
from .words import AlignedText, EmptyTextError, Word, align, token_strings

ImageLike = Union[Image.Image, str, os.PathLike, np.ndarray]  # an array: uint8, (H, W[, 3 or 4])


def text_list(texts: Union[str, Sequence[str]]) -> list[str]:
    """The texts to explain as a list: one string is one text (never its characters), every item must be a string
    with something to explain, and there must be at least one."""
    if isinstance(texts, str):
        texts = [texts]
    elif texts is None or not hasattr(texts, "__iter__"):
        raise TypeError(f"texts must be a string or a list of strings; got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError("no texts given: pass one text or a list of texts")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} must be a string; got {type(text).__name__} {text!r:.60}")
        if not text.strip():
            raise EmptyTextError(f"text {text!r} is empty: nothing to explain")
    return texts


def image_list(images) -> list:
    """The images as a list: one image (a path, a PIL image, or an array of shape (H, W[, C])) is a list of one,
    never a sequence of its characters or rows."""
    if isinstance(images, (str, os.PathLike, Image.Image)) or (isinstance(images, np.ndarray) and images.ndim <= 3):
        return [images]
    if images is None or not hasattr(images, "__iter__"):
        raise TypeError(f"images must be an image or a list of images; got {type(images).__name__}")
    return list(images)


def layer_count(option: str, value, depth: int, tower: str) -> tuple[int, Optional[str]]:
    """The number of last layers to explain, checked: a whole number >= 1 (``TypeError`` / ``ValueError`` naming
    the option otherwise). More than the tower has means all of them, and a warning naming its depth (returned, for
    the explainer to give when it first uses that tower): the paper's 8 text layers then explain a shallower text
    tower entirely, and images and texts follow the same rule."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{option} must be a whole number of layers (int >= 1); got {value!r} "
                        f"({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{option} must be at least 1 (the number of last layers explained); got {value}")
    if value > depth:
        layers = f"{depth} layer{'s' if depth > 1 else ''}"
        return depth, f"{option}={value} is more than the {tower}'s depth ({layers}): explaining all {depth}"
    return int(value), None


@dataclass
class ImageExplanation:
    """The explanation of one (image, text) pair.

    grid: the raw Grad-ECLIP map on the patch grid (h, w), >= 0, unnormalised.
    score: cosine of the image and text embeddings of the network as recomputed (the score the map explains).
    model_score: the unmodified model's cosine for the same input; with heads="single" the two differ (see the
    README: the single-head recomputation is a slightly different network).
    """

    text: str
    grid: np.ndarray
    score: float
    model_score: float
    registration: Registration

    @cached_property
    def heatmap(self) -> np.ndarray:
        """The map on the original image's pixels (H, W), min-max normalised to [0, 1]; 0 where the model's input
        did not reach (outside a center crop)."""
        return geometry.heatmap(self.grid, self.registration)


@dataclass
class TextExplanation:
    """Word importances of one text for one image: ``word_scores[i]`` is the summed Grad-ECLIP importance of the BPE
    tokens of ``words[i]`` (raw, >= 0); ``importance()`` normalises them."""

    text: str
    words: list[Word]
    word_scores: np.ndarray
    tokens: list[str]
    token_scores: np.ndarray
    token_word: np.ndarray
    score: float
    model_score: float
    truncated: bool = False

    def importance(self, normalize: Optional[str] = "sum", words_only: bool = False) -> np.ndarray:
        """Word importances normalised to sum 1 (``"sum"``, the paper's text maps) or max 1 (``"max"``, the
        concreteness study), or raw (None); all zeros stay zeros. ``words_only`` drops punctuation/symbols."""
        scores = self.word_scores
        if words_only:
            scores = scores[[w.is_word for w in self.words]]
        scores = scores.astype(np.float64)
        total = scores.sum() if normalize == "sum" else scores.max(initial=0.0) if normalize == "max" else 1.0
        if normalize not in (None, "sum", "max"):
            raise ValueError(f"normalize must be 'sum', 'max' or None, got {normalize!r}")
        return scores / total if total > 0 else np.zeros_like(scores)


@dataclass
class _Prepared:
    pixels: torch.Tensor
    registration: Registration
    index: int = field(default=0)


class GradECLIP:
    """Grad-ECLIP for an open_clip CLIP (ViT or ResNet image tower).

    >>> explainer = GradECLIP.from_pretrained("ViT-B-16", "openai")
    >>> maps = explainer("dog.jpg", ["a dog", "a frisbee"])     # one ImageExplanation per text
    >>> words = explainer.explain_text("a dog with a frisbee", "dog.jpg")

    Options (defaults follow the paper and the official code):
    image_layers=1 / text_layers=8: how many last layers are aggregated (a whole number >= 1, checked here; more than
    a tower has means all of its layers, with a warning naming its depth when that tower is first explained; the
    attributes hold the numbers used); heads="single"
    recomputes the explained
    attention with one head over all channels, "multi" keeps the model's heads; spatial="loosened" (min-max
    cos(q, k)), "softmax" (the attention row) or "none"; keep_aspect=False uses the model's preprocessing (resize +
    center crop), True resizes each side to a multiple of the patch size (the official default for maps).
    """

    def __init__(self, clip: LoadedClip, *, image_layers: int = 1, text_layers: int = 8, heads: str = "single",
                 spatial: str = "loosened", keep_aspect: bool = False, max_short_side: Optional[int] = 640,
                 max_tokens: Optional[int] = 4096):
        if heads not in method.HEADS:
            raise ValueError(f"heads must be one of {method.HEADS}, got {heads!r}")
        if spatial not in method.SPATIAL:
            raise ValueError(f"spatial must be one of {method.SPATIAL}, got {spatial!r}")
        self.clip = clip
        self.model = clip.model.eval()
        self.tokenizer = clip.tokenizer
        self.preprocessing: Preprocessing = clip.preprocessing
        self.image_tower = ImageTower(self.model.visual)
        self.text_tower = TextTower(self.model)
        self.image_layers, image_note = layer_count(
            "image_layers", image_layers, len(self.image_tower.layers),
            "ResNet image tower" if self.image_tower.kind == "resnet" else "image tower")
        self.text_layers, text_note = layer_count("text_layers", text_layers, len(self.text_tower.layers),
                                                  "text tower")
        # given once, when that tower is first explained: the paper's default text_layers=8 on a shallower text
        # tower is no news to someone who explains images only
        self._depth_notes = {"image": image_note, "text": text_note}
        self.heads, self.spatial = heads, spatial
        self.keep_aspect, self.max_short_side, self.max_tokens = keep_aspect, max_short_side, max_tokens

    @classmethod
    def from_pretrained(cls, name: str, pretrained: Optional[str] = None, *, device: str = "cpu",
                        precision: str = "fp32", cache_dir: Optional[str] = None, **options) -> "GradECLIP":
        return cls(load_clip(name, pretrained, device=device, precision=precision, cache_dir=cache_dir), **options)

    # the keys of a workflow config's ``model`` and ``method`` sections (workflow/schemas/config.schema.yaml)
    MODEL_KEYS = ("name", "pretrained", "device", "precision")
    METHOD_KEYS = ("heads", "spatial", "image_layers", "text_layers", "keep_aspect")

    @classmethod
    def from_config(cls, model: Mapping, method: Mapping, **options) -> "GradECLIP":
        """The explainer a workflow config describes: its ``model`` section (name, pretrained, device, precision)
        and ``method`` section (heads, spatial, image_layers, text_layers, keep_aspect). A missing or unknown key
        is a ValueError naming it; ``options`` go to the constructor as they are (e.g. max_short_side)."""
        for section, given, keys in (("model", model, cls.MODEL_KEYS), ("method", method, cls.METHOD_KEYS)):
            unknown, missing = sorted(set(given) - set(keys)), sorted(set(keys) - set(given))
            if unknown or missing:
                raise ValueError(f"config section {section!r}: " + "; ".join(
                    part for part in (f"unknown key(s) {unknown}" if unknown else "",
                                      f"missing key(s) {missing}" if missing else "") if part))
        return cls.from_pretrained(model["name"], model["pretrained"], device=model["device"],
                                   precision=model["precision"], **{k: method[k] for k in cls.METHOD_KEYS},
                                   **options)

    @property
    def device(self) -> torch.device:
        return self.clip.device

    # ------------------------------------------------------------------------------------------------ inputs
    def image_input(self, image: ImageLike, keep_aspect: Optional[bool] = None) -> tuple[torch.Tensor, Registration]:
        """The model input (3, H, W) for an image and where it lies on the original pixels."""
        img = as_rgb_image(image)
        if self.keep_aspect if keep_aspect is None else keep_aspect:
            return geometry.keep_aspect_input(img, self.preprocessing, self.image_tower.patch_size,
                                              self.max_short_side, self.max_tokens)
        return geometry.standard_input(img, self.preprocessing)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings (K, E) from the unmodified text encoder."""
        tokens = self.tokenizer(text_list(texts)).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    @torch.no_grad()
    def encode_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """L2-normalised image embeddings (N, E) from the unmodified image encoder with standard preprocessing."""
        images = image_list(images)
        if not images:
            raise ValueError("no images given")
        pixels = torch.stack([self.image_input(im, keep_aspect=False)[0] for im in images]).to(self.device)
        return F.normalize(self.model.encode_image(pixels.to(self.image_tower.dtype)).float(), dim=-1)

    # ------------------------------------------------------------------------------------------------ images
    def __call__(self, image: ImageLike, texts: Union[str, Sequence[str]],
                 text_embeddings: Optional[torch.Tensor] = None) -> list[ImageExplanation]:
        """Heat maps of one image for each text (one image forward, one batched backward for all texts)."""
        return self.explain_images([image], texts, text_embeddings=text_embeddings)[0]

    def explain_images(self, images: Sequence[ImageLike], texts: Union[str, Sequence[str]], *, batch_size: int = 8,
                       text_embeddings: Optional[torch.Tensor] = None) -> list[list[ImageExplanation]]:
        """Every image against every text. Images whose inputs have the same size run as one batch. One image or one
        text (a string) counts as a list of one."""
        texts, images = text_list(texts), image_list(images)
        if text_embeddings is None:
            text_embeddings = self.encode_texts(texts)
        elif len(text_embeddings) != len(texts):
            raise ValueError(f"{len(text_embeddings)} text embeddings for {len(texts)} texts")
        prepared = [_Prepared(*self.image_input(im), index=i) for i, im in enumerate(images)]
        results: list[Optional[list[ImageExplanation]]] = [None] * len(prepared)
        by_shape: dict[tuple, list[_Prepared]] = {}
        for p in prepared:
            by_shape.setdefault(tuple(p.pixels.shape), []).append(p)
        for group in by_shape.values():
            for start in range(0, len(group), batch_size):
                chunk = group[start:start + batch_size]
                out = self.explain_pixels(torch.stack([p.pixels for p in chunk]), text_embeddings)
                for j, p in enumerate(chunk):
                    results[p.index] = [
                        ImageExplanation(t, out.grids[j, k].cpu().numpy(), float(out.scores[j, k]),
                                         float(out.model_scores[j, k]), p.registration)
                        for k, t in enumerate(texts)]
        return results

    def explain_pixels(self, pixels: torch.Tensor, text_embeddings: torch.Tensor) -> method.ImageMaps:
        """Low level: maps (N, K, h, w) of preprocessed pixels (N, 3, H, W) against text embeddings (K, E)."""
        self._note_depth("image")
        return method.explain_image_tensor(self.image_tower, pixels.to(self.device), text_embeddings.to(self.device),
                                           layers=self.image_layers, heads=self.heads, spatial=self.spatial)

    # ------------------------------------------------------------------------------------------------ texts
    def explain_text(self, text: str, image: ImageLike) -> TextExplanation:
        if not isinstance(text, str):
            raise TypeError(f"the text must be a string; got {type(text).__name__} {text!r:.60}")
        return self.explain_texts([text], image)[0]

    def explain_texts(self, texts: Union[str, Sequence[str]], image: ImageLike) -> list[TextExplanation]:
        """Word importances of K texts for one image (one image forward, one text forward, one backward); one text (a
        string) counts as a list of one."""
        texts = text_list(texts)
        emb = self.encode_images([image])
        return self._explain_aligned([self.align(t) for t in texts], emb.expand(len(texts), -1))

    def explain_text_pairs(self, texts: Sequence[str], images: Sequence[ImageLike]) -> list[TextExplanation]:
        """Word importances of text i for image i (e.g. each caption with its own image)."""
        texts, images = text_list(texts), image_list(images)
        if len(texts) != len(images):
            raise ValueError(f"{len(texts)} texts but {len(images)} images")
        return self._explain_aligned([self.align(t) for t in texts], self.encode_images(images))

    def align(self, text: str) -> AlignedText:
        return align(self.tokenizer, text, self.text_tower.context_length)

    def _note_depth(self, tower: str) -> None:
        note = self._depth_notes.get(tower)
        if note:
            self._depth_notes[tower] = None
            warnings.warn(note, UserWarning, stacklevel=4)

    def _explain_aligned(self, aligned: list[AlignedText], image_embeddings: torch.Tensor) -> list[TextExplanation]:
        ctx = self.text_tower.context_length
        ids = torch.zeros(len(aligned), ctx, dtype=torch.long)
        for i, a in enumerate(aligned):
            ids[i, :len(a.token_ids)] = torch.tensor(a.token_ids)
        self._note_depth("text")
        out = method.explain_text_tensor(self.text_tower, ids.to(self.device), image_embeddings.to(self.device),
                                         layers=self.text_layers, heads=self.heads, spatial=self.spatial)
        results = []
        for i, a in enumerate(aligned):
            n_tok = len(a.token_ids) - 2
            tok_scores = out.token_scores[i, 1:1 + n_tok].cpu().double().numpy()
            owner = np.asarray(a.token_word, dtype=np.int64)
            words = a.words[:owner[-1] + 1] if a.truncated else a.words  # words cut off entirely are not reported
            word_scores = np.bincount(owner, weights=tok_scores, minlength=len(words))
            results.append(TextExplanation(
                a.text, words, word_scores, token_strings(self.tokenizer, a.token_ids[1:-1]), tok_scores, owner,
                float(out.scores[i]), float(out.model_scores[i]), a.truncated))
        return results
