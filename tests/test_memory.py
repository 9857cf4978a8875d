"""Bounded memory (issue 8): training on Fashion-MNIST within the float32 features + 150 MB,
batches taller than a pass trained in passes, prediction on 1,000,000 rows in chunks.

The peak-RSS tests run the whole job in a fresh process through ``fastscratch.tools.bench.peak_rss``
(the function behind the asv ``Memory`` benchmark and ``fastscratch bench --memory``).
"""

import sys
import tracemalloc

import numpy as np
import pytest

from fastscratch import NeuralNetwork, datasets
from fastscratch.tools import bench
from fastscratch.training import epoch as training_epoch
from fastscratch.training.epoch import MAX_PASS_ROWS, Workspace
from fastscratch.network import PREDICT_BATCH
from fastscratch.optimizers import Adam, Momentum

# ------------------------------------------------------------------ peak RSS of the whole job
FASHION = pytest.mark.skipif(
    datasets.locate("fashion-mnist") is None,
    reason="Fashion-MNIST not installed (Debian package dataset-fashion-mnist; .ci/run installs it)")
# What the job may hold beyond the framework's fixed cost and the features: the training
# workspace (batch 128, or 4096-row passes for full batch), prediction chunks, BLAS packing
# buffers, labels.  Measured: 23-26 MB on both backends (2 cores, OpenBLAS 0.3.30/0.3.31,
# 1 to 16 BLAS threads).  Holding the uint8 images beside the features would add 55 MB,
# full batch in one pass 150 MB.
LIBRARY_HEADROOM_MB = 50.0
_RESULTS: dict = {}


def _measured(framework: str, batch: int | None) -> bench.MemoryResult:
    key = (framework, batch)
    if key not in _RESULTS:
        _RESULTS[key] = bench.peak_rss(bench.Workload(framework=framework, batch_size=batch,
                                                      dataset="fashion-mnist"), epochs=1)
    result = _RESULTS[key]
    if result.status.startswith("skipped"):
        pytest.skip(f"{framework}: {result.status}")
    assert result.ok, result.status
    assert result.dataset == "fashion-mnist" and result.n_train == 60_000
    assert result.dataset_mb == pytest.approx(70_000 * 784 * 4 / 1e6)  # 219.52 MB of float32 features
    return result


BATCHES = [pytest.param(128, id="b128"), pytest.param(None, id="full")]
NUMBA_OVER = ("the Numba backend's fixed cost, ~130 MB above the NumPy backend's 36 MB, leaves too little of "
              "the 150 MB (measured ~405 MB against 369.5 MB): llvmlite's library pages resident after the kernels "
              "load (~65 MB of clean code and read-only data), Numba's set-up when the first cached kernel loads "
              "(~44 MB: its runtime compiled by LLVM, numba.np modules) and scipy.linalg, which that set-up imports "
              "(~17 MB). fastscratch's own working memory is ~25 MB, as on NumPy")


@pytest.mark.slow
@FASHION
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("framework", [
    "fastscratch-numpy",
    pytest.param("fastscratch-numba", marks=pytest.mark.xfail(strict=True, reason=NUMBA_OVER)),
])
def test_training_peak_rss_within_the_float32_features_plus_150_mb(framework, batch):
    result = _measured(framework, batch)
    assert result.peak_rss_mb <= result.dataset_mb + 150, result.to_dict()


@pytest.mark.slow
@FASHION
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("framework", ["fastscratch-numpy", "fastscratch-numba"])
def test_beyond_its_fixed_cost_the_job_holds_the_features_and_little_more(framework, batch):
    """Both backends: peak RSS minus the framework's fixed cost (imports, and Numba's kernels
    loaded) minus the features.  This is what fastscratch's data handling and training control."""
    result = _measured(framework, batch)
    assert result.baseline_rss_mb <= result.ready_rss_mb <= result.data_rss_mb <= result.peak_rss_mb
    beyond = result.peak_rss_mb - result.ready_rss_mb - result.dataset_mb
    assert beyond <= LIBRARY_HEADROOM_MB, result.to_dict()
    assert result.test_accuracy > (0.7 if batch else 0.15)  # it did train


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")
def test_the_child_reports_its_own_peak_not_its_parents():
    """On Linux ru_maxrss carries the parent's high-water mark across exec: a child of this
    process, which has just touched 300 MB, must still report only its own job."""
    held = np.ones(300_000_000 // 8)
    result = bench.peak_rss(bench.Workload(framework="fastscratch-numpy", batch_size=128, dataset="mnist-sample"))
    assert held.sum() > 0
    assert result.ok, result.status
    assert result.source == "VmHWM"
    assert result.ru_maxrss_mb >= 300  # what getrusage says: the parent's mark
    assert result.peak_rss_mb < 150  # the job itself: ~60 MB
    assert result.baseline_rss_mb < result.data_rss_mb <= result.peak_rss_mb


# ---------------------------------------------------------- batches taller than one pass
OPTIMIZERS = {"sgd": lambda: "sgd", "nesterov": lambda: Momentum(0.9, nesterov=True), "adam": lambda: Adam(eps=1e-3)}


def _fit(backend, rows, batch, optimizer, dropout=0.0, shuffle=True, monkeypatch=None):
    monkeypatch.setattr(training_epoch, "MAX_PASS_ROWS", rows)
    optimizer = OPTIMIZERS[optimizer]()
    rng = np.random.default_rng(0)
    X = rng.random((500, 12), dtype=np.float32)
    y = rng.integers(0, 4, 500)
    net = NeuralNetwork([12, 16, 8, 4], seed=1, backend=backend, dropout=dropout)
    history = net.fit(X, y, lr=0.05, epochs=2, batch_size=batch, optimizer=optimizer, weight_decay=1e-3,
                      shuffle=shuffle, verbose=False)
    return net, history


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("batch", [None, 200], ids=["full", "b200"])
def test_a_batch_in_passes_takes_the_same_step(backend, optimizer, batch, monkeypatch):
    """Passes of 7 or 64 rows add up to the gradient of one pass over the whole batch
    (full batch, and shuffled mini-batches gathered pass by pass)."""
    if backend == "numba":
        pytest.importorskip("numba")
    reference, ref_history = _fit("numpy", 10**9, batch, optimizer, monkeypatch=monkeypatch)
    for rows in (64, 7):
        net, history = _fit(backend, rows, batch, optimizer, monkeypatch=monkeypatch)
        assert net.optimizer.iterations == reference.optimizer.iterations
        for got, want in zip(net.parameters, reference.parameters):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)
        np.testing.assert_allclose(history.cost, ref_history.cost, rtol=1e-5)
        assert history.train_accuracy == ref_history.train_accuracy


