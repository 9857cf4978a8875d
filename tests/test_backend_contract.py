"""The backend contract (``fastscratch.kernels.contract``): every backend meets it, a module that
does not is refused with a message naming what is missing, and the codes and registries are
defined once.  What each kernel computes is checked per backend in ``test_kernels.py``."""

import inspect
import types

import numpy as np
import pytest

from fastscratch import Adam, Momentum, NeuralNetwork, backends
from fastscratch.activations import ACTIVATIONS
from fastscratch.backends import available_backends, load_backend
from fastscratch.kernels import contract
from fastscratch.kernels import numpy_kernels as NP
from fastscratch.optimizers import OPTIMIZERS, kernel_code


def _parameters(function):
    return [p.name for p in inspect.signature(function).parameters.values() if p.name != "self"]


@pytest.mark.parametrize("name", available_backends())
def test_every_backend_has_every_kernel_with_the_declared_signature(name):
    module = load_backend(name)
    assert isinstance(module, contract.Kernels)  # the Protocol's names are all there
    for kernel in contract.REQUIRED_KERNELS:
        assert _parameters(getattr(module, kernel)) == _parameters(getattr(contract.Kernels, kernel)), kernel
        # the reference's docstring is the definition: the contract states its signature
        assert _parameters(getattr(module, kernel)) == _parameters(getattr(NP, kernel)), kernel
    caps = contract.capabilities(module)
    assert (caps.train_epoch is None) == (caps.fused_epoch_supported is None)
    for code_name, value in contract.CODES.items():  # re-exported codes are the contract's
        assert getattr(module, code_name, value) == value


def test_the_reference_has_no_public_function_outside_the_contract():
    public = {name for name, value in vars(NP).items() if inspect.isfunction(value) and not name.startswith("_")
              and value.__module__ == NP.__name__}
    assert public <= set(contract.REQUIRED_KERNELS) | set(contract.OPTIONAL_FUNCTIONS)


def test_capabilities_say_what_each_backend_adds():
    numpy_caps = contract.capabilities(load_backend("numpy"))
    assert numpy_caps.blas_threads_for is NP.blas_threads_for
    assert numpy_caps.train_epoch is None and numpy_caps.warmup is None and numpy_caps.epoch_threads is None
    if "numba" in available_backends():
        NB = load_backend("numba")
        caps = contract.capabilities(NB)
        assert caps.train_epoch is NB.train_epoch and caps.warmup is NB.warmup
        assert caps.epoch_threads is NB.epoch_threads and caps.cache_stats is NB.cache_stats


def _fake_backend(**changes):
    module = types.ModuleType("fastscratch.kernels.fake_kernels")
    for name in contract.REQUIRED_KERNELS + ("NAME", "blas_threads_for"):
        setattr(module, name, getattr(NP, name))
    for name, value in changes.items():
        if value is None:
            delattr(module, name)
        else:
            setattr(module, name, value)
    return module


@pytest.mark.parametrize("changes, message", [
    (dict(softmax=None), "kernel softmax is missing"),
    (dict(NAME=None), "NAME"),
    (dict(matmul=lambda a, b: a @ b), r"kernel matmul\(a, b\) should take \(a, b, out\)"),
    (dict(warmup=lambda layers: 0.0), r"warmup\(layers\) should take \(n_layers, dtype\)"),
    (dict(train_epoch=lambda *a: None), "train_epoch"),
    (dict(RELU=7), "RELU = 7 differs from the contract's 1"),
])
def test_a_module_that_breaks_the_contract_is_refused_naming_the_problem(changes, message):
    with pytest.raises(TypeError, match=message):
        contract.check_backend(_fake_backend(**changes))


def test_load_backend_checks_the_contract(monkeypatch):
    broken = _fake_backend(column_sum=None, adam_update=None)
    monkeypatch.setattr(backends.importlib, "import_module", lambda name: broken)
    with pytest.raises(TypeError, match="kernel column_sum is missing; kernel adam_update is missing"):
        load_backend("numpy")


def test_a_backend_without_optional_functions_trains_kernel_by_kernel():
    """The library asks the contract, not the module: a backend with only the required kernels works."""
    module = _fake_backend(blas_threads_for=None)
    X = np.random.default_rng(0).random((40, 5), dtype=np.float32)
    y = np.arange(40) % 3
    nn = NeuralNetwork([5, 4, 3], seed=0, backend="numpy")
    nn.kernels = module
    nn.fit(X, y, epochs=2, lr=0.1, batch_size=8)
    reference = NeuralNetwork([5, 4, 3], seed=0, backend="numpy")
    reference.fit(X, y, epochs=2, lr=0.1, batch_size=8)
    for a, b in zip(nn.weights, reference.weights):
        np.testing.assert_array_equal(a, b)


def test_codes_are_defined_once():
    assert sorted(a.code for a in ACTIVATIONS.values()) == sorted(set(contract.ACTIVATION_CODES) - {contract.IDENTITY})
    assert sorted(cls.kernel_code for cls in OPTIMIZERS.values()) == sorted(contract.OPTIMIZER_CODES)
    for name, cls in OPTIMIZERS.items():
        assert cls.name == name and kernel_code(cls()) == cls.kernel_code


def test_a_subclass_of_an_optimizer_has_no_kernel_code():
    class MyAdam(Adam):  # may change the rule: runs kernel by kernel
        pass

    assert kernel_code(MyAdam()) is None and kernel_code(Adam()) == contract.OPT_ADAM
    assert kernel_code(Momentum(0.5)) == contract.OPT_MOMENTUM


def test_every_optimizer_names_its_equivalents():
    for cls in OPTIMIZERS.values():
        mapping = cls().equivalents()
        assert set(mapping) == {"keras", "torch", "jax"}
        assert mapping["keras"][0].startswith("keras.optimizers.")
        assert mapping["torch"][0].startswith("torch.optim.")
        assert mapping["jax"][0].startswith("optax.")
