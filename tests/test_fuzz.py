"""Mutation fuzzing of the two parsers that read untrusted files: ``read_idx`` and ``load_model``.

Each case starts from a valid file (IDX: several dtypes and shapes, plain and gzip;
models: several networks, with and without optimizer state, float32/float64, with a
history, with ``data_info``), applies a few drawn mutations, writes the result and
parses it.  The property:

- the parse succeeds and the result is sane (an array of a supported dtype; a network
  whose parameters are finite and shaped by its architecture), or
- it raises ``ValueError`` or ``OSError`` with a message naming the file,

and nothing else escapes; and the parse never allocates much more than the file
could legitimately hold (see ``_allocation_bound``).

Mutations work at three levels, so the checks behind the CRCs and the checksum are
reached, not just the first layer:

- bytes of the finished file: bit flips, overwrites, truncation, appended junk,
  inserted and deleted bytes;
- the format's headers, with the container rebuilt around them: IDX magic, dtype
  code, dimension count and sizes (then gzip-compressed again, so the gzip CRC holds);
  edits of the model's JSON metadata and of the ``.npy`` headers inside the zip (the zip
  is rewritten, so its CRCs hold);
- model entries: dropped, added, duplicated, retyped, reshaped, NaN/inf in the
  weights, metadata replaced by non-JSON, deeply nested JSON or huge numbers; the
  checksum is usually recomputed (as a forger would), so the checks behind it run.

``FASTSCRATCH_FUZZ_EXAMPLES`` sets the number of cases per target (default 200, so
the plain suite stays quick); CI runs ``FASTSCRATCH_FUZZ_EXAMPLES=10000 python -m pytest
-m fuzz``.  Cases are derandomized (the same every run) unless
``FASTSCRATCH_FUZZ_RANDOM=1``, which explores new ones each run (and keeps failures in
hypothesis' example database).
"""

from __future__ import annotations

import ast
import copy
import gzip
import importlib.util
import io
import json
import math
import os
import struct
import subprocess
import sys
import traceback
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastscratch import NeuralNetwork
from fastscratch.backends import load_backend
from fastscratch.datasets import _IDX_CODES, _IDX_DTYPES, read_idx
from fastscratch.io.model_files import _digest

FUZZ_EXAMPLES = int(os.environ.get("FASTSCRATCH_FUZZ_EXAMPLES", "200"))
_RANDOM = os.environ.get("FASTSCRATCH_FUZZ_RANDOM") == "1"

# Explicit settings, so the conftest profiles (40 / 150 examples) do not apply here.
# Health checks: the strategies draw whole files, and some mutation lists are rejected
# by hypothesis' size limits; neither should stop the run short of max_examples.
FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=not _RANDOM, print_blob=True,
    database=None if not _RANDOM else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)

# The first load of a Numba backend imports Numba (tens of MB); a mutated model may
# name it, and that one-time import is not the parser's allocation.
try:
    load_backend("auto")
except ImportError:
    pass

# ------------------------------------------------------------------ the property
# Legitimate allocation: deflate expands at most ~1032:1, so a compressed file of n
# bytes can really hold ~1032 n bytes, and both parsers allocate what a header claims
# once the claim passes that bound (they cannot know sooner without inflating first).
# NumPy may hold one more copy (byte swap to native order; the checksum's bytes), so
# 2 * 1100 n.  A plain IDX file holds at most n bytes of data (2 n with the byte swap).
# The fixed 8 MB covers interpreter, zipfile, gzip and JSON overhead: over 10,000 cases
# per target the largest peaks measured were 0.24 MB (IDX) and 0.62 MB (a model whose
# metadata is 200 kB of nested JSON).  A lying header is far above the bound: 2**31
# items is 2 GB, and a flipped high bit in a dimension claims >= 16 MB per other item.
_FIXED_OVERHEAD = 8 * 2**20
_COMPRESSED_RATIO = 2 * 1100
_PLAIN_RATIO = 2


def _allocation_bound(data: bytes, compressed_possible: bool) -> int:
    return _FIXED_OVERHEAD + (_COMPRESSED_RATIO if compressed_possible else _PLAIN_RATIO) * len(data)


@dataclass
class Outcome:
    result: Any = None
    error: BaseException | None = None
    trace: str = ""
    peak: int = 0


def _parse_traced(parse: Callable[[Path], Any], path: Path) -> Outcome:
    """Run ``parse(path)`` under tracemalloc (only around the parse, so hypothesis'
    own allocations do not count) and catch everything but KeyboardInterrupt."""
    outcome = Outcome()
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        outcome.result = parse(path)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: B036 - the point is to see anything that escapes
        outcome.error, outcome.trace = exc, traceback.format_exc()
    finally:
        outcome.peak = tracemalloc.get_traced_memory()[1] - before
        if not already:
            tracemalloc.stop()
    return outcome


