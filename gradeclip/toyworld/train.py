"""Train the toy CLIP: a small open_clip CLIP learned contrastively on toy-world scenes, on the CPU.

The model is the open_clip architecture ``gradeclip-toy-ViT`` (``gradeclip/model_configs``) with open_clip's own
tokenizer, so a trained checkpoint goes through exactly the loading and explaining path of a real CLIP.

Recipe (chosen so that the image embedding carries every object and binds each colour to its shape):

* data: a pool of scenes (1-4 objects) rendered once at the model's input size, flipped left-right at random;
  captions are drawn afresh every step, so the pool is reused without repeating (image, text) pairs;
* half of each batch comes from a second pool of single-object scenes: in a multi-object scene a shape word is
  true of most images of the batch, so the contrastive loss gives shape little signal, while among single objects
  "a cube" tells one image in three apart (zero-shot shape went from ~0.6 to 0.8-0.98 in the model card's runs);
* captions name a random subset of one to three of the scene's objects, each by a random subset of its
  attributes ("a red cube", "a small object", "a large blue rubber sphere and a cylinder");
* loss: CLIP's symmetric cross-entropy, where a caption that is also *true* of another image of the batch is not
  used as that image's negative (masked out), plus hard negative captions (by default two per image: the positive
  caption with the shape, resp. the size, of one named object changed so that it becomes false for this image,
  e.g. "a red sphere" for a scene with a red cube and a blue sphere) as extra image-to-text negatives: in-batch
  negatives almost always differ in colour, which alone would let the model ignore shape and size;
* AdamW with linear warmup and cosine decay over the run's steps (shipped model: 1256; longer gave worse maps).

The vision tower's layer scale (``ls_init_value`` in the model config) is part of the architecture, not the recipe.

Scenes of the training pool come from ``generate_scene(seed, index)`` with the training seed; the evaluation uses
other seeds (``EVAL_SEEDS`` for the model card, ``VALIDATION_SEEDS`` for comparing recipes), which training refuses.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from gradeclip.files import atomic_write
from gradeclip.geometry import OPENAI_MEAN, OPENAI_STD
# checkpoint_metadata: the reader of what save_checkpoint writes, kept importable from here
from gradeclip.models import TRAINING_METADATA_KEY, checkpoint_metadata, register_model_configs  # noqa: F401
from gradeclip.toyworld.layout import ToyWorldConfig
from gradeclip.toyworld.scenes import generate_scene
from gradeclip.toyworld.vocabulary import ATTRIBUTE_CATEGORIES, ATTRIBUTE_VALUES

MODEL_NAME = "gradeclip-toy-ViT"
# Seeds the evaluation draws its scenes from (zero-shot, localisation); a training pool never uses them (see
# evaluate.py). The test seeds give the model card's numbers; the validation seeds are for choosing between recipes
# and training seeds, so that the card's numbers are not the ones a choice was made on.
EVAL_SEEDS = (900_001, 900_002)
VALIDATION_SEEDS = (800_001, 800_002)
RESERVED_SEEDS = EVAL_SEEDS + VALIDATION_SEEDS
MAX_OBJECTS = 4
MAX_NAMED = 3
SHAPE = ATTRIBUTE_CATEGORIES.index("shape")
COLOR = ATTRIBUTE_CATEGORIES.index("color")
NO_ATTRIBUTE = -1  # in caption codes: the caption does not mention this attribute
NO_OBJECT = -2  # in scene codes: padding for scenes with fewer objects

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainRecipe:
    """Everything besides the seed and the length of training that determines a toy CLIP."""

    model_name: str = MODEL_NAME
    pool_size: int = 12000  # scenes rendered once; ~1.2 ms each at 80 px
    min_objects: int = 1
    max_objects: int = MAX_OBJECTS
    batch_size: int = 64
    lr: float = 2e-3
    min_lr_fraction: float = 0.02
    weight_decay: float = 0.1
    # In steps, not a fraction of training: the steps a time budget allows are measured during the warmup, and
    # the warmup must not depend on them (so that ``steps=N`` reproduces a ``minutes`` run exactly).
    warmup_steps: int = 50
    betas: tuple[float, float] = (0.9, 0.98)
    init_logit_scale: float = math.log(1 / 0.07)
    color_shape_fraction: float = 0.3  # named objects described exactly by "colour shape" (the evaluated form)
    single_attribute_fraction: float = 0.2  # ... by one attribute ("a red object", "a cube": the zero-shot prompts)
    attribute_keep_probability: float = 0.75  # ... otherwise each attribute is mentioned with this probability
    bare_fraction: float = 0.0  # captions written without article and "object" ("red", "small sphere")
    hard_negatives: int = 2  # per image: one changing the shape, one the size
    # Share of each batch drawn from a second pool of single-object scenes, where a shape word is true of one
    # image in a few and so tells images apart; in a 1-4-object scene "a cube" is true of most of the batch.
    single_object_fraction: float = 0.5
    single_object_pool_size: int = 4000
    flip: bool = True


# ---------------------------------------------------------------------------------------------------------------
# Scene pool
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class ScenePool:
    images: np.ndarray  # (N, H, W, 3) uint8
    codes: np.ndarray  # (N, MAX_OBJECTS, 4) attribute indices in ATTRIBUTE_CATEGORIES order, NO_OBJECT padded


def object_codes(record: dict, max_objects: int = MAX_OBJECTS) -> np.ndarray:
    """(max_objects, 4) attribute indices of a scene record's objects; rows past the last object are NO_OBJECT."""
    codes = np.full((max_objects, len(ATTRIBUTE_CATEGORIES)), NO_OBJECT, dtype=np.int8)
    for k, obj in enumerate(record["objects"]):
        codes[k] = [ATTRIBUTE_VALUES[c].index(obj[c]) for c in ATTRIBUTE_CATEGORIES]
    return codes


