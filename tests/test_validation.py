"""Bad input gets a TypeError/ValueError whose message names the problem."""

import numpy as np
import pytest

from fastscratch import NeuralNetwork


@pytest.fixture
def net():
    return NeuralNetwork([4, 5, 3], seed=0)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(10, 4)).astype(np.float32), rng.integers(0, 3, 10)


# ---- constructor ---------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(architecture=[4]), ValueError, "at least an input and an output"),
    (dict(architecture="784,10"), TypeError, "list of layer sizes"),
    (dict(architecture=[4, 0, 3]), ValueError, r"architecture\[1\] must be at least 1"),
    (dict(architecture=[4, 2.5, 3]), TypeError, r"architecture\[1\] must be an integer"),
    (dict(architecture=[4, 1]), ValueError, "at least 2 classes"),
    (dict(architecture=[4, 5, 3], activation="softplus"), ValueError, "unknown activation 'softplus'"),
    (dict(architecture=[4, 5, 6, 3], activation=["relu"]), ValueError, "2 hidden layers"),
    (dict(architecture=[4, 3], dtype="float16"), ValueError, "dtype must be one of"),
    (dict(architecture=[4, 3], backend="cuda"), ValueError, "unknown backend 'cuda'"),
    (dict(architecture=[4, 3], init="zeros"), ValueError, "unknown init 'zeros'"),
    (dict(architecture=[4, 5, 3], dropout=1.0), ValueError, r"dropout rates must be numbers in \[0, 1\)"),
    (dict(architecture=[4, 3], seed=-1), ValueError, "seed must be a non-negative integer"),
])
def test_bad_constructor_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        NeuralNetwork(**kwargs)


# ---- fit -----------------------------------------------------------------------------

def _nan_at(X, row, col):
    X = X.copy()
    X[row, col] = np.nan
    return X


BAD_TRAINING_DATA = [
    (lambda X, y: (X[:, :3], y), ValueError, r"X_train has 3 features .* expects 4"),
    (lambda X, y: (X.ravel(), y), ValueError, r"X_train must be 2-D"),
    (lambda X, y: (X[:0], y[:0]), ValueError, "X_train is empty"),
    (lambda X, y: (_nan_at(X, 7, 2), y), ValueError, r"X_train contains non-finite values \(nan at row 7, column 2\)"),
    (lambda X, y: (np.where(X > 1, np.inf, X), y), ValueError, "X_train contains non-finite values"),
    (lambda X, y: (X.astype(str), y), TypeError, "X_train must hold real numbers"),
    (lambda X, y: (X, y[:9]), ValueError, "y_train has 9 labels but X has 10 samples"),
    (lambda X, y: (X, np.where(y == 0, 3, y)), ValueError, r"label 3 out of range: labels must be in \[0, 2\]"),
    (lambda X, y: (X, y - 1), ValueError, "label -1 out of range"),
    (lambda X, y: (X, y + 0.5), ValueError, "must hold integer class labels"),
    (lambda X, y: (X, y.astype(str)), TypeError, "y_train must hold integer class labels"),
    (lambda X, y: (X, np.eye(4)[y]), ValueError, "one-hot with 4 columns"),
    (lambda X, y: (X, np.eye(3)[y] * 2), ValueError, "exactly one 1 per row"),
    (lambda X, y: (X, y[:, None, None]), ValueError, "y_train must be 1-D labels"),
]


@pytest.mark.parametrize("change, error, pattern", BAD_TRAINING_DATA)
def test_bad_training_data(net, data, change, error, pattern):
    X, y = change(*data)
    with pytest.raises(error, match=pattern):
        net.fit(X, y, epochs=1, verbose=False)


