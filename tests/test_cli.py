"""The ``fastscratch`` command line, run as a user runs it: in a subprocess."""

import dataclasses
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fastscratch import NeuralNetwork, datasets
from fastscratch.tools import cli
from fastscratch.datasets import write_idx

FAST = ["--epochs", "3", "--batch-size", "64", "--hidden", "16"]


def run(*args, cwd=None, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "fastscratch", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def idx_dataset(d: Path, n_train: int, n_test: int, side: int, n_classes: int) -> Path:
    """A custom dataset directory: the four IDX files, random images, labels cycling over the classes."""
    rng = np.random.default_rng(0)
    d.mkdir()
    write_idx(d / "train-images-idx3-ubyte", rng.integers(0, 256, (n_train, side, side), dtype=np.uint8))
    write_idx(d / "train-labels-idx1-ubyte", (np.arange(n_train) % n_classes).astype(np.uint8))
    write_idx(d / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, side, side), dtype=np.uint8))
    write_idx(d / "t10k-labels-idx1-ubyte", (np.arange(n_test) % n_classes).astype(np.uint8))
    return d


def png_size(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", raw[16:24])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained by ``fastscratch train`` with plots, and the run's output."""
    out = tmp_path_factory.mktemp("train")
    result = run("train", *FAST, "--save", out / "models" / "m.npz", "--plots", out / "plots", "--log-every", "1")
    return out, result


def test_every_registered_activation_is_a_choice_and_trains(tmp_path):
    from fastscratch.activations import ACTIVATION_NAMES

    help_text = run("train", "--help").stdout
    assert "{" + ",".join(ACTIVATION_NAMES) + "}" in help_text.replace("\n", "").replace(" ", "")
    newest = ACTIVATION_NAMES[-1]  # the one added last: it works end to end, saved and loaded too
    result = run("train", "--epochs", "1", "--batch-size", "64", "--hidden", "16", "--activation", newest,
                 "--optimizer", "momentum", "--save", tmp_path / "m.npz", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith(f"Network 784-16-10, {newest}, momentum")
    assert NeuralNetwork.load(tmp_path / "m.npz").activations == [newest]


def test_train_prints_epoch_lines_summary_and_writes_files(trained):
    out, result = trained
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Dataset mnist-sample: 4,000 training / 1,000 test samples, 784 features")
    assert lines[1].startswith("Network 784-16-10, relu, sgd, lr 0.1, batch 64, 3 epochs")
    epochs = [line for line in lines if line.startswith("Epoch ")]
    assert [line[:10] for line in epochs] == ["Epoch    1", "Epoch    2", "Epoch    3"]
    assert "Training completed!" in lines
    summary = next(line for line in lines if line.startswith("Summary: test accuracy"))
    assert "BLAS:" in summary and "thread" in summary
    # two different rates, each on its own line and each saying what it measures
    trained = next(line for line in lines if line.startswith("Trained to epoch 3 in "))
    assert trained.count("samples/s") == 1 and "epochs with their evaluation: " in trained
    assert summary.count("samples/s") == 1 and "training alone (no evaluation): " in summary
    assert NeuralNetwork.load(out / "models" / "m.npz").epochs_trained == 3
    sizes = {name: png_size(out / "plots" / name) for name in
             ("cost.png", "accuracy.png", "class_distribution.png", "confusion_matrix.png", "samples.png")}
    assert sizes == {"cost.png": (700, 450), "accuracy.png": (700, 450), "class_distribution.png": (700, 450),
                     "confusion_matrix.png": (700, 700), "samples.png": (800, 800)}
    assert all((out / "plots" / name).stat().st_size > 10_000 for name in sizes)  # drawn, not blank


def test_progress_bar_when_asked(tmp_path):
    result = run("train", *FAST, "--progress")
    assert result.returncode == 0, result.stderr
    assert "3/3" in result.stderr and "epoch" in result.stderr  # tqdm's counter and unit
    assert "Epoch    3" in result.stdout


def test_quiet_prints_only_the_summary():
    result = run("train", *FAST, "--quiet")
    assert result.returncode == 0, result.stderr
    assert not any(line.startswith("Epoch") for line in result.stdout.splitlines())
    assert "Training completed!" in result.stdout and "Summary: test accuracy" in result.stdout


def test_evaluate(trained):
    out, _ = trained
    result = run("evaluate", out / "models" / "m.npz", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dataset"] == "mnist-sample" and report["n_samples"] == 1000
    assert 0.5 < report["accuracy"] <= 1 and set(report["per_class_accuracy"]) == set("0123456789")
    model = NeuralNetwork.load(out / "models" / "m.npz")
    X_test, y_test = datasets.to_features(datasets.load_dataset().X_test), datasets.load_dataset().y_test
    assert report["accuracy"] == pytest.approx(model.accuracy(X_test, y_test))
    text = run("evaluate", out / "models" / "m.npz")
    assert text.returncode == 0 and "accuracy" in text.stdout


def test_predict_idx_and_npy(trained, tmp_path):
    out, _ = trained
    model = out / "models" / "m.npz"
    images = datasets.load_dataset().X_test[:7]
    write_idx(tmp_path / "x.idx.gz", images)
    result = run("predict", model, tmp_path / "x.idx.gz")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    expected = NeuralNetwork.load(model).predict(datasets.to_features(images))
    assert lines[0] == "index,predicted,predicted_class"
    assert lines[1:] == [f"{i},{k},{k}" for i, k in enumerate(expected)]

    np.save(tmp_path / "x.npy", datasets.to_features(images))
    result = run("predict", model, tmp_path / "x.npy", "--proba", "-o", tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "index,predicted,predicted_class," + ",".join(f"p{k}" for k in range(10)) and len(rows) == 8
    probabilities = np.array([[float(v) for v in row.split(",")[3:]] for row in rows[1:]])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)


def test_info(trained):
    from fastscratch.backends import load_backend

    out, _ = trained
    result = run("info")
    assert result.returncode == 0, result.stderr
    assert "Backends available:" in result.stdout and "BLAS:" in result.stdout and "GPU: " in result.stdout
    # the backend training really uses, and TensorFlow imported without its C++ start-up lines
    assert f"(auto picks {load_backend('auto').NAME})" in result.stdout
    assert NeuralNetwork([4, 2]).kernels.NAME == load_backend("auto").NAME
    assert "oneDNN" not in result.stderr and "absl" not in result.stderr, result.stderr
    assert "mnist-sample   embedded in the package" in result.stdout
    if "numba" not in result.stdout.split("Backends available:")[1].splitlines()[0]:
        assert result.stdout.count("Numba is not installed") == 1
    model = run("info", out / "models" / "m.npz")
    assert model.returncode == 0 and "architecture 784-16-10" in model.stdout and "trained 3 epochs" in model.stdout


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("fastscratch ")


@pytest.mark.parametrize("args, message", [
    (["train", "--epochs", "0"], "positive integer"),
    (["train", "--epochs", "ten"], "positive integer"),
    (["train", "--hidden", "128,x"], "layer sizes"),
    (["train", "--hidden", "128,-4"], "positive"),
    (["train", "--lr", "nan"], "positive number"),
    (["train", "--dropout", "1"], "[0, 1)"),
    (["train", "--activation", "softplus"], "invalid choice"),
    (["train", "--batch-size", "0"], "positive integer"),
    (["fly"], "invalid choice"),
    ([], "required"),
    (["predict", "model.npz"], "required"),
    (["train", "--seed", "-1"], "non-negative integer"),
    (["train", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["train", "--save", ""], "empty string"),
    (["bench", "--frameworks", "numba,mxnet"], "unknown framework(s) 'mxnet'"),
    (["bench", "--optimizer", "rmsprop"], "invalid choice"),
    # typos get the closest valid name
    (["train", "--dataset", "fasion-mnist"], "unknown dataset 'fasion-mnist' (did you mean 'fashion-mnist'?)"),
    (["train", "--optimiser", "adam"], "unrecognized arguments: --optimiser adam (did you mean '--optimizer'?)"),
    (["train", "--epochs", "3", "--hiden=4"], "unrecognized arguments: --hiden=4 (did you mean '--hidden'?)"),
    (["train", "--optimizer", "adm"], "invalid choice: 'adm'"),
    (["train", "--optimizer", "adm"], "(did you mean 'adam'?)"),
    (["trian"], "(did you mean 'train'?)"),
    (["predict", "m.npz", "x.png", "--invrt"], "(did you mean '--invert'?)"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_no_suggestion_when_nothing_is_close():
    result = run("train", "--zzzz")
    assert result.returncode == 2 and "unrecognized arguments: --zzzz" in result.stderr
    assert "did you mean" not in result.stderr


def test_every_train_option_says_what_it_does_and_its_default():
    text = cli.build_parser().subcommands["train"].format_help()
    blocks = re.split(r"\n  (?=-)", text.split("\noptions:\n", 1)[1])
    options = {}
    for block in blocks:
        head, _, rest = block.strip().partition("  ")
        if "\n" in head:  # a long option line: its text starts on the next line
            head, rest = head.split("\n", 1)[0], head.split("\n", 1)[1] + rest
        options[head.strip()] = " ".join(rest.split())
    assert len(options) >= 25, options
    assert "--epochs N" in options and "--optimizer {sgd,momentum,nesterov,adam}" in options
    for head, description in options.items():
        if head.startswith("-h"):
            continue
        assert description, f"{head}: no help text"
        if head != "--no-progress":  # the other half of --progress, whose text gives the default
            assert "default" in description, f"{head}: no default in {description!r}"


def test_errors_exit_1_with_a_message_not_a_traceback(tmp_path, trained):
    out, _ = trained
    missing = run("evaluate", tmp_path / "nope.npz")
    assert missing.returncode == 1 and "no such model file" in missing.stderr
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    junk = run("evaluate", tmp_path / "junk.npz")
    assert junk.returncode == 1 and "junk.npz" in junk.stderr
    (tmp_path / "bad.idx").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"abc")
    bad = run("predict", out / "models" / "m.npz", tmp_path / "bad.idx")
    assert bad.returncode == 1 and "truncated" in bad.stderr
    np.save(tmp_path / "rows.npy", np.zeros((2, 64), dtype=np.float32))
    wrong = run("predict", out / "models" / "m.npz", tmp_path / "rows.npy")
    assert wrong.returncode == 1 and "64 features per sample but the model expects 784" in wrong.stderr
    for result in (missing, junk, bad, wrong):
        assert "Traceback" not in result.stderr


def test_missing_dataset_says_where_it_looked(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), KERAS_HOME=str(tmp_path / "keras"))
    env.pop("FASTSCRATCH_DATA", None)
    result = run("train", "--dataset", "mnist", "--data-dir", tmp_path / "here", env=env)
    assert result.returncode == 1
    assert "dataset 'mnist' not found" in result.stderr and str(tmp_path / "here") in result.stderr
    assert "Traceback" not in result.stderr


def test_fashion_mnist_without_debian_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("FASTSCRATCH_DATA", raising=False)
    monkeypatch.setitem(datasets._REMOTE, "fashion-mnist",
                        dataclasses.replace(datasets._REMOTE["fashion-mnist"], system_dirs=()))
    assert cli.main(["train", "--dataset", "fashion-mnist", "--epochs", "1"]) == 1
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed (.ci/run installs it)")
def test_train_on_fashion_mnist(tmp_path):
    result = run("train", "--dataset", "fashion-mnist", "--epochs", "1", "--batch-size", "128", "--hidden", "32")
    assert result.returncode == 0, result.stderr
    assert "Dataset fashion-mnist: 60,000 training / 10,000 test samples" in result.stdout
    accuracy = float(result.stdout.split("Summary: test accuracy ")[1].split()[0])
    assert accuracy > 0.7


def test_directory_dataset_from_the_command_line(tmp_path):
    d = idx_dataset(tmp_path / "tiny", n_train=30, n_test=9, side=5, n_classes=3)
    result = run("train", "--dataset", d, "--epochs", "2", "--hidden", "4", "--save", tmp_path / "t.npz")
    assert result.returncode == 0, result.stderr
    assert NeuralNetwork.load(tmp_path / "t.npz").architecture == [25, 4, 3]


def test_ctrl_c_stops_cleanly_and_saves(tmp_path):
    model = tmp_path / "interrupted.npz"
    process = subprocess.Popen(
        # `python -m fastscratch`, with Python's Ctrl-C handler installed first: a suite started as a
        # background job passes SIGINT on ignored, and Python then leaves it ignored (a preexec_fn
        # resetting it would fork a process that has JAX loaded, which JAX warns about)
        [sys.executable, "-c", "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
         "runpy.run_module('fastscratch', run_name='__main__', alter_sys=True)",
         "train", "--epochs", "100000", "--batch-size", "500", "--hidden", "8",
         "--log-every", "1", "--save", str(model), "--plots", str(tmp_path / "plots")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            seen.append(line)
            if line.startswith("Epoch    3"):
                break
        assert seen[-1].startswith("Epoch    3"), "".join(seen)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Interrupted after" in stderr and "Traceback" not in stderr
    assert "Model saved to" in stdout
    net = NeuralNetwork.load(model)
    assert net.epochs_trained >= 3
    # the saved weights are exactly those of the epochs in its history: a fresh run of that
    # many epochs with the same seed gives the same bits
    data = datasets.load_dataset()
    fresh = NeuralNetwork([784, 8, 10], seed=0)
    fresh.fit(datasets.to_features(data.X_train), data.y_train, epochs=net.epochs_trained, batch_size=500,
              verbose=False)
    for a, b in zip(net.weights + net.biases, fresh.weights + fresh.biases):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "plots" / "cost.png").stat().st_size > 0


def test_predict_png_uint8_rows_and_several_inputs(trained, tmp_path):
    from matplotlib import image

    out, _ = trained
    model = out / "models" / "m.npz"
    images = datasets.load_dataset().X_test[:3]
    expected = NeuralNetwork.load(model).predict(datasets.to_features(images)).tolist()
    for k in range(3):
        image.imsave(tmp_path / f"d{k}.png", images[k], cmap="gray", vmin=0, vmax=255)
    np.save(tmp_path / "rows.npy", images.reshape(3, 784))  # uint8 rows: scaled like images
    result = run("predict", model, *(tmp_path / f"d{k}.png" for k in range(3)), tmp_path / "rows.npy")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "source,index,predicted,predicted_class"  # several inputs: which file each row is from
    rows = [line.split(",") for line in lines[1:]]
    assert [(source, int(index)) for source, index, *_ in rows] == \
        [(str(tmp_path / f"d{k}.png"), 0) for k in range(3)] + [(str(tmp_path / "rows.npy"), i) for i in range(3)]
    assert [int(row[2]) for row in rows] == expected + expected
    assert "warning" not in result.stderr  # light digits on a dark ground are taken as they are


def test_predict_inverts_dark_digits_on_white(trained, tmp_path):
    """Digits drawn dark on white (as people draw, and as samples.png shows them) get the labels
    of the same digits light on dark, with a warning; --no-invert takes them as they are."""
    from matplotlib import image

    out, _ = trained
    model = out / "models" / "m.npz"
    images = datasets.load_dataset().X_test[:20]
    net = NeuralNetwork.load(model)
    expected = net.predict(datasets.to_features(images)).tolist()
    as_is = net.predict(datasets.to_features(255 - images)).tolist()
    assert as_is != expected  # the trap: inverted digits get other labels
    for k in range(3):
        image.imsave(tmp_path / f"dark{k}.png", 255 - images[k], cmap="gray", vmin=0, vmax=255)
    write_idx(tmp_path / "dark.idx", 255 - images)
    pngs = [tmp_path / f"dark{k}.png" for k in range(3)]
    result = run("predict", model, *pngs, tmp_path / "dark.idx")
    assert result.returncode == 0, result.stderr
    labels = [int(line.split(",")[2]) for line in result.stdout.splitlines()[1:]]
    assert labels == expected[:3] + expected
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: 23 images with a light ground") and \
        "--no-invert" in warning[0]
    kept = run("predict", model, "--no-invert", tmp_path / "dark.idx")
    assert kept.returncode == 0 and "warning" not in kept.stderr
    assert [int(line.split(",")[1]) for line in kept.stdout.splitlines()[1:]] == as_is
    forced = run("predict", model, "--invert", tmp_path / "dark.idx")
    assert [int(line.split(",")[1]) for line in forced.stdout.splitlines()[1:]] == expected


def test_light_ground_is_told_from_real_digits():
    from fastscratch.io.inputs import light_ground

    pixels = datasets.load_dataset().X_train / 255.0
    assert not light_ground(pixels).any() and light_ground(1.0 - pixels).all()


def test_predict_names_image_sizes_and_formats(trained, tmp_path):
    from matplotlib import image

    out, _ = trained
    model = out / "models" / "m.npz"
    image.imsave(tmp_path / "big.png", np.zeros((112, 112)), cmap="gray")
    big = run("predict", model, tmp_path / "big.png")
    assert big.returncode == 1 and "a 112x112 image, but the model expects 28x28 images" in big.stderr
    write_idx(tmp_path / "small.idx", np.zeros((2, 8, 8), dtype=np.uint8))
    small = run("predict", model, tmp_path / "small.idx")
    assert small.returncode == 1 and "2 images of 8x8 pixels, but the model expects 28x28 images" in small.stderr
    (tmp_path / "digit.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    jpeg = run("predict", model, tmp_path / "digit.jpg")
    assert jpeg.returncode == 1 and "digit.jpg: a JPEG image; predict reads PNG images, IDX files" in jpeg.stderr
    (tmp_path / "notes.txt").write_text("hello")
    text = run("predict", model, tmp_path / "notes.txt")
    assert text.returncode == 1 and "not a format predict reads" in text.stderr and ".npy" in text.stderr
    for result in (big, small, jpeg, text):
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_lying_npy_header_and_debug_flag(trained, tmp_path):
    out, _ = trained
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 784), }"
    header += b" " * (117 - len(header)) + b"\n"
    (tmp_path / "lie.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 64)
    result = run("predict", out / "models" / "m.npz", tmp_path / "lie.npy")
    assert result.returncode == 1 and "lie.npy" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    debug = run("--debug", "predict", out / "models" / "m.npz", tmp_path / "lie.npy")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_unwritable_outputs_fail_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    for flag in ("--save", "--plots"):
        target = tmp_path / "file" / "sub" / ("m.npz" if flag == "--save" else "plots")
        result = run("train", *FAST, flag, target)
        assert result.returncode == 1 and "cannot write there" in result.stderr, result.stderr
        assert "Epoch" not in result.stdout


def test_evaluate_plots(trained, tmp_path):
    out, _ = trained
    result = run("evaluate", out / "models" / "m.npz", "--plots", tmp_path / "ev")
    assert result.returncode == 0, result.stderr
    for name in ("class_distribution.png", "confusion_matrix.png", "samples.png", "cost.png"):
        assert (tmp_path / "ev" / name).stat().st_size > 10_000


def test_save_through_a_symlink_keeps_the_link(tmp_path):
    (tmp_path / "runs").mkdir()
    real = tmp_path / "runs" / "r1.npz"
    real.write_bytes(b"old")
    real.chmod(0o600)
    (tmp_path / "latest.npz").symlink_to(real)
    result = run("train", *FAST, "--save", tmp_path / "latest.npz")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "latest.npz").is_symlink()
    assert NeuralNetwork.load(real).epochs_trained == 3 and (real.stat().st_mode & 0o777) == 0o600


def test_model_remembers_its_dataset(tmp_path):
    """evaluate defaults to the training dataset, warns on another; predict names the classes."""
    d = idx_dataset(tmp_path / "shapes", n_train=40, n_test=9, side=28, n_classes=3)
    assert run("train", "--dataset", d, "--epochs", "2", "--hidden", "4", "--save", tmp_path / "s.npz").returncode == 0
    assert NeuralNetwork.load(tmp_path / "s.npz").data_info == {"dataset": str(d), "class_names": ["0", "1", "2"]}
    own = run("evaluate", tmp_path / "s.npz", "--json")
    assert own.returncode == 0 and json.loads(own.stdout)["n_samples"] == 9 and "warning" not in own.stderr
    other = run("evaluate", tmp_path / "s.npz", "--dataset", "mnist-sample")
    assert "warning: " in other.stderr and "trained on" in other.stderr


def test_bench_table_json_markdown_and_plots(tmp_path):
    env = dict(os.environ, FASTSCRATCH_BENCH_DATASET="mnist-sample")
    result = run("bench", "--frameworks", "numpy,keras", "--batch-sizes", "256,full", "--epochs", "2",
                 "--hidden", "32", "--json", tmp_path / "b.json", "--markdown", tmp_path / "b.md",
                 "--plot", tmp_path / "plots", "--max-epochs", "3", env=env)
    assert result.returncode == 0, result.stderr
    assert "SGEMM (128x784)x(784x128):" in result.stdout and "vs keras" in result.stdout and "vs jax" in result.stdout
    assert "interleaved rounds" in result.stdout
    record = json.loads((tmp_path / "b.json").read_text())
    numpy_runs = [r for r in record["results"] if r["workload"]["framework"] == "fastscratch-numpy"]
    assert len(numpy_runs) == 2 and all(len(r["epoch_seconds"]) == 2 and r["gflops"] > 0 for r in numpy_runs)
    keras_runs = [r for r in record["results"] if r["workload"]["framework"] == "tf.keras"]
    assert all(r["status"] == "ok" or r["status"].startswith("skipped") for r in keras_runs)
    markdown = (tmp_path / "b.md").read_text()
    assert markdown.startswith("`fastscratch bench --frameworks") and "| batch | framework |" in markdown
    assert png_size(tmp_path / "plots" / "throughput.png") == (700, 450)
    assert png_size(tmp_path / "plots" / "accuracy_vs_time.png") == (700, 450)


def test_evaluate_refuses_when_the_recorded_dataset_is_gone(tmp_path):
    d = idx_dataset(tmp_path / "gone", n_train=20, n_test=10, side=28, n_classes=10)
    assert run("train", "--dataset", d, "--epochs", "1", "--hidden", "4", "--save", tmp_path / "g.npz").returncode == 0
    for f in d.iterdir():
        f.unlink()
    d.rmdir()
    result = run("evaluate", tmp_path / "g.npz")
    assert result.returncode == 1 and "not there any more" in result.stderr and "--dataset" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--dataset", "bogus"], "unknown dataset"),
    (["--warmup", "-1"], "non-negative integer"),
    (["--target", "2"], "accuracy in (0, 1]"),
    (["--json", ""], "empty string"),
])
def test_bench_bad_arguments(args, message):
    result = run("bench", *args)
    assert result.returncode == 2 and message in result.stderr


def test_compare_checks_its_output_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    result = run("compare", "--epochs", "1", "--hidden", "4", "--no-keras", "--out", tmp_path / "file" / "x")
    assert result.returncode == 1 and "cannot write there" in result.stderr
    assert "Epoch" not in result.stdout and "fastscratch-" not in result.stdout


def test_checkpoint_and_resume_from_the_command_line(tmp_path):
    """--checkpoint saves the run; the same command with --resume continues it (more --epochs extend
    it), and the result equals one uninterrupted run; misuse is refused before any training."""
    data = idx_dataset(tmp_path / "data", 60, 20, 4, 3)
    base = ["train", "--dataset", data, "--hidden", "8", "--batch-size", "16", "--no-progress", "--seed", "3"]
    first = run(*base, "--epochs", "2", "--checkpoint", tmp_path / "run.npz", "--checkpoint-every", "2")
    assert first.returncode == 0, first.stderr
    again = run(*base, "--epochs", "2", "--checkpoint", tmp_path / "run.npz")
    assert again.returncode == 1 and "exists; add --resume" in again.stderr
    more = run(*base, "--epochs", "5", "--checkpoint", tmp_path / "run.npz", "--resume", "--save", tmp_path / "m.npz")
    assert more.returncode == 0, more.stderr
    assert "Resuming from" in more.stdout and "2 of 5 epochs done" in more.stdout
    straight = run(*base, "--epochs", "5", "--save", tmp_path / "straight.npz")
    assert straight.returncode == 0, straight.stderr
    for a, b in zip(NeuralNetwork.load(tmp_path / "m.npz").parameters,
                    NeuralNetwork.load(tmp_path / "straight.npz").parameters):
        np.testing.assert_array_equal(a, b)
    other = run(*base, "--epochs", "6", "--lr", "0.5", "--checkpoint", tmp_path / "run.npz", "--resume")
    assert other.returncode == 1 and "lr: checkpoint 0.1, now 0.5" in other.stderr and "Traceback" not in other.stderr
    info = run("info", tmp_path / "run.npz")
    assert info.returncode == 0 and "training checkpoint: 5 of 5 epochs, finished; lr 0.1, batch 16, sgd" in info.stdout
    same = run(*base, "--checkpoint", tmp_path / "x.npz", "--save", tmp_path / "x.npz")
    assert same.returncode == 1 and "--save and --checkpoint name the same file" in same.stderr
    usage = run(*base, "--resume")
    assert usage.returncode == 2 and "--resume needs --checkpoint" in usage.stderr
