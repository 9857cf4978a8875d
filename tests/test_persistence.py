"""save/load: exact round trips, resumable training, and refusal of bad files."""

import json
import os
import zipfile

import numpy as np
import pytest

from fastscratch import NeuralNetwork
from fastscratch.io.model_files import FORMAT_VERSION


@pytest.fixture
def trained(blobs):
    X, y = blobs
    nn = NeuralNetwork([4, 8, 6, 3], activation=["tanh", "relu"], seed=5, dropout=[0.1, 0.0])
    nn.fit(X, y, X, y, lr=0.01, epochs=4, batch_size=16, optimizer="adam", verbose=False)
    return nn


def test_round_trip_is_exact(trained, blobs, tmp_path):
    X, y = blobs
    path = tmp_path / "model.npz"
    trained.save(path)
    loaded = NeuralNetwork.load(path)
    for a, b in zip(trained.parameters, loaded.parameters):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    np.testing.assert_array_equal(loaded.predict_proba(X), trained.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), trained.predict(X))
    assert loaded.architecture == trained.architecture and loaded.activations == trained.activations
    assert loaded.dropout == trained.dropout and loaded.dtype == trained.dtype
    assert loaded.history.to_dict() == trained.history.to_dict()
    assert loaded.optimizer.config() == trained.optimizer.config()
    assert loaded.optimizer.iterations == trained.optimizer.iterations
    for kind in ("m", "v"):
        for a, b in zip(trained.optimizer.state[kind], loaded.optimizer.state[kind]):
            np.testing.assert_array_equal(a, b)


def test_resuming_from_a_file_equals_training_straight_through(blobs, tmp_path):
    X, y = blobs
    straight = NeuralNetwork([4, 8, 3], seed=11, dropout=0.2)
    straight.fit(X, y, lr=0.01, epochs=6, batch_size=16, optimizer="momentum", verbose=False)

    first = NeuralNetwork([4, 8, 3], seed=11, dropout=0.2)
    first.fit(X, y, lr=0.01, epochs=3, batch_size=16, optimizer="momentum", verbose=False)
    first.save(tmp_path / "half.npz")
    resumed = NeuralNetwork.load(tmp_path / "half.npz")
    resumed.fit(X, y, lr=0.01, epochs=3, batch_size=16, optimizer="momentum", verbose=False)

    for a, b in zip(straight.parameters, resumed.parameters):
        np.testing.assert_array_equal(a, b)
    assert resumed.history.epoch == list(range(1, 7))
    assert resumed.history.cost == straight.history.cost


def test_untrained_and_float64_models_round_trip(tmp_path):
    nn = NeuralNetwork([3, 2], dtype="float64", seed=1)
    nn.save(tmp_path / "m.npz")
    loaded = NeuralNetwork.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.weights[0], nn.weights[0])
    assert loaded.optimizer is None and len(loaded.history) == 0


def test_saved_file_gets_the_usual_permissions(trained, tmp_path):
    mask = os.umask(0o022)
    try:
        trained.save(tmp_path / "m.npz")
    finally:
        os.umask(mask)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644


