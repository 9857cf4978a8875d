"""asv: training time, ratios measured in one process, accuracy and memory of fastscratch.

What a history over commits should show is how *fastscratch* changes, on a machine whose speed
drifts 20-40% from hour to hour.  So every benchmark times fastscratch (both backends; the
peers only when asked, see below), and beside the absolute seconds the ``Ratios`` classes track
quotients measured inside one benchmark process, rounds interleaved: the fastscratch epoch over
the GEMM floor of its step's shapes (NumPy's BLAS timed in the same process) and over JAX's
jitted epoch.  Machine drift mostly cancels in a quotient; a slower commit does not.

asv runs each parameter combination in a process of its own (``rounds`` of them for ``time_``
benchmarks).  Each process here loads the images once (``setup_cache``, shared by every class),
builds its trainer once and trains one untimed warm-up epoch (JIT compilation and graph tracing
stay out of the samples), then times samples of one epoch each: asv re-runs ``setup`` before
every sample, so the trainer is kept per process (:func:`_trainer`) and ``setup`` after the
first is free.  Every benchmark has a ``timeout`` so one hung framework cannot hold the run.

The matrix, by ``$FASTSCRATCH_ASV_MATRIX``:

- ``default`` (unset): fastscratch-numba and fastscratch-numpy at batch 32, 128, 512 and full
  batch; the ratios for fastscratch-numba; accuracy and memory for fastscratch-numba.  About
  3 minutes for one commit on 2 cores (Fashion-MNIST; 2 min 43 s measured, README "asv").
- ``full``: every CPU framework of ``bench.DEVICE_FRAMEWORKS["cpu"]`` (JAX, tf.keras, PyTorch,
  torch.compile where installed; skipped with the reason where not) in every class, and both
  fastscratch backends in the ratios.

``asv run -b REGEX`` picks benchmarks, and parameter combinations too: the regex is matched
against ``name(param, ...)``, e.g. ``-b "time_epoch\\(.*numba.*128"``.

Only public API of long standing is used (``fastscratch.tools.bench``'s ``Workload``,
``make_trainer``, ``time_to_accuracy``, ``peak_rss``; ``fastscratch.datasets``), so older commits
can be measured by today's suite; the GEMM floor is timed here, with NumPy alone, so it is the
same instrument for every commit.  Times are stored as measured, ratios to 4 significant
figures; asv reports each with its spread.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from fastscratch import datasets
from fastscratch.tools import bench

MATRIX_VARIABLE = "FASTSCRATCH_ASV_MATRIX"
MATRIX = os.environ.get(MATRIX_VARIABLE, "default") or "default"
if MATRIX not in ("default", "full"):
    raise ValueError(f"{MATRIX_VARIABLE} must be 'default' or 'full', got {MATRIX!r}")
FULL = MATRIX == "full"

DATASET = bench.resolve_dataset("auto")
_CPU_FRAMEWORKS = getattr(bench, "DEVICE_FRAMEWORKS", {}).get(
    "cpu", ("fastscratch-numba", "fastscratch-numpy", "tf.keras", "torch", "torch-compile", "jax"))
FASTSCRATCH = ["fastscratch-numba", "fastscratch-numpy"]
EPOCH_FRAMEWORKS = list(_CPU_FRAMEWORKS) if FULL else FASTSCRATCH
RATIO_FRAMEWORKS = FASTSCRATCH if FULL else ["fastscratch-numba"]
ONE_FRAMEWORK = list(_CPU_FRAMEWORKS) if FULL else ["fastscratch-numba"]
BATCHES = [32, 128, 512, "full"]
MEMORY_BATCHES = [128, "full"] if FULL else [128]
#: interleaved (fastscratch, reference) pairs each ratio process measures: its samples
RATIO_ROUNDS = 7


def load_images(benchmark=None) -> tuple[np.ndarray, ...]:
    """``setup_cache`` of every class: the dataset's uint8 images and labels, loaded once per
    ``asv run`` (one function, so one cache: asv keys it by the function).  uint8 pickles four
    times smaller than the float features."""
    return tuple(datasets.load_dataset(DATASET))


def _features(cache, dtype: str = "float32") -> tuple[np.ndarray, ...]:
    X_train, y_train, X_test, y_test = cache
    return datasets.to_features(X_train, dtype), y_train, datasets.to_features(X_test, dtype), y_test


def _workload(framework: str, batch_size) -> bench.Workload:
    return bench.Workload(framework=framework, batch_size=None if batch_size == "full" else batch_size,
                          dataset=DATASET)


_BUILT: dict = {}  # (framework, batch size) -> trainer, per benchmark process


def _trainer(cache, framework: str, batch_size, warm: bool = True):
    """This process's trainer for ``framework`` at ``batch_size``, built once (and warmed up by one
    untimed epoch) however often asv calls ``setup``; ``NotImplementedError`` (asv: skipped)
    when the framework cannot run here."""
    key = (framework, batch_size)
    if key not in _BUILT:
        try:
            trainer = bench.make_trainer(_workload(framework, batch_size), _features(cache))
        except bench.Skipped as exc:
            raise NotImplementedError(f"{framework}: {exc}") from None
        if warm:
            trainer.epoch()
        _BUILT[key] = trainer
    return _BUILT[key]


def _samples(values: list[float], digits: int = 4) -> dict:
    """A ``track_`` value with its spread: asv stores the median of ``values`` and their
    quartiles (the record a ``time_`` benchmark's samples make: ``{"samples": [...], "number":
    1}``), so graphs show error bars and ``asv compare`` / ``asv continuous`` test a change for
    significance.  Each value to ``digits`` significant figures, all a ratio can tell."""
    return {"samples": [float(f"{v:.{digits}g}") for v in values], "number": 1}


# ------------------------------------------------------------------ the GEMM floor
def step_products(sizes, batch: int) -> list[tuple[int, int, int, bool]]:
    """The matrix products of one training step of a dense network ``sizes`` on ``batch`` rows,
    as ``(m, k, n, transposed_a)``: the forward product of every layer ``(batch x n_in) x (n_in x
    n_out)``, its weight gradient ``(n_in x batch) x (batch x n_out)`` (``a_prev.T @ d``), and the
    input gradient ``(batch x n_out) x (n_out x n_in)`` of every layer but the first -- eight for
    784-128-64-10."""
    layers = list(zip(sizes[:-1], sizes[1:]))
    forward = [(batch, n_in, n_out, False) for n_in, n_out in layers]
    weights = [(n_in, batch, n_out, True) for n_in, n_out in layers]
    inputs = [(batch, n_out, n_in, False) for n_in, n_out in layers[1:]]
    return forward + weights + inputs


class GemmFloor:
    """The epoch's matrix products alone: every product of :func:`step_products` for each batch
    of an epoch of ``n_rows`` rows (the ragged last batch included), NumPy ``matmul(out=)``,
    operands allocated once.  What an epoch cannot beat on this machine run the way it runs;
    everything else (gather, activations, softmax, updates, Python) is on top.

    Run as the epoch runs (:func:`epoch_threads`): ``parts > 1``, each batch's rows cut into that
    many shares, one Python thread per share on one BLAS thread (NumPy lets go of the GIL in
    ``matmul``), as the Numba epoch's parts run; else on ``blas_threads`` BLAS threads (``None``:
    as configured).  Both sides of the quotient then feel a busy core alike: OpenBLAS's own two
    threads slow 4-5x when the other core is taken, the Numba epoch's parts about 2x."""

    def __init__(self, sizes, batch: int, n_rows: int, dtype: str = "float32", parts: int = 1,
                 blas_threads: int | None = None) -> None:
        rng = np.random.default_rng(0)
        self.parts, self.blas_threads = parts, blas_threads
        full, ragged = divmod(n_rows, batch)
        passes = [(batch, full)] + ([(ragged, 1)] if ragged else [])
        # per part: for each pass shape, its (a, b, out) triples and how many batches run them
        self.calls: list[list] = [[] for _ in range(parts)]
        for rows, count in passes:
            for part, share in enumerate(len(chunk) for chunk in np.array_split(np.arange(rows), parts)):
                triples = []
                for m, k, n, transposed in step_products(sizes, share) if share else []:
                    a = rng.standard_normal((k, m) if transposed else (m, k)).astype(dtype)
                    triples.append((a.T if transposed else a, rng.standard_normal((k, n)).astype(dtype),
                                    np.empty((m, n), dtype=dtype)))
                self.calls[part].append((triples, count))
        self.seconds()  # BLAS's first call (thread start-up, buffers) stays out of the samples

    def seconds(self) -> float:
        """Wall seconds of one epoch's worth of the products."""
        from threadpoolctl import threadpool_limits

        if self.parts == 1:
            if self.blas_threads is None:
                return self._products(self.calls[0])
            with threadpool_limits(limits=self.blas_threads, user_api="blas"):
                return self._products(self.calls[0])
        with threadpool_limits(limits=1, user_api="blas"):
            workers = [threading.Thread(target=self._products, args=(calls,)) for calls in self.calls]
            start = time.perf_counter()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            return time.perf_counter() - start

    @staticmethod
    def _products(calls) -> float:
        start = time.perf_counter()
        for triples, count in calls:
            for _ in range(count):
                for a, b, out in triples:
                    np.matmul(a, b, out=out)
        return time.perf_counter() - start


