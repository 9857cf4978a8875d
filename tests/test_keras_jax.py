"""Keras 3 on its JAX backend agrees with fastscratch step by step, from the same weights on the same batches.

Keras picks its backend once per process, and this test process may already hold tf.keras,
so the Keras-on-JAX side runs in a child process (``sys.executable``, ``KERAS_BACKEND=jax``,
``JAX_PLATFORMS=cpu``) that writes each case's per-step losses and weights to an ``.npz``
in ``tmp_path``; fastscratch's side runs here through ``train_steps`` (fit's own code, one
batch at a time), with the tolerances of the tf.keras agreement tests
(tests/test_keras_reference.py: SGD 1e-5; momentum and Adam 1e-4).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastscratch import SGD, Adam, Momentum, NeuralNetwork
from fastscratch.datasets import load_dataset, to_features
from fastscratch.integrations.steps import train_steps
from fastscratch.optimizers import get_optimizer

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None or importlib.util.find_spec("jax") is None,
    reason="Keras 3 on JAX needs keras (the keras extra, with tensorflow-cpu) and jax (the jax extra)")

ROWS = 1000  # the MNIST sample's first 1,000 training digits: 7 batches of 128 and one of 104
HIDDEN = [32, 16]

# name: (optimizer, lr, batch size, epochs, weight decay, tolerance)
CASES = {
    "sgd": (SGD(), 0.1, 128, 1, 0.0, 1e-5),
    "momentum": (Momentum(0.9), 0.05, 128, 1, 0.0, 1e-4),
    "nesterov": (Momentum(0.9, nesterov=True), 0.05, 128, 1, 0.0, 1e-4),
    "adam": (Adam(), 1e-3, 128, 1, 0.0, 1e-4),
    "sgd-full-batch": (SGD(), 0.1, None, 3, 0.0, 1e-5),
    "sgd-decay-two-epochs": (SGD(), 0.1, 100, 2, 1e-3, 1e-5),
}

CHILD = r"""
import json, sys
import numpy as np
from fastscratch import NeuralNetwork
from fastscratch.datasets import load_dataset, to_features
from fastscratch.integrations.keras import build_model, train_keras
from fastscratch.optimizers import get_optimizer

