"""Where a network's arrays live: on the host (NumPy) or on a device of another array library.

The NumPy and Numba backends compute on NumPy arrays.  The array-API backend
(``backend="array_api"``, :mod:`fastscratch.kernels.array_api_kernels`) computes on any
library that implements the Python array API standard through ``array-api-compat``
-- CuPy, PyTorch (CPU or CUDA), NumPy itself, ``array-api-strict`` -- with the
network's weights on the device of the data it is given.  This module is the one
place that knows how to allocate, copy and check arrays wherever they live; for a
NumPy array every function here is the NumPy call the library always made, so the
host path computes exactly what it did.

Nothing here moves data between the host and a device unless its name says so
(:func:`to_device`, :func:`to_numpy`, :func:`from_host`): data on the wrong device
is an error (:func:`check_same_device`), never a silent copy.  The host-to-device
moves the training does on its own are small and stated: the epoch's permutation
(one per epoch) and dropout's uniform draws, which come from the model's NumPy
generator so the seed decides everything, as on the host.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ._validation import check_feature_shape

INSTALL_HINT = "install it with `pip install 'fastscratch[array-api]'` (it brings array-api-compat)"
HOST = "cpu"  #: how the host is named in messages and by :func:`to_device`


def _compat() -> ModuleType:
    try:
        import array_api_compat
    except ImportError as exc:
        raise ImportError(f"the array-API backend needs array-api-compat: {INSTALL_HINT}") from exc
    return array_api_compat


def library_of(x: Any) -> str:
    """The top-level module of ``x``'s type: ``"numpy"``, ``"torch"``, ``"cupy"``, ``"array_api_strict"``, ..."""
    return type(x).__module__.split(".")[0]


def is_host(x: Any) -> bool:
    """Whether ``x`` is a NumPy array (what the NumPy and Numba backends compute on)."""
    return isinstance(x, np.ndarray)


def is_device_array(x: Any) -> bool:
    """Whether ``x`` is an array of another array-API library (CuPy, PyTorch, array-api-strict, ...)
    rather than a NumPy array or something NumPy converts (a list)."""
    if isinstance(x, np.ndarray) or x is None or not (hasattr(x, "shape") and hasattr(x, "dtype")):
        return False  # (a device object is no array)
    module = library_of(x)
    if module in ("torch", "cupy", "array_api_strict", "jax", "jaxlib", "dask"):
        return True
    return hasattr(x, "__array_namespace__")


def wants_array_api(x: Any) -> bool:
    """Whether ``backend="auto"`` trains ``x`` with the array-API backend: a CuPy array, a PyTorch
    tensor on a device other than the CPU, or an ``array-api-strict`` array.  A PyTorch CPU
    tensor is converted to NumPy as before (NumPy shares its memory)."""
    if not is_device_array(x):
        return False
    module = library_of(x)
    if module == "torch":
        return x.device.type != "cpu"
    return module in ("cupy", "array_api_strict")


def namespace(x: Any) -> ModuleType:
    """The array-API namespace of ``x`` (``array_api_compat``'s wrapper for NumPy, CuPy, PyTorch)."""
    return _compat().array_namespace(x)


def device_of(x: Any) -> Any:
    """The device ``x`` lives on (``"cpu"`` for a NumPy array)."""
    return HOST if is_host(x) else _compat().device(x)


def describe(x: Any) -> str:
    """Where ``x`` lives, for messages: ``"a NumPy array on the host"``, ``"a torch array on cuda:0"``."""
    if is_host(x):
        return "a NumPy array on the host"
    if not is_device_array(x):
        return f"a {type(x).__name__} on the host"
    return f"a {library_of(x)} array on {device_of(x)}"


def _where(x: Any) -> str:
    if not is_device_array(x):
        return "on the host (NumPy)"
    return f"on {device_of(x)} ({library_of(x)})"


