"""Mini-batch training of an ensemble MLP, with per-member early stopping.

All members see the same shuffled mini-batches (members differ by initial weights and by their
per-sample weights, e.g. Poisson bootstrap counts). Each optimiser step updates every member with
batched matmuls and a handful of ufunc calls on the flat (M, P) parameter array.

Parallelism: the member axis is cut into ``n_threads`` contiguous groups; each group is a view of
the ensemble (no copy) trained by its own worker thread with its own preallocated buffers, while
BLAS is limited to ``blas_threads`` (default 1) threads — small matmuls run faster that way, and
NumPy releases the GIL inside matmul and ufunc loops. A member's arithmetic is the same whatever
group it is in, so results are bit-identical to training each member alone (tested).

Early stopping keeps, for each member, the parameters of the epoch with its lowest validation
loss, and retires a member once it has gone ``patience`` epochs without improving; training ends
when every member is retired (or after ``epochs``). Retired members keep being updated with the
others (cheaper than reshaping the batch), but their best parameters are what ``train`` restores.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from pesnet.errors import InputError
from pesnet.nn.initializers import SHUFFLE, shared_rng
from pesnet.nn.losses import get_loss
from pesnet.nn.optimizers import clip_grad_norm, get_optimizer, state_slice
from pesnet.nn.schedules import get_schedule

__all__ = ["EarlyStopping", "EpochLog", "History", "train", "default_threads"]


@dataclass
class EarlyStopping:
    """Stop a member after ``patience`` epochs whose validation loss did not go below its best
    by more than ``min_delta``; ``restore_best`` puts back the best epoch's parameters."""

    patience: int = 20
    min_delta: float = 0.0
    restore_best: bool = True


class EpochLog(NamedTuple):
    """What callbacks receive after each epoch (arrays have one entry per member)."""

    epoch: int
    train_loss: np.ndarray
    val_loss: np.ndarray | None
    learning_rate: np.ndarray
    active: np.ndarray


@dataclass
class History:
    """Per-epoch records, arrays of shape (n_epochs, M). ``best_epoch`` (M,): epoch of each
    member's lowest validation loss (-1 without validation data); ``stop_epoch`` (M,): epoch
    after which early stopping retired the member (-1: never). Records of a member after its
    ``stop_epoch`` describe updates that were discarded."""

    train_loss: np.ndarray
    val_loss: np.ndarray | None
    learning_rate: np.ndarray
    best_epoch: np.ndarray
    stop_epoch: np.ndarray

    @property
    def n_epochs(self):
        return self.train_loss.shape[0]