def _check_outcome(outcome: Outcome, path: Path, data: bytes, compressed_possible: bool) -> None:
    bound = _allocation_bound(data, compressed_possible)
    assert outcome.peak <= bound, (
        f"parsing a {len(data)}-byte file allocated {outcome.peak:,} bytes (bound {bound:,}); "
        f"outcome: {type(outcome.error).__name__ if outcome.error else 'loaded'}\n{outcome.trace}")
    exc = outcome.error
    if exc is None:
        return
    if not isinstance(exc, (ValueError, OSError)):
        raise AssertionError(f"{type(exc).__name__} escaped (only ValueError/OSError may):\n{outcome.trace}")
    message = str(exc)
    assert message.strip(), f"{type(exc).__name__} without a message:\n{outcome.trace}"
    assert str(path) in message, f"message does not name the file: {message!r}\n{outcome.trace}"


# ------------------------------------------------------------------ byte mutations
# Strategies are built once: drawing offsets as plain integers, reduced modulo the
# current length when applied, keeps hypothesis from building (and validating) new
# strategies for every case, which would cost more than parsing the file.
_JUNK = st.one_of(st.binary(min_size=1, max_size=32),
                  st.sampled_from([b"\0" * 8, b"\xff" * 8, b"PK\x05\x06", b"\x1f\x8b\x08\x00", b"\x93NUMPY"]))
# anywhere in the file, or (as often) within the first 64 bytes, where the headers are
_OFFSET = st.one_of(st.tuples(st.just("at"), st.integers(0, 2**20)), st.tuples(st.just("head"), st.integers(0, 63)))
BYTE_MUTATION = st.one_of(
    st.tuples(st.just("flip"), _OFFSET, st.integers(0, 7)),
    st.tuples(st.just("set"), _OFFSET, st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01]) | st.integers(0, 255)),
    st.tuples(st.just("truncate"), _OFFSET),
    st.tuples(st.just("append"), _JUNK),
    st.tuples(st.just("insert"), _OFFSET, _JUNK),
    st.tuples(st.just("delete"), _OFFSET, st.integers(1, 16)),
)


def _offset(drawn: tuple[str, int], size: int) -> int:
    """A drawn offset as a position in ``[0, size)`` (0 for an empty string)."""
    kind, value = drawn
    if size == 0:
        return 0
    return value % size if kind == "at" else min(value, size - 1)


def _apply_byte_mutation(data: bytes, mutation: tuple) -> bytes:
    kind = mutation[0]
    if kind == "append":
        return data + mutation[1]
    if not data:
        return data
    at = _offset(mutation[1], len(data))
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ (1 << mutation[2])]) + data[at + 1:]
    if kind == "set":
        return data[:at] + bytes([mutation[2]]) + data[at + 1:]
    if kind == "truncate":
        return data[:at]
    if kind == "insert":
        return data[:at] + mutation[2] + data[at:]
    if kind == "delete":
        return data[:at] + data[at + mutation[2]:]
    raise AssertionError(kind)


def _draw_byte_mutations(draw: st.DrawFn, data: bytes, min_size: int, max_size: int) -> tuple[bytes, list[tuple]]:
    """Apply min_size..max_size drawn byte mutations to ``data``."""
    mutations = draw(st.lists(BYTE_MUTATION, min_size=min_size, max_size=max_size))
    for mutation in mutations:
        data = _apply_byte_mutation(data, mutation)
    return data, mutations


# ------------------------------------------------------------------------ IDX
@dataclass(frozen=True)
class IdxBase:
    name: str
    array: np.ndarray
    compressed: bool
    inner: bytes  # the uncompressed IDX bytes


def _idx_bases() -> list[IdxBase]:
    rng = np.random.default_rng(0)
    arrays = {
        "u8-images": rng.integers(0, 256, (3, 4, 5), dtype=np.uint8),
        "u8-labels": np.arange(7, dtype=np.uint8),
        "u8-empty": np.zeros((0, 5), dtype=np.uint8),
        "i8": rng.integers(-128, 128, (2, 6), dtype=np.int8),
        "i16": rng.integers(-3000, 3000, (2, 3), dtype=np.int16),
        "i32": rng.integers(-2**31, 2**31, (2, 2, 2), dtype=np.int32),
        "f32": rng.normal(size=(4, 3)).astype(np.float32),
        "f64": rng.normal(size=(2, 1, 3)),
    }
    bases = []
    for name, array in arrays.items():
        # the layout test_datasets checks against write_idx: magic, big-endian dims, big-endian data
        header = bytes([0, 0, _IDX_CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
        inner = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
        for compressed in (False, True):
            bases.append(IdxBase(f"{name}{'.gz' if compressed else ''}", array, compressed, inner))
    return bases


IDX_BASES = _idx_bases()
_UINT32_EDGES = [0, 1, 2, 3, 5, 255, 256, 65535, 65536, 2**24, 2**31 - 1, 2**31, 2**32 - 1]


_DIM_VALUES = st.sampled_from(_UINT32_EDGES) | st.integers(0, 2**32 - 1)
IDX_HEADER_EDIT = st.one_of(
    st.tuples(st.just("magic"), st.integers(0, 1), st.integers(0, 255)),
    st.tuples(st.just("dtype"), st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x0A, 0x0F, 0x00, 0xFF])
              | st.integers(0, 255)),
    st.tuples(st.just("ndim"), st.sampled_from([0, 1, 2, 3, 4, 32, 33, 64, 65, 255]) | st.integers(0, 255)),
    st.tuples(st.just("add-dim"), _DIM_VALUES),  # one more dimension, the count updated to match
    st.tuples(st.just("dim"), st.integers(0, 63), _DIM_VALUES),  # index modulo the declared count
    st.tuples(st.just("drop-dim")),
)


