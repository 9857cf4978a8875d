"""asv: training throughput, accuracy and memory, fastscratch beside tf.keras and PyTorch.

Every class is parameterised by dataset (Fashion-MNIST when Debian's package is
installed, else the embedded MNIST sample: the parameter says which), framework
and batch size.  Workloads come from :mod:`fastscratch.bench`, the same
definitions ``fastscratch bench`` and the pytest-benchmark suite use.  A
framework that is not installed is skipped (``setup`` raises
``NotImplementedError``, which asv reports as skipped, not failed).
"""

import statistics

from fastscratch import bench, datasets

DATASET = bench.resolve_dataset("auto")
FRAMEWORKS = list(bench.FRAMEWORKS)


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
    (JIT compilation and graph tracing stay out of the timings)."""

    params = ([DATASET], FRAMEWORKS, [32, 128, 512, "full"])
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
        """Training samples per second, median of three epochs as each framework times its own loop."""
        seconds = statistics.median(self.trainer.epoch() for _ in range(3))
        return len(self.trainer.X_train) / seconds

    track_samples_per_second.unit = "samples/s"

    def track_gflops(self, cache, dataset, framework, batch_size):
        """Achieved GFLOP/s from the FLOP formula (454,400 per sample for 784-128-64-10)."""
        seconds = statistics.median(self.trainer.epoch() for _ in range(3))
        return bench.flops_per_sample(self.trainer.sizes) * len(self.trainer.X_train) / seconds / 1e9

    track_gflops.unit = "GFLOP/s"


class Memory:
    """Peak resident memory of a process that holds the data and trains one epoch."""

    params = ([DATASET], FRAMEWORKS, [128])
    param_names = ["dataset", "framework", "batch_size"]
    timeout = 600

    def setup_cache(self):
        return tuple(datasets.load_dataset(DATASET))

    def setup(self, cache, dataset, framework, batch_size):
        self.trainer = _trainer(cache, framework, batch_size)

    def peakmem_epoch(self, cache, dataset, framework, batch_size):
        self.trainer.epoch()


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
        return 100.0 * trainer.accuracy()

    track_test_accuracy.unit = "%"

    def track_seconds_to_target(self, cache, dataset, framework):
        """Training seconds until the target test accuracy; NaN when not reached in 30 epochs."""
        workload = bench.Workload(framework=framework, batch_size=128, dataset=DATASET)
        result = bench.time_to_accuracy(workload, max_epochs=30, data=_features(cache))
        return float("nan") if result.seconds_to_target is None else result.seconds_to_target

    track_seconds_to_target.unit = "seconds"