cases, rows, hidden, out = json.loads(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
data = load_dataset("mnist-sample")
X, y = to_features(data.X_train)[:rows], data.y_train[:rows]
for name, (config, lr, batch, epochs, decay) in cases.items():
    nn = NeuralNetwork([784, *hidden, 10], seed=0)
    start = build_model(nn, keras_backend="jax").get_weights()
    run = train_keras(nn, X, y, lr=lr, epochs=epochs, batch_size=batch, optimizer=get_optimizer(config),
                      weight_decay=decay, record_steps=True, device="cpu", keras_backend="jax")
    np.savez(f"{out}/{name}.npz", losses=run.step_losses, start=np.concatenate([w.ravel() for w in start]),
             *run.weights())
    print(name, run.label, run.device, json.dumps(run.versions), sys.modules["keras"].backend.backend(),
          "tensorflow" in sys.modules)
"""


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "JAX_PLATFORMS")}
    env.update(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


@pytest.fixture(scope="module")
def keras_jax_runs(tmp_path_factory):
    """Every case trained once by Keras 3 on JAX in one child process: {name: npz}, and its stdout."""
    out = tmp_path_factory.mktemp("keras-jax")
    cases = {name: (opt.config(), lr, batch, epochs, decay) for name, (opt, lr, batch, epochs, decay, _) in CASES.items()}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases), str(ROWS), json.dumps(HIDDEN), str(out)],
                          capture_output=True, text=True, timeout=600, env=child_env())
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return {name: np.load(out / f"{name}.npz") for name in CASES}, done.stdout


@pytest.fixture(scope="module")
def data():
    d = load_dataset("mnist-sample")
    return to_features(d.X_train)[:ROWS], d.y_train[:ROWS]


def _net() -> NeuralNetwork:
    return NeuralNetwork([784, *HIDDEN, 10], seed=0)


def test_the_child_ran_keras_on_jax_without_tensorflow(keras_jax_runs):
    _, stdout = keras_jax_runs
    lines = stdout.strip().splitlines()
    assert len(lines) == len(CASES)
    for line in lines:
        name, rest = line.split(" ", 1)
        assert rest.startswith("Keras 3 (JAX backend) cpu ("), line
        assert rest.endswith(" jax False"), line  # the JAX backend, and TensorFlow never imported
        assert '"jax": ' in rest and '"jaxlib": ' in rest and '"keras": "3.' in rest


def test_same_start(keras_jax_runs):
    """The Keras model holds the network's initial weights exactly (copied, not re-drawn)."""
    start = np.concatenate([p.ravel() for p in _net().parameters])
    for name, run in keras_jax_runs[0].items():
        np.testing.assert_array_equal(run["start"], start, err_msg=name)


@pytest.mark.parametrize("case", list(CASES))
def test_agrees_with_fastscratch_step_by_step(keras_jax_runs, data, case):
    """Same start, same batches (fit's permutations), same update rule: every step's loss and the
    weights at the end agree to float32 round-off."""
    X, y = data
    optimizer, lr, batch, epochs, decay, tol = CASES[case]
    run = keras_jax_runs[0][case]
    nn = _net()
    losses = train_steps(nn, X, y, lr=lr, epochs=epochs, batch_size=batch, optimizer=get_optimizer(optimizer.config()),
                         weight_decay=decay)
    keras_losses = run["losses"]
    n_batches = 1 if batch is None else -(-ROWS // batch)
    assert keras_losses.shape == losses.shape == (epochs, n_batches) and np.isfinite(keras_losses).all()
    worst_rel = float(np.max(np.abs(losses - keras_losses) / np.abs(keras_losses)))
    weights = [run[f"arr_{i}"] for i in range(len(nn.parameters))]
    max_abs = max(float(np.max(np.abs(a - b))) for a, b in zip(nn.parameters, weights, strict=True))
    print(f"\n{case:22s} worst relative loss difference {worst_rel:.2e}, max weight difference {max_abs:.2e}")
    assert worst_rel < tol, f"per-step losses differ by up to {worst_rel:.3g} (relative), tolerance {tol}"
    assert max_abs < tol, f"weights differ by up to {max_abs:.3g}, tolerance {tol}"


def test_other_batches_would_be_caught(keras_jax_runs, data):
    """The check can fail: fastscratch on another permutation (a different generator state) or at
    a slightly different learning rate is far outside the tolerance."""
    X, y = data
    run = keras_jax_runs[0]["sgd"]
    shuffled = _net()
    shuffled.rng = np.random.default_rng(12345)
    other_batches = train_steps(shuffled, X, y, lr=0.1, epochs=1, batch_size=128, optimizer="sgd")
    other_lr = train_steps(_net(), X, y, lr=0.101, epochs=1, batch_size=128, optimizer="sgd")
    for losses in (other_batches, other_lr):
        assert np.max(np.abs(losses - run["losses"]) / np.abs(run["losses"])) > 1e-4
    # the first step is before any update: only the batch differs there
    assert abs(other_batches[0, 0] - run["losses"][0, 0]) > 1e-4 * run["losses"][0, 0]


ERRORS = r"""
import os, sys
import numpy as np
from fastscratch import NeuralNetwork
from fastscratch.integrations.keras import KerasBackendError, train_keras
X = np.random.default_rng(0).random((40, 6), dtype=np.float32); y = np.arange(40) % 3
os.environ["KERAS_BACKEND"] = sys.argv[1]
import keras  # this process' Keras, on the backend named
try:
    train_keras(NeuralNetwork([6, 4, 3], seed=0), X, y, keras_backend=sys.argv[2], device="cpu")
    print("NO ERROR")
except KerasBackendError as exc:
    print("ERROR", exc)
"""


@pytest.mark.parametrize("loaded,asked", [("tensorflow", "jax"), ("jax", "tensorflow")])
def test_keras_loaded_with_another_backend_is_a_clear_error(loaded, asked):
    done = subprocess.run([sys.executable, "-c", ERRORS, loaded, asked], capture_output=True, text=True, timeout=300,
                          env=child_env())
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout.strip()
    assert out.startswith("ERROR "), out
    assert "KERAS_BACKEND" in out and "before keras is first imported" in out and f"{loaded!r} backend" in out


def test_no_gpu_and_bad_settings_are_clear_errors():
    code = ("import numpy as np\nfrom fastscratch import NeuralNetwork\n"
            "from fastscratch.integrations.keras import train_keras\n"
            "X = np.zeros((8, 3), np.float32); y = np.arange(8) % 2\n"
            "for kwargs in ({'device': 'gpu'}, {'keras_backend': 'torch'}, {'device': 'tpu'}):\n"
            "    try:\n"
            "        train_keras(NeuralNetwork([3, 2], seed=0), X, y, **{'keras_backend': 'jax', **kwargs})\n"
            "    except ValueError as exc:\n"
            "        print('VALUE', exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=child_env())
    assert done.returncode == 0, done.stderr[-3000:]
    gpu, backend, device = done.stdout.strip().splitlines()
    assert gpu.startswith("VALUE device='gpu' asked for, but JAX sees no GPU"), gpu
    assert "keras_backend must be one of 'tensorflow', 'jax'" in backend, backend
    assert "device must be" in device, device


# ------------------------------------------------------------------ the command line
def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND",)}
    env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "fastscratch", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_bench_keras_jax_in_a_fresh_process(tmp_path):
    out = tmp_path / "bench.json"
    done = run_cli("bench", "--frameworks", "keras-jax,keras-jax-gpu", "--dataset", "mnist-sample", "--epochs", "1",
                   "--batch-sizes", "128", "--hidden", "16", "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    records = {r["workload"]["framework"]: r for r in json.loads(out.read_text())["results"]}
    jax_cpu, jax_gpu = records["keras-jax"], records["keras-jax-gpu"]
    assert jax_cpu["status"] == "ok" and jax_cpu["device"] == "cpu" and len(jax_cpu["epoch_seconds"]) == 1
    assert jax_cpu["epoch_seconds"][0] > 0 and 0.1 < jax_cpu["test_accuracy"] <= 1
    assert "keras 3." in jax_cpu["threads"] and "on jax" in jax_cpu["threads"]
    assert jax_gpu["status"].startswith("skipped: device='gpu' asked for, but JAX sees no GPU"), jax_gpu["status"]


def test_bench_after_tf_keras_skips_keras_jax_with_the_reason():
    from fastscratch.tools import bench

    code = ("from fastscratch.tools import bench\n"
            "for f in ('tf.keras', 'keras-jax'):\n"
            "    r = bench.run(bench.Workload(framework=f, dataset='mnist-sample', hidden=(8,)), epochs=1, warmup=0)\n"
            "    print(f, '|', r.status)")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    status = dict(line.split(" | ", 1) for line in done.stdout.strip().splitlines())
    assert status["tf.keras"] == "ok"
    assert status["keras-jax"].startswith("skipped: keras is already loaded in this process with another backend")
    assert "fastscratch bench --frameworks keras-jax" in status["keras-jax"]
    assert {"keras-jax", "keras-jax-gpu"} <= set(bench.FRAMEWORKS)


def test_cli_names_the_new_frameworks():
    """The command line's framework list, its help and its "did you mean" come from the registry."""
    from fastscratch.tools.cli import build_parser

    args = build_parser().parse_args(["bench", "--frameworks", "keras-jax,keras-jax-gpu"])
    assert args.frameworks == ["keras-jax", "keras-jax-gpu"]
    done = run_cli("bench", "--frameworks", "keras-jx", timeout=120)
    assert done.returncode == 2
    assert "did you mean 'keras-jax'?" in done.stderr and "keras-jax-gpu" in done.stderr
    helped = run_cli("bench", "--help", timeout=120)
    assert "keras-jax-gpu" in "".join(helped.stdout.split()), helped.stdout


def test_compare_on_keras_jax(tmp_path):
    out = tmp_path / "report"
    done = run_cli("compare", "--keras-backend", "jax", "--device", "cpu", "--epochs", "1", "--warmup", "1",
                   "--hidden", "16", "--backends", "numpy", "--no-plots", "--require-keras", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    keras, ours = (next(r for r in results["runs"] if r["framework"] == f) for f in ("keras-jax", "fastscratch"))
    assert keras["name"] == "Keras 3 (JAX backend)" and keras["device"].startswith("cpu")
    assert results["settings"]["keras_backend"] == "jax" and "jaxlib" in results["environment"]["versions"]
    # same start, same batches: the per-epoch losses agree as the step losses do
    np.testing.assert_allclose(ours["history"]["cost"], keras["history"]["cost"], rtol=1e-5)
    report = (out / "report.md").read_text()
    assert report.startswith("# fastscratch vs Keras 3 (JAX backend)") and "tensorflow" not in results["environment"]


def test_compare_on_a_gpu_without_one_is_one_clear_line(tmp_path):
    done = run_cli("compare", "--device", "gpu", "--epochs", "1", "--out", str(tmp_path / "gpu"), timeout=300)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("fastscratch compare: error: device='gpu' cannot run here: ")
    assert "JAX sees no GPU" in lines[0]
    assert "needs CuPy or PyTorch with a CUDA device" in lines[0]
    assert not (tmp_path / "gpu" / "results.json").exists()


def test_compare_refuses_tf_keras_on_the_gpu(tmp_path):
    done = run_cli("compare", "--device", "gpu", "--keras-backend", "tensorflow", "--out", str(tmp_path), timeout=120)
    assert done.returncode == 1 and "tf.keras is the CPU reference" in done.stderr
