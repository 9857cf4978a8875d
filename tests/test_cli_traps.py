"""Traps a new user of the command line fell into, one test each: wrong words, missing choices,
two spellings of one option, silent folders, plots that mislead.  In process (``cli.main``) where
that is quick; the figures are checked by their axes, drawn on Agg."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fastscratch import NeuralNetwork, datasets
from fastscratch.tools import cli

QUICK = ["--epochs", "1", "--batch-size", "64", "--hidden", "16", "--no-progress"]


@pytest.fixture
def no_tensorflow_probe(monkeypatch):
    """``info`` without importing TensorFlow (seconds, and it stays in the process): not what these test."""
    from fastscratch.tools import system

    monkeypatch.setattr(system, "tensorflow_gpus", lambda: "TensorFlow not probed here")


# 1 ---------------------------------------------------------------------------------------------
def test_info_says_scikit_learn_is_missing_not_the_digits(monkeypatch, capsys, no_tensorflow_probe):
    for name in [m for m in sys.modules if m.startswith("sklearn.")]:  # loaded by other tests
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if not installed: its import fails
    assert cli.main(["info"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("digits"))
    assert "not found" not in line
    assert "scikit-learn is not installed" in line and "fastscratch[sklearn]" in line
    with pytest.raises(ImportError, match=r"scikit-learn is not installed.*fastscratch\[sklearn\]"):
        datasets.load_dataset("digits")  # the same words when it is loaded


# 2 ---------------------------------------------------------------------------------------------
def test_info_prints_the_optimizer_as_a_person_writes_it(tmp_path, capsys):
    sample = datasets.load_dataset()
    X, y = datasets.to_features(sample.X_train[:64]), sample.y_train[:64]
    net = NeuralNetwork([784, 8, 10], seed=0)
    net.fit(X, y, epochs=1, batch_size=32, optimizer="adam", lr=0.01, verbose=False)
    net.save(tmp_path / "m.npz")
    assert cli.main(["info", str(tmp_path / "m.npz")]) == 0
    out = capsys.readouterr().out
    assert "optimizer adam (beta1=0.9, beta2=0.999, eps=1e-07)" in out
    assert "{" not in out and "'name'" not in out
    assert "trained 1 epoch," in out  # and in the singular (trap 3)


# 3 ---------------------------------------------------------------------------------------------
def test_plural_is_singular_only_for_one():
    from fastscratch._validation import plural

    assert [plural(n, "epoch") for n in (0, 1, 2, 1000)] == ["0 epochs", "1 epoch", "2 epochs", "1,000 epochs"]
    assert plural(1, "class", "classes") == "1 class" and plural(3, "class", "classes") == "3 classes"


def test_one_epoch_is_said_in_the_singular(capsys):
    assert cli.main(["train", *QUICK]) == 0
    out = capsys.readouterr().out
    assert ", 1 epoch, backend" in out and "1 epochs" not in out


# 4 and 3 ---------------------------------------------------------------------------------------
def test_light_ground_warning_fits_a_clothing_model(tmp_path, capsys):
    """A Fashion-MNIST model's warning speaks of its own training images, not of digits; five
    files name three and "1 more file"."""
    from matplotlib import image

    net = NeuralNetwork([784, 8, 10], seed=0)
    net.data_info = {"dataset": "fashion-mnist", "class_names": [f"c{k}" for k in range(10)]}
    net.save(tmp_path / "clothes.npz")
    light = np.full((28, 28), 255, dtype=np.uint8)
    light[8:20, 10:18] = 30  # a dark garment on white, as a photograph shows it
    pngs = [tmp_path / f"shirt{k}.png" for k in range(4)]
    for png in pngs:
        image.imsave(png, light, cmap="gray", vmin=0, vmax=255)
    assert cli.main(["predict", str(tmp_path / "clothes.npz"), *map(str, pngs)]) == 0
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: 4 images with a light ground")
    assert "digit" not in warning[0] and "(fashion-mnist)" in warning[0]
    assert warning[0].count("shirt") == 3 and "and 1 more file;" in warning[0]


# 5 ---------------------------------------------------------------------------------------------
def test_compare_takes_batch_sizes_as_bench_does(capsys):
    parser = cli.build_parser()
    new = parser.parse_args(["compare", "--batch-sizes", "32,128,full"])
    assert new.batch_sizes == [32, 128, None]
    assert parser.parse_args(["bench", "--batch-sizes", "32,128,full"]).batch_sizes == new.batch_sizes
    assert capsys.readouterr().err == ""
    old = parser.parse_args(["compare", "--batch-size", "32", "128", "full"])  # still works, with a note
    assert old.batch_sizes == new.batch_sizes
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and "--batch-size" in note[0] and "deprecated" in note[0]
    assert "--batch-sizes 32,128,full" in note[0]
    with pytest.raises(SystemExit):  # not both
        parser.parse_args(["compare", "--batch-sizes", "32", "--batch-size", "64"])


def test_compare_takes_backends_comma_separated_as_bench_takes_frameworks(capsys):
    parser = cli.build_parser()
    assert parser.parse_args(["compare", "--backends", "numpy,numba"]).backends == ["numpy", "numba"]
    assert capsys.readouterr().err == ""
    assert parser.parse_args(["compare", "--backends", "numpy", "numba"]).backends == ["numpy", "numba"]
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and "deprecated" in note[0] and "--backends numpy,numba" in note[0]
    with pytest.raises(SystemExit):
        parser.parse_args(["compare", "--backends", "numbaa"])
    assert "did you mean 'numba'" in capsys.readouterr().err


# 6 ---------------------------------------------------------------------------------------------
def test_every_command_offers_the_registrys_optimizers():
    from fastscratch.optimizers import PRESETS

    parser = cli.build_parser()
    for command in ("train", "bench", "compare"):
        option = next(a for a in parser.subcommands[command]._actions if a.dest == "optimizer")
        assert list(option.choices) == list(PRESETS), command


def test_train_with_nesterov(tmp_path, capsys):
    assert cli.main(["train", *QUICK, "--optimizer", "nesterov", "--save", str(tmp_path / "m.npz")]) == 0
    assert "784-16-10, relu, nesterov," in capsys.readouterr().out
    model = NeuralNetwork.load(tmp_path / "m.npz")
    assert model.epochs_trained == 1
    assert model.optimizer.config() == {"name": "momentum", "momentum": 0.9, "nesterov": True}


# 7 ---------------------------------------------------------------------------------------------
def test_outputs_into_a_missing_folder_are_created_and_said(tmp_path, capsys, monkeypatch):
    """One rule for every output option: a missing folder is made, and a note names it."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", *QUICK, "--quiet", "--save", "models/new/m.npz"]) == 0
    assert (tmp_path / "models" / "new" / "m.npz").is_file()
    assert "--save models/new/m.npz: created the missing folder models/new" in capsys.readouterr().err
    np.save(tmp_path / "x.npy", datasets.load_dataset().X_test[:3])
    assert cli.main(["predict", "models/new/m.npz", "x.npy", "-o", "out/missing/dir/preds.csv"]) == 0
    err = capsys.readouterr().err
    assert "--output out/missing/dir/preds.csv: created the missing folder out/missing/dir" in err
    assert (tmp_path / "out" / "missing" / "dir" / "preds.csv").read_text().startswith("index,predicted")
    assert cli.main(["predict", "models/new/m.npz", "x.npy", "-o", "out/missing/dir/again.csv"]) == 0
    assert "created" not in capsys.readouterr().err  # only when it was missing
    assert cli.main(["predict", "models/new/m.npz", "nothing.npy", "-o", "other/p.csv"]) == 1
    assert not (tmp_path / "other").exists()  # a bad input leaves no new folder behind


