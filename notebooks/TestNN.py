# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # TestNN: the from-scratch network on MNIST
#
# The tutorial's notebook: load the MNIST digits, train the from-scratch network, watch the epoch
# lines, plot the cost and accuracy curves, and look at what it predicts. Then a look inside,
# through the network's public step API (`forward`, `backward`, `update`): one digit through the
# forward pass, one backward step by hand, a finite-difference check of one gradient, and the update.
# Last, mini-batches and Adam against full-batch gradient descent.
#
# Everything here runs offline: fastscratch ships 5,000 real MNIST digits.
# `FASTSCRATCH_NOTEBOOK_QUICK=1` (what the test suite sets) shortens the comparisons at the end;
# `FASTSCRATCH_NOTEBOOK_FIGURES=DIR` saves the figures there as PNG files.

# %%
# %matplotlib inline
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from fastscratch import NeuralNetwork
from fastscratch import plots
from fastscratch.datasets import load_dataset, to_features

QUICK = os.environ.get("FASTSCRATCH_NOTEBOOK_QUICK", "0") == "1"
FIGURES = os.environ.get("FASTSCRATCH_NOTEBOOK_FIGURES")


def save(fig, name):
    """Save ``fig`` as DIR/name.png when FASTSCRATCH_NOTEBOOK_FIGURES=DIR (the README's pictures)."""
    if FIGURES:
        Path(FIGURES).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(FIGURES) / f"{name}.png", dpi=80)


# %% [markdown]
# ## The data
#
# The embedded sample (what `make run` trains on): 4,000 training digits and 1,000 held out,
# 28x28 uint8 images with integer labels. `to_features` flattens them to rows of 784 floats in [0, 1].

# %%
data = load_dataset("mnist-sample")
images_train, y_train, images_test, y_test = data
X_train, X_test = to_features(images_train), to_features(images_test)
print(data)
print("X_train", X_train.shape, X_train.dtype, "| y_train", y_train.shape, "| X_test", X_test.shape)

# %% [markdown]
# ## The tutorial network, trained
#
# 784 inputs, hidden layers of 128 and 64 ReLU units, 10 softmax outputs; full-batch gradient
# descent with lr 0.1 for 500 epochs (`seed=0` makes the run repeatable). `fit` prints the epoch lines.

# %%
nn = NeuralNetwork(architecture=[784, 128, 64, 10], activation='relu', seed=0)
history = nn.fit(X_train, y_train, X_test, y_test, lr=0.1, epochs=500)

# %%
print(f"Test accuracy: {nn.accuracy(X_test, y_test):.4f}")
nn.plot_cost()

# %%
nn.plot_accuracies()

# %% [markdown]
# ## What it predicts
#
# How often each class is predicted beside how often it occurs: a model biased towards some
# digits shows here.

# %%
y_pred = nn.predict(X_test)
names = data.class_names
plots.plot_class_distribution(y_test, y_pred, names)

# %% [markdown]
# Test digits titled "predicted (true)", mistakes in red: the first 30 test digits, then the first
# 6 mistakes after them.

# %%
wrong = np.flatnonzero(y_pred != y_test)
shown = np.concatenate([np.arange(30), wrong[wrong >= 30][:6]])
print(f"{len(wrong)} of {len(y_test)} test digits are misclassified")
fig = plots.plot_samples(images_test[shown], y_test[shown], y_pred[shown], names)
save(fig, "samples")
fig

# %%
plots.plot_confusion_matrix(y_test, y_pred, names)

# %% [markdown]
# ## A look inside: one digit through the forward pass
#
# `nn.forward(X)` returns the activations of every layer, `[A0, A1, A2, A3]`: `A0` is the input,
# `A1` and `A2` the hidden ReLU outputs, `A3` the logits `Z[3]` (the softmax belongs to the loss;
# `predict_proba` applies it).

# %%
digit = X_test[:1]
activations = nn.forward(digit)
for layer, a in enumerate(activations):
    print(f"A{layer}: shape {a.shape}, {np.count_nonzero(a)} non-zero")
probabilities = nn.predict_proba(digit)[0]
print(f"true label {y_test[0]}, predicted {probabilities.argmax()} with p = {probabilities.max():.3f}")

