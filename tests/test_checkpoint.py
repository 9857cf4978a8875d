"""Checkpoints: fit(checkpoint=, resume=) saves the whole training state and resumes bit-identically;
divergence (NaN, infinity or a finite blow-up) stops training with the last sound weights."""

import json
import math
import os
import warnings

import numpy as np
import pytest

from fastscratch import NeuralNetwork, available_backends
from fastscratch.network import TrainingDivergedWarning
from fastscratch.io.model_files import load_checkpoint

BACKENDS = available_backends()


class Stop(Exception):
    """Raised from on_epoch_end to cut a run short, standing in for a crash."""


def _state(net):
    """Everything a resumed run must reproduce: parameters, optimizer state and step count,
    generator state, and the history (without wall times)."""
    history = {k: v for k, v in net.history.to_dict().items() if k not in ("seconds", "samples_per_second")}
    opt = net.optimizer
    state = {kind: [a.copy() for a in arrays] for kind, arrays in opt.state.items()} if opt else {}
    return ([p.copy() for p in net.parameters], state, opt.iterations if opt else None,
            json.dumps(net.rng.bit_generator.state, sort_keys=True), json.dumps(history, sort_keys=True))


def _assert_same_state(a, b):
    params_a, state_a, it_a, rng_a, hist_a = _state(a)
    params_b, state_b, it_b, rng_b, hist_b = _state(b)
    for x, y in zip(params_a, params_b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert state_a.keys() == state_b.keys()
    for kind in state_a:
        for x, y in zip(state_a[kind], state_b[kind], strict=True):
            np.testing.assert_array_equal(x, y)
    assert (it_a, rng_a, hist_a) == (it_b, rng_b, hist_b)


CASES = {
    "sgd": dict(optimizer="sgd", batch_size=16),
    "momentum-dropout": dict(optimizer="momentum", batch_size=16, dropout=0.2),
    "adam-cosine-decay": dict(optimizer="adam", batch_size=32, lr_schedule="cosine", weight_decay=1e-3, lr=0.01),
    "early-stopping": dict(optimizer="sgd", batch_size=8, early_stopping=2, monitor="test_loss", lr=0.5),
    "full-batch": dict(optimizer="momentum", batch_size=None),
}


def _make(X, case, backend, seed=3):
    dropout = case.get("dropout", 0.0)
    return NeuralNetwork([X.shape[1], 16, 8, 3], seed=seed, backend=backend, dropout=dropout)


def _fit_args(case):
    return {k: v for k, v in case.items() if k != "dropout"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("stop_after", [1, 4])
def test_a_run_stopped_and_resumed_matches_one_never_stopped(tmp_path, blobs, backend, name, stop_after):
    X, y = blobs
    case = CASES[name]
    straight = _make(X, case, backend)
    straight.fit(X, y, X, y, epochs=8, verbose=False, **_fit_args(case))

    path = tmp_path / "run.npz"
    first = _make(X, case, backend)

    def crash(history):
        if len(history) == stop_after:
            raise Stop

    with pytest.raises(Stop):
        first.fit(X, y, X, y, epochs=8, verbose=False, checkpoint=path, on_epoch_end=crash, **_fit_args(case))
    # the state of `first` is gone with the "crash": a new network continues from the file
    resumed = _make(X, case, backend)
    resumed.fit(X, y, X, y, epochs=8, verbose=False, checkpoint=path, resume=True, **_fit_args(case))
    _assert_same_state(straight, resumed)
    # the final checkpoint holds the final state, and reads as a model
    _assert_same_state(straight, NeuralNetwork.load(path))
    assert load_checkpoint(path, NeuralNetwork).record["finished"] in ("completed", "early_stopping")


def test_checkpoint_every_n_epochs(tmp_path, blobs):
    X, y = blobs
    path = tmp_path / "run.npz"
    seen = []

    def look(history):
        seen.append(len(NeuralNetwork.load(path).history) if path.exists() else 0)

    NeuralNetwork([4, 8, 3], seed=0).fit(X, y, epochs=7, batch_size=16, verbose=False, checkpoint=path,
                                         checkpoint_every=3, on_epoch_end=look)
    # on_epoch_end runs before the epoch's save: epoch 4 sees the save of epoch 3, ...
    assert seen == [0, 0, 0, 3, 3, 3, 6]
    saved = load_checkpoint(path, NeuralNetwork)
    net, record, best = saved.net, saved.record, saved.best
    assert len(net.history) == 7 and record["finished"] == "completed" and best is None
    assert (record["first_epoch"], record["target_epoch"]) == (0, 7)


def test_ctrl_c_saves_a_checkpoint_of_the_last_complete_epoch(tmp_path, blobs):
    X, y = blobs
    path = tmp_path / "run.npz"
    straight = NeuralNetwork([4, 8, 3], seed=1)
    straight.fit(X, y, epochs=5, batch_size=16, verbose=False)
    net = NeuralNetwork([4, 8, 3], seed=1)
    original = net._evaluate

    def interrupt_in_epoch_3(*args, **kwargs):  # while epoch 3 scores its test set
        if len(net.history) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    net._evaluate = interrupt_in_epoch_3
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, X, y, epochs=5, batch_size=16, verbose=False, checkpoint=path, checkpoint_every=100)
    saved = NeuralNetwork.load(path)
    assert len(saved.history) == 2
    resumed = NeuralNetwork([4, 8, 3], seed=1)
    resumed.fit(X, y, X, y, epochs=5, batch_size=16, verbose=False, checkpoint=path, resume=True)
    for a, b in zip(resumed.parameters, straight.parameters):
        np.testing.assert_array_equal(a, b)


def test_an_existing_checkpoint_is_never_overwritten_without_resume(tmp_path, blobs):
    X, y = blobs
    path = tmp_path / "run.npz"
    NeuralNetwork([4, 8, 3], seed=0).fit(X, y, epochs=2, verbose=False, checkpoint=path)
    before = path.read_bytes()
    net = NeuralNetwork([4, 8, 3], seed=0)
    with pytest.raises(FileExistsError, match="resume=True"):
        net.fit(X, y, epochs=2, verbose=False, checkpoint=path)
    assert path.read_bytes() == before and len(net.history) == 0


def test_resume_without_a_checkpoint_file_starts_afresh(tmp_path, blobs):
    X, y = blobs
    fresh = NeuralNetwork([4, 8, 3], seed=0)
    fresh.fit(X, y, epochs=3, verbose=False)
    net = NeuralNetwork([4, 8, 3], seed=0)
    net.fit(X, y, epochs=3, verbose=False, checkpoint=tmp_path / "new.npz", resume=True)
    _assert_same_state(fresh, net)


def test_resuming_a_finished_run_trains_nothing_and_more_epochs_extend_it(tmp_path, blobs):
    X, y = blobs
    path = tmp_path / "run.npz"
    NeuralNetwork([4, 8, 3], seed=0).fit(X, y, epochs=3, batch_size=16, verbose=False, checkpoint=path)
    again = NeuralNetwork([4, 8, 3], seed=0)
    again.fit(X, y, epochs=3, batch_size=16, verbose=False, checkpoint=path, resume=True)
    assert len(again.history) == 3
    longer = NeuralNetwork([4, 8, 3], seed=0)
    longer.fit(X, y, epochs=6, batch_size=16, verbose=False, checkpoint=path, resume=True)
    straight = NeuralNetwork([4, 8, 3], seed=0)
    straight.fit(X, y, epochs=6, batch_size=16, verbose=False)
    _assert_same_state(straight, longer)
    with pytest.raises(ValueError, match="already holds 6 epochs"):
        NeuralNetwork([4, 8, 3], seed=0).fit(X, y, epochs=2, verbose=False, batch_size=16, checkpoint=path,
                                             resume=True)


def test_an_early_stopped_run_stays_stopped(tmp_path, blobs):
    X, y = blobs
    path = tmp_path / "run.npz"
    args = dict(epochs=200, batch_size=8, lr=0.5, early_stopping=2, verbose=False, checkpoint=path)
    first = NeuralNetwork([4, 8, 3], seed=0)
    first.fit(X, y, X, y, **args)
    assert len(first.history) < 200
    again = NeuralNetwork([4, 8, 3], seed=0)
    again.fit(X, y, X, y, resume=True, **args)
    _assert_same_state(first, again)


@pytest.mark.parametrize("change, message", [
    (dict(lr=0.2), "lr: checkpoint 0.1, now 0.2"),
    (dict(batch_size=8), "batch_size: checkpoint 16, now 8"),
    (dict(optimizer="adam"), "optimizer"),
    (dict(weight_decay=0.1), "weight_decay"),
    (dict(lr_schedule="step"), "lr_schedule"),
    (dict(max_loss=10.0), "max_loss"),
])
def test_resume_refuses_other_settings(tmp_path, blobs, change, message):
    X, y = blobs
    path = tmp_path / "run.npz"
    args = dict(epochs=4, batch_size=16, lr=0.1, verbose=False, checkpoint=path)
    with pytest.raises(Stop):
        NeuralNetwork([4, 8, 3], seed=0).fit(X, y, on_epoch_end=lambda h: (_ for _ in ()).throw(Stop), **args)
    before = path.read_bytes()
    net = NeuralNetwork([4, 8, 3], seed=0)
    with pytest.raises(ValueError, match=f"cannot resume: the training settings differ.*{message}"):
        net.fit(X, y, resume=True, **{**args, **change})
    assert path.read_bytes() == before and len(net.history) == 0


def test_resume_refuses_other_data_or_another_network(tmp_path, blobs):
    X, y = blobs
    path = tmp_path / "run.npz"
    NeuralNetwork([4, 8, 3], seed=0).fit(X, y, X, y, epochs=2, verbose=False, checkpoint=path)
    with pytest.raises(ValueError, match="training data differ"):
        NeuralNetwork([4, 8, 3], seed=0).fit(X[:-1], y[:-1], X, y, epochs=3, verbose=False, checkpoint=path,
                                             resume=True)
    X2 = X.copy()
    X2[0, 0] += 1
    with pytest.raises(ValueError, match="training data differ"):
        NeuralNetwork([4, 8, 3], seed=0).fit(X2, y, X, y, epochs=3, verbose=False, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="testing data differ"):
        NeuralNetwork([4, 8, 3], seed=0).fit(X, y, epochs=3, verbose=False, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match=r"different network \(architecture: checkpoint \[4, 8, 3\], this network "
                                         r"\[4, 9, 3\]\)"):
        NeuralNetwork([4, 9, 3], seed=0).fit(X, y, X, y, epochs=3, verbose=False, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="seed: checkpoint 0, this network 1"):
        NeuralNetwork([4, 8, 3], seed=1).fit(X, y, X, y, epochs=3, verbose=False, checkpoint=path, resume=True)


def test_a_model_file_is_not_a_checkpoint(tmp_path, blobs):
    X, y = blobs
    path = tmp_path / "model.npz"
    net = NeuralNetwork([4, 8, 3], seed=0)
    net.fit(X, y, epochs=1, verbose=False)
    net.save(path)
    with pytest.raises(ValueError, match="a model file, not a training checkpoint"):
        NeuralNetwork([4, 8, 3], seed=0).fit(X, y, epochs=2, verbose=False, checkpoint=path, resume=True)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(resume=True), ValueError, "resume=True needs checkpoint"),
    (dict(checkpoint=3), TypeError, "checkpoint must be a file path"),
    (dict(checkpoint="run.npz", resume="yes"), TypeError, "resume must be True or False"),
    (dict(checkpoint="run.npz", checkpoint_every=0), ValueError, "checkpoint_every"),
    (dict(max_loss=-1.0), ValueError, "max_loss"),
    (dict(on_divergence="ignore"), ValueError, "on_divergence must be 'raise' or 'warn'"),
])
def test_bad_checkpoint_arguments(tmp_path, blobs, monkeypatch, kwargs, error, message):
    X, y = blobs
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message):
        NeuralNetwork([4, 8, 3], seed=0).fit(X, y, epochs=1, verbose=False, **kwargs)
    assert os.listdir(tmp_path) == []


