"""Model files: one ``.npz`` of arrays plus a JSON metadata entry.

Layout (format version 1):

- ``W0, b0, W1, b1, ...``: the parameters;
- ``opt.<kind>.<i>``: optimizer state arrays (e.g. ``opt.m.0``), in parameter order
  ``[W0, b0, W1, b1, ...]``;
- ``best.<j>`` and ``start.<j>`` (checkpoints only): the best epoch's parameters and
  optimizer state kept for early stopping, and those at the start of the last epoch,
  in the order ``W0, b0, ..., then the optimizer state``;
- ``metadata``: a 1-D ``uint8`` array holding UTF-8 JSON: format name and version,
  architecture, activations, dtype, init, dropout, backend, seed, the optimizer's
  config and step count, the generator state, the history, optionally the dataset
  (``data``) and a training checkpoint's record (``checkpoint``, see
  :mod:`fastscratch.io.checkpoints`), and a SHA-256 over
  every array (name, dtype, shape, bytes) and the rest of the metadata, so any
  modification is detected.

Files are never unpickled (nor passed to ``np.load``): the loader opens the zip
itself, accepts only stored or deflated ``.npy`` entries, checks each header
against the architecture and the entry's sizes before reading it, then checks
the checksum.  Saving writes a temporary file in the target directory, flushes
it to disk, then renames it over the target, so a failed save never leaves a
partial file.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from os import PathLike
from typing import Any

import numpy as np

from .. import devices
from .atomic import atomic_write

FORMAT = "fastscratch-model"
FORMAT_VERSION = 1


def _digest(arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> str:
    """SHA-256 over the arrays and the metadata (minus the digest itself), canonically."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    rest = {k: v for k, v in metadata.items() if k != "sha256"}
    digest.update(json.dumps(rest, sort_keys=True).encode())
    return digest.hexdigest()


def save_model(net, path: str | PathLike, checkpoint: dict[str, Any] | None = None,
               best: list[np.ndarray] | None = None, start: list[np.ndarray] | None = None) -> None:
    """Write ``net`` to ``path`` atomically (see the module docstring for the layout).

    ``checkpoint``: a :func:`fastscratch.io.checkpoints.record` to store with it; ``best`` the
    early-stopping copy of the parameters and optimizer state, ``start`` those at the start
    of the last epoch, if any.
    """
    from .._version import __version__

    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {}
    for i, (W, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"W{i}"], arrays[f"b{i}"] = devices.to_numpy(W), devices.to_numpy(b)  # off a device: to the host
    optimizer = None
    if net.optimizer is not None:
        for kind, values in net.optimizer.state.items():
            for i, value in enumerate(values):
                arrays[f"opt.{kind}.{i}"] = devices.to_numpy(value)
        optimizer = {"config": net.optimizer.config(), "iterations": net.optimizer.iterations}
    for j, array in enumerate(best or []):
        arrays[f"best.{j}"] = array
    for j, array in enumerate(start or []):
        arrays[f"start.{j}"] = array
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "fastscratch_version": __version__,
        "architecture": net.architecture, "activations": net.activations, "dtype": net.dtype.name,
        "init": net.init, "dropout": net.dropout, "backend": net.backend, "seed": net.seed,
        "optimizer": optimizer, "rng_state": net.rng.bit_generator.state,
        "history": net.history.to_dict(), "data": net.data_info,
    }
    if checkpoint is not None:
        metadata["checkpoint"] = checkpoint
    metadata["sha256"] = _digest(arrays, metadata)
    encoded = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    with atomic_write(path) as f:
        np.savez(f, metadata=encoded, **arrays)


class _Invalid(ValueError):
    pass


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _Invalid(message)


def load_model(path: str | PathLike, network_type: type):
    """Read a model written by :func:`save_model` (a checkpoint is read as the model it holds)
    as a ``network_type`` (``NeuralNetwork``; this module does not import it, so that the
    network can import this one): built by its ``without_parameters``, then given the file's
    parameters, optimizer, generator state and history through its public attributes.

    Raises ``ValueError`` naming the file and the problem for anything that is
    not a valid, unmodified fastscratch model file of a supported version.
    Every entry's header is checked against the architecture and the entry's
    sizes in the archive before it is read, so a small file cannot make this
    allocate much more than the model it describes.
    """
    return _load_checked(path, network_type)[0]


def load_checkpoint(path: str | PathLike, network_type: type):
    """Read a checkpoint written by ``fit(checkpoint=...)``: a :class:`fastscratch.io.checkpoints.Saved`
    with the network (a ``network_type``, as :func:`load_model` builds it), the record, the early-stopping copy of the parameters and optimizer state
    (``best``) and those at the start of the last epoch (``start``; each ``None`` when absent).
    ``ValueError`` for anything :func:`load_model` refuses, and for a model file that is not a
    checkpoint."""
    from .checkpoints import Saved

    net, entry, extra = _load_checked(path, network_type)
    if entry is None:
        raise ValueError(f"{os.fspath(path)}: a model file, not a training checkpoint (it has no checkpoint record)")
    return Saved(os.fspath(path), net, entry, extra.get("best"), extra.get("start"))