def render_pool(seed: int, n: int, image_size: int, min_objects: int = 1, max_objects: int = MAX_OBJECTS,
                first: int = 0, code_slots: Optional[int] = None) -> ScenePool:
    """Scenes first..first+n-1 of the toy dataset ``seed`` at the model's input size (so preprocessing is the
    identity). ``code_slots``: rows of each scene's codes (default ``max_objects``), NO_OBJECT padded."""
    if seed in RESERVED_SEEDS:
        raise ValueError(f"seed {seed} is reserved for evaluation scenes ({RESERVED_SEEDS}); pick another")
    code_slots = max_objects if code_slots is None else code_slots
    config = ToyWorldConfig(image_size=image_size, min_objects=min_objects, max_objects=max_objects)
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    codes = np.empty((n, code_slots, len(ATTRIBUTE_CATEGORIES)), dtype=np.int8)
    for i in range(n):
        scene = generate_scene(seed, first + i, "train", config)
        images[i] = scene.image
        codes[i] = object_codes(scene.record, code_slots)
    return ScenePool(images, codes)


def draw_batch(rng: np.random.Generator, pool: ScenePool, singles: Optional[ScenePool],
               recipe: TrainRecipe) -> tuple[np.ndarray, np.ndarray]:
    """A training batch (images, codes): ``recipe.single_object_fraction`` of it from ``singles``, the rest from
    ``pool``, each drawn without replacement; mirrored at random when ``recipe.flip``."""
    n_single = int(round(recipe.single_object_fraction * recipe.batch_size))
    if n_single and singles is None:
        raise ValueError(f"single_object_fraction={recipe.single_object_fraction} needs a single-object pool")
    index = rng.choice(len(pool.images), size=recipe.batch_size - n_single, replace=False)
    images, scenes = pool.images[index], pool.codes[index]
    if n_single:
        single = rng.choice(len(singles.images), size=n_single, replace=False)
        images = np.concatenate([images, singles.images[single]])
        scenes = np.concatenate([scenes, singles.codes[single]])
    if recipe.flip:  # captions say nothing about left and right, so a mirrored scene keeps its captions
        flip = rng.random(len(images)) < 0.5
        images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
    return images, scenes


# ---------------------------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------------------------
def caption_text(descriptors: np.ndarray, bare: bool = False) -> str:
    """Text of caption codes (MAX_NAMED, 4): named objects joined by "and", attributes in CLEVR's word order,
    "object" standing in for an unnamed shape ("a red object"). ``bare``: without the article and the stand-in
    ("red", "small sphere"), the form of the section V study's attribute texts."""
    phrases = []
    for desc in descriptors:
        if desc[0] == NO_OBJECT:
            continue
        words = [ATTRIBUTE_VALUES[c][v] for c, v in zip(ATTRIBUTE_CATEGORIES, desc) if v >= 0]
        if bare:
            phrases.append(" ".join(words))
            continue
        if desc[SHAPE] < 0:
            words.append("object")
        phrases.append("a " + " ".join(words))
    return " and ".join(phrases)