def test_save_is_atomic_and_leaves_no_temp_files(trained, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    trained.save(path)
    good = path.read_bytes()

    def broken_savez(*args, **kwargs):
        args[0].write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        trained.save(path)
    assert path.read_bytes() == good  # the previous file is intact
    assert os.listdir(tmp_path) == ["model.npz"]  # and no temporary is left behind


def _read_parts(path):
    """(metadata dict, arrays dict) of a saved model, read with NumPy's own reader."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "metadata"}
        meta = json.loads(npz["metadata"].tobytes().decode())
    return meta, arrays


def _encode(meta):
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def _resign(meta, arrays):
    """What a forger would do: recompute the checksum after an edit."""
    from fastscratch.io.model_files import _digest
    meta["sha256"] = _digest(arrays, meta)


def _rewrite(path, out, change_meta=None, change_arrays=None, resign=True):
    meta, arrays = _read_parts(path)
    if change_meta:
        change_meta(meta)
    if change_arrays:
        change_arrays(arrays)
    if resign:
        _resign(meta, arrays)
    np.savez(out, metadata=_encode(meta), **arrays)
    return out


def test_any_edit_without_the_checksum_is_detected(trained, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)

    def nudge_cost(m):
        m["history"]["cost"][0] += 1e-9

    for change_meta, change_arrays in [(nudge_cost, None), (lambda m: m.update(seed=99), None),
                                       (None, lambda a: a.update(W0=a["W0"] + np.float32(1e-3)))]:
        bad = _rewrite(path, tmp_path / "bad.npz", change_meta, change_arrays, resign=False)
        with pytest.raises(ValueError, match="checksum mismatch"):
            NeuralNetwork.load(bad)


@pytest.mark.parametrize("change_meta, change_arrays, pattern", [
    (lambda m: m.update(format_version=FORMAT_VERSION + 1), None, "format version 2 is not supported"),
    (lambda m: m.update(format="something-else"), None, "not a fastscratch model file"),
    (lambda m: m.pop("architecture"), None, r"metadata lacks \['architecture'\]"),
    (lambda m: m.update(architecture=[4, 9, 6, 3]), None, "arrays? W0 has shape"),
    (lambda m: m.update(architecture=[4, 8, 3]), None, "activation lists 2 values but the network has 1"),
    (lambda m: m.update(architecture=[4, 8, 3], activations=["relu"], dropout=[0.0]), None,
     "unexpected arrays"),
    (lambda m: m.update(activations=["swish", "relu"]), None, "unknown activation 'swish'"),
    (lambda m: m.update(dtype="float64"), None, "has dtype float32, expected float64"),
    (lambda m: m.update(optimizer={"config": {"name": "lbfgs"}, "iterations": 1}), None, "unknown optimizer"),
    (lambda m: m.update(history={"epoch": [1]}), None, "history must have exactly the keys"),
    (lambda m: m["history"].update(epoch=m["history"]["epoch"][::-1]), None, "history epochs must count"),
    (lambda m: m.update(format_version=True), None, "format version True is not supported"),
    (lambda m: m.update(data={"dataset": "x", "class_names": ["a"]}), None, "metadata 'data' is malformed"),
    (lambda m: m.update(data={"dataset": 3, "class_names": ["a", "b", "c"]}), None, "'data' is malformed"),
    (lambda m: m.update(data=["mnist"]), None, "'data' is malformed"),
    (None, lambda a: a.pop("b1"), r"arrays missing: \['b1'\]"),
    (None, lambda a: a.update(extra=np.zeros(3)), r"unexpected arrays: \['extra'\]"),
    (None, lambda a: a.update(W0=a["W0"].astype(np.float64)), "has dtype float64"),
])
def test_tampered_files_are_refused(trained, tmp_path, change_meta, change_arrays, pattern):
    """Edits with a recomputed checksum still fail validation, each with its own message."""
    path = tmp_path / "model.npz"
    trained.save(path)
    bad = _rewrite(path, tmp_path / "bad.npz", change_meta, change_arrays)
    with pytest.raises(ValueError, match=pattern) as info:
        NeuralNetwork.load(bad)
    assert str(bad) in str(info.value)


def test_non_finite_weights_are_refused(trained, tmp_path):
    """Even with a matching checksum (someone re-signed the file), NaN weights are rejected."""
    trained.save(tmp_path / "model.npz")
    meta, arrays = _read_parts(tmp_path / "model.npz")
    arrays["W1"][0, 0] = np.nan
    _resign(meta, arrays)
    np.savez(tmp_path / "nan.npz", metadata=_encode(meta), **arrays)
    with pytest.raises(ValueError, match="array W1 holds NaN or infinite values"):
        NeuralNetwork.load(tmp_path / "nan.npz")


@pytest.mark.parametrize("content, pattern", [
    (b"", "not a fastscratch model file"),
    (b"garbage bytes that are not a zip archive at all", "not a fastscratch model file"),
    (b"PK\x03\x04truncated", "not a fastscratch model file"),
])
def test_garbage_files_are_refused(tmp_path, content, pattern):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=pattern):
        NeuralNetwork.load(path)


def test_a_pickle_is_never_unpickled(tmp_path):
    import pickle

    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"W0": [1, 2, 3]}))
    with pytest.raises(ValueError, match="not a fastscratch model file"):
        NeuralNetwork.load(path)


def test_npz_without_metadata_or_bad_json(tmp_path):
    np.savez(tmp_path / "plain.npz", W0=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no metadata entry"):
        NeuralNetwork.load(tmp_path / "plain.npz")
    np.savez(tmp_path / "json.npz", metadata=np.frombuffer(b"{not json", np.uint8))
    with pytest.raises(ValueError, match="metadata is not valid JSON"):
        NeuralNetwork.load(tmp_path / "json.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="a single .npy array"):
        NeuralNetwork.load(tmp_path / "single.npy")


def test_truncated_model_file_is_refused(trained, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz"):
        NeuralNetwork.load(tmp_path / "cut.npz")


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        NeuralNetwork.load(tmp_path / "nope.npz")


def test_model_file_is_a_plain_npz(trained, tmp_path):
    """Other tools can read it: a zip of .npy arrays plus JSON metadata."""
    trained.save(tmp_path / "m.npz")
    names = zipfile.ZipFile(tmp_path / "m.npz").namelist()
    assert "metadata.npy" in names and "W0.npy" in names and "opt.m.0.npy" in names


def _craft(path, meta, arrays, raw_entries=None, resign=True, compression=zipfile.ZIP_STORED):
    """Write an .npz by hand: arrays as .npy entries, plus raw (name, bytes) entries."""
    if resign:
        _resign(meta, arrays)
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, array in {"metadata": _encode(meta), **arrays}.items():
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
        for name, data in raw_entries or []:
            zf.writestr(name, data)
    return path


@pytest.fixture
def parts(trained, tmp_path):
    trained.save(tmp_path / "model.npz")
    return _read_parts(tmp_path / "model.npz")


@pytest.mark.parametrize("change, pattern", [
    (lambda m: m["rng_state"].update(has_uint32=10**30), "generator state is invalid"),
    (lambda m: m["rng_state"]["state"].update(state=-1), "generator state is invalid"),
    (lambda m: m.update(rng_state="PCG64"), "generator state is invalid"),
    (lambda m: m["history"].update(epoch=[1e400] * len(m["history"]["epoch"])), "history column 'epoch'"),
    (lambda m: m["optimizer"].update(iterations=10**400), "optimizer metadata is malformed"),
    (lambda m: m.update(architecture=[200000, 8, 6, 200000]), r"array W0 has shape \(4, 8\), expected \(200000, 8\)"),
    (lambda m: m.update(seed=1.5), "seed must be a non-negative integer"),
    (lambda m: m.update(dropout="lots"), "dropout must be a number"),
])
def test_crafted_metadata_gives_value_errors(parts, tmp_path, change, pattern):
    meta, arrays = parts
    change(meta)
    path = _craft(tmp_path / "crafted.npz", meta, arrays)
    with pytest.raises(ValueError, match=pattern):
        NeuralNetwork.load(path)


def test_deeply_nested_json_is_refused(parts, tmp_path):
    _, arrays = parts
    path = tmp_path / "deep.npz"
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open("metadata.npy", "w") as f:
            np.lib.format.write_array(f, np.array("[" * 100000 + "]" * 100000))
    with pytest.raises(ValueError, match="deep.npz"):
        NeuralNetwork.load(path)


def test_entries_that_are_not_npy_are_refused(parts, tmp_path):
    meta, arrays = parts
    path = _craft(tmp_path / "x.npz", meta, arrays, raw_entries=[("W9", b"1234")])
    with pytest.raises(ValueError, match="entries other than .npy arrays"):
        NeuralNetwork.load(path)


def _npy_header_only(descr, shape):
    buffer = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


# The numbers for lying files: refused with ValueError in under 10 ms (best of 5
# runs, see the rejection_cost fixture) and a tracemalloc peak under 4 MB.
def test_a_lying_array_header_is_refused_before_allocating(parts, tmp_path, rejection_cost):
    """An entry whose .npy header claims 2**40 elements in a few bytes."""
    meta, arrays = parts
    arrays.pop("W0")
    raw = [("W0.npy", _npy_header_only("<f4", (2**40,)) + b"\0" * 64)]
    path = _craft(tmp_path / "lying.npz", meta, arrays, raw_entries=raw)
    seconds, peak = rejection_cost(NeuralNetwork.load, path, r"array W0 has shape \(1099511627776,\)")
    assert seconds < 0.010 and peak < 4 * 2**20, (seconds, peak)


def test_metadata_claiming_a_huge_architecture_is_refused_before_allocating(parts, tmp_path, rejection_cost):
    """The metadata claims [100000, 100000, 100000, 10] (80 GB of float32 weights); the
    arrays are the small originals, so the first header check refuses it."""
    meta, arrays = parts
    meta.update(architecture=[100000, 100000, 100000, 10])
    path = _craft(tmp_path / "huge-arch.npz", meta, arrays)
    seconds, peak = rejection_cost(NeuralNetwork.load, path,
                                   r"array W0 has shape \(4, 8\), expected \(100000, 100000\)")
    assert seconds < 0.010 and peak < 4 * 2**20, (seconds, peak)


def test_headers_agreeing_with_a_huge_architecture_are_refused_before_allocating(parts, tmp_path, rejection_cost):
    """Metadata and W0's .npy header agree on 100000 x 100000 float32 (40 GB), but the entry
    holds 64 bytes: refused on the entry's size in the archive, before np.empty."""
    meta, arrays = parts
    meta.update(architecture=[100000, 100000, 10], activations=["relu"], dropout=[0.0], optimizer=None)
    arrays = {"b0": np.zeros(100000, np.float32), "W1": np.zeros((100000, 10), np.float32),
              "b1": np.zeros(10, np.float32)}
    raw = [("W0.npy", _npy_header_only("<f4", (100000, 100000)) + b"\0" * 64)]
    path = _craft(tmp_path / "huge-header.npz", meta, arrays, raw_entries=raw,
                  compression=zipfile.ZIP_DEFLATED)
    seconds, peak = rejection_cost(NeuralNetwork.load, path, "array W0 claims 40000000000 bytes, more than its "
                                                             "archive entry holds")
    assert seconds < 0.010 and peak < 4 * 2**20, (seconds, peak)


def test_a_lying_metadata_header_is_refused_before_allocating(parts, tmp_path, rejection_cost):
    """The metadata entry's .npy header claims 2**31 bytes of JSON in a few hundred."""
    meta, arrays = parts
    _resign(meta, arrays)
    entries = {k: _npy_bytes(v) for k, v in arrays.items()}
    entries["metadata"] = _npy_header_only("|u1", (2**31,)) + json.dumps(meta).encode()
    path = _zip_entries(tmp_path / "lying-meta.npz", entries)
    seconds, peak = rejection_cost(NeuralNetwork.load, path, "array metadata claims 2147483648 bytes")
    assert seconds < 0.010 and peak < 4 * 2**20, (seconds, peak)


def test_header_matching_the_architecture_but_data_missing(parts, tmp_path):
    meta, arrays = parts
    W0 = arrays.pop("W0")
    buffer = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(buffer, np.lib.format.header_data_from_array_1_0(W0))
    path = _craft(tmp_path / "short.npz", meta, arrays, raw_entries=[("W0.npy", buffer.getvalue() + b"\0" * 8)])
    with pytest.raises(ValueError, match=r"array W0 is truncated \(8 of 128 bytes\)"):
        NeuralNetwork.load(path)


def test_a_deflated_file_loads_and_other_compressions_are_refused(parts, tmp_path):
    meta, arrays = parts
    good = _craft(tmp_path / "deflated.npz", dict(meta), dict(arrays), compression=zipfile.ZIP_DEFLATED)
    assert NeuralNetwork.load(good).architecture == meta["architecture"]
    bz = _craft(tmp_path / "bz2.npz", dict(meta), dict(arrays), compression=zipfile.ZIP_BZIP2)
    with pytest.raises(ValueError, match="only plain stored or deflated entries"):
        NeuralNetwork.load(bz)


def test_a_huge_npy_file_is_refused_without_reading_it(tmp_path):
    import tracemalloc

    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }".ljust(117) + b"\n"
    path = tmp_path / "huge.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="a single .npy array"):
            NeuralNetwork.load(path)
        assert tracemalloc.get_traced_memory()[1] < 1_000_000
    finally:
        tracemalloc.stop()


