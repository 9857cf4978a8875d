"""The training loop's concerns, as callbacks (Keras' shape).

``NeuralNetwork.fit`` runs a :class:`~fastscratch.training.loop.TrainingLoop`; everything it does
besides training epochs is a callback here: early stopping (:class:`EarlyStopping`),
checkpointing and resuming (:class:`BackupAndRestore`), the epoch lines and closing summary
(:class:`EpochLog`), the user's ``on_epoch_end`` function (:class:`EpochEndFunction`), and
the divergence guard with its snapshots (:class:`DivergenceGuard`, which the loop always
runs first).  ``fit``'s keyword arguments build these; ``fit(callbacks=[...])`` adds yours.

The protocol: an object with any of these methods (subclass :class:`Callback` to get
no-op defaults for the rest), each called with the running loop, in list order:

- ``on_fit_start(loop)``: set-up is done (a checkpoint resumed, the optimizer bound, jitted
  kernels compiled), before the first epoch;
- ``on_epoch_begin(loop)``: before each epoch; ``loop.epoch`` is its number (counted over
  the model's life, from 1) and ``loop.lr`` its learning rate;
- ``on_epoch_end(loop)``: the epoch is recorded in ``loop.history``; set
  ``loop.stop_training = True`` to make it the last;
- ``on_fit_end(loop)``: after the last epoch, when ``fit`` returns normally (also after a
  divergence with ``on_divergence="warn"``);
- ``on_exception(loop, exc)``: ``fit`` is leaving with ``exc`` (Ctrl-C, an error in a
  callback, a divergence with ``on_divergence="raise"``); it is re-raised afterwards.

What a callback sees of the loop is :class:`LoopState`.  A callback should not change the
weights; an exception it raises stops ``fit`` (a checkpoint of the last complete epoch is saved).
"""

from __future__ import annotations

import math
import os
import time
from os import PathLike
from typing import Any, Callable, Protocol

import numpy as np

from .. import devices
from .._validation import plural
from ..history import History
from ..io import checkpoints as ckpt
from ..io.atomic import ensure_writable_dir
from ..io.model_files import save_model

HOOKS = ("on_fit_start", "on_epoch_begin", "on_epoch_end", "on_fit_end", "on_exception")
MONITORS = {"test_loss": "min", "test_accuracy": "max", "cost": "min", "train_accuracy": "max"}
MONITOR_COLUMN = {"test_loss": "test_cost", "test_accuracy": "test_accuracy", "cost": "cost",
                  "train_accuracy": "train_accuracy"}


class LoopState(Protocol):
    """What a callback sees of the running loop (a :class:`~fastscratch.training.loop.TrainingLoop`;
    stated here so that callbacks need not import the loop, which imports them)."""

    network: Any  # the NeuralNetwork being trained
    settings: Any  # fit's validated arguments (fastscratch.training.loop.FitSettings)
    optimizer: Any  # the Optimizer bound to the network's parameters
    epoch: int  # the current epoch's number, counted over the model's life from 1
    lr: float  # the current epoch's learning rate
    resumed_from: int  # the model's epoch count when this fit started training
    tracked: list[np.ndarray]  # the parameters, then the optimizer's state arrays
    stop_training: bool  # set it in on_epoch_end to make this epoch the last
    stop_reason: str | None  # None, "early_stopping", "diverged", or a resumed run's "completed"
    # for the built-in callbacks: the log function, the history entry the final weights come
    # from, and whether history, weights and counters agree (not mid-epoch)
    say: Callable[[str], None] | None  # None when fit is not verbose
    summary_index: int
    consistent: bool

    @property
    def history(self) -> History: ...


def check_monitor(monitor: Any) -> str:
    """``monitor``, if it names a column early stopping can watch (:data:`MONITORS`)."""
    if not isinstance(monitor, str) or monitor not in MONITORS:
        raise ValueError(f"unknown monitor {monitor!r}; expected one of {sorted(MONITORS)}")
    return monitor


