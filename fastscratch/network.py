"""``NeuralNetwork``: the from-scratch feedforward classifier.

Hidden layers use ReLU, sigmoid or tanh; the output layer is a softmax trained
with cross-entropy.  ``forward``/``backward``/``update`` are one step of the algorithm
by hand (:mod:`fastscratch.training.step`, with the formula-to-code table); ``fit`` checks its
arguments and runs the training loop (:mod:`fastscratch.training.loop`), whose concerns --
early stopping, checkpoints, the divergence guard, logging -- are callbacks
(:mod:`fastscratch.training.callbacks`).
"""

from __future__ import annotations

import math
import numbers
from os import PathLike
from typing import Any, Callable, Sequence

import numpy as np

from . import _validation as check
from . import devices
from .activations import ACTIVATION_NAMES, activation_codes, get_activation
from .backends import ARRAY_API, load_backend
from .history import History
from .io.model_files import load_model, save_model
from .kernels.contract import IDENTITY
from .optimizers import Optimizer, get_optimizer
from .schedules import Schedule
from .training import step, threads
from .training.epoch import MAX_PASS_ROWS, Workspace
from .training.loop import FitSettings, TrainingDivergedWarning, TrainingLoop, check_fit_data, continue_optimizer

__all__ = ["NeuralNetwork", "TrainingDivergedWarning", "check_activations", "check_dtype", "check_dropout"]

ACTIVATIONS = ACTIVATION_NAMES  # the activation registry's names (fastscratch.activations)
INITS = ("he", "xavier")
DTYPES = ("float32", "float64")
PREDICT_BATCH = MAX_PASS_ROWS  # rows per chunk in predict/evaluate: bounds their working memory


