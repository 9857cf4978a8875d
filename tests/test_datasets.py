"""IDX files, the embedded MNIST sample, dataset lookup and verified downloads."""

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import http.server
import os
import shutil
import struct
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastscratch import datasets
from fastscratch.datasets import load_dataset, read_idx, to_features, write_idx

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# ------------------------------------------------------------------------ IDX
@given(array=st.sampled_from(IDX_DTYPES).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
                          elements={"allow_nan": False} if np.dtype(dt).kind == "f" else None)),
       compress=st.booleans())
def test_idx_round_trip(tmp_path_factory, array, compress):
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=") and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress


def test_idx_header_is_the_documented_big_endian_layout(tmp_path):
    path = tmp_path / "x.idx"
    write_idx(path, np.arange(6, dtype=np.int32).reshape(2, 3))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0C, 2]) and struct.unpack(">2I", raw[4:12]) == (2, 3)
    assert struct.unpack(">6i", raw[12:]) == tuple(range(6))


def _valid_idx(tmp_path, compress=False) -> Path:
    path = tmp_path / ("v.idx.gz" if compress else "v.idx")
    write_idx(path, np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
    return path


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-1], "truncated"),
    (lambda b: b[:10], "truncated"),
    (lambda b: b[:2], "not an IDX file"),
    (lambda b: b"", "not an IDX file"),
    (lambda b: b"\x01" + b[1:], "magic number"),
    (lambda b: b[:2] + b"\x42" + b[3:], "data type code"),
    (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
    (lambda b: b[:3] + b"\xff" + b[4:], "255 dimensions"),
    (lambda b: b + b"junk", "longer than its header"),
    (lambda b: b[:4] + struct.pack(">I", 2) + b[8:], "longer than its header"),
    (lambda b: b[:4] + struct.pack(">I", 4) + b[8:], "truncated"),
    (lambda b: b[:4] + struct.pack(">I", 2**31) + b[8:], "declares shape"),
])
def test_bad_idx_files_raise_value_error_naming_the_file(tmp_path, compress, damage, message):
    good = _valid_idx(tmp_path).read_bytes()
    bad = damage(good)
    path = tmp_path / ("bad.idx.gz" if compress else "bad.idx")
    path.write_bytes(gzip.compress(bad, mtime=0) if compress else bad)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_gzip_stream_is_a_value_error(tmp_path):
    raw = bytearray(_valid_idx(tmp_path, compress=True).read_bytes())
    raw[-6] ^= 0xFF  # the CRC / length trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=str(path)):
        read_idx(path)
    path.write_bytes(b"\x1f\x8b" + os.urandom(200))
    with pytest.raises(ValueError, match="corrupt gzip"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("shape", [(2**31,), (2**31 - 1, 28, 28)])
def test_lying_header_is_rejected_fast_and_without_allocating(tmp_path, rejection_cost, compress, shape):
    """The issue's numbers: a ~100-byte file claiming 2**31 items (or 2**31 28x28 images) is
    refused in under 10 ms (best of 5) with a tracemalloc peak under 4 MB; reading the
    claimed data would take 2 GB (1.6 TB) and seconds."""
    header = bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    body = header + bytes(100 - len(header))
    path = tmp_path / ("lie.idx.gz" if compress else "lie.idx")
    path.write_bytes(gzip.compress(body) if compress else body)
    assert path.stat().st_size < 150
    seconds, peak = rejection_cost(read_idx, path, "declares shape")
    assert seconds < 0.010, f"{seconds * 1e3:.2f} ms"
    assert peak < 4 * 2**20, f"{peak:,} bytes"


@pytest.mark.parametrize("data", [
    # found by tests/test_fuzz.py: two dimensions added to the empty (0, 5) uint8 file
    b"\x00\x00\x08\x04\x80\x00\x00\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05",
    b"\x00\x00\x08\x04\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x05",
])
def test_fuzz_empty_idx_shape_too_large_for_numpy(tmp_path, data):
    """A zero dimension makes the data empty, so the length check passes, but NumPy refuses
    shapes whose other dimensions multiply past its index range: its ValueError ("array is
    too big", "cannot reshape") did not name the file."""
    path = tmp_path / "empty.idx"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="too large for an array on this machine") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_write_idx_rejects_what_idx_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="dtype"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="at least one dimension"):
        write_idx(tmp_path / "a.idx", np.uint8(3))
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------- mnist-sample
def test_mnist_sample_is_balanced_real_digits():
    data = load_dataset("mnist-sample")
    X_train, y_train, X_test, y_test = data
    assert X_train.shape == (4000, 28, 28) and X_test.shape == (1000, 28, 28)
    assert X_train.dtype == np.uint8 and y_train.dtype == np.int64
    assert np.bincount(y_train, minlength=10).tolist() == [400] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [100] * 10
    assert np.bincount(np.concatenate([y_train, y_test])).tolist() == [500] * 10
    assert X_train.max() == 255 and X_train.min() == 0
    # train and test share no image
    train_rows = {row.tobytes() for row in X_train}
    assert not any(row.tobytes() in train_rows for row in X_test)
    assert data.name == "mnist-sample" and data.class_names == tuple("0123456789")


