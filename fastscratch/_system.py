"""What the machine runs with: BLAS library and thread counts (via threadpoolctl), versions."""

from __future__ import annotations

import platform
import sys
from typing import Any


def blas_info() -> list[dict[str, Any]]:
    """The BLAS libraries NumPy (and anything else loaded) uses: name, version, threads."""
    from threadpoolctl import threadpool_info

    return [{"library": p.get("internal_api"), "version": p.get("version"), "threads": p.get("num_threads"),
             "architecture": p.get("architecture")} for p in threadpool_info() if p.get("user_api") == "blas"]


def blas_summary() -> str:
    """One line, e.g. ``openblas 0.3.31 (SkylakeX), 2 threads``."""
    found = blas_info()
    if not found:
        return "BLAS unknown (threadpoolctl found none)"
    return "; ".join(f"{b['library']} {b['version']}" + (f" ({b['architecture']})" if b["architecture"] else "")
                     + f", {b['threads']} thread{'s' if b['threads'] != 1 else ''}" for b in found)


def versions() -> dict[str, str]:
    """Versions of Python, fastscratch and the optional packages that are installed."""
    from importlib import metadata

    found = {"python": platform.python_version(), "platform": f"{sys.platform}-{platform.machine()}"}
    for dist in ("fastscratch", "numpy", "numba", "scipy", "tensorflow-cpu", "tensorflow", "torch", "jax", "jaxlib",
                 "scikit-learn", "matplotlib"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def tensorflow_gpus() -> str:
    """Whether TensorFlow is installed and which GPUs it sees (imports it, quietly: a few seconds).

    The import goes through :func:`fastscratch.reference.keras.import_tensorflow`, which keeps
    TensorFlow's C++ start-up lines off stderr."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return "TensorFlow not installed"
    try:
        from .reference.keras import import_tensorflow

        tf = import_tensorflow()
        gpus = tf.config.list_physical_devices("GPU")
    except Exception as exc:  # a broken TensorFlow install must not break `info`
        return f"TensorFlow present but failed to load ({type(exc).__name__}: {exc})"
    names = ", ".join(g.name for g in gpus)
    return f"TensorFlow {tf.__version__} sees {len(gpus)} GPU{'s' if len(gpus) != 1 else ''}" + \
        (f": {names}" if gpus else " (runs on the CPU)")
