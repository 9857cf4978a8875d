"""fastscratch against Keras, side by side: the same network, start, batches and settings.

:func:`compare` trains one fastscratch network per available backend and the
Keras equivalent (:mod:`fastscratch.integrations.keras`: same initial weights,
same optimizer, same per-epoch batch order) for each batch size asked for, and
writes a report directory.  Keras is tf.keras (``keras_backend="tensorflow"``, the
CPU reference) or Keras 3 on its JAX backend (``keras_backend="jax"``).  Keras takes
its backend once per process: compare sets ``KERAS_BACKEND`` itself before keras is
first imported in its process (a ``fastscratch compare`` call imports it nowhere
else), and stops with a clear error where keras is already loaded with the other
backend.  ``device="gpu"`` trains both sides on a GPU: Keras 3 on JAX's GPU and
fastscratch's ``array_api`` backend on CUDA arrays (``fastscratch.devices``); what is
missing for that is named in one line before anything is trained.  The report:

- ``report.md``: a table per run (framework/backend, device, seconds per epoch
  median and min-max, samples/s, final train/test accuracy, final loss), the
  settings, library versions, BLAS and thread counts;
- ``results.json``: everything in the table plus every epoch's history;
- ``loss.png`` (training loss per epoch), ``accuracy_vs_time.png`` (test accuracy
  against cumulative training time) and, with several batch sizes,
  ``seconds_per_epoch.png`` (seconds per epoch by batch size).

Every file is written to a temporary name and renamed, so a report directory never
holds half-written files.  From the command line: ``fastscratch compare`` (options:
:func:`add_arguments`).

How time is measured: an epoch's seconds are the wall time of its training steps
(batch gathering included, evaluation excluded) — ``History.seconds`` for
fastscratch, the time between Keras' epoch-begin and epoch-end callbacks for
Keras.  As in ``fastscratch bench``, the first ``warmup`` epochs (default 1) are
trained by every framework alike but left out of the timings: they take Keras'
graph tracing (and the first touch of Numba's kernels), which would otherwise
inflate Keras' median and range.  ``epochs`` timed epochs follow.  Absolute times on
shared machines vary between runs; ratios measured in the same run are what to compare.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import os
import statistics
import time
from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any

import numpy as np

from .._version import __version__
from .. import _validation as check
from .._validation import plural
from .. import devices
from ..activations import ACTIVATION_NAMES, get_activation
from ..backends import BACKENDS, available_backends, load_backend
from ..io.atomic import ensure_writable_dir, write_text
from ..network import NeuralNetwork
from ..optimizers import PRESETS, Adam, Momentum, Optimizer, describe, get_optimizer
from . import argtypes as args_

__all__ = ["compare", "resolve_dataset", "plot_report_accuracy", "add_arguments", "run_from_args", "RESULT_KEYS",
           "RUN_KEYS"]

RESULT_KEYS = ("fastscratch_version", "created", "dataset", "settings", "environment", "runs", "notes", "files")
RUN_KEYS = ("name", "framework", "backend", "device", "batch_size", "seconds_per_epoch", "warmup_seconds",
            "samples_per_second", "final", "total_train_seconds", "history")

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


# ----------------------------------------------------------------------- data
def resolve_dataset(dataset: str | PathLike | Sequence[Any], dtype: str = "float32", *,
                    data_dir: str | PathLike | None = None, download: bool = False) -> tuple[str, Arrays]:
    """``(name, (X_train, y_train, X_test, y_test))`` with ``X: (n, features)`` of ``dtype`` in [0, 1].

    ``dataset``: a name or directory for :func:`fastscratch.datasets.load_dataset`
    (``"mnist-sample"``, ``"mnist"``, ``"fashion-mnist"``, ``"digits"``, a directory of
    IDX files), or a tuple of four arrays (features already scaled; taken as given).
    """
    if isinstance(dataset, (str, PathLike)):
        from ..io.datasets import load_dataset, to_features

        data = load_dataset(dataset, data_dir=data_dir, download=download)
        return data.name, (to_features(data.X_train, dtype), data.y_train, to_features(data.X_test, dtype),
                           data.y_test)
    if isinstance(dataset, Sequence) and len(dataset) == 4:
        X_train, y_train, X_test, y_test = dataset
        if np.ndim(X_train) != 2 or np.ndim(X_test) != 2:
            raise ValueError("dataset arrays must be (X_train, y_train, X_test, y_test) with X of shape "
                             f"(n, features); got X_train {np.shape(X_train)}, X_test {np.shape(X_test)}")
        return "arrays", (X_train, y_train, X_test, y_test)
    raise TypeError("dataset must be a dataset name, a directory, or a tuple (X_train, y_train, X_test, y_test); "
                    f"got {type(dataset).__name__}")


# ------------------------------------------------------------------- compare
def compare(dataset: str | PathLike | Sequence[Any] = "mnist-sample", *, out_dir: str | PathLike = "compare-report",
            hidden: Sequence[int] = (128, 64), activation: str = "relu", optimizer: str | Optimizer = "sgd",
            lr: float = 0.1, epochs: int = 5, warmup: int = 1, batch_sizes: Sequence[int | None] | int | None = (128,),
            seed: int = 0, dtype: str = "float32", backends: Sequence[str] | None = None,
            keras: bool | str = "auto", device: str = "auto", data_dir: str | PathLike | None = None,
            download: bool = False, plots: bool = True, log: Callable[[str], None] | None = print,
            keras_backend: str | None = None) -> dict[str, Any]:
    """Train fastscratch (each backend) and Keras alike; write the report; return the results.

    - ``dataset``: see :func:`resolve_dataset`.  The network is
      ``[n_features, *hidden, n_classes]`` with ``activation`` on the hidden layers.
    - ``optimizer``: ``"sgd"``, ``"momentum"``, ``"nesterov"`` (momentum 0.9), ``"adam"`` or an
      optimizer object; ``lr`` is constant.  ``batch_sizes``: one or several (``None``: full batch).
    - ``warmup`` untimed epochs, then ``epochs`` timed ones: each run trains ``warmup + epochs``
      epochs (all in its history); ``seconds_per_epoch`` covers the timed ones only, and the
      warm-up epochs' seconds are kept apart in ``warmup_seconds``.
    - ``backends``: fastscratch backends to run (default: every one available here).
    - ``keras``: ``True`` (required), ``False`` (skip) or ``"auto"`` (run it when it is
      installed, else note in the report how to get it).
    - ``keras_backend``: ``"tensorflow"`` (tf.keras) or ``"jax"`` (Keras 3 on JAX); default
      ``"tensorflow"``, and ``"jax"`` with ``device="gpu"`` (tf.keras is the CPU reference).
      ``KerasBackendError`` when keras is already loaded in this process with the other one.
    - ``device``: ``"auto"`` (fastscratch on the CPU, Keras on a GPU when its backend sees
      one), ``"cpu"`` (both on the CPU) or ``"gpu"`` (Keras 3 on JAX's GPU, fastscratch's
      ``array_api`` backend on CUDA arrays; ``ValueError`` naming what is missing for it).
    - ``plots``: write the PNGs (needs matplotlib; without it they are skipped with a note).
    - ``log``: progress lines (``None``: silent).

    Returns the dict written to ``results.json`` (keys :data:`RESULT_KEYS`; each run has
    :data:`RUN_KEYS`).  Bad settings raise ``ValueError``/``TypeError`` before anything is trained.
    """
    say = log if log is not None else (lambda line: None)
    if log is not None and not callable(log):
        raise TypeError("log must be callable with one string, or None")
    settings = _check_settings(hidden, activation, optimizer, lr, epochs, warmup, batch_sizes, seed, dtype, backends,
                               keras, device, keras_backend)
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"out_dir {out_dir!r} exists and is not a directory")
    try:  # before the training, not after it
        ensure_writable_dir(out_dir)
    except OSError as exc:
        raise OSError(f"out_dir {out_dir!r}: cannot write there ({exc.strerror or exc})") from None
    name, (X_train, y_train, X_test, y_test) = resolve_dataset(dataset, settings["dtype"], data_dir=data_dir,
                                                               download=download)
    X_train = check.check_features(X_train, np.shape(X_train)[1], np.dtype(settings["dtype"]), "X_train")
    n_classes = int(max(np.max(y_train), np.max(y_test))) + 1
    architecture = [X_train.shape[1], *settings["hidden"], n_classes]
    use_keras, keras_note = _keras_wanted(settings["keras"], settings["keras_backend"])
    if settings["device"] == "gpu":
        _require_gpu(use_keras)
    notes = [] if keras_note is None else [keras_note]
    if keras_note is not None and settings["keras"] == "auto":
        say(keras_note)
    say(f"Comparing on {name}: {len(X_train):,} training / {len(X_test):,} test samples, network "
        f"{'-'.join(map(str, architecture))}, {settings['optimizer_label']}, lr {settings['lr']:g}, "
        f"{settings['warmup']} warm-up + {plural(settings['epochs'], 'timed epoch')}, batch sizes "
        f"{', '.join(_batch_label(b) for b in settings['batch_sizes'])}")

    def network(backend: str) -> NeuralNetwork:
        return NeuralNetwork(architecture, activation=settings["activation"], dtype=settings["dtype"],
                             seed=settings["seed"], backend=backend)

    on_gpu = settings["device"] == "gpu"
    fs_data, fs_device = (X_train, y_train, X_test, y_test), f"cpu ({plural(os.cpu_count(), 'core')})"
    if on_gpu and settings["backends"]:
        fs_data, fs_device = _on_cuda(fs_data), "gpu (cuda)"
    total_epochs = settings["warmup"] + settings["epochs"]
    runs = []
    for batch in settings["batch_sizes"]:
        for backend in settings["backends"]:
            nn = network(backend)
            started = time.perf_counter()
            history = nn.fit(*fs_data, lr=settings["lr"], epochs=total_epochs,
                             batch_size=batch, optimizer=get_optimizer(settings["optimizer"].config()),
                             verbose=False)
            runs.append(_run_record(f"fastscratch ({nn.kernels.NAME})", "fastscratch", nn.kernels.NAME,
                                    fs_device, batch, len(X_train), history, settings["warmup"]))
            say(_run_line(runs[-1], time.perf_counter() - started))
        if use_keras:
            from ..integrations.keras import train_keras

            started = time.perf_counter()
            # the start is a NumPy-backend network's: the initial weights do not depend on the backend
            run = train_keras(network("numpy"), X_train, y_train, X_test, y_test, lr=settings["lr"],
                              epochs=total_epochs, batch_size=batch,
                              optimizer=get_optimizer(settings["optimizer"].config()), device=settings["device"],
                              keras_backend=settings["keras_backend"])
            if run.keras_backend == "jax":
                run_name, framework, engine = run.label, "keras-jax", "jax"
            else:
                run_name = "tf.keras" + (" (XLA)" if run.jit_compile else "")
                framework, engine = "tf.keras", "xla" if run.jit_compile else "tensorflow"
            runs.append(_run_record(run_name, framework, engine, run.device, batch, len(X_train), run.history,
                                    settings["warmup"]))
            say(_run_line(runs[-1], time.perf_counter() - started))

    results = {
        "fastscratch_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dataset": {"name": name, "n_train": int(len(X_train)), "n_test": int(len(X_test)),
                    "n_features": int(X_train.shape[1]), "n_classes": n_classes},
        "settings": {"architecture": architecture, "activation": settings["activation"],
                     "optimizer": settings["optimizer"].config(), "lr": settings["lr"], "epochs": settings["epochs"],
                     "warmup_epochs": settings["warmup"], "batch_sizes": settings["batch_sizes"],
                     "seed": settings["seed"], "dtype": settings["dtype"],
                     "same_initial_weights": True, "same_batch_order": True,
                     "device": settings["device"], "keras_backend": settings["keras_backend"]},
        "environment": _environment(use_keras, settings["keras_backend"]),
        "runs": runs,
        "notes": notes,
        "files": [],
    }
    results["files"] = _write_report(out_dir, results, plots, notes)
    say(f"Report written to {out_dir}/: {', '.join(results['files'])}")
    return results


def _batch_label(batch: int | None) -> str:
    return "full" if batch is None else str(batch)


def _check_settings(hidden, activation, optimizer, lr, epochs, warmup, batch_sizes, seed, dtype, backends, keras,
                    device, keras_backend=None) -> dict[str, Any]:
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise TypeError(f"hidden must be a list of layer sizes such as [128, 64], got {hidden!r}")
    hidden = [check.check_positive_int("hidden layer size", h) for h in hidden]
    get_activation(activation)  # ValueError naming the registry's choices
    opt = get_optimizer(optimizer)
    label = optimizer if isinstance(optimizer, str) else str(opt)
    if not isinstance(opt, (Momentum, Adam)) and opt.name != "sgd":
        raise ValueError(f"optimizer {opt!r} has no Keras equivalent here; use one of {', '.join(PRESETS)}")
    if batch_sizes is None or isinstance(batch_sizes, numbers.Integral):
        batch_sizes = [batch_sizes]
    if isinstance(batch_sizes, (str, bytes)) or not isinstance(batch_sizes, Sequence) or not batch_sizes:
        raise TypeError(f"batch_sizes must be a batch size or a non-empty list of them, got {batch_sizes!r}")
    batch_sizes = [check.check_optional_positive_int("batch size", b) for b in batch_sizes]
    if len(set(batch_sizes)) != len(batch_sizes):
        raise ValueError(f"batch_sizes lists a size twice: {batch_sizes}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer (untimed epochs first), got {warmup!r}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
    if keras_backend is None:
        keras_backend = "jax" if device == "gpu" else "tensorflow"
    from ..integrations.keras import check_keras_backend

    check_keras_backend(keras_backend)
    if device == "gpu" and keras_backend != "jax":
        raise ValueError("device='gpu' runs Keras 3 on JAX's GPU (tf.keras is the CPU reference); use "
                         "keras_backend='jax' (--keras-backend jax) or leave it unset")
    found = available_backends()
    if isinstance(backends, str):
        backends = [backends]
    if device == "gpu":  # fastscratch on the GPU is its array_api backend
        if backends not in (None, [GPU_BACKEND]):
            raise ValueError(f"with device='gpu' fastscratch runs its {GPU_BACKEND!r} backend; backends "
                             f"{backends!r} cannot be chosen there (leave backends unset)")
        backends = found = [GPU_BACKEND]
    elif backends is None:
        backends = found
    for b in backends:
        if b == GPU_BACKEND and device == "gpu":
            continue
        if b not in BACKENDS:
            raise ValueError(f"unknown backend {b!r}; expected some of {BACKENDS}")
        if b not in found:
            raise ValueError(f"backend {b!r} is not available here (available: {', '.join(found)})")
    if keras not in (True, False, "auto"):
        raise ValueError(f"keras must be True, False or 'auto', got {keras!r}")
    if not backends and keras is False:
        raise ValueError("nothing to compare: no backends and keras=False")
    return {"hidden": hidden, "activation": activation, "optimizer": opt, "optimizer_label": label,
            "lr": check.check_positive_number("lr", lr), "epochs": check.check_positive_int("epochs", epochs),
            "warmup": int(warmup), "batch_sizes": batch_sizes, "seed": int(seed), "dtype": dtype,
            "backends": list(dict.fromkeys(backends)),
            "keras": keras, "device": device, "keras_backend": keras_backend}


#: the fastscratch backend that trains on the GPU (fastscratch.devices places its arrays)
GPU_BACKEND = "array_api"


def _keras_wanted(keras: bool | str, keras_backend: str = "tensorflow") -> tuple[bool, str | None]:
    """Whether to run Keras, and a note for the report when it is skipped.  Keras loaded with the
    other backend is an error (``KerasBackendError``), not a note: that run was asked for."""
    from ..integrations.keras import KERAS_BACKENDS, import_keras

    label = KERAS_BACKENDS[keras_backend]
    if keras is False:
        return False, f"{label} was not run (keras=False / --no-keras)."
    try:
        import_keras(keras_backend)
    except ImportError as exc:
        if keras is True:
            raise
        if keras_backend == "tensorflow":
            return False, (f"{label} was not run: TensorFlow is not installed "
                           "(`pip install 'fastscratch[keras]'` adds it).")
        return False, f"{label} was not run: {exc}"
    return True, None


def _require_gpu(with_keras: bool) -> None:
    """``ValueError`` naming, in one line, everything ``device='gpu'`` lacks here: a GPU JAX sees
    (for Keras 3 on JAX), and fastscratch's GPU backend (``fastscratch.devices``) with a CUDA device."""
    missing = []
    if with_keras:
        from ..integrations.keras import resolve_device

        try:
            resolve_device("gpu", keras_backend="jax")
        except (ValueError, ImportError) as exc:
            missing.append(f"Keras 3 (JAX backend) needs a GPU JAX sees ({exc})")
    try:
        load_backend(GPU_BACKEND)
        library, reason = devices.gpu_library()
        if library is None:
            missing.append(f"fastscratch's {GPU_BACKEND!r} backend needs CuPy or PyTorch with a CUDA device ({reason})")
    except ImportError as exc:
        missing.append(str(exc))
    if missing:
        raise ValueError("device='gpu' cannot run here: " + "; ".join(" ".join(m.split()) for m in missing))


