"""Input checks with messages that name the argument and what was expected, and the wording
helpers those and the command line's messages share (:func:`did_you_mean`, :func:`plural`)."""

from __future__ import annotations

import math
import numbers
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'fashion-mnist'?)"`` for the closest of ``choices`` to a mistyped
    ``word`` (difflib's ratio of at least 0.6), or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def plural(count: int, word: str, plural_form: str | None = None) -> str:
    """``"1 epoch"``, ``"3 epochs"``, ``"5,000 samples"``: ``count`` (thousands separated) and
    ``word``, in the plural (``word + "s"``, or ``plural_form``) unless ``count`` is 1."""
    return f"{count:,} {word if count == 1 else plural_form or word + 's'}"


# Rows per block when a check must look at every value: bounds the temporary
# memory of a finiteness scan on inputs of any size.
_SCAN_ROWS = 4096


def check_positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_non_negative_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return float(value)


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_optional_positive_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer or None, got {type(value).__name__}")
    return check_positive_int(name, value)


def check_architecture(architecture: Any) -> list[int]:
    if isinstance(architecture, (str, bytes)) or not hasattr(architecture, "__iter__"):
        raise TypeError("architecture must be a list of layer sizes such as [784, 128, 64, 10], "
                        f"got {type(architecture).__name__}")
    sizes = list(architecture)
    if len(sizes) < 2:
        raise ValueError("architecture needs at least an input and an output size, "
                         f"e.g. [784, 10]; got {sizes!r}")
    for i, size in enumerate(sizes):
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise TypeError(f"architecture[{i}] must be an integer layer size, got {size!r}")
        if size < 1:
            raise ValueError(f"architecture[{i}] must be at least 1, got {size}")
    if sizes[-1] < 2:
        raise ValueError(f"the output layer (architecture[-1]) needs at least 2 classes, got {sizes[-1]}")
    return [int(s) for s in sizes]


def check_features(X: Any, n_features: int, dtype: np.dtype, name: str = "X") -> np.ndarray:
    """``X`` as a C-contiguous ``(n_samples, n_features)`` array of ``dtype``, all finite.

    Converts (one copy) only when ``X`` is not already such an array.
    """
    return convert_finite(check_feature_array(X, n_features, name), dtype, name)


# Arrays found all finite by check_features_once, remembered weakly by identity: fitting the
# same array once per epoch (partial_fit, or fit(epochs=1) in a loop) scans 188 MB of
# Fashion-MNIST features once, not every call (35 ms each).
_FINITE: "OrderedDict[int, tuple]" = OrderedDict()
_FINITE_SIZE = 8
_FINITE_LOCK = threading.Lock()


def _finite_key(array: np.ndarray) -> tuple:
    return (array.ctypes.data, array.shape, array.strides, array.dtype.str)


def check_features_once(X: Any, n_features: int, dtype: np.dtype, name: str = "X") -> tuple[np.ndarray, bool]:
    """:func:`check_features`, except that an array this function already found finite (the
    same object, not converted, same buffer and shape) is not scanned again.

    Returns ``(array, scanned)``.  ``scanned`` is False when the scan was skipped: a NaN or
    inf written into the array in place since then would not have been seen, so a caller
    that gets False must call :func:`check_finite` on the array before it reports anything
    that such a value could have caused (a non-finite loss or result).
    """
    array = check_feature_array(X, n_features, name)
    if array.dtype == dtype and array.flags.c_contiguous:
        with _FINITE_LOCK:
            entry = _FINITE.get(id(array))
            if entry is not None and entry[0]() is array and entry[1] == _finite_key(array):
                _FINITE.move_to_end(id(array))
                return array, False
    converted = convert_finite(array, dtype, name)
    if converted is array:  # a copy is new on every call: nothing to remember
        with _FINITE_LOCK:
            _FINITE[id(array)] = (weakref.ref(array), _finite_key(array))
            _FINITE.move_to_end(id(array))
            while len(_FINITE) > _FINITE_SIZE:
                _FINITE.popitem(last=False)
    return converted, True


def convert_finite(source: np.ndarray, dtype: np.dtype, name: str, row_offset: int = 0) -> np.ndarray:
    """``source`` as a C-contiguous array of ``dtype``; ``ValueError`` if any value is
    NaN or infinite, or too large to be represented in ``dtype``."""
    with np.errstate(over="ignore"):  # overflow to inf is reported below, by position
        array = np.ascontiguousarray(source, dtype=dtype)
    check_finite(array, name, row_offset, source=source)
    return array


def check_feature_array(X: Any, n_features: int, name: str = "X") -> np.ndarray:
    """``X`` as an array of real numbers shaped ``(n_samples, n_features)``, not converted."""
    if isinstance(X, np.ndarray):
        array = X
    else:
        try:
            array = np.asarray(X)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} must be a numeric array, could not convert it: {exc}") from exc
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    check_feature_shape(array.shape, n_features, name)
    return array


