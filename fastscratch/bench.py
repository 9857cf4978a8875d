"""Benchmark workloads: one definition behind ``fastscratch bench``, the asv suite and pytest-benchmark.

A :class:`Workload` is dataset x architecture x framework x batch size x dtype x
optimizer.  :func:`make_trainer` builds a trainer for one (fastscratch on each of
its backends, tf.keras, PyTorch), whose ``epoch()`` trains one epoch and returns
the seconds that epoch took *as the framework measures its own epoch*: the
training loop only, no input validation, no evaluation.  :func:`run` warms up,
times ``epochs`` epochs and returns a :class:`Result` with the median and range,
samples/s, GFLOP/s from the FLOP formula, accuracy, peak memory, versions, BLAS
and thread counts.  :func:`time_to_accuracy` trains until a target test accuracy.
:func:`peak_rss` runs the whole job (imports, data, model, epochs, accuracy) in a fresh
process and returns its peak resident memory beside issue 8's bound (:class:`MemoryResult`).

Frameworks that are not installed give a Result with ``status="skipped: ..."``,
never an exception, so every front end runs with whatever is installed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import datasets

FRAMEWORKS = ("fastscratch-numba", "fastscratch-numpy", "tf.keras", "torch")
DEFAULT_TARGETS = {"fashion-mnist": 0.88, "mnist-sample": 0.92}
#: PyTorch's CPU build (a plain `pip install torch` on Linux fetches the multi-GB CUDA build)
TORCH_CPU_INSTALL = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


# ---------------------------------------------------------------------- workloads
@dataclasses.dataclass(frozen=True)
class Workload:
    """What to train.  ``dataset="auto"``: Fashion-MNIST when found, else the embedded MNIST sample.
    ``batch_size=None``: full batch."""

    framework: str = "fastscratch-numpy"
    batch_size: int | None = 128
    dataset: str = "auto"
    hidden: tuple[int, ...] = (128, 64)
    activation: str = "relu"
    dtype: str = "float32"
    optimizer: str = "sgd"
    lr: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.framework not in FRAMEWORKS:
            raise ValueError(f"unknown framework {self.framework!r}; expected one of {', '.join(FRAMEWORKS)}")
        if self.optimizer not in ("sgd", "momentum", "adam"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected sgd, momentum or adam")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be positive or None (full batch), got {self.batch_size}")

    @property
    def label(self) -> str:
        return f"{self.framework} b{self.batch_size or 'full'}"


@dataclasses.dataclass
class Result:
    """One workload's measurements.  Times in seconds; ``gflops`` from :func:`flops_per_sample`."""

    workload: Workload
    dataset: str = ""
    status: str = "ok"
    n_train: int = 0
    epoch_seconds: list[float] = dataclasses.field(default_factory=list)
    warmup_seconds: float = math.nan  # the first epoch: includes JIT compilation / graph tracing
    compile_seconds: float = math.nan  # fastscratch-numba: compiling (or loading) its kernels, apart from epochs
    median_seconds: float = math.nan
    min_seconds: float = math.nan
    max_seconds: float = math.nan
    samples_per_second: float = math.nan
    gflops: float = math.nan
    test_accuracy: float = math.nan
    seconds_to_target: float | None = None
    target_accuracy: float | None = None
    epochs_to_target: int | None = None
    accuracy_curve: list[tuple[float, float]] = dataclasses.field(default_factory=list)  # (training s, test acc)
    device: str = "cpu"
    threads: str = ""
    versions: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["workload"] = dataclasses.asdict(self.workload)
        return record