# 8 ---------------------------------------------------------------------------------------------
def test_equal_accuracies_are_not_stretched_over_the_axis(digits, tmp_path):
    from fastscratch import plots
    from fastscratch.tools import bench
    from fastscratch.tools.compare import compare, plot_report_accuracy

    small = digits[0][:300], digits[1][:300], digits[2][:100], digits[3][:100]
    results = compare(small, out_dir=tmp_path, hidden=[8], epochs=2, warmup=0, backends=["numpy"], keras=False,
                      plots=False, log=None)
    twin = {**results["runs"][0], "name": "twin"}  # the same curve but for a rounding difference
    twin["history"] = {**twin["history"],
                       "test_accuracy": [a + 1e-9 for a in twin["history"]["test_accuracy"]]}
    results["runs"].append(twin)
    low, high = plot_report_accuracy(results, tmp_path / "accuracy_vs_time.png").axes[0].get_ylim()
    assert high - low >= plots.ACCURACY_SPAN - 1e-12 and 0 <= low and high <= 1

    result = bench.Result(workload=bench.Workload(framework="fastscratch-numpy"), dataset="digits",
                          accuracy_curve=[(0.1, 0.9), (0.2, 0.9)])
    twin = bench.Result(workload=bench.Workload(framework="fastscratch-numba"), dataset="digits",
                        accuracy_curve=[(0.1, 0.9 + 1e-9), (0.2, 0.9 + 1e-9)])
    low, high = plots.plot_accuracy_vs_time([result, twin]).axes[0].get_ylim()
    assert high - low >= plots.ACCURACY_SPAN - 1e-12


def test_an_accuracy_at_the_top_stays_inside_zero_to_one():
    from fastscratch import plots

    fig = plots.blank_figure(3, 2)
    ax = fig.add_subplot()
    ax.plot([1, 2], [1.0, 1.0 - 1e-9])  # (exactly equal values matplotlib widens itself)
    plots.widen_to_span(ax)
    low, high = ax.get_ylim()
    assert high == pytest.approx(1.0) and low == pytest.approx(1.0 - plots.ACCURACY_SPAN)


# 9 ---------------------------------------------------------------------------------------------
def test_class_distribution_legend_covers_no_bar(tmp_path):
    from matplotlib.patches import Rectangle

    from fastscratch import plots

    data = datasets.load_dataset("fashion-mnist") if datasets.locate("fashion-mnist") else datasets.load_dataset()
    rng = np.random.default_rng(0)
    y = data.y_test
    predicted = np.where(rng.random(len(y)) < 0.8, y, rng.integers(0, 10, len(y)))  # about equal counts
    fig = plots.plot_class_distribution(y, predicted, data.class_names, tmp_path / "class_distribution.png")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    bars = [p.get_window_extent(renderer) for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 2 * len(data.class_names)
    assert not any(legend.overlaps(bar) for bar in bars)
    assert fig.get_window_extent(renderer).contains(legend.x1 - 1, legend.y1 - 1)  # and it is in the picture
