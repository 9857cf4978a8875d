"""The backend contract: what a kernel module must provide, and what it may.

A *backend* is a module of ``fastscratch.kernels`` (``numpy_kernels`` is the
reference, ``numba_kernels`` the jitted one).  :class:`Kernels` lists the
required kernels with their signatures; ``numpy_kernels`` documents what each
computes, with shapes.  :class:`Capabilities` lists the optional functions (a
whole-epoch function, warm-up, thread rules); the library asks
:func:`capabilities` for them instead of probing modules.  The integer codes the
kernels take -- activations (``IDENTITY``, ``RELU``, ...) and, for a whole-epoch
function, optimizers (``OPT_SGD``, ...) -- are defined here once; every backend
re-exports them.  ``fastscratch.backends.load_backend`` runs :func:`check_backend`
on every module it loads, so a backend that lacks a kernel, or has one with
other parameters, fails at load time with a message naming it.

Writing a backend: implement every kernel of :class:`Kernels` with the same
parameter names (row-major arrays, results written into the ``out``/scratch
arrays given, nothing allocated per call), handle every code of
:data:`ACTIVATION_CODES`, set ``NAME``, add any of the :class:`Capabilities`
functions it can do better, and register its module in ``fastscratch.backends``.
"""

from __future__ import annotations

import dataclasses
import inspect
from types import ModuleType
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

# ---- codes the kernels take (integers, so that jitted code can take them too) -------------
#: activation codes: ``bias_activation``/``activation_backward`` take one per layer
IDENTITY = 0
RELU = 1
SIGMOID = 2
TANH = 3
ELU = 4
ACTIVATION_CODES: tuple[int, ...] = (IDENTITY, RELU, SIGMOID, TANH, ELU)

#: optimizer codes: a whole-epoch function's ``kind``
OPT_SGD = 0
OPT_MOMENTUM = 1
OPT_ADAM = 2
OPTIMIZER_CODES: tuple[int, ...] = (OPT_SGD, OPT_MOMENTUM, OPT_ADAM)
#: every code's name and value; a backend that re-exports a code must give it this value
CODES: dict[str, int] = {name: value for name, value in dict(globals()).items()
                         if name.isupper() and type(value) is int}


@runtime_checkable
class Kernels(Protocol):
    """The kernels every backend has, with these parameters (see ``numpy_kernels`` for what each
    computes).  Shapes: a batch ``(batch, n)``, weights ``(n_in, n_out)``, biases ``(n_out,)``."""

    NAME: str

    def gather_rows(self, source: np.ndarray, indices: np.ndarray, out: np.ndarray) -> None: ...

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None: ...

    def bias_activation(self, z: np.ndarray, b: np.ndarray, activation: int, out: np.ndarray) -> None: ...

    def activation_backward(self, delta: np.ndarray, a: np.ndarray, activation: int) -> None: ...

    def softmax_cross_entropy_grad(self, logits: np.ndarray, labels: np.ndarray, grad: np.ndarray, scale: float,
                                   row_scratch: np.ndarray, index_scratch: np.ndarray) -> tuple[float, int]: ...

    def softmax(self, logits: np.ndarray, out: np.ndarray, row_scratch: np.ndarray) -> None: ...

    def column_sum(self, delta: np.ndarray, out: np.ndarray) -> None: ...

    def dropout_mask(self, uniform: np.ndarray, keep_prob: float) -> None: ...

    def multiply_into(self, a: np.ndarray, factors: np.ndarray, out: np.ndarray) -> None: ...

    def sgd_update(self, param: np.ndarray, grad: np.ndarray, lr: float, weight_decay: float,
                   scratch: np.ndarray) -> None: ...

    def momentum_update(self, param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, lr: float,
                        momentum: float, nesterov: bool, weight_decay: float, scratch: np.ndarray) -> None: ...

    def adam_update(self, param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float,
                    beta1: float, beta2: float, eps: float, step: int, weight_decay: float,
                    scratch: np.ndarray) -> None: ...


class _Optional(Protocol):
    """The optional functions' signatures (what :class:`Capabilities` holds when a backend has them)."""

    def train_epoch(self, X: np.ndarray, y: np.ndarray, order: np.ndarray | None, batch: int,
                    weights: list[np.ndarray], biases: list[np.ndarray], codes: list[int],
                    xbuf: np.ndarray, ybuf: np.ndarray, acts: list[np.ndarray], deltas: list[np.ndarray],
                    grad_W: list[np.ndarray], grad_b: list[np.ndarray], kind: int, lr: float,
                    weight_decay: float, momentum: float = 0.0, nesterov: bool = False, beta1: float = 0.9,
                    beta2: float = 0.999, eps: float = 1e-7, step0: int = 0,
                    state1: list[np.ndarray] | None = None, state2: list[np.ndarray] | None = None,
                    max_loss: float = ..., parts: int = 1, helpers: int | None = None,
                    counts: np.ndarray | None = None) -> tuple[float, int, int, int, float]: ...

    def fused_epoch_supported(self, X: np.ndarray, weights: list[np.ndarray], dropping: bool) -> bool: ...

    def epoch_threads(self, sizes: list[int] | tuple[int, ...], rows: int, threads: int
                      ) -> tuple[int, int | None]: ...

    def blas_threads_for(self, batch: int) -> int | None: ...

    def warmup(self, n_layers: int, dtype: np.dtype | str = ...) -> float: ...

    def cache_stats(self) -> dict[str, Any]: ...


