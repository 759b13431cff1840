"""An ensemble MLP regressor that is a scikit-learn estimator.

``EnsembleRegressor(...).fit(X, y)`` trains M MLPs in one batched pass (each on its own Poisson
bootstrap weighting of the same mini-batches) and ``predict(X, return_std=True)`` returns, for
each input row, a :class:`~pesnet.nn.prediction.Prediction`: the ensemble mean ȳ = (1/M) Σ_m y_m
and the committee standard deviation σ = (Σ_m (y_m − ȳ)² / (M − 1))^½ (ddof = 1, the
convention of every spread pesnet reports; zero for one member).

It subclasses :class:`sklearn.base.BaseEstimator` and :class:`~sklearn.base.RegressorMixin`
and passes :func:`sklearn.utils.estimator_checks.check_estimator` (``tests/test_nn_regressor``):
``get_params``/``set_params``/``clone``/``repr`` and ``score`` (R² of the mean, sklearn's
``r2_score``) come from scikit-learn, inputs are checked by its ``validate_data``; ``__init__``
stores the parameters untouched, everything learnt ends in ``_``, predicting before ``fit``
raises scikit-learn's ``NotFittedError``. Randomness flows from ``random_state`` through
:mod:`pesnet.nn.initializers` (member ``m`` has the same streams whatever the ensemble size).

Units: those of X and y. With ``standardize=True`` the networks see inputs and targets scaled to
zero mean and unit variance (fitted on the training rows); predictions come back in y's units.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils.validation import check_is_fitted, validate_data

from pesnet.errors import InputError, NotFittedError
from pesnet.nn.initializers import BOOTSTRAP, SPLIT, member_rng, resolve_seed, shared_rng
from pesnet.nn.losses import get_loss
from pesnet.nn.mlp import MLP
from pesnet.nn.optimizers import get_optimizer
from pesnet.nn.prediction import Prediction
from pesnet.nn.schedules import get_schedule
from pesnet.nn.training import EarlyStopping, train

__all__ = ["EnsembleRegressor", "EstimatorInputError", "EstimatorNotFittedError"]


class EstimatorInputError(InputError, ValueError):
    """Bad data or parameters for the estimator: a pesnet :class:`InputError` that
    scikit-learn's tools (which expect a ``ValueError``) recognise as well."""


class EstimatorNotFittedError(NotFittedError, SklearnNotFittedError):
    """Predicting before ``fit``: pesnet's and scikit-learn's ``NotFittedError`` at once."""


def _validated(estimator, X, *y, reset=True):
    """scikit-learn's ``validate_data`` of X alone or of (X, y): float64, finite, 2-D, dense X;
    numeric y, 1-D or 2-D, with as many rows. Its ``ValueError`` is raised as
    :class:`EstimatorInputError`."""
    kwargs = {"multi_output": True, "y_numeric": True} if y else {}
    try:
        return validate_data(estimator, X, *y, reset=reset, dtype=np.float64, **kwargs)
    except ValueError as error:
        if isinstance(error, InputError):
            raise
        message = str(error)
        if "inconsistent numbers of samples" in message:
            message = (f"y must have shape ({len(X)},) or ({len(X)}, n_outputs), got "
                       f"{np.shape(y[0])}: {message}")
        raise EstimatorInputError(message) from None


