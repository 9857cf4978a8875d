"""Benchmark workloads: one definition, one runner, one result record.

A *workload* is dataset x architecture x framework x batch size x dtype x
optimizer (:class:`Workload`).  :func:`run_workload` trains it for a few
epochs and returns a :class:`Result`: seconds per epoch (every timed epoch,
their median and min-max), samples/s, achieved GFLOP/s from the FLOP count of
DESIGN.md section 5 (:func:`flops_per_sample`), accuracy, compile time (kept
out of the epoch times), BLAS libraries and thread counts (threadpoolctl) and
library versions.  :func:`sgemm_rate` measures the machine's matrix-product
rate, the ceiling the GFLOP/s are compared with.

Front ends (``scripts/bench_epoch.py`` today; the CLI, asv and
pytest-benchmark suites later) only choose workloads and print or store
results; nothing about timing lives anywhere else.

Frameworks: ``"fastscratch-numba"``, ``"fastscratch-numpy"``, ``"torch"`` and
``"tf.keras"``.  PyTorch and TensorFlow are imported only inside their
runners; when one is not installed its result has ``status = "skipped: ...
not installed"`` instead of raising.

Absolute times on shared machines drift from run to run; compare frameworks
by the ratios of results measured in the same run.

Example::

    from fastscratch.bench import Workload, load_data, run_workload
    data = load_data("fashion-mnist")
    r = run_workload(Workload(framework="fastscratch-numba", batch_size=128), data)
    print(r.median, r.gflops, r.status)
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import platform
import statistics
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

FRAMEWORKS = ("fastscratch-numba", "fastscratch-numpy", "torch", "tf.keras")
DATASETS = ("fashion-mnist", "digits")

Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Workload:
    """What to train and how.

    - ``dataset``: a name :func:`load_data` knows (the data itself is passed to
      :func:`run_workload` separately, so a front end loads it once)
    - ``architecture``: layer sizes ``(n_features, hidden..., n_classes)``; hidden layers use ``activation``
    - ``framework``: one of :data:`FRAMEWORKS`
    - ``batch_size``: rows per step; ``None`` is full batch (one step per epoch)
    - ``dtype``: ``"float32"`` or ``"float64"``; ``optimizer``: ``"sgd"``, ``"momentum"`` or ``"adam"``
    - ``epochs``: timed epochs, after ``warmup_epochs`` untimed ones
    - ``threads``: BLAS / framework threads; ``None`` leaves each framework's own choice
      (fastscratch's is per batch size, see ``numba_kernels.blas_threads_for``)
    """

    dataset: str = "fashion-mnist"
    architecture: tuple[int, ...] = (784, 128, 64, 10)
    framework: str = "fastscratch-numba"
    batch_size: int | None = 128
    dtype: str = "float32"
    optimizer: str = "sgd"
    lr: float = 0.1
    activation: str = "relu"
    epochs: int = 3
    warmup_epochs: int = 1
    seed: int = 0
    threads: int | None = None

    @property
    def label(self) -> str:
        batch = "full" if self.batch_size is None else str(self.batch_size)
        arch = "-".join(map(str, self.architecture))
        return f"{self.framework} {self.dataset} {arch} batch={batch} {self.dtype} {self.optimizer}"


@dataclass
class Result:
    """The record of one workload run (see :func:`run_workload`).

    ``seconds``: each timed epoch's training time (no evaluation, no compilation);
    ``median``/``minimum``/``maximum`` of those; ``samples_per_second`` and
    ``gflops`` from the median; ``compile_seconds``: jit compilation or graph
    tracing before the first epoch, when the framework separates it (else NaN);
    ``status``: ``"ok"``, ``"skipped: <why>"`` or ``"error: <what>"``.
    """

    workload: Workload
    status: str = "ok"
    seconds: list[float] = field(default_factory=list)
    n_samples: int = 0
    flop_per_sample: int = 0
    compile_seconds: float = math.nan
    train_accuracy: float = math.nan
    test_accuracy: float = math.nan
    blas: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    threads_used: str = ""
    notes: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else math.nan

    @property
    def minimum(self) -> float:
        return min(self.seconds) if self.seconds else math.nan

    @property
    def maximum(self) -> float:
        return max(self.seconds) if self.seconds else math.nan

    @property
    def samples_per_second(self) -> float:
        return self.n_samples / self.median if self.ok else math.nan

    @property
    def gflops(self) -> float:
        """Achieved GFLOP/s at the median epoch time."""
        return self.flop_per_sample * self.n_samples / self.median / 1e9 if self.ok else math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the workload, the raw samples, the derived numbers; NaN becomes ``None``."""
        out = dataclasses.asdict(self)
        out["workload"]["architecture"] = list(self.workload.architecture)
        out.update(label=self.workload.label, median=self.median, minimum=self.minimum, maximum=self.maximum,
                   samples_per_second=self.samples_per_second, gflops=self.gflops)
        return _json_safe(out)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# ---- FLOPs and the machine's GEMM rate ---------------------------------------------------------------

def flops_per_sample(architecture: tuple[int, ...] | list[int]) -> int:
    """FLOPs of one training sample (DESIGN.md section 5).

    Forward ``sum 2*a*b`` over layers, the same again for the weight gradients,
    and the input gradients of every layer but the first.  Elementwise work is
    not counted.  ``(784, 128, 64, 10)`` gives 454,400.
    """
    pairs = list(zip(architecture[:-1], architecture[1:]))
    products = [2 * a * b for a, b in pairs]
    return 2 * sum(products) + sum(products[1:])


def sgemm_rate(m: int = 128, k: int = 784, n: int = 128, dtype: str = "float32", seconds: float = 1.0,
               threads: int | None = None) -> dict[str, Any]:
    """The machine's matrix-product rate at ``(m, k) x (k, n)``, NumPy ``matmul(out=)``.

    Repeats the product for about ``seconds`` in 5 rounds; returns
    ``{"gflops": median, "gflops_min", "gflops_max", "shape", "dtype", "threads", "blas"}``.
    ``threads``: BLAS threads (``None``: the library's default).
    """
    rng = np.random.default_rng(0)
    a = rng.random((m, k), dtype=np.dtype(dtype).type)
    b = rng.random((k, n), dtype=np.dtype(dtype).type)
    out = np.empty((m, n), dtype)
    flop = 2.0 * m * k * n
    with _limit_threads(threads):
        np.matmul(a, b, out=out)
        start = time.perf_counter()
        reps = 0
        while time.perf_counter() - start < 0.05:
            np.matmul(a, b, out=out)
            reps += 1
        per_round = max(1, int(reps * seconds / 5 / 0.05))
        rates = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(per_round):
                np.matmul(a, b, out=out)
            rates.append(flop * per_round / (time.perf_counter() - t0) / 1e9)
        blas = blas_info()
    return {"gflops": statistics.median(rates), "gflops_min": min(rates), "gflops_max": max(rates),
            "shape": [m, k, n], "dtype": dtype, "threads": threads, "blas": blas}


class _NoLimit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _limit_threads(threads: int | None):
    """threadpoolctl's limit on BLAS and OpenMP pools, or nothing (``None``, or threadpoolctl absent)."""
    if threads is None:
        return _NoLimit()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return _NoLimit()
    return threadpool_limits(limits=threads)


def blas_info() -> list[dict[str, Any]]:
    """The BLAS / OpenMP libraries loaded in this process and their thread counts (threadpoolctl).

    Empty when threadpoolctl is not installed.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{"api": i.get("internal_api"), "library": os.path.basename(i.get("filepath", "")),
             "version": i.get("version"), "threads": i.get("num_threads"), "architecture": i.get("architecture")}
            for i in threadpool_info()]


def versions() -> dict[str, str]:
    """Versions of Python, NumPy and whichever of fastscratch's optional engines are imported."""
    from . import __version__
    out = {"python": platform.python_version(), "fastscratch": __version__, "numpy": np.__version__}
    for name in ("numba", "scipy", "torch", "tensorflow", "keras"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = getattr(module, "__version__", "?")
    return out


def machine() -> dict[str, Any]:
    """CPU model and count, OS: printed with every table so numbers carry their context."""
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]  # other processes competing for the cores
    except OSError:
        load = None
    return {"cpu": model, "cpus": os.cpu_count(), "os": platform.platform(), "load_average": load}


# ---- data ----------------------------------------------------------------------------------------------

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def load_data(name: str = "fashion-mnist") -> Data:
    """``(X_train, y_train, X_test, y_test)``: float32 features in [0, 1] ``(n, n_features)``, intp labels.

    ``"fashion-mnist"``: 60,000 / 10,000 images of 28x28 (784 features).
    ``"digits"``: scikit-learn's 1,797 8x8 digits (64 features), split 80/20; for quick runs.
    """
    if name == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        X, y = load_digits(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(
            (X / 16.0).astype(np.float32), y.astype(np.intp), test_size=0.2, random_state=0, stratify=y)
        return X_train, y_train, X_test, y_test
    if name != "fashion-mnist":
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    try:  # the library's loader, once it has landed
        from .datasets import load_dataset, to_features  # type: ignore[import-not-found]
    except ImportError:
        return _load_debian_fashion_mnist()
    X_train, y_train, X_test, y_test = load_dataset(name)
    return (to_features(X_train), np.asarray(y_train, np.intp), to_features(X_test), np.asarray(y_test, np.intp))


def _load_debian_fashion_mnist(directory: Path = DEBIAN_FASHION_MNIST) -> Data:
    """Stop-gap reader of Debian's ``dataset-fashion-mnist`` IDX files.

    TODO: replace with ``fastscratch.datasets.load_dataset`` (being written on main),
    which ``load_data`` already prefers when it is importable.
    """
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} not found: install Fashion-MNIST with "
                                "`apt-get install dataset-fashion-mnist`, or use --dataset digits")

    def read(stem: str, ndim: int) -> np.ndarray:
        path = directory / f"{stem}.gz"
        with gzip.open(path, "rb") as f:
            raw = f.read()
        zero, kind, dims = struct.unpack(">HBB", raw[:4])
        if zero != 0 or kind != 0x08 or dims != ndim:  # 0x08: unsigned bytes
            raise ValueError(f"{path}: not an IDX file of {ndim}-d unsigned bytes")
        shape = struct.unpack(f">{dims}I", raw[4:4 + 4 * dims])
        if len(raw) != 4 + 4 * dims + math.prod(shape):
            raise ValueError(f"{path}: {len(raw)} bytes do not match the shape {shape}")
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)

    def features(images: np.ndarray) -> np.ndarray:
        return (images.reshape(images.shape[0], -1) / np.float32(255)).astype(np.float32)

    return (features(read("train-images-idx3-ubyte", 3)), read("train-labels-idx1-ubyte", 1).astype(np.intp),
            features(read("t10k-images-idx3-ubyte", 3)), read("t10k-labels-idx1-ubyte", 1).astype(np.intp))


