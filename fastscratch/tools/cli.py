"""The ``fastscratch`` command line: train, evaluate, predict, info, compare.

Exit codes: 0 success; 1 an error the message explains (missing data, a corrupt
file, a diverged run); 2 bad arguments; 130 interrupted by Ctrl-C (after saving
what ``--save`` and ``--plots`` asked for).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence

import numpy as np

from .._version import __version__
from .. import _validation as check
from .._validation import plural
from ..activations import ACTIVATION_NAMES
from ..backends import BACKENDS, available_backends, load_backend
from ..io import datasets
from ..io.atomic import ensure_writable_dir, write_text
from ..network import NeuralNetwork
from ..optimizers import PRESETS as OPTIMIZER_PRESETS
from ..optimizers import describe as describe_optimizer
from . import argtypes as args_
from .bench import DEVICE_FRAMEWORKS, FRAMEWORK_ALIASES, FRAMEWORKS, SWEEP_WIDTHS

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class CommandError(Exception):
    """An error to report as ``fastscratch: error: ...`` with exit code 1."""


def _framework_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    names = [FRAMEWORK_ALIASES.get(n, n) for n in names]
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown or not names:
        hint = check.did_you_mean(unknown[0], [*FRAMEWORKS, *FRAMEWORK_ALIASES]) if unknown else ""
        raise argparse.ArgumentTypeError(f"unknown framework(s) {', '.join(unknown) or text!r}{hint}; "
                                         f"expected from {', '.join(FRAMEWORKS)} "
                                         f"(short: {', '.join(FRAMEWORK_ALIASES)})")
    return names


# ------------------------------------------------------------------------ parser
_CHOICE_ERROR = re.compile(r"invalid choice: '?(?P<word>[^'\s]*)'? \(choose from (?P<choices>.*)\)")
_OPTION = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" in its errors: a mistyped choice (``--optimizer adm``) or
    command (``fastscratch trian``) is answered with the closest valid one; the top-level
    parser keeps its subcommands' parsers in ``subcommands``, for :meth:`unrecognized`."""

    subcommands: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> None:  # type: ignore[override]
        found = _CHOICE_ERROR.search(message)
        if found and "did you mean" not in message:
            choices = [c.strip().strip("'\"") for c in found.group("choices").split(",")]
            message += check.did_you_mean(found.group("word"), choices)
        super().error(message)

    def unrecognized(self, command: str | None, extras: list[str]) -> None:
        """Exit 2 for arguments no parser took, naming the closest option of ``command``."""
        parser = getattr(self, "subcommands", {}).get(command, self)
        options = sorted(set(_OPTION.findall(parser.format_help())))
        hints = [check.did_you_mean(extra.split("=", 1)[0], options) for extra in extras if extra.startswith("-")]
        parser.error(f"unrecognized arguments: {' '.join(extras)}" + "".join(hint for hint in hints if hint))