def check_feature_shape(shape: tuple[int, ...], n_features: int, name: str = "X") -> None:
    """``ValueError`` unless ``shape`` is ``(n_samples >= 1, n_features)`` (any array library's)."""
    shape = tuple(shape)
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, {n_features}), got shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples")
    if shape[1] != n_features:
        raise ValueError(f"{name} has {shape[1]} features per sample but the network's input layer "
                         f"(architecture[0]) expects {n_features}; shape {shape}")


def check_finite(array: np.ndarray, name: str, row_offset: int = 0, source: np.ndarray | None = None) -> None:
    """Raise ``ValueError`` naming the first non-finite entry of a 2-D float array.

    ``row_offset`` is added to row numbers in the message (for chunks of a larger
    array); ``source`` is what ``array`` was converted from, to tell an overflow
    in the conversion from a NaN or inf in the data.
    """
    # The sum of the values (in their own dtype: no conversion, ~10 GB/s) is finite only when
    # every value is; one that overflows falls through to the exact scan below.  It needs no
    # temporary as large as the array.
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(np.add.reduce(array, axis=None))
    if math.isfinite(total):
        return
    for start in range(0, array.shape[0], _SCAN_ROWS):
        block = array[start:start + _SCAN_ROWS]
        bad = ~np.isfinite(block)
        if bad.any():
            row, col = map(int, np.argwhere(bad)[0])
            where = f"row {row_offset + start + row}, column {col}"
            if source is not None and np.isfinite(source[start + row, col]):
                raise ValueError(f"{name} has a value too large for {array.dtype} "
                                 f"({source[start + row, col]} at {where}); rescale the inputs")
            raise ValueError(f"{name} contains non-finite values ({block[row, col]} at {where}); "
                             "remove or impute NaN/inf before training")


def check_labels(y: Any, n_samples: int, n_classes: int, name: str = "y") -> np.ndarray:
    """Class labels as an ``intp`` vector of length ``n_samples`` in ``[0, n_classes)``.

    Accepts integer labels ``(n_samples,)`` (integral floats too) or one-hot
    rows ``(n_samples, n_classes)``.
    """
    array = np.asarray(y)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold integer class labels or one-hot rows, got dtype {array.dtype}")
    if array.ndim == 2:
        if array.shape[1] != n_classes:
            raise ValueError(f"{name} looks one-hot with {array.shape[1]} columns, but the network has "
                             f"{n_classes} output classes; shape {array.shape}")
        if not np.all((array == 0) | (array == 1)) or not np.all(array.sum(axis=1) == 1):
            raise ValueError(f"one-hot {name} must have exactly one 1 per row and zeros elsewhere")
        array = array.argmax(axis=1)
    elif array.ndim != 1:
        raise ValueError(f"{name} must be 1-D labels (n_samples,) or one-hot (n_samples, {n_classes}), "
                         f"got shape {array.shape}")
    if array.shape[0] != n_samples:
        raise ValueError(f"{name} has {array.shape[0]} labels but X has {n_samples} samples")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains NaN or infinite labels")
        if not np.all(array == np.round(array)):
            raise ValueError(f"{name} must hold integer class labels; got non-integer values such as "
                             f"{array[array != np.round(array)][0].item()}")
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        bad = array[(array < 0) | (array >= n_classes)][0].item()
        raise ValueError(f"{name} has label {bad} out of range: labels must be in [0, {n_classes - 1}] "
                         f"for a network with {n_classes} output classes")
    return np.ascontiguousarray(array, dtype=np.intp)


def resolve_named(spec: Any, registry: dict[str, type], base: type, label: str) -> Any:
    """An instance of ``base`` from an instance (returned as is), a registered name,
    or a config dict ``{"name": ..., **settings}``; ``label`` names the argument."""
    if isinstance(spec, base):
        return spec
    if isinstance(spec, dict):
        settings = dict(spec)
        name = settings.pop("name", None)
    elif isinstance(spec, str):
        name, settings = spec.lower(), {}
    else:
        raise TypeError(f"{label} must be a name or a {base.__name__} instance, got {type(spec).__name__}")
    if name not in registry:
        shown = spec if isinstance(spec, str) else name
        raise ValueError(f"unknown {label} {shown!r}; expected one of {sorted(registry)} "
                         f"or a {base.__name__} instance")
    try:
        return registry[name](**settings)
    except TypeError as exc:  # unknown or missing settings in a config dict
        raise ValueError(f"invalid {label} settings {settings!r}: {exc}") from None


def check_pair(X_test: Any, y_test: Any) -> None:
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test must be given together (or both left out)")
