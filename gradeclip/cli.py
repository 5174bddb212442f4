"""Command line: ``gradeclip explain IMAGE_OR_FOLDER_OR_LIST --text T [--text T ...] --out DIR``.

Exit status: 0 every image was explained; 3 some images failed (listed in DIR/failures.txt) and the others were
written; 1 every image failed; 2 the command line itself is wrong (an option's value, a missing input, a model that
cannot be loaded, an output folder that cannot be written), found before any image is read."""
from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import re
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .cli_checks import OutputError, count, writable_folder
from .extras import MissingExtraError
from .files import atomic_write
from .io import ImageLoadError, collect_images, load_image
from .options import HEADS, SPATIAL

DEFAULT_MODEL = "ViT-B-16"
DEFAULT_PRETRAINED = "openai"
EXIT_OK, EXIT_ALL_FAILED, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2, 3
RUN_FILES = ("scores.csv", "failures.txt")  # the run's own files in DIR, which no image folder may be named


def slug(text: str, max_len: int = 48) -> str:
    """A file-name-safe version of a text."""
    s = re.sub(r"[^A-Za-z0-9]+", "_", text.strip().lower()).strip("_")
    return (s[:max_len].rstrip("_") or "text")


def image_folder_names(paths: list[Path]) -> list[str]:
    """One output folder per image, never shared: the file's stem ("a" for a.png) where no other input has that
    stem; otherwise the stem with the suffix ("a_png", "a_jpg"), numbered in input order where even that is shared
    ("a_png-2" for a second a.png from another folder of a list). Names are compared case-insensitively (a
    case-insensitive file system would merge "A" and "a") and never equal another folder's or the run's own files'
    (scores.csv, failures.txt)."""
    stems = [p.stem if p.stem not in ("", ".", "..") else "image" for p in paths]
    shared = {k for k, n in Counter(s.casefold() for s in stems).items() if n > 1}
    taken = {name.casefold() for name in RUN_FILES}
    names: list[str | None] = [None] * len(paths)
    for i, stem in enumerate(stems):  # unique stems first, so that no derived name can take one
        if stem.casefold() not in shared and stem.casefold() not in taken:
            names[i] = stem
            taken.add(stem.casefold())
    for i, (stem, path) in enumerate(zip(stems, paths)):
        if names[i] is None:
            base = f"{stem}_{path.suffix.lstrip('.') or 'image'}"
            name, k = base, 1
            while name.casefold() in taken:
                k += 1
                name = f"{base}-{k}"
            names[i] = name
            taken.add(name.casefold())
    return names


def text_file_names(texts: list[str]) -> list[str]:
    """One file name (without suffix) per text, never shared: ``slug(text)`` where no other text has the same slug;
    otherwise the slug and 8 hex digits of the text's SHA-1 ("a_red_cube-1f0e3dad"), so "a red cube" and "a red
    cube!" get files of their own. A slug has no "-" or ".", so these names can equal neither a plain slug nor the
    word files ("<name>.words.csv") of another text. The texts must be distinct."""
    slugs = [slug(t) for t in texts]
    shared = {k for k, n in Counter(slugs).items() if n > 1}
    return [s if s not in shared else f"{s}-{hashlib.sha1(t.encode('utf-8')).hexdigest()[:8]}"
            for s, t in zip(slugs, texts)]


def _distinct(items: list, what: str) -> list:
    """``items`` without repeats (first kept), with a warning line for each repeat: explaining it twice would write
    the same files twice."""
    seen, kept = set(), []
    for item in items:
        if item in seen:
            print(f"warning: {what} {str(item)!r} given more than once; explained once", file=sys.stderr)
        else:
            seen.add(item)
            kept.append(item)
    return kept


