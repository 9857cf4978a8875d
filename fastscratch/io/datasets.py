"""Datasets: the IDX file format, the embedded MNIST sample, MNIST, Fashion-MNIST, digits.

Every loader returns a :class:`Dataset`, which unpacks as
``X_train, y_train, X_test, y_test``: images ``(n, height, width) uint8`` and
labels ``(n,) int64``.  :func:`to_features` turns images into the network's input,
``(n, height * width) float32`` scaled to ``[0, 1]``.

Names :func:`load_dataset` knows:

- ``"mnist-sample"``: 5,000 real MNIST digits (500 per class) shipped inside the
  package, split 4,000 / 1,000 with 400 / 100 per class.  Works offline; its
  SHA-256 is checked on every load.
- ``"mnist"``, ``"fashion-mnist"``: the four standard IDX files (``.gz`` or not),
  looked up in ``data_dir``, ``$FASTSCRATCH_DATA``, the user cache directory
  (``~/.cache/fastscratch`` on Linux), Debian's ``/usr/share/datasets/fashion-mnist``
  (package ``dataset-fashion-mnist``) for Fashion-MNIST and Keras' cached
  ``~/.keras/datasets/mnist.npz`` for MNIST; then, with ``download=True``,
  fetched from the public mirrors by pooch, checked against the published MD5
  sums, and only then renamed into the cache.
- ``"digits"``: scikit-learn's bundled 8x8 digits (needs scikit-learn).
- a directory path holding the four IDX files: your own dataset.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import shutil
import struct
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .._validation import did_you_mean
from .atomic import atomic_write

__all__ = ["Dataset", "DATASETS", "load_dataset", "to_features", "read_idx", "write_idx", "cache_dir", "locate",
           "MNIST_SAMPLE_SHA256"]

# ---------------------------------------------------------------------- IDX format
# magic = 0x00 0x00 <dtype code> <number of dimensions>; then one big-endian uint32
# per dimension; then the data, big-endian, C order
_IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IDX_CODES = {dtype.newbyteorder("=") if dtype.itemsize > 1 else dtype: code for code, dtype in _IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
# deflate cannot expand data by more than about 1032:1, so a gzip file's size
# bounds how much data it can hold; a header claiming more is lying
_MAX_DEFLATE_RATIO = 1100
_CHUNK = 1 << 20


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    return data if data is not None else b""


def read_idx(path: str | PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed, told apart by content) into an array.

    Returns the array in native byte order with the shape the header gives.
    Raises ``ValueError`` naming the file for anything that is not a complete,
    well-formed IDX file: wrong magic number, unknown dtype code, no dimensions,
    a data length different from what the header implies, corrupt compression.
    The header is checked against the file's size before the data is allocated,
    so a header claiming billions of items costs nothing.
    """
    return _read_idx(path, None)


def _read_idx(path: str | PathLike, features: np.dtype | None) -> np.ndarray:
    """:func:`read_idx`, or with ``features`` a uint8 image file read straight into
    ``to_features(images, features)``: converted chunk by chunk as it is read."""
    name = os.fspath(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0, os.SEEK_END)
        file_size = raw.tell()
        raw.seek(0)
        try:
            if compressed:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _read_idx_stream(stream, name, file_size, compressed=True, features=features)
            return _read_idx_stream(raw, name, file_size, compressed=False, features=features)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # corrupt or truncated gzip stream, bad CRC
            raise ValueError(f"{name}: corrupt gzip data ({exc})") from None


