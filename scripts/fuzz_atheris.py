"""Coverage-guided fuzzing of the file parsers (``read_idx``, ``load_model``) with atheris.

For long local runs; the test suite's hypothesis fuzzing (tests/test_fuzz.py) runs in CI.
atheris (libFuzzer for Python) is not a fastscratch dependency: install it next to
fastscratch in a scratch environment::

    python -m venv /tmp/atheris-venv && /tmp/atheris-venv/bin/pip install atheris .
    /tmp/atheris-venv/bin/python scripts/fuzz_atheris.py model fuzz-corpus/model -max_total_time=600
    /tmp/atheris-venv/bin/python scripts/fuzz_atheris.py idx fuzz-corpus/idx -max_total_time=600

The first argument picks the parser; the rest go to libFuzzer (a corpus directory, which
is seeded with valid files written here when empty, and options such as
``-max_total_time``, ``-runs``, ``-jobs``).  The property is the test suite's: a parse
succeeds, or raises ValueError/OSError whose message names the file; anything else
escaping is a crash, which libFuzzer saves as ``crash-<sha1>`` (rerun one with
``scripts/fuzz_atheris.py model crash-<sha1>``).  With ``FASTSCRATCH_FUZZ_TRACEMALLOC=1``
each parse is also held to the allocation bound of tests/test_fuzz.py (about 5x slower).
"""

from __future__ import annotations

import os
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

USAGE = "usage: python scripts/fuzz_atheris.py {idx,model} [CORPUS_DIR ...] [libFuzzer options]"
# the bound of tests/test_fuzz.py: what a compressed file of n bytes can really hold
# (deflate's ~1032:1, twice for NumPy's copies) plus 8 MB of fixed overhead
_FIXED_OVERHEAD = 8 * 2**20
_COMPRESSED_RATIO = 2 * 1100

_work: list[Path] = []  # the folder inputs are written to, made on first use


def _parser(kind: str) -> tuple[Callable[[Path], Any], Path]:
    """The parser under test and the path each input is written to."""
    if not _work:
        _work.append(Path(tempfile.mkdtemp(prefix="fastscratch-atheris-")))
    if kind == "idx":
        from fastscratch.datasets import read_idx
        return read_idx, _work[0] / "input.idx"
    from fastscratch import NeuralNetwork
    return NeuralNetwork.load, _work[0] / "input.npz"


def check_one(kind: str, data: bytes, trace_malloc: bool = False) -> None:
    """Parse ``data`` as a file of ``kind``; raise AssertionError (or let the unexpected
    exception through) when the property fails."""
    parse, path = _parser(kind)
    path.write_bytes(data)
    if trace_malloc:
        tracemalloc.start()
    try:
        parse(path)
    except (ValueError, OSError) as exc:
        if str(path) not in str(exc):
            raise AssertionError(f"{type(exc).__name__} does not name the file: {exc}") from exc
    finally:
        if trace_malloc:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            bound = _FIXED_OVERHEAD + _COMPRESSED_RATIO * len(data)
            if peak > bound:
                raise AssertionError(f"parsing {len(data)} bytes allocated {peak:,} bytes (bound {bound:,})")


def write_seeds(kind: str, directory: Path) -> list[Path]:
    """Valid files for libFuzzer to start from: IDX arrays of every dtype, plain and gzip;
    small models with and without optimizer state, float32 and float64."""
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if kind == "idx":
        from fastscratch.datasets import write_idx

        rng = np.random.default_rng(0)
        arrays = {"u8": rng.integers(0, 256, (3, 4, 5), dtype=np.uint8), "i8": np.arange(-3, 3, dtype=np.int8),
                  "i16": np.arange(6, dtype=np.int16).reshape(2, 3), "i32": np.arange(8, dtype=np.int32),
                  "f32": rng.normal(size=(4, 3)).astype(np.float32), "f64": rng.normal(size=(2, 3)),
                  "empty": np.zeros((0, 5), dtype=np.uint8)}
        for name, array in arrays.items():
            for suffix in (".idx", ".idx.gz"):
                written.append(directory / f"seed-{name}{suffix}")
                write_idx(written[-1], array)
        return written
    from fastscratch import NeuralNetwork

    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(24, 4)).astype(np.float32), np.arange(24) % 3
    for name, dtype, optimizer in [("plain-f32", "float32", None), ("sgd-f64", "float64", "sgd"),
                                   ("momentum-f32", "float32", "momentum"), ("adam-f64", "float64", "adam")]:
        net = NeuralNetwork([4, 3, 3], dtype=dtype, seed=0, backend="numpy")
        if optimizer:
            net.fit(X, y, lr=0.05, epochs=2, batch_size=8, optimizer=optimizer, verbose=False)
            net.data_info = {"dataset": "blobs", "class_names": ["a", "b", "c"]}
        written.append(directory / f"seed-{name}.npz")
        net.save(written[-1])
    return written


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("idx", "model"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        import atheris
    except ImportError:
        print("scripts/fuzz_atheris.py needs atheris (libFuzzer for Python), which is not a fastscratch "
              "dependency: `pip install atheris` next to fastscratch in a scratch environment (it has wheels "
              "for Linux and macOS on x86-64). Without it, the test suite's fuzzing runs: "
              "FASTSCRATCH_FUZZ_EXAMPLES=10000 python -m pytest -m fuzz", file=sys.stderr)
        return 1
    kind = argv[1]
    libfuzzer_args = [argv[0], *argv[2:]]
    trace_malloc = os.environ.get("FASTSCRATCH_FUZZ_TRACEMALLOC") == "1"
    # coverage feedback from our parsers and the standard-library and NumPy code they hand bytes to
    with atheris.instrument_imports(include=["fastscratch", "zipfile", "gzip", "json", "numpy.lib._format_impl"]):
        import gzip  # noqa: F401
        import json  # noqa: F401
        import zipfile  # noqa: F401

        import numpy.lib._format_impl  # noqa: F401

        import fastscratch.datasets  # noqa: F401
        import fastscratch.io.model_files  # noqa: F401
    from fastscratch.backends import load_backend
    try:
        load_backend("auto")  # a model naming Numba imports it once; not the parser's allocation
    except ImportError:
        pass
    for arg in argv[2:]:  # create and seed empty corpus directories (a file argument is an input to rerun)
        if not arg.startswith("-") and not os.path.isfile(arg):
            os.makedirs(arg, exist_ok=True)
            if not os.listdir(arg):
                write_seeds(kind, Path(arg))

    def test_one_input(data: bytes) -> None:
        check_one(kind, data, trace_malloc)

    atheris.Setup(libfuzzer_args, test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
