"""Tools around the library: the ``fastscratch`` command and what measures it.

- :mod:`~fastscratch.tools.cli`: the ``fastscratch`` command (train, predict, bench, compare, info);
- :mod:`~fastscratch.tools.argtypes`: its argument types, with errors that name the argument;
- :mod:`~fastscratch.tools.bench`: the one workload definition behind ``fastscratch bench``, the asv
  suite and the pytest-benchmark suite, and the frameworks registry;
- :mod:`~fastscratch.tools.compare`: fastscratch against tf.keras on the same start and batches
  (``fastscratch.compare`` is its function);
- :mod:`~fastscratch.tools.dask`: benchmark groups on a Dask cluster;
- :mod:`~fastscratch.tools.system`: versions, BLAS, CPU -- what every result records.
"""
