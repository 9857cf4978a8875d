"""The Keras equivalent of a fastscratch network, trained on the same batches.

:func:`train_keras` builds the Keras ``Sequential`` model that computes what a
:class:`~fastscratch.NeuralNetwork` computes (``Dense`` layers with the same
activations, a softmax output, ``sparse_categorical_crossentropy``), copies the
network's *current* weights into it, and trains it with the equivalent
optimizer on the batches ``nn.fit`` would train on next: the per-epoch
permutations are drawn from a copy of the network's generator exactly as
``fit`` draws them, and fed to Keras through a ``tf.data`` pipeline that
gathers the rows in that order (Keras' own shuffling is never used).  The
network itself is not changed, so the usual pattern is::

    nn = NeuralNetwork([784, 128, 64, 10], seed=0)
    run = train_keras(nn, X, y, lr=0.1, epochs=1, batch_size=128)   # Keras, from nn's start
    nn.fit(X, y, lr=0.1, epochs=1, batch_size=128)                   # fastscratch, same start

Conventions that make the two agree (float32 round-off aside):

============================  ==============================================
fastscratch                   tf.keras
============================  ==============================================
``W[l]: (n_in, n_out)``       ``Dense.kernel`` (same layout, copied as is)
``"sgd"``                     ``SGD(learning_rate=lr)``
``Momentum(m, nesterov)``     ``SGD(lr, momentum=m, nesterov=nesterov)``
``Adam(b1, b2, eps)``         ``Adam(lr, beta_1=b1, beta_2=b2, epsilon=eps)``
``weight_decay=wd``           ``kernel_regularizer=L2(wd / 2)`` (biases none)
loss of a batch               mean cross-entropy (``sum_over_batch_size``)
============================  ==============================================

Two Keras back ends, chosen explicitly with ``keras_backend=``:

- ``"tensorflow"`` (the default): **tf.keras**, the CPU reference, fed through ``tf.data``;
- ``"jax"``: **Keras 3 (JAX backend)**, the same model, weights, optimizer and batches on
  JAX (CPU, or a GPU JAX sees), fed the rows already in fit's order with ``shuffle=False``.

Keras chooses its backend once per process, when ``keras`` is first imported (from
``KERAS_BACKEND``): :func:`import_keras` sets ``KERAS_BACKEND`` itself before that first
import, and raises :class:`KerasBackendError` when Keras is already loaded with the other
backend (run that side in a fresh process then).  Labels: :data:`KERAS_BACKENDS`.

TensorFlow is imported on first use, with its C++ log level set to errors
only; its start-up messages are captured and summarised in one warning
(:class:`TensorFlowStartupWarning`) only when something above INFO level was
said.  Without TensorFlow, an ``ImportError`` names the ``keras`` extra.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import _validation as check
from .._equivalents import framework_object
from ..activations import get_activation
from ..history import History
from ..network import NeuralNetwork
from ..optimizers import Optimizer, get_optimizer
from .steps import copy_rng, epoch_orders

__all__ = ["TensorFlowStartupWarning", "KerasBackendError", "KerasRun", "KERAS_BACKENDS", "import_tensorflow",
           "import_keras", "check_keras_backend", "keras_versions", "build_model", "keras_optimizer", "train_keras", "resolve_device",
           "startup_messages"]

INSTALL_HINT = "install it with `pip install 'fastscratch[keras]'` (it brings tensorflow-cpu)"
#: the Keras backends a reference can run on, with the label results carry
KERAS_BACKENDS = {"tensorflow": "tf.keras", "jax": "Keras 3 (JAX backend)"}

_tf = None  # the tensorflow module, once imported
_import_lock = threading.Lock()  # one thread at a time redirects stderr
_startup_messages: list[str] = []


class TensorFlowStartupWarning(UserWarning):
    """TensorFlow said something above INFO level while it was being imported."""


class KerasBackendError(RuntimeError):
    """Keras is already loaded in this process with another backend than the one asked for."""


def startup_messages() -> list[str]:
    """Everything TensorFlow wrote to stderr or warned while being imported (one entry per line)."""
    return list(_startup_messages)


def import_tensorflow():
    """Import TensorFlow quietly and return the module.

    ``TF_CPP_MIN_LOG_LEVEL`` is set to ``2`` (errors only) unless the user set it, and
    ``KERAS_BACKEND`` to ``tensorflow`` if keras is not loaded yet (tf.keras is Keras 3 on
    whatever backend keras was first imported with).
    Some lines (the oneDNN notice) are written by C++ before that setting is read,
    so stderr is redirected into a temporary file during the import; what it
    caught, and any Python warnings, are kept in :func:`startup_messages` and
    summarised in one :class:`TensorFlowStartupWarning` unless all of them are
    INFO lines.  ``ImportError`` naming the ``keras`` extra if TensorFlow is missing.
    """
    with _import_lock:
        return _import_tensorflow_once()


def _import_tensorflow_once():
    global _tf
    if _tf is not None:
        return _tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "keras" not in sys.modules:  # the first import of keras picks its backend: TensorFlow's, here
        os.environ["KERAS_BACKEND"] = "tensorflow"
    captured: list[str] = []
    saved_fd = None
    try:
        sys.stderr.flush()
        saved_fd = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): import unredirected
        pass
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if saved_fd is not None:
            os.dup2(sink.fileno(), 2)
        try:
            import keras  # noqa: F401  (Keras 3 is what tf.keras resolves to)
            import tensorflow as tf
        except ImportError as exc:
            raise ImportError(f"fastscratch.integrations.keras needs TensorFlow ({exc}); {INSTALL_HINT}") from exc
        finally:
            if saved_fd is not None:
                os.dup2(saved_fd, 2)
                os.close(saved_fd)
            sink.seek(0)
            captured = [line for line in sink.read().decode("utf-8", "replace").splitlines() if line.strip()]
    python_warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
    _startup_messages[:] = captured + python_warnings
    serious = _worth_telling(captured) + python_warnings
    if serious:
        warnings.warn(f"TensorFlow {tf.__version__} printed {check.plural(len(serious), 'message')} while loading, "
                      f"the first: {serious[0][:300]} (all: fastscratch.integrations.keras.startup_messages())",
                      TensorFlowStartupWarning, stacklevel=3)  # the caller of import_tensorflow
    _tf = tf
    return tf


def _worth_telling(lines: list[str]) -> list[str]:
    """The captured C++ log lines above INFO level.  They start with their level letter
    and a digit (``I0000``, ``W0000``, ``E0000``, ``F0000``); absl's "All log messages
    before absl::InitializeLog()" preamble is itself noise, and unprefixed lines
    continue the line before them."""
    return [line for line in lines if line[:1] in "WEF" and line[1:2].isdigit()]


def check_keras_backend(keras_backend: str) -> str:
    """``keras_backend`` if it is one of :data:`KERAS_BACKENDS`, else ``ValueError``."""
    if not isinstance(keras_backend, str) or keras_backend not in KERAS_BACKENDS:
        raise ValueError(f"keras_backend must be one of {', '.join(map(repr, KERAS_BACKENDS))}, "
                         f"got {keras_backend!r}")
    return keras_backend


def _loaded_keras_backend() -> str | None:
    """The backend of the Keras already imported in this process, or None when none is."""
    loaded = sys.modules.get("keras")
    if loaded is None:
        return None
    try:
        return str(loaded.backend.backend())
    except AttributeError:  # a partly imported or stand-in module: not a Keras 3 with a backend
        return None


def import_keras(keras_backend: str = "tensorflow"):
    """The ``keras`` module running on ``keras_backend`` (``"tensorflow"`` or ``"jax"``).

    Keras reads ``KERAS_BACKEND`` once, when it is first imported; if it is not loaded yet,
    this sets ``KERAS_BACKEND`` to ``keras_backend`` and imports it (TensorFlow quietly,
    :func:`import_tensorflow`; JAX through :func:`fastscratch.integrations.jax.import_jax`).
    If Keras is already loaded with another backend, :class:`KerasBackendError` says so:
    ``KERAS_BACKEND`` must be set before keras is first imported, so that side must run in
    a process of its own.  ``ImportError`` naming the extra when a package is missing.
    """
    check_keras_backend(keras_backend)
    loaded = _loaded_keras_backend()
    if loaded is not None and loaded != keras_backend:
        raise KerasBackendError(_wrong_backend(loaded, keras_backend))
    if keras_backend == "tensorflow":
        import_tensorflow()
        import keras
    else:
        from .jax import import_jax

        import_jax()
        if loaded is None:
            os.environ["KERAS_BACKEND"] = keras_backend
        try:
            import keras
        except ImportError as exc:
            raise ImportError(f"Keras 3 (JAX backend) needs keras ({exc}); {INSTALL_HINT}") from exc
    found = _loaded_keras_backend()
    if found != keras_backend:  # e.g. a stand-in module, or a Keras older than 3
        raise KerasBackendError(_wrong_backend(found or "unknown", keras_backend))
    return keras


def _wrong_backend(loaded: str, wanted: str) -> str:
    return (f"{KERAS_BACKENDS[wanted]} asked for, but keras is already loaded in this process with its "
            f"{loaded!r} backend; Keras picks its backend once per process, from KERAS_BACKEND, which must be "
            f"set (KERAS_BACKEND={wanted}) before keras is first imported: run the {KERAS_BACKENDS[wanted]} side "
            "in a fresh process")


def _jax_device(device: str):
    """``(jax.Device, description)`` for :func:`resolve_device` on the JAX backend."""
    from .jax import import_jax

    jax = import_jax()
    if device == "gpu":
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:  # JAX raises when no GPU platform is present
            gpus = []
        if not gpus:
            platforms = ", ".join(sorted({d.platform for d in jax.devices()}))
            raise ValueError(f"device='gpu' asked for, but JAX sees no GPU (jax.devices('gpu') found none; "
                             f"platforms here: {platforms}); install JAX's CUDA build, e.g. "
                             "`pip install 'jax[cuda12]'`")
        chosen = gpus[0]
    elif device == "cpu":
        chosen = jax.devices("cpu")[0]
    else:
        chosen = jax.devices()[0]
    if chosen.platform == "cpu":
        return chosen, f"cpu ({check.plural(os.cpu_count() or 1, 'core')})"
    return chosen, f"{'gpu' if chosen.platform in ('gpu', 'cuda', 'rocm') else chosen.platform} ({chosen.device_kind})"


def resolve_device(device: str = "auto", keras_backend: str = "tensorflow") -> tuple[Any, str]:
    """``(device, description)`` for ``"auto"`` (the first GPU the backend sees, else the CPU),
    ``"cpu"`` or ``"gpu"``: on TensorFlow a device string (``"/GPU:0"``), on JAX a
    ``jax.Device``; ``ValueError`` if a GPU is asked for and none is seen."""
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
    if check_keras_backend(keras_backend) == "jax":
        return _jax_device(device)
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise ValueError("device='gpu' asked for, but TensorFlow sees no GPU "
                         "(tensorflow-cpu never does; install the `tensorflow[and-cuda]` build)")
    if gpus and device != "cpu":
        try:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        except Exception:  # details are best-effort; the device itself is what matters
            name = "GPU"
        return "/GPU:0", f"gpu ({name})"
    return "/CPU:0", f"cpu ({check.plural(os.cpu_count() or 1, 'core')})"


def keras_optimizer(optimizer: str | Optimizer | dict, lr: float, keras_backend: str = "tensorflow"):
    """The Keras optimizer that applies fastscratch's ``optimizer`` update rule at ``lr``
    (the optimizer registry's ``equivalents()["keras"]``, on either backend)."""
    keras = import_keras(keras_backend)

    opt = get_optimizer(optimizer)
    lr = check.check_positive_number("lr", lr)
    equivalent = opt.equivalents().get("keras")  # the optimizer registry's mapping
    if equivalent is None:
        raise TypeError(f"no Keras equivalent known for optimizer {opt!r}")
    path, kwargs = equivalent
    return framework_object(keras, path)(learning_rate=lr, **kwargs)


def build_model(nn: NeuralNetwork, weight_decay: float = 0.0, keras_backend: str = "tensorflow"):
    """The ``keras.Sequential`` equivalent of ``nn``, holding a copy of ``nn``'s current weights,
    on ``keras_backend`` (``"tensorflow"``: tf.keras, ``"jax"``: Keras 3 on JAX; :func:`import_keras`).

    Input ``(None, n_features)``; one ``Dense`` per layer with ``nn``'s activations and
    a softmax output, in ``nn``'s dtype.  ``weight_decay`` becomes an ``L2(weight_decay/2)``
    kernel regularizer (fastscratch's penalty is ``weight_decay/2 * sum(W**2)``).
    Dropout has no exact Keras equivalent (Keras draws its own random masks), so a
    network with dropout is refused with ``ValueError``.  Not compiled.
    """
    if not isinstance(nn, NeuralNetwork):
        raise TypeError(f"nn must be a fastscratch NeuralNetwork, got {type(nn).__name__}")
    if any(nn.dropout):
        raise ValueError("a network with dropout cannot be mirrored exactly in Keras (its masks come "
                         "from Keras' own random generator); use dropout=0 for a reference run")
    weight_decay = check.check_non_negative_number("weight_decay", weight_decay)
    keras = import_keras(keras_backend)

    dtype = nn.dtype.name
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    layers: list[Any] = [keras.Input(shape=(nn.n_features,), dtype=dtype)]
    activations = [get_activation(a).keras for a in nn.activations] + ["softmax"]  # the registry's names
    for size, activation in zip(nn.architecture[1:], activations):
        layers.append(keras.layers.Dense(size, activation=activation, dtype=dtype,
                                         kernel_regularizer=regularizer))
    model = keras.Sequential(layers, name="fastscratch_reference")
    model.set_weights([np.array(p, copy=True) for p in nn.parameters])  # [W0, b0, W1, b1, ...]
    return model


@dataclass
class KerasRun:
    """What :func:`train_keras` measured.

    - ``model``: the trained ``keras.Sequential``
    - ``history``: a fastscratch :class:`~fastscratch.History` (``cost`` is the mean
      training loss over the epoch's batches, Keras' ``loss``; ``seconds`` is the
      wall time from the epoch's first to its last callback, without evaluation)
    - ``step_losses``: ``(epochs, n_batches)`` mean loss of every batch before its
      update (without the L2 penalty), or ``None`` unless ``record_steps``
    - ``device``: where it ran, e.g. ``"cpu (2 cores)"``; ``jit_compile``: whether XLA was used
      (always on the JAX backend)
    - ``versions``: tensorflow and keras, or jax, jaxlib and keras
    - ``keras_backend``: ``"tensorflow"`` or ``"jax"``; ``label`` the results' name for it
    """

    model: Any
    history: History
    step_losses: np.ndarray | None
    device: str
    jit_compile: bool
    versions: dict[str, str] = field(default_factory=dict)
    keras_backend: str = "tensorflow"

    @property
    def label(self) -> str:
        """``"tf.keras"`` or ``"Keras 3 (JAX backend)"`` (:data:`KERAS_BACKENDS`)."""
        return KERAS_BACKENDS[self.keras_backend]

    def weights(self) -> list[np.ndarray]:
        """The trained parameters ``[W0, b0, W1, b1, ...]`` as NumPy arrays (fastscratch's layout)."""
        return [np.asarray(w) for w in self.model.get_weights()]


def train_keras(nn: NeuralNetwork, X_train: Any, y_train: Any, X_test: Any = None, y_test: Any = None, *,
                lr: float = 0.1, epochs: int = 1, batch_size: int | None = None,
                optimizer: str | Optimizer | dict = "sgd", weight_decay: float = 0.0, shuffle: bool = True,
                record_steps: bool = False, device: str = "auto", jit_compile: bool | str = "auto",
                on_epoch: Callable[[int, History], None] | None = None,
                keras_backend: str = "tensorflow") -> KerasRun:
    """Train the Keras equivalent of ``nn`` as ``nn.fit`` would train ``nn`` next.

    X_train: (n, n_features) ; y_train: (n,) labels or (n, n_classes) one-hot; the
    optional test pair is evaluated after each epoch (outside the timed part).
    Same batches as ``nn.fit(..., batch_size=batch_size, shuffle=shuffle)``: the
    permutations come from a copy of ``nn.rng``; ``nn`` is left untouched.
    ``keras_backend``: ``"tensorflow"`` (tf.keras: the rows gathered in fit's order inside a
    ``tf.data`` pipeline, so the gather is part of the timed epoch) or ``"jax"`` (Keras 3 on
    JAX: the epoch's rows gathered in fit's order beforehand, (n, n_features), and fed with
    ``shuffle=False``; the gather is not timed); :class:`KerasBackendError` when keras is
    already loaded in this process with the other backend (:func:`import_keras`).
    ``device``: ``"auto"``, ``"cpu"`` or ``"gpu"`` on that backend (:func:`resolve_device`).
    ``record_steps``: also record each batch's loss, through a metric that
    computes the cross-entropy of the same forward pass the gradients come from
    (Keras' ``loss`` log is a running mean, which cannot give single steps exactly);
    it costs a little time, so comparisons of speed leave it off.
    ``jit_compile``: Keras' setting (``"auto"``: XLA on GPU, not on CPU, with TensorFlow;
    always on JAX).  ``on_epoch(epoch, history)`` is called after each epoch (e.g. for
    progress lines).  A float64 network runs on JAX under 64-bit mode, around this call only.
    """
    keras = import_keras(keras_backend)
    X, y, X_test, y_test = nn.check_data(X_train, y_train, X_test, y_test)
    lr = check.check_positive_number("lr", lr)
    epochs = check.check_positive_int("epochs", epochs)
    batch_size = check.check_optional_positive_int("batch_size", batch_size)
    if jit_compile not in (True, False, "auto"):
        raise ValueError(f"jit_compile must be True, False or 'auto', got {jit_compile!r}")
    if on_epoch is not None and not callable(on_epoch):
        raise TypeError("on_epoch must be callable as on_epoch(epoch, history)")
    place, description = resolve_device(device, keras_backend)

    n = X.shape[0]
    batch = n if batch_size is None or batch_size >= n else batch_size
    n_batches = -(-n // batch)
    orders = epoch_orders(copy_rng(nn.rng), n, epochs, batch_size, shuffle)
    step_losses = np.full((epochs, n_batches), np.nan) if record_steps else None
    history = History()

    with contextlib.ExitStack() as stack:
        feed = stack.enter_context(_placed(keras_backend, place, nn.dtype, X, y, batch))
        stack.enter_context(warnings.catch_warnings())
        # Keras turns logs into NumPy with np.array(tensor), and TensorFlow's tensors'
        # __array__ predates NumPy 2's copy keyword: one DeprecationWarning per epoch
        # that says nothing about this run
        warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy keyword",
                                category=DeprecationWarning)
        model = build_model(nn, weight_decay, keras_backend)
        metrics: list[Any] = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if record_steps:  # float64 where the backend has it (JAX only in 64-bit mode: float64 models)
            metrics.append(_LastBatchLoss("float64" if keras_backend == "tensorflow" else nn.dtype.name))
        # the loss in the model's dtype: Keras' default (floatx, float32) would cast a float64
        # model's probabilities to float32, and the cast tensor no longer carries the logits,
        # so the loss would fall back to clipped log-probabilities
        loss = keras.losses.SparseCategoricalCrossentropy(dtype=nn.dtype.name)
        model.compile(optimizer=keras_optimizer(optimizer, lr, keras_backend), loss=loss, metrics=metrics,
                      jit_compile=jit_compile)
        timer = _EpochTimer(step_losses)
        for epoch, order in enumerate(orders):
            timer.epoch = epoch
            feed(model, epoch, order, timer)
            test_cost, test_acc = math.nan, math.nan
            if X_test is not None:
                scores = model.evaluate(X_test, y_test, batch_size=8192, verbose=0, return_dict=True)
                test_cost, test_acc = float(scores["loss"]), float(scores["accuracy"])
            seconds = timer.seconds
            history.append(epoch=epoch + 1, cost=timer.logs["loss"], train_accuracy=timer.logs["accuracy"],
                           test_cost=test_cost, test_accuracy=test_acc, lr=lr, seconds=seconds,
                           samples_per_second=n / seconds if seconds > 0 else math.inf)
            if on_epoch is not None:
                on_epoch(epoch + 1, history)
    return KerasRun(model=model, history=history, step_losses=step_losses, device=description,
                    jit_compile=bool(model.jit_compile), versions=keras_versions(keras_backend),
                    keras_backend=keras_backend)


def keras_versions(keras_backend: str = "tensorflow") -> dict[str, str]:
    """The versions a run on ``keras_backend`` depends on: ``{"tensorflow", "keras"}`` or
    ``{"jax", "jaxlib", "keras"}`` (imports them)."""
    keras = import_keras(keras_backend)
    if keras_backend == "tensorflow":
        return {"tensorflow": import_tensorflow().__version__, "keras": keras.__version__}
    import jax
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "keras": keras.__version__}


