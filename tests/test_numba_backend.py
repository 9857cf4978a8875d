"""The Numba backend against the NumPy reference: kernel by kernel, one step, one whole epoch.

Skipped, with the reason shown, only when Numba (or SciPy, which gives jitted code
its BLAS) is not importable; a broken ``numba_kernels`` module fails loudly.
"""

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

pytest.importorskip("numba", reason="numba is not installed: the Numba backend is not tested")
pytest.importorskip("scipy.linalg.cython_blas", reason="scipy is not installed: the Numba backend has no BLAS")

from fastscratch import Adam, Momentum, NeuralNetwork  # noqa: E402
from fastscratch.activations import ACTIVATIONS  # noqa: E402
from fastscratch.kernels import numba_kernels as NB  # noqa: E402
from fastscratch.kernels import numpy_kernels as NP  # noqa: E402
from fastscratch.training.epoch import Workspace  # noqa: E402

DTYPES = [np.float32, np.float64]
# kernel outputs: one kernel call apart, so rounding-level differences only
KERNEL_TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
CODES = {**{name: a.code for name, a in ACTIVATIONS.items()}, "identity": NP.IDENTITY}  # every registered one
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def assert_close(actual, expected, dtype, what="", scale=None, rtol=None):
    """Within ``RTOL[dtype]`` relative to ``scale`` (default: the array's largest entry).

    Why not entry by entry: an entry near 0 carries the absolute rounding of the
    larger numbers it was computed from.  The clearest case is the output gradient
    ``p - 1`` of a confident prediction (p = 0.99999): in float32 it keeps only a
    couple of significant digits, so two correct implementations can differ in it
    by 1%, and a one-unit layer's bias, computed from nothing else, shows exactly
    that.  Training comparisons therefore pass the largest parameter of the whole
    network as ``scale``: ``max |numba - numpy| <= rtol * max |parameters|``.
    """
    expected = np.asarray(expected, dtype=np.float64)
    if scale is None:
        scale = float(np.abs(expected).max(initial=0.0))
    scale = max(scale, 1e-30)
    rtol = RTOL[dtype] if rtol is None else rtol
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def _largest(arrays):
    return max(float(np.abs(a).max(initial=0.0)) for a in arrays) if arrays else 0.0


def matrices(dtype, rows=st.integers(1, 9), cols=st.integers(1, 9), scale=5.0):
    return st.tuples(rows, cols).flatmap(
        lambda shape: arrays(dtype, shape, elements=st.floats(-scale, scale, width=32)))


# ---- kernel by kernel ------------------------------------------------------------------------------

def test_the_backend_is_selected():
    assert NeuralNetwork([3, 2], backend="numba").kernels is NB
    assert NeuralNetwork([3, 2], backend="auto").kernels is NB
    assert NB.NAME == "numba"
    missing = [name for name in dir(NP) if callable(getattr(NP, name)) and not name.startswith("_")
               and getattr(getattr(NP, name), "__module__", "") == NP.__name__ and not hasattr(NB, name)]
    assert missing == []


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CODES))
@given(data=st.data())
def test_bias_activation_and_backward_match_numpy(dtype, name, data):
    z = data.draw(matrices(dtype))
    b = data.draw(arrays(dtype, z.shape[1], elements=st.floats(-2, 2, width=32)))
    expected, actual = np.empty_like(z), np.empty_like(z)
    NP.bias_activation(z, b, CODES[name], expected)
    NB.bias_activation(z, b, CODES[name], actual)
    np.testing.assert_allclose(actual, expected, **KERNEL_TOL[dtype])
    in_place = z.copy()
    NB.bias_activation(in_place, b, CODES[name], in_place)
    np.testing.assert_array_equal(in_place, actual)

    delta = data.draw(arrays(dtype, z.shape, elements=st.floats(-3, 3, width=32)))
    d_np, d_nb = delta.copy(), delta.copy()
    NP.activation_backward(d_np, expected.copy(), CODES[name])
    NB.activation_backward(d_nb, expected.copy(), CODES[name])
    np.testing.assert_allclose(d_nb, d_np, **KERNEL_TOL[dtype])


