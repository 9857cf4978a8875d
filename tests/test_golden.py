"""Golden runs: short trainings whose final weights, optimizer state, generator state and history
were recorded before a structural change, so the change can be shown to keep every bit.

Recorded with ``python tests/test_golden.py`` (writes ``tests/golden/runs.npz`` and
``runs.json``); re-record only for a change that is meant to change numbers, and say so in its
commit.  The runs use one BLAS thread (so one epoch part) and float32 except where a case says
otherwise.  Bits depend on the BLAS build and CPU kernels: on the platform the golden file was
recorded on (same NumPy, Numba, BLAS library, version and kernel architecture) the check is
exact; elsewhere it can only be close, and the test says which it did.
"""
from __future__ import annotations

import json
import platform
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastscratch as fs

GOLDEN = Path(__file__).parent / "golden"
HISTORY_FIELDS = ("epoch", "cost", "train_accuracy", "test_cost", "test_accuracy", "lr")

#: case name -> (NeuralNetwork keyword arguments, fit keyword arguments)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "sgd-full": ({}, dict(optimizer="sgd", lr=0.5)),
    "sgd-b64": ({}, dict(optimizer="sgd", batch_size=64)),
    "momentum-b64": ({}, dict(optimizer={"name": "momentum", "momentum": 0.9}, batch_size=64, lr=0.05)),
    "nesterov-b100": ({}, dict(optimizer={"name": "momentum", "momentum": 0.8, "nesterov": True},
                               batch_size=100, lr=0.05)),
    "adam-b64": ({}, dict(optimizer="adam", batch_size=64, lr=0.003)),
    "adam-weight-decay": ({}, dict(optimizer="adam", batch_size=128, lr=0.003, weight_decay=1e-3)),
    "dropout-b64": (dict(dropout=0.2), dict(optimizer="sgd", batch_size=64)),
    "tanh-sigmoid": (dict(activation=["tanh", "sigmoid"]), dict(optimizer="momentum", batch_size=50, lr=0.05)),
    "schedule-cosine": ({}, dict(optimizer="sgd", batch_size=64, lr_schedule="cosine")),
    "schedule-step": ({}, dict(optimizer="sgd", batch_size=64, lr_schedule={"name": "step", "step_size": 2,
                                                                              "factor": 0.5})),
    "early-stopping": ({}, dict(optimizer="adam", batch_size=32, lr=0.05, epochs=8, early_stopping=1,
                                monitor="test_loss")),
    "float64-b64": (dict(dtype="float64"), dict(optimizer="adam", batch_size=64, lr=0.003)),
    "no-shuffle": ({}, dict(optimizer="sgd", batch_size=64, shuffle=False)),
}
ARCHITECTURE = [64, 32, 16, 10]
EPOCHS = 5
BACKENDS = ("numpy", "numba")


def _data() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        (X / 16.0).astype(np.float32), y, test_size=0.2, random_state=0, stratify=y)
    return X_train, y_train, X_test, y_test


def _arrays(prefix: str, net: fs.NeuralNetwork) -> dict[str, np.ndarray]:
    out = {}
    for i, (W, b) in enumerate(zip(net.weights, net.biases)):
        out[f"{prefix}/W{i}"], out[f"{prefix}/b{i}"] = np.array(W), np.array(b)
    for kind, values in (net.optimizer.state.items() if net.optimizer is not None else ()):
        for i, value in enumerate(values):
            out[f"{prefix}/opt.{kind}.{i}"] = np.array(value)
    for field in HISTORY_FIELDS:
        out[f"{prefix}/history.{field}"] = np.asarray(getattr(net.history, field), dtype=np.float64)
    return out


def _facts(net: fs.NeuralNetwork) -> dict[str, Any]:
    rng = net.rng.bit_generator.state
    return {"iterations": None if net.optimizer is None else net.optimizer.iterations,
            "epochs_trained": net.epochs_trained,
            "rng": {"state": str(rng["state"]["state"]), "inc": str(rng["state"]["inc"])}}


