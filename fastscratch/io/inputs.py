"""What ``fastscratch predict`` reads: PNG images, IDX files and ``.npy`` arrays, as feature rows.

:func:`read_input` tells the format by content (never by the file name), turns the file
into ``(n, n_features)`` rows and remembers whether they are images and of what size, so
that :func:`check_fits` can say "a 112x112 image, but the model expects 28x28 images"
instead of counting features.  :func:`light_ground` finds images drawn the other way
round from MNIST and Fashion-MNIST (a dark object on a light ground, as people draw and
photograph and as the sample grid shows them); :func:`apply_inversion` turns them into light-on-dark, as the model was
trained, or leaves them, as the user asked.

Errors are :class:`InputError` (a ``ValueError``) naming the file and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from .._validation import plural
from . import datasets

#: the formats ``predict`` reads, for its help text and for the error on anything else
FORMATS = "PNG images, IDX files (plain or .gz) and .npy arrays"

_PNG = b"\x89PNG\r\n\x1a\n"
_GZIP = b"\x1f\x8b"
#: signatures of formats predict does not read, to name them in the error
_OTHER_FORMATS = ((b"\xff\xd8\xff", "a JPEG image"), (b"GIF87a", "a GIF image"), (b"GIF89a", "a GIF image"),
                  (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"),
                  (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a zip archive (.npz: give the arrays as .npy)"))


_BLOCK = 4096  # images per block when judging grounds


class InputError(ValueError):
    """An input file predict cannot use; the message names the file."""


@dataclasses.dataclass
class Input:
    """One input file as feature rows.

    ``rows``: ``(n, n_features)``, pixels scaled to [0, 1] (uint8 input and PNGs) or the
    file's numbers as they are.  ``image_shape``: ``(height, width)`` when the file holds
    images (a PNG, an ``(n, h, w)`` array), else None.  ``pixels``: the rows are pixels
    that predict scaled itself (PNG or uint8), so their ground can be judged.
    """

    path: str
    rows: np.ndarray
    image_shape: tuple[int, int] | None = None
    pixels: bool = False
    kind: str = ""  # "PNG", "IDX" or ".npy"

    @property
    def n(self) -> int:
        return len(self.rows)


def _unsupported(path: str, signature: bytes) -> InputError:
    what = next((name for magic, name in _OTHER_FORMATS if signature.startswith(magic)), None)
    if what is None and signature[:4] == b"RIFF" and signature[8:12] == b"WEBP":
        what = "a WebP image"
    said = what or f"not a format predict reads (it starts with bytes {signature[:4].hex()})"
    return InputError(f"{path}: {said}; predict reads {FORMATS} (save other images as PNG first)")


def _read_png(path: str) -> np.ndarray:
    """One PNG as ``(h, w)`` grey in [0, 1] (matplotlib's reader); colour is averaged to grey."""
    try:
        from matplotlib import image
    except ImportError:
        raise ImportError("PNG input needs matplotlib: `pip install 'fastscratch[plot]'`") from None
    try:
        pixels = image.imread(path)
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path}: not a readable PNG ({exc})") from None
    if pixels.dtype == np.uint8:
        pixels = pixels / 255.0
    if pixels.ndim == 3:  # RGB or RGBA: average the colour channels, ignore alpha
        pixels = pixels[..., :3].mean(axis=2)
    return np.asarray(pixels, dtype=np.float64)


def read_input(path: str) -> Input:
    """Read one of predict's inputs (see :data:`FORMATS`) into feature rows.

    IDX and ``.npy`` files hold images ``(n, h, w)`` or rows ``(n, features)``; uint8 is
    scaled by 1/255 as training did, other numbers are taken as they are.  A PNG is one
    image.  Anything else, an empty array or non-numbers raise :class:`InputError`.
    """
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    with open(path, "rb") as f:
        signature = f.read(12)
    if signature.startswith(_PNG):
        image = _read_png(path)
        return Input(path, image.reshape(1, -1), image_shape=image.shape[:2], pixels=True, kind="PNG")
    if signature.startswith(b"\x93NUMPY"):
        kind = ".npy"
        try:
            # memory-mapped: a header claiming more data than the file holds fails here,
            # before anything is allocated
            raw = np.load(path, allow_pickle=False, mmap_mode="r")
        except (ValueError, OSError, SyntaxError) as exc:
            raise InputError(f"{path}: not a plain .npy array ({exc})") from None
    elif signature.startswith(_GZIP) or signature.startswith(b"\x00\x00"):  # IDX, gzip-compressed or not
        kind = "IDX"
        raw = datasets.read_idx(path)
    else:
        raise _unsupported(path, signature)
    if raw.ndim not in (2, 3) or raw.shape[0] == 0:
        raise InputError(f"{path}: expected (n, height, width) images or (n, features) rows with n > 0, "
                         f"got shape {raw.shape}")
    if raw.dtype.kind not in "fiu":
        raise InputError(f"{path}: expected numbers, got dtype {raw.dtype}")
    shape = tuple(raw.shape[1:]) if raw.ndim == 3 else None
    if raw.dtype == np.uint8:
        rows = datasets.to_features(np.asarray(raw).reshape(raw.shape[0], -1), np.float64)
        return Input(path, rows, image_shape=shape, pixels=True, kind=kind)
    return Input(path, raw.reshape(raw.shape[0], -1), image_shape=shape, kind=kind)