def test_unknown_activation_code_is_refused():
    z = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="unknown activation code"):
        NB.bias_activation(z, np.zeros(2, np.float32), 7, z)


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_softmax_cross_entropy_gradient_matches_numpy(dtype, data):
    logits = data.draw(matrices(dtype, cols=st.integers(2, 8), scale=30.0))
    batch, n_classes = logits.shape
    labels = np.array(data.draw(st.lists(st.integers(0, n_classes - 1), min_size=batch, max_size=batch)), np.intp)
    scale = data.draw(st.sampled_from([1.0, 1.0 / batch]))
    scratch = (np.empty((2, batch), dtype), np.empty((2, batch), np.intp))
    g_np, g_nb = np.empty_like(logits), logits.copy()  # the Numba one in place, over its logits
    loss_np, correct_np = NP.softmax_cross_entropy_grad(logits.copy(), labels, g_np, scale, *scratch)
    loss_nb, correct_nb = NB.softmax_cross_entropy_grad(g_nb, labels, g_nb, scale, *scratch)
    assert correct_nb == correct_np
    assert math.isclose(loss_nb, loss_np, rel_tol=RTOL[dtype] * 10, abs_tol=RTOL[dtype] * 10)
    np.testing.assert_allclose(g_nb, g_np, **KERNEL_TOL[dtype])

    p_np, p_nb = np.empty_like(logits), np.empty_like(logits)
    NP.softmax(logits, p_np, np.empty(batch, dtype))
    NB.softmax(logits, p_nb, np.empty(batch, dtype))
    np.testing.assert_allclose(p_nb, p_np, **KERNEL_TOL[dtype])


def test_softmax_kernel_refuses_a_grad_it_cannot_write_in_place():
    with pytest.raises(ValueError, match="C-contiguous"):
        NB.softmax_cross_entropy_grad(np.zeros((4, 3), np.float32), np.zeros(4, np.intp),
                                      np.zeros((4, 3), np.float32, order="F"), 1.0, None, None)


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), trans_a=st.booleans(), trans_b=st.booleans())
def test_matmul_column_sum_gather_match_numpy(dtype, data, trans_a, trans_b):
    m, k, n = (data.draw(st.integers(1, 9)) for _ in range(3))
    a = data.draw(arrays(dtype, (k, m) if trans_a else (m, k), elements=st.floats(-5, 5, width=32)))
    b = data.draw(arrays(dtype, (n, k) if trans_b else (k, n), elements=st.floats(-5, 5, width=32)))
    a, b = (a.T if trans_a else a), (b.T if trans_b else b)  # transposed views, as backprop passes them
    out_np, out_nb = np.empty((m, n), dtype), np.empty((m, n), dtype)
    NP.matmul(a, b, out_np)
    NB.matmul(a, b, out_nb)
    np.testing.assert_allclose(out_nb, out_np, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)

    sums = np.empty(n, dtype)
    NB.column_sum(out_np, sums)
    np.testing.assert_allclose(sums, out_np.sum(axis=0), **KERNEL_TOL[dtype])

    idx = np.array(data.draw(st.lists(st.integers(0, m - 1), min_size=1, max_size=12)), np.intp)
    rows = np.empty((len(idx), n), dtype)
    NB.gather_rows(out_np, idx, rows)
    np.testing.assert_array_equal(rows, out_np[idx])
    labels = np.arange(m, dtype=np.intp) * 3
    picked = np.empty(len(idx), np.intp)
    NB.gather_rows(labels, idx, picked)
    np.testing.assert_array_equal(picked, labels[idx])


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), keep=st.floats(0.05, 1.0))
def test_dropout_kernels_match_numpy(dtype, data, keep):
    u = data.draw(arrays(dtype, st.tuples(st.integers(1, 9), st.integers(1, 9)),
                         elements=st.floats(0, 1, width=32, exclude_max=True)))
    u_np, u_nb = u.copy(), u.copy()
    NP.dropout_mask(u_np, keep)
    NB.dropout_mask(u_nb, keep)
    np.testing.assert_array_equal(u_nb, u_np)  # the same units kept, the same scale
    a = data.draw(arrays(dtype, u.shape, elements=st.floats(-5, 5, width=32)))
    out = np.empty_like(a)
    NB.multiply_into(a, u_np, out)
    np.testing.assert_array_equal(out, a * u_np)


def params_and_grads(dtype):
    return st.tuples(st.integers(1, 6), st.integers(1, 6)).flatmap(lambda shape: st.tuples(
        arrays(dtype, shape, elements=st.floats(-3, 3, width=32)), arrays(dtype, shape, elements=st.floats(-3, 3, width=32))))


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), lr=st.floats(1e-4, 1.0), mu=st.floats(0.0, 0.99), nesterov=st.booleans(),
       wd=st.sampled_from([0.0, 0.01]))
def test_optimizer_kernels_match_numpy(dtype, data, lr, mu, nesterov, wd):
    p0, g = data.draw(params_and_grads(dtype))
    tol = KERNEL_TOL[dtype] if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    for K in (NP, NB):  # two steps of each rule, numpy then numba, compared below
        p = p0.copy()
        K.sgd_update(p, g.copy(), lr, wd, np.empty_like(p))
        pm, v = p0.copy(), np.zeros_like(p0)
        pa, m1, m2 = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        for t in (1, 2):
            K.momentum_update(pm, g.copy(), v, lr, mu, nesterov, wd, np.empty_like(p0))
            K.adam_update(pa, g.copy(), m1, m2, lr * 0.1, 0.9, 0.999, 1e-7, t, wd, np.empty_like(p0))
        if K is NP:
            expected = [p, pm, v, pa, m1, m2]
    for name, got, want in zip(["sgd", "momentum", "velocity", "adam", "m", "v"], [p, pm, v, pa, m1, m2], expected):
        np.testing.assert_allclose(got, want, err_msg=name, **tol)