@contextlib.contextmanager
def _placed(keras_backend: str, place: Any, dtype: np.dtype, X: np.ndarray, y: np.ndarray, batch: int):
    """Inside: the backend's device (and on JAX its precision for ``dtype``) is the default;
    yields ``feed(model, epoch, order, timer)``, which trains one epoch on the rows in
    ``order`` (None: as they are) with ``batch`` rows a step."""
    if keras_backend == "tensorflow":
        tf = import_tensorflow()
        with tf.device(place):
            X_tf = tf.constant(X)
            y_tf = tf.constant(y.astype(np.int64))

            def feed(model, epoch: int, order: np.ndarray | None, timer) -> None:
                if order is None:
                    data = tf.data.Dataset.from_tensor_slices((X_tf, y_tf)).batch(batch)
                else:
                    # the rows in fit's order, gathered batch by batch inside the pipeline
                    # (as Keras' own shuffling does), so the gather is part of the epoch
                    data = (tf.data.Dataset.from_tensor_slices(order.astype(np.int64)).batch(batch)
                            .map(lambda rows: (tf.gather(X_tf, rows), tf.gather(y_tf, rows)),
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))
                model.fit(data.prefetch(tf.data.AUTOTUNE), epochs=epoch + 1, initial_epoch=epoch, verbose=0,
                          shuffle=False, callbacks=[timer])

            yield feed
        return
    from .jax import import_jax, precision

    jax = import_jax()
    labels = y.astype(np.int32)

    def feed(model, epoch: int, order: np.ndarray | None, timer) -> None:
        rows, targets = (X, labels) if order is None else (X[order], labels[order])  # fit's order, untimed
        model.fit(rows, targets, batch_size=batch, epochs=epoch + 1, initial_epoch=epoch, verbose=0,
                  shuffle=False, callbacks=[timer])

    with jax.default_device(place), precision(jax, dtype == np.float64):
        yield feed


