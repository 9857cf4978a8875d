"""fastscratch.tools.bench: the workload definition's frameworks, same start, interleaved rounds, the
tables and the scaling sweep; and scripts/bench_epoch.py, the thread-count front end, as a smoke run.

No speed is asserted (timings belong in benchmarks, not unit tests); the front ends are also
tested where they live (tests/benchmarks, test_cli, test_asv).
"""

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastscratch.tools import bench
from fastscratch.activations import ACTIVATIONS

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_epoch.py"


def _script():
    namespace = {"__name__": "bench_epoch"}
    exec(compile(SCRIPT.read_text(), str(SCRIPT), "exec"), namespace)  # noqa: S102
    return namespace["main"]


def test_the_thread_study_interleaves_schemes_under_load_and_writes_json(tmp_path, capsys):
    """scripts/bench_epoch.py: every scheme per batch size and load, the busy processes gone
    afterwards, and fit's own rule put back."""
    pytest.importorskip("numba")
    pytest.importorskip("sklearn")
    out = tmp_path / "r.json"
    code = _script()(["--dataset", "digits", "--batch-sizes", "64,full", "--epochs", "1", "--load", "0,1",
                      "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "thread study" in text and "load 1  batch    64" in text
    records = json.loads(out.read_text())["records"]
    assert [(r["load"], r["batch_size"]) for r in records] == [(0, 64), (0, None), (1, 64), (1, None)]
    for record in records:
        assert set(record["figures"]) == {"rule", "one", "parts", "openblas"}
        assert record["figures"]["one"]["parts"] == 1 and record["figures"]["openblas"]["parts"] == 1
        assert all(f["median"] > 0 for f in record["figures"].values())
    from fastscratch.kernels import numba_kernels
    assert numba_kernels.epoch_threads.__name__ == "epoch_threads"  # the study puts the rule back


def test_fastscratch_results_carry_compile_time_apart_from_epochs():
    pytest.importorskip("numba")
    _, data = bench.load_data("digits")
    result = bench.run(bench.Workload(framework="fastscratch-numba", batch_size=64, dataset="digits"),
                       epochs=1, warmup=1, data=data)
    assert result.ok and not math.isnan(result.compile_seconds)
    assert "fastscratch epochs on " in result.threads


def test_bench_memory_prints_the_bound_and_writes_json_and_markdown(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fastscratch", "bench", "--memory", "--dataset", "mnist-sample",
                             "--frameworks", "fastscratch-numpy", "--batch-sizes", "128", "--epochs", "1",
                             "--json", str(tmp_path / "m.json"), "--markdown", str(tmp_path / "m.md")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "peak RSS MB" in result.stdout and "bound MB" in result.stdout and "fastscratch-numpy" in result.stdout
    record = json.loads((tmp_path / "m.json").read_text())["memory"][0]
    assert record["status"] == "ok" and record["dataset_mb"] == pytest.approx(5000 * 784 * 4 / 1e6)
    assert record["baseline_rss_mb"] <= record["data_rss_mb"] <= record["peak_rss_mb"]
    assert record["bound_mb"] == pytest.approx(record["dataset_mb"] + bench.MEMORY_HEADROOM_MB)
    assert "| 128 | fastscratch-numpy |" in (tmp_path / "m.md").read_text()


def test_pytest_benchmark_report_fits_a_terminal_in_numeric_order():
    """The benchmark tables have three columns and short names, groups come in numeric order
    (32 before 128; pytest-benchmark alone sorts them as text), and a summary gives the figures
    the tables do not: samples/s, GFLOP/s, accuracy, ratios."""
    pytest.importorskip("pytest_benchmark")
    env = dict(os.environ, FASTSCRATCH_BENCH_DATASET="digits")
    result = subprocess.run([sys.executable, "-m", "pytest", "tests/benchmarks/test_bench_training.py",
                             "--benchmark-only", "-p", "no:cacheprovider", "-q",
                             "-k", "test_epoch and fastscratch-numpy and (b128 or b32)"],
                            cwd=SCRIPT.parents[1], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    tables = [line for line in out.splitlines() if "benchmark 'epoch batch" in line]
    assert ["32" in tables[0], "128" in tables[1]] == [True, True], tables
    table_lines = out.split("benchmark 'epoch batch 32'")[1].split("Legend")[0].splitlines()
    assert max(map(len, table_lines)) <= 100, max(map(len, table_lines))
    assert "Median" in out and "StdDev" not in out
    assert any(line.startswith("epoch[b32-fastscratch-numpy] ") for line in table_lines)  # short names
    summary = out.split("benchmark figures (digits")[1]
    assert summary.index("epoch batch 32:") < summary.index("epoch batch 128:")
    row = next(line.split() for line in summary.splitlines() if line.strip().startswith("fastscratch-numpy"))
    seconds, rate, gflops, accuracy = float(row[1]), float(row[2].replace(",", "")), float(row[3]), float(row[4])
    assert seconds > 0 and rate > 0 and gflops > 0 and 0 < accuracy <= 1
    assert abs(1437 / rate - seconds) <= 0.0005  # 1,437 digits in the training part; s/epoch has 3 decimals


def test_group_order_is_numeric():
    from tests.benchmarks.conftest import group_order

    names = ["epoch batch full", "epoch batch 128", "time to accuracy batch 128", "epoch batch 32", "epoch batch 512"]
    assert sorted(names, key=group_order) == ["epoch batch 32", "epoch batch 128", "epoch batch 512",
                                              "epoch batch full", "time to accuracy batch 128"]


# ----------------------------------------------------- frameworks, same start, interleaving (issue 13)
def _usable(framework):
    if framework.startswith("keras-jax") and os.environ.get("KERAS_BACKEND") != "jax":
        # Keras picks one backend per process: here it is TensorFlow's (tf.keras tests share the
        # process); tests/test_keras_jax.py trains these in a process of their own
        pytest.skip(f"{framework} needs keras on its JAX backend, in a process of its own (KERAS_BACKEND=jax): "
                    "tests/test_keras_jax.py runs it so")
    try:
        bench._import_framework(framework)
    except bench.Skipped as exc:
        return str(exc)  # why not (a library missing, or no GPU)
    return True


def _require(framework):
    """Skip the test with the framework's own reason where it cannot run here."""
    usable = _usable(framework)
    if usable is not True:
        pytest.skip(f"{framework}: {usable}")


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    return bench.load_data("digits")[1]


@pytest.mark.parametrize("framework", bench.FRAMEWORKS)
def test_every_framework_starts_from_the_fastscratch_initial_weights(digits, framework):
    """Same start: each trainer's parameters before training are NeuralNetwork(sizes, seed)'s, exactly
    (torch-compile's after its compiling warm-up steps have been undone)."""
    _require(framework)
    workload = bench.Workload(framework=framework, batch_size=100, dataset="digits", hidden=(16, 8), seed=3)
    trainer = bench.make_trainer(workload, digits)
    start = bench.initial_network(workload, trainer.sizes)
    expected = [p for pair in zip(start.weights, start.biases) for p in pair]
    got = trainer.parameters()
    assert [p.shape for p in got] == [p.shape for p in expected]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    trainer.epoch()
    assert not np.array_equal(trainer.parameters()[0], expected[0])  # and it trains from there


def test_torch_compile_trains_as_eager_torch_does(digits):
    """Same start and the same randperm batches: torch.compile's epoch is eager PyTorch's to round-off,
    so its compiling warm-up left no trace (weights and momentum buffers put back)."""
    _require("torch-compile")
    workloads = [bench.Workload(framework=f, batch_size=100, dataset="digits", hidden=(16,), optimizer="momentum")
                 for f in ("torch", "torch-compile")]
    eager, compiled = (bench.make_trainer(w, digits) for w in workloads)
    assert compiled.compile_seconds > 0 and math.isnan(eager.compile_seconds)
    for _ in range(2):
        eager.epoch(), compiled.epoch()
    for a, b in zip(eager.parameters(), compiled.parameters()):
        np.testing.assert_allclose(b, a, atol=1e-5)


def test_torch_compile_that_cannot_compile_is_skipped_with_the_reason(tmp_path):
    """No working C++ compiler for Inductor (CXX points nowhere; an empty Inductor cache, so nothing
    compiled earlier is reused): a skipped row naming the failure, not an exception."""
    pytest.importorskip("torch")
    code = ("from fastscratch.tools import bench; r = bench.run(bench.Workload(framework='torch-compile', batch_size=128, "
            "dataset='mnist-sample', hidden=(8,)), epochs=1, warmup=0); print('STATUS', r.status)")
    env = dict(os.environ, CXX=str(tmp_path / "no-such-compiler"), TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "cache"))
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert child.returncode == 0, child.stderr
    status = child.stdout.split("STATUS ", 1)[1].strip()
    assert status.startswith("skipped: torch.compile failed: ") and "no-such-compiler" in status, status


def test_missing_frameworks_are_skipped_with_the_install_hint():
    """Without JAX and PyTorch (hidden from the import system in a child process)."""
    code = ("import sys; sys.modules['jax'] = None; sys.modules['torch'] = None\n"
            "from fastscratch.tools import bench\n"
            "for f in ('jax', 'torch', 'torch-compile'):\n"
            "    print(f, '|', bench.run(bench.Workload(framework=f, dataset='mnist-sample'), epochs=1).status)")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    statuses = dict(line.split(" | ") for line in child.stdout.splitlines())
    assert statuses["jax"] == "skipped: not installed (install it with `pip install 'fastscratch[jax]'`)"
    assert statuses["torch"] == statuses["torch-compile"] == f"skipped: not installed (`{bench.TORCH_CPU_INSTALL}`)"


def test_a_group_runs_its_epochs_in_interleaved_rounds(digits):
    """Round k runs every framework once, in the group's order for even k and reversed for odd k:
    the recorded epoch starts of A and B read A B | B A | A B."""
    pytest.importorskip("numba")
    group = [bench.Workload(framework=f, batch_size=64, dataset="digits", hidden=(16,))
             for f in ("fastscratch-numpy", "fastscratch-numba")]
    first, second = bench.run_group(group, epochs=3, warmup=1, data=digits)
    assert first.ok and second.ok and len(first.epoch_started) == len(second.epoch_started) == 3
    starts = sorted([(t, "A") for t in first.epoch_started] + [(t, "B") for t in second.epoch_started])
    assert "".join(label for _, label in starts) == "ABBAAB"
    # each epoch of a group of several starts after the settling pause, the first one too
    assert bench.SETTLE_SECONDS <= first.epoch_started[0] < bench.SETTLE_SECONDS + 0.05
    assert all(b - a >= bench.SETTLE_SECONDS for a, b in zip([t for t, _ in starts], [t for t, _ in starts][1:]))
    assert all(s > 0 for s in first.epoch_seconds + second.epoch_seconds)
    assert 0 < first.test_accuracy <= 1 and first.n_train == len(digits[0])


def test_a_group_must_differ_only_by_framework(digits):
    a = bench.Workload(framework="fastscratch-numpy", batch_size=64, dataset="digits")
    with pytest.raises(ValueError, match=r"batch_size=32 \(not 64\)"):
        bench.run_group([a, dataclasses.replace(a, framework="jax", batch_size=32)], data=digits)
    with pytest.raises(ValueError, match="one or more"):
        bench.run_group([], data=digits)
    with pytest.raises(ValueError, match="unknown framework 'mxnet'"):
        bench.Workload(framework="mxnet")


def test_time_to_accuracy_group_takes_a_framework_out_once_it_is_there(digits):
    group = [bench.Workload(framework="fastscratch-numpy", batch_size=32, dataset="digits", hidden=(32,))] * 2
    for r in bench.time_to_accuracy_group(group, target=0.8, max_epochs=6, data=digits):
        assert r.seconds_to_target is not None and len(r.epoch_seconds) == r.epochs_to_target < 6
        assert r.accuracy_curve[-1][1] >= 0.8 and r.accuracy_curve[-1][0] == pytest.approx(r.seconds_to_target)
    for r in bench.time_to_accuracy_group(group, target=1.0, max_epochs=2, data=digits):
        assert r.seconds_to_target is None and len(r.epoch_seconds) == 2 and len(r.accuracy_curve) == 2


def test_the_table_has_a_vs_jax_column_with_ratios_from_the_same_run(digits):
    group = [bench.Workload(framework=f, batch_size=64, dataset="digits", hidden=(16,))
             for f in ("fastscratch-numpy", "jax")]
    results = bench.run_group(group, epochs=2, warmup=1, data=digits)
    lines = bench.format_table(results)
    assert lines[0].split()[-2:] == ["vs", "jax"] and "vs torch" in lines[0] and "vs keras" in lines[0]
    rows = {row[1]: row for row in bench.table_rows(results)}
    numpy_row = rows["fastscratch-numpy"]
    jax_result = results[1]
    if jax_result.ok:
        assert rows["jax"][-1] == "1.00x" and jax_result.compile_seconds > 0
        assert numpy_row[-1] == f"{results[0].median_seconds / jax_result.median_seconds:.2f}x"
        assert any(line.startswith("jax ") for line in bench.format_compile_times(results))
    else:
        assert numpy_row[-1] == "-" and rows["jax"][2].startswith("skipped")
    markdown = bench.format_table(results, markdown=True)
    assert markdown[0].endswith("| vs jax |") and len(markdown) == 4


def test_nesterov_is_a_workload_optimizer():
    assert bench.workload_optimizer(bench.Workload(optimizer="nesterov")).config() == {
        "name": "momentum", "momentum": 0.9, "nesterov": True}
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        bench.Workload(optimizer="rmsprop")


# --------------------------------------------------------------------- the scaling sweep (issue 13 part 4)
def test_largest_gemm_and_rows_per_epoch():
    assert bench.largest_gemm([784, 64, 64, 10], 128) == (128, 784, 64)
    assert bench.largest_gemm([784, 1024, 1024, 10], 32) == (32, 1024, 1024)
    sizes = [784, 2048, 2048, 10]
    per_sample = bench.flops_per_sample(sizes)
    # an epoch that fits in the time at that rate: all of it; else whole batches, at least 4
    assert bench.sweep_rows(sizes, 128, 1000, 10.0, 100.0) == 1000
    rows = bench.sweep_rows(sizes, 128, 60000, 0.5, 100.0)
    assert rows % 128 == 0 and rows == int(0.5 * 100e9 / per_sample // 128) * 128
    assert bench.sweep_rows(sizes, 512, 60000, 1e-6, 100.0) == 4 * 512


def test_the_sweep_runs_a_tiny_configuration_and_plots_it(digits, tmp_path):
    pytest.importorskip("matplotlib")
    from fastscratch import plots

    points = bench.sweep(widths=(8, 32), batch_sizes=(32,), frameworks=("fastscratch-numpy", "jax"),
                         dataset="digits", epochs=2, warmup=1, seconds=1e-7, sgemm_seconds=0.01)
    assert [(p.width, p.batch_size) for p in points] == [(8, 32), (32, 32)]
    for p in points:
        assert p.rows == 4 * 32 and p.n_train == len(digits[0]) and p.gemm == (32, 64, p.width)
        assert p.sgemm[0] > 0 and p.sgemm_threads >= 1
        numpy_result = p.results[0]
        assert numpy_result.ok and numpy_result.n_train == p.rows and numpy_result.gflops > 0
        assert numpy_result.workload.hidden == (p.width, p.width)
        assert math.isnan(numpy_result.test_accuracy)  # the sweep measures speed only
    lines = bench.format_sweep_table(points)
    assert "SGEMM GFLOP/s" in lines[0] and "vs jax" in lines[0] and len(lines) == 2 + 4
    plots.plot_scaling(points, tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads(json.dumps([p.to_dict() for p in points], default=str))[1]["width"] == 32
    with pytest.raises(ValueError, match="full batch"):
        bench.sweep(widths=(8,), batch_sizes=(None,), dataset="digits")


def test_bench_sweep_from_the_command_line(tmp_path):
    env = dict(os.environ, FASTSCRATCH_BENCH_DATASET="mnist-sample")
    run = subprocess.run([sys.executable, "-m", "fastscratch", "bench", "--sweep", "--widths", "8,16",
                          "--batch-sizes", "64", "--frameworks", "numpy", "--epochs", "1", "--warmup", "0",
                          "--sweep-seconds", "0.0000001", "--json", str(tmp_path / "s.json"),
                          "--markdown", str(tmp_path / "s.md")], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr
    assert "Rows per timed epoch" in run.stdout and "a fixed number of steps" in run.stdout
    assert "SGEMM m x k x n" in run.stdout and "64x784x8" in run.stdout
    record = json.loads((tmp_path / "s.json").read_text())
    assert [p["width"] for p in record["sweep"]] == [8, 16] and record["sweep"][0]["rows"] == 256
    assert "| 16 | 64 | 256 |" in (tmp_path / "s.md").read_text()
    for args, message in ((["--hidden", "32"], "--hidden does not apply"), (["--batch-sizes", "full"], "'full'"),
                          (["--memory"], "different runs")):
        bad = subprocess.run([sys.executable, "-m", "fastscratch", "bench", "--sweep", *args], capture_output=True,
                             text=True, timeout=120, env=env)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr


def test_a_group_times_its_sgemm_reference_after_every_round(digits):
    """run_group(sgemm=True): the reference product at the group's shape (the pass's rows x
    n0, n0 x n1) is timed once per round, and the table's share is of that median."""
    workloads = [bench.Workload(framework="fastscratch-numpy", batch_size=100, dataset="digits", hidden=(16, 8))]
    calls = []
    original = bench.sgemm_rate

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    bench.sgemm_rate = counting
    try:
        [result] = bench.run_group(workloads, epochs=3, warmup=0, data=digits, sgemm=True)
    finally:
        bench.sgemm_rate = original
    assert calls == [(100, 64, 16)] * 3 and result.sgemm_gemm == (100, 64, 16)
    assert result.sgemm[1] <= result.sgemm[0] <= result.sgemm[2]
    row = bench.table_rows([result], sgemm=(1e9, 1e9, 1e9))[0]
    assert row[5] == f"{result.gflops / result.sgemm[0]:.0%}"  # the group's own reference, not the argument
    assert bench.sgemm_lines([result])[0].startswith("batch 100: (100x64)x(64x16) ")


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("framework", [f for f in bench.FRAMEWORKS if f != "fastscratch-numpy"])
def test_every_framework_maps_every_activation(digits, framework, activation):
    """Each framework builds the registry's equivalent of each activation: on shared batches an
    epoch ends where fastscratch's does, to float32 round-off."""
    _require(framework)
    make = lambda f: bench.make_trainer(bench.Workload(  # noqa: E731
        framework=f, batch_size=100, dataset="digits", hidden=(16,), seed=4, batches="shared",
        activation=activation), digits)
    reference, other = make("fastscratch-numpy"), make(framework)
    for trainer in (reference, other):
        trainer.epoch()
    expected = reference.parameters()
    scale = max(float(np.abs(p).max()) for p in expected)
    assert max(float(np.abs(a - b).max()) for a, b in zip(other.parameters(), expected)) < 1e-4 * scale


def test_a_workload_names_a_registered_activation():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        bench.Workload(activation="swish")


@pytest.mark.parametrize("framework", [f for f in bench.FRAMEWORKS if f != "fastscratch-numpy"])
def test_shared_batches_make_every_framework_train_alike(digits, framework):
    """batches="shared": every framework replays the permutations fastscratch's generator draws,
    so after two epochs from the same start its weights are fastscratch's to float32 round-off;
    with its own shuffling they are not (so the check can fail)."""
    _require(framework)
    make = lambda f, batches: bench.make_trainer(  # noqa: E731
        bench.Workload(framework=f, batch_size=100, dataset="digits", hidden=(16,), seed=4, batches=batches), digits)
    reference, shared, own = make("fastscratch-numpy", "shared"), make(framework, "shared"), make(framework, "own")
    for _ in range(2):
        for trainer in (reference, shared, own):
            trainer.epoch()
    expected = reference.parameters()
    scale = max(float(np.abs(p).max()) for p in expected)
    gap = max(float(np.abs(a - b).max()) for a, b in zip(shared.parameters(), expected))
    assert gap < 1e-4 * scale, gap
    if not framework.startswith("fastscratch-"):  # fastscratch's own shuffling (any backend's) is the shared one
        assert max(float(np.abs(a - b).max()) for a, b in zip(own.parameters(), expected)) > 1e-3 * scale


def test_a_framework_that_fails_is_a_failed_row_and_the_others_keep_their_results(monkeypatch):
    """A first run on new hardware may break one framework (a CUDA library clash, out of memory):
    its error becomes that row's status, and every other framework of the group is still timed."""
    _require("fastscratch-numba")

    class Breaks(bench.FastscratchTrainer):
        epochs = 0

        def epoch(self):
            Breaks.epochs += 1
            if Breaks.epochs == 3:  # after the warm-up and one timed round
                raise RuntimeError("CUDA error: out of memory\n(planted)")
            return super().epoch()

    monkeypatch.setitem(bench._TRAINERS, "fastscratch-numpy", Breaks)
    workloads = [bench.Workload(framework=f, batch_size=500, dataset="mnist-sample", hidden=(8,))
                 for f in ("fastscratch-numpy", "fastscratch-numba")]
    broken, fine = bench.run_group(workloads, epochs=3, warmup=1)
    assert broken.status == "failed: RuntimeError: CUDA error: out of memory (planted)"
    assert len(broken.epoch_seconds) == 1 and not broken.ok
    assert fine.ok and len(fine.epoch_seconds) == 3 and fine.test_accuracy > 0.5
