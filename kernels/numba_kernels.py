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
  inputs that are not C-contiguous.  ``fastscratch.training.epoch.run_epoch``
  chooses; :func:`fused_epoch_supported` says what the fused path covers.
- **Threads.**  From 64 rows (or a heavy step) the fused epoch cuts each step into
  parts, one per thread, each calling BLAS on one thread (:func:`epoch_threads`,
  :func:`step_program`; the claims and waits are in ``numba_threads``); the per-kernel path
  sets OpenBLAS threads per batch size (:func:`blas_threads_for`).  Numba's own ``parallel``
  is not used: its thread pool would compete with BLAS for the cores, and the parts need
  threads that can be told apart (which rows or columns each writes) for the same bits.
- **Caching.**  Functions are compiled with ``cache=True`` when Numba can find
  a writable cache location, else without a cache (a read-only install runs,
  it just compiles on every start).  :func:`warmup` compiles (or loads) every
  function for a dtype and depth up front so callers can time compilation
  apart from training; :func:`cache_stats` says how many were loaded from the
  cache and how many compiled in this process (a Dask worker on a machine whose
  cache is filled loads, it does not compile).

Storage is row-major, as in ``numpy_kernels``: ``X: (batch, n_in)``,
``W: (n_in, n_out)``, ``b: (n_out,)``.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from typing import Any

import llvmlite.binding as llvm_binding
import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS the jitted code calls; ImportError without SciPy)
from numba import types
from numba.extending import get_cython_function_address

from . import numba_threads
from . import numpy_kernels as _numpy_kernels
from .numba_threads import (MONOTONIC, clock_gettime, compare_exchange, cpu_relax, load_acquire, sleep_us,
                            store_release, yield_thread)
from .contract import ACTIVATION_CODES, ELU, IDENTITY, OPT_ADAM, OPT_MOMENTUM, OPT_SGD, RELU, SIGMOID, TANH

NAME = "numba"

