"""Crash-safe training checkpoints: what ``fit(checkpoint=..., resume=True)`` writes and reads.

A checkpoint is a model file (see :mod:`fastscratch.io.model_files`; ``NeuralNetwork.load``
reads it like any other) with two additions:

- a ``"checkpoint"`` metadata entry, the :func:`record` of the ``fit`` call in
  progress: its settings, the epoch it started from and the one it runs to, a
  fingerprint of its data, the early-stopping counters, and whether it finished;
- when early stopping keeps the best epoch's weights, that copy as arrays
  ``best.0, best.1, ...`` (parameters, then optimizer state, in ``fit``'s order);
- the parameters and optimizer state at the start of the last epoch, ``start.0, ...``,
  so that a divergence in the first epoch after resuming can go back one epoch, as
  it would have in the run never stopped.

With the model's weights, optimizer state, generator state and history, that is
everything the next epoch depends on, so a run resumed from a checkpoint takes
the same steps, bit for bit, as one that was never stopped.  Writes are atomic
(temporary file, fsync, rename): a run killed during a save leaves the previous
checkpoint whole.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import plural

VERSION = 1
FINISHED = (None, "completed", "early_stopping", "diverged")
# the fit settings a resumed run must share with the run it continues (``epochs``
# may change: it moves the end, as in Keras' BackupAndRestore)
FIT_KEYS = ("lr", "batch_size", "optimizer", "lr_schedule", "weight_decay", "shuffle", "early_stopping",
            "monitor", "min_delta", "restore_best", "max_loss")
_HASH_ROWS = 8192  # rows per block when hashing data: bounds the temporary copies


def fingerprint(X: np.ndarray | None, y: np.ndarray | None) -> str | None:
    """A BLAKE2b digest of ``X: (n, n_features)`` and ``y: (n,)`` (shape, dtype and values), or
    ``None`` without data: resuming on different data is refused rather than silently mixed."""
    if X is None:
        return None
    digest = hashlib.blake2b(digest_size=16)
    for array in (X, y):
        digest.update(f"{array.dtype.str}|{array.shape}|".encode())
        for start in range(0, array.shape[0], _HASH_ROWS):
            digest.update(np.ascontiguousarray(array[start:start + _HASH_ROWS]).data)
    return digest.hexdigest()


def record(fit: dict[str, Any], first_epoch: int, target_epoch: int, data: dict[str, str | None],
           early_stopping: dict[str, Any], finished: str | None,
           last_epoch_start: dict[str, int] | None = None) -> dict[str, Any]:
    """The ``"checkpoint"`` metadata entry (JSON-able).  ``last_epoch_start``:
    ``{"iterations": n}`` when the ``start.*`` arrays are saved, else ``None``."""
    return {"version": VERSION, "fit": fit, "first_epoch": first_epoch, "target_epoch": target_epoch,
            "data": data, "early_stopping": early_stopping, "finished": finished,
            "last_epoch_start": last_epoch_start}


def _is_int(value: Any, low: int = 0) -> bool:
    return type(value) is int and low <= value <= 2**53


def _is_finite_number(value: Any) -> bool:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def validate(entry: Any, epochs_trained: int) -> dict[str, Any]:
    """``entry`` if it is a well-formed checkpoint record for a model with ``epochs_trained``
    epochs of history; ``ValueError`` saying what is wrong otherwise."""
    if not isinstance(entry, dict) or set(entry) != {"version", "fit", "first_epoch", "target_epoch", "data",
                                                      "early_stopping", "finished", "last_epoch_start"}:
        raise ValueError("checkpoint metadata is malformed")
    if entry["version"] != VERSION or type(entry["version"]) is not int:
        raise ValueError(f"checkpoint version {entry['version']!r} is not supported (this fastscratch reads "
                         f"version {VERSION})")
    fit = entry["fit"]
    if not isinstance(fit, dict) or set(fit) != set(FIT_KEYS):
        raise ValueError("checkpoint metadata 'fit' is malformed")
    first, target = entry["first_epoch"], entry["target_epoch"]
    if not (_is_int(first) and _is_int(target, 1) and first <= epochs_trained <= target and first < target):
        raise ValueError(f"checkpoint epochs are inconsistent (started at {first!r}, runs to {target!r}, "
                         f"{epochs_trained} in the history)")
    data = entry["data"]
    if not (isinstance(data, dict) and set(data) == {"train", "test"} and isinstance(data["train"], str)
            and (data["test"] is None or isinstance(data["test"], str))):
        raise ValueError("checkpoint metadata 'data' is malformed")
    stopping = entry["early_stopping"]
    if not (isinstance(stopping, dict) and set(stopping) == {"best_value", "best_epoch", "waited", "best_iterations"}
            and (stopping["best_value"] is None or _is_finite_number(stopping["best_value"]))
            and _is_int(stopping["best_epoch"]) and stopping["best_epoch"] <= epochs_trained
            and _is_int(stopping["waited"]) and stopping["waited"] <= epochs_trained
            and (stopping["best_iterations"] is None or _is_int(stopping["best_iterations"]))):
        raise ValueError("checkpoint metadata 'early_stopping' is malformed")
    start = entry["last_epoch_start"]
    if not (start is None or (isinstance(start, dict) and set(start) == {"iterations"}
                              and _is_int(start["iterations"]))):
        raise ValueError("checkpoint metadata 'last_epoch_start' is malformed")
    if entry["finished"] not in FINISHED:
        raise ValueError(f"checkpoint metadata 'finished' is {entry['finished']!r}, expected one of {FINISHED}")
    return entry


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"name: checkpoint X, now Y"`` for every fit setting that differs."""
    return [f"{key}: checkpoint {saved[key]!r}, now {current[key]!r}" for key in FIT_KEYS
            if saved[key] != current[key]]


@dataclass
class Saved:
    """A checkpoint read back: the network it holds, its record, its early-stopping copy
    (``best``) and the state at the start of its last epoch (``start``), each ``None`` if absent."""

    path: str
    net: Any
    record: dict[str, Any]
    best: list[np.ndarray] | None
    start: list[np.ndarray] | None

    def check_compatible(self, settings: dict[str, Any], data: dict[str, str | None], target_epoch: int) -> None:
        """``ValueError`` unless a ``fit`` with ``settings`` (JSON-normalised), on data with
        fingerprints ``data``, running to ``target_epoch``, continues this checkpoint's run."""
        where = f"{self.path}: cannot resume"
        differ = differences(self.record["fit"], settings)
        if differ:
            raise ValueError(f"{where}: the training settings differ from the checkpoint's ({'; '.join(differ)})")
        for part in ("train", "test"):
            if data[part] != self.record["data"][part]:
                raise ValueError(f"{where}: the {part}ing data differ from the data the checkpoint was trained on "
                                 "(rows, dtype or values)")
        trained = len(self.net.history)
        if target_epoch < trained:
            raise ValueError(f"{where}: it already holds {plural(trained, 'epoch')}, more than this fit's end at epoch "
                             f"{target_epoch} (epochs={target_epoch - self.record['first_epoch']})")