def test_a_bloated_metadata_entry_is_refused(parts, tmp_path):
    """Deflated metadata padded to expand a thousand-fold: refused before it is inflated."""
    meta, arrays = parts
    _resign(meta, arrays)
    padded = np.frombuffer(json.dumps(meta).encode() + b" " * 50_000_000, np.uint8)
    path = tmp_path / "bloated.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in {"metadata": padded, **arrays}.items():
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, array)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ValueError, match="array metadata claims"):
        NeuralNetwork.load(path)


def test_data_info_round_trips_and_older_files_without_it_load(trained, tmp_path):
    trained.data_info = {"dataset": "digits", "class_names": ["a", "b", "c"]}
    trained.save(tmp_path / "m.npz")
    assert NeuralNetwork.load(tmp_path / "m.npz").data_info == trained.data_info
    old = _rewrite(tmp_path / "m.npz", tmp_path / "old.npz", lambda m: m.pop("data"))
    assert NeuralNetwork.load(old).data_info is None


# ------------------------------------------------ found by tests/test_fuzz.py
def _npy_raw(header_text: str, data: bytes, version: tuple[int, int] = (1, 0), length_delta: int = 0) -> bytes:
    """A .npy entry with a hand-written header, padded as NumPy pads it; the stated
    header length is off by ``length_delta``."""
    import math
    import struct

    header = header_text.encode("latin1")
    header = header.ljust(64 * math.ceil((len(header) + 1) / 64) - 1) + b"\n"
    size_format = "<H" if version[0] == 1 else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(size_format, len(header) + length_delta) + header + data


