"""Grad-ECLIP cost relative to a plain image forward, measured in one run.

ViT-B-16 (random weights: the architecture is what costs time) on the CPU by default. Three timings per round,
interleaved so that machine load affects all alike; the median over rounds is reported:
  forward: model.encode_image on one preprocessed image (no gradient);
  K=1 / K=16: Grad-ECLIP maps of that image for 1 and 16 texts (text embeddings computed once, outside the timing).
Targets (issue 2): K=1 <= 1.3x forward, K=16 <= 1.6x forward.

    python benchmarks/explain_speed.py [--model ViT-B-16] [--rounds 15] [--device cpu] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics

import torch

from _timing import timed

from gradeclip.explainer import GradECLIP
from gradeclip.models import load_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clip = load_clip(args.model, None, device=args.device)
    explainer = GradECLIP(clip)
    device = clip.device
    size = clip.preprocessing.size
    pixels = torch.randn(1, 3, *size, device=device)
    texts = [f"a photo of object number {i}" for i in range(16)]
    text_emb = explainer.encode_texts(texts)

    def forward():
        with torch.no_grad():
            clip.model.encode_image(pixels)

    runs = {"forward": forward,
            "K=1": lambda: explainer.explain_pixels(pixels, text_emb[:1]),
            "K=16": lambda: explainer.explain_pixels(pixels, text_emb)}
    for fn in runs.values():  # warm-up (allocations, lazy init)
        fn()
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            times[name].append(timed(fn, device))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"model {args.model}, device {device}, threads {torch.get_num_threads()}, rounds {args.rounds}")
    for name in runs:
        print(f"{name:8s} median {med[name] * 1000:8.1f} ms   ratio to forward {med[name] / med['forward']:.2f}x")
    print(f"targets: K=1 <= 1.30x ({'met' if med['K=1'] / med['forward'] <= 1.3 else 'NOT met'}), "
          f"K=16 <= 1.60x ({'met' if med['K=16'] / med['forward'] <= 1.6 else 'NOT met'})")


if __name__ == "__main__":
    main()