def epoch_threads(trainer) -> tuple[int, int | None]:
    """How the trainer's last fastscratch epoch used threads, as ``(parts, blas_threads)``: the
    Numba epoch in ``parts`` > 1 parts (one thread each, one BLAS thread each), or in one part /
    the NumPy backend's kernel by kernel on ``blas_threads`` (``None``: as configured); from the
    network's telemetry, ``(1, None)`` where a commit does not report it."""
    net = getattr(trainer, "net", None)
    path = getattr(net, "last_epoch_path", None)
    if path == "fused":
        parts = getattr(net, "epoch_parts", 1) or 1
        return (parts, 1) if parts > 1 else (1, getattr(net, "epoch_blas_threads", None))
    if path == "stepwise":
        return 1, getattr(net, "blas_threads", None)
    return 1, None


def interleaved_ratios(measure, reference, rounds: int = RATIO_ROUNDS) -> list[float]:
    """``rounds`` quotients ``measure() / reference()``, the order swapped every other round (A B,
    B A, ...) so that a change in the machine's speed hits both alike."""
    ratios = []
    for k in range(rounds):
        if k % 2 == 0:
            a = measure()
            b = reference()
        else:
            b = reference()
            a = measure()
        ratios.append(a / b)
    return ratios


# ------------------------------------------------------------------------ benchmarks
class Epoch:
    """One training epoch, 784-128-64-10, float32, SGD lr 0.1: the wall time of the trainer's
    ``epoch()`` call (for fastscratch, ``fit(epochs=1)``: its input checks included)."""

    params = ([DATASET], EPOCH_FRAMEWORKS, BATCHES)
    param_names = ["dataset", "framework", "batch_size"]
    setup_cache = load_images
    timeout = 300
    number = 1
    repeat = (3, 5, 8.0)  # per process: at least 3 samples, at most 5, or what fits in 8 s
    rounds = 2
    warmup_time = 0  # the warm-up epoch is in setup

    def setup(self, cache, dataset, framework, batch_size):
        self.trainer = _trainer(cache, framework, batch_size)

    def time_epoch(self, cache, dataset, framework, batch_size):
        self.trainer.epoch()


