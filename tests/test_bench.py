"""scripts/bench_epoch.py, the thread-count front end over fastscratch.bench: a smoke run.

No speed is asserted (timings belong in benchmarks, not unit tests); the workload
module itself is tested with the other front ends (tests/benchmarks, test_cli).
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastscratch import bench, training

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_epoch.py"


def _script():
    namespace = {"__name__": "bench_epoch"}
    exec(compile(SCRIPT.read_text(), str(SCRIPT), "exec"), namespace)  # noqa: S102
    return namespace["main"]


def test_the_script_prints_tables_per_thread_count_and_writes_json(tmp_path, capsys):
    pytest.importorskip("threadpoolctl")
    out = tmp_path / "r.json"
    code = _script()(["--dataset", "digits", "--batch-sizes", "64,full", "--epochs", "1", "--warmup", "0",
                      "--frameworks", "fastscratch-numpy,fastscratch-numba", "--threads", "auto,1",
                      "--sgemm-seconds", "0.05", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "SGEMM" in text and "threads: 1" in text and "threads: auto" in text
    assert "ratios to the fastest" in text
    records = json.loads(out.read_text())["results"]
    assert [(r["workload"]["batch_size"], r["threads_asked"]) for r in records][:2] == [(64, None), (64, None)]
    assert len(records) == 8
    assert training.THREADS_OVERRIDE is None  # put back after the one-thread runs
    numba = [r for r in records if r["workload"]["framework"] == "fastscratch-numba"]
    if numba[0]["status"] == "ok":
        assert numba[0]["compile_seconds"] >= 0 and "fastscratch BLAS threads" in numba[0]["threads"]
        assert "fastscratch BLAS threads during epochs: 1" in numba[1]["threads"]  # --threads 1


def test_fastscratch_results_carry_compile_time_apart_from_epochs():
    pytest.importorskip("numba")
    _, data = bench.load_data("digits")
    result = bench.run(bench.Workload(framework="fastscratch-numba", batch_size=64, dataset="digits"),
                       epochs=1, warmup=1, data=data)
    assert result.ok and not math.isnan(result.compile_seconds)
    assert "fastscratch BLAS threads during epochs" in result.threads


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
