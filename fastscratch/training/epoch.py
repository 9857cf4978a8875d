"""The epoch: the buffers of a step, and the batches of an epoch (fused or kernel by kernel).

A :class:`Workspace` owns every array one batch size needs (activations,
deltas, gradients, dropout masks, kernel scratch), allocated once, so the
step loop allocates nothing.  The step itself -- forward, backprop, update, with
the formula-to-code table -- is :mod:`fastscratch.training.step`; :func:`run_epoch` runs it
over the batches of an epoch, or hands the whole epoch to the backend's fused
function when it has one.  How many threads it uses is :mod:`fastscratch.training.threads`.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from .. import devices
from ..kernels.contract import capabilities
from ..optimizers import Adam, Momentum, kernel_code
from . import step
from .threads import blas_threads, default_blas_threads, default_epoch_threads

_STEP_BUFSIZE = 256  # elements; see run_epoch

#: The most rows one forward/backward pass runs.  A larger batch (full-batch training on
#: a big data set) runs as passes of at most this many rows whose gradients add up to the
#: batch's before its one update: the same step, with buffers of this many rows instead of
#: the whole batch.  Full batch on Fashion-MNIST's 60,000 rows otherwise holds activations
#: and deltas of 90 MB, and OpenBLAS packs 60 MB more for GEMMs of that height on two
#: threads; at 4096 rows the two come to about 13 MB, and GEMMs that tall still run at the
#: BLAS's full rate.
MAX_PASS_ROWS = 4096


class LossDiverged(ArithmeticError):
    """Raised inside the step loop, before the update, when a batch's mean loss is NaN,
    infinite or above the epoch's ``max_loss``.  ``batch``: 1-based index in the epoch;
    ``loss``: that batch's mean loss per sample."""

    def __init__(self, batch: int, loss: float) -> None:
        super().__init__(f"mean loss is {loss} at batch {batch}")
        self.batch, self.loss = batch, loss