def _load_checked(path: str | PathLike, network_type: type):
    path = os.fspath(path)
    try:
        return _load(path, network_type)
    except _Invalid as exc:
        raise ValueError(f"{path}: {exc}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OverflowError, RecursionError, NotImplementedError,
            RuntimeError, ValueError) as exc:  # damage the checks below did not anticipate
        # (ValueError: e.g. zipfile's UnicodeDecodeError for an entry name flagged UTF-8 that is not)
        raise ValueError(f"{path}: not a fastscratch model file, or a damaged one ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        if exc.filename is not None:  # opening the file failed (missing, unreadable): that error names it
            raise
        # zipfile seeking to an offset a damaged archive gives (negative: EINVAL)
        raise ValueError(f"{path}: not a fastscratch model file, or a damaged one "
                         f"({type(exc).__name__}: {exc})") from None


# A deflated stream expands at most ~1032-fold; an entry claiming more is lying.
_MAX_DEFLATE_RATIO = 1032
# JSON metadata compresses far less than that; this bounds what it may expand to.
_MAX_METADATA_RATIO = 64
_MAX_ITERATIONS = 2**53  # beyond this, step counts stop being exact as floats
_ZIP_UNSUPPORTED_FLAGS = 0x1 | 0x20 | 0x40  # encrypted, patched data, strong encryption


def _read_entry(zf: zipfile.ZipFile, name: str, shape: tuple[int, ...] | None, dtype: np.dtype,
                max_ratio: int = _MAX_DEFLATE_RATIO) -> np.ndarray:
    """Read ``name.npy`` from the archive after checking its header: the dtype must be
    ``dtype``, the shape ``shape`` (any 1-D shape when ``None``), and the data must fit
    the entry's sizes in the archive (at most ``max_ratio`` times its compressed size)."""
    info = zf.getinfo(name + ".npy")
    _require(info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
             and not info.flag_bits & _ZIP_UNSUPPORTED_FLAGS,
             f"entry {name} is stored in a way fastscratch does not read (only plain stored or deflated entries)")
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(f)
            else:
                raise _Invalid(f"array {name} uses unsupported .npy format version {version}")
        except _Invalid:
            raise
        except Exception as exc:  # noqa: BLE001 - NumPy's header parser meets hostile text here
            # ast.literal_eval, tokenize and descr_to_dtype raise ValueError but also TypeError
            # (an unhashable dict key), IndexError (descr "()"), tokenize.TokenError and others
            raise _Invalid(f"array {name} has an unreadable .npy header ({type(exc).__name__}: {exc})") from None
        found_shape, fortran_order, found_dtype = header
        # NumPy's parser lets through negative sizes and booleans (True == 1), which np.empty refuses
        _require(all(type(d) is int and d >= 0 for d in found_shape),
                 f"array {name} has an invalid shape {found_shape} in its .npy header")
        if shape is not None:
            _require(found_shape == shape, f"array {name} has shape {found_shape}, expected {shape}")
        else:
            _require(len(found_shape) == 1, f"array {name} has shape {found_shape}, expected 1-D")
        _require(found_dtype == dtype, f"array {name} has dtype {found_dtype}, expected {dtype}")
        _require(not fortran_order, f"array {name} is stored in Fortran order")
        nbytes = int(np.prod(found_shape, dtype=object)) * found_dtype.itemsize
        if info.compress_type == zipfile.ZIP_STORED:
            limit = min(info.file_size, info.compress_size)
        else:
            limit = min(info.file_size, max_ratio * info.compress_size + 1024)
        _require(nbytes <= limit, f"array {name} claims {nbytes} bytes, more than its archive entry holds")
        array = np.empty(found_shape, dtype=found_dtype)
        got = f.readinto(memoryview(array).cast("B")) if nbytes else 0
        _require(got == nbytes, f"array {name} is truncated ({got} of {nbytes} bytes)")
        _require(f.read(1) == b"", f"array {name} has trailing bytes")
    return array


def _load(path: str, network_type: type):
    from ..history import History
    from ..optimizers import get_optimizer

    with open(path, "rb") as f:
        signature = f.read(4)
    if signature == b"\x93NUM":
        raise _Invalid("not a fastscratch model file (a single .npy array, not an .npz archive)")
    _require(signature in (b"PK\x03\x04", b"PK\x05\x06"), "not a fastscratch model file (not an .npz archive)")
    with zipfile.ZipFile(path) as zf:
        entries = zf.namelist()
        _require(all(e.endswith(".npy") for e in entries),
                 "not a fastscratch model file (archive holds entries other than .npy arrays)")
        _require(len(set(entries)) == len(entries), "archive holds duplicate entries")
        _require("metadata.npy" in entries, "not a fastscratch model file (no metadata entry)")
        raw = _read_entry(zf, "metadata", None, np.dtype(np.uint8), max_ratio=_MAX_METADATA_RATIO)
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise _Invalid(f"metadata is not valid JSON ({exc})") from None
        _require(isinstance(meta, dict) and meta.get("format") == FORMAT,
                 "not a fastscratch model file (metadata has no 'format': 'fastscratch-model')")
        version = meta.get("format_version")
        _require(type(version) is int and version == FORMAT_VERSION,
                 f"model format version {version!r} is not supported (this fastscratch reads version "
                 f"{FORMAT_VERSION}); save it again with a matching fastscratch version")
        missing = [k for k in ("architecture", "activations", "dtype", "init", "dropout", "backend", "seed",
                               "optimizer", "rng_state", "history", "sha256") if k not in meta]
        _require(not missing, f"metadata lacks {missing}")

        # Configure (and so validate) the network without drawing initial weights:
        # the arrays come from the file, once their headers have been checked.
        try:
            net = network_type.without_parameters(meta["architecture"], meta["activations"], meta["dtype"],
                                                  meta["seed"], "numpy", meta["init"], meta["dropout"])
        except (TypeError, ValueError) as exc:
            raise _Invalid(f"metadata describes an invalid network ({exc})") from None

        try:
            history = History.from_dict(meta["history"])
        except ValueError as exc:
            raise _Invalid(str(exc)) from None

        sizes = net.architecture
        expected: dict[str, tuple[int, ...]] = {}
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            expected[f"W{i}"], expected[f"b{i}"] = (n_in, n_out), (n_out,)
        param_shapes = list(expected.values())
        optimizer = None
        if meta["optimizer"] is not None:
            spec = meta["optimizer"]
            iterations = spec.get("iterations") if isinstance(spec, dict) else None
            _require(isinstance(spec, dict) and isinstance(spec.get("config"), dict)
                     and type(iterations) is int and 0 <= iterations <= _MAX_ITERATIONS,
                     "optimizer metadata is malformed")
            try:
                optimizer = get_optimizer(spec["config"])
            except (TypeError, ValueError) as exc:
                raise _Invalid(f"optimizer metadata is invalid ({exc})") from None
            for kind in optimizer.state_names:
                for i, shape in enumerate(param_shapes):
                    expected[f"opt.{kind}.{i}"] = shape
        entry = meta.get("checkpoint")  # optional: only checkpoints have it
        n_extra: dict[str, int] = {}
        if entry is not None:
            from . import checkpoints as checkpoint

            _require(optimizer is not None, "checkpoint metadata without an optimizer")
            try:
                checkpoint.validate(entry, len(history))
            except ValueError as exc:
                raise _Invalid(str(exc)) from None
            tracked_shapes = param_shapes * (1 + len(optimizer.state_names))
            for kind, present in (("best", entry["early_stopping"]["best_iterations"] is not None),
                                  ("start", entry["last_epoch_start"] is not None)):
                if present:
                    n_extra[kind] = len(tracked_shapes)
                    for j, shape in enumerate(tracked_shapes):
                        expected[f"{kind}.{j}"] = shape
        present = {e[: -len(".npy")] for e in entries} - {"metadata"}
        _require(not set(expected) - present, f"arrays missing: {sorted(set(expected) - present)}")
        _require(not present - set(expected), f"unexpected arrays: {sorted(present - set(expected))}")

        arrays = {name: _read_entry(zf, name, shape, net.dtype) for name, shape in expected.items()}
        _require(_digest(arrays, meta) == meta["sha256"],
                 "checksum mismatch: the contents do not match the metadata's SHA-256 (file modified or corrupt)")
        for name, array in arrays.items():
            _require(bool(np.isfinite(array).all()), f"array {name} holds NaN or infinite values")

    from ..backends import load_backend
    backend = meta["backend"]
    try:
        net.kernels = load_backend(backend)
        net.backend = backend
    except (ImportError, TypeError, ValueError):  # saved where another backend existed
        net.backend = "auto"
        net.kernels = load_backend("auto")
    net.weights = [arrays[f"W{i}"] for i in range(len(sizes) - 1)]
    net.biases = [arrays[f"b{i}"] for i in range(len(sizes) - 1)]
    net.optimizer = None
    if optimizer is not None:
        params = net.parameters
        optimizer.bind(params)
        for kind in optimizer.state_names:
            optimizer.state[kind] = [arrays[f"opt.{kind}.{i}"] for i in range(len(params))]
        optimizer.iterations = meta["optimizer"]["iterations"]
        net.optimizer = optimizer
    try:
        net.rng.bit_generator.state = meta["rng_state"]
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise _Invalid(f"generator state is invalid ({exc})") from None
    net.history = history
    info = meta.get("data")  # optional: files from before it was recorded lack it
    _require(info is None or (isinstance(info, dict) and set(info) == {"dataset", "class_names"}
                              and isinstance(info["dataset"], str) and isinstance(info["class_names"], list)
                              and len(info["class_names"]) == net.n_classes
                              and all(isinstance(c, str) for c in info["class_names"])),
             "metadata 'data' is malformed (expected dataset name and one class name per output)")
    net.data_info = info
    extra = {kind: [arrays[f"{kind}.{j}"] for j in range(n)] for kind, n in n_extra.items()}
    return net, entry, extra
