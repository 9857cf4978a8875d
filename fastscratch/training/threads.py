"""The thread policy of training: how many threads an epoch uses, and how.

``fit(threads=...)`` chooses (:func:`check_threads`), and nothing else does -- no module-level
switch: ``None`` (the default) gives an epoch the backend's BLAS thread limit as it stands
(``OPENBLAS_NUM_THREADS``, ``threadpoolctl.threadpool_limits``, a Dask worker's setting), at most
the cores this process may use (:func:`thread_budget`); a number ``n`` gives it ``n`` threads in
place of that; ``"measure"`` times one BLAS thread against all at the start of ``fit``
(:func:`choose_blas_threads`).  The backend's rules (``blas_threads_for``, ``epoch_threads`` in
its capabilities) decide what an epoch does with its threads; :func:`blas_threads` applies a
count around a block.
"""

from __future__ import annotations

import contextlib
import os
import time
from types import ModuleType
from typing import Any

import numpy as np

from .. import _validation as check
from ..kernels.contract import capabilities

_THREADPOOLS: dict = {}  # a threadpoolctl controller per backend, made once its BLAS is loaded


def _threadpools(kernels: ModuleType | None = None):
    """threadpoolctl's controller of the loaded thread pools, or ``None`` without threadpoolctl.

    Made once per backend (inspecting the loaded libraries costs ~ms), after the
    backend's module -- and with it its BLAS (SciPy's, for Numba) -- is imported."""
    key = getattr(kernels, "NAME", "")
    if key not in _THREADPOOLS:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return None
        _THREADPOOLS[key] = ThreadpoolController().select(user_api="blas")
    return _THREADPOOLS[key]


@contextlib.contextmanager
def blas_threads(threads: int | None, kernels: ModuleType | None = None):
    """Run the block with BLAS limited to ``threads`` (``None``, or no threadpoolctl: unchanged).

    Sets and restores each library's count directly rather than through
    ``threadpool_limits``, which builds new objects on every call: this runs once per
    ``run_epoch`` and the step loop's allocation test sees it.
    """
    pools = _threadpools(kernels) if threads is not None else None
    if pools is None:
        yield
        return
    libraries = pools.lib_controllers
    before = [lib.num_threads for lib in libraries]
    for lib in libraries:
        lib.set_num_threads(threads)
    try:
        yield
    finally:
        for lib, count in zip(libraries, before):
            lib.set_num_threads(count)


def check_threads(threads: Any) -> int | str | None:
    """``fit``'s ``threads``, checked: ``None``, a positive int, or ``"measure"``.

    ``None``: the backend's rules with :func:`thread_budget` threads.  An int: that many
    threads in place of the budget, for the BLAS calls of the kernel-by-kernel path and for a
    whole-epoch function (its parts, or BLAS threads for a tall pass in one part); the rules
    still decide how to use them.  ``"measure"``: time one BLAS thread against all when ``fit``
    starts (:func:`choose_blas_threads`); off by default because OpenBLAS rounds differently
    on different thread counts, so a choice that follows the machine's load would make two
    runs with the same seed differ, and fastscratch promises bit-identical reruns.
    """
    if threads is None or (isinstance(threads, str) and threads == "measure"):
        return threads
    if isinstance(threads, str):
        raise ValueError(f"threads must be None, a positive integer or 'measure', got {threads!r}")
    return check.check_positive_int("threads", threads)


def usable_cores() -> int:
    """The processors this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def thread_budget(kernels: ModuleType | None = None) -> int:
    """The threads an epoch may use: the backend's BLAS thread limit as it stands (it shows
    ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``, a ``threadpoolctl.threadpool_limits`` around
    the call, a Dask worker's one-thread setting), at most :func:`usable_cores`; the usable
    cores without threadpoolctl."""
    cores = usable_cores()
    pools = _threadpools(kernels)
    if pools is None or not pools.lib_controllers:
        return cores
    return max(1, min(cores, max(lib.num_threads for lib in pools.lib_controllers)))


def default_epoch_threads(kernels: ModuleType, sizes: list[int], rows: int,
                          threads: int | None = None) -> tuple[int, int | None]:
    """``(parts, blas_threads)`` of a backend's whole-epoch function on steps of ``rows`` rows:
    the parts (one thread each) it cuts each step into and the BLAS threads meanwhile, by the
    backend's ``epoch_threads`` rule given ``threads`` (``fit(threads=n)``) or, ``None``,
    :func:`thread_budget` threads; ``(1, None)`` for backends without one.  The result depends
    on these numbers, not on how many of the threads actually got a core, so the same seed and
    the same threads give the same bits."""
    rule = capabilities(kernels).epoch_threads
    if rule is None:
        return 1, None
    parts, blas = rule(sizes, rows, threads if threads is not None else thread_budget(kernels))
    return parts, (threads if threads is not None and blas is None else blas)


def describe_threads(path: str | None, parts: int, epoch_blas_threads: int | None,
                     blas_threads: int | None) -> str:
    """How an epoch used threads, in words, for reports: ``path`` is ``Workspace.last_path``,
    the rest the workspace's ``parts``, ``epoch_blas_threads`` and ``blas_threads``."""
    def blas(threads: int | None) -> str:
        return "all BLAS threads" if threads is None else check.plural(threads, "BLAS thread")

    if path == "fused":
        if parts > 1:
            return f"{parts} threads (each step in {parts} parts, 1 BLAS thread each)"
        return "1 thread" if epoch_blas_threads == 1 else f"1 part on {blas(epoch_blas_threads)}"
    return f"{blas(blas_threads)} (kernel by kernel)"