def same_place(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are arrays of the same library on the same device."""
    if not (is_device_array(a) and is_device_array(b)):
        return not is_device_array(a) and not is_device_array(b)
    return library_of(a) == library_of(b) and str(device_of(a)) == str(device_of(b))


def check_same_device(name: str, x: Any, like: Any) -> None:
    """``ValueError`` unless ``x`` lives where ``like`` (the model's weights) does: the library
    never copies data between the host and a device, or between devices, behind the caller's back."""
    if not same_place(x, like):
        raise ValueError(f"{name} is {describe(x)} but the model's weights are {_where(like)}: "
                         "move the data there first (fastscratch.devices.to_device), or the model "
                         "(NeuralNetwork.to_device); nothing is copied between devices silently")


# ------------------------------------------------------------------ allocation and copies
def _xp_dtype(xp: ModuleType, dtype: Any) -> Any:
    if isinstance(dtype, str) and dtype == "index":
        return xp.int64
    return getattr(xp, np.dtype(dtype).name)


def empty(like: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """An uninitialised array of ``shape`` where ``like`` lives.  ``dtype``: a NumPy dtype, or
    ``"index"`` for row indices and labels (``intp`` on the host, ``int64`` elsewhere)."""
    if like is None or is_host(like):
        return np.empty(shape, dtype=np.intp if isinstance(dtype, str) and dtype == "index" else dtype)
    xp = namespace(like)
    return xp.empty(shape, dtype=_xp_dtype(xp, dtype), device=device_of(like))


def empty_like(a: Any) -> Any:
    return np.empty_like(a) if is_host(a) else namespace(a).empty_like(a)


def zeros_like(a: Any) -> Any:
    return np.zeros_like(a) if is_host(a) else namespace(a).zeros_like(a)


def copy_into(dst: Any, src: Any) -> None:
    """``dst[...] = src``, in place."""
    if is_host(dst):
        np.copyto(dst, src)
    else:
        dst[...] = src


def add_into(total: Any, part: Any) -> None:
    """``total += part``, in place."""
    if is_host(total):
        np.add(total, part, out=total)
    else:
        total[...] = total + part


def all_finite(a: Any) -> bool:
    """Whether every value of ``a`` is finite (one device-to-host scalar off the host)."""
    if is_host(a):
        return bool(np.isfinite(a).all())
    xp = namespace(a)
    return bool(xp.all(xp.isfinite(a)))


def sum_of_squares(a: Any) -> float:
    """``sum(a**2)`` as a Python float."""
    if is_host(a):
        return float(np.vdot(a, a))
    xp = namespace(a)
    return float(xp.sum(a * a))


def fill_uniform(rng: np.random.Generator, out: Any) -> None:
    """Fill ``out`` with uniform draws in [0, 1) from ``rng`` (dropout's masks).  Off the host the
    draws are made on the host, in ``out``'s dtype, and moved: the same numbers as on the host."""
    if is_host(out):
        rng.random(out=out, dtype=out.dtype)
    else:
        dtype = np.float32 if out.dtype == namespace(out).float32 else np.float64
        out[...] = from_host(rng.random(tuple(out.shape), dtype=dtype), out)


def from_host(values: np.ndarray, like: Any) -> Any:
    """The NumPy array ``values`` where ``like`` lives (itself on the host): a stated host-to-device move."""
    if like is None or is_host(like):
        return values
    xp = namespace(like)
    return xp.asarray(values, device=device_of(like))


# ------------------------------------------------------------------ public moves
def gpu_library() -> tuple[str | None, str]:
    """The array library to put data on a CUDA GPU with: ``("cupy", "")`` when CuPy sees a GPU,
    else ``("torch", "")`` when PyTorch does, else ``(None, why neither can)``."""
    reasons = []
    try:
        import cupy

        if cupy.cuda.is_available():
            return "cupy", ""
        reasons.append("CuPy sees no CUDA device")
    except Exception as exc:  # ImportError, or a broken CUDA install failing at import
        reasons.append(f"CuPy is not usable ({type(exc).__name__}: {exc})" if not isinstance(exc, ImportError)
                       else "CuPy is not installed")
    try:
        import torch

        if torch.cuda.is_available():
            return "torch", ""
        reasons.append(f"PyTorch {torch.__version__} sees no CUDA device")
    except Exception as exc:  # ImportError, or a broken CUDA build failing at import (OSError)
        reasons.append("PyTorch is not installed" if isinstance(exc, ImportError)
                       else f"PyTorch is not usable ({type(exc).__name__}: {exc})")
    return None, "; ".join(reasons)


def to_device(x: Any, device: Any = "cuda") -> Any:
    """``x`` (a NumPy array, or anything ``np.asarray`` takes) copied to ``device``.

    ``device``: ``"cuda"`` or ``"cuda:N"`` (CuPy where it sees a GPU, else PyTorch), ``"cpu"``
    (a NumPy array), a ``torch.device``, a ``cupy.cuda.Device``, an ``array-api-strict``
    ``Device``, or an array whose library and device to use.  ``RuntimeError`` naming what is
    missing when no GPU library can place it; ``TypeError`` for anything else."""
    values = np.asarray(x) if not is_device_array(x) else x
    if device is None or (isinstance(device, str) and device in (HOST, "host")):
        return to_numpy(values)
    if isinstance(device, str):
        if not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N' (or a device object), got {device!r}")
        library, reason = gpu_library()
        if library is None:
            raise RuntimeError(f"no GPU to put the data on: {reason}")
        index = int(device[5:]) if ":" in device else 0
        if library == "cupy":
            import cupy

            with cupy.cuda.Device(index):
                return cupy.asarray(to_numpy(values))
        import torch

        return torch.asarray(to_numpy(values), device=f"cuda:{index}")
    module = library_of(device)
    if is_device_array(device) or is_host(device):  # an array: its library and device
        return from_host(to_numpy(values), device)
    if module == "torch":
        import torch

        return torch.asarray(to_numpy(values), device=device)
    if module == "cupy":
        import cupy

        with device:
            return cupy.asarray(to_numpy(values))
    if module == "array_api_strict":
        import array_api_strict

        return array_api_strict.asarray(to_numpy(values), device=device)
    raise TypeError(f"device must be 'cpu', 'cuda', 'cuda:N', a device object or an array, got {device!r}")


def to_numpy(x: Any) -> np.ndarray:
    """``x`` as a NumPy array on the host: a stated device-to-host copy for arrays elsewhere."""
    if is_host(x):
        return x
    module = library_of(x)
    if module == "torch":
        return x.detach().cpu().numpy()
    if module == "cupy":
        return x.get()
    if module == "array_api_strict":
        import array_api_strict

        return np.asarray(array_api_strict.asarray(x, device=array_api_strict.Device("CPU_DEVICE")))
    return np.asarray(x)


def synchronize(like: Any) -> None:
    """Wait for the work queued on ``like``'s device (a GPU runs kernels asynchronously), so a
    clock read after it times the work itself.  Nothing to wait for on the host."""
    if like is None or is_host(like):
        return
    module = library_of(like)
    if module == "torch" and like.device.type == "cuda":
        import torch

        torch.cuda.synchronize(like.device)
    elif module == "cupy":
        like.device.synchronize()


# ------------------------------------------------------------------ input checks off the host
def check_current_device(name: str, x: Any) -> None:
    """``ValueError`` for a CuPy array on another GPU than the current one: CuPy allocates (the
    training buffers, every temporary) on the current device, whatever array they serve."""
    if library_of(x) != "cupy":
        return
    import cupy

    if x.device.id != cupy.cuda.Device().id:
        raise ValueError(f"{name} is on GPU {x.device.id} but CuPy's current device is GPU "
                         f"{cupy.cuda.Device().id}: train inside `with cupy.cuda.Device({x.device.id}):`")



def check_features(X: Any, n_features: int, dtype: np.dtype, name: str = "X") -> Any:
    """``X: (n_samples, n_features)`` of an array-API library, in the model's ``dtype`` (converted
    on its device when it is another real dtype) and finite; ``ValueError``/``TypeError`` naming
    ``name`` otherwise."""
    xp = namespace(X)
    check_current_device(name, X)
    check_feature_shape(X.shape, n_features, name)
    if not (xp.isdtype(X.dtype, "real floating") or xp.isdtype(X.dtype, "integral")):
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    target = _xp_dtype(xp, dtype)
    if X.dtype != target:
        X = xp.astype(X, target)  # on its device
    if not all_finite(X):
        raise ValueError(f"{name} contains non-finite values (NaN or infinity); clean or impute them first")
    return X


def check_labels(y: Any, X: Any, n_classes: int, name: str = "y") -> Any:
    """Labels for ``X`` (same library and device), checked as on the host
    (``fastscratch._validation.check_labels``): ``(n,)`` class labels in ``[0, n_classes)`` --
    integers, or real numbers with integer values -- or one-hot ``(n, n_classes)`` rows (exactly
    one 1 per row); returned as ``(n,)`` int64 on the device.  A few scalar reads (one wait each)."""
    check_same_device(name, y, X)
    xp = namespace(y)
    n = X.shape[0]
    real = xp.isdtype(y.dtype, "real floating")
    if not (real or xp.isdtype(y.dtype, "integral") or xp.isdtype(y.dtype, "bool")):
        raise TypeError(f"{name} must hold integer class labels or one-hot rows, got dtype {y.dtype}")
    if y.ndim == 2 and y.shape[1] == n_classes:
        values = xp.astype(y, xp.float32) if not real else y
        if not bool(xp.all((values == 0.0) | (values == 1.0))) or not bool(xp.all(xp.sum(values, axis=1) == 1.0)):
            raise ValueError(f"one-hot {name} must have exactly one 1 per row and zeros elsewhere")
        y = xp.argmax(values, axis=1)
    elif y.ndim == 2:
        raise ValueError(f"{name} looks one-hot with {y.shape[1]} columns, but the network has "
                         f"{n_classes} classes")
    elif y.ndim != 1:
        raise ValueError(f"{name} must be 1-D labels (n_samples,) or one-hot (n_samples, {n_classes}), "
                         f"got shape {tuple(y.shape)}")
    elif xp.isdtype(y.dtype, "bool"):
        y = xp.astype(y, xp.int64)  # False, True: classes 0 and 1, as on the host
    elif real:
        if not all_finite(y):
            raise ValueError(f"{name} contains NaN or infinite labels")
        if not bool(xp.all(y == xp.round(y))):
            raise ValueError(f"{name} must hold integer class labels; got non-integer values")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} labels but X has {n} samples")
    low, high = int(xp.min(y)), int(xp.max(y))
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        raise ValueError(f"{name} has label {bad} out of range: labels must be in [0, {n_classes - 1}]")
    return xp.astype(y, xp.int64)
