"""Training curves as matplotlib Figures (the ``plot`` extra).

Figures are built with matplotlib's object API and the Agg canvas, never
pyplot, so plotting works without a display and leaves no global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

import numpy as np

from .history import History
from .io.atomic import atomic_write


def blank_figure(width: float, height: float):
    """A ``width x height`` inch Figure at 100 dpi on the Agg canvas (PNG of 100x those pixels)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: install it with `pip install 'fastscratch[plot]'`") from exc
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _figure(title: str, ylabel: str):
    fig = blank_figure(7, 4.5)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def finish_figure(fig, path: str | PathLike | None):
    """Save ``fig`` as a PNG at ``path`` atomically (nothing half-written on failure) when one is
    given; return ``fig``."""
    if path is not None:
        with atomic_write(path) as f:
            fig.savefig(f, format="png")
    return fig


#: the least y-range of an accuracy axis: autoscaling would stretch a 1e-9 difference between
#: (nearly) equal accuracies over the whole axis and make equal runs look far apart
ACCURACY_SPAN = 0.01


def widen_to_span(ax, span: float = ACCURACY_SPAN, bounds: tuple[float, float] = (0.0, 1.0)) -> None:
    """Widen ``ax``'s y-limits to at least ``span`` around their middle, kept inside ``bounds``
    where the span fits there (accuracies stay in [0, 1]).  Call it after drawing."""
    low, high = ax.get_ylim()
    if high - low >= span:
        return
    middle = (low + high) / 2
    low, high = middle - span / 2, middle + span / 2
    shift = max(bounds[0] - low, 0.0) - max(high - bounds[1], 0.0)  # slide back inside the bounds
    ax.set_ylim(low + shift, high + shift)


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
    return finish_figure(fig, path)


def plot_accuracies(history: History, path: str | PathLike | None = None):
    """Train and test accuracy per epoch; PNG at ``path`` if given."""
    _require_history(history)
    fig, ax = _figure("Accuracy per epoch", "accuracy")
    ax.plot(history.epoch, history.train_accuracy, label="train")
    if any(a == a for a in history.test_accuracy):
        ax.plot(history.epoch, history.test_accuracy, label="test")
    widen_to_span(ax)
    ax.legend(loc="lower right")
    return finish_figure(fig, path)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``counts[i, j]``: how many samples of class ``i`` were predicted as ``j``; ``(n_classes, n_classes) int64``."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D and of one length, got {y_true.shape} and {y_pred.shape}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{name} has labels outside [0, {n_classes})")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def plot_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str],
                          path: str | PathLike | None = None, title: str = "Confusion matrix (test set)"):
    """Counts of true (rows) against predicted (columns) classes, with per-class recall on
    the row labels; 700x700 PNG at ``path`` if given.  ``y_true, y_pred: (n,) int``."""
    n = len(class_names)
    counts = confusion_matrix(y_true, y_pred, n)
    fig = blank_figure(7, 7)
    ax = fig.add_subplot()
    ax.imshow(counts, cmap="Blues")
    support = counts.sum(axis=1)
    recall = [f"{counts[i, i] / support[i]:.0%}" if support[i] else "n/a" for i in range(n)]
    ax.set_xticks(range(n), [str(c) for c in class_names], rotation=45, ha="right")
    ax.set_yticks(range(n), [f"{c} ({r})" for c, r in zip(class_names, recall)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (recall)")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"{title}: accuracy {accuracy:.2%}")
    threshold = counts.max() / 2
    if n <= 20:  # numbers stay legible up to about 20 classes
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if counts[i, j] > threshold else "black")
    return finish_figure(fig, path)


def plot_class_distribution(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str],
                            path: str | PathLike | None = None):
    """How often each class is predicted beside how often it truly occurs (test set);
    700x450 PNG at ``path`` if given.  A model biased towards some classes shows here."""
    n = len(class_names)
    counts = confusion_matrix(y_true, y_pred, n)
    fig = blank_figure(7, 4.5)
    ax = fig.add_subplot()
    x = np.arange(n)
    ax.bar(x - 0.2, counts.sum(axis=1), width=0.4, label="true")
    ax.bar(x + 0.2, counts.sum(axis=0), width=0.4, label="predicted")
    slanted = n > 10 or max(map(len, map(str, class_names))) > 3  # long names would overlap level
    ax.set_xticks(x, [str(c) for c in class_names], rotation=45 if slanted else 0, ha="right" if slanted else "center")
    ax.set_xlabel("class")
    ax.set_ylabel("samples")
    ax.set_title("Predicted vs true class distribution (test set)")
    ax.grid(True, axis="y", alpha=0.3)
    # beside the axes, not in them: with about equal counts every class's bars reach the top,
    # and a legend inside hides some of them whatever corner it takes
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return finish_figure(fig, path)


