"""Regression losses with per-sample, per-member weights.

For predictions y (M, B, K) of M members, targets t (B, K) shared by all members (or (M, B, K)),
and weights w (M, B) (or (B,), or None = 1), member m's loss is::

    L_m = (1/N) Σ_{b,k} w_{m,b} ℓ(y_{m,b,k} - t_{b,k})      N = B·K ("mean") or 1 ("sum")

with the elementwise ℓ(r) of each loss:

    MSE:    ℓ = r²                                   ℓ' = 2r
    MAE:    ℓ = |r|                                  ℓ' = sign(r)
    Huber:  ℓ = r²/2 (|r| ≤ δ),  δ(|r| - δ/2) else   ℓ' = clip(r, -δ, δ)

Integer Poisson(1) weights make member m see a bootstrap resample of the same batches.
``"mean"`` divides by the number of entries, not by Σw, so a zero-weight batch is harmless.
The "sum" reduction with MSE is the sum of squared errors of the lecture notes.
"""

from __future__ import annotations

import numpy as np

from pesnet.errors import InputError

__all__ = ["Loss", "MSE", "MAE", "Huber", "get_loss", "LOSSES"]


class Loss:
    """Base class: subclasses define the elementwise ``_elementwise(r)`` and ``_derivative(r)``."""

    name = "loss"

    def __init__(self, reduction="mean"):
        if reduction not in ("mean", "sum"):
            raise InputError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    def config(self):
        return {"name": self.name, "reduction": self.reduction}

    def __repr__(self):
        args = (f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({', '.join(args)})"

    def _norm(self, y):
        return 1.0 / (y.shape[-2] * y.shape[-1]) if self.reduction == "mean" else 1.0

    @staticmethod
    def _weights(w, y):
        if w is None:
            return None
        w = np.asarray(w, dtype=y.dtype)
        if w.shape not in ((y.shape[1],), y.shape[:2]):
            raise InputError(f"sample weights must have shape ({y.shape[1]},) or {y.shape[:2]}, "
                             f"got {w.shape}")
        return np.broadcast_to(w, y.shape[:2])[..., None]

    def __call__(self, y, t, w=None):
        """Loss of each member, (M,)."""
        r = np.subtract(y, t)
        e = self._elementwise(r)
        if w is not None:
            e *= self._weights(w, y)
        return e.reshape(e.shape[0], -1).sum(axis=1) * self._norm(y)

    def value_and_grad(self, y, t, w=None, out=None):
        """``(L, ∂L/∂y)``: loss per member (M,) and its gradient (M, B, K), written into
        ``out`` when given (``out`` may be a scratch buffer, not ``y``)."""
        w = self._weights(w, y)
        r = np.subtract(y, t, out=out)
        e = self._elementwise(r)
        if w is not None:
            e *= w
        value = e.reshape(e.shape[0], -1).sum(axis=1)
        norm = self._norm(y)
        value *= norm
        g = self._derivative(r, out=r)
        g *= norm if w is None else w * norm
        return value, g


class MSE(Loss):
    """Mean (or summed) squared error, ℓ(r) = r²."""

    name = "mse"

    def _elementwise(self, r):
        return r * r

    def _derivative(self, r, out):
        return np.multiply(r, 2, out=out)


class MAE(Loss):
    """Mean (or summed) absolute error, ℓ(r) = |r| (subgradient 0 at r = 0)."""

    name = "mae"

    def _elementwise(self, r):
        return np.abs(r)

    def _derivative(self, r, out):
        return np.sign(r, out=out)


class Huber(Loss):
    """Huber loss with threshold ``delta`` (units of the target): quadratic inside, linear outside."""

    name = "huber"

    def __init__(self, delta=1.0, reduction="mean"):
        super().__init__(reduction)
        self.delta = float(delta)
        if not self.delta > 0:
            raise InputError(f"Huber delta must be > 0, got {delta!r}")

    def config(self):
        return super().config() | {"delta": self.delta}

    def _elementwise(self, r):
        a = np.abs(r)
        return np.where(a <= self.delta, 0.5 * r * r, self.delta * (a - 0.5 * self.delta))

    def _derivative(self, r, out):
        return np.clip(r, -self.delta, self.delta, out=out)


LOSSES = {"mse": MSE, "mae": MAE, "huber": Huber}


def get_loss(spec, **kwargs):
    """A :class:`Loss` from a name (``"mse"``, ``"mae"``, ``"huber"``), a config dict or an instance."""
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, dict):
        kwargs = {**spec, **kwargs}
        spec = kwargs.pop("name", None)
    if not isinstance(spec, str) or spec.lower() not in LOSSES:
        raise InputError(f"unknown loss {spec!r}; expected one of {', '.join(LOSSES)}")
    try:
        return LOSSES[spec.lower()](**kwargs)
    except TypeError as exc:
        raise InputError(f"bad parameters for loss {spec!r}: {exc}") from None