# ---- one step and one epoch, numba vs numpy ------------------------------------------------------------

@st.composite
def training_cases(draw):
    sizes = [draw(st.integers(1, 12))]
    sizes += draw(st.lists(st.integers(1, 12), min_size=0, max_size=3))
    sizes.append(draw(st.integers(2, 6)))
    n_hidden = len(sizes) - 2
    activations = draw(st.lists(st.sampled_from(list(ACTIVATIONS)), min_size=n_hidden, max_size=n_hidden))
    n_samples = draw(st.integers(1, 40))
    # 1, odd, even, and larger than the data (full batch)
    batch = draw(st.sampled_from([1, 3, 7, 16, None, n_samples + 5]))
    optimizer = draw(st.sampled_from(["sgd", "momentum", "nesterov", "adam"]))
    weight_decay = draw(st.sampled_from([0.0, 1e-3]))
    dropout = draw(st.sampled_from([0.0, 0.0, 0.25])) if n_hidden else 0.0
    shuffle = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    return sizes, activations, n_samples, batch, optimizer, weight_decay, dropout, shuffle, seed


def _optimizer(name):
    # Adam's eps is 1e-3 here, not Keras' 1e-7: Adam divides by sqrt(v) + eps, so a gradient
    # of the size of eps has its absolute rounding multiplied by about lr / eps.  The tiny
    # networks drawn here often produce such gradients (a confident prediction's p - 1 keeps
    # few digits), and with eps = 1e-7 two correct float32 implementations then differ by a
    # good fraction of lr.  The default eps is compared on real data below.
    return {"sgd": "sgd", "momentum": Momentum(0.9), "nesterov": Momentum(0.8, nesterov=True),
            "adam": Adam(eps=1e-3)}[name]


def _train(backend, dtype, case, epochs=1, one_step=False, threads=None):
    sizes, activations, n_samples, batch, optimizer, weight_decay, dropout, shuffle, seed = case
    rng = np.random.default_rng(seed + 1)
    if one_step:  # the data is one batch
        n_samples = batch if batch is not None and batch <= n_samples else n_samples
    X = rng.normal(0, 1, (n_samples, sizes[0]))
    y = rng.integers(0, sizes[-1], n_samples)
    net = NeuralNetwork(sizes, activation=activations, dtype=dtype, seed=seed, backend=backend, dropout=dropout)
    lr = 0.01 if optimizer == "adam" else 0.1
    history = net.fit(X, y, lr=lr, epochs=epochs, batch_size=batch, optimizer=_optimizer(optimizer),
                      weight_decay=weight_decay, shuffle=shuffle, verbose=False, threads=threads)
    state = [a for kind in net.optimizer.state_names for a in net.optimizer.state[kind]]
    return net, history, state


def _diverged_at(error: FloatingPointError) -> str:
    return re.search(r"epoch \d+, batch \d+", str(error)).group(0)