# ---- runners -------------------------------------------------------------------------------------------

def run_workload(workload: Workload, data: Data | None = None) -> Result:
    """Train ``workload`` for ``warmup_epochs + epochs`` epochs; time the last ``epochs``.

    ``data``: ``(X_train, y_train, X_test, y_test)`` as :func:`load_data` returns
    (loaded from ``workload.dataset`` when ``None``).  Never raises for a missing
    framework or a failed run: the result's ``status`` says what happened.
    """
    if workload.framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {workload.framework!r}; expected one of {FRAMEWORKS}")
    if data is None:
        data = load_data(workload.dataset)
    X_train, y_train, X_test, y_test = data
    if X_train.shape[1] != workload.architecture[0]:
        raise ValueError(f"the data has {X_train.shape[1]} features, the architecture {workload.architecture[0]}")
    result = Result(workload, n_samples=X_train.shape[0], flop_per_sample=flops_per_sample(workload.architecture))
    runner = _RUNNERS[workload.framework]
    try:
        with _limit_threads(workload.threads):
            runner(workload, data, result)
            result.blas = blas_info()
    except _Missing as exc:
        result.status = f"skipped: {exc} not installed"
    except Exception as exc:  # a benchmark table reports a failed run and goes on
        result.status = f"error: {type(exc).__name__}: {exc}"
    result.versions = versions()
    return result