def explain_command(args: argparse.Namespace) -> int:
    # torch and open_clip are imported by the commands that need them, so that `gradeclip --help` and a wrong
    # option answer without loading them
    from .explainer import GradECLIP
    from .models import ModelLoadError

    try:
        paths = collect_images(args.images)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if not paths:
        print(f"error: no images found in {args.images}", file=sys.stderr)
        return EXIT_USAGE
    paths = _distinct(paths, "image")
    texts = list(args.text)
    empty = [t for t in texts if not t.strip()]
    if empty:
        print(f"error: empty --text {empty[0]!r}: every text must have something to explain", file=sys.stderr)
        return EXIT_USAGE
    texts = _distinct(texts, "--text")
    grad_eclip_options = {"--heads": (args.heads, "single"), "--spatial": (args.spatial, "loosened"),
                          "--image-layers": (args.image_layers, 1), "--text-layers": (args.text_layers, 8),
                          "--text-maps": (args.text_maps, False)}
    changed = [flag for flag, (value, default) in grad_eclip_options.items() if value != default]
    if args.method != "grad-eclip" and changed:
        print(f"error: {changed[0]} is an option of Grad-ECLIP (--method grad-eclip); --method {args.method} "
              "explains images only, with its own options (--method-option)", file=sys.stderr)
        return EXIT_USAGE
    explain, method_options = None, None
    try:
        if args.method != "grad-eclip" or args.method_option:
            from gradeclip.toyworld.cli import parse_method_options

            from .baselines import resolve_method

            method_options = parse_method_options(args.method_option)
            explain = resolve_method(args.method, method_options, flag="--method")
        out = writable_folder(args.out)
        explainer = GradECLIP.from_pretrained(
            args.model, args.pretrained, device=args.device, precision=args.precision,
            image_layers=args.image_layers, text_layers=args.text_layers, heads=args.heads, spatial=args.spatial,
            keep_aspect=args.keep_aspect)
        if args.text_maps:
            for text in texts:
                explainer.align(text)  # a text with no tokens after CLIP's cleaning has no words to explain
        if explain is not None:
            from .baselines import check_method

            check_method(args.method, explainer.clip, method_options)
    except (OutputError, ModelLoadError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    # an earlier run's summary must not vouch for this run's files while it is under way (or after it is killed)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    text_embeddings = explainer.encode_texts(texts)
    text_names = text_file_names(texts)
    failures = []
    summary_rows = []
    for path, folder in tqdm(list(zip(paths, image_folder_names(paths))), desc="images", unit="img",
                             disable=args.quiet):
        try:
            image = load_image(path)
            if explain is None:
                maps = explainer(image, texts, text_embeddings=text_embeddings)
            else:
                from .baselines import explain_image

                maps = explain_image(explainer, explain, image, texts, text_embeddings)
            word_maps = explainer.explain_texts(texts, image) if args.text_maps else None
        except (ImageLoadError, ValueError, RuntimeError) as err:
            failures.append((path, str(err)))
            tqdm.write(f"skipped {err if str(err).startswith(str(path)) else f'{path}: {err}'}", file=sys.stderr)
            continue
        written: list[Path] = []
        try:
            rows = _write_image_outputs(out, folder, path, image, maps, word_maps, text_names, written, args.method)
        except OSError as err:  # disk full, the folder taken away...: this image's files go, the run goes on
            for done in written:
                done.unlink(missing_ok=True)
            if (out / folder).is_dir() and not any((out / folder).iterdir()):
                (out / folder).rmdir()
            failures.append((path, f"could not write its outputs in {out / folder} ({err.strerror or err})"))
            tqdm.write(f"skipped {path}: {failures[-1][1]}", file=sys.stderr)
            continue
        summary_rows.extend(rows)
    try:
        atomic_write(out / "scores.csv", lambda p: _write_csv(
            p, ["image", "folder", "text", "score", "model_score", "overlay_png", "map_npz", "words_csv"],
            summary_rows))
        if failures:
            atomic_write(out / "failures.txt", lambda p: p.write_text("".join(f"{a}\t{b}\n" for a, b in failures)))
    except OSError as err:
        print(f"error: could not write the summary in {out} ({err.strerror or err})", file=sys.stderr)
        return EXIT_ALL_FAILED
    if failures:
        print(f"{len(failures)} of {len(paths)} images skipped (listed in {out / 'failures.txt'})", file=sys.stderr)
    print(f"wrote explanations of {len(paths) - len(failures)} images x {len(texts)} texts to {out}")
    if not failures:
        return EXIT_OK
    return EXIT_ALL_FAILED if len(failures) == len(paths) else EXIT_SOME_FAILED


def _write_image_outputs(out: Path, folder: str, path: Path, image, maps, word_maps, text_names: list[str],
                         written: list[Path], method: str = "grad-eclip") -> list[list[str]]:
    """Write one image's files (each atomically; ``written`` collects them as they are done) and return its rows of
    scores.csv, each naming its own files relative to ``out``."""
    from .render import overlay, word_importance_figure

    rows = []
    for k, (exp, name) in enumerate(zip(maps, text_names)):
        png, npz = f"{folder}/{name}.png", f"{folder}/{name}.npz"
        written.append(atomic_write(out / png, lambda p: overlay(image, exp.heatmap).save(p, format="PNG")))
        written.append(atomic_write(out / npz, lambda p: np.savez_compressed(
            p, grid=exp.grid, heatmap=exp.heatmap.astype(np.float16), score=exp.score,
            model_score=exp.model_score, text=exp.text, image=str(path), method=method,
            box=np.asarray(exp.registration.box), image_size=np.asarray(exp.registration.image_size))))
        words_csv = ""
        if word_maps is not None:
            te = word_maps[k]
            imp = te.importance("sum")
            word_rows = [[te.text, i, w.text, f"{s:.6f}"] for i, (w, s) in enumerate(zip(te.words, imp))]
            words_csv = f"{folder}/{name}.words.csv"
            written.append(atomic_write(out / words_csv, lambda p: _write_csv(
                p, ["text", "word_index", "word", "score"], word_rows)))
            fig = word_importance_figure([w.text for w in te.words], imp, title=te.text)
            try:
                written.append(atomic_write(out / folder / f"{name}.words.png",
                                            lambda p: fig.savefig(p, format="png", dpi=120)))
            finally:
                import matplotlib.pyplot as plt
                plt.close(fig)
        rows.append([str(path), folder, exp.text, f"{exp.score:.6f}", f"{exp.model_score:.6f}", png, npz, words_csv])
    return rows


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
    ex.add_argument("--method", default="grad-eclip",
                    help="the explanation method: grad-eclip (default), or another registered one (gradeclip."
                         "baselines: raw-attention, rollout, grad-cam, game, maskclip, clip-surgery, m2ib, rise, "
                         "legrad, ...) or MODULE:FUNCTION; the Grad-ECLIP options below apply to grad-eclip only")
    ex.add_argument("--method-option", action="append", metavar="KEY=VALUE",
                    help="an option of the method (repeatable), e.g. n_masks=500 for rise")
    ex.add_argument("--text-maps", action="store_true", help="also write word importances (CSV and figure)")
    ex.add_argument("--heads", choices=HEADS, default="single")
    ex.add_argument("--spatial", choices=SPATIAL, default="loosened")
    ex.add_argument("--image-layers", type=count(1), default=1,
                    help="last image layers aggregated (more than the model has: all, with a warning)")
    ex.add_argument("--text-layers", type=count(1), default=8,
                    help="last text layers aggregated (more than the model has: all, with a warning)")
    ex.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    ex.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    ex.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    ex.set_defaults(func=explain_command)

    from gradeclip.toyworld.cli import add_toyworld_commands  # argparse only; heavy imports inside the commands

    add_toyworld_commands(sub)
    from gradeclip.minidata import add_minidata_command  # argparse only; the data are made inside the command

    add_minidata_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "pretrained", None) in ("none", "None", ""):
        args.pretrained = None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    with warnings.catch_warnings():  # restores the caller's warning settings (tests call main in-process)
        warnings.simplefilter("default")
        warnings.showwarning = _warning_line
        try:
            return args.func(args)
        except MissingExtraError as err:  # a sub-command that needs an optional package (gradeclip/extras.py)
            print(f"error: {err}", file=sys.stderr)
            return EXIT_USAGE


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning on the command line: one line, like the errors (not the source location and line of code)."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
