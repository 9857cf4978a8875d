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
    short names unless ``--benchmark-columns`` / ``--benchmark-name`` are given, and
    ``--benchmark-json``'s folder is created.  Must run before pytest-benchmark reads the
    options (its own pytest_configure is trylast)."""
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
    if options.benchmark_json is not None:
        _prepare_benchmark_json(options)


def _prepare_benchmark_json(options) -> None:
    """pytest-benchmark opens ``--benchmark-json PATH`` only when the session finishes, after
    every benchmark has run, and does not create its folder: ``out/bench.json`` on a clone
    without ``out/`` ended in a FileNotFoundError and lost the run.  Create the folder now and
    make the path absolute (as pytest does for ``--junitxml``), so a test that changes the
    working directory cannot move it; a folder that cannot be created stops the run before it
    measures anything."""
    path = Path(options.benchmark_json).absolute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise pytest.UsageError(f"--benchmark-json {options.benchmark_json}: cannot create its folder: {exc}") from None
    options.benchmark_json = path


REPO = Path(__file__).resolve().parents[1]
_untracked_at_start: set[str] | None = None


def _untracked() -> set[str] | None:
    """Files in the checkout that git neither tracks nor ignores (what ``git status`` would list
    as new); None outside a git checkout.  What .gitignore lists (caches, a virtualenv,
    pytest-benchmark's ``.benchmarks/``, ``out/``) is left out, so only files a user could
    commit by mistake count."""
    try:
        listed = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "-z"], cwd=REPO,
                                capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:
        return None
    return {path for path in listed.stdout.split("\0") if path}


def pytest_sessionstart(session):
    global _untracked_at_start
    _untracked_at_start = _untracked()


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if the tests wrote files into the checkout that git would offer to commit
    (they must use tmp_path); files git ignores do not count."""
    if _untracked_at_start is None:
        return
    now = _untracked()
    new = sorted((now or set()) - _untracked_at_start)
    if new:
        message = "error: the tests left files in the checkout (write to tmp_path instead): " + ", ".join(new)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(message, red=True)  # on a line of its own, after the progress dots
        else:
            session.config.get_terminal_writer().line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say how many cases each fuzz target really ran (hypothesis can stop short of max_examples)."""
    lines = [f"{report.nodeid}: {value} cases" for report in terminalreporter.stats.get("passed", [])
             if report.when == "call" for name, value in report.user_properties if name == "fuzz_cases"]
    if lines:
        terminalreporter.write_sep("-", "fuzz cases run")
        for line in lines:
            terminalreporter.write_line(line)
