"""The kernels written against the Python array API standard (through ``array-api-compat``).

One implementation for every array library the standard covers: CuPy and PyTorch on a
GPU, PyTorch on the CPU, NumPy, and ``array-api-strict`` (the tests' referee: it refuses
what the standard does not promise, and its simulated devices refuse mixing arrays of
two devices).  Each kernel computes what the NumPy reference of the same name computes
(``numpy_kernels``: the definition, with shapes), with the same signature, so the step
(:mod:`fastscratch.training.step`) and the epoch run unchanged on it.  The arrays may live
on any device; the kernels take the namespace and device from their arguments and never
move data off it, apart from the scalars they return (the loss and the count of correct
predictions, brought over together: one wait for the device per batch).

The standard has no ``out=``: each result is computed into a new array and written into
the buffer given (``out[...] = ...``), so the step's buffers and views work as on the host,
and the temporaries come from the library's memory pool (CuPy's and PyTorch's make that
cheap on a GPU).  Scratch arguments the NumPy kernels need are accepted and unused.
The loss is summed in the arrays' dtype (a device may have no float64), so it can
differ from the reference's float64 sum in the last float32 digits.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace, device

from ..devices import to_numpy
from .contract import ELU, IDENTITY, RELU, SIGMOID, TANH  # noqa: F401  (re-exported: the codes these kernels take)

NAME = "array_api"


def gather_rows(source: Any, indices: Any, out: Any) -> None:
    """``out = source[indices]``; ``indices`` on ``source``'s device (the epoch moves its permutation once)."""
    xp = array_namespace(source, indices)
    out[...] = xp.take(source, indices, axis=0)


def matmul(a: Any, b: Any, out: Any) -> None:
    """``out = a @ b`` (``a``/``b`` may be ``.T`` views)."""
    out[...] = a @ b


def _activation(xp, v: Any, activation: int) -> Any:
    if activation == RELU:
        return xp.maximum(v, 0.0)
    if activation == SIGMOID:
        e = xp.exp(-xp.abs(v))  # at most 1: no overflow, and no cancellation for negative v
        return xp.where(v >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))
    if activation == TANH:
        return xp.tanh(v)
    if activation == ELU:
        return xp.where(v < 0.0, xp.expm1(v), v)
    if activation == IDENTITY:
        return v
    raise ValueError(f"unknown activation code {activation}")


def bias_activation(z: Any, b: Any, activation: int, out: Any) -> None:
    """``out = f(z + b)``."""
    xp = array_namespace(z, b)
    out[...] = _activation(xp, z + b, activation)


def activation_backward(delta: Any, a: Any, activation: int) -> None:
    """``delta *= f'(z)`` with ``f'`` in terms of the output ``a = f(z)`` (``a`` is left as it is)."""
    xp = array_namespace(delta, a)
    if activation == RELU:
        delta[...] = delta * xp.astype(a > 0.0, a.dtype)
    elif activation == SIGMOID:
        delta[...] = delta * a * (1.0 - a)
    elif activation == TANH:
        delta[...] = delta * (1.0 - a * a)
    elif activation == ELU:
        delta[...] = delta * (xp.minimum(a, 0.0) + 1.0)
    elif activation != IDENTITY:
        raise ValueError(f"unknown activation code {activation}")


def _one_hot(xp, labels: Any, n_classes: int) -> Any:
    classes = xp.arange(n_classes, dtype=labels.dtype, device=device(labels))
    return xp.expand_dims(labels, axis=1) == xp.expand_dims(classes, axis=0)


def softmax_cross_entropy_grad(logits: Any, labels: Any, grad: Any, scale: float, row_scratch: Any,
                               index_scratch: Any) -> tuple[float, int]:
    """``grad = scale * (softmax(logits) - onehot(labels))``; returns ``(loss_sum, n_correct)``.

    logits: (batch, n_classes) ; labels: (batch,) integer ; grad: may be ``logits`` itself.
    """
    xp = array_namespace(logits, labels)
    n_classes = logits.shape[1]
    predicted = xp.argmax(logits, axis=1)
    correct = xp.sum(xp.astype(predicted == xp.astype(labels, predicted.dtype), logits.dtype))  # exact below 2**24
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    hot = _one_hot(xp, labels, n_classes)
    exp = xp.exp(shifted)
    sums = xp.sum(exp, axis=1, keepdims=True)
    picked = xp.sum(xp.where(hot, shifted, 0.0), axis=1)
    loss = xp.sum(xp.log(sums[:, 0])) - xp.sum(picked)
    grad[...] = (exp / sums - xp.astype(hot, logits.dtype)) * scale
    loss_sum, n_correct = to_numpy(xp.stack([loss, correct])).tolist()  # one wait for the device per batch
    return loss_sum, int(n_correct)


def softmax(logits: Any, out: Any, row_scratch: Any) -> None:
    """Row-wise softmax probabilities."""
    xp = array_namespace(logits)
    exp = xp.exp(logits - xp.max(logits, axis=1, keepdims=True))
    out[...] = exp / xp.sum(exp, axis=1, keepdims=True)


def column_sum(delta: Any, out: Any) -> None:
    """``out = delta.sum(axis=0)``: the bias gradient."""
    out[...] = array_namespace(delta).sum(delta, axis=0)


def dropout_mask(uniform: Any, keep_prob: float) -> None:
    """Uniform draws in [0, 1) become inverted-dropout factors: ``1 / keep_prob`` below ``keep_prob``, else 0."""
    xp = array_namespace(uniform)
    uniform[...] = xp.astype(uniform < keep_prob, uniform.dtype) * (1.0 / keep_prob)


def multiply_into(a: Any, factors: Any, out: Any) -> None:
    """``out = a * factors``."""
    out[...] = a * factors


def _decayed(grad: Any, param: Any, weight_decay: float) -> Any:
    return grad + param * weight_decay if weight_decay else grad


def sgd_update(param: Any, grad: Any, lr: float, weight_decay: float, scratch: Any) -> None:
    """``param -= lr * (grad + weight_decay * param)``."""
    param[...] = param - _decayed(grad, param, weight_decay) * lr


def momentum_update(param: Any, grad: Any, velocity: Any, lr: float, momentum: float, nesterov: bool,
                    weight_decay: float, scratch: Any) -> None:
    """Keras' momentum: ``v = momentum * v - lr * g``; ``param += v`` (Nesterov: ``+= momentum * v - lr * g``)."""
    step = _decayed(grad, param, weight_decay) * lr
    velocity[...] = velocity * momentum - step
    if nesterov:
        param[...] = (param - step) + velocity * momentum
    else:
        param[...] = param + velocity


def adam_update(param: Any, grad: Any, m: Any, v: Any, lr: float, beta1: float, beta2: float, eps: float,
                step: int, weight_decay: float, scratch: Any) -> None:
    """Adam in Keras' convention (``step`` from 1): ``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``,
    ``param -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``."""
    xp = array_namespace(param)
    g = _decayed(grad, param, weight_decay)
    alpha = lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
    m[...] = m + (g - m) * (1.0 - beta1)
    v[...] = v + (g * g - v) * (1.0 - beta2)
    param[...] = param - (m / (xp.sqrt(v) + eps)) * alpha
