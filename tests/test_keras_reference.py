"""fastscratch agrees with tf.keras step by step, from the same weights on the same batches.

The per-step losses come from the training step's own forward pass on both
sides: fastscratch through ``reference.steps.train_steps`` (fit's code, one
batch at a time; checked bit-identical to ``fit`` below), Keras through a
metric that records each batch's loss (``KerasRun.step_losses``).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fastscratch import SGD, Adam, Momentum, NeuralNetwork, available_backends
from fastscratch.activations import ACTIVATIONS
from fastscratch.datasets import load_dataset, to_features
from fastscratch.integrations.steps import copy_rng, epoch_orders, train_steps

BATCH = 128
ARCH_HIDDEN = [128, 64]


def agreement_data() -> tuple[np.ndarray, np.ndarray]:
    """The training set of the agreement tests: (X (4000, 784) float32 in [0, 1], y (4000,) int64).

    The embedded MNIST sample's training part (issue 5).  Any (X, y) works here; the
    losses should stay well above zero over the epoch, since relative differences of
    near-zero losses measure float32 round-off rather than agreement.
    """
    data = load_dataset("mnist-sample")
    return to_features(data.X_train), data.y_train


@pytest.fixture(scope="module")
def data():
    return agreement_data()


def _net(X, y, backend="numpy", dtype="float32", seed=0, activation="relu"):
    return NeuralNetwork([X.shape[1], *ARCH_HIDDEN, int(y.max()) + 1], dtype=dtype, seed=seed, backend=backend,
                         activation=activation)


def agreement(fs_losses, keras_losses, fs_params, keras_params) -> tuple[float, float]:
    """(worst relative per-step loss difference, max abs parameter difference)."""
    assert fs_losses.shape == keras_losses.shape and np.isfinite(keras_losses).all()
    worst_rel = float(np.max(np.abs(fs_losses - keras_losses) / np.abs(keras_losses)))
    max_abs = max(float(np.max(np.abs(a - b))) for a, b in zip(fs_params, keras_params, strict=True))
    return worst_rel, max_abs


def assert_agree(fs_losses, keras_losses, fs_params, keras_params, tol: float) -> tuple[float, float]:
    worst_rel, max_abs = agreement(fs_losses, keras_losses, fs_params, keras_params)
    assert worst_rel < tol, f"per-step losses differ by up to {worst_rel:.3g} (relative), tolerance {tol}"
    assert max_abs < tol, f"parameters differ by up to {max_abs:.3g} after the epoch, tolerance {tol}"
    return worst_rel, max_abs


# ------------------------------------------------ fastscratch side (no TensorFlow needed)
@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("optimizer,batch_size", [("sgd", BATCH), ("momentum", BATCH), ("adam", 100),
                                                  ("sgd", None)])
def test_train_steps_is_fit_bit_for_bit(data, backend, optimizer, batch_size):
    """The step-by-step driver trains exactly as fit does, so its losses are fit's."""
    X, y = data[0][:1000], data[1][:1000]
    stepped, fitted = _net(X, y, backend), _net(X, y, backend)
    losses = train_steps(stepped, X, y, lr=0.05, epochs=2, batch_size=batch_size, optimizer=optimizer,
                         weight_decay=1e-3)
    history = fitted.fit(X, y, lr=0.05, epochs=2, batch_size=batch_size, optimizer=optimizer,
                         weight_decay=1e-3, verbose=False)
    for a, b in zip(stepped.parameters, fitted.parameters, strict=True):
        np.testing.assert_array_equal(a, b)
    # fit's epoch cost is the sample-weighted mean of the step losses, plus the L2 penalty
    sizes = np.diff(np.r_[np.arange(0, 1000, batch_size or 1000), 1000])
    penalty = 0.5e-3 * sum(float(np.vdot(W, W)) for W in fitted.weights)
    assert losses[-1] @ sizes / 1000 + penalty == pytest.approx(history.cost[-1], rel=1e-12)
    assert stepped.rng.bit_generator.state == fitted.rng.bit_generator.state


def test_epoch_orders_match_fit_and_leave_the_model_alone():
    nn = NeuralNetwork([4, 3], seed=5)
    before = nn.rng.bit_generator.state
    orders = list(epoch_orders(copy_rng(nn.rng), 10, 3, 4))
    assert nn.rng.bit_generator.state == before
    expected = np.random.default_rng(5)
    expected.standard_normal((4, 3))  # He initialisation drew these
    for order in orders:
        np.testing.assert_array_equal(order, expected.permutation(10))
    assert list(epoch_orders(copy_rng(nn.rng), 10, 2, None)) == [None, None]  # full batch: no draw
    assert list(epoch_orders(copy_rng(nn.rng), 10, 2, 4, shuffle=False)) == [None, None]


def test_missing_tensorflow_names_the_extra(monkeypatch):
    import fastscratch.integrations.keras as ref

    monkeypatch.setattr(ref, "_tf", None)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    with pytest.raises(ImportError, match=r"fastscratch\[keras\]"):
        ref.import_tensorflow()