__all__ = [
    "NAME", "IDENTITY", "RELU", "SIGMOID", "TANH", "ELU", "gather_rows", "matmul", "bias_activation",
    "activation_backward", "softmax_cross_entropy_grad", "softmax", "column_sum", "dropout_mask",
    "multiply_into", "sgd_update", "momentum_update", "adam_update", "train_epoch", "fused_epoch_supported",
    "warmup", "cache_stats", "blas_threads_for", "OPT_SGD", "OPT_MOMENTUM", "OPT_ADAM",
]


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

    ``A``, ``B``, ``C`` are C-contiguous or row-strided views of such arrays (a block of
    columns: unit stride along a row); ``op(A) = A.T`` when ``trans_a`` (so ``A`` is stored
    ``(k, m)``), else ``A`` (stored ``(m, k)``); likewise B.  C: (m, n).  ``chars`` (2,)
    uint8, ``ints`` (6,) int32 and ``scalars`` (2,) of C's dtype are scratch for the
    by-pointer arguments.

    A row-major matrix is its transpose in column-major order, so this asks
    column-major BLAS for ``C.T = op(B).T @ op(A).T``: B goes first, and each
    operand's flag is its own ``trans`` -- a transpose costs nothing.  The leading
    dimensions are the row strides, so a block of another matrix's columns is passed
    in place.
    """
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    size = C.itemsize
    chars[0] = _T if trans_b else _N
    chars[1] = _T if trans_a else _N
    ints[0] = n
    ints[1] = m
    ints[2] = k
    # ldb, lda, ldc: the row strides as stored, at least 1 (BLAS refuses 0 even for empty rows)
    ints[3] = max(B.strides[0] // size, B.shape[1], 1)
    ints[4] = max(A.strides[0] // size, A.shape[1], 1)
    ints[5] = max(C.strides[0] // size, C.shape[1], 1)
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
    if activation == ELU:
        return np.expm1(v) if v < 0 else v  # as the NumPy kernel: expm1 where v < 0, NaN passes
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
            elif activation == ELU:
                if not x > 0:  # min(a, 0) + 1: a + 1 = exp(z) below 0 (NaN passes), 1 above
                    delta[i, j] *= x + one
            else:
                delta[i, j] *= one - x * x


def _check_code(activation: int) -> None:
    if activation not in ACTIVATION_CODES:
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


# ---- the whole epoch, in parts that several threads share ----------------------------------
# The step is fastscratch.training.step's (forward, loss gradient, backward, update), fused and jitted.
# A training step is a short program of operations (:func:`step_program`): gather the batch,
# forward through each layer, softmax + cross-entropy gradient, backward through each layer,
# update the weights.  Every operation is cut into ``parts`` pieces -- a range of the batch's
# rows (SPLIT_ROWS) or of a layer's columns (SPLIT_COLS); the update into ranges of each weight
# matrix's rows and each bias's columns.  Row-wise operations in a row stay with their part and
# form one phase; a column-wise operation, and the update, is a phase of its own; a phase's
# parts are all finished before the next phase starts.  The calling thread and ``parts - 1``
# helper threads take the parts of each phase as they come (an atomic claim per part), so a
# helper that the operating system does not run just leaves its parts to the others: nobody
# waits for a thread that is not running unless it is in the middle of a part.  What each
# part computes is fixed by the program, not by who computes it, so the result depends on
# ``parts`` and never on how many threads took part (or on the machine's load).
OP_GATHER, OP_FORWARD, OP_SOFTMAX, OP_BACKWARD, OP_WEIGHTS, OP_UPDATE = range(6)
SPLIT_ROWS, SPLIT_COLS = 0, 1
MAX_PARTS = 8
ROW_QUANTUM = 8  # part boundaries in a batch's rows and a weight matrix's rows: multiples of this
COL_QUANTUM = 16  # ... and in a layer's columns (whole SIMD registers)
#: a layer's product is cut by columns rather than rows when its weight matrix has at least
#: COLS_MIN_WEIGHTS elements and its output is at least COLS_MIN_WIDTH_RATIO times as wide as
#: the batch is tall: then cutting rows would have every part pack the whole weight matrix,
#: cutting columns packs each part's share of it (and the batch, the smaller operand, twice)
COLS_MIN_WEIGHTS = 16384
COLS_MIN_WIDTH_RATIO = 2
# the sync array: the phase counter and the stop flag, then each part's claim and done
# counters on cache lines of their own
_SEQ, _STOP = 0, 1
_SYNC_SIZE = 8 + 16 * MAX_PARTS
# the constants array, in the parameters' dtype (see sgd_update: rounded like NumPy does)
_C_LR, _C_WD, _C_MU, _C_OMB1, _C_OMB2, _C_EPS, _C_ALPHA, _C_ONE, _C_SCALE, _C_ZERO = range(10)
# the task array: what the current phase is working on
_T_PHASE, _T_FIRST, _T_LAST, _T_SHUFFLE, _T_ACCUMULATE, _T_TALL = range(6)
# Waiting for another thread: spin with the pause hint for _SPIN_NS (holding the core: a
# yield would hand it to another process for a whole scheduler tick), then yield it until
# _YIELD_NS, then sleep in naps of _NAP_US (between epochs, or when the caller is off its core)
_SPIN_NS, _YIELD_NS, _NAP_US = 300_000, 2_000_000, 20
# Sharing with helpers, measured as it goes: when the caller waits for the helpers' parts of a
# phase longer than its own part took, plus _STALL_SLACK_NS, a helper holding a part was taken
# off its core (another process wanted it).  The caller then runs the phases alone for a while,
# _SOLO_MIN_NS at first, doubling with each such stall up to _SOLO_MAX_NS and halving again
# after each stretch of sharing without one, so a busy machine costs a stall now and then
# rather than one per scheduler time slice.  Who runs a part never changes what it computes,
# so none of this changes a bit of the result.
_STALL_SLACK_NS = 1_000_000
_SOLO_MIN_NS, _SOLO_MAX_NS = 2_000_000, 64_000_000


def step_program(sizes: tuple[int, ...], rows: int, parts: int) -> tuple[np.ndarray, np.ndarray]:
    """The operations of one training step on ``rows`` rows, cut into ``parts`` parts.

    Returns ``(program, phase_start)``: ``program: (n_ops, 5) int64``, one row per
    operation ``(phase, op, layer, split, quantum)`` in the order they run (``quantum``:
    the parts' boundaries are multiples of it, in rows or columns); ``phase_start:
    (n_phases + 1,)`` the first row of each phase.  ``OP_BACKWARD`` of layer ``l``
    computes the gradient at layer ``l - 1``'s output.  The last two phases hold one
    ``OP_WEIGHTS`` and one ``OP_UPDATE`` per layer: the weight gradient and update, cut
    like the layer's forward product (by columns of W when that was, so each thread keeps
    the same block of W in its cache; else by rows); ``OP_UPDATE`` runs only after the
    passes of a batch taller than ``rows`` (whose ``OP_WEIGHTS`` then add up gradients
    instead of updating).
    """
    n_layers = len(sizes) - 1

    def split(n_split: int, n_other: int) -> int:  # for a product whose output has n_split columns
        cols = parts > 1 and n_split * n_other >= COLS_MIN_WEIGHTS and n_split >= COLS_MIN_WIDTH_RATIO * rows
        return SPLIT_COLS if cols else SPLIT_ROWS

    ops = [(OP_GATHER, 0, SPLIT_ROWS)]
    ops += [(OP_FORWARD, layer, split(sizes[layer + 1], sizes[layer])) for layer in range(n_layers)]
    ops.append((OP_SOFTMAX, n_layers - 1, SPLIT_ROWS))
    ops += [(OP_BACKWARD, layer, split(sizes[layer], sizes[layer + 1])) for layer in range(n_layers - 1, 0, -1)]
    program, phase = [], -1
    for index, (op, layer, how) in enumerate(ops):
        joins = index > 0 and how == SPLIT_ROWS and ops[index - 1][2] == SPLIT_ROWS
        phase += 0 if joins else 1
        program.append((phase, op, layer, how, COL_QUANTUM if how == SPLIT_COLS else ROW_QUANTUM))
    for op, at in ((OP_WEIGHTS, phase + 1), (OP_UPDATE, phase + 2)):
        for layer in range(n_layers):
            how = ops[1 + layer][2]  # as the layer's forward product
            program.append((at, op, layer, how, COL_QUANTUM if how == SPLIT_COLS else ROW_QUANTUM))
    table = np.array(program, dtype=np.int64)
    phase_start = np.searchsorted(table[:, 0], np.arange(phase + 4)).astype(np.int64)
    return table, phase_start


@_jit
def _span(n, part, parts, quantum):
    """``[lo, hi)``: part ``part`` of ``parts`` of ``range(n)``, inner boundaries rounded down to
    multiples of ``quantum`` (so a part may be empty)."""
    lo = 0 if part == 0 else (n * part // parts) // quantum * quantum
    hi = n if part == parts - 1 else (n * (part + 1) // parts) // quantum * quantum
    return lo, hi


@_jit
def _layer_input(layer, m, data, bufs, shuffle, first):
    """The batch's input to ``layer`` (``m`` rows): the gathered (or in-place) inputs, or the
    previous layer's activations."""
    X = data[0]
    if layer == 0:
        if shuffle:
            return bufs[0][:m]
        return X[first:first + m]
    return bufs[2][layer - 1][:m]


