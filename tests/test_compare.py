"""``fastscratch.compare`` / ``fastscratch compare``: the report directory and its contents."""

from __future__ import annotations

import json
import os
import statistics

import numpy as np
import pytest

import fastscratch
from fastscratch import available_backends
from fastscratch.tools.cli import main as cli_main
from fastscratch.tools.compare import RESULT_KEYS, RUN_KEYS, compare

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _has_tensorflow() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def _check_png(path):
    with open(path, "rb") as f:
        head = f.read(8)
    assert head == PNG_MAGIC and os.path.getsize(path) > 1000, path


@pytest.fixture(scope="module")
def small(digits):
    """A part of the 8x8 digits: enough for a few quick epochs, as (X_train, y_train, X_test, y_test)."""
    X_train, y_train, X_test, y_test = digits
    return X_train[:600], y_train[:600], X_test[:200], y_test[:200]


@pytest.fixture(scope="module")
def report(small, tmp_path_factory):
    """One compare run with two batch sizes, shared by the tests that read its report."""
    out = tmp_path_factory.mktemp("report")
    lines = []
    results = compare(small, out_dir=out, hidden=[32], epochs=3, batch_sizes=[64, 200], lr=0.1, seed=1,
                      log=lines.append)
    return out, results, lines


def test_report_files_exist_and_parse(report):
    out, results, lines = report
    names = sorted(os.listdir(out))
    assert names == sorted(["report.md", "results.json", "loss.png", "accuracy_vs_time.png",
                            "seconds_per_epoch.png"]), names  # no temporary files left behind
    for png in ("loss.png", "accuracy_vs_time.png", "seconds_per_epoch.png"):
        _check_png(out / png)
    saved = json.loads((out / "results.json").read_text())
    assert tuple(saved) == RESULT_KEYS
    assert saved["files"] == results["files"] and "report.md" in saved["files"]
    frameworks = len(available_backends()) + _has_tensorflow()
    assert len(saved["runs"]) == 2 * frameworks
    for run in saved["runs"]:
        assert tuple(run) == RUN_KEYS
        assert run["device"] and run["batch_size"] in (64, 200)
        assert len(run["history"]["epoch"]) == 1 + 3  # the warm-up epoch, then the timed ones
        t = run["seconds_per_epoch"]
        assert 0 < t["min"] <= t["median"] <= t["max"]
        # the warm-up epoch (Keras' graph tracing) is trained but kept out of the timings
        assert run["warmup_seconds"] == run["history"]["seconds"][:1]
        assert t["median"] == statistics.median(run["history"]["seconds"][1:])
        assert (t["min"], t["max"]) == (min(run["history"]["seconds"][1:]), max(run["history"]["seconds"][1:]))
        assert 0 <= run["final"]["test_accuracy"] <= 1
    assert saved["settings"]["architecture"] == [64, 32, 10]
    assert saved["environment"]["cpu_count"] == os.cpu_count()
    assert any("Report written" in line for line in lines)


