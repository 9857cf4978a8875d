"""Benchmark workloads: one definition behind ``fastscratch bench``, the asv suite and pytest-benchmark.

A :class:`Workload` is dataset x architecture x framework x batch size x dtype x
optimizer.  :func:`make_trainer` builds a trainer for one (fastscratch on each of
its backends, JAX with the whole epoch jitted, tf.keras, Keras 3 on its JAX backend on
the CPU or a GPU (``keras-jax``, ``keras-jax-gpu``: Keras picks one backend per process,
so these run in a ``fastscratch bench`` call without ``tf.keras``), PyTorch eager and
``torch.compile``), whose ``epoch()`` trains one epoch and returns the seconds that
epoch took *as the framework measures its own epoch*: the training loop only, no
input validation, no evaluation.  :func:`run_group` builds the trainers of one
*ratio group* (the same workload but for the framework), warms each up, then times
their epochs in interleaved rounds (the order reversed every other round), so a
change in the machine's load hits every framework alike; :func:`run` is a group of
one (asv times one framework per process).  A :class:`Result` has the median and
range, samples/s, GFLOP/s from the FLOP formula, accuracy, compile time apart,
versions, BLAS and thread counts.  :func:`time_to_accuracy_group` trains a group,
interleaved, until each reaches a target test accuracy.  :func:`sweep` is the
scaling benchmark (784-W-W-10 over widths and batch sizes, GFLOP/s against this
machine's SGEMM rate at the step's largest GEMM).  :func:`peak_rss` runs the whole
job (imports, data, model, epochs, accuracy) in a fresh process and returns its
peak resident memory beside issue 8's bound (:class:`MemoryResult`).

**Same start.**  Every framework starts from the same initial weights: those of
``NeuralNetwork(sizes, activation, dtype, seed=workload.seed)`` (He-normal, biases
zero; :func:`initial_network`), copied into the JAX, Keras (``reference.keras.build_model``)
and PyTorch models, so time to accuracy compares training, not initialisation.  The
optimizer is one fastscratch :class:`~fastscratch.optimizers.Optimizer`
(:func:`workload_optimizer`) mapped to each framework's: Keras through
``reference.keras.keras_optimizer``, JAX by the same update rules
(:mod:`fastscratch.integrations.jax`), PyTorch's ``SGD`` (its momentum is Keras' at a
constant learning rate) and ``Adam`` (which adds ``eps`` to ``sqrt(v / (1 - b2^t))``
rather than to ``sqrt(v)``: a difference below ``eps``, 1e-7).  Each framework draws
its own batch order.

**Devices.**  :data:`DEVICE_FRAMEWORKS` names the frameworks of each device: the CPU ones
above, and on a GPU ``fastscratch-gpu`` (the array-API backend on CuPy or torch CUDA arrays,
through ``fastscratch.devices``; the data moved there once, before the timed epochs),
``torch-cuda`` (:class:`TorchTrainer` on a CUDA device, each epoch timed to
``torch.cuda.synchronize()``) and ``jax-gpu`` (the jitted epoch on ``jax.devices("gpu")[0]``).
Every Result records what it ran on, ``device_info`` (:meth:`Trainer.device_info`: the CPU's
model; a GPU's name, driver, CUDA runtime and library versions).

Frameworks that are not installed, or ``torch.compile`` where it cannot compile, or a GPU
framework without a GPU, give a Result with ``status="skipped: ..."``, never an exception,
so every front end runs with whatever is installed.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._equivalents import framework_object
from .._validation import plural
from ..activations import get_activation
from ..io import datasets
from ..optimizers import PRESETS

#: The frameworks, the one registry the CLI, asv and pytest-benchmark read (see :func:`make_trainer`).
FRAMEWORKS = ("fastscratch-numba", "fastscratch-numpy", "tf.keras", "torch", "torch-compile", "jax", "keras-jax",
              "fastscratch-gpu", "torch-cuda", "jax-gpu", "keras-jax-gpu")
#: The frameworks ``fastscratch bench --device cpu|gpu`` runs when ``--frameworks`` is not given.
#: The GPU ones: fastscratch's array-API backend on CuPy or torch CUDA arrays
#: (``fastscratch.devices``), PyTorch eager on a CUDA device, the jitted JAX epoch on the first GPU,
#: and Keras 3 on JAX's GPU (the GPU machine has no TensorFlow).  ``keras-jax`` (Keras 3 on JAX's
#: CPU) is not a CPU default: Keras takes one backend per process, and tf.keras is the CPU reference.
DEVICE_FRAMEWORKS: dict[str, tuple[str, ...]] = {
    "cpu": ("fastscratch-numba", "fastscratch-numpy", "tf.keras", "torch", "torch-compile", "jax"),
    "gpu": ("fastscratch-gpu", "torch-cuda", "jax-gpu", "keras-jax-gpu"),
}
#: Short names the command line accepts for them.
FRAMEWORK_ALIASES = {"numba": "fastscratch-numba", "numpy": "fastscratch-numpy", "keras": "tf.keras",
                     "pytorch": "torch", "torch.compile": "torch-compile", "inductor": "torch-compile"}
#: The workload optimizers: names for :func:`workload_optimizer`, those of the optimizers' one
#: registry (:data:`fastscratch.optimizers.PRESETS`).
OPTIMIZERS = tuple(PRESETS)
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
    #: ``"own"``: each framework shuffles its own way (as its users' code does); ``"shared"``:
    #: every framework replays the permutations fastscratch's generator draws for this seed, so
    #: all see the same batches and train along the same path to rounding -- a time to accuracy
    #: then compares speed, not the luck of one batch order
    batches: str = "own"

    def __post_init__(self) -> None:
        if self.batches not in ("own", "shared"):
            raise ValueError(f"batches must be 'own' or 'shared', got {self.batches!r}")
        if self.framework not in FRAMEWORKS:
            raise ValueError(f"unknown framework {self.framework!r}; expected one of {', '.join(FRAMEWORKS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        get_activation(self.activation)  # ValueError naming the registry's choices
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be positive or None (full batch), got {self.batch_size}")

    @property
    def label(self) -> str:
        return f"{self.framework} b{self.batch_size or 'full'}"


def workload_optimizer(workload: Workload):
    """The fastscratch optimizer ``workload.optimizer`` names, with fastscratch's defaults:
    ``"momentum"`` and ``"nesterov"`` are ``Momentum(0.9)`` (Nesterov for the latter),
    ``"adam"`` is ``Adam(0.9, 0.999, 1e-7)``.  Every framework's optimizer is mapped from it."""
    return PRESETS[workload.optimizer]()


def initial_network(workload: Workload, sizes: Sequence[int]):
    """The fastscratch network whose initial weights every framework starts from:
    ``NeuralNetwork(sizes, activation, dtype, seed=workload.seed)`` (NumPy backend: the
    weights do not depend on the backend).  Its ``weights`` / ``biases`` are the start."""
    from ..network import NeuralNetwork

    return NeuralNetwork(list(sizes), activation=workload.activation, dtype=workload.dtype, seed=workload.seed,
                         backend="numpy")


