"""Reference compute kernels in plain NumPy.

Every kernel works in place or through ``out=`` arguments so that a training
step allocates no arrays: the buffers come from the caller's workspace.  They
call ufuncs and array methods (``np.add.reduce``, ``a.take``) rather than
NumPy's Python-level wrappers (``np.sum``, ``np.take``), which build keyword
dicts and other small objects on every call.  The
Numba backend (``numba_kernels.py``) implements the same functions with the
same signatures; the NumPy versions are the definition of what they compute.

Storage is row-major: a batch is ``(batch, n_features)``, weights are
``W: (n_in, n_out)`` and biases ``b: (n_out,)``, so the tutorial's column-major
``Z = W A + b`` is written here as ``Z = A @ W + b``.

Activations are passed as integer codes (``IDENTITY``, ``RELU``, ...: defined
once in ``contract``, re-exported here) rather than strings so that jitted
kernels can take them too.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from .contract import ELU, IDENTITY, RELU, SIGMOID, TANH  # noqa: F401  (re-exported: the codes these kernels take)

NAME = "numpy"


def gather_rows(source: np.ndarray, indices: np.ndarray, out: np.ndarray) -> None:
    """Copy ``source[indices]`` into ``out`` without a temporary.

    source: (n, ...) ; indices: (k,) intp, all valid ; out: (k, ...) same dtype.
    """
    # mode="clip" skips the buffered bounds check that mode="raise" performs
    # (which allocates a temporary the size of ``out``); indices are valid.
    source.take(indices, axis=0, out=out, mode="clip")


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out = a @ b`` through BLAS.

    ``a`` and ``b`` may be transposed views (``x.T``); NumPy hands the
    transpose to BLAS as a flag instead of copying.
    """
    np.matmul(a, b, out=out)


def bias_activation(z: np.ndarray, b: np.ndarray, activation: int, out: np.ndarray) -> None:
    """``out = f(z + b)``, the layer's forward pass after its matrix product.

    z: (batch, n_out) ; b: (n_out,) ; out: (batch, n_out), may be ``z`` itself.
    """
    np.add(z, b, out=out)
    if activation == RELU:
        np.maximum(out, 0, out=out)
    elif activation == SIGMOID:
        # 1 / (1 + exp(-x)); exp overflows to inf for x < -88 (float32), and
        # 1 / inf = 0 is the right limit, so the overflow warning is silenced.
        np.negative(out, out=out)
        with np.errstate(over="ignore"):
            np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)
    elif activation == TANH:
        np.tanh(out, out=out)
    elif activation == ELU:
        # exp(x) - 1 on the negative entries only (expm1: exact near 0), x elsewhere
        np.expm1(out, out=out, where=_negative_mask(out))
    elif activation != IDENTITY:
        raise ValueError(f"unknown activation code {activation}")


_MASKS = threading.local()  # per thread: two networks training in two threads get a buffer each


def _negative_mask(values: np.ndarray) -> np.ndarray:
    """``values < 0`` as a bool array of ``values``' shape, written into this thread's buffer
    (grown when too small), so that a training step allocates nothing once it has run."""
    n = values.size
    buffer = getattr(_MASKS, "buffer", None)
    if buffer is None or buffer.size < n:
        buffer = _MASKS.buffer = np.empty(n, dtype=bool)
    mask = buffer[:n].reshape(values.shape)
    np.less(values, 0, out=mask)
    return mask


def activation_backward(delta: np.ndarray, a: np.ndarray, activation: int) -> None:
    """``delta *= f'(z)``, with ``f'`` written in terms of the output ``a = f(z)``.

    delta: (batch, n) ; a: (batch, n) the layer's activations.  ``a`` is used
    as scratch and is overwritten: by the time the backward pass reaches a
    layer, its activations have already served the weight gradient.

    relu: f' = 1 where a > 0 ; sigmoid: f' = a (1 - a) ; tanh: f' = 1 - a^2 ;
    elu: f' = 1 where a > 0, else exp(z) = a + 1 (so ``min(a, 0) + 1`` covers both).
    """
    if activation == RELU:
        np.greater(a, 0, out=a)  # the 0/1 mask, written over a (np.sign is ~15x slower)
        delta *= a
    elif activation == SIGMOID:
        delta *= a
        np.subtract(1, a, out=a)
        delta *= a
    elif activation == TANH:
        np.multiply(a, a, out=a)
        np.subtract(1, a, out=a)
        delta *= a
    elif activation == ELU:
        np.minimum(a, 0, out=a)
        a += 1
        delta *= a
    elif activation != IDENTITY:
        raise ValueError(f"unknown activation code {activation}")


