"""The per-epoch record that ``fit`` returns and a saved model keeps."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

_COLUMNS = ("epoch", "cost", "train_accuracy", "test_cost", "test_accuracy", "lr", "seconds",
            "samples_per_second")


@dataclass
class History:
    """One entry per epoch, in lists of equal length.

    - ``epoch``: 1-based, counted over the model's whole training (resumes continue it)
    - ``cost``: mean training loss over the epoch's batches (each measured before its
      batch's update), plus, when ``weight_decay`` is set, the L2 penalty of the weights
      at the end of the epoch
    - ``train_accuracy``: fraction of training samples classified right during the epoch
    - ``test_cost`` / ``test_accuracy``: on ``(X_test, y_test)`` after the epoch (NaN without test data)
    - ``lr``: learning rate used; ``seconds``: wall time of the epoch's training steps;
      ``samples_per_second``: training samples / ``seconds``
    """

    epoch: list[int] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_cost: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    samples_per_second: list[float] = field(default_factory=list)

    def append(self, **values: float) -> None:
        if set(values) != set(_COLUMNS):
            raise ValueError(f"History.append needs exactly {_COLUMNS}")
        for key, value in values.items():
            getattr(self, key).append(value)

    def __len__(self) -> int:
        return len(self.epoch)

    def to_dict(self) -> dict[str, list[Any]]:
        """JSON-able dict; NaN becomes ``None``."""
        return {f.name: [None if isinstance(v, float) and math.isnan(v) else v for v in getattr(self, f.name)]
                for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, list[Any]]) -> "History":
        if not isinstance(data, dict) or set(data) != set(_COLUMNS):
            raise ValueError(f"history must have exactly the keys {_COLUMNS}")
        lengths = {len(v) if isinstance(v, list) else -1 for v in data.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise ValueError("history columns must be lists of equal length")
        out = cls()
        for key in _COLUMNS:
            conv = int if key == "epoch" else float
            try:
                getattr(out, key).extend(math.nan if v is None else conv(v) for v in data[key])
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValueError(f"history column {key!r} holds a non-number") from exc
        if out.epoch != list(range(1, len(out) + 1)):
            raise ValueError("history epochs must count 1, 2, 3, ...")
        return out

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` epochs (early stopping's restore-best)."""
        for f in fields(self):
            del getattr(self, f.name)[n:]