class Callback:
    """Base class of training callbacks: every hook does nothing (see the module docstring)."""

    def on_fit_start(self, loop: LoopState) -> None:
        pass

    def on_epoch_begin(self, loop: LoopState) -> None:
        pass

    def on_epoch_end(self, loop: LoopState) -> None:
        pass

    def on_fit_end(self, loop: LoopState) -> None:
        pass

    def on_exception(self, loop: LoopState, exc: BaseException) -> None:
        pass


class Snapshot:
    """A copy of a list of arrays (parameters and optimizer state), the step count, and
    (for epoch starts) the epoch whose start it holds."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = [devices.empty_like(a) for a in arrays]  # where the arrays live
        self.iterations = 0
        self.epoch: int | None = None

    def take(self, arrays: list[np.ndarray], iterations: int, epoch: int | None = None) -> None:
        for saved, a in zip(self.arrays, arrays):
            devices.copy_into(saved, a)
        self.iterations = iterations
        self.epoch = epoch

    def put_back(self, arrays: list[np.ndarray]) -> int:
        for a, saved in zip(arrays, self.arrays):
            devices.copy_into(a, saved)
        return self.iterations


class DivergenceGuard(Callback):
    """Keeps the parameters and optimizer state at the start of this epoch and the previous
    one (no per-step copies): an interrupted epoch is undone from the first, and a diverged
    one goes back to the newest of them known to give a sound loss."""

    def __init__(self) -> None:
        self.epoch_start: Snapshot | None = None
        self.previous_start: Snapshot | None = None

    def on_fit_start(self, loop: LoopState) -> None:
        self.epoch_start, self.previous_start = Snapshot(loop.tracked), Snapshot(loop.tracked)
        saved = loop.settings.resumed
        if saved is not None and saved.start is not None:  # a divergence next may go back to it
            self.epoch_start.take(saved.start, saved.record["last_epoch_start"]["iterations"],
                                  loop.network.epochs_trained)

    def on_epoch_begin(self, loop: LoopState) -> None:
        self.previous_start, self.epoch_start = self.epoch_start, self.previous_start
        self.epoch_start.take(loop.tracked, loop.optimizer.iterations, loop.epoch)

    def undo_epoch(self, loop: LoopState) -> None:
        """Put the parameters and optimizer state back to this epoch's start."""
        loop.optimizer.iterations = self.epoch_start.put_back(loop.tracked)

    def last_start(self, epochs_trained: int) -> Snapshot | None:
        """The snapshot of the start of epoch ``epochs_trained`` (the last complete one), if held."""
        return next((snap for snap in (self.epoch_start, self.previous_start)
                     if snap.epoch is not None and snap.epoch == epochs_trained), None)

    def stop(self, loop: LoopState, what: str, epoch_start_is_good: bool) -> None:
        """Put back the newest snapshot known to give a sound loss, then raise FloatingPointError.

        ``epoch_start_is_good``: this epoch's starting weights gave a sound loss (on its first
        batch).  Otherwise they came from the previous epoch's last update, and that epoch's
        start is the good state.
        """
        epoch, history = loop.epoch, loop.network.history
        if epoch_start_is_good:
            restore, good_epoch = self.epoch_start, epoch
        elif self.previous_start.epoch == epoch - 1:  # the previous epoch ran here, or its start was checkpointed
            restore, good_epoch = self.previous_start, epoch - 1
            history.truncate(len(history) - 1)  # that epoch's result is undone
        else:  # failed on the first batch of this fit, before any update here
            restore, good_epoch = None, epoch
        if restore is not None:
            loop.optimizer.iterations = restore.put_back(loop.tracked)
            state = (f"restored to the start of epoch {good_epoch}, the last ones known to give a sound loss "
                     "(finite, within max_loss)")
        else:
            state = ("unchanged: this fit's very first batch gave that loss, before any update, so the starting "
                     "weights or the inputs are the problem")
        raise FloatingPointError(
            f"training diverged at epoch {epoch}, {what}. The weights and optimizer state are {state}. "
            f"Try a smaller learning rate than lr={loop.lr:g} or check the inputs for extreme values.")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs; with ``restore_best``, end with the best epoch's weights and optimizer state (the
    history keeps every epoch run).  ``monitor``: ``"test_loss"``, ``"test_accuracy"``,
    ``"cost"`` or ``"train_accuracy"``.  Built by ``fit(early_stopping=patience, ...)``."""

    def __init__(self, patience: int, monitor: str = "test_loss", min_delta: float = 0.0,
                 restore_best: bool = True) -> None:
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
            raise ValueError(f"patience must be a positive integer, got {patience!r}")
        check_monitor(monitor)
        self.patience, self.monitor, self.min_delta = int(patience), monitor, float(min_delta)
        self.restore_best = bool(restore_best)
        self.sign = 1.0 if MONITORS[monitor] == "min" else -1.0
        self.best_value: float | None = None
        self.best_epoch, self.waited = 0, 0
        self.best: Snapshot | None = None
        #: the epoch the counters are up to date with (a checkpoint must not catch them half-updated)
        self.seen = 0
        self.stopped_here = False  # this fit's epochs reached the patience (not a resumed run's)

    def on_fit_start(self, loop: LoopState) -> None:
        saved = loop.settings.resumed
        if saved is not None:
            counters = saved.record["early_stopping"]
            self.best_value, self.best_epoch = counters["best_value"], counters["best_epoch"]
            self.waited = counters["waited"]
            if saved.best is not None:
                self.best = Snapshot(loop.tracked)
                self.best.take(saved.best, counters["best_iterations"])
        self.seen = loop.network.epochs_trained

    def on_epoch_end(self, loop: LoopState) -> None:
        value = getattr(loop.network.history, MONITOR_COLUMN[self.monitor])[-1]
        # a NaN test loss (inputs that overflow) is never an improvement
        if math.isfinite(value) and (self.best_value is None
                                     or self.sign * (self.best_value - value) > self.min_delta):
            self.best_value, self.best_epoch, self.waited = value, loop.epoch, 0
            if self.restore_best:
                self.best = self.best or Snapshot(loop.tracked)
                self.best.take(loop.tracked, loop.optimizer.iterations)
        else:
            self.waited += 1
            if self.waited >= self.patience:  # decided now, so a checkpoint saved from here on records it
                loop.stop_reason = "early_stopping"
                loop.stop_training = self.stopped_here = True
        self.seen = loop.epoch

    def counters(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch, "waited": self.waited,
                "best_iterations": self.best.iterations if self.best is not None else None}

    def on_fit_end(self, loop: LoopState) -> None:
        net = loop.network
        if loop.stop_reason == "diverged" and self.best_epoch > net.epochs_trained:
            self.best, self.best_value, self.best_epoch = None, None, 0  # that epoch's result was undone
        if self.stopped_here and loop.say is not None:
            loop.say(f"Early stopping at epoch {loop.epoch}: {self.monitor} has not improved for "
                     f"{plural(self.patience, 'epoch')} (best {self.best_value:.4f} at epoch {self.best_epoch}).")
        if self.best is not None and self.best_epoch != net.epochs_trained:
            # the history keeps every epoch run; weights and optimizer state are the best one's
            loop.optimizer.iterations = self.best.put_back(loop.tracked)
            loop.summary_index = self.best_epoch - 1
            if loop.say is not None:
                loop.say(f"Restored the weights and optimizer state of epoch {self.best_epoch}.")


def check_checkpoint_path(path: Any, resume: Any) -> str | None:
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


class BackupAndRestore(Callback):
    """Save the training state to ``path`` (atomically) every ``every`` epochs, when the fit ends,
    and when it leaves with an exception (the last complete epoch; not on divergence), as Keras'
    ``BackupAndRestore``; resuming from it is validated and applied by ``fit`` (see
    :mod:`fastscratch.io.checkpoints`).  Built by ``fit(checkpoint=path, checkpoint_every=every)``.
    ``early_stopping``: the run's :class:`EarlyStopping`, whose counters the checkpoint records."""

    def __init__(self, path: str, every: int, early_stopping: EarlyStopping | None, guard: DivergenceGuard) -> None:
        self.path, self.every, self.early_stopping, self.guard = path, every, early_stopping, guard

    def on_fit_start(self, loop: LoopState) -> None:
        saved = loop.settings.resumed
        if saved is not None and loop.say is not None:
            done = loop.network.epochs_trained - loop.settings.first_epoch
            finished = saved.record["finished"]
            loop.say(f"Resuming from {self.path}: {done} of {plural(loop.settings.epochs, 'epoch')} done"
                     + (f" (that run ended: {finished.replace('_', ' ')})"
                        if finished not in (None, "completed") else ""))

    def save(self, loop: LoopState, finished: str | None) -> None:
        es = self.early_stopping
        counters = es.counters() if es is not None else {"best_value": None, "best_epoch": 0, "waited": 0,
                                                          "best_iterations": None}
        best = es.best if es is not None else None
        # the snapshot of the last complete epoch's start, if this process has it
        start = self.guard.last_start(loop.network.epochs_trained)
        s = loop.settings
        save_model(loop.network, self.path,
                   ckpt.record(s.record, s.first_epoch, s.target_epoch, s.data_print, counters, finished,
                               None if start is None else {"iterations": start.iterations}),
                   best=best.arrays if best is not None else None, start=None if start is None else start.arrays)

    def on_epoch_end(self, loop: LoopState) -> None:
        s = loop.settings
        if not loop.stop_training and (loop.epoch - s.first_epoch) % self.every == 0 and loop.epoch < s.target_epoch:
            self.save(loop, None)

    def on_exception(self, loop: LoopState, exc: BaseException) -> None:
        # Ctrl-C, or an error in a callback: keep what was trained, if the state is whole
        es = self.early_stopping
        net = loop.network
        if (loop.consistent and (es is None or es.seen == net.epochs_trained)
                and net.epochs_trained > loop.resumed_from):
            try:
                self.save(loop, loop.stop_reason)
            except Exception as save_error:  # the original error matters more; say both
                exc.add_note(f"(saving the checkpoint {self.path} failed too: {save_error}; the previous "
                             "checkpoint, if any, is intact)")

    def on_fit_end(self, loop: LoopState) -> None:
        self.save(loop, loop.stop_reason or "completed")