class _Missing(Exception):
    """A framework's package is not importable."""


def _run_fastscratch(workload: Workload, data: Data, result: Result) -> None:
    from . import NeuralNetwork
    backend = workload.framework.split("-", 1)[1]
    try:
        net = NeuralNetwork(list(workload.architecture), activation=workload.activation, dtype=workload.dtype,
                            seed=workload.seed, backend=backend)
    except ImportError as exc:
        raise _Missing(backend) from exc
    X_train, y_train, X_test, y_test = data
    X_train = np.ascontiguousarray(X_train, dtype=workload.dtype)
    from . import training
    saved = training.THREADS_OVERRIDE
    if workload.threads is not None:
        training.THREADS_OVERRIDE = workload.threads  # the workload's count, not fit's own choice
    try:
        history = net.fit(X_train, y_train, lr=workload.lr, epochs=workload.warmup_epochs + workload.epochs,
                          batch_size=workload.batch_size, optimizer=workload.optimizer, verbose=False)
    finally:
        training.THREADS_OVERRIDE = saved
    result.seconds = list(history.seconds[workload.warmup_epochs:])
    result.compile_seconds = net.compile_seconds
    result.train_accuracy = history.train_accuracy[-1]
    result.test_accuracy = net.accuracy(X_test, y_test)
    result.threads_used = str(net.blas_threads or "all")
    result.notes = "threads: BLAS threads during the epochs (fit's choice unless the workload sets them)"


