"""Seconds per image of each map method and each faithfulness metric, measured in one run (paper Table V's
question for this project's pipeline), on the shipped toy CLIP and toy-world scenes, CPU.

    .venv/bin/python benchmarks/faithfulness_speed.py [--images 20] [--threads 1] [--methods grad-eclip ...]

Methods: the map of each image for its own text (``gradeclip.faithfulness.explain_images``: the method on the
model's input, put back on the image's pixels). Metrics, per image, with the maps already made: the deletion and
the insertion curve of zero-shot top-1/top-5 (100 steps of 0.5 %, every step scored, and every 10th as the authors'
scripts), text deletion and insertion (5 steps, recall of the caption's image), pointing game, energy share.
The ratio column divides by one plain ``encode_image`` forward per image, measured in the same run.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from gradeclip import faithfulness as fa
from gradeclip import metrics
from gradeclip.models import load_clip

ROOT = Path(__file__).resolve().parents[1]


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=list(fa.CORE_METHODS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clip = load_clip("gradeclip-toy-ViT", str(ROOT / "data" / "toy_clip" / "gradeclip-toy-ViT.pt"))
    n = args.images
    labelled = fa.toy_classification(n, 128)
    named = fa.toy_localisation(n, 128)
    captioned = fa.toy_retrieval(n, 128)
    texts = [labelled.class_texts[c] for c in labelled.labels]
    fa.image_embeddings(clip, labelled.images)  # warm-up
    forward = timed(lambda: fa.image_embeddings(clip, labelled.images)) / n
    rows = [("forward (encode_image)", forward)]
    for name in args.methods:
        explain = fa.image_method(name)
        rows.append((f"map: {name}", timed(lambda: fa.explain_images(explain, clip, labelled.images, texts)) / n))
    maps = fa.explain_images(fa.image_method("grad-eclip"), clip, labelled.images, texts)
    classifier = fa.classifier_weights(clip, labelled.classifier)
    score = fa.classification_scorer(clip, classifier, labelled.labels)
    for every in (1, 10):
        settings = fa.PerturbationSettings(score_every=every)
        for mode in metrics.MODES:
            rows.append((f"{mode} curve, 100 steps, every {every}", timed(lambda: metrics.perturbation_curves(
                labelled.images, maps, score, mode=mode, score_every=every, batch_size=settings.batch_size)) / n))
    words = fa.text_method("grad-eclip")
    rows.append(("text deletion + insertion, 5 steps (incl. word importances)",
                 timed(lambda: fa.text_faithfulness(clip, captioned, {"grad-eclip": words})) / n))
    located = fa.explain_images(fa.image_method("grad-eclip"), clip, named.images, named.texts)
    rows.append(("pointing game", timed(lambda: [metrics.pointing_hit(m, k, empty="miss")
                                                 for m, k in zip(located, named.masks)]) / n))
    rows.append(("energy share", timed(lambda: [metrics.energy_share(m, k, o, empty="miss")
                                                for m, k, o in zip(located, named.masks, named.objects)]) / n))
    print(f"toy CLIP, {n} toy scenes (128 px), {args.threads} torch thread(s), CPU")
    print(f"{'':62s} {'s / image':>10s} {'x forward':>10s}")
    for label, seconds in rows:
        print(f"{label:62s} {seconds:10.4f} {seconds / forward:10.1f}")


if __name__ == "__main__":
    main()
