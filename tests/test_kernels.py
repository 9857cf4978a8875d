"""Every backend's kernels against naive, allocating formulas (property tests).

The formulas are what ``numpy_kernels`` (the reference) documents; each test runs once per
backend installed here (NumPy always, Numba when importable), so together with
``test_backend_contract.py`` (the signatures) this is the conformance suite a new backend
passes.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fastscratch.activations import ACTIVATIONS
from fastscratch.backends import available_backends, load_backend
from fastscratch.kernels import contract

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def matrices(dtype, rows=st.integers(1, 9), cols=st.integers(1, 9), scale=5.0):
    return st.tuples(rows, cols).flatmap(
        lambda shape: arrays(dtype, shape, elements=st.floats(-scale, scale, width=32)))


def _array_api_installed() -> list[str]:
    try:
        load_backend("array_api")
    except ImportError:
        return []
    return ["array_api"]


# the array-API kernels too, here on NumPy arrays (tests/test_array_api.py runs them on others)
@pytest.fixture(scope="module", params=available_backends() + _array_api_installed())
def K(request):
    """Each backend installed here, in turn (module-scoped: hypothesis reuses it across examples)."""
    return load_backend(request.param)


def naive_activation(name, z):
    return {"relu": np.maximum(z, 0), "sigmoid": 1 / (1 + np.exp(-z)), "tanh": np.tanh(z), "identity": z,
            "elu": np.where(z > 0, z, np.expm1(np.minimum(z, 0)))}[name]


def naive_derivative(name, z):
    a = naive_activation(name, z)
    return {"relu": (z > 0).astype(z.dtype), "sigmoid": a * (1 - a), "tanh": 1 - a * a,
            "identity": np.ones_like(z), "elu": np.where(z > 0, 1, np.exp(np.minimum(z, 0))).astype(z.dtype)}[name]


# every activation of the registry, and the output layer's identity
CODES = {**{name: a.code for name, a in ACTIVATIONS.items()}, "identity": contract.IDENTITY}


def test_every_activation_code_is_tested():
    assert sorted(CODES.values()) == sorted(contract.ACTIVATION_CODES)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CODES))
@given(data=st.data())
def test_bias_activation_and_its_derivative(K, dtype, name, data):
    z = data.draw(matrices(dtype))
    b = data.draw(arrays(dtype, z.shape[1], elements=st.floats(-2, 2, width=32)))
    zb = (z + b).astype(dtype)
    out = np.empty_like(z)
    K.bias_activation(z, b, CODES[name], out)
    np.testing.assert_allclose(out, naive_activation(name, zb), **TOL[dtype])

    delta = data.draw(arrays(dtype, z.shape, elements=st.floats(-3, 3, width=32)))
    expected = delta * naive_derivative(name, zb)
    K.activation_backward(delta, out, CODES[name])
    if name == "relu":  # the derivative at exactly 0 is taken as 0
        expected = np.where(zb == 0, 0, expected)
    np.testing.assert_allclose(delta, expected, **TOL[dtype])


def test_sigmoid_saturates_without_warnings_or_nan(K):
    z = np.array([[-1000.0, 0.0, 1000.0]], dtype=np.float32)
    out = np.empty_like(z)
    K.bias_activation(z, np.zeros(3, np.float32), K.SIGMOID, out)
    np.testing.assert_array_equal(out, [[0.0, 0.5, 1.0]])


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_softmax_cross_entropy_gradient(K, dtype, data):
    logits = data.draw(matrices(dtype, cols=st.integers(2, 8), scale=30.0))
    batch, n_classes = logits.shape
    labels = np.array(data.draw(st.lists(st.integers(0, n_classes - 1), min_size=batch, max_size=batch)),
                      dtype=np.intp)
    scale = data.draw(st.sampled_from([1.0, 1.0 / batch]))

    z = logits.astype(np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected_loss = -log_p[np.arange(batch), labels].sum()
    onehot = np.eye(n_classes)[labels]
    expected_grad = scale * (p - onehot)
    expected_correct = int((z.argmax(axis=1) == labels).sum())

    grad = np.empty_like(logits)
    loss, correct = K.softmax_cross_entropy_grad(logits.copy(), labels, grad, scale,
                                                 np.empty((2, batch), dtype), np.empty((2, batch), np.intp))
    assert correct == expected_correct
    assert math.isclose(loss, expected_loss, rel_tol=1e-5 if dtype == np.float32 else 1e-12, abs_tol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, **TOL[dtype])

    # in place (grad written over the logits) gives the same
    inplace = logits.copy()
    K.softmax_cross_entropy_grad(inplace, labels, inplace, scale, np.empty((2, batch), dtype),
                                 np.empty((2, batch), np.intp))
    np.testing.assert_array_equal(inplace, grad)


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_softmax_rows_are_distributions(K, dtype, data):
    logits = data.draw(matrices(dtype, cols=st.integers(2, 8), scale=80.0))
    out = np.empty_like(logits)
    K.softmax(logits, out, np.empty(logits.shape[0], dtype))
    assert np.all(out >= 0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    # the largest logit gets the largest probability
    rows = np.arange(logits.shape[0])
    np.testing.assert_array_equal(out[rows, logits.argmax(axis=1)], out.max(axis=1))


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_column_sum_gather_matmul(K, dtype, data):
    a = data.draw(matrices(dtype))
    out = np.empty(a.shape[1], dtype)
    K.column_sum(a, out)
    np.testing.assert_allclose(out, a.sum(axis=0), **TOL[dtype])

    idx = np.array(data.draw(st.lists(st.integers(0, a.shape[0] - 1), min_size=1, max_size=12)), np.intp)
    rows = np.empty((len(idx), a.shape[1]), dtype)
    K.gather_rows(a, idx, rows)
    np.testing.assert_array_equal(rows, a[idx])

    b = data.draw(arrays(dtype, (a.shape[0], 3), elements=st.floats(-5, 5, width=32)))
    prod = np.empty((a.shape[1], 3), dtype)
    K.matmul(a.T, b, prod)  # a transposed view, as the weight gradient uses it
    np.testing.assert_allclose(prod, a.T.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), keep=st.floats(0.05, 1.0))
def test_dropout_mask_and_multiply(K, dtype, data, keep):
    u = data.draw(arrays(dtype, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.floats(0, 1, width=32,
                                                                                                   exclude_max=True)))
    expected = np.where(u < keep, dtype(1.0 / keep), 0).astype(dtype)
    K.dropout_mask(u, keep)
    np.testing.assert_allclose(u, expected, rtol=1e-6)
    a = data.draw(arrays(dtype, u.shape, elements=st.floats(-5, 5, width=32)))
    out = np.empty_like(a)
    K.multiply_into(a, u, out)
    np.testing.assert_array_equal(out, a * u)


def test_dropout_keeps_the_expected_fraction(K):
    u = np.random.default_rng(0).random((200, 50))
    K.dropout_mask(u, 0.8)
    assert set(np.unique(u)) == {0.0, 1.0 / 0.8}
    assert abs(np.mean(u > 0) - 0.8) < 0.01


# ---- optimizers against their textbook formulas ---------------------------------------

def params_and_grads(dtype):
    return st.integers(1, 20).flatmap(lambda n: st.tuples(
        arrays(dtype, n, elements=st.floats(-3, 3, width=32)), arrays(dtype, n, elements=st.floats(-3, 3, width=32))))


# reference formulas run in float64; float32 kernels must match to float32 rounding
OPT_TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), lr=st.floats(1e-4, 1.0), wd=st.sampled_from([0.0, 0.01]))
def test_sgd_update(K, dtype, data, lr, wd):
    p, g = data.draw(params_and_grads(dtype))
    expected = p.astype(np.float64) - lr * (g + wd * p.astype(np.float64))
    p, g = p.copy(), g.copy()
    K.sgd_update(p, g, lr, wd, np.empty_like(p))
    np.testing.assert_allclose(p, expected, **OPT_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), lr=st.floats(1e-4, 1.0), mu=st.floats(0.0, 0.99), nesterov=st.booleans(),
       wd=st.sampled_from([0.0, 0.01]))
def test_momentum_update_two_steps(K, dtype, data, lr, mu, nesterov, wd):
    p0, g = data.draw(params_and_grads(dtype))
    p, v = p0.copy(), np.zeros_like(p0)
    ref_p, ref_v = p0.astype(np.float64), np.zeros(p0.shape)
    for _ in range(2):
        grad = g + wd * ref_p
        ref_v = mu * ref_v - lr * grad
        ref_p = ref_p + (mu * ref_v - lr * grad if nesterov else ref_v)
        K.momentum_update(p, g.copy(), v, lr, mu, nesterov, wd, np.empty_like(p))
    np.testing.assert_allclose(p, ref_p, **OPT_TOL[dtype])
    np.testing.assert_allclose(v, ref_v, **OPT_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), lr=st.floats(1e-4, 0.1), wd=st.sampled_from([0.0, 0.01]))
def test_adam_update_matches_textbook_form(K, dtype, data, lr, wd):
    """Keras' folded bias correction equals Kingma & Ba's with eps scaled by sqrt(1 - beta2^t)."""
    p0, g = data.draw(params_and_grads(dtype))
    # Adam's step m / sqrt(v) is +-lr for any gradient, however small: where decay cancels the
    # gradient (p = -2, g = 0.02, wd = 0.01) float32 round-off decides its sign, not the rule
    assume(np.all(np.abs(g + wd * p0.astype(np.float64)) > 1e-3 * (np.abs(g) + 1e-3)))
    b1, b2, eps = 0.9, 0.999, 1e-7
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    ref_p, ref_m, ref_v = p0.astype(np.float64), np.zeros(p0.shape), np.zeros(p0.shape)
    for t in (1, 2, 3):
        grad = g + wd * ref_p
        ref_m = b1 * ref_m + (1 - b1) * grad
        ref_v = b2 * ref_v + (1 - b2) * grad**2
        m_hat, v_hat = ref_m / (1 - b1**t), ref_v / (1 - b2**t)
        ref_p = ref_p - lr * m_hat / (np.sqrt(v_hat) + eps / np.sqrt(1 - b2**t))
        K.adam_update(p, g.copy(), m, v, lr, b1, b2, eps, t, wd, np.empty_like(p))
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(p, ref_p, **tol)
    np.testing.assert_allclose(m, ref_m, **tol)


def test_softmax_kernel_refuses_a_grad_it_cannot_write_in_place(K):
    if K.NAME == "array_api":
        pytest.skip("the array-API kernels write any view (out[...] = ...): nothing to refuse")
    logits = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        K.softmax_cross_entropy_grad(logits, np.zeros(4, np.intp), np.zeros((4, 3), np.float32, order="F"),
                                     1.0, np.empty((2, 4), np.float32), np.empty((2, 4), np.intp))
