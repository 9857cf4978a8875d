"""scripts/step_shapes.py, the step-shape profile (each product of a step timed alone per engine):
a smoke run on a tiny network, the products it lists, and its refusal of an unknown engine."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "step_shapes.py"


def _load():
    spec = importlib.util.spec_from_file_location("step_shapes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_step_has_every_product_of_backprop_with_its_shape():
    products = _load().step_products([784, 128, 64, 10], 32)
    assert [label for label, _, _ in products] == [
        "forward 1", "forward 2", "forward 3", "backward 3", "backward 2", "weights 1", "weights 2", "weights 3"]
    shapes = {label: (shape, kind) for label, shape, kind in products}
    assert shapes["forward 1"] == ((32, 784, 128), "nn")
    assert shapes["backward 2"] == ((32, 64, 128), "nt")  # delta2 (32, 64) @ W2.T -> (32, 128)
    assert shapes["weights 1"] == ((784, 32, 128), "tn")  # X.T (784, 32) @ delta1 (32, 128)


def test_numpy_engines_compute_the_products_they_time():
    module = _load()
    rng = np.random.default_rng(0)
    for _, shape, kind in module.step_products([12, 8, 3], 5):
        a, b = module.operands(shape, kind, rng)
        x = a.T if kind == "tn" else a
        y = b.T if kind == "nt" else b
        assert x.shape == (shape[0], shape[1]) and y.shape == (shape[1], shape[2])


def test_smoke_run_prints_a_row_per_product_and_the_step_totals():
    run = subprocess.run([sys.executable, str(SCRIPT), "--sizes", "16,8,4", "--batch-sizes", "8",
                          "--engines", "openblas1,openblas2", "--rounds", "2", "--target-ms", "0.05"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("| 8 |")]
    assert len(rows) == 5 + 1  # 2 forward, 1 backward, 2 weight products, then the totals row
    assert "us, " in rows[-1]


def test_unknown_engine_is_a_usage_error():
    run = subprocess.run([sys.executable, str(SCRIPT), "--engines", "openblas1,mkl"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and "unknown engine(s) mkl" in run.stderr