def default_blas_threads(kernels: ModuleType, batch: int, threads: int | None = None) -> int | None:
    """The BLAS threads of the kernel-by-kernel path on ``batch`` rows: ``threads`` when given
    (``fit(threads=n)``), else the backend's ``blas_threads_for`` rule (``None``: as configured)."""
    if threads is not None:
        return threads
    advice = capabilities(kernels).blas_threads_for
    return advice(batch) if advice is not None else None


CALIBRATION_ROWS = 4096  # full-batch GEMMs are timed on this many rows: same shape class, bounded time
CALIBRATION_TRIAL = 0.02  # seconds per timed trial; CALIBRATION_ROUNDS trials per thread count
CALIBRATION_ROUNDS = 4
MULTITHREAD_MARGIN = 1.15  # all threads must be this much faster than one to be chosen
_CHOICES: dict = {}  # (backend, sizes, batch, dtype) -> (threads, when chosen)
CHOICE_LIFETIME = 30.0  # seconds a measured choice is reused (a shared machine's load changes)


def choose_blas_threads(kernels: ModuleType, sizes: list[int], batch: int, dtype: np.dtype) -> int | None:
    """BLAS threads for training ``sizes`` at ``batch`` rows: 1, or ``None`` (all configured).

    The backend may decide outright (``blas_threads_for``: small batches always run on one
    thread, whose GEMMs are too small to split).  Otherwise the step's matrix products
    are timed here on one thread and on all, four trials of ~20 ms each, alternating
    (~0.2 s in all), and all threads are chosen only when clearly faster.  Measuring rather than fixing a threshold matters on shared machines:
    when other processes hold the cores, a multi-threaded BLAS waits for threads that
    are not running and a 128-row GEMM gets tens of times slower than on one thread;
    on an idle 2-core machine two threads are ~1.2-1.4x faster from 128 rows on.
    Without threadpoolctl nothing is measured or limited.
    """
    advice = capabilities(kernels).blas_threads_for
    fixed = advice(batch) if advice is not None else None
    if fixed is not None:
        return fixed
    pools = _threadpools(kernels)
    if pools is None:
        return None
    most = max((lib.num_threads for lib in pools.lib_controllers), default=1)
    if most <= 1:
        return None
    key = (kernels.NAME, tuple(sizes), batch, np.dtype(dtype).name)
    now = time.monotonic()
    if key in _CHOICES and now - _CHOICES[key][1] < CHOICE_LIFETIME:
        return _CHOICES[key][0]

    rows = min(batch, CALIBRATION_ROWS)
    rng = np.random.default_rng(0)
    acts = [rng.random((rows, n)).astype(dtype) for n in sizes]
    weights = [rng.random((a, b)).astype(dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    grads = [np.empty_like(W) for W in weights]

    def step_products() -> None:  # the eight (for 3 layers) GEMMs of one training step
        for layer, W in enumerate(weights):
            kernels.matmul(acts[layer], W, acts[layer + 1])
        for layer in range(len(weights) - 1, -1, -1):
            kernels.matmul(acts[layer].T, acts[layer + 1], grads[layer])
            if layer > 0:
                kernels.matmul(acts[layer + 1], weights[layer].T, acts[layer])

    step_products()
    t0 = time.perf_counter()
    step_products()
    repeats = max(1, min(500, int(CALIBRATION_TRIAL / max(time.perf_counter() - t0, 1e-7))))
    total = {1: 0.0, most: 0.0}
    for _ in range(CALIBRATION_ROUNDS):  # alternating, so a change in load hits both alike
        for threads in (1, most):
            with blas_threads(threads, kernels):
                t0 = time.perf_counter()
                for _ in range(repeats):
                    step_products()
                total[threads] += time.perf_counter() - t0
    # Totals, not minima: under load the multi-threaded GEMMs are fast in some short
    # windows and stall for whole scheduler slices in others, and the epoch sees the
    # mix.  More threads must also win clearly, since a wrong choice costs far more in
    # that direction (x10 and worse) than in the other (at most x2 on 2 cores).
    choice = None if total[most] * MULTITHREAD_MARGIN < total[1] else 1
    _CHOICES[key] = (choice, now)
    return choice