def _apply_idx_header_edit(inner: bytes, edit: tuple) -> bytes:
    head = bytearray(inner[:4].ljust(4, b"\0"))
    rest = inner[4:]
    kind = edit[0]
    if kind == "magic":
        head[edit[1]] = edit[2]
    elif kind == "dtype":
        head[2] = edit[1]
    elif kind == "ndim":
        head[3] = edit[1]
    elif kind == "dim" and head[3]:
        at = 4 * (edit[1] % head[3])
        rest = rest[:at] + struct.pack(">I", edit[2]) + rest[at + 4:]
    elif kind == "add-dim":  # one more dimension, the count updated to match
        head[3] = (head[3] + 1) % 256
        rest = struct.pack(">I", edit[1]) + rest
    elif kind == "drop-dim":
        head[3] = max(head[3] - 1, 0)
        rest = rest[4:]
    return bytes(head) + rest


@dataclass
class IdxCase:
    base: IdxBase
    data: bytes
    edits: list[tuple] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"IdxCase(base={self.base.name!r}, edits={self.edits!r}, data={self.data!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # what hypothesis prints for a failing case
        printer.text(repr(self))


@st.composite
def idx_cases(draw: st.DrawFn) -> IdxCase:
    base = draw(st.sampled_from(IDX_BASES))
    # Mostly one layer per case: stacked mutations mask each other (a flipped gzip byte
    # hides every header edit behind a CRC error), so each layer gets cases of its own.
    layer = draw(st.sampled_from(["header", "header", "header", "inner", "inner", "outer", "mixed", "mixed"]))
    inner, edits = base.inner, []
    # header edits and byte mutations of the IDX bytes themselves; a gzip file is
    # compressed afresh afterwards, so the gzip layer's CRC holds and read_idx's own
    # checks see the damage
    if layer in ("header", "mixed"):
        for edit in draw(st.lists(IDX_HEADER_EDIT, min_size=layer == "header", max_size=3)):
            inner = _apply_idx_header_edit(inner, edit)
            edits.append(edit)
    if layer in ("inner", "mixed"):
        inner, applied = _draw_byte_mutations(draw, inner, min_size=layer == "inner", max_size=3)
        edits += applied
    data = gzip.compress(inner, mtime=0) if base.compressed else inner
    # and damage to the finished file (the gzip layer, for a compressed one)
    if layer in ("outer", "mixed"):
        data, applied = _draw_byte_mutations(draw, data, min_size=layer == "outer", max_size=3)
        edits += [("outer", *m) for m in applied]
    return IdxCase(base, data, edits)


_NATIVE_IDX_DTYPES = {np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64)}


def _check_idx_result(case: IdxCase, array: Any) -> None:
    """A loaded file gave exactly what its bytes say: the declared shape, the data after
    the header read big-endian (and, unmutated, the array the base was made from)."""
    assert isinstance(array, np.ndarray), type(array)
    assert array.dtype in _NATIVE_IDX_DTYPES and array.dtype.isnative, array.dtype
    assert 1 <= array.ndim <= 64 and all(0 <= d < 2**32 for d in array.shape), array.shape
    try:
        content = gzip.decompress(case.data) if case.data[:2] == b"\x1f\x8b" else case.data
    except (OSError, EOFError, zlib.error):  # gzip's reader and decompress differ on trailing junk
        content = None
    if content is not None:
        ndim = content[3]
        assert array.shape == struct.unpack(f">{ndim}I", content[4:4 + 4 * ndim])
        expected = np.frombuffer(content[4 + 4 * ndim:], dtype=_IDX_DTYPES[content[2]]).reshape(array.shape)
        np.testing.assert_array_equal(array, expected)
    if case.data == (gzip.compress(case.base.inner, mtime=0) if case.base.compressed else case.base.inner):
        np.testing.assert_array_equal(array, case.base.array)
        assert array.dtype == case.base.array.dtype.newbyteorder("=")


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.fuzz
def test_fuzz_read_idx(fuzz_dir: Path, record_property: Callable[[str, object], None]) -> None:
    ran = 0

    @FUZZ_SETTINGS
    @given(case=idx_cases())
    def run(case: IdxCase) -> None:
        nonlocal ran
        ran += 1
        path = fuzz_dir / ("case.idx.gz" if case.base.compressed else "case.idx")
        path.write_bytes(case.data)
        outcome = _parse_traced(read_idx, path)
        # read_idx tells gzip from plain by content, so only a file starting with the
        # gzip magic may allocate as a compressed one would
        _check_outcome(outcome, path, case.data, compressed_possible=case.data[:2] == b"\x1f\x8b")
        if outcome.error is None:
            _check_idx_result(case, outcome.result)

    run()
    record_property("fuzz_cases", ran)
    assert ran >= FUZZ_EXAMPLES, f"only {ran} of {FUZZ_EXAMPLES} cases ran"