def _on_cuda(arrays: tuple[np.ndarray, ...]) -> tuple[Any, ...]:
    """The arrays placed on the CUDA device for fastscratch's GPU backend (``fastscratch.devices``)."""
    return tuple(devices.to_device(np.asarray(a), "cuda") for a in arrays)


def _run_record(name: str, framework: str, backend: str, device: str, batch: int | None, n_train: int,
                history, warmup: int) -> dict[str, Any]:
    """One run's entry of ``results["runs"]``; its timings leave out the first ``warmup`` epochs."""
    warm, seconds = list(history.seconds[:warmup]), list(history.seconds[warmup:])
    median = statistics.median(seconds)
    final = {"loss": history.cost[-1], "train_accuracy": history.train_accuracy[-1],
             "test_loss": history.test_cost[-1], "test_accuracy": history.test_accuracy[-1]}
    return {"name": name, "framework": framework, "backend": backend, "device": device,
            "batch_size": batch if batch is not None else n_train,
            "seconds_per_epoch": {"median": median, "min": min(seconds), "max": max(seconds)},
            "warmup_seconds": warm, "samples_per_second": n_train / median if median > 0 else None,
            "final": {k: (None if isinstance(v, float) and math.isnan(v) else float(v)) for k, v in final.items()},
            "total_train_seconds": float(sum(warm) + sum(seconds)), "history": history.to_dict()}