@_jit
def _layer_delta(layer, m, bufs, n_layers):
    """The gradient of the loss at ``layer``'s pre-activation, ``m`` rows."""
    if layer == n_layers - 1:
        return bufs[2][layer][:m]  # the softmax gradient, written over the logits
    return bufs[3][layer][:m]


@_jit
def _update_span(kind, nesterov, W, b, gW, gb, state, layer, i0, i1, c0, c1, j0, j1, consts):
    """The optimizer step on the block ``W[i0:i1, c0:c1]`` and on ``b[j0:j1]`` from the
    gradients ``gW``/``gb`` (weights decayed, biases not)."""
    n = W.shape[1]
    lr, wd, zero = consts[_C_LR], consts[_C_WD], consts[_C_ZERO]
    mu, alpha, omb1, omb2, eps = consts[_C_MU], consts[_C_ALPHA], consts[_C_OMB1], consts[_C_OMB2], consts[_C_EPS]
    sW1, sb1, sW2, sb2 = state
    flat_W, flat_g = W.reshape(W.size), gW.reshape(gW.size)
    flat_s1, flat_s2 = sW1[layer].reshape(W.size), sW2[layer].reshape(W.size)
    whole_rows = c0 == 0 and c1 == n  # one contiguous run, else a run per row
    for i in range(i0, i1 if not whole_rows else i0 + 1):
        lo, hi = (i0 * n, i1 * n) if whole_rows else (i * n + c0, i * n + c1)
        if hi <= lo:
            continue
        if kind == OPT_SGD:
            _sgd(flat_W[lo:hi], flat_g[lo:hi], lr, wd)
        elif kind == OPT_MOMENTUM:
            _momentum(flat_W[lo:hi], flat_g[lo:hi], flat_s1[lo:hi], lr, mu, nesterov, wd)
        else:
            _adam(flat_W[lo:hi], flat_g[lo:hi], flat_s1[lo:hi], flat_s2[lo:hi], alpha, omb1, omb2, eps, wd)
    if j1 > j0:
        if kind == OPT_SGD:
            _sgd(b[j0:j1], gb[j0:j1], lr, zero)
        elif kind == OPT_MOMENTUM:
            _momentum(b[j0:j1], gb[j0:j1], sb1[layer][j0:j1], lr, mu, nesterov, zero)
        else:
            _adam(b[j0:j1], gb[j0:j1], sb1[layer][j0:j1], sb2[layer][j0:j1], alpha, omb1, omb2, eps, zero)


@_jit
def _weight_blocks(W, how, part, parts, quantum):
    """``(i0, i1, c0, c1, j0, j1)``: the part's block ``W[i0:i1, c0:c1]`` and bias range
    ``j0:j1`` -- a block of rows (biases cut alike) or of columns (the same columns of b)."""
    n_in, n_out = W.shape
    if how == SPLIT_COLS:
        c0, c1 = _span(n_out, part, parts, quantum)
        return 0, n_in, c0, c1, c0, c1
    i0, i1 = _span(n_in, part, parts, quantum)
    j0, j1 = _span(n_out, part, parts, quantum)
    return i0, i1, 0, n_out, j0, j1


