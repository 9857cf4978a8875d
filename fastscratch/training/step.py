"""One training step -- forward pass, backprop, update -- as the backend's kernel calls.

This is the algorithm.  ``NeuralNetwork.forward``/``backward``/``update`` (the tutorial's
``forward_propagation``, ``backward_propagation``, ``update_parameters``) call these
functions on arrays they allocate; the training loop's kernel-by-kernel epoch
(:func:`fastscratch.training.epoch.run_epoch`) calls them on the buffers of a
:class:`~fastscratch.training.epoch.Workspace`, so a step done by hand and a step of ``fit``
are the same arithmetic.  (The Numba backend's whole-epoch function runs this same
step fused and jitted; its docstring points back here.)

The math is the tutorial's, transposed for row-major storage (one sample per row;
``W[l]: (n_in, n_out)``, ``b[l]: (n_out,)``, ``m`` rows in the batch):

=====================================  ==========================================  ======================
tutorial (column per sample)           here (row per sample)                       function
=====================================  ==========================================  ======================
``Z[l] = W[l] A[l-1] + b[l]``          ``Z[l] = A[l-1] @ W[l] + b[l]``             :func:`forward`
``A[l] = g(Z[l])``                     ``A[l] = g(Z[l])`` (``bias_activation``)    :func:`forward`
``dZ[L] = (A[L] - Y) / m``             ``softmax_cross_entropy_grad(scale=1/m)``   :func:`loss_gradient`
``dW[l] = dZ[l] A[l-1]^T``             ``dW[l] = A[l-1].T @ dZ[l]``                :func:`backward`
``db[l] = sum over samples of dZ[l]``  ``column_sum(dZ[l])``                       :func:`backward`
``dZ[l-1] = W[l]^T dZ[l] * g'(Z)``     ``dZ[l-1] = (dZ[l] @ W[l].T) * g'(Z)``      :func:`backward`
``W[l] -= lr dW[l]``                   the optimizer's kernel, in place            :func:`update`
=====================================  ==========================================  ======================

The output layer is linear (activation code ``IDENTITY``): its "activation" is the
logits ``Z[L]``, and the softmax belongs to the loss, fused with the cross-entropy and
its gradient in one kernel (Keras' ``from_logits=True``).  ``g'`` is written in terms of
the layer's output ``A = g(Z)``: relu ``A > 0``, sigmoid ``A (1 - A)``, tanh ``1 - A^2``.
With dropout, a hidden layer's output is multiplied by its mask of inverted-dropout
factors (0 or ``1/keep_prob``) before the next layer reads it, and ``dZ`` by the same
mask on the way back.

Rows ``[:n, ...]`` of a buffer serve a batch of ``n`` rows (the trailing ``...`` is how
the array API standard spells NumPy's ``[:n]`` on a matrix), so the same functions run on
the array-API backend's arrays, wherever they live (:mod:`fastscratch.devices`).
"""

from __future__ import annotations

from types import ModuleType
from typing import Sequence

import numpy as np

from .. import devices


def forward(kernels: ModuleType, x: np.ndarray, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray],
            codes: Sequence[int], outputs: Sequence[np.ndarray], rng: np.random.Generator | None = None,
            keep_probs: Sequence[float] | None = None, masks: Sequence[np.ndarray | None] | None = None,
            dropped: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """The forward pass of ``x: (n, n_in)``; returns the logits ``(n, n_out)`` (a view of ``outputs[-1]``).

    ``outputs[l]``: a buffer of at least ``n`` rows and layer ``l``'s width, written with
    ``A[l+1] = g(A[l] @ W[l] + b[l])`` (the last with the logits).  ``codes[l]``: layer ``l``'s
    activation code.  Dropout, only when ``rng`` is given (training): for each hidden layer
    whose ``masks[l]`` buffer is not ``None``, draw the mask from ``rng`` with keep probability
    ``keep_probs[l]`` and write the dropped-out output to ``dropped[l]``, which the next layer
    then reads (``outputs[l]`` keeps the activations themselves, for ``g'`` in :func:`backward`).
    """
    n = x.shape[0]
    layer_input = x
    last = len(weights) - 1
    for layer, (W, b, code) in enumerate(zip(weights, biases, codes)):
        out = outputs[layer][:n, ...]
        kernels.matmul(layer_input, W, out)
        kernels.bias_activation(out, b, code, out)
        if layer < last and rng is not None and masks is not None and masks[layer] is not None:
            mask = masks[layer][:n, ...]
            devices.fill_uniform(rng, mask)  # on the host, from the model's generator
            kernels.dropout_mask(mask, keep_probs[layer])
            kernels.multiply_into(out, mask, dropped[layer][:n, ...])
            out = dropped[layer][:n, ...]
        layer_input = out
    return layer_input


