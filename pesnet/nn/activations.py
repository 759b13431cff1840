"""Activation functions with their first and second derivatives.

Each activation ``f`` acts elementwise on pre-activations ``z`` of any shape and any float
dtype. Besides the value it gives ``f'(z)`` (backpropagation, input gradients for forces) and
``f''(z)`` (the gradient of forces with respect to the weights, i.e. training on forces).

For speed, the network keeps the layer output ``a = f(z)`` and, when an activation can write
its derivatives in terms of ``a`` alone (``from_output = True``: tanh, sigmoid, ReLU, ELU,
CELU, identity), it overwrites ``z`` by ``a`` in place and never stores ``z``. All
derivative methods therefore take ``(z, a)``, where ``z`` may be ``None`` for such activations.

Public helpers :meth:`Activation.derivative_of` and :meth:`Activation.second_derivative_of`
take ``z`` only, for tests and one-off use.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from pesnet.errors import InputError, did_you_mean

__all__ = [
    "Activation", "Identity", "Tanh", "Sigmoid", "ReLU", "Softplus", "ShiftedSoftplus",
    "SiLU", "GELU", "ELU", "CELU", "get_activation", "ACTIVATIONS",
]


class Activation:
    """Base class. Subclasses implement :meth:`__call__`, :meth:`derivative` and
    :meth:`second_derivative`; ``out`` arguments are written in place when given."""

    name = "activation"
    #: Derivatives can be computed from the output ``a = f(z)`` alone (``z`` may be None).
    from_output = False

    def __call__(self, z, out=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def derivative(self, z, a, out=None):  # pragma: no cover - abstract
        """``f'(z)``, same shape as ``z``/``a``."""
        raise NotImplementedError

    def second_derivative(self, z, a, out=None):  # pragma: no cover - abstract
        """``f''(z)``, same shape as ``z``/``a``."""
        raise NotImplementedError

    def mul_derivative(self, delta, z, a, tmp):
        """In place ``delta *= f'(z)``; ``tmp`` is scratch of the same shape. Returns delta."""
        self.derivative(z, a, out=tmp)
        np.multiply(delta, tmp, out=delta)
        return delta

    # -- convenience, z only ------------------------------------------------------------
    def derivative_of(self, z):
        """``f'(z)`` from ``z`` alone."""
        z = np.asarray(z)
        return self.derivative(z, self(z))

    def second_derivative_of(self, z):
        """``f''(z)`` from ``z`` alone."""
        z = np.asarray(z)
        return self.second_derivative(z, self(z))

    def config(self):
        """Plain ``dict`` that :func:`get_activation` turns back into this activation."""
        return {"name": self.name}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return isinstance(other, Activation) and self.config() == other.config()

    def __hash__(self):
        return hash(tuple(sorted(self.config().items())))


def _out(z, a, out):
    """An output array shaped like whichever of z, a is given."""
    if out is not None:
        return out
    ref = a if a is not None else z
    return np.empty_like(ref)


class Identity(Activation):
    """f(z) = z;  f' = 1;  f'' = 0."""

    name = "identity"
    from_output = True

    def __call__(self, z, out=None):
        if out is None:
            return np.array(z, copy=True)
        if out is not z:
            np.copyto(out, z)
        return out

    def derivative(self, z, a, out=None):
        out = _out(z, a, out)
        out.fill(1)
        return out

    def second_derivative(self, z, a, out=None):
        out = _out(z, a, out)
        out.fill(0)
        return out

    def mul_derivative(self, delta, z, a, tmp):
        return delta


class Tanh(Activation):
    """f = tanh z;  f' = 1 - a²;  f'' = -2 a (1 - a²)   with a = tanh z."""

    name = "tanh"
    from_output = True

    def __call__(self, z, out=None):
        return np.tanh(z, out=out)

    def derivative(self, z, a, out=None):
        out = np.multiply(a, a, out=out)
        return np.subtract(1, out, out=out)

    def second_derivative(self, z, a, out=None):
        out = self.derivative(z, a, out=out)
        out *= a
        out *= -2
        return out

    def mul_derivative(self, delta, z, a, tmp):
        # delta * (1 - a²) = delta - delta·a·a : three passes, no temporaries
        np.multiply(a, a, out=tmp)
        np.multiply(tmp, delta, out=tmp)
        return np.subtract(delta, tmp, out=delta)


class Sigmoid(Activation):
    """f = σ(z) = 1/(1+e^{-z});  f' = a(1-a);  f'' = a(1-a)(1-2a)."""

    name = "sigmoid"
    from_output = True

    def __call__(self, z, out=None):
        return special.expit(z, out=out)

    def derivative(self, z, a, out=None):
        out = np.subtract(1, a, out=out)
        out *= a
        return out

    def second_derivative(self, z, a, out=None):
        out = self.derivative(z, a, out=out)
        out *= 1 - 2 * a
        return out


class ReLU(Activation):
    """f = max(0, z);  f' = [z > 0];  f'' = 0 (almost everywhere)."""

    name = "relu"
    from_output = True

    def __call__(self, z, out=None):
        return np.maximum(z, 0, out=out)

    def derivative(self, z, a, out=None):
        out = _out(z, a, out)
        np.greater(a, 0, out=out, casting="unsafe")
        return out

    def second_derivative(self, z, a, out=None):
        out = _out(z, a, out)
        out.fill(0)
        return out

    def mul_derivative(self, delta, z, a, tmp):
        delta[a <= 0] = 0
        return delta


class Softplus(Activation):
    """f = ln(1 + e^z);  f' = σ(z);  f'' = σ(z)(1 - σ(z))."""

    name = "softplus"
    shift = 0.0

    def __call__(self, z, out=None):
        out = np.logaddexp(0, z, out=out)
        if self.shift:
            out -= self.shift
        return out

    def derivative(self, z, a, out=None):
        return special.expit(z, out=out)

    def second_derivative(self, z, a, out=None):
        s = special.expit(z)
        out = np.subtract(1, s, out=out)
        out *= s
        return out