@_jit
def _run_op(op, layer, how, quantum, part, parts, data, net, bufs, opt, consts, task, losses, corrects, scratch):
    """Part ``part`` of one operation of the step program, on the rows ``task`` names."""
    X, y, order = data
    Ws, bs, codes = net
    xbuf, ybuf, acts, deltas, gWs, gbs = bufs
    kind, nesterov, lr, wd, state = opt
    chars, ints, scalars = scratch
    first, last = task[_T_FIRST], task[_T_LAST]
    shuffle, accumulate, tall = task[_T_SHUFFLE] != 0, task[_T_ACCUMULATE] != 0, task[_T_TALL] != 0
    m = last - first
    one = consts[_C_ONE]
    n_layers = len(Ws)
    r0, r1 = _span(m, part, parts, quantum)
    if op == OP_GATHER:
        if shuffle:
            for i in range(r0, r1):
                row = order[first + i]
                ybuf[i] = y[row]
                for j in range(X.shape[1]):
                    xbuf[i, j] = X[row, j]
    elif op == OP_FORWARD:
        W, b = Ws[layer], bs[layer]
        a = _layer_input(layer, m, data, bufs, shuffle, first)
        if how == SPLIT_COLS:
            c0, c1 = _span(W.shape[1], part, parts, quantum)
            if c1 > c0:
                z = acts[layer][:m, c0:c1]
                _gemm(False, False, 1.0, a, W[:, c0:c1], 0.0, z, chars, ints, scalars)
                _bias_activation(z, b[c0:c1], codes[layer], z, one)
        elif r1 > r0:
            z = acts[layer][r0:r1]
            _gemm(False, False, 1.0, a[r0:r1], W, 0.0, z, chars, ints, scalars)
            _bias_activation(z, b, codes[layer], z, one)
    elif op == OP_SOFTMAX:
        losses[part] = 0.0
        corrects[part] = 0
        if r1 > r0:
            logits = acts[n_layers - 1][r0:r1]
            labels = ybuf[r0:r1] if shuffle else y[first + r0:first + r1]
            loss, correct = _softmax_ce_rows(logits, labels, logits, consts[_C_SCALE], one)
            losses[part] = loss
            corrects[part] = correct
    elif op == OP_BACKWARD:  # the gradient at layer - 1's output, from layer's
        W = Ws[layer]
        delta = _layer_delta(layer, m, bufs, n_layers)
        if how == SPLIT_COLS:
            c0, c1 = _span(W.shape[0], part, parts, quantum)
            if c1 > c0:
                d_prev = deltas[layer - 1][:m, c0:c1]
                _gemm(False, True, 1.0, delta, W[c0:c1], 0.0, d_prev, chars, ints, scalars)
                _activation_backward(d_prev, acts[layer - 1][:m, c0:c1], codes[layer - 1], one)
        elif r1 > r0:
            d_prev = deltas[layer - 1][r0:r1]
            _gemm(False, True, 1.0, delta[r0:r1], W, 0.0, d_prev, chars, ints, scalars)
            _activation_backward(d_prev, acts[layer - 1][r0:r1], codes[layer - 1], one)
    elif op == OP_WEIGHTS:
        # dW = a.T @ delta and db = column sums of delta on this part's block, then the update,
        # or (a pass of a taller batch) the gradient written or added to
        W, b, gW, gb = Ws[layer], bs[layer], gWs[layer], gbs[layer]
        a = _layer_input(layer, m, data, bufs, shuffle, first)
        delta = _layer_delta(layer, m, bufs, n_layers)
        i0, i1, c0, c1, j0, j1 = _weight_blocks(W, how, part, parts, quantum)
        if i1 > i0 and c1 > c0:
            if tall:
                _gemm(True, False, 1.0, a[:, i0:i1], delta[:, c0:c1], 1.0 if accumulate else 0.0, gW[i0:i1, c0:c1],
                      chars, ints, scalars)
            elif kind == OPT_SGD:  # W = (1 - lr*wd) W - lr * a.T @ delta: the update is the GEMM's alpha/beta
                _gemm(True, False, -lr, a[:, i0:i1], delta[:, c0:c1], 1.0 - lr * wd, W[i0:i1, c0:c1], chars, ints,
                      scalars)
            else:
                _gemm(True, False, 1.0, a[:, i0:i1], delta[:, c0:c1], 0.0, gW[i0:i1, c0:c1], chars, ints, scalars)
        if not (tall and accumulate):
            for j in range(j0, j1):
                gb[j] = 0
        for i in range(m):  # row by row, in the array's dtype, as np.add.reduce(axis=0) does
            for j in range(j0, j1):
                gb[j] += delta[i, j]
        if not tall:
            if kind == OPT_SGD:
                for j in range(j0, j1):
                    b[j] -= consts[_C_LR] * gb[j]
            else:
                _update_span(kind, nesterov, W, b, gW, gb, state, layer, i0, i1, c0, c1, j0, j1, consts)
    else:  # OP_UPDATE: the gradients of a tall batch's passes are complete
        W = Ws[layer]
        i0, i1, c0, c1, j0, j1 = _weight_blocks(W, how, part, parts, quantum)
        _update_span(kind, nesterov, W, bs[layer], gWs[layer], gbs[layer], state, layer, i0, i1, c0, c1, j0, j1,
                     consts)


