"""The JAX equivalent of a fastscratch network, with the whole epoch in one ``jax.jit`` call.

:class:`JaxNetwork` holds a copy of a :class:`~fastscratch.NeuralNetwork`'s
*current* weights as JAX arrays and trains them the way people who pick JAX for
speed on a CPU train a small dense network: one jitted function per epoch that
draws the permutation inside (from a key folded from the seed and the epoch
number), gathers each batch, and runs every step with ``lax.scan``, with the
parameters and the optimizer state donated (``donate_argnums``) so XLA updates
them in place.  It is the benchmark's strongest CPU peer (``fastscratch bench``,
framework ``jax``) and is checked step by step against fastscratch
(``tests/test_bench.py``)::

    nn = NeuralNetwork([784, 128, 64, 10], seed=0)
    twin = JaxNetwork(nn, X, y, lr=0.1, batch_size=128, optimizer="adam")   # nn's start; compiles here
    seconds = twin.fit_epoch()                                             # one jitted call, timed

Conventions that make the two compute the same thing (float32 round-off aside):

=====================================  =============================================================
fastscratch                            here
=====================================  =============================================================
``W[l]: (n_in, n_out)``, ``b[l]``      the same arrays, copied (``params()`` gives them back)
loss of a batch                        mean cross-entropy of the softmax over the batch's own rows
batches of ``batch_size`` rows         ``lax.scan`` over the ``n // batch_size`` full batches, then one
                                       more step on the ``n % batch_size`` rows left (the mean over
                                       *its* rows), as ``training.run_epoch`` does
full batch (``batch_size`` None or     one step on the rows as they are: no permutation, no gather
``>= n``)
``"sgd"``                              ``p -= lr * g``
``Momentum(m, nesterov)``              ``v = m v - lr g; p += v`` (Nesterov ``p += m v - lr g``)
``Adam(b1, b2, eps)``                  ``alpha = lr sqrt(1 - b2^t) / (1 - b1^t)``; ``m += (g - m)(1 - b1)``;
                                       ``v += (g^2 - v)(1 - b2)``; ``p -= alpha m / (sqrt(v) + eps)``
                                       (Keras' rule: the bias correction folded into the step size, eps
                                       added to ``sqrt(v)``)
ReLU's derivative at 0                 0 (``jax.nn.relu``), as fastscratch's ``A > 0``
=====================================  =============================================================

Adam's ``1 - beta^t`` is computed as ``-expm1(t log(beta))`` with ``log(beta)`` taken in
float64 on the host, so in float32 it is correct to float32 rounding even though 0.999
itself is not a float32 number (``1 - float32(0.999)`` is 1.3e-5 off in relative terms).

The permutation is ``jax.random.permutation(fold_in(key(seed), epoch), n)``: JAX's own
generator, not fastscratch's, so the two train on different batches unless the rows are
given in :meth:`JaxNetwork.order` 's order to ``fit(..., shuffle=False)`` (the tests do).

float64: a float64 network runs under ``jax.enable_x64(True)``, entered around every JAX
call this object makes (construction, compilation, epochs, prediction), so the rest of the
process keeps JAX's float32 default; a float32 one runs with x64 off for the same reason.
Without JAX, the constructor raises ``ImportError`` naming the ``jax`` extra.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .. import _validation as check
from .._equivalents import framework_object
from ..activations import get_activation
from ..network import NeuralNetwork
from ..optimizers import SGD, Adam, Momentum, Optimizer, get_optimizer

__all__ = ["JaxNetwork", "import_jax", "precision", "INSTALL_HINT"]

INSTALL_HINT = "install it with `pip install 'fastscratch[jax]'`"


def import_jax():
    """The ``jax`` module; ``ImportError`` naming the ``jax`` extra when it is not installed."""
    try:
        import jax
    except ImportError as exc:
        raise ImportError(f"fastscratch.integrations.jax needs JAX ({exc}); {INSTALL_HINT}") from exc
    return jax


def precision(jax, enabled: bool):
    """A context manager: JAX's 64-bit mode on (``enabled``: float64 arrays stay float64) or off,
    inside it only.  ``jax.enable_x64(enabled)`` (JAX >= 0.7), else the older
    ``jax.experimental`` context managers."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(enabled)
    from jax import experimental  # pragma: no cover - older JAX

    return experimental.enable_x64() if enabled else experimental.disable_x64()  # pragma: no cover