def softmax_cross_entropy_grad(
    logits: np.ndarray,
    labels: np.ndarray,
    grad: np.ndarray,
    scale: float,
    row_scratch: np.ndarray,
    index_scratch: np.ndarray,
) -> tuple[float, int]:
    """Softmax, cross-entropy loss and its gradient in one kernel.

    logits: (batch, n_classes) ; labels: (batch,) intp in [0, n_classes)
    grad: (batch, n_classes) output, may be ``logits`` itself:
        ``grad = scale * (softmax(logits) - onehot(labels))``
        (``scale = 1/m`` gives the tutorial's ``dZ = (A - Y) / m``)
    row_scratch: (2, batch) float, index_scratch: (2, batch) intp: scratch.

    Returns ``(loss_sum, n_correct)``: the summed (not averaged) loss
    ``-sum log softmax(logits)[i, labels[i]]`` and how many rows' argmax equals
    the label.  The loss uses log-sum-exp, so it stays finite for any finite
    logits.
    """
    batch, n_classes = logits.shape
    if not grad.flags.c_contiguous:  # the flat indexing below needs a view, not a copy
        raise ValueError("softmax_cross_entropy_grad needs a C-contiguous grad array")
    row_max, picked = row_scratch[0], row_scratch[1]
    flat_index, predicted = index_scratch[0], index_scratch[1]

    logits.argmax(axis=1, out=predicted)
    np.subtract(predicted, labels, out=predicted)  # 0 where the prediction is right
    n_correct = batch - int(np.count_nonzero(predicted))

    np.maximum.reduce(logits, axis=1, out=row_max)
    np.subtract(logits, row_max[:, None], out=grad)  # shifted logits, max 0
    # position of each row's true class in the flattened matrix
    np.multiply(_row_offsets(batch), n_classes, out=flat_index)
    flat_index += labels
    flat_grad = grad.reshape(-1)
    flat_grad.take(flat_index, out=picked, mode="clip")  # shifted true logit

    np.exp(grad, out=grad)
    np.add.reduce(grad, axis=1, out=row_max)  # sum of exp, reusing the buffer
    np.divide(grad, row_max[:, None], out=grad)  # softmax probabilities
    np.log(row_max, out=row_max)
    loss_sum = float(np.add.reduce(row_max, dtype=np.float64) - np.add.reduce(picked, dtype=np.float64))

    flat_grad.take(flat_index, out=picked, mode="clip")
    picked -= 1
    flat_grad.put(flat_index, picked, mode="clip")
    grad *= scale
    return loss_sum, n_correct


def softmax(logits: np.ndarray, out: np.ndarray, row_scratch: np.ndarray) -> None:
    """Row-wise softmax probabilities (prediction).

    logits: (batch, n_classes) ; out: same shape, may be ``logits`` ;
    row_scratch: (batch,) float scratch.
    """
    np.maximum.reduce(logits, axis=1, out=row_scratch)
    np.subtract(logits, row_scratch[:, None], out=out)
    np.exp(out, out=out)
    np.add.reduce(out, axis=1, out=row_scratch)
    np.divide(out, row_scratch[:, None], out=out)


_ROW_OFFSETS = np.arange(0, dtype=np.intp)


def _row_offsets(batch: int) -> np.ndarray:
    """``arange(batch)``, cached so that the training loop does not allocate it.

    Read once into a local, so a thread that grows the cache meanwhile cannot
    hand this one a shorter array.
    """
    global _ROW_OFFSETS
    offsets = _ROW_OFFSETS
    if offsets.shape[0] < batch:
        offsets = np.arange(max(batch, 2 * offsets.shape[0]), dtype=np.intp)
        _ROW_OFFSETS = offsets
    return offsets[:batch]


def column_sum(delta: np.ndarray, out: np.ndarray) -> None:
    """``out = delta.sum(axis=0)``: the bias gradient.  delta: (batch, n) ; out: (n,)."""
    np.add.reduce(delta, axis=0, out=out)


