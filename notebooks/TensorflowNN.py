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
# # TensorflowNN: the same network in tf.keras
#
# The tutorial's network in about 15 lines of plain Keras, trained on the same MNIST sample. Then
# the two side by side from the same start on the same batches, step by step; then how fast each
# trains, beside JAX and PyTorch where they are installed.
#
# Needs TensorFlow: `pip install -e '.[keras,notebooks]'`.
# `FASTSCRATCH_NOTEBOOK_QUICK=1` (what the test suite sets) shortens the training;
# `FASTSCRATCH_NOTEBOOK_FIGURES=DIR` saves the figures there as PNG files.

# %%
# %matplotlib inline
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: its errors only

import matplotlib.pyplot as plt
import numpy as np

from fastscratch import NeuralNetwork
from fastscratch.datasets import load_dataset, to_features
from fastscratch.integrations.keras import import_tensorflow

QUICK = os.environ.get("FASTSCRATCH_NOTEBOOK_QUICK", "0") == "1"
FIGURES = os.environ.get("FASTSCRATCH_NOTEBOOK_FIGURES")


def save(fig, name):
    """Save ``fig`` as DIR/name.png when FASTSCRATCH_NOTEBOOK_FIGURES=DIR (the README's pictures)."""
    if FIGURES:
        Path(FIGURES).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(FIGURES) / f"{name}.png", dpi=80)


tf = import_tensorflow()  # TensorFlow with its start-up messages summarised (ImportError names the extra)
import keras  # noqa: E402

images_train, y_train, images_test, y_test = load_dataset("mnist-sample")
X_train, X_test = to_features(images_train), to_features(images_test)
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}; {len(X_train)} training digits, {len(X_test)} test")

# %% [markdown]
# ## The tutorial in Keras' own words
#
# 784-128-64-10, ReLU, a softmax output, plain gradient descent with lr 0.1 on full batches.

# %%
epochs = 30 if QUICK else 500
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input(shape=(784,)),
    keras.layers.Dense(128, activation="relu"),    # z = a W + b, then ReLU
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),  # class probabilities
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
# batch_size = every sample: full-batch gradient descent, as in the tutorial
fitted = model.fit(X_train, y_train, batch_size=len(X_train), epochs=epochs, verbose=0,
                   validation_data=(X_test, y_test))
h = fitted.history
for e in sorted({0, epochs // 2, epochs - 1}):
    print(f"Epoch {e + 1:4d} | Cost: {h['loss'][e]:.4f} | Train Acc: {h['accuracy'][e]:.4f} "
          f"| Test Acc: {h['val_accuracy'][e]:.4f}")

# %%
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(h["loss"], label="train")
ax.plot(h["val_loss"], label="test")
ax.set(title="Keras: cost per epoch", xlabel="epoch", ylabel="cross-entropy cost")
ax.legend()

# %% [markdown]
# ## Same start, same batches: step by step
#
# `fastscratch.integrations.keras.train_keras` copies a fastscratch network's current weights into the
# Keras equivalent and trains it on the batches `nn.fit` would draw next (the same permutations),
# recording every step's loss; `fastscratch.integrations.steps.train_steps` trains the fastscratch
# network itself on them, the same steps as `fit`, with every step's loss. Both start from the
# same initial weights.

# %%
from fastscratch.integrations.keras import train_keras  # noqa: E402
from fastscratch.integrations.steps import train_steps  # noqa: E402

same_epochs = 1 if QUICK else 3
nn = NeuralNetwork(architecture=[784, 128, 64, 10], activation='relu', seed=0)
run = train_keras(nn, X_train, y_train, lr=0.1, epochs=same_epochs, batch_size=128, record_steps=True)
fs_losses = train_steps(nn, X_train, y_train, lr=0.1, epochs=same_epochs, batch_size=128).ravel()
keras_losses = run.step_losses.ravel()
relative = np.abs(fs_losses - keras_losses) / keras_losses
weights = max(np.abs(a - b).max() for a, b in zip(nn.parameters, run.weights()))
print(f"{len(fs_losses)} steps of 128 (Keras on {run.device}): worst relative loss difference {relative.max():.1e}, "
      f"largest weight difference at the end {weights:.1e}")
assert relative.max() < 1e-5 and weights < 1e-4

# %%
fig, (losses, gap) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
steps = np.arange(1, len(fs_losses) + 1)
losses.plot(steps, fs_losses, label="fastscratch", lw=2.5)
losses.plot(steps, keras_losses, "--", label="tf.keras", lw=1.5)
losses.set(xlabel="step (batch of 128)", ylabel="batch loss before the step", title="Loss at every step")
losses.legend()
gap.semilogy(steps, np.maximum(relative, 1e-10), ".", color="C3")
gap.axhline(1e-5, ls="--", color="gray", label="1e-5")
gap.set(xlabel="step", ylabel="|fastscratch - keras| / keras", title="Relative difference (float32 rounding)")
gap.legend()
for ax in (losses, gap):
    ax.grid(True, alpha=0.3)
fig.suptitle("fastscratch and tf.keras from the same start on the same batches (SGD lr 0.1)")
save(fig, "agreement")

# %% [markdown]
# ## Speed: seconds per epoch
#
# One workload definition, `fastscratch.tools.bench.Workload` (784-128-64-10, SGD lr 0.1, batches of 128,
# the same initial weights), for every framework; `run_group` builds each trainer (compiling where
# the framework compiles), trains a warm-up epoch of each, then times their epochs in interleaved
# rounds, the order reversed every other round. Frameworks that are not installed are listed as skipped.

# %%
from fastscratch.tools import bench  # noqa: E402
from fastscratch.plots import framework_colour  # noqa: E402

frameworks = ["fastscratch-numba", "fastscratch-numpy", "tf.keras", "jax", "torch"]
group = [bench.Workload(framework=f, batch_size=128, dataset="mnist-sample") for f in frameworks]
results = bench.run_group(group, epochs=2 if QUICK else 5, warmup=1)
print("\n".join(bench.format_table(results)))

# %%
timed = [r for r in results if r.ok]
fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
names = [r.workload.framework for r in timed]
medians = np.array([r.median_seconds for r in timed])
errors = np.array([[r.median_seconds - r.min_seconds for r in timed], [r.max_seconds - r.median_seconds for r in timed]])
ax.barh(names, medians, xerr=errors, color=[framework_colour(n, bench.FRAMEWORKS) for n in names])
ax.invert_yaxis()
ax.set(xlabel="seconds per epoch (median; bars: min to max)",
       title=f"One epoch of {timed[0].n_train} digits, batch 128, {timed[0].cores} cores")
ax.grid(True, axis="x", alpha=0.3)
save(fig, "speed")

# %% [markdown]
# **Reading these numbers.** They come from one short run on this machine: on a shared machine
# (a laptop with a browser open, a CI runner, a cloud VM) other processes take cores and the seconds
# move from run to run. The ratios between frameworks ("vs keras", "vs jax" in the table) say more
# than the seconds, because the epochs were timed in interleaved rounds, so a change in load hits
# every framework alike; even so, trust a ratio only when it holds across several runs.
# `fastscratch bench` measures the same workload over more epochs and batch sizes.
