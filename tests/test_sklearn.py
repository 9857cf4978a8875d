"""fastscratch.sklearn.ScratchMLPClassifier: scikit-learn's estimator contract and what users do with it."""

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", minversion="1.6")  # an optional extra: skip, not fail, where it is absent

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastscratch import Adam, NeuralNetwork  # noqa: E402
from fastscratch.activations import ACTIVATIONS  # noqa: E402
from fastscratch.sklearn import ScratchMLPClassifier  # noqa: E402


def _small(**params):
    """A quick configuration for behaviour tests (the defaults train 200 epochs)."""
    settings = dict(hidden_layer_sizes=(16,), epochs=20, learning_rate=0.01, random_state=0)
    settings.update(params)
    return ScratchMLPClassifier(**settings)


# ------------------------------------------------------------ scikit-learn's own checks
# Two configurations: the defaults a user gets (Adam, mini-batches "auto", float32,
# 200 epochs) and a contrasting one (plain SGD, full batch, float64, two tanh layers).
# Every check passes, so no check is marked expected-to-fail; the only skips are
# scikit-learn's own, decided by the environment: the array-API check without
# SCIPY_ARRAY_API=1, and the DataFrame checks where pandas is not installed.
@parametrize_with_checks([
    ScratchMLPClassifier(random_state=0),
    ScratchMLPClassifier(hidden_layer_sizes=(8, 8), activation="tanh", optimizer="sgd", learning_rate=0.1,
                         batch_size=None, epochs=50, dtype="float64", random_state=0),
])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------ model selection
@pytest.fixture(scope="module")
def digits_raw():
    """scikit-learn's 8x8 digits, unscaled (0..16): a pipeline's scaler does the work."""
    return load_digits(return_X_y=True)


def test_cross_val_score_on_digits_in_a_pipeline(digits_raw):
    X, y = digits_raw
    model = make_pipeline(StandardScaler(), ScratchMLPClassifier(random_state=0))  # the defaults
    scores = cross_val_score(model, X, y, cv=3)
    assert scores.shape == (3,)
    assert scores.mean() >= 0.93, scores


def test_grid_search_over_two_hyperparameters(digits_raw):
    X, y = digits_raw
    pipe = make_pipeline(StandardScaler(), _small(epochs=10))
    grid = {"scratchmlpclassifier__hidden_layer_sizes": [(8,), (32,)],
            "scratchmlpclassifier__learning_rate": [1e-4, 1e-2]}
    search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    # a learning rate 100x smaller cannot get far in 10 epochs: the search must see that
    assert search.best_params_["scratchmlpclassifier__learning_rate"] == 1e-2
    assert search.best_estimator_[-1].n_iter_ == 10
    assert search.score(X, y) > 0.9


def test_fitted_estimators_travel_through_joblib_workers(blobs):
    X, y = blobs
    # n_jobs=2: the clones go to worker processes and come back fitted, pickled both ways
    result = cross_validate(_small(), X, y, cv=2, n_jobs=2, return_estimator=True)
    for estimator in result["estimator"]:
        assert isinstance(estimator.network_, NeuralNetwork)
        assert estimator.predict(X).shape == (len(X),)


@pytest.mark.filterwarnings("error")  # e.g. log_loss warns when probabilities do not sum to 1
@pytest.mark.parametrize("scoring", ["neg_log_loss", "roc_auc_ovr", "f1_macro"])
def test_probability_scorers_accept_predict_proba(blobs, scoring):
    X, y = blobs
    labels = np.array(["x", "y", "z"])[y]
    scores = cross_val_score(_small(epochs=40), X, labels, cv=3, scoring=scoring)
    assert np.all(np.isfinite(scores))
    assert scores.mean() > (-0.5 if scoring == "neg_log_loss" else 0.85)


# ------------------------------------------------------------ labels
def test_string_labels_round_trip(blobs):
    X, y = blobs
    names = np.array(["setosa", "versicolor", "virginica"])
    clf = _small(epochs=40).fit(X, names[y])
    assert clf.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    predicted = clf.predict(X)
    assert predicted.dtype == names.dtype
    assert set(predicted) <= set(names)
    assert clf.score(X, names[y]) > 0.9


