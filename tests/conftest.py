import os
import subprocess
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# CI gets more examples; a local run stays quick.  The profile is chosen by
# HYPOTHESIS_PROFILE (default: "ci" under CI=true, else "dev").
settings.register_profile("dev", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits scaled to [0, 1], split 80/20 stratified: (X_train, y_train, X_test, y_test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        (X / 16.0).astype(np.float32), y, test_size=0.2, random_state=0, stratify=y)
    return X_train, y_train, X_test, y_test


@pytest.fixture
def blobs():
    """A small, easy 3-class problem: (X, y) with 4 features, 120 samples."""
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, (3, 4))
    y = np.repeat(np.arange(3), 40)
    X = (centers[y] + rng.normal(0, 1, (120, 4))).astype(np.float32)
    return X, y


@pytest.fixture
def rejection_cost():
    """``measure(load, path, match) -> (seconds, peak_bytes)`` for a ``load(path)`` that must
    raise ValueError matching ``match``: the best time of 5 runs (noise on a shared machine
    only ever adds time) and the tracemalloc peak of one more run."""
    def measure(load, path, match):
        times = []
        for _ in range(5):
            started = time.perf_counter()
            with pytest.raises(ValueError, match=match):
                load(path)
            times.append(time.perf_counter() - started)
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match=match):
                load(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return min(times), peak
    return measure


#: pytest-benchmark's table, unless the command line says otherwise: three columns and short
#: names (about 92 characters wide instead of its default ten columns' 210)
BENCHMARK_COLUMNS = ["median", "min", "max"]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Benchmarks measure only when asked (--benchmark-only / --benchmark-enable); in a plain
    run, as in CI, each runs once as a test.  The table gets :data:`BENCHMARK_COLUMNS` and
    short names unless ``--benchmark-columns`` / ``--benchmark-name`` are given.  Must run
    before pytest-benchmark reads the options."""
    options = config.option
    if not hasattr(options, "benchmark_disable"):  # pytest-benchmark is not installed
        return
    if not (options.benchmark_only or options.benchmark_enable):
        options.benchmark_disable = True
    given = " ".join(map(str, config.invocation_params.args))
    if "--benchmark-columns" not in given:
        options.benchmark_columns = list(BENCHMARK_COLUMNS)
    if "--benchmark-name" not in given:
        options.benchmark_name = "short"


REPO = Path(__file__).resolve().parents[1]
#: what running Python and pytest leaves in a checkout anyway (caches), never test output
_CACHES = ("__pycache__", ".pytest_cache", ".hypothesis", ".venv", ".egg-info")
_untracked_at_start: set[str] | None = None


def _untracked() -> set[str] | None:
    """Paths in the checkout that git does not track, ignored ones included (an ignored folder
    as one entry), caches left out; None outside a git checkout."""
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=REPO, capture_output=True,
                                text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if status.returncode != 0:
        return None
    paths = {line[3:] for line in status.stdout.splitlines() if line[:2] in ("??", "!!")}
    return {p for p in paths if not any(cache in p for cache in _CACHES)}


def pytest_sessionstart(session):
    global _untracked_at_start
    _untracked_at_start = _untracked()


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if the tests wrote files into the checkout (they must use tmp_path)."""
    if _untracked_at_start is None:
        return
    now = _untracked()
    new = sorted((now or set()) - _untracked_at_start)
    if new:
        session.config.get_terminal_writer().line(
            "error: the tests left files in the checkout (write to tmp_path instead): " + ", ".join(new), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say how many cases each fuzz target really ran (hypothesis can stop short of max_examples)."""
    lines = [f"{report.nodeid}: {value} cases" for report in terminalreporter.stats.get("passed", [])
             if report.when == "call" for name, value in report.user_properties if name == "fuzz_cases"]
    if lines:
        terminalreporter.write_sep("-", "fuzz cases run")
        for line in lines:
            terminalreporter.write_line(line)