class ShiftedSoftplus(Softplus):
    """f = ln(1 + e^z) - ln 2 (so f(0) = 0, as in SchNet);  derivatives as softplus."""

    name = "shifted_softplus"
    shift = math.log(2.0)


class SiLU(Activation):
    """SiLU / swish: f = z σ(z);  f' = σ (1 + z(1-σ));  f'' = σ(1-σ)(2 + z(1-2σ))."""

    name = "silu"

    def __call__(self, z, out=None):
        s = special.expit(z)            # temporary: out may alias z
        return np.multiply(z, s, out=out)

    def derivative(self, z, a, out=None):
        s = special.expit(z)
        out = np.subtract(1, s, out=out)
        out *= z
        out += 1
        out *= s
        return out

    def second_derivative(self, z, a, out=None):
        s = special.expit(z)
        out = np.multiply(s, -2, out=out)
        out += 1
        out *= z
        out += 2
        out *= s * (1 - s)
        return out


_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


class GELU(Activation):
    """Exact GELU: f = z Φ(z), Φ(z) = ½(1 + erf(z/√2));  with φ(z) = e^{-z²/2}/√(2π):
    f' = Φ + z φ;  f'' = φ (2 - z²)."""

    name = "gelu"

    @staticmethod
    def _phi(z):
        return np.exp(-0.5 * z * z) * _INV_SQRT2PI

    def __call__(self, z, out=None):
        cdf = special.erf(np.multiply(z, _INV_SQRT2))   # temporary: out may alias z
        cdf += 1
        cdf *= 0.5
        return np.multiply(z, cdf, out=out)

    def derivative(self, z, a, out=None):
        out = special.erf(np.multiply(z, _INV_SQRT2), out=out)
        out += 1
        out *= 0.5
        out += z * self._phi(z)
        return out

    def second_derivative(self, z, a, out=None):
        out = np.multiply(z, z, out=out)
        np.subtract(2, out, out=out)
        out *= self._phi(z)
        return out


class ELU(Activation):
    """f = z (z > 0), α(e^z - 1) (z ≤ 0);  f' = 1 or a + α;  f'' = 0 or a + α."""

    name = "elu"
    from_output = True

    def __init__(self, alpha=1.0):
        self.alpha = float(alpha)
        if not self.alpha > 0:
            raise InputError(f"ELU alpha must be > 0, got {alpha!r}")

    def config(self):
        return {"name": self.name, "alpha": self.alpha}

    def __call__(self, z, out=None):
        neg = np.expm1(np.minimum(z, 0))
        neg *= self.alpha
        return np.where(z > 0, z, neg) if out is None else _where_into(out, z > 0, z, neg)

    def derivative(self, z, a, out=None):
        out = _out(z, a, out)
        return _where_into(out, a > 0, 1.0, a + self.alpha)

    def second_derivative(self, z, a, out=None):
        out = _out(z, a, out)
        return _where_into(out, a > 0, 0.0, a + self.alpha)


class CELU(Activation):
    """f = z (z > 0), α(e^{z/α} - 1) (z ≤ 0);  f' = 1 or a/α + 1;  f'' = 0 or (a/α + 1)/α."""

    name = "celu"
    from_output = True

    def __init__(self, alpha=1.0):
        self.alpha = float(alpha)
        if not self.alpha > 0:
            raise InputError(f"CELU alpha must be > 0, got {alpha!r}")

    def config(self):
        return {"name": self.name, "alpha": self.alpha}

    def __call__(self, z, out=None):
        neg = np.expm1(np.minimum(z, 0) / self.alpha)
        neg *= self.alpha
        return np.where(z > 0, z, neg) if out is None else _where_into(out, z > 0, z, neg)

    def derivative(self, z, a, out=None):
        out = _out(z, a, out)
        return _where_into(out, a > 0, 1.0, a / self.alpha + 1)

    def second_derivative(self, z, a, out=None):
        out = _out(z, a, out)
        return _where_into(out, a > 0, 0.0, (a / self.alpha + 1) / self.alpha)


def _where_into(out, cond, x, y):
    """``out[...] = where(cond, x, y)`` without aliasing trouble when out is x."""
    res = np.where(cond, x, y)
    np.copyto(out, res, casting="same_kind")
    return out


ACTIVATIONS = {
    cls.name: cls
    for cls in (Identity, Tanh, Sigmoid, ReLU, Softplus, ShiftedSoftplus, SiLU, GELU, ELU, CELU)
}
_ALIASES = {"linear": "identity", "none": "identity", "logistic": "sigmoid", "swish": "silu",
            "ssp": "shifted_softplus"}


def get_activation(spec):
    """An :class:`Activation` from a name (``"tanh"``), a config dict (``{"name": "elu",
    "alpha": 0.5}``) or an activation instance (returned as is)."""
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        name = str(spec.pop("name", "")).lower()
        kwargs = spec
    elif isinstance(spec, str):
        name, kwargs = spec.lower(), {}
    else:
        raise InputError(f"activation must be a name, a dict or an Activation, got {spec!r}")
    name = _ALIASES.get(name, name)
    if name not in ACTIVATIONS:
        raise InputError(
            f"unknown activation {name!r}{did_you_mean(name, [*ACTIVATIONS, *_ALIASES])}; "
            f"expected one of {', '.join(sorted(ACTIVATIONS))}")
    try:
        return ACTIVATIONS[name](**kwargs)
    except TypeError as exc:
        raise InputError(f"bad parameters for activation {name!r}: {exc}") from None