@dataclasses.dataclass
class Result:
    """One workload's measurements.  Times in seconds; ``gflops`` from :func:`flops_per_sample`."""

    workload: Workload
    dataset: str = ""
    status: str = "ok"
    n_train: int = 0
    epoch_seconds: list[float] = dataclasses.field(default_factory=list)
    # when each timed epoch started, seconds after the group's first timed epoch (interleaved rounds)
    epoch_started: list[float] = dataclasses.field(default_factory=list)
    warmup_seconds: float = math.nan  # the first epoch: includes JIT compilation / graph tracing
    # compiling apart from the epochs: fastscratch-numba its kernels (or loading them from its
    # cache), jax its jitted epoch (lower + compile), torch-compile its step (Inductor, on real batches)
    compile_seconds: float = math.nan
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
    # what it ran on, from Trainer.device_info(): {"device": "cpu", "cpu": model} on the CPU; on a GPU
    # its name, NVIDIA driver, CUDA runtime and the library versions (fastscratch.tools.system.gpu_info)
    device_info: dict[str, str] = dataclasses.field(default_factory=dict)
    threads: str = ""
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    # where it was measured: the machine's host name, CPU model, usable cores and BLAS (library,
    # version, threads: the start of ``threads``); the Dask worker's address when its group ran on a
    # cluster (fastscratch.tools.dask), "" when it ran in this process
    host: str = ""
    cpu: str = ""
    cores: int = 0
    blas: str = ""
    worker: str = ""
    # that machine's SGEMM rate at (128x784)x(784x128), GFLOP/s (median), measured just before the
    # group on the worker that ran it (fastscratch.tools.dask); NaN when the caller measured it instead
    sgemm_gflops: float = math.nan
    sizes: list[int] = dataclasses.field(default_factory=list)  # the network's layer sizes
    # the group's SGEMM reference, measured in every round of run_group(sgemm=True): GFLOP/s
    # (median, min, max) of NumPy's BLAS on all its threads at ``sgemm_gemm`` = (m, k, n)
    sgemm: tuple[float, float, float] | None = None
    sgemm_gemm: tuple[int, int, int] | None = None

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
    """The workload cannot run here (framework not installed, or not compiling); the message says why."""


class Trainer:
    """Trains one workload one epoch at a time.  ``epoch()`` returns that epoch's seconds.

    Every trainer starts from :func:`initial_network`'s weights; ``parameters()`` gives the
    current ones in fastscratch's layout ``[W0: (n_in, n_out), b0: (n_out,), W1, b1, ...]``.
    """

    frameworks: tuple[str, ...] = ()  # the FRAMEWORKS entries this class trains
    device = "cpu"
    compile_seconds = math.nan  # set by trainers that compile apart from their epochs
    threads_note = ""  # threads the trainer itself chose, for the record

    def __init__(self, workload: Workload, data: tuple[np.ndarray, ...]) -> None:
        self.workload = workload
        self.X_train, self.y_train, self.X_test, self.y_test = data
        n_classes = int(max(self.y_train.max(), self.y_test.max() if len(self.y_test) else 0)) + 1
        self.sizes = [self.X_train.shape[1], *workload.hidden, n_classes]
        self.batch_size = workload.batch_size or len(self.X_train)
        # batches="shared": the generator whose permutations fastscratch's fit draws, epoch by
        # epoch (the initial network's, after its weights were drawn)
        self._orders = initial_network(workload, self.sizes).rng if workload.batches == "shared" else None

    def shared_order(self) -> np.ndarray | None:
        """The next epoch's permutation ``(n,)`` when the workload's batches are shared (None
        otherwise, and for full batch, which takes the rows as they are)."""
        if self._orders is None or self.batch_size >= len(self.X_train):
            return None
        return self._orders.permutation(len(self.X_train))

    @classmethod
    def require(cls, framework: str) -> None:
        """Import what ``framework`` trains with; :class:`Skipped` (with the install hint) when missing."""

    @classmethod
    def device_of(cls, framework: str) -> str:
        """Where ``framework`` runs (``"cpu"`` or ``"gpu"``), known before a trainer is built."""
        return "gpu" if framework.endswith(("-gpu", "-cuda")) else cls.device

    def device_info(self) -> dict[str, str]:
        """What this trainer computes on, for its :class:`Result`: here the CPU,
        ``{"device": "cpu", "cpu": model name}``; GPU trainers give the GPU's name, driver, CUDA
        runtime and library versions (:func:`fastscratch.tools.system.gpu_info`)."""
        from .system import cpu_model

        return {"device": self.device, "cpu": cpu_model()}

    def epoch(self) -> float:
        raise NotImplementedError

    def accuracy(self) -> float:
        raise NotImplementedError

    def parameters(self) -> list[np.ndarray]:
        raise NotImplementedError


class FastscratchTrainer(Trainer):
    """fastscratch through its public ``fit``, one epoch per call (``fastscratch-numba``, ``-numpy``)."""

    frameworks = ("fastscratch-numba", "fastscratch-numpy")

    def __init__(self, workload: Workload, data: tuple[np.ndarray, ...]) -> None:
        super().__init__(workload, data)
        from ..network import NeuralNetwork

        self.require(workload.framework)
        self.net = NeuralNetwork(self.sizes, activation=workload.activation, dtype=workload.dtype,
                                 seed=workload.seed, backend=self.backend_of(workload.framework))
        # (initial_network's weights, by construction)
        self.optimizer = workload_optimizer(workload)  # one object: fit continues its state every epoch
        # the arrays fit and accuracy take, placed where the backend computes, once, before any timed epoch
        self.X_fit, self.y_fit, self.X_eval, self.y_eval = (
            self.to_device(a) for a in (self.X_train, self.y_train, self.X_test, self.y_test))

    @classmethod
    def backend_of(cls, framework: str) -> str:
        """The ``NeuralNetwork(backend=...)`` that ``framework`` trains with (``fastscratch-numba``: numba)."""
        return framework.split("-", 1)[1]

    def to_device(self, array: np.ndarray) -> Any:
        """``array`` where the backend computes: the NumPy array itself on the CPU."""
        return array

    def to_host(self, array: Any) -> np.ndarray:
        """A NumPy copy of one of the network's arrays."""
        return np.array(array)

    @classmethod
    def require(cls, framework: str) -> None:
        from ..backends import load_backend

        try:
            load_backend(framework.split("-", 1)[1])
        except ImportError as exc:
            raise Skipped(f"not installed ({exc})") from None

    def epoch(self) -> float:
        w = self.workload
        self.net.fit(self.X_fit, self.y_fit, lr=w.lr, epochs=1, batch_size=w.batch_size,
                     optimizer=self.optimizer, verbose=False)
        if math.isnan(self.compile_seconds):  # the first fit compiles (or loads the cache); later ones do not
            self.compile_seconds = getattr(self.net, "compile_seconds", math.nan)
        self.threads_note = self.note()
        return self.net.history.seconds[-1]  # run_epoch only: not fit's input checks or set-up

    def note(self) -> str:
        """What the last epoch ran on, for ``Result.threads``."""
        return f"fastscratch epochs on {self.net.epoch_threads}"

    def accuracy(self) -> float:
        return float(self.net.accuracy(self.X_eval, self.y_eval))

    def parameters(self) -> list[np.ndarray]:
        return [self.to_host(p) for pair in zip(self.net.weights, self.net.biases) for p in pair]


def _gpu_devices() -> tuple[str, Callable[..., Any], Callable[[Any], np.ndarray]]:
    """``(library, to_device, to_numpy)`` (:mod:`fastscratch.devices`) when the array-API backend
    is installed and a GPU array library can allocate; :class:`Skipped` saying why not."""
    from .. import devices
    from ..backends import ARRAY_API, load_backend

    try:
        load_backend(ARRAY_API)
    except ImportError as exc:
        raise Skipped(f"not installed ({exc})") from None
    library, reason = devices.gpu_library()
    if library is None:
        raise Skipped(f"no GPU array library: {reason}")
    return library, devices.to_device, devices.to_numpy


class FastscratchGpuTrainer(FastscratchTrainer):
    """fastscratch's array-API backend (``backend="array_api"``) on CuPy or torch CUDA arrays
    (``fastscratch-gpu``): the data moved to the GPU once by ``fastscratch.devices.to_device``,
    before any timed epoch (the weights follow on the first fit); an epoch's seconds are the
    network's own ``history.seconds[-1]``."""

    frameworks = ("fastscratch-gpu",)
    device = "gpu"

    def __init__(self, workload: Workload, data: tuple[np.ndarray, ...]) -> None:
        self.library, self._to_device, self._to_numpy = _gpu_devices()
        super().__init__(workload, data)

    @classmethod
    def require(cls, framework: str) -> None:
        _gpu_devices()

    @classmethod
    def backend_of(cls, framework: str) -> str:
        return "array_api"

    def to_device(self, array: np.ndarray) -> Any:
        return self._to_device(array, device="cuda")

    def to_host(self, array: Any) -> np.ndarray:
        return np.array(self._to_numpy(array))

    def note(self) -> str:
        return f"fastscratch array-API backend on {self.library} CUDA arrays"

    def device_info(self) -> dict[str, str]:
        from .system import gpu_info

        return {**gpu_info(self.library), "backend": "array_api"}