def flops_per_sample(sizes: Sequence[int]) -> int:
    """Training FLOPs per sample for layer sizes ``[n0, ..., nL]`` (DESIGN.md section 5):
    forward ``2ab`` per layer, weight gradients the same, input gradients for every layer
    but the first.  784-128-64-10 gives 454,400."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    forward = sum(2 * a * b for a, b in pairs)
    return 2 * forward + sum(2 * a * b for a, b in pairs[1:])


# --------------------------------------------------------------------------- data
_DATA_CACHE: dict[tuple[str, str], tuple[str, tuple[np.ndarray, ...]]] = {}


def resolve_dataset(name: str = "auto") -> str:
    """``"auto"``: ``$FASTSCRATCH_BENCH_DATASET`` if set (smoke runs use ``mnist-sample``),
    else ``"fashion-mnist"`` when its files are found, else ``"mnist-sample"``."""
    if name != "auto":
        return name
    if os.environ.get("FASTSCRATCH_BENCH_DATASET"):
        return os.environ["FASTSCRATCH_BENCH_DATASET"]
    return "fashion-mnist" if datasets.locate("fashion-mnist") else "mnist-sample"


def load_data(name: str = "auto", dtype: str = "float32") -> tuple[str, tuple[np.ndarray, ...]]:
    """``(dataset name, (X_train, y_train, X_test, y_test))`` as features; cached per process.
    The images are converted as they are read (``load_dataset(features=...)``), so the uint8
    images are never held beside the features."""
    name = resolve_dataset(name)
    key = (name, dtype)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = (name, tuple(datasets.load_dataset(name, features=dtype)))
    return _DATA_CACHE[key]


# ----------------------------------------------------------------------- trainers
class Skipped(Exception):
    """The workload cannot run here (framework not installed); the message says why."""


class Trainer:
    """Trains one workload one epoch at a time.  ``epoch()`` returns that epoch's seconds."""

    device = "cpu"
    compile_seconds = math.nan  # set by trainers that compile apart from their epochs
    threads_note = ""  # threads the trainer itself chose, for the record

    def __init__(self, workload: Workload, data: tuple[np.ndarray, ...]) -> None:
        self.workload = workload
        self.X_train, self.y_train, self.X_test, self.y_test = data
        self.sizes = [self.X_train.shape[1], *workload.hidden, int(self.y_train.max()) + 1]
        self.batch_size = workload.batch_size or len(self.X_train)

    def epoch(self) -> float:
        raise NotImplementedError

    def accuracy(self) -> float:
        raise NotImplementedError


class FastscratchTrainer(Trainer):
    def __init__(self, workload: Workload, data: tuple[np.ndarray, ...]) -> None:
        super().__init__(workload, data)
        from .backends import load_backend
        from .network import NeuralNetwork

        backend = workload.framework.split("-", 1)[1]
        try:
            load_backend(backend)
        except ImportError as exc:
            raise Skipped(f"not installed ({exc})") from None
        self.net = NeuralNetwork(self.sizes, activation=workload.activation, dtype=workload.dtype,
                                 seed=workload.seed, backend=backend)

    def epoch(self) -> float:
        w = self.workload
        self.net.fit(self.X_train, self.y_train, lr=w.lr, epochs=1, batch_size=w.batch_size,
                     optimizer=w.optimizer, verbose=False)
        if math.isnan(self.compile_seconds):  # the first fit compiles (or loads the cache); later ones do not
            self.compile_seconds = self.net.compile_seconds
        self.threads_note = f"fastscratch BLAS threads during epochs: {self.net.blas_threads or 'all'}"
        return self.net.history.seconds[-1]  # run_epoch only: not fit's input checks or set-up

    def accuracy(self) -> float:
        return self.net.accuracy(self.X_test, self.y_test)


def _quiet_tensorflow():
    from .reference.keras import import_tensorflow  # quiet start-up, one summary warning at most

    try:
        return import_tensorflow()
    except ImportError:
        raise Skipped("not installed (`pip install 'fastscratch[keras]'`)") from None


class KerasTrainer(Trainer):
    def __init__(self, workload: Workload, data: tuple[np.ndarray, ...]) -> None:
        super().__init__(workload, data)
        tf = _quiet_tensorflow()
        keras = tf.keras
        self.device = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
        tf.keras.utils.set_random_seed(workload.seed)
        layers = [keras.Input((self.sizes[0],), dtype=workload.dtype)]
        layers += [keras.layers.Dense(n, activation=workload.activation, dtype=workload.dtype)
                   for n in self.sizes[1:-1]]
        layers.append(keras.layers.Dense(self.sizes[-1], activation="softmax", dtype=workload.dtype))
        self.model = keras.Sequential(layers)
        optimizer = {"sgd": lambda: keras.optimizers.SGD(workload.lr),
                     "momentum": lambda: keras.optimizers.SGD(workload.lr, momentum=0.9),
                     "adam": lambda: keras.optimizers.Adam(workload.lr)}[workload.optimizer]()
        self.model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        times: list[float] = []
        self._times = times

        class EpochTimer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.t0)

        self._timer = EpochTimer()

    def epoch(self) -> float:
        self.model.fit(self.X_train, self.y_train, batch_size=self.batch_size, epochs=1, shuffle=True,
                       verbose=0, callbacks=[self._timer])
        return self._times[-1]

    def accuracy(self) -> float:
        proba = self.model.predict(self.X_test, batch_size=8192, verbose=0)
        return float((proba.argmax(axis=1) == self.y_test).mean())


