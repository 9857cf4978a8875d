"""The hidden-layer activations: one registry that everything else reads.

Each entry gives the kernel code the backends take (``fastscratch.kernels.contract``),
the function and its derivative as the kernels compute them (the derivative written in
terms of the layer's output ``a = g(z)``, which is what the backward pass keeps), and
the same function in tf.keras, PyTorch and JAX, by name, so that the Keras reference,
the benchmark's frameworks, the command line and the scikit-learn adapter need no
list of their own.  The output layer is always the identity followed by softmax.

To add an activation: a code in ``contract``, its branch in each backend's
``bias_activation`` and ``activation_backward`` (the Numba fused epoch calls the same
jitted branches), and an entry here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from .kernels.contract import ELU, RELU, SIGMOID, TANH


@dataclasses.dataclass(frozen=True)
class Activation:
    """One activation.  ``keras``: the Keras 3 activation identifier a ``Dense`` layer takes;
    ``torch``: the ``torch.nn`` module (no arguments: its defaults are this function);
    ``jax``: the function applied to the pre-activation array."""

    name: str
    code: int
    formula: str
    derivative: str
    keras: str
    torch: str
    jax: str


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    Activation("relu", RELU, "max(z, 0)", "1 where a > 0, else 0 (0 at z = 0, as Keras, PyTorch and JAX)",
               keras="relu", torch="torch.nn.ReLU", jax="jax.nn.relu"),
    Activation("sigmoid", SIGMOID, "1 / (1 + exp(-z))", "a (1 - a)",
               keras="sigmoid", torch="torch.nn.Sigmoid", jax="jax.nn.sigmoid"),
    Activation("tanh", TANH, "tanh(z)", "1 - a^2",
               keras="tanh", torch="torch.nn.Tanh", jax="jax.numpy.tanh"),
    # alpha = 1, the default of all three (Keras "elu", torch.nn.ELU(), jax.nn.elu), so its
    # derivative below 0, alpha exp(z), is a + 1
    Activation("elu", ELU, "z where z > 0, else exp(z) - 1 (alpha = 1)", "1 where a > 0, else a + 1",
               keras="elu", torch="torch.nn.ELU", jax="jax.nn.elu"),
)}

#: the names, in the registry's order (command-line choices, error messages)
ACTIVATION_NAMES: tuple[str, ...] = tuple(ACTIVATIONS)


def get_activation(name: Any) -> Activation:
    """The registry entry for ``name``; ``TypeError`` for a non-string, ``ValueError`` naming the
    choices for an unknown name."""
    if not isinstance(name, str):
        raise TypeError(f"an activation is a name (a string), got {type(name).__name__}")
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATION_NAMES}")
    return ACTIVATIONS[name]


def activation_codes(names: Sequence[str]) -> list[int]:
    """The kernel codes of ``names`` (one per hidden layer), in order."""
    return [get_activation(name).code for name in names]