def _run_torch(workload: Workload, data: Data, result: Result) -> None:
    try:
        import torch
    except ImportError as exc:
        raise _Missing("torch") from exc
    torch.manual_seed(workload.seed)
    previous_threads = torch.get_num_threads()
    if workload.threads is not None:
        torch.set_num_threads(workload.threads)
    try:
        _train_torch(torch, workload, data, result)
    finally:
        torch.set_num_threads(previous_threads)  # the next workload starts from torch's default


def _train_torch(torch: Any, workload: Workload, data: Data, result: Result) -> None:
    dtype = {"float32": torch.float32, "float64": torch.float64}[workload.dtype]
    act = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh}[workload.activation]
    layers: list[Any] = []
    sizes = workload.architecture
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    model = torch.nn.Sequential(*layers).to(dtype)
    optimizer = {"sgd": lambda p: torch.optim.SGD(p, lr=workload.lr),
                 "momentum": lambda p: torch.optim.SGD(p, lr=workload.lr, momentum=0.9),
                 "adam": lambda p: torch.optim.Adam(p, lr=workload.lr, eps=1e-7)}[workload.optimizer](
        model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    X_train, y_train, X_test, y_test = data
    X = torch.from_numpy(np.ascontiguousarray(X_train, dtype=workload.dtype))
    y = torch.from_numpy(np.asarray(y_train, dtype=np.int64))
    n = X.shape[0]
    batch = workload.batch_size or n
    correct = 0
    seconds = []
    for _ in range(workload.warmup_epochs + workload.epochs):
        t0 = time.perf_counter()
        correct = 0
        order = torch.randperm(n) if batch < n else None
        for start in range(0, n, batch):
            if order is None:
                xb, yb = X, y
            else:
                rows = order[start:start + batch]
                xb, yb = X[rows], y[rows]
            logits = model(xb)
            loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == yb).sum())
        seconds.append(time.perf_counter() - t0)
    result.seconds = seconds[workload.warmup_epochs:]
    result.train_accuracy = correct / n
    with torch.no_grad():
        predicted = model(torch.from_numpy(np.ascontiguousarray(X_test, dtype=workload.dtype))).argmax(1).numpy()
    result.test_accuracy = float(np.mean(predicted == y_test))
    result.threads_used = str(torch.get_num_threads())