def test_checkpoint_path_that_is_a_directory(tmp_path, blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="is a directory"):
        NeuralNetwork([4, 8, 3], seed=0).fit(X, y, epochs=1, verbose=False, checkpoint=tmp_path)


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path, blobs, monkeypatch):
    """A write that fails half way (disk full, a crash) never replaces the last good checkpoint."""
    X, y = blobs
    path = tmp_path / "run.npz"
    net = NeuralNetwork([4, 8, 3], seed=0)
    calls = {"n": 0}
    real_savez = np.savez

    def failing_savez(f, **arrays):
        calls["n"] += 1
        if calls["n"] >= 3:  # the disk fills up during the third save, and stays full
            f.write(b"PK\x03\x04 half a file")
            raise OSError(28, "No space left on device")
        real_savez(f, **arrays)

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="No space left") as info:
        net.fit(X, y, epochs=5, batch_size=16, verbose=False, checkpoint=path)
    # the error path tried once more to save epoch 3, and says that failed too
    assert calls["n"] == 4 and "saving the checkpoint" in "".join(getattr(info.value, "__notes__", []))
    assert sorted(os.listdir(tmp_path)) == ["run.npz"]  # no temporary file left behind
    assert len(NeuralNetwork.load(path).history) == 2


# ----------------------------------------------------------------- divergence
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_size", [None, 128])
def test_a_learning_rate_that_blows_up_stops_with_the_last_sound_weights(backend, batch_size):
    """lr=1e3 on the tutorial network: the loss explodes to ~1e6 while staying finite (full batch:
    epoch 2's first batch), or to inf; either way training stops, naming epoch and batch."""
    from fastscratch import datasets

    data = datasets.load_dataset("mnist-sample")
    X, Xt = datasets.to_features(data.X_train), datasets.to_features(data.X_test)
    net = NeuralNetwork([784, 128, 64, 10], seed=0, backend=backend)
    initial = [p.copy() for p in net.parameters]
    with pytest.raises(FloatingPointError, match=r"training diverged at epoch \d+, batch \d+: the (mean )?loss") as info:
        net.fit(X, data.y_train, Xt, data.y_test, lr=1e3, epochs=10, batch_size=batch_size, verbose=False)
    message = str(info.value)
    assert "lr=1000" in message and "restored to the start of epoch" in message
    # the epoch that made the weights explode is undone: they are the initial ones again
    assert len(net.history) == 0
    for a, b in zip(net.parameters, initial):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(p).all() for p in net.parameters)


