"""Training: what ``NeuralNetwork.fit`` runs.

- :mod:`~fastscratch.training.step`: one gradient-descent step -- forward, backward, update --
  with the formula-to-code table (the math; ``NeuralNetwork.forward/backward/update`` call it);
- :mod:`~fastscratch.training.epoch`: a step's buffers (``Workspace``) and an epoch's batches,
  kernel by kernel or in the backend's fused whole-epoch function;
- :mod:`~fastscratch.training.threads`: how many threads an epoch uses;
- :mod:`~fastscratch.training.loop`: ``FitSettings`` (``fit``'s arguments, checked) and the
  ``TrainingLoop`` over epochs;
- :mod:`~fastscratch.training.callbacks`: the loop's concerns -- early stopping,
  checkpoint/resume, the divergence guard, the epoch log -- and the callback protocol.
"""