def _quiet_tensorflow():
    from ..integrations.keras import import_tensorflow  # quiet start-up, one summary warning at most

    try:
        return import_tensorflow()
    except ImportError:
        raise Skipped("not installed (`pip install 'fastscratch[keras]'`)") from None


def _keras(keras_backend: str, framework: str):
    """The keras module on ``keras_backend``; :class:`Skipped` when it is missing or when keras is
    already loaded in this process with the other backend (one backend per process)."""
    from ..integrations.keras import KerasBackendError, import_keras

    if keras_backend == "tensorflow":
        _quiet_tensorflow()
    try:
        return import_keras(keras_backend)
    except ImportError as exc:
        raise Skipped(f"not installed ({exc})") from None
    except KerasBackendError:
        raise Skipped(f"keras is already loaded in this process with another backend (Keras picks one per "
                      f"process, from KERAS_BACKEND, when it is first imported); run it in its own "
                      f"`fastscratch bench --frameworks {framework}` call") from None


class KerasTrainer(Trainer):
    """Keras ``model.fit``, one epoch per call, Keras' own shuffling; the model is
    ``reference.keras.build_model`` of the initial network (its weights copied in).  This class
    is tf.keras; :class:`KerasJaxTrainer` the same on Keras 3's JAX backend."""

    frameworks = ("tf.keras",)
    keras_backend = "tensorflow"

    def __init__(self, workload: Workload, data: tuple[np.ndarray, ...]) -> None:
        super().__init__(workload, data)
        keras = _keras(self.keras_backend, workload.framework)
        from ..integrations.keras import build_model, keras_optimizer

        self._choose_device(workload.framework)
        with self._inside():
            self._seed(keras, workload.seed)
            self.model = build_model(initial_network(workload, self.sizes), keras_backend=self.keras_backend)
            loss = keras.losses.SparseCategoricalCrossentropy(dtype=workload.dtype)  # in the model's dtype
            self.model.compile(optimizer=keras_optimizer(workload_optimizer(workload), workload.lr,
                                                         keras_backend=self.keras_backend),
                               loss=loss, metrics=["accuracy"])
        times: list[float] = []
        self._times = times

        class EpochTimer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                for value in (logs or {}).values():  # on JAX, reading them waits for the last step
                    float(value)
                times.append(time.perf_counter() - self.t0)

        self._timer = EpochTimer()

    def _choose_device(self, framework: str) -> None:
        tf = _quiet_tensorflow()
        self.device = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"

    def _inside(self):
        """A context around every Keras call: where it runs (nothing to enter for tf.keras)."""
        return contextlib.nullcontext()

    def _seed(self, keras, seed: int) -> None:
        """Seed what Keras' own shuffling draws from."""
        keras.utils.set_random_seed(seed)

    @classmethod
    def require(cls, framework: str) -> None:
        _keras(cls.keras_backend, framework)

    def epoch(self) -> float:
        with self._inside():
            order = self.shared_order()
            if order is not None:  # the shared batches: the rows in that order (copied before the timed epoch)
                self.model.fit(self.X_train[order], self.y_train[order], batch_size=self.batch_size, epochs=1,
                               shuffle=False, verbose=0, callbacks=[self._timer])
                return self._times[-1]
            # full batch: the rows as they are, as fastscratch and JAX take them (no shuffle, no gather)
            self.model.fit(self.X_train, self.y_train, batch_size=self.batch_size, epochs=1,
                           shuffle=self.batch_size < len(self.X_train), verbose=0, callbacks=[self._timer])
            return self._times[-1]

    def accuracy(self) -> float:
        # one direct call, not model.predict: predict traces a tf.function per model, and TensorFlow
        # warns about "retracing" once several models (a group per batch size) have predicted
        with self._inside():
            proba = np.asarray(self.model(self.X_test, training=False))
        return float((proba.argmax(axis=1) == self.y_test).mean())

    def parameters(self) -> list[np.ndarray]:
        return [np.array(p) for p in self.model.get_weights()]


class KerasJaxTrainer(KerasTrainer):
    """Keras 3 on its JAX backend (``keras-jax``: JAX's CPU; ``keras-jax-gpu``: the first GPU JAX
    sees), otherwise :class:`KerasTrainer`: the same model, start, optimizer mapping and epoch
    timing (Keras' epoch callbacks).  Keras compiles its step with ``jax.jit`` in the first
    (warm-up) epoch.  Keras picks its backend once per process, so this is :class:`Skipped` in
    a process where keras is already loaded with TensorFlow (as after ``tf.keras``), and, for
    ``-gpu``, where JAX sees no GPU."""

    frameworks = ("keras-jax", "keras-jax-gpu")
    keras_backend = "jax"

    @staticmethod
    def _jax_device(framework: str):
        from ..integrations.keras import resolve_device

        try:
            return resolve_device("gpu" if framework.endswith("-gpu") else "cpu", keras_backend="jax")[0]
        except ValueError as exc:
            raise Skipped(str(exc)) from None

    @classmethod
    def require(cls, framework: str) -> None:
        super().require(framework)
        cls._jax_device(framework)

    def _choose_device(self, framework: str) -> None:
        import jax

        self._device = self._jax_device(framework)
        self.device = "cpu" if self._device.platform == "cpu" else "gpu"
        self.threads_note = (f"keras {self.device_info()['keras']} on jax {jax.__version__} "
                             f"{self._device.platform} ({self._device.device_kind}; XLA's own thread pool)")

    def _seed(self, keras, seed: int) -> None:
        # Keras' JAX backend shuffles arrays with NumPy's global generator; keras.utils.set_random_seed
        # would also import TensorFlow (to seed it) where it is installed, into a process that needs none
        np.random.seed(seed)

    def _inside(self):
        import jax

        from ..integrations.jax import precision

        stack = contextlib.ExitStack()
        stack.enter_context(jax.default_device(self._device))
        stack.enter_context(precision(jax, self.workload.dtype == "float64"))
        return stack

    def device_info(self) -> dict[str, str]:
        """As every trainer's (the CPU's model, or :func:`fastscratch.tools.system.gpu_info` for JAX's
        GPU), with the jax, jaxlib and keras versions."""
        from ..integrations.keras import keras_versions
        from .system import gpu_info

        where = gpu_info("jax") if self.device == "gpu" else super().device_info()
        return {**where, **keras_versions("jax")}


def _import_torch():
    try:
        import torch
    except ImportError:
        raise Skipped(f"not installed (`{TORCH_CPU_INSTALL}`)") from None
    return torch


