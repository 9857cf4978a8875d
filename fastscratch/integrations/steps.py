"""fastscratch training one step at a time, with every step's loss recorded.

``NeuralNetwork.fit`` reports one cost per epoch.  To compare training with
another framework step by step we need the loss of every mini-batch, and we
want it from the *same code* that ``fit`` runs, not from a re-implementation.
:func:`train_steps` therefore repeats exactly what ``fit`` does per epoch —
draw the permutation from the model's generator (``nn.rng.permutation(n)``),
cut it into batches of ``batch_size`` — and hands each batch, already
gathered, to :func:`fastscratch.training.epoch.run_epoch` as an "epoch" of one
batch.  ``run_epoch`` returns that batch's summed loss, measured before its
update, which is the per-step loss; the forward pass, backprop and the
optimizer update are ``fit``'s own.

No hook in ``fit`` or ``run_epoch`` is needed, so the hot loop stays as it is.
The gathered copy of a batch is bit-identical to what ``run_epoch``'s own
gather produces, so the trained weights equal ``fit``'s bit for bit
(``tests/test_keras_reference.py`` checks this on every backend).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation as check
from ..network import NeuralNetwork
from ..optimizers import Optimizer, get_optimizer
from ..training.epoch import LossDiverged, Workspace, run_epoch
from ..training.loop import continue_optimizer


def epoch_orders(rng: np.random.Generator, n_samples: int, epochs: int, batch_size: int | None,
                 shuffle: bool = True):
    """Yield each epoch's sample order as ``fit`` draws it from ``rng``: a permutation
    ``(n_samples,)`` intp, or ``None`` when ``fit`` reads the rows as they are
    (``shuffle=False``, or full-batch training: ``batch_size`` None or ``>= n_samples``).

    ``rng`` is advanced exactly as ``fit`` advances the model's generator (pass a
    copy to leave the model's own untouched: :func:`copy_rng`).
    """
    full_batch = batch_size is None or batch_size >= n_samples
    for _ in range(epochs):
        yield rng.permutation(n_samples) if shuffle and not full_batch else None


def copy_rng(rng: np.random.Generator) -> np.random.Generator:
    """An independent generator in the same state as ``rng`` (it draws the same numbers)."""
    twin = np.random.Generator(type(rng.bit_generator)())
    twin.bit_generator.state = rng.bit_generator.state
    return twin


def train_steps(nn: NeuralNetwork, X_train: Any, y_train: Any, *, lr: float = 0.1, epochs: int = 1,
                batch_size: int | None = None, optimizer: str | Optimizer = "sgd", weight_decay: float = 0.0,
                shuffle: bool = True) -> np.ndarray:
    """Train ``nn`` in place as ``nn.fit(X_train, y_train, lr=..., ...)`` would (constant
    learning rate, no early stopping) and return the loss of every step.

    X_train: (n, n_features) ; y_train: (n,) labels or (n, n_classes) one-hot.
    Returns ``(epochs, n_batches)`` float64: the mean cross-entropy of each batch
    (without the L2 penalty), measured before that batch's update, in the order
    the batches were trained.  ``nn.history`` is not extended.
    """
    X, y, _, _ = nn.check_data(X_train, y_train)
    lr = check.check_positive_number("lr", lr)
    epochs = check.check_positive_int("epochs", epochs)
    batch_size = check.check_optional_positive_int("batch_size", batch_size)
    weight_decay = check.check_non_negative_number("weight_decay", weight_decay)

    # the optimizer is resolved, resumed and bound as in fit
    opt = continue_optimizer(nn.optimizer, optimizer, get_optimizer(optimizer))
    params = nn.parameters
    opt.bind(params)
    nn.optimizer = opt

    n = X.shape[0]
    batch = n if batch_size is None or batch_size >= n else batch_size
    # gather=False: the batches arrive gathered, and run_epoch then reads them in place
    workspace = Workspace(nn.kernels, nn.architecture, batch, nn.dtype,
                          keep_probs=[1.0 - r for r in nn.dropout], gather=False)
    weight_decays = [weight_decay, 0.0] * len(nn.weights)
    codes = nn.activation_codes
    n_batches = -(-n // batch)
    losses = np.empty((epochs, n_batches))
    for epoch, order in enumerate(epoch_orders(nn.rng, n, epochs, batch_size, shuffle)):
        for index, start in enumerate(range(0, n, batch)):
            stop = min(start + batch, n)
            if order is None:
                xb, yb = X[start:stop], y[start:stop]
            else:
                rows = order[start:stop]
                xb, yb = X[rows], y[rows]
            try:
                loss_sum, _ = run_epoch(workspace, xb, yb, None, nn.weights, nn.biases, codes, opt, lr,
                                        weight_decays, nn.rng)
            except LossDiverged as exc:  # the public error, as fit raises it
                raise FloatingPointError(f"training diverged at epoch {epoch + 1}, step {index + 1}: the loss is "
                                         f"{exc.loss}; that step's update was not applied") from None
            losses[epoch, index] = loss_sum / (stop - start)
    return losses
