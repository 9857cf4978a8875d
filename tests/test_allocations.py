"""The NumPy backend's training steps allocate no arrays: every buffer comes from the workspace."""

import tracemalloc

import numpy as np
import pytest

from fastscratch import NeuralNetwork
from fastscratch.optimizers import get_optimizer
from fastscratch.training.epoch import Workspace, run_epoch

BATCH = 128


def _peak_bytes_of_an_epoch(batch, optimizer="adam", activation="relu", dropout=0.2):
    """Peak traced memory of six training steps (the last one partial), after a warm-up epoch."""
    rng = np.random.default_rng(0)
    n = batch * 5 + 37
    X = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.intp)
    nn = NeuralNetwork([784, 128, 64, 10], activation=activation, dropout=dropout, seed=0, backend="numpy")
    params = nn.parameters
    opt = get_optimizer(optimizer)
    opt.bind(params)
    ws = Workspace(nn.kernels, nn.architecture, batch, nn.dtype, keep_probs=[1 - d for d in nn.dropout])
    order = rng.permutation(n)
    args = (ws, X, y, order, nn.weights, nn.biases, nn.activation_codes, opt, 0.01, [1e-4, 0.0] * 3, nn.rng)
    run_epoch(*args)  # warm-up: caches, lazily created objects

    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        run_epoch(*args)
        return tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("activation, dropout", [("relu", 0.0), ("sigmoid", 0.2), ("tanh", 0.0), ("elu", 0.0)])
def test_training_steps_allocate_nothing(optimizer, activation, dropout):
    peak = _peak_bytes_of_an_epoch(BATCH, optimizer, activation, dropout)
    smallest_batch_array = BATCH * 10 * 4  # the (128, 10) float32 logits
    assert peak < smallest_batch_array, f"{peak} bytes allocated in 6 steps"


def test_what_remains_does_not_grow_with_the_batch():
    """The few hundred bytes left are Python objects and NumPy's fixed-size iterator
    buffers: four times the batch leaves them nearly unchanged."""
    small, large = _peak_bytes_of_an_epoch(BATCH), _peak_bytes_of_an_epoch(4 * BATCH)
    assert large - small < 2048, (small, large)


def test_the_check_can_see_an_allocation():
    """Guard for the test above: NumPy reports to tracemalloc, so a hidden temporary would show."""
    a = np.ones((BATCH, 784), dtype=np.float32)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        b = a * 2.0  # noqa: F841  (allocates like `W -= lr * grad` would)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - baseline >= a.nbytes