@_jit
def _now_ns(clock):
    """The monotonic clock in nanoseconds; ``clock``: (2,) int64 scratch (a timespec)."""
    clock_gettime(MONOTONIC, clock.ctypes)
    return clock[0] * 1_000_000_000 + clock[1]


@_jit
def _backoff(spins, since, clock):
    """One wait of a spin loop that began at ``since`` (ns, :func:`_now_ns`): the pause hint for
    the first _SPIN_NS, then yielding the core until _YIELD_NS, then naps.  Returns
    ``spins + 1``; the clock is read every 16 spins."""
    if spins % 16 != 15:
        cpu_relax()
        return spins + 1
    waited = _now_ns(clock) - since
    if waited < _SPIN_NS:
        cpu_relax()
    elif waited < _YIELD_NS:
        yield_thread()
    else:
        sleep_us(_NAP_US)
    return spins + 1


@_jit
def _take_parts(sync, seq, me, parts, program, phase_start, data, net, bufs, opt, consts, task, losses, corrects,
                counts, scratch):
    """Claim and run every part of phase ``seq`` that nobody has claimed yet, own part first.
    ``counts[me]`` counts the parts this thread ran; ``scratch``: its by-pointer arguments
    for BLAS (see :func:`_gemm`)."""
    for k in range(parts):
        part = (me + k) % parts
        if compare_exchange(sync, 8 + 16 * part, seq - 1, seq):  # this part of phase seq is ours
            phase = task[_T_PHASE]
            for i in range(phase_start[phase], phase_start[phase + 1]):
                _run_op(program[i, 1], program[i, 2], program[i, 3], program[i, 4], part, parts, data, net, bufs, opt,
                        consts, task, losses, corrects, scratch)
            store_release(sync, 16 + 16 * part, seq)
            counts[me] += 1


@_jit
def _run_phase(sync, seq, phase, parts, share, program, phase_start, data, net, bufs, opt, consts, task, losses,
               corrects, counts, scratch, clock):
    """The calling thread's side of phase ``seq`` (program phase ``phase``): publish it (when
    ``share``; else the helpers do not see it), take what parts are left, wait until every part
    is done.  Returns ``(stalled, now)``: whether the wait for the helpers' parts was much
    longer than the caller's own work (see _STALL_SLACK_NS), and the clock at the end."""
    task[_T_PHASE] = phase
    if share:
        store_release(sync, _SEQ, seq)
    started = _now_ns(clock)
    _take_parts(sync, seq, 0, parts, program, phase_start, data, net, bufs, opt, consts, task, losses, corrects,
                counts, scratch)
    own = _now_ns(clock)
    for part in range(parts):
        spins = 0
        while load_acquire(sync, 16 + 16 * part) < seq:
            spins = _backoff(spins, own, clock)
    done = _now_ns(clock)
    return done - own > own - started + _STALL_SLACK_NS, done


@_jit(nogil=True)
def _help(sync, me, parts, program, phase_start, data, net, bufs, opt, consts, task, losses, corrects, counts):
    """A helper thread: take parts of each phase the caller publishes, until told to stop."""
    scratch = (np.empty(2, np.uint8), np.empty(6, np.int32), np.empty(2, consts.dtype))
    clock = np.zeros(2, np.int64)
    seen = 0
    spins = 0
    since = _now_ns(clock)
    while True:
        seq = load_acquire(sync, _SEQ)
        if seq == seen:
            spins = _backoff(spins, since, clock)
            continue
        seen = seq
        spins = 0
        if load_acquire(sync, _STOP) != 0:
            return
        _take_parts(sync, seq, me, parts, program, phase_start, data, net, bufs, opt, consts, task, losses, corrects,
                    counts, scratch)
        since = _now_ns(clock)


@_jit
def _stop_helpers(sync):
    """Tell the helper threads to return: the stop flag, then one more phase for them to see it by."""
    store_release(sync, _STOP, 1)
    store_release(sync, _SEQ, load_acquire(sync, _SEQ) + 1)