def _assert_same_training(case, dtype, epochs=1, one_step=False, threads=None):
    try:
        np_net, np_hist, np_state = _train("numpy", dtype, case, epochs, one_step, threads)
    except FloatingPointError as np_error:
        # a drawn case can diverge (an unbounded activation such as ELU, momentum 0.9 at lr 0.1,
        # single-sample steps): the Numba backend must then stop at the same batch
        with pytest.raises(FloatingPointError) as nb_error:
            _train("numba", dtype, case, epochs, one_step, threads)
        assert _diverged_at(nb_error.value) == _diverged_at(np_error)
        return
    nb_net, nb_hist, nb_state = _train("numba", dtype, case, epochs, one_step, threads)
    assert nb_net.kernels is NB
    scale = _largest(np_net.parameters)
    rtol = RTOL[dtype]
    if dtype == np.float32 and not one_step:
        # Many steps of a large lr on random labels can amplify rounding without bound (the drawn
        # case ([12, 11, 3], tanh, 37 single-sample Nesterov steps, dropout) grew its weights to 5.4
        # in float32 and 3.4 in float64).  Two float32 implementations are then asked to agree no
        # worse than float32 agrees with float64 on the same run, the problem's own sensitivity.
        try:
            exact_net, _, exact_state = _train("numpy", np.float64, case, epochs, one_step)
        except FloatingPointError:  # float64 diverges where float32 did not: rounding decides the
            # path, so only what does not depend on it can be compared
            assert nb_net.optimizer.iterations == np_net.optimizer.iterations
            assert nb_net.rng.bit_generator.state == np_net.rng.bit_generator.state
            return
        exact = exact_net.parameters
        rtol = max(rtol, max(float(np.abs(a - b).max()) for a, b in zip(np_net.parameters, exact)) / scale)
    for i, (got, want) in enumerate(zip(nb_net.parameters, np_net.parameters)):
        assert_close(got, want, dtype, f"parameter {i}", scale, rtol)
    n_params = len(np_net.parameters)
    for kind in range(len(np_state) // n_params):  # velocity; Adam's m, then v
        group = slice(kind * n_params, (kind + 1) * n_params)
        scale = _largest(np_state[group])
        state_rtol = rtol
        if dtype == np.float32 and not one_step:  # the state's own sensitivity, measured as above
            state_rtol = max(rtol, max(float(np.abs(a - b).max()) for a, b in zip(np_state[group],
                                                                                 exact_state[group])) / scale)
        for i, (got, want) in enumerate(zip(nb_state[group], np_state[group])):
            assert_close(got, want, dtype, f"optimizer state {kind}, parameter {i}", scale, state_rtol)
    assert nb_net.optimizer.iterations == np_net.optimizer.iterations
    np.testing.assert_allclose(nb_hist.cost, np_hist.cost, rtol=rtol * 10)
    assert nb_hist.train_accuracy == np_hist.train_accuracy
    # the generator advanced alike (permutations, dropout draws): the next epoch would match too
    assert nb_net.rng.bit_generator.state == np_net.rng.bit_generator.state


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=training_cases())
@example(case=([784, 128, 64, 10], ["relu", "relu"], 1, 1, "sgd", 0.0, 0.0, True, 0), )
def test_one_step_matches_numpy(dtype, case):
    _assert_same_training(case, dtype, one_step=True)


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=training_cases())
@example(case=([5, 4, 3], ["tanh"], 23, 7, "sgd", 1e-3, 0.0, True, 1))          # odd batch, partial last
@example(case=([5, 4, 3], ["sigmoid"], 23, 40, "adam", 0.0, 0.0, True, 2))      # batch larger than the data
@example(case=([5, 3], [], 9, 1, "nesterov", 1e-3, 0.0, True, 3))               # no hidden layer, batch 1
@example(case=([6, 5, 4, 3], ["relu", "tanh"], 31, 8, "momentum", 0.0, 0.25, True, 4))  # dropout: per-kernel
@example(case=([12, 11, 3], ["tanh"], 37, 1, "nesterov", 1e-3, 0.25, False, 34199))  # amplifies rounding
@example(case=([1, 1, 4, 2], ["elu", "elu"], 35, 1, "momentum", 0.0, 0.25, False, 1))  # diverges on both
@example(case=([1, 1, 2, 2], ["elu", "tanh"], 36, 1, "momentum", 0.0, 0.0, False, 1069309))  # amplifies rounding
def test_one_epoch_matches_numpy(dtype, case):
    _assert_same_training(case, dtype, epochs=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_three_epochs_on_digits_match_numpy(dtype, optimizer, digits):
    """Longer runs drift only by rounding: real data, 3 epochs of 23 batches each
    (Adam with its default eps)."""
    X, y, _, _ = digits
    nets = {}
    for backend in ("numpy", "numba"):
        nets[backend] = NeuralNetwork([64, 32, 16, 10], seed=5, dtype=dtype, backend=backend)
        opt, lr = (Momentum(0.9), 0.05) if optimizer == "momentum" else (Adam(), 1e-3)
        nets[backend].fit(X, y, lr=lr, epochs=3, batch_size=64, optimizer=opt, verbose=False)
    scale = _largest(nets["numpy"].parameters)
    for got, want in zip(nets["numba"].parameters, nets["numpy"].parameters):
        assert_close(got, want, dtype, scale=scale)


# ---- the fused epoch's gradient, by finite differences ---------------------------------------------------

def _loss(net, X, y):
    """Mean loss of the whole data, with NumPy's forward pass (no dropout)."""
    ws = Workspace(NP, net.architecture, X.shape[0], net.dtype, training=False, gather=False)
    logits = ws.forward(X, net.weights, net.biases, net.activation_codes)
    loss, _ = NP.softmax_cross_entropy_grad(logits, y, logits, 1.0, ws.row_scratch, ws.index_scratch)
    return loss / X.shape[0]


@given(case=training_cases())
def test_fused_sgd_step_is_minus_the_finite_difference_gradient(case):
    """One full-batch SGD step with lr=1 on the fused path moves every parameter by
    minus the gradient of the mean loss; checked by central differences in float64."""
    sizes, activations, n_samples, _, _, _, _, _, seed = case
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1.5, (n_samples, sizes[0]))
    y = rng.integers(0, sizes[-1], n_samples).astype(np.intp)
    net = NeuralNetwork(sizes, activation=activations, dtype="float64", seed=seed, backend="numba")
    # ReLU kinks make central differences meaningless there: keep away from them
    a = X
    for W, b, name in zip(net.weights, net.biases, activations):
        z = a @ W + b
        assume(name != "relu" or np.abs(z).min() > 1e-4)
        a = {"relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh,
             "elu": lambda v: np.where(v > 0, v, np.expm1(np.minimum(v, 0)))}[name](z)
    eps = 1e-6
    numeric = []
    for p in net.parameters:
        grad = np.zeros_like(p)
        for index in np.ndindex(p.shape):
            original = p[index]
            p[index] = original + eps
            plus = _loss(net, X, y)
            p[index] = original - eps
            minus = _loss(net, X, y)
            p[index] = original
            grad[index] = (plus - minus) / (2 * eps)
        numeric.append(grad)
    before = [p.copy() for p in net.parameters]
    net.fit(X, y, lr=1.0, epochs=1, batch_size=None, verbose=False)  # full batch: the fused path, one step
    for old, new, num in zip(before, net.parameters, numeric):
        step = old - new
        error = np.linalg.norm(step - num) / max(np.linalg.norm(step) + np.linalg.norm(num), 1e-3)
        assert error < 1e-6, (sizes, activations)