def dropout_mask(uniform: np.ndarray, keep_prob: float) -> None:
    """Turn uniform draws in [0, 1) into inverted-dropout scale factors, in place.

    Each entry becomes ``1 / keep_prob`` where the draw is below ``keep_prob``
    (the unit is kept) and ``0`` elsewhere, so the expected activation is
    unchanged and no rescaling is needed at prediction time.
    """
    np.less(uniform, keep_prob, out=uniform)
    uniform *= 1.0 / keep_prob


def multiply_into(a: np.ndarray, factors: np.ndarray, out: np.ndarray) -> None:
    """``out = a * factors`` elementwise (dropout forward and backward)."""
    np.multiply(a, factors, out=out)


def sgd_update(
    param: np.ndarray, grad: np.ndarray, lr: float, weight_decay: float, scratch: np.ndarray
) -> None:
    """Plain gradient descent: ``param -= lr * (grad + weight_decay * param)``.

    ``grad`` is consumed (overwritten); ``scratch`` has ``param``'s shape.
    """
    if weight_decay:
        np.multiply(param, weight_decay, out=scratch)
        grad += scratch
    grad *= lr
    param -= grad


def momentum_update(
    param: np.ndarray,
    grad: np.ndarray,
    velocity: np.ndarray,
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
    scratch: np.ndarray,
) -> None:
    """SGD with momentum, in Keras' convention.

    ``v = momentum * v - lr * g`` then ``param += v``, or with Nesterov
    ``param += momentum * v - lr * g``.  ``grad`` is consumed.
    """
    if weight_decay:
        np.multiply(param, weight_decay, out=scratch)
        grad += scratch
    grad *= lr
    velocity *= momentum
    velocity -= grad
    if nesterov:
        param -= grad
        np.multiply(velocity, momentum, out=scratch)
        param += scratch
    else:
        param += velocity


def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    step: int,
    weight_decay: float,
    scratch: np.ndarray,
) -> None:
    """Adam, in Keras' convention (the bias correction folded into the step size).

    ``step`` counts from 1.  With ``alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t)``:
    ``m += (g - m)(1 - beta1)``, ``v += (g^2 - v)(1 - beta2)``,
    ``param -= alpha * m / (sqrt(v) + eps)``.  ``grad`` is consumed.
    """
    if weight_decay:
        np.multiply(param, weight_decay, out=scratch)
        grad += scratch
    alpha = lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
    np.subtract(grad, m, out=scratch)
    scratch *= 1.0 - beta1
    m += scratch
    np.multiply(grad, grad, out=scratch)
    scratch -= v
    scratch *= 1.0 - beta2
    v += scratch
    np.sqrt(v, out=scratch)
    scratch += eps
    np.divide(m, scratch, out=scratch)
    scratch *= alpha
    param -= scratch


#: Batches of fewer rows than this run BLAS on one thread (see ``blas_threads_for``).
SINGLE_THREAD_BELOW_ROWS = 256


def blas_threads_for(batch: int) -> int | None:
    """BLAS threads for an epoch at this batch size: 1, or ``None`` for all (BLAS as configured).

    The NumPy backend's rule (and the Numba backend's for epochs it does not run in
    parts).  Measured on the shared 2-core development machine (OpenBLAS 0.3.30/0.3.31,
    784-128-64-10, float32, the thread study of the time, since replaced by
    ``scripts/bench_epoch.py``'s schemes, 2026-11-25
    13:21 UTC, load average 1.3-4 from other jobs), Numba epoch medians, 1 vs 2
    threads: batch 32 0.29 vs 2.26 s, 128 0.24 vs 0.87 s, 512 0.35 vs 5.9 s, full
    0.25 vs 0.32 s (PyTorch alike: 1.03 vs 10.8 s at 32).  A second OpenBLAS thread
    that has to wait for a core stalls every GEMM, and one spinning after each GEMM
    takes the core the elementwise work between GEMMs needs.  Only with the
    machine quiet did two threads win (an earlier run: 128 rows 0.20 vs 0.23 s,
    512 0.17 vs 0.24, full 0.15 vs 0.27; the fastest full-batch epoch above, 0.147 s,
    was also on two).  So: one thread below 256 rows, where a quiet machine gains
    at most ~15% from two and a busy one loses 3-8x; all threads from 256 rows on,
    where the GEMMs are big enough for two threads to pay when a core is free.
    The rule is fixed, not measured per run, so that the same seed gives the same
    bits (OpenBLAS rounds differently on different thread counts);
    ``fit(threads="measure")`` times both instead.
    """
    return 1 if batch < SINGLE_THREAD_BELOW_ROWS else None