@_jit(nogil=True)
def _epoch(sync, parts, program, phase_start, data, net, bufs, opt, consts, task, losses, corrects, counts, batch,
           beta1, beta2, step0, max_loss):
    """The mini-batch loop; see :func:`train_epoch`.  Returns
    ``(loss_sum, n_correct, steps_done, bad_batch, bad_loss)``; ``bad_batch`` is the
    1-based batch whose mean loss was not finite or above ``max_loss`` (0: none), and
    that batch was not applied; ``bad_loss`` is its mean loss."""
    n = data[0].shape[0]
    kind, lr = opt[0], opt[2]
    rows = bufs[2][0].shape[0]  # the most rows one pass runs (the workspace's)
    n_phases = phase_start.shape[0] - 1
    weights_phase, update_phase = n_phases - 2, n_phases - 1
    softmax_phase = 0
    for i in range(program.shape[0]):
        if program[i, 1] == OP_SOFTMAX:
            softmax_phase = program[i, 0]
    scratch = (np.empty(2, np.uint8), np.empty(6, np.int32), np.empty(2, consts.dtype))
    clock = np.zeros(2, np.int64)
    now = _now_ns(clock)
    solo_until, solo_ns, calm_since = now, _SOLO_MIN_NS, now  # see _STALL_SLACK_NS
    seq = 0
    loss_total = 0.0
    correct_total = 0
    steps = 0
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        m = stop - start
        tall = m > rows  # a batch taller than the buffers: passes whose gradients add up
        consts[_C_SCALE] = 1.0 / m
        task[_T_TALL] = tall
        loss = 0.0
        correct = 0
        for first in range(start, stop, rows):
            task[_T_FIRST] = first
            task[_T_LAST] = min(first + rows, stop)
            task[_T_ACCUMULATE] = first > start  # later passes add to the gradients (GEMM beta = 1)
            for phase in range(weights_phase + 1):
                if phase == weights_phase and not tall:
                    if not loss <= max_loss * m:  # NaN compares false: caught too
                        _stop_helpers(sync)
                        return loss_total, correct_total, steps, start // batch + 1, loss / m
                    if kind == OPT_ADAM:
                        t = step0 + steps + 1
                        consts[_C_ALPHA] = lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
                seq += 1
                share = parts > 1 and now >= solo_until
                stalled, now = _run_phase(sync, seq, phase, parts, share, program, phase_start, data, net, bufs, opt,
                                          consts, task, losses, corrects, counts, scratch, clock)
                if stalled:
                    solo_until, calm_since = now + solo_ns, now + solo_ns
                    solo_ns = min(2 * solo_ns, _SOLO_MAX_NS)
                elif share and now - calm_since > 8 * solo_ns:
                    solo_ns, calm_since = max(solo_ns // 2, _SOLO_MIN_NS), now
                if phase == softmax_phase:
                    for part in range(parts):
                        loss += losses[part]
                        correct += corrects[part]
        if tall:
            if not loss <= max_loss * m:
                _stop_helpers(sync)
                return loss_total, correct_total, steps, start // batch + 1, loss / m
            if kind == OPT_ADAM:
                t = step0 + steps + 1
                consts[_C_ALPHA] = lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
            seq += 1
            _, now = _run_phase(sync, seq, update_phase, parts, parts > 1 and now >= solo_until, program, phase_start,
                                data, net, bufs, opt, consts, task, losses, corrects, counts, scratch, clock)
        loss_total += loss
        correct_total += correct
        steps += 1
    _stop_helpers(sync)
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
    """BLAS threads for the per-kernel path (dropout, memory maps) at this batch size: 1, or
    ``None`` for all.  The same rule as the NumPy backend's (``numpy_kernels.blas_threads_for``,
    where the measurements are described).  :func:`train_epoch` runs BLAS on one thread per
    part instead (see :func:`epoch_threads`)."""
    return _numpy_kernels.blas_threads_for(batch)


#: a step of fewer floating-point operations than this, or of fewer rows (unless it is wide,
#: below), runs in one part.  Handing parts to another thread costs a few microseconds per
#: phase, more than it saves on small steps; and below 64 rows the products are so short that
#: packing the weights for BLAS takes as long as the arithmetic, and two threads doing it at once
#: were no faster than one (784-128-64-10 at batch 32, 2-core machine: 0.355-0.51 s an epoch in
#: two parts against 0.354-0.367 s in one, 2026-12-01).
MIN_PARALLEL_STEP_FLOPS = 2_000_000
MIN_PARALLEL_ROWS = 64
#: ...but a short step this heavy has weights wide enough to cut by columns, so each thread packs
#: only its half: 784-W-W-10 at batch 32 took 6.24 against 8.04 s an epoch in two parts at
#: W=1024 (357 MFLOP a step), 2.04 against 2.33 s at W=512 (128 MFLOP), and was no faster or
#: slower below (0.56 against 0.59 s at W=128, 1.13 against 0.89 s at W=256, 52 MFLOP).
MIN_PARALLEL_SHORT_STEP_FLOPS = 100_000_000


def epoch_threads(sizes: list[int] | tuple[int, ...], rows: int, threads: int) -> tuple[int, int | None]:
    """``(parts, blas_threads)`` for :func:`train_epoch` on steps of ``rows`` rows, given
    ``threads`` threads: how many parts to cut each step into (one thread each), and the BLAS
    threads meanwhile (``None``: all, as configured).

    ``(min(threads, MAX_PARTS), 1)``, or ``(1, 1)`` for steps too small to share (see
    :data:`MIN_PARALLEL_STEP_FLOPS`, :data:`MIN_PARALLEL_SHORT_STEP_FLOPS`).  Never BLAS's own threads: on a 2-core machine with one
    other busy process they made epochs 1.6-4.8x slower than one thread (full batch to batch 32),
    where parts cost at most 1.16x; idle, they were faster only on tall passes (full batch
    0.163 against 0.216 s), and parts still beat JAX there (``scripts/bench_epoch.py --load 0,1``,
    784-128-64-10 on Fashion-MNIST, 2026-12-01; the README has the table)."""
    flops = 2 * rows * sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) * 3
    too_short = rows < MIN_PARALLEL_ROWS and flops < MIN_PARALLEL_SHORT_STEP_FLOPS
    if threads <= 1 or flops < MIN_PARALLEL_STEP_FLOPS or too_short:
        return 1, 1
    return min(int(threads), MAX_PARTS), 1


