"""File formats: what fastscratch reads and writes.

- :mod:`~fastscratch.io.model_files`: model files (``.npz`` + JSON, checksummed, never pickled);
- :mod:`~fastscratch.io.checkpoints`: the training state a checkpoint adds to a model file;
- :mod:`~fastscratch.io.datasets`: IDX files and the data sets (public as ``fastscratch.datasets``);
- :mod:`~fastscratch.io.inputs`: what ``fastscratch predict`` reads (PNG, IDX, ``.npy``);
- :mod:`~fastscratch.io.atomic`: writes that leave the old file or the new one, never half of one.
"""
