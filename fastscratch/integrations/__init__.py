"""Other frameworks, side by side with fastscratch.

- :mod:`~fastscratch.integrations.keras`: the same network in tf.keras, from the same weights on
  the same batches (the ``keras`` extra; TensorFlow is imported only when a function is called);
- :mod:`~fastscratch.integrations.jax`: the same network in JAX, the whole epoch in one
  ``jax.jit`` (the ``jax`` extra), the ``jax`` benchmark framework;
- :mod:`~fastscratch.integrations.steps`: fastscratch's own training one step at a time, with
  every step's loss, for step-by-step agreement with those;
- :mod:`~fastscratch.integrations.sklearn`: the scikit-learn estimator (public as
  ``fastscratch.sklearn``).
"""
