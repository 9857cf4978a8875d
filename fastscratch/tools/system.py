"""What the machine runs with: BLAS library and thread counts (via threadpoolctl), versions, host and CPU."""

from __future__ import annotations

import functools
import platform
import socket
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


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name, e.g. ``Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz``: the
    ``model name`` of ``/proc/cpuinfo`` on Linux, else :func:`platform.processor`, else
    ``"unknown CPU"``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def host_name() -> str:
    """This machine's host name (:func:`socket.gethostname`)."""
    return socket.gethostname()


def versions() -> dict[str, str]:
    """Versions of Python, fastscratch and the optional packages that are installed."""
    from importlib import metadata

    found = {"python": platform.python_version(), "platform": f"{sys.platform}-{platform.machine()}"}
    for dist in ("fastscratch", "numpy", "numba", "scipy", "tensorflow-cpu", "tensorflow", "torch", "jax", "jaxlib",
                 "scikit-learn", "matplotlib", "dask", "distributed"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def tensorflow_gpus() -> str:
    """Whether TensorFlow is installed and which GPUs it sees (imports it, quietly: a few seconds).

    The import goes through :func:`fastscratch.integrations.keras.import_tensorflow`, which keeps
    TensorFlow's C++ start-up lines off stderr."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return "TensorFlow not installed"
    try:
        from ..integrations.keras import import_tensorflow

        tf = import_tensorflow()
        gpus = tf.config.list_physical_devices("GPU")
    except Exception as exc:  # a broken TensorFlow install must not break `info`
        return f"TensorFlow present but failed to load ({type(exc).__name__}: {exc})"
    names = ", ".join(g.name for g in gpus)
    return f"TensorFlow {tf.__version__} sees {len(gpus)} GPU{'s' if len(gpus) != 1 else ''}" + \
        (f": {names}" if gpus else " (runs on the CPU)")
