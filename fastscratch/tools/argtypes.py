"""Argument types and shared options of the ``fastscratch`` command line (argparse).

Each type turns the text into a value or raises ``argparse.ArgumentTypeError``, which
argparse reports as a usage error (exit code 2) naming the option.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

from ..io import datasets


def _number(text: str, convert: Callable[[str], float], ok: Callable[[float], bool], expected: str):
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v > 0, "a positive integer")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "a non-negative integer")


seed = non_negative_int


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0 and math.isfinite(v), "a positive number")


def non_negative_float(text: str) -> float:
    return _number(text, float, lambda v: v >= 0 and math.isfinite(v), "a non-negative number")


def fraction(text: str) -> float:
    return _number(text, float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


def accuracy(text: str) -> float:
    return _number(text, float, lambda v: 0.0 < v <= 1.0, "an accuracy in (0, 1]")


def batch_size(text: str) -> int | None:
    """A positive integer, or ``full`` (None): full-batch gradient descent."""
    return None if text.strip().lower() == "full" else positive_int(text)


def batch_list(text: str) -> list[int | None]:
    return [batch_size(part) for part in text.split(",")]


def hidden_sizes(text: str) -> list[int]:
    """``"128,64"`` -> ``[128, 64]``; ``""`` or ``"none"``: no hidden layer."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        return [positive_int(part) for part in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive layer sizes like 128,64, "
                                         f"got {text!r}") from None


def dataset(text: str) -> str:
    if text in datasets.DATASETS or os.path.isdir(text):
        return text
    raise argparse.ArgumentTypeError(datasets.unknown_dataset(text))


def path(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def add_data_arguments(parser: argparse.ArgumentParser, default: str | None = "mnist-sample",
                       default_text: str = "mnist-sample, shipped with the package") -> None:
    """``--dataset``, ``--data-dir`` and ``--download``, as every data-reading command takes them."""
    parser.add_argument("--dataset", default=default, metavar="NAME|DIR", type=dataset,
                        help=f"one of {', '.join(datasets.DATASETS)}, or a directory holding the four IDX files "
                             f"(default: {default_text})")
    parser.add_argument("--data-dir", metavar="DIR", type=path,
                        help="where to look for mnist / fashion-mnist files first (default: $FASTSCRATCH_DATA, "
                             "the user cache, Keras' and Debian's folders)")
    parser.add_argument("--download", action="store_true",
                        help="download mnist / fashion-mnist if not found, checksums verified (default: never "
                             "download)")