class EnsembleRegressor(RegressorMixin, BaseEstimator):
    """Ensemble of MLP regressors trained together (a scikit-learn estimator).

    Parameters
    ----------
    hidden_layer_sizes : widths of the hidden layers; ``()`` is a linear model.
    activation : hidden activation name (see :mod:`pesnet.nn.activations`).
    n_members : ensemble size M.  member_offset : first member index within the seed's ensemble
        (train members 4..7 elsewhere and they match members 4..7 of a full fit).
    loss : ``"mse"``, ``"mae"`` or ``"huber"``; huber_delta in (scaled) target units;
        loss_reduction ``"mean"`` or ``"sum"`` over the rows of a batch.
    optimizer : ``"adam"``, ``"adamw"``, ``"sgd"``, ``"momentum"``, ``"nesterov"``.
    learning_rate, momentum (momentum/nesterov only), weight_decay.
    schedule : ``"constant"``, ``"exponential"``, ``"step"``, ``"cosine"``, ``"plateau"``, with
        keyword arguments in ``schedule_params`` (a dict).
    batch_size : rows per step (None: full batch).  max_epochs : passes over the data.
    early_stopping : monitor a validation set (``validation_data`` in ``fit`` or a random
        ``validation_fraction`` of the rows) and keep each member's best epoch; ``patience``
        epochs without improvement by more than ``min_delta`` retire a member.
    clip_norm : per-member gradient-norm clipping (None: off).
    bootstrap : weight each member's rows by Poisson(1) counts (the bootstrap's limit for
        large N), so members differ in data as well as in initial weights.
    standardize : scale X and y to zero mean, unit variance for the networks.
    init : weight initialiser.  dtype : ``"float64"`` or ``"float32"``.
    n_threads : worker threads over member groups (None: one per core).
    random_state : int seed of every member's streams (None: fresh entropy, recorded in
        ``seed_``).

    Fitted attributes: ``network_`` (:class:`MLP`), ``history_`` (:class:`History`),
    ``loss_curve_`` (n_epochs, M), ``validation_curve_`` (or None), ``seed_``,
    ``n_features_in_``, ``n_outputs_``, ``x_mean_``, ``x_scale_``, ``y_mean_``, ``y_scale_``.
    """

    def __init__(self, hidden_layer_sizes=(64, 64), activation="tanh", n_members=8,
                 member_offset=0, loss="mse", huber_delta=1.0, loss_reduction="mean",
                 optimizer="adam", learning_rate=1e-3, momentum=0.9, weight_decay=0.0,
                 schedule="constant", schedule_params=None, batch_size=256, max_epochs=200,
                 early_stopping=False, validation_fraction=0.1, patience=20, min_delta=0.0,
                 clip_norm=None, bootstrap=True, standardize=True, init="xavier_uniform",
                 dtype="float64", n_threads=None, random_state=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.n_members = n_members
        self.member_offset = member_offset
        self.loss = loss
        self.huber_delta = huber_delta
        self.loss_reduction = loss_reduction
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.schedule_params = schedule_params
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.min_delta = min_delta
        self.clip_norm = clip_norm
        self.bootstrap = bootstrap
        self.standardize = standardize
        self.init = init
        self.dtype = dtype
        self.n_threads = n_threads
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.regressor_tags.poor_score = True  # a few epochs of a small net may score < 0.5
        return tags

    # -- building blocks ------------------------------------------------------------------
    def _components(self):
        loss_kw = {"reduction": self.loss_reduction}
        if str(self.loss).lower() == "huber":
            loss_kw["delta"] = self.huber_delta
        loss = get_loss(self.loss, **loss_kw)
        name = str(self.optimizer).lower()
        opt_kw = {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay}
        if name in ("momentum", "nesterov"):
            opt_kw["momentum"] = self.momentum
        optimizer = get_optimizer(name, **opt_kw)
        schedule = get_schedule(self.schedule, **(self.schedule_params or {}))
        return loss, optimizer, schedule

    def _checked_data(self, X, y, sample_weight):
        """X (N, F) float64, Y (N, n_outputs) and the row weights (N,) or None, checked."""
        X, y = _validated(self, X, y)
        if y.ndim not in (1, 2):
            raise EstimatorInputError(f"y must have shape ({len(X)},) or ({len(X)}, n_outputs), "
                                      f"got {y.shape}")
        self._y_1d = y.ndim == 1
        Y = y[:, None] if self._y_1d else y
        sw = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if sw is not None and (sw.shape != (X.shape[0],) or not np.isfinite(sw).all()
                               or (sw < 0).any() or not sw.any()):
            raise EstimatorInputError(f"sample_weight must be finite, >= 0, not all zero and of "
                                      f"shape ({X.shape[0]},), got shape {sw.shape}")
        return X, Y, sw

    def _held_out(self, X, Y, sw, validation_data, seed):
        """(X, Y, sw) to train on and (X_val, Y_val) to monitor (or None, None): the given
        ``validation_data``, else with early stopping a random ``validation_fraction`` of the
        rows (generator ``shared_rng(seed, SPLIT)``), else no validation."""
        if validation_data is not None:
            Xv = _validated(self, validation_data[0], reset=False)
            yv = np.asarray(validation_data[1], dtype=float)
            if yv.ndim not in (1, 2) or yv.shape[0] != Xv.shape[0] or not np.isfinite(yv).all():
                raise EstimatorInputError(f"validation y must be finite with {Xv.shape[0]} rows, "
                                          f"got shape {yv.shape}")
            return X, Y, sw, Xv, yv.reshape(Xv.shape[0], -1)
        if not self.early_stopping:
            return X, Y, sw, None, None
        if not 0 < self.validation_fraction < 1:
            raise EstimatorInputError(f"validation_fraction must be in (0, 1), got "
                                      f"{self.validation_fraction!r}")
        perm = shared_rng(seed, SPLIT).permutation(X.shape[0])
        n_val = max(1, int(round(self.validation_fraction * X.shape[0])))
        val, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        if len(tr) == 0:
            raise EstimatorInputError(f"n_samples = {X.shape[0]} leaves no training rows after "
                                      f"holding out {n_val} for validation")
        return X[tr], Y[tr], None if sw is None else sw[tr], X[val], Y[val]

    def _fit_scalers(self, X, Y):
        """x_mean_, x_scale_, y_mean_, y_scale_: x' = (x − μ)/s per column, s = std (1 where a
        column is constant), or the identity without ``standardize``."""
        if self.standardize:
            self.x_mean_, self.y_mean_ = X.mean(axis=0), Y.mean(axis=0)
            xs, ys = X.std(axis=0), Y.std(axis=0)
            self.x_scale_ = np.where(xs > 0, xs, 1.0)
            self.y_scale_ = np.where(ys > 0, ys, 1.0)
        else:
            self.x_mean_, self.x_scale_ = np.zeros(X.shape[1]), np.ones(X.shape[1])
            self.y_mean_, self.y_scale_ = np.zeros(Y.shape[1]), np.ones(Y.shape[1])

    def _row_weights(self, seed, n_rows, sw, n_members):
        """Per-member row weights (M, N): Poisson(1) bootstrap counts of member
        ``member_offset + m`` (its own stream) times ``sample_weight``; ``sample_weight`` (N,)
        alone without bootstrap; None for neither."""
        weights = None
        if self.bootstrap:
            weights = np.stack([member_rng(seed, self.member_offset + m, BOOTSTRAP)
                                .poisson(1.0, n_rows) for m in range(n_members)]).astype(float)
        if sw is not None:
            weights = sw if weights is None else sw[None, :] * weights
        return weights

    # -- fit / predict ---------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None, validation_data=None, init_params=None):
        """Train the ensemble; returns self.

        X : (N, n_features).  y : (N,) or (N, n_outputs).  sample_weight : (N,) row weights
        (multiplied with the bootstrap counts).  validation_data : ``(X_val, y_val)`` used for
        early stopping and ``validation_curve_``.  init_params : starting weights as returned by
        ``network_.arrays()`` (in the networks' scaled units), instead of a random start.
        """
        X, Y, sw = self._checked_data(X, y, sample_weight)
        M = int(self.n_members)
        if M < 1:
            raise EstimatorInputError(f"n_members must be >= 1, got {self.n_members!r}")
        seed = resolve_seed(self.random_state)
        X, Y, sw, Xv, Yv = self._held_out(X, Y, sw, validation_data, seed)
        self._fit_scalers(X, Y)
        sizes = (X.shape[1], *[int(h) for h in self.hidden_layer_sizes], Y.shape[1])
        net = MLP(sizes, M, activation=self.activation, init=self.init, seed=seed,
                  member_offset=self.member_offset, dtype=self.dtype)
        if init_params is not None:
            net.set_arrays(init_params)
        loss, optimizer, schedule = self._components()
        stopping = (EarlyStopping(patience=int(self.patience), min_delta=float(self.min_delta))
                    if self.early_stopping else None)
        self.history_ = train(
            net, self._scale_x(X), self._scale_y(Y), loss=loss, optimizer=optimizer,
            schedule=schedule, epochs=int(self.max_epochs), batch_size=self.batch_size,
            sample_weight=self._row_weights(seed, X.shape[0], sw, M),
            validation=None if Xv is None else (self._scale_x(Xv), self._scale_y(Yv)),
            early_stopping=stopping, clip_norm=self.clip_norm, seed=seed,
            n_threads=self.n_threads)
        self.network_, self.seed_, self.n_outputs_ = net, seed, Y.shape[1]
        self.loss_curve_ = self.history_.train_loss
        self.validation_curve_ = self.history_.val_loss
        return self

    def _scale_x(self, X):
        return (X - self.x_mean_) / self.x_scale_

    def _scale_y(self, Y):
        return (Y - self.y_mean_) / self.y_scale_

    def predict_members(self, X):
        """Predictions of every member, (M, N) — or (M, N, n_outputs) for 2-D targets."""
        try:
            check_is_fitted(self, "network_")
        except SklearnNotFittedError:
            raise EstimatorNotFittedError("this EnsembleRegressor is not fitted yet; call "
                                          "fit(X, y) first") from None
        X = _validated(self, X, reset=False)
        out = self.network_.predict(self._scale_x(X)) * self.y_scale_ + self.y_mean_
        return out[..., 0] if self._y_1d else out

    def predict(self, X, return_std=False):
        """Ensemble mean for each row of X, (N,) or (N, n_outputs); with ``return_std`` a
        :class:`~pesnet.nn.prediction.Prediction` ``(mean, std)`` holding the committee
        standard deviation over members as well (ddof = 1, see the module doc)."""
        ys = self.predict_members(X)
        if not return_std:
            return ys.mean(axis=0)
        return Prediction.of_members(ys)