def _zip_entries(path, entries):
    """An .npz of the given ``{name: .npy bytes}``, stored."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, npy in entries.items():
            zf.writestr(name + ".npy", npy)
    return path


def _npy_bytes(array):
    buffer = __import__("io").BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def test_fuzz_bytes_deleted_inside_the_archive_are_a_value_error(trained, tmp_path):
    """Seven bytes deleted at offset 13 (inside the first local header) shift every offset
    the central directory gives: zipfile seeks before the start of the file, and its
    OSError [Errno 22] escaped without the file's name."""
    trained.save(tmp_path / "model.npz")
    data = (tmp_path / "model.npz").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:13] + data[20:])
    with pytest.raises(ValueError, match=r"damaged one \(OSError: \[Errno 22\] Invalid argument\)") as info:
        NeuralNetwork.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("entry, header, version, length_delta, escaped", [
    ("metadata", "{'descr': ('<f4',), 'fortran_order': False, 'shape': (3,), }", (1, 0), 0, "IndexError"),
    ("metadata", "{'descr': (), 'fortran_order': False, 'shape': (3,), }", (1, 0), 0, "IndexError"),
    ("W0", "{'descr': {[]: 1}, 'fortran_order': False, 'shape': (4, 8), }", (1, 0), 0, "TypeError"),
    # the header length one too long takes in the first data byte (here "(", as the fuzzed
    # file's float happened to start); NumPy then retries with its Python 2 header filter,
    # whose tokenizer fails on the unclosed parenthesis
    ("opt.m.1", "{'descr': ('<f4', 2**70), 'fortran_order': 0, 'shape': (3.0,), }", (2, 0), 1, "TokenError"),
])
def test_fuzz_npy_headers_numpy_cannot_parse(parts, tmp_path, entry, header, version, length_delta, escaped):
    """NumPy's header parser raised TypeError, IndexError or tokenize.TokenError on these
    (not ValueError), and they escaped load_model."""
    meta, arrays = parts
    _resign(meta, arrays)
    entries = {"metadata": _npy_bytes(_encode(meta)), **{k: _npy_bytes(v) for k, v in arrays.items()}}
    data = _encode(meta).tobytes() if entry == "metadata" else b"(" + arrays[entry].tobytes()[1:]
    entries[entry] = _npy_raw(header, data, version, length_delta)
    path = _zip_entries(tmp_path / "header.npz", entries)
    with pytest.raises(ValueError, match=f"array {entry} has an unreadable .npy header \\({escaped}") as info:
        NeuralNetwork.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("shape, escaped_before_the_fix", [("(True,)", "TypeError: an integer is required"),
                                            ("(-1,)", "negative dimensions are not allowed")])