# ------------------------------------------------------------- against tf.keras
from fastscratch.optimizers import get_optimizer  # noqa: E402
from fastscratch.integrations.keras import build_model, train_keras  # noqa: E402  (TensorFlow loads on use)


@pytest.fixture(scope="module")
def tf():
    """TensorFlow, or a visible skip where the keras extra is not installed (CI installs it via dev)."""
    return pytest.importorskip("tensorflow", reason="the keras extra (tensorflow-cpu) is not installed")

# optimizer, lr, tolerance (issue 5: SGD 1e-5; momentum and Adam 1e-4)
CASES = {
    "sgd": (SGD(), 0.1, 1e-5),
    "momentum": (Momentum(0.9), 0.05, 1e-4),
    "nesterov": (Momentum(0.9, nesterov=True), 0.05, 1e-4),
    "adam": (Adam(), 1e-3, 1e-4),
}
_keras_runs: dict = {}


def keras_run(data, case: str):
    """One Keras epoch per case, shared by every backend's test (Keras does not depend on it)."""
    if case not in _keras_runs:
        X, y = data
        optimizer, lr, _ = CASES[case]
        _keras_runs[case] = train_keras(_net(X, y), X, y, lr=lr, epochs=1, batch_size=BATCH,
                                        optimizer=optimizer, record_steps=True, device="cpu")
    return _keras_runs[case]


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("case", list(CASES))
def test_agrees_with_keras_step_by_step(tf, data, backend, case):
    X, y = data
    optimizer, lr, tol = CASES[case]
    run = keras_run(data, case)
    nn = _net(X, y, backend)
    # a fresh optimizer object: a bound one would carry its state into this network
    losses = train_steps(nn, X, y, lr=lr, epochs=1, batch_size=BATCH, optimizer=get_optimizer(optimizer.config()))
    assert losses.shape == (1, 32)  # 31 full batches and one of 32 rows
    worst_rel, max_abs = assert_agree(losses, run.step_losses, nn.parameters, run.weights(), tol)
    print(f"\n{case:9s} {backend:6s} worst relative loss difference {worst_rel:.2e}, max weight difference "
          f"{max_abs:.2e}")
    # the recorded step losses are the loss Keras trains on: their sample-weighted mean
    # is Keras' own epoch loss
    sizes = np.diff(np.r_[np.arange(0, len(y), BATCH), len(y)])
    assert run.step_losses[0] @ sizes / len(y) == pytest.approx(run.history.cost[0], rel=1e-6)
    assert run.device.startswith("cpu")


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_activation_agrees_with_keras(tf, data, backend, activation):
    """Each activation of the registry against the Keras one it names, an SGD epoch on 2,000 rows."""
    X, y = data[0][:2000], data[1][:2000]
    if activation not in _activation_runs:
        _activation_runs[activation] = train_keras(_net(X, y, activation=activation), X, y, lr=0.1, epochs=1,
                                                   batch_size=BATCH, optimizer="sgd", record_steps=True,
                                                   device="cpu")
    run = _activation_runs[activation]
    nn = _net(X, y, backend, activation=activation)
    losses = train_steps(nn, X, y, lr=0.1, epochs=1, batch_size=BATCH, optimizer="sgd")
    assert run.model.layers[0].get_config()["activation"] == ACTIVATIONS[activation].keras
    assert_agree(losses, run.step_losses, nn.parameters, run.weights(), 1e-5)


_activation_runs: dict = {}


@pytest.mark.parametrize("wrong", ["learning rate", "bias update dropped"])
def test_agreement_check_catches_a_wrong_setting(tf, data, wrong):
    """The check above can fail: a slightly different lr, or biases never updated."""
    X, y = data
    run = keras_run(data, "sgd")
    nn = _net(X, y)
    if wrong == "learning rate":
        losses = train_steps(nn, X, y, lr=0.101, epochs=1, batch_size=BATCH, optimizer="sgd")
    else:
        class NoBiasSGD(SGD):
            def _update(self, kernels, i, p, g, lr, weight_decay):
                if i % 2 == 0:  # parameters are [W0, b0, W1, b1, ...]: skip the biases
                    super()._update(kernels, i, p, g, lr, weight_decay)

        losses = train_steps(nn, X, y, lr=0.1, epochs=1, batch_size=BATCH, optimizer=NoBiasSGD())
    with pytest.raises(AssertionError, match="differ"):
        assert_agree(losses, run.step_losses, nn.parameters, run.weights(), 1e-5)


def test_weight_decay_and_several_epochs_agree(tf, data):
    """L2 as Keras' L2(wd/2) regularizer; a second epoch draws the next permutation."""
    X, y = data[0][:2000], data[1][:2000]
    nn = _net(X, y, seed=3)
    run = train_keras(nn, X, y, lr=0.1, epochs=2, batch_size=BATCH, optimizer="sgd", weight_decay=1e-3,
                      record_steps=True, device="cpu")
    losses = train_steps(nn, X, y, lr=0.1, epochs=2, batch_size=BATCH, optimizer="sgd", weight_decay=1e-3)
    assert_agree(losses, run.step_losses, nn.parameters, run.weights(), 1e-5)


