"""Command line: ``gradeclip explain IMAGE_OR_FOLDER_OR_LIST --text T [--text T ...] --out DIR``."""
from __future__ import annotations

import argparse
import csv
import logging
import re
import sys
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .files import atomic_write
from .io import ImageLoadError, collect_images, load_image
from .models import ModelLoadError

DEFAULT_MODEL = "ViT-B-16"
DEFAULT_PRETRAINED = "openai"


def slug(text: str, max_len: int = 48) -> str:
    """A file-name-safe version of a text."""
    s = re.sub(r"[^A-Za-z0-9]+", "_", text.strip().lower()).strip("_")
    return (s[:max_len].rstrip("_") or "text")


def _unique_dirs(paths: list[Path]) -> list[str]:
    """Output folder names: the image stems, made unique when two images share a stem."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        stem = p.stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def _text_names(texts: list[str]) -> list[str]:
    names = []
    for i, t in enumerate(texts):
        s = slug(t)
        names.append(s if [slug(u) for u in texts].count(s) == 1 else f"{i:02d}_{s}")
    return names


def explain_command(args: argparse.Namespace) -> int:
    # imported here so that `gradeclip --help` is instant
    from .explainer import GradECLIP
    from .render import overlay, word_importance_figure

    paths = collect_images(args.images)
    if not paths:
        print(f"error: no images found in {args.images}", file=sys.stderr)
        return 2
    texts = list(args.text)
    empty = [t for t in texts if not t.strip()]
    if empty:
        print(f"error: empty --text {empty[0]!r}: every text must have something to explain", file=sys.stderr)
        return 2
    try:
        explainer = GradECLIP.from_pretrained(
            args.model, args.pretrained, device=args.device, precision=args.precision,
            image_layers=args.image_layers, text_layers=args.text_layers, heads=args.heads, spatial=args.spatial,
            keep_aspect=args.keep_aspect)
    except (ModelLoadError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    text_embeddings = explainer.encode_texts(texts)
    text_names = _text_names(texts)
    failures = []
    summary_rows = []
    for path, folder in tqdm(list(zip(paths, _unique_dirs(paths))), desc="images", unit="img",
                             disable=args.quiet):
        try:
            image = load_image(path)
            maps = explainer(image, texts, text_embeddings=text_embeddings)
            word_maps = explainer.explain_texts(texts, image) if args.text_maps else None
        except (ImageLoadError, ValueError, RuntimeError) as err:
            failures.append((path, str(err)))
            tqdm.write(f"skipped {path}: {err}", file=sys.stderr)
            continue
        img_dir = out / folder
        for k, (exp, name) in enumerate(zip(maps, text_names)):
            atomic_write(img_dir / f"{name}.png", lambda p: overlay(image, exp.heatmap).save(p, format="PNG"))
            atomic_write(img_dir / f"{name}.npz", lambda p: np.savez_compressed(
                p, grid=exp.grid, heatmap=exp.heatmap.astype(np.float16), score=exp.score,
                model_score=exp.model_score, text=exp.text, image=str(path),
                box=np.asarray(exp.registration.box), image_size=np.asarray(exp.registration.image_size)))
            summary_rows.append([str(path), folder, exp.text, f"{exp.score:.6f}", f"{exp.model_score:.6f}"])
            if word_maps is not None:
                te = word_maps[k]
                imp = te.importance("sum")
                rows = [[te.text, i, w.text, f"{s:.6f}"] for i, (w, s) in enumerate(zip(te.words, imp))]
                atomic_write(img_dir / f"{name}_words.csv", lambda p: _write_csv(
                    p, ["text", "word_index", "word", "score"], rows))
                fig = word_importance_figure([w.text for w in te.words], imp, title=te.text)
                atomic_write(img_dir / f"{name}_words.png", lambda p: fig.savefig(p, format="png", dpi=120))
                import matplotlib.pyplot as plt
                plt.close(fig)
    atomic_write(out / "scores.csv", lambda p: _write_csv(
        p, ["image", "folder", "text", "score", "model_score"], summary_rows))
    (out / "failures.txt").unlink(missing_ok=True)  # never leave an earlier run's failures beside this run's output
    if failures:
        atomic_write(out / "failures.txt", lambda p: p.write_text("".join(f"{a}\t{b}\n" for a, b in failures)))
        print(f"{len(failures)} of {len(paths)} images skipped (listed in {out / 'failures.txt'})", file=sys.stderr)
    print(f"wrote explanations of {len(paths) - len(failures)} images x {len(texts)} texts to {out}")
    return 1 if len(failures) == len(paths) else 0


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradeclip", description="Grad-ECLIP explanations for CLIP models.")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("explain", help="heat maps (and word importances) for images and texts")
    ex.add_argument("images", help="an image file, a folder of images, or a .txt file listing image paths")
    ex.add_argument("--text", "-t", action="append", required=True, help="a text to explain (repeatable)")
    ex.add_argument("--out", "-o", required=True, help="output folder")
    ex.add_argument("--model", default=DEFAULT_MODEL, help="open_clip model name or hf-hub:org/repo")
    ex.add_argument("--pretrained", default=DEFAULT_PRETRAINED,
                    help="open_clip pretrained tag or a local checkpoint file ('none' for random weights)")
    ex.add_argument("--keep-aspect", action="store_true",
                    help="resize each side to a multiple of the patch size instead of resize + center crop")
    ex.add_argument("--text-maps", action="store_true", help="also write word importances (CSV and figure)")
    ex.add_argument("--heads", choices=["single", "multi"], default="single")
    ex.add_argument("--spatial", choices=["loosened", "softmax", "none"], default="loosened")
    ex.add_argument("--image-layers", type=int, default=1)
    ex.add_argument("--text-layers", type=int, default=8)
    ex.add_argument("--device", default="cpu")
    ex.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    ex.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    ex.set_defaults(func=explain_command)

    from gradeclip.toyworld.cli import add_toyworld_commands  # argparse only; heavy imports inside the commands

    add_toyworld_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "pretrained", None) in ("none", "None", ""):
        args.pretrained = None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    warnings.simplefilter("default")
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