def build_parser() -> Parser:
    parser = Parser(
        prog="fastscratch", description="Train and use a from-scratch feedforward neural network.",
        epilog="Run `fastscratch COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"fastscratch {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parser.subcommands = commands.choices

    train = commands.add_parser(
        "train", help="train a network (default: the tutorial's 784-128-64-10 on the embedded MNIST sample)",
        description="Train a network; the defaults are the tutorial's: ReLU hidden layers 128 and 64, full-batch "
                    "gradient descent, lr 0.1, 500 epochs, on the embedded 5,000-digit MNIST sample.")
    args_.add_data_arguments(train)
    train.add_argument("--hidden", type=args_.hidden_sizes, default=[128, 64], metavar="SIZES",
                       help="hidden layer sizes, comma-separated (default: 128,64)")
    train.add_argument("--activation", choices=ACTIVATION_NAMES, default="relu",
                       help="activation of the hidden layers; the output is softmax (default: %(default)s)")
    train.add_argument("--epochs", type=args_.positive_int, default=500, metavar="N",
                       help="passes over the training data (default: %(default)s)")
    train.add_argument("--batch-size", type=args_.batch_size, default=None, metavar="N|full",
                       help="mini-batch size, or 'full' for full-batch gradient descent (default)")
    train.add_argument("--lr", type=args_.positive_float, default=0.1, help="learning rate (default: %(default)s)")
    train.add_argument("--optimizer", choices=tuple(OPTIMIZER_PRESETS), default="sgd",
                       help="plain gradient descent, momentum 0.9 (nesterov: with Nesterov's look-ahead), or Adam "
                            "with Keras' defaults (default: %(default)s)")
    train.add_argument("--lr-schedule", choices=("step", "exponential", "cosine"), default=None,
                       help="how the learning rate falls over the epochs (default: constant)")
    train.add_argument("--weight-decay", type=args_.non_negative_float, default=0.0, metavar="L2",
                       help="L2 penalty L2/2 * sum(W**2) on the weights, not the biases (default: 0, none)")
    train.add_argument("--dropout", type=args_.fraction, default=0.0, metavar="FRACTION",
                       help="fraction of hidden units dropped while training (default: 0, none)")
    train.add_argument("--early-stopping", type=args_.positive_int, default=None, metavar="PATIENCE",
                       help="stop when the test loss has not improved for PATIENCE epochs, and keep the best "
                            "epoch's weights (default: off)")
    train.add_argument("--backend", choices=("auto",) + BACKENDS, default="auto",
                       help="kernels that do the arithmetic; auto: numba when installed, else numpy "
                            "(default: %(default)s)")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="floating-point type of weights and data (default: %(default)s)")
    train.add_argument("--seed", type=args_.seed, default=0, help="seed for initialisation and shuffling (default: 0)")
    train.add_argument("--log-every", type=args_.positive_int, default=None, metavar="N",
                       help="print an epoch line every N epochs (default: about 5 lines per run)")
    train.add_argument("--save", metavar="MODEL.npz", type=args_.path,
                       help="write the trained model here (default: not saved)")
    train.add_argument("--plots", metavar="DIR", type=args_.path,
                       help="write cost.png, accuracy.png, class_distribution.png, confusion_matrix.png and "
                            "samples.png here (default: no plots)")
    train.add_argument("--checkpoint", metavar="RUN.npz", type=args_.path,
                       help="save the training state here (atomically) every --checkpoint-every epochs, at the "
                            "end and on Ctrl-C; a killed run continues from it with --resume (default: none)")
    train.add_argument("--checkpoint-every", type=args_.positive_int, default=1, metavar="N",
                       help="epochs between checkpoints (default: %(default)s)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run saved in --checkpoint (the same command line; start afresh if the "
                            "file does not exist yet); --epochs may be raised to train further (default: an "
                            "existing checkpoint is refused)")
    _add_progress_arguments(train)

    evaluate = commands.add_parser("evaluate", help="score a saved model on a dataset's test part",
                                   description="Score a saved model on a dataset's test part.")
    evaluate.add_argument("model", metavar="MODEL.npz")
    args_.add_data_arguments(evaluate, default=None, default_text="the dataset the model was trained on, when recorded, "
                                                            "else mnist-sample")
    evaluate.add_argument("--plots", metavar="DIR", type=args_.path,
                          help="write class_distribution.png, confusion_matrix.png and samples.png here (and the "
                               "model's cost.png and accuracy.png when it has a training history)")
    evaluate.add_argument("--json", action="store_true", help="print the results as JSON")

    predict = commands.add_parser(
        "predict", help="predict the classes of images or feature rows",
        description="Predict classes. Each INPUT is a PNG image (grey or colour, averaged to grey), an IDX file "
                    "(.gz or not) or a .npy file (read without pickle) of images (n, h, w) or feature rows (n, d): "
                    "uint8 pixels are scaled to [0, 1] as training did, other numbers taken as they are. Images "
                    "must have the training images' size (28x28 for MNIST). MNIST-style models (MNIST, "
                    "Fashion-MNIST) see a light digit or garment on a dark ground: images with a light ground (a dark "
                    "object on white, as people draw and photograph) are inverted, with a warning, unless "
                    "--no-invert. Writes CSV: `index,predicted` (the predicted label; `predicted_class` too when "
                    "the model knows its class names), with several inputs a `source` column first, the file each "
                    "row comes from (index: the row in that file), with --proba one probability column per class.")
    predict.add_argument("model", metavar="MODEL.npz", help="a model saved by `train --save` or NeuralNetwork.save")
    predict.add_argument("inputs", metavar="INPUT", nargs="+", help="PNG, IDX (.gz or not) or .npy files")
    predict.add_argument("--output", "-o", metavar="FILE", type=args_.path,
                         help="write the CSV here (atomically) instead of stdout")
    predict.add_argument("--proba", action="store_true", help="add one probability column per class")
    ground = predict.add_mutually_exclusive_group()
    ground.add_argument("--invert", dest="invert", action="store_true", default=None,
                        help="invert every input (1 - x), whatever its ground (default: invert only the PNG and "
                             "uint8 images whose ground is light, with a warning)")
    ground.add_argument("--no-invert", dest="invert", action="store_false",
                        help="never invert: take the images as they are")

    bench = commands.add_parser(
        "bench", help="time training epochs of fastscratch, JAX, tf.keras, Keras 3 on JAX and PyTorch side by side",
        description="Train the same network from the same initial weights with each framework on the same data "
                    "and print seconds per epoch (median [min-max] after warm-up; the frameworks' epochs timed "
                    "in interleaved rounds), samples/s, GFLOP/s, the share of this machine's SGEMM rate and the "
                    "ratios to tf.keras, PyTorch and JAX measured in the same run. Frameworks that are not "
                    "installed (or GPU frameworks without a GPU) are listed as skipped; so is keras-jax (Keras 3 on "
                    "its JAX backend; keras-jax-gpu on JAX's GPU) after tf.keras in one call, since Keras takes "
                    "one backend per process: give it a bench call of its own. --device gpu: the GPU frameworks. "
                    "--sweep: the scaling benchmark over hidden widths instead.")
    bench.add_argument("--dataset", default="auto", metavar="NAME|DIR",
                       type=lambda text: text if text == "auto" else args_.dataset(text),
                       help="default: fashion-mnist when found, else mnist-sample")
    bench.add_argument("--frameworks", "--backends", default=None, metavar="LIST", type=_framework_list,
                       help=f"comma-separated, from {','.join(FRAMEWORKS)} or {','.join(FRAMEWORK_ALIASES)} "
                            "(default: the --device's frameworks; with --sweep on the CPU: numba,jax,torch)")
    bench.add_argument("--device", choices=tuple(DEVICE_FRAMEWORKS), default=None,
                       help="the frameworks to run when --frameworks is not given: "
                            + "; ".join(f"{d}: {','.join(names)}" for d, names in DEVICE_FRAMEWORKS.items())
                            + " (default: cpu)")
    bench.add_argument("--batch-sizes", default=None, type=args_.batch_list, metavar="LIST",
                       help="comma-separated; 'full' for full batch (default: 32,128,512,full; with --sweep: "
                            "32,128,512)")
    bench.add_argument("--hidden", type=args_.hidden_sizes, default=None, metavar="SIZES",
                       help="hidden layer sizes (default: 128,64)")
    bench.add_argument("--optimizer", choices=tuple(OPTIMIZER_PRESETS), default="sgd",
                       help="momentum and nesterov: momentum 0.9; adam: beta 0.9, 0.999, eps 1e-7 (default: sgd)")
    bench.add_argument("--lr", type=args_.positive_float, default=0.1)
    bench.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    bench.add_argument("--epochs", type=args_.positive_int, default=3, help="timed epochs per run (default: 3)")
    bench.add_argument("--warmup", type=args_.non_negative_int, default=1, help="untimed epochs first (default: 1)")
    bench.add_argument("--target", type=args_.accuracy, default=None, metavar="ACC",
                       help="also time training to this test accuracy (at the first batch size; default target "
                            "with --plot: 0.88 on fashion-mnist, 0.92 on mnist-sample)")
    bench.add_argument("--max-epochs", type=args_.positive_int, default=30, help="cap for --target runs")
    bench.add_argument("--json", metavar="FILE", type=args_.path, help="write every result record here")
    bench.add_argument("--markdown", metavar="FILE", type=args_.path,
                       help="also write the run as Markdown (command, date, versions, BLAS, the table)")
    bench.add_argument("--plot", metavar="DIR", type=args_.path, help="write throughput.png and accuracy_vs_time.png here")
    bench.add_argument("--sweep", action="store_true",
                       help="the scaling benchmark: 784-W-W-10 for each --widths W and batch size, GFLOP/s and the "
                            "share of this machine's SGEMM rate at the step's largest GEMM; wide networks time a "
                            "fixed number of rows per epoch (--sweep-seconds); --plot writes scaling.png")
    bench.add_argument("--widths", type=args_.hidden_sizes, default=list(SWEEP_WIDTHS), metavar="LIST",
                       help=f"--sweep's hidden widths (default: {','.join(map(str, SWEEP_WIDTHS))})")
    bench.add_argument("--sweep-seconds", type=args_.positive_float, default=0.5, metavar="S",
                       help="--sweep: rows per timed epoch chosen to take about S seconds at the SGEMM rate "
                            "(the whole training set when that is less; default: 0.5)")
    bench.add_argument("--memory", action="store_true",
                       help="measure peak RSS instead of speed: the whole job (imports, data, model, --epochs "
                            "epochs, test accuracy), each run in a fresh process, beside the bound of the float32 "
                            "features + 150 MB")
    bench.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786): each ratio "
                            "group (every framework at one batch size; with --sweep, one width and batch size) whole "
                            "on one worker, one group at a time per worker (only on the workers started with "
                            "--resources bench=1 when any is); the table groups rows by worker, ratios never across "
                            "workers (needs the distributed extra)")
    bench.add_argument("--connect-timeout", type=args_.positive_float, default=5.0, metavar="S",
                       help="--scheduler: give up after S seconds without an answer from the scheduler (default: 5)")

    info = commands.add_parser("info", help="versions, backends, BLAS threads, datasets found; a model's summary",
                               description="Show versions, backends, BLAS threads and which datasets are found; "
                                           "with MODEL, describe a saved model.")
    info.add_argument("model", nargs="?", metavar="MODEL.npz")

    from .compare import add_arguments as add_compare_arguments

    compare = commands.add_parser(
        "compare", help="train fastscratch (each backend) and Keras (tf.keras, or Keras 3 on JAX) alike; write a "
                        "report with plots",
        description="Train fastscratch on each available backend and the same network in Keras (same initial "
                    "weights, same batches) and write report.md, results.json and plots to --out. Keras is tf.keras, "
                    "or Keras 3 on its JAX backend with --keras-backend jax; --device gpu trains both on a GPU.")
    add_compare_arguments(compare)
    return parser