def _square_side(n_features: int) -> int | None:
    side = math.isqrt(n_features)
    return side if side * side == n_features else None


def check_fits(item: Input, n_features: int, architecture: str) -> None:
    """Raise :class:`InputError` unless ``item``'s rows have the model's ``n_features``;
    for images the message is in pixels (``a 112x112 image, ... expects 28x28 images``)."""
    if item.rows.shape[1] == n_features:
        return
    if item.image_shape is not None:
        h, w = item.image_shape
        side = _square_side(n_features)
        expected = f"{side}x{side} images" if side else f"images of {n_features} pixels"
        what = f"a {h}x{w} image" if item.kind == "PNG" else f"{plural(item.n, 'image')} of {h}x{w} pixels"
        raise InputError(f"{item.path}: {what}, but the model expects {expected} ({n_features} features; "
                         f"architecture {architecture}); resize it first")
    raise InputError(f"{item.path} has {item.rows.shape[1]} features per sample but the model expects "
                     f"{n_features} (architecture {architecture})")


def light_ground(images: np.ndarray) -> np.ndarray:
    """Which of ``images: (n, h, w)`` (pixels in [0, 1]) have a light ground: ``(n,)`` bool.

    The ground is judged by the median of the image's border (the outer ``max(1, min(h, w)
    // 14)`` pixels: 2 for 28x28), where MNIST-style images are dark around the digit or garment;
    a median above 0.5 means a dark object on a light ground."""
    if images.ndim != 3:
        raise ValueError(f"images must be (n, height, width), got shape {images.shape}")
    n, h, w = images.shape
    b = max(1, min(h, w) // 14)
    ring = np.concatenate([images[:, :b, :].reshape(n, -1), images[:, h - b:, :].reshape(n, -1),
                           images[:, b:h - b, :b].reshape(n, -1), images[:, b:h - b, w - b:].reshape(n, -1)], axis=1)
    return np.median(ring, axis=1) > 0.5


def apply_inversion(items: list[Input], invert: bool | None, trained_on: str | None = None) -> list[str]:
    """Turn images into light-on-dark (``1 - x``) in place, as asked; return warning lines.

    ``invert=None`` (the default of ``predict``): images whose pixels predict scaled itself
    (PNG, uint8) and whose ground is light (:func:`light_ground`) are inverted, and a
    warning says which.  ``True``: every input is inverted (features taken to be in [0, 1]);
    ``False``: nothing is.  ``trained_on``: the dataset the model records (``data_info``),
    named in the warning; the warning's words fit digits and clothing alike."""
    if invert is False:
        return []
    if invert is True:
        for item in items:
            item.rows = 1.0 - item.rows
        return []
    flipped = []
    for item in items:
        if not item.pixels or item.image_shape is None:
            continue
        images = item.rows.reshape(item.n, *item.image_shape)
        # in blocks, so the border copies stay small whatever the number of images
        light = np.concatenate([light_ground(images[i:i + _BLOCK]) for i in range(0, item.n, _BLOCK)])
        if light.any():
            item.rows = item.rows.copy() if not item.rows.flags.writeable else item.rows
            item.rows[light] = 1.0 - item.rows[light]
            flipped.append((item, int(light.sum())))
    if not flipped:
        return []
    total = sum(count for _, count in flipped)
    names = ", ".join(f"{item.path}" + (f" ({count:,} of {item.n:,})" if item.n > 1 else "")
                      for item, count in flipped[:3]) + (f" and {plural(len(flipped) - 3, 'more file')}"
                                                         if len(flipped) > 3 else "")
    # a custom dataset is recorded as its directory's absolute path: its last part names it
    like = (f"the model's training images ({os.path.basename(os.path.normpath(trained_on))}) are" if trained_on
            else "MNIST-style models are trained")
    return [f"warning: {plural(total, 'image')} with a light ground (a dark object on white) inverted to "
            f"light on dark, as {like}: {names}; --no-invert keeps them as they are"]