# %%
fig, axes = plt.subplots(1, 5, figsize=(13, 3), gridspec_kw={"width_ratios": [1, 1, 1, 1.3, 1.3]},
                         layout="constrained")
axes[0].imshow(activations[0].reshape(28, 28), cmap="gray_r")
axes[0].set_title("A0: the input (784)")
axes[1].imshow(activations[1].reshape(8, 16), cmap="viridis")
axes[1].set_title("A1: ReLU (128)")
axes[2].imshow(activations[2].reshape(8, 8), cmap="viridis")
axes[2].set_title("A2: ReLU (64)")
axes[3].bar(range(10), activations[3][0], color="C1")
axes[3].set_title("A3: logits Z[3] (10)")
axes[4].bar(range(10), probabilities, color="C2")
axes[4].set_title("softmax(Z[3])")
for ax in axes[:3]:
    ax.set_xticks([])
    ax.set_yticks([])
for ax in axes[3:]:
    ax.set_xticks(range(10))
fig.suptitle(f"One test digit through the trained network (true {y_test[0]}, predicted {probabilities.argmax()})")
save(fig, "forward-pass")

# %% [markdown]
# ## One backward step by hand
#
# The README's formulas (one sample per row, so every product is the tutorial's transposed),
# each computed from the forward pass of a batch of 64 training digits and checked against
# `nn.backward`. Layers are numbered 1 to 3 as in the formulas; in Python, `nn.weights[l - 1]` is `W[l]`.

# %%
Xb, yb = X_train[:64], y_train[:64]
m = len(Xb)
A = nn.forward(Xb)          # [A0, A1, A2, A3]; A3 holds the logits Z[3]
W = nn.weights              # W[l] is W[l - 1] here: (n_in, n_out)
Y = np.eye(10, dtype=A[3].dtype)[yb]   # one-hot labels (m, 10)

# %% [markdown]
# `A[L] = softmax(Z[L])`, `J = -1/m Σ log A[L][y]` (log-sum-exp: subtract the row's largest logit first)

# %%
Z3 = A[3]
shifted = Z3 - Z3.max(axis=1, keepdims=True)
P = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
J = -np.mean(np.log(P[np.arange(m), yb]))
print(f"J = {J:.5f}  (nn.evaluate: {nn.evaluate(Xb, yb)[0]:.5f})")

# %% [markdown]
# `dZ[L] = (A[L] - Y) / m`

# %%
dZ3 = (P - Y) / m

# %% [markdown]
# `dW[l] = A[l-1]ᵀ @ dZ[l]` and `db[l] = Σ_samples dZ[l]`, for the output layer l = 3

# %%
dW3 = A[2].T @ dZ3
db3 = dZ3.sum(axis=0)

# %% [markdown]
# `dZ[l-1] = (dZ[l] @ W[l]ᵀ) * g'(Z[l-1])`, with ReLU's `g'` read from its output: `A > 0`

# %%
dZ2 = (dZ3 @ W[2].T) * (A[2] > 0)
dW2 = A[1].T @ dZ2
db2 = dZ2.sum(axis=0)

# %% [markdown]
# The same two formulas once more, down to the first layer

# %%
dZ1 = (dZ2 @ W[1].T) * (A[1] > 0)
dW1 = A[0].T @ dZ1
db1 = dZ1.sum(axis=0)

# %% [markdown]
# What `nn.backward(activations, y)` returns, the gradients `fit` steps with, against the hand-made ones:

# %%
grad_weights, grad_biases = nn.backward(A, yb)
by_hand = [(dW1, db1), (dW2, db2), (dW3, db3)]
for l, ((dW, db), gW, gb) in enumerate(zip(by_hand, grad_weights, grad_biases), start=1):
    print(f"layer {l}: dW {dW.shape} largest difference {np.abs(dW - gW).max():.1e}, "
          f"db {db.shape} {np.abs(db - gb).max():.1e}")
    assert np.allclose(dW, gW, atol=1e-6) and np.allclose(db, gb, atol=1e-6)