class TorchTrainer(Trainer):
    def __init__(self, workload: Workload, data: tuple[np.ndarray, ...]) -> None:
        super().__init__(workload, data)
        try:
            import torch
        except ImportError:
            raise Skipped(f"not installed (`{TORCH_CPU_INSTALL}`)") from None
        self.torch = torch
        torch.manual_seed(workload.seed)
        dtype = getattr(torch, workload.dtype)
        activation = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh}[workload.activation]
        layers: list[Any] = []
        for a, b in zip(self.sizes[:-2], self.sizes[1:-1]):
            layers += [torch.nn.Linear(a, b, dtype=dtype), activation()]
        layers.append(torch.nn.Linear(self.sizes[-2], self.sizes[-1], dtype=dtype))
        self.model = torch.nn.Sequential(*layers)
        params = self.model.parameters()
        self.optimizer = {"sgd": lambda: torch.optim.SGD(params, lr=workload.lr),
                          "momentum": lambda: torch.optim.SGD(params, lr=workload.lr, momentum=0.9),
                          "adam": lambda: torch.optim.Adam(params, lr=workload.lr, eps=1e-7)}[workload.optimizer]()
        self.loss = torch.nn.CrossEntropyLoss()  # softmax + cross-entropy on the logits, as fastscratch
        self.X = torch.from_numpy(self.X_train)
        self.y = torch.from_numpy(self.y_train)
        self.generator = torch.Generator().manual_seed(workload.seed)

    def epoch(self) -> float:
        torch = self.torch
        started = time.perf_counter()
        order = torch.randperm(len(self.X), generator=self.generator)
        for start in range(0, len(self.X), self.batch_size):
            idx = order[start:start + self.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.model(self.X[idx]), self.y[idx])
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - started

    def accuracy(self) -> float:
        with self.torch.no_grad():
            logits = self.model(self.torch.from_numpy(self.X_test))
        return float((logits.argmax(dim=1).numpy() == self.y_test).mean())


def make_trainer(workload: Workload, data: tuple[np.ndarray, ...] | None = None) -> Trainer:
    """A trainer for ``workload``; raises :class:`Skipped` if its framework is not installed."""
    if data is None:
        data = load_data(workload.dataset, workload.dtype)[1]
    if workload.framework.startswith("fastscratch-"):
        return FastscratchTrainer(workload, data)
    if workload.framework == "tf.keras":
        return KerasTrainer(workload, data)
    return TorchTrainer(workload, data)


# ------------------------------------------------------------------------- runs
def thread_summary() -> str:
    """BLAS library and threads, plus the framework thread pools that are loaded."""
    from ._system import blas_summary

    parts = [blas_summary()]
    if "torch" in sys.modules:
        parts.append(f"torch {sys.modules['torch'].get_num_threads()} threads")
    return "; ".join(parts)


def _start(workload: Workload, data: tuple[np.ndarray, ...] | None) -> tuple[Result, Trainer | None]:
    """The Result to fill and the trainer; no trainer (and a "skipped" status) when the
    framework is not installed."""
    from ._system import versions

    name, loaded = (resolve_dataset(workload.dataset), data) if data is not None else \
        load_data(workload.dataset, workload.dtype)
    result = Result(workload, dataset=name, n_train=len(loaded[0]), versions=versions())
    try:
        trainer = make_trainer(workload, loaded)
    except Skipped as exc:
        result.status = f"skipped: {exc}"
        return result, None
    result.device = trainer.device
    return result, trainer


