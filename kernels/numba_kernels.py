"""Compute kernels jitted with Numba, and a whole training epoch in one jitted call.

The functions here have the signatures of ``numpy_kernels`` (the reference that
defines what each computes) and agree with it to float rounding.  On top of
them, :func:`train_epoch` runs an entire epoch -- gather of the shuffled batch,
forward pass, fused softmax-cross-entropy gradient, backward pass, optimizer
update, loss/accuracy accumulation -- inside one jitted function, so Python is
entered once per epoch instead of ~20 times per batch.

Design choices, and why:

- **BLAS with flags, not copies.**  Matrix products call ``sgemm``/``dgemm``
  from SciPy's BLAS (``scipy.linalg.cython_blas``, the same library ``np.dot``
  inside ``@njit`` would use) directly, so a transpose is the ``'T'`` flag and
  the ``alpha``/``beta`` arguments are available: plain SGD writes
  ``W = (1 - lr*wd) W - lr * A.T @ dZ`` in the GEMM itself, so the weight
  gradient is never stored and the update costs no extra pass over memory.
- **Fused elementwise work.**  Bias add + activation is one pass; softmax,
  cross-entropy, argmax and the gradient are one pass per row; the activation
  derivative is applied in one pass after ``dZ @ W.T``; momentum and Adam
  update a parameter and its state in one pass.  Nothing in the epoch loop
  allocates (buffers come from the caller's workspace).
- **Dropout** stays on the per-kernel path (the network draws its masks from
  NumPy's generator, so both backends see the same random stream); so do
  inputs that are not C-contiguous.  ``fastscratch.training.run_epoch``
  chooses; :func:`fused_epoch_supported` says what the fused path covers.
- **Threads.**  OpenBLAS threads are set per batch size around the epoch
  (:func:`blas_threads_for`: one thread below 256 rows); Numba's own ``parallel`` is not
  used: the elementwise passes here are a few hundred KB per batch, below the
  size where a second thread pays for its wake-up, and two pools on two cores
  would only fight.
- **Caching.**  Functions are compiled with ``cache=True`` when Numba can find
  a writable cache location, else without a cache (a read-only install runs,
  it just compiles on every start).  :func:`warmup` compiles (or loads) every
  function for a dtype and depth up front so callers can time compilation
  apart from training.

Storage is row-major, as in ``numpy_kernels``: ``X: (batch, n_in)``,
``W: (n_in, n_out)``, ``b: (n_out,)``.
"""

from __future__ import annotations

import math
import time
import warnings

import llvmlite.binding as llvm_binding
import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS the jitted code calls; ImportError without SciPy)
from numba import types
from numba.extending import get_cython_function_address

from . import numpy_kernels as _numpy_kernels
from .numpy_kernels import IDENTITY, RELU, SIGMOID, TANH

NAME = "numba"

__all__ = [
    "NAME", "IDENTITY", "RELU", "SIGMOID", "TANH", "gather_rows", "matmul", "bias_activation",
    "activation_backward", "softmax_cross_entropy_grad", "softmax", "column_sum", "dropout_mask",
    "multiply_into", "sgd_update", "momentum_update", "adam_update", "train_epoch", "fused_epoch_supported",
    "warmup", "blas_threads_for", "OPT_SGD", "OPT_MOMENTUM", "OPT_ADAM",
]

OPT_SGD, OPT_MOMENTUM, OPT_ADAM = 0, 1, 2


def _jit(function=None, **options):
    """``njit(cache=True, **options)`` where a cache directory is writable, else ``njit`` without one.

    Numba raises ``RuntimeError`` at decoration time when it finds no usable
    cache location (a read-only site-packages and no writable home or
    ``NUMBA_CACHE_DIR``); that must not stop the library from importing.
    """
    if function is None:  # used as @_jit(option=...)
        return lambda f: _jit(f, **options)
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError:
        return numba.njit(cache=False, **options)(function)


# ---- BLAS ------------------------------------------------------------------------------
# Fortran BLAS takes every argument by pointer; all are declared void* so one jitted
# function can call either routine (the dtype picks which at run time).  The
# addresses are registered as named symbols rather than baked in as ctypes
# pointers: code that names a symbol can be cached (it is resolved again in each
# process), code holding a raw address cannot.
_GEMM_SIGNATURE = types.void(*([types.voidptr] * 13))
for _name in ("sgemm", "dgemm"):
    llvm_binding.add_symbol(f"fastscratch_{_name}", get_cython_function_address("scipy.linalg.cython_blas", _name))
