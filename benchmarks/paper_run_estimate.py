"""How long config/paper.yaml's study takes on this machine, and how much disk its data need: an estimate from
timings of each costly step on random weights of the paper's architectures (the architecture is what costs time).

  explain_images  one COCO-sized photo (640 x 480, keep_aspect) against 5 texts, per image of the image job lists
                  (the §V-A triplet images and the §V-B CLEVR scenes; CLEVR scenes have more texts: 16 are timed)
  explain_texts   word importances of captions, 32 to a batch as rule explain_texts runs them, per caption
  sam_masks       SAM (--sam, vit_h as in the paper) on one 480 x 320 CLEVR picture with 6 point prompts (one round)

Counts come from a config (paper.yaml by default): Karpathy val has 5,000 images with 25,010 captions; each step's
time is multiplied by its count. Model loading, the analyses and the report (minutes) are not included.

    python benchmarks/paper_run_estimate.py [--device cuda] [--sam vit_h] [--rounds 3] [--config config/paper.yaml]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from _timing import median_time

from gradeclip.downloads import RESOURCES
from gradeclip.explainer import GradECLIP
from gradeclip.models import load_clip

KARPATHY_VAL_CAPTIONS = 25010  # Karpathy's val split: 5,000 images, 25,010 captions (dataset_coco.json)
CLEVR_TEXTS = 16  # attribute texts of a CLEVR scene: unique expressions per category and the ablation texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sam", default="vit_h", choices=["vit_h", "vit_l", "vit_b"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = yaml.safe_load(Path(args.config).read_text())
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    clevr = rng.integers(0, 256, (320, 480, 3), dtype=np.uint8)

    torch.manual_seed(0)
    clip = load_clip(config["model"]["name"], None, device=args.device)
    explainer = GradECLIP(clip, keep_aspect=config["method"]["keep_aspect"])
    texts = [f"a photo of object number {i}" for i in range(CLEVR_TEXTS)]
    emb = explainer.encode_texts(texts)
    captions = [f"a person riding a red motorcycle down road number {i}" for i in range(32)]
    per_photo = median_time(lambda: explainer(photo, texts[:5], text_embeddings=emb[:5]), device, args.rounds)
    per_scene = median_time(lambda: explainer(Image.fromarray(clevr), texts, text_embeddings=emb), device, args.rounds)
    per_caption = median_time(lambda: explainer.explain_text_pairs(captions, [photo] * len(captions)), device,
                              args.rounds) / len(captions)
    del clip, explainer

    from segment_anything import SamPredictor, sam_model_registry

    torch.manual_seed(0)
    predictor = SamPredictor(sam_model_registry[args.sam](checkpoint=None).to(device).eval())
    points = [np.array([[60.0 + 70 * k, 160.0]]) for k in range(6)]

    def sam_scene():
        predictor.set_image(clevr)
        for p in points:
            predictor.predict(point_coords=p, point_labels=np.ones(1), multimask_output=True)

    with torch.no_grad():  # SAM's image encoder dominates and costs the same every time: one round, no warm-up
        per_sam = median_time(sam_scene, device, 1, warm_up=device.type == "cuda")

    n_triplet_images = 2 * config["coco"]["addibility_per_group"]
    n_clevr = config["clevr"]["n_images"]
    n_captions = round(KARPATHY_VAL_CAPTIONS * min(config["coco"]["n_images"], 5000) / 5000)
    rows = [("explain_images, COCO triplet images (5 texts)", n_triplet_images, per_photo),
            ("explain_images, CLEVR scenes (16 texts)", n_clevr, per_scene),
            ("explain_texts, captions", n_captions, per_caption),
            (f"sam_masks ({args.sam}, 6 objects)", n_clevr, per_sam)]
    print(f"{args.config} on {args.device} ({torch.get_num_threads()} CPU threads), median of {args.rounds} rounds:")
    print(f"{'step':<48}{'n':>8}{'s each':>10}{'total':>12}")
    for name, n, each in rows:
        print(f"{name:<48}{n:>8}{each:>10.3f}{n * each / 60:>10.1f} min")
    print(f"{'all':<48}{'':>8}{'':>10}{sum(n * e for _, n, e in rows) / 60:>10.1f} min")
    print("\ndownloads (registry sizes; extraction adds about the unpacked part of each archive):")
    for r in RESOURCES.values():
        size = f"{r.size_bytes / 1e9:.2f} GB" if r.size_bytes else "size not registered"
        print(f"  {r.name:<22}{r.filename:<32}{size}")


if __name__ == "__main__":
    main()
