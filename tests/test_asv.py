"""The asv suite: its configuration is valid and every benchmark runs (``asv run --quick``).

Runs in the current environment (``--python=same``) on the embedded MNIST sample
(``FASTSCRATCH_BENCH_DATASET=mnist-sample``) so it takes a minute or two, with
``--dry-run`` so nothing is written to ``.asv/results``.  Benchmarks of frameworks that
are not installed must be reported as skipped, never failed.
"""

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


def test_asv_check_and_quick_run(tmp_path):
    # asv keeps its machine description in ~/.asv-machine.json: keep the user's out of it
    env = dict(os.environ, HOME=str(tmp_path), FASTSCRATCH_BENCH_DATASET="mnist-sample")
    machine = asv("machine", "--yes", "--machine", "smoke", env=env)
    assert machine.returncode == 0, machine.stderr
    check = asv("check", "--python=same", env=env)
    assert check.returncode == 0 and "No problems found" in check.stdout, check.stdout + check.stderr

    run = asv("run", "--python=same", "--quick", "--dry-run", "--show-stderr", "--machine", "smoke", env=env)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    statuses = re.findall(r"^\[\s*[\d.]+%\] ··· (\S+)\s+(ok|failed)$", run.stdout, re.M)
    assert len(statuses) >= 10, output  # every benchmark reported (10 today)
    failed = [name for name, status in statuses if status == "failed"]
    assert not failed, output
    assert "mnist-sample" in output  # the dataset is in the parameters