def run_case(name: str, backend: str, tmp: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train case ``name`` on ``backend`` (one BLAS thread); the arrays and facts to compare."""
    from threadpoolctl import threadpool_limits

    net_kwargs, fit_kwargs = CASES[name]
    fit_kwargs = {"epochs": EPOCHS, **fit_kwargs}
    X_train, y_train, X_test, y_test = _data()
    with threadpool_limits(limits=1):
        net = fs.NeuralNetwork(ARCHITECTURE, seed=7, backend=backend, **net_kwargs)
        net.fit(X_train, y_train, X_test, y_test, verbose=False, **fit_kwargs)
    return _arrays(f"{backend}/{name}", net), _facts(net)


def run_resumed(backend: str, tmp: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Three epochs with a checkpoint, then a new network resumes from the file to five."""
    from threadpoolctl import threadpool_limits

    X_train, y_train, X_test, y_test = _data()
    path = tmp / f"resume-{backend}.npz"
    kwargs = dict(optimizer="adam", batch_size=64, lr=0.003, checkpoint=path, verbose=False)
    with threadpool_limits(limits=1):
        fs.NeuralNetwork(ARCHITECTURE, seed=7, backend=backend).fit(X_train, y_train, X_test, y_test,
                                                                   epochs=3, **kwargs)
        net = fs.NeuralNetwork(ARCHITECTURE, seed=7, backend=backend)
        net.fit(X_train, y_train, X_test, y_test, epochs=5, resume=True, **kwargs)
    return _arrays(f"{backend}/resumed", net), _facts(net)


def platform_fingerprint(backend: str) -> dict[str, str]:
    """What the bits depend on besides fastscratch's code."""
    import scipy.linalg  # noqa: F401  (Numba's BLAS: loaded here so the list is the same in any test order)
    from threadpoolctl import threadpool_info

    blas = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    facts = {"machine": platform.machine(), "numpy": np.__version__, "blas": "; ".join(sorted(set(blas)))}
    if backend == "numba":
        import numba
        facts["numba"] = numba.__version__
    return facts


def record(tmp: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    facts: dict[str, Any] = {"fingerprint": {}, "runs": {}}
    for backend in BACKENDS:
        facts["fingerprint"][backend] = platform_fingerprint(backend)
        for name in [*CASES, "resumed"]:
            got, more = run_case(name, backend, tmp) if name != "resumed" else run_resumed(backend, tmp)
            arrays.update(got)
            facts["runs"][f"{backend}/{name}"] = more
    GOLDEN.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN / "runs.npz", **arrays)
    (GOLDEN / "runs.json").write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def golden() -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(GOLDEN / "runs.npz", allow_pickle=False) as saved:
        arrays = {key: saved[key] for key in saved.files}
    return arrays, json.loads((GOLDEN / "runs.json").read_text())


@pytest.mark.parametrize("name", [*CASES, "resumed"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_training_reproduces_the_golden_run(golden, backend, name, tmp_path):
    if backend == "numba":
        pytest.importorskip("numba")
    arrays, facts = golden
    got, more = run_case(name, backend, tmp_path) if name != "resumed" else run_resumed(backend, tmp_path)
    expected = {k: v for k, v in arrays.items() if k.startswith(f"{backend}/{name}/")}
    assert sorted(got) == sorted(expected)
    assert more == facts["runs"][f"{backend}/{name}"]
    _assert_same(got, expected, backend, facts)


def _assert_same(got: dict[str, np.ndarray], expected: dict[str, np.ndarray], backend: str,
                 facts: dict[str, Any]) -> None:
    if platform_fingerprint(backend) == facts["fingerprint"][backend]:
        for key, value in expected.items():  # the recording platform: every bit
            assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
            assert np.array_equal(got[key], value), f"{key} differs from the golden run"
    else:  # another BLAS or CPU kernel rounds differently: close is all that can be asked
        warnings.warn(f"golden runs recorded on {facts['fingerprint'][backend]}, this is "
                      f"{platform_fingerprint(backend)}: compared to 2e-3 of scale, not bit for bit")
        for key, value in expected.items():
            scale = max(float(np.abs(value).max()), 1.0)
            assert np.allclose(got[key], value, rtol=0, atol=2e-3 * scale), key


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_checkpoint_written_before_the_redesign_resumes_to_the_golden_run(golden, backend, tmp_path):
    """``pre-redesign-checkpoint-*.npz``: the checkpoint that fastscratch as it was before the
    redesign (commit 2391176) wrote three epochs into the "resumed" run; today's code resumes it
    to the five epochs of the golden run, which that older code recorded end to end."""
    if backend == "numba":
        pytest.importorskip("numba")
    from threadpoolctl import threadpool_limits

    arrays, facts = golden
    X_train, y_train, X_test, y_test = _data()
    path = tmp_path / "old.npz"
    path.write_bytes((GOLDEN / f"pre-redesign-checkpoint-{backend}.npz").read_bytes())
    with threadpool_limits(limits=1):
        net = fs.NeuralNetwork(ARCHITECTURE, seed=7, backend=backend)
        net.fit(X_train, y_train, X_test, y_test, epochs=5, resume=True, optimizer="adam", batch_size=64,
                lr=0.003, checkpoint=path, verbose=False)
    assert _facts(net) == facts["runs"][f"{backend}/resumed"]
    _assert_same(_arrays(f"{backend}/resumed", net),
                 {k: v for k, v in arrays.items() if k.startswith(f"{backend}/resumed/")}, backend, facts)


def test_a_model_file_written_before_the_redesign_loads_as_the_same_model(golden):
    """``pre-redesign-model.npz``: the network of that checkpoint, saved by the older code; it
    loads with the weights, optimizer state and history today's code reaches in those three
    epochs, and predicts as that network does."""
    from threadpoolctl import threadpool_limits

    _, facts = golden
    X_train, y_train, X_test, y_test = _data()
    with threadpool_limits(limits=1):
        net = fs.NeuralNetwork(ARCHITECTURE, seed=7, backend="numpy")
        net.fit(X_train, y_train, X_test, y_test, epochs=3, optimizer="adam", batch_size=64, lr=0.003,
                verbose=False)
        loaded = fs.NeuralNetwork.load(GOLDEN / "pre-redesign-model.npz")
        _assert_same(_arrays("old", loaded), _arrays("old", net), "numpy", facts)
        assert loaded.epochs_trained == 3 and loaded.optimizer.iterations == net.optimizer.iterations
        assert np.array_equal(loaded.predict(X_test), net.predict(X_test))


def test_the_golden_check_can_fail(golden, tmp_path):
    """One seed apart, the weights differ: the exact comparison above is not vacuous."""
    arrays, _ = golden
    X_train, y_train, X_test, y_test = _data()
    net = fs.NeuralNetwork(ARCHITECTURE, seed=8, backend="numpy")
    net.fit(X_train, y_train, X_test, y_test, epochs=EPOCHS, optimizer="sgd", batch_size=64, verbose=False)
    assert not np.array_equal(np.array(net.weights[0]), arrays["numpy/sgd-b64/W0"])


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        record(Path(folder))
    print(f"recorded {len(CASES) + 1} cases x {len(BACKENDS)} backends in {GOLDEN}", file=sys.stderr)
