"""Argument types and shared options of the ``fastscratch`` command line (argparse).

Each type turns the text into a value or raises ``argparse.ArgumentTypeError``, which
argparse reports as a usage error (exit code 2) naming the option.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .. import _validation as check
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


def names(choices: Sequence[str], what: str) -> Callable[[str], list[str]]:
    """A type for a comma-separated list of ``choices`` (``numba,numpy``), each named once;
    ``what`` names one item in the error (``"backend"``)."""
    def convert(text: str) -> list[str]:
        chosen = [part.strip() for part in text.split(",") if part.strip()]
        unknown = [name for name in chosen if name not in choices]
        if unknown or not chosen:
            hint = check.did_you_mean(unknown[0], choices) if unknown else ""
            raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(map(repr, unknown)) or repr(text)}{hint}; "
                                             f"expected a comma-separated list from {', '.join(choices)}")
        return list(dict.fromkeys(chosen))
    return convert


class CommaList(argparse.Action):
    """A comma-separated list option (``--batch-sizes 32,128``, the one style of the command
    line) that still takes an older spelling: another option name (``--batch-size``) or the
    list as separate words (``--backends numba numpy``, with ``nargs="+"``).  Those are
    converted alike and stored where the new spelling stores them, with a one-line note on
    stderr naming the new spelling, so old scripts keep working while their users learn it.

    ``convert``: the new spelling's type (one comma-separated word -> a list);
    ``new_option``: the new spelling's name."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, convert: Callable[[str], list[Any]],
                 new_option: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.convert, self.new_option = convert, new_option

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[str] | None, option_string: str | None = None) -> None:
        words = [values] if isinstance(values, str) else list(values or [])
        try:
            value = [item for word in words for item in self.convert(word)]
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        if option_string != self.new_option or len(words) > 1:
            print(f"{parser.prog}: note: `{option_string} {' '.join(words)}` is deprecated; write "
                  f"`{self.new_option} {','.join(words)}`", file=sys.stderr)
        setattr(namespace, self.dest, value)


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