class Workspace:
    """Buffers for running batches of ``batch_size`` rows through a network.

    ``training=False`` allocates only what the forward pass needs, for ``batch_size``
    rows.  For training, the row buffers hold ``rows = min(batch_size, MAX_PASS_ROWS)``
    rows: a larger batch runs in passes of that many rows (see :data:`MAX_PASS_ROWS`).
    Row ``[:n]`` views of these buffers serve a last, smaller batch or pass.  ``like``: an
    array whose library and device the buffers are allocated on (``None``: NumPy, on the
    host; :mod:`fastscratch.devices`); off the host a batch runs in one pass.
    """

    def __init__(self, kernels: ModuleType, sizes: list[int], batch_size: int, dtype: np.dtype,
                 keep_probs: list[float] | None = None, training: bool = True, gather: bool = True,
                 threads: int | None = None, like: Any = None) -> None:
        self.kernels = kernels
        self.batch_size = batch_size
        # a GPU's memory holds a full batch's activations easily, and each pass would cost a wait
        # for the device: off the host a batch is one pass
        passes = training and (like is None or devices.is_host(like))
        rows = self.rows = min(batch_size, MAX_PASS_ROWS) if passes else batch_size
        # BLAS threads for run_epoch (None: as configured); every path that trains with
        # this workspace gets the same count, so fit and step-by-step drivers agree bit for bit.
        # The rule looks at the height of the GEMMs: the rows of one pass.
        self.blas_threads: int | None = default_blas_threads(kernels, rows, threads)
        # the parts a backend's whole-epoch function cuts each step into (one thread each) and
        # its BLAS threads; like the BLAS threads, fixed per workspace so that every path agrees
        # bit for bit
        self.parts, self.epoch_blas_threads = default_epoch_threads(kernels, sizes, rows, threads)
        #: which path the last run_epoch took: "fused" (the backend's whole-epoch function) or
        #: "stepwise" (kernel by kernel); None before the first
        self.last_path: str | None = None
        #: parts of fused steps run by each thread so far (0: the calling thread, then the helpers)
        self.thread_parts = np.zeros(8, dtype=np.int64)
        n_layers = len(sizes) - 1
        self.keep_probs = keep_probs if keep_probs is not None else [1.0] * (n_layers - 1)
        # on the host, or where ``like`` (the model's weights) lives: fastscratch.devices
        empty = lambda *shape: devices.empty(like, shape, dtype)  # noqa: E731
        self.x = empty(rows, sizes[0]) if gather else None
        self.y = devices.empty(like, (rows,), "index") if gather and training else None
        # activations of every layer; the last holds the logits, then their gradient
        self.acts = [empty(rows, n) for n in sizes[1:]]
        self.row_scratch = empty(2, rows)
        self.index_scratch = devices.empty(like, (2, rows), "index")
        dropping = [training and k < 1.0 for k in self.keep_probs]
        self.masks = [empty(rows, n) if d else None for d, n in zip(dropping, sizes[1:-1])]
        self.dropped = [empty(rows, n) if d else None for d, n in zip(dropping, sizes[1:-1])]
        if training:
            self.deltas = [empty(rows, n) for n in sizes[1:-1]]
            self.grad_W = [empty(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
            self.grad_b = [empty(n) for n in sizes[1:]]
            # interleaved like the parameter list [W0, b0, W1, b1, ...]
            self.grads = [g for pair in zip(self.grad_W, self.grad_b) for g in pair]
            # a batch in several passes: each pass's gradient lands here, then is added
            self.pass_grads = [devices.empty_like(g) for g in self.grads] if rows < batch_size else None

    def forward(self, x: np.ndarray, weights: list[np.ndarray], biases: list[np.ndarray],
                codes: list[int], rng: np.random.Generator | None = None) -> np.ndarray:
        """Run ``x: (n, n_in)`` through the layers (:func:`fastscratch.training.step.forward`); return
        the logits view ``(n, n_out)``.

        With ``rng`` given, dropout is applied on hidden layers whose keep
        probability is below 1 (training); without it, never (inference).
        """
        return step.forward(self.kernels, x, weights, biases, codes, self.acts, rng, self.keep_probs,
                            self.masks, self.dropped)

    def forward_backward(self, x: np.ndarray, y: np.ndarray, weights: list[np.ndarray],
                         biases: list[np.ndarray], codes: list[int],
                         rng: np.random.Generator, scale: float | None = None,
                         accumulate: bool = False) -> tuple[float, int]:
        """Forward and backward pass of one batch (:mod:`fastscratch.training.step`); fills ``grad_W`` / ``grad_b``.

        x: (n, n_in) ; y: (n,) intp labels, at most ``rows`` of them.  Gradients are of
        the *mean* loss over the batch (``scale``: the factor on the summed loss, default
        ``1/n``; a pass of a larger batch gives ``1/batch``).  ``accumulate``: add to the
        gradients already there (a later pass of the same batch) instead of replacing them.
        Returns ``(loss_sum, n_correct)`` of these rows.
        """
        n = x.shape[0]
        logits = self.forward(x, weights, biases, codes, rng)
        loss_sum, n_correct = step.loss_gradient(self.kernels, logits, y, 1.0 / n if scale is None else scale,
                                                 self.row_scratch, self.index_scratch)
        grad_W, grad_b = self.grad_W, self.grad_b
        if accumulate:
            grad_W, grad_b = self.pass_grads[0::2], self.pass_grads[1::2]
        step.backward(self.kernels, logits, x, weights, codes, self.acts, self.deltas, grad_W, grad_b,
                      self.masks, self.dropped)
        if accumulate:
            for total, part in zip(self.grads, self.pass_grads):
                devices.add_into(total, part)
        return loss_sum, n_correct


def run_epoch(ws: Workspace, X: np.ndarray, y: np.ndarray, order: np.ndarray | None,
              weights: list[np.ndarray], biases: list[np.ndarray], codes: list[int], optimizer,
              lr: float, weight_decays: list[float], rng: np.random.Generator,
              max_loss: float = math.inf) -> tuple[float, int]:
    """One pass over ``X: (n, n_in)``, ``y: (n,)`` in batches of ``ws.batch_size``.

    ``order`` is the sample permutation (``None``: the rows as they are, used
    for full-batch training, which needs no gather).  Each batch: forward,
    backward, optimizer update.  Returns ``(loss_sum, n_correct)`` over the
    epoch; raises :class:`LossDiverged` before updating on a batch whose mean
    loss per sample is not finite or is above ``max_loss``.

    A backend with a whole-epoch function (Numba's ``train_epoch``) runs the
    epoch in one call where it covers the case, cut into ``ws.parts`` parts on as
    many threads, BLAS on ``ws.epoch_blas_threads`` meanwhile; otherwise, and on the NumPy
    backend, the batches run here one kernel call at a time, with BLAS on
    ``ws.blas_threads`` threads (``None``: as configured), which the workspace takes
    from the backend's rule (:func:`default_blas_threads`).  ``ws.last_path`` says
    which ran.
    """
    fused = _fused_epoch(ws, X, y, order, weights, biases, codes, optimizer, lr, weight_decays, max_loss)
    if fused is None and order is not None:
        order = devices.from_host(order, X)  # off the host: the epoch's permutation, moved once
    if fused is not None:
        ws.last_path = "fused"
        return fused
    ws.last_path = "stepwise"
    with blas_threads(ws.blas_threads, ws.kernels):
        return _stepwise_epoch(ws, X, y, order, weights, biases, codes, optimizer, lr, weight_decays, rng,
                               max_loss)


def _fused_epoch(ws: Workspace, X: np.ndarray, y: np.ndarray, order: np.ndarray | None,
                 weights: list[np.ndarray], biases: list[np.ndarray], codes: list[int], optimizer,
                 lr: float, weight_decays: list[float], max_loss: float) -> tuple[float, int] | None:
    """The epoch in one call of the backend's ``train_epoch`` when it has one and covers
    this case (see ``numba_kernels.fused_epoch_supported``); ``None`` otherwise."""
    fused = capabilities(ws.kernels)
    kind = kernel_code(optimizer)  # None for a subclass: it may change the rule
    if fused.train_epoch is None or kind is None:
        return None
    wd = weight_decays[0]
    if list(weight_decays) != [wd, 0.0] * len(weights):  # decay on weights only, one rate
        return None
    dropping = any(m is not None for m in ws.masks)
    if (not fused.fused_epoch_supported(X, weights, dropping) or not y.flags.c_contiguous or not y.flags.writeable
            or y.dtype != np.intp):
        return None
    state = optimizer.state
    extra = {}
    if isinstance(optimizer, Momentum):
        extra = dict(momentum=optimizer.momentum, nesterov=optimizer.nesterov, state1=state["velocity"])
    elif isinstance(optimizer, Adam):
        extra = dict(beta1=optimizer.beta1, beta2=optimizer.beta2, eps=optimizer.eps, state1=state["m"],
                     state2=state["v"])
    with blas_threads(ws.epoch_blas_threads, ws.kernels):  # one each for parts; all for a tall pass in one part
        loss, correct, steps, bad_batch, bad_loss = fused.train_epoch(
            X, y, order, ws.batch_size, weights, biases, codes, ws.x, ws.y, ws.acts, ws.deltas, ws.grad_W,
            ws.grad_b, kind, lr, wd, step0=optimizer.iterations, max_loss=max_loss,
            parts=ws.parts, counts=ws.thread_parts, **extra)
    optimizer.iterations += steps
    if bad_batch:
        raise LossDiverged(bad_batch, bad_loss)
    return loss, correct


def _stepwise_epoch(ws: Workspace, X: np.ndarray, y: np.ndarray, order: np.ndarray | None,
                    weights: list[np.ndarray], biases: list[np.ndarray], codes: list[int], optimizer,
                    lr: float, weight_decays: list[float], rng: np.random.Generator,
                    max_loss: float = math.inf) -> tuple[float, int]:
    """The epoch as a Python loop over batches, each a sequence of kernel calls."""
    params = [p for pair in zip(weights, biases) for p in pair]
    n = X.shape[0]
    batch = ws.batch_size
    loss_total, correct_total = 0.0, 0
    # NumPy's ufunc iterator copies broadcast operands (the bias add, the row max)
    # through a temporary buffer of min(size, bufsize) elements; a small bufsize
    # keeps those batch-sized temporaries out of the loop at no measured cost.
    # Overflow surfaces as a non-finite loss, reported below, so NumPy's warnings
    # along the way would only be noise.
    old_bufsize = np.setbufsize(_STEP_BUFSIZE)
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for index, start in enumerate(range(0, n, batch)):
                stop = min(start + batch, n)
                # one pass, or (a batch taller than the workspace) several adding up their gradients
                loss_sum, n_correct = 0.0, 0
                for first in range(start, stop, ws.rows):
                    last = min(first + ws.rows, stop)
                    if order is None:
                        xb, yb = X[first:last, ...], y[first:last]
                    else:
                        rows = order[first:last]
                        xb, yb = ws.x[: last - first, ...], ws.y[: last - first]
                        ws.kernels.gather_rows(X, rows, xb)
                        ws.kernels.gather_rows(y, rows, yb)
                    part_loss, part_correct = ws.forward_backward(xb, yb, weights, biases, codes, rng,
                                                                  1.0 / (stop - start), first > start)
                    loss_sum += part_loss
                    n_correct += part_correct
                if not loss_sum <= max_loss * (stop - start):  # NaN compares false: caught too
                    raise LossDiverged(index + 1, loss_sum / (stop - start))
                step.update(ws.kernels, optimizer, params, ws.grads, lr, weight_decays)
                loss_total += loss_sum
                correct_total += n_correct
    finally:
        np.setbufsize(old_bufsize)
    return loss_total, correct_total