#: the required kernels, by name
REQUIRED_KERNELS: tuple[str, ...] = tuple(
    name for name, value in vars(Kernels).items() if inspect.isfunction(value) and not name.startswith("_"))


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """A backend's optional functions, ``None`` where it has none.

    - ``train_epoch`` with ``fused_epoch_supported``: a whole epoch in one call (optimizer
      ``kind`` from :data:`OPTIMIZER_CODES`), where ``fused_epoch_supported`` says it covers
      the case; otherwise the library runs the epoch kernel by kernel.
    - ``epoch_threads(sizes, rows, threads) -> (parts, blas_threads)``: the thread rule of
      ``train_epoch``; without it an epoch runs in one part.
    - ``blas_threads_for(batch) -> 1 | None``: the BLAS threads of the kernel-by-kernel path
      (``None``: as configured); without it, BLAS as configured.
    - ``warmup(n_layers, dtype) -> seconds``: compile ahead of training, so the time is
      reported apart; ``cache_stats() -> dict``: how the compiled code was obtained.
    """

    train_epoch: Callable[..., tuple[float, int, int, int, float]] | None = None
    fused_epoch_supported: Callable[[np.ndarray, list[np.ndarray], bool], bool] | None = None
    epoch_threads: Callable[[Any, int, int], tuple[int, int | None]] | None = None
    blas_threads_for: Callable[[int], int | None] | None = None
    warmup: Callable[..., float] | None = None
    cache_stats: Callable[[], dict[str, Any]] | None = None


OPTIONAL_FUNCTIONS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(Capabilities))


def _parameters(function: Callable) -> list[str]:
    return [p.name for p in inspect.signature(function).parameters.values() if p.name != "self"]


def _signature_differs(function: Callable, declared: Callable) -> bool:
    """Whether ``function``'s parameter names differ from ``declared``'s.  A wrapper taking only
    ``*args``/``**kwargs`` (a test intercepting a kernel) passes on its calls unchecked."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins): cannot tell
        return False
    if all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
        return False
    return _parameters(function) != _parameters(declared)


def check_backend(module: ModuleType | Any) -> Capabilities:
    """Check ``module`` against the contract and return its :class:`Capabilities`.

    ``module`` is a kernel module, or any object with its attributes (a test may wrap one in
    a ``types.SimpleNamespace`` to intercept a kernel).

    Raises ``TypeError`` naming every required kernel that is missing or not callable,
    every function (required or optional) whose parameters differ from the contract's,
    a ``train_epoch`` without ``fused_epoch_supported`` (or the reverse), and a missing or
    non-string ``NAME``, or codes that differ from this module's.  The result is cached
    per module.
    """
    cached = _CHECKED.get(id(module))
    if cached is not None and cached[0] is module:
        return cached[1]
    problems = []
    if not isinstance(getattr(module, "NAME", None), str):
        problems.append("NAME (a string) is missing")
    for name in REQUIRED_KERNELS:
        function = getattr(module, name, None)
        if not callable(function):
            problems.append(f"kernel {name} is missing")
        elif _signature_differs(function, getattr(Kernels, name)):
            problems.append(f"kernel {name}{inspect.signature(function)} should take "
                            f"({', '.join(_parameters(getattr(Kernels, name)))})")
    found = {}
    for name in OPTIONAL_FUNCTIONS:
        function = getattr(module, name, None)
        if function is None:
            continue
        if not callable(function):
            problems.append(f"{name} is not callable")
        elif _signature_differs(function, getattr(_Optional, name)):
            problems.append(f"{name}{inspect.signature(function)} should take "
                            f"({', '.join(_parameters(getattr(_Optional, name)))})")
        else:
            found[name] = function
    if ("train_epoch" in found) != ("fused_epoch_supported" in found):
        problems.append("train_epoch and fused_epoch_supported come together")
    for code_name, value in CODES.items():
        if getattr(module, code_name, value) != value:
            problems.append(f"{code_name} = {getattr(module, code_name)!r} differs from the contract's {value!r}")
    if problems:
        label = getattr(module, "__name__", None) or f"{type(module).__name__} NAME={getattr(module, 'NAME', None)!r}"
        raise TypeError(f"kernel module {label} does not meet the backend contract "
                        "(fastscratch.kernels.contract): " + "; ".join(problems))
    result = Capabilities(**found)
    _CHECKED[id(module)] = (module, result)  # the object is kept, so its id is not reused meanwhile
    return result


_CHECKED: dict[int, tuple[Any, Capabilities]] = {}


def capabilities(module: ModuleType | Any) -> Capabilities:
    """The optional functions of a backend module, checked against the contract on first use.

    Compared with the module's attributes on every call (once per epoch), so a study script that
    swaps a rule in (``numba_kernels.epoch_threads = ...``) is heard; while nothing changed, the
    cached object is returned and nothing is allocated (the allocation test sees every epoch).
    """
    caps = check_backend(module)
    for name in OPTIONAL_FUNCTIONS:
        if getattr(module, name, None) is not getattr(caps, name):
            break
    else:
        return caps
    _CHECKED.pop(id(module))  # a function was swapped: check and cache the module as it is now
    return check_backend(module)
