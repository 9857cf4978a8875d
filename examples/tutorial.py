"""The tutorial network, end to end: train, evaluate, plot, save, reload.

Trains the tutorial's 784-128-64-10 ReLU network with full-batch gradient
descent (lr=0.1, 500 epochs) on the 5,000 MNIST digits shipped in the package
(no download needed), then writes the cost and accuracy curves and the model file to
``--out`` (default ``out/tutorial``, beside ``make run``'s ``out/`` files, not over them)
and checks that the reloaded model predicts exactly the same; then takes one step by
hand (``forward``, ``backward``, ``update``) beside ``fit``'s own.

    python examples/tutorial.py [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from fastscratch import NeuralNetwork
from fastscratch.datasets import load_dataset, to_features

#: where the example writes unless told: a folder of its own (git-ignored, as all of out/)
DEFAULT_OUT = Path("out") / "tutorial"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"directory for plots and the model (default: {DEFAULT_OUT})")
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    images_train, y_train, images_test, y_test = load_dataset("mnist-sample")
    X_train, X_test = to_features(images_train), to_features(images_test)
    print(f"mnist-sample: {len(X_train)} training and {len(X_test)} test images of 28x28 pixels")
    nn = NeuralNetwork(architecture=[784, 128, 64, 10], activation="relu", seed=args.seed)
    print(nn)
    started = time.perf_counter()
    nn.fit(X_train, y_train, X_test, y_test, lr=args.lr, epochs=args.epochs)
    seconds = time.perf_counter() - started

    loss, accuracy = nn.evaluate(X_test, y_test)
    print(f"\nTest accuracy {accuracy:.4f} (loss {loss:.4f}) after {args.epochs} epochs in {seconds:.1f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / "model.npz"
    nn.save(model_path)
    saved = [str(model_path)]
    try:
        nn.plot_cost(args.out / "cost.png")
        nn.plot_accuracies(args.out / "accuracy.png")
        saved += [str(args.out / "cost.png"), str(args.out / "accuracy.png")]
    except ImportError as exc:
        print(f"(plots skipped: {exc})")
    reloaded = NeuralNetwork.load(model_path)
    if not np.array_equal(reloaded.predict_proba(X_test), nn.predict_proba(X_test)):
        print("error: the reloaded model predicts differently", file=sys.stderr)
        return 1
    print("Wrote " + ", ".join(saved) + " (the reloaded model predicts identically)")

    # One step of the algorithm by hand -- the tutorial's forward_propagation,
    # backward_propagation and update_parameters -- beside fit's own next step from the same
    # weights: on the NumPy backend they agree bit for bit, on Numba (whose fit runs the
    # step fused in one jitted epoch) to float rounding.
    by_hand, by_fit = NeuralNetwork.load(model_path), NeuralNetwork.load(model_path)
    activations = by_hand.forward(X_train)  # [A0 = X, A1, A2, logits]
    grad_weights, grad_biases = by_hand.backward(activations, y_train)
    by_hand.update((grad_weights, grad_biases), lr=args.lr)
    by_fit.fit(X_train, y_train, lr=args.lr, epochs=1, verbose=False)
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(by_hand.parameters, by_fit.parameters))
    print(f"One step by hand (forward, backward, update) beside fit's next step: largest weight difference "
          f"{gap:.1e} (backend {nn.kernels.NAME})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