def test_a_finite_blow_up_is_caught_only_when_max_loss_allows(blobs):
    X, y = blobs
    # full batch, lr=100: mean losses 0.52, 370, 8.5e5, ... all finite
    net = NeuralNetwork([4, 8, 3], seed=0, backend="numpy")
    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 1: the mean loss 369.9 is above max_loss=1\d\d\."):
        net.fit(X, y, lr=100.0, epochs=5, verbose=False)
    assert len(net.history) == 0  # epoch 1's update is what blew up: undone
    net = NeuralNetwork([4, 8, 3], seed=0, backend="numpy")
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 1: the mean loss [\d.]+ is above max_loss=0.1\. "
                                                 r"The weights and optimizer state are unchanged"):
        net.fit(X, y, lr=100.0, epochs=5, verbose=False, max_loss=0.1)
    # with max_loss=inf only NaN/inf stop it: a finite explosion runs on
    net = NeuralNetwork([4, 8, 3], seed=0, backend="numpy")
    net.fit(X, y, lr=20.0, epochs=6, verbose=False, max_loss=math.inf)
    assert len(net.history) == 6 and net.history.cost[-1] > 1e9


def test_on_divergence_warn_returns_the_history_and_the_sound_weights(blobs):
    X, y = blobs
    raising = NeuralNetwork([4, 8, 3], seed=0, backend="numpy")
    with pytest.raises(FloatingPointError) as info:
        raising.fit(X, y, lr=1e38, epochs=5, batch_size=32, verbose=False)
    warning = NeuralNetwork([4, 8, 3], seed=0, backend="numpy")
    with pytest.warns(TrainingDivergedWarning) as record:
        history = warning.fit(X, y, lr=1e38, epochs=5, batch_size=32, verbose=False, on_divergence="warn")
    assert str(record[0].message) == str(info.value)
    assert history is warning.history and len(history) == len(raising.history)
    for a, b in zip(warning.parameters, raising.parameters):
        np.testing.assert_array_equal(a, b)