# ---- behaviour around the fused path -----------------------------------------------------------------

def test_divergence_is_reported_and_undone_like_numpy():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (64, 5)).astype(np.float32) * 1e3
    y = rng.integers(0, 3, 64)
    outcomes = {}
    for backend in ("numpy", "numba"):
        net = NeuralNetwork([5, 8, 3], seed=0, backend=backend)
        with pytest.raises(FloatingPointError) as info:
            net.fit(X, y, lr=1e30, epochs=5, batch_size=8, verbose=False)
        outcomes[backend] = (str(info.value), [p.copy() for p in net.parameters], len(net.history))
    assert outcomes["numba"][0] == outcomes["numpy"][0]
    assert outcomes["numba"][2] == outcomes["numpy"][2]
    scale = _largest(outcomes["numpy"][1])
    for got, want in zip(outcomes["numba"][1], outcomes["numpy"][1]):
        assert_close(got, want, np.float32, scale=scale)


def test_compile_time_is_reported_apart_from_epoch_times(capsys):
    rng = np.random.default_rng(0)
    X, y = rng.random((50, 4)), rng.integers(0, 2, 50)
    net = NeuralNetwork([4, 3, 2], seed=0, backend="numba", dtype="float64")
    NB._WARM.discard((2, np.dtype("float64")))  # as in a fresh process (with a warm on-disk cache)
    net.fit(X, y, epochs=2, batch_size=10, log_every=1)
    assert net.compile_seconds > 0
    assert "compiling or loading the jitted kernels" in capsys.readouterr().out
    net.fit(X, y, epochs=1, batch_size=10, verbose=False)
    assert net.compile_seconds == 0.0  # compiled once per process


def test_without_a_writable_cache_the_kernels_still_compile():
    """A read-only install: Numba finds no cache location for the source file and
    would raise at decoration; the backend falls back to compiling without a cache.
    (Code built from a string has no file, so Numba cannot cache it either.)"""
    namespace = {}
    exec("def double(x):\n    return 2 * x\n", namespace)  # noqa: S102
    jitted = NB._jit(namespace["double"])
    assert jitted(21) == 42
    assert not jitted._cache.__class__.__name__.endswith("FunctionCache")


def test_blas_threads_follow_the_batch_size():
    from fastscratch.training import threads as training_threads
    assert NB.blas_threads_for(32) == 1 and NP.blas_threads_for(32) == 1
    assert NB.blas_threads_for(100_000) is None  # large GEMMs: measured at the start of fit
    assert training_threads.choose_blas_threads(NB, [20, 8, 3], 32, np.float32) == 1
    assert training_threads.choose_blas_threads(NB, [20, 8, 3], 512, np.float32) in (1, None)