def plot_samples(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str],
                 path: str | PathLike | None = None, n: int = 36):
    """A grid of the first ``n`` images titled "predicted (true)", mistakes in red;
    800x800 PNG at ``path`` if given.  ``images: (m, h, w)``, ``y_true, y_pred: (m,) int``."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"plot_samples needs (n, height, width) images, got shape {images.shape}")
    count = min(n, len(images))
    if count == 0:
        raise ValueError("plot_samples needs at least one image")
    side = int(np.ceil(np.sqrt(count)))
    fig = blank_figure(8, 8)
    for k in range(count):
        ax = fig.add_subplot(side, side, k + 1)
        ax.imshow(images[k], cmap="gray_r")
        ax.set_xticks([])
        ax.set_yticks([])
        wrong = y_pred[k] != y_true[k]
        ax.set_title(f"{class_names[y_pred[k]]} ({class_names[y_true[k]]})", fontsize=8,
                     color="red" if wrong else "black")
    fig.suptitle("predicted (true)")
    return finish_figure(fig, path)


def framework_colour(framework: str, order: Sequence[str]) -> str:
    """The matplotlib colour of a benchmark framework: its place in ``order`` (pass
    ``fastscratch.tools.bench.FRAMEWORKS``, the registry), the same in every figure, so a line is
    recognised from one plot to the next; ``"C9"`` for a name not in ``order``."""
    order = list(order)
    return f"C{order.index(framework) % 9}" if framework in order else "C9"


def plot_throughput(results, path: str | PathLike | None = None, order: Sequence[str] = ()):
    """Training samples/s against batch size, one line per framework (log-log); 700x450 PNG.
    ``results``: :class:`fastscratch.tools.bench.Result` records; skipped ones are left out.
    ``order``: the frameworks' colour order (:func:`framework_colour`; default: by name)."""
    fig = blank_figure(7, 4.5)
    ax = fig.add_subplot()
    by_framework: dict[str, list[tuple[int, float]]] = {}
    for r in results:
        if r.ok and r.epoch_seconds:
            by_framework.setdefault(r.workload.framework, []).append((r.workload.batch_size or r.n_train,
                                                                      r.samples_per_second))
    if not by_framework:
        raise ValueError("nothing to plot: no benchmark result has timings")
    for framework, points in sorted(by_framework.items()):
        points.sort()
        ax.plot([b for b, _ in points], [v for _, v in points], marker="o", label=framework,
                color=framework_colour(framework, order or sorted(by_framework)))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size (the largest is full batch)")
    ax.set_ylabel("training samples / s (median epoch)")
    versions = _peer_versions([r for r in results if r.ok])
    ax.set_title(f"Training throughput, {results[0].dataset}" + (f"\n{versions}" if versions else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return finish_figure(fig, path)


def plot_accuracy_vs_time(results, path: str | PathLike | None = None, order: Sequence[str] = ()):
    """Test accuracy against training seconds, one line per run, with the target
    accuracy dashed; 700x450 PNG.  ``results``: time-to-accuracy :class:`~fastscratch.tools.bench.Result` s; ``order`` as for
    :func:`plot_throughput` (default: as drawn)."""
    fig = blank_figure(7, 4.5)
    ax = fig.add_subplot()
    drawn = [r for r in results if r.ok and r.accuracy_curve]
    if not drawn:
        raise ValueError("nothing to plot: no time-to-accuracy result")
    for r in drawn:
        ax.plot([t for t, _ in r.accuracy_curve], [a for _, a in r.accuracy_curve], marker=".",
                label=r.workload.label,
                color=framework_colour(r.workload.framework, order or [d.workload.framework for d in drawn]))
    if drawn[0].target_accuracy is not None:
        ax.axhline(drawn[0].target_accuracy, linestyle="--", color="gray", label="target")
    widen_to_span(ax)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("test accuracy")
    versions = _peer_versions(drawn)
    ax.set_title(f"Time to accuracy, {drawn[0].dataset}" + (f"\n{versions}" if versions else ""), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return finish_figure(fig, path)


def _peer_versions(results) -> str:
    """``"jax 0.10.2, torch 2.13.0"``: the versions of the peers a figure shows (JAX's CPU speed
    depends on its version: record it with every figure)."""
    shown = {r.workload.framework for r in results}
    versions = results[0].versions if results else {}
    wanted = [("jax", "jax"), ("torch", "torch"), ("torch-compile", "torch"), ("tf.keras", "tensorflow-cpu"),
              ("tf.keras", "tensorflow"), ("fastscratch-numba", "numba")]
    parts = []
    for framework, dist in wanted:
        if framework in shown and dist in versions and f"{dist} {versions[dist]}" not in parts:
            parts.append(f"{dist} {versions[dist]}")
    return ", ".join(parts)


def plot_scaling(points, path: str | PathLike | None = None, order: Sequence[str] = ()):
    """The scaling benchmark (:func:`fastscratch.tools.bench.sweep`): achieved GFLOP/s against hidden
    width (784-W-W-10), log-log, one panel per batch size, one line per framework, this
    machine's SGEMM rate at each point's largest GEMM dashed; (350 x batch sizes + 100) x 450 PNG.
    ``points``: :class:`fastscratch.tools.bench.SweepPoint` records; skipped results are left out."""
    batches = sorted({p.batch_size for p in points})
    if not any(r.ok for p in points for r in p.results):
        raise ValueError("nothing to plot: no sweep result has timings")
    fig = blank_figure(3.5 * len(batches) + 1, 4.5)
    axes = fig.subplots(1, len(batches), sharey=True, squeeze=False)[0]
    frameworks = list(dict.fromkeys(r.workload.framework for p in points for r in p.results))
    for ax, batch in zip(axes, batches):
        here = sorted((p for p in points if p.batch_size == batch), key=lambda p: p.width)
        ax.plot([p.width for p in here], [p.sgemm[0] for p in here], linestyle="--", color="black",
                label="SGEMM at the largest GEMM")
        for framework in frameworks:
            xy = [(p.width, r.gflops) for p in here for r in p.results if r.workload.framework == framework and r.ok]
            if xy:
                ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o",
                        color=framework_colour(framework, order or frameworks), label=framework)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        widths = [p.width for p in here]
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.set_xticks([], minor=True)
        ax.set_title(f"batch {batch}")
        ax.set_xlabel("hidden width W (784-W-W-10)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("training GFLOP/s (median epoch)")
    axes[-1].legend(fontsize=8, loc="lower right")
    results = [r for p in points for r in p.results]
    fig.suptitle(f"Scaling, {results[0].dataset}; {_peer_versions(results)}", fontsize=10)
    return finish_figure(fig, path)