def loss_gradient(kernels: ModuleType, logits: np.ndarray, y: np.ndarray, scale: float,
                  row_scratch: np.ndarray, index_scratch: np.ndarray) -> tuple[float, int]:
    """``dZ[L] = scale * (softmax(Z[L]) - onehot(y))``, written over ``logits: (n, n_classes)``.

    y: (n,) intp labels ; ``scale``: ``1/m`` for the mean loss over a batch of ``m`` rows ;
    scratch: ``(2, >= n)`` float and intp.  Returns ``(loss_sum, n_correct)``: the summed
    cross-entropy and how many rows' largest logit is the label's, both before any update.
    """
    n = logits.shape[0]
    return kernels.softmax_cross_entropy_grad(logits, y, logits, scale, row_scratch[:, :n], index_scratch[:, :n])


def backward(kernels: ModuleType, delta: np.ndarray, x: np.ndarray, weights: Sequence[np.ndarray],
             codes: Sequence[int], outputs: Sequence[np.ndarray], deltas: Sequence[np.ndarray],
             grad_W: Sequence[np.ndarray], grad_b: Sequence[np.ndarray],
             masks: Sequence[np.ndarray | None] | None = None,
             dropped: Sequence[np.ndarray | None] | None = None) -> None:
    """Backprop from ``delta = dZ[L]: (n, n_out)`` (see :func:`loss_gradient`) to every layer.

    Writes ``grad_W[l]: (n_in, n_out)`` and ``grad_b[l]: (n_out,)`` for every layer.  ``x``,
    ``outputs``, ``masks`` and ``dropped`` are what :func:`forward` read and wrote; the hidden
    ``outputs`` are overwritten (``g'`` is computed in place once they have served ``dW``).
    ``deltas[l]``: a buffer of at least ``n`` rows for hidden layer ``l``'s ``dZ``.
    """
    n = delta.shape[0]
    for layer in range(len(weights) - 1, -1, -1):
        if layer == 0:
            layer_input = x
        elif dropped is not None and dropped[layer - 1] is not None:
            layer_input = dropped[layer - 1][:n, ...]
        else:
            layer_input = outputs[layer - 1][:n, ...]
        kernels.matmul(layer_input.T, delta, grad_W[layer])  # dW[l] = A[l-1].T @ dZ[l]
        kernels.column_sum(delta, grad_b[layer])  # db[l] = sum over rows of dZ[l]
        if layer > 0:
            previous = deltas[layer - 1][:n, ...]
            kernels.matmul(delta, weights[layer].T, previous)  # dZ[l] @ W[l].T ...
            if masks is not None and masks[layer - 1] is not None:
                kernels.multiply_into(previous, masks[layer - 1][:n, ...], previous)
            kernels.activation_backward(previous, outputs[layer - 1][:n, ...], codes[layer - 1])  # ... * g'(Z)
            delta = previous


def gradients(kernels: ModuleType, activations: Sequence[np.ndarray], y: np.ndarray,
              weights: Sequence[np.ndarray], codes: Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """:func:`loss_gradient` then :func:`backward` on new arrays, for a step by hand: from the
    activations ``[A0, ..., AL]`` a forward pass wrote (left unchanged; ``AL`` the logits) and
    ``y: (n,)`` intp labels, the gradients ``(dW, db)`` of the mean loss over the ``n`` rows."""
    n = activations[0].shape[0]
    outputs = [a.copy() for a in activations[1:]]  # backward uses them as scratch
    deltas = [np.empty_like(a) for a in outputs[:-1]]
    grad_W = [np.empty((W.shape[0], W.shape[1]), dtype=W.dtype) for W in weights]
    grad_b = [np.empty(W.shape[1], dtype=W.dtype) for W in weights]
    loss_gradient(kernels, outputs[-1], y, 1.0 / n, np.empty((2, n), dtype=outputs[-1].dtype),
                  np.empty((2, n), dtype=np.intp))
    backward(kernels, outputs[-1], activations[0], weights, codes, outputs, deltas, grad_W, grad_b)
    return grad_W, grad_b


def update(kernels: ModuleType, optimizer, params: Sequence[np.ndarray], grads: Sequence[np.ndarray],
           lr: float, weight_decays: Sequence[float]) -> None:
    """Apply one step of ``optimizer`` (bound to ``params``) in place: ``W -= lr * dW`` for SGD.

    ``params`` and ``grads`` are interleaved ``[W0, b0, W1, b1, ...]``; ``weight_decays`` holds
    one L2 rate per entry (``[wd, 0.0] * n_layers``: weights only).  ``grads`` are consumed
    (the kernels reuse them as scratch).  Counts the step in ``optimizer.iterations``.
    """
    optimizer.step(kernels, params, grads, lr, weight_decays)