# ------------------------------------------------------------------------ models
@dataclass(frozen=True)
class ModelBase:
    name: str
    saved: bytes  # the file as save() wrote it
    meta: dict
    arrays: dict  # name -> ndarray (parameters and optimizer state)


def _model_bases(directory: Path) -> list[ModelBase]:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(24, 4)).astype(np.float32)
    y = np.arange(24) % 3
    nets = {}
    nets["untrained-f32"] = NeuralNetwork([4, 3], seed=0, backend="numpy")
    net = NeuralNetwork([4, 5, 3], dtype="float64", seed=1, backend="numpy")
    net.fit(X, y, lr=0.05, epochs=2, batch_size=8, optimizer="sgd", verbose=False)
    nets["sgd-f64"] = net
    net = NeuralNetwork([4, 3, 3], seed=2, backend="numpy", activation="tanh")
    net.fit(X, y, X, y, lr=0.05, epochs=2, batch_size=8, optimizer="momentum", verbose=False)
    net.data_info = {"dataset": "blobs", "class_names": ["a", "b", "c"]}
    nets["momentum-f32-data"] = net
    net = NeuralNetwork([4, 4, 3, 3], dtype="float64", seed=3, backend="numpy", dropout=[0.2, 0.0],
                        activation=["relu", "sigmoid"])
    net.fit(X, y, lr=0.01, epochs=3, batch_size=8, optimizer="adam", verbose=False)
    net.data_info = {"dataset": "blobs", "class_names": ["x", "y", "z"]}
    nets["adam-f64-dropout-data"] = net
    net = NeuralNetwork([4, 2, 3], seed=4, backend="numpy", init="xavier")
    net.fit(X, y, lr=0.01, epochs=1, batch_size=8, optimizer="adam", verbose=False)
    nets["adam-f32"] = net
    # a training checkpoint: the record of the fit in progress and the early-stopping copy (best.*)
    checkpoint = directory / "checkpoint-adam-early-stopping.npz"
    net = NeuralNetwork([4, 3, 3], seed=5, backend="numpy")
    net.fit(X, y, X, y, lr=0.01, epochs=3, batch_size=8, optimizer="adam", early_stopping=5, verbose=False,
            checkpoint=checkpoint)
    nets["checkpoint-adam-early-stopping"] = None  # already written by fit
    bases = []
    for name, net in nets.items():
        path = directory / f"{name}.npz"
        if net is not None:
            net.save(path)
        with np.load(path, allow_pickle=False) as npz:  # our own valid file: NumPy's reader is fine here
            arrays = {k: npz[k] for k in npz.files if k != "metadata"}
            meta = json.loads(npz["metadata"].tobytes().decode())
        bases.append(ModelBase(name, path.read_bytes(), meta, arrays))
    return bases


# Values a metadata edit may put anywhere: what a confused or hostile writer would.
_INTERESTING_INTS = [0, 1, -1, 2, 3, 4, 255, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63, 2**64, 10**30, 10**300]
_INTERESTING_STRINGS = ["float32", "float64", "float16", "int8", "object", "numpy", "numba", "auto", "sgd", "adam",
                        "momentum", "relu", "tanh", "sigmoid", "he", "xavier", "fastscratch-model", "PCG64",
                        "MT19937", "", "W0", "\x00", "é"]
_json_scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(_INTERESTING_INTS), st.integers(-1000, 1000),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.5, 0.999, 1.0, -0.0, 1e-300, 1e308]),
    st.sampled_from(_INTERESTING_STRINGS), st.text(max_size=8))
_json_values = st.recursive(
    _json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6)
_architectures = st.lists(st.sampled_from([1, 2, 3, 4, 5, 0, -1, 100000, 2**31, 2**63]) | st.integers(1, 6),
                          max_size=6)
_huge_architectures = st.sampled_from([[100000, 100000, 10], [4, 2**40, 3], [10**30, 3], [4] + [3] * 5000])

# Metadata replaced by text that is not the JSON the loader wants.
_RAW_METADATA = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([
        b"", b"{", b"null", b"[]", b'"fastscratch-model"', b"\xff\xfe{}", b"NaN", b"1e999",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"format": "fastscratch-model", "format_version": 1' + b"0" * 5000 + b"}",
        b'{"format": "fastscratch-model", "format_version": 1e999}',
        b'{"format": "fastscratch-model", "format_version": 1, "architecture": [' + b"9" * 4000 + b", 3]}",
    ]))

# .npy header fields as text, so the header parser sees what no writer would produce.
_DESCRS = ["'<f4'", "'<f8'", "'>f4'", "'|u1'", "'<f2'", "'|O'", "'<U3'", "'V8'", "'<c8'", "'|b1'", "'<i8'",
           "()", "('<f4',)", "('<f4', (2,))", "('<f4', 2**70)", "[]", "[('a', '<f4')]", "[('', '|V4')]",
           "[('a', '<f4', (1 << 62,))]", "{}", "None", "1", "'f4,f4'", "'garbage'", "[{}]", "[[]]", "{[]: 1}"]
