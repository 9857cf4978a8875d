"""JAX (``fastscratch.integrations.jax``, the ``jax`` benchmark framework) computes what fastscratch computes.

From the same weights and the same batch, one JAX step and one fastscratch step
(``reference.steps.train_steps``: fit's own code) give the same loss and weights
within float32 round-off, for every optimizer; a planted wrong learning rate makes
that check fail.  A whole jitted epoch -- permutation inside, ``lax.scan``, the
ragged last batch as its own step -- matches fastscratch's ``fit`` given the rows
in JAX's order (``shuffle=False``).  Skipped, with the reason, where JAX is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastscratch import Adam, Momentum, NeuralNetwork
from fastscratch.activations import ACTIVATIONS
from fastscratch.datasets import load_dataset, to_features
from fastscratch.integrations.steps import train_steps

jax = pytest.importorskip("jax", reason="JAX is not installed (pip install 'fastscratch[jax]')")
from fastscratch.integrations.jax import JaxNetwork  # noqa: E402

OPTIMIZERS = [("sgd", 0.1), (Momentum(0.9), 0.05), (Momentum(0.9, nesterov=True), 0.05), (Adam(), 1e-3)]
IDS = ["sgd", "momentum", "nesterov", "adam"]


@pytest.fixture(scope="module")
def data():
    sample = load_dataset("mnist-sample")
    return to_features(sample.X_train), sample.y_train


def _net(dtype="float32", hidden=(128, 64), activation="relu"):
    return NeuralNetwork([784, *hidden, 10], dtype=dtype, seed=0, backend="numpy", activation=activation)


def _fresh(optimizer):
    """A new optimizer object of the same configuration (fastscratch binds state to the one it gets)."""
    return optimizer if isinstance(optimizer, str) else type(optimizer)(**{
        k: v for k, v in optimizer.config().items() if k != "name"})


def _params(nn):
    return [p for pair in zip(nn.weights, nn.biases) for p in pair]


def first_step_gap(X, y, optimizer, lr, jax_lr=None, dtype="float32", rows=128, activation="relu"):
    """``(relative loss difference, largest weight difference relative to the largest update)``
    between one fastscratch step and one JAX step from the same weights on the first ``rows``
    rows; the JAX side may use another learning rate (``jax_lr``) to show the check can fail."""
    xb, yb = X[:rows].astype(dtype), y[:rows]
    nn = _net(dtype, activation=activation)
    start = [p.copy() for p in _params(nn)]
    twin = JaxNetwork(nn, xb, yb, lr=jax_lr or lr, batch_size=rows, optimizer=_fresh(optimizer))
    jax_loss = twin.train_step(xb, yb)
    fs_loss = train_steps(nn, xb, yb, lr=lr, epochs=1, batch_size=None, optimizer=_fresh(optimizer))[0, 0]
    update = max(float(np.max(np.abs(a - s))) for a, s in zip(_params(nn), start))
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(_params(nn), twin.params(), strict=True))
    return abs(jax_loss - fs_loss) / abs(fs_loss), gap / update


@pytest.mark.parametrize("optimizer,lr", OPTIMIZERS, ids=IDS)
def test_the_first_step_agrees_with_fastscratch_in_float32(data, optimizer, lr):
    loss_gap, weight_gap = first_step_gap(*data, optimizer, lr)
    assert loss_gap < 1e-6, loss_gap
    # float32 round-off of an update of size ~lr; Adam's m / (sqrt(v) + eps) is ~1 where the gradient
    # is ~0, so its round-off there is the largest (measured: 6e-4 of the largest update; 1e-2 with lr 1% off)
    assert weight_gap < (2e-3 if isinstance(optimizer, Adam) else 1e-4), weight_gap


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_activation_agrees_with_the_jax_function_it_names(data, activation):
    """The registry's JAX function for each activation: one step, float32 and float64."""
    loss_gap, weight_gap = first_step_gap(*data, "sgd", 0.1, activation=activation)
    assert loss_gap < 1e-6 and weight_gap < 1e-4, (loss_gap, weight_gap)
    loss_gap, weight_gap = first_step_gap(*data, "sgd", 0.1, dtype="float64", activation=activation)
    assert loss_gap < 1e-12 and weight_gap < 1e-9, (loss_gap, weight_gap)


@pytest.mark.parametrize("optimizer,lr", OPTIMIZERS, ids=IDS)
def test_the_first_step_agrees_to_float64_round_off(data, optimizer, lr):
    loss_gap, weight_gap = first_step_gap(*data, optimizer, lr, dtype="float64")
    assert loss_gap < 1e-12 and weight_gap < 1e-9, (loss_gap, weight_gap)


