"""Looking up another framework's object by the dotted name a registry gives for it."""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any


def framework_object(root: ModuleType, dotted: str) -> Any:
    """``root``'s attribute at ``dotted`` minus its first part: ``framework_object(torch,
    "torch.nn.ReLU")`` is ``torch.nn.ReLU``.  The registries (``fastscratch.activations``,
    ``Optimizer.equivalents``) name objects this way so that they import no framework."""
    head, _, rest = dotted.partition(".")
    if head != root.__name__.partition(".")[0]:
        raise ValueError(f"{dotted!r} is not in {root.__name__}")
    return functools.reduce(getattr, rest.split("."), root) if rest else root
