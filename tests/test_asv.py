"""The asv suite: its configuration is valid, a history works, and the regression gate fires.

The quick flow -- ``asv machine --yes``, ``asv run --python=same --quick --set-commit-hash
HEAD`` on the embedded MNIST sample, ``asv publish`` -- runs here with the repository's
``asv.conf.json``, except that results, environments and the site go to a temporary folder
(a copy of the configuration with those three paths changed), so the test leaves nothing in
the checkout.  It must end with a graph per benchmark holding this commit's numbers: with
``--python=same`` asv saves results only when told the commit (``--set-commit-hash``), and
publishes only commits of the configured branches, and either mistake gives an empty site.
Benchmarks of frameworks that are not installed must be reported as skipped, never failed.

The regression gate (docs/benchmarks.md: ``asv continuous --factor 1.25 -b RATIO main HEAD``) runs on a throwaway
clone with two more commits -- one that changes nothing, one that makes the epoch 1.5x slower --
each installed by asv in a virtualenv of its own: it must pass on the first and fail on the second.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("asv")
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def asv(*args, env, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "asv", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1800)


def _read_config(repo: Path = REPO) -> dict:
    text = (repo / "asv.conf.json").read_text()
    return json.loads("\n".join(line for line in text.splitlines() if not line.strip().startswith("//")))


def _config_in(tmp_path: Path, repo: Path = REPO, **changes) -> Path:
    """``repo``'s asv.conf.json with results, environments and HTML under ``tmp_path``."""
    config = _read_config(repo)
    config.update(repo=str(repo), benchmark_dir=str(repo / config["benchmark_dir"]),
                  results_dir=str(tmp_path / "results"), env_dir=str(tmp_path / "env"),
                  html_dir=str(tmp_path / "html"), **changes)
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
    assert len(statuses) >= 10, output  # every benchmark reported (10 today)
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
    accuracies = [v for v in results["bench_training.Accuracy.track_test_accuracy"]["result"] if v == v]
    assert accuracies and all(v == round(v, 2) for v in accuracies), accuracies
    # the in-process ratios are stored with their spread, as time_ benchmarks are
    floor = results["bench_training.Ratios.track_epoch_over_gemm_floor"]
    assert all(v > 0 for v in floor["result"]), floor
    assert all(a <= v <= b for a, v, b in zip(floor["stats_q_25"], floor["result"], floor["stats_q_75"])), floor

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


#: what the gate test's second commit appends to fastscratch/training/epoch.py: every epoch
#: sleeps half as long again as it trained, so it takes 1.5 times as long
SLOWDOWN = """

# (a test's injected regression) every epoch takes 1.5 times as long
import time as _time

_run_epoch_at_full_speed = run_epoch


def run_epoch(*args, **kwargs):
    start = _time.perf_counter()
    answer = _run_epoch_at_full_speed(*args, **kwargs)
    _time.sleep(0.5 * (_time.perf_counter() - start))
    return answer
"""
#: where the regression gate is documented (the Benchmarks page of the docs)
BENCHMARKS_PAGE = REPO / "docs" / "benchmarks.md"


def documented_gate() -> tuple[str, str]:
    """The factor and the ``-b`` selection of the documented quick gate, ``asv continuous --factor F
    -b "REGEX" main HEAD`` on docs/benchmarks.md: the test runs the command as the page gives it."""
    text = BENCHMARKS_PAGE.read_text(encoding="utf-8")
    match = re.search(r'^asv continuous --factor (\S+) -b "([^"]+)" main HEAD', text, re.M)
    assert match, "docs/benchmarks.md gives no asv continuous gate with -b"
    return match.group(1), match.group(2)


def test_documented_gate_parses():
    """The gate the slow test below runs is on the Benchmarks page, with a factor and a selection
    that names the Numba epoch's ratio to its GEMM floor at batch 32."""
    factor, selection = documented_gate()
    assert float(factor) > 1
    assert selection.startswith("Ratios.track_epoch_over_gemm_floor") and "numba" in selection and "32" in selection


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_regression_gate_fails_on_a_slower_epoch_and_passes_on_no_change(tmp_path):
    """The documented gate (docs/benchmarks.md), ``asv continuous --factor 1.25 -b ... BASE HEAD``, on a throwaway clone: BASE, SAME (an empty
    commit: the same code) and SLOWER (the epoch 1.5x slower), each installed by asv in its own
    virtualenv (numba, scipy, threadpoolctl: JAX is not needed for the gate's ratio).  The gate
    must exit 0 for BASE -> SAME and 1 for BASE -> SLOWER, naming the ratio."""
    repo = tmp_path / "repo"
    _git(tmp_path, "clone", "--quiet", str(REPO), str(repo))
    # the suite as it is in this checkout (asv reads benchmarks from the working tree, not commits)
    shutil.rmtree(repo / "benchmarks")
    shutil.copytree(REPO / "benchmarks", repo / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))
    for who in (("user.name", "gate test"), ("user.email", "gate@test.invalid")):
        _git(repo, "config", *who)
    base = _git(repo, "rev-parse", "HEAD")
    _git(repo, "commit", "--quiet", "--allow-empty", "-m", "no change")
    same = _git(repo, "rev-parse", "HEAD")
    epoch = repo / "fastscratch" / "training" / "epoch.py"
    epoch.write_text(epoch.read_text() + SLOWDOWN)
    _git(repo, "commit", "--quiet", "-am", "a 1.5x slower epoch")
    slower = _git(repo, "rev-parse", "HEAD")

    env = dict(os.environ, HOME=str(tmp_path))
    env.pop("FASTSCRATCH_ASV_MATRIX", None)
    config = _config_in(tmp_path, repo, matrix={"req": {"numba": [""], "scipy": [""], "threadpoolctl": [""]}})
    assert asv("machine", "--yes", "--machine", "gate", env=env, cwd=repo).returncode == 0

    factor, selection = documented_gate()

    def gate(head: str) -> subprocess.CompletedProcess:
        return asv("continuous", "--config", config, "--machine", "gate", "--factor", factor, "-b", selection,
                   "--show-stderr", base, head, env=env, cwd=repo)

    unchanged = gate(same)
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert "BENCHMARKS NOT SIGNIFICANTLY CHANGED" in unchanged.stdout, unchanged.stdout

    regressed = gate(slower)
    output = regressed.stdout + regressed.stderr
    assert regressed.returncode == 1, output
    assert "PERFORMANCE DECREASED" in regressed.stdout, output
    # asv's table: | Change | Before | After | Ratio | Benchmark (Parameter) |, "+" for worse
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in regressed.stdout.splitlines()
            if re.match(r"\|\s*\+\s*\|", line)]
    worse = {row[4].split("(")[0]: float(row[3]) for row in rows}
    assert set(worse) == {"bench_training.Ratios.track_epoch_over_gemm_floor"}, output
    assert all(1.3 < ratio < 1.8 for ratio in worse.values()), worse  # the 1.5x, as measured


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