def test_mnist_sample_checksum_is_verified(tmp_path, monkeypatch):
    tampered = tmp_path / "mnist_sample.npz"
    raw = bytearray(datasets._MNIST_SAMPLE.read_bytes())
    raw[len(raw) // 2] ^= 1
    tampered.write_bytes(bytes(raw))
    monkeypatch.setattr(datasets, "_MNIST_SAMPLE", tampered)
    with pytest.raises(ValueError, match="SHA-256"):
        load_dataset("mnist-sample")


def test_mnist_sample_checksum_constant_matches_the_shipped_file():
    assert hashlib.sha256(datasets._MNIST_SAMPLE.read_bytes()).hexdigest() == datasets.MNIST_SAMPLE_SHA256


def test_to_features_scales_and_flattens():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    X = to_features(images)
    assert X.dtype == np.float32 and X.shape == (1, 4)
    np.testing.assert_allclose(X, [[0, 1, 0.2, 0.4]], rtol=1e-6)
    assert to_features(images, np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="uint8"):
        to_features(images.astype(np.float32))


def test_digits_dataset():
    pytest.importorskip("sklearn")
    X_train, y_train, X_test, y_test = load_dataset("digits")
    assert X_train.shape[1:] == (8, 8) and len(X_train) + len(X_test) == 1797
    assert X_train.dtype == np.uint8 and X_train.max() == 255


# ------------------------------------------------------------------ lookup
def _write_fake_set(directory: Path, n_train=12, n_test=5, compress=True, side=4) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    write_idx(directory / (FILES[0] + suffix), rng.integers(0, 256, (n_train, side, side), dtype=np.uint8))
    write_idx(directory / (FILES[1] + suffix), (np.arange(n_train) % 10).astype(np.uint8))
    write_idx(directory / (FILES[2] + suffix), rng.integers(0, 256, (n_test, side, side), dtype=np.uint8))
    write_idx(directory / (FILES[3] + suffix), (np.arange(n_test) % 10).astype(np.uint8))


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No user cache, env var, Keras cache or Debian package visible to the lookup."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("FASTSCRATCH_DATA", raising=False)
    monkeypatch.setitem(datasets._REMOTE, "fashion-mnist",
                        dataclasses.replace(datasets._REMOTE["fashion-mnist"], system_dirs=()))
    return tmp_path


def test_directory_dataset(tmp_path):
    _write_fake_set(tmp_path / "mine", compress=False)
    data = load_dataset(tmp_path / "mine")
    assert data.X_train.shape == (12, 4, 4) and data.y_test.tolist() == [0, 1, 2, 3, 4]
    (tmp_path / "mine" / FILES[3]).unlink()
    with pytest.raises(FileNotFoundError, match="four IDX files"):
        load_dataset(tmp_path / "mine")


def test_inconsistent_directory_dataset(tmp_path):
    _write_fake_set(tmp_path / "d")
    write_idx(tmp_path / "d" / (FILES[1] + ".gz"), np.zeros(11, dtype=np.uint8))
    with pytest.raises(ValueError, match="12 train images but 11 train labels"):
        load_dataset(tmp_path / "d")


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'cifar': expected one of") as info:
        load_dataset("cifar")
    assert "did you mean" not in str(info.value)
    with pytest.raises(ValueError, match=r"unknown dataset 'fashion_mnist' \(did you mean 'fashion-mnist'\?\)"):
        load_dataset("fashion_mnist")


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_not_found_lists_every_place_looked(isolated, name):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset(name, data_dir=isolated / "given")
    message = str(info.value)
    assert str(isolated / "given") in message and str(isolated / "cache" / "fastscratch" / name) in message
    if name == "fashion-mnist":
        assert "apt-get install dataset-fashion-mnist" in message
    else:
        assert str(isolated / "keras" / "datasets" / "mnist.npz") in message


def test_shared_roots_are_searched_by_dataset_subfolder_only(isolated, monkeypatch):
    """mnist and fashion-mnist files have the same names: four files directly in
    $FASTSCRATCH_DATA must not pass for either."""
    _write_fake_set(isolated / "flat")
    monkeypatch.setenv("FASTSCRATCH_DATA", str(isolated / "flat"))
    assert datasets.locate("mnist") is None and datasets.locate("fashion-mnist") is None


def test_a_partial_set_is_named_in_the_error(isolated):
    _write_fake_set(isolated / "cache" / "fastscratch" / "mnist")
    (isolated / "cache" / "fastscratch" / "mnist" / (FILES[2] + ".gz")).unlink()
    with pytest.raises(FileNotFoundError, match="has only train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                                                "t10k-labels-idx1-ubyte"):
        load_dataset("mnist")


def test_empty_test_set_is_rejected(tmp_path):
    _write_fake_set(tmp_path / "e", n_test=0)
    with pytest.raises(ValueError, match="the test set is empty"):
        load_dataset(tmp_path / "e")
    assert to_features(np.zeros((0, 3, 3), dtype=np.uint8)).shape == (0, 9)


def test_lookup_order_data_dir_env_cache(isolated, monkeypatch):
    _write_fake_set(isolated / "cache" / "fastscratch" / "mnist", n_train=13)
    assert len(load_dataset("mnist").X_train) == 13
    _write_fake_set(isolated / "env" / "mnist", n_train=14)
    monkeypatch.setenv("FASTSCRATCH_DATA", str(isolated / "env"))
    assert len(load_dataset("mnist").X_train) == 14
    _write_fake_set(isolated / "arg", n_train=15)
    assert len(load_dataset("mnist", data_dir=isolated / "arg").X_train) == 15
    assert datasets.locate("mnist", data_dir=isolated / "arg") == str(isolated / "arg")


def test_keras_cached_mnist_is_used(isolated):
    path = isolated / "keras" / "datasets" / "mnist.npz"
    path.parent.mkdir(parents=True)
    rng = np.random.default_rng(1)
    np.savez(path, x_train=rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), y_train=np.arange(7, dtype=np.uint8),
             x_test=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), y_test=np.arange(3, dtype=np.uint8))
    data = load_dataset("mnist")
    assert data.source == str(path) and len(data.X_train) == 7
    np.savez(path, x_train=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="Keras MNIST"):
        load_dataset("mnist")


