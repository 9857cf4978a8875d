"""asv: training throughput, accuracy and memory, fastscratch beside JAX, tf.keras and PyTorch.

Every class is parameterised by dataset (Fashion-MNIST when Debian's package is
installed, else the embedded MNIST sample: the parameter says which), framework
and batch size (``bench.FRAMEWORKS``: both fastscratch backends, ``jax`` with the whole
epoch jitted, ``tf.keras``, ``torch`` and ``torch-compile``, all from the same initial
weights).  asv runs each framework in its own process, so these are not interleaved
rounds: ratios between frameworks come from ``fastscratch bench``.  Workloads come from
:mod:`fastscratch.tools.bench`, the same definitions ``fastscratch bench`` and the
pytest-benchmark suite use.  A framework that is not installed is skipped (``setup``
raises ``NotImplementedError``, which asv reports as skipped, not failed).

``track_*`` values are rounded to what the measurement can tell (samples/s to three
significant figures, GFLOP/s to 0.1, accuracy to 0.01%, seconds to 1 ms, MB to 0.1), and
each carries its unit.
"""

import math
import statistics

from fastscratch.tools import bench
from fastscratch import datasets

DATASET = bench.resolve_dataset("auto")
FRAMEWORKS = list(bench.FRAMEWORKS)
# The embedded sample (4,000 training digits) is the quick-history dataset: batch 512 is 8
# steps an epoch there and full batch a single pass of under 4,096 rows, so those cases
# add processes (a tf.keras one costs TensorFlow's 4 s import) without telling more.
_SAMPLE = DATASET == "mnist-sample"
EPOCH_BATCHES = [32, 128, "full"] if _SAMPLE else [32, 128, 512, "full"]
MEMORY_BATCHES = [128] if _SAMPLE else [128, "full"]


def _significant(value, digits=3):
    """``value`` rounded to ``digits`` significant figures (NaN as it is)."""
    if value != value or value == 0:
        return value
    places = digits - 1 - math.floor(math.log10(abs(value)))
    return round(value, places) if places > 0 else int(round(value, places))


def _features(cache, dtype="float32"):
    X_train, y_train, X_test, y_test = cache
    return (datasets.to_features(X_train, dtype), y_train, datasets.to_features(X_test, dtype), y_test)


def _trainer(cache, framework, batch_size, **options):
    workload = bench.Workload(framework=framework, batch_size=None if batch_size == "full" else batch_size,
                              dataset=DATASET, **options)
    try:
        return bench.make_trainer(workload, _features(cache))
    except bench.Skipped as exc:
        raise NotImplementedError(f"{framework}: {exc}") from None


class Epoch:
    """One training epoch, 784-128-64-10, float32, SGD lr 0.1, after a warm-up epoch
    (JIT compilation and graph tracing stay out of the timings; JAX and torch.compile
    compile when their trainer is built, in ``setup``)."""

    params = ([DATASET], FRAMEWORKS, EPOCH_BATCHES)
    param_names = ["dataset", "framework", "batch_size"]
    timeout = 900
    number = 1
    repeat = (1, 5, 120.0)
    warmup_time = 0

    def setup_cache(self):
        # uint8 images: four times smaller to pickle than the float features
        return tuple(datasets.load_dataset(DATASET))

    def setup(self, cache, dataset, framework, batch_size):
        self.trainer = _trainer(cache, framework, batch_size)
        self.trainer.epoch()

    def time_epoch(self, cache, dataset, framework, batch_size):
        """Wall time of one epoch call, the framework's per-call overhead included."""
        self.trainer.epoch()

    def track_samples_per_second(self, cache, dataset, framework, batch_size):
        """Training samples per second, median of three epochs as each framework times its own loop.

        Times the FLOP formula's 454,400 per sample (784-128-64-10) this is GFLOP/s: the same
        graph on another scale, so it is not tracked a second time (each asv benchmark costs a
        process, and a tf.keras process pays TensorFlow's 4 s import)."""
        seconds = statistics.median(self.trainer.epoch() for _ in range(3))
        return _significant(len(self.trainer.X_train) / seconds)

    track_samples_per_second.unit = "samples/s"


class Memory:
    """Peak RSS (MB = 10**6 bytes) of the whole job -- start-up, imports, loading the data as
    features, building the model, one epoch, the test accuracy -- in a fresh process
    (:func:`fastscratch.tools.bench.peak_rss`).

    Not asv's ``peakmem_``: that is the high-water mark of asv's own benchmark process, which
    holds asv, this module and whatever ``setup`` loaded, and on Linux inherits its parent's
    mark across ``exec`` into ``ru_maxrss``; a fresh child read from ``VmHWM`` counts the job
    and nothing else.  Issue 8's bound is the float32 features (X_train + X_test: 219.5 MB on
    Fashion-MNIST) + 150 MB (``bench.MemoryResult.bound_mb``).
    """

    params = ([DATASET], FRAMEWORKS, MEMORY_BATCHES)
    param_names = ["dataset", "framework", "batch_size"]
    timeout = 900

    def setup(self, dataset, framework, batch_size):
        workload = bench.Workload(framework=framework, batch_size=None if batch_size == "full" else batch_size,
                                  dataset=DATASET)
        self.result = bench.peak_rss(workload, epochs=1)
        if self.result.status.startswith("skipped"):
            raise NotImplementedError(f"{framework}: {self.result.status}")
        if not self.result.ok:
            raise RuntimeError(self.result.status)

    def track_peak_rss_mb(self, dataset, framework, batch_size):
        return round(self.result.peak_rss_mb, 1)

    track_peak_rss_mb.unit = "MB"


class Accuracy:
    """Test accuracy after a fixed number of epochs, and training time to a target accuracy
    (88% on Fashion-MNIST, 92% on the MNIST sample), SGD lr 0.1, batch 128."""

    params = ([DATASET], FRAMEWORKS)
    param_names = ["dataset", "framework"]
    timeout = 1200
    EPOCHS = 3 if DATASET == "fashion-mnist" else 10

    def setup_cache(self):
        return tuple(datasets.load_dataset(DATASET))

    def setup(self, cache, dataset, framework):
        self.cache = cache
        _trainer(cache, framework, 128)  # skip early if the framework is missing

    def track_test_accuracy(self, cache, dataset, framework):
        trainer = _trainer(cache, framework, 128)
        for _ in range(self.EPOCHS):
            trainer.epoch()
        return round(100.0 * trainer.accuracy(), 2)

    track_test_accuracy.unit = "%"

    def track_seconds_to_target(self, cache, dataset, framework):
        """Training seconds until the target test accuracy; NaN when not reached in 30 epochs."""
        workload = bench.Workload(framework=framework, batch_size=128, dataset=DATASET)
        result = bench.time_to_accuracy(workload, max_epochs=30, data=_features(cache))
        return float("nan") if result.seconds_to_target is None else round(result.seconds_to_target, 3)

    track_seconds_to_target.unit = "seconds"
