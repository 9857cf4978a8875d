"""Reference implementations that fastscratch is checked against.

- :mod:`fastscratch.reference.keras`: the same network in tf.keras, started from
  the same weights and trained on the same batches (needs the ``keras`` extra;
  TensorFlow is imported only when a function there is called).
- :mod:`fastscratch.reference.jax`: the same network in JAX with the whole epoch in
  one ``jax.jit`` call, from the same weights by the same update rules (needs the
  ``jax`` extra; JAX is imported only when a :class:`~fastscratch.reference.jax.JaxNetwork`
  is made); the ``jax`` framework of ``fastscratch bench``.
- :mod:`fastscratch.reference.steps`: fastscratch's own training, one step at a
  time, with every step's loss (for step-by-step comparisons).
"""
