"""Compute kernels of fastscratch, installed as ``fastscratch.kernels``.

``numpy_kernels`` is the reference; ``numba_kernels`` (when present and Numba
is installed) implements the same functions with the same signatures.
``fastscratch.backends`` chooses between them.
"""