class TorchTrainer(Trainer):
    """PyTorch eager: ``nn.Sequential`` of ``Linear`` layers holding the initial network's
    weights (transposed: ``Linear.weight`` is ``(n_out, n_in)``), ``CrossEntropyLoss`` on the
    logits, ``torch.randperm`` batches, the last batch smaller (its own mean), full batch
    without a permutation.  The model, the data and the batch permutations live on
    ``torch_device`` (the CPU here, CUDA in :class:`TorchCudaTrainer`)."""

    frameworks = ("torch",)
    torch_device = "cpu"

    def __init__(self, workload: Workload, data: tuple[np.ndarray, ...]) -> None:
        super().__init__(workload, data)
        self.torch = torch = self._import()
        torch.manual_seed(workload.seed)
        dtype = getattr(torch, workload.dtype)
        on = torch.device(self.torch_device)
        activation = framework_object(torch, get_activation(workload.activation).torch)  # the registry's module
        self.linears = [torch.nn.Linear(a, b, dtype=dtype, device=on) for a, b in zip(self.sizes[:-1], self.sizes[1:])]
        layers: list[Any] = []
        for linear in self.linears[:-1]:
            layers += [linear, activation()]
        layers.append(self.linears[-1])
        self.model = torch.nn.Sequential(*layers)
        start = initial_network(workload, self.sizes)
        with torch.no_grad():
            for linear, W, b in zip(self.linears, start.weights, start.biases):
                linear.weight.copy_(torch.from_numpy(W.T))
                linear.bias.copy_(torch.from_numpy(b))
        self.optimizer = self._torch_optimizer(workload_optimizer(workload), workload.lr)
        self.loss = torch.nn.CrossEntropyLoss()  # softmax + cross-entropy on the logits, as fastscratch
        self.X = torch.from_numpy(self.X_train).to(on)  # on the device once, before any timed epoch
        self.y = torch.from_numpy(self.y_train).to(on)
        self.generator = torch.Generator(device=on).manual_seed(workload.seed)
        self.threads_note = f"torch {torch.get_num_threads()} intra-op threads"

    @classmethod
    def _import(cls):
        return _import_torch()

    @classmethod
    def require(cls, framework: str) -> None:
        cls._import()

    def synchronize(self) -> None:
        """Wait for the device's queued work (nothing to wait for on the CPU)."""

    def _torch_optimizer(self, opt, lr: float):
        path, kwargs = opt.equivalents()["torch"]  # the optimizer registry's mapping
        return framework_object(self.torch, path)(self.model.parameters(), lr=lr, **kwargs)

    def _loss_of(self, xb, yb):
        return self.loss(self.model(xb), yb)

    def _step(self, xb, yb) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._loss_of(xb, yb).backward()
        self.optimizer.step()

    def epoch(self) -> float:
        torch = self.torch
        shared = self.shared_order()
        on = self.X.device
        self.synchronize()  # nothing earlier still running into this epoch's time
        started = time.perf_counter()
        n = len(self.X)
        if self.batch_size >= n:
            self._step(self.X, self.y)
        else:
            order = (torch.randperm(n, generator=self.generator, device=on) if shared is None
                     else torch.from_numpy(shared).to(on))
            for start in range(0, n, self.batch_size):
                idx = order[start:start + self.batch_size]
                self._step(self.X[idx], self.y[idx])
        self.synchronize()  # the epoch's queued kernels finished
        return time.perf_counter() - started

    def accuracy(self) -> float:
        with self.torch.no_grad():
            logits = self.model(self.torch.from_numpy(self.X_test).to(self.X.device))
        return float((logits.argmax(dim=1).cpu().numpy() == self.y_test).mean())

    def parameters(self) -> list[np.ndarray]:
        return [np.array(p.detach().cpu().numpy().T if p.ndim == 2 else p.detach().cpu().numpy())
                for linear in self.linears for p in (linear.weight, linear.bias)]


class TorchCudaTrainer(TorchTrainer):
    """PyTorch eager on the first CUDA device (``torch-cuda``): :class:`TorchTrainer` with the
    model, the data and the permutations on the GPU, each epoch timed to
    ``torch.cuda.synchronize()`` at its end."""

    frameworks = ("torch-cuda",)
    device = "gpu"
    torch_device = "cuda"

    @classmethod
    def _import(cls):
        try:
            import torch
        except ImportError:
            raise Skipped("not installed (PyTorch with CUDA: `pip install torch` on Linux)") from None
        if not torch.cuda.is_available():
            raise Skipped(f"no CUDA device: torch {torch.__version__} (CUDA build {torch.version.cuda or 'none'}) "
                          "says torch.cuda.is_available() is False")
        return torch

    def synchronize(self) -> None:
        self.torch.cuda.synchronize()

    def device_info(self) -> dict[str, str]:
        from .system import gpu_info

        return gpu_info("torch")


class _DropMessages(logging.Filter):
    """A logging filter that drops records whose message starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


class TorchCompileTrainer(TorchTrainer):
    """PyTorch with ``torch.compile`` (Inductor, static shapes) on the training step: the
    forward pass and loss (and with them, through AOTAutograd, the backward) and
    ``optimizer.step``.  Compiled here, on real batches of the epoch's shapes (the full
    batch, and the ragged last batch if there is one), then the weights and optimizer state
    are put back, so training starts from the initial weights like every framework.  Any
    failure to compile (no C++ compiler, an unsupported platform) is :class:`Skipped` with the reason."""

    frameworks = ("torch-compile",)

    def __init__(self, workload: Workload, data: tuple[np.ndarray, ...]) -> None:
        super().__init__(workload, data)
        torch = self.torch
        start = [p.detach().clone() for p in self.model.parameters()]
        # Dynamo says once that it skips the profiler hook inside optimizer.step: noise here
        quiet = logging.getLogger("torch._dynamo.variables.ctx_manager")
        hush = _DropMessages("Profiler record function")
        quiet.addFilter(hush)
        started = time.perf_counter()
        # torch.compile sets ~40 context variables (its config patches and caches) while compiling
        # and calling; in the caller's context they would stay and make every later ContextVar.set
        # there (NumPy's np.setbufsize in fastscratch's step loop) allocate more.  So this trainer
        # compiles and trains in a context of its own.
        self._context = contextvars.copy_context()

        def warm_up() -> None:
            with warnings.catch_warnings():  # Inductor's own use of a deprecated torch.jit API
                warnings.filterwarnings("ignore", message=r"`torch\.jit\.script_method` is deprecated",
                                        category=DeprecationWarning)
                self._compiled_loss = torch.compile(self._loss_of, dynamic=False)
                self._compiled_update = torch.compile(self.optimizer.step, dynamic=False)
                n = len(self.X)
                for rows in sorted({min(self.batch_size, n), n % self.batch_size} - {0}):
                    self._step(self.X[:rows], self.y[:rows])

        try:
            self._context.run(warm_up)
        except Exception as exc:  # whatever Inductor raises, the table shows it as the reason
            message = str(exc).strip().splitlines()
            first = message[0][:300] if message else ""
            raise Skipped(f"torch.compile failed: {type(exc).__name__}: {first}") from None
        finally:
            quiet.removeFilter(hush)
        self.compile_seconds = time.perf_counter() - started
        with torch.no_grad():  # the warm-up steps are undone in place (compiled code keeps its tensors)
            for p, p0 in zip(self.model.parameters(), start):
                p.copy_(p0)
            for state in self.optimizer.state.values():
                for value in state.values():
                    if torch.is_tensor(value):
                        value.zero_()  # momentum buffer 0 then g is the first step's g; Adam's step 0
        self.threads_note = f"torch.compile (inductor), torch {torch.get_num_threads()} intra-op threads"

    @classmethod
    def require(cls, framework: str) -> None:
        _import_torch()

    def _step(self, xb, yb) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._compiled_loss(xb, yb).backward()
        self._compiled_update()

    def epoch(self) -> float:
        return self._context.run(super().epoch)

    def accuracy(self) -> float:
        return self._context.run(super().accuracy)


class JaxTrainer(Trainer):
    """JAX with the whole epoch in one ``jax.jit`` call (:class:`fastscratch.integrations.jax.JaxNetwork`):
    permutation drawn inside, ``lax.scan`` over the full batches, the ragged last batch as its own
    step, parameters and optimizer state donated, timed to ``block_until_ready``; compiled here
    (``compile_seconds``).  float64 runs under ``jax.enable_x64(True)``, around this trainer's calls only."""

    frameworks = ("jax",)
    #: the platform of the JAX device the arrays are put on (``jax.devices(platform)[0]``): the CPU
    #: even where JAX also has a GPU, so ``jax`` stays the CPU peer (``jax-gpu``: :class:`JaxGpuTrainer`)
    platform = "cpu"

    def __init__(self, workload: Workload, data: tuple[np.ndarray, ...]) -> None:
        super().__init__(workload, data)
        jax = self._import()
        from ..integrations.jax import JaxNetwork

        on = self.jax_device(jax)
        self.net = JaxNetwork(initial_network(workload, self.sizes), self.X_train, self.y_train, lr=workload.lr,
                              batch_size=workload.batch_size, optimizer=workload_optimizer(workload),
                              seed=workload.seed, given_orders=workload.batches == "shared", device=on)
        self.compile_seconds = self.net.compile_seconds
        self.device = "gpu" if on.platform in ("gpu", "cuda", "rocm") else on.platform
        flags = os.environ.get("XLA_FLAGS", "")
        self.threads_note = (f"jax {jax.__version__} on {on.platform} device {on.id} ({jax.device_count(on.platform)} "
                             f"device, XLA's own thread pool{', XLA_FLAGS=' + flags if flags else ''})")

    @classmethod
    def _import(cls):
        from ..integrations.jax import INSTALL_HINT, import_jax

        try:
            return import_jax()
        except ImportError:
            raise Skipped(f"not installed ({INSTALL_HINT})") from None

    @classmethod
    def jax_device(cls, jax) -> Any:
        """The first JAX device of :attr:`platform`; :class:`Skipped` when JAX has none."""
        try:
            return jax.devices(cls.platform)[0]
        except RuntimeError as exc:  # "Unknown backend: 'gpu' requested, but no platforms ..."
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise Skipped(f"JAX {jax.__version__} has no {cls.platform.upper()} device ({first})") from None

    @classmethod
    def require(cls, framework: str) -> None:
        cls.jax_device(cls._import())

    def epoch(self) -> float:
        return self.net.fit_epoch(self.shared_order())

    def accuracy(self) -> float:
        return self.net.accuracy(self.X_test, self.y_test)

    def parameters(self) -> list[np.ndarray]:
        return self.net.params()


