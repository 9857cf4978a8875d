"""Training curves as matplotlib Figures (the ``plot`` extra).

Figures are built with matplotlib's object API and the Agg canvas, never
pyplot, so plotting works without a display and leaves no global state.
"""

from __future__ import annotations

import os
from os import PathLike

from ._atomic import atomic_write
from .history import History


def _figure(title: str, ylabel: str):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: install it with `pip install 'fastscratch[plot]'`") from exc
    fig = Figure(figsize=(7, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _finish(fig, path: str | PathLike | None):
    if path is not None:
        with atomic_write(path) as f:
            fig.savefig(f, format="png")
    return fig


def _require_history(history: History) -> None:
    if len(history) == 0:
        raise ValueError("nothing to plot: the model has not been trained yet (call fit first)")


def plot_cost(history: History, path: str | PathLike | None = None):
    """Training cost (and test cost when recorded) per epoch; PNG at ``path`` if given."""
    _require_history(history)
    fig, ax = _figure("Cost per epoch", "cross-entropy cost")
    ax.plot(history.epoch, history.cost, label="train")
    if any(c == c for c in history.test_cost):  # any non-NaN
        ax.plot(history.epoch, history.test_cost, label="test")
    ax.legend()
    return _finish(fig, path)


def plot_accuracies(history: History, path: str | PathLike | None = None):
    """Train and test accuracy per epoch; PNG at ``path`` if given."""
    _require_history(history)
    fig, ax = _figure("Accuracy per epoch", "accuracy")
    ax.plot(history.epoch, history.train_accuracy, label="train")
    if any(a == a for a in history.test_accuracy):
        ax.plot(history.epoch, history.test_accuracy, label="test")
    ax.legend(loc="lower right")
    return _finish(fig, path)
