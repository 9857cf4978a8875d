"""The GPU frameworks of fastscratch.tools.bench (fastscratch-gpu, torch-cuda, jax-gpu), the
device each Result records, ``fastscratch bench --device``, and scripts/gpu_check.sh's dry run.

On a machine without a GPU every GPU framework must be a skipped row with its reason, never
an exception; these tests check those reasons (hiding or replacing the *dependency*, never the
trainer under test) and the CPU case of ``device_info``.  Where a GPU is present the tests
that assert a skip are skipped themselves: the equivalence of the GPU runs is checked by
running them (scripts/gpu_check.sh).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastscratch.tools import bench, cli, system

ROOT = Path(__file__).resolve().parents[1]
GPU = ("fastscratch-gpu", "torch-cuda", "jax-gpu", "keras-jax-gpu")


def _installed(framework):
    try:
        bench._TRAINERS[framework].require(framework)
    except bench.Skipped:
        return False
    return True


def _statuses(code_before, frameworks, env=None):
    """``{framework: status}`` of a one-epoch bench.run of each, in a fresh process that first runs
    ``code_before`` (which hides or replaces a dependency)."""
    code = (code_before + "\nfrom fastscratch.tools import bench\n"
            f"for f in {list(frameworks)!r}:\n"
            "    r = bench.run(bench.Workload(framework=f, dataset='mnist-sample', hidden=(8,)), epochs=1)\n"
            "    print(f, '|', r.device, '|', r.status)")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                           env=env, cwd=ROOT)
    assert child.returncode == 0, child.stderr
    rows = [line.split(" | ") for line in child.stdout.splitlines() if " | " in line]
    return {f: (device, status) for f, device, status in rows}


def test_the_registry_maps_each_device_to_its_frameworks():
    assert bench.DEVICE_FRAMEWORKS["gpu"] == GPU
    assert bench.DEVICE_FRAMEWORKS["cpu"] == ("fastscratch-numba", "fastscratch-numpy", "tf.keras", "torch",
                                              "torch-compile", "jax")
    every = [f for names in bench.DEVICE_FRAMEWORKS.values() for f in names]
    # each framework a default on one device; keras-jax (Keras 3 on JAX's CPU) on none, since Keras
    # takes one backend per process and tf.keras, the CPU reference, is a CPU default
    assert sorted(every + ["keras-jax"]) == sorted(bench.FRAMEWORKS)
    for device, names in bench.DEVICE_FRAMEWORKS.items():
        assert all(bench._TRAINERS[f].device_of(f) == device for f in names), device


def test_gpu_frameworks_without_their_library_are_skipped_with_the_reason():
    """torch, JAX and array-api-compat hidden from the import system: skipped, on the GPU."""
    hide = "import sys; sys.modules['torch'] = None; sys.modules['jax'] = None; sys.modules['array_api_compat'] = None"
    got = _statuses(hide, GPU)
    assert got["torch-cuda"] == ("gpu", "skipped: not installed (PyTorch with CUDA: `pip install torch` on Linux)")
    assert got["jax-gpu"] == ("gpu", "skipped: not installed (install it with `pip install 'fastscratch[jax]'`)")
    device, status = got["fastscratch-gpu"]
    assert device == "gpu" and status.startswith("skipped: not installed (backend 'array_api' is not available ("), status
    assert "pip install 'fastscratch[array-api]'" in status


def test_torch_without_cuda_is_skipped_saying_so(tmp_path):
    """A torch whose ``cuda.is_available()`` is False (a CPU build: here a stand-in package on the
    path, the real one is not needed to test the trainer's answer): skipped, naming the check."""
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "__version__ = '9.9.9+cpu'\n"
        "class cuda:\n    @staticmethod\n    def is_available():\n        return False\n"
        "class version:\n    cuda = None\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    got = _statuses("", ["torch-cuda"], env=env)
    assert got["torch-cuda"] == ("gpu", "skipped: no CUDA device: torch 9.9.9+cpu (CUDA build none) says "
                                        "torch.cuda.is_available() is False")


def test_fastscratch_gpu_without_a_gpu_library_gives_devices_reason():
    """The array-API backend installed but neither CuPy nor PyTorch importable: ``gpu_library()``'s
    reason is the status."""
    hide = "import sys; sys.modules['cupy'] = None; sys.modules['torch'] = None"
    got = _statuses(hide, ["fastscratch-gpu"])
    assert got["fastscratch-gpu"] == ("gpu", "skipped: no GPU array library: CuPy is not installed; "
                                             "PyTorch is not installed")


def test_jax_without_a_gpu_is_skipped_saying_so():
    jax = pytest.importorskip("jax")
    try:
        jax.devices("gpu")
        pytest.skip("JAX has a GPU here")
    except RuntimeError:
        pass
    with pytest.raises(bench.Skipped, match=rf"^JAX {jax.__version__} has no GPU device \(.*gpu"):
        bench.make_trainer(bench.Workload(framework="jax-gpu", dataset="mnist-sample", hidden=(8,)))


def test_cpu_results_record_the_cpu_and_nothing_gpu():
    """device_info's CPU case, on a trainer and through a Result into its JSON record."""
    _, data = bench.load_data("mnist-sample")
    small = tuple(a[:300] for a in data)
    workload = bench.Workload(framework="fastscratch-numpy", batch_size=100, dataset="mnist-sample", hidden=(8,))
    expected = {"device": "cpu", "cpu": system.cpu_model()}
    assert bench.make_trainer(workload, small).device_info() == expected
    result = bench.run(workload, epochs=1, warmup=0, data=small)
    assert result.ok and result.device == "cpu" and result.device_info == expected
    record = json.loads(json.dumps(result.to_dict()))
    assert record["device_info"] == expected and not {"gpu", "driver", "cuda_runtime"} & set(record["device_info"])
    assert bench.device_lines([result]) == [f"Device cpu: {system.cpu_model()}: fastscratch-numpy"]


def test_jax_stays_on_the_cpu_and_records_it():
    pytest.importorskip("jax")
    _, data = bench.load_data("mnist-sample")
    small = tuple(a[:300] for a in data)
    trainer = bench.make_trainer(bench.Workload(framework="jax", batch_size=100, dataset="mnist-sample",
                                                hidden=(8,)), small)
    assert trainer.net.device.platform == "cpu" and trainer.device == "cpu"
    assert trainer.device_info() == {"device": "cpu", "cpu": system.cpu_model()}
    assert trainer.epoch() > 0


def test_jax_network_puts_its_arrays_on_the_device_given():
    jax = pytest.importorskip("jax")
    from fastscratch import NeuralNetwork
    from fastscratch.integrations.jax import JaxNetwork

    X = np.random.default_rng(0).random((50, 4), dtype=np.float32)
    y = np.arange(50) % 3
    cpu = jax.devices("cpu")[0]
    net = JaxNetwork(NeuralNetwork([4, 5, 3], seed=0, backend="numpy"), X, y, batch_size=16, device=cpu)
    net.fit_epoch()
    assert net.device is cpu and net._X.devices() == {cpu} and net._params[0].devices() == {cpu}
    assert net.predict(X).shape == (50,)
    with pytest.raises(TypeError, match="device must be a jax.Device"):
        JaxNetwork(NeuralNetwork([4, 5, 3], seed=0, backend="numpy"), X, y, device="gpu")


def test_gpu_info_without_a_gpu_still_gives_a_record(monkeypatch, tmp_path):
    """No nvidia-smi on the path and no GPU: the record says gpu, ``unknown`` for what is missing,
    the library's versions, and the error; a bad library name is a ValueError."""
    pytest.importorskip("jax")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert system.nvidia_smi() == {}
    try:
        import jax
        jax.devices("gpu")
        pytest.skip("JAX has a GPU here")
    except RuntimeError:
        pass
    info = system.gpu_info("jax")
    assert info["device"] == "gpu" and info["gpu"] == "unknown" and info["driver"] == "unknown"
    assert info["library"] == "jax" and info["jax"] == jax.__version__ and "jaxlib" in info
    assert info["error"].startswith("RuntimeError: ")
    assert system.device_summary(info) == "gpu: unknown (driver unknown, CUDA runtime unknown)"
    with pytest.raises(ValueError, match="library must be one of torch, cupy, jax"):
        system.gpu_info("tensorflow")
    with pytest.raises(ValueError, match="index must be a non-negative integer"):
        system.nvidia_smi(-1)
    with pytest.raises(TypeError, match="info must be a dict"):
        system.device_summary("gpu")


def test_device_lines_name_each_device_and_the_skipped():
    gpu_info = {"device": "gpu", "gpu": "NVIDIA H200", "driver": "580.1", "cuda_runtime": "13.0"}
    ran = bench.Result(bench.Workload(framework="torch-cuda"), device="gpu", device_info=gpu_info)
    also = bench.Result(bench.Workload(framework="jax-gpu", batch_size=512), device="gpu", device_info=gpu_info)
    skipped = bench.Result(bench.Workload(framework="fastscratch-gpu"), device="gpu", status="skipped: no GPU")
    assert bench.device_lines([ran, also, skipped]) == [
        "Device gpu: NVIDIA H200 (driver 580.1, CUDA runtime 13.0): torch-cuda, jax-gpu",
        "Device gpu: none used (skipped: fastscratch-gpu)"]


def _bench_args(*argv):
    args = cli.build_parser().parse_args(["bench", *argv])
    assert cli.bench_usage_error(args) is None
    return args


def test_device_picks_the_frameworks_unless_they_are_given():
    assert _bench_args("--device", "gpu").frameworks == list(GPU)
    assert _bench_args().frameworks == list(bench.DEVICE_FRAMEWORKS["cpu"])
    assert _bench_args("--device", "cpu").frameworks == list(bench.DEVICE_FRAMEWORKS["cpu"])
    assert _bench_args("--device", "gpu", "--frameworks", "numpy,jax-gpu").frameworks == ["fastscratch-numpy",
                                                                                          "jax-gpu"]
    assert _bench_args("--device", "gpu", "--sweep").frameworks == list(GPU)
    assert _bench_args("--sweep").frameworks == list(bench.SWEEP_FRAMEWORKS)


def test_bench_device_gpu_lists_every_gpu_framework_as_skipped_here(tmp_path):
    """The acceptance run: ``fastscratch bench --device gpu --dataset mnist-sample --epochs 1`` on a
    machine without a GPU exits 0 with every GPU framework a skipped row, at every batch size."""
    if any(_installed(f) for f in GPU):
        pytest.skip("a GPU framework can run here")
    out = tmp_path / "gpu.json"
    child = subprocess.run([sys.executable, "-m", "fastscratch", "bench", "--device", "gpu", "--dataset",
                            "mnist-sample", "--epochs", "1", "--json", str(out)],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert child.returncode == 0, child.stderr
    rows = [line.split() for line in child.stdout.splitlines() if line.split()[1:2] and line.split()[1] in GPU]
    assert [(r[0], r[1], r[2]) for r in rows] == [(b, f, "skipped:") for b in ("32", "128", "512", "full")
                                                  for f in GPU], child.stdout
    assert f"Device gpu: none used (skipped: {', '.join(GPU)})" in child.stdout
    results = json.loads(out.read_text())["results"]
    assert len(results) == 4 * len(GPU) and all(r["status"].startswith("skipped: ") and r["device"] == "gpu" for r in results)


def test_bench_rejects_an_unknown_device():
    child = subprocess.run([sys.executable, "-m", "fastscratch", "bench", "--device", "tpu"],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 2 and "invalid choice" in child.stderr and "tpu" in child.stderr


# ------------------------------------------------- on a GPU (skipped elsewhere; gpu_check.sh runs them)
@pytest.fixture(scope="module")
def sample():
    _, data = bench.load_data("mnist-sample")
    return tuple(a[:1000] for a in data)


@pytest.mark.parametrize("framework", GPU)
def test_a_gpu_framework_starts_alike_trains_alike_and_names_its_gpu(sample, framework):
    """Where the framework can run: its parameters before training are the initial network's
    exactly (to the GPU and back), two epochs on fastscratch's batches end where fastscratch-numpy's
    do (to float32 round-off, TF32 matmuls allowed for: 2e-3 of the largest weight), and its
    device_info names the GPU, the driver and the library versions."""
    if not _installed(framework):
        pytest.skip(f"{framework} cannot run here")
    make = lambda f: bench.make_trainer(bench.Workload(  # noqa: E731
        framework=f, batch_size=100, dataset="mnist-sample", hidden=(16,), seed=4, batches="shared"), sample)
    reference, gpu = make("fastscratch-numpy"), make(framework)
    for a, b in zip(gpu.parameters(), reference.parameters()):
        np.testing.assert_array_equal(a, b)
    for _ in range(2):
        reference.epoch()
        assert gpu.epoch() > 0
    expected = reference.parameters()
    scale = max(float(np.abs(p).max()) for p in expected)
    assert max(float(np.abs(a - b).max()) for a, b in zip(gpu.parameters(), expected)) < 2e-3 * scale
    assert abs(gpu.accuracy() - reference.accuracy()) < 0.02
    info = gpu.device_info()
    assert info["device"] == "gpu" and info["gpu"] != "unknown" and info["cuda_runtime"] != "unknown", info
    assert info["library"] in info and "float32_matmul" in info, info


def test_the_fastscratch_gpu_trainer_on_a_simulated_device(sample, monkeypatch):
    """fastscratch-gpu's own code path on the CPU: the GPU placement swapped for array-api-strict's
    simulated ``device1`` (which refuses any silent host copy), the rest as on a GPU -- data placed once,
    fit and accuracy on the device, parameters brought back -- ends where fastscratch-numpy does."""
    xps = pytest.importorskip("array_api_strict", reason="array-api-strict is in the dev extra")
    from fastscratch import devices

    device1 = xps.Device("device1")
    monkeypatch.setattr(bench, "_gpu_devices", lambda: (
        "array_api_strict", lambda array, device: xps.asarray(array, device=device1), devices.to_numpy))
    make = lambda f: bench.make_trainer(bench.Workload(  # noqa: E731
        framework=f, batch_size=100, dataset="mnist-sample", hidden=(16,), seed=4, batches="shared"), sample)
    reference, simulated = make("fastscratch-numpy"), make("fastscratch-gpu")
    assert simulated.X_fit.device == device1 and simulated.y_eval.device == device1
    for _ in range(2):
        reference.epoch()
        assert simulated.epoch() > 0
    assert simulated.net.kernels.NAME == "array_api" and simulated.net.device == device1
    for a, b in zip(simulated.parameters(), reference.parameters()):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    assert simulated.accuracy() == reference.accuracy()