def _read_idx_stream(stream: BinaryIO, name: str, file_size: int, compressed: bool,
                     features: np.dtype | None = None) -> np.ndarray:
    magic = _read_exact(stream, 4)
    if len(magic) < 4:
        raise ValueError(f"{name}: not an IDX file (only {len(magic)} bytes)")
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(f"{name}: not an IDX file (magic number {magic.hex()} does not start with 0000)")
    code, ndim = magic[2], magic[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{name}: unknown IDX data type code 0x{code:02x}; expected one of "
                         + ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES))
    if ndim == 0 or ndim > 64:  # 64: the most dimensions a NumPy array can have
        raise ValueError(f"{name}: IDX header declares {ndim} dimensions; 1 to 64 are supported")
    dims_raw = _read_exact(stream, 4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise ValueError(f"{name}: truncated IDX header ({ndim} dimensions declared, file ends inside them)")
    shape = struct.unpack(f">{ndim}I", dims_raw)
    dtype = _IDX_DTYPES[code]
    # NumPy refuses (with a message not naming the file) any shape whose nonzero
    # dimensions multiply past its index range, even when a zero makes it empty
    if math.prod(d for d in shape if d) * dtype.itemsize > np.iinfo(np.intp).max:
        raise ValueError(f"{name}: IDX header declares shape {shape}, too large for an array on this machine: "
                         "corrupt header")
    n_bytes = math.prod(shape) * dtype.itemsize
    header = 4 + 4 * ndim
    limit = file_size * _MAX_DEFLATE_RATIO if compressed else file_size - header
    if n_bytes > limit:
        raise ValueError(f"{name}: IDX header declares shape {shape} ({n_bytes:,} bytes of data) but the file "
                         f"is {file_size:,} bytes: truncated file or corrupt header")
    if features is None:
        data = np.empty(n_bytes, dtype=np.uint8)
        view = memoryview(data)
        into = lambda start, size: view[start:start + size]  # noqa: E731  (read in place)
        store = None
    else:
        if dtype != np.uint8 or ndim != 3:
            raise ValueError(f"{name}: expected (n, height, width) uint8 images, got IDX shape {shape} of {dtype}")
        # one chunk of uint8 at a time, cast and scaled into the features as in to_features
        features_out = np.empty((shape[0], math.prod(shape[1:])), dtype=features)
        flat = features_out.reshape(-1)
        chunk = np.empty(min(_CHUNK, n_bytes), dtype=np.uint8)
        chunk_view = memoryview(chunk)
        scale = flat.dtype.type(1.0 / 255.0)
        into = lambda start, size: chunk_view[:size]  # noqa: E731

        def store(start: int, got: int) -> None:
            part = flat[start:start + got]
            part[...] = chunk[:got]
            part *= scale
    filled = 0
    while filled < n_bytes:
        got = stream.readinto(into(filled, min(_CHUNK, n_bytes - filled)))
        if not got:
            break
        if store is not None:
            store(filled, got)
        filled += got
    if filled < n_bytes:
        raise ValueError(f"{name}: truncated IDX data: header declares shape {shape} ({n_bytes:,} bytes), "
                         f"file holds {filled:,}")
    if _read_exact(stream, 1):
        raise ValueError(f"{name}: IDX file is longer than its header declares (shape {shape}, "
                         f"{n_bytes:,} bytes of data): trailing bytes")
    if features is not None:
        return features_out
    return data.view(dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | PathLike, array: Any, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file, atomically; gzip-compressed if ``compress``
    (default: when ``path`` ends in ``.gz``).  Dtypes: uint8, int8, int16, int32,
    float32, float64; at least one dimension, each below 2**32."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=") if array.dtype.itemsize > 1 else array.dtype
    if native not in _IDX_CODES:
        raise TypeError(f"IDX cannot store dtype {array.dtype}; use one of "
                        + ", ".join(str(d) for d in _IDX_CODES))
    if array.ndim == 0:
        raise ValueError("IDX needs at least one dimension, got a 0-d array")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"IDX dimensions must be below 2**32, got shape {array.shape}")
    code = _IDX_CODES[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = os.fspath(path).endswith(".gz")
    with atomic_write(path) as f:
        if compress:
            # mtime=0: the same array always gives the same bytes
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
                gz.write(header)
                gz.write(body)
        else:
            f.write(header)
            f.write(body)


# ----------------------------------------------------------------------- datasets
class Dataset(tuple):
    """``(X_train, y_train, X_test, y_test)``, plus where it came from.

    Images are ``(n, height, width) uint8``, labels ``(n,) int64`` in ``[0, n_classes)``.
    """

    name: str
    source: str
    class_names: tuple[str, ...]

    def __new__(cls, arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], name: str, source: str,
                class_names: tuple[str, ...] | None = None) -> "Dataset":
        self = super().__new__(cls, arrays)
        self.name, self.source = name, source
        n_classes = int(max(arrays[1].max(initial=0), arrays[3].max(initial=0))) + 1
        self.class_names = tuple(class_names) if class_names is not None else tuple(map(str, range(n_classes)))
        return self

    X_train = property(lambda self: self[0])
    y_train = property(lambda self: self[1])
    X_test = property(lambda self: self[2])
    y_test = property(lambda self: self[3])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}: {len(self[0])} train / {len(self[2])} test images of "
                f"{'x'.join(map(str, self[0].shape[1:]))}, {self.n_classes} classes, from {self.source})")

    def __reduce__(self):  # keep the attributes through pickling/copying
        return (Dataset, (tuple(self), self.name, self.source, self.class_names))