def test_default_max_loss_is_far_above_normal_training(digits):
    """The default limit never stops a healthy run, even one with a large, noisy learning rate."""
    X, y, Xt, yt = digits
    net = NeuralNetwork([64, 32, 10], seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.fit(X, y, Xt, yt, lr=2.0, epochs=20, batch_size=16, verbose=False)
    assert len(net.history) == 20


# ----------------------------------------------------- damaged checkpoint records
def _resigned_copy(path, out, change_meta=None, change_arrays=None):
    """A copy of the checkpoint with its metadata or arrays edited and the checksum recomputed
    (what a forger, or a buggy writer, would produce): only the structural checks can catch it."""
    from fastscratch.io.model_files import _digest

    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "metadata"}
        meta = json.loads(npz["metadata"].tobytes().decode())
    if change_meta:
        change_meta(meta)
    if change_arrays:
        change_arrays(arrays)
    meta["sha256"] = _digest(arrays, meta)
    np.savez(out, metadata=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return out


@pytest.fixture(scope="module")
def early_stopping_checkpoint(tmp_path_factory, blobs_module):
    X, y = blobs_module
    path = tmp_path_factory.mktemp("ckpt") / "run.npz"
    with pytest.raises(Stop):
        NeuralNetwork([4, 8, 3], seed=0).fit(
            X, y, X, y, epochs=9, batch_size=16, optimizer="adam", early_stopping=3, verbose=False, checkpoint=path,
            on_epoch_end=lambda h: len(h) == 4 and (_ for _ in ()).throw(Stop))
    return path


@pytest.fixture(scope="module")
def blobs_module():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, (3, 4))
    y = np.repeat(np.arange(3), 40)
    return (centers[y] + rng.normal(0, 1, (120, 4))).astype(np.float32), y