def test_non_contiguous_integer_labels(blobs):
    X, y = blobs
    labels = np.array([40, -3, 7])[y]
    clf = _small(epochs=40).fit(X, labels)
    assert clf.classes_.tolist() == [-3, 7, 40]
    assert clf.network_.n_classes == 3
    assert np.mean(clf.predict(X) == labels) > 0.9
    # probability columns follow classes_
    np.testing.assert_array_equal(clf.classes_[clf.predict_proba(X).argmax(axis=1)], clf.predict(X))


def test_binary_target_uses_two_softmax_units(blobs):
    X, y = blobs
    keep = y < 2
    labels = np.where(y[keep] == 0, "no", "yes")
    clf = _small(epochs=40).fit(X[keep], labels)
    proba = clf.predict_proba(X[keep])
    assert proba.shape == (keep.sum(), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert clf.network_.architecture[-1] == 2
    assert clf.score(X[keep], labels) > 0.9
    np.testing.assert_allclose(clf.predict_log_proba(X[keep]), np.log(proba))


def test_one_class_is_refused_with_a_clear_message(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="at least 2 classes.*only one class: 'a'"):
        _small().fit(X, np.full(len(X), "a"))
    with pytest.raises(ValueError, match="only one class"):
        _small().partial_fit(X, np.zeros(len(X)), classes=[0])


def test_regression_targets_are_refused(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="Unknown label type"):
        _small().fit(X, np.linspace(0, 1, len(X)))


# ------------------------------------------------------------ continuing training
def test_partial_fit_continues_like_one_long_fit(blobs):
    """k partial_fit calls train the same network as fit(epochs=k), bit for bit: each call
    continues the weights, the Adam moments and step count, and the shuffling generator.
    (Were the optimizer state reset between calls, the weights would differ.)"""
    X, y = blobs
    whole = _small(epochs=3, batch_size=32).fit(X, y)
    parts = _small(batch_size=32)  # mini-batches: each epoch draws a new shuffle
    for _ in range(3):
        parts.partial_fit(X, y, classes=np.unique(y))
    assert parts.n_iter_ == 3 and len(parts.loss_curve_) == 3
    assert parts.network_.optimizer.iterations == whole.network_.optimizer.iterations == 3 * 4  # 120 / 32
    for a, b in zip(parts.coefs_ + parts.intercepts_, whole.coefs_ + whole.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert parts.loss_curve_ == whole.loss_curve_


def test_partial_fit_on_batches_missing_a_class(blobs):
    X, y = blobs
    clf = _small(learning_rate=0.05)
    order = np.argsort(y, kind="stable")  # batches of one or two classes at a time
    for rows in np.array_split(order, 6):
        clf.partial_fit(X[rows], y[rows], classes=[0, 1, 2])
    assert clf.classes_.tolist() == [0, 1, 2] and clf.n_iter_ == 6
    assert clf.predict_proba(X).shape == (len(X), 3)


def test_partial_fit_lowers_the_loss(blobs):
    X, y = blobs
    clf = _small(batch_size=16)
    for _ in range(15):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert clf.loss_curve_[-1] < 0.5 * clf.loss_curve_[0]


def test_partial_fit_after_fit_and_its_errors(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        _small().partial_fit(X, y)
    with pytest.raises(ValueError, match=r"labels \[2\] that are not in classes"):
        _small().partial_fit(X, y, classes=[0, 1])
    clf = _small(epochs=2).fit(X, y)
    clf.partial_fit(X, y)  # fit set classes_: partial_fit continues from there
    assert clf.n_iter_ == 3
    with pytest.raises(ValueError, match="is not the same as on earlier calls"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="labels \\[5\\] that were not among the classes"):
        clf.partial_fit(X, np.where(y == 2, 5, y))
    with pytest.raises(ValueError, match="X has 3 features, but ScratchMLPClassifier is expecting 4"):
        clf.partial_fit(X[:, :3], y)
    clf.set_params(hidden_layer_sizes=(4,))
    with pytest.raises(ValueError, match="changed since the network was built"):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 3  # refused calls trained nothing


def test_warm_start_continues_and_cold_fit_restarts(blobs):
    X, y = blobs
    whole = _small(epochs=5, batch_size=32).fit(X, y)
    warm = _small(epochs=3, batch_size=32, warm_start=True).fit(X, y)
    warm.set_params(epochs=2).fit(X, y)
    assert warm.n_iter_ == 5
    for a, b in zip(warm.coefs_, whole.coefs_):
        np.testing.assert_array_equal(a, b)
    cold = _small(epochs=5).fit(X, y)
    first = cold.predict_proba(X)
    cold.fit(X, y)  # warm_start=False: a new network from the same random_state
    assert cold.n_iter_ == 5
    np.testing.assert_array_equal(cold.predict_proba(X), first)


def test_changing_the_optimizer_starts_its_state_afresh(blobs):
    X, y = blobs
    clf = _small(epochs=2).fit(X, y)
    clf.set_params(optimizer="sgd")
    clf.partial_fit(X, y)
    assert clf.network_.optimizer.name == "sgd" and clf.network_.optimizer.iterations == 1


# ------------------------------------------------------------ clone, params, pickle
def test_clone_and_params(blobs):
    X, y = blobs
    user_adam = Adam(beta1=0.8)
    clf = _small(optimizer=user_adam, epochs=3).fit(X, y)
    # the optimizer object passed in is a hyperparameter: training never touches it
    assert user_adam.iterations == 0 and user_adam.state == {}
    assert clf.network_.optimizer is not user_adam and clf.network_.optimizer.beta1 == 0.8
    twin = clone(clf)
    assert not hasattr(twin, "network_") and not hasattr(twin, "classes_")
    assert twin.get_params()["hidden_layer_sizes"] == (16,)
    assert twin.get_params()["optimizer"].config() == user_adam.config()
    twin.fit(X, y)  # same random_state, same hyperparameters: the same model
    np.testing.assert_array_equal(twin.predict_proba(X), clf.predict_proba(X))
    twin.set_params(epochs=7, hidden_layer_sizes=[5, 5])
    assert twin.get_params()["epochs"] == 7 and clf.get_params()["epochs"] == 3


def test_pickle_round_trip_predicts_identically_and_can_resume(blobs):
    X, y = blobs
    clf = _small(epochs=4).fit(X, np.array(["a", "b", "c"])[y])
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(copy.predict(X), clf.predict(X))
    assert copy.network_.kernels is clf.network_.kernels  # the same backend module, found again
    assert copy.loss_curve_ == clf.loss_curve_
    # the generator and Adam state came along: resuming either gives the same model
    labels = np.array(["a", "b", "c"])[y]
    clf.partial_fit(X, labels)
    copy.partial_fit(X, labels)
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))


def test_joblib_dump_and_load(tmp_path, blobs):
    joblib = pytest.importorskip("joblib")
    X, y = blobs
    clf = _small().fit(X, y)
    joblib.dump(clf, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_unfitted_estimator_says_so(blobs):
    X, _ = blobs
    clf = _small()
    for method in (clf.predict, clf.predict_proba, clf.predict_log_proba):
        with pytest.raises(NotFittedError):
            method(X)
    with pytest.raises(NotFittedError):
        clf.coefs_
    pickle.loads(pickle.dumps(clf))  # an unfitted estimator pickles too


# ------------------------------------------------------------ attributes and options
def test_fitted_attributes(blobs):
    X, y = blobs
    clf = _small(hidden_layer_sizes=(6, 5), epochs=7).fit(X, y)
    assert clf.n_features_in_ == 4 and not hasattr(clf, "feature_names_in_")
    assert clf.n_iter_ == 7 and len(clf.loss_curve_) == 7
    assert clf.loss_curve_ == clf.network_.history.cost
    assert [W.shape for W in clf.coefs_] == [(4, 6), (6, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(6,), (5,), (3,)]
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert clf.predict_proba(X).dtype == np.float32


def test_float64_and_bare_int_hidden_layer(blobs):
    X, y = blobs
    clf = _small(dtype="float64", hidden_layer_sizes=7).fit(X, y)
    assert clf.network_.architecture == [4, 7, 3]
    assert clf.predict_proba(X).dtype == np.float64


def test_no_hidden_layer_is_softmax_regression(blobs):
    X, y = blobs
    clf = _small(hidden_layer_sizes=(), learning_rate=0.1).fit(X, y)
    assert clf.network_.architecture == [4, 3] and [W.shape for W in clf.coefs_] == [(4, 3)]
    assert clf.score(X, y) > 0.9


def test_feature_names_from_a_dataframe(blobs):
    pd = pytest.importorskip("pandas")
    X, y = blobs
    frame = pd.DataFrame(X, columns=["sepal_l", "sepal_w", "petal_l", "petal_w"])
    clf = _small().fit(frame, y)
    assert clf.feature_names_in_.tolist() == ["sepal_l", "sepal_w", "petal_l", "petal_w"]
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(clf.predict(frame), clf.predict(X))
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame.rename(columns={"petal_w": "width"}))
    clf.fit(X, y)  # a plain array: the names are forgotten
    assert not hasattr(clf, "feature_names_in_")


def test_early_stopping_holds_out_data_and_keeps_the_best_epoch(digits):
    X_train, y_train, _, _ = digits
    clf = _small(early_stopping=True, n_iter_no_change=3, epochs=500, learning_rate=0.05,
                 validation_fraction=0.2).fit(X_train, y_train)
    assert clf.n_iter_ < 500  # it stopped
    assert len(clf.validation_scores_) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.best_validation_score_ == max(clf.validation_scores_) > 0.9
    # the network was given the 20% it held out, stratified, as its test data
    history = clf.network_.history
    assert history.test_accuracy == clf.validation_scores_
    # warm-started without holding data out: those two epochs have no validation score
    first = clf.n_iter_
    clf.set_params(warm_start=True, early_stopping=False, epochs=2).fit(X_train, y_train)
    assert clf.validation_scores_ is None
    clf.set_params(early_stopping=True, epochs=500).fit(X_train, y_train)
    scores = np.array(clf.validation_scores_)
    assert len(scores) == clf.n_iter_ > first + 2
    assert np.isnan(scores[first:first + 2]).all() and np.isfinite(np.delete(scores, [first, first + 1])).all()
    assert clf.best_validation_score_ == np.nanmax(scores)
    with pytest.raises(ValueError, match="could not hold out a stratified validation set"):
        _small(early_stopping=True).fit(X_train[:12], y_train[:12])


def test_verbose_prints_epoch_lines(blobs, capsys):
    X, y = blobs
    _small(epochs=4, verbose=2).fit(X, y)
    out = capsys.readouterr().out
    assert [line[:10] for line in out.splitlines() if line.startswith("Epoch")] == [
        "Epoch    1", "Epoch    2", "Epoch    4"]
    _small(epochs=4).fit(X, y)
    assert capsys.readouterr().out == ""


def test_random_state_forms(blobs):
    X, y = blobs
    a = _small(random_state=np.random.RandomState(3)).fit(X, y).predict_proba(X)
    b = _small(random_state=np.random.RandomState(3)).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    c = _small(random_state=4).fit(X, y).predict_proba(X)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_registered_activation_learns(activation, digits_raw):
    X, y = digits_raw
    X, y = X[:600] / 16.0, y[:600]
    model = ScratchMLPClassifier(hidden_layer_sizes=(32,), activation=activation, learning_rate=0.01, epochs=60,
                                 random_state=0)
    assert model.fit(X[:500], y[:500]).score(X[500:], y[500:]) > 0.8
    assert model.network_.activations == [activation]


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("params, error, message", [
    ({"hidden_layer_sizes": (0,)}, ValueError, "hidden_layer_sizes must hold positive integers"),
    ({"hidden_layer_sizes": "64"}, TypeError, "hidden_layer_sizes must be a sequence"),
    ({"batch_size": "big"}, ValueError, "batch_size must be a positive integer, 'auto' or None"),
    ({"batch_size": 0}, ValueError, "batch_size must be a positive integer"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be a positive integer"),
    ({"activation": "gelu"}, ValueError, "unknown activation 'gelu'"),
    ({"optimizer": "rmsprop"}, ValueError, "unknown optimizer 'rmsprop'"),
    ({"learning_rate": -1.0}, ValueError, "learning_rate must be a positive finite number"),
    ({"learning_rate": "fast"}, TypeError, "learning_rate must be a number"),
    ({"epochs": 0}, ValueError, "epochs must be a positive integer"),
    ({"dtype": "float16"}, ValueError, "dtype must be one of"),
    ({"backend": "cuda"}, ValueError, "unknown backend 'cuda'"),
    ({"verbose": -1}, ValueError, "verbose must be a bool or a non-negative integer"),
    ({"early_stopping": True, "validation_fraction": 1.5}, ValueError, r"validation_fraction must be .* \(0, 1\)"),
    ({"early_stopping": True, "n_iter_no_change": 0}, ValueError, "n_iter_no_change must be a positive integer"),
    ({"early_stopping": True, "tol": -0.1}, ValueError, "tol must be a non-negative finite number"),
    ({"dropout": 1.0}, ValueError, "dropout rates must be numbers in"),
])
def test_bad_hyperparameters_fail_in_fit_not_in_init(blobs, params, error, message):
    X, y = blobs
    clf = _small(**params)  # the constructor and set_params only store
    clf.set_params(**params)
    with pytest.raises(error, match=message):
        clf.fit(X, y)
    assert not hasattr(clf, "network_")


def test_bad_data(blobs):
    X, y = blobs
    bad = X.copy()
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _small().fit(bad, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        _small().fit(X, y[:-1])
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="dense data is required"):
        _small().fit(sparse.csr_matrix(X), y)


# ------------------------------------------------------------ an optional dependency
def _run(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_importing_fastscratch_does_not_import_sklearn():
    result = _run("""
        import sys
        import fastscratch
        fastscratch.NeuralNetwork([4, 3])
        assert not any(m == "sklearn" or m.startswith("sklearn.") for m in sys.modules), "sklearn imported"
    """)
    assert result.returncode == 0, result.stderr


def test_missing_sklearn_gives_an_install_hint():
    result = _run("""
        import sys
        sys.modules["sklearn"] = None   # what an environment without scikit-learn looks like to import
        import fastscratch.sklearn
    """)
    assert result.returncode != 0
    assert "ImportError: fastscratch.sklearn needs scikit-learn; install it with " \
           "`pip install 'fastscratch[sklearn]'`" in result.stderr


def test_old_sklearn_gives_an_upgrade_hint(tmp_path):
    fake = tmp_path / "sklearn"
    fake.mkdir()
    (fake / "__init__.py").write_text('__version__ = "1.5.2"\n')  # before validate_data existed
    result = _run(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import fastscratch.sklearn
    """)
    assert result.returncode != 0
    assert "needs scikit-learn >= 1.6, found 1.5.2" in result.stderr
    assert "pip install -U 'fastscratch[sklearn]'" in result.stderr


# ------------------------------------------------------------ the benchmark script
def test_bench_script_runs_and_reports_the_ratio(tmp_path):
    """A smoke run (no timing is asserted): the script must keep working as the code changes."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_sklearn.py"
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(script), "--repeats", "2", "--epochs", "2", "--hidden", "8",
                             "--threads", "1", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "MLPClassifier / fastscratch (ratio of medians)" in result.stdout
    assert "1 thread" in result.stdout  # threadpoolctl applied the limit
    report = json.loads(out.read_text())
    assert set(report["times"]) == {"fastscratch", "sklearn"}
    assert all(len(t) == 2 for t in report["times"].values())
    assert report["ratio"] > 0
