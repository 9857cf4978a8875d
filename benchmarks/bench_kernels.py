"""asv: the compute kernels of one training step, NumPy backend beside Numba.

784-128-64-10, float32, random data; each sample times one call on a batch.
A backend that cannot be loaded (Numba not installed) is skipped.  ``setup`` calls every
timed operation once first: Numba compiles (or loads from its cache) a kernel on its first
call, which asv's quick run would otherwise time (2.3 ms instead of ~50 us for the update).
asv re-runs ``setup`` before every sample, so the network and workspace are built once per
process (``_STATE``) and reused.
"""

import numpy as np

from fastscratch import SGD, NeuralNetwork
from fastscratch.training.epoch import Workspace


_STATE: dict = {}  # (backend, batch size) -> the instance's attributes, per benchmark process


class StepKernels:
    params = (["numpy", "numba"], [32, 128, 512])
    param_names = ["backend", "batch_size"]
    timeout = 120
    number = 1
    repeat = (10, 40, 1.0)  # per process: 10 to 40 single calls, or what fits in 1 s
    rounds = 2
    warmup_time = 0  # setup warms every kernel

    def setup(self, backend, batch_size):
        if (backend, batch_size) in _STATE:
            vars(self).update(_STATE[backend, batch_size])
            return
        try:
            self.net = NeuralNetwork([784, 128, 64, 10], seed=0, backend=backend)
        except ImportError as exc:
            raise NotImplementedError(str(exc)) from None
        rng = np.random.default_rng(0)
        self.x = rng.random((batch_size, 784), dtype=np.float32)
        self.y = rng.integers(0, 10, batch_size).astype(np.intp)
        self.ws = Workspace(self.net.kernels, self.net.architecture, batch_size, self.net.dtype)
        self.codes = self.net.activation_codes
        self.params_ = [p for pair in zip(self.net.weights, self.net.biases) for p in pair]
        self.optimizer = SGD()
        self.optimizer.bind(self.params_)
        self.logits = rng.standard_normal((batch_size, 10)).astype(np.float32)
        self.grad = np.empty_like(self.logits)
        for operation in (self.time_forward, self.time_softmax_cross_entropy_grad, self.time_forward_backward,
                          self.time_sgd_update):  # warm every kernel before anything is timed
            operation(backend, batch_size)
        _STATE[backend, batch_size] = dict(vars(self))

    def time_forward(self, backend, batch_size):
        self.ws.forward(self.x, self.net.weights, self.net.biases, self.codes)

    def time_softmax_cross_entropy_grad(self, backend, batch_size):
        self.net.kernels.softmax_cross_entropy_grad(self.logits, self.y, self.grad, 1.0 / len(self.y),
                                                    self.ws.row_scratch, self.ws.index_scratch)

    def time_forward_backward(self, backend, batch_size):
        self.ws.forward_backward(self.x, self.y, self.net.weights, self.net.biases, self.codes, self.net.rng)

    def time_sgd_update(self, backend, batch_size):
        # the gradients are consumed by the update; refilling them is part of a real step too
        for g, p in zip(self.ws.grads, self.params_):
            g.fill(1e-6)
        self.optimizer.step(self.net.kernels, self.params_, self.ws.grads, 1e-3, [0.0] * len(self.params_))
