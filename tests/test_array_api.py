"""The array-API backend on the CPU: on NumPy (through array-api-compat) and on array-api-strict.

array-api-strict refuses what the standard does not promise, and its simulated devices
(``device1``, ``no_float64``) make a hidden host transfer, an operation mixing two devices
or a float64 temporary an error -- so training there shows the backend keeps to the
standard and to the data's device.  Every result is compared with the NumPy backend's
(the reference) from the same seed: same start, same batches, same dropout draws.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastscratch import NeuralNetwork, devices

xps = pytest.importorskip("array_api_strict", reason="array-api-strict is in the dev extra: pip install -e '.[dev]'")
pytest.importorskip("array_api_compat", reason="array-api-compat is in the array-api and dev extras")

DEVICE1 = xps.Device("device1")
NO_FLOAT64 = xps.Device("no_float64")
# float32, an epoch of a few steps: the array API sums the loss in float32 and may order
# reductions differently from NumPy's pairwise sums
TOL = dict(rtol=2e-4, atol=2e-5)


def data(n=96, n_features=6, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features)).astype(np.float32)
    y = rng.integers(0, n_classes, n)
    return X, y


def on(device, *arrays):
    return [xps.asarray(a, device=device) for a in arrays]


def host(arrays):
    return [devices.to_numpy(a) for a in arrays]


def assert_same_training(reference: NeuralNetwork, other: NeuralNetwork) -> None:
    for p, q in zip(reference.parameters, host(other.parameters)):
        np.testing.assert_allclose(q, p, **TOL)
    np.testing.assert_allclose(other.history.cost, reference.history.cost, rtol=1e-5)
    assert other.history.train_accuracy == reference.history.train_accuracy


@st.composite
def networks(draw):
    n_hidden = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 7))] + [draw(st.integers(1, 9)) for _ in range(n_hidden)] + [draw(st.integers(2, 5))]
    activation = draw(st.sampled_from(["relu", "sigmoid", "tanh", "elu"]))
    optimizer = draw(st.sampled_from(["sgd", "momentum", "adam"]))
    dropout = draw(st.sampled_from([0.0, 0.25]))
    batch = draw(st.sampled_from([None, 7, 32]))
    return sizes, activation, optimizer, dropout, batch


@settings(max_examples=25)
@given(spec=networks(), seed=st.integers(0, 2**16), where=st.sampled_from(["numpy", "strict"]))
def test_an_epoch_matches_the_numpy_backend(spec, seed, where):
    """Hypothesis-drawn architectures, optimizers, dropout and batch sizes: one epoch (and, at
    batch 32 of 40 rows, one full step and one ragged one) agree with the NumPy backend."""
    sizes, activation, optimizer, dropout, batch = spec
    X, y = data(40, sizes[0], sizes[-1], seed)
    kwargs = dict(activation=activation, seed=seed, dropout=dropout)
    reference = NeuralNetwork(sizes, backend="numpy", **kwargs)
    other = NeuralNetwork(sizes, backend="array_api", **kwargs)
    fit = dict(lr=0.05, epochs=1, batch_size=batch, optimizer=optimizer, verbose=False)
    reference.fit(X, y, X, y, **fit)
    Xd, yd = (X, y) if where == "numpy" else on(DEVICE1, X, y)
    other.fit(Xd, yd, Xd, yd, **fit)
    assert other.kernels.NAME == "array_api"
    assert str(other.device) == ("cpu" if where == "numpy" else str(DEVICE1))
    assert_same_training(reference, other)
    np.testing.assert_allclose(other.history.test_cost, reference.history.test_cost, rtol=1e-5)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_one_step_matches_the_numpy_backend_on_a_second_device(optimizer):
    X, y = data()
    reference = NeuralNetwork([6, 8, 3], seed=3, backend="numpy")
    other = NeuralNetwork([6, 8, 3], seed=3, backend="array_api")
    reference.fit(X, y, lr=0.1, epochs=1, optimizer=optimizer, verbose=False)  # full batch: one step
    other.fit(*on(DEVICE1, X, y), lr=0.1, epochs=1, optimizer=optimizer, verbose=False)
    assert_same_training(reference, other)
    # the step changed the weights: the comparison is of an update, not of two starts
    assert not np.allclose(reference.weights[0], NeuralNetwork([6, 8, 3], seed=3).weights[0])


def test_several_epochs_with_dropout_weight_decay_and_a_schedule():
    X, y = data(200)
    kwargs = dict(seed=5, dropout=0.3)
    fit = dict(lr=0.1, epochs=4, batch_size=32, optimizer="momentum", weight_decay=1e-3, lr_schedule="cosine",
               verbose=False)
    reference = NeuralNetwork([6, 16, 8, 3], backend="numpy", **kwargs)
    reference.fit(X, y, **fit)
    other = NeuralNetwork([6, 16, 8, 3], backend="array_api", **kwargs)
    other.fit(*on(DEVICE1, X, y), **fit)
    assert_same_training(reference, other)


def test_a_device_without_float64_trains_a_float32_model():
    """No float64 temporary anywhere in the step (the loss is summed in float32 there)."""
    X, y = data()
    reference = NeuralNetwork([6, 8, 3], seed=1, backend="numpy")
    other = NeuralNetwork([6, 8, 3], seed=1, backend="auto")  # auto: array-API arrays choose the backend
    reference.fit(X, y, lr=0.1, epochs=2, batch_size=16, optimizer="adam", verbose=False)
    other.fit(*on(NO_FLOAT64, X, y), lr=0.1, epochs=2, batch_size=16, optimizer="adam", verbose=False)
    assert other.kernels.NAME == "array_api" and other.device == NO_FLOAT64
    assert_same_training(reference, other)


def test_predict_evaluate_and_save_load_where_the_weights_are(tmp_path):
    X, y = data()
    reference = NeuralNetwork([6, 8, 3], seed=2, backend="numpy")
    other = NeuralNetwork([6, 8, 3], seed=2, backend="array_api")
    reference.fit(X, y, lr=0.1, epochs=3, batch_size=16, verbose=False)
    Xd, yd = on(DEVICE1, X, y)
    other.fit(Xd, yd, lr=0.1, epochs=3, batch_size=16, verbose=False)
    predicted = other.predict(Xd)
    assert predicted.device == DEVICE1
    np.testing.assert_array_equal(devices.to_numpy(predicted), reference.predict(X))
    np.testing.assert_allclose(devices.to_numpy(other.predict_proba(Xd)), reference.predict_proba(X), **TOL)
    loss, accuracy = other.evaluate(Xd, yd)
    assert accuracy == reference.accuracy(X, y) == other.accuracy(Xd, yd)
    assert loss == pytest.approx(reference.evaluate(X, y)[0], rel=1e-5)

    other.save(tmp_path / "m.npz")  # brought to the host
    loaded = NeuralNetwork.load(tmp_path / "m.npz")
    assert all(isinstance(p, np.ndarray) for p in loaded.parameters)
    for p, q in zip(loaded.parameters, host(other.parameters)):
        np.testing.assert_array_equal(p, q)
    placed = NeuralNetwork.load(tmp_path / "m.npz", device=DEVICE1)
    assert placed.device == DEVICE1 and placed.kernels.NAME == "array_api"
    np.testing.assert_array_equal(devices.to_numpy(placed.predict(Xd)), devices.to_numpy(predicted))
    # training on continues the optimizer state moved with the model, as on the host
    reference.fit(X, y, lr=0.1, epochs=1, batch_size=16, verbose=False)
    placed.fit(Xd, yd, lr=0.1, epochs=1, batch_size=16, verbose=False)
    for p, q in zip(reference.parameters, host(placed.parameters)):
        np.testing.assert_allclose(q, p, **TOL)


def test_to_device_and_back_keeps_the_optimizer_state():
    X, y = data()
    reference = NeuralNetwork([6, 8, 3], seed=4, backend="auto")
    moved = NeuralNetwork([6, 8, 3], seed=4, backend="auto")
    for net in (reference, moved):
        net.fit(X, y, lr=0.05, epochs=1, batch_size=16, optimizer="adam", verbose=False)
    moved.to_device(DEVICE1)
    assert moved.kernels.NAME == "array_api"
    moved.fit(*on(DEVICE1, X, y), lr=0.05, epochs=1, batch_size=16, optimizer="adam", verbose=False)
    moved.to_device("cpu")
    assert moved.kernels.NAME == reference.kernels.NAME and moved.device == "cpu"
    reference.fit(X, y, lr=0.05, epochs=1, batch_size=16, optimizer="adam", verbose=False)
    assert moved.optimizer.iterations == reference.optimizer.iterations
    for p, q in zip(reference.parameters, moved.parameters):
        np.testing.assert_allclose(q, p, **TOL)


def test_early_stopping_restores_the_best_epoch_on_the_device():
    X, y = data(120)
    kwargs = dict(lr=0.5, epochs=12, batch_size=8, early_stopping=2, monitor="test_loss", verbose=False)
    reference = NeuralNetwork([6, 32, 3], seed=7, backend="numpy")
    reference.fit(X[:80], y[:80], X[80:], y[80:], **kwargs)
    other = NeuralNetwork([6, 32, 3], seed=7, backend="array_api")
    Xd, yd = on(DEVICE1, X, y)
    other.fit(Xd[:80, ...], yd[:80], Xd[80:, ...], yd[80:], **kwargs)
    assert len(other.history) == len(reference.history)
    for p, q in zip(reference.parameters, host(other.parameters)):
        np.testing.assert_allclose(q, p, **TOL)


def test_divergence_puts_the_weights_back_on_the_device():
    X, y = data()
    X[:, 0] *= 1e3
    net = NeuralNetwork([6, 8, 3], seed=0, backend="array_api")
    Xd, yd = on(DEVICE1, X, y)
    with pytest.raises(FloatingPointError, match="diverged"):
        net.fit(Xd, yd, lr=50.0, epochs=3, batch_size=8, verbose=False)
    start = NeuralNetwork([6, 8, 3], seed=0)
    assert net.epochs_trained == 0
    for p, q in zip(start.parameters, host(net.parameters)):
        np.testing.assert_array_equal(q, p)


# ------------------------------------------------------------------ errors, never silent copies
def test_data_on_another_device_than_the_weights_is_an_error():
    X, y = data()
    net = NeuralNetwork([6, 8, 3], seed=0, backend="array_api")
    Xd, yd = on(DEVICE1, X, y)
    net.fit(Xd, yd, lr=0.1, epochs=1, verbose=False)
    before = host(net.parameters)
    cases = [
        (lambda: net.fit(X, y, epochs=1, verbose=False), "X_train is a NumPy array on the host"),
        (lambda: net.fit(*on(xps.Device("device2"), X, y), epochs=1, verbose=False), "device2"),
        (lambda: net.fit(Xd, on(xps.Device("device2"), y)[0], epochs=1, verbose=False), "y_train"),
        (lambda: net.fit(Xd, yd, *on(xps.Device("device2"), X, y), epochs=1, verbose=False), "X_test"),
        (lambda: net.predict(X), "X is a NumPy array"),
        (lambda: net.evaluate(Xd, y), "y is a NumPy array"),
    ]
    for call, words in cases:
        with pytest.raises(ValueError, match=words) as info:
            call()
        assert "nothing is copied between devices silently" in str(info.value)
    for p, q in zip(before, host(net.parameters)):  # nothing was changed by the refused calls
        np.testing.assert_array_equal(p, q)
    assert net.epochs_trained == 1


def test_gpu_style_data_and_host_weights_are_errors_where_nothing_places_the_model():
    X, y = data()
    Xd, yd = on(DEVICE1, X, y)
    with pytest.raises(TypeError, match="backend='numpy' computes on NumPy arrays"):
        NeuralNetwork([6, 8, 3], backend="numpy").fit(Xd, yd, epochs=1, verbose=False)
    with pytest.raises(ValueError, match="weights are on the host"):
        NeuralNetwork([6, 8, 3], backend="auto").predict(Xd)  # not trained there: place it first
    with pytest.raises(ValueError, match="checkpoint= is not supported for data off the host"):
        NeuralNetwork([6, 8, 3], backend="array_api").fit(Xd, yd, epochs=1, checkpoint="x.npz", verbose=False)
    net = NeuralNetwork([6, 8, 3], backend="array_api").to_device(DEVICE1)
    with pytest.raises(TypeError, match="forward\\(\\) by hand works on the host"):
        net.forward(X)


def test_bad_data_on_the_device_gets_the_hosts_kind_of_error():
    X, y = data()
    net = NeuralNetwork([6, 8, 3], backend="array_api")
    bad_X = X.copy()
    bad_X[3, 2] = np.nan
    cases = [
        ((bad_X, y), ValueError, "non-finite"),
        ((X[:, :5], y), ValueError, "5 features per sample"),
        ((X, y + 3), ValueError, "label 5 out of range"),
        ((X, y[:-1]), ValueError, "95 labels but X has 96"),
        ((X, y + 0.5), ValueError, "non-integer values"),
        ((X, np.eye(3, dtype=np.float32)[y] * 0.5), ValueError, "exactly one 1 per row"),
        ((X, np.eye(4, dtype=np.float32)[y]), ValueError, "looks one-hot with 4 columns"),
        ((X, y.astype(np.complex64)), TypeError, "integer class labels"),
    ]
    for (features, labels), error, words in cases:
        with pytest.raises(error, match=words):
            net.fit(*on(DEVICE1, features, labels), epochs=1, verbose=False)
    assert net.epochs_trained == 0 and devices.is_host(net.weights[0])  # refused before it was placed


def test_labels_as_whole_floats_and_bools_are_taken_as_on_the_host():
    X, y = data()
    for labels in (y.astype(np.float32), (y > 0)):
        reference = NeuralNetwork([6, 8, 3], seed=1, backend="numpy")
        reference.fit(X, labels, lr=0.1, epochs=1, batch_size=16, verbose=False)
        other = NeuralNetwork([6, 8, 3], seed=1, backend="array_api")
        other.fit(*on(DEVICE1, X, labels), lr=0.1, epochs=1, batch_size=16, verbose=False)
        assert_same_training(reference, other)


def test_one_hot_labels_and_float64_features_are_converted_on_the_device():
    X, y = data()
    reference = NeuralNetwork([6, 8, 3], seed=1, backend="numpy")
    reference.fit(X, y, lr=0.1, epochs=1, batch_size=16, verbose=False)
    other = NeuralNetwork([6, 8, 3], seed=1, backend="array_api")
    other.fit(*on(DEVICE1, X.astype(np.float64), np.eye(3, dtype=np.float32)[y]), lr=0.1, epochs=1, batch_size=16,
              verbose=False)
    assert_same_training(reference, other)


def test_pytorch_cpu_tensors_train_on_the_array_api_backend_when_asked_and_on_numpy_by_default():
    torch = pytest.importorskip("torch", reason="PyTorch is not in the dev extra (see the README's torch extra)")
    X, y = data()
    reference = NeuralNetwork([6, 8, 3], seed=1, backend="numpy")
    reference.fit(X, y, lr=0.1, epochs=2, batch_size=16, optimizer="momentum", verbose=False)
    other = NeuralNetwork([6, 8, 3], seed=1, backend="array_api")
    other.fit(torch.asarray(X), torch.asarray(y), lr=0.1, epochs=2, batch_size=16, optimizer="momentum", verbose=False)
    assert isinstance(other.weights[0], torch.Tensor)
    assert_same_training(reference, other)
    host_default = NeuralNetwork([6, 8, 3], seed=1, backend="numpy")  # a CPU tensor: NumPy takes it, as before
    host_default.fit(torch.asarray(X), torch.asarray(y), lr=0.1, epochs=2, batch_size=16, optimizer="momentum",
                     verbose=False)
    assert isinstance(host_default.weights[0], np.ndarray)
    for p, q in zip(reference.parameters, host_default.parameters):
        np.testing.assert_array_equal(p, q)


def test_to_device_names_what_it_cannot_do():
    with pytest.raises(ValueError, match="'cpu', 'cuda' or 'cuda:N'"):
        devices.to_device(np.ones(2), "gpu0")
    with pytest.raises(TypeError, match="device must be"):
        devices.to_device(np.ones(2), 3.5)
    library, reason = devices.gpu_library()
    if library is None:  # this machine: the reason says what is missing, and "cuda" says it too
        assert reason
        with pytest.raises(RuntimeError, match="no GPU to put the data on"):
            devices.to_device(np.ones(2), "cuda")


def test_a_batch_taller_than_a_host_pass_is_one_pass_on_the_device(monkeypatch):
    """The host cuts a tall batch into passes whose gradients add up; a device runs it whole: the same step."""
    from fastscratch.training import epoch as training_epoch

    monkeypatch.setattr(training_epoch, "MAX_PASS_ROWS", 16)
    X, y = data(100)
    reference = NeuralNetwork([6, 8, 3], seed=6, backend="numpy")
    reference.fit(X, y, lr=0.1, epochs=2, batch_size=60, verbose=False)
    other = NeuralNetwork([6, 8, 3], seed=6, backend="array_api")
    other.fit(*on(DEVICE1, X, y), lr=0.1, epochs=2, batch_size=60, verbose=False)
    assert_same_training(reference, other)
    workspace = training_epoch.Workspace(other.kernels, [6, 8, 3], 60, np.dtype(np.float32), like=other.weights[0])
    assert workspace.rows == 60 and workspace.pass_grads is None


def test_sigmoid_keeps_its_relative_accuracy_far_into_the_negative_side():
    from fastscratch.backends import load_backend
    from fastscratch.kernels.contract import SIGMOID

    K = load_backend("array_api")
    z = np.linspace(-80, 80, 321, dtype=np.float32).reshape(1, -1)
    out = xps.empty(z.shape, dtype=xps.float32, device=DEVICE1)
    K.bias_activation(xps.asarray(z, device=DEVICE1), xps.zeros(z.shape[1], dtype=xps.float32, device=DEVICE1),
                      SIGMOID, out)
    exact = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
    np.testing.assert_allclose(devices.to_numpy(out), exact, rtol=1e-6)