def default_threads(n_members):
    """Worker threads for an ensemble: one per usable core, at most one per member."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(int(n_members), cores))


def _as_2d(name, a, n_rows, n_cols, dtype):
    a = np.asarray(a)
    if a.ndim == 1 and n_cols == 1:
        a = a[:, None]
    if a.ndim != 2 or (n_rows is not None and a.shape[0] != n_rows) or a.shape[1] != n_cols:
        raise InputError(f"{name} must have shape ({n_rows if n_rows is not None else 'N'}, "
                         f"{n_cols}), got {np.shape(a)}")
    a = np.ascontiguousarray(a, dtype=dtype)
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} contains non-finite values")
    return a


def _as_weights(name, w, n_members, n_rows, dtype):
    if w is None:
        return None
    w = np.asarray(w, dtype=dtype)
    if w.shape == (n_rows,):
        w = np.broadcast_to(w, (n_members, n_rows))
    if w.shape != (n_members, n_rows) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputError(f"{name} must be finite, >= 0 and of shape ({n_rows},) or "
                         f"({n_members}, {n_rows}), got shape {w.shape}")
    return np.ascontiguousarray(w)


class _Group:
    """A contiguous range of members trained by one worker: views plus private buffers."""

    def __init__(self, mlp, start, stop, optimizer, state, loss, clip_norm):
        self.start, self.stop = start, stop
        self.mlp = mlp.view(start, stop)
        self.optimizer, self.state = optimizer, state_slice(state, start, stop)
        self.loss, self.clip_norm = loss, clip_norm
        self.grads = self.mlp.zeros_like_params()
        self.tmp = np.empty_like(self.grads)
        self._buffers = {}

    def buffers(self, n, n_in, n_out, weighted):
        if n not in self._buffers:
            dt = self.mlp.dtype
            m = self.stop - self.start
            self._buffers[n] = (self.mlp.new_cache(n), np.empty((n, n_in), dt),
                                np.empty((n, n_out), dt),
                                np.empty((m, n), dt) if weighted else None)
        return self._buffers[n]

    def run_epoch(self, x, y, w, batches, lr):
        """One pass over ``batches`` (slices or index arrays); returns the mean train loss (Mg,)."""
        mlp, loss = self.mlp, self.loss
        w = None if w is None else w[self.start:self.stop]
        total = np.zeros(self.stop - self.start)
        n_seen = 0
        for idx in batches:
            if isinstance(idx, slice):
                xb, yb = x[idx], y[idx]
                wb = None if w is None else w[:, idx]
                cache = self.buffers(xb.shape[0], x.shape[1], y.shape[1], False)[0]
            else:
                cache, xb, yb, wb = self.buffers(len(idx), x.shape[1], y.shape[1], w is not None)
                np.take(x, idx, axis=0, out=xb, mode="clip")
                np.take(y, idx, axis=0, out=yb, mode="clip")
                if w is not None:
                    np.take(w, idx, axis=1, out=wb, mode="clip")
            n = xb.shape[0]
            mlp.forward_unchecked(xb, cache)
            value, g = loss.value_and_grad(cache.output, yb, wb, out=cache.dy)
            total += value * n
            n_seen += n
            mlp.backward(cache, g, out=self.grads)
            if self.clip_norm is not None:
                clip_grad_norm(self.grads, self.clip_norm, self.tmp)
            self.optimizer.step(mlp.params, self.grads, lr, self.state, self.tmp)
        return total / n_seen

    def evaluate(self, x, y, w, chunk=8192):
        """Loss of each member of the group on (x, y), (Mg,), evaluated in chunks of rows."""
        n = x.shape[0]
        total = np.zeros(self.stop - self.start)
        w = None if w is None else w[self.start:self.stop]
        for i in range(0, n, chunk):
            s = slice(i, min(i + chunk, n))
            yhat = self.mlp.predict(x[s])
            value = self.loss(yhat, y[s], None if w is None else w[:, s])
            total += value * ((s.stop - s.start) / n if self.loss.reduction == "mean" else 1.0)
        return total


def _checked_inputs(mlp, x, y, sample_weight, validation, early_stopping, epochs, batch_size,
                    clip_norm):
    """(x, y, w, validation as (x_v, y_v, w_v) or None, batch rows), each checked against
    ``mlp``: x (N, n_in), y (N, n_out), w None or (M, N), all in ``mlp.dtype``."""
    M, n_in, n_out = mlp.n_members, mlp.sizes[0], mlp.sizes[-1]
    x = _as_2d("x", x, None, n_in, mlp.dtype)
    N = x.shape[0]
    if N == 0:
        raise InputError("no training samples")
    y = _as_2d("y", y, N, n_out, mlp.dtype)
    w = _as_weights("sample_weight", sample_weight, M, N, mlp.dtype)
    if int(epochs) < 0:
        raise InputError(f"epochs must be >= 0, got {epochs!r}")
    batch = N if batch_size is None else int(batch_size)
    if batch < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size!r}")
    if clip_norm is not None and not clip_norm > 0:
        raise InputError(f"clip_norm must be > 0, got {clip_norm!r}")
    if validation is None:
        if early_stopping is not None:
            raise InputError("early stopping needs validation data")
        return x, y, w, None, batch
    if len(validation) not in (2, 3):
        raise InputError("validation must be (x_val, y_val) or (x_val, y_val, w_val)")
    xv = _as_2d("validation x", validation[0], None, n_in, mlp.dtype)
    yv = _as_2d("validation y", validation[1], xv.shape[0], n_out, mlp.dtype)
    wv = _as_weights("validation weights", validation[2] if len(validation) == 3 else None,
                     M, xv.shape[0], mlp.dtype)
    return x, y, w, (xv, yv, wv), batch


class _Stopping:
    """Per-member bookkeeping of the validation loss: the best loss L*_m and its epoch; with
    early stopping also the best parameters, the epochs waited and who is still active.

    A member improves at epoch t when it is active and L_m(t) < L*_m − min_delta; it retires
    once it has waited ``patience`` epochs without improving.
    """

    def __init__(self, mlp, early_stopping):
        M = mlp.n_members
        self.rule = early_stopping
        self.best = np.full(M, np.inf)
        self.best_epoch = np.full(M, -1)
        self.stop_epoch = np.full(M, -1)
        self.best_params = mlp.params.copy() if early_stopping is not None else None
        self.wait = np.zeros(M, dtype=int)
        self.active = np.ones(M, dtype=bool)

    def observe(self, epoch, val_loss, params):
        """Record epoch ``epoch``'s validation losses (M,) of the members' ``params`` (M, P)."""
        rule = self.rule
        improved = self.active & (val_loss < self.best - (rule.min_delta if rule else 0.0))
        self.best[improved] = val_loss[improved]
        self.best_epoch[improved] = epoch
        if rule is None:
            return
        self.best_params[improved] = params[improved]
        self.wait[improved] = 0
        self.wait[self.active & ~improved] += 1
        retire = self.active & (self.wait >= rule.patience)
        self.stop_epoch[retire] = epoch
        self.active &= ~retire

    def restore(self, mlp):
        """Put back each member's best parameters (members that ever improved)."""
        if self.rule is not None and self.rule.restore_best:
            keep = self.best_epoch >= 0
            mlp.params[keep] = self.best_params[keep]