def captions_true(captions: np.ndarray, scenes: np.ndarray) -> np.ndarray:
    """(C, S) bool: whether caption c is true of scene s, i.e. each object it names matches some object of s
    (an unmentioned attribute matches anything).

    captions: (C, MAX_NAMED, 4) caption codes (rows of NO_OBJECT are unused); scenes: (S, MAX_OBJECTS, 4).
    """
    desc = captions[:, None, :, None, :]  # C, 1, K, 1, A
    objs = scenes[None, :, None, :, :]  # 1, S, 1, O, A
    matches = ((desc == NO_ATTRIBUTE) | (desc == objs)).all(-1) & (objs[..., 0] != NO_OBJECT)  # C, S, K, O
    named = captions[:, None, :, 0] != NO_OBJECT  # C, 1, K
    return (matches.any(-1) | ~named).all(-1)


def sample_captions(rng: np.random.Generator, scenes: np.ndarray, recipe: TrainRecipe) -> np.ndarray:
    """One positive caption (MAX_NAMED, 4) per scene: 1..3 of its objects in random order, each described by a
    random subset of its attributes."""
    n_attr = len(ATTRIBUTE_CATEGORIES)
    out = np.full((len(scenes), MAX_NAMED, n_attr), NO_OBJECT, dtype=np.int8)
    for i, scene in enumerate(scenes):
        present = np.flatnonzero(scene[:, 0] != NO_OBJECT)
        n_named = int(rng.integers(1, min(MAX_NAMED, len(present)) + 1))
        for slot, k in enumerate(rng.permutation(present)[:n_named]):
            u = rng.random()
            if u < recipe.color_shape_fraction:
                keep = np.zeros(n_attr, dtype=bool)
                keep[[COLOR, SHAPE]] = True
            elif u < recipe.color_shape_fraction + recipe.single_attribute_fraction:
                keep = np.zeros(n_attr, dtype=bool)
                keep[rng.integers(n_attr)] = True
            else:
                keep = rng.random(n_attr) < recipe.attribute_keep_probability
                if not keep.any():
                    keep[rng.integers(n_attr)] = True
            out[i, slot] = np.where(keep, scene[k], NO_ATTRIBUTE)
    return out


def hard_negatives(rng: np.random.Generator, positives: np.ndarray, scenes: np.ndarray, per_image: int = 3,
                   tries: int = 8) -> np.ndarray:
    """``per_image`` false captions per scene (P, per_image, MAX_NAMED, 4), each made from the positive caption by
    changing one attribute of one named object: negative j changes the shape, the size, the colour (cycling; a
    mentioned attribute at random when the caption does not mention that one), half of the time to a value that
    another object of the scene has, so that only binding attributes to objects tells them apart ("a blue cube"
    for a scene with a red cube and a blue sphere). In-batch negatives mostly differ in colour, which the model
    learns first; these make shape and size matter. Rows whose every try stayed true are all NO_OBJECT."""
    out = np.full((len(positives), per_image) + positives.shape[1:], NO_OBJECT, dtype=positives.dtype)
    preferred = (SHAPE, ATTRIBUTE_CATEGORIES.index("size"), COLOR)
    for i, (caption, scene) in enumerate(zip(positives, scenes)):
        named = np.flatnonzero(caption[:, 0] != NO_OBJECT)
        for j in range(per_image):
            for _ in range(tries):
                candidate = caption.copy()
                target = preferred[j % len(preferred)]
                having = [k for k in named if candidate[k, target] >= 0]
                if having:
                    slot, attr = rng.choice(having), target
                else:
                    slot = rng.choice(named)
                    attr = int(rng.choice(np.flatnonzero(candidate[slot] >= 0)))
                in_scene = scene[scene[:, attr] >= 0, attr]
                others = in_scene[in_scene != candidate[slot, attr]]
                if len(others) and rng.random() < 0.5:
                    candidate[slot, attr] = rng.choice(others)
                else:
                    n_values = len(ATTRIBUTE_VALUES[ATTRIBUTE_CATEGORIES[attr]])
                    candidate[slot, attr] = (candidate[slot, attr] + rng.integers(1, n_values)) % n_values
                if not captions_true(candidate[None], scene[None])[0, 0]:
                    out[i, j] = candidate
                    break
    return out


# ---------------------------------------------------------------------------------------------------------------
# Model pieces
# ---------------------------------------------------------------------------------------------------------------
def create_toy_model(model_name: str = MODEL_NAME, pretrained: Optional[str] = None) -> torch.nn.Module:
    """The toy architecture through open_clip's factory (random weights unless ``pretrained``)."""
    register_model_configs()
    return open_clip.create_model(model_name, pretrained=pretrained)


