"""Reading images with errors that name the file, and collecting image paths from a file, folder or list."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class ImageLoadError(ValueError):
    """An input image could not be read; the message names the file and the reason."""


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB. 16/32-bit grayscale is rescaled by its bit depth (PIL's own convert would clip it
    to 0-255); CMYK, palette, L, LA and RGBA go through PIL's conversion (alpha is dropped, as open_clip does)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if img.mode == "F":
            top = max(float(arr.max()), 1e-12) if arr.max() > 1 else 1.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def as_rgb_image(image) -> Image.Image:
    """An image given as a PIL image, an image file's path, or a uint8 array of shape (H, W), (H, W, 3) or
    (H, W, 4), as an 8-bit RGB PIL image. Float arrays are refused rather than guessed at (0-1 or 0-255?)."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise TypeError(f"an image array must be uint8 of shape (H, W), (H, W, 3) or (H, W, 4); got "
                            f"{image.dtype} of shape {image.shape}")
        return to_rgb(Image.fromarray(image))
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    raise TypeError(f"an image must be a PIL image, a file path or a uint8 array; got {type(image).__name__}")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image fully (decoding it now, so a truncated file fails here) and convert it to RGB."""
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                # LOAD_TRUNCATED_IMAGES is process-wide and other libraries turn it on; a truncated file must still
                # fail here (the module-level setting below alone is undone by any later import that sets it)
                allowed, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
                try:
                    img.load()
                finally:
                    ImageFile.LOAD_TRUNCATED_IMAGES = allowed
                return to_rgb(img)
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image file PIL can read") from None
    except Image.DecompressionBombError as err:
        raise ImageLoadError(f"{path}: image too large ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"{path}: unreadable or truncated image ({err})") from None


def collect_images(source: str | os.PathLike) -> list[Path]:
    """Image paths from an image file, a folder (sorted, not recursive), or a text file listing one path per line
    (relative paths are relative to the list file; blank lines and '#' comments skipped)."""
    source = Path(source)
    if source.is_dir():
        return sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if source.suffix.lower() in (".txt", ".lst", ".list"):
        if not source.is_file():
            raise FileNotFoundError(f"image list {source} not found")
        paths = []
        for line in source.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                p = Path(line)
                paths.append(p if p.is_absolute() else source.parent / p)
        return paths
    return [source]


def iter_images(paths: Iterable[Path]):
    """Yield (path, image or ImageLoadError) so a batch goes on past an unreadable file."""
    for p in paths:
        try:
            yield p, load_image(p)
        except ImageLoadError as err:
            yield p, err


# Truncated files must fail, not be silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