def test_report_table_lists_every_run(report):
    out, results, _ = report
    text = (out / "report.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == 1 + len(results["runs"])  # header + one row per run
    for run in results["runs"]:
        assert any(line.startswith(f"| {run['name']} | {run['device']} | {run['batch_size']} |") for line in table)
    assert "BLAS" in text and "numpy" in text
    for png in ("loss.png", "accuracy_vs_time.png", "seconds_per_epoch.png"):
        assert f"({png})" in text


def test_keras_runs_the_same_training(report):
    """Same start, same batches: Keras' per-epoch losses match fastscratch's closely."""
    if not _has_tensorflow():
        pytest.skip("the keras extra (tensorflow-cpu) is not installed")
    _, results, _ = report
    for batch in (64, 200):
        runs = {r["framework"] + r["backend"]: r for r in results["runs"] if r["batch_size"] == batch}
        keras = next(r for r in runs.values() if r["framework"] == "tf.keras")
        assert keras["device"].startswith(("cpu", "gpu"))
        for r in runs.values():
            np.testing.assert_allclose(r["history"]["cost"], keras["history"]["cost"], rtol=1e-4)
            np.testing.assert_allclose(r["history"]["test_accuracy"], keras["history"]["test_accuracy"], atol=0.011)


def test_no_warmup_times_every_epoch(small, tmp_path):
    results = compare(small, out_dir=tmp_path, hidden=[8], epochs=2, warmup=0, batch_sizes=[100], keras=False,
                      plots=False, log=None)
    for run in results["runs"]:
        assert run["warmup_seconds"] == [] and len(run["history"]["seconds"]) == 2
        assert run["seconds_per_epoch"]["median"] == statistics.median(run["history"]["seconds"])
    assert "0 warm-up + 2 timed epochs" in (tmp_path / "report.md").read_text()


def test_public_name_is_the_function():
    assert fastscratch.compare is compare


def test_cli_compare_without_keras(tmp_path, capsys):
    out = tmp_path / "cli-report"
    code = cli_main(["compare", "--dataset", "digits", "--hidden", "16", "--epochs", "1", "--batch-sizes", "full",
                     "--no-keras", "--out", str(out), "--quiet"])
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out / "report.md")
    saved = json.loads((out / "results.json").read_text())
    assert [r["framework"] for r in saved["runs"]] == ["fastscratch"] * len(available_backends())
    assert saved["runs"][0]["batch_size"] == saved["dataset"]["n_train"]  # full batch
    assert "keras=False" in saved["notes"][0]
    assert not (out / "seconds_per_epoch.png").exists()  # one batch size: no such plot
    _check_png(out / "loss.png")


def test_cli_reports_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["compare", "--batch-sizes", "0"])
    assert exit_info.value.code == 2
    (tmp_path / "file").write_text("x")
    assert cli_main(["compare", "--dataset", "digits", "--out", str(tmp_path / "file"), "--no-keras"]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_without_tensorflow_keras_is_noted_or_required(small, tmp_path, monkeypatch):
    import fastscratch.integrations.keras as ref

    def missing():
        raise ImportError("no tensorflow here; install it with `pip install 'fastscratch[keras]'`")

    monkeypatch.setattr(ref, "import_tensorflow", missing)
    results = compare(small, out_dir=tmp_path / "a", hidden=[8], epochs=1, batch_sizes=None, plots=False, log=None)
    assert all(r["framework"] == "fastscratch" for r in results["runs"])
    assert "fastscratch[keras]" in results["notes"][0]
    assert "fastscratch[keras]" in (tmp_path / "a" / "report.md").read_text()
    assert sorted(os.listdir(tmp_path / "a")) == ["report.md", "results.json"]
    with pytest.raises(ImportError, match="keras"):
        compare(small, out_dir=tmp_path / "b", epochs=1, keras=True, log=None)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"batch_sizes": [0]}, ValueError, "batch size"),
    ({"batch_sizes": [32, 32]}, ValueError, "twice"),
    ({"batch_sizes": "32"}, TypeError, "batch_sizes"),
    ({"hidden": "128"}, TypeError, "hidden"),
    ({"hidden": [0]}, ValueError, "hidden"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
    ({"activation": "gelu"}, ValueError, "activation"),
    ({"backends": ["cuda"]}, ValueError, "backend"),
    ({"keras": "maybe"}, ValueError, "keras"),
    ({"device": "tpu"}, ValueError, "device"),
    ({"epochs": 0}, ValueError, "epochs"),
    ({"lr": float("nan")}, ValueError, "lr"),
    ({"dtype": "float16"}, ValueError, "dtype"),
    ({"seed": -1}, ValueError, "seed"),
    ({"warmup": -1}, ValueError, "warmup"),
])
def test_bad_settings_are_refused_before_training(small, tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        compare(small, out_dir=tmp_path / "r", log=None, **kwargs)
    assert not (tmp_path / "r").exists()


def test_bad_dataset_is_refused(tmp_path):
    with pytest.raises(TypeError, match="dataset"):
        compare(42, out_dir=tmp_path, log=None)
    with pytest.raises(ValueError, match="unknown dataset"):
        compare("cifar", out_dir=tmp_path, log=None)
    with pytest.raises(ValueError, match="shape"):
        compare((np.zeros(10), np.zeros(10), np.zeros(10), np.zeros(10)), out_dir=tmp_path, log=None)
