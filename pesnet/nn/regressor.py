"""A plain ``fit``/``predict`` ensemble regressor in the scikit-learn style.

``EnsembleRegressor(...).fit(X, y)`` trains M MLPs in one batched pass (each on its own Poisson
bootstrap weighting of the same mini-batches) and ``predict(X, return_std=True)`` returns, for
each input row, the ensemble mean and standard deviation. Parameters are stored untouched by
``__init__``; everything learnt ends in ``_``; randomness flows from ``random_state`` through
:mod:`pesnet.nn.initializers` (member ``m`` has the same streams whatever the ensemble size).

Units: those of X and y. With ``standardize=True`` the networks see inputs and targets scaled to
zero mean and unit variance (fitted on the training rows); predictions come back in y's units.
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

import numpy as np

from pesnet.errors import InputError, NotFittedError
from pesnet.nn.initializers import BOOTSTRAP, SPLIT, member_rng, resolve_seed, shared_rng
from pesnet.nn.losses import get_loss
from pesnet.nn.mlp import MLP
from pesnet.nn.optimizers import get_optimizer
from pesnet.nn.schedules import get_schedule
from pesnet.nn.training import EarlyStopping, train

__all__ = ["EnsembleRegressor", "Prediction"]


class Prediction(NamedTuple):
    """Ensemble mean and standard deviation (population, ddof=0) over members, in y's units."""

    mean: np.ndarray
    std: np.ndarray