class JaxGpuTrainer(JaxTrainer):
    """The jitted JAX epoch (:class:`JaxTrainer`) on ``jax.devices("gpu")[0]`` (``jax-gpu``):
    parameters, optimizer state and data put there once, when the trainer is built."""

    frameworks = ("jax-gpu",)
    device = "gpu"
    platform = "gpu"

    def device_info(self) -> dict[str, str]:
        from .system import gpu_info

        return gpu_info("jax")


_TRAINERS: dict[str, type[Trainer]] = {
    name: cls for cls in (FastscratchTrainer, FastscratchGpuTrainer, KerasTrainer, TorchTrainer, TorchCudaTrainer,
                          TorchCompileTrainer, JaxTrainer, JaxGpuTrainer, KerasJaxTrainer)
    for name in cls.frameworks}
assert set(_TRAINERS) == set(FRAMEWORKS), "every framework has one trainer class"


def make_trainer(workload: Workload, data: tuple[np.ndarray, ...] | None = None) -> Trainer:
    """A trainer for ``workload``; raises :class:`Skipped` if its framework is not installed
    (or, for ``torch-compile``, does not compile here)."""
    if data is None:
        data = load_data(workload.dataset, workload.dtype)[1]
    return _TRAINERS[workload.framework](workload, data)


# ------------------------------------------------------------------------- runs
def thread_summary() -> str:
    """BLAS library and threads, plus the framework thread pools that are loaded."""
    from .system import blas_summary

    parts = [blas_summary()]
    if "torch" in sys.modules:
        parts.append(f"torch {plural(sys.modules['torch'].get_num_threads(), 'thread')}")
    return "; ".join(parts)


def _start(workload: Workload, data: tuple[np.ndarray, ...] | None) -> tuple[Result, Trainer | None]:
    """The Result to fill and the trainer; no trainer (and a "skipped" status) when the
    framework is not installed."""
    from ..training.threads import usable_cores
    from .system import cpu_model, host_name, versions

    name, loaded = (resolve_dataset(workload.dataset), data) if data is not None else \
        load_data(workload.dataset, workload.dtype)
    result = Result(workload, dataset=name, n_train=len(loaded[0]), versions=versions(), host=host_name(),
                    cpu=cpu_model(), cores=usable_cores())
    try:
        trainer = make_trainer(workload, loaded)
    except Skipped as exc:
        result.status = f"skipped: {exc}"
        result.device = _TRAINERS[workload.framework].device_of(workload.framework)  # where it would have run
        return result, None
    except Exception as exc:  # a framework that breaks here must not take the others' results with it
        _failed(result, exc)
        result.device = _TRAINERS[workload.framework].device_of(workload.framework)
        return result, None
    result.device = trainer.device
    result.device_info = trainer.device_info()
    result.compile_seconds = trainer.compile_seconds
    result.sizes = list(trainer.sizes)
    return result, trainer


def _failed(result: Result, exc: Exception) -> None:
    """Mark ``result`` failed with the error, in one line (the bench exits non-zero for it)."""
    result.status = "failed: " + " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def check_group(workloads: Sequence[Workload]) -> None:
    """``ValueError`` unless ``workloads`` form one ratio group: at least one, all alike but for
    the framework (batch size, dataset, architecture, activation, dtype, optimizer, lr, seed)."""
    workloads = list(workloads)
    if not workloads or not all(isinstance(w, Workload) for w in workloads):
        raise ValueError("a ratio group needs one or more Workload objects")
    first = dataclasses.asdict(workloads[0])
    for w in workloads[1:]:
        other = dataclasses.asdict(w)
        differ = [k for k in first if k != "framework" and first[k] != other[k]]
        if differ:
            raise ValueError(f"the workloads of a ratio group may differ only by framework; {w.framework} has "
                             + ", ".join(f"{k}={other[k]!r} (not {first[k]!r})" for k in differ))


def _rounds(started: list[tuple[Result, Trainer]], rounds: int, clock0: float,
            after: Callable[[Result, Trainer, float], bool] | None = None,
            between: Callable[[int], None] | None = None) -> None:
    """``rounds`` interleaved rounds: one epoch of every trainer per round, in the group's order
    in even rounds and reversed in odd ones (A B C, C B A, A B C, ...).  Each epoch's start
    (seconds after ``clock0``) and seconds are appended to its Result; ``after(result, trainer,
    seconds)`` returning True takes that trainer out of the later rounds; ``between(k)`` runs
    after round ``k``."""
    active = list(started)
    for k in range(rounds):
        if not active:
            return
        for pair in (active if k % 2 == 0 else active[::-1]):
            result, trainer = pair
            if len(started) > 1:
                time.sleep(SETTLE_SECONDS)  # the previous framework's idle threads stop spinning
            result.epoch_started.append(time.perf_counter() - clock0)
            try:
                seconds = trainer.epoch()
            except Exception as exc:  # this framework's failure, recorded; the others go on
                _failed(result, exc)
                active.remove(pair)
                continue
            result.epoch_seconds.append(seconds)
            if after is not None and after(result, trainer, seconds):
                active.remove(pair)
        if between is not None:
            between(k)


#: the pause before each epoch of a group of several frameworks: a framework's thread pools
#: spin for a while after its epoch (OpenBLAS's ~0.1 s, OpenMP's, XLA's), taking cores from
#: whatever runs next (a Numba epoch right after a NumPy-backend one lost 20%: its helper
#: thread found a core busy); every framework starts its epoch on a settled machine
SETTLE_SECONDS = 0.3


def reference_gemm(sizes: Sequence[int], batch: int) -> tuple[int, int, int]:
    """The product a step's speed is compared with: the first layer's forward product on the
    rows of one pass, ``(rows x n0) x (n0 x n1)`` with ``rows = min(batch, MAX_PASS_ROWS)`` --
    (B x 784) x (784 x 128) for the tutorial network (a full batch runs in passes of that many rows)."""
    from ..training.epoch import MAX_PASS_ROWS

    return min(batch, MAX_PASS_ROWS), sizes[0], sizes[1]