_sgemm = types.ExternalFunction("fastscratch_sgemm", _GEMM_SIGNATURE)
_dgemm = types.ExternalFunction("fastscratch_dgemm", _GEMM_SIGNATURE)
_N, _T = ord("N"), ord("T")


@_jit
def _gemm(trans_a, trans_b, alpha, A, B, beta, C, chars, ints, scalars):
    """Row-major ``C = alpha * op(A) @ op(B) + beta * C`` through BLAS.

    ``A``, ``B``, ``C`` are C-contiguous; ``op(A) = A.T`` when ``trans_a`` (so
    ``A`` is stored ``(k, m)``), else ``A`` (stored ``(m, k)``); likewise B.
    C: (m, n).  ``chars`` (2,) uint8, ``ints`` (6,) int32 and ``scalars`` (2,)
    of C's dtype are scratch for the by-pointer arguments.

    A row-major matrix is its transpose in column-major order, so this asks
    column-major BLAS for ``C.T = op(B).T @ op(A).T``: B goes first, and each
    operand's flag is its own ``trans`` -- a transpose costs nothing.
    """
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    chars[0] = _T if trans_b else _N
    chars[1] = _T if trans_a else _N
    ints[0] = n
    ints[1] = m
    ints[2] = k
    ints[3] = k if trans_b else n  # ldb: row length of B as stored
    ints[4] = m if trans_a else k  # lda
    ints[5] = n  # ldc
    scalars[0] = alpha
    scalars[1] = beta
    if C.itemsize == 4:
        _sgemm(chars[0:].ctypes, chars[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
               scalars[0:].ctypes, B.ctypes, ints[3:].ctypes, A.ctypes, ints[4:].ctypes,
               scalars[1:].ctypes, C.ctypes, ints[5:].ctypes)
    else:
        _dgemm(chars[0:].ctypes, chars[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
               scalars[0:].ctypes, B.ctypes, ints[3:].ctypes, A.ctypes, ints[4:].ctypes,
               scalars[1:].ctypes, C.ctypes, ints[5:].ctypes)


@_jit
def _matmul(A, trans_a, B, trans_b, C):
    chars = np.empty(2, np.uint8)
    ints = np.empty(6, np.int32)
    scalars = np.empty(2, C.dtype)
    _gemm(trans_a, trans_b, 1.0, A, B, 0.0, C, chars, ints, scalars)


def _as_stored(a: np.ndarray) -> tuple[np.ndarray | None, bool]:
    """``(stored, transposed)`` with ``stored`` C-contiguous and ``a == stored.T`` if transposed."""
    if a.flags.c_contiguous:
        return a, False
    if a.flags.f_contiguous:
        return a.T, True
    return None, False


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out = a @ b`` through BLAS; ``a``/``b`` may be transposed views (passed as flags).

    a: (m, k) ; b: (k, n) ; out: (m, n) C-contiguous.  Other layouts, or
    int32-overflowing sizes, go to ``np.matmul``.
    """
    A, ta = _as_stored(a)
    B, tb = _as_stored(b)
    if (A is None or B is None or not out.flags.c_contiguous or a.dtype != out.dtype or b.dtype != out.dtype
            or out.dtype not in (np.float32, np.float64) or max(a.shape + b.shape) >= 2**31 or out.size == 0
            or a.shape[1] == 0):
        np.matmul(a, b, out=out)
        return
    _matmul(A, ta, B, tb, out)


# ---- elementwise kernels ----------------------------------------------------------------
# ``one`` arguments are 1 in the arrays' dtype: a Python ``1`` would make Numba compute
# float32 expressions in float64, rounding differently from the NumPy kernels.
@_jit
def _activate(v, activation, one):
    if activation == RELU:
        return one - one if v <= 0 else v  # 0.0 (not -0.0) for v <= 0, -inf included; NaN passes
    if activation == SIGMOID:
        return one / (one + np.exp(-v))  # exp overflow -> inf -> 0: the right limit
    if activation == TANH:
        return np.tanh(v)
    return v


@_jit
def _bias_activation(z, b, activation, out, one):
    rows, cols = z.shape
    for i in range(rows):
        for j in range(cols):
            out[i, j] = _activate(z[i, j] + b[j], activation, one)


@_jit
def _activation_backward(delta, a, activation, one):
    """delta *= f'(z), with f' from a = f(z): the NumPy kernel's operations, in its order."""
    rows, cols = delta.shape
    if activation == IDENTITY:
        return
    for i in range(rows):
        for j in range(cols):
            x = a[i, j]
            if activation == RELU:
                if not x > 0:
                    delta[i, j] *= 0
            elif activation == SIGMOID:
                delta[i, j] = (delta[i, j] * x) * (one - x)
            else:
                delta[i, j] *= one - x * x


def _check_code(activation: int) -> None:
    if activation not in (IDENTITY, RELU, SIGMOID, TANH):
        raise ValueError(f"unknown activation code {activation}")


def bias_activation(z: np.ndarray, b: np.ndarray, activation: int, out: np.ndarray) -> None:
    """``out = f(z + b)`` in one pass.  z: (batch, n_out) ; b: (n_out,) ; out: like z, may be z."""
    _check_code(activation)
    _bias_activation(z, b, activation, out, out.dtype.type(1))


def activation_backward(delta: np.ndarray, a: np.ndarray, activation: int) -> None:
    """``delta *= f'(z)`` with ``f'`` from the output ``a = f(z)``; one pass, ``a`` left as is.

    delta, a: (batch, n).  (The NumPy kernel may overwrite ``a``; this one does not.)
    """
    _check_code(activation)
    _activation_backward(delta, a, activation, delta.dtype.type(1))


@_jit
def _softmax_ce_rows(logits, labels, grad, scale, one):
    """Per row: max, argmax, exp, sum, log-sum-exp loss and the gradient, in one kernel.

    ``grad`` may be ``logits``: each row's logits are read before they are overwritten.
    ``scale`` and ``one`` have the arrays' dtype; the probabilities and ``p - 1`` are
    computed in that dtype as the NumPy kernel computes them (``p - 1`` of a confident
    prediction keeps few digits in float32, and both backends should lose the same ones);
    the loss is accumulated in float64.
    """
    rows, cols = logits.shape
    loss = 0.0
    correct = 0
    for i in range(rows):
        best = logits[i, 0]
        arg = 0
        for j in range(1, cols):
            if logits[i, j] > best:
                best = logits[i, j]
                arg = j
        label = labels[i]
        if arg == label:
            correct += 1
        picked = logits[i, label] - best
        total = one - one
        for j in range(cols):
            e = np.exp(logits[i, j] - best)
            grad[i, j] = e
            total += e
        loss += math.log(total) - picked
        for j in range(cols):
            p = grad[i, j] / total
            if j == label:
                p -= one
            grad[i, j] = p * scale
    return loss, correct


def softmax_cross_entropy_grad(logits: np.ndarray, labels: np.ndarray, grad: np.ndarray, scale: float,
                               row_scratch: np.ndarray, index_scratch: np.ndarray) -> tuple[float, int]:
    """Softmax, summed cross-entropy loss and ``grad = scale * (softmax - onehot)`` in one pass per row.

    logits: (batch, n_classes) ; labels: (batch,) intp ; grad: like logits, may be
    ``logits``.  The scratch arguments exist for signature compatibility and are
    not used.  Returns ``(loss_sum, n_correct)`` as the NumPy kernel does.
    """
    if not grad.flags.c_contiguous:
        raise ValueError("softmax_cross_entropy_grad needs a C-contiguous grad array")
    kind = grad.dtype.type
    loss, correct = _softmax_ce_rows(logits, labels, grad, kind(scale), kind(1))
    return float(loss), int(correct)


@_jit
def _softmax(logits, out):
    rows, cols = logits.shape
    for i in range(rows):
        best = logits[i, 0]
        for j in range(1, cols):
            if logits[i, j] > best:
                best = logits[i, j]
        total = 0.0
        for j in range(cols):
            e = np.exp(logits[i, j] - best)
            out[i, j] = e
            total += e
        inv = 1.0 / total
        for j in range(cols):
            out[i, j] = out[i, j] * inv


def softmax(logits: np.ndarray, out: np.ndarray, row_scratch: np.ndarray) -> None:
    """Row-wise softmax.  logits: (batch, n_classes) ; out: same shape, may be logits ; scratch unused."""
    _softmax(logits, out)


@_jit
def _column_sum(delta, out):
    rows, cols = delta.shape
    for j in range(cols):
        out[j] = 0
    for i in range(rows):  # row by row, in the array's dtype, as np.add.reduce(axis=0) does
        for j in range(cols):
            out[j] += delta[i, j]


def column_sum(delta: np.ndarray, out: np.ndarray) -> None:
    """``out = delta.sum(axis=0)``.  delta: (batch, n) ; out: (n,)."""
    _column_sum(delta, out)


@_jit
def _gather_2d(source, indices, out):
    cols = source.shape[1]
    for i in range(indices.shape[0]):
        row = indices[i]
        for j in range(cols):
            out[i, j] = source[row, j]


@_jit
def _gather_1d(source, indices, out):
    for i in range(indices.shape[0]):
        out[i] = source[indices[i]]


def gather_rows(source: np.ndarray, indices: np.ndarray, out: np.ndarray) -> None:
    """``out = source[indices]`` without a temporary.  source: (n,) or (n, d) ; indices: (k,) valid."""
    if source.ndim == 1:
        _gather_1d(source, indices, out)
    elif source.ndim == 2:
        _gather_2d(source, indices, out)
    else:
        source.take(indices, axis=0, out=out, mode="clip")


@_jit
def _dropout_mask(flat, keep, scale):
    for i in range(flat.shape[0]):
        flat[i] = scale if flat[i] < keep else 0


def dropout_mask(uniform: np.ndarray, keep_prob: float) -> None:
    """Uniform draws in [0, 1) become ``1/keep_prob`` (kept) or 0, in place.

    ``keep_prob`` and ``1/keep_prob`` are rounded to the array's dtype first,
    as NumPy does with a Python float, so both backends keep the same units.
    """
    kind = uniform.dtype.type
    _dropout_mask(uniform.reshape(-1), kind(keep_prob), kind(1.0) * kind(1.0 / keep_prob))


@_jit
def _multiply_into(a, factors, out):
    for i in range(a.shape[0]):
        out[i] = a[i] * factors[i]


def multiply_into(a: np.ndarray, factors: np.ndarray, out: np.ndarray) -> None:
    """``out = a * factors`` elementwise (same shapes)."""
    if a.flags.c_contiguous and factors.flags.c_contiguous and out.flags.c_contiguous:
        _multiply_into(a.reshape(-1), factors.reshape(-1), out.reshape(-1))
    else:
        np.multiply(a, factors, out=out)


# ---- optimizers: one pass over a parameter, its gradient and its state -------------------------
@_jit
def _sgd(p, g, lr, wd):
    for i in range(p.shape[0]):
        p[i] -= lr * (g[i] + wd * p[i])


@_jit
def _momentum(p, g, vel, lr, mu, nesterov, wd):
    for i in range(p.shape[0]):
        step = lr * (g[i] + wd * p[i])
        v = mu * vel[i] - step
        vel[i] = v
        if nesterov:
            p[i] = (p[i] - step) + mu * v
        else:
            p[i] += v


@_jit
def _adam(p, g, m, v, alpha, one_minus_b1, one_minus_b2, eps, wd):
    for i in range(p.shape[0]):
        grad = g[i] + wd * p[i]
        mi = m[i] + (grad - m[i]) * one_minus_b1
        vi = v[i] + (grad * grad - v[i]) * one_minus_b2
        m[i] = mi
        v[i] = vi
        p[i] -= mi / (np.sqrt(vi) + eps) * alpha


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1)  # parameters and their state are contiguous: a view


# The optimizer loops compute in the parameters' dtype, with every constant rounded
# to it first, as NumPy does with Python floats: float32 state overflows (and is
# reported) exactly where the NumPy backend's does, and rounding stays alike.


def sgd_update(param: np.ndarray, grad: np.ndarray, lr: float, weight_decay: float, scratch: np.ndarray) -> None:
    """``param -= lr * (grad + weight_decay * param)`` in one pass; scratch unused."""
    kind = param.dtype.type
    _sgd(_flat(param), _flat(grad), kind(lr), kind(weight_decay))


def momentum_update(param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, lr: float, momentum: float,
                    nesterov: bool, weight_decay: float, scratch: np.ndarray) -> None:
    """Keras-style momentum (see ``numpy_kernels.momentum_update``) in one pass."""
    kind = param.dtype.type
    _momentum(_flat(param), _flat(grad), _flat(velocity), kind(lr), kind(momentum), bool(nesterov),
              kind(weight_decay))


def adam_update(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float, beta1: float,
                beta2: float, eps: float, step: int, weight_decay: float, scratch: np.ndarray) -> None:
    """Keras-style Adam (see ``numpy_kernels.adam_update``) in one pass; ``step`` counts from 1."""
    alpha = lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
    kind = param.dtype.type
    _adam(_flat(param), _flat(grad), _flat(m), _flat(v), kind(alpha), kind(1.0 - beta1), kind(1.0 - beta2),
          kind(eps), kind(weight_decay))


# ---- the whole epoch ----------------------------------------------------------------------
@_jit
def _update_layer(kind, W, b, gW, gb, sW1, sb1, sW2, sb2, lr, wd, zero, mu, nesterov, alpha, omb1, omb2, eps):
    """The optimizer step for one layer, weights (decayed) and biases (not)."""
    pW, gWf, sW1f, sW2f = W.reshape(W.size), gW.reshape(gW.size), sW1.reshape(sW1.size), sW2.reshape(sW2.size)
    if kind == OPT_MOMENTUM:
        _momentum(pW, gWf, sW1f, lr, mu, nesterov, wd)
        _momentum(b, gb, sb1, lr, mu, nesterov, zero)
    else:
        _adam(pW, gWf, sW1f, sW2f, alpha, omb1, omb2, eps, wd)
        _adam(b, gb, sb1, sb2, alpha, omb1, omb2, eps, zero)


# inlined into its callers' IR: as a called function it cost 1-4% of an epoch at batches of 32-128
@_jit(inline="always")
def _gather_forward(X, y, order, shuffle, first, last, Ws, bs, codes, xbuf, ybuf, acts, chars, ints, scalars,
                    one_t):
    """Rows ``first:last`` (of ``order`` when ``shuffle``, gathered into ``xbuf``/``ybuf``)
    through the network: ``z = a @ W`` (BLAS), then bias + activation in one pass.
    Returns ``(xb, yb, logits)``: the batch's inputs and labels, and the output layer's
    pre-softmax rows (a view of ``acts[-1]``)."""
    m = last - first
    if shuffle:
        for i in range(m):  # gather the shuffled rows into the batch buffer
            row = order[first + i]
            ybuf[i] = y[row]
            for j in range(X.shape[1]):
                xbuf[i, j] = X[row, j]
        xb = xbuf[:m]
        yb = ybuf[:m]
    else:
        xb = X[first:last]
        yb = y[first:last]
    layer_input = xb
    for layer in range(len(Ws)):
        z = acts[layer][:m]
        _gemm(False, False, 1.0, layer_input, Ws[layer], 0.0, z, chars, ints, scalars)
        _bias_activation(z, bs[layer], codes[layer], z, one_t)
        layer_input = z
    return xb, yb, acts[len(Ws) - 1][:m]


@_jit
def _batch_in_passes(X, y, order, shuffle, start, stop, Ws, bs, codes, xbuf, ybuf, acts, deltas, gWs, gbs,
                     chars, ints, scalars, typed, one_t):
    """The gradient of rows ``start:stop`` (of ``order`` when ``shuffle``) of the mean loss
    over them, into ``gWs``/``gbs``, in passes of as many rows as the buffers hold; no update.
    Returns the rows' ``(loss_sum, n_correct)``."""
    n_layers = len(Ws)
    rows = acts[0].shape[0]
    typed[8] = 1.0 / (stop - start)
    loss_total = 0.0
    correct_total = 0
    for first in range(start, stop, rows):
        last = min(first + rows, stop)
        m = last - first
        xb, yb, logits = _gather_forward(X, y, order, shuffle, first, last, Ws, bs, codes, xbuf, ybuf, acts, chars,
                                         ints, scalars, one_t)
        loss, correct = _softmax_ce_rows(logits, yb, logits, typed[8], one_t)
        loss_total += loss
        correct_total += correct
        # the first pass writes the gradients, later ones add to them (GEMM beta = 1)
        beta = 0.0 if first == start else 1.0
        delta = logits
        for layer in range(n_layers - 1, -1, -1):
            a_prev = xb if layer == 0 else acts[layer - 1][:m]
            _gemm(True, False, 1.0, a_prev, delta, beta, gWs[layer], chars, ints, scalars)
            gb = gbs[layer]
            if first == start:
                _column_sum(delta, gb)
            else:
                for i in range(m):
                    for j in range(gb.shape[0]):
                        gb[j] += delta[i, j]
            if layer > 0:
                d_prev = deltas[layer - 1][:m]
                _gemm(False, True, 1.0, delta, Ws[layer], 0.0, d_prev, chars, ints, scalars)
                _activation_backward(d_prev, a_prev, codes[layer - 1], one_t)
                delta = d_prev
    return loss_total, correct_total


@_jit
def _epoch(X, y, order, shuffle, batch, Ws, bs, codes, xbuf, ybuf, acts, deltas, gWs, gbs,
           kind, lr, wd, mu, nesterov, beta1, beta2, eps, step0, sW1, sb1, sW2, sb2, max_loss):
    """The mini-batch loop; see :func:`train_epoch`.  Returns
    ``(loss_sum, n_correct, steps_done, bad_batch, bad_loss)``; ``bad_batch`` is the
    1-based batch whose mean loss was not finite or above ``max_loss`` (0: none), and
    that batch was not applied; ``bad_loss`` is its mean loss."""
    n = X.shape[0]
    n_layers = len(Ws)
    chars = np.empty(2, np.uint8)
    ints = np.empty(6, np.int32)
    scalars = np.empty(2, X.dtype)
    # the optimizer's constants in the parameters' dtype (see sgd_update): a store into
    # an array of that dtype and a load back is Numba's generic cast
    typed = np.empty(9, X.dtype)
    typed[0] = lr
    typed[1] = wd
    typed[2] = mu
    typed[3] = 1.0 - beta1
    typed[4] = 1.0 - beta2
    typed[5] = eps
    typed[7] = 1
    lr_t, wd_t, mu_t, omb1_t, omb2_t, eps_t = typed[0], typed[1], typed[2], typed[3], typed[4], typed[5]
    one_t = typed[7]
    zero_t = one_t - one_t
    loss_total = 0.0
    correct_total = 0
    steps = 0
    rows = acts[0].shape[0]  # the most rows one pass runs (the workspace's)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        m = stop - start
        tall = m > rows  # a batch taller than the buffers: passes whose gradients add up
        if tall:
            loss, correct = _batch_in_passes(X, y, order, shuffle, start, stop, Ws, bs, codes, xbuf, ybuf, acts,
                                             deltas, gWs, gbs, chars, ints, scalars, typed, one_t)
        else:
            xb, yb, logits = _gather_forward(X, y, order, shuffle, start, stop, Ws, bs, codes, xbuf, ybuf, acts,
                                             chars, ints, scalars, one_t)
            typed[8] = 1.0 / m
            loss, correct = _softmax_ce_rows(logits, yb, logits, typed[8], one_t)
        if not loss <= max_loss * m:  # NaN compares false: caught too
            return loss_total, correct_total, steps, start // batch + 1, loss / m
        loss_total += loss
        correct_total += correct
        steps += 1
        if kind == OPT_ADAM:
            t = step0 + steps
            typed[6] = lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
        else:
            typed[6] = 0.0
        alpha_t = typed[6]
        if tall:  # the gradients are complete: update every layer
            for layer in range(n_layers):
                W, b, gW, gb = Ws[layer], bs[layer], gWs[layer], gbs[layer]
                if kind == OPT_SGD:
                    _sgd(W.reshape(W.size), gW.reshape(gW.size), lr_t, wd_t)
                    _sgd(b, gb, lr_t, zero_t)
                else:
                    _update_layer(kind, W, b, gW, gb, sW1[layer], sb1[layer], sW2[layer], sb2[layer],
                                  lr_t, wd_t, zero_t, mu_t, nesterov, alpha_t, omb1_t, omb2_t, eps_t)
            continue

        # backward, top layer first; each layer is updated as soon as its gradient is known
        # (its old weights have already served dZ @ W.T, and no lower layer needs them)
        delta = logits
        for layer in range(n_layers - 1, -1, -1):
            W = Ws[layer]
            a_prev = xb if layer == 0 else acts[layer - 1][:m]
            if layer > 0:
                d_prev = deltas[layer - 1][:m]
                _gemm(False, True, 1.0, delta, W, 0.0, d_prev, chars, ints, scalars)
                _activation_backward(d_prev, a_prev, codes[layer - 1], one_t)
            else:
                d_prev = delta
            b = bs[layer]
            if kind == OPT_SGD:
                # W = (1 - lr*wd) W - lr * a_prev.T @ delta: the update is the GEMM's alpha/beta
                _gemm(True, False, -lr, a_prev, delta, 1.0 - lr * wd, W, chars, ints, scalars)
                gb = gbs[layer]
                _column_sum(delta, gb)
                for j in range(b.shape[0]):
                    b[j] -= lr_t * gb[j]
            else:
                gW = gWs[layer]
                _gemm(True, False, 1.0, a_prev, delta, 0.0, gW, chars, ints, scalars)
                _column_sum(delta, gbs[layer])
                _update_layer(kind, W, b, gW, gbs[layer], sW1[layer], sb1[layer], sW2[layer], sb2[layer],
                              lr_t, wd_t, zero_t, mu_t, nesterov, alpha_t, omb1_t, omb2_t, eps_t)
            delta = d_prev
    return loss_total, correct_total, steps, 0, 0.0


def fused_epoch_supported(X: np.ndarray, weights: list[np.ndarray], dropping: bool) -> bool:
    """Whether :func:`train_epoch` handles this case; otherwise use the per-kernel path.

    Not covered: dropout (its masks come from NumPy's generator on the per-kernel
    path), non-contiguous or read-only inputs, non-contiguous parameters, dtypes
    other than float32/float64.
    """
    # read-only inputs (a memory map, say) are a different Numba type from the
    # workspace's gather buffer, and the epoch uses either as the batch: per-kernel path
    return (not dropping and X.dtype in (np.float32, np.float64) and X.flags.c_contiguous and X.flags.writeable
            and all(W.flags.c_contiguous and W.dtype == X.dtype for W in weights)
            and max(X.shape) < 2**31)


def blas_threads_for(batch: int) -> int | None:
    """BLAS threads for an epoch at this batch size: 1, or ``None`` for all (BLAS as configured).

    The same rule as the NumPy backend's (``numpy_kernels.blas_threads_for``,
    where the measurements are described).  Numba's ``parallel`` is not used
    at all (see the module notes).
    """
    return _numpy_kernels.blas_threads_for(batch)


def train_epoch(X: np.ndarray, y: np.ndarray, order: np.ndarray | None, batch: int,
                weights: list[np.ndarray], biases: list[np.ndarray], codes: list[int],
                xbuf: np.ndarray, ybuf: np.ndarray, acts: list[np.ndarray], deltas: list[np.ndarray],
                grad_W: list[np.ndarray], grad_b: list[np.ndarray], kind: int, lr: float, weight_decay: float,
                momentum: float = 0.0, nesterov: bool = False, beta1: float = 0.9, beta2: float = 0.999,
                eps: float = 1e-7, step0: int = 0, state1: list[np.ndarray] | None = None,
                state2: list[np.ndarray] | None = None,
                max_loss: float = math.inf) -> tuple[float, int, int, int, float]:
    """One epoch over ``X: (n, n_in)``, ``y: (n,)`` intp in batches of ``batch`` rows, in one jitted call.

    ``order``: (n,) intp permutation, or ``None`` to take the rows as they are.
    ``weights[l]: (n_in, n_out)``, ``biases[l]: (n_out,)`` are updated in place.
    ``xbuf: (rows, n_in)``, ``ybuf: (rows,)``, ``acts[l]: (rows, n_out)``,
    ``deltas[l]: (rows, sizes[l+1])`` for hidden layers, ``grad_W``/``grad_b``:
    workspace buffers, ``rows = min(batch, training.MAX_PASS_ROWS)``: a taller batch runs in
    passes of ``rows`` whose gradients add up before its one update.  ``kind``: ``OPT_SGD``, ``OPT_MOMENTUM`` or ``OPT_ADAM``;
    ``state1``/``state2``: the optimizer state per parameter in the order
    ``[W0, b0, W1, b1, ...]`` (velocity; Adam's m and v).  ``weight_decay``
    applies to weights only.  ``step0``: optimizer steps taken before (Adam's t).

    Returns ``(loss_sum, n_correct, steps_done, bad_batch, bad_loss)``: when a
    batch's mean loss per sample is not finite or above ``max_loss`` the epoch stops
    before that batch's update, ``bad_batch`` is its 1-based index (else 0) and
    ``bad_loss`` its mean loss.
    """
    shuffle = order is not None
    if xbuf is None:  # no gather (full batch or unshuffled): unused, but typed like the real ones
        xbuf = X[:0]
    if ybuf is None:
        ybuf = y[:0]
    if order is None:
        order = ybuf[:0]
    n_layers = len(weights)
    Ws, bs = tuple(weights), tuple(biases)
    if kind == OPT_SGD:  # unused: any arrays of the right types
        sW1 = sW2 = tuple(grad_W)
        sb1 = sb2 = tuple(grad_b)
    else:
        sW1, sb1 = tuple(state1[0::2]), tuple(state1[1::2])
        if state2 is None:
            sW2, sb2 = sW1, sb1
        else:
            sW2, sb2 = tuple(state2[0::2]), tuple(state2[1::2])
    codes_arr = np.asarray(codes, dtype=np.int64)
    # hidden-layer deltas: an empty tuple has no element type, so a one-layer net gets a dummy
    deltas_t = tuple(deltas) if n_layers > 1 else (acts[0][:0],)
    result = _epoch(X, y, order, shuffle, batch, Ws, bs, codes_arr, xbuf, ybuf, tuple(acts), deltas_t,
                    tuple(grad_W), tuple(grad_b), kind, float(lr), float(weight_decay), float(momentum),
                    bool(nesterov), float(beta1), float(beta2), float(eps), int(step0), sW1, sb1, sW2, sb2,
                    float(max_loss))
    loss, correct, steps, bad, bad_loss = result
    return float(loss), int(correct), int(steps), int(bad), float(bad_loss)


def warmup(n_layers: int, dtype: np.dtype | str = np.float32) -> float:
    """Compile (or load from Numba's cache) every kernel for ``dtype`` and a net of ``n_layers``.

    Returns the seconds it took; the network calls this before training so the
    compile time is reported on its own and kept out of epoch timings.  The
    work is done once per (depth, dtype) per process.
    """
    dtype = np.dtype(dtype)
    key = (n_layers, dtype)
    if key in _WARM:
        return 0.0
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", numba.NumbaWarning)
        sizes = [3] + [3] * (n_layers - 1) + [2]
        rng = np.random.default_rng(0)
        X = rng.random((5, sizes[0])).astype(dtype)
        y = np.array([0, 1, 0, 1, 1], np.intp)
        Ws = [rng.random((a, b)).astype(dtype) for a, b in zip(sizes[:-1], sizes[1:])]
        bs = [np.zeros(b, dtype) for b in sizes[1:]]
        acts = [np.empty((2, b), dtype) for b in sizes[1:]]
        deltas = [np.empty((2, b), dtype) for b in sizes[1:-1]]
        gW = [np.empty_like(W) for W in Ws]
        gb = [np.empty_like(b) for b in bs]
        state = [np.zeros_like(p) for pair in zip(Ws, bs) for p in pair]
        codes = [RELU] * (n_layers - 1) + [IDENTITY]
        xbuf, ybuf = np.empty((2, sizes[0]), dtype), np.empty(2, np.intp)
        order = np.arange(5, dtype=np.intp)
        for kind in (OPT_SGD, OPT_MOMENTUM, OPT_ADAM):
            for o in (order, None):
                train_epoch(X, y, o, 2, Ws, bs, codes, xbuf, ybuf, acts, deltas, gW, gb, kind, 0.01, 0.0,
                            state1=state, state2=state)
        _warm_kernels(dtype)
    _WARM.add(key)
    return time.perf_counter() - started


_WARM: set = set()
_WARM_KERNELS: set = set()


def _warm_kernels(dtype: np.dtype) -> None:
    """Compile the per-kernel functions (the dropout path, prediction) for ``dtype``."""
    if dtype in _WARM_KERNELS:
        return
    a = np.ones((2, 3), dtype)
    out = np.empty((2, 3), dtype)
    vec = np.ones(3, dtype)
    idx = np.zeros(2, np.intp)
    matmul(a, np.ones((3, 3), dtype), out)
    matmul(a.T, out, np.empty((3, 3), dtype))
    bias_activation(a, vec, RELU, out)
    activation_backward(out, a, RELU)
    softmax_cross_entropy_grad(a, idx, out, 1.0, None, None)
    softmax(a, out, None)
    column_sum(a, vec)
    gather_rows(a, idx, out[:2])
    gather_rows(idx, idx, np.empty(2, np.intp))
    dropout_mask(out, 0.5)
    multiply_into(a, out, out)
    p, g, s1, s2 = (np.zeros(3, dtype) for _ in range(4))
    sgd_update(p, g, 0.1, 0.0, s1)
    momentum_update(p, g, s1, 0.1, 0.9, True, 0.0, s2)
    adam_update(p, g, s1, s2, 0.1, 0.9, 0.999, 1e-7, 1, 0.0, g)
    _WARM_KERNELS.add(dtype)
