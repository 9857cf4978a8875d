"""The training loop behind ``NeuralNetwork.fit``: settings checked once, then epochs and callbacks.

``fit`` is a thin front: :meth:`FitSettings.check` validates every argument (and, when
resuming, the checkpoint) into one :class:`FitSettings` without changing anything, and
:class:`TrainingLoop` runs it.  The loop itself only trains and records epochs
(:func:`fastscratch.training.epoch.run_epoch`, then the evaluation and the history entry); early
stopping, checkpoints, the divergence guard, the log and the user's hooks are callbacks
(:mod:`fastscratch.training.callbacks`), called in order around each epoch.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Callable, Sequence

import numpy as np

from .. import _validation as check
from .. import devices
from ..backends import ARRAY_API
from ..history import History
from ..io import checkpoints as ckpt
from ..io.model_files import load_checkpoint
from ..kernels.contract import capabilities
from ..optimizers import Optimizer, get_optimizer
from ..schedules import CosineDecay, Schedule, get_schedule
from .callbacks import (HOOKS, BackupAndRestore, DivergenceGuard, EarlyStopping, EpochEndFunction, EpochLog,
                        check_checkpoint_path, check_monitor)
from .epoch import LossDiverged, Workspace, run_epoch
from .threads import blas_threads, check_threads, choose_blas_threads


class TrainingDivergedWarning(RuntimeWarning):
    """``fit(on_divergence="warn")`` stopped because the loss diverged (the message says where)."""


class InputChanged(ValueError):
    """An input array found finite by an earlier ``fit`` (so not scanned again) now holds a
    NaN or inf: raised as the input check would have, once the epoch is undone."""


def recheck_inputs(unscanned: list) -> None:
    """Scan the feature arrays ``fit`` did not scan this time (known finite from an earlier
    call); raise :class:`InputChanged` with the input check's message if one was changed in
    place since.  Called before anything a NaN input could cause is reported."""
    for array, name in unscanned:
        try:
            check.check_finite(array, name)
        except ValueError as exc:
            raise InputChanged(str(exc)) from None


def _divergence_cause(exc: LossDiverged, max_loss: float) -> str:
    if not math.isfinite(exc.loss):
        return f"batch {exc.batch}: the loss is {exc.loss}"
    return f"batch {exc.batch}: the mean loss {exc.loss:.4g} is above max_loss={max_loss:.4g}"


def continue_optimizer(current: Optimizer | None, requested: Any, new: Optimizer) -> Optimizer:
    """The optimizer a ``fit`` or ``update`` asking for ``requested`` trains with: the model's
    ``current`` one (keeping momentum / Adam moments and the step count) when ``requested`` is
    a name or config (not an object) giving the same configuration, else ``new``
    (``get_optimizer(requested)``)."""
    if current is not None and not isinstance(requested, Optimizer) and current.same_config(new):
        return current
    return new


def check_fit_data(net, X_train: Any, y_train: Any, X_test: Any = None, y_test: Any = None,
                   remember: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, list]:
    """Training (and optional test) data checked and converted as ``fit`` takes them for ``net``
    (features of its dtype, labels as integer vectors), then ``[(X_train, "X_train")]`` if
    X_train's finiteness scan was skipped because an earlier ``fit`` found the same array
    finite (``remember``), else ``[]`` (see :func:`recheck_inputs`).  A NaN or inf written
    into X_train in place since then makes a batch's loss, or the weights after the epoch,
    non-finite (an inf times any weight or gradient is inf or NaN), and the loop checks at
    exactly those points.

    Arrays of another array-API library (a CuPy array, a PyTorch CUDA tensor) are checked where
    they live (:func:`device_place`, :func:`fastscratch.devices.check_features`)."""
    like = device_place(net, X_train)
    if like is not None:
        return _check_device_data(net, like, X_train, y_train, X_test, y_test)
    if remember:
        X_train, scanned = check.check_features_once(X_train, net.n_features, net.dtype, "X_train")
    else:
        X_train, scanned = check.check_features(X_train, net.n_features, net.dtype, "X_train"), True
    y_train = check.check_labels(y_train, X_train.shape[0], net.n_classes, "y_train")
    check.check_pair(X_test, y_test)
    unscanned = [] if scanned else [(X_train, "X_train")]
    if X_test is not None:
        # scanned on every call: unlike the training data, nothing downstream would notice a
        # value made non-finite in place (an inf input can give finite test results)
        X_test = check.check_features(X_test, net.n_features, net.dtype, "X_test")
        y_test = check.check_labels(y_test, X_test.shape[0], net.n_classes, "y_test")
    return X_train, y_train, X_test, y_test, unscanned


def device_place(net, X: Any) -> Any:
    """Where ``fit`` trains ``net`` on ``X``: ``None`` on the host (NumPy arrays, and what NumPy
    converts), else an array whose library and device to train on -- the model's weights when
    they are off the host already, or ``X`` when the array-API backend is to place the model
    with it (``backend="auto"`` given GPU arrays, or ``backend="array_api"`` given any array-API
    library's arrays).  ``TypeError`` when a NumPy-only backend was asked for with such arrays;
    ``ValueError`` (:func:`fastscratch.devices.check_same_device`) when ``X`` is not where the weights are."""
    weights = net.weights[0]
    if not devices.is_host(weights):
        devices.check_same_device("X_train", X, weights)
        return weights
    if not devices.is_device_array(X):
        return None
    if net.backend == ARRAY_API or (net.backend == "auto" and devices.wants_array_api(X)):
        return X
    if devices.wants_array_api(X):
        raise TypeError(f"X_train is {devices.describe(X)}, but backend={net.backend!r} computes on NumPy "
                        "arrays on the host: use backend='array_api' (or 'auto') to train where the data is, "
                        "or pass NumPy arrays")
    return None  # e.g. a PyTorch CPU tensor: NumPy takes it as before


def _check_device_data(net, like: Any, X_train: Any, y_train: Any, X_test: Any, y_test: Any) -> tuple:
    """:func:`check_fit_data` for data off the host: every array where ``like`` is."""
    devices.check_same_device("X_train", X_train, like)
    X_train = devices.check_features(X_train, net.n_features, net.dtype, "X_train")
    y_train = devices.check_labels(y_train, X_train, net.n_classes, "y_train")
    check.check_pair(X_test, y_test)
    if X_test is not None:
        devices.check_same_device("X_test", X_test, like)
        X_test = devices.check_features(X_test, net.n_features, net.dtype, "X_test")
        y_test = devices.check_labels(y_test, X_test, net.n_classes, "y_test")
    return X_train, y_train, X_test, y_test, []


def adopt(net, other) -> None:
    """``net`` takes over the trained state of ``other`` (a checkpoint's network, same configuration)."""
    net.weights, net.biases = other.weights, other.biases
    net.optimizer = other.optimizer
    net.rng.bit_generator.state = other.rng.bit_generator.state
    net.history = other.history
    net.data_info = net.data_info or other.data_info


def read_checkpoint(net, path: str) -> "ckpt.Saved":
    """The checkpoint at ``path``, refused unless it was made by a network configured like ``net``."""
    saved = load_checkpoint(path, type(net))
    differ = [f"{name}: checkpoint {getattr(saved.net, name)!r}, this network {getattr(net, name)!r}"
              for name in ("architecture", "activations", "dtype", "init", "dropout", "seed")
              if getattr(saved.net, name) != getattr(net, name)]
    if differ:
        raise ValueError(f"{path}: cannot resume: the checkpoint was made by a different network ("
                         + "; ".join(differ) + ")")
    return saved


def default_max_loss(net, X: np.ndarray, y: np.ndarray) -> float:
    """The divergence limit when ``fit`` gets none: 100 times the larger of a uniform
    guess's loss and the current loss on (at most 1,024 of) the first training rows."""
    rows = min(X.shape[0], 1024)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        loss, _ = net.evaluate(X[:rows, ...], y[:rows], checked=True)
    start = math.log(net.n_classes)
    return 100.0 * (max(start, loss) if math.isfinite(loss) else start)


@dataclass
class FitSettings:
    """One ``fit`` call's arguments, validated and resolved (see ``NeuralNetwork.fit``)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    unscanned: list  # [(X_train, "X_train")] when its finiteness scan was skipped (see recheck_inputs)
    lr: float
    epochs: int
    batch: int  # rows per step (the whole set for full batch)
    shuffle: bool
    schedule: Schedule
    optimizer: Optimizer  # the one to train with: new, the model's own (continued), or the checkpoint's
    weight_decay: float
    max_loss: float
    on_divergence: str
    first_epoch: int  # the epoch count the run started from (a resumed run: the checkpointed run's)
    target_epoch: int
    record: dict[str, Any]  # the settings a checkpoint stores and a resume must match
    data_print: dict[str, str | None] | None
    resumed: "ckpt.Saved | None"
    callbacks: list = field(default_factory=list)  # built from the shorthands, then the user's
    say: Callable[[str], None] | None = None  # the log when verbose, else None
    threads: int | str | None = None  # see threads.check_threads
    #: off the host: an array whose library and device the model is moved to before training
    #: (``None``: the model stays where it is; see device_place)
    place_with: Any = None

    @property
    def n_samples(self) -> int:
        return self.X_train.shape[0]

    @property
    def full_batch(self) -> bool:
        return self.batch == self.n_samples

    @classmethod
    def check(cls, net, X_train: Any, y_train: Any, X_test: Any, y_test: Any, *, lr: float, epochs: int,
              batch_size: int | None, optimizer: str | Optimizer | dict, shuffle: bool, verbose: bool,
              log_every: int, lr_schedule: str | Schedule | dict | None, weight_decay: float,
              early_stopping: int | None, monitor: str, min_delta: float, restore_best: bool,
              log: Callable[[str], None] | None, on_epoch_end: Callable[[History], None] | None,
              checkpoint: str | PathLike | None, checkpoint_every: int, resume: bool, max_loss: float | None,
              on_divergence: str, callbacks: Sequence[Any], threads: int | str | None = None) -> "FitSettings":
        """Validate ``fit``'s arguments for ``net`` (``ValueError``/``TypeError`` naming the
        argument); changes nothing on ``net``."""
        X_train, y_train, X_test, y_test, unscanned = check_fit_data(net, X_train, y_train, X_test, y_test)
        place_with = X_train if devices.is_host(net.weights[0]) and not devices.is_host(X_train) else None
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
        monitor = check_monitor(monitor)
        for label, hook in (("log", log), ("on_epoch_end", on_epoch_end)):
            if hook is not None and not callable(hook):
                raise TypeError(f"{label} must be callable, got {type(hook).__name__}")
        user_callbacks = _check_callbacks(callbacks)
        threads = check_threads(threads)
        if early_stopping is not None and monitor.startswith("test") and X_test is None:
            raise ValueError(f"early_stopping on {monitor!r} needs X_test and y_test")
        say = log if log is not None else (lambda line: print(line, file=sys.stdout, flush=True))

        # A checkpointed run, resumed: its state replaces this network's (after checks)
        checkpoint = check_checkpoint_path(checkpoint, resume)
        if checkpoint is not None and not devices.is_host(X_train):
            raise ValueError(f"checkpoint= is not supported for data off the host ({devices.describe(X_train)}) "
                             "yet: save the model after fit (NeuralNetwork.save brings it to the host)")
        saved = None
        if checkpoint is not None and resume and os.path.exists(checkpoint):
            saved = read_checkpoint(net, checkpoint)
        first_epoch = saved.record["first_epoch"] if saved else net.epochs_trained

        schedule = get_schedule(lr_schedule)
        if isinstance(schedule, CosineDecay) and schedule.total_epochs is None:
            schedule = CosineDecay(first_epoch + epochs, schedule.min_lr)
        opt = get_optimizer(optimizer)
        n = X_train.shape[0]
        batch = n if batch_size is None or batch_size >= n else batch_size
        if max_loss is None and saved is None and place_with is None:  # else once the model is placed
            max_loss = default_max_loss(net, X_train[:batch, ...], y_train[:batch])
        record = {"lr": lr, "batch_size": batch_size, "optimizer": opt.config(), "lr_schedule": schedule.config(),
                  "weight_decay": weight_decay, "shuffle": bool(shuffle), "early_stopping": early_stopping,
                  "monitor": monitor, "min_delta": min_delta, "restore_best": bool(restore_best),
                  "max_loss": max_loss}
        data_print = None
        if checkpoint is not None:
            data_print = {"train": ckpt.fingerprint(X_train, y_train), "test": ckpt.fingerprint(X_test, y_test)}
        target_epoch = first_epoch + epochs
        if saved is not None:
            if max_loss is None:  # the default limit is the one the run was started with
                record["max_loss"] = max_loss = saved.record["fit"]["max_loss"]
            _check_resumable(saved, checkpoint, schedule, record, data_print, target_epoch, on_divergence)
            opt = saved.net.optimizer  # its state comes from the checkpoint
        else:
            opt = continue_optimizer(net.optimizer, optimizer, opt)

        stopping = EarlyStopping(early_stopping, monitor, min_delta, restore_best) if early_stopping else None
        built: list = [stopping] if stopping is not None else []
        if verbose:
            built.append(EpochLog(log_every, say))
        if on_epoch_end is not None:
            built.append(EpochEndFunction(on_epoch_end))
        built += user_callbacks
        guard = DivergenceGuard()
        if checkpoint is not None:
            built.append(BackupAndRestore(checkpoint, checkpoint_every, stopping, guard))
        return cls(X_train, y_train, X_test, y_test, unscanned, lr, epochs, batch, bool(shuffle), schedule, opt,
                   weight_decay, max_loss, on_divergence, first_epoch, target_epoch, record, data_print, saved,
                   [guard] + built, say if verbose else None, threads, place_with)


def _check_callbacks(callbacks: Any) -> list:
    """The user's callbacks as a list: each must have at least one of the hooks, all callable."""
    if callbacks is None:
        return []
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of callback objects, got {type(callbacks).__name__}")
    for item in callbacks:
        hooks = [getattr(item, name, None) for name in HOOKS]
        if isinstance(item, type) or not any(hooks) or not all(h is None or callable(h) for h in hooks):
            raise TypeError(f"callbacks holds {item!r}, which is not a callback: give an object with any of "
                            f"{', '.join(HOOKS)} (e.g. a fastscratch.training.callbacks.Callback subclass instance)")
        if isinstance(item, (EarlyStopping, BackupAndRestore, DivergenceGuard)):
            raise TypeError(f"{type(item).__name__} is built by fit's keyword arguments (early_stopping=, "
                            "checkpoint=); pass those instead, so a checkpoint records them")
    return list(callbacks)


def _check_resumable(saved: "ckpt.Saved", path: str, schedule: Schedule, record: dict[str, Any],
                     data_print: dict[str, str | None], target_epoch: int, on_divergence: str) -> None:
    """``ValueError`` unless this fit continues the checkpointed run ``saved``."""
    saved_schedule = saved.record["fit"]["lr_schedule"]
    if (isinstance(schedule, CosineDecay) and saved_schedule.get("name") == "cosine"
            and saved_schedule.get("total_epochs") != schedule.total_epochs):
        raise ValueError(
            f"{path}: cannot resume: the cosine schedule anneals over the run's epochs, "
            f"{saved_schedule.get('total_epochs')} in the checkpoint's run and "
            f"{schedule.total_epochs} now; resume with the same epochs, or train further in a new run")
    saved.check_compatible(json.loads(json.dumps(record)), data_print, target_epoch)
    trained = len(saved.net.history)
    if saved.record["finished"] == "diverged":
        message = (f"{path}: that run stopped because training diverged; resuming it would diverge "
                   "again. Start a new run with a smaller learning rate (or a larger max_loss).")
        if on_divergence == "raise":
            raise FloatingPointError(message)
        warnings.warn(message, TrainingDivergedWarning, stacklevel=4)  # fit's caller
    counters = saved.record["early_stopping"]
    if (saved.record["finished"] == "completed" and target_epoch > trained and saved.best is not None
            and counters["best_epoch"] != trained):
        raise ValueError(
            f"{path}: cannot extend that run: it ended with the weights of its best epoch "
            f"({counters['best_epoch']} of {trained}, restore_best), not its last, so training on would "
            "not continue the run; start a new run from NeuralNetwork.load() of it instead")


class TrainingLoop:
    """Runs one validated ``fit`` (:class:`FitSettings`) on ``network``: epochs, and the
    callbacks around them, which see it as a :class:`~fastscratch.training.callbacks.LoopState`."""

    def __init__(self, network, settings: FitSettings) -> None:
        self.network, self.settings = network, settings
        self.callbacks = settings.callbacks
        self.guard: DivergenceGuard = settings.callbacks[0]
        self.say = settings.say
        self.optimizer = settings.optimizer
        self.epoch = network.epochs_trained
        self.lr = settings.lr
        self.stop_training = False
        self.stop_reason: str | None = None
        self.summary_index = -1  # the history entry the final weights come from (early stopping)
        self.consistent = True  # history, weights and counters agree (not mid-epoch)

    @property
    def history(self) -> History:
        return self.network.history

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(self, *args)

    def _set_up(self) -> None:
        """The changes ``fit`` makes before its first epoch (validation has passed)."""
        net, s = self.network, self.settings
        if s.resumed is not None:
            adopt(net, s.resumed.net)
            self.stop_reason = s.resumed.record["finished"]
        if s.place_with is not None:  # the array-API backend, where the data is
            net.to_device(s.place_with)
            if s.max_loss is None:
                s.max_loss = s.record["max_loss"] = default_max_loss(net, s.X_train[:s.batch, ...],
                                                                     s.y_train[:s.batch])
        params = net.parameters
        self.optimizer.bind(params)
        net.optimizer = self.optimizer
        self.workspace = Workspace(net.kernels, net.architecture, s.batch, net.dtype,
                                   keep_probs=[1.0 - r for r in net.dropout], gather=s.shuffle and not s.full_batch,
                                   threads=s.threads if isinstance(s.threads, int) else None,
                                   like=params[0])
        self.weight_decays = [s.weight_decay, 0.0] * len(net.weights)
        self.codes = net.activation_codes
        self.tracked = params + [a for kind in self.optimizer.state_names for a in self.optimizer.state[kind]]
        self.resumed_from = self.epoch = net.epochs_trained
        # Jitted backends compile (or load from their cache) here, timed on its own, so
        # that no epoch's time includes compilation.
        # Measuring BLAS threads for this batch size, when asked for, is set-up too.
        setup_start = time.perf_counter()
        warmup = capabilities(net.kernels).warmup
        compiled = warmup(len(net.weights), net.dtype) if warmup is not None else 0.0
        if s.threads == "measure":  # opt-in: see check_threads on reproducibility
            self.workspace.blas_threads = choose_blas_threads(net.kernels, net.architecture, s.batch, net.dtype)
        net.blas_threads = self.workspace.blas_threads
        net.epoch_parts, net.epoch_blas_threads = self.workspace.parts, self.workspace.epoch_blas_threads
        net.compile_seconds = compiled
        net.setup_seconds = time.perf_counter() - setup_start

    def run(self) -> History:
        """Train to ``settings.target_epoch`` (or until a callback stops it); return the history."""
        self._set_up()
        self._call("on_fit_start")
        try:
            for epoch in range(self.resumed_from + 1, self.settings.target_epoch + 1):
                if self.stop_reason not in (None, "completed"):
                    break  # the resumed run had already stopped early or diverged
                self.epoch, self.lr = epoch, self.settings.schedule(self.settings.lr, epoch - 1)
                self._call("on_epoch_begin")
                if not self._train_epoch():
                    break  # diverged, with on_divergence="warn"
                self._call("on_epoch_end")
                if self.stop_training:
                    break
        except BaseException as exc:
            self._call("on_exception", exc)
            raise
        self._call("on_fit_end")
        return self.network.history

    def _train_epoch(self) -> bool:
        """Train and record one epoch; ``False`` if it diverged and the fit is to stop with a warning.

        Ctrl-C before the epoch is in the history undoes it: weights, optimizer state,
        shuffling and dropout draws, so fitting again continues exactly as if it had not
        started, and a model saved after the interrupt matches its history.
        """
        net, s, ws = self.network, self.settings, self.workspace
        rng_state = net.rng.bit_generator.state  # for an interrupted epoch to leave no trace
        n_recorded = len(net.history)
        n = s.n_samples
        self.consistent = False
        try:
            # unshuffled or full-batch epochs read X_train in place: no gather
            order = net.rng.permutation(n) if s.shuffle and not s.full_batch else None
            t0 = time.perf_counter()
            try:
                loss_sum, n_correct = run_epoch(ws, s.X_train, s.y_train, order, net.weights, net.biases,
                                                self.codes, self.optimizer, self.lr, self.weight_decays, net.rng,
                                                s.max_loss)
                devices.synchronize(s.X_train)  # a GPU's queued work belongs to this epoch's time
                seconds = time.perf_counter() - t0
                net.last_epoch_path = ws.last_path
                net.thread_parts = ws.thread_parts[:ws.parts].tolist()
                if not all(devices.all_finite(a) for a in self.tracked):
                    recheck_inputs(s.unscanned)
                    # every batch's loss was sound, so this epoch's starting weights are good
                    self.guard.stop(self, f"batch {-(-n // s.batch)} (the last): its update made the weights "
                                    "or optimizer state non-finite", True)
            except LossDiverged as exc:
                recheck_inputs(s.unscanned)
                self.guard.stop(self, _divergence_cause(exc, s.max_loss), exc.batch > 1)
            self._record(loss_sum, n_correct, seconds)
        except (KeyboardInterrupt, InputChanged):
            if len(net.history) > n_recorded:
                net.history.truncate(n_recorded)
            self.guard.undo_epoch(self)
            net.rng.bit_generator.state = rng_state
            self.consistent = True
            raise
        except FloatingPointError as exc:
            if s.on_divergence == "raise":
                raise
            warnings.warn(str(exc), TrainingDivergedWarning, stacklevel=4)  # fit's caller
            self.stop_reason = "diverged"
            self.consistent = True
            return False
        self.consistent = True
        return True

    def _record(self, loss_sum: float, n_correct: int, seconds: float) -> None:
        """The epoch's cost (with the L2 penalty) and test results, appended to the history."""
        net, s = self.network, self.settings
        n = s.n_samples
        # Between epochs that run in parts, BLAS stays on one thread: OpenBLAS's own
        # threads spin for ~0.1 s after a multi-threaded call, and would hold the core
        # the next epoch's helper thread needs (its share of the parts fell from 50%
        # to 35%, the epoch took 0.25 s instead of 0.20, batch 128 on Fashion-MNIST)
        with blas_threads(1 if self.workspace.parts > 1 else None, net.kernels):
            cost = loss_sum / n
            if s.weight_decay:
                cost += 0.5 * s.weight_decay * sum(devices.sum_of_squares(W) for W in net.weights)
            test_cost, test_acc = math.nan, math.nan
            if s.X_test is not None:
                # finite inputs can still overflow in the forward pass; that shows as a
                # NaN test cost, and must not stop the epoch from being recorded
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    test_cost, test_acc = net.evaluate(s.X_test, s.y_test, checked=True)
        net.history.append(epoch=self.epoch, cost=cost, train_accuracy=n_correct / n, test_cost=test_cost,
                           test_accuracy=test_acc, lr=self.lr, seconds=seconds,
                           samples_per_second=n / seconds if seconds > 0 else math.inf)
