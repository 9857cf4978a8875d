"""``NeuralNetwork``: the from-scratch feedforward classifier.

Hidden layers use ReLU, sigmoid or tanh; the output layer is a softmax trained
with cross-entropy.  ``fit`` runs gradient descent (full batch by default, as in
the tutorial, or mini-batches) with SGD, momentum or Adam; the arithmetic lives
in the backend's kernels (see ``fastscratch.training`` for the formula-to-code
map).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import sys
import time
import warnings
from os import PathLike
from typing import Any, Callable, Sequence

import numpy as np

from . import _validation as check
from . import checkpoint as ckpt
from ._atomic import ensure_writable_dir
from .activations import ACTIVATION_NAMES, activation_codes, get_activation
from .backends import load_backend
from .history import History
from .kernels.contract import IDENTITY, capabilities
from .optimizers import Optimizer, get_optimizer
from .schedules import CosineDecay, Schedule, get_schedule
from . import training
from .training import LossDiverged, Workspace, choose_blas_threads, run_epoch

ACTIVATIONS = ACTIVATION_NAMES  # the activation registry's names (fastscratch.activations)
INITS = ("he", "xavier")
DTYPES = ("float32", "float64")
MONITORS = {"test_loss": "min", "test_accuracy": "max", "cost": "min", "train_accuracy": "max"}
_MONITOR_COLUMN = {"test_loss": "test_cost", "test_accuracy": "test_accuracy", "cost": "cost",
                   "train_accuracy": "train_accuracy"}
PREDICT_BATCH = training.MAX_PASS_ROWS  # rows per chunk in predict/evaluate: bounds their working memory


class _Snapshot:
    """A copy of a list of arrays (parameters and optimizer state), the step count, and
    (for epoch starts) the epoch whose start it holds."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = [np.empty_like(a) for a in arrays]
        self.iterations = 0
        self.epoch: int | None = None

    def take(self, arrays: list[np.ndarray], iterations: int, epoch: int | None = None) -> None:
        for saved, a in zip(self.arrays, arrays):
            np.copyto(saved, a)
        self.iterations = iterations
        self.epoch = epoch

    def put_back(self, arrays: list[np.ndarray]) -> int:
        for a, saved in zip(arrays, self.arrays):
            np.copyto(a, saved)
        return self.iterations


class _InputChanged(ValueError):
    """An input array found finite by an earlier ``fit`` (so not scanned again) now holds a
    NaN or inf: raised as the input check would have, once the epoch is undone."""


def _recheck_inputs(unscanned: list) -> None:
    """Scan the feature arrays ``fit`` did not scan this time (known finite from an earlier
    call); raise :class:`_InputChanged` with the input check's message if one was changed in
    place since.  Called before anything a NaN input could cause is reported."""
    for array, name in unscanned:
        try:
            check.check_finite(array, name)
        except ValueError as exc:
            raise _InputChanged(str(exc)) from None


class TrainingDivergedWarning(RuntimeWarning):
    """``fit(on_divergence="warn")`` stopped because the loss diverged (the message says where)."""


def _divergence_cause(exc: LossDiverged, max_loss: float) -> str:
    if not math.isfinite(exc.loss):
        return f"batch {exc.batch}: the loss is {exc.loss}"
    return f"batch {exc.batch}: the mean loss {exc.loss:.4g} is above max_loss={max_loss:.4g}"


