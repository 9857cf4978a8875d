"""The array-API backend on a CUDA GPU (CuPy, PyTorch): the same results as the NumPy backend.

Run by ``scripts/gpu_check.sh`` on a machine with a GPU; elsewhere every test here is
skipped with the reason (no CuPy / PyTorch, or neither sees a CUDA device).  The CPU
half of these checks (NumPy, array-api-strict's simulated devices) is
``tests/test_array_api.py``, which runs everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastscratch import NeuralNetwork, devices

pytest.importorskip("array_api_compat", reason="array-api-compat is in the array-api and dev extras")
# float32; cuBLAS sums in another order than OpenBLAS, and many steps let that grow: a weight may
# differ by a small fraction of the largest weight (as tests/test_bench_gpu.py allows)


def assert_close_weights(reference, other, fraction=2e-4):
    scale = max(float(np.abs(p).max()) for p in reference.parameters)
    for p, q in zip(reference.parameters, other.parameters):
        np.testing.assert_allclose(devices.to_numpy(q), p, rtol=0, atol=fraction * scale)


def _library(name: str):
    """The GPU array module ``name`` (cupy or torch), or a skip saying why it cannot run here."""
    if name == "cupy":
        cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
        if not cupy.cuda.is_available():
            pytest.skip("CuPy sees no CUDA device")
        return cupy
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    if not torch.cuda.is_available():
        pytest.skip(f"PyTorch {torch.__version__} sees no CUDA device")
    return torch


def _on_gpu(name: str, *arrays):
    library = _library(name)
    if name == "cupy":
        return [library.asarray(a) for a in arrays]
    return [library.asarray(a, device="cuda") for a in arrays]


def _data(n, n_features, n_classes, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_features)).astype(np.float32), rng.integers(0, n_classes, n)


@pytest.mark.parametrize("library", ["cupy", "torch"])
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), optimizer=st.sampled_from(["sgd", "momentum", "adam"]),
       activation=st.sampled_from(["relu", "sigmoid", "tanh", "elu"]), dropout=st.sampled_from([0.0, 0.25]),
       batch=st.sampled_from([None, 16, 50]))
def test_an_epoch_on_the_gpu_matches_the_numpy_backend(library, seed, optimizer, activation, dropout, batch):
    X, y = _data(120, 12, 4, seed)
    kwargs = dict(activation=activation, seed=seed, dropout=dropout)
    fit = dict(lr=0.05, epochs=2, batch_size=batch, optimizer=optimizer, verbose=False)
    reference = NeuralNetwork([12, 16, 8, 4], backend="numpy", **kwargs)
    reference.fit(X, y, X, y, **fit)
    Xd, yd = _on_gpu(library, X, y)
    other = NeuralNetwork([12, 16, 8, 4], backend="auto", **kwargs)  # GPU arrays choose the array-API backend
    other.fit(Xd, yd, Xd, yd, **fit)
    assert other.kernels.NAME == "array_api" and devices.same_place(other.weights[0], Xd)
    assert_close_weights(reference, other)
    np.testing.assert_allclose(other.history.cost, reference.history.cost, rtol=1e-4)
    np.testing.assert_allclose(other.history.test_cost, reference.history.test_cost, rtol=1e-4)


@pytest.mark.parametrize("library", ["cupy", "torch"])
def test_fashion_sized_epoch_predict_and_save_on_the_gpu(library, tmp_path):
    X, y = _data(4096, 784, 10, 0)
    reference = NeuralNetwork([784, 128, 64, 10], seed=0, backend="numpy")
    reference.fit(X, y, lr=0.1, epochs=1, batch_size=512, verbose=False)
    Xd, yd = _on_gpu(library, X, y)
    other = NeuralNetwork([784, 128, 64, 10], seed=0, backend="array_api")
    other.fit(Xd, yd, lr=0.1, epochs=1, batch_size=512, verbose=False)
    assert_close_weights(reference, other, fraction=1e-3)
    agree = np.mean(devices.to_numpy(other.predict(Xd)) == reference.predict(X))
    assert agree > 0.99
    other.save(tmp_path / "gpu.npz")
    loaded = NeuralNetwork.load(tmp_path / "gpu.npz", device=Xd)
    assert devices.same_place(loaded.weights[0], Xd)
    with pytest.raises(ValueError, match="nothing is copied between devices silently"):
        other.fit(X, y, epochs=1, verbose=False)  # host data, GPU model
