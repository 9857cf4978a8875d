"""A scikit-learn estimator around :class:`~fastscratch.NeuralNetwork`.

    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.model_selection import cross_val_score
    >>> from fastscratch.sklearn import ScratchMLPClassifier
    >>> model = make_pipeline(StandardScaler(), ScratchMLPClassifier(random_state=0))
    >>> cross_val_score(model, X, y, cv=3)                          # doctest: +SKIP

:class:`ScratchMLPClassifier` follows scikit-learn's estimator API, so it works
in ``Pipeline``, ``GridSearchCV``, ``cross_val_score``, ``clone`` and joblib.
scikit-learn is an optional dependency (``pip install 'fastscratch[sklearn]'``):
``import fastscratch`` never imports it, only this module does.
"""

from __future__ import annotations

import copy
import numbers
from typing import Any, Sequence

import numpy as np

try:
    import sklearn
except ImportError as exc:
    raise ImportError("fastscratch.sklearn needs scikit-learn; install it with "
                      "`pip install 'fastscratch[sklearn]'`") from exc
try:  # validate_data and __sklearn_tags__ arrived in scikit-learn 1.6
    from sklearn.utils.validation import validate_data
except ImportError as exc:
    raise ImportError(f"fastscratch.sklearn needs scikit-learn >= 1.6, found {sklearn.__version__}; "
                      "upgrade it with `pip install -U 'fastscratch[sklearn]'`") from exc
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted

from .. import _validation as check
from ..network import NeuralNetwork, check_activations, check_dropout, check_dtype
from ..optimizers import Optimizer, get_optimizer
from ..schedules import Schedule

__all__ = ["ScratchMLPClassifier"]

_AUTO_BATCH = 200  # batch_size="auto": min(200, n_samples), as MLPClassifier does


def _fresh_optimizer(spec: Any) -> Optimizer:
    """A new optimizer with no state from a name, a config dict or an ``Optimizer``.

    An instance is rebuilt from its ``config()`` rather than used or deep-copied:
    the user's object must stay untouched, and state it may carry from an earlier
    training (moments, step count) must not leak into this fit.
    """
    if isinstance(spec, Optimizer):
        settings = {k: v for k, v in spec.config().items() if k != "name"}
        return type(spec)(**settings)
    return get_optimizer(copy.deepcopy(spec))  # a dict spec is consumed by the resolver


# ---------------------------------------------------------------- parameter checks


def _hidden_sizes(hidden_layer_sizes: Any) -> list[int]:
    """The estimator's ``hidden_layer_sizes`` as a list of positive ints (a bare int: one layer)."""
    sizes = hidden_layer_sizes
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        sizes = [sizes]  # MLPClassifier accepts a bare int for one hidden layer
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError("hidden_layer_sizes must be a sequence of positive integers such as (128, 64), "
                        f"got {hidden_layer_sizes!r}")
    sizes = list(sizes)
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"hidden_layer_sizes must hold positive integers, got {hidden_layer_sizes!r}")
    return [int(s) for s in sizes]


def _batch_size(batch_size: Any, n_samples: int) -> int | None:
    """``batch_size`` checked: a positive int, ``None`` (full batch) or ``"auto"`` (min(200, n))."""
    if isinstance(batch_size, str):
        if batch_size != "auto":
            raise ValueError(f"batch_size must be a positive integer, 'auto' or None, got {batch_size!r}")
        return min(_AUTO_BATCH, n_samples)
    if batch_size is not None and (isinstance(batch_size, bool)
                                        or not isinstance(batch_size, numbers.Integral)):
        raise TypeError(f"batch_size must be a positive integer, 'auto' or None, got {batch_size!r}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, 'auto' or None, got {batch_size!r}")
    return batch_size


def _log_every(verbose: Any) -> tuple[bool, int]:
    """``verbose`` as (print epoch lines, every how many epochs)."""
    if not isinstance(verbose, numbers.Integral) or verbose < 0:
        raise ValueError(f"verbose must be a bool or a non-negative integer, got {verbose!r}")
    return bool(verbose), max(1, int(verbose))


