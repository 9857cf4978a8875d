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
    for dist in ("fastscratch", "numpy", "numba", "scipy", "tensorflow-cpu", "tensorflow", "torch",
                 "scikit-learn", "matplotlib"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found