def test_fit_threads_sets_the_epochs_threads_for_that_fit_only():
    """``fit(threads=n)`` in place of the thread budget, on both paths; ``"measure"`` times the
    BLAS threads for the batch; the next fit without it follows the rules again."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(0, 1, (600, 20)).astype(np.float32), rng.integers(0, 3, 600)
    net = NeuralNetwork([20, 8, 3], seed=0, backend="numpy")
    net.fit(X, y, epochs=1, batch_size=32, verbose=False, threads=2)
    assert net.blas_threads == 2 and net.last_epoch_path == "stepwise"
    net.fit(X, y, epochs=1, batch_size=32, verbose=False)
    assert net.blas_threads == NP.blas_threads_for(32) == 1
    net.fit(X, y, epochs=1, batch_size=512, verbose=False, threads="measure")
    assert net.blas_threads in (1, None)
    fused = NeuralNetwork([20, 8, 3], seed=0, backend="numba")
    fused.fit(X, y, epochs=1, batch_size=32, verbose=False, threads=1)
    assert fused.last_epoch_path == "fused" and fused.epoch_parts == 1 and fused.epoch_blas_threads == 1


def test_the_fused_epoch_allocates_nothing_per_batch():
    """Numba's own allocation counter: an epoch of 50 batches allocates exactly as
    much as one of 5 (scratch made once per call, and the arrays handed in from
    Python), so nothing is allocated inside the batch loop."""
    from numba.core.runtime import _nrt_python, rtsys

    sizes, batch = [20, 16, 8, 4], 8

    def allocations(n):
        rng = np.random.default_rng(0)
        X = rng.random((n, sizes[0]), dtype=np.float32)
        y = rng.integers(0, sizes[-1], n).astype(np.intp)
        Ws = [rng.random((a, b), dtype=np.float32) * 0.1 for a, b in zip(sizes[:-1], sizes[1:])]
        bs = [np.zeros(b, np.float32) for b in sizes[1:]]
        acts = [np.empty((batch, b), np.float32) for b in sizes[1:]]
        deltas = [np.empty((batch, b), np.float32) for b in sizes[1:-1]]
        state = [np.zeros_like(p) for pair in zip(Ws, bs) for p in pair]
        args = (X, y, rng.permutation(n), batch, Ws, bs, [NP.RELU, NP.TANH, NP.IDENTITY],
                np.empty((batch, sizes[0]), np.float32), np.empty(batch, np.intp), acts, deltas,
                [np.empty_like(W) for W in Ws], [np.empty_like(b) for b in bs])
        counts = {}
        for kind in (NB.OPT_SGD, NB.OPT_ADAM):
            for parts in (1, 2):  # and a helper thread taking parts
                NB.train_epoch(*args, kind, 0.01, 1e-4, state1=state, state2=state, parts=parts)  # compiled, warm
                before = rtsys.get_allocation_stats().alloc
                NB.train_epoch(*args, kind, 0.01, 1e-4, state1=state, state2=state, parts=parts)
                counts[kind, parts] = rtsys.get_allocation_stats().alloc - before
        return counts

    was_enabled = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    try:
        few, many = allocations(5 * batch), allocations(50 * batch)
    finally:
        if not was_enabled:
            _nrt_python.memsys_disable_stats()
    assert few == many


def test_read_only_inputs_train_like_numpy():
    """A read-only X (a memory map, say) takes the per-kernel path and still agrees."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(0, 1, (40, 5)), rng.integers(0, 3, 40)
    X.flags.writeable = False
    nets = {}
    for backend in ("numpy", "numba"):
        for batch in (8, None):
            nets[backend, batch] = NeuralNetwork([5, 4, 3], seed=0, backend=backend, dtype="float64")
            nets[backend, batch].fit(X, y, epochs=2, batch_size=batch, verbose=False)
    for batch in (8, None):
        scale = _largest(nets["numpy", batch].parameters)
        for got, want in zip(nets["numba", batch].parameters, nets["numpy", batch].parameters):
            assert_close(got, want, np.float64, scale=scale)


# ---- the epoch in parts, on several threads ----------------------------------------------------------

@pytest.fixture
def in_parts(monkeypatch):
    """``in_parts(split)``: a fused epoch given ``fit(threads=n)`` runs in ``n`` parts however
    small its step, with part boundaries at any row or column, so the tiny drawn networks go
    through the parallel paths too (empty parts included); ``split="cols"`` cuts every product
    that can be cut by columns that way."""

    def setup(split="rows"):
        monkeypatch.setattr(NB, "MIN_PARALLEL_STEP_FLOPS", 0)
        monkeypatch.setattr(NB, "MIN_PARALLEL_ROWS", 0)
        monkeypatch.setattr(NB, "ROW_QUANTUM", 1)
        monkeypatch.setattr(NB, "COL_QUANTUM", 1)
        if split == "cols":
            monkeypatch.setattr(NB, "COLS_MIN_WEIGHTS", 0)
            monkeypatch.setattr(NB, "COLS_MIN_WIDTH_RATIO", 0)
    return setup


@pytest.mark.parametrize("split", ["rows", "cols"])
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # the fixture sets the same values each time
@given(case=training_cases())
@example(case=([5, 4, 3], ["tanh"], 23, 7, "sgd", 1e-3, 0.0, True, 1))          # parts of 2-3 rows, some empty
@example(case=([5, 4, 3], ["sigmoid"], 23, 40, "adam", 0.0, 0.0, True, 2))      # batch larger than the data
@example(case=([12, 9, 3], ["relu"], 40, None, "nesterov", 1e-3, 0.0, False, 3))  # full batch, unshuffled
def test_one_epoch_in_three_parts_matches_numpy(split, case, in_parts):
    """Three parts shared by the caller and two helper threads (on however many cores the
    machine has) train like the NumPy backend, cut by rows or by columns.  In float64, where
    agreement is to 1e-12: this checks the arithmetic of the parts, not float32 rounding
    (which degenerate drawn nets, chains of one-unit layers, amplify on any path)."""
    in_parts(split)
    _assert_same_training(case, np.float64, epochs=1, threads=3)