def _run_line(run: dict[str, Any], wall: float) -> str:
    f, s = run["final"], run["seconds_per_epoch"]
    test = f"{f['test_accuracy']:.4f}" if f["test_accuracy"] is not None else "-"
    return (f"  {run['name']:<22} batch {run['batch_size']:>6}: {s['median']:.3f} s/epoch (median), "
            f"loss {f['loss']:.4f}, test accuracy {test} ({wall:.1f} s in all)")


def _environment(with_keras: bool, keras_backend: str = "tensorflow") -> dict[str, Any]:
    from .system import blas_info, versions

    env: dict[str, Any] = {"versions": versions(), "cpu_count": os.cpu_count()}
    try:
        env["blas"] = blas_info()
    except ImportError:
        env["blas"] = []
    if with_keras and keras_backend == "jax":
        from ..integrations.keras import keras_versions

        env["versions"].update(keras_versions("jax"))
    elif with_keras:
        from ..integrations.keras import import_tensorflow

        tf = import_tensorflow()
        import keras

        env["versions"].update({"tensorflow": tf.__version__, "keras": keras.__version__})
        # 0 means "TensorFlow decides" (one thread per core)
        env["tensorflow_threads"] = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                                     "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                                     "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86)")}
    return env


# -------------------------------------------------------------------- report
def _write_report(out_dir: str, results: dict[str, Any], plots: bool, notes: list[str]) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    files = []
    if plots:
        try:
            files += _write_plots(out_dir, results)
        except ImportError as exc:
            notes.append(f"Plots skipped: {exc}")
    files = ["report.md", "results.json"] + files
    results["files"] = files
    write_text(os.path.join(out_dir, "results.json"), json.dumps(results, indent=2, allow_nan=False) + "\n")
    write_text(os.path.join(out_dir, "report.md"), _markdown(results))
    return files


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _markdown(results: dict[str, Any]) -> str:
    s, d, env = results["settings"], results["dataset"], results["environment"]
    lines = [
        f"# fastscratch vs {_keras_label(s)}",
        "",
        f"Dataset **{d['name']}**: {d['n_train']:,} training / {d['n_test']:,} test samples, {d['n_features']} "
        f"features, {d['n_classes']} classes.  Network {'-'.join(map(str, s['architecture']))} ({s['activation']}, "
        f"softmax output), {s['dtype']}, optimizer {describe(s['optimizer'])}"
        f", lr {s['lr']:g}, {s['warmup_epochs']} warm-up + {plural(s['epochs'], 'timed epoch')}, seed {s['seed']}.",
        "Every run starts from the same initial weights and sees the same batches in the same order.",
        "",
        "| framework (backend) | device | batch | s/epoch median (min-max) | samples/s | train acc | test acc "
        "| final loss |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for run in results["runs"]:
        t, f = run["seconds_per_epoch"], run["final"]
        lines.append(f"| {run['name']} | {run['device']} | {run['batch_size']} | {t['median']:.3f} "
                     f"({t['min']:.3f}-{t['max']:.3f}) | {_fmt(run['samples_per_second'], ',.0f')} | "
                     f"{_fmt(f['train_accuracy'], '.4f')} | {_fmt(f['test_accuracy'], '.4f')} | "
                     f"{_fmt(f['loss'], '.4f')} |")
    ratios = _ratios(results["runs"])
    if ratios:
        lines += ["", f"Against {_keras_label(s)} at the same batch size (median s/epoch, measured in this run):", ""]
        lines += [f"- {r}" for r in ratios]
    lines += [
        "",
        "Seconds per epoch are the wall time of the training steps (batch gathering included, evaluation "
        f"excluded) over the {plural(s['epochs'], 'timed epoch')}; the "
        f"{plural(s['warmup_epochs'], 'warm-up epoch')} before them, "
        "which take Keras' graph tracing, are trained alike but not timed (their seconds are in results.json). "
        "Train accuracy and loss are measured during the epoch, each batch before its update (as Keras does).",
        "",
        "## Environment",
        "",
    ]
    for name, version in env["versions"].items():
        lines.append(f"- {name} {version}")
    lines.append(f"- CPU cores: {env['cpu_count']}")
    if env.get("blas"):
        for b in env["blas"]:
            lines.append(f"- BLAS: {b['library']} {b['version']}"
                         + (f" ({b['architecture']})" if b.get("architecture") else "")
                         + f", {plural(b['threads'], 'thread')}")
    else:
        lines.append("- BLAS: unknown (threadpoolctl found none)")
    if "tensorflow_threads" in env:
        t = env["tensorflow_threads"]
        lines.append(f"- TensorFlow threads: intra-op {t['intra_op'] or 'auto'}, inter-op {t['inter_op'] or 'auto'}; "
                     f"oneDNN {t['onednn']}")
    if results["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in results["notes"]]
    pngs = [f for f in results["files"] if f.endswith(".png")]
    if pngs:
        lines += ["", "## Plots", ""] + [f"![{f[:-4].replace('_', ' ')}]({f})" for f in pngs]
    return "\n".join(lines) + "\n"


def _keras_label(settings: dict[str, Any]) -> str:
    from ..integrations.keras import KERAS_BACKENDS

    return KERAS_BACKENDS.get(settings.get("keras_backend", "tensorflow"), "Keras")


def _ratios(runs: list[dict[str, Any]]) -> list[str]:
    """For each fastscratch run: its speed against Keras (tf.keras or Keras 3 on JAX) at the same
    batch size, and how far its per-epoch training loss is from Keras' (they start alike and see
    the same batches)."""
    out = []
    for run in runs:
        if run["framework"] != "fastscratch":
            continue
        for ref in runs:
            if ref["framework"] in ("tf.keras", "keras-jax") and ref["batch_size"] == run["batch_size"]:
                ratio = ref["seconds_per_epoch"]["median"] / run["seconds_per_epoch"]["median"]
                keras = "tf.keras" if ref["framework"] == "tf.keras" else ref["name"]
                speed = (f"{ratio:.2f}x as fast as {keras}" if ratio >= 1
                         else f"{keras} is {1 / ratio:.2f}x as fast")
                ours, theirs = np.array(run["history"]["cost"]), np.array(ref["history"]["cost"])
                gap = float(np.max(np.abs(ours - theirs) / np.abs(theirs)))
                out.append(f"{run['name']} at batch {run['batch_size']}: {speed}; per-epoch training loss "
                           f"within {gap:.1e} (relative) of {keras}" + ("'" if keras == "tf.keras" else "'s"))
    return out


def _axes(title: str, xlabel: str, ylabel: str):
    from ..plots import blank_figure

    fig = blank_figure(7, 4.5)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _run_label(run: dict[str, Any], several: bool) -> str:
    return run["name"] + (f", batch {run['batch_size']}" if several else "")


def plot_report_accuracy(results: dict[str, Any], path: str | PathLike | None = None):
    """Test accuracy (train accuracy where no run has a test set) against cumulative training
    time, one line per run of ``results`` (as :func:`compare` returns them or ``results.json``
    holds them), the warm-up epochs left out; 700x450 PNG at ``path`` if given.  The y-axis
    spans at least :data:`fastscratch.plots.ACCURACY_SPAN`, so equal accuracies look equal."""
    from ..plots import finish_figure, widen_to_span

    runs, warmup = results["runs"], results["settings"]["warmup_epochs"]
    several = len(results["settings"]["batch_sizes"]) > 1
    has_test = any(run["final"]["test_accuracy"] is not None for run in runs)
    key, what = ("test_accuracy", "test accuracy") if has_test else ("train_accuracy", "train accuracy")
    after = f" after {plural(warmup, 'warm-up epoch')}" if warmup else ""
    fig, ax = _axes(f"{what.capitalize()} against training time", f"cumulative training time{after} (s)", what)
    for run in runs:  # the timed epochs only, as in the table: the warm-up's tracing would shift every curve
        elapsed = np.cumsum(run["history"]["seconds"][warmup:])
        values = [math.nan if v is None else v for v in run["history"][key][warmup:]]
        ax.plot(elapsed, values, marker="o", markersize=3, label=_run_label(run, several))
    widen_to_span(ax)
    ax.legend(fontsize="small", loc="lower right")
    return finish_figure(fig, path)


def _write_plots(out_dir: str, results: dict[str, Any]) -> list[str]:
    from ..plots import finish_figure

    runs = results["runs"]
    several = len(results["settings"]["batch_sizes"]) > 1
    files = []
    fig, ax = _axes("Training loss per epoch", "epoch", "cross-entropy loss (mean over the epoch's batches)")
    for run in runs:
        ax.plot(run["history"]["epoch"], run["history"]["cost"], marker="o", markersize=3,
                label=_run_label(run, several))
    ax.legend(fontsize="small")
    finish_figure(fig, os.path.join(out_dir, "loss.png"))
    files.append("loss.png")

    plot_report_accuracy(results, os.path.join(out_dir, "accuracy_vs_time.png"))
    files.append("accuracy_vs_time.png")

    if several:
        fig, ax = _axes("Seconds per epoch by batch size (median; bars: min-max)", "batch size", "seconds per epoch")
        for name in dict.fromkeys(run["name"] for run in runs):
            mine = sorted((r for r in runs if r["name"] == name), key=lambda r: r["batch_size"])
            x = [r["batch_size"] for r in mine]
            med = np.array([r["seconds_per_epoch"]["median"] for r in mine])
            low = med - np.array([r["seconds_per_epoch"]["min"] for r in mine])
            high = np.array([r["seconds_per_epoch"]["max"] for r in mine]) - med
            ax.errorbar(x, med, yerr=[low, high], marker="o", capsize=3, label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.legend(fontsize="small")
        finish_figure(fig, os.path.join(out_dir, "seconds_per_epoch.png"))
        files.append("seconds_per_epoch.png")
    return files


# ----------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``compare`` options to ``parser`` (a subcommand's parser or a standalone one)."""
    args_.add_data_arguments(parser)
    parser.add_argument("--out", default="compare-report", metavar="DIR",
                        help="report directory (default: %(default)s)")
    parser.add_argument("--hidden", type=args_.hidden_sizes, default=[128, 64], metavar="SIZES",
                        help="hidden layer sizes, comma-separated (default: 128,64)")
    parser.add_argument("--activation", choices=ACTIVATION_NAMES, default="relu")
    parser.add_argument("--optimizer", choices=tuple(PRESETS), default="sgd",
                        help="momentum and nesterov use momentum 0.9; adam the Keras defaults (default: sgd)")
    parser.add_argument("--lr", type=args_.positive_float, default=0.1, help="learning rate (default: %(default)s)")
    parser.add_argument("--epochs", type=args_.positive_int, default=5,
                        help="timed epochs, after the warm-up (default: %(default)s)")
    parser.add_argument("--warmup", type=args_.non_negative_int, default=1,
                        help="epochs trained first by every framework but not timed: they take Keras' graph "
                             "tracing, as in `fastscratch bench` (default: %(default)s)")
    batches = parser.add_mutually_exclusive_group()
    batches.add_argument("--batch-sizes", type=args_.batch_list, default=[128], metavar="LIST",
                         help="comma-separated, as `fastscratch bench` takes them; 'full' for full batch; several "
                              "add a seconds-per-epoch plot (default: 128)")
    batches.add_argument("--batch-size", dest="batch_sizes", nargs="+", metavar="N|full", action=args_.CommaList,
                         convert=args_.batch_list, new_option="--batch-sizes",
                         help="deprecated spelling of --batch-sizes (space-separated)")
    parser.add_argument("--seed", type=args_.seed, default=0, help="initialisation and shuffling seed (default: 0)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    # nargs="+": the older space-separated spelling still works, with a note (CommaList)
    parser.add_argument("--backends", nargs="+", default=None, metavar="LIST", action=args_.CommaList,
                        convert=args_.names(BACKENDS, "backend"), new_option="--backends",
                        help=f"fastscratch backends to run, comma-separated, of {','.join(BACKENDS)} "
                             "(default: all available)")
    keras = parser.add_mutually_exclusive_group()
    keras.add_argument("--no-keras", dest="keras", action="store_const", const=False, default="auto",
                       help="leave Keras out")
    keras.add_argument("--require-keras", dest="keras", action="store_const", const=True,
                       help="fail if TensorFlow is not installed (default: note it in the report and go on)")
    parser.add_argument("--keras-backend", choices=("tensorflow", "jax"), default=None,
                        help="the Keras reference: tensorflow (tf.keras) or jax (Keras 3 on its JAX backend; keras "
                             "must not be loaded with TensorFlow in the same process, and a `fastscratch compare` "
                             "call loads it nowhere else). Default: tensorflow; jax with --device gpu")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="cpu: both sides on the CPU; gpu: Keras 3 on JAX's GPU and fastscratch's array_api "
                             "backend on CUDA (fails naming what is missing); auto (default): fastscratch on the CPU, "
                             "Keras on a GPU when its backend sees one")
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="write no PNGs")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only where the report went")


def run_from_args(args: argparse.Namespace) -> int:
    """Run :func:`compare` from parsed :func:`add_arguments` options; returns the exit code (0).

    Errors propagate as ``ValueError``/``TypeError``/``ImportError``/``OSError`` for the
    caller (the ``fastscratch`` CLI) to report.
    """
    log = None if args.quiet else (lambda line: print(line, flush=True))
    results = compare(args.dataset, out_dir=args.out, hidden=args.hidden, activation=args.activation,
                      optimizer=args.optimizer, lr=args.lr, epochs=args.epochs, warmup=args.warmup,
                      batch_sizes=args.batch_sizes,
                      seed=args.seed, dtype=args.dtype, backends=args.backends, keras=args.keras,
                      device=args.device, data_dir=args.data_dir, download=args.download, plots=args.plots, log=log,
                      keras_backend=args.keras_backend)
    if args.quiet:
        print(os.path.join(args.out, "report.md"))
    return 0 if results["runs"] else 1