_PROGRAMS: dict = {}


def train_epoch(X: np.ndarray, y: np.ndarray, order: np.ndarray | None, batch: int,
                weights: list[np.ndarray], biases: list[np.ndarray], codes: list[int],
                xbuf: np.ndarray, ybuf: np.ndarray, acts: list[np.ndarray], deltas: list[np.ndarray],
                grad_W: list[np.ndarray], grad_b: list[np.ndarray], kind: int, lr: float, weight_decay: float,
                momentum: float = 0.0, nesterov: bool = False, beta1: float = 0.9, beta2: float = 0.999,
                eps: float = 1e-7, step0: int = 0, state1: list[np.ndarray] | None = None,
                state2: list[np.ndarray] | None = None,
                max_loss: float = math.inf, parts: int = 1, helpers: int | None = None,
                counts: np.ndarray | None = None) -> tuple[float, int, int, int, float]:
    """One epoch over ``X: (n, n_in)``, ``y: (n,)`` intp in batches of ``batch`` rows, in one jitted call.

    Each batch is the training step of :mod:`fastscratch.training.step` (forward, loss gradient,
    backward, update; its docstring has the formula table), the same arithmetic fused into
    one jitted loop and cut into parts (:func:`step_program`), so that no Python runs per
    batch.  ``order``: (n,) intp permutation, or ``None`` to take the rows as they are.
    ``weights[l]: (n_in, n_out)``, ``biases[l]: (n_out,)`` are updated in place.
    ``xbuf: (rows, n_in)``, ``ybuf: (rows,)``, ``acts[l]: (rows, n_out)``,
    ``deltas[l]: (rows, sizes[l+1])`` for hidden layers, ``grad_W``/``grad_b``:
    workspace buffers, ``rows = min(batch, training.MAX_PASS_ROWS)``: a taller batch runs in
    passes of ``rows`` whose gradients add up before its one update.  ``kind``: ``OPT_SGD``, ``OPT_MOMENTUM`` or ``OPT_ADAM``;
    ``state1``/``state2``: the optimizer state per parameter in the order
    ``[W0, b0, W1, b1, ...]`` (velocity; Adam's m and v).  ``weight_decay``
    applies to weights only.  ``step0``: optimizer steps taken before (Adam's t).

    ``parts``: each step's work is cut into this many parts (:func:`step_program`), shared by
    the calling thread and ``helpers`` helper threads (default ``parts - 1``; none where the
    platform has no way for them to wait politely).  The result depends on ``parts`` only,
    not on ``helpers``.  BLAS should run on one thread meanwhile (the caller sets it).
    ``counts``: ``(MAX_PARTS,) int64``; ``counts[t]`` is increased by the parts thread ``t``
    ran (0: the caller), to see how much the helpers took.

    Returns ``(loss_sum, n_correct, steps_done, bad_batch, bad_loss)``: when a
    batch's mean loss per sample is not finite or above ``max_loss`` the epoch stops
    before that batch's update, ``bad_batch`` is its 1-based index (else 0) and
    ``bad_loss`` its mean loss.
    """
    if not 1 <= parts <= MAX_PARTS:
        raise ValueError(f"parts must be between 1 and {MAX_PARTS}, got {parts}")
    shuffle = order is not None
    if xbuf is None:  # no gather (full batch or unshuffled): unused, but typed like the real ones
        xbuf = X[:0]
    if ybuf is None:
        ybuf = y[:0]
    if order is None:
        order = ybuf[:0]
    n_layers = len(weights)
    sizes = (weights[0].shape[0],) + tuple(W.shape[1] for W in weights)
    rows = acts[0].shape[0]
    key = (sizes, rows, parts, COLS_MIN_WEIGHTS, COLS_MIN_WIDTH_RATIO, ROW_QUANTUM, COL_QUANTUM)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = step_program(sizes, rows, parts)
    program, phase_start = _PROGRAMS[key]
    if kind == OPT_SGD:  # unused: any arrays of the right types
        state = (tuple(grad_W), tuple(grad_b), tuple(grad_W), tuple(grad_b))
    else:
        sW1, sb1 = tuple(state1[0::2]), tuple(state1[1::2])
        sW2, sb2 = (sW1, sb1) if state2 is None else (tuple(state2[0::2]), tuple(state2[1::2]))
        state = (sW1, sb1, sW2, sb2)
    # hidden-layer deltas: an empty tuple has no element type, so a one-layer net gets a dummy
    deltas_t = tuple(deltas) if n_layers > 1 else (acts[0][:0],)
    data = (X, y, order)
    net = (tuple(weights), tuple(biases), np.asarray(codes, dtype=np.int64))
    bufs = (xbuf, ybuf, tuple(acts), deltas_t, tuple(grad_W), tuple(grad_b))
    opt = (int(kind), bool(nesterov), float(lr), float(weight_decay), state)
    consts = np.zeros(10, X.dtype)
    consts[[_C_LR, _C_WD, _C_MU, _C_OMB1, _C_OMB2, _C_EPS, _C_ONE]] = [lr, weight_decay, momentum, 1.0 - beta1,
                                                                       1.0 - beta2, eps, 1.0]
    task = np.zeros(8, np.int64)
    task[_T_SHUFFLE] = shuffle
    losses, corrects = np.zeros(parts), np.zeros(parts, np.int64)
    sync = np.zeros(_SYNC_SIZE, np.int64)
    if counts is None:
        counts = np.zeros(MAX_PARTS, np.int64)
    shared = (program, phase_start, data, net, bufs, opt, consts, task, losses, corrects, counts)
    if helpers is None:
        helpers = parts - 1 if numba_threads.AVAILABLE else 0
    threads = [threading.Thread(target=_help, args=(sync, me, parts) + shared, daemon=True,
                                name=f"fastscratch-part-{me}") for me in range(1, min(helpers, parts - 1) + 1)]
    for thread in threads:
        thread.start()
    try:
        result = _epoch(sync, parts, *shared, int(batch), float(beta1), float(beta2), int(step0), float(max_loss))
    finally:  # _epoch stops the helpers as it returns; this covers an interrupt before it ran
        _stop_helpers(sync)
        for thread in threads:
            thread.join()
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
                # two parts and a helper thread: compiles the helper's loop too
                train_epoch(X, y, o, 2, Ws, bs, codes, xbuf, ybuf, acts, deltas, gW, gb, kind, 0.01, 0.0,
                            state1=state, state2=state, parts=2)
        _warm_kernels(dtype)
    _WARM.add(key)
    return time.perf_counter() - started


_WARM: set = set()
_WARM_KERNELS: set = set()


def cache_stats() -> dict[str, Any]:
    """How this process got its jitted functions so far, from Numba's own counters
    (``Dispatcher.stats``): ``{"loaded": n, "compiled": m, "cache_dir": path}``, where
    ``loaded`` counts the (function, signature) pairs loaded from the on-disk cache and
    ``compiled`` those compiled here (no cache entry, an outdated one, or no usable cache
    location); ``cache_dir`` is where the cache lives (``__pycache__`` beside this file, or
    under ``NUMBA_CACHE_DIR``), ``None`` when no function has looked for it yet.  Functions
    called from inside another jitted function are part of its compiled code and are not
    counted apart."""
    loaded = compiled = 0
    cache_dir = None
    for value in list(globals().values()):
        if not isinstance(value, numba.core.registry.CPUDispatcher):
            continue
        stats = value.stats
        loaded += sum(stats.cache_hits.values())
        compiled += sum(stats.cache_misses.values())
        if cache_dir is None and (stats.cache_hits or stats.cache_misses):
            cache_dir = stats.cache_path
    return {"loaded": loaded, "compiled": compiled, "cache_dir": cache_dir}


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