# Hyperparameters exactly representable in float32: Keras keeps the learning rate in a
# float32 variable and casts Python floats such as momentum=0.9 through float32 even for
# float64 variables (tf.cast of a Python float), so 0.1 or 0.9 would differ from fastscratch's
# float64 values by 1e-8 relative.  With these, any difference left is summation order.
F64_CASES = {
    "sgd": (SGD(), 2**-3),
    "momentum": (Momentum(0.5), 2**-4),
    "nesterov": (Momentum(0.75, nesterov=True), 2**-4),
    "adam": (Adam(beta1=0.5, beta2=0.75, eps=2**-20), 2**-10),
}


@pytest.mark.parametrize("case", list(F64_CASES))
def test_float64_update_rules_are_keras_own(tf, data, case):
    """In float64 the two agree to round-off (measured 2e-16; checked at 1e-13): the update
    formulas, Adam's bias correction and epsilon included, are the same, not merely close;
    what differs in float32 is round-off."""
    X, y = data[0][:1000].astype(np.float64), data[1][:1000]
    optimizer, lr = F64_CASES[case]
    nn = _net(X, y, dtype="float64")
    run = train_keras(nn, X, y, lr=lr, epochs=1, batch_size=BATCH, optimizer=optimizer, record_steps=True,
                      device="cpu")
    losses = train_steps(nn, X, y, lr=lr, epochs=1, batch_size=BATCH, optimizer=get_optimizer(optimizer.config()))
    assert run.model.layers[0].kernel.dtype == "float64"
    worst_rel, max_abs = assert_agree(losses, run.step_losses, nn.parameters, run.weights(), 1e-13)
    print(f"\nfloat64 {case:9s} worst relative loss difference {worst_rel:.1e}, max weight difference {max_abs:.1e}")


def test_keras_run_reports_history_and_leaves_the_network_alone(tf, data):
    X, y = data[0][:600], data[1][:600]
    nn = _net(X, y, seed=7)
    weights = [p.copy() for p in nn.parameters]
    state = nn.rng.bit_generator.state
    run = train_keras(nn, X[:500], y[:500], X[500:], y[500:], lr=0.1, epochs=2, batch_size=64, device="cpu")
    assert nn.rng.bit_generator.state == state
    for a, b in zip(weights, nn.parameters):
        np.testing.assert_array_equal(a, b)
    h = run.history
    assert h.epoch == [1, 2] and len(h.test_accuracy) == 2 and 0 <= h.test_accuracy[-1] <= 1
    assert all(s > 0 for s in h.seconds) and run.step_losses is None
    assert run.versions["tensorflow"] == tf.__version__


def test_bad_input_is_refused(tf, data):
    X, y = data[0][:100], data[1][:100]
    with pytest.raises(ValueError, match="dropout"):
        build_model(NeuralNetwork([784, 16, 10], dropout=0.5))
    with pytest.raises(TypeError, match="NeuralNetwork"):
        build_model("not a network")
    nn = _net(X, y)
    with pytest.raises(ValueError, match="device"):
        train_keras(nn, X, y, device="tpu")
    with pytest.raises(ValueError, match="jit_compile"):
        train_keras(nn, X, y, jit_compile="yes")
    with pytest.raises(ValueError, match="labels"):
        train_keras(nn, X, y[:50])
    with pytest.raises(ValueError, match="lr"):
        train_keras(nn, X, y, lr=-1)
    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(ValueError, match="no GPU"):
            train_keras(nn, X, y, device="gpu")


def test_tensorflow_start_up_is_quiet(tf):
    """TensorFlow's C++ start-up lines (oneDNN notice, absl preamble) do not reach the terminal."""
    code = ("from fastscratch.integrations.keras import import_tensorflow, startup_messages\n"
            "import_tensorflow()\nprint(len(startup_messages()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert done.returncode == 0, done.stderr
    assert "oneDNN" not in done.stderr and "absl" not in done.stderr, done.stderr
    assert done.stdout.strip().isdigit()


def test_keras_tutorial_example_runs(tf, tmp_path):
    """examples/keras_tutorial.py runs (a few epochs), keeps TensorFlow quiet, and its check passes."""
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "keras_tutorial.py"
    done = subprocess.run([sys.executable, str(script), "--epochs", "3", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "agree within 1e-5 at every step" in done.stdout
    assert "oneDNN" not in done.stderr, done.stderr
    assert (tmp_path / "keras_cost.png").stat().st_size > 1000


def test_only_warnings_and_errors_from_tensorflow_start_up_are_summarised():
    from fastscratch.integrations.keras import _worth_telling

    lines = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "I0000 00:00:1795610017.007894   19812 port.cc:153] oneDNN custom operations are on.",
             "To enable the following instructions: AVX2 AVX512F, rebuild TensorFlow",
             "W0000 00:00:1.0  1 gpu.cc:1] Cannot dlopen some GPU libraries.",
             "E0000 00:00:1.0  1 cuda.cc:1] failed call to cuInit"]
    assert _worth_telling(lines) == lines[3:]
