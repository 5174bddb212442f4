"""Time per image of every registered explanation method, and its ratio to a plain image forward, in one run (the
paper's Table V).

Random weights of the chosen open_clip architecture (ViT-B-16 by default: the architecture is what costs time), one
preprocessed image, one text, on the CPU by default. Each method's call counts from the pixels and the text to the
map, so it includes encoding the text (CLIP Surgery: 85 prompts for the text and 85 for the empty string).
Fast methods are timed in ``--rounds`` rounds interleaved with the plain forward (machine load affects all alike;
medians reported); the slow ones (RISE, M2IB) ``--slow-rounds`` times each after them, against the median forward
of the same run. What makes those two slow, with their defaults (``gradeclip.baselines``):
  rise: n_masks = 2000 forward passes of the masked image (in batches of batch_size = 100): time ~ n_masks;
  m2ib: steps = 10 Adam steps x samples = 10 noise draws = 100 forward and backward passes through the blocks above
        the bottleneck (layer = -3: the last 2 blocks), plus one forward to the bottleneck.

    python benchmarks/method_speed.py [--model ViT-B-16] [--rounds 5] [--slow-rounds 1] [--threads 2]
        [--methods rise,m2ib] [--method-option rise:n_masks=500]
"""
from __future__ import annotations

import argparse
import statistics

import torch

from _timing import timed

from gradeclip import baselines
from gradeclip.models import load_clip
from gradeclip.toyworld.cli import parse_method_options

SLOW = ("rise", "m2ib")
# The options that set the slow methods' cost, printed with their times
SLOW_PARAMETERS = {"rise": ("n_masks", "batch_size", "cells", "p1"), "m2ib": ("steps", "samples", "layer")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slow-rounds", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--methods", help="comma-separated registered names (default: all that run on the model)")
    parser.add_argument("--method-option", action="append", default=[], metavar="METHOD:KEY=VALUE")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clip = load_clip(args.model, None, device=args.device)
    device = clip.device
    pixels = torch.randn(1, 3, *clip.preprocessing.size, device=device)
    texts = ["a photo of a dog"]
    options: dict = {}
    for pair in args.method_option:
        name, _, option = pair.partition(":")
        options.setdefault(name, {}).update(parse_method_options([option]))
    names = args.methods.split(",") if args.methods else [n for n in baselines.METHODS if n != "attention-eclip"]
    runnable = {}
    for name in names:
        try:
            baselines.check_method(name, clip)
        except ValueError as err:
            print(f"skipped {name}: {err}")
            continue
        method = baselines.get_method(name, **options.get(name, {}))
        runnable[name] = (lambda m=method: m(clip, pixels, texts))

    def forward():
        with torch.no_grad():
            clip.model.encode_image(pixels)

    fast = {"forward": forward, **{n: f for n, f in runnable.items() if n not in SLOW}}
    for fn in fast.values():  # warm-up (allocations, lazy init)
        fn()
    times = {name: [] for name in fast}
    for _ in range(args.rounds):
        for name, fn in fast.items():
            times[name].append(timed(fn, device))
    for name in (n for n in runnable if n in SLOW):
        times[name] = [timed(runnable[name], device) for _ in range(args.slow_rounds)]
    forward_time = statistics.median(times["forward"])
    print(f"model {args.model} (random weights), device {device}, threads {torch.get_num_threads()}, "
          f"rounds {args.rounds} (slow methods {args.slow_rounds}); options {options or 'defaults'}")
    print(f"{'method':22s} {'s / image':>10s} {'x forward':>10s}  parameters")
    for name, values in times.items():
        median = statistics.median(values)
        parameters = ""
        if name in SLOW:  # what makes them slow, as run
            used = {**baselines.method_options(name), **options.get(name, {})}
            parameters = ", ".join(f"{key}={used[key]}" for key in SLOW_PARAMETERS[name])
        print(f"{name:22s} {median:10.4f} {median / forward_time:10.1f}  {parameters}")


if __name__ == "__main__":
    main()