class EnsembleRegressor:
    """Ensemble of MLP regressors trained together.

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
    random_state : int seed (None: fresh entropy, recorded in ``seed_``).

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

    # -- scikit-learn parameter protocol (without importing scikit-learn) ---------------
    @classmethod
    def _param_names(cls):
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep=True):
        """Constructor parameters as a dict (scikit-learn protocol; ``clone`` works)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor parameters; returns self."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise InputError(f"invalid parameter {key!r} for EnsembleRegressor")
            setattr(self, key, value)
        return self

    def __repr__(self):
        defaults = {p.name: p.default for p in
                    inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults.get(k)]
        return f"EnsembleRegressor({', '.join(changed)})"

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

    def _check_X(self, X, n_features=None):
        X = np.asarray(X, dtype=float)
        if X.ndim != 2:
            raise InputError(f"X must be a 2-D array (n_samples, n_features), got shape {X.shape}")
        if n_features is not None and X.shape[1] != n_features:
            raise InputError(f"X has {X.shape[1]} features, the model was fitted with {n_features}")
        if not np.all(np.isfinite(X)):
            raise InputError("X contains non-finite values")
        return X

    def _check_y(self, y, n):
        y = np.asarray(y, dtype=float)
        if y.ndim not in (1, 2) or y.shape[0] != n:
            raise InputError(f"y must have shape ({n},) or ({n}, n_outputs), got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise InputError("y contains non-finite values")
        return y

    # -- fit / predict ---------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None, validation_data=None, init_params=None):
        """Train the ensemble; returns self.

        X : (N, n_features).  y : (N,) or (N, n_outputs).  sample_weight : (N,) row weights
        (multiplied with the bootstrap counts).  validation_data : ``(X_val, y_val)`` used for
        early stopping and ``validation_curve_``.  init_params : starting weights as returned by
        ``network_.arrays()`` (in the networks' scaled units), instead of a random start.
        """
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        self._y_1d = y.ndim == 1
        Y = y[:, None] if self._y_1d else y
        M = int(self.n_members)
        if M < 1:
            raise InputError(f"n_members must be >= 1, got {self.n_members!r}")
        seed = resolve_seed(self.random_state)
        sw = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if sw is not None and sw.shape != (X.shape[0],):
            raise InputError(f"sample_weight must have shape ({X.shape[0]},), got {sw.shape}")

        if validation_data is not None:
            Xv = self._check_X(validation_data[0], X.shape[1])
            Yv = self._check_y(validation_data[1], Xv.shape[0]).reshape(Xv.shape[0], -1)
        elif self.early_stopping:
            if not 0 < self.validation_fraction < 1:
                raise InputError(f"validation_fraction must be in (0, 1), got "
                                 f"{self.validation_fraction!r}")
            perm = shared_rng(seed, SPLIT).permutation(X.shape[0])
            n_val = max(1, int(round(self.validation_fraction * X.shape[0])))
            val, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            Xv, Yv, X, Y = X[val], Y[val], X[tr], Y[tr]
            sw = None if sw is None else sw[tr]
        else:
            Xv = Yv = None
        if X.shape[0] == 0:
            raise InputError("no training rows")

        if self.standardize:
            self.x_mean_, self.y_mean_ = X.mean(axis=0), Y.mean(axis=0)
            xs, ys = X.std(axis=0), Y.std(axis=0)
            self.x_scale_ = np.where(xs > 0, xs, 1.0)
            self.y_scale_ = np.where(ys > 0, ys, 1.0)
        else:
            self.x_mean_, self.x_scale_ = np.zeros(X.shape[1]), np.ones(X.shape[1])
            self.y_mean_, self.y_scale_ = np.zeros(Y.shape[1]), np.ones(Y.shape[1])

        weights = None
        if self.bootstrap:
            weights = np.stack([member_rng(seed, self.member_offset + m, BOOTSTRAP)
                                .poisson(1.0, X.shape[0]) for m in range(M)]).astype(float)
        if sw is not None:
            weights = sw[None, :] * (1.0 if weights is None else weights)

        sizes = (X.shape[1], *[int(h) for h in self.hidden_layer_sizes], Y.shape[1])
        net = MLP(sizes, M, activation=self.activation, init=self.init, seed=seed,
                  member_offset=self.member_offset, dtype=self.dtype)
        if init_params is not None:
            net.set_arrays(init_params)
        loss, optimizer, schedule = self._components()
        validation = None if Xv is None else (self._scale_x(Xv), self._scale_y(Yv))
        stopping = (EarlyStopping(patience=int(self.patience), min_delta=float(self.min_delta))
                    if self.early_stopping else None)
        self.history_ = train(
            net, self._scale_x(X), self._scale_y(Y), loss=loss, optimizer=optimizer,
            schedule=schedule, epochs=int(self.max_epochs), batch_size=self.batch_size,
            sample_weight=weights, validation=validation, early_stopping=stopping,
            clip_norm=self.clip_norm, seed=seed, n_threads=self.n_threads)
        self.network_ = net
        self.seed_ = seed
        self.n_features_in_ = X.shape[1]
        self.n_outputs_ = Y.shape[1]
        self.loss_curve_ = self.history_.train_loss
        self.validation_curve_ = self.history_.val_loss
        return self

    def _scale_x(self, X):
        return (X - self.x_mean_) / self.x_scale_

    def _scale_y(self, Y):
        return (Y - self.y_mean_) / self.y_scale_

    def _check_fitted(self):
        if not hasattr(self, "network_"):
            raise NotFittedError("this EnsembleRegressor is not fitted yet; call fit(X, y) first")

    def predict_members(self, X):
        """Predictions of every member, (M, N) — or (M, N, n_outputs) for 2-D targets."""
        self._check_fitted()
        X = self._check_X(X, self.n_features_in_)
        out = self.network_.predict(self._scale_x(X)) * self.y_scale_ + self.y_mean_
        return out[..., 0] if self._y_1d else out

    def predict(self, X, return_std=False):
        """Ensemble mean for each row of X, (N,) or (N, n_outputs); with ``return_std`` a
        :class:`Prediction` ``(mean, std)`` holding the spread over members as well."""
        ys = self.predict_members(X)
        mean = ys.mean(axis=0)
        if not return_std:
            return mean
        return Prediction(mean, ys.std(axis=0))

    def score(self, X, y):
        """Coefficient of determination R² of the ensemble mean (scikit-learn's convention)."""
        y = self._check_y(y, np.shape(X)[0])
        pred = self.predict(X).reshape(y.shape)
        ss_res = np.sum((y - pred) ** 2)
        ss_tot = np.sum((y - y.mean(axis=0)) ** 2)
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
