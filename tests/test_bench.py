"""The benchmark workload module: records are sane, missing frameworks are skipped, not fatal.

No speed is asserted here (timings belong in benchmarks, not unit tests).
"""

import gzip
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from fastscratch import bench


def _data(n=300, n_features=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, n_features), dtype=np.float32)
    y = (X[:, 0] > 0.5).astype(np.intp) + 2 * (X[:, 1] > 0.5)
    return X, y, X[:50], y[:50]


def test_flop_count_matches_the_design_document():
    assert bench.flops_per_sample((784, 128, 64, 10)) == 454_400
    assert bench.flops_per_sample((784, 128, 64, 10)) * 60_000 == pytest.approx(27.3e9, rel=2e-3)  # "27.3 GFLOP"
    assert bench.flops_per_sample((5, 3)) == 2 * 2 * 5 * 3  # one layer: no input gradient


@pytest.mark.parametrize("framework", ["fastscratch-numpy", "fastscratch-numba"])
@pytest.mark.parametrize("batch", [32, None])
def test_a_fastscratch_workload_gives_a_complete_record(framework, batch):
    workload = bench.Workload(dataset="synthetic", architecture=(12, 8, 4), framework=framework, batch_size=batch,
                              epochs=2, warmup_epochs=1)
    result = bench.run_workload(workload, _data())
    if framework == "fastscratch-numba" and result.status.startswith("skipped"):
        pytest.skip(result.status)
    assert result.status == "ok", result.status
    assert len(result.seconds) == 2 and all(s > 0 for s in result.seconds)
    assert result.minimum <= result.median <= result.maximum
    assert result.samples_per_second == pytest.approx(300 / result.median)
    assert result.gflops == pytest.approx(bench.flops_per_sample((12, 8, 4)) * 300 / result.median / 1e9)
    assert 0 <= result.test_accuracy <= 1 and 0 <= result.train_accuracy <= 1
    assert result.versions["numpy"] == np.__version__
    record = json.loads(json.dumps(result.to_dict()))  # JSON-able as it is
    assert record["workload"]["framework"] == framework and record["median"] == result.median
    if framework == "fastscratch-numba":
        assert result.compile_seconds >= 0


@pytest.mark.parametrize("framework, module", [("torch", "torch"), ("tf.keras", "tensorflow")])
def test_a_missing_framework_is_skipped_with_a_reason(monkeypatch, framework, module):
    monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    result = bench.run_workload(bench.Workload(architecture=(12, 4), framework=framework, epochs=1), _data())
    assert result.status == f"skipped: {module} not installed"
    assert not result.ok and math.isnan(result.median)
    row = bench.ratio_table([result])[0]
    assert row["status"].startswith("skipped") and "skipped" in bench.format_table([row])


def test_unknown_framework_and_mismatched_data_are_refused():
    with pytest.raises(ValueError, match="unknown framework"):
        bench.run_workload(bench.Workload(framework="caffe"), _data())
    with pytest.raises(ValueError, match="12 features"):
        bench.run_workload(bench.Workload(architecture=(784, 10)), _data())


def test_ratios_are_taken_against_the_same_batch_size():
    def fake(framework, batch, seconds):
        w = bench.Workload(framework=framework, batch_size=batch)
        return bench.Result(w, seconds=seconds, n_samples=1000, flop_per_sample=100)

    results = [fake("fastscratch-numba", 128, [1.0, 2.0, 3.0]), fake("torch", 128, [4.0]),
               fake("tf.keras", 128, [8.0]), fake("torch", 32, [100.0])]
    rows = bench.ratio_table(results, sgemm_gflops=1e-3)
    assert rows[0]["median_s"] == 2.0 and rows[0]["min_s"] == 1.0 and rows[0]["max_s"] == 3.0
    assert rows[0]["vs_torch"] == 0.5 and rows[0]["vs_keras"] == 0.25
    assert rows[0]["sgemm_fraction"] == pytest.approx(100 * 1000 / 2.0 / 1e9 / 1e-3)
    assert "0.50" in bench.format_table(rows)


def test_sgemm_rate_reports_a_positive_rate():
    rate = bench.sgemm_rate(16, 32, 16, seconds=0.05)
    assert rate["gflops_min"] <= rate["gflops"] <= rate["gflops_max"] and rate["gflops"] > 0


def _write_idx(path: Path, array: np.ndarray, magic_kind=0x08):
    header = struct.pack(">HBB", 0, magic_kind, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_the_stopgap_idx_reader(tmp_path):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    labels = np.array([1, 2, 9])
    for prefix in ("train", "t10k"):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    X, y, X_test, y_test = bench._load_debian_fashion_mnist(tmp_path)
    assert X.shape == (3, 784) and X.dtype == np.float32 and X.max() == 1.0
    np.testing.assert_array_equal(y, labels)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, magic_kind=0x0D)  # floats, not bytes
    with pytest.raises(ValueError, match="not an IDX file"):
        bench._load_debian_fashion_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        bench._load_debian_fashion_mnist(tmp_path / "absent")


def test_the_script_prints_a_table_and_writes_json(tmp_path, capsys):
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_epoch.py"
    namespace = {"__name__": "bench_epoch"}
    exec(compile(script.read_text(), str(script), "exec"), namespace)  # noqa: S102
    out = tmp_path / "r.json"
    code = namespace["main"](["--dataset", "digits", "--batch-sizes", "64,full", "--epochs", "1",
                              "--warmup-epochs", "0", "--frameworks", "fastscratch-numpy", "--sgemm-seconds", "0.05",
                              "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "fastscratch-numpy" in text and "SGEMM" in text and "full" in text
    records = json.loads(out.read_text())
    assert [r["workload"]["batch_size"] for r in records["results"]] == [64, None]