class Ratios:
    """The fastscratch epoch over the GEMM floor of its step's shapes (:class:`GemmFloor`) run on
    threads as the epoch ran (:func:`epoch_threads`), timed in the same process, rounds
    interleaved: 1.0 would be an epoch that is nothing but its matrix products.  The epoch is
    fastscratch's own figure (``history.seconds``: the epoch loop, not ``fit``'s checks).  Unit:
    a quotient, lower is faster."""

    params = ([DATASET], RATIO_FRAMEWORKS, BATCHES)
    param_names = ["dataset", "framework", "batch_size"]
    setup_cache = load_images
    timeout = 300

    def setup(self, cache, dataset, framework, batch_size):
        self.trainer = _trainer(cache, framework, batch_size)
        parts, blas_threads = epoch_threads(self.trainer)
        self.floor = GemmFloor(self.trainer.sizes, self.trainer.batch_size, len(self.trainer.X_train), parts=parts,
                               blas_threads=blas_threads)

    def track_epoch_over_gemm_floor(self, cache, dataset, framework, batch_size):
        return _samples(interleaved_ratios(self.trainer.epoch, self.floor.seconds))

    track_epoch_over_gemm_floor.unit = "epoch / GEMM floor"


class RatiosToJax:
    """The fastscratch epoch over JAX's jitted epoch (``jax.jit`` of the whole epoch, compiled in
    ``setup``), the same workload and start, timed in the same process, rounds interleaved; each
    framework's epoch as it times its own loop.  Below 1: fastscratch is faster.  Skipped where
    JAX is not installed."""

    params = ([DATASET], RATIO_FRAMEWORKS, BATCHES)
    param_names = ["dataset", "framework", "batch_size"]
    setup_cache = load_images
    timeout = 300

    def setup(self, cache, dataset, framework, batch_size):
        self.jax = _trainer(cache, "jax", batch_size)  # first: skip before building anything else
        self.trainer = _trainer(cache, framework, batch_size)

    def track_epoch_over_jax(self, cache, dataset, framework, batch_size):
        return _samples(interleaved_ratios(self.trainer.epoch, self.jax.epoch))

    track_epoch_over_jax.unit = "fastscratch / JAX"