@pytest.mark.parametrize("optimizer,lr", OPTIMIZERS, ids=IDS)
def test_a_planted_wrong_learning_rate_fails_the_check(data, optimizer, lr):
    """lr 1% off on the JAX side: the weights are off by ~1% of the update, far outside the tolerance
    (the loss of the first step is measured before the update, so only the weights can show it)."""
    _, weight_gap = first_step_gap(*data, optimizer, lr, jax_lr=lr * 1.01)
    assert weight_gap > 5e-3, weight_gap


@pytest.mark.parametrize("optimizer,lr", OPTIMIZERS, ids=IDS)
def test_a_whole_epoch_with_a_ragged_last_batch_matches_fit(data, optimizer, lr):
    """4,000 rows in batches of 300: 13 scanned steps and a last one of 100 rows (its own mean)."""
    X, y = data
    nn = _net()
    twin = JaxNetwork(nn, X, y, lr=lr, batch_size=300, optimizer=_fresh(optimizer), seed=7)
    order = twin.order()
    assert sorted(order.tolist()) == list(range(len(X)))
    seconds = twin.fit_epoch()
    assert seconds > 0 and twin.epochs_trained == 1
    fs_losses = train_steps(nn, X[order], y[order], lr=lr, epochs=1, batch_size=300, optimizer=_fresh(optimizer),
                            shuffle=False)[0]
    assert len(twin.last_losses) == len(fs_losses) == 14
    np.testing.assert_allclose(twin.last_losses, fs_losses, rtol=2e-5)
    for a, b in zip(_params(nn), twin.params(), strict=True):
        np.testing.assert_allclose(b, a, atol=3e-5 if isinstance(optimizer, Adam) else 2e-6)
    assert 0 < twin.last_accuracy < 1


def test_full_batch_takes_the_rows_as_they_are(data):
    X, y = data[0][:1000], data[1][:1000]
    nn = _net()
    twin = JaxNetwork(nn, X, y, lr=0.1, batch_size=None)
    assert twin.order() is None
    twin.fit_epoch()
    fs_loss = train_steps(nn, X, y, lr=0.1, epochs=1, batch_size=None)[0]
    np.testing.assert_allclose(twin.last_losses, fs_loss, rtol=1e-6)
    for a, b in zip(_params(nn), twin.params(), strict=True):
        np.testing.assert_allclose(b, a, atol=1e-6)


def test_epochs_draw_their_own_permutation_from_seed_and_epoch(data):
    X, y = data[0][:500], data[1][:500]
    one, two = (JaxNetwork(_net(hidden=(8,)), X, y, batch_size=50, seed=3) for _ in range(2))
    np.testing.assert_array_equal(one.order(0), two.order(0))
    assert not np.array_equal(one.order(0), one.order(1))
    other = JaxNetwork(_net(hidden=(8,)), X, y, batch_size=50, seed=4)
    assert not np.array_equal(one.order(0), other.order(0))
    with pytest.raises(ValueError, match="non-negative integer"):
        one.order(-1)


def test_parameters_and_state_are_donated_and_the_network_is_not_touched(data):
    X, y = data[0][:512], data[1][:512]
    nn = _net(hidden=(16,))
    before = [p.copy() for p in _params(nn)]
    twin = JaxNetwork(nn, X, y, lr=0.1, batch_size=64, optimizer=Adam())
    old_params, old_m = list(twin._params), list(twin._state["m"])
    twin.fit_epoch()
    assert all(p.is_deleted() for p in old_params + old_m)  # XLA reused their buffers
    for a, b in zip(_params(nn), before):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(twin.params()[0], before[0])


def test_float64_runs_under_x64_and_leaves_the_process_in_float32(data):
    X, y = data[0][:256], data[1][:256]
    twin = JaxNetwork(_net("float64", hidden=(8,)), X.astype(np.float64), y, lr=0.1, batch_size=64)
    twin.fit_epoch()
    assert all(p.dtype == np.float64 for p in twin.params())
    assert jax.numpy.ones(1).dtype == np.float32  # x64 only around the twin's own calls
    assert twin.accuracy(X.astype(np.float64), y) > 0.1


def test_it_trains(data):
    X, y = data
    sample = load_dataset("mnist-sample")
    twin = JaxNetwork(_net(), X, y, lr=0.1, batch_size=128)
    for _ in range(3):
        twin.fit_epoch()
    assert twin.accuracy(to_features(sample.X_test), sample.y_test) > 0.85
    assert twin.compile_seconds > 0


def test_bad_arguments(data):
    X, y = data[0][:100], data[1][:100]
    with pytest.raises(TypeError, match="NeuralNetwork"):
        JaxNetwork("net", X, y)
    with pytest.raises(ValueError, match="dropout"):
        JaxNetwork(NeuralNetwork([784, 8, 10], dropout=0.5, backend="numpy"), X, y)
    with pytest.raises(ValueError, match="lr"):
        JaxNetwork(_net(hidden=(8,)), X, y, lr=0)
    with pytest.raises(ValueError, match="X_train"):
        JaxNetwork(_net(hidden=(8,)), X[:, :100], y)