def test_the_checkpoint_fixture_holds_the_early_stopping_copy(early_stopping_checkpoint):
    saved = load_checkpoint(early_stopping_checkpoint, NeuralNetwork)
    net, record, best = saved.net, saved.record, saved.best
    assert len(net.history) == 4 and record["finished"] is None
    assert best is not None and len(best) == 4 * 3  # W0 b0 W1 b1, Adam's m and v of each
    assert saved.start is not None and len(saved.start) == 4 * 3 and saved.record["last_epoch_start"]["iterations"] > 0
    assert [b.shape for b in best[:4]] == [p.shape for p in net.parameters]


@pytest.mark.parametrize("change_meta, change_arrays, message", [
    (lambda m: m["checkpoint"].update(version=2), None, "checkpoint version 2 is not supported"),
    (lambda m: m["checkpoint"].update(version=True), None, "checkpoint version True is not supported"),
    (lambda m: m.update(checkpoint=[]), None, "checkpoint metadata is malformed"),
    (lambda m: m["checkpoint"].pop("data"), None, "checkpoint metadata is malformed"),
    (lambda m: m["checkpoint"]["fit"].pop("lr"), None, "checkpoint metadata 'fit' is malformed"),
    (lambda m: m["checkpoint"].update(first_epoch=5), None, "checkpoint epochs are inconsistent"),
    (lambda m: m["checkpoint"].update(target_epoch=3), None, "checkpoint epochs are inconsistent"),
    (lambda m: m["checkpoint"].update(first_epoch=-1), None, "checkpoint epochs are inconsistent"),
    (lambda m: m["checkpoint"].update(target_epoch=1e400), None, "checkpoint epochs are inconsistent"),
    (lambda m: m["checkpoint"]["data"].update(train=7), None, "checkpoint metadata 'data' is malformed"),
    (lambda m: m["checkpoint"]["early_stopping"].update(waited=99), None, "'early_stopping' is malformed"),
    (lambda m: m["checkpoint"]["early_stopping"].update(best_value=float("nan")), None,
     "'early_stopping' is malformed"),
    (lambda m: m["checkpoint"]["early_stopping"].update(best_value=10**400), None, "'early_stopping' is malformed"),
    (lambda m: m["checkpoint"].update(finished="maybe"), None, "'finished' is 'maybe'"),
    (lambda m: m.update(optimizer=None), lambda a: [a.pop(k) for k in list(a) if k.startswith("opt.")],
     "checkpoint metadata without an optimizer"),
    (None, lambda a: a.pop("best.3"), r"arrays missing: \['best.3'\]"),
    (None, lambda a: a.update({"best.12": a["best.0"]}), r"unexpected arrays: \['best.12'\]"),
    (None, lambda a: a.update({"best.0": a["best.0"][:, :1]}), r"array best.0 has shape \(4, 1\), expected \(4, 8\)"),
    (None, lambda a: a.update({"best.1": a["best.1"].astype(np.float64)}), "array best.1 has dtype float64"),
    (None, lambda a: a["best.2"].__setitem__((0, 0), np.inf), "array best.2 holds NaN or infinite values"),
    (lambda m: m["checkpoint"]["early_stopping"].update(best_iterations=None), None, r"unexpected arrays: \['best.0'"),
    (lambda m: m["checkpoint"].update(last_epoch_start={"iterations": -1}), None, "'last_epoch_start' is malformed"),
    (lambda m: m["checkpoint"].update(last_epoch_start=None), None, r"unexpected arrays: \['start.0'"),
    (None, lambda a: a.pop("start.5"), r"arrays missing: \['start.5'\]"),
])
def test_damaged_checkpoint_records_are_refused_with_the_reason(early_stopping_checkpoint, tmp_path, change_meta,
                                                               change_arrays, message):
    bad = _resigned_copy(early_stopping_checkpoint, tmp_path / "bad.npz", change_meta, change_arrays)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(bad, NeuralNetwork)