def _add_progress_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_true", default=None,
                       help="show a progress bar (default: when stderr is a terminal)")
    group.add_argument("--no-progress", dest="progress", action="store_false", help="never show the progress bar")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no epoch lines: only the run's description and the closing summary (default: epoch "
                             "lines as --log-every says)")


# --------------------------------------------------------------------- commands
def _load_data(args: argparse.Namespace, features: str | None = None) -> datasets.Dataset:
    return datasets.load_dataset(args.dataset, data_dir=args.data_dir, download=args.download, features=features)


def _probe_directory(directory: str, flag: str, given: str) -> None:
    """Create ``directory`` (parents too) if needed and prove a file can be written there, before
    any work.  The one rule of every output option (``--save``, ``--plots``, ``--output``, ...):
    a missing folder is created, and a note on stderr names it, so a typo in a path is seen at
    once instead of leaving the output somewhere unexpected."""
    missing = not os.path.isdir(directory)
    try:
        ensure_writable_dir(directory)
    except OSError as exc:
        raise CommandError(f"{flag} {given}: cannot write there ({exc.strerror or exc})") from None
    if missing:
        print(f"note: {flag} {given}: created the missing folder {directory}", file=sys.stderr)


def _check_plotting(directory: str | None, flag: str = "--plots") -> None:
    """Fail before training, not after, when plots are asked for but cannot be made."""
    if directory is None:
        return
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise CommandError(f"{flag} needs matplotlib: `pip install 'fastscratch[plot]'`")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise CommandError(f"{flag} {directory}: exists and is not a directory")
    _probe_directory(directory, flag, directory)


def _prepare_output(path: str | None, flag: str) -> None:
    """Refuse a directory as the file and prove its directory is writable, before any work."""
    if path is None:
        return
    if os.path.isdir(path):
        raise CommandError(f"{flag} {path}: is a directory")
    _probe_directory(os.path.dirname(os.path.normpath(path)) or os.curdir, flag, path)


def _write_result_plots(net: NeuralNetwork, data: datasets.Dataset, directory: str, say) -> list[str]:
    from .. import plots

    os.makedirs(directory, exist_ok=True)
    X_test = datasets.to_features(data.X_test, net.dtype)
    predicted = net.predict(X_test)
    written = []
    if len(net.history):
        net.plot_cost(os.path.join(directory, "cost.png"))
        net.plot_accuracies(os.path.join(directory, "accuracy.png"))
        written += ["cost.png", "accuracy.png"]
    plots.plot_class_distribution(data.y_test, predicted, data.class_names,
                                  os.path.join(directory, "class_distribution.png"))
    plots.plot_confusion_matrix(data.y_test, predicted, data.class_names, os.path.join(directory, "confusion_matrix.png"))
    plots.plot_samples(data.X_test, data.y_test, predicted, data.class_names, os.path.join(directory, "samples.png"))
    written += ["class_distribution.png", "confusion_matrix.png", "samples.png"]
    say(f"Plots written to {directory}/: {', '.join(written)}")
    return written


def _blas_line() -> str:
    from .system import blas_summary

    return blas_summary()


