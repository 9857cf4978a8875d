"""Optimizers: the update rule applied to every parameter after backprop.

An optimizer object holds its hyperparameters and, once bound to a network's
parameters, one state array per parameter and kind (velocity; Adam's first and
second moments) plus a scratch array per parameter so updates allocate nothing.
The arithmetic itself is a backend kernel (``sgd_update``, ``momentum_update``,
``adam_update``).  The learning rate is not part of the optimizer: ``fit``
passes it each step, so schedules can change it.

:data:`OPTIMIZERS` is the one registry of optimizers: name -> class, and each
class states its update rule's kernel code for a whole-epoch function
(``kernel_code``, from ``fastscratch.kernels.contract``), its state kinds
(``state_names``) and, through :meth:`Optimizer.equivalents`, the Keras,
PyTorch and JAX (optax) optimizers that apply the same rule.  The Keras
reference, the benchmark's frameworks and the command line read it.
:data:`PRESETS` adds the names users write for common settings (``"nesterov"``);
:func:`get_optimizer` and every ``--optimizer`` of the command line accept them.
"""

from __future__ import annotations

import functools
import math
from types import ModuleType
from typing import Any, Callable

import numpy as np

from ._validation import resolve_named
from .devices import device_of, empty_like, is_host, zeros_like
from .kernels.contract import OPT_ADAM, OPT_MOMENTUM, OPT_SGD


class Optimizer:
    """Base class.  Subclasses list their state kinds in ``state_names`` and the code of their
    rule for a backend's whole-epoch function in ``kernel_code`` (``None``: stepwise only)."""

    name: str = ""
    state_names: tuple[str, ...] = ()
    kernel_code: int | None = None

    def __init__(self) -> None:
        self.state: dict[str, list[np.ndarray]] = {}
        self.scratch: list[np.ndarray] = []
        self.iterations = 0
        self._layout: tuple | None = None

    # -- configuration -------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Hyperparameters as a JSON-able dict (``name`` included)."""
        return {"name": self.name}

    def same_config(self, other: "Optimizer") -> bool:
        return self.config() == other.config()

    def equivalents(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """The same update rule in other frameworks: ``{"keras": (path, kwargs), "torch": ...,
        "jax": ...}``, ``path`` the optimizer's dotted name (``"keras.optimizers.SGD"``,
        ``"torch.optim.SGD"``, ``"optax.sgd"``) and ``kwargs`` its arguments other than the
        learning rate (Keras ``learning_rate``, PyTorch ``lr``, optax ``learning_rate``), which
        the caller adds.  Empty where none is known."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    def __str__(self) -> str:
        return describe(self.config())

    # -- state ---------------------------------------------------------
    def bind(self, params: list[np.ndarray]) -> None:
        """Prepare state for ``params``: kept (with the step count) when it was made for
        arrays of the same shapes and dtype, else allocated afresh (zeros, step 0)."""
        layout = _layout(params)
        if layout != self._layout:
            self.state = {k: [zeros_like(p) for p in params] for k in self.state_names}
            self.scratch = [empty_like(p) for p in params]
            self.iterations = 0
            self._layout = layout

    def move_state(self, move: Callable[[Any], Any]) -> None:
        """Replace every state and scratch array by ``move(array)`` (the same values elsewhere:
        ``NeuralNetwork.to_device``), keeping the step count, so a later ``bind`` to the moved
        parameters keeps the state."""
        self.state = {kind: [move(a) for a in arrays] for kind, arrays in self.state.items()}
        self.scratch = [move(a) for a in self.scratch]
        if self.scratch:
            self._layout = _layout(self.scratch)

    def step(self, kernels: ModuleType, params: list[np.ndarray], grads: list[np.ndarray], lr: float,
             weight_decays: list[float]) -> None:
        """Update ``params`` in place from ``grads`` (which are consumed)."""
        self.iterations += 1
        for i, (p, g) in enumerate(zip(params, grads)):
            self._update(kernels, i, p, g, lr, weight_decays[i])

    def _update(self, kernels: ModuleType, i: int, p: np.ndarray, g: np.ndarray, lr: float,
                weight_decay: float) -> None:
        raise NotImplementedError


def _layout(arrays: list[Any]) -> tuple:
    """What state made for ``arrays`` fits: their shapes and dtype, and off the host, where they live."""
    layout: tuple = ([a.shape for a in arrays], arrays[0].dtype)
    if not is_host(arrays[0]):
        layout += (type(arrays[0]), str(device_of(arrays[0])))
    return layout


class SGD(Optimizer):
    """Plain gradient descent, the tutorial's rule: ``W -= lr * dW``."""

    name = "sgd"
    kernel_code = OPT_SGD

    def equivalents(self):
        return {"keras": ("keras.optimizers.SGD", {"momentum": 0.0}), "torch": ("torch.optim.SGD", {}),
                "jax": ("optax.sgd", {})}

    def _update(self, kernels, i, p, g, lr, weight_decay):
        kernels.sgd_update(p, g, lr, weight_decay, self.scratch[i])


class Momentum(Optimizer):
    """SGD with (optionally Nesterov) momentum, Keras' convention.

    ``v = momentum * v - lr * g; W += v`` (Nesterov: ``W += momentum * v - lr * g``).
    """

    name = "momentum"
    state_names = ("velocity",)
    kernel_code = OPT_MOMENTUM

    def __init__(self, momentum: float = 0.9, nesterov: bool = False) -> None:
        super().__init__()
        if not (isinstance(momentum, (int, float)) and 0.0 <= momentum < 1.0):
            raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def config(self):
        return {"name": self.name, "momentum": self.momentum, "nesterov": self.nesterov}

    def equivalents(self):
        # PyTorch's v = m v + g, p -= lr v is Keras' rule at a constant lr
        rule = {"momentum": self.momentum, "nesterov": self.nesterov}
        return {"keras": ("keras.optimizers.SGD", rule), "torch": ("torch.optim.SGD", rule),
                "jax": ("optax.sgd", rule)}

    def _update(self, kernels, i, p, g, lr, weight_decay):
        kernels.momentum_update(p, g, self.state["velocity"][i], lr, self.momentum, self.nesterov,
                                weight_decay, self.scratch[i])


class Adam(Optimizer):
    """Adam with Keras' defaults and bias-correction convention (``eps`` added to ``sqrt(v)``)."""

    name = "adam"
    state_names = ("m", "v")
    kernel_code = OPT_ADAM

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7) -> None:
        super().__init__()
        for label, value in (("beta1", beta1), ("beta2", beta2)):
            if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                raise ValueError(f"{label} must be a number in [0, 1), got {value!r}")
        if not (isinstance(eps, (int, float)) and eps > 0 and math.isfinite(eps)):
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def config(self):
        return {"name": self.name, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def equivalents(self):
        # Keras 3 folds the bias correction into the step size and adds eps to sqrt(v), as this
        # does (amsgrad off); PyTorch and optax add eps to the corrected sqrt(v): close, not equal
        return {"keras": ("keras.optimizers.Adam", {"beta_1": self.beta1, "beta_2": self.beta2,
                                                    "epsilon": self.eps}),
                "torch": ("torch.optim.Adam", {"betas": (self.beta1, self.beta2), "eps": self.eps}),
                "jax": ("optax.adam", {"b1": self.beta1, "b2": self.beta2, "eps": self.eps})}

    def _update(self, kernels, i, p, g, lr, weight_decay):
        kernels.adam_update(p, g, self.state["m"][i], self.state["v"][i], lr, self.beta1, self.beta2,
                            self.eps, self.iterations, weight_decay, self.scratch[i])


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "momentum": Momentum, "adam": Adam}