def run(workload: Workload, epochs: int = 3, warmup: int = 1, data: tuple[np.ndarray, ...] | None = None,
        on_epoch: Callable[[int, float], None] | None = None) -> Result:
    """Train ``warmup`` untimed then ``epochs`` timed epochs; return the :class:`Result`."""
    result, trainer = _start(workload, data)
    if trainer is None:
        return result
    warm = [trainer.epoch() for _ in range(warmup)]
    result.warmup_seconds = warm[0] if warm else math.nan
    for i in range(epochs):
        result.epoch_seconds.append(trainer.epoch())
        if on_epoch is not None:
            on_epoch(i + 1, result.epoch_seconds[-1])
    _summarise(result, trainer)
    result.test_accuracy = trainer.accuracy()
    result.threads = "; ".join(filter(None, [thread_summary(), trainer.threads_note]))
    result.compile_seconds = trainer.compile_seconds
    return result


def _summarise(result: Result, trainer: Trainer) -> None:
    times = result.epoch_seconds
    if not times:
        return
    result.median_seconds = statistics.median(times)
    result.min_seconds, result.max_seconds = min(times), max(times)
    result.samples_per_second = result.n_train / result.median_seconds
    result.gflops = flops_per_sample(trainer.sizes) * result.samples_per_second / 1e9


def time_to_accuracy(workload: Workload, target: float | None = None, max_epochs: int = 30,
                     data: tuple[np.ndarray, ...] | None = None) -> Result:
    """Train until the test accuracy reaches ``target`` (default: 0.88 on Fashion-MNIST, 0.92
    on the MNIST sample), checking after every epoch; the clock counts training epochs only.
    ``seconds_to_target`` is None when ``max_epochs`` pass first ("not reached")."""
    result, trainer = _start(workload, data)
    result.target_accuracy = target = DEFAULT_TARGETS.get(result.dataset, 0.9) if target is None else target
    if trainer is None:
        return result
    elapsed = 0.0
    for epoch in range(1, max_epochs + 1):
        seconds = trainer.epoch()
        result.epoch_seconds.append(seconds)
        elapsed += seconds
        result.test_accuracy = trainer.accuracy()
        result.accuracy_curve.append((elapsed, result.test_accuracy))
        if result.test_accuracy >= target:
            result.seconds_to_target, result.epochs_to_target = elapsed, epoch
            break
    _summarise(result, trainer)
    result.threads = thread_summary()
    return result


# ----------------------------------------------------------------------- memory
#: Issue 8's bound: training keeps peak RSS within the float32 dataset plus this many MB.
MEMORY_HEADROOM_MB = 150.0
_MB = 1e6  # memory figures are in MB = 10**6 bytes, the unit of the bound


@dataclasses.dataclass
class MemoryResult:
    """Peak resident memory of the whole job, measured in a fresh process (:func:`peak_rss`).

    MB are 10**6 bytes.  ``peak_rss_mb``: the process's high-water mark over the whole job --
    interpreter start, imports, loading the data as features, building the model, ``epochs``
    epochs, the test accuracy.  ``baseline_rss_mb``: the mark after the imports (Python, NumPy,
    fastscratch and the framework: for Numba its compiler, for tf.keras TensorFlow), before any
    data.  ``ready_rss_mb``: after that, once the framework can train: for ``fastscratch-numba``
    its jitted kernels loaded from Numba's cache (what its first ``fit`` does first: Numba's
    compiler context, ~50 MB that do not depend on the data); the same as ``baseline_rss_mb``
    for the others.  ``data_rss_mb``: the mark once the data is loaded and converted; ``trained_rss_mb``:
    once the epochs are trained, before the test accuracy is computed.  ``dataset_mb``:
    the bytes of the features the job holds, ``X_train`` and ``X_test`` (70,000 x 784 x 4 =
    219.5 MB for Fashion-MNIST in float32): the job must hold both (it trains on one and
    reports accuracy on the other), so the bound is that plus :data:`MEMORY_HEADROOM_MB`.
    ``source``: ``"VmHWM"`` (Linux) or ``"ru_maxrss"`` (elsewhere); ``ru_maxrss_mb`` is
    ``getrusage`` 's figure too, for the record (see :func:`_process_peak`).
    """

    workload: Workload
    epochs: int = 1
    dataset: str = ""
    status: str = "ok"
    n_train: int = 0
    peak_rss_mb: float = math.nan
    baseline_rss_mb: float = math.nan
    ready_rss_mb: float = math.nan
    data_rss_mb: float = math.nan
    trained_rss_mb: float = math.nan
    dataset_mb: float = math.nan
    ru_maxrss_mb: float = math.nan
    source: str = ""
    test_accuracy: float = math.nan
    seconds: float = math.nan
    threads: str = ""
    versions: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def bound_mb(self) -> float:
        return self.dataset_mb + MEMORY_HEADROOM_MB

    @property
    def within_bound(self) -> bool:
        return self.ok and self.peak_rss_mb <= self.bound_mb

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["workload"] = dataclasses.asdict(self.workload)
        record["bound_mb"], record["within_bound"] = self.bound_mb, self.within_bound
        return record