_CLASSES: tuple | None = None


def _keras_classes():
    """Callback and metric classes, defined once TensorFlow is imported (they subclass Keras')."""
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _define_keras_classes()
    return _CLASSES


def _define_keras_classes():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Times each epoch and collects the per-step loss metric into ``step_losses``."""

        def __init__(self, step_losses: np.ndarray | None) -> None:
            super().__init__()
            self.step_losses = step_losses
            self.epoch = 0
            self.seconds = math.nan
            self.logs: dict[str, float] = {}

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if self.step_losses is not None:
                self.step_losses[self.epoch, batch] = float(logs["batch_loss"])

        def on_epoch_end(self, epoch, logs=None):
            # the logs first: on JAX, reading them waits for the epoch's last step to finish
            self.logs = {k: float(v) for k, v in (logs or {}).items()}
            self.seconds = time.perf_counter() - self._t0

    class LastBatchLoss(keras.metrics.Metric):
        """The mean cross-entropy of the latest batch (not a running mean).

        Computed from the ``y_pred`` of the training step's forward pass, the one the
        gradients come from; Keras' softmax output keeps its logits, so this is the
        same log-softmax formula the loss uses.
        """

        def __init__(self, value_dtype: str = "float64", name: str = "batch_loss", **kwargs) -> None:
            super().__init__(name=name, **kwargs)
            self.value_dtype = value_dtype
            self.value = self.add_variable(shape=(), initializer="zeros", name="value", dtype=value_dtype)

        def update_state(self, y_true, y_pred, sample_weight=None):
            from keras import ops

            losses = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)  # in y_pred's dtype
            self.value.assign(ops.mean(ops.cast(losses, self.value_dtype)))

        def result(self):
            from keras import ops

            return ops.convert_to_tensor(self.value)  # a tensor, not the variable (JAX traces results)

        def reset_state(self):
            self.value.assign(0.0)

    return EpochTimer, LastBatchLoss


def _EpochTimer(step_losses):  # noqa: N802  (constructs the lazily defined class)
    return _keras_classes()[0](step_losses)


def _LastBatchLoss(value_dtype: str = "float64"):  # noqa: N802
    return _keras_classes()[1](value_dtype)