_SHAPES = ["()", "(0,)", "(1,)", "(3,)", "(-1,)", "(-5,)", "(4, 5)", "(5, 4)", "(2**31,)", "(2147483648,)",
           "(65536000,)", "(1099511627776,)", "(100000, 100000)", "(4, 3, 1)", "(0, 9223372036854775807)",
           "(9223372036854775807, 9223372036854775807)", "(True,)", "[3]", "(3.0,)", "('3',)", "None",
           "(" + "1, " * 70 + ")"]


# What each field of a .npy header may become; a header edit changes one to three fields
# and keeps the others valid, so each strange value meets a header that is otherwise fine.
_NPY_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "version": st.sampled_from([(2, 0), (3, 0), (0, 0), (1, 1), (255, 255)]),
    "descr": st.sampled_from(_DESCRS),
    "fortran": st.sampled_from(["True", "0", "'x'", "None"]),
    "shape": st.sampled_from(_SHAPES),
    "extra_key": st.sampled_from(["'extra': 1, ", "'descr': '<f4', "]),
    "length_delta": st.sampled_from([1, -1, 7, -60, 0xFFFF, 2**31]),
    "data": st.sampled_from(["empty", "half", "double", "one-more"]),
}
_NPY_DEFAULTS = {"version": (1, 0), "descr": "KEEP", "fortran": "False", "shape": "KEEP", "extra_key": "",
                 "length_delta": 0, "data": "keep"}


@st.composite
def _npy_header_edit(draw: st.DrawFn) -> tuple:
    edit = dict(_NPY_DEFAULTS)
    # shape and descr carry the meaning (and the parser's trickiest paths): twice the weight
    fields = st.sampled_from(["shape", "shape", "descr", "descr", *sorted(set(_NPY_FIELDS) - {"shape", "descr"})])
    # mostly a single field, so one strange value meets an otherwise valid header
    count = draw(st.sampled_from([1, 1, 1, 2, 3]))
    for name in dict.fromkeys(draw(fields) for _ in range(count)):
        edit[name] = draw(_NPY_FIELDS[name])
    return tuple(sorted((k, v) for k, v in edit.items() if v != _NPY_DEFAULTS[k]))


def _npy_parts(npy: bytes) -> tuple[str, bytes]:
    """(header text, data) of a .npy file we wrote (version 1.0 or 2.0)."""
    major = npy[6]
    size = 2 if major == 1 else 4
    hlen = int.from_bytes(npy[8:8 + size], "little")
    start = 8 + size
    return npy[start:start + hlen].decode("latin1"), npy[start + hlen:]


def _apply_npy_header_edit(npy: bytes, changes: tuple) -> bytes:
    edit = {**_NPY_DEFAULTS, **dict(changes)}
    try:
        text, data = _npy_parts(npy)
        old = ast.literal_eval(text)
        old_descr, old_shape = repr(old["descr"]), repr(old["shape"])
    except Exception:  # an earlier edit left no parseable header to start from
        data, old_descr, old_shape = npy[10:], "'<f4'", "(3,)"
    descr = old_descr if edit["descr"] == "KEEP" else edit["descr"]
    shape = old_shape if edit["shape"] == "KEEP" else edit["shape"]
    header = (f"{{'descr': {descr}, 'fortran_order': {edit['fortran']}, {edit['extra_key']}'shape': {shape}, }}"
              .encode("latin1"))
    header = header.ljust(64 * math.ceil((len(header) + 1) / 64) - 1) + b"\n"
    data = {"keep": data, "empty": b"", "half": data[:len(data) // 2], "double": data + data,
            "one-more": data + data[:1]}[edit["data"]]
    version = edit["version"]
    size_format = "<H" if version[0] == 1 else "<I"
    length = min(max(len(header) + edit["length_delta"], 0), 2 ** (8 * struct.calcsize(size_format)) - 1)
    return b"\x93NUMPY" + bytes(version) + struct.pack(size_format, length) + header + data


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=array.dtype.hasobject)
    return buffer.getvalue()


@dataclass
class ModelCase:
    base: ModelBase
    data: bytes
    edits: list[Any] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"ModelCase(base={self.base.name!r}, edits={self.edits!r}, {len(self.data)} bytes)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # what hypothesis prints for a failing case
        printer.text(repr(self))


def _meta_paths(meta: dict) -> list[tuple]:
    """Key paths into the metadata: every top-level key, the keys of nested dicts
    and the first items of lists, two levels down."""
    paths: list[tuple] = []
    for key, value in meta.items():
        paths.append((key,))
        children = value.items() if isinstance(value, dict) else enumerate(value[:2]) if isinstance(value, list) else []
        for k2, v2 in children:
            paths.append((key, k2))
            if isinstance(v2, dict):
                paths += [(key, k2, k3) for k3 in v2]
    return paths


def _set_path(meta: dict, path: tuple, value: Any, delete: bool = False) -> None:
    target = meta
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_RETYPES = [np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_, np.complex64,
            np.dtype(">f4"), np.dtype(">f8")]
# An entry holding a pickle: loading must refuse it, never unpickle it.  (Written after the
# checksum, since the digest of an object array would hash pointers, not contents.)
_PICKLED = _npy(np.array([{"W0": [1.0, 2.0]}, "x"], dtype=object))


_NPY_HEADER_EDIT = _npy_header_edit()
_ENTRY_EDITS: dict[str, st.SearchStrategy[tuple]] = {}