def _epoch_args(sizes, n, batch, rows=None, seed=0):
    """Arguments of ``train_epoch`` for a random network and data; ``rows``: the workspace's
    rows (fewer than ``batch``: a batch in passes)."""
    rows = rows or batch
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], n).astype(np.intp)
    Ws = [(rng.normal(0, 1, (a, b)) * np.sqrt(2 / a)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(b, np.float32) for b in sizes[1:]]
    acts = [np.empty((rows, b), np.float32) for b in sizes[1:]]
    deltas = [np.empty((rows, b), np.float32) for b in sizes[1:-1]]
    state = [[np.zeros_like(p) for pair in zip(Ws, bs) for p in pair] for _ in range(2)]
    codes = [NP.RELU] * (len(sizes) - 2) + [NP.IDENTITY]
    args = (X, y, rng.permutation(n), batch, Ws, bs, codes, np.empty((rows, sizes[0]), np.float32),
            np.empty(rows, np.intp), acts, deltas, [np.empty_like(W) for W in Ws], [np.empty_like(b) for b in bs])
    return args, Ws + bs + state[0] + state[1], state


@pytest.mark.parametrize("kind", [NB.OPT_SGD, NB.OPT_MOMENTUM, NB.OPT_ADAM])
@pytest.mark.parametrize("shape", ["rows", "cols", "tall"])
def test_the_result_does_not_depend_on_which_threads_ran_the_parts(kind, shape, monkeypatch):
    """Bit for bit the same with 0, 1 or 2 helper threads taking the parts of a 3-part epoch:
    what each part computes is fixed by the program, not by who runs it (and nobody reads a
    part before it is done)."""
    if shape == "cols":
        monkeypatch.setattr(NB, "COLS_MIN_WEIGHTS", 0)
    sizes, n, batch = [96, 160, 48, 10], 1200, (64 if shape != "tall" else 200)
    outcomes = []
    for helpers in (0, 1, 2, 2):
        args, params, state = _epoch_args(sizes, n, batch, rows=48 if shape == "tall" else None)
        counts = np.zeros(NB.MAX_PARTS, np.int64)
        result = NB.train_epoch(*args, kind, 0.05 if kind != NB.OPT_ADAM else 1e-3, 1e-4, momentum=0.9,
                                state1=state[0], state2=state[1], parts=3, helpers=helpers, counts=counts)
        assert counts[helpers + 1:].sum() == 0 and counts.sum() == result[2] * _phases_per_step(sizes, args, 3)
        outcomes.append((result, params))
    program, _ = NB.step_program(tuple(sizes), args[9][0].shape[0], 3)
    assert (program[:, 3] == NB.SPLIT_COLS).any() == (shape == "cols")
    for result, params in outcomes[1:]:
        assert result == outcomes[0][0]
        for got, want in zip(params, outcomes[0][1]):
            np.testing.assert_array_equal(got, want)


def _phases_per_step(sizes, args, parts):
    """Parts run per step: 3 per phase; a batch in passes runs the per-pass phases once per pass."""
    program, phase_start = NB.step_program(tuple(sizes), args[9][0].shape[0], parts)
    n_phases = len(phase_start) - 1
    batch, rows = args[3], args[9][0].shape[0]
    passes = -(-batch // rows)
    per_step = (n_phases - 1) * passes + (1 if passes > 1 else 0)
    return per_step * parts


def test_the_same_seed_and_threads_give_the_same_bits(monkeypatch):
    """fit twice with the same seed on 1 and on 2 threads: each pair is bit-identical; the
    two thread counts differ at most by rounding (the loss sums and fused SGD updates of
    two parts are added in another order)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(0, 1, (3000, 200)).astype(np.float32), rng.integers(0, 10, 3000)
    runs = {}
    for threads in (1, 2, 1, 2):
        net = NeuralNetwork([200, 256, 64, 10], seed=3, backend="numba")
        net.fit(X, y, lr=0.05, epochs=2, batch_size=128, optimizer="momentum", verbose=False, threads=threads)
        assert net.epoch_parts == threads and net.last_epoch_path == "fused"  # batch 128: `threads` parts
        params = [p.copy() for p in net.parameters]
        if threads in runs:
            for got, want in zip(params, runs[threads]):
                np.testing.assert_array_equal(got, want)
        runs[threads] = params
    scale = _largest(runs[1])
    for got, want in zip(runs[2], runs[1]):
        assert_close(got, want, np.float32, scale=scale)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("batch", [32, None])
def test_fit_takes_the_fused_path(optimizer, batch):
    """The jitted epoch, not the kernel-by-kernel fallback (which gives the same numbers, so
    only this can tell), for every optimizer, mini-batch and full batch, with weight decay;
    dropout is the documented exception."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(0, 1, (200, 20)), rng.integers(0, 4, 200)
    net = NeuralNetwork([20, 16, 4], seed=0, backend="numba")
    net.fit(X, y, epochs=1, batch_size=batch, optimizer=_optimizer(optimizer), weight_decay=1e-4, verbose=False)
    assert net.last_epoch_path == "fused"
    dropping = NeuralNetwork([20, 16, 4], seed=0, backend="numba", dropout=0.2)
    dropping.fit(X, y, epochs=1, batch_size=batch, verbose=False)
    assert dropping.last_epoch_path == "stepwise"


def test_step_program():
    """Rows stay with their part through consecutive row-wise operations (one phase); a
    column-wise product is a phase of its own; the update phases come last."""
    program, phase_start = NB.step_program((784, 128, 64, 10), 128, 2)
    ops = [tuple(row) for row in program[:, 1:4]]
    assert ops == [(NB.OP_GATHER, 0, 0), (NB.OP_FORWARD, 0, 0), (NB.OP_FORWARD, 1, 0), (NB.OP_FORWARD, 2, 0),
                   (NB.OP_SOFTMAX, 2, 0), (NB.OP_BACKWARD, 2, 0), (NB.OP_BACKWARD, 1, 0)] \
        + [(NB.OP_WEIGHTS, layer, 0) for layer in range(3)] + [(NB.OP_UPDATE, layer, 0) for layer in range(3)]
    assert list(program[:, 0]) == [0] * 7 + [1] * 3 + [2] * 3 and list(phase_start) == [0, 7, 10, 13]
    # a short batch and wide layers: the big products are cut by columns, each its own phase,
    # and their weights are updated by the same blocks of columns
    program, phase_start = NB.step_program((784, 512, 512, 10), 32, 2)
    cols = [(op, layer) for _, op, layer, split, _ in program if split == NB.SPLIT_COLS]
    assert cols == [(NB.OP_FORWARD, 0), (NB.OP_FORWARD, 1), (NB.OP_BACKWARD, 1), (NB.OP_WEIGHTS, 0),
                    (NB.OP_WEIGHTS, 1), (NB.OP_UPDATE, 0), (NB.OP_UPDATE, 1)]
    assert len(phase_start) - 1 == len(set(program[:, 0])) == 7
    # one part: nothing is cut by columns
    program, _ = NB.step_program((784, 512, 512, 10), 32, 1)
    assert not (program[:, 3] == NB.SPLIT_COLS).any()


@pytest.mark.parametrize("n,parts,quantum", [(128, 2, 8), (10, 2, 8), (7, 3, 8), (784, 2, 8), (100, 8, 16), (0, 2, 8)])
def test_spans_cover_the_range_once(n, parts, quantum):
    spans = [NB._span(n, part, parts, quantum) for part in range(parts)]
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert all(lo <= hi and (lo % quantum == 0) for lo, hi in spans)


def test_epoch_threads_rule():
    assert NB.epoch_threads([784, 128, 64, 10], 128, 2) == (2, 1)
    assert NB.epoch_threads([784, 128, 64, 10], 128, 1) == (1, 1)
    assert NB.epoch_threads([784, 128, 64, 10], 128, 64) == (NB.MAX_PARTS, 1)
    assert NB.epoch_threads([4, 8, 3], 16, 2) == (1, 1)  # too small a step to share
    assert NB.epoch_threads([784, 128, 64, 10], 32, 2) == (1, 1)  # too few rows
    assert NB.epoch_threads([784, 1024, 1024, 10], 32, 2) == (2, 1)  # few rows, but wide enough to cut
    assert NB.epoch_threads([784, 128, 64, 10], 4096, 2) == (2, 1)  # a tall pass too
    with pytest.raises(ValueError, match="parts"):
        args, _, state = _epoch_args([5, 4, 3], 10, 5)
        NB.train_epoch(*args, NB.OPT_SGD, 0.1, 0.0, parts=NB.MAX_PARTS + 1)


def test_a_blas_thread_limit_is_a_limit_on_the_epochs_threads():
    """threadpoolctl's limit (as OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or a Dask worker's
    setting) caps the epoch's parts: one BLAS thread, one part and no helper threads."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(0)
    X, y = rng.normal(0, 1, (1000, 200)).astype(np.float32), rng.integers(0, 10, 1000)
    net = NeuralNetwork([200, 256, 10], seed=0, backend="numba")
    with threadpoolctl.threadpool_limits(1):
        net.fit(X, y, epochs=1, batch_size=128, verbose=False)
    assert net.epoch_parts == 1 and len(net.thread_parts) == 1
    net.fit(X, y, epochs=1, batch_size=128, verbose=False)
    from fastscratch.training import threads as training_threads
    assert net.epoch_parts == min(training_threads.usable_cores(), NB.MAX_PARTS)