def test_dropout_in_passes_matches_between_backends(monkeypatch):
    pytest.importorskip("numba")
    numpy_net, _ = _fit("numpy", 64, None, "sgd", dropout=0.25, monkeypatch=monkeypatch)
    numba_net, _ = _fit("numba", 64, None, "sgd", dropout=0.25, monkeypatch=monkeypatch)
    for got, want in zip(numba_net.parameters, numpy_net.parameters):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)


def test_training_workspace_rows_are_capped():
    net = NeuralNetwork([784, 128, 64, 10], seed=0, backend="numpy")
    ws = Workspace(net.kernels, net.architecture, 60_000, net.dtype, gather=False)
    assert ws.batch_size == 60_000 and ws.rows == MAX_PASS_ROWS
    assert all(a.shape[0] == MAX_PASS_ROWS for a in ws.acts + ws.deltas)
    small = Workspace(net.kernels, net.architecture, 128, net.dtype)
    assert small.rows == 128 and small.pass_grads is None


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_full_batch_fit_allocates_passes_not_the_whole_batch(backend):
    """Full batch on 40,000 rows of a 64-256-128-10 net: one pass would hold activations and
    deltas of 40,000 x 778 floats (124 MB); passes of MAX_PASS_ROWS hold 13 MB."""
    if backend == "numba":
        pytest.importorskip("numba")
    X = np.random.default_rng(0).random((40_000, 64), dtype=np.float32)
    y = np.arange(40_000) % 10
    net = NeuralNetwork([64, 256, 128, 10], seed=0, backend=backend)
    net.fit(X[:100], y[:100], epochs=1, verbose=False)  # warm-up: compilation, lazily made objects
    one_pass = 40_000 * (256 + 128 + 10 + 256 + 128) * 4
    tracemalloc.start()
    try:
        net.fit(X, y, epochs=1, verbose=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    passes = MAX_PASS_ROWS * (256 + 128 + 10 + 256 + 128 + 4) * 4
    assert peak < 2 * passes + 2 * 40_000 * 8, (peak, passes)  # + the labels as intp, the permutation
    assert peak < one_pass / 4


# ------------------------------------------------------------------ prediction on 1M rows
N_ROWS = 1_000_000
N_FEATURES = 16
ARCHITECTURE = [N_FEATURES, 64, 32, 10]


def _million_rows(kind, tmp_path):
    """(1,000,000, 16) inputs that cost (almost) nothing themselves: a broadcast row (stride 0),
    overlapping windows over 1,000,015 float64s (non-contiguous, 8 MB), a uint8 memory map."""
    rng = np.random.default_rng(0)
    if kind == "broadcast":
        return np.broadcast_to(rng.random(N_FEATURES), (N_ROWS, N_FEATURES))
    if kind == "windows":
        base = rng.random(N_ROWS + N_FEATURES - 1)
        return np.lib.stride_tricks.sliding_window_view(base, N_FEATURES)
    mapped = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=(N_ROWS, N_FEATURES))
    for start in range(0, N_ROWS, 100_000):
        mapped[start:start + 100_000] = rng.integers(0, 256, (100_000, N_FEATURES), dtype=np.uint8)
    mapped.flush()
    return np.load(tmp_path / "x.npy", mmap_mode="r")


@pytest.mark.parametrize("kind", ["broadcast", "windows", "memmap-uint8"])
def test_predicting_a_million_rows_runs_in_chunks(kind, tmp_path):
    X = _million_rows(kind, tmp_path)
    net = NeuralNetwork(ARCHITECTURE, seed=0, backend="numpy")
    net.predict(np.ascontiguousarray(X[:10]))  # warm-up
    all_activations = N_ROWS * sum(ARCHITECTURE[1:]) * 4  # float32, every layer of every row: 424 MB
    chunk = PREDICT_BATCH * (N_FEATURES + sum(ARCHITECTURE[1:]) + 4) * 8  # one chunk's buffers, generously
    for method, out_bytes in (("predict_proba", N_ROWS * 10 * 4), ("predict", N_ROWS * np.dtype(np.intp).itemsize)):
        tracemalloc.start()
        try:
            result = getattr(net, method)(X)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert result.nbytes == out_bytes
        assert peak < out_bytes + 2 * chunk, (method, peak)
        assert peak < out_bytes + all_activations / 10, (method, peak)
        # the same as predicting blocks of rows one call at a time
        block = 12 * PREDICT_BATCH
        expected = np.concatenate([getattr(net, method)(np.ascontiguousarray(X[i:i + block]))
                                   for i in range(0, N_ROWS, block)])
        np.testing.assert_array_equal(result, expected)