def _check_early_stopping(fraction: Any, n_iter_no_change: Any, tol: Any) -> None:
    """The early-stopping parameters: ``validation_fraction`` in (0, 1), a positive patience, ``tol`` >= 0."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_fraction must be a number in (0, 1), got {fraction!r}")
    if isinstance(n_iter_no_change, bool) or not isinstance(n_iter_no_change, numbers.Integral) \
            or n_iter_no_change < 1:
        raise ValueError(f"n_iter_no_change must be a positive integer, got {n_iter_no_change!r}")
    check.check_non_negative_number("tol", tol)


class ScratchMLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier trained by fastscratch's from-scratch backprop.

    A softmax output layer with one unit per class (two for a binary problem, so
    ``predict_proba`` is ``(n_samples, 2)``), trained with cross-entropy.  Labels
    can be anything :func:`numpy.unique` sorts: strings, non-contiguous integers...

    Parameters
    ----------
    hidden_layer_sizes
        sizes of the hidden layers, e.g. ``(128, 64)``; ``()`` gives softmax regression.
    activation
        a name of the activation registry, ``fastscratch.activations.ACTIVATION_NAMES`` (``"relu"``,
        ``"tanh"``, ...), or one per hidden layer.
    optimizer
        ``"adam"``, ``"sgd"``, ``"momentum"``, a config dict such as ``{"name": "momentum", "momentum": 0.9,
        "nesterov": True}``, or an :class:`~fastscratch.Optimizer` (copied; the object you pass is never
        modified).
    learning_rate
        step size (``lr`` of :meth:`NeuralNetwork.fit`).
    lr_schedule
        ``None`` (constant), ``"step"``, ``"exponential"``, ``"cosine"`` or a :class:`~fastscratch.Schedule`.
    batch_size
        samples per mini-batch; ``"auto"``: ``min(200, n_samples)``; ``None``: full-batch gradient descent.
    epochs
        passes over the training data per :meth:`fit` (``max_iter`` in MLPClassifier); all of them run unless
        ``early_stopping`` stops sooner (there is no convergence test on the training loss).
    weight_decay
        L2 penalty ``weight_decay / 2 * sum(W**2)`` on the weights (not biases), added to the mean batch loss;
        0 disables it.
    dropout
        fraction of hidden units dropped while training (one number or one per hidden layer).
    shuffle
        reshuffle the samples every epoch.
    early_stopping
        hold out ``validation_fraction`` of the training data (stratified), stop when its accuracy has not
        improved by more than ``tol`` for ``n_iter_no_change`` epochs, and keep the best epoch's weights (as
        MLPClassifier does).  Ignored by :meth:`partial_fit`.
    validation_fraction, n_iter_no_change, tol
        see ``early_stopping``.
    warm_start
        when fitted already, :meth:`fit` continues training the current network (weights and optimizer state)
        instead of starting afresh.
    backend
        ``"auto"``, ``"numpy"`` or ``"numba"`` (see :func:`fastscratch.load_backend`).
    dtype
        ``"float32"`` or ``"float64"``: the network's precision; inputs are converted to it.
    random_state
        ``None``, an int or a ``numpy.random.RandomState``: drives the initial weights, shuffling, dropout and
        the validation split.  An int gives identical results on every fit.
    verbose
        ``False``/0: silent; ``True`` or an int ``k``: print the epoch line every ``k`` epochs (``True``:
        every epoch) and a summary.

    Attributes
    ----------
    classes_
        (n_classes,) the class labels, sorted.
    n_features_in_
        number of features seen in :meth:`fit`.
    feature_names_in_
        (n_features_in_,) column names, when ``X`` had string column names.
    loss_curve_
        mean training loss of every epoch trained (across ``partial_fit`` and warm-started ``fit`` calls).
    n_iter_
        number of epochs trained so far.
    validation_scores_
        validation accuracy per epoch with ``early_stopping``, else ``None``.
    best_validation_score_
        best of ``validation_scores_``, or ``None``.
    network_
        the trained :class:`~fastscratch.NeuralNetwork` (its ``history`` has every column; ``save`` writes it
        to a model file).
    coefs_, intercepts_
        the network's weights ``W[l]: (n_in, n_out)`` and biases ``b[l]: (n_out,)``, laid out as
        MLPClassifier's attributes of the same names.
    """

    def __init__(self, hidden_layer_sizes: Sequence[int] = (100,), activation: str | Sequence[str] = "relu",
                 optimizer: str | dict[str, Any] | Optimizer = "adam", learning_rate: float = 0.001,
                 lr_schedule: str | Schedule | None = None, batch_size: int | str | None = "auto",
                 epochs: int = 200, weight_decay: float = 0.0, dropout: float | Sequence[float] = 0.0,
                 shuffle: bool = True, early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, tol: float = 1e-4, warm_start: bool = False,
                 backend: str = "auto", dtype: str = "float32", random_state: Any = None,
                 verbose: bool | int = False) -> None:
        # scikit-learn's contract: store the arguments unchanged and validate them in fit
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.epochs = epochs
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.backend = backend
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def _new_network(self, n_features: int, n_classes: int, seed: int) -> NeuralNetwork:
        # NeuralNetwork validates activation, dtype, backend and dropout with clear messages
        return NeuralNetwork([n_features, *_hidden_sizes(self.hidden_layer_sizes), n_classes], activation=self.activation,
                             dtype=self.dtype, seed=seed, backend=self.backend, dropout=self.dropout)

    def _structure(self) -> tuple:
        """What a network built now would look like: training may only continue on the same."""
        n_hidden = len(_hidden_sizes(self.hidden_layer_sizes))
        return (_hidden_sizes(self.hidden_layer_sizes), check_activations(self.activation, n_hidden),
                check_dtype(self.dtype), check_dropout(self.dropout, n_hidden))

    # --------------------------------------------------------------- fitting
    def fit(self, X: Any, y: Any) -> "ScratchMLPClassifier":
        """Train on ``X: (n_samples, n_features)``, ``y: (n_samples,)`` labels; return ``self``.

        Starts from new random weights unless ``warm_start`` is set and the estimator is
        fitted, in which case ``epochs`` more epochs continue the current network.
        """
        continuing = self.warm_start and self.__sklearn_is_fitted__()
        dtype = check_dtype(self.dtype)
        X, y = validate_data(self, X, y, reset=not continuing, dtype=dtype, order="C")
        check_classification_targets(y)
        if continuing:
            y_codes = self._encode(y, "fit")
            network = self._continuable_network()
        else:
            classes, y_codes = np.unique(y, return_inverse=True)
            self._check_two_classes(classes)
            network = None
        if self.early_stopping:
            _check_early_stopping(self.validation_fraction, self.n_iter_no_change, self.tol)

        rs = check_random_state(self.random_state)
        if network is None:
            # one draw seeds the network's generator (init, shuffling, dropout); an int
            # random_state therefore gives the same model on every fit
            network = self._new_network(X.shape[1], len(classes), int(rs.randint(np.iinfo(np.int32).max)))
        X_val = y_val = None
        if self.early_stopping:
            try:
                X, X_val, y_codes, y_val = train_test_split(
                    X, y_codes, test_size=self.validation_fraction, random_state=rs, stratify=y_codes)
            except ValueError as exc:  # too few samples for a stratified split
                raise ValueError(f"early_stopping could not hold out a stratified validation set of "
                                 f"validation_fraction={self.validation_fraction} of {X.shape[0]} samples "
                                 f"({exc}); use more data, a larger validation_fraction, or "
                                 "early_stopping=False") from exc
            X, X_val = np.ascontiguousarray(X), np.ascontiguousarray(X_val)
        self._train(network, X, y_codes, self.epochs, X_val, y_val)
        if not continuing:
            self.classes_ = classes
        self._set_fitted(network, self.early_stopping)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> "ScratchMLPClassifier":
        """One epoch over ``X: (n_samples, n_features)``, ``y: (n_samples,)``; return ``self``.

        ``classes``: every label that will ever appear, required on the first call
        (``y`` of one batch may lack some).  Later calls continue the same network,
        its optimizer state (momentum, Adam moments, step count) included.
        """
        first = not self.__sklearn_is_fitted__()
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        dtype = check_dtype(self.dtype) if first else self.network_.dtype
        X, y = validate_data(self, X, y, reset=first, dtype=dtype, order="C")
        check_classification_targets(y)
        if classes is not None:
            all_classes = unique_labels(classes)
            if not first and not np.array_equal(all_classes, self.classes_):
                raise ValueError(f"classes={all_classes.tolist()} is not the same as on earlier calls to "
                                 f"partial_fit or fit, which had {self.classes_.tolist()}")
        if first:
            self._check_two_classes(all_classes)
            unseen = np.setdiff1d(np.unique(y), all_classes)
            if unseen.size:
                raise ValueError(f"y has labels {unseen.tolist()} that are not in classes={all_classes.tolist()}")
            y_codes = np.searchsorted(all_classes, y)
            rs = check_random_state(self.random_state)
            network = self._new_network(X.shape[1], len(all_classes), int(rs.randint(np.iinfo(np.int32).max)))
        else:
            y_codes = self._encode(y, "partial_fit")
            network = self._continuable_network()
        self._train(network, X, y_codes, 1, None, None)
        if first:
            self.classes_ = all_classes
        self._set_fitted(network, False)
        return self

    def _train(self, network: NeuralNetwork, X: np.ndarray, y_codes: np.ndarray, epochs: int,
               X_val: np.ndarray | None, y_val: np.ndarray | None) -> None:
        verbose, log_every = _log_every(self.verbose)
        # checked here too so the message names this estimator's parameter, not fit's `lr`
        check.check_positive_number("learning_rate", self.learning_rate)
        optimizer = _fresh_optimizer(self.optimizer)
        if network.optimizer is not None and network.optimizer.same_config(optimizer):
            # continuing (partial_fit, warm_start): keep momentum / Adam moments and the step count
            optimizer = network.optimizer
        network.fit(X, y_codes, X_val, y_val, lr=self.learning_rate, epochs=epochs,
                    batch_size=_batch_size(self.batch_size, X.shape[0]), optimizer=optimizer, shuffle=self.shuffle,
                    verbose=verbose, log_every=log_every, lr_schedule=copy.deepcopy(self.lr_schedule),
                    weight_decay=self.weight_decay,
                    early_stopping=self.n_iter_no_change if X_val is not None else None,
                    monitor="test_accuracy", min_delta=self.tol, restore_best=True)

    def _set_fitted(self, network: NeuralNetwork, early_stopping: bool) -> None:
        self.network_ = network
        self.loss_curve_ = list(network.history.cost)
        self.n_iter_ = network.epochs_trained
        if early_stopping:
            # every epoch trained; NaN for epochs of earlier calls that held nothing out
            # (partial_fit, or a warm-started fit without early_stopping)
            self.validation_scores_ = list(network.history.test_accuracy)
            self.best_validation_score_ = float(np.nanmax(self.validation_scores_))
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _check_two_classes(self, classes: np.ndarray) -> None:
        if len(classes) < 2:
            # the wording matches what scikit-learn's checks (and users) look for
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes, but the data "
                             f"contains only one class: {classes[0].item()!r}")

    def _encode(self, y: np.ndarray, method: str) -> np.ndarray:
        """``y`` as indices into ``classes_``; ``ValueError`` naming any label not in it."""
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(f"y has labels {unseen.tolist()} that were not among the classes {self.classes_.tolist()} "
                             f"the estimator was fitted with; {method} cannot add classes")
        return np.searchsorted(self.classes_, y)

    def _continuable_network(self) -> NeuralNetwork:
        network = self.network_
        built = ([network.architecture[1:-1], network.activations, network.dtype, network.dropout])
        if list(self._structure()) != built:
            raise ValueError("hidden_layer_sizes, activation, dtype or dropout changed since the network was "
                             "built; continuing training needs the same network. Call fit with "
                             "warm_start=False to start a new one.")
        return network

    # ------------------------------------------------------------- inference
    def __sklearn_is_fitted__(self) -> bool:
        # n_features_in_ is set by validation before training: only a trained network counts
        return hasattr(self, "network_")

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``, columns in the order of ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.network_.dtype, order="C")
        return self.network_.predict_proba(X)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Natural log of :meth:`predict_proba`, ``(n_samples, n_classes)``."""
        with np.errstate(divide="ignore"):  # a probability that underflowed to 0 gives -inf
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels ``(n_samples,)``, taken from ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.network_.dtype, order="C")
        return self.classes_[self.network_.predict(X)]

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weights ``W[l]: (n_in, n_out)`` of each layer (the network's own arrays)."""
        check_is_fitted(self)
        return self.network_.weights

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Biases ``b[l]: (n_out,)`` of each layer (the network's own arrays)."""
        check_is_fitted(self)
        return self.network_.biases

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False  # dense arrays only: validate_data rejects sparse with a clear message
        tags.input_tags.allow_nan = False
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        return tags

    # ------------------------------------------------------------ pickling
    # The network pickles itself (its kernel module travels as the backend's name).
    # Estimators pickled before that hold a _PickledNetwork instead, rebuilt here.
    def __setstate__(self, state: dict[str, Any]) -> None:
        pickled = state.get("network_")
        if isinstance(pickled, _PickledNetwork):
            state = dict(state, network_=pickled.rebuild())
        super().__setstate__(state)


class _PickledNetwork:
    """What estimators pickled by earlier versions hold: a NeuralNetwork's attributes without
    its kernel module, and the module's backend name."""

    def __init__(self, attributes: dict[str, Any], kernel_name: str) -> None:
        self.attributes = attributes
        self.kernel_name = kernel_name

    def rebuild(self) -> NeuralNetwork:
        network = NeuralNetwork.__new__(NeuralNetwork)  # unpickling: the state comes from the file
        network.__setstate__(dict(self.attributes, kernels=self.kernel_name))
        return network