def test_fuzz_metadata_header_with_a_boolean_or_negative_size(parts, tmp_path, shape, escaped_before_the_fix):
    """NumPy's header check accepts any int (True, -1) as a size; np.empty then raised
    TypeError, or a ValueError that did not name the file."""
    meta, arrays = parts
    _resign(meta, arrays)
    entries = {k: _npy_bytes(v) for k, v in arrays.items()}
    entries["metadata"] = _npy_raw(f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}",
                                   _encode(meta).tobytes())
    path = _zip_entries(tmp_path / "shape.npz", entries)
    with pytest.raises(ValueError, match=rf"array metadata has an invalid shape \({shape[1:-2]},\)") as info:
        NeuralNetwork.load(path)
    assert str(path) in str(info.value)


def test_fuzz_entry_name_flagged_utf8_that_is_not(trained, tmp_path):
    """Flag bit 11 (UTF-8 names) on a central directory record whose name starts with
    0xFF: zipfile's UnicodeDecodeError escaped without the file's name."""
    trained.save(tmp_path / "model.npz")
    data = bytearray((tmp_path / "model.npz").read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 9] |= 0x08
    data[central + 46] = 0xFF
    path = tmp_path / "utf8.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged one .*UnicodeDecodeError") as info:
        NeuralNetwork.load(path)
    assert str(path) in str(info.value)
