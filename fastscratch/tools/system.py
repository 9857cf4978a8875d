"""What the machine runs with: BLAS library and thread counts (via threadpoolctl), versions, host and CPU."""

from __future__ import annotations

import functools
import os
import platform
import socket
import sys
from typing import Any

from .._validation import plural


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
                     + f", {plural(b['threads'], 'thread')}" for b in found)


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
    return f"TensorFlow {tf.__version__} sees {plural(len(gpus), 'GPU')}" + \
        (f": {names}" if gpus else " (runs on the CPU)")


# ------------------------------------------------------------------------ GPUs
#: the GPU libraries :func:`gpu_info` describes, and the distributions whose versions it records for each
GPU_LIBRARIES = {"torch": ("torch",), "cupy": ("cupy", "cupy-cuda13x", "cupy-cuda12x"), "jax": ("jax", "jaxlib")}


def nvidia_smi(index: int = 0, timeout: float = 10.0) -> dict[str, str]:
    """GPU ``index`` as ``nvidia-smi`` reports it: ``{"gpu": name, "driver": driver version,
    "memory": total memory}``; ``{}`` when ``nvidia-smi`` is missing, fails or takes longer
    than ``timeout`` seconds."""
    import shutil
    import subprocess

    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        out = subprocess.run(["nvidia-smi", f"--id={index}", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = [f.strip() for f in out.stdout.strip().split(",")]
    if out.returncode != 0 or len(fields) != 3:
        return {}
    return dict(zip(("gpu", "driver", "memory"), fields))


def _dist_versions(names: tuple[str, ...]) -> dict[str, str]:
    """``{distribution: version}`` of those of ``names`` that are installed."""
    from importlib import metadata

    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _cuda_dists() -> dict[str, str]:
    """Versions of the installed CUDA runtime and JAX CUDA plugin wheels (``nvidia-cuda-runtime*``,
    ``jax-cuda*``): where JAX's CUDA runtime comes from."""
    from importlib import metadata

    found = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith(("nvidia-cuda-runtime", "jax-cuda")):
            found[name] = dist.version
    return dict(sorted(found.items()))


def _library_gpu(library: str) -> dict[str, str]:
    """What ``library`` itself says about its first GPU: name, CUDA runtime and the float32 matmul
    precision it is set to (TF32 or full float32: a speed and accuracy difference of its own; raises
    when it cannot)."""
    if library == "torch":
        import torch

        return {"gpu": torch.cuda.get_device_name(0), "cuda_runtime": str(torch.version.cuda), "torch": torch.__version__,
                "float32_matmul": "tf32 allowed" if torch.backends.cuda.matmul.allow_tf32 else "float32"}
    if library == "cupy":
        import cupy

        runtime = cupy.cuda.runtime
        props = runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        version = runtime.runtimeGetVersion()
        driver_api = runtime.driverGetVersion()
        return {"gpu": name, "cuda_runtime": f"{version // 1000}.{version % 1000 // 10}", "cupy": cupy.__version__,
                "cuda_driver_api": f"{driver_api // 1000}.{driver_api % 1000 // 10}",
                "float32_matmul": "tf32 allowed" if os.environ.get("CUPY_TF32", "0") != "0" else "float32"}
    import jax

    device = jax.devices("gpu")[0]
    platform = " ".join(str(getattr(device.client, "platform_version", "")).split())
    cuda = ", ".join(f"{k} {v}" for k, v in _cuda_dists().items())
    precision = jax.config.jax_default_matmul_precision
    return {"gpu": device.device_kind, "cuda_runtime": cuda or platform or "unknown", "jax_platform": platform,
            "jax": jax.__version__,
            "float32_matmul": f"jax_default_matmul_precision={precision or 'default (XLA may use TF32)'}"}


def gpu_info(library: str) -> dict[str, str]:
    """The GPU that ``library`` (``"torch"``, ``"cupy"`` or ``"jax"``) computes on, for a benchmark
    record: ``{"device": "gpu", "gpu": name, "driver": NVIDIA driver version, "cuda_runtime": the
    CUDA runtime the library runs with, "memory": total memory, <library distributions>: versions}``.
    The name and runtime come from the library, the driver and memory from ``nvidia-smi``; what
    cannot be found reads ``"unknown"`` (a record is never refused for a missing detail)."""
    if library not in GPU_LIBRARIES:
        raise ValueError(f"library must be one of {', '.join(GPU_LIBRARIES)}, got {library!r}")
    info = {"device": "gpu", "gpu": "unknown", "driver": "unknown", "cuda_runtime": "unknown", "memory": "unknown"}
    smi = nvidia_smi()
    info.update(smi)
    try:
        info.update(_library_gpu(library))
    except Exception as exc:  # a library that cannot describe its GPU must not lose the benchmark's record
        info["error"] = f"{type(exc).__name__}: {exc}"[:300]
    info["library"] = library
    info.update(_dist_versions(GPU_LIBRARIES[library]))
    return info


def device_summary(info: dict[str, str]) -> str:
    """One line for a :func:`gpu_info` (or CPU) record: ``NVIDIA H200 (driver 580.65, CUDA 13.0)``,
    ``cpu: <model>``."""
    if not isinstance(info, dict):
        raise TypeError(f"info must be a dict, got {type(info).__name__}")
    if info.get("device") != "gpu":
        return f"{info.get('device', 'cpu')}: {info.get('cpu', 'unknown CPU')}"
    return (f"gpu: {info.get('gpu', 'unknown')} (driver {info.get('driver', 'unknown')}, CUDA runtime "
            f"{info.get('cuda_runtime', 'unknown')})")