#: Every name an optimizer can be asked for by (:func:`get_optimizer`, each ``--optimizer`` of the
#: command line, the benchmark's workloads): the registry's classes with their defaults, and
#: ``"nesterov"``, momentum 0.9 with Nesterov's look-ahead.  Kept here, once, so no front end
#: offers a name another lacks.
PRESETS: dict[str, Callable[..., Optimizer]] = {"sgd": SGD, "momentum": Momentum,
                                              "nesterov": functools.partial(Momentum, nesterov=True), "adam": Adam}


def get_optimizer(spec: "str | Optimizer | dict[str, Any]") -> Optimizer:
    """An optimizer from a name of :data:`PRESETS` (``"sgd"``, ``"momentum"``, ``"nesterov"``,
    ``"adam"``), an ``Optimizer`` instance (returned as is) or a config dict as ``config()`` makes."""
    return resolve_named(spec, PRESETS, Optimizer, "optimizer")


def describe(config: dict[str, Any]) -> str:
    """An optimizer's config as a person writes it: ``"adam (beta1=0.9, beta2=0.999, eps=1e-07)"``,
    ``"sgd"`` (the name alone when it has no settings)."""
    settings = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in config.items() if k != "name")
    return f"{config.get('name', '?')} ({settings})" if settings else str(config.get("name", "?"))


def kernel_code(optimizer: Optimizer) -> int | None:
    """The whole-epoch kernel code of ``optimizer``'s rule (``OPT_SGD``, ...), or ``None`` when its
    class is not the registry's own (a subclass may change the rule: it runs stepwise)."""
    registered = OPTIMIZERS.get(optimizer.name)
    return registered.kernel_code if registered is not None and type(optimizer) is registered else None