# ------------------------------------------------------------ features while reading
def _same_as_to_features(images, features, dtype=np.float32):
    """``features`` is ``to_features(images)`` bit for bit, labels and metadata alike."""
    for i in (0, 2):
        expected = to_features(images[i], dtype)
        assert features[i].dtype == expected.dtype and features[i].shape == expected.shape
        np.testing.assert_array_equal(features[i], expected)
    for i in (1, 3):
        np.testing.assert_array_equal(features[i], images[i])
    assert (features.name, features.source, features.class_names) == (images.name, images.source,
                                                                       images.class_names)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", ["float32", np.float64])
def test_features_of_an_idx_directory_equal_to_features_of_its_images(tmp_path, compress, dtype):
    # 3,000 images of 20x20: 1.2 MB, so the 1 MiB chunks of the conversion meet mid-image
    _write_fake_set(tmp_path / "d", n_train=3000, n_test=7, compress=compress, side=20)
    _same_as_to_features(load_dataset(tmp_path / "d"), load_dataset(tmp_path / "d", features=dtype), dtype)


def test_features_of_the_other_sources(isolated):
    _same_as_to_features(load_dataset("mnist-sample"), load_dataset("mnist-sample", features="float32"))
    path = isolated / "keras" / "datasets" / "mnist.npz"
    path.parent.mkdir(parents=True)
    rng = np.random.default_rng(1)
    np.savez(path, x_train=rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), y_train=np.arange(7, dtype=np.uint8),
             x_test=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), y_test=np.arange(3, dtype=np.uint8))
    _same_as_to_features(load_dataset("mnist"), load_dataset("mnist", features=np.float32))


