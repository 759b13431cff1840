"""First-order optimisers acting in place on the flat (M, P) parameter array of an ensemble.

Every optimiser updates all layers of all members with a few ufunc calls on ``params`` (M, P),
using a learning rate per member ``lr`` (M, 1) (schedules may differ between members, e.g.
reduce-on-plateau) and state arrays shaped like ``params``. State is created by
:meth:`Optimizer.init_state` and may be sliced along the member axis (``state_slice``) so that
groups of members are updated independently (one worker thread each) with identical results.

Update rules (g = gradient, θ = parameters, η = learning rate, t = step count from 1):

    SGD:       θ ← θ - η g
    momentum:  v ← μ v + g;   θ ← θ - η v            (Nesterov: θ ← θ - η (g + μ v))
    Adam:      m ← β1 m + (1-β1) g;  s ← β2 s + (1-β2) g²
               θ ← θ - η m/(1-β1^t) / (√(s/(1-β2^t)) + ε)
    AdamW:     θ ← θ - η λ θ before the Adam step (decoupled weight decay)

``weight_decay`` λ in SGD/momentum/Adam adds λθ to g (L2 regularisation).
"""

from __future__ import annotations

import numpy as np

from pesnet.errors import InputError, did_you_mean

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "get_optimizer", "OPTIMIZERS", "clip_grad_norm",
           "state_slice"]


def state_slice(state, start, stop):
    """Members ``start:stop`` of an optimiser state (views)."""
    return {k: v[start:stop] for k, v in state.items()}


def clip_grad_norm(grads, max_norm, tmp=None):
    """Scale each member's gradient row (M, P) in place so its 2-norm is at most ``max_norm``.
    Returns the norms before clipping, (M,)."""
    sq = np.multiply(grads, grads, out=tmp)
    norms = np.sqrt(sq.sum(axis=1))
    scale = np.ones_like(norms)
    np.divide(max_norm, norms, out=scale, where=norms > max_norm)  # zero rows stay unscaled
    grads *= scale[:, None].astype(grads.dtype)
    return norms


class Optimizer:
    """Base class. ``learning_rate`` is the base rate η₀; schedules multiply it per member."""

    name = "optimizer"

    def __init__(self, learning_rate=1e-3, weight_decay=0.0):
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate must be > 0, got {learning_rate!r}")
        if self.weight_decay < 0:
            raise InputError(f"weight_decay must be >= 0, got {weight_decay!r}")

    def config(self):
        return {"name": self.name, "learning_rate": self.learning_rate,
                "weight_decay": self.weight_decay}

    def __repr__(self):
        args = (f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({', '.join(args)})"

    def init_state(self, params):
        """Optimiser state for ``params`` (M, P): a dict of arrays with a leading member axis."""
        return {"t": np.zeros((params.shape[0], 1), params.dtype)}

    def step(self, params, grads, lr, state, tmp):
        """Update ``params`` (M, P) in place from ``grads`` (M, P, may be overwritten) with
        learning rates ``lr`` (M, 1). ``tmp`` is scratch (M, P)."""
        raise NotImplementedError  # pragma: no cover

    def _l2(self, params, grads, tmp):
        if self.weight_decay:
            np.multiply(params, self.weight_decay, out=tmp)
            grads += tmp


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum μ."""

    name = "sgd"

    def __init__(self, learning_rate=1e-2, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        if not 0 <= self.momentum < 1:
            raise InputError(f"momentum must be in [0, 1), got {momentum!r}")
        if self.nesterov and self.momentum == 0:
            raise InputError("Nesterov momentum needs momentum > 0")

    def config(self):
        return super().config() | {"momentum": self.momentum, "nesterov": self.nesterov}

    def init_state(self, params):
        state = super().init_state(params)
        if self.momentum:
            state["velocity"] = np.zeros_like(params)
        return state

    def step(self, params, grads, lr, state, tmp):
        self._l2(params, grads, tmp)
        state["t"] += 1
        if self.momentum:
            v = state["velocity"]
            v *= self.momentum                      # v ← μ v + g
            v += grads
            if self.nesterov:                       # g ← g + μ v
                np.multiply(v, self.momentum, out=tmp)
                grads += tmp
            else:
                grads = v
        np.multiply(grads, lr, out=tmp)             # θ ← θ - η g
        params -= tmp


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), with L2 ``weight_decay`` added to the gradient."""

    name = "adam"
    decoupled = False

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1 and self.eps > 0):
            raise InputError(f"Adam needs 0 <= beta1, beta2 < 1 and eps > 0, got "
                             f"{beta1!r}, {beta2!r}, {eps!r}")

    def config(self):
        return super().config() | {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def init_state(self, params):
        state = super().init_state(params)
        state["m"] = np.zeros_like(params)
        state["s"] = np.zeros_like(params)
        return state

    def step(self, params, grads, lr, state, tmp):
        # Stored moments are rescaled, m' = m/(1-β1) and s' = s/(1-β2), which saves three
        # passes over (M, P) per step:  m' ← β1 m' + g,  s' ← β2 s' + g², and with
        # c = √(1-β2)/√(1-β2^t):   Δθ = -[η (1-β1)/((1-β1^t) c)] m' / (√s' + ε/c),
        # algebraically the Adam update of the module docstring.
        b1, b2 = self.beta1, self.beta2
        if self.decoupled and self.weight_decay:
            params *= 1 - lr * self.weight_decay            # θ ← θ - η λ θ  (AdamW)
        else:
            self._l2(params, grads, tmp)
        t = state["t"]
        t += 1
        m, s = state["m"], state["s"]
        m *= b1                                             # m' ← β1 m' + g
        m += grads
        np.multiply(grads, grads, out=tmp)                  # s' ← β2 s' + g²
        s *= b2
        s += tmp
        c = np.sqrt((1 - b2) / (1 - b2 ** t))               # per member, (M, 1)
        step_size = lr * ((1 - b1) / (1 - b1 ** t)) / c
        np.sqrt(s, out=tmp)
        tmp += self.eps / c
        np.divide(m, tmp, out=tmp)
        tmp *= step_size
        params -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019); default λ = 3e-3 (PyTorch's
    is 0.01; 3e-3 is what pesnet's potentials were measured with — ``benchmarks/accuracy.py
    --ablation``)."""

    name = "adamw"
    decoupled = True

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=3e-3):
        super().__init__(learning_rate, beta1, beta2, eps, weight_decay)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def get_optimizer(spec, **kwargs):
    """An :class:`Optimizer` from a name (``sgd``, ``momentum``, ``nesterov``, ``adam``,
    ``adamw``) plus keyword arguments, a config dict, or an instance (returned as is)."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, dict):
        kwargs = {**spec, **kwargs}
        spec = kwargs.pop("name", None)
    name = spec.lower() if isinstance(spec, str) else spec
    if name == "momentum":
        name, kwargs = "sgd", {"momentum": 0.9, **kwargs}
    elif name == "nesterov":
        name, kwargs = "sgd", {"momentum": 0.9, "nesterov": True, **kwargs}
    if name not in OPTIMIZERS:
        known = [*OPTIMIZERS, "momentum", "nesterov"]
        raise InputError(f"unknown optimiser {spec!r}{did_you_mean(spec, known)}; expected one "
                         f"of sgd, momentum, nesterov, adam, adamw")
    try:
        return OPTIMIZERS[name](**kwargs)
    except TypeError as exc:
        raise InputError(f"bad parameters for optimiser {spec!r}: {exc}") from None