class JaxNetwork:
    """``nn``'s network in JAX, trained on ``X_train, y_train`` one jitted epoch at a time.

    X_train: (n, n_features) ; y_train: (n,) integer labels or (n, n_classes) one-hot (checked
    and converted as ``fit`` does).  ``optimizer``: a fastscratch optimizer or its name;
    ``lr`` is constant.  ``seed``: the epoch keys' seed (default ``nn.seed``, else 0).
    ``nn`` itself is not changed.  The epoch is compiled here (``compile_seconds``), so
    :meth:`fit_epoch` times training only.  ``device``: the ``jax.Device`` the parameters, the
    optimizer state and the training data are put on (once, here), so every jitted call runs
    there, e.g. ``jax.devices("gpu")[0]``; default JAX's default device.
    """

    def __init__(self, nn: NeuralNetwork, X_train: Any, y_train: Any, *, lr: float = 0.1,
                 batch_size: int | None = None, optimizer: str | Optimizer = "sgd", seed: int | None = None,
                 given_orders: bool = False, device: Any = None) -> None:
        if not isinstance(nn, NeuralNetwork):
            raise TypeError(f"nn must be a fastscratch NeuralNetwork, got {type(nn).__name__}")
        if any(nn.dropout):
            raise ValueError("a network with dropout cannot be mirrored exactly in JAX (its masks come from "
                             "fastscratch's generator); use dropout=0 for a reference run")
        self.jax = jax = import_jax()
        if device is not None and not isinstance(device, jax.Device):
            raise TypeError(f"device must be a jax.Device (e.g. jax.devices('gpu')[0]) or None, "
                            f"got {type(device).__name__}")
        #: where the arrays live (None: JAX's default device)
        self.device = device
        self.dtype = nn.dtype
        self.lr = check.check_positive_number("lr", lr)
        batch_size = check.check_optional_positive_int("batch_size", batch_size)
        self.optimizer = get_optimizer(optimizer)
        if type(self.optimizer) not in (SGD, Momentum, Adam):
            raise TypeError(f"no JAX rule known for optimizer {self.optimizer!r}")
        self.seed = int(seed if seed is not None else (nn.seed or 0))
        X = check.check_features(X_train, nn.n_features, nn.dtype, "X_train")
        y = check.check_labels(y_train, X.shape[0], nn.n_classes, "y_train")
        self.n = n = X.shape[0]
        self.full_batch = batch_size is None or batch_size >= n
        self.batch_size = n if self.full_batch else batch_size
        self.activations = list(nn.activations)
        #: epochs trained so far (the next epoch's key is fold_in(key(seed), epochs_trained))
        self.epochs_trained = 0
        #: each step's mean loss in the last epoch, before its update (float64 copy)
        self.last_losses: np.ndarray = np.empty(0)
        #: the last epoch's training accuracy, counted before each batch's update (as fit does)
        self.last_accuracy = math.nan
        self.compile_seconds = math.nan
        with self._precision():
            jnp = jax.numpy
            self._params = [jnp.asarray(p) for pair in zip(nn.weights, nn.biases) for p in pair]
            self._state = self._initial_state()
            self._params, self._state, self._X, self._y = jax.device_put(
                (self._params, self._state, X, np.asarray(y, dtype=np.int32)), device)
            self._build()
            started = time.perf_counter()
            epoch_number = np.asarray(0, dtype=np.int32)
            self._epoch = self._epoch_jit.lower(self._params, self._state, self._X, self._y,
                                                epoch_number).compile()
            self._epoch_given = None
            if given_orders and not self.full_batch:
                perm = np.arange(n, dtype=np.int32)
                self._epoch_given = self._epoch_given_jit.lower(self._params, self._state, self._X, self._y,
                                                                perm).compile()
            self.compile_seconds = time.perf_counter() - started

    # ------------------------------------------------------------------ building
    def _precision(self):
        return precision(self.jax, self.dtype == np.float64)

    def _initial_state(self) -> dict[str, Any]:
        jnp = self.jax.numpy
        zeros = lambda: [jnp.zeros_like(p) for p in self._params]  # noqa: E731
        if isinstance(self.optimizer, Momentum):
            return {"velocity": zeros()}
        if isinstance(self.optimizer, Adam):
            return {"m": zeros(), "v": zeros(), "t": jnp.asarray(0, dtype=jnp.int32)}
        return {}

    def _build(self) -> None:
        """The jitted functions: one step, one epoch, the logits."""
        jax, jnp, lax = self.jax, self.jax.numpy, self.jax.lax
        dtype = self.dtype
        hidden = [framework_object(jax, get_activation(a).jax) for a in self.activations]  # the registry's
        lr, opt = self.lr, self.optimizer

        def logits_of(params, x):
            a = x
            for layer, g in enumerate(hidden):
                a = g(a @ params[2 * layer] + params[2 * layer + 1])
            return a @ params[-2] + params[-1]

        def loss_of(params, x, y):  # mean cross-entropy over these rows; correct count as aux
            logits = logits_of(params, x)
            log_p = jax.nn.log_softmax(logits, axis=1)
            loss = -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))
            return loss, jnp.sum(jnp.argmax(logits, axis=1) == y)

        grad_of = jax.value_and_grad(loss_of, has_aux=True)

        if isinstance(opt, Momentum):
            m_, nesterov = opt.momentum, opt.nesterov

            def update(params, grads, state):
                velocity = [m_ * v - lr * g for v, g in zip(state["velocity"], grads)]
                if nesterov:
                    params = [p - lr * g + m_ * v for p, g, v in zip(params, grads, velocity)]
                else:
                    params = [p + v for p, v in zip(params, velocity)]
                return params, {"velocity": velocity}
        elif isinstance(opt, Adam):
            b1, b2, eps = opt.beta1, opt.beta2, opt.eps
            log_b1, log_b2 = math.log(b1) if b1 > 0 else -math.inf, math.log(b2) if b2 > 0 else -math.inf

            def update(params, grads, state):
                t = state["t"] + 1
                tf = t.astype(dtype)
                # 1 - beta^t, accurate in float32 too (see the module docstring)
                alpha = lr * jnp.sqrt(-jnp.expm1(tf * log_b2)) / -jnp.expm1(tf * log_b1)
                m = [m + (g - m) * (1.0 - b1) for m, g in zip(state["m"], grads)]
                v = [v + (g * g - v) * (1.0 - b2) for v, g in zip(state["v"], grads)]
                params = [p - m_i / (jnp.sqrt(v_i) + eps) * alpha for p, m_i, v_i in zip(params, m, v)]
                return params, {"m": m, "v": v, "t": t}
        else:
            def update(params, grads, state):
                return [p - lr * g for p, g in zip(params, grads)], state

        def step(params, state, x, y):
            (loss, correct), grads = grad_of(params, x, y)
            params, state = update(params, grads, state)
            return params, state, loss, correct

        n, batch, full_batch, seed = self.n, self.batch_size, self.full_batch, self.seed
        n_full, rest = divmod(n, batch)

        def epoch(params, state, X, y, epoch_number):
            """One epoch.  Returns the new (params, state), each step's loss, the correct count."""
            if full_batch:
                params, state, loss, correct = step(params, state, X, y)
                return params, state, loss[None], correct
            perm = jax.random.permutation(jax.random.fold_in(jax.random.key(seed), epoch_number), n)
            return epoch_in_order(params, state, X, y, perm)

        def epoch_in_order(params, state, X, y, perm):
            """One epoch over the rows in the order ``perm`` (mini-batches)."""

            def body(carry, rows):
                params, state = carry
                params, state, loss, correct = step(params, state, X[rows], y[rows])
                return (params, state), (loss, correct)

            (params, state), (losses, corrects) = lax.scan(body, (params, state),
                                                           perm[:n_full * batch].reshape(n_full, batch))
            correct = jnp.sum(corrects)
            if rest:  # the ragged last batch: its own step, the mean over its own rows
                rows = perm[n_full * batch:]
                params, state, loss, last_correct = step(params, state, X[rows], y[rows])
                losses = jnp.concatenate([losses, loss[None]])
                correct = correct + last_correct
            return params, state, losses, correct

        def order(epoch_number):
            return jax.random.permutation(jax.random.fold_in(jax.random.key(seed), epoch_number), n)

        self._epoch_jit = jax.jit(epoch, donate_argnums=(0, 1))
        self._epoch_given_jit = jax.jit(epoch_in_order, donate_argnums=(0, 1))
        self._step_jit = jax.jit(step, donate_argnums=(0, 1))
        self._logits_jit = jax.jit(logits_of)
        self._order_jit = jax.jit(order)

    # ------------------------------------------------------------------ training
    def fit_epoch(self, order: Any = None) -> float:
        """Train one epoch in one compiled call; return its seconds (dispatch to results ready,
        ``block_until_ready``).  Sets :attr:`last_losses` and :attr:`last_accuracy` afterwards.

        ``order``: ``(n,)`` the rows' order for this epoch instead of the one drawn inside (to
        replay another framework's batches; needs ``given_orders=True``, which compiles that
        epoch too); ignored for full batch."""
        jax = self.jax
        if order is not None and not self.full_batch:
            if self._epoch_given is None:
                raise ValueError("fit_epoch(order=...) needs JaxNetwork(..., given_orders=True)")
            order = np.asarray(order)
            if order.shape != (self.n,) or not np.array_equal(np.sort(order), np.arange(self.n)):
                raise ValueError(f"order must be a permutation of range({self.n})")
        with self._precision():
            number = np.asarray(self.epochs_trained, dtype=np.int32)
            started = time.perf_counter()
            if order is not None and not self.full_batch:
                out = self._epoch_given(self._params, self._state, self._X, self._y, order.astype(np.int32))
            else:
                out = self._epoch(self._params, self._state, self._X, self._y, number)
            jax.block_until_ready(out)
            seconds = time.perf_counter() - started
            self._params, self._state, losses, correct = out
            self.epochs_trained += 1
            self.last_losses = np.asarray(losses, dtype=np.float64)
            self.last_accuracy = int(correct) / self.n
        return seconds

    def train_step(self, xb: Any, yb: Any) -> float:
        """One step on the batch ``xb: (m, n_features)``, ``yb: (m,)`` (the epoch's step function,
        jitted alone); returns that batch's mean loss before the update."""
        xb = check.check_features(xb, self._X.shape[1], self.dtype, "xb")
        yb = check.check_labels(yb, xb.shape[0], int(self._params[-1].shape[0]), "yb")
        with self._precision():
            self._params, self._state, loss, _ = self._step_jit(self._params, self._state, xb,
                                                                np.asarray(yb, dtype=np.int32))
            return float(loss)

    def order(self, epoch: int | None = None) -> np.ndarray | None:
        """The sample order of ``epoch`` (0-based; default: the next one), as the jitted epoch
        draws it: ``(n,)`` intp, or ``None`` for full batch (the rows as they are)."""
        if self.full_batch:
            return None
        if epoch is None:
            epoch = self.epochs_trained
        elif isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        with self._precision():
            return np.asarray(self._order_jit(np.asarray(epoch, dtype=np.int32)), dtype=np.intp)

    # ------------------------------------------------------------------ results
    def params(self) -> list[np.ndarray]:
        """The current parameters ``[W0, b0, W1, b1, ...]`` as NumPy arrays (fastscratch's layout)."""
        return [np.array(p) for p in self._params]

    def predict(self, X: Any) -> np.ndarray:
        """Class labels ``(n,)`` for ``X: (n, n_features)``."""
        X = check.check_features(X, self._X.shape[1], self.dtype, "X")
        with self._precision():
            return np.asarray(self._logits_jit(self._params, X)).argmax(axis=1)

    def accuracy(self, X: Any, y: Any) -> float:
        """Share of ``X`` 's rows whose predicted label is ``y``."""
        y = check.check_labels(y, np.shape(X)[0], int(self._params[-1].shape[0]), "y")
        return float((self.predict(X) == y).mean())