def test_features_are_read_without_holding_the_images(tmp_path):
    """The uint8 images are converted 1 MiB at a time: the peak is the features, not the
    features plus the images that ``to_features(load_dataset(...))`` holds at once."""
    _write_fake_set(tmp_path / "d", n_train=20_000, n_test=10, side=28)  # 15.7 MB of images
    features_bytes = (20_000 + 10) * 784 * 4
    load_dataset(tmp_path / "d", features="float32")  # warm-up
    tracemalloc.start()
    try:
        data = load_dataset(tmp_path / "d", features="float32")
        streamed = tracemalloc.get_traced_memory()[1]
        del data
        tracemalloc.reset_peak()
        images = load_dataset(tmp_path / "d")
        whole = (to_features(images.X_train), to_features(images.X_test))
        converted = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert streamed < features_bytes + 3 * 2**20, streamed
    assert converted > features_bytes + 15_000_000 and whole[0].shape == (20_000, 784)


def test_features_need_a_float_dtype_and_image_files(tmp_path):
    _write_fake_set(tmp_path / "d")
    with pytest.raises(ValueError, match="floating-point dtype"):
        load_dataset(tmp_path / "d", features="int32")
    write_idx(tmp_path / "d" / (FILES[0] + ".gz"), np.zeros((12, 16), dtype=np.uint8))  # 2-D: not images
    with pytest.raises(ValueError, match=r"expected \(n, height, width\) uint8 images"):
        load_dataset(tmp_path / "d", features="float32")
    with pytest.raises(ValueError, match="images must be"):
        load_dataset(tmp_path / "d")


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed (.ci/run installs it)")
def test_fashion_mnist_from_debian_package(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("FASTSCRATCH_DATA", raising=False)
    data = load_dataset("fashion-mnist")
    assert data.source == "/usr/share/datasets/fashion-mnist"
    assert data.X_train.shape == (60000, 28, 28) and data.X_test.shape == (10000, 28, 28)
    assert np.bincount(data.y_train).tolist() == [6000] * 10 and data.class_names[9] == "Ankle boot"


# ----------------------------------------------------------------- downloads
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serving(served: Path, handler: type = _QuietHandler):
    """An HTTP server on 127.0.0.1 serving ``served``; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def local_mirror(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "served"``; yields (url, directory)."""
    served = tmp_path / "served"
    served.mkdir()
    with _serving(served) as url:
        yield url, served


def _serve_fake_mnist(served: Path, isolated: Path, monkeypatch, url: str, corrupt: str | None = None):
    _write_fake_set(served)
    md5 = {f + ".gz": hashlib.md5((served / (f + ".gz")).read_bytes()).hexdigest() for f in FILES}
    if corrupt:
        md5[corrupt] = "0" * 32
    monkeypatch.setitem(datasets._REMOTE, "mnist",
                        dataclasses.replace(datasets._REMOTE["mnist"], mirrors=(url,), md5=md5))


def test_download_verifies_and_fills_the_cache(isolated, local_mirror, monkeypatch):
    url, served = local_mirror
    _serve_fake_mnist(served, isolated, monkeypatch, url)
    data = load_dataset("mnist", download=True, progress=False)
    cache = isolated / "cache" / "fastscratch" / "mnist"
    assert data.source == str(cache) and len(data.X_train) == 12
    assert sorted(p.name for p in cache.iterdir()) == sorted(f + ".gz" for f in FILES)
    shutil.rmtree(served)  # second load comes from the cache, no server needed
    assert len(load_dataset("mnist").X_train) == 12


def test_checksum_mismatch_leaves_nothing_in_the_cache(isolated, local_mirror, monkeypatch):
    url, served = local_mirror
    _serve_fake_mnist(served, isolated, monkeypatch, url, corrupt="t10k-images-idx3-ubyte.gz")
    with pytest.raises(OSError, match="checksum mismatch"):
        load_dataset("mnist", download=True, progress=False)
    # not even the three files that verified: the cache holds nothing at all
    assert list((isolated / "cache").rglob("*")) in ([], [isolated / "cache" / "fastscratch"])
    with pytest.raises(FileNotFoundError):  # the partial set is not mistaken for a dataset
        load_dataset("mnist")


def test_unreachable_mirror_is_a_clear_os_error(isolated, monkeypatch):
    monkeypatch.setitem(datasets._REMOTE, "mnist",
                        dataclasses.replace(datasets._REMOTE["mnist"], mirrors=("http://127.0.0.1:9/",)))
    with pytest.raises(OSError, match="could not download train-images-idx3-ubyte.gz"):
        load_dataset("mnist", download=True, progress=False)


# ---------------------------------------------------------- concurrent cache population
class _SlowHandler(_QuietHandler):
    """Sends files 32 KiB at a time, 10 ms apart, so that two clients' downloads overlap;
    records every request as (path, first byte sent, last byte sent)."""

    requests: list  # set per server

    def copyfile(self, source, outputfile):
        started = time.monotonic()
        while True:
            piece = source.read(32 * 1024)
            if not piece:
                break
            outputfile.write(piece)
            outputfile.flush()
            time.sleep(0.01)
        self.requests.append((self.path, started, time.monotonic()))


_POPULATE = """
import dataclasses, json, os, sys, time
import pooch  # imported before the barrier (datasets imports it lazily), so both start at once
from fastscratch import datasets
config = json.loads(sys.argv[1])
datasets._REMOTE["mnist"] = dataclasses.replace(datasets._REMOTE["mnist"], mirrors=(config["url"],),
                                                md5=config["md5"])
open(config["ready"], "w").close()
while not os.path.exists(config["go"]):  # the barrier: both start downloading at once
    time.sleep(0.002)
data = datasets.load_dataset("mnist", download=True, progress=False)
print(json.dumps({"n_train": len(data.X_train), "source": data.source}))
"""


def test_two_processes_populating_the_cache_at_once_leave_one_valid_copy(isolated, tmp_path):
    """Two processes download the same dataset into the same empty cache at the same time
    (checked: their transfers overlap), while this process keeps loading it without
    downloading.  Both succeed; the cache ends with exactly the four files, each verified,
    no temporary files or folders; the reader only ever saw "not found" (or a partial set,
    named) or the complete, valid dataset, and every file it found under its final name was
    complete -- never a half-written one."""
    import json
    import subprocess
    import sys

    served = tmp_path / "served"
    _write_fake_set(served, n_train=3000, n_test=300, side=28)  # 2.6 MB of incompressible images
    md5 = {f + ".gz": hashlib.md5((served / (f + ".gz")).read_bytes()).hexdigest() for f in FILES}
    expected = [read_idx(served / (f + ".gz")) for f in FILES]
    handler = type("Handler", (_SlowHandler,), {"requests": []})
    cache = isolated / "cache" / "fastscratch"
    outcomes = {"not found": 0, "partial": 0, "complete": 0}
    with _serving(served, handler) as url:
        go = tmp_path / "go"
        children = []
        for i in range(2):
            config = {"url": url, "md5": md5, "ready": str(tmp_path / f"ready{i}"), "go": str(go)}
            children.append(subprocess.Popen([sys.executable, "-c", _POPULATE, json.dumps(config)],
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline and all(c.poll() is None for c in children), "children did not start"
            time.sleep(0.005)
        go.touch()
        while any(c.poll() is None for c in children):  # read while they write
            try:
                data = load_dataset("mnist")
            except FileNotFoundError as exc:
                outcomes["partial" if "has only" in str(exc) else "not found"] += 1
                assert "not found" in str(exc)
            else:  # whatever was found must be the whole, valid dataset
                for got, want in zip(data, expected):
                    np.testing.assert_array_equal(got, want)
                outcomes["complete"] += 1
            for f, want in zip(FILES, expected):  # and any file under its final name is complete
                if (cache / "mnist" / (f + ".gz")).exists():
                    np.testing.assert_array_equal(read_idx(cache / "mnist" / (f + ".gz")), want)
            assert time.monotonic() < deadline, "downloads did not finish"
            time.sleep(0.005)
        results = [c.communicate() for c in children]
    for child, (out, err) in zip(children, results):
        assert child.returncode == 0, err
        assert json.loads(out.splitlines()[-1]) == {"n_train": 3000, "source": str(cache / "mnist")}
    # each process fetched every file, and the two downloads really overlapped: the two
    # transfers of the training images (~0.7 s each) shared some of their time
    for f in FILES:
        assert sum(path.endswith(f + ".gz") for path, _, _ in handler.requests) == 2, handler.requests
    (a0, a1), (b0, b1) = [(start, end) for path, start, end in handler.requests if path.endswith(FILES[0] + ".gz")]
    assert max(a0, b0) < min(a1, b1), handler.requests
    assert outcomes["not found"] > 0, outcomes  # the reader ran during the downloads
    # one copy of each file, nothing else anywhere in the cache
    assert sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*")) == \
        ["mnist"] + sorted(f"mnist/{f}.gz" for f in FILES)
    for f, want in zip(FILES, expected):
        assert hashlib.md5((cache / "mnist" / (f + ".gz")).read_bytes()).hexdigest() == md5[f + ".gz"]
        np.testing.assert_array_equal(read_idx(cache / "mnist" / (f + ".gz")), want)
    data = load_dataset("mnist")  # a third load, without downloading
    assert data.source == str(cache / "mnist") and len(data.X_train) == 3000