def _process_peak() -> tuple[float, float, str]:
    """``(peak RSS MB, ru_maxrss MB, source)`` of this process so far.

    On Linux the peak is ``VmHWM`` from ``/proc/self/status``, not ``ru_maxrss``: the kernel
    carries the *parent's* high-water mark across fork/vfork + exec into the child's
    ``ru_maxrss`` (a child started by a process holding 400 MB reports 407 MB where its own
    ``VmHWM`` is 11 MB), so a child started from a pytest or asv process would report their
    memory.  ``VmHWM`` belongs to the new address space alone.  Elsewhere ``ru_maxrss``
    (KiB on Linux, bytes on macOS), or NaN without the ``resource`` module (Windows).
    """
    try:
        import resource  # Unix only
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ru = maxrss / _MB if sys.platform == "darwin" else maxrss * 1024 / _MB
    except ImportError:
        ru = math.nan
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / _MB, ru, "VmHWM"
    except OSError:
        pass
    return ru, ru, "ru_maxrss"


def _import_framework(framework: str) -> None:
    """Import what ``framework`` trains with; :class:`Skipped` when it is not installed."""
    if framework.startswith("fastscratch-"):
        from .backends import load_backend

        try:
            load_backend(framework.split("-", 1)[1])
        except ImportError as exc:
            raise Skipped(f"not installed ({exc})") from None
    elif framework == "tf.keras":
        _quiet_tensorflow()
    else:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise Skipped(f"not installed (`{TORCH_CPU_INSTALL}`)") from None


def _memory_job(workload: Workload, epochs: int) -> dict[str, Any]:
    """The job :func:`peak_rss` measures, run in the child process; returns its record."""
    try:
        _import_framework(workload.framework)
    except Skipped as exc:
        return {"status": f"skipped: {exc}"}
    baseline, _, _ = _process_peak()
    if workload.framework == "fastscratch-numba":
        from .kernels import numba_kernels

        numba_kernels.warmup(len(workload.hidden) + 1, workload.dtype)
    ready, _, _ = _process_peak()
    started = time.perf_counter()
    name, data = load_data(workload.dataset, workload.dtype)
    data_peak, _, _ = _process_peak()
    trainer = make_trainer(workload, data)
    for _ in range(epochs):
        trainer.epoch()
    trained_peak, _, _ = _process_peak()
    accuracy = trainer.accuracy()
    seconds = time.perf_counter() - started
    peak, ru_maxrss, source = _process_peak()
    return {"status": "ok", "dataset": name, "n_train": len(data[0]), "peak_rss_mb": peak,
            "baseline_rss_mb": baseline, "ready_rss_mb": ready, "data_rss_mb": data_peak, "trained_rss_mb": trained_peak,
            "dataset_mb": (data[0].nbytes + data[2].nbytes) / _MB, "ru_maxrss_mb": ru_maxrss,
            "source": source, "test_accuracy": accuracy, "seconds": seconds,
            "threads": "; ".join(filter(None, [thread_summary(), trainer.threads_note]))}


def _memory_child(argv: Sequence[str]) -> int:
    """Entry point of the child process: ``argv = [workload JSON, epochs]``; prints one JSON line."""
    import json

    config = json.loads(argv[0])
    config["hidden"] = tuple(config["hidden"])
    record = _memory_job(Workload(**config), int(argv[1]))
    print(_MEMORY_MARK + json.dumps(record), flush=True)
    return 0


