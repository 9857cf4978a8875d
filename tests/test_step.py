"""One step by hand -- forward, backward, update -- is fit's step; the callbacks protocol."""

import numpy as np
import pytest

from fastscratch import NeuralNetwork, available_backends
from fastscratch.training.callbacks import Callback, LoopState


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    # fewer than 256 rows: one BLAS thread in fit and by hand alike
    X = rng.normal(size=(120, 6)).astype(np.float32)
    return X, rng.integers(0, 4, 120)


def _same(a_list, b_list):
    for a, b in zip(a_list, b_list, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", ["tanh", "relu"]])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_one_step_by_hand_is_one_fit_step_bit_for_bit(data, activation, optimizer):
    X, y = data
    sizes = [6, 8, 5, 4]
    by_hand = NeuralNetwork(sizes, activation=activation, seed=1, backend="numpy")
    fitted = NeuralNetwork(sizes, activation=activation, seed=1, backend="numpy")

    activations = by_hand.forward(X)
    grad_weights, grad_biases = by_hand.backward(activations, y)
    by_hand.update((grad_weights, grad_biases), lr=0.1, optimizer=optimizer, weight_decay=1e-3)

    fitted.fit(X, y, lr=0.1, epochs=1, batch_size=None, shuffle=False, optimizer=optimizer, weight_decay=1e-3,
               verbose=False)
    _same(by_hand.parameters, fitted.parameters)
    assert by_hand.optimizer.iterations == fitted.optimizer.iterations == 1
    for kind in fitted.optimizer.state_names:
        _same(by_hand.optimizer.state[kind], fitted.optimizer.state[kind])
    # and a second step continues the same optimizer state
    by_hand.update(by_hand.backward(by_hand.forward(X), y), lr=0.1, optimizer=optimizer, weight_decay=1e-3)
    fitted.fit(X, y, lr=0.1, epochs=1, shuffle=False, optimizer=optimizer, weight_decay=1e-3, verbose=False)
    _same(by_hand.parameters, fitted.parameters)


@pytest.mark.skipif("numba" not in available_backends(), reason="Numba is not installed")
def test_one_step_by_hand_on_numba_agrees_with_its_fused_fit(data):
    """Numba's fit runs the step fused in one jitted epoch; by hand it runs kernel by kernel."""
    X, y = data
    by_hand = NeuralNetwork([6, 8, 5, 4], seed=1, backend="numba")
    fitted = NeuralNetwork([6, 8, 5, 4], seed=1, backend="numba")
    by_hand.update(by_hand.backward(by_hand.forward(X), y), lr=0.1)
    fitted.fit(X, y, lr=0.1, epochs=1, shuffle=False, verbose=False)
    for a, b in zip(by_hand.parameters, fitted.parameters, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_forward_returns_every_layer_and_changes_nothing(data):
    X, y = data
    net = NeuralNetwork([6, 8, 5, 4], seed=0)
    before = [p.copy() for p in net.parameters]
    state = net.rng.bit_generator.state
    activations = net.forward(X)
    assert [a.shape for a in activations] == [(120, 6), (120, 8), (120, 5), (120, 4)]
    assert all(a.dtype == np.float32 for a in activations)
    assert (activations[1] >= 0).all()  # relu
    logits = activations[-1]  # the output layer is linear: softmax belongs to the loss
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, net.predict_proba(X), rtol=1e-5)
    copies = [a.copy() for a in activations]
    net.backward(activations, y)
    _same(activations, copies)  # backward leaves its input alone
    _same(net.parameters, before)
    assert net.rng.bit_generator.state == state


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_backward_is_the_gradient_of_the_mean_loss_by_finite_differences(activation):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(15, 5))
    y = rng.integers(0, 3, 15)
    net = NeuralNetwork([5, 7, 6, 3], activation=activation, dtype="float64", seed=2, backend="numpy")
    grad_weights, grad_biases = net.backward(net.forward(X), y)
    analytic = [g for pair in zip(grad_weights, grad_biases) for g in pair]
    h = 1e-6
    for param, grad in zip(net.parameters, analytic, strict=True):
        numeric = np.empty_like(param)
        flat, out = param.reshape(-1), numeric.reshape(-1)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + h
            up = net.evaluate(X, y)[0]
            flat[i] = keep - h
            down = net.evaluate(X, y)[0]
            flat[i] = keep
            out[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_update_does_sgd_by_the_formula(data):
    X, y = data
    net = NeuralNetwork([6, 8, 4], seed=0, backend="numpy")
    before = [p.copy() for p in net.parameters]
    grad_weights, grad_biases = net.backward(net.forward(X), y)
    kept = [g.copy() for g in grad_weights]
    net.update((grad_weights, grad_biases), lr=0.5)
    _same(grad_weights, kept)  # the caller's gradients are not consumed
    for new, old, g in zip(net.parameters, before, [g for pair in zip(kept, grad_biases) for g in pair]):
        np.testing.assert_allclose(new, old - np.float32(0.5) * g, rtol=1e-6, atol=1e-7)


# ---- the callbacks protocol ------------------------------------------------------------

class Recorder(Callback):
    def __init__(self, stop_at=None):
        self.calls, self.stop_at = [], stop_at

    def on_fit_start(self, loop):
        self.calls.append(("fit_start", loop.network.epochs_trained))

    def on_epoch_begin(self, loop):
        self.calls.append(("begin", loop.epoch, loop.lr))

    def on_epoch_end(self, loop):
        self.calls.append(("end", loop.epoch, len(loop.history)))
        if loop.epoch == self.stop_at:
            loop.stop_training = True

    def on_fit_end(self, loop):
        self.calls.append(("fit_end", len(loop.history)))

    def on_exception(self, loop, exc):
        self.calls.append(("exception", type(exc).__name__))


def test_callbacks_are_called_in_order_and_can_stop(data):
    X, y = data
    recorder = Recorder(stop_at=2)
    net = NeuralNetwork([6, 8, 4], seed=0)
    net.fit(X, y, epochs=5, lr=0.1, batch_size=32, lr_schedule={"name": "step", "step_size": 1, "factor": 0.5},
            verbose=False, callbacks=[recorder])
    assert recorder.calls == [("fit_start", 0), ("begin", 1, 0.1), ("end", 1, 1), ("begin", 2, 0.05), ("end", 2, 2),
                              ("fit_end", 2)]
    assert len(net.history) == 2


def test_a_plain_object_with_one_hook_is_a_callback_and_errors_reach_on_exception(data):
    X, y = data
    seen = []

    class Failing:
        def on_epoch_end(self, loop):
            seen.append(loop.epoch)
            raise RuntimeError("stop here")

    recorder = Recorder()
    with pytest.raises(RuntimeError, match="stop here"):
        NeuralNetwork([6, 8, 4], seed=0).fit(X, y, epochs=3, verbose=False, callbacks=[Failing(), recorder])
    assert seen == [1] and recorder.calls[-1] == ("exception", "RuntimeError")


def test_user_callbacks_run_after_on_epoch_end_and_the_log(data):
    X, y = data
    order = []

    class Note(Callback):
        def on_epoch_end(self, loop):
            order.append("callback")

    NeuralNetwork([6, 8, 4], seed=0).fit(X, y, epochs=1, log=lambda line: order.append(line.split()[0]),
                                         on_epoch_end=lambda h: order.append("on_epoch_end"), callbacks=[Note()])
    assert order[:3] == ["Epoch", "on_epoch_end", "callback"]


def test_the_loop_a_callback_sees_has_every_attribute_loop_state_names(data):
    """``LoopState`` is the callbacks' view of the loop, written apart from it: the loop must keep
    up with it, with values of the stated kinds."""
    X, y = data
    seen = {}

    class Look(Callback):
        def on_epoch_end(self, loop):
            seen.update({name: getattr(loop, name) for name in [*LoopState.__annotations__, "history"]})

    net = NeuralNetwork([6, 8, 4], seed=0)
    net.fit(X, y, epochs=2, verbose=False, callbacks=[Look()])
    assert seen["network"] is net and seen["history"] is net.history and seen["epoch"] == 2
    assert seen["resumed_from"] == 0 and seen["stop_training"] is False and seen["stop_reason"] is None
    assert all(isinstance(a, np.ndarray) for a in seen["tracked"]) and len(seen["tracked"]) == 4
    assert isinstance(seen["lr"], float) and seen["say"] is None and isinstance(seen["consistent"], bool)
