"""Model files: one ``.npz`` of arrays plus a JSON metadata entry.

Layout (format version 1):

- ``W0, b0, W1, b1, ...``: the parameters;
- ``opt.<kind>.<i>``: optimizer state arrays (e.g. ``opt.m.0``), in parameter order
  ``[W0, b0, W1, b1, ...]``;
- ``metadata``: a 0-d unicode array holding JSON: format name and version,
  architecture, activations, dtype, init, dropout, backend, seed, the optimizer's
  config and step count, the generator state, the history, and a SHA-256 over
  every array (name, dtype, shape, bytes) so a modified file is detected.

Files are read with ``allow_pickle=False`` and checked entry by entry before
use; written to a temporary file in the target directory, flushed to disk, then
renamed over the target, so a failed save never leaves a partial file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from os import PathLike
from typing import Any

import numpy as np

FORMAT = "fastscratch-model"
FORMAT_VERSION = 1


def _array_digest(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_model(net, path: str | PathLike) -> None:
    """Write ``net`` to ``path`` atomically (see the module docstring for the layout)."""
    from . import __version__

    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {}
    for i, (W, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"W{i}"], arrays[f"b{i}"] = W, b
    optimizer = None
    if net.optimizer is not None:
        for kind, values in net.optimizer.state.items():
            for i, value in enumerate(values):
                arrays[f"opt.{kind}.{i}"] = value
        optimizer = {"config": net.optimizer.config(), "iterations": net.optimizer.iterations}
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "fastscratch_version": __version__,
        "architecture": net.architecture, "activations": net.activations, "dtype": net.dtype.name,
        "init": net.init, "dropout": net.dropout, "backend": net.backend, "seed": net.seed,
        "optimizer": optimizer, "rng_state": net.rng.bit_generator.state,
        "history": net.history.to_dict(), "sha256": _array_digest(arrays),
    }
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        # mkstemp creates the file private (0600); give it the mode a plain open() would
        os.chmod(tmp, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            np.savez(f, metadata=np.array(json.dumps(metadata)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _Invalid(ValueError):
    pass


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _Invalid(message)


def load_model(path: str | PathLike):
    """Read a model written by :func:`save_model`.

    Raises ``ValueError`` naming the file and the problem for anything that is
    not a valid, unmodified fastscratch model file of a supported version.
    """
    path = os.fspath(path)
    try:
        return _load(path)
    except _Invalid as exc:
        raise ValueError(f"{path}: {exc}") from None
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: not a fastscratch model file (not a readable .npz archive: {exc})") from None


def _load(path: str):
    from .history import History
    from .network import NeuralNetwork
    from .optimizers import get_optimizer

    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:  # neither .npz nor .npy: np.load refuses to unpickle it
        raise _Invalid(f"not a fastscratch model file (not an .npz archive: {exc})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise _Invalid("not a fastscratch model file (a single .npy array, not an .npz archive)")
    with loaded as npz:
        _require("metadata" in npz.files, "not a fastscratch model file (no metadata entry)")
        try:
            raw = npz["metadata"]
        except ValueError as exc:
            raise _Invalid(f"unreadable metadata entry ({exc})") from None
        _require(raw.dtype.kind == "U" and raw.shape == (), "metadata entry is not a JSON string")
        try:
            meta = json.loads(str(raw))
        except json.JSONDecodeError as exc:
            raise _Invalid(f"metadata is not valid JSON ({exc})") from None
        _require(isinstance(meta, dict) and meta.get("format") == FORMAT,
                 "not a fastscratch model file (metadata has no 'format': 'fastscratch-model')")
        version = meta.get("format_version")
        _require(version == FORMAT_VERSION,
                 f"model format version {version!r} is not supported (this fastscratch reads version "
                 f"{FORMAT_VERSION}); save it again with a matching fastscratch version")
        missing = [k for k in ("architecture", "activations", "dtype", "init", "dropout", "backend", "seed",
                               "optimizer", "rng_state", "history", "sha256") if k not in meta]
        _require(not missing, f"metadata lacks {missing}")
        try:
            net = NeuralNetwork(meta["architecture"], activation=meta["activations"], dtype=meta["dtype"],
                                seed=meta["seed"], backend="numpy", init=meta["init"], dropout=meta["dropout"])
        except (TypeError, ValueError) as exc:
            raise _Invalid(f"metadata describes an invalid network ({exc})") from None

        expected = {}
        for i, (W, b) in enumerate(zip(net.weights, net.biases)):
            expected[f"W{i}"], expected[f"b{i}"] = W.shape, b.shape
        optimizer = None
        if meta["optimizer"] is not None:
            spec = meta["optimizer"]
            _require(isinstance(spec, dict) and isinstance(spec.get("config"), dict)
                     and isinstance(spec.get("iterations"), int) and spec["iterations"] >= 0,
                     "optimizer metadata is malformed")
            try:
                optimizer = get_optimizer(spec["config"])
            except (TypeError, ValueError) as exc:
                raise _Invalid(f"optimizer metadata is invalid ({exc})") from None
            for kind in optimizer.state_names:
                for i, p in enumerate(net._params()):
                    expected[f"opt.{kind}.{i}"] = p.shape
        present = set(npz.files) - {"metadata"}
        _require(not set(expected) - present, f"arrays missing: {sorted(set(expected) - present)}")
        _require(not present - set(expected), f"unexpected arrays: {sorted(present - set(expected))}")

        arrays = {}
        for name, shape in expected.items():
            # the archive's own size of each entry is checked before reading it,
            # so a lying entry cannot make us allocate more than the model needs
            size = npz.zip.getinfo(name + ".npy").file_size
            _require(size <= int(np.prod(shape)) * net.dtype.itemsize + 4096,
                     f"array {name} is larger than the architecture allows")
            try:
                array = npz[name]
            except ValueError as exc:
                raise _Invalid(f"array {name} is unreadable ({exc})") from None
            _require(array.shape == shape, f"array {name} has shape {array.shape}, expected {shape}")
            _require(array.dtype == net.dtype, f"array {name} has dtype {array.dtype}, expected {net.dtype}")
            arrays[name] = array
        _require(_array_digest(arrays) == meta["sha256"],
                 "checksum mismatch: the arrays do not match the metadata's SHA-256 (file modified or corrupt)")
        for name, array in arrays.items():
            _require(bool(np.isfinite(array).all()), f"array {name} holds NaN or infinite values")

    net.backend = meta["backend"] if isinstance(meta["backend"], str) else "auto"
    try:
        from .backends import load_backend
        net.kernels = load_backend(net.backend)
    except (ImportError, ValueError):
        net.backend = "auto"
        net.kernels = load_backend("auto")
    for i in range(len(net.weights)):
        net.weights[i] = np.ascontiguousarray(arrays[f"W{i}"])
        net.biases[i] = np.ascontiguousarray(arrays[f"b{i}"])
    if optimizer is not None:
        optimizer.bind(net._params())
        for kind in optimizer.state_names:
            optimizer.state[kind] = [np.ascontiguousarray(arrays[f"opt.{kind}.{i}"])
                                     for i in range(len(net._params()))]
        optimizer.iterations = meta["optimizer"]["iterations"]
        net.optimizer = optimizer
    try:
        net.rng.bit_generator.state = meta["rng_state"]
    except (TypeError, ValueError, KeyError) as exc:
        raise _Invalid(f"generator state is invalid ({exc})") from None
    try:
        net.history = History.from_dict(meta["history"])
    except ValueError as exc:
        raise _Invalid(str(exc)) from None
    return net