def normalise_images(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) with the CLIP mean/std that open_clip's preprocessing of this model
    uses (its default for a checkpoint file): the same pixels ``load_clip(...).preprocessing`` gives at this size."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class CachedTokenizer:
    """open_clip's tokenizer with a memo of the token rows of texts seen before.

    The captions of a run repeat a lot ("a cube", "a red object"), and open_clip's tokenizer spends most of its
    time cleaning each text (ftfy); the rows are the tokenizer's own, so training sees the same tokens either way.
    """

    def __init__(self, tokenizer, max_texts: int = 100_000):
        self.tokenizer, self.max_texts = tokenizer, max_texts
        self.rows: dict[str, torch.Tensor] = {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self.rows]
        if missing:
            if len(self.rows) + len(missing) > self.max_texts:
                self.rows.clear()
                missing = list(dict.fromkeys(texts))
            self.rows.update(zip(missing, self.tokenizer(missing)))
        return torch.stack([self.rows[t] for t in texts])


def encode_text_truncated(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text`` computed on the first positions only (up to the last end-of-text token of the batch).

    With the causal mask no position attends to later ones, so dropping the padding after every EOS gives the same
    EOS features as the full 77-token forward at a fraction of the cost (toy captions are < 25 tokens).
    """
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
    return x @ model.text_projection


def contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, negative_emb: Optional[torch.Tensor],
                     truth: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric CLIP loss over a batch of B (image, caption) pairs with false negatives masked out.

    truth: (B + H, B) whether each caption (B positives, then H hard negatives) is true of each image. A caption
    true of another image is left out of that image's (and that caption's) softmax instead of being pushed away.
    Hard negatives only add image-to-text negatives.
    """
    b = image_emb.shape[0]
    texts = text_emb if negative_emb is None else torch.cat([text_emb, negative_emb])
    logits = logit_scale.exp() * image_emb @ texts.T  # (B, B + H)
    own = torch.zeros_like(logits, dtype=torch.bool)
    own[torch.arange(b), torch.arange(b)] = True
    excluded = truth.T[:, :texts.shape[0]] & ~own
    logits = logits.masked_fill(excluded, float("-inf"))
    target = torch.arange(b)
    image_to_text = F.cross_entropy(logits, target)
    text_to_image = F.cross_entropy(logits[:, :b].T, target)
    return (image_to_text + text_to_image) / 2


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """open_clip's split: no weight decay on gains, biases, embeddings of rank < 2 and the logit scale."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def learning_rate(step: int, total_steps: Optional[int], recipe: TrainRecipe) -> float:
    """Linear warmup over ``warmup_steps``, then cosine decay to ``min_lr_fraction`` of the peak at
    ``total_steps`` (None: not known yet, only allowed during the warmup)."""
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    if total_steps is None:
        raise ValueError("the number of steps must be known after the warmup")
    t = (step - recipe.warmup_steps) / max(1, total_steps - recipe.warmup_steps)
    floor = recipe.lr * recipe.min_lr_fraction
    return floor + (recipe.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    path: Optional[Path]
    steps: int
    seconds: float  # whole run, pool rendering included
    pool_seconds: float
    losses: list[float]
    metadata: dict


def train_toy_clip(out_path: Optional[os.PathLike | str], *, steps: Optional[int] = None,
                   minutes: Optional[float] = None, seed: int = 0, recipe: TrainRecipe = TrainRecipe(),
                   threads: Optional[int] = 2, log_every: int = 50, model: Optional[torch.nn.Module] = None,
                   calibration_steps: int = 40, margin: float = 0.95) -> TrainResult:
    """Train a toy CLIP and save it (fp16 state dict, atomically) to ``out_path`` (None: do not save).

    Length: ``steps``, and/or ``minutes``: a wall-clock budget for the whole run, pool rendering included. With
    ``minutes`` the number of steps is fixed once, from the speed of steps 10..``calibration_steps`` (inside the
    warmup), to fill the budget with a safety margin, and is stored in the metadata: ``steps=<that number>``
    then reproduces the run. The measurement assumes the machine is otherwise idle: another job running during
    those steps makes them slow and the run plans far fewer steps than the budget holds. Should the machine slow
    down later, training still stops when the budget is spent (``metadata["stopped_by_budget"]``). ``seed`` fixes
    the scene pool, the captions and the initialisation. ``model``: train this model instead of a fresh
    ``recipe.model_name`` (tests use tiny ones).
    """
    if steps is None and minutes is None:
        raise ValueError("give steps and/or minutes")
    if minutes is not None and calibration_steps >= recipe.warmup_steps:
        raise ValueError("calibration_steps must be within the warmup")
    start = time.perf_counter()
    budget = None if minutes is None else 60.0 * minutes
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if model is None:
        model = create_toy_model(recipe.model_name)
    with torch.no_grad():
        model.logit_scale.fill_(recipe.init_logit_scale)
    image_size = model.visual.image_size
    image_size = image_size if isinstance(image_size, int) else image_size[0]
    tokenizer = CachedTokenizer(open_clip.get_tokenizer(recipe.model_name))

    pool = render_pool(seed, recipe.pool_size, image_size, recipe.min_objects, recipe.max_objects)
    singles = None
    if recipe.single_object_fraction:
        # the scenes after the main pool's indices, so the two pools share no scene
        singles = render_pool(seed, recipe.single_object_pool_size, image_size, 1, 1, first=recipe.pool_size,
                              code_slots=recipe.max_objects)
    pool_seconds = time.perf_counter() - start
    log.info("rendered %d scenes at %d px in %.1f s", recipe.pool_size + (len(singles.images) if singles else 0),
             image_size, pool_seconds)
    train_start = time.perf_counter()
    train_budget = None if budget is None else budget - pool_seconds

    # fused: one kernel for all parameters, several times faster on the CPU than the per-tensor loop
    optimizer = torch.optim.AdamW(parameter_groups(model, recipe.weight_decay), lr=recipe.lr, betas=recipe.betas,
                                  eps=1e-6, fused=True)
    model.train()
    losses: list[float] = []
    total_steps = steps
    step = 0
    stopped_by_budget = False
    calibration_start = None
    while total_steps is None or step < total_steps:
        elapsed = time.perf_counter() - train_start
        if train_budget is not None:
            if elapsed >= train_budget:
                stopped_by_budget = True
                break
            if step == 10:  # the first steps are slower (allocations): time from here
                calibration_start = time.perf_counter()
            if step == calibration_steps:
                per_step = (time.perf_counter() - calibration_start) / (calibration_steps - 10)
                affordable = calibration_steps + int(margin * (train_budget - elapsed) / per_step)
                total_steps = affordable if steps is None else min(steps, affordable)
                log.info("%.2f s/step: %d steps fit in the budget", per_step, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, total_steps, recipe)

        images, scenes = draw_batch(rng, pool, singles, recipe)
        positives = sample_captions(rng, scenes, recipe)
        captions = positives
        negatives = None
        if recipe.hard_negatives:
            negatives = hard_negatives(rng, positives, scenes, recipe.hard_negatives)
            negatives = negatives.reshape(-1, *positives.shape[1:])
            negatives = negatives[negatives[:, 0, 0] != NO_OBJECT]
            captions = np.concatenate([positives, negatives])
        truth = torch.from_numpy(captions_true(captions, scenes))
        bare = rng.random(len(captions)) < recipe.bare_fraction
        tokens = tokenizer([caption_text(c, b) for c, b in zip(captions, bare)])

        image_emb = F.normalize(model.encode_image(normalise_images(images)), dim=-1)
        text_all = F.normalize(encode_text_truncated(model, tokens), dim=-1)
        b = len(positives)
        loss = contrastive_loss(image_emb, text_all[:b], text_all[b:] if negatives is not None else None, truth,
                                model.logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        step += 1
        if log_every and step % log_every == 0:
            log.info("step %d  loss %.4f  lr %.2e  logit scale %.1f  %.2f s/step", step,
                     float(np.mean(losses[-log_every:])), optimizer.param_groups[0]["lr"],
                     model.logit_scale.exp().item(), (time.perf_counter() - train_start) / step)

    model.eval()
    seconds = time.perf_counter() - start
    metadata = {
        "model_name": recipe.model_name, "seed": seed, "steps": step, "requested_steps": steps,
        "requested_minutes": minutes, "stopped_by_budget": stopped_by_budget, "train_seconds": round(seconds, 1),
        "pool_seconds": round(pool_seconds, 1),
        "threads": threads, "torch": str(torch.__version__), "open_clip": str(open_clip.__version__),
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(recipe).items()},
    }
    path = None
    if out_path is not None:
        path = save_checkpoint(model, out_path, metadata)
        log.info("saved %s (%d steps, %.0f s)", path, step, seconds)
    return TrainResult(path, step, seconds, pool_seconds, losses, metadata)


def save_checkpoint(model: torch.nn.Module, out_path: os.PathLike | str, metadata: Optional[dict] = None) -> Path:
    """Save the weights as an fp16 state dict under ``state_dict`` (open_clip's loader reads that key and casts
    to the model's dtype on load), with ``metadata`` beside it; through a temporary file and a rename."""
    state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v.detach()
             for k, v in model.state_dict().items()}
    checkpoint = {"state_dict": state, TRAINING_METADATA_KEY: metadata or {}}
    return atomic_write(out_path, lambda tmp: torch.save(checkpoint, tmp))
