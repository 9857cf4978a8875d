"""The asv suite: its configuration is valid, and the README's quick history works.

The README's flow -- ``asv machine --yes``, ``asv run --python=same --quick --set-commit-hash
HEAD`` on the embedded MNIST sample, ``asv publish`` -- runs here with the repository's
``asv.conf.json``, except that results, environments and the site go to a temporary folder
(a copy of the configuration with those three paths changed), so the test leaves nothing in
the checkout.  It must end with a graph per benchmark holding this commit's numbers: with
``--python=same`` asv saves results only when told the commit (``--set-commit-hash``), and
publishes only commits of the configured branches, and either mistake gives an empty site.
Benchmarks of frameworks that are not installed must be reported as skipped, never failed.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("asv")
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def asv(*args, env):
    return subprocess.run([sys.executable, "-m", "asv", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1800)


def _config_in(tmp_path: Path) -> Path:
    """The repository's asv.conf.json with results, environments and HTML under ``tmp_path``."""
    text = (REPO / "asv.conf.json").read_text()
    config = json.loads("\n".join(line for line in text.splitlines() if not line.strip().startswith("//")))
    config.update(repo=str(REPO), benchmark_dir=str(REPO / config["benchmark_dir"]),
                  results_dir=str(tmp_path / "results"), env_dir=str(tmp_path / "env"),
                  html_dir=str(tmp_path / "html"))
    path = tmp_path / "asv.conf.json"
    path.write_text(json.dumps(config))
    return path


def _graphs(html: Path, benchmark: str) -> list[Path]:
    """The per-commit graph files asv publish wrote for ``benchmark`` (not the summary page's)."""
    return [p for p in (html / "graphs").rglob(f"{benchmark}.json") if "summary" not in p.parts]


def test_asv_quick_history_and_publish(tmp_path):
    # asv keeps its machine description in ~/.asv-machine.json: keep the user's out of it
    env = dict(os.environ, HOME=str(tmp_path), FASTSCRATCH_BENCH_DATASET="mnist-sample")
    config = _config_in(tmp_path)
    before = sorted(p.relative_to(REPO) for p in (REPO / ".asv").rglob("*")) if (REPO / ".asv").exists() else []
    machine = asv("machine", "--yes", "--machine", "smoke", env=env)
    assert machine.returncode == 0, machine.stderr
    check = asv("check", "--python=same", "--config", config, env=env)
    assert check.returncode == 0 and "No problems found" in check.stdout, check.stdout + check.stderr

    run = asv("run", "--config", config, "--python=same", "--quick", "--set-commit-hash", "HEAD", "--show-stderr",
              "--machine", "smoke", env=env)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    statuses = re.findall(r"^\[\s*[\d.]+%\] ··· (\S+)\s+(ok|failed)$", run.stdout, re.M)
    assert len(statuses) >= 9, output  # every benchmark reported (9 today)
    failed = [name for name, status in statuses if status == "failed"]
    assert not failed, output
    assert "mnist-sample" in output  # the dataset is in the parameters

    # the results were saved, for this commit, with track_* values rounded
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    saved = [p for p in (tmp_path / "results" / "smoke").glob("*.json") if p.name != "machine.json"]
    assert len(saved) == 1 and saved[0].name.startswith(head[:8]), saved
    record = json.loads(saved[0].read_text())
    assert record["commit_hash"] == head
    results = {name: dict(zip(record["result_columns"], row)) for name, row in record["results"].items()}
    rates = [v for v in results["bench_training.Epoch.track_samples_per_second"]["result"] if v == v]
    assert rates and all(v == round(v, -int(f"{v:e}".split("e")[1]) + 2) for v in rates), rates  # 3 figures
    accuracies = [v for v in results["bench_training.Accuracy.track_test_accuracy"]["result"] if v == v]
    assert accuracies and all(v == round(v, 2) for v in accuracies), accuracies

    publish = asv("publish", "--config", config, env=env)
    assert publish.returncode == 0, publish.stdout + publish.stderr
    html = tmp_path / "html"
    assert (html / "index.html").is_file()
    for benchmark in ("bench_training.Epoch.time_epoch", "bench_kernels.StepKernels.time_sgd_update"):
        graphs = _graphs(html, benchmark)
        assert graphs, f"asv publish wrote no graph for {benchmark}"
        points = [json.loads(p.read_text()) for p in graphs]
        assert any(point for series in points for point in series), points  # this commit's numbers are in it

    after = sorted(p.relative_to(REPO) for p in (REPO / ".asv").rglob("*")) if (REPO / ".asv").exists() else []
    assert after == before  # nothing written into the checkout


def test_kernel_benchmarks_warm_every_kernel_before_timing(monkeypatch):
    """asv's quick run times one call right after setup: setup must have made that call once
    already, or Numba's first-call compilation (or cache load) is what gets timed."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_kernels
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    calls = []
    timed = [name for name in vars(bench_kernels.StepKernels) if name.startswith("time_")]
    for name in timed:
        original = getattr(bench_kernels.StepKernels, name)
        monkeypatch.setattr(bench_kernels.StepKernels, name,
                            lambda self, *a, _f=original, _n=name: (calls.append(_n), _f(self, *a))[1])
    bench_kernels.StepKernels().setup("numpy", 32)
    assert sorted(calls) == sorted(timed)


def test_every_track_benchmark_has_a_unit():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_training
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    tracks = [(cls.__name__, name, member) for cls in vars(bench_training).values() if isinstance(cls, type)
              for name, member in vars(cls).items() if name.startswith("track_")]
    assert len(tracks) >= 4
    for cls, name, member in tracks:
        assert getattr(member, "unit", None), f"{cls}.{name} has no unit"
