"""Reading images with errors that name the file, and collecting image paths from a file, folder or list.

Every image, whether given as a path, a PIL image or an array, goes through ``as_rgb_image``: 8-bit RGB, upright (a
photo's EXIF orientation applied, as a viewer shows it), at least one pixel."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from .files import atomic_write

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


def upright(img: Image.Image) -> Image.Image:
    """The image as a viewer shows it. Cameras and phones often store a photo sideways with an EXIF orientation tag
    saying how to turn it; explaining the stored pixels would explain a sideways photo (and draw the map sideways on
    it). Applies the tag (``PIL.ImageOps.exif_transpose``, which also drops it); an image without one is returned
    unchanged (not copied)."""
    if img.getexif().get(ExifTags.Base.Orientation, 1) in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(img)
    return img


def _with_pixels(img: Image.Image, what: str) -> Image.Image:
    if img.width == 0 or img.height == 0:
        raise ValueError(f"{what} has no pixels (size {img.width} x {img.height}): nothing to explain")
    return img


def as_rgb_image(image) -> Image.Image:
    """An image given as a PIL image, an image file's path, or a uint8 array of shape (H, W), (H, W, 3) or
    (H, W, 4), as an upright 8-bit RGB PIL image (``upright``: a PIL image's EXIF orientation is applied as a file's
    is; an array has none). Float arrays are refused rather than guessed at (0-1 or 0-255?), and so is an image
    without pixels."""
    if isinstance(image, Image.Image):
        return to_rgb(upright(_with_pixels(image, "the PIL image")))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise TypeError(f"an image array must be uint8 of shape (H, W), (H, W, 3) or (H, W, 4); got "
                            f"{image.dtype} of shape {image.shape}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"an image array must have at least one pixel; got shape {image.shape}")
        return to_rgb(Image.fromarray(image))
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    raise TypeError(f"an image must be a PIL image, a file path or a uint8 array; got {type(image).__name__}")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image fully (decoding it now, so a truncated file fails here), turn it upright (its EXIF orientation,
    see ``upright``) and convert it to RGB."""
    path = Path(path)
    if path.is_dir():
        raise ImageLoadError(f"{path}: a folder, not an image file")
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
                if img.width == 0 or img.height == 0:
                    raise ImageLoadError(f"{path}: the image has no pixels (size {img.width} x {img.height})")
                return to_rgb(upright(img))
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image file PIL can read") from None
    except Image.DecompressionBombError as err:
        raise ImageLoadError(f"{path}: image too large ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"{path}: unreadable or truncated image ({err})") from None


def collect_images(source: str | os.PathLike) -> list[Path]:
    """Image paths from an image file, a folder (sorted, not recursive), or a text file listing one path per line
    (relative paths are relative to the list file; blank lines and '#' comments skipped). A source that does not
    exist, or a list that is not UTF-8 text, raises ``FileNotFoundError`` / ``ValueError`` naming it; the images
    themselves are checked when they are read (``load_image``), so that a batch goes on past a bad one."""
    source = Path(source)
    if source.is_dir():
        return sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if source.suffix.lower() in (".txt", ".lst", ".list"):
        if not source.is_file():
            raise FileNotFoundError(f"image list {source} not found")
        try:
            text = source.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"image list {source} is not UTF-8 text ({err.reason} at byte {err.start}): "
                             "a list file has one image path per line") from None
        paths = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                p = Path(line)
                paths.append(p if p.is_absolute() else source.parent / p)
        return paths
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such image file, folder or list file")
    return [source]


def write_instance_mask(mask: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an instance-id mask (H, W) uint8 (0 = background, k + 1 = object k) as a single-channel (mode "L")
    PNG, atomically; returns the path. Used for the toy world's exact masks and for SAM's CLEVR masks alike."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"Expected an H x W uint8 instance mask, got {mask.shape} {mask.dtype}.")
    return atomic_write(path, lambda tmp: Image.fromarray(mask).save(tmp, format="PNG"))


def read_instance_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask written by :func:`write_instance_mask`: (H, W) uint8, a writable copy. Anything but an 8-bit grey
    PNG is refused with the file named (an RGB picture is not a mask)."""
    with Image.open(path) as image:
        if image.mode != "L":
            raise ValueError(f"{path}: an instance mask must be an 8-bit grey (mode L) PNG, got mode {image.mode}")
        return np.array(image)