def _run_keras(workload: Workload, data: Data, result: Result) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise _Missing("tensorflow") from exc
    tf.get_logger().setLevel("ERROR")  # e.g. retracing notes: predict runs once per workload, by design
    keras = tf.keras
    keras.utils.set_random_seed(workload.seed)
    if workload.threads is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(workload.threads)
            tf.config.threading.set_inter_op_parallelism_threads(workload.threads)
        except RuntimeError:  # only before TensorFlow's first op in the process
            pass
    sizes = workload.architecture
    layers: list[Any] = [keras.Input((sizes[0],), dtype=workload.dtype)]
    for b in sizes[1:-1]:
        layers.append(keras.layers.Dense(b, activation=workload.activation, dtype=workload.dtype))
    layers.append(keras.layers.Dense(sizes[-1], dtype=workload.dtype))
    model = keras.Sequential(layers)
    optimizer = {"sgd": lambda: keras.optimizers.SGD(workload.lr),
                 "momentum": lambda: keras.optimizers.SGD(workload.lr, momentum=0.9),
                 "adam": lambda: keras.optimizers.Adam(workload.lr)}[workload.optimizer]()
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    X_train, y_train, X_test, y_test = data
    X = np.ascontiguousarray(X_train, dtype=workload.dtype)
    times: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    history = model.fit(X, np.asarray(y_train, np.int64), batch_size=workload.batch_size or X.shape[0],
                        epochs=workload.warmup_epochs + workload.epochs, shuffle=True, verbose=0,
                        callbacks=[EpochTimer()])
    result.seconds = times[workload.warmup_epochs:]
    result.train_accuracy = float(history.history["accuracy"][-1])
    predicted = np.argmax(model.predict(np.ascontiguousarray(X_test, dtype=workload.dtype), verbose=0,
                                        batch_size=8192), axis=1)
    result.test_accuracy = float(np.mean(predicted == y_test))
    result.threads_used = str(workload.threads) if workload.threads is not None else "tf default"
    result.notes = f"keras {keras.__version__}, jit_compile={model.jit_compile}"


_RUNNERS: dict[str, Callable[[Workload, Data, Result], None]] = {
    "fastscratch-numba": _run_fastscratch, "fastscratch-numpy": _run_fastscratch,
    "torch": _run_torch, "tf.keras": _run_keras,
}


# ---- tables ----------------------------------------------------------------------------------------------

def ratio_table(results: list[Result], sgemm_gflops: float | None = None) -> list[dict[str, Any]]:
    """One row per result, with ratios of its median to torch's and tf.keras's medians
    for the same batch size in ``results`` (so: measured in the same run), and the
    fraction of ``sgemm_gflops`` reached.  Where a reference framework ran with
    several thread counts, its fastest median is the reference."""
    reference: dict[tuple[Any, str], float] = {}
    for r in results:
        if r.ok and r.workload.framework in ("torch", "tf.keras"):
            key = (r.workload.batch_size, r.workload.framework)
            reference[key] = min(reference.get(key, math.inf), r.median)
    rows = []
    for r in results:
        w = r.workload
        torch_s = reference.get((w.batch_size, "torch"))
        keras_s = reference.get((w.batch_size, "tf.keras"))
        rows.append({
            "framework": w.framework, "batch": "full" if w.batch_size is None else w.batch_size,
            "status": r.status, "median_s": r.median, "min_s": r.minimum, "max_s": r.maximum,
            "samples_per_s": r.samples_per_second, "gflops": r.gflops,
            "sgemm_fraction": r.gflops / sgemm_gflops if sgemm_gflops and r.ok else math.nan,
            "vs_torch": r.median / torch_s if torch_s and r.ok else math.nan,
            "vs_keras": r.median / keras_s if keras_s and r.ok else math.nan,
            "test_accuracy": r.test_accuracy, "compile_s": r.compile_seconds, "threads": r.threads_used,
            "notes": r.notes,
        })
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`ratio_table` as a fixed-width text table."""
    def num(value: float, spec: str) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)

    header = (f"{'framework':<18} {'batch':>6} {'s/epoch':>8} {'min-max':>13} {'samples/s':>10} "
              f"{'GFLOP/s':>8} {'%SGEMM':>7} {'x torch':>8} {'x keras':>8} {'test acc':>8} {'compile s':>9} threads")
    lines = [header, "-" * len(header)]
    for row in rows:
        if not row["status"] == "ok":
            lines.append(f"{row['framework']:<18} {str(row['batch']):>6} {row['status']}")
            continue
        lines.append(
            f"{row['framework']:<18} {str(row['batch']):>6} {num(row['median_s'], '.3f'):>8} "
            f"{num(row['min_s'], '.3f') + '-' + num(row['max_s'], '.3f'):>13} {num(row['samples_per_s'], ',.0f'):>10} "
            f"{num(row['gflops'], '.1f'):>8} {num(100 * row['sgemm_fraction'], '.0f'):>7} "
            f"{num(row['vs_torch'], '.2f'):>8} {num(row['vs_keras'], '.2f'):>8} {num(row['test_accuracy'], '.4f'):>8} "
            f"{num(row['compile_s'], '.2f'):>9} {row.get('threads', '')}")
    return "\n".join(lines)