def _check_checkpoint_path(path: Any, resume: Any) -> str | None:
    """``path`` as a string, checked before training: its directory must be writable, and an
    existing file is only accepted for resuming (a finished run is never overwritten by accident)."""
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be True or False, got {resume!r}")
    if path is None:
        if resume:
            raise ValueError("resume=True needs checkpoint=<file> to resume from")
        return None
    if not isinstance(path, (str, PathLike)) or not os.fspath(path):
        raise TypeError(f"checkpoint must be a file path, got {path!r}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"checkpoint {path} is a directory; give a file name such as run.npz")
    if os.path.exists(path) and not resume:
        raise FileExistsError(f"checkpoint {path} already exists: pass resume=True to continue that run, "
                              "or remove the file or choose another one to start afresh")
    ensure_writable_dir(os.path.dirname(os.path.abspath(path)))
    return path


class NeuralNetwork:
    """A fully connected network with a softmax output, trained by backprop.

    Parameters
    ----------
    architecture : layer sizes ``[n_features, hidden..., n_classes]``, e.g. ``[784, 128, 64, 10]``.
    activation : hidden-layer activation, a name of ``fastscratch.activations.ACTIVATION_NAMES``
        (``"relu"``, ``"tanh"``, ...), or a list with one name per hidden layer.
    dtype : ``"float32"`` (default) or ``"float64"``.
    seed : seed of the generator used for initialisation, shuffling and dropout;
        the same seed gives bit-identical training.  ``None``: fresh entropy.
    backend : ``"auto"`` (Numba if available, else NumPy), ``"numpy"`` or ``"numba"``.
    init : ``"he"`` (normal, std ``sqrt(2 / n_in)``) or ``"xavier"`` (Glorot uniform).
    dropout : fraction of each hidden layer's units dropped during training
        (a number, or one per hidden layer); 0 disables it.

    Attributes
    ----------
    weights : list of ``W[l]: (n_in, n_out)`` arrays; ``biases``: list of ``b[l]: (n_out,)``.
    history : :class:`History` of every epoch trained so far.
    """

    def __init__(self, architecture: Sequence[int] = (784, 128, 64, 10),
                 activation: str | Sequence[str] = "relu", dtype: str = "float32", seed: int | None = None,
                 backend: str = "auto", init: str = "he", dropout: float | Sequence[float] = 0.0) -> None:
        self._configure(architecture, activation, dtype, seed, backend, init, dropout)
        self.weights, self.biases = self._initial_parameters()

    def _configure(self, architecture: Any, activation: Any, dtype: Any, seed: Any, backend: Any, init: Any,
                   dropout: Any) -> None:
        """Validate and set everything but the parameters (``load`` supplies those from a file)."""
        self.architecture = check.check_architecture(architecture)
        n_hidden = len(self.architecture) - 2
        self.activations = self._check_activations(activation, n_hidden)
        self.dtype = self._check_dtype(dtype)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self.backend = backend
        self.kernels = load_backend(backend)
        if not isinstance(init, str) or init not in INITS:
            raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
        self.init = init
        self.dropout = self._check_dropout(dropout, n_hidden)
        self.rng = np.random.default_rng(self.seed)
        self.history = History()
        self.optimizer: Optimizer | None = None
        #: seconds the last ``fit`` spent compiling or loading jitted kernels (0 on NumPy);
        #: kept out of the epoch times in ``history.seconds``
        self.compile_seconds = 0.0
        #: seconds the last ``fit`` spent before its first epoch: compiling, and choosing BLAS threads
        self.setup_seconds = 0.0
        #: BLAS threads the last ``fit`` trained with (``None``: as configured, all by default)
        self.blas_threads: int | None = None
        #: the parts (threads, one BLAS thread each) a whole-epoch backend cut the last fit's steps
        #: into, which path its last epoch took ("fused" or "stepwise", see training.run_epoch),
        #: and how many parts each thread ran in that fit (the calling thread first: the helpers'
        #: share shows whether the other cores were free)
        self.epoch_parts: int = 1
        self.epoch_blas_threads: int | None = None
        self.last_epoch_path: str | None = None
        self.thread_parts: list[int] = []
        # what the model was trained on, when known (the CLI records it):
        # {"dataset": name, "class_names": [one per output]}; saved with the model
        self.data_info: dict[str, Any] | None = None

    # ------------------------------------------------------------------ setup
    @staticmethod
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

    @classmethod
    def _check_activations(cls, activation: Any, n_hidden: int) -> list[str]:
        names = cls._per_hidden_layer(activation, n_hidden, str, "activation", "a name")
        for name in names:
            get_activation(name)  # ValueError naming the registry's choices
        return names

    @staticmethod
    def _check_dtype(dtype: Any) -> np.dtype:
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

    @classmethod
    def _check_dropout(cls, dropout: Any, n_hidden: int) -> list[float]:
        rates = cls._per_hidden_layer(dropout, n_hidden, numbers.Real, "dropout", "a number")
        for rate in rates:
            if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
                raise ValueError(f"dropout rates must be numbers in [0, 1), got {rate!r}")
        return [float(r) for r in rates]

    def _initial_parameters(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        weights, biases = [], []
        for n_in, n_out in zip(self.architecture[:-1], self.architecture[1:]):
            # drawn in float64 and rounded, so float32 and float64 nets start alike
            if self.init == "he":
                W = self.rng.standard_normal((n_in, n_out)) * math.sqrt(2.0 / n_in)
            else:
                limit = math.sqrt(6.0 / (n_in + n_out))
                W = self.rng.uniform(-limit, limit, (n_in, n_out))
            weights.append(np.ascontiguousarray(W, dtype=self.dtype))
            biases.append(np.zeros(n_out, dtype=self.dtype))
        return weights, biases

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

    def _params(self) -> list[np.ndarray]:
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def __repr__(self) -> str:
        return (f"NeuralNetwork(architecture={self.architecture}, activation={self.activations}, "
                f"dtype='{self.dtype}', backend='{self.kernels.NAME}', epochs_trained={self.epochs_trained})")

    # tutorial-style aliases of the history
    @property
    def costs(self) -> list[float]:
        return self.history.cost

    @property
    def train_accuracies(self) -> list[float]:
        return self.history.train_accuracy

    @property
    def test_accuracies(self) -> list[float]:
        return self.history.test_accuracy

    # --------------------------------------------------------------- training
    def fit(self, X_train: Any, y_train: Any, X_test: Any = None, y_test: Any = None, lr: float = 0.1,
            epochs: int = 500, batch_size: int | None = None, optimizer: str | Optimizer = "sgd",
            shuffle: bool = True, verbose: bool = True, log_every: int = 100,
            lr_schedule: str | Schedule | None = None, weight_decay: float = 0.0,
            early_stopping: int | None = None, monitor: str = "test_loss", min_delta: float = 0.0,
            restore_best: bool = True, log: Callable[[str], None] | None = None,
            on_epoch_end: Callable[[History], None] | None = None, checkpoint: str | PathLike | None = None,
            checkpoint_every: int = 1, resume: bool = False, max_loss: float | None = None,
            on_divergence: str = "raise") -> History:
        """Train by gradient descent; return the :class:`History` (all epochs so far).

        X_train: (n_samples, n_features) ; y_train: (n_samples,) integer labels in
        ``[0, n_classes)`` or (n_samples, n_classes) one-hot.  ``X_test``/``y_test``
        likewise, evaluated after every epoch.

        - ``batch_size=None``: full-batch gradient descent (the tutorial); an int: mini-batches,
          reshuffled every epoch when ``shuffle``.
        - ``optimizer``: ``"sgd"``, ``"momentum"``, ``"adam"`` or an optimizer object.  Calling
          ``fit`` again continues from the current weights, and from the optimizer's state when
          the same optimizer configuration is asked for.
        - ``lr_schedule``: ``None``, ``"step"``, ``"exponential"``, ``"cosine"`` or a schedule object,
          called with the model's epoch count (so a resumed fit continues the schedule).
        - ``weight_decay``: L2 penalty ``weight_decay / 2 * sum(W**2)`` on the weights (not biases).
        - ``early_stopping``: patience in epochs on ``monitor`` (``"test_loss"``, ``"test_accuracy"``,
          ``"cost"``, ``"train_accuracy"``); with ``restore_best`` the best epoch's weights are kept.
        - ``verbose``: print the tutorial's epoch lines every ``log_every`` epochs and a summary
          (through ``log``, default ``print`` to stdout).
        - ``on_epoch_end``: called with the history after every epoch is recorded (progress bars).
        - ``checkpoint``: a file to save the training state to (atomically) every
          ``checkpoint_every`` epochs, when the fit ends, and on Ctrl-C or an exception from a
          callback (the last complete epoch; not on divergence): weights, optimizer
          state, generator state, history, early-stopping counters and this call's settings
          (see :mod:`fastscratch.checkpoint`; ``NeuralNetwork.load`` reads it as a model).
          An existing file is never overwritten unless ``resume=True``.
        - ``resume``: continue from ``checkpoint`` when it exists (start afresh when it does
          not), up to this call's ``epochs`` counted from where the checkpointed run began.
          The network, data and settings must be the ones the checkpoint was made with
          (``ValueError`` naming what differs); ``epochs`` may differ.  On the same backend
          the result is bit-identical to a run that was never stopped.
        - ``max_loss``: a batch whose mean loss per sample exceeds it (or is NaN or infinite)
          counts as diverged.  ``None``: 100 times the larger of ``ln(n_classes)`` (the loss of a
          uniform guess) and the loss on the first training rows when the fit starts, far
          above anything a converging run reaches; ``math.inf``: only NaN and infinity.
        - ``on_divergence``: ``"raise"`` (default) raises ``FloatingPointError`` naming the
          epoch and batch; ``"warn"`` issues a :class:`TrainingDivergedWarning` with the same
          message and returns.  Either way the batch's update is not applied and the weights
          and optimizer state go back to the latest epoch start known to give a sound loss
          (the history loses an epoch whose updates are undone).

        Ctrl-C (``KeyboardInterrupt``) during an epoch puts the weights, optimizer state and
        generator back to that epoch's start, so the model matches its history, then
        propagates.  Invalid arguments raise ``ValueError``/``TypeError`` before anything is
        changed.
        """
        X_train, y_train, X_test, y_test, unscanned = self._check_fit_data(X_train, y_train, X_test, y_test)
        lr = check.check_positive_number("lr", lr)
        epochs = check.check_positive_int("epochs", epochs)
        batch_size = check.check_optional_positive_int("batch_size", batch_size)
        log_every = check.check_positive_int("log_every", log_every)
        weight_decay = check.check_non_negative_number("weight_decay", weight_decay)
        min_delta = check.check_non_negative_number("min_delta", min_delta)
        early_stopping = check.check_optional_positive_int("early_stopping", early_stopping)
        checkpoint_every = check.check_positive_int("checkpoint_every", checkpoint_every)
        if max_loss is not None:
            max_loss = check.check_positive_number("max_loss", max_loss) if max_loss != math.inf else math.inf
        if on_divergence not in ("raise", "warn"):
            raise ValueError(f"on_divergence must be 'raise' or 'warn', got {on_divergence!r}")
        if not isinstance(monitor, str) or monitor not in MONITORS:
            raise ValueError(f"unknown monitor {monitor!r}; expected one of {sorted(MONITORS)}")
        for label, hook in (("log", log), ("on_epoch_end", on_epoch_end)):
            if hook is not None and not callable(hook):
                raise TypeError(f"{label} must be callable, got {type(hook).__name__}")
        if early_stopping is not None and monitor.startswith("test") and X_test is None:
            raise ValueError(f"early_stopping on {monitor!r} needs X_test and y_test")
        say = log if log is not None else (lambda line: print(line, file=sys.stdout, flush=True))

        # A checkpointed run, resumed: its state replaces this network's (after checks)
        checkpoint = _check_checkpoint_path(checkpoint, resume)
        saved = None
        if checkpoint is not None and resume and os.path.exists(checkpoint):
            saved = self._read_checkpoint(checkpoint)
        first_epoch = saved.record["first_epoch"] if saved else self.epochs_trained

        schedule = get_schedule(lr_schedule)
        if isinstance(schedule, CosineDecay) and schedule.total_epochs is None:
            schedule = CosineDecay(first_epoch + epochs, schedule.min_lr)
        opt = get_optimizer(optimizer)
        n = X_train.shape[0]
        full_batch = batch_size is None or batch_size >= n
        batch = n if full_batch else batch_size
        if max_loss is None and saved is None:
            max_loss = self._default_max_loss(X_train[:batch], y_train[:batch])
        settings = {"lr": lr, "batch_size": batch_size, "optimizer": opt.config(), "lr_schedule": schedule.config(),
                    "weight_decay": weight_decay, "shuffle": bool(shuffle), "early_stopping": early_stopping,
                    "monitor": monitor, "min_delta": min_delta, "restore_best": bool(restore_best),
                    "max_loss": max_loss}
        data_print = None
        if checkpoint is not None:
            data_print = {"train": ckpt.fingerprint(X_train, y_train), "test": ckpt.fingerprint(X_test, y_test)}
        target_epoch = first_epoch + epochs
        if saved is not None:
            if max_loss is None:  # the default limit is the one the run was started with
                settings["max_loss"] = max_loss = saved.record["fit"]["max_loss"]
            saved_schedule = saved.record["fit"]["lr_schedule"]
            if (isinstance(schedule, CosineDecay) and saved_schedule.get("name") == "cosine"
                    and saved_schedule.get("total_epochs") != schedule.total_epochs):
                raise ValueError(
                    f"{checkpoint}: cannot resume: the cosine schedule anneals over the run's epochs, "
                    f"{saved_schedule.get('total_epochs')} in the checkpoint's run and "
                    f"{schedule.total_epochs} now; resume with the same epochs, or train further in a new run")
            saved.check_compatible(json.loads(json.dumps(settings)), data_print, target_epoch)
            record = saved.record
            trained = len(saved.net.history)
            if record["finished"] == "diverged":
                message = (f"{checkpoint}: that run stopped because training diverged; resuming it would diverge "
                           "again. Start a new run with a smaller learning rate (or a larger max_loss).")
                if on_divergence == "raise":
                    raise FloatingPointError(message)
                warnings.warn(message, TrainingDivergedWarning, stacklevel=2)
            counters = record["early_stopping"]
            if (record["finished"] == "completed" and target_epoch > trained and saved.best is not None
                    and counters["best_epoch"] != trained):
                raise ValueError(
                    f"{checkpoint}: cannot extend that run: it ended with the weights of its best epoch "
                    f"({counters['best_epoch']} of {trained}, restore_best), not its last, so training on would "
                    "not continue the run; start a new run from NeuralNetwork.load() of it instead")
            self._adopt(saved.net)
            opt = self.optimizer  # its state comes from the checkpoint
        elif self.optimizer is not None and not isinstance(optimizer, Optimizer) and self.optimizer.same_config(opt):
            opt = self.optimizer  # continuing: keep momentum / Adam moments and the step count
        params = self._params()
        opt.bind(params)
        self.optimizer = opt

        workspace = Workspace(self.kernels, self.architecture, batch, self.dtype,
                              keep_probs=[1.0 - r for r in self.dropout], gather=shuffle and not full_batch)
        weight_decays = [weight_decay, 0.0] * len(self.weights)
        codes = self._codes()
        best_value, best, best_epoch, waited = None, None, 0, 0
        sign = 1.0 if MONITORS[monitor] == "min" else -1.0
        # parameters and optimizer state, snapshotted at each epoch start (see below)
        tracked = params + [a for kind in opt.state_names for a in opt.state[kind]]
        epoch_start = _Snapshot(tracked)
        previous_start = _Snapshot(tracked)
        finished = None
        if saved is not None:
            counters = saved.record["early_stopping"]
            best_value, best_epoch, waited = counters["best_value"], counters["best_epoch"], counters["waited"]
            if saved.best is not None:
                best = _Snapshot(tracked)
                best.take(saved.best, counters["best_iterations"])
            if saved.start is not None:  # the start of the last epoch: a divergence next may go back to it
                epoch_start.take(saved.start, saved.record["last_epoch_start"]["iterations"], self.epochs_trained)
            finished = saved.record["finished"]
            done = self.epochs_trained - first_epoch
            if verbose:
                say(f"Resuming from {checkpoint}: {done} of {epochs} epochs done"
                    + (f" (that run ended: {finished.replace('_', ' ')})" if finished not in (None, "completed") else ""))
        resumed_from = self.epochs_trained

        def save_checkpoint(state: str | None) -> None:
            counters = {"best_value": best_value, "best_epoch": best_epoch, "waited": waited,
                        "best_iterations": best.iterations if best is not None else None}
            # the snapshot of the last complete epoch's start, if this process has it
            start = next((snap for snap in (epoch_start, previous_start)
                          if snap.epoch is not None and snap.epoch == self.epochs_trained), None)
            from .persistence import save_model
            save_model(self, checkpoint,
                       ckpt.record(settings, first_epoch, target_epoch, data_print, counters, state,
                                   None if start is None else {"iterations": start.iterations}),
                       best=best.arrays if best is not None else None,
                       start=None if start is None else start.arrays)

        # Jitted backends compile (or load from their cache) here, timed on its own, so
        # that no epoch's time includes compilation.
        # Measuring BLAS threads for this batch size, when asked for, is set-up too.
        setup_start = time.perf_counter()
        warmup = capabilities(self.kernels).warmup
        compiled = warmup(len(self.weights), self.dtype) if warmup is not None else 0.0
        if training.MEASURE_THREADS:  # opt-in: see its note on reproducibility
            workspace.blas_threads = choose_blas_threads(self.kernels, self.architecture, batch, self.dtype)
        self.blas_threads = workspace.blas_threads
        self.epoch_parts, self.epoch_blas_threads = workspace.parts, workspace.epoch_blas_threads
        self.compile_seconds = compiled
        self.setup_seconds = time.perf_counter() - setup_start
        started = time.perf_counter()

        # a checkpoint written on Ctrl-C must not catch the early-stopping counters half-updated
        consistent = True
        epoch = resumed_from
        try:
            for epoch in range(resumed_from + 1, target_epoch + 1):
                if finished not in (None, "completed"):
                    break  # the resumed run had already stopped early or diverged
                epoch_lr = schedule(lr, epoch - 1)
                # The weights at the start of this epoch and of the previous one: when a
                # batch diverges, the newest of them that gave a sound loss on its epoch's
                # first batch is restored (no per-step copies needed).
                previous_start, epoch_start = epoch_start, previous_start
                epoch_start.take(tracked, opt.iterations, epoch)
                rng_state = self.rng.bit_generator.state  # for an interrupted epoch to leave no trace
                n_recorded = len(self.history)
                consistent = False
                # Ctrl-C before the epoch is in the history undoes it: weights, optimizer state,
                # shuffling and dropout draws, so fitting again continues exactly as if it had not
                # started, and a model saved after the interrupt matches its history
                try:
                    # unshuffled or full-batch epochs read X_train in place: no gather
                    order = self.rng.permutation(n) if shuffle and not full_batch else None
                    t0 = time.perf_counter()
                    try:
                        loss_sum, n_correct = run_epoch(workspace, X_train, y_train, order, self.weights,
                                                        self.biases, codes, opt, epoch_lr, weight_decays, self.rng,
                                                        max_loss)
                        seconds = time.perf_counter() - t0
                        self.last_epoch_path = workspace.last_path
                        self.thread_parts = workspace.thread_parts[:workspace.parts].tolist()
                        if not all(np.isfinite(a).all() for a in tracked):
                            _recheck_inputs(unscanned)
                            # every batch's loss was sound, so this epoch's starting weights are good
                            last = -(-n // batch)
                            self._stop_on_divergence(epoch, f"batch {last} (the last): its update made the weights "
                                                     "or optimizer state non-finite", True, epoch_start,
                                                     previous_start, tracked, epoch_lr)
                    except LossDiverged as exc:
                        _recheck_inputs(unscanned)
                        self._stop_on_divergence(epoch, _divergence_cause(exc, max_loss), exc.batch > 1,
                                                 epoch_start, previous_start, tracked, epoch_lr)

                    # Between epochs that run in parts, BLAS stays on one thread: OpenBLAS's own
                    # threads spin for ~0.1 s after a multi-threaded call, and would hold the core
                    # the next epoch's helper thread needs (its share of the parts fell from 50%
                    # to 35%, the epoch took 0.25 s instead of 0.20, batch 128 on Fashion-MNIST)
                    with training.blas_threads(1 if workspace.parts > 1 else None, self.kernels):
                        cost = loss_sum / n
                        if weight_decay:
                            cost += 0.5 * weight_decay * sum(float(np.vdot(W, W)) for W in self.weights)
                        test_cost, test_acc = math.nan, math.nan
                        if X_test is not None:
                            # finite inputs can still overflow in the forward pass; that shows as a
                            # NaN test cost, and must not stop the epoch from being recorded
                            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                                test_cost, test_acc = self._evaluate(X_test, y_test, checked=True)
                    self.history.append(epoch=epoch, cost=cost, train_accuracy=n_correct / n, test_cost=test_cost,
                                        test_accuracy=test_acc, lr=epoch_lr, seconds=seconds,
                                        samples_per_second=n / seconds if seconds > 0 else math.inf)
                except (KeyboardInterrupt, _InputChanged):
                    if len(self.history) > n_recorded:
                        self.history.truncate(n_recorded)
                    opt.iterations = epoch_start.put_back(tracked)
                    self.rng.bit_generator.state = rng_state
                    consistent = True
                    raise
                except FloatingPointError as exc:
                    if on_divergence == "raise":
                        raise
                    warnings.warn(str(exc), TrainingDivergedWarning, stacklevel=2)
                    finished = "diverged"
                    if best_epoch > self.epochs_trained:  # that epoch's result was undone
                        best, best_value, best_epoch = None, None, 0
                    consistent = True
                    break

                stop = False
                if early_stopping is not None:
                    value = getattr(self.history, _MONITOR_COLUMN[monitor])[-1]
                    # a NaN test loss (inputs that overflow) is never an improvement
                    if math.isfinite(value) and (best_value is None or sign * (best_value - value) > min_delta):
                        best_value, best_epoch, waited = value, epoch, 0
                        if restore_best:
                            best = best or _Snapshot(tracked)
                            best.take(tracked, opt.iterations)
                    else:
                        waited += 1
                        stop = waited >= early_stopping
                if stop:  # decided now, so a checkpoint saved from here on records it
                    finished = "early_stopping"
                consistent = True

                logged = epoch % log_every == 0 or epoch == resumed_from + 1 or epoch == target_epoch
                if verbose and logged:
                    say(self._epoch_line(-1))
                if on_epoch_end is not None:
                    on_epoch_end(self.history)
                if stop:
                    if verbose:
                        if not logged:
                            say(self._epoch_line(-1))
                        say(f"Early stopping at epoch {epoch}: {monitor} has not improved for "
                            f"{early_stopping} epochs (best {best_value:.4f} at epoch {best_epoch}).")
                    break
                if checkpoint is not None and (epoch - first_epoch) % checkpoint_every == 0 and epoch < target_epoch:
                    save_checkpoint(None)
        except BaseException as exc:  # Ctrl-C, or an error in a callback: keep what was trained
            if checkpoint is not None and consistent and self.epochs_trained > resumed_from:
                try:
                    save_checkpoint(finished)
                except Exception as save_error:  # the original error matters more; say both
                    exc.add_note(f"(saving the checkpoint {checkpoint} failed too: {save_error}; the previous "
                                 "checkpoint, if any, is intact)")
            raise
        summary_index = -1
        if best is not None and best_epoch != self.epochs_trained:
            # the history keeps every epoch run; weights and optimizer state are the best one's
            opt.iterations = best.put_back(tracked)
            summary_index = best_epoch - 1
            if verbose:
                say(f"Restored the weights and optimizer state of epoch {best_epoch}.")
        if checkpoint is not None:
            save_checkpoint(finished or "completed")
        if verbose and self.history:
            self._summary(say, time.perf_counter() - started, n * (self.epochs_trained - resumed_from),
                          summary_index)
        return self.history

    def _check_data(self, X_train: Any, y_train: Any, X_test: Any = None,
                    y_test: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Training (and optional test) data checked and converted as ``fit`` takes them:
        features of the model's dtype, labels as integer vectors."""
        return self._check_fit_data(X_train, y_train, X_test, y_test, remember=False)[:4]

    def _check_fit_data(self, X_train: Any, y_train: Any, X_test: Any = None, y_test: Any = None,
                        remember: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, list]:
        """:meth:`_check_data`, then ``[(X_train, "X_train")]`` if X_train's finiteness scan was
        skipped because an earlier ``fit`` found the same array finite (``remember``), else ``[]``
        (see :func:`_recheck_inputs`).  A NaN or inf written into X_train in place since then makes
        a batch's loss, or the weights after the epoch, non-finite (an inf times any weight or
        gradient is inf or NaN), and ``fit`` checks at exactly those points."""
        if remember:
            X_train, scanned = check.check_features_once(X_train, self.n_features, self.dtype, "X_train")
        else:
            X_train, scanned = check.check_features(X_train, self.n_features, self.dtype, "X_train"), True
        y_train = check.check_labels(y_train, X_train.shape[0], self.n_classes, "y_train")
        check.check_pair(X_test, y_test)
        unscanned = [] if scanned else [(X_train, "X_train")]
        if X_test is not None:
            # scanned on every call: unlike the training data, nothing downstream would notice a
            # value made non-finite in place (an inf input can give finite test results)
            X_test = check.check_features(X_test, self.n_features, self.dtype, "X_test")
            y_test = check.check_labels(y_test, X_test.shape[0], self.n_classes, "y_test")
        return X_train, y_train, X_test, y_test, unscanned

    def _default_max_loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """The divergence limit when ``fit`` gets none: 100 times the larger of a uniform
        guess's loss and the current loss on (at most 1,024 of) the first training rows."""
        rows = min(X.shape[0], 1024)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            loss, _ = self._evaluate(X[:rows], y[:rows], checked=True)
        start = math.log(self.n_classes)
        return 100.0 * (max(start, loss) if math.isfinite(loss) else start)

    def _read_checkpoint(self, path: str) -> "ckpt.Saved":
        """The checkpoint at ``path``, refused unless it was made by a network configured like this one."""
        from .persistence import load_checkpoint

        saved = load_checkpoint(path)
        net = saved.net
        differ = [f"{name}: checkpoint {getattr(net, name)!r}, this network {getattr(self, name)!r}"
                  for name in ("architecture", "activations", "dtype", "init", "dropout", "seed")
                  if getattr(net, name) != getattr(self, name)]
        if differ:
            raise ValueError(f"{path}: cannot resume: the checkpoint was made by a different network ("
                             + "; ".join(differ) + ")")
        return saved

    def _adopt(self, net: "NeuralNetwork") -> None:
        """Take over the trained state of ``net`` (a checkpoint's network, same configuration)."""
        self.weights, self.biases = net.weights, net.biases
        self.optimizer = net.optimizer
        self.rng.bit_generator.state = net.rng.bit_generator.state
        self.history = net.history
        self.data_info = self.data_info or net.data_info

    def _epoch_line(self, index: int) -> str:
        h = self.history
        line = f"Epoch {h.epoch[index]:4d} | Cost: {h.cost[index]:.4f} | Train Acc: {h.train_accuracy[index]:.4f}"
        if not math.isnan(h.test_accuracy[index]):
            line += f" | Test Acc: {h.test_accuracy[index]:.4f}"
        return line

    def _summary(self, say: Callable[[str], None], seconds: float, samples: int, index: int = -1) -> None:
        """The closing lines; ``index`` picks the history entry the model's weights come from."""
        h = self.history
        say("Training completed!")
        line = f"Final Cost: {h.cost[index]:.4f} | Final Train Acc: {h.train_accuracy[index]:.4f}"
        if not math.isnan(h.test_accuracy[index]):
            line += f" | Final Test Acc: {h.test_accuracy[index]:.4f}"
        if index != -1:
            line += f" (epoch {h.epoch[index]})"
        say(line)
        # the epoch loop's wall time: training and the per-epoch evaluation (History.seconds
        # has the training alone); one rate per line, said which
        line = (f"Trained to epoch {h.epoch[-1]} in {seconds:.2f} s (epochs with their evaluation: "
                f"{samples / seconds if seconds > 0 else math.inf:,.0f} samples/s), backend {self.kernels.NAME}")
        if self.compile_seconds:
            line += f" (+ {self.compile_seconds:.2f} s compiling or loading the jitted kernels first)"
        say(line)

    def _stop_on_divergence(self, epoch: int, what: str, epoch_start_is_good: bool, epoch_start: "_Snapshot",
                            previous_start: "_Snapshot", tracked: list[np.ndarray], lr: float) -> None:
        """Put back the newest snapshot known to give a sound loss, then raise.

        ``epoch_start_is_good``: this epoch's starting weights gave a sound loss (on
        its first batch).  Otherwise they came from the previous epoch's last update,
        and that epoch's start is the good state.
        """
        if epoch_start_is_good:
            restore, good_epoch = epoch_start, epoch
        elif previous_start.epoch == epoch - 1:  # the previous epoch ran here, or its start was checkpointed
            restore, good_epoch = previous_start, epoch - 1
            self.history.truncate(len(self.history) - 1)  # that epoch's result is undone
        else:  # failed on the first batch of this fit, before any update here
            restore, good_epoch = None, epoch
        if restore is not None:
            self.optimizer.iterations = restore.put_back(tracked)
            state = (f"restored to the start of epoch {good_epoch}, the last ones known to give a sound loss "
                     "(finite, within max_loss)")
        else:
            state = ("unchanged: this fit's very first batch gave that loss, before any update, so the starting "
                     "weights or the inputs are the problem")
        raise FloatingPointError(
            f"training diverged at epoch {epoch}, {what}. The weights and optimizer state are {state}. "
            f"Try a smaller learning rate than lr={lr:g} or check the inputs for extreme values.")

    @property
    def epoch_threads(self) -> str:
        """How the last fit's epochs used threads, in words (e.g. "2 threads (each step in 2
        parts, 1 BLAS thread each)"); see ``epoch_parts``, ``thread_parts``."""
        return training.describe_threads(self.last_epoch_path, self.epoch_parts, self.epoch_blas_threads,
                                         self.blas_threads)

    # -------------------------------------------------------------- inference
    def _forward_chunks(self, X: np.ndarray, batch_size: int, checked: bool = False):
        """Yield ``(start, workspace, logits_view)`` for chunks of ``X``; memory is bounded by
        ``batch_size``.  ``checked``: X is known to be finite and of the model's dtype."""
        batch = min(batch_size, X.shape[0])
        ws = Workspace(self.kernels, self.architecture, batch, self.dtype, training=False, gather=False)
        codes = self._codes()
        for start in range(0, X.shape[0], batch):
            chunk = X[start:start + batch]
            if not checked:
                # each chunk is converted and checked on its own, so a large float64 or
                # integer input is never copied whole
                chunk = check.convert_finite(chunk, self.dtype, "X", row_offset=start)
            # BLAS threads by the workspace's rule: one for short chunks, whose products a
            # second OpenBLAS thread only slows (and stalls when the other core is busy)
            with training.blas_threads(ws.blas_threads, self.kernels):
                logits = ws.forward(chunk, self.weights, self.biases, codes)
            yield start, ws, logits

    def predict_proba(self, X: Any, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Class probabilities, ``(n_samples, n_classes)`` in the model's dtype.

        X: (n_samples, n_features).  Computed ``batch_size`` rows at a time.
        """
        X = check.check_feature_array(X, self.n_features)
        batch_rows = check.check_positive_int("batch_size", batch_size)
        out = np.empty((X.shape[0], self.n_classes), dtype=self.dtype)
        for start, ws, logits in self._forward_chunks(X, batch_rows):
            rows = out[start:start + logits.shape[0]]
            self.kernels.softmax(logits, rows, ws.row_scratch[0, : logits.shape[0]])
        return out

    def predict(self, X: Any, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Predicted class labels ``(n_samples,)`` int: the argmax of the output layer."""
        X = check.check_feature_array(X, self.n_features)
        batch_rows = check.check_positive_int("batch_size", batch_size)
        out = np.empty(X.shape[0], dtype=np.intp)
        for start, _, logits in self._forward_chunks(X, batch_rows):
            np.argmax(logits, axis=1, out=out[start:start + logits.shape[0]])
        return out

    def evaluate(self, X: Any, y: Any, batch_size: int = PREDICT_BATCH) -> tuple[float, float]:
        """``(mean cross-entropy loss, accuracy)`` on ``X: (n, n_features)``, ``y`` labels or one-hot."""
        X = check.check_feature_array(X, self.n_features)
        y = check.check_labels(y, X.shape[0], self.n_classes, "y")
        batch_rows = check.check_positive_int("batch_size", batch_size)
        return self._evaluate(X, y, batch_rows)

    def _evaluate(self, X: np.ndarray, y: np.ndarray, batch_size: int = PREDICT_BATCH,
                  checked: bool = False) -> tuple[float, float]:
        loss_total, correct = 0.0, 0
        for start, ws, logits in self._forward_chunks(X, batch_size, checked):
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
    def save(self, path: str | PathLike) -> None:
        """Write the model (weights, optimizer state, RNG state, history) to ``path`` (.npz).

        Atomic: written to a temporary file beside ``path``, then renamed.
        """
        from .persistence import save_model
        save_model(self, path)

    @classmethod
    def load(cls, path: str | PathLike) -> "NeuralNetwork":
        """Read a model written by :meth:`save` (never unpickles); ``ValueError`` if it is invalid."""
        from .persistence import load_model
        return load_model(path)

    # ------------------------------------------------------------------ plots
    def plot_cost(self, path: str | PathLike | None = None):
        """Training cost per epoch as a matplotlib Figure; saved as PNG when ``path`` is given."""
        from .plots import plot_cost
        return plot_cost(self.history, path)

    def plot_accuracies(self, path: str | PathLike | None = None):
        """Train and test accuracy per epoch as a matplotlib Figure; saved as PNG when ``path`` is given."""
        from .plots import plot_accuracies
        return plot_accuracies(self.history, path)