def _epoch_batches(rng, n_rows, batch, shuffle):
    """The mini-batches of one epoch: index arrays of a fresh permutation from ``rng`` (the
    same for every member and group), or contiguous slices without ``shuffle``."""
    if shuffle:
        perm = rng.permutation(n_rows)
        return [perm[i:i + batch] for i in range(0, n_rows, batch)]
    return [slice(i, min(i + batch, n_rows)) for i in range(0, n_rows, batch)]


def _member_groups(mlp, optimizer, state, loss, clip_norm, n_threads):
    """The member axis cut into G contiguous groups (G = ``n_threads``, default one per core,
    at most M), each a :class:`_Group` trained by one worker."""
    M = mlp.n_members
    G = default_threads(M) if n_threads is None else max(1, min(int(n_threads), M))
    bounds = np.linspace(0, M, G + 1).round().astype(int)
    return [_Group(mlp, int(a), int(b), optimizer, state, loss, clip_norm)
            for a, b in zip(bounds[:-1], bounds[1:])]


def _run_epoch(groups, pool, x, y, w, validation, batches, lr_col):
    """One epoch of every group (in ``pool``'s threads, or here without a pool): the train
    losses (M,) and, given ``validation``, the validation losses (M,) after it (else None)."""

    def task(group):
        tl = group.run_epoch(x, y, w, batches, lr_col[group.start:group.stop])
        return tl, None if validation is None else group.evaluate(*validation)

    results = [task(g) for g in groups] if pool is None else list(pool.map(task, groups))
    tl = np.concatenate([r[0] for r in results])
    return tl, None if validation is None else np.concatenate([r[1] for r in results])


def _history(hist_train, hist_val, hist_lr, stopping, n_members, validated):
    empty = np.zeros((0, n_members))
    return History(
        train_loss=np.array(hist_train) if hist_train else empty,
        val_loss=(np.array(hist_val) if hist_val else empty) if validated else None,
        learning_rate=np.array(hist_lr) if hist_lr else empty,
        best_epoch=stopping.best_epoch,
        stop_epoch=stopping.stop_epoch,
    )


