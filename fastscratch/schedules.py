"""Learning-rate schedules: the learning rate of each epoch from the base rate.

A schedule is called as ``schedule(base_lr, epoch)`` with ``epoch`` counting
from 0 over the model's whole training (a resumed ``fit`` continues the count),
and returns the rate used for every step of that epoch.
"""

from __future__ import annotations

import math
from typing import Any

from ._validation import resolve_named


class Schedule:
    name = ""

    def __call__(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **vars(self)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _positive(label: str, value: Any, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{label} must be a positive {'integer' if integer else 'number'}, got {value!r}")


class Constant(Schedule):
    """The base rate for every epoch."""

    name = "constant"

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr


class StepDecay(Schedule):
    """``base_lr * factor ** (epoch // step_size)``: drop by ``factor`` every ``step_size`` epochs."""

    name = "step"

    def __init__(self, step_size: int = 10, factor: float = 0.5) -> None:
        _positive("step_size", step_size, integer=True)
        _positive("factor", factor)
        self.step_size, self.factor = step_size, float(factor)

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.factor ** (epoch // self.step_size)


class ExponentialDecay(Schedule):
    """``base_lr * rate ** epoch``."""

    name = "exponential"

    def __init__(self, rate: float = 0.96) -> None:
        _positive("rate", rate)
        self.rate = float(rate)

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.rate**epoch


class CosineDecay(Schedule):
    """Cosine annealing from ``base_lr`` to ``min_lr`` over ``total_epochs``, then ``min_lr``.

    ``total_epochs=None`` ends the annealing with the ``fit`` call it is used in: at the
    model's epoch count by then (epochs already trained + ``epochs``).  When training
    in several ``fit`` calls, pass ``total_epochs`` so every call follows one curve.
    """

    name = "cosine"

    def __init__(self, total_epochs: int | None = None, min_lr: float = 0.0) -> None:
        if total_epochs is not None:
            _positive("total_epochs", total_epochs, integer=True)
        if not isinstance(min_lr, (int, float)) or min_lr < 0:
            raise ValueError(f"min_lr must be a non-negative number, got {min_lr!r}")
        self.total_epochs, self.min_lr = total_epochs, float(min_lr)

    def __call__(self, base_lr: float, epoch: int) -> float:
        if self.total_epochs is None:
            raise ValueError("CosineDecay needs total_epochs (fit fills it in from `epochs`)")
        progress = min(epoch, self.total_epochs) / self.total_epochs
        return self.min_lr + 0.5 * (base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


SCHEDULES: dict[str, type[Schedule]] = {
    "constant": Constant, "step": StepDecay, "exponential": ExponentialDecay, "cosine": CosineDecay,
}


def get_schedule(spec: "str | Schedule | dict[str, Any] | None") -> Schedule:
    """A schedule from ``None`` (constant), a name, a ``Schedule`` or a ``config()`` dict."""
    if spec is None:
        return Constant()
    return resolve_named(spec, SCHEDULES, Schedule, "lr_schedule")