BAD_TRAINING_OPTIONS = [
    (dict(lr=0), ValueError, "lr must be a positive finite number"),
    (dict(lr=-0.1), ValueError, "lr must be a positive"),
    (dict(lr=float("nan")), ValueError, "lr must be a positive finite"),
    (dict(lr="0.1"), TypeError, "lr must be a number"),
    (dict(epochs=0), ValueError, "epochs must be a positive integer"),
    (dict(epochs=2.0), TypeError, "epochs must be a positive integer"),
    (dict(batch_size=0), ValueError, "batch_size must be a positive integer"),
    (dict(optimizer="rmsprop"), ValueError, "unknown optimizer 'rmsprop'"),
    (dict(optimizer=3), TypeError, "optimizer must be a name"),
    (dict(lr_schedule="linear"), ValueError, "unknown lr_schedule 'linear'"),
    (dict(weight_decay=-1), ValueError, "weight_decay must be a non-negative"),
    (dict(early_stopping=0), ValueError, "early_stopping must be a positive integer"),
    (dict(early_stopping=3), ValueError, "early_stopping on 'test_loss' needs X_test"),
    (dict(monitor="f1"), ValueError, "unknown monitor 'f1'"),
    (dict(log_every=0), ValueError, "log_every must be a positive integer"),
]


@pytest.mark.parametrize("kwargs, error, pattern", BAD_TRAINING_OPTIONS)
def test_bad_training_options(net, data, kwargs, error, pattern):
    X, y = data
    with pytest.raises(error, match=pattern):
        net.fit(X, y, **{"epochs": 1, "verbose": False, **kwargs})


def test_test_data_must_come_in_pairs_and_be_valid(net, data):
    X, y = data
    with pytest.raises(ValueError, match="X_test and y_test must be given together"):
        net.fit(X, y, X, None, epochs=1, verbose=False)
    with pytest.raises(ValueError, match="X_test has 5 features"):
        net.fit(X, y, np.ones((3, 5)), [0, 1, 2], epochs=1, verbose=False)
    with pytest.raises(ValueError, match="y_test has label 7 out of range"):
        net.fit(X, y, X[:2], [0, 7], epochs=1, verbose=False)


def test_failed_validation_changes_nothing(net, data):
    X, y = data
    before = [p.copy() for p in net.parameters]
    with pytest.raises(ValueError):
        net.fit(X, y, X, np.full(10, 9), epochs=3, verbose=False)
    for p, q in zip(net.parameters, before):
        np.testing.assert_array_equal(p, q)
    assert len(net.history) == 0


# ---- prediction ----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_bad_prediction_input(net, method):
    predict = getattr(net, method)
    with pytest.raises(ValueError, match=r"X has 5 features per sample .* expects 4"):
        predict(np.ones((2, 5)))
    with pytest.raises(ValueError, match="X is empty"):
        predict(np.ones((0, 4)))
    with pytest.raises(ValueError, match=r"X contains non-finite values \(inf at row 9000, column 1\)"):
        X = np.ones((9001, 4))
        X[9000, 1] = np.inf
        predict(X)
    with pytest.raises(TypeError, match="X must hold real numbers"):
        predict([["a", "b", "c", "d"]])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        predict(np.ones((2, 4)), batch_size=0)


def test_bad_evaluation_labels(net):
    with pytest.raises(ValueError, match="y has 1 labels but X has 2 samples"):
        net.evaluate(np.ones((2, 4)), [0])
    with pytest.raises(ValueError, match="label 5 out of range"):
        net.accuracy(np.ones((2, 4)), [0, 5])


def test_bad_optimizer_and_schedule_hyperparameters():
    from fastscratch import Adam, CosineDecay, Momentum, StepDecay
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\)"):
        Momentum(momentum=1.0)
    with pytest.raises(ValueError, match="beta2 must be"):
        Adam(beta2=1.5)
    with pytest.raises(ValueError, match="eps must be a positive"):
        Adam(eps=0)
    with pytest.raises(ValueError, match="step_size must be a positive integer"):
        StepDecay(step_size=0)
    with pytest.raises(ValueError, match="min_lr must be a non-negative"):
        CosineDecay(10, min_lr=-1)


def test_plotting_an_untrained_model_says_so(net):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="has not been trained yet"):
        net.plot_cost()