class NeuralNetwork:
    """A fully connected network with a softmax output, trained by backprop.

    Parameters
    ----------
    architecture
        layer sizes ``[n_features, hidden..., n_classes]``, e.g. ``[784, 128, 64, 10]``.
    activation
        hidden-layer activation: a name of ``fastscratch.activations.ACTIVATION_NAMES``, or one per hidden layer.
    dtype
        ``"float32"`` (default) or ``"float64"``.
    seed
        generator seed (initialisation, shuffling, dropout): same seed, bit-identical training; ``None``: fresh.
    backend
        ``"auto"`` (Numba, else NumPy; array-API for GPU arrays), ``"numpy"``, ``"numba"`` or ``"array_api"`` (any
        array-API library's arrays; the weights move to the data's device on the first ``fit``, see :meth:`to_device`).
    init
        ``"he"`` (normal, std ``sqrt(2 / n_in)``) or ``"xavier"`` (Glorot uniform).
    dropout
        fraction of each hidden layer's units dropped in training (one number or one per hidden layer); 0: none.

    Attributes
    ----------
    weights, biases
        lists of ``W[l]: (n_in, n_out)`` and ``b[l]: (n_out,)`` arrays.
    history
        :class:`History` of every epoch trained so far.
    """

    def __init__(self, architecture: Sequence[int] = (784, 128, 64, 10),
                 activation: str | Sequence[str] = "relu", dtype: str = "float32", seed: int | None = None,
                 backend: str = "auto", init: str = "he", dropout: float | Sequence[float] = 0.0) -> None:
        _configure(self, architecture, activation, dtype, seed, backend, init, dropout)
        self.weights, self.biases = _initial_parameters(self.architecture, self.init, self.rng, self.dtype)

    @classmethod
    def without_parameters(cls, architecture: Sequence[int], activation: str | Sequence[str], dtype: str,
                           seed: int | None, backend: str, init: str,
                           dropout: float | Sequence[float]) -> "NeuralNetwork":
        """A network configured (and validated) as the constructor would, but with ``weights`` and
        ``biases`` left empty and nothing allocated: for loaders that supply the parameters (a
        model file's), which must set both lists before the network is used."""
        net = cls.__new__(cls)
        _configure(net, architecture, activation, dtype, seed, backend, init, dropout)
        net.weights, net.biases = [], []
        return net

    # ------------------------------------------------------------------ setup
    @property
    def n_features(self) -> int:
        return self.architecture[0]

    @property
    def n_classes(self) -> int:
        return self.architecture[-1]

    @property
    def epochs_trained(self) -> int:
        return len(self.history)

    def _codes(self) -> list[int]:
        return activation_codes(self.activations) + [IDENTITY]  # the output layer: logits

    @property
    def activation_codes(self) -> list[int]:
        """The backend's activation code of every layer (the output layer's: ``IDENTITY``, the logits)."""
        return self._codes()

    @property
    def parameters(self) -> list[np.ndarray]:
        """The model's own arrays, interleaved ``[W0, b0, W1, b1, ...]`` (the optimizer's order)."""
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def __repr__(self) -> str:
        return (f"NeuralNetwork(architecture={self.architecture}, activation={self.activations}, "
                f"dtype='{self.dtype}', backend='{self.kernels.NAME}', epochs_trained={self.epochs_trained})")

    # tutorial-style aliases of the history
    costs = property(lambda self: self.history.cost, doc="The training cost of every epoch (list of float).")
    train_accuracies = property(lambda self: self.history.train_accuracy, doc="Training accuracy per epoch.")
    test_accuracies = property(lambda self: self.history.test_accuracy, doc="Test accuracy per epoch (NaN without test data).")

    # --------------------------------------------------------------- training
    def fit(self, X_train: Any, y_train: Any, X_test: Any = None, y_test: Any = None, lr: float = 0.1,
            epochs: int = 500, batch_size: int | None = None, optimizer: str | Optimizer = "sgd",
            shuffle: bool = True, verbose: bool = True, log_every: int = 100,
            lr_schedule: str | Schedule | None = None, weight_decay: float = 0.0,
            early_stopping: int | None = None, monitor: str = "test_loss", min_delta: float = 0.0,
            restore_best: bool = True, log: Callable[[str], None] | None = None,
            on_epoch_end: Callable[[History], None] | None = None, checkpoint: str | PathLike | None = None,
            checkpoint_every: int = 1, resume: bool = False, max_loss: float | None = None,
            on_divergence: str = "raise", callbacks: Sequence[Any] = (),
            threads: int | str | None = None) -> History:
        """Train by gradient descent; return the :class:`History` (all epochs so far).

        X_train: (n_samples, n_features) ; y_train: (n_samples,) integer labels in ``[0, n_classes)``
        or (n_samples, n_classes) one-hot.  ``X_test``/``y_test`` likewise, evaluated after every epoch.

        - ``batch_size=None``: full-batch gradient descent (the tutorial); an int: mini-batches,
          reshuffled every epoch when ``shuffle``.
        - ``optimizer``: ``"sgd"``, ``"momentum"``, ``"adam"`` or an optimizer object.  Calling ``fit``
          again continues from the current weights, and from the optimizer's state when the same
          optimizer configuration is asked for.
        - ``lr_schedule``: ``None``, ``"step"``, ``"exponential"``, ``"cosine"`` or a schedule object,
          called with the model's epoch count (so a resumed fit continues the schedule).
        - ``weight_decay``: L2 penalty ``weight_decay / 2 * sum(W**2)`` on the weights (not biases).
        - ``early_stopping``: patience in epochs on ``monitor`` (``"test_loss"``, ``"test_accuracy"``,
          ``"cost"``, ``"train_accuracy"``) improving by more than ``min_delta``; with ``restore_best``
          the best epoch's weights are kept (:class:`~fastscratch.training.callbacks.EarlyStopping`).
        - ``verbose``: print the tutorial's epoch lines every ``log_every`` epochs and a summary
          (through ``log``, default ``print`` to stdout).
        - ``on_epoch_end``: called with the history after every epoch is recorded (progress bars).
        - ``checkpoint``: a file to save the training state to (atomically) every ``checkpoint_every``
          epochs, when the fit ends, and on Ctrl-C or an exception from a callback; never overwritten
          unless ``resume=True``, which continues from it when it exists, up to this call's ``epochs``
          counted from where the checkpointed run began, bit-identical on the same backend to a run
          never stopped (:class:`~fastscratch.training.callbacks.BackupAndRestore`; ``ValueError`` naming
          what differs if the network, data or settings are not the checkpoint's).
        - ``max_loss``: a batch whose mean loss exceeds it (or is NaN or infinite) has diverged.
          ``None``: 100 times the larger of ``ln(n_classes)`` and the starting loss on the first
          training rows; ``math.inf``: only NaN and infinity.  ``on_divergence``: ``"raise"``
          (``FloatingPointError`` naming the epoch and batch) or ``"warn"``
          (:class:`TrainingDivergedWarning`, then return).  Either way that update is not applied and
          the weights go back to the latest epoch start known to give a sound loss.
        - ``callbacks``: objects with any of ``on_fit_start``, ``on_epoch_begin``, ``on_epoch_end``,
          ``on_fit_end``, ``on_exception`` (see :mod:`fastscratch.training.callbacks`), after the ones
          the arguments above build.
        - ``threads``: ``None``, the BLAS thread limit (``threadpoolctl``, ``OPENBLAS_NUM_THREADS``)
          at most the usable cores; ``n`` threads; ``"measure"`` (see :mod:`fastscratch.training.threads`).

        Ctrl-C during an epoch puts the weights, optimizer state and generator back to that epoch's
        start, so the model matches its history, then propagates.  Invalid arguments raise
        ``ValueError``/``TypeError`` before anything is changed.
        """
        settings = FitSettings.check(
            self, X_train, y_train, X_test, y_test, lr=lr, epochs=epochs, batch_size=batch_size,
            optimizer=optimizer, shuffle=shuffle, verbose=verbose, log_every=log_every, lr_schedule=lr_schedule,
            weight_decay=weight_decay, early_stopping=early_stopping, monitor=monitor, min_delta=min_delta,
            restore_best=restore_best, log=log, on_epoch_end=on_epoch_end, checkpoint=checkpoint,
            checkpoint_every=checkpoint_every, resume=resume, max_loss=max_loss, on_divergence=on_divergence,
            callbacks=callbacks, threads=threads)
        return TrainingLoop(self, settings).run()

    def check_data(self, X_train: Any, y_train: Any, X_test: Any = None,
                   y_test: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Training (and optional test) data checked and converted as ``fit`` takes them: features
        ``(n, n_features)`` of the model's dtype, labels as ``(n,)`` intp vectors."""
        return check_fit_data(self, X_train, y_train, X_test, y_test, remember=False)[:4]

    # ------------------------------------------- one step by hand (the tutorial's names)
    def forward(self, X: Any) -> list[np.ndarray]:
        """``forward_propagation``: the activations of every layer for ``X: (n, n_features)``.

        Returns ``[A0, A1, ..., AL]``: ``A0`` is ``X`` as the model reads it, ``A[l]: (n, sizes[l])``
        each layer's output; the output layer is linear, so ``AL`` holds the logits ``Z[L]`` (the
        softmax belongs to the loss: ``predict_proba`` applies it).  No dropout (as in prediction).
        Same kernels as ``fit`` (:func:`fastscratch.training.step.forward`); the model is not changed.
        """
        _check_on_host(self, "forward")
        X = check.check_features(X, self.n_features, self.dtype, "X")
        outputs = [np.empty((X.shape[0], size), dtype=self.dtype) for size in self.architecture[1:]]
        with threads.blas_threads(threads.default_blas_threads(self.kernels, X.shape[0]), self.kernels):
            step.forward(self.kernels, X, self.weights, self.biases, self.activation_codes, outputs)
        return [X] + outputs

    def backward(self, activations: Sequence[np.ndarray], y: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``backward_propagation``: the gradients of the mean cross-entropy over the ``n`` rows.

        ``activations``: what :meth:`forward` returned (left unchanged); ``y``: (n,) labels or
        (n, n_classes) one-hot.  Returns ``(grad_weights, grad_biases)``, shaped like ``weights``
        and ``biases``: ``dW[l]: (n_in, n_out)``, ``db[l]: (n_out,)`` (:func:`fastscratch.training.step.gradients`).
        """
        _check_activation_list(self, activations)
        n = activations[0].shape[0]
        y = check.check_labels(y, n, self.n_classes, "y")
        with threads.blas_threads(threads.default_blas_threads(self.kernels, n), self.kernels):
            return step.gradients(self.kernels, activations, y, self.weights, self.activation_codes)

    def update(self, gradients: tuple[Sequence[np.ndarray], Sequence[np.ndarray]], lr: float,
               optimizer: str | Optimizer = "sgd", weight_decay: float = 0.0) -> None:
        """``update_parameters``: one optimizer step with ``gradients = (grad_weights, grad_biases)``
        from :meth:`backward`; for SGD ``W[l] -= lr * dW[l]``, ``b[l] -= lr * db[l]``, in place.

        ``optimizer`` and ``weight_decay`` as in :meth:`fit` (the model's optimizer and its state
        continue when the configuration is the same).  The gradients are left unchanged.
        """
        lr = check.check_positive_number("lr", lr)
        weight_decay = check.check_non_negative_number("weight_decay", weight_decay)
        grads = _interleaved_gradients(self, gradients)
        opt = continue_optimizer(self.optimizer, optimizer, get_optimizer(optimizer))
        params = self.parameters
        opt.bind(params)
        self.optimizer = opt
        step.update(self.kernels, opt, params, [g.copy() for g in grads], lr, [weight_decay, 0.0] * len(self.weights))

    @property
    def epoch_threads(self) -> str:
        """How the last fit's epochs used threads, in words (e.g. "2 threads (each step in 2
        parts, 1 BLAS thread each)"); see ``epoch_parts``, ``thread_parts``."""
        return threads.describe_threads(self.last_epoch_path, self.epoch_parts, self.epoch_blas_threads,
                                         self.blas_threads)

    # -------------------------------------------------------------- inference
    def predict_proba(self, X: Any, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Class probabilities, ``(n_samples, n_classes)`` in the model's dtype.

        X: (n_samples, n_features).  Computed ``batch_size`` rows at a time.
        """
        X, checked = _inference_input(self, X)
        batch_rows = check.check_positive_int("batch_size", batch_size)
        out = devices.empty(X, (X.shape[0], self.n_classes), self.dtype)
        for start, ws, logits in _forward_chunks(self, X, batch_rows, checked):
            rows = out[start:start + logits.shape[0], ...]
            self.kernels.softmax(logits, rows, ws.row_scratch[0, : logits.shape[0]])
        return out

    def predict(self, X: Any, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Predicted class labels ``(n_samples,)`` int: the argmax of the output layer (off the host:
        an int64 array on the data's device)."""
        X, checked = _inference_input(self, X)
        batch_rows = check.check_positive_int("batch_size", batch_size)
        out = devices.empty(X, (X.shape[0],), "index")
        for start, _, logits in _forward_chunks(self, X, batch_rows, checked):
            _argmax_rows(logits, out[start:start + logits.shape[0]])
        return out

    def evaluate(self, X: Any, y: Any, batch_size: int = PREDICT_BATCH, *,
                 checked: bool = False) -> tuple[float, float]:
        """``(mean cross-entropy loss, accuracy)`` on ``X: (n, n_features)``, ``y`` labels or one-hot.

        ``checked=True``: ``X`` and ``y`` come from :meth:`check_data` (finite, the model's dtype,
        intp labels), so they are not scanned again (``fit`` evaluates every epoch so)."""
        if checked:
            return self._evaluate(X, y, batch_size, checked=True)
        X, on_device = _inference_input(self, X)  # off the host: checked where it lives
        y = devices.check_labels(y, X, self.n_classes, "y") if on_device else check.check_labels(
            y, X.shape[0], self.n_classes, "y")
        batch_rows = check.check_positive_int("batch_size", batch_size)
        return self._evaluate(X, y, batch_rows, checked=on_device)

    def _evaluate(self, X: np.ndarray, y: np.ndarray, batch_size: int = PREDICT_BATCH,
                  checked: bool = False) -> tuple[float, float]:
        loss_total, correct = 0.0, 0
        for start, ws, logits in _forward_chunks(self, X, batch_size, checked):
            m = logits.shape[0]
            loss_sum, n_correct = self.kernels.softmax_cross_entropy_grad(
                logits, y[start:start + m], logits, 1.0, ws.row_scratch[:, :m], ws.index_scratch[:, :m])
            loss_total += loss_sum
            correct += n_correct
        return loss_total / X.shape[0], correct / X.shape[0]

    def accuracy(self, X: Any, y: Any) -> float:
        """Fraction of samples whose predicted class equals the label."""
        return self.evaluate(X, y)[1]

    # ----------------------------------------------------------- persistence
    def __getstate__(self) -> dict[str, Any]:  # pickle (joblib, scikit-learn clones)
        return _pickled_state(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        _restore_state(self, state)

    def save(self, path: str | PathLike) -> None:
        """Write the model (weights, optimizer state, RNG state, history) to ``path`` (.npz).

        Atomic: written to a temporary file beside ``path``, then renamed.
        """
        save_model(self, path)

    @classmethod
    def load(cls, path: str | PathLike, device: Any = None) -> "NeuralNetwork":
        """Read a model written by :meth:`save` (never unpickles); ``ValueError`` if it is invalid.
        ``device``: where to put its weights (see :meth:`to_device`; ``None``: the host)."""
        net = load_model(path, cls)
        return net if device is None else net.to_device(device)

    # ---------------------------------------------------------------- devices
    @property
    def device(self) -> Any:
        """Where the weights live: ``"cpu"`` (NumPy, on the host) or their library's device."""
        return devices.device_of(self.weights[0])

    def to_device(self, device: Any) -> "NeuralNetwork":
        """Move the weights, biases and optimizer state to ``device`` (``"cpu"``, ``"cuda[:N]"``, a device
        object or an array: :func:`fastscratch.devices.to_device`); return the model.  Off the host it
        computes with the array-API backend, on the host with its ``backend``; ``fit`` on GPU arrays
        does this itself."""
        _move(self, device)
        return self

    # ------------------------------------------------------------------ plots
    def plot_cost(self, path: str | PathLike | None = None):
        """Training cost per epoch as a matplotlib Figure; saved as PNG when ``path`` is given."""
        from .plots import plot_cost
        return plot_cost(self.history, path)

    def plot_accuracies(self, path: str | PathLike | None = None):
        """Train and test accuracy per epoch as a matplotlib Figure; saved as PNG when ``path`` is given."""
        from .plots import plot_accuracies
        return plot_accuracies(self.history, path)


def _per_hidden_layer(value: Any, n_hidden: int, single: type | tuple[type, ...], label: str,
                      what: str) -> list[Any]:
    """One setting for all hidden layers, or a list with one per hidden layer."""
    if isinstance(value, single):
        return [value] * n_hidden
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise TypeError(f"{label} must be {what} or a list with one per hidden layer, got {value!r}")
    if len(value) != n_hidden:
        raise ValueError(f"{label} lists {len(value)} values but the network has {n_hidden} hidden layers")
    return list(value)


def check_activations(activation: Any, n_hidden: int) -> list[str]:
    """The activation name of each of ``n_hidden`` layers from one name or a list (each known)."""
    names = _per_hidden_layer(activation, n_hidden, str, "activation", "a name")
    for name in names:
        get_activation(name)  # ValueError naming the registry's choices
    return names


def check_dtype(dtype: Any) -> np.dtype:
    """``"float32"``/``"float64"`` or the NumPy type or dtype of either."""
    name = dtype
    if isinstance(dtype, (np.dtype, type)):
        try:
            name = np.dtype(dtype).name
        except TypeError:
            pass
    if not isinstance(name, str) or name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return np.dtype(name)


def check_dropout(dropout: Any, n_hidden: int) -> list[float]:
    """The dropout rate of each of ``n_hidden`` layers from one number or a list (each in ``[0, 1)``)."""
    rates = _per_hidden_layer(dropout, n_hidden, numbers.Real, "dropout", "a number")
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rates must be numbers in [0, 1), got {rate!r}")
    return [float(r) for r in rates]


def _initial_parameters(sizes: list[int], init: str, rng: np.random.Generator,
                        dtype: np.dtype) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """He (normal, std ``sqrt(2 / n_in)``) or Xavier (Glorot uniform) weights ``(n_in, n_out)``, zero biases."""
    weights, biases = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        # drawn in float64 and rounded, so float32 and float64 nets start alike
        if init == "he":
            W = rng.standard_normal((n_in, n_out)) * math.sqrt(2.0 / n_in)
        else:
            limit = math.sqrt(6.0 / (n_in + n_out))
            W = rng.uniform(-limit, limit, (n_in, n_out))
        weights.append(np.ascontiguousarray(W, dtype=dtype))
        biases.append(np.zeros(n_out, dtype=dtype))
    return weights, biases


def _forward_chunks(net: "NeuralNetwork", X: np.ndarray, batch_size: int, checked: bool = False):
    """Yield ``(start, workspace, logits_view)`` for chunks of ``X`` through ``net``; memory is
    bounded by ``batch_size``.  ``checked``: X is known to be finite and of the model's dtype."""
    batch = min(batch_size, X.shape[0])
    ws = Workspace(net.kernels, net.architecture, batch, net.dtype, training=False, gather=False,
                   like=net.weights[0])
    codes = net.activation_codes
    for start in range(0, X.shape[0], batch):
        chunk = X[start:start + batch, ...]
        if not checked:
            # each chunk is converted and checked on its own, so a large float64 or
            # integer input is never copied whole
            chunk = check.convert_finite(chunk, net.dtype, "X", row_offset=start)
        # BLAS threads by the workspace's rule: one for short chunks, whose products a
        # second OpenBLAS thread only slows (and stalls when the other core is busy)
        with threads.blas_threads(ws.blas_threads, net.kernels):
            logits = ws.forward(chunk, net.weights, net.biases, codes)
        yield start, ws, logits


def _argmax_rows(logits: Any, out: Any) -> None:
    """``out = argmax(logits, axis=1)``, into ``out`` (a view of predict's result)."""
    if devices.is_host(out):
        np.argmax(logits, axis=1, out=out)
    else:
        out[...] = devices.namespace(logits).argmax(logits, axis=1)


def _move(net: NeuralNetwork, device: Any) -> None:
    """:meth:`NeuralNetwork.to_device`: the arrays through the host, then the kernels for where they are."""
    if devices.is_device_array(device) and devices.same_place(device, net.weights[0]):
        return  # already there
    move = lambda a: devices.to_device(devices.to_numpy(a), device)  # noqa: E731
    weights, biases = [move(W) for W in net.weights], [move(b) for b in net.biases]
    kernels = net.kernels
    if not devices.is_host(weights[0]):
        kernels = load_backend(ARRAY_API)  # ImportError naming the extra, before anything is changed
    elif net.kernels.NAME == ARRAY_API and net.backend != ARRAY_API:
        kernels = load_backend(net.backend)
    if net.optimizer is not None:
        net.optimizer.move_state(move)
    net.weights, net.biases, net.kernels = weights, biases, kernels


def _inference_input(net: "NeuralNetwork", X: Any) -> tuple[Any, bool]:
    """``X`` for predict/evaluate and whether it is checked already: on the host, the shape
    check (chunks are converted and scanned as they go); off it, the whole check where ``X``
    lives, which must be where the weights are (never copied between devices)."""
    weights = net.weights[0]
    if not devices.is_host(weights):
        devices.check_same_device("X", X, weights)
        return devices.check_features(X, net.n_features, net.dtype, "X"), True
    if devices.wants_array_api(X) or (net.kernels.NAME == ARRAY_API and devices.is_device_array(X)):
        devices.check_same_device("X", X, weights)  # GPU data, host weights: say so
    return check.check_feature_array(X, net.n_features), False  # NumPy converts the rest (a torch CPU tensor)


def _check_on_host(net: "NeuralNetwork", method: str) -> None:
    """The step by hand (forward/backward/update) works on NumPy arrays; say so off the host."""
    if not devices.is_host(net.weights[0]):
        raise TypeError(f"{method}() by hand works on the host; the weights are on {net.device}: "
                        "call to_device('cpu') first (fit, predict and evaluate run where the weights are)")


def _check_activation_list(net: "NeuralNetwork", activations: Any) -> None:
    """``ValueError`` unless ``activations`` is shaped like what ``net.forward`` returns."""
    _check_on_host(net, "backward")
    sizes = net.architecture
    if (not isinstance(activations, (list, tuple)) or len(activations) != len(sizes)
            or any(not isinstance(a, np.ndarray) or a.ndim != 2 or a.shape[1] != size or a.dtype != net.dtype
                   or a.shape[0] != activations[0].shape[0] for a, size in zip(activations, sizes))):
        raise ValueError(f"activations must be the list forward(X) returns: {len(sizes)} arrays "
                         f"(n, size) of {net.dtype} for the layer sizes {sizes}")


def _interleaved_gradients(net: "NeuralNetwork", gradients: Any) -> list[np.ndarray]:
    """``[dW0, db0, dW1, db1, ...]`` from the ``(grad_weights, grad_biases)`` pair ``backward`` returns."""
    _check_on_host(net, "update")
    if not isinstance(gradients, (list, tuple)) or len(gradients) != 2:
        raise ValueError("gradients must be the pair (grad_weights, grad_biases) backward() returns")
    grads = [g for pair in zip(*gradients) for g in pair]
    if len(grads) != 2 * len(net.weights) or any(not isinstance(g, np.ndarray) or g.shape != p.shape
                                                 or g.dtype != p.dtype for g, p in zip(grads, net.parameters)):
        raise ValueError("gradients must match the weights and biases in shape and dtype")
    return grads


def _configure(net: "NeuralNetwork", architecture: Any, activation: Any, dtype: Any, seed: Any, backend: Any,
               init: Any, dropout: Any) -> None:
    """Validate and set everything on ``net`` but the parameters (a loader supplies those from a file)."""
    net.architecture = check.check_architecture(architecture)
    n_hidden = len(net.architecture) - 2
    net.activations = check_activations(activation, n_hidden)
    net.dtype = check_dtype(dtype)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    net.seed = None if seed is None else int(seed)
    net.backend = backend
    net.kernels = load_backend(backend)
    if not isinstance(init, str) or init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
    net.init = init
    net.dropout = check_dropout(dropout, n_hidden)
    net.rng = np.random.default_rng(net.seed)
    net.history = History()
    net.optimizer: Optimizer | None = None
    #: seconds the last ``fit`` spent compiling or loading jitted kernels (0 on NumPy);
    #: kept out of the epoch times in ``history.seconds``
    net.compile_seconds = 0.0
    #: seconds the last ``fit`` spent before its first epoch: compiling, and choosing BLAS threads
    net.setup_seconds = 0.0
    #: BLAS threads the last ``fit`` trained with (``None``: as configured, all by default)
    net.blas_threads: int | None = None
    #: the parts (threads, one BLAS thread each) a whole-epoch backend cut the last fit's steps
    #: into, which path its last epoch took ("fused" or "stepwise", see fastscratch.training.epoch.run_epoch),
    #: and how many parts each thread ran in that fit (the calling thread first: the helpers'
    #: share shows whether the other cores were free)
    net.epoch_parts: int = 1
    net.epoch_blas_threads: int | None = None
    net.last_epoch_path: str | None = None
    net.thread_parts: list[int] = []
    # what the model was trained on, when known (the CLI records it):
    # {"dataset": name, "class_names": [one per output]}; saved with the model
    net.data_info: dict[str, Any] | None = None


def _pickled_state(net: NeuralNetwork) -> dict[str, Any]:
    """``net``'s attributes for pickle: the kernel module, which pickle cannot store, as its backend's name."""
    state = dict(vars(net))
    state["kernels"] = state["kernels"].NAME
    return state


def _restore_state(net: NeuralNetwork, state: dict[str, Any]) -> None:
    vars(net).update(state)
    try:
        # the kernels it was trained with, so predictions match bit for bit...
        net.kernels = load_backend(state["kernels"])
    except ImportError:
        # ...or, where they are missing, what its backend setting picks here
        # ("auto" falls back to NumPy; an explicit "numba" says what to install)
        net.kernels = load_backend(net.backend)