def run_group(workloads: Sequence[Workload], epochs: int = 3, warmup: int = 1,
              data: tuple[np.ndarray, ...] | None = None, accuracy: bool = True,
              on_epoch: Callable[[Result, float], None] | None = None, sgemm: bool = False) -> list[Result]:
    """Time one ratio group (:func:`check_group`): build every trainer (compiling where the
    framework compiles), train ``warmup`` untimed epochs of each, then ``epochs`` interleaved
    rounds of one timed epoch per framework (:func:`_rounds`: the order reversed every other
    round).  Ratios between the Results are then measured under the same conditions on a
    shared machine.  ``accuracy``: also compute the test accuracy at the end.
    ``on_epoch(result, seconds)`` after each timed epoch.  ``sgemm``: also time this machine's
    SGEMM at the group's :func:`reference_gemm` after every round (about 0.2 s each), so the
    share of it each framework reaches is measured under the same load as its epochs
    (``Result.sgemm``).  One :class:`Result` per workload, in order."""
    check_group(workloads)
    if epochs < 1 or warmup < 0:
        raise ValueError(f"epochs must be >= 1 and warmup >= 0, got {epochs} and {warmup}")
    if data is None:
        data = load_data(workloads[0].dataset, workloads[0].dtype)[1]
    started = [_start(w, data) for w in workloads]
    live = [(r, t) for r, t in started if t is not None]
    for result, trainer in list(live):
        try:
            warm = [trainer.epoch() for _ in range(warmup)]
        except Exception as exc:  # recorded as this framework's failure; the others go on
            _failed(result, exc)
            live.remove((result, trainer))
            continue
        result.warmup_seconds = warm[0] if warm else math.nan

    def after(result: Result, trainer: Trainer, seconds: float) -> bool:
        if on_epoch is not None:
            on_epoch(result, seconds)
        return False

    rates: list[float] = []
    gemm = reference_gemm(live[0][1].sizes, live[0][1].batch_size) if live and sgemm else None

    def between(round_index: int) -> None:
        if gemm is not None:
            rates.append(sgemm_rate(*gemm, dtype=workloads[0].dtype, seconds=0.2, repeats=3)[0])

    _rounds(live, epochs, time.perf_counter(), after, between)
    for result, trainer in live:
        if not result.ok:
            continue  # failed in a round
        if rates:
            result.sgemm, result.sgemm_gemm = (statistics.median(rates), min(rates), max(rates)), gemm
        _summarise(result, trainer)
        if accuracy:
            try:
                result.test_accuracy = trainer.accuracy()
            except Exception as exc:
                _failed(result, exc)
        _record_threads(result, trainer)
    return [r for r, _ in started]


def _record_threads(result: Result, trainer: Trainer) -> None:
    """The BLAS and thread pools the trainer ran with, and its compile seconds, into ``result``."""
    result.blas = thread_summary()
    result.threads = "; ".join(filter(None, [result.blas, trainer.threads_note]))
    result.compile_seconds = trainer.compile_seconds


def run(workload: Workload, epochs: int = 3, warmup: int = 1, data: tuple[np.ndarray, ...] | None = None,
        on_epoch: Callable[[int, float], None] | None = None) -> Result:
    """One workload alone (a group of one, :func:`run_group`): ``warmup`` untimed then ``epochs``
    timed epochs; ``on_epoch(epoch, seconds)`` after each timed one."""
    callback = None if on_epoch is None else (lambda result, seconds: on_epoch(len(result.epoch_seconds), seconds))
    return run_group([workload], epochs=epochs, warmup=warmup, data=data, on_epoch=callback)[0]


def _summarise(result: Result, trainer: Trainer) -> None:
    times = result.epoch_seconds
    if not times:
        return
    result.median_seconds = statistics.median(times)
    result.min_seconds, result.max_seconds = min(times), max(times)
    result.samples_per_second = result.n_train / result.median_seconds
    result.gflops = flops_per_sample(trainer.sizes) * result.samples_per_second / 1e9


def time_to_accuracy_group(workloads: Sequence[Workload], target: float | None = None, max_epochs: int = 30,
                           data: tuple[np.ndarray, ...] | None = None,
                           on_epoch: Callable[[Result], None] | None = None) -> list[Result]:
    """Train a ratio group in interleaved rounds (as :func:`run_group`, no warm-up) until each
    framework's test accuracy reaches ``target`` (default: 0.88 on Fashion-MNIST, 0.92 on the
    MNIST sample), checked after every epoch; a framework that reaches it leaves the rounds.
    The clock counts training epochs only (compilation apart, as in ``compile_seconds``).
    ``seconds_to_target`` is None when ``max_epochs`` pass first ("not reached").  Give the
    workloads ``batches="shared"`` for every framework to see the same batches."""
    check_group(workloads)
    if data is None:
        data = load_data(workloads[0].dataset, workloads[0].dtype)[1]
    started = [_start(w, data) for w in workloads]
    for result, _ in started:
        result.target_accuracy = DEFAULT_TARGETS.get(result.dataset, 0.9) if target is None else target

    def after(result: Result, trainer: Trainer, seconds: float) -> bool:
        elapsed = sum(result.epoch_seconds)
        result.test_accuracy = trainer.accuracy()
        result.accuracy_curve.append((elapsed, result.test_accuracy))
        reached = result.test_accuracy >= result.target_accuracy
        if reached:
            result.seconds_to_target, result.epochs_to_target = elapsed, len(result.epoch_seconds)
        if on_epoch is not None:
            on_epoch(result)
        return reached

    live = [(r, t) for r, t in started if t is not None]
    _rounds(live, max_epochs, time.perf_counter(), after)
    for result, trainer in live:
        _summarise(result, trainer)
        _record_threads(result, trainer)
    return [r for r, _ in started]


def time_to_accuracy(workload: Workload, target: float | None = None, max_epochs: int = 30,
                     data: tuple[np.ndarray, ...] | None = None) -> Result:
    """One workload alone to ``target`` (a group of one, :func:`time_to_accuracy_group`)."""
    return time_to_accuracy_group([workload], target, max_epochs, data)[0]


# ------------------------------------------------------------------------ sweep
#: The scaling benchmark's defaults: two hidden layers of each width (784-W-W-10) ...
SWEEP_WIDTHS = (64, 128, 256, 512, 1024, 2048)
SWEEP_BATCH_SIZES = (32, 128, 512)
#: ... fastscratch (Numba), JAX and PyTorch.
SWEEP_FRAMEWORKS = ("fastscratch-numba", "jax", "torch")


def largest_gemm(sizes: Sequence[int], batch: int) -> tuple[int, int, int]:
    """``(m, k, n)`` of the training step's largest matrix product for layer sizes ``sizes`` at
    ``batch`` rows: the forward ``(batch, a) x (a, b)`` of the layer with the most weights (its
    weight- and input-gradient products have the same FLOP count, transposed)."""
    a, b = max(zip(sizes[:-1], sizes[1:]), key=lambda pair: pair[0] * pair[1])
    return batch, a, b