def test_values_too_large_for_float32_are_named(net, data):
    X, y = data
    X = X.astype(np.float64)
    X[3, 1] = 1e39
    with pytest.raises(ValueError, match=r"X_train has a value too large for float32 \(1e\+39 at row 3, column 1\)"):
        net.fit(X, y, epochs=1, verbose=False)
    with pytest.raises(ValueError, match=r"X has a value too large for float32 \(1e\+39 at row 3, column 1\)"):
        net.predict(X)


@pytest.mark.parametrize("hook", ["log", "on_epoch_end"])
def test_hooks_must_be_callable_and_are_checked_before_training(net, data, hook):
    X, y = data
    with pytest.raises(TypeError, match=f"{hook} must be callable, got int"):
        net.fit(X, y, epochs=1, **{hook: 5})
    assert len(net.history) == 0


def test_odd_but_valid_argument_types(data):
    X, y = data
    nn = NeuralNetwork([4, 5, 3], seed=0, dropout=np.float32(0.25), dtype=np.float64, activation=("tanh",))
    assert nn.dropout == [0.25] and nn.dtype == np.float64
    lines = []
    nn.fit(X, y, epochs=2, lr=np.float32(0.1), batch_size=np.int64(4), log=lines.append)
    assert lines[0].startswith("Epoch    1")


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(monitor=["test_loss"]), ValueError, "unknown monitor"),
    (dict(optimizer={"name": "adam", "beta9": 0.5}), ValueError, "invalid optimizer settings"),
])
def test_more_bad_options(net, data, kwargs, error, pattern):
    X, y = data
    with pytest.raises(error, match=pattern):
        net.fit(X, y, X, y, epochs=1, verbose=False, **kwargs)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(activation=5), "activation must be a name or a list"),
    (dict(dropout="0.1"), "dropout must be a number or a list with one per hidden layer"),
])
def test_bad_constructor_types(kwargs, pattern):
    with pytest.raises(TypeError, match=pattern):
        NeuralNetwork([4, 5, 3], **kwargs)


# ---- the same array again: scanned once, still guarded --------------------------------------

def _state(net):
    return ([p.copy() for p in net.parameters], len(net.history), net.optimizer.iterations,
            net.rng.bit_generator.state)


