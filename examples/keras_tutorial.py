"""The tutorial network in tf.keras, then checked step by step against fastscratch.

Part 1 is what a Keras user writes for the tutorial's recipe (``examples/tutorial.py``):
a 784-128-64-10 ReLU network with a softmax output, plain gradient descent
with lr=0.1 on full batches, on the 5,000 MNIST digits shipped with fastscratch.

Part 2 shows why the two can be compared at all: the Keras model gets
fastscratch's initial weights, both train one epoch of mini-batches of 128 in
the same order, and the per-step losses and final weights are compared.

    pip install 'fastscratch[keras,plot]'
    python examples/keras_tutorial.py [--out DIR]      # default out/keras-tutorial
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported: errors only

from fastscratch import NeuralNetwork  # noqa: E402
from fastscratch.datasets import load_dataset, to_features  # noqa: E402

#: where the example writes unless told: a folder of its own (git-ignored, as all of out/)
DEFAULT_OUT = Path("out") / "keras-tutorial"


def part1_plain_keras(X_train, y_train, X_test, y_test, epochs: int, lr: float, seed: int, out: Path) -> None:
    """The tutorial in Keras' own words."""
    from fastscratch.integrations.keras import import_tensorflow

    import_tensorflow()  # TensorFlow, with its start-up messages kept off the terminal
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=(784,)),
        keras.layers.Dense(128, activation="relu"),   # z = a W + b, then ReLU
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),  # class probabilities
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.summary()
    started = time.perf_counter()
    # batch_size = all samples: full-batch gradient descent, as in the tutorial
    history = model.fit(X_train, y_train, batch_size=len(X_train), epochs=epochs, verbose=0,
                        validation_data=(X_test, y_test))
    seconds = time.perf_counter() - started
    h = history.history
    for epoch in sorted({0, epochs // 4, epochs // 2, 3 * epochs // 4, epochs - 1}):
        print(f"Epoch {epoch + 1:4d} | Cost: {h['loss'][epoch]:.4f} | Train Acc: {h['accuracy'][epoch]:.4f} "
              f"| Test Acc: {h['val_accuracy'][epoch]:.4f}")
    loss, accuracy = model.evaluate(X_test, y_test, verbose=0)
    print(f"Keras: test accuracy {accuracy:.4f} (loss {loss:.4f}) after {epochs} epochs in {seconds:.1f} s")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print("(plot skipped: matplotlib is not installed)")
        return
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(range(1, epochs + 1), h["loss"], label="train")
    ax.plot(range(1, epochs + 1), h["val_loss"], label="test")
    ax.set(title="Keras: cost per epoch", xlabel="epoch", ylabel="cross-entropy cost")
    ax.legend()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "keras_cost.png")
    print(f"Wrote {out / 'keras_cost.png'}")


def part2_same_start_same_batches(X_train, y_train, seed: int) -> bool:
    """fastscratch and Keras from the same weights on the same batches: do they agree step by step?"""
    from fastscratch.integrations.keras import train_keras
    from fastscratch.integrations.steps import train_steps

    nn = NeuralNetwork([784, 128, 64, 10], activation="relu", seed=seed)
    # Keras first: it copies nn's current (initial) weights and replays the batch order
    # nn.fit would draw next, leaving nn untouched
    run = train_keras(nn, X_train, y_train, lr=0.1, epochs=1, batch_size=128, record_steps=True)
    fs_losses = train_steps(nn, X_train, y_train, lr=0.1, epochs=1, batch_size=128)  # what nn.fit does
    keras_losses = run.step_losses
    worst = np.max(np.abs(fs_losses - keras_losses) / keras_losses)
    weights = max(np.max(np.abs(a - b)) for a, b in zip(nn.parameters, run.weights()))
    print(f"\nSame start, same batches ({keras_losses.size} steps of 128, SGD lr 0.1, Keras on {run.device}):")
    print("  step   fastscratch loss   Keras loss")
    for step in (0, 1, 2, keras_losses.size - 1):
        print(f"  {step + 1:4d}   {fs_losses[0, step]:.7f}          {keras_losses[0, step]:.7f}")
    print(f"  worst relative loss difference {worst:.1e}; largest weight difference after the epoch {weights:.1e}")
    return bool(worst < 1e-5 and weights < 1e-5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"directory for the cost plot (default: {DEFAULT_OUT})")
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if importlib.util.find_spec("tensorflow") is None:  # found, not imported: that happens quietly later
        sys.exit("this example needs TensorFlow: pip install 'fastscratch[keras,plot]'")

    images_train, y_train, images_test, y_test = load_dataset("mnist-sample")
    X_train, X_test = to_features(images_train), to_features(images_test)
    print(f"mnist-sample: {len(X_train)} training and {len(X_test)} test images of 28x28 pixels")
    part1_plain_keras(X_train, y_train, X_test, y_test, args.epochs, args.lr, args.seed, args.out)
    if not part2_same_start_same_batches(X_train, y_train, args.seed):
        print("error: fastscratch and Keras disagree by more than 1e-5", file=sys.stderr)
        return 1
    print("fastscratch and Keras agree within 1e-5 at every step.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