def _entry_edit(base: ModelBase) -> st.SearchStrategy[tuple]:
    """One edit of ``base``'s metadata or entries, as a describable tuple (built once per base)."""
    if base.name in _ENTRY_EDITS:
        return _ENTRY_EDITS[base.name]
    meta_paths = _meta_paths(base.meta)
    array = st.sampled_from(sorted(base.arrays))
    # the metadata is read and checked first: half of the entry edits that can go there do
    entry = st.one_of(st.just("metadata"), array)
    k = st.just
    strategy = st.one_of(
        st.tuples(k("meta-set"), st.sampled_from(meta_paths + [("new-key",)]), _json_values),
        st.tuples(k("meta-delete"), st.sampled_from(meta_paths)),
        st.tuples(k("meta-arch"), _architectures | _huge_architectures),
        st.tuples(k("meta-raw"), _RAW_METADATA),
        st.tuples(k("meta-bytes"), st.lists(BYTE_MUTATION, min_size=1, max_size=3)),  # damage inside the JSON
        st.tuples(k("drop"), entry),
        st.tuples(k("add"), st.sampled_from(["W9", "b9", "W0", "opt.m.0", "opt.velocity.0", "opt.x.0", "extra",
                                             "metadata", "../evil", "notes.txt", "dir/W0"]),
                  st.sampled_from(["f4", "f8", "u1"]), st.sampled_from([(3,), (4, 3), (0,)])),
        st.tuples(k("duplicate"), entry),
        st.tuples(k("fortran"), array),
        st.tuples(k("pickle"), entry),
        st.tuples(k("retype"), array, st.sampled_from(_RETYPES)),
        st.tuples(k("reshape"), array, st.sampled_from(["T", "ravel", "add-axis", "empty", "scalar", "grow"])),
        st.tuples(k("non-finite"), array, st.sampled_from([np.nan, np.inf, -np.inf]), st.integers(0, 10**6)),
        # three times the weight: NumPy's header parser is the richest thing a file reaches
        *[st.tuples(k("npy-header"), entry, _NPY_HEADER_EDIT)] * 3,
        # consistent: metadata and every array agree, so the file should load
        st.tuples(k("retype-all"), st.sampled_from(["float32", "float64"])),
        # a lying header: the metadata entry, or W0 together with the architecture (so the
        # shape check passes), claims far more data than the entry holds
        st.tuples(k("lie-size"), st.sampled_from(["metadata", "W0"]),
                  st.sampled_from([10**5, 2**20, 2**24, 2**31, 2**40, 2**62])),
    )
    _ENTRY_EDITS[base.name] = strategy
    return strategy


def _build_model_file(base: ModelBase, edits: list[tuple], resign: bool, compression: int) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # casts that drop an imaginary part or overflow are the point
        return _build_model_file_quietly(base, edits, resign, compression)


def _build_model_file_quietly(base: ModelBase, edits: list[tuple], resign: bool, compression: int) -> bytes:
    meta = json.loads(json.dumps(base.meta))
    arrays = {k: v.copy() for k, v in base.arrays.items()}
    raw_meta: bytes | None = None
    extra_entries: list[tuple[str, bytes]] = []
    npy_edits: list[tuple[str, tuple]] = []
    dropped: set[str] = set()
    for edit in edits:
        kind = edit[0]
        try:
            if kind == "meta-set":
                _set_path(meta, edit[1], copy.deepcopy(edit[2]))  # drawn values may be shared constants
            elif kind == "meta-delete":
                _set_path(meta, edit[1], None, delete=True)
            elif kind == "meta-arch":
                meta["architecture"] = copy.deepcopy(edit[1])
            elif kind == "meta-raw":
                raw_meta = edit[1]
            elif kind == "meta-bytes":
                text = raw_meta if raw_meta is not None else json.dumps(meta).encode()
                for mutation in edit[1]:
                    text = _apply_byte_mutation(text, mutation)
                raw_meta = text
            elif kind == "drop":
                dropped.add(edit[1])
            elif kind == "add":
                _, name, dtype, shape = edit
                array = np.full(shape, 0.5, dtype=dtype)
                extra_entries.append((name if name == "notes.txt" else name + ".npy", _npy(array)))
            elif kind == "duplicate":
                extra_entries.append((edit[1] + ".npy", b""))  # filled in below, once arrays are final
            elif kind == "retype" and edit[1] in arrays:
                arrays[edit[1]] = arrays[edit[1]].astype(edit[2])
            elif kind == "reshape" and edit[1] in arrays:
                a = arrays[edit[1]]
                arrays[edit[1]] = {"T": lambda: a.T.copy(), "ravel": lambda: a.ravel(), "add-axis": lambda: a[None],
                                   "empty": lambda: a[:0], "scalar": lambda: a.reshape(-1)[0].copy(),
                                   "grow": lambda: np.concatenate([np.atleast_1d(a)] * 2)}[edit[2]]()
            elif kind == "non-finite" and edit[1] in arrays and arrays[edit[1]].size:
                a = arrays[edit[1]]
                if a.dtype.kind == "f":
                    a.reshape(-1)[edit[3] % a.size] = edit[2]
            elif kind == "fortran" and edit[1] in arrays and arrays[edit[1]].ndim == 2:
                arrays[edit[1]] = np.asfortranarray(arrays[edit[1]])
            elif kind in ("npy-header", "pickle"):
                npy_edits.append((edit[1], edit[2] if kind == "npy-header" else None))
            elif kind == "lie-size" and edit[1] == "metadata":
                npy_edits.append(("metadata", (("shape", f"({edit[2]},)"),)))
            elif kind == "lie-size":
                meta["architecture"][0] = edit[2]
                npy_edits.append(("W0", (("shape", repr((edit[2], meta["architecture"][1]))),)))
            elif kind == "retype-all":
                meta["dtype"] = edit[1]
                arrays = {k: v.astype(edit[1]) for k, v in arrays.items()}
        except (KeyError, IndexError, TypeError):  # an earlier edit removed what this one edits
            continue
    if resign and raw_meta is None:
        meta["sha256"] = _digest(arrays, meta)
    metadata_text = raw_meta if raw_meta is not None else json.dumps(meta).encode()
    entries = {"metadata": _npy(np.frombuffer(metadata_text, dtype=np.uint8))}
    entries.update({name: _npy(array) for name, array in arrays.items()})
    for name, edit in npy_edits:
        if name in entries:
            entries[name] = _PICKLED if edit is None else _apply_npy_header_edit(entries[name], edit)
    files = [(name + ".npy", npy) for name, npy in entries.items() if name not in dropped]
    for name, npy in extra_entries:
        stem = name[:-len(".npy")]
        files.append((name, npy or entries.get(stem, b"")))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we add on purpose
        with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
            for name, npy in files:  # a fixed timestamp: the same edits always give the same bytes
                zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), npy, compress_type=compression)
    return buffer.getvalue()


