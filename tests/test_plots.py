"""plot_cost / plot_accuracies: Figures, PNG files, and a clear message without matplotlib."""

import sys

import numpy as np
import pytest

from fastscratch import NeuralNetwork

matplotlib = pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def trained(blobs):
    X, y = blobs
    nn = NeuralNetwork([4, 6, 3], seed=0)
    nn.fit(X, y, X, y, epochs=5, verbose=False)
    return nn


@pytest.mark.parametrize("method, lines, ylabel", [("plot_cost", 2, "cross-entropy cost"),
                                                   ("plot_accuracies", 2, "accuracy")])
def test_plots_are_labelled_figures_and_pngs(trained, tmp_path, method, lines, ylabel):
    path = tmp_path / f"{method}.png"
    fig = getattr(trained, method)(path)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == ylabel and ax.get_title()
    assert len(ax.get_lines()) == lines
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1, 2, 3, 4, 5])
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (700, 450)
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind


def test_without_test_data_only_the_training_curve(blobs):
    X, y = blobs
    nn = NeuralNetwork([4, 6, 3], seed=0)
    nn.fit(X, y, epochs=3, verbose=False)
    assert len(nn.plot_accuracies().axes[0].get_lines()) == 1


def test_missing_matplotlib_names_the_extra(trained, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib...` fail
    with pytest.raises(ImportError, match=r"fastscratch\[plot\]"):
        trained.plot_cost()


def test_a_framework_has_one_colour_in_every_benchmark_figure(digits):
    """Throughput and time-to-accuracy figures of different framework sets draw each framework in
    the same colour (matplotlib's cycle would give it the colour of its place in each figure)."""
    from fastscratch.tools import bench
    from fastscratch import plots

    def workloads(frameworks, batch):
        return [bench.Workload(framework=f, batch_size=batch, dataset="digits", hidden=(16,)) for f in frameworks]

    timed = bench.run_group(workloads(["fastscratch-numpy", "fastscratch-numba"], 64), epochs=1, warmup=0,
                            data=digits)
    reached = bench.time_to_accuracy_group(workloads(["fastscratch-numpy", "fastscratch-numba"], 64), target=0.5, max_epochs=2,
                                           data=digits)
    figures = [plots.plot_throughput(timed, order=bench.FRAMEWORKS),
               plots.plot_accuracy_vs_time(reached, order=bench.FRAMEWORKS)]
    colours = [{line.get_label().split()[0]: line.get_color() for line in fig.axes[0].get_lines()} for fig in figures]
    assert colours[0]["fastscratch-numba"] == colours[1]["fastscratch-numba"] != colours[0]["fastscratch-numpy"]
