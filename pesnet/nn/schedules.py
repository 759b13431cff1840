"""Learning-rate schedules, applied once per epoch and per member.

A schedule gives the factor by which the optimiser's base learning rate η₀ is multiplied in each
epoch (counted from 0), for each of M members::

    constant:     1
    exponential:  γ^e
    step:         γ^⌊e / step_size⌋
    cosine:       f_min + (1 - f_min)(1 + cos(π min(e, T)/T))/2   (T: ``period``, by default
                  the run's number of epochs)
    plateau:      multiplied by ``factor`` whenever a member's monitored (validation) loss has
                  not improved by more than ``min_delta`` for ``patience`` epochs; floor f_min

Only the plateau schedule has state; it is per member, so members stay independent.
Usage: ``reset(M, epochs)`` once, then per epoch ``factors(epoch)`` → (M,) and, after the epoch,
``observe(loss)`` with the monitored loss (M,).
"""

from __future__ import annotations

import math

import numpy as np

from pesnet.errors import InputError, did_you_mean

__all__ = ["Schedule", "Constant", "Exponential", "Step", "Cosine", "ReduceOnPlateau",
           "get_schedule", "SCHEDULES"]


class Schedule:
    """Base class: a factor per epoch, the same for all members."""

    name = "schedule"

    def reset(self, n_members, epochs=None):
        """Start a run of ``n_members`` members over ``epochs`` epochs (None: unknown)."""
        self.n_members = int(n_members)

    def factor(self, epoch):  # pragma: no cover - abstract
        raise NotImplementedError

    def factors(self, epoch):
        """Learning-rate factors of all members for ``epoch``, (M,)."""
        return np.full(self.n_members, self.factor(epoch))

    def observe(self, loss):
        """Tell the schedule the monitored loss (M,) after an epoch (ignored by default)."""

    def config(self):
        return {"name": self.name} | {k: v for k, v in vars(self).items()
                                      if not k.startswith("_") and k != "n_members"}

    def __repr__(self):
        args = (f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({', '.join(args)})"


class Constant(Schedule):
    """η = η₀."""

    name = "constant"

    def factor(self, epoch):
        return 1.0


class Exponential(Schedule):
    """η = η₀ γ^epoch."""

    name = "exponential"

    def __init__(self, gamma=0.99):
        self.gamma = float(gamma)
        if not 0 < self.gamma <= 1:
            raise InputError(f"gamma must be in (0, 1], got {gamma!r}")

    def factor(self, epoch):
        return self.gamma ** epoch


class Step(Schedule):
    """η = η₀ γ^⌊epoch/step_size⌋."""

    name = "step"

    def __init__(self, step_size=100, gamma=0.5):
        self.step_size, self.gamma = int(step_size), float(gamma)
        if self.step_size < 1 or not 0 < self.gamma <= 1:
            raise InputError(f"step schedule needs step_size >= 1 and 0 < gamma <= 1, got "
                             f"{step_size!r}, {gamma!r}")

    def factor(self, epoch):
        return self.gamma ** (epoch // self.step_size)


class Cosine(Schedule):
    """Cosine annealing from η₀ to η₀·min_factor over ``period`` epochs, then flat; with
    ``period=None`` over the whole run (the ``epochs`` given to :meth:`reset`)."""

    name = "cosine"

    def __init__(self, period=None, min_factor=0.0):
        self.period = None if period is None else int(period)
        self.min_factor = float(min_factor)
        if (self.period is not None and self.period < 1) or not 0 <= self.min_factor <= 1:
            raise InputError(f"cosine schedule needs period >= 1 and 0 <= min_factor <= 1, got "
                             f"{period!r}, {min_factor!r}")

    def reset(self, n_members, epochs=None):
        super().reset(n_members, epochs)
        if self.period is None:
            if epochs is None:
                raise InputError("cosine schedule without a period needs the run's epochs")
            self.period = max(int(epochs), 1)

    def factor(self, epoch):
        x = min(epoch, self.period) / self.period
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * x))


class ReduceOnPlateau(Schedule):
    """Multiply a member's rate by ``factor`` after ``patience`` epochs without improvement."""

    name = "plateau"

    def __init__(self, factor=0.5, patience=10, min_delta=0.0, min_factor=1e-4):
        self.factor_, self.patience = float(factor), int(patience)
        self.min_delta, self.min_factor = float(min_delta), float(min_factor)
        if not 0 < self.factor_ < 1 or self.patience < 0:
            raise InputError(f"plateau schedule needs 0 < factor < 1 and patience >= 0, got "
                             f"{factor!r}, {patience!r}")

    def config(self):
        return {"name": self.name, "factor": self.factor_, "patience": self.patience,
                "min_delta": self.min_delta, "min_factor": self.min_factor}

    def reset(self, n_members, epochs=None):
        super().reset(n_members, epochs)
        self._current = np.ones(self.n_members)
        self._best = np.full(self.n_members, np.inf)
        self._wait = np.zeros(self.n_members, dtype=int)

    def factors(self, epoch):
        return self._current.copy()

    def observe(self, loss):
        loss = np.asarray(loss, dtype=float)
        better = loss < self._best - self.min_delta
        self._best[better] = loss[better]
        self._wait[better] = 0
        self._wait[~better] += 1
        cut = self._wait > self.patience
        self._current[cut] = np.maximum(self._current[cut] * self.factor_, self.min_factor)
        self._wait[cut] = 0


SCHEDULES = {cls.name: cls for cls in (Constant, Exponential, Step, Cosine, ReduceOnPlateau)}
SCHEDULES["reduce_on_plateau"] = ReduceOnPlateau


def get_schedule(spec, **kwargs):
    """A :class:`Schedule` from a name (``constant``, ``exponential``, ``step``, ``cosine``,
    ``plateau``), a config dict, or an instance (returned as is)."""
    if spec is None:
        spec = "constant"
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, dict):
        kwargs = {**spec, **kwargs}
        spec = kwargs.pop("name", None)
    if not isinstance(spec, str) or spec.lower() not in SCHEDULES:
        raise InputError(f"unknown schedule {spec!r}{did_you_mean(spec, SCHEDULES)}; expected "
                         f"one of {', '.join(SCHEDULES)}")
    try:
        return SCHEDULES[spec.lower()](**kwargs)
    except TypeError as exc:
        raise InputError(f"bad parameters for schedule {spec!r}: {exc}") from None
