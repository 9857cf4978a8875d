"""Compute kernels of fastscratch, installed as ``fastscratch.kernels``.

``contract`` states what a backend module provides (required kernels, optional
capabilities, the activation and optimizer codes); ``numpy_kernels`` is the
reference; ``numba_kernels`` (when present and Numba is installed) implements
the same functions with the same signatures.  ``fastscratch.backends`` chooses
between them and checks each against the contract.
"""
