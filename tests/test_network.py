"""Training behaviour of NeuralNetwork: convergence, determinism, options, divergence."""

import math
import types

import numpy as np
import pytest

from fastscratch import Adam, CosineDecay, ExponentialDecay, Momentum, NeuralNetwork, StepDecay


def test_full_batch_sgd_learns_digits(digits):
    """The tutorial's recipe: full-batch gradient descent, lr=0.1."""
    X_train, y_train, X_test, y_test = digits
    nn = NeuralNetwork([64, 128, 64, 10], activation="relu", seed=1)
    history = nn.fit(X_train, y_train, X_test, y_test, lr=0.1, epochs=500, verbose=False)
    assert len(history) == 500
    assert history.cost[-1] < history.cost[0] / 5
    assert nn.accuracy(X_test, y_test) > 0.90
    assert history.test_accuracy[-1] == nn.accuracy(X_test, y_test)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_other_activations_learn(digits, activation):
    X_train, y_train, X_test, y_test = digits
    nn = NeuralNetwork([64, 32, 10], activation=activation, seed=0, init="xavier")
    nn.fit(X_train, y_train, lr=0.5, epochs=30, batch_size=32, verbose=False)
    assert nn.accuracy(X_test, y_test) > 0.85


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", Momentum(0.9, nesterov=True), Adam(beta1=0.8)])
def test_minibatch_optimizers_learn(digits, optimizer):
    X_train, y_train, X_test, y_test = digits
    lr = 0.005 if (optimizer == "adam" or isinstance(optimizer, Adam)) else 0.05
    nn = NeuralNetwork([64, 64, 10], seed=0)
    nn.fit(X_train, y_train, X_test, y_test, lr=lr, epochs=10, batch_size=64, optimizer=optimizer,
           verbose=False)
    assert nn.history.test_accuracy[-1] > 0.9


def test_epoch_lines_and_summary(digits, capsys):
    X_train, y_train, X_test, y_test = digits
    nn = NeuralNetwork([64, 16, 10], seed=0)
    nn.fit(X_train, y_train, X_test, y_test, lr=0.1, epochs=200, log_every=100)
    lines = capsys.readouterr().out.splitlines()
    assert [line[:10] for line in lines[:3]] == ["Epoch    1", "Epoch  100", "Epoch  200"]
    h = nn.history
    assert lines[1] == (f"Epoch  100 | Cost: {h.cost[99]:.4f} | Train Acc: {h.train_accuracy[99]:.4f} "
                        f"| Test Acc: {h.test_accuracy[99]:.4f}")
    assert lines[3] == "Training completed!"
    assert lines[4].startswith(f"Final Cost: {h.cost[-1]:.4f}")


def test_verbose_false_prints_nothing(blobs, capsys):
    X, y = blobs
    NeuralNetwork([4, 5, 3], seed=0).fit(X, y, epochs=3, verbose=False)
    assert capsys.readouterr().out == ""


def test_same_seed_gives_bit_identical_training(digits):
    X_train, y_train, X_test, y_test = digits

    def train():
        nn = NeuralNetwork([64, 32, 16, 10], seed=7, dropout=0.2)
        nn.fit(X_train, y_train, X_test, y_test, lr=0.05, epochs=3, batch_size=50, optimizer="adam",
               verbose=False)
        return nn

    a, b = train(), train()
    for wa, wb in zip(a.parameters, b.parameters):
        np.testing.assert_array_equal(wa, wb)
    assert a.history.cost == b.history.cost
    c = NeuralNetwork([64, 32, 16, 10], seed=8, dropout=0.2)
    assert not np.array_equal(c.weights[0], a.weights[0])


def test_fit_twice_continues_like_one_long_fit(blobs):
    """Epochs, shuffling, dropout and Adam's state carry over between fit calls."""
    X, y = blobs
    one = NeuralNetwork([4, 8, 3], seed=3, dropout=0.1)
    one.fit(X, y, lr=0.01, epochs=6, batch_size=16, optimizer="adam", lr_schedule=StepDecay(2, 0.5),
            verbose=False)
    two = NeuralNetwork([4, 8, 3], seed=3, dropout=0.1)
    for _ in range(3):
        two.fit(X, y, lr=0.01, epochs=2, batch_size=16, optimizer="adam", lr_schedule=StepDecay(2, 0.5),
                verbose=False)
    for a, b in zip(one.parameters, two.parameters):
        np.testing.assert_array_equal(a, b)
    assert two.history.epoch == [1, 2, 3, 4, 5, 6]
    assert two.optimizer.iterations == 6 * math.ceil(120 / 16)