# %% [markdown]
# ## A finite-difference check of one weight's gradient
#
# The derivative of the loss by one weight, measured: nudge that weight by ±ε and divide the change
# in `J` by 2ε. In float32 the change would drown in rounding, so a float64 copy of the network
# (same weights) is measured. The weight is the one of layer 2 with the largest gradient.

# %%
nn64 = NeuralNetwork(architecture=[784, 128, 64, 10], activation='relu', dtype="float64")
for mine, trained in zip(nn64.parameters, nn.parameters):
    mine[...] = trained  # the trained weights, in float64
Xb64 = Xb.astype(np.float64)
analytic = nn64.backward(nn64.forward(Xb64), yb)[0][1]   # dW[2], float64
i, j = np.unravel_index(np.abs(analytic).argmax(), analytic.shape)
eps = 1e-6
nn64.weights[1][i, j] += eps
loss_plus = nn64.evaluate(Xb64, yb)[0]
nn64.weights[1][i, j] -= 2 * eps
loss_minus = nn64.evaluate(Xb64, yb)[0]
nn64.weights[1][i, j] += eps
numeric = (loss_plus - loss_minus) / (2 * eps)
relative = abs(numeric - analytic[i, j]) / abs(analytic[i, j])
print(f"W[2][{i}, {j}]: backprop {analytic[i, j]:.8f}, finite difference {numeric:.8f}, relative error {relative:.1e}")
assert relative < 1e-5

# %% [markdown]
# ## The update
#
# `W -= lr * dW`, `b -= lr * db`: `nn.update` applies it in place (plain SGD here; `fit` runs this same
# step). One step on the batch lowers its loss.

# %%
before = [p.copy() for p in nn.parameters]
loss_before = nn.evaluate(Xb, yb)[0]
nn.update((grad_weights, grad_biases), lr=0.1)
expected = [p - 0.1 * g for p, g in zip(before, [g for pair in zip(grad_weights, grad_biases) for g in pair])]
print("largest difference from W - lr * dW:", max(np.abs(p - e).max() for p, e in zip(nn.parameters, expected)))
print(f"loss on the batch: {loss_before:.5f} before the step, {nn.evaluate(Xb, yb)[0]:.5f} after")

# %% [markdown]
# ## Mini-batches and Adam against full-batch gradient descent
#
# Three runs from the same start (seed 0) on the same data: the tutorial's full-batch gradient
# descent, mini-batch SGD (batches of 64, reshuffled every epoch) and Adam (lr 1e-3, batches of 64).
# An epoch of mini-batches takes 63 steps where full batch takes one, so the fair axis is time,
# not epochs: `history.seconds` is each epoch's training time (evaluation apart).

# %%
full_epochs, batch_epochs = (40, 4) if QUICK else (300, 30)
runs = {
    "full batch, SGD lr 0.1": dict(lr=0.1, epochs=full_epochs),
    "batch 64, SGD lr 0.1": dict(lr=0.1, epochs=batch_epochs, batch_size=64),
    "batch 64, Adam lr 1e-3": dict(lr=1e-3, epochs=batch_epochs, batch_size=64, optimizer="adam"),
}
histories = {}
for label, settings in runs.items():
    model = NeuralNetwork(architecture=[784, 128, 64, 10], activation='relu', seed=0)
    started = time.perf_counter()
    histories[label] = model.fit(X_train, y_train, X_test, y_test, verbose=False, **settings)
    print(f"{label}: {settings['epochs']} epochs in {time.perf_counter() - started:.1f} s, "
          f"test accuracy {histories[label].test_accuracy[-1]:.4f}")

# %%
fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True, layout="constrained")
for label, h in histories.items():
    by_epoch.plot(h.epoch, h.test_accuracy, label=label)
    by_time.plot(np.cumsum(h.seconds), h.test_accuracy, label=label)
by_epoch.set(xscale="log", xlabel="epoch (log scale)", ylabel="test accuracy", title="Against epochs")
by_time.set(xlabel="training seconds", title="Against time")
for ax in (by_epoch, by_time):
    ax.grid(True, alpha=0.3)
by_time.legend(loc="lower right")
save(fig, "optimizers")