def sweep_rows(sizes: Sequence[int], batch: int, n_train: int, seconds: float, gflops: float) -> int:
    """Training rows per timed epoch of the sweep: all ``n_train`` when an epoch at ``gflops``
    takes at most ``seconds``; else a whole number of batches (at least 4) that takes about that."""
    wanted = seconds * gflops * 1e9 / flops_per_sample(sizes)
    if wanted >= n_train:
        return n_train
    return min(n_train, max(4, int(wanted // batch)) * batch)


@dataclasses.dataclass
class SweepPoint:
    """One width x batch size of :func:`sweep`: the ratio group's Results (one per framework),
    the rows each timed epoch trained (``rows`` of ``n_train``), and the SGEMM rate it is
    compared with: ``sgemm`` (median, min, max GFLOP/s) at ``gemm = (m, k, n)``, the step's
    largest product (:func:`largest_gemm`), NumPy's BLAS on ``sgemm_threads`` threads: the
    better of one thread and all (at small shapes one thread can be the faster)."""

    width: int
    batch_size: int
    rows: int
    n_train: int
    gemm: tuple[int, int, int]
    sgemm: tuple[float, float, float]
    sgemm_threads: int
    results: list[Result]

    def to_dict(self) -> dict[str, Any]:
        record = {k: v for k, v in dataclasses.asdict(self).items() if k != "results"}
        record["results"] = [r.to_dict() for r in self.results]
        return record


def sweep(widths: Sequence[int] = SWEEP_WIDTHS, batch_sizes: Sequence[int] = SWEEP_BATCH_SIZES,
          frameworks: Sequence[str] = SWEEP_FRAMEWORKS, dataset: str = "auto", dtype: str = "float32",
          optimizer: str = "sgd", lr: float = 0.1, seed: int = 0, epochs: int = 3, warmup: int = 1,
          seconds: float = 0.5, sgemm_seconds: float = 0.3,
          on_point: Callable[[SweepPoint], None] | None = None) -> list[SweepPoint]:
    """The scaling benchmark: for each hidden width ``W`` (784-W-W-10, ReLU) and batch size, one
    ratio group of ``frameworks`` timed in interleaved rounds (:func:`run_group`, no accuracy).

    Bounded time: wide networks take many seconds per 60k-row epoch, so each point trains
    ``rows`` rows per timed epoch (:func:`sweep_rows`: the whole training set when an epoch
    at the SGEMM rate takes at most ``seconds``, else a whole number of batches that takes
    about that), the first rows of a fixed random order of the training set (seeded by
    ``seed``), the same rows for every framework.  GFLOP/s count the rows trained.  The
    SGEMM rate each point is compared with is measured at its step's largest GEMM shape
    (:func:`largest_gemm`, :func:`best_sgemm_rate`) for ``sgemm_seconds`` per thread count.
    ``on_point(point)`` after each point.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    points = []
    for group in sweep_groups(widths, batch_sizes, frameworks, dataset, dtype, optimizer, lr, seed):
        points.append(sweep_point(group, epochs=epochs, warmup=warmup, seconds=seconds, sgemm_seconds=sgemm_seconds))
        if on_point is not None:
            on_point(points[-1])
    return points


def sweep_groups(widths: Sequence[int] = SWEEP_WIDTHS, batch_sizes: Sequence[int] = SWEEP_BATCH_SIZES,
                 frameworks: Sequence[str] = SWEEP_FRAMEWORKS, dataset: str = "auto", dtype: str = "float32",
                 optimizer: str = "sgd", lr: float = 0.1, seed: int = 0) -> list[list[Workload]]:
    """The ratio groups of :func:`sweep`, one per width and batch size (784-W-W-10, ReLU), in its
    order; the dataset resolved (:func:`resolve_dataset`), so every group names the same one."""
    widths = [int(w) for w in widths]
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"widths must be positive integers, got {widths}")
    if not batch_sizes or any(b is None or b < 1 for b in batch_sizes):
        raise ValueError("the sweep times mini-batches: batch sizes must be positive integers (full batch "
                         f"is not one here, each epoch trains a fixed number of rows), got {list(batch_sizes)}")
    name = resolve_dataset(dataset)
    return [[Workload(framework=f, batch_size=batch, dataset=name, hidden=(width, width), dtype=dtype,
                      optimizer=optimizer, lr=lr, seed=seed) for f in frameworks]
            for width in widths for batch in batch_sizes]


def sweep_point(group: Sequence[Workload], epochs: int = 3, warmup: int = 1, seconds: float = 0.5,
                sgemm_seconds: float = 0.3) -> SweepPoint:
    """One point of :func:`sweep`: the ratio group ``group`` (784-W-W-10 at one batch size, from
    :func:`sweep_groups`) timed by :func:`run_group` on the rows :func:`sweep_rows` picks from the
    SGEMM rate measured here, at the step's largest GEMM, just before."""
    check_group(group)
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    first = group[0]
    name, (X_train, y_train, X_test, y_test) = load_data(first.dataset, first.dtype)
    order = np.random.default_rng(first.seed).permutation(len(X_train))
    width, batch = first.hidden[0], first.batch_size
    sizes = [X_train.shape[1], *first.hidden, int(max(y_train.max(), y_test.max())) + 1]
    gemm = largest_gemm(sizes, batch)
    rate, threads = best_sgemm_rate(*gemm, dtype=first.dtype, seconds=sgemm_seconds)
    rows = sweep_rows(sizes, batch, len(X_train), seconds, rate[0])
    chosen = order[:rows] if rows < len(X_train) else slice(None)
    data = (X_train[chosen], y_train[chosen], X_test, y_test)
    results = run_group(group, epochs=epochs, warmup=warmup, data=data, accuracy=False)
    return SweepPoint(width, batch, rows, len(X_train), gemm, rate, threads, results)


_SWEEP_COLUMNS = ("width", "batch", "rows/epoch", "SGEMM m x k x n", "SGEMM GFLOP/s", "framework",
                  "s/epoch median [min-max]", "GFLOP/s", "%SGEMM", "vs jax", "vs torch")


def sweep_table_rows(points: Sequence[SweepPoint]) -> list[list[str]]:
    """One row of cells per framework and point (see :data:`_SWEEP_COLUMNS`): GFLOP/s and their
    share of the point's SGEMM rate, s/epoch ratios to JAX and PyTorch in the same group."""
    rows = []
    for p in points:
        jax = next((r for r in p.results if r.workload.framework == "jax"), None)
        torch = next((r for r in p.results if r.workload.framework == "torch"), None)
        head = [str(p.width), str(p.batch_size), "all" if p.rows == p.n_train else f"{p.rows:,}",
                "x".join(map(str, p.gemm)), f"{p.sgemm[0]:.1f} ({p.sgemm_threads}t)"]
        for r in p.results:
            if not r.ok:
                rows.append(head + [r.workload.framework, r.status])
                continue
            rows.append(head + [r.workload.framework,
                                f"{r.median_seconds:.3f} [{r.min_seconds:.3f}-{r.max_seconds:.3f}]", f"{r.gflops:.1f}", f"{r.gflops / p.sgemm[0]:.0%}", _ratio(r.median_seconds, jax),
                                _ratio(r.median_seconds, torch)])
    return rows


def format_sweep_table(points: Sequence[SweepPoint], markdown: bool = False) -> list[str]:
    """:func:`sweep_table_rows` as aligned text lines, or as a Markdown table."""
    return _render(_SWEEP_COLUMNS, sweep_table_rows(points), [5, 5, 10, 15, 13, 18, 26, 8, 7, 7, 8],
                   [">", ">", ">", ">", ">", "<", "<", ">", ">", ">", ">"], markdown)


def format_sweep_by_worker(points: Sequence[SweepPoint], markdown: bool = False) -> list[str]:
    """:func:`format_sweep_table` per worker (the ``worker`` its points' Results record), each under
    its :func:`worker_heading`; every point is one ratio group, measured whole on one worker."""
    lines: list[str] = []
    for worker in workers([p.results[0] for p in points if p.results]):
        mine = [p for p in points if p.results and p.results[0].worker == worker]
        heading = worker_heading([r for p in mine for r in p.results])
        lines += ([f"**{heading}**", ""] if markdown else [heading]) + format_sweep_table(mine, markdown) + [""]
    return lines[:-1]


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
    _TRAINERS[framework].require(framework)


def _memory_job(workload: Workload, epochs: int) -> dict[str, Any]:
    """The job :func:`peak_rss` measures, run in the child process; returns its record."""
    try:
        _import_framework(workload.framework)
    except Skipped as exc:
        return {"status": f"skipped: {exc}"}
    baseline, _, _ = _process_peak()
    if workload.framework == "fastscratch-numba":
        from ..kernels import numba_kernels

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
_CHILD_CODE = "import sys; from fastscratch.tools.bench import _memory_child; sys.exit(_memory_child(sys.argv[1:]))"


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
        from .system import versions

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


def best_sgemm_rate(m: int, k: int, n: int, dtype: str = "float32",
                    seconds: float = 0.3) -> tuple[tuple[float, float, float], int]:
    """:func:`sgemm_rate` at ``(m, k) x (k, n)`` on one BLAS thread and on all (as configured),
    alternated; ``((median, min, max), threads)`` of the one with the higher median."""
    from threadpoolctl import threadpool_info, threadpool_limits

    most = max((p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"), default=1)
    everything = sgemm_rate(m, k, n, dtype, seconds)
    with threadpool_limits(limits=1, user_api="blas"):
        single = sgemm_rate(m, k, n, dtype, seconds)
    return (everything, most) if everything[0] >= single[0] or most == 1 else (single, 1)


# ----------------------------------------------------------------------- report
def _ratio(value: float, reference: Result | None) -> str:
    if reference is None or not reference.ok or not reference.epoch_seconds:
        return "-"
    return f"{value / reference.median_seconds:.2f}x"


#: The ratio columns: header and the framework whose s/epoch (same batch size, same run) divides.
RATIO_COLUMNS = (("vs keras", "tf.keras"), ("vs torch", "torch"), ("vs jax", "jax"))
_COLUMNS = ("batch", "framework", "s/epoch median [min-max]", "samples/s", "GFLOP/s", "%SGEMM", "test acc",
            *(header for header, _ in RATIO_COLUMNS))


def _share(result: Result, sgemm: tuple[float, float, float] | None) -> str:
    """The result's GFLOP/s as a share of its group's SGEMM reference (measured in its rounds),
    else of ``sgemm``, else of the rate its Dask worker measured before the group
    (``sgemm_gflops``); "-" without any."""
    reference = (result.sgemm or sgemm or (result.sgemm_gflops,))[0]
    return f"{result.gflops / reference:.0%}" if reference > 0 else "-"


def sgemm_lines(results: Sequence[Result]) -> list[str]:
    """One line per ratio group with its SGEMM reference: shape, median [min-max] GFLOP/s."""
    seen, lines = set(), []
    for r in results:
        if r.sgemm is None or (r.workload.batch_size, r.sgemm_gemm) in seen:
            continue
        seen.add((r.workload.batch_size, r.sgemm_gemm))
        m, k, n = r.sgemm_gemm
        lines.append(f"batch {r.workload.batch_size or 'full'}: ({m}x{k})x({k}x{n}) {r.sgemm[0]:.1f} GFLOP/s "
                     f"[{r.sgemm[1]:.1f}-{r.sgemm[2]:.1f}]")
    return lines


def table_rows(results: Sequence[Result], sgemm: tuple[float, float, float] | None = None) -> list[list[str]]:
    """One row of cells per result (see :data:`_COLUMNS`): per batch size, each framework's
    s/epoch (median [min-max]), samples/s, GFLOP/s, share of the SGEMM rate (its group's
    reference where measured, else ``sgemm``), test accuracy,
    and s/epoch ratios to tf.keras, PyTorch (eager) and JAX in the same run (below 1: faster
    than them; :data:`RATIO_COLUMNS`).  A skipped result has its status in the third cell and
    nothing after it."""
    rows = []
    for group in ratio_groups(results):
        batch = group[0].workload.batch_size or group[0].n_train
        references = [next((r for r in group if r.workload.framework == name), None) for _, name in RATIO_COLUMNS]
        for r in group:
            label = "full" if r.workload.batch_size is None else str(batch)
            if not r.ok:
                rows.append([label, r.workload.framework, r.status])
                continue
            rows.append([label, r.workload.framework,
                         f"{r.median_seconds:.3f} [{r.min_seconds:.3f}-{r.max_seconds:.3f}]",
                         f"{r.samples_per_second:,.0f}", f"{r.gflops:.1f}",
                         _share(r, sgemm), f"{r.test_accuracy:.4f}",
                         *(_ratio(r.median_seconds, reference) for reference in references)])
    return rows


def ratio_groups(results: Sequence[Result]) -> list[list[Result]]:
    """``results`` cut into their ratio groups, ordered by batch size (then as given): results
    of one workload but for the framework, measured by the same worker (``Result.worker``; ""
    for this process).  The table's ratios divide only within a group, so a time measured on
    one machine is never divided by one measured on another."""
    groups: dict[tuple[str, Workload], list[Result]] = {}
    for r in results:
        groups.setdefault((r.worker, dataclasses.replace(r.workload, framework=FRAMEWORKS[0])), []).append(r)
    return sorted(groups.values(), key=lambda group: group[0].workload.batch_size or group[0].n_train)


def _render(columns: Sequence[str], rows: list[list[str]], widths: Sequence[int], align: Sequence[str],
            markdown: bool) -> list[str]:
    """Rows as a Markdown table, or as aligned text lines under a header; a short row (a skipped
    run: label, framework, status) is written out as it is."""
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
        return lines + ["| " + " | ".join(row + [""] * (len(columns) - len(row))) + " |" for row in rows]
    render = lambda cells: "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()  # noqa: E731
    header = render(list(columns))
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(render(row) if len(row) == len(columns) else "  ".join(
            f"{c:{a}{w}}" for c, a, w in zip(row[:-1], align, widths)) + "  " + row[-1])
    return lines


def format_table(results: Sequence[Result], sgemm: tuple[float, float, float] | None = None,
                 markdown: bool = False) -> list[str]:
    """:func:`table_rows` as aligned text lines, or as a Markdown table."""
    return _render(_COLUMNS, table_rows(results, sgemm), [6, 18, 26, 10, 8, 7, 8, 9, 9, 9],
                   [">", "<", "<", ">", ">", ">", ">", ">", ">", ">"], markdown)


def device_lines(results: Sequence[Result]) -> list[str]:
    """One line per device the results ran on (:func:`fastscratch.tools.system.device_summary` of
    their ``device_info``), naming its frameworks, e.g. ``Device gpu: NVIDIA H200 (driver ...,
    CUDA runtime ...): torch-cuda, jax-gpu``; skipped results, which ran nowhere, on one line of
    their own by the device they were meant for: ``Device gpu: none used (skipped: ...)``."""
    from .system import device_summary

    ran: dict[str, list[str]] = {}
    skipped: dict[str, list[str]] = {}
    for r in results:
        if r.ok and r.device_info:
            names = ran.setdefault(device_summary(r.device_info), [])
        else:
            names = skipped.setdefault(r.device, [])
        if r.workload.framework not in names:
            names.append(r.workload.framework)
    lines = [f"Device {summary}: {', '.join(names)}" for summary, names in ran.items()]
    return lines + [f"Device {device}: none used (skipped: {', '.join(names)})" for device, names in skipped.items()]


def workers(results: Sequence[Result]) -> list[str]:
    """The workers that measured ``results`` (``Result.worker``), in order of first appearance."""
    return list(dict.fromkeys(r.worker for r in results))


def worker_heading(results: Sequence[Result]) -> str:
    """One line on where ``results`` (one worker's) were measured: the worker, its host, CPU,
    usable cores and BLAS, and the SGEMM rates measured there before each group."""
    first = next((r for r in results if r.ok), results[0])
    rates = [f"{g[0].sgemm_gflops:.1f}" for g in ratio_groups(results) if g[0].sgemm_gflops > 0]
    return (f"Worker {first.worker or '(this process)'}: host {first.host}, {first.cpu}, {first.cores} usable "
            f"cores; BLAS: {first.blas or 'unknown'}"
            + (f"; SGEMM (128x784)x(784x128) before each group: {', '.join(rates)} GFLOP/s" if rates else ""))


def format_by_worker(results: Sequence[Result], markdown: bool = False) -> list[str]:
    """:func:`format_table` per worker (:func:`workers`), each under its :func:`worker_heading`:
    the rows of one worker together, %SGEMM against the rate measured on that worker, ratios
    within that worker's ratio groups only."""
    lines: list[str] = []
    for worker in workers(results):
        mine = [r for r in results if r.worker == worker]
        heading = worker_heading(mine)
        lines += ([f"**{heading}**", ""] if markdown else [heading]) + format_table(mine, markdown=markdown) + [""]
    return lines[:-1]


def format_compile_times(results: Sequence[Result]) -> list[str]:
    """One entry per framework that compiled apart from its epochs (``compile_seconds`` above 0:
    not the NumPy backend, which compiles nothing), the largest over ``results``: ``["jax 0.41 s", ...]``."""
    most: dict[str, float] = {}
    for r in results:
        if r.ok and r.compile_seconds > 0:  # NaN compares false
            most[r.workload.framework] = max(most.get(r.workload.framework, 0.0), r.compile_seconds)
    return [f"{name} {seconds:.2f} s" for name, seconds in most.items()]


def format_time_to_accuracy(results: Sequence[Result]) -> list[str]:
    lines = []
    for r in results:
        if not r.ok:
            lines.append(f"  {r.workload.label:<24} {r.status}")
        elif r.seconds_to_target is None:
            lines.append(f"  {r.workload.label:<24} not reached in {plural(len(r.epoch_seconds), 'epoch')} "
                         f"(best {max(a for _, a in r.accuracy_curve):.4f})")
        else:
            lines.append(f"  {r.workload.label:<24} {r.seconds_to_target:7.2f} s "
                         f"({plural(r.epochs_to_target, 'epoch')}, "
                         f"test accuracy {r.test_accuracy:.4f})")
    return lines