class Accuracy:
    """Test accuracy after a fixed number of epochs (deterministic: same seed, same threads, same
    bits), and training seconds to a target accuracy (88% on Fashion-MNIST, 92% on the MNIST
    sample), SGD lr 0.1, batch 128, from the same start for every framework."""

    params = ([DATASET], ONE_FRAMEWORK)
    param_names = ["dataset", "framework"]
    setup_cache = load_images
    timeout = 600
    EPOCHS = 3 if DATASET == "fashion-mnist" else 10

    def setup(self, cache, dataset, framework):
        _trainer(cache, framework, 128, warm=False)  # skip early if the framework is missing

    def track_test_accuracy(self, cache, dataset, framework):
        trainer = bench.make_trainer(_workload(framework, 128), _features(cache))
        for _ in range(self.EPOCHS):
            trainer.epoch()
        return round(100.0 * trainer.accuracy(), 2)

    track_test_accuracy.unit = "%"

    def track_seconds_to_target(self, cache, dataset, framework):
        """Training seconds until the target test accuracy (compilation apart); NaN when not
        reached in 30 epochs.  The number of epochs it takes is fixed by the seed, so the samples
        are that number times each of the run's epoch times: their median is the time to target
        with one slow epoch's luck taken out, their quartiles its spread."""
        result = bench.time_to_accuracy(_workload(framework, 128), max_epochs=30, data=_features(cache))
        if result.seconds_to_target is None:
            return float("nan")
        epochs = result.epoch_seconds[:result.epochs_to_target]
        return _samples([result.epochs_to_target * seconds for seconds in epochs])

    track_seconds_to_target.unit = "seconds"


class Memory:
    """Peak RSS (MB = 10**6 bytes) of the whole job -- start-up, imports, loading the data as
    features, building the model, one epoch, the test accuracy -- in a fresh process
    (:func:`fastscratch.tools.bench.peak_rss`).

    Not asv's ``peakmem_``: that is the high-water mark of asv's own benchmark process, which
    holds asv, this module and whatever ``setup`` loaded; a fresh child read from ``VmHWM``
    counts the job and nothing else.
    """

    params = ([DATASET], ONE_FRAMEWORK, MEMORY_BATCHES)
    param_names = ["dataset", "framework", "batch_size"]
    timeout = 600

    def setup(self, dataset, framework, batch_size):
        self.result = bench.peak_rss(_workload(framework, batch_size), epochs=1)
        if self.result.status.startswith("skipped"):
            raise NotImplementedError(f"{framework}: {self.result.status}")
        if not self.result.ok:
            raise RuntimeError(self.result.status)

    def track_peak_rss_mb(self, dataset, framework, batch_size):
        return round(self.result.peak_rss_mb, 1)

    track_peak_rss_mb.unit = "MB"