_MEMORY_MARK = "fastscratch-peak-rss: "
_CHILD_CODE = "import sys; from fastscratch.bench import _memory_child; sys.exit(_memory_child(sys.argv[1:]))"


def peak_rss(workload: Workload, epochs: int = 1, timeout: float | None = 1800) -> MemoryResult:
    """Peak RSS of the whole job a user runs for ``workload``, in a fresh child process.

    The child (``sys.executable``) imports fastscratch and the framework, loads the dataset
    as features (:func:`load_data`), builds the model, trains ``epochs`` epochs and computes
    the test accuracy, then reports its high-water mark (:class:`MemoryResult`).  A fresh
    process counts the imports and the data honestly and nothing of the caller's memory: the
    caller may hold datasets, TensorFlow, pytest or asv.  For ``fastscratch-numba`` another
    child first fills Numba's cache, so the measured job loads the compiled kernels as every
    run after the first does (compiling costs ~0.1 GB more, once per installation).

    A framework that is not installed gives ``status="skipped: ..."``; a child that fails,
    ``status="failed: ..."`` with the end of its stderr.
    """
    import json
    import subprocess

    result = MemoryResult(workload, epochs=epochs)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if workload.framework == "fastscratch-numba":
        warm = (f"import numpy; from fastscratch.kernels import numba_kernels as k; "
                f"k.warmup({len(workload.hidden) + 1}, numpy.{workload.dtype})")
        subprocess.run([sys.executable, "-c", warm], env=env, capture_output=True, timeout=timeout)
    config = json.dumps(dataclasses.asdict(workload))
    try:
        child = subprocess.run([sys.executable, "-c", _CHILD_CODE, config, str(epochs)], env=env,
                               capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        result.status = f"failed: no result within {timeout} s"
        return result
    lines = [line for line in child.stdout.splitlines() if line.startswith(_MEMORY_MARK)]
    if child.returncode != 0 or not lines:
        tail = " | ".join(child.stderr.strip().splitlines()[-3:])
        result.status = f"failed: exit status {child.returncode}: {tail}"
        return result
    for key, value in json.loads(lines[-1][len(_MEMORY_MARK):]).items():
        setattr(result, key, value)
    if result.ok:
        from ._system import versions

        result.versions = versions()
    return result


_MEMORY_COLUMNS = ("batch", "framework", "peak RSS MB", "after imports MB", "ready MB", "features MB",
                   "bound MB", "within bound", "peak - ready - features MB")


def memory_rows(results: Sequence[MemoryResult]) -> list[list[str]]:
    """One row of cells per result (see :data:`_MEMORY_COLUMNS`); a skipped or failed run has
    its status in the third cell and nothing after it."""
    rows = []
    for r in results:
        label = "full" if r.workload.batch_size is None else str(r.workload.batch_size)
        if not r.ok:
            rows.append([label, r.workload.framework, r.status])
            continue
        rows.append([label, r.workload.framework, f"{r.peak_rss_mb:.1f}", f"{r.baseline_rss_mb:.1f}",
                     f"{r.ready_rss_mb:.1f}", f"{r.dataset_mb:.1f}", f"{r.bound_mb:.1f}",
                     "yes" if r.within_bound else "NO", f"{r.peak_rss_mb - r.ready_rss_mb - r.dataset_mb:.1f}"])
    return rows


def format_memory_table(results: Sequence[MemoryResult], markdown: bool = False) -> list[str]:
    """:func:`memory_rows` as aligned text lines, or as a Markdown table."""
    rows = memory_rows(results)
    if markdown:
        lines = ["| " + " | ".join(_MEMORY_COLUMNS) + " |", "|" + "|".join(" --- " for _ in _MEMORY_COLUMNS) + "|"]
        return lines + ["| " + " | ".join(row + [""] * (len(_MEMORY_COLUMNS) - len(row))) + " |" for row in rows]
    widths = [6, 18, 11, 16, 8, 11, 8, 12, 25]
    render = lambda cells: "  ".join(f"{c:{'<' if i == 1 else '>'}{w}}"  # noqa: E731
                                     for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    header = render(list(_MEMORY_COLUMNS))
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(render(row) if len(row) == len(_MEMORY_COLUMNS) else f"{row[0]:>6}  {row[1]:<18}  {row[2]}")
    return lines


def sgemm_rate(m: int = 128, k: int = 784, n: int = 128, dtype: str = "float32", seconds: float = 0.5,
               repeats: int = 5) -> tuple[float, float, float]:
    """The machine's GEMM rate at ``(m, k) x (k, n)`` with NumPy's BLAS, GFLOP/s:
    ``(median, min, max)`` over ``repeats`` runs of about ``seconds / repeats`` each."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    out = np.empty((m, n), dtype=dtype)
    np.matmul(a, b, out=out)
    started, calls = time.perf_counter(), 0
    while time.perf_counter() - started < 0.05:
        np.matmul(a, b, out=out)
        calls += 1
    per_call = (time.perf_counter() - started) / calls
    inner = max(1, int(seconds / repeats / per_call))
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            np.matmul(a, b, out=out)
        rates.append(2 * m * k * n * inner / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates), min(rates), max(rates)


# ----------------------------------------------------------------------- report
def _ratio(value: float, reference: Result | None) -> str:
    if reference is None or not reference.ok or not reference.epoch_seconds:
        return "-"
    return f"{value / reference.median_seconds:.2f}x"


_COLUMNS = ("batch", "framework", "s/epoch median [min-max]", "samples/s", "GFLOP/s", "%SGEMM", "test acc",
            "vs keras", "vs torch")


def table_rows(results: Sequence[Result], sgemm: tuple[float, float, float] | None = None) -> list[list[str]]:
    """One row of cells per result (see :data:`_COLUMNS`): per batch size, each framework's
    s/epoch (median [min-max]), samples/s, GFLOP/s, share of the SGEMM rate, test accuracy,
    and s/epoch ratios to tf.keras and PyTorch in the same run (below 1: faster than them).
    A skipped result has its status in the third cell and nothing after it."""
    rows = []
    for batch in sorted({r.workload.batch_size or r.n_train for r in results}):
        group = [r for r in results if (r.workload.batch_size or r.n_train) == batch]
        keras = next((r for r in group if r.workload.framework == "tf.keras"), None)
        torch = next((r for r in group if r.workload.framework == "torch"), None)
        for r in group:
            label = "full" if r.workload.batch_size is None else str(batch)
            if not r.ok:
                rows.append([label, r.workload.framework, r.status])
                continue
            rows.append([label, r.workload.framework,
                         f"{r.median_seconds:.3f} [{r.min_seconds:.3f}-{r.max_seconds:.3f}]",
                         f"{r.samples_per_second:,.0f}", f"{r.gflops:.1f}",
                         f"{r.gflops / sgemm[0]:.0%}" if sgemm else "-", f"{r.test_accuracy:.4f}",
                         _ratio(r.median_seconds, keras), _ratio(r.median_seconds, torch)])
    return rows


def format_table(results: Sequence[Result], sgemm: tuple[float, float, float] | None = None,
                 markdown: bool = False) -> list[str]:
    """:func:`table_rows` as aligned text lines, or as a Markdown table."""
    rows = table_rows(results, sgemm)
    if markdown:
        lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "|".join(" --- " for _ in _COLUMNS) + "|"]
        return lines + ["| " + " | ".join(row + [""] * (len(_COLUMNS) - len(row))) + " |" for row in rows]
    widths = [6, 18, 26, 10, 8, 7, 8, 9, 9]
    align = [">", "<", "<", ">", ">", ">", ">", ">", ">"]
    render = lambda cells: "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()  # noqa: E731
    header = render(list(_COLUMNS))
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(render(row) if len(row) == len(_COLUMNS) else f"{row[0]:>6}  {row[1]:<18}  {row[2]}")
    return lines


def format_time_to_accuracy(results: Sequence[Result]) -> list[str]:
    lines = []
    for r in results:
        if not r.ok:
            lines.append(f"  {r.workload.label:<24} {r.status}")
        elif r.seconds_to_target is None:
            lines.append(f"  {r.workload.label:<24} not reached in {len(r.epoch_seconds)} epochs "
                         f"(best {max(a for _, a in r.accuracy_curve):.4f})")
        else:
            lines.append(f"  {r.workload.label:<24} {r.seconds_to_target:7.2f} s ({r.epochs_to_target} epochs, "
                         f"test accuracy {r.test_accuracy:.4f})")
    return lines