def cmd_train(args: argparse.Namespace) -> int:
    if args.checkpoint and os.path.exists(args.checkpoint) and not args.resume and not os.path.isdir(args.checkpoint):
        raise CommandError(f"--checkpoint {args.checkpoint}: exists; add --resume to continue that run, or remove "
                           "it to start afresh")
    _check_plotting(args.plots)
    _prepare_output(args.save, "--save")
    _prepare_output(args.checkpoint, "--checkpoint")
    if args.save and args.checkpoint and os.path.realpath(args.save) == os.path.realpath(args.checkpoint):
        raise CommandError("--save and --checkpoint name the same file: the model saved at the end would replace "
                           "the checkpoint a later --resume needs; give them different names")
    if args.plots:  # the sample images plot needs the images themselves
        data = _load_data(args)
        X_train, X_test = datasets.to_features(data.X_train, args.dtype), datasets.to_features(data.X_test, args.dtype)
    else:  # features converted while reading: the uint8 images are never held beside them
        data = _load_data(args, features=args.dtype)
        X_train, X_test = data.X_train, data.X_test
    n_classes = max(data.n_classes, int(data.y_train.max()) + 1)
    architecture = [X_train.shape[1], *args.hidden, n_classes]
    net = NeuralNetwork(architecture, activation=args.activation, dtype=args.dtype, seed=args.seed,
                        backend=args.backend, dropout=args.dropout if args.hidden else 0.0)
    names = list(data.class_names) + [str(k) for k in range(len(data.class_names), n_classes)]
    net.data_info = {"dataset": data.name if data.name in datasets.DATASETS else os.path.abspath(args.dataset),
                     "class_names": names}
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    log_every = args.log_every or max(1, args.epochs // 5)

    from tqdm.auto import tqdm

    out = sys.stdout
    print(f"Dataset {data.name}: {len(X_train):,} training / {len(X_test):,} test samples, {X_train.shape[1]} "
          f"features, {plural(n_classes, 'class', 'classes')} ({data.source})", file=out)
    print(f"Network {'-'.join(map(str, architecture))}, {args.activation}, {args.optimizer}, lr {args.lr:g}, "
          f"batch {args.batch_size or 'full'}, {plural(args.epochs, 'epoch')}, backend {net.kernels.NAME}, "
          f"{args.dtype}",
          file=out, flush=True)
    bar = tqdm(total=args.epochs, unit="epoch", disable=not progress, file=sys.stderr, dynamic_ncols=True,
               leave=False)

    def say(line: str) -> None:
        if args.quiet and not line.startswith(("Training completed", "Final", "Trained")):
            return
        if progress:
            bar.write(line, file=out)
        else:
            print(line, file=out, flush=True)

    def on_epoch_end(history) -> None:
        postfix = {"cost": f"{history.cost[-1]:.4f}", "train": f"{history.train_accuracy[-1]:.4f}"}
        if not math.isnan(history.test_accuracy[-1]):
            postfix["test"] = f"{history.test_accuracy[-1]:.4f}"
        bar.set_postfix(postfix, refresh=False)
        bar.update(len(history) - bar.n)  # a resumed run starts part way

    started = time.perf_counter()
    interrupted = False
    try:
        net.fit(X_train, data.y_train, X_test, data.y_test, lr=args.lr, epochs=args.epochs,
                batch_size=args.batch_size, optimizer=args.optimizer, lr_schedule=args.lr_schedule,
                weight_decay=args.weight_decay, early_stopping=args.early_stopping, log_every=log_every,
                verbose=True, log=say, on_epoch_end=on_epoch_end, checkpoint=args.checkpoint,
                checkpoint_every=args.checkpoint_every, resume=args.resume)
    except KeyboardInterrupt:
        interrupted = True
        bar.close()
        done = len(net.history)
        print(f"\nInterrupted after {plural(done, 'complete epoch')}; the model holds the weights "
              f"of epoch {done}." if done else "\nInterrupted before the first epoch completed: nothing to save, "
              "no model or plots written.", file=sys.stderr)
        if args.checkpoint and os.path.exists(args.checkpoint):
            print(f"The checkpoint {args.checkpoint} holds the last complete epoch saved; add --resume to the same "
                  "command to continue.", file=sys.stderr)
    finally:
        bar.close()
    wall = time.perf_counter() - started

    if len(net.history):
        test_acc = net.accuracy(X_test, data.y_test)
        trained = sum(net.history.seconds)
        rate = len(X_train) * len(net.history) / trained if trained > 0 else math.inf
        threads = f"epochs on {net.epoch_threads}"
        print(f"Summary: test accuracy {test_acc:.4f} on {plural(len(X_test), 'sample')} | wall time {wall:.1f} s "
              f"| training alone (no evaluation): {rate:,.0f} samples/s | backend {net.kernels.NAME} | {threads} "
              f"| BLAS: {_blas_line()}", file=out, flush=True)
    if args.save and len(net.history):
        net.save(args.save)
        print(f"Model saved to {args.save}", file=out)
    if args.plots and len(net.history):
        _write_result_plots(net, data, args.plots, lambda line: print(line, file=out))
    return EXIT_INTERRUPTED if interrupted else 0


def _load_model(path: str) -> NeuralNetwork:
    if not os.path.isfile(path):
        raise CommandError(f"{path}: no such model file")
    return NeuralNetwork.load(path)


def _check_model_fits(net: NeuralNetwork, n_features: int, where: str) -> None:
    if n_features != net.n_features:
        raise CommandError(f"{where} has {n_features} features per sample but the model expects "
                           f"{net.n_features} (architecture {'-'.join(map(str, net.architecture))})")


def cmd_evaluate(args: argparse.Namespace) -> int:
    _check_plotting(args.plots)
    net = _load_model(args.model)
    trained_on = (net.data_info or {}).get("dataset")
    if args.dataset is None:  # default: what the model was trained on
        if trained_on is None:  # a model from before datasets were recorded
            args.dataset = "mnist-sample"
        elif trained_on in datasets.DATASETS or os.path.isdir(trained_on):
            args.dataset = trained_on
        else:
            raise CommandError(f"{args.model} was trained on {trained_on!r}, which is not there any more; "
                               "say which data to use with --dataset")
    elif trained_on and args.dataset != trained_on and os.path.abspath(args.dataset) != trained_on:
        print(f"warning: {args.model} was trained on {trained_on!r}, evaluating on {args.dataset!r}", file=sys.stderr)
    data = _load_data(args)
    X_test = datasets.to_features(data.X_test, net.dtype)
    _check_model_fits(net, X_test.shape[1], f"dataset {data.name!r}")
    if data.y_test.max() >= net.n_classes:
        raise CommandError(f"dataset {data.name!r} has labels up to {data.y_test.max()} but the model has "
                           f"{net.n_classes} classes")
    loss, accuracy = net.evaluate(X_test, data.y_test)
    predicted = net.predict(X_test)
    per_class = {}
    for k in range(net.n_classes):
        mask = data.y_test == k
        if mask.any():
            per_class[data.class_names[k] if k < len(data.class_names) else str(k)] = float(
                (predicted[mask] == k).mean())
    result = {"model": args.model, "dataset": data.name, "source": data.source, "n_samples": int(len(X_test)),
              "loss": float(loss), "accuracy": float(accuracy), "per_class_accuracy": per_class}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"Model {args.model} ({'-'.join(map(str, net.architecture))}) on {data.name} test set "
              f"({len(X_test):,} samples): loss {loss:.4f}, accuracy {accuracy:.4f}")
        for name, value in per_class.items():
            print(f"  {name:>12}: {value:.4f}")
    if args.plots:
        _write_result_plots(net, data, args.plots, lambda line: print(line, file=sys.stderr if args.json else sys.stdout))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..io import inputs

    net = _load_model(args.model)
    architecture = "-".join(map(str, net.architecture))
    try:
        items = [inputs.read_input(path) for path in args.inputs]
        for item in items:
            inputs.check_fits(item, net.n_features, architecture)
    except inputs.InputError as exc:
        raise CommandError(str(exc)) from None
    _prepare_output(args.output, "--output")  # after the inputs: a bad input leaves no new folder behind
    for line in inputs.apply_inversion(items, args.invert, (net.data_info or {}).get("dataset")):
        print(line, file=sys.stderr)
    X = items[0].rows if len(items) == 1 else np.concatenate([item.rows for item in items])
    names = (net.data_info or {}).get("class_names")
    several = len(items) > 1
    header = (["source"] if several else []) + ["index", "predicted"] + (["predicted_class"] if names else [])
    if args.proba:
        proba = net.predict_proba(X)
        labels = proba.argmax(axis=1)
        header += [f"p{k}" for k in range(net.n_classes)]
    else:
        labels = net.predict(X)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    i = 0
    for item in items:
        for index in range(item.n):  # the row within its own file
            label = int(labels[i])
            row = ([item.path] if several else []) + [index, label] + ([names[label]] if names else [])
            writer.writerow(row + ([f"{p:.6g}" for p in proba[i]] if args.proba else []))
            i += 1
    text = buffer.getvalue()
    if args.output:
        write_text(args.output, text)
        print(f"{plural(len(X), 'prediction')} written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .system import blas_summary, tensorflow_gpus, versions

    if args.model:
        net = _load_model(args.model)
        h = net.history
        print(f"Model {args.model}")
        print(f"  architecture {'-'.join(map(str, net.architecture))}, activations {', '.join(net.activations)}, "
              f"{net.dtype.name}, dropout {net.dropout}")
        print(f"  trained {plural(len(h), 'epoch')}" + (f", optimizer {net.optimizer}" if net.optimizer else ""))
        if len(h):
            line = f"  last epoch: cost {h.cost[-1]:.4f}, train accuracy {h.train_accuracy[-1]:.4f}"
            if not math.isnan(h.test_accuracy[-1]):
                line += f", test accuracy {h.test_accuracy[-1]:.4f}"
            print(line)
        from ..io.model_files import load_checkpoint

        try:
            record = load_checkpoint(args.model, NeuralNetwork).record
        except ValueError:  # a plain model file
            record = None
        if record is not None:
            state = {None: "in progress", "completed": "finished", "early_stopping": "stopped early",
                     "diverged": "stopped: diverged"}[record["finished"]]
            fit = record["fit"]
            print(f"  training checkpoint: {len(h) - record['first_epoch']} of "
                  f"{plural(record['target_epoch'] - record['first_epoch'], 'epoch')}, {state}; lr {fit['lr']:g}, "
                  f"batch {fit['batch_size'] or 'full'}, {describe_optimizer(fit['optimizer'])}")
        return 0
    print(f"fastscratch {__version__}")
    for name, version in versions().items():
        if name != "fastscratch":
            print(f"  {name} {version}")
    backends = available_backends()
    print(f"Backends available: {', '.join(backends)} (auto picks {load_backend('auto').NAME})")
    if "numba" not in backends:
        print("  Numba is not installed: training runs on the NumPy backend "
              "(`pip install 'fastscratch[numba]'` for the jitted one).")
    print(f"BLAS: {blas_summary()}")
    print(f"CPU cores: {os.cpu_count()}")
    print(f"GPU: {_gpu_line()}; tf.keras: {tensorflow_gpus()}")
    print("Datasets:")
    for name in datasets.DATASETS:
        print(f"  {name:<14} {_where(name)}")
    print(f"  download cache: {datasets.cache_dir()}")
    return 0


def _gpu_line() -> str:
    """Whether fastscratch can train on a GPU here (the array-API backend with CuPy or PyTorch CUDA)."""
    from .. import devices
    from ..backends import ARRAY_API

    try:
        load_backend(ARRAY_API)
    except ImportError:
        return "fastscratch trains on the CPU here (the array-API backend needs `pip install 'fastscratch[array-api]'`)"
    library, reason = devices.gpu_library()
    if library is None:
        return f"fastscratch trains on the CPU here ({reason})"
    return f"fastscratch can train on {library} CUDA arrays (the array-API backend)"


def _where(name: str) -> str:
    try:
        return datasets.locate(name) or "not found (see `fastscratch train --dataset NAME` for where it looks)"
    except ImportError as exc:  # a library is missing, not files: say which, not "not found"
        return f"unavailable: {exc}"


def argv_is_bench() -> bool:
    """Whether this process was started as ``fastscratch bench ...`` (to quote its command line)."""
    return len(sys.argv) > 1 and sys.argv[1] == "bench"


def bench_usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with a ``bench`` command line's combination of options (``None``: nothing),
    and the defaults that depend on the mode filled in (``--sweep`` or not)."""
    from . import bench

    if args.scheduler is not None:
        if args.memory:
            return "--memory measures processes on this machine; it does not run with --scheduler"
        if args.target is not None:
            return "--target runs on this machine; it does not run with --scheduler"
        if args.plot is not None:
            return ("--plot draws one machine's times; with --scheduler the groups run on several machines "
                    "(use --json or --markdown)")
    if args.sweep:
        if args.memory:
            return "--sweep and --memory are different runs; give one of them"
        if args.hidden is not None:
            return "--hidden does not apply to --sweep: its networks are 784-W-W-10 for each of --widths"
        if args.target is not None:
            return "--target does not apply to --sweep (its epochs train a fixed number of rows)"
        if args.batch_sizes is not None and None in args.batch_sizes:
            return ("--sweep times mini-batches: 'full' is not a batch size there (its epochs train a fixed "
                    "number of rows)")
        args.frameworks = args.frameworks or list(
            bench.SWEEP_FRAMEWORKS if args.device in (None, "cpu") else bench.DEVICE_FRAMEWORKS[args.device])
        args.batch_sizes = args.batch_sizes or list(bench.SWEEP_BATCH_SIZES)
    else:
        args.frameworks = args.frameworks or list(bench.DEVICE_FRAMEWORKS[args.device or "cpu"])
        args.batch_sizes = args.batch_sizes or [32, 128, 512, None]
        args.hidden = [128, 64] if args.hidden is None else args.hidden
    return None


def _run_line(args: argparse.Namespace, name: str, n_train: int, sizes: str) -> str:
    return (f"{name} ({n_train:,} training samples), {sizes}, {args.dtype}, {args.optimizer} lr {args.lr:g}, "
            f"{args.warmup} warm-up + {plural(args.epochs, 'timed epoch')}, frameworks in interleaved rounds")


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench
    from .system import versions

    _check_plotting(args.plot, "--plot")
    _prepare_output(args.json, "--json")
    _prepare_output(args.markdown, "--markdown")
    if args.memory:
        return _bench_memory(args)
    if args.scheduler is not None:
        return _bench_dask(args)
    if args.sweep:
        return _bench_sweep(args)
    name, data = bench.load_data(args.dataset, args.dtype)
    sizes = [data[0].shape[1], *args.hidden, int(max(data[1].max(), data[3].max())) + 1]
    print(f"fastscratch bench: {_run_line(args, name, len(data[0]), '-'.join(map(str, sizes)))}")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    sgemm = bench.sgemm_rate(dtype=args.dtype)
    print(f"BLAS: {bench.thread_summary()}; SGEMM (128x784)x(784x128): {sgemm[0]:.1f} GFLOP/s "
          f"[{sgemm[1]:.1f}-{sgemm[2]:.1f}]", flush=True)

    def group(batch: int | None) -> list:
        return [bench.Workload(framework=framework, batch_size=batch, dataset=name, hidden=tuple(args.hidden),
                               dtype=args.dtype, optimizer=args.optimizer, lr=args.lr) for framework in args.frameworks]

    results: list = []
    accuracy_runs: list = []

    def write_json(partial: bool) -> None:
        record = {"dataset": name, "sgemm_gflops": sgemm, "threads": bench.thread_summary(),
                  "results": [r.to_dict() for r in results], "time_to_accuracy": [r.to_dict() for r in accuracy_runs]}
        if partial:  # a run stopped later (a time limit, a crash) still leaves what it measured
            record["partial"] = f"written after batch size {results[-1].workload.batch_size or 'full'}"
        write_text(args.json, json.dumps(record, indent=2, default=str))

    for batch in args.batch_sizes:
        print(f"  batch {batch or 'full'}: building and warming up {', '.join(args.frameworks)}, then "
              f"{plural(args.epochs, 'interleaved round')} ...", file=sys.stderr, flush=True)
        results += bench.run_group(group(batch), epochs=args.epochs, warmup=args.warmup, data=data, sgemm=True)
        if args.json:
            write_json(partial=True)
    print()
    print("\n".join(bench.format_table(results, sgemm)))
    devices = bench.device_lines(results)
    print("\n".join(devices))
    references = bench.sgemm_lines(results)
    if references:
        print("%SGEMM: of NumPy's BLAS on all its threads at each batch's first-layer product, timed after "
              "every round: " + "; ".join(references))
    compiled = bench.format_compile_times(results)
    if compiled:
        print("Compile seconds, apart from the epochs (the most over the batch sizes): " + ", ".join(compiled))
    target = args.target if args.target is not None else (bench.DEFAULT_TARGETS.get(name, 0.9) if args.plot else None)
    if target is not None:
        batch = args.batch_sizes[0]
        print(f"\nTime to {target:.0%} test accuracy (batch {batch or 'full'}, {args.optimizer} lr {args.lr:g}, "
              f"at most {plural(args.max_epochs, 'epoch')}, frameworks in interleaved rounds, every one on the batches "
              "fastscratch draws):")

        def reached(result) -> None:  # a line as each framework gets there
            if result.seconds_to_target is not None:
                print("\n".join(bench.format_time_to_accuracy([result])), flush=True)

        shared = [dataclasses.replace(w, batches="shared") for w in group(batch)]
        accuracy_runs = bench.time_to_accuracy_group(shared, target, args.max_epochs, data=data, on_epoch=reached)
        for r in accuracy_runs:  # then those that did not
            if r.seconds_to_target is None:
                print("\n".join(bench.format_time_to_accuracy([r])), flush=True)
    if args.markdown:
        command = "fastscratch " + " ".join(sys.argv[1:] if argv_is_bench() else ["bench"])
        text = [f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                f"{_run_line(args, name, len(data[0]), '-'.join(map(str, sizes)))}.",
                "", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
                f"BLAS: {bench.thread_summary()}; {plural(os.cpu_count(), 'core')}; SGEMM (128x784)x(784x128) "
                f"{sgemm[0]:.1f} GFLOP/s [{sgemm[1]:.1f}-{sgemm[2]:.1f}].", ""]
        text += bench.format_table(results, sgemm, markdown=True)
        text += [""] + [f"- {line}" for line in devices]
        if references:
            text += ["", "%SGEMM: of NumPy's BLAS on all its threads at each batch's first-layer product, "
                     "timed after every round: " + "; ".join(references) + "."]
        if compiled:
            text += ["", "Compile seconds, apart from the epochs: " + ", ".join(compiled) + "."]
        if accuracy_runs:
            text += ["", f"Time to {target:.0%} test accuracy (every framework on the batches fastscratch draws):", ""]
            text += [f"- {line.strip()}" for line in bench.format_time_to_accuracy(accuracy_runs)]
        write_text(args.markdown, "\n".join(text) + "\n")
        print(f"Markdown written to {args.markdown}")
    if args.json:
        write_json(partial=False)
        print(f"\nResults written to {args.json}")
    if args.plot:
        from .. import plots

        os.makedirs(args.plot, exist_ok=True)
        plots.plot_throughput(results, os.path.join(args.plot, "throughput.png"), order=bench.FRAMEWORKS)
        written = ["throughput.png"]
        if any(r.ok for r in accuracy_runs):
            plots.plot_accuracy_vs_time(accuracy_runs, os.path.join(args.plot, "accuracy_vs_time.png"),
                                        order=bench.FRAMEWORKS)
            written.append("accuracy_vs_time.png")
        print(f"Plots written to {args.plot}/: {', '.join(written)}")
    return 0


def _bench_sweep(args: argparse.Namespace) -> int:
    """``bench --sweep``: the scaling benchmark (:func:`fastscratch.tools.bench.sweep`)."""
    from . import bench
    from .system import versions

    name, data = bench.load_data(args.dataset, args.dtype)
    n_train = len(data[0])
    widths = ",".join(map(str, args.widths))
    line = (f"{name} ({n_train:,} training samples), 784-W-W-10 for W in {widths}, batch sizes "
            f"{','.join(map(str, args.batch_sizes))}, {args.dtype}, {args.optimizer} lr {args.lr:g}, "
            f"{args.warmup} warm-up + {plural(args.epochs, 'timed epoch')} per point, frameworks in interleaved rounds")
    rows_note = (f"Rows per timed epoch: all {n_train:,} where an epoch at the SGEMM rate takes at most "
                 f"{args.sweep_seconds:g} s; otherwise a whole number of batches (at least 4) that takes about that "
                 f"long, the first rows of a fixed random order, the same rows for every framework (a fixed "
                 f"number of steps, not a whole epoch). GFLOP/s count the rows trained. %SGEMM: against NumPy's "
                 f"BLAS at the step's largest GEMM, (batch x k) x (k x n), on one thread or all, whichever is "
                 f"faster (the t column), measured just before the point.")
    print(f"fastscratch bench --sweep: {line}")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"BLAS: {bench.thread_summary()}; {plural(os.cpu_count(), 'core')}")
    print(rows_note, flush=True)

    def progress(point) -> None:
        print(f"  W={point.width} batch {point.batch_size}: {plural(point.rows, 'row')} per epoch, done",
              file=sys.stderr, flush=True)

    points = bench.sweep(args.widths, args.batch_sizes, args.frameworks, dataset=name, dtype=args.dtype,
                         optimizer=args.optimizer, lr=args.lr, epochs=args.epochs, warmup=args.warmup,
                         seconds=args.sweep_seconds, on_point=progress)
    print()
    print("\n".join(bench.format_sweep_table(points)))
    if args.markdown:
        command = "fastscratch " + " ".join(sys.argv[1:] if argv_is_bench() else ["bench", "--sweep"])
        text = [f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {line}.", "",
                "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
                f"BLAS: {bench.thread_summary()}; {plural(os.cpu_count(), 'core')}.", "", rows_note, ""]
        text += bench.format_sweep_table(points, markdown=True)
        write_text(args.markdown, "\n".join(text) + "\n")
        print(f"Markdown written to {args.markdown}")
    if args.json:
        write_text(args.json, json.dumps({"dataset": name, "threads": bench.thread_summary(), "versions": versions(),
                                          "sweep": [p.to_dict() for p in points]}, indent=2, default=str))
        print(f"Results written to {args.json}")
    if args.plot:
        from .. import plots

        os.makedirs(args.plot, exist_ok=True)
        plots.plot_scaling(points, os.path.join(args.plot, "scaling.png"), order=bench.FRAMEWORKS)
        print(f"Plot written to {args.plot}/: scaling.png")
    return 0


def _bench_dask(args: argparse.Namespace) -> int:
    """``bench --scheduler ADDRESS``: the ratio groups (or the sweep's points) as Dask tasks
    (:mod:`fastscratch.tools.dask`), the tables worker by worker."""
    from . import bench
    from . import dask as on_dask
    from .system import versions

    client = on_dask.connect(args.scheduler, args.connect_timeout)
    try:
        placement = on_dask.bench_workers(client)
        name = bench.resolve_dataset(args.dataset)
        if args.sweep:
            groups = bench.sweep_groups(args.widths, args.batch_sizes, args.frameworks, name, args.dtype,
                                        args.optimizer, args.lr)
            what = (f"784-W-W-10 for W in {','.join(map(str, args.widths))}, batch sizes "
                    f"{','.join(map(str, args.batch_sizes))}")
        else:
            groups = [[bench.Workload(framework=framework, batch_size=batch, dataset=name, hidden=tuple(args.hidden),
                                      dtype=args.dtype, optimizer=args.optimizer, lr=args.lr)
                       for framework in args.frameworks] for batch in args.batch_sizes]
            what = f"hidden {','.join(map(str, args.hidden))}, batch sizes " + ",".join(
                str(b or "full") for b in args.batch_sizes)
        line = (f"{name}, {what}, {args.dtype}, {args.optimizer} lr {args.lr:g}, {args.warmup} warm-up + "
                f"{plural(args.epochs, 'timed epoch')}, frameworks in interleaved rounds; "
                f"{plural(len(groups), 'ratio group')} on "
                f"{plural(len(placement.workers), 'worker')} of {args.scheduler}"
                + (f" offering the '{on_dask.RESOURCE}' resource" if placement.by_resource else "")
                + ", each group whole on one worker, one group at a time per worker")
        print(f"fastscratch bench --scheduler: {line}")
        print("Versions here: " + ", ".join(f"{k} {v}" for k, v in versions().items()), flush=True)

        def done(answer) -> None:
            results = answer.results if args.sweep else answer
            first = results[0]
            print(f"  {first.workload.label.split(' ', 1)[1]}"
                  + (f" W={first.workload.hidden[0]}" if args.sweep else "")
                  + f": done on {first.worker} ({first.host})", file=sys.stderr, flush=True)

        if args.sweep:
            points = on_dask.run_sweep(client, groups, epochs=args.epochs, warmup=args.warmup,
                                       seconds=args.sweep_seconds, on_point=done)
            results = [r for p in points for r in p.results]
        else:
            points = []
            results = on_dask.run_groups(client, groups, epochs=args.epochs, warmup=args.warmup, on_group=done)
    finally:
        client.close()
    worker_versions = next((r.versions for r in results if r.ok), {})
    print("Versions on the workers: " + ", ".join(f"{k} {v}" for k, v in worker_versions.items()))
    print()
    table = bench.format_sweep_by_worker(points) if args.sweep else bench.format_by_worker(results)
    print("\n".join(table))
    compiled = bench.format_compile_times(results)
    if compiled and not args.sweep:
        print("Compile seconds, apart from the epochs (the most over the batch sizes): " + ", ".join(compiled))
    if args.markdown:
        command = "fastscratch " + " ".join(sys.argv[1:] if argv_is_bench() else ["bench", "--scheduler", args.scheduler])
        text = [f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {line}.", "",
                "Versions on the workers: " + ", ".join(f"{k} {v}" for k, v in worker_versions.items()) + ".", ""]
        text += bench.format_sweep_by_worker(points, markdown=True) if args.sweep else \
            bench.format_by_worker(results, markdown=True)
        if compiled and not args.sweep:
            text += ["", "Compile seconds, apart from the epochs: " + ", ".join(compiled) + "."]
        write_text(args.markdown, "\n".join(text) + "\n")
        print(f"Markdown written to {args.markdown}")
    if args.json:
        record = {"dataset": name, "scheduler": args.scheduler, "versions": versions()}
        if args.sweep:
            record["sweep"] = [p.to_dict() for p in points]
        else:
            record["results"] = [r.to_dict() for r in results]
        write_text(args.json, json.dumps(record, indent=2, default=str))
        print(f"Results written to {args.json}")
    return 0


def _bench_memory(args: argparse.Namespace) -> int:
    """``bench --memory``: peak RSS of each framework and batch size, each job in a fresh process."""
    from . import bench

    name = bench.resolve_dataset(args.dataset)
    results = []
    for batch in args.batch_sizes:
        for framework in args.frameworks:
            workload = bench.Workload(framework=framework, batch_size=batch, dataset=name, hidden=tuple(args.hidden),
                                      dtype=args.dtype, optimizer=args.optimizer, lr=args.lr)
            print(f"  measuring {workload.label} ...", file=sys.stderr, flush=True)
            results.append(bench.peak_rss(workload, epochs=args.epochs))
    header = (f"Peak RSS, {name}, {args.dtype}, {args.optimizer} lr {args.lr:g}, {plural(args.epochs, 'epoch')} + test "
              f"accuracy, each job in a fresh process (MB = 10^6 bytes; bound: the float32 features + "
              f"{bench.MEMORY_HEADROOM_MB:.0f} MB); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"{plural(os.cpu_count(), 'core')}; BLAS: {bench.thread_summary()}")
    print(header)
    print("\n".join(bench.format_memory_table(results)))
    if args.markdown:
        command = "fastscratch " + " ".join(sys.argv[1:] if argv_is_bench() else ["bench", "--memory"])
        text = [f"`{command}`: {header}.", ""] + bench.format_memory_table(results, markdown=True)
        write_text(args.markdown, "\n".join(text) + "\n")
        print(f"Markdown written to {args.markdown}")
    if args.json:
        write_text(args.json, json.dumps({"dataset": name, "threads": bench.thread_summary(),
                                          "memory": [r.to_dict() for r in results]}, indent=2, default=str))
        print(f"Results written to {args.json}")
    return 0 if all(r.ok or r.status.startswith("skipped") for r in results) else EXIT_ERROR


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import run_from_args

    return run_from_args(args)


COMMANDS = {"train": cmd_train, "bench": cmd_bench, "evaluate": cmd_evaluate, "predict": cmd_predict, "info": cmd_info,
            "compare": cmd_compare}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastscratch`` command; returns the exit code."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        parser.unrecognized(args.command, extras)
    if getattr(args, "resume", False) and not args.checkpoint:
        parser.error("--resume needs --checkpoint FILE: the run to continue")
    if args.command == "bench" and (problem := bench_usage_error(args)):
        parser.error(problem)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # one line for the user; --debug for the traceback
        if args.debug:
            raise
        expected = (CommandError, ValueError, TypeError, OSError, ImportError, FloatingPointError)
        what = str(exc) if isinstance(exc, expected) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, MemoryError):
            what = f"out of memory ({exc or 'the arrays asked for do not fit'})"
        print(f"fastscratch {args.command}: error: {what}", file=sys.stderr)
        return EXIT_ERROR

