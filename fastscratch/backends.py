"""Choosing the kernel module that does the arithmetic.

A backend is a module of ``fastscratch.kernels`` that meets the backend contract
(``fastscratch.kernels.contract``: the kernels of ``numpy_kernels`` with the same
signatures, optional capabilities such as a whole-epoch function); every module
loaded here is checked against it.  ``"auto"`` takes Numba when its kernels can
be imported and falls back to NumPy otherwise, so the library works without
Numba installed.  ``"array_api"`` (``kernels/array_api_kernels.py``) computes on the
arrays of any array-API library, on their device (:mod:`fastscratch.devices`); a
network chooses it itself when given GPU arrays, so it is not among the host
backends that ``"auto"`` and :func:`available_backends` consider.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .kernels.contract import check_backend

#: the host backends (NumPy arrays), in preference order
BACKENDS = ("numpy", "numba")
#: the backend that computes on any array-API library's arrays, wherever they live
ARRAY_API = "array_api"
_MODULES = {"numpy": "fastscratch.kernels.numpy_kernels", "numba": "fastscratch.kernels.numba_kernels",
            ARRAY_API: "fastscratch.kernels.array_api_kernels"}
_EXTRAS = {"numba": "`pip install 'fastscratch[numba]'`", ARRAY_API: "`pip install 'fastscratch[array-api]'`"}


def load_backend(name: str) -> ModuleType:
    """Return the kernel module for ``name`` ("auto", "numpy", "numba" or "array_api").

    Raises ``ValueError`` for an unknown name, ``ImportError`` (naming the
    extra to install) when Numba or array-api-compat is asked for but unavailable, and
    ``TypeError`` naming what is missing when the module does not meet the
    backend contract (``fastscratch.kernels.contract.check_backend``).
    """
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string, got {type(name).__name__}")
    if name == "auto":
        try:
            return load_backend("numba")
        except ImportError:
            return load_backend("numpy")
    if name not in _MODULES:
        raise ValueError(f"unknown backend {name!r}; expected one of 'auto', "
                         + ", ".join(map(repr, BACKENDS + (ARRAY_API,))))
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as exc:
        if name == "numpy":
            raise
        if getattr(exc, "name", None) == _MODULES[name]:  # the kernel module itself is absent
            raise ImportError(f"backend {name!r} is not part of this fastscratch installation; "
                              "use backend='numpy' or 'auto'") from exc
        raise ImportError(  # its kernels are here but Numba (or SciPy, or array-api-compat) is not
            f"backend {name!r} is not available ({exc}); install it with "
            f"{_EXTRAS[name]} or use backend='numpy'"
        ) from exc
    check_backend(module)
    return module


def available_backends() -> list[str]:
    """Names of the backends that can be loaded here, in preference order."""
    found = []
    for name in BACKENDS:
        try:
            load_backend(name)
        except ImportError:
            continue
        found.append(name)
    return found