# ------------------------------------------ regressions found in review (each failed before its fix)
def test_an_error_in_a_callback_at_the_early_stopping_epoch_keeps_the_stop(tmp_path, blobs):
    X, y = blobs
    args = dict(epochs=40, batch_size=32, lr=0.5, early_stopping=2, verbose=False)
    straight = NeuralNetwork([4, 8, 3], seed=0)
    straight.fit(X, y, X, y, **args)
    stopped_at = len(straight.history)
    assert stopped_at < 40
    path = tmp_path / "run.npz"

    def fail_at_the_stop(history):
        if len(history) == stopped_at:
            raise Stop

    with pytest.raises(Stop):
        NeuralNetwork([4, 8, 3], seed=0).fit(X, y, X, y, checkpoint=path, on_epoch_end=fail_at_the_stop, **args)
    assert load_checkpoint(path, NeuralNetwork).record["finished"] == "early_stopping"
    resumed = NeuralNetwork([4, 8, 3], seed=0)
    resumed.fit(X, y, X, y, checkpoint=path, resume=True, **args)
    _assert_same_state(straight, resumed)


def test_a_run_that_ended_on_its_best_epoch_is_not_extended(tmp_path, blobs):
    X, y = blobs
    path = tmp_path / "run.npz"
    args = dict(batch_size=8, lr=1.0, early_stopping=50, verbose=False, checkpoint=path)
    net = NeuralNetwork([4, 8, 3], seed=0)
    net.fit(X, y, X, y, epochs=8, **args)
    saved = load_checkpoint(path, NeuralNetwork)
    best_epoch = saved.record["early_stopping"]["best_epoch"]
    assert best_epoch < 8  # (5 with this seed) so the weights are not the last epoch's
    with pytest.raises(ValueError, match=f"cannot extend that run: it ended with the weights of its best epoch "
                                         f"\\({best_epoch} of 8, restore_best\\)"):
        NeuralNetwork([4, 8, 3], seed=0).fit(X, y, X, y, epochs=12, resume=True, **args)
    # the same epochs is fine: nothing to do
    again = NeuralNetwork([4, 8, 3], seed=0)
    again.fit(X, y, X, y, epochs=8, resume=True, **args)
    _assert_same_state(net, again)


@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_right_after_resuming_goes_back_an_epoch_like_an_uninterrupted_run(tmp_path, blobs, backend):
    """Full batch, lr 20: epoch 3's first batch exceeds max_loss, so epoch 2's update is undone too;
    the checkpoint keeps the start of its last epoch so a resumed run can do the same."""
    X, y = blobs
    args = dict(epochs=6, lr=20.0, max_loss=30.0, on_divergence="warn", verbose=False)  # losses 0.52, 25.4, 3488
    straight = NeuralNetwork([4, 8, 3], seed=0, backend=backend)
    with pytest.warns(TrainingDivergedWarning, match="restored to the start of epoch 2") as straight_warning:
        straight.fit(X, y, **args)
    path = tmp_path / "run.npz"
    with pytest.raises(Stop):
        NeuralNetwork([4, 8, 3], seed=0, backend=backend).fit(
            X, y, checkpoint=path, on_epoch_end=lambda h: len(h) == 2 and (_ for _ in ()).throw(Stop), **args)
    resumed = NeuralNetwork([4, 8, 3], seed=0, backend=backend)
    with pytest.warns(TrainingDivergedWarning) as resumed_warning:
        resumed.fit(X, y, checkpoint=path, resume=True, **args)
    assert str(resumed_warning[0].message) == str(straight_warning[0].message)
    _assert_same_state(straight, resumed)
    assert len(resumed.history) == 1