def train(mlp, x, y, *, loss="mse", optimizer="adam", schedule=None, epochs=100,
          batch_size=256, sample_weight=None, validation=None, early_stopping=None,
          clip_norm=None, shuffle=True, seed=None, n_threads=None, blas_threads=1,
          callbacks=()):
    """Train all members of ``mlp`` in place on ``(x, y)``; returns a :class:`History`.

    Parameters
    ----------
    mlp : :class:`pesnet.nn.mlp.MLP` with M members (trained in place).
    x : (N, n_in) inputs shared by all members.  y : (N, n_out) or (N,) targets.
    loss, optimizer, schedule : names, config dicts or instances (see ``get_loss`` etc.).
    epochs : maximum number of passes over the data.  batch_size : rows per step (None: all).
    sample_weight : (N,) or (M, N) non-negative weights, e.g. Poisson bootstrap counts.
    validation : ``(x_val, y_val)`` or ``(x_val, y_val, w_val)`` monitored each epoch.
    early_stopping : :class:`EarlyStopping` (needs ``validation``) or None.
    clip_norm : clip each member's gradient to this 2-norm before each step (None: off).
    shuffle : reshuffle the rows every epoch (generator :func:`shared_rng` of ``seed``,
        default ``mlp.seed``; the order does not depend on M).
    n_threads : worker threads over member groups (None: one per core, at most M).
    blas_threads : BLAS threads while training (None: leave as is).
    callbacks : callables ``f(EpochLog)``; one returning True stops training.
    """
    M = mlp.n_members
    x, y, w, validation, batch = _checked_inputs(mlp, x, y, sample_weight, validation,
                                                 early_stopping, epochs, batch_size, clip_norm)
    loss, optimizer = get_loss(loss), get_optimizer(optimizer)
    schedule = get_schedule(schedule)
    state = optimizer.init_state(mlp.params)
    schedule.reset(M, epochs)
    groups = _member_groups(mlp, optimizer, state, loss, clip_norm, n_threads)
    rng = shared_rng(mlp.seed if seed is None else seed, SHUFFLE)
    stopping = _Stopping(mlp, early_stopping)
    hist_train, hist_val, hist_lr = [], [], []
    pool = (ThreadPoolExecutor(len(groups), thread_name_prefix="pesnet-train")
            if len(groups) > 1 else None)
    try:
        with _blas_limit(blas_threads):
            for epoch in range(int(epochs)):
                batches = _epoch_batches(rng, x.shape[0], batch, shuffle)
                lr = optimizer.learning_rate * schedule.factors(epoch)  # η_m = η f_m(t), (M,)
                tl, vl = _run_epoch(groups, pool, x, y, w, validation, batches,
                                    lr.astype(mlp.dtype)[:, None])
                hist_train.append(tl)
                hist_lr.append(lr)
                if vl is not None:
                    hist_val.append(vl)
                    stopping.observe(epoch, vl, mlp.params)
                schedule.observe(tl if vl is None else vl)
                log = EpochLog(epoch, tl, vl, lr, stopping.active.copy())
                stop = any([bool(cb(log)) for cb in callbacks])
                if stop or not stopping.active.any():
                    break
    finally:
        if pool is not None:
            pool.shutdown()
    stopping.restore(mlp)
    return _history(hist_train, hist_val, hist_lr, stopping, M, validation is not None)


class _blas_limit:
    """Context manager limiting BLAS threads (threadpoolctl), or doing nothing for None."""

    def __init__(self, n):
        self.n, self._ctx = n, None

    def __enter__(self):
        if self.n is not None:
            from threadpoolctl import threadpool_limits
            self._ctx = threadpool_limits(limits=int(self.n), user_api="blas")
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.restore_original_limits()
        return False
