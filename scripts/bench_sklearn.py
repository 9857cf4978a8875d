"""Fit time of ScratchMLPClassifier against scikit-learn's own MLPClassifier, same work.

Both estimators train the same architecture with plain mini-batch SGD (no momentum,
no L2, constant learning rate, shuffled every epoch) for exactly the same number of
epochs on the same float32 data; MLPClassifier's early-stopping and convergence test
are switched off so it runs every epoch.  Repeats are interleaved (A B, B A, A B, ...)
after one untimed warm-up fit of each, so drifting machine load hits both alike, and
BLAS threads are fixed with threadpoolctl.  Prints the median and min-max fit time of
each, the ratio of the medians and each model's test accuracy (a check that both did
the same job).

    python scripts/bench_sklearn.py                                 # digits
    python scripts/bench_sklearn.py --dataset fashion-mnist --epochs 3 --repeats 5

Absolute times are not comparable across runs on shared machines; the ratio, measured
in one run, is the result.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from fastscratch.tools.system import blas_summary, versions
from fastscratch.datasets import load_dataset, to_features
from fastscratch.sklearn import ScratchMLPClassifier


def load(name: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``X_train, y_train, X_test, y_test`` with ``X: (n, n_features) float32`` in [0, 1]."""
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(
            (X / 16.0).astype(np.float32), y, test_size=0.2, random_state=0, stratify=y)
        return X_train, y_train, X_test, y_test
    # Fashion-MNIST: 60k/10k 28x28; found in Debian's dataset-fashion-mnist package offline
    X_train, y_train, X_test, y_test = load_dataset(name, data_dir=data_dir)
    return to_features(X_train), y_train, to_features(X_test), y_test


def make_estimators(args: argparse.Namespace, seed: int) -> dict[str, object]:
    hidden = tuple(args.hidden)
    return {
        "fastscratch": ScratchMLPClassifier(
            hidden_layer_sizes=hidden, activation="relu", optimizer="sgd", learning_rate=args.lr,
            batch_size=args.batch_size, epochs=args.epochs, weight_decay=0.0, shuffle=True,
            early_stopping=False, backend=args.backend, dtype="float32", random_state=seed),
        "sklearn": MLPClassifier(
            hidden_layer_sizes=hidden, activation="relu", solver="sgd", learning_rate="constant",
            learning_rate_init=args.lr, momentum=0.0, nesterovs_momentum=False, alpha=0.0,
            batch_size=args.batch_size, max_iter=args.epochs, shuffle=True, early_stopping=False,
            # never "converged": every one of max_iter epochs runs
            tol=0.0, n_iter_no_change=args.epochs + 1, random_state=seed),
    }


def timed_fit(estimator, X: np.ndarray, y: np.ndarray) -> float:
    start = time.perf_counter()
    estimator.fit(X, y)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits", help="digits (default) or fashion-mnist")
    parser.add_argument("--data-dir", default=None, help="where the IDX files are (fashion-mnist)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 64], help="hidden layer sizes")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5, help="timed fits of each estimator")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: as found)")
    parser.add_argument("--backend", default="auto", help="fastscratch backend: auto, numpy, numba")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)

    X_train, y_train, X_test, y_test = load(args.dataset, args.data_dir)
    warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: intended
    with threadpool_limits(limits=args.threads, user_api="blas"):
        blas = blas_summary()
        print(f"{args.dataset}: {X_train.shape[0]} x {X_train.shape[1]} float32, {len(np.unique(y_train))} classes;"
              f" hidden {args.hidden}, sgd lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs")
        print(f"BLAS: {blas}")
        v = versions()
        print("versions: " + ", ".join(f"{k} {v[k]}" for k in ("python", "numpy", "scikit-learn", "fastscratch")
                                       if k in v))
        names = ("fastscratch", "sklearn")
        for name, estimator in make_estimators(args, seed=0).items():  # warm-up: imports, caches, JIT
            timed_fit(estimator, X_train, y_train)
        times: dict[str, list[float]] = {name: [] for name in names}
        accuracy: dict[str, list[float]] = {name: [] for name in names}
        backend = None
        for repeat in range(args.repeats):
            estimators = make_estimators(args, seed=repeat + 1)
            order = names if repeat % 2 == 0 else names[::-1]  # interleaved: A B, B A, ...
            for name in order:
                estimator = estimators[name]
                seconds = timed_fit(estimator, X_train, y_train)
                assert estimator.n_iter_ == args.epochs, (name, estimator.n_iter_)  # same work done
                times[name].append(seconds)
                accuracy[name].append(float(estimator.score(X_test, y_test)))
                if name == "fastscratch":
                    backend = estimator.network_.kernels.NAME
                print(f"  repeat {repeat + 1}: {name:<11} {seconds:8.3f} s  test acc {accuracy[name][-1]:.4f}",
                      flush=True)

    print(f"\nfit time over {args.repeats} interleaved repeats (fastscratch backend: {backend}; BLAS: {blas})")
    summary = {}
    for name in names:
        t = times[name]
        summary[name] = {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
                         "per_epoch_s": statistics.median(t) / args.epochs,
                         "test_accuracy_median": statistics.median(accuracy[name])}
        print(f"  {name:<11} median {summary[name]['median_s']:.3f} s (min {min(t):.3f}, max {max(t):.3f}), "
              f"{summary[name]['per_epoch_s']:.4f} s/epoch, test acc {summary[name]['test_accuracy_median']:.4f}")
    ratio = summary["sklearn"]["median_s"] / summary["fastscratch"]["median_s"]
    paired = [s / f for s, f in zip(times["sklearn"], times["fastscratch"])]
    print(f"  MLPClassifier / fastscratch (ratio of medians): {ratio:.2f}x; "
          f"per-repeat ratios {min(paired):.2f}-{max(paired):.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "blas": blas, "backend": backend, "versions": versions(),
                       "times": times, "accuracy": accuracy, "summary": summary, "ratio": ratio}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