def test_resuming_a_diverged_run_says_so(tmp_path, blobs):
    X, y = blobs
    path = tmp_path / "run.npz"
    args = dict(epochs=6, lr=20.0, max_loss=13.0, verbose=False, checkpoint=path)
    with pytest.warns(TrainingDivergedWarning):
        NeuralNetwork([4, 8, 3], seed=0).fit(X, y, on_divergence="warn", **args)
    assert load_checkpoint(path, NeuralNetwork).record["finished"] == "diverged"
    with pytest.raises(FloatingPointError, match="that run stopped because training diverged"):
        NeuralNetwork([4, 8, 3], seed=0).fit(X, y, resume=True, **args)
    with pytest.warns(TrainingDivergedWarning, match="that run stopped because training diverged"):
        NeuralNetwork([4, 8, 3], seed=0).fit(X, y, resume=True, on_divergence="warn", **args)


def test_a_nan_test_loss_never_becomes_the_best_and_the_checkpoint_stays_readable(tmp_path, blobs):
    X, y = blobs
    X_test = X.copy()
    X_test[0] = 3e38  # overflows in the forward pass: test loss NaN
    path = tmp_path / "run.npz"
    with pytest.raises(Stop):
        NeuralNetwork([4, 8, 3], seed=0).fit(
            X, y, X_test, y, epochs=5, early_stopping=3, verbose=False, checkpoint=path,
            on_epoch_end=lambda h: len(h) == 2 and (_ for _ in ()).throw(Stop))
    saved = load_checkpoint(path, NeuralNetwork)
    assert math.isnan(saved.net.history.test_cost[-1])
    assert saved.record["early_stopping"]["best_value"] is None and saved.record["early_stopping"]["waited"] == 2


def test_cosine_decay_with_other_epochs_is_refused_with_the_reason(tmp_path, blobs):
    X, y = blobs
    path = tmp_path / "run.npz"
    args = dict(batch_size=16, lr_schedule="cosine", verbose=False, checkpoint=path)
    with pytest.raises(Stop):
        NeuralNetwork([4, 8, 3], seed=0).fit(X, y, epochs=4, on_epoch_end=lambda h: (_ for _ in ()).throw(Stop),
                                             **args)
    with pytest.raises(ValueError, match="the cosine schedule anneals over the run's epochs, 4 in the checkpoint's "
                                         "run and 8 now"):
        NeuralNetwork([4, 8, 3], seed=0).fit(X, y, epochs=8, resume=True, **args)


def test_ctrl_c_in_the_first_epoch_writes_no_checkpoint(tmp_path, blobs):
    X, y = blobs
    path = tmp_path / "run.npz"
    net = NeuralNetwork([4, 8, 3], seed=0)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    net._evaluate = interrupt  # the first call is fit's max_loss, before any epoch
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, X, y, epochs=3, verbose=False, checkpoint=path)
    assert not path.exists()


def test_a_stale_temporary_of_another_target_is_left_alone(tmp_path):
    """Only the temporaries atomic_write makes for this very target, from dead writers, go."""
    from fastscratch.io.atomic import atomic_write

    dead = 2**22 + 12345  # above Linux's default pid_max of 2**22: no such process
    ours = tmp_path / f".model.{dead}-0123456789ab.tmp"
    other = tmp_path / f".model.2024-06-01.npz.{os.getpid()}-0123456789ab.tmp"  # looks like pid 2024
    for path in (ours, other):
        path.write_bytes(b"half")
    with atomic_write(tmp_path / "model") as f:
        f.write(b"whole")
    assert not ours.exists() and other.exists()