# Field edits of the zip container's own headers (the bytes around the entries, which
# the checksum does not cover): (offset in the record, struct format) per record type.
_ZIP_RECORDS = {
    "local": (b"PK\x03\x04", {"flags": (6, "<H"), "method": (8, "<H"), "crc": (14, "<I"), "csize": (18, "<I"),
                               "usize": (22, "<I"), "name_len": (26, "<H"), "extra_len": (28, "<H")}),
    "central": (b"PK\x01\x02", {"flags": (8, "<H"), "method": (10, "<H"), "crc": (16, "<I"), "csize": (20, "<I"),
                                 "usize": (24, "<I"), "name_len": (28, "<H"), "extra_len": (30, "<H"),
                                 "comment_len": (32, "<H"), "disk": (34, "<H"), "offset": (42, "<I")}),
    "eocd": (b"PK\x05\x06", {"disk": (4, "<H"), "cd_disk": (6, "<H"), "entries_disk": (8, "<H"),
                              "entries": (10, "<H"), "cd_size": (12, "<I"), "cd_offset": (16, "<I"),
                              "comment_len": (20, "<H")}),
}
_ZIP_VALUES = st.one_of(
    st.tuples(st.just("="), st.sampled_from([0, 1, 8, 12, 14, 99, 0x800, 0x808, 0x20, 0xFFFF, 0xFFFFFFFF, 2**31])
              | st.integers(0, 2**32 - 1)),
    st.tuples(st.just("+"), st.integers(-64, 64)),
)
ZIP_EDIT = st.one_of(
    *(st.tuples(st.just(record), st.integers(0, 63), st.sampled_from(sorted(fields)), _ZIP_VALUES)
      for record, (_, fields) in _ZIP_RECORDS.items()),
    # an entry name that is not UTF-8 although the flag says it is
    st.tuples(st.just("central"), st.integers(0, 63), st.just("bad-utf8-name"), st.just(None)),
)


def _apply_zip_edit(data: bytes, edit: tuple) -> bytes:
    record, index, field_name, value = edit
    signature, fields = _ZIP_RECORDS[record]
    starts = []
    at = data.find(signature)
    while at >= 0:
        starts.append(at)
        at = data.find(signature, at + 1)
    if not starts:
        return data
    start = starts[index % len(starts)]
    out = bytearray(data)
    if field_name == "bad-utf8-name":
        if start + 47 <= len(out):
            out[start + 9] |= 0x08  # general purpose flag bit 11 (0x0800, high byte): UTF-8 names
            out[start + 46] = 0xFF  # ... and a first name byte that UTF-8 forbids
        return bytes(out)
    offset, fmt = fields[field_name]
    size = struct.calcsize(fmt)
    if start + offset + size > len(out):
        return data
    old = struct.unpack_from(fmt, out, start + offset)[0]
    new = value[1] if value[0] == "=" else old + value[1]
    struct.pack_into(fmt, out, start + offset, new % 2 ** (8 * size))
    return bytes(out)


_MODEL_BASES: list[ModelBase] = []