@dataclass(frozen=True)
class _Remote:
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # published MD5 of each .gz file as the mirrors serve it
    class_names: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()
    how_to_get: str = ""


_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

_REMOTE = {
    "mnist": _Remote(
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        md5={"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
             "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
             "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
        class_names=tuple(map(str, range(10))),
        how_to_get="run with download=True (CLI: --download) on a machine with internet access, or copy the four "
                   "files into one of those directories",
    ),
    "fashion-mnist": _Remote(
        mirrors=("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                 "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
        md5={"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
             "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
             "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                     "Ankle boot"),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        how_to_get="on Debian/Ubuntu `apt-get install dataset-fashion-mnist`; or run with download=True "
                   "(CLI: --download) on a machine with internet access; or copy the four files into one of "
                   "those directories",
    ),
}

DATASETS = ("mnist-sample", "mnist", "fashion-mnist", "digits")

MNIST_SAMPLE_SHA256 = "6a1b454e1fadd8ea2319a11377bc85dc299b36c7de7af60aaceca2d9f51c6ebd"
_MNIST_SAMPLE = Path(__file__).parent.parent / "data" / "mnist_sample.npz"  # fastscratch/data/, package data


def cache_dir() -> Path:
    """The user cache directory for downloaded datasets (``~/.cache/fastscratch`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("fastscratch", appauthor=False))


def load_dataset(name: str | PathLike = "mnist-sample", *, data_dir: str | PathLike | None = None,
                 download: bool = False, progress: bool = True, features: Any = None) -> Dataset:
    """Load a dataset by name (see the module docstring) or from a directory of IDX files.

    Returns a :class:`Dataset` that unpacks as ``X_train, y_train, X_test, y_test``
    (images ``(n, h, w) uint8``, labels ``(n,) int64``).  Raises ``FileNotFoundError``
    listing every place looked when the files are nowhere, ``ValueError`` for corrupt
    or inconsistent files and failed checksums.

    ``features``: a float dtype (``"float32"``) to get ``X_train``/``X_test`` as
    ``to_features(images, features)`` instead -- ``(n, h*w)`` scaled to ``[0, 1]``, the
    same values bit for bit -- without ever holding the uint8 images whole: IDX files
    are converted as they are read, one 1 MiB chunk at a time.  For Fashion-MNIST that
    is 55 MB less at the peak than ``to_features`` after ``load_dataset``, which holds
    the images and the features at once.
    """
    if not isinstance(name, (str, PathLike)):
        raise TypeError(f"dataset must be a name or a directory path, got {type(name).__name__}")
    dtype = _features_dtype(features)
    key = os.fspath(name)
    if key == "mnist-sample":
        return _as_features(_load_mnist_sample, dtype)
    if key == "digits":
        return _as_features(_load_digits, dtype)
    if key in _REMOTE:
        return _load_remote(key, data_dir, download, progress, dtype)
    if os.path.isdir(key):
        found = _find_idx_files(Path(key))
        if found is None:
            raise FileNotFoundError(f"{key}: directory does not hold the four IDX files "
                                    f"({', '.join(f + '[.gz]' for f in _FILES)})")
        return _load_idx_dir(found, os.path.basename(os.path.abspath(key)), key, features=dtype)
    raise ValueError(unknown_dataset(key))


def unknown_dataset(name: str) -> str:
    """The message for a name that is neither a dataset nor a directory, with the closest name."""
    return (f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}: expected one of {', '.join(DATASETS)} or a "
            "directory holding the four IDX files")


def to_features(images: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """Flatten ``images: (n, h, w) uint8`` to ``(n, h*w)`` of ``dtype``, scaled to ``[0, 1]``."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"to_features expects uint8 images (0-255), got {images.dtype}")
    if images.ndim < 2:
        raise ValueError(f"to_features expects (n, ...) images, got shape {images.shape}")
    X = images.reshape(images.shape[0], math.prod(images.shape[1:])).astype(dtype)
    X *= X.dtype.type(1.0 / 255.0)
    return X


def _features_dtype(features: Any) -> np.dtype | None:
    if features is None:
        return None
    try:
        dtype = np.dtype(features)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind != "f":
        raise ValueError(f"features must be a floating-point dtype such as 'float32', got {features!r}")
    return dtype


def _as_features(load: Any, dtype: np.dtype | None) -> Dataset:
    """``load()``'s dataset, with its images converted by :func:`to_features` when ``dtype`` is
    given: the training images are dropped as soon as they are converted."""
    if dtype is None:
        return load()
    dataset = load()
    name, source, class_names = dataset.name, dataset.source, dataset.class_names
    X_train, y_train, X_test, y_test = dataset
    del dataset
    X_train = to_features(X_train, dtype)
    X_test = to_features(X_test, dtype)
    return Dataset((X_train, y_train, X_test, y_test), name, source, class_names)


# ------------------------------------------------------------------------ loaders
def _checked(arrays: tuple[np.ndarray, ...], where: str,
             features: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Consistency checks shared by every source; labels become int64.  ``features``:
    the images have been converted to ``(n, h*w)`` floats already."""
    x_train, y_train, x_test, y_test = arrays
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if features:
            if x.dtype.kind != "f" or x.ndim != 2:
                raise ValueError(f"{where}: {split} features must be (n, n_features) floats, got {x.shape} {x.dtype}")
        elif x.dtype != np.uint8 or x.ndim != 3:
            raise ValueError(f"{where}: {split} images must be (n, height, width) uint8, got {x.shape} {x.dtype}")
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise ValueError(f"{where}: {split} labels must be a 1-D integer array, got {y.shape} {y.dtype}")
        if len(x) != len(y):
            raise ValueError(f"{where}: {len(x)} {split} images but {len(y)} {split} labels")
        if len(y) and (y.min() < 0 or y.max() > 255):
            raise ValueError(f"{where}: {split} labels out of range [0, 255]: min {y.min()}, max {y.max()}")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"{where}: train images are {x_train.shape[1:]} but test images are {x_test.shape[1:]}")
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError(f"{where}: the {'training' if len(x_train) == 0 else 'test'} set is empty")
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)


def _load_mnist_sample() -> Dataset:
    raw = _MNIST_SAMPLE.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MNIST_SAMPLE_SHA256:
        raise ValueError(f"{_MNIST_SAMPLE}: SHA-256 {digest} does not match the expected {MNIST_SAMPLE_SHA256}; "
                         "the installed package is damaged, reinstall fastscratch")
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        arrays = tuple(npz[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    return Dataset(_checked(arrays, str(_MNIST_SAMPLE)), "mnist-sample", "embedded in the package")


#: what is missing when the 'digits' dataset is: the library, not a file (load_dataset and locate)
_NO_SKLEARN = ("scikit-learn is not installed: the 'digits' dataset comes with it "
               "(`pip install 'fastscratch[sklearn]'` adds it)")


def _load_digits() -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(_NO_SKLEARN) from exc
    digits = load_digits()
    # pixel values are 0-16; scale to the 0-255 of the other datasets
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    # fixed stratified split, 20% of each class to test
    rng = np.random.default_rng(0)
    test = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        test[rows[:len(rows) // 5]] = True
    arrays = (images[~test], labels[~test], images[test], labels[test])
    return Dataset(_checked(arrays, "digits"), "digits", "scikit-learn (sklearn.datasets.load_digits)")


def _find_idx_files(directory: Path) -> list[Path] | None:
    """The four IDX files in ``directory`` (each ``.gz`` or not), or None if any is missing."""
    found = []
    for stem in _FILES:
        for candidate in (directory / stem, directory / (stem + ".gz")):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            return None
    return found


def _load_idx_dir(files: list[Path], name: str, source: str, class_names: tuple[str, ...] | None = None,
                  features: np.dtype | None = None) -> Dataset:
    # the image files (0: train, 2: test) straight to features when asked for
    arrays = tuple(_read_idx(f, features if i % 2 == 0 else None) for i, f in enumerate(files))
    return Dataset(_checked(arrays, source, features is not None), name, source, class_names)


def _search_dirs(name: str, data_dir: str | PathLike | None) -> list[Path]:
    # mnist and fashion-mnist share file names, so a shared root ($FASTSCRATCH_DATA, the
    # cache) is searched by subfolder only; the flat folder only when the caller names it
    dirs: list[Path] = []
    if data_dir is not None:
        dirs += [Path(data_dir) / name, Path(data_dir)]
    if os.environ.get("FASTSCRATCH_DATA"):
        dirs.append(Path(os.environ["FASTSCRATCH_DATA"]) / name)
    dirs.append(cache_dir() / name)
    dirs += [Path(d) for d in _REMOTE[name].system_dirs]
    return dirs


def _keras_mnist_file() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets" / "mnist.npz"


def _load_keras_mnist(path: Path) -> Dataset:
    """Keras' cached ``mnist.npz``: four plain arrays, read without pickle."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = tuple(npz[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a usable Keras MNIST file ({exc})") from None
    return Dataset(_checked(arrays, str(path)), "mnist", str(path), _REMOTE["mnist"].class_names)


def _find_remote(name: str, data_dir: str | PathLike | None) -> tuple[Path | list[Path] | None, list[str]]:
    """Where ``name``'s files are: a list of four IDX paths, Keras' ``mnist.npz``, or None;
    and every place looked, in order."""
    looked = []
    for directory in _search_dirs(name, data_dir):
        files = _find_idx_files(directory)
        if files is not None:
            return files, looked
        present = [stem for stem in _FILES if (directory / stem).is_file() or (directory / (stem + ".gz")).is_file()]
        looked.append(f"{directory} (has only {', '.join(present)})" if present else str(directory))
    if name == "mnist":
        keras_file = _keras_mnist_file()
        if keras_file.is_file():
            return keras_file, looked
        looked.append(str(keras_file))
    return None, looked


def locate(name: str, data_dir: str | PathLike | None = None) -> str | None:
    """Where :func:`load_dataset` would read ``name`` from without downloading, or None when its
    files are not found; ``ImportError`` naming the extra to install when what is missing is a
    library (``"digits"`` without scikit-learn), not files."""
    if name == "mnist-sample":
        return "embedded in the package"
    if name == "digits":
        import importlib.util

        if importlib.util.find_spec("sklearn") is None:
            raise ImportError(_NO_SKLEARN)
        return "scikit-learn"
    if name in _REMOTE:
        found, _ = _find_remote(name, data_dir)
        return None if found is None else str(found if isinstance(found, Path) else found[0].parent)
    return name if os.path.isdir(name) and _find_idx_files(Path(name)) else None


def _load_remote(name: str, data_dir: str | PathLike | None, download: bool, progress: bool,
                 features: np.dtype | None = None) -> Dataset:
    remote = _REMOTE[name]
    found, looked = _find_remote(name, data_dir)
    if isinstance(found, Path):
        return _as_features(lambda: _load_keras_mnist(found), features)
    if found is not None:
        return _load_idx_dir(found, name, str(found[0].parent), remote.class_names, features)
    if download:
        target = cache_dir() / name
        files = _download(name, target, progress)
        return _load_idx_dir(files, name, str(target), remote.class_names, features)
    raise FileNotFoundError(
        f"dataset {name!r} not found. Looked for {', '.join(f + '[.gz]' for f in _FILES)} in:\n  "
        + "\n  ".join(looked) + f"\nTo get it: {remote.how_to_get}.")


def _download(name: str, target: Path, progress: bool) -> list[Path]:
    """Fetch the four files with pooch into a fresh temporary folder beside ``target``; each is
    checked against its published MD5 (pooch deletes a file that fails).  Only when all four
    have passed are they renamed into ``target``, so a failure leaves nothing in the cache, and
    two processes downloading at once each rename complete, verified files."""
    try:
        import pooch
    except ImportError as exc:  # pooch is a dependency; this is a broken install
        raise ImportError("downloading datasets needs pooch: `pip install pooch`") from exc
    remote = _REMOTE[name]
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-download-", dir=target.parent))
    try:
        staged = []
        for fname, md5 in remote.md5.items():
            errors = []
            for mirror in remote.mirrors:
                try:
                    staged.append(Path(pooch.retrieve(mirror + fname, known_hash=f"md5:{md5}", fname=fname,
                                                      path=staging, progressbar=progress and sys.stderr.isatty())))
                    break
                except ValueError as exc:  # pooch: hash mismatch (it has deleted the download)
                    errors.append(f"{mirror}{fname}: checksum mismatch ({exc})")
                except Exception as exc:  # network errors of requests/pooch, HTTP errors
                    errors.append(f"{mirror}{fname}: {type(exc).__name__}: {exc}")
            else:
                raise OSError(f"could not download {fname} for {name!r}; nothing was kept:\n  " + "\n  ".join(errors))
        target.mkdir(exist_ok=True)
        for path in staged:
            os.replace(path, target / path.name)
        return [target / path.name for path in staged]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