def test_one_hot_labels_train_like_integer_labels(blobs):
    X, y = blobs
    a = NeuralNetwork([4, 6, 3], seed=0)
    a.fit(X, y, epochs=5, batch_size=32, verbose=False)
    b = NeuralNetwork([4, 6, 3], seed=0)
    b.fit(X, np.eye(3)[y], epochs=5, batch_size=32, verbose=False)
    np.testing.assert_array_equal(a.weights[0], b.weights[0])
    assert a.accuracy(X, y) == b.accuracy(X, np.eye(3)[y])


def test_float64_network(blobs):
    X, y = blobs
    nn = NeuralNetwork([4, 6, 3], dtype="float64", seed=0)
    nn.fit(X, y, epochs=50, verbose=False)
    assert nn.weights[0].dtype == np.float64
    assert nn.predict_proba(X).dtype == np.float64
    assert nn.accuracy(X, y) > 0.9


def test_predict_proba_rows_and_predict_agree(digits):
    X_train, y_train, X_test, _ = digits
    nn = NeuralNetwork([64, 16, 10], seed=0)
    nn.fit(X_train, y_train, epochs=3, batch_size=64, verbose=False)
    proba = nn.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(nn.predict(X_test), proba.argmax(axis=1))


def test_chunked_prediction_equals_one_chunk(digits):
    X_train, y_train, X_test, y_test = digits
    nn = NeuralNetwork([64, 16, 10], seed=0)
    nn.fit(X_train, y_train, epochs=2, batch_size=64, verbose=False)
    whole = nn.predict_proba(X_test, batch_size=len(X_test))
    np.testing.assert_allclose(nn.predict_proba(X_test, batch_size=7), whole, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(nn.predict(X_test, batch_size=13), whole.argmax(axis=1))
    loss_a, acc_a = nn.evaluate(X_test, y_test, batch_size=11)
    loss_b, acc_b = nn.evaluate(X_test, y_test)
    assert acc_a == acc_b and math.isclose(loss_a, loss_b, rel_tol=1e-6)


def test_predict_accepts_lists_and_other_dtypes(blobs):
    X, y = blobs
    nn = NeuralNetwork([4, 6, 3], seed=0)
    nn.fit(X, y, epochs=5, verbose=False)
    np.testing.assert_array_equal(nn.predict(X.tolist()), nn.predict(X))
    np.testing.assert_array_equal(nn.predict(X.astype(np.float64)), nn.predict(X))


@pytest.mark.parametrize("schedule, expected", [
    (StepDecay(step_size=2, factor=0.5), [0.1, 0.1, 0.05, 0.05, 0.025]),
    (ExponentialDecay(rate=0.5), [0.1, 0.05, 0.025, 0.0125, 0.00625]),
    (CosineDecay(total_epochs=4), [0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05,
                                   0.1 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.0]),
    ("cosine", [0.1, 0.1 * (1 + math.cos(math.pi / 5)) / 2, 0.1 * (1 + math.cos(2 * math.pi / 5)) / 2,
                0.1 * (1 + math.cos(3 * math.pi / 5)) / 2, 0.1 * (1 + math.cos(4 * math.pi / 5)) / 2]),
])
def test_lr_schedules(blobs, schedule, expected):
    X, y = blobs
    nn = NeuralNetwork([4, 6, 3], seed=0)
    nn.fit(X, y, lr=0.1, epochs=5, lr_schedule=schedule, verbose=False)
    np.testing.assert_allclose(nn.history.lr, expected, rtol=1e-12, atol=1e-15)


def test_weight_decay_shrinks_weights_and_is_in_the_cost(blobs):
    X, y = blobs
    plain = NeuralNetwork([4, 16, 3], seed=0)
    plain.fit(X, y, lr=0.1, epochs=100, verbose=False)
    decayed = NeuralNetwork([4, 16, 3], seed=0)
    decayed.fit(X, y, lr=0.1, epochs=100, weight_decay=0.05, verbose=False)
    norm = lambda nn: sum(float(np.sum(W.astype(np.float64) ** 2)) for W in nn.weights)  # noqa: E731
    assert norm(decayed) < 0.8 * norm(plain)
    data_loss, _ = decayed.evaluate(X, y)
    # the epoch cost is measured before the epoch's update; the last one is close to the final loss
    assert decayed.history.cost[-1] > data_loss + 0.5 * 0.05 * norm(decayed) * 0.9


def test_dropout_trains_and_prediction_is_deterministic(digits):
    X_train, y_train, X_test, y_test = digits
    nn = NeuralNetwork([64, 64, 10], seed=0, dropout=0.3)
    nn.fit(X_train, y_train, lr=0.05, epochs=15, batch_size=32, verbose=False)
    assert nn.accuracy(X_test, y_test) > 0.9
    np.testing.assert_array_equal(nn.predict_proba(X_test), nn.predict_proba(X_test))


def test_early_stopping_restores_best_epoch(digits, capsys):
    X_train, y_train, X_test, y_test = digits
    nn = NeuralNetwork([64, 64, 10], seed=0)
    nn.fit(X_train, y_train, X_test, y_test, lr=0.05, epochs=500, batch_size=16, early_stopping=3,
           monitor="test_loss")
    h = nn.history
    assert len(h) < 500
    best = int(np.argmin(h.test_cost))
    assert len(h) - 1 - best == 3  # stopped after 3 epochs without improvement
    loss, _ = nn.evaluate(X_test, y_test)
    assert math.isclose(loss, h.test_cost[best], rel_tol=1e-6)
    assert nn.optimizer.iterations == (best + 1) * math.ceil(len(X_train) / 16)  # the best epoch's state
    out = capsys.readouterr().out
    assert "Early stopping at epoch" in out
    assert f"Restored the weights and optimizer state of epoch {best + 1}" in out
    assert f"Final Test Acc: {h.test_accuracy[best]:.4f} (epoch {best + 1})" in out


def test_early_stopping_on_accuracy_without_restore(blobs):
    X, y = blobs
    nn = NeuralNetwork([4, 8, 3], seed=0)
    nn.fit(X, y, lr=0.1, epochs=1000, early_stopping=5, monitor="train_accuracy", restore_best=False,
           verbose=False)
    assert len(nn.history) < 1000


def test_divergence_restores_the_last_finite_weights(digits):
    """lr so large that one update overflows the weights to inf: the next batch's
    loss is NaN, and the weights from the start of the epoch come back."""
    X_train, y_train, _, _ = digits
    nn = NeuralNetwork([64, 64, 10], seed=0)
    start = [p.copy() for p in nn.parameters]
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 2: the loss is nan") as info:
        nn.fit(X_train, y_train, lr=1e38, epochs=20, batch_size=32, verbose=False)
    assert "lr=1e+38" in str(info.value) and "restored to the start of epoch 1" in str(info.value)
    for p, q in zip(nn.parameters, start):
        np.testing.assert_array_equal(p, q)


def test_overflowing_inputs_leave_the_trained_weights(digits):
    X_train, y_train, _, _ = digits
    nn = NeuralNetwork([64, 64, 10], seed=0)
    nn.fit(X_train, y_train, lr=0.1, epochs=1, batch_size=32, verbose=False)
    trained = [p.copy() for p in nn.parameters]
    with pytest.raises(FloatingPointError, match=r"epoch 2, batch \d+: the loss is (nan|inf)") as info:
        nn.fit(X_train * 1e38, y_train, lr=0.1, epochs=3, batch_size=32, verbose=False)
    assert "the start of epoch 2" in str(info.value)
    for p, q in zip(nn.parameters, trained):
        np.testing.assert_array_equal(p, q)
    assert len(nn.history) == 1


def test_an_update_that_overflows_the_weights_is_undone(blobs):
    """Full batch, first epoch: the loss was finite, but the update made the weights inf."""
    X, y = blobs
    nn = NeuralNetwork([4, 8, 3], seed=0)
    start = [p.copy() for p in nn.parameters]
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 1 \(the last\): its update made the weights"):
        nn.fit(X * 1e18, y, lr=1e38, epochs=3, verbose=False)
    for p, q in zip(nn.parameters, start):
        np.testing.assert_array_equal(p, q)
    nn.fit(X, y, lr=0.1, epochs=20, verbose=False)  # and the model still trains
    assert nn.accuracy(X, y) > 0.9


def test_an_overflowing_optimizer_state_is_undone_too():
    """Adam's second moment can overflow while the weights stay finite: that state is
    not kept either, so the model can be saved, loaded and trained on afterwards."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 6)) * 1e20
    y = rng.integers(0, 2, 100)
    nn = NeuralNetwork([6, 2], seed=0)
    with pytest.raises(FloatingPointError):
        nn.fit(X, y, lr=0.01, epochs=3, optimizer="adam", verbose=False)
    assert all(np.isfinite(a).all() for kind in ("m", "v") for a in nn.optimizer.state[kind])
    assert all(np.isfinite(p).all() for p in nn.parameters)


def test_test_data_that_overflows_is_recorded_as_nan_not_an_error(blobs):
    X, y = blobs
    X_test = X.copy()
    X_test[0] = 3e38
    nn = NeuralNetwork([4, 8, 3], seed=0)
    nn.fit(X, y, X_test, y, epochs=2, verbose=False)  # pytest turns RuntimeWarnings into errors here
    assert len(nn.history) == 2 and math.isnan(nn.history.test_cost[-1])


def test_sgd_step_count_continues_across_fits(blobs):
    X, y = blobs
    nn = NeuralNetwork([4, 8, 3], seed=0)
    nn.fit(X, y, epochs=2, batch_size=40, verbose=False)
    nn.fit(X, y, epochs=2, batch_size=40, verbose=False)
    assert nn.optimizer.iterations == 12


def test_full_batch_divergence_goes_back_one_epoch(blobs):
    """Full batch: every epoch is one batch, so the weights that fail were made by the
    previous epoch's update; those from that epoch's start come back."""
    X, y = blobs
    nn = NeuralNetwork([4, 8, 3], seed=0)
    nn.fit(X, y, lr=0.1, epochs=2, verbose=False)
    good = [p.copy() for p in nn.parameters]
    with pytest.raises(FloatingPointError, match=r"epoch 4, batch 1: .* restored to the start of epoch 3"):
        nn.fit(X, y, lr=1e38, epochs=5, optimizer="momentum", verbose=False)
    assert all(np.isfinite(v).all() for v in nn.optimizer.state["velocity"])
    assert nn.optimizer.iterations == 0
    for p, q in zip(nn.parameters, good):
        np.testing.assert_array_equal(p, q)
    assert nn.epochs_trained == 2


def test_uint8_images_are_accepted(blobs):
    X, y = blobs
    images = np.clip(X * 20 + 128, 0, 255).astype(np.uint8)
    nn = NeuralNetwork([4, 6, 3], seed=0)
    nn.fit(images / 255.0, y, epochs=5, verbose=False)
    assert nn.predict(images / 255.0).shape == (120,)


def test_backend_auto_works_without_numba():
    from fastscratch import available_backends, load_backend
    assert "numpy" in available_backends()
    assert load_backend("auto").NAME in available_backends()
    assert NeuralNetwork([3, 2], backend="numpy").kernels.NAME == "numpy"


def test_repr_and_aliases(blobs):
    X, y = blobs
    nn = NeuralNetwork([4, 6, 3], seed=0)
    nn.fit(X, y, epochs=2, verbose=False)
    assert "architecture=[4, 6, 3]" in repr(nn) and "epochs_trained=2" in repr(nn)
    assert nn.costs == nn.history.cost and nn.test_accuracies == nn.history.test_accuracy
    assert nn.train_accuracies == nn.history.train_accuracy


def test_a_missing_numba_backend_is_a_clear_import_error(monkeypatch):
    import sys

    from fastscratch import load_backend
    monkeypatch.setitem(sys.modules, "fastscratch.kernels.numba_kernels", None)  # as if absent
    with pytest.raises(ImportError, match=r"backend 'numba' is not part of this fastscratch installation"):
        NeuralNetwork([3, 2], backend="numba")
    assert load_backend("auto").NAME == "numpy"


def test_predict_from_many_threads_matches_sequential():
    """32 predict / predict_proba calls on one model from 8 threads give the sequential answers.
    Sized so that it can fail: BLAS releases the GIL on GEMMs of 512 x 256, and with a buffer
    shared between calls (one workspace per model instead of per call) 18-21 of the 32 results
    came out wrong on every run."""
    from concurrent.futures import ThreadPoolExecutor

    X = np.random.default_rng(0).random((8000, 64), dtype=np.float32)
    nn = NeuralNetwork([64, 256, 128, 10], seed=0)
    expected = {"predict_proba": nn.predict_proba(X, batch_size=512), "predict": nn.predict(X, batch_size=512)}
    methods = ["predict_proba", "predict"] * 16
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda method: getattr(nn, method)(X, batch_size=512), methods))
    for method, result in zip(methods, results):
        np.testing.assert_array_equal(result, expected[method], err_msg=method)


def test_prediction_memory_is_bounded_by_the_chunk_not_the_input():
    """predict on 100,000 float64 rows: the input is converted chunk by chunk, never
    whole (that alone would be a 25.6 MB float32 copy)."""
    import tracemalloc

    nn = NeuralNetwork([64, 128, 64, 10], seed=0)
    X = np.random.default_rng(0).random((100_000, 64))
    nn.predict(X[:10])  # warm-up
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        labels = nn.predict(X, batch_size=4096)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    chunk = 4096 * (64 + 128 + 64 + 10 + 2) * 4 + 4096 * 64 * 8  # float32 buffers + one float64 scan block
    assert labels.shape == (100_000,)
    assert peak < labels.nbytes + 2 * chunk, peak


def test_on_epoch_end_sees_each_recorded_epoch(blobs):
    X, y = blobs
    seen = []
    nn = NeuralNetwork([X.shape[1], 8, 3], seed=0)
    nn.fit(X, y, epochs=4, batch_size=16, verbose=False, on_epoch_end=lambda h: seen.append((len(h), h.cost[-1])))
    assert [n for n, _ in seen] == [1, 2, 3, 4] and [c for _, c in seen] == nn.history.cost


def test_ctrl_c_mid_epoch_undoes_the_epoch_and_resumes_exactly(blobs):
    """An interrupt inside an epoch leaves weights, optimizer state and generator as at
    that epoch's start, so fitting again gives the uninterrupted run's weights."""
    X, y = blobs
    straight = NeuralNetwork([X.shape[1], 8, 3], seed=3, dropout=0.2, backend="numpy")
    straight.fit(X, y, epochs=3, batch_size=8, optimizer="adam", lr=0.01, verbose=False)

    net = NeuralNetwork([X.shape[1], 8, 3], seed=3, dropout=0.2, backend="numpy")
    calls = {"n": 0}
    original = net.kernels.adam_update

    def interrupting_update(*args):
        calls["n"] += 1
        steps_per_epoch = -(-len(X) // 8)
        if calls["n"] == len(net.weights) * 2 * (steps_per_epoch + 2) + 1:  # a few steps into epoch 2
            raise KeyboardInterrupt
        return original(*args)

    net.kernels = types.SimpleNamespace(**{k: getattr(net.kernels, k) for k in dir(net.kernels)
                                           if not k.startswith("__")})
    net.kernels.adam_update = interrupting_update
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=3, batch_size=8, optimizer="adam", lr=0.01, verbose=False)
    assert len(net.history) == 1
    net.fit(X, y, epochs=2, batch_size=8, optimizer="adam", lr=0.01, verbose=False)
    for a, b in zip(net.weights + net.biases, straight.weights + straight.biases):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_while_scoring_the_test_set_also_undoes_the_epoch(blobs):
    X, y = blobs
    straight = NeuralNetwork([X.shape[1], 8, 3], seed=5, backend="numpy")
    straight.fit(X, y, X, y, epochs=3, batch_size=8, verbose=False)
    net = NeuralNetwork([X.shape[1], 8, 3], seed=5, backend="numpy")
    original, calls = net._evaluate, {"n": 0}

    def interrupting_evaluate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # 1: fit's divergence limit (max_loss), 2: epoch 1's test set, 3: epoch 2's
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    net._evaluate = interrupting_evaluate
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, X, y, epochs=3, batch_size=8, verbose=False)
    assert len(net.history) == 1
    del net._evaluate
    net.fit(X, y, X, y, epochs=2, batch_size=8, verbose=False)
    for a, b in zip(net.weights + net.biases, straight.weights + straight.biases):
        np.testing.assert_array_equal(a, b)
