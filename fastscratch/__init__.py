"""fastscratch: a feedforward neural network written from scratch in NumPy.

    >>> from fastscratch import NeuralNetwork
    >>> nn = NeuralNetwork(architecture=[784, 128, 64, 10], activation="relu")
    >>> nn.fit(X_train, y_train, X_test, y_test, lr=0.1, epochs=500)   # doctest: +SKIP
"""

from ._version import __version__
from .backends import available_backends, load_backend
from .history import History
from .network import NeuralNetwork
from .optimizers import SGD, Adam, Momentum, Optimizer
from .schedules import Constant, CosineDecay, ExponentialDecay, Schedule, StepDecay

# ``fastscratch.compare(...)`` is the function; its module is fastscratch.tools.compare
from .tools.compare import compare

__all__ = [
    "NeuralNetwork", "History", "Optimizer", "SGD", "Momentum", "Adam", "Schedule", "Constant", "StepDecay",
    "ExponentialDecay", "CosineDecay", "available_backends", "load_backend", "compare",
    "__version__",
]