def epoch_line(history: History, index: int) -> str:
    """The tutorial's line for history entry ``index``."""
    h = history
    line = f"Epoch {h.epoch[index]:4d} | Cost: {h.cost[index]:.4f} | Train Acc: {h.train_accuracy[index]:.4f}"
    if not math.isnan(h.test_accuracy[index]):
        line += f" | Test Acc: {h.test_accuracy[index]:.4f}"
    return line


class EpochLog(Callback):
    """The tutorial's epoch lines every ``every`` epochs (and the first and last of the fit, and
    the one early stopping stops at), then the closing summary, through ``say``.  Built by
    ``fit(verbose=True, log_every=every, log=say)``."""

    def __init__(self, every: int, say: Callable[[str], None]) -> None:
        self.every, self.say = every, say
        self.started = 0.0

    def on_fit_start(self, loop: LoopState) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, loop: LoopState) -> None:
        epoch = loop.epoch
        if (epoch % self.every == 0 or epoch == loop.resumed_from + 1 or epoch == loop.settings.target_epoch
                or loop.stop_training):
            self.say(epoch_line(loop.network.history, -1))

    def on_fit_end(self, loop: LoopState) -> None:
        net = loop.network
        if not net.history:
            return
        seconds = time.perf_counter() - self.started
        samples = loop.settings.n_samples * (net.epochs_trained - loop.resumed_from)
        h, index, say = net.history, loop.summary_index, self.say
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
                f"{samples / seconds if seconds > 0 else math.inf:,.0f} samples/s), backend {net.kernels.NAME}")
        if net.compile_seconds:
            line += f" (+ {net.compile_seconds:.2f} s compiling or loading the jitted kernels first)"
        say(line)


class EpochEndFunction(Callback):
    """Calls ``function(history)`` after every epoch is recorded: ``fit(on_epoch_end=function)``."""

    def __init__(self, function: Callable[[History], None]) -> None:
        self.function = function

    def on_epoch_end(self, loop: LoopState) -> None:
        self.function(loop.network.history)
