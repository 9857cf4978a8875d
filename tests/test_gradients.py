"""Finite-difference checks of backprop, in float64, on hypothesis-drawn networks."""

import numpy as np
from hypothesis import assume, example, given
from hypothesis import strategies as st

from fastscratch import NeuralNetwork
from fastscratch.activations import ACTIVATIONS
from fastscratch.training.epoch import Workspace

EPS = 1e-6
TOLERANCE = 1e-6


@st.composite
def problems(draw, allow_dropout=True):
    sizes = [draw(st.integers(1, 6))]
    sizes += draw(st.lists(st.integers(1, 6), min_size=0, max_size=3))
    sizes.append(draw(st.integers(2, 5)))
    n_hidden = len(sizes) - 2
    activations = draw(st.lists(st.sampled_from(list(ACTIVATIONS)),
                                min_size=n_hidden, max_size=n_hidden))
    dropout = draw(st.sampled_from([0.0, 0.3])) if allow_dropout else 0.0
    batch = draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**32 - 1))
    return sizes, activations, dropout, batch, seed


def _setup(sizes, activations, dropout, batch, seed):
    net = NeuralNetwork(sizes, activation=activations, dtype="float64", seed=seed, backend="numpy",
                        dropout=dropout)
    rng = np.random.default_rng(seed + 1)
    X = rng.normal(0, 1.5, (batch, sizes[0]))
    y = rng.integers(0, sizes[-1], batch).astype(np.intp)
    ws = Workspace(net.kernels, sizes, batch, net.dtype, keep_probs=[1 - d for d in net.dropout])
    return net, X, y, ws


def _loss(net, ws, X, y, mask_seed):
    # the same generator state every call, so dropout draws the same masks
    loss_sum, _ = ws.forward_backward(X, y, net.weights, net.biases, net.activation_codes,
                                      np.random.default_rng(mask_seed))
    return loss_sum / X.shape[0]


def _away_from_relu_kinks(net, ws, X, y, mask_seed):
    """True when every ReLU pre-activation is clear of 0, so finite differences
    do not straddle the kink (computed naively, with the step's dropout masks)."""
    _loss(net, ws, X, y, mask_seed)
    a = X
    for W, b, name, mask in zip(net.weights, net.biases, net.activations, ws.masks):
        z = a @ W + b
        if name == "relu" and np.abs(z).min() <= 1e-4:
            return False
        a = {"relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
             "tanh": np.tanh, "elu": lambda v: np.where(v > 0, v, np.expm1(np.minimum(v, 0)))}[name](z)
        if mask is not None:
            a = a * mask[: X.shape[0]]
    return True


def _relative_error(analytic, numeric):
    """||a - n|| / (||a|| + ||n||).  The denominator is floored at 1e-3: central
    differences of a loss near 1 carry ~1e-10 of rounding error, which would
    dominate the ratio for gradients that nearly vanish (dead ReLU chains)."""
    scale = max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-3)
    return np.linalg.norm(analytic - numeric) / scale


def _numeric_gradient(net, ws, X, y, param, mask_seed, extra=lambda: 0.0):
    grad = np.zeros_like(param)
    for index in np.ndindex(param.shape):
        original = param[index]
        param[index] = original + EPS
        plus = _loss(net, ws, X, y, mask_seed) + extra()
        param[index] = original - EPS
        minus = _loss(net, ws, X, y, mask_seed) + extra()
        param[index] = original
        grad[index] = (plus - minus) / (2 * EPS)
    return grad


@given(problems())
# a batch of one sample through each activation, always checked besides the drawn cases
@example(([3, 4, 2], ["relu"], 0.0, 1, 1))
@example(([3, 4, 2], ["sigmoid"], 0.0, 1, 2))
@example(([3, 4, 2], ["tanh"], 0.0, 1, 3))
@example(([3, 4, 2], ["elu"], 0.0, 1, 5))
@example(([3, 4, 2], ["elu"], 0.3, 4, 6))  # ELU with dropout, a batch of four
@example(([5, 2], [], 0.0, 1, 4))  # softmax-cross-entropy output alone
def test_backprop_matches_finite_differences(problem):
    sizes, activations, dropout, batch, seed = problem
    net, X, y, ws = _setup(*problem)
    mask_seed = seed + 2
    assume(_away_from_relu_kinks(net, ws, X, y, mask_seed))
    _loss(net, ws, X, y, mask_seed)
    analytic = [g.copy() for g in ws.grads]
    for param, grad in zip(net.parameters, analytic):
        numeric = _numeric_gradient(net, ws, X, y, param, mask_seed)
        assert _relative_error(grad, numeric) < TOLERANCE, (sizes, activations, dropout, batch)


@given(problems(allow_dropout=False), st.sampled_from([1e-3, 0.1]))
def test_weight_decay_step_follows_the_penalised_cost(problem, weight_decay):
    """One SGD step with lr=1 moves each parameter by exactly the gradient of
    ``mean loss + weight_decay / 2 * sum(W**2)`` (biases not penalised)."""
    sizes, activations, dropout, batch, seed = problem
    net, X, y, ws = _setup(*problem)
    assume(_away_from_relu_kinks(net, ws, X, y, 0))
    penalty = lambda: 0.5 * weight_decay * sum(float(np.sum(W * W)) for W in net.weights)  # noqa: E731
    numeric = [_numeric_gradient(net, ws, X, y, p, 0, penalty) for p in net.parameters]
    before = [p.copy() for p in net.parameters]
    _loss(net, ws, X, y, 0)
    net.optimizer = None
    from fastscratch.optimizers import SGD
    sgd = SGD()
    sgd.bind(net.parameters)
    sgd.step(net.kernels, net.parameters, ws.grads, 1.0, [weight_decay, 0.0] * len(net.weights))
    for old, new, num in zip(before, net.parameters, numeric):
        assert _relative_error(old - new, num) < TOLERANCE