@pytest.mark.parametrize("backend", ["numpy", "auto"])
@pytest.mark.parametrize("where", ["X_train", "X_test"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("batch_size", [4, None])
def test_a_value_made_non_finite_in_place_after_a_fit_is_still_refused(backend, where, value, batch_size):
    """``fit`` scans X_train once and remembers it (fitting the same array once per epoch
    does not rescan it); a NaN or inf written into it afterwards is still refused with the
    input check's ValueError naming its position, and the call changes nothing.  (X_test is
    scanned on every call.)"""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 3, 40)
    X_test, y_test = rng.normal(size=(12, 4)).astype(np.float32), rng.integers(0, 3, 12)
    net = NeuralNetwork([4, 6, 3], seed=0, backend=backend)
    net.fit(X, y, X_test, y_test, epochs=2, batch_size=batch_size, optimizer="momentum", verbose=False)
    before = _state(net)
    target = X if where == "X_train" else X_test
    target[7, 2] = value
    with pytest.raises(ValueError, match=rf"{where} contains non-finite values \({value}.* row 7, column 2"):
        net.fit(X, y, X_test, y_test, epochs=3, batch_size=batch_size, optimizer="momentum", verbose=False)
    after = _state(net)
    for p, q in zip(after[0], before[0]):
        np.testing.assert_array_equal(p, q)
    assert after[1:] == before[1:]
    target[7, 2] = 0.5  # repaired: trains again
    net.fit(X, y, X_test, y_test, epochs=1, batch_size=batch_size, optimizer="momentum", verbose=False)
    assert len(net.history) == 3


# ---- a call that fails validation changes nothing: every bad-input case ---------------

def _everything(net):
    """All the state a fit can change: parameters, optimizer (config, state, steps), history,
    generator, data info."""
    opt = net.optimizer
    return {"params": [p.copy() for p in net.parameters],
            "optimizer": None if opt is None else (opt.config(), opt.iterations,
                                                   {k: [a.copy() for a in v] for k, v in opt.state.items()}),
            "history": net.history.to_dict(), "rng": net.rng.bit_generator.state, "data": net.data_info,
            "weights_identity": [id(W) for W in net.weights]}


def _assert_same(after, before):
    for p, q in zip(after["params"], before["params"], strict=True):
        np.testing.assert_array_equal(p, q)
    if before["optimizer"] is None:
        assert after["optimizer"] is None
    else:
        assert after["optimizer"][:2] == before["optimizer"][:2]
        for kind, arrays in before["optimizer"][2].items():
            for a, b in zip(after["optimizer"][2][kind], arrays, strict=True):
                np.testing.assert_array_equal(a, b)
    assert after["history"] == before["history"]
    assert after["rng"] == before["rng"]
    assert after["data"] == before["data"] and after["weights_identity"] == before["weights_identity"]


class _NotACallback:
    pass


# (fit keyword arguments, error, message) beyond the data and option lists above
BAD_OTHER_CALLS = [
    (dict(monitor=["test_loss"]), ValueError, "unknown monitor"),
    (dict(optimizer={"name": "adam", "beta9": 0.5}), ValueError, "invalid optimizer settings"),
    (dict(log=5), TypeError, "log must be callable"),
    (dict(on_epoch_end=5), TypeError, "on_epoch_end must be callable"),
    (dict(callbacks=5), TypeError, "callbacks must be a list"),
    (dict(callbacks=[_NotACallback()]), TypeError, "not a callback"),
    (dict(callbacks=[_NotACallback]), TypeError, "not a callback"),
    (dict(max_loss=-1.0), ValueError, "max_loss must be a positive"),
    (dict(on_divergence="ignore"), ValueError, "on_divergence must be"),
    (dict(min_delta=-1.0), ValueError, "min_delta must be a non-negative"),
    (dict(checkpoint_every=0), ValueError, "checkpoint_every must be a positive integer"),
    (dict(resume=True), ValueError, "resume=True needs checkpoint"),
    (dict(resume="yes"), TypeError, "resume must be True or False"),
    (dict(checkpoint=5), TypeError, "checkpoint must be a file path"),
    (dict(threads=0), ValueError, "threads must be a positive integer, got 0"),
    (dict(threads="all"), ValueError, "threads must be None, a positive integer or 'measure', got 'all'"),
    (dict(threads=2.0), TypeError, "threads must be a positive integer, got float"),
    (dict(threads=True), TypeError, "threads must be a positive integer, got bool"),
    (dict(threads=np.array([2])), TypeError, "threads must be a positive integer, got ndarray"),
]


def _trained(data, backend="numpy"):
    X, y = data
    net = NeuralNetwork([4, 5, 3], seed=0, backend=backend)
    net.fit(X, y, X, y, epochs=2, batch_size=4, optimizer="adam", lr=0.01, verbose=False)
    return net


@pytest.mark.parametrize("case", range(len(BAD_TRAINING_DATA)))
def test_bad_data_changes_nothing(data, case):
    change, error, _ = BAD_TRAINING_DATA[case]
    net = _trained(data)
    before = _everything(net)
    X, y = change(*data)
    with pytest.raises(error):
        net.fit(X, y, epochs=1, optimizer="adam", lr=0.01, verbose=False)
    _assert_same(_everything(net), before)


@pytest.mark.parametrize("case", range(len(BAD_TRAINING_OPTIONS) + len(BAD_OTHER_CALLS)))
def test_bad_options_change_nothing(data, case):
    kwargs, error, pattern = (BAD_TRAINING_OPTIONS + BAD_OTHER_CALLS)[case]
    X, y = data
    net = _trained(data)
    before = _everything(net)
    with pytest.raises(error, match=pattern):
        net.fit(X, y, **{"epochs": 1, "optimizer": "adam", "lr": 0.01, "verbose": False, **kwargs})
    _assert_same(_everything(net), before)


@pytest.mark.parametrize("test_pair, pattern", [
    (lambda X, y: (X, None), "X_test and y_test must be given together"),
    (lambda X, y: (np.ones((3, 5)), [0, 1, 2]), "X_test has 5 features"),
    (lambda X, y: (X[:2], [0, 7]), "y_test has label 7 out of range"),
    (lambda X, y: (X, np.full(10, 9)), "label 9 out of range"),
])
def test_bad_test_data_changes_nothing(data, test_pair, pattern):
    X, y = data
    net = _trained(data)
    before = _everything(net)
    with pytest.raises(ValueError, match=pattern):
        net.fit(X, y, *test_pair(X, y), epochs=1, optimizer="adam", lr=0.01, verbose=False)
    _assert_same(_everything(net), before)


def _checkpoint_cases(tmp_path, data):
    """(description, call) pairs: fits that a checkpoint makes fail validation."""
    X, y = data
    path = tmp_path / "run.npz"
    NeuralNetwork([4, 5, 3], seed=0).fit(X, y, X, y, epochs=3, batch_size=4, verbose=False, checkpoint=path)
    (tmp_path / "folder").mkdir()
    base = dict(epochs=3, batch_size=4, verbose=False)
    return path, [
        ("existing file, no resume", FileExistsError, dict(base, checkpoint=path)),
        ("a directory", ValueError, dict(base, checkpoint=tmp_path / "folder")),
        ("other settings", ValueError, dict(base, checkpoint=path, resume=True, lr=0.5)),
        ("other batch size", ValueError, dict(base, checkpoint=path, resume=True, batch_size=5)),
        ("fewer epochs than it holds", ValueError, dict(base, checkpoint=path, resume=True, epochs=2)),
        ("other data", ValueError, dict(base, checkpoint=path, resume=True, X_train=X[::-1].copy())),
    ]


@pytest.mark.parametrize("case", range(6))
def test_bad_checkpoint_calls_change_nothing(tmp_path, data, case):
    X, y = data
    path, cases = _checkpoint_cases(tmp_path, data)
    _, error, kwargs = cases[case]
    kwargs = dict(kwargs)
    X_train = kwargs.pop("X_train", X)
    net = NeuralNetwork([4, 5, 3], seed=0)
    net.fit(X, y, epochs=1, batch_size=4, verbose=False)  # some state of its own to keep
    before, file_bytes = _everything(net), path.read_bytes()
    with pytest.raises(error):
        net.fit(X_train, y, X, y, **kwargs)
    _assert_same(_everything(net), before)
    assert path.read_bytes() == file_bytes


def test_resuming_with_another_network_changes_nothing(tmp_path, data):
    X, y = data
    path, _ = _checkpoint_cases(tmp_path, data)
    net = NeuralNetwork([4, 5, 3], seed=1)  # another seed: another network
    before, file_bytes = _everything(net), path.read_bytes()
    with pytest.raises(ValueError, match="made by a different network"):
        net.fit(X, y, X, y, epochs=3, batch_size=4, verbose=False, checkpoint=path, resume=True)
    _assert_same(_everything(net), before)
    assert path.read_bytes() == file_bytes


def test_bad_update_and_backward_change_nothing(data):
    X, y = data
    net = _trained(data)
    before = _everything(net)
    activations = net.forward(X)
    grads = net.backward(activations, y)
    for call, error in [(lambda: net.backward(activations[:-1], y), ValueError),
                        (lambda: net.backward(activations, y[:3]), ValueError),
                        (lambda: net.update(grads, lr=-1), ValueError),
                        (lambda: net.update((grads[0], grads[1][:1]), lr=0.1), ValueError),
                        (lambda: net.update(grads, lr=0.1, optimizer="rmsprop"), ValueError),
                        (lambda: net.update(grads, lr=0.1, weight_decay=-1), ValueError)]:
        with pytest.raises(error):
            call()
        _assert_same(_everything(net), before)