@st.composite
def model_cases(draw: st.DrawFn) -> ModelCase:
    base = draw(st.sampled_from(_MODEL_BASES))
    # Mostly one layer per case (see idx_cases); entry edits get the most, as they reach
    # the checks behind the zip CRCs and the checksum.
    layer = draw(st.sampled_from(["entries"] * 4 + ["zip", "zip", "bytes", "bytes", "mixed", "mixed"]))
    edits: list[Any] = []
    if layer in ("entries", "mixed") or draw(st.booleans()):
        edits = draw(st.lists(_entry_edit(base), min_size=layer == "entries", max_size=3))
        resign = draw(st.integers(0, 4)) > 0  # mostly re-signed, so the checks behind the checksum run
        compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
        data = _build_model_file(base, edits, resign, compression)
        edits = [*edits, ("resign" if resign else "no-resign", "deflated" if compression else "stored")]
    else:  # the file exactly as save() wrote it
        data = base.saved
    if layer in ("zip", "mixed"):
        zip_edits = draw(st.lists(ZIP_EDIT, min_size=layer == "zip", max_size=2))
        for edit in zip_edits:
            data = _apply_zip_edit(data, edit)
        edits += [("zip", *e) for e in zip_edits]
    if layer in ("bytes", "mixed"):
        data, applied = _draw_byte_mutations(draw, data, min_size=layer == "bytes", max_size=3)
        edits += applied
    return ModelCase(base, data, edits)


def _check_network(net: Any) -> None:
    """A loaded network is usable: parameters and optimizer state finite, of its dtype and
    shaped by its architecture; history columns of one length; one class name per output."""
    assert isinstance(net, NeuralNetwork), type(net)
    arch = net.architecture
    assert net.dtype in (np.float32, np.float64)
    params = [*net.weights, *net.biases]
    assert len(net.weights) == len(net.biases) == len(arch) - 1
    for i, (W, b) in enumerate(zip(net.weights, net.biases)):
        assert W.shape == (arch[i], arch[i + 1]) and b.shape == (arch[i + 1],), (i, W.shape, b.shape, arch)
    if net.optimizer is not None:
        assert type(net.optimizer.iterations) is int and net.optimizer.iterations >= 0
        shapes = [p.shape for p in net.parameters]
        for kind in net.optimizer.state_names:
            state = net.optimizer.state[kind]
            assert [s.shape for s in state] == shapes, (kind, shapes)
            params += state
    for array in params:
        assert isinstance(array, np.ndarray) and array.dtype == net.dtype and np.isfinite(array).all()
    assert len({len(getattr(net.history, c)) for c in net.history.to_dict()}) == 1
    info = net.data_info
    assert info is None or len(info["class_names"]) == arch[-1]


def _check_signed(path: Path) -> None:
    """A file that loaded carries a valid checksum over what it holds (recomputed from
    NumPy's own reading of it), so no unsigned edit slips through."""
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz["metadata"].tobytes().decode())
        arrays = {k: npz[k] for k in npz.files if k != "metadata"}
    assert _digest(arrays, meta) == meta["sha256"], "a file with a wrong checksum loaded"


@pytest.mark.fuzz
def test_fuzz_load_model(fuzz_dir: Path, record_property: Callable[[str, object], None]) -> None:
    if not _MODEL_BASES:
        _MODEL_BASES.extend(_model_bases(fuzz_dir))
    for base in _MODEL_BASES:  # the starting points are valid
        path = fuzz_dir / "base.npz"
        path.write_bytes(base.saved)
        _check_network(NeuralNetwork.load(path))
    ran = 0

    @FUZZ_SETTINGS
    @given(case=model_cases())
    def run(case: ModelCase) -> None:
        nonlocal ran
        ran += 1
        path = fuzz_dir / "case.npz"
        path.write_bytes(case.data)
        outcome = _parse_traced(NeuralNetwork.load, path)
        # any entry may be (or be flipped into) a deflated one: the compressed bound applies
        _check_outcome(outcome, path, case.data, compressed_possible=True)
        if outcome.error is None:
            _check_network(outcome.result)
            _check_signed(path)
        elif case.data == case.base.saved:
            raise AssertionError(f"the unmodified file was refused: {outcome.error}")

    run()
    record_property("fuzz_cases", ran)
    assert ran >= FUZZ_EXAMPLES, f"only {ran} of {FUZZ_EXAMPLES} cases ran"


# ------------------------------------------------- the atheris harness (scripts/)
_HARNESS = Path(__file__).resolve().parents[1] / "scripts" / "fuzz_atheris.py"


def _harness() -> Any:
    spec = importlib.util.spec_from_file_location("fuzz_atheris", _HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["idx", "model"])
def test_atheris_harness_checks_its_seeds(tmp_path: Path, kind: str) -> None:
    """The harness runs without atheris up to the fuzzing itself, so it cannot rot: its
    seeds load, and a truncated seed is a ValueError naming the file."""
    harness = _harness()
    seeds = harness.write_seeds(kind, tmp_path / kind)
    assert len(seeds) >= 4
    for seed in seeds:
        data = seed.read_bytes()
        harness.check_one(kind, data, trace_malloc=True)
        harness.check_one(kind, data[:len(data) // 2])


def test_atheris_harness_without_atheris_says_how_to_get_it() -> None:
    if importlib.util.find_spec("atheris") is not None:
        pytest.skip("atheris is installed here")
    result = subprocess.run([sys.executable, str(_HARNESS), "model"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "pip install atheris" in result.stderr, result.stderr
    usage = subprocess.run([sys.executable, str(_HARNESS)], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "usage:" in usage.stderr
