"""Weight initialisers and the one place where seeds become random generators.

Seeds
-----
An ensemble is defined by one integer seed. Member ``m`` of the ensemble built from seed ``s``
gets its own independent streams, derived from ``numpy.random.SeedSequence(s)`` with spawn key
``(0, m, purpose)``; data shuffling and splitting shared by all members use key ``(1, purpose)``.
Member ``m`` therefore has the same streams whether it is trained alone, in an ensemble of 8, or
in a group of members ``4..7`` on another worker.

Initialisers
------------
Each initialiser draws one weight matrix of shape ``(fan_in, fan_out)`` from a generator:

* Xavier/Glorot: uniform U(-r, r), r = √(6/(fan_in + fan_out));  normal σ = √(2/(fan_in + fan_out))
* He/Kaiming:    uniform U(-r, r), r = √(6/fan_in);             normal σ = √(2/fan_in)

Biases start at zero.
"""

from __future__ import annotations

import math

import numpy as np

from pesnet.errors import InputError

__all__ = [
    "INITIALIZERS", "get_initializer", "xavier_uniform", "xavier_normal", "he_uniform",
    "he_normal", "member_rng", "shared_rng", "resolve_seed", "INIT", "BOOTSTRAP", "SHUFFLE",
    "SPLIT",
]

# stream purposes (the last element of a spawn key)
INIT, BOOTSTRAP = 0, 1
SHUFFLE, SPLIT = 0, 1


def _entropy(seed):
    if seed is None:
        raise InputError("a seed is needed here; pass an integer (None is resolved by the caller)")
    if isinstance(seed, (int, np.integer)) and seed >= 0:
        return int(seed)
    raise InputError(f"seed must be a non-negative integer, got {seed!r}")


def member_rng(seed, member, purpose=INIT):
    """The generator of ensemble member ``member`` (0-based) for ``purpose`` (INIT, BOOTSTRAP)."""
    ss = np.random.SeedSequence(_entropy(seed), spawn_key=(0, int(member), int(purpose)))
    return np.random.default_rng(ss)


def shared_rng(seed, purpose=SHUFFLE):
    """The generator shared by all members for ``purpose`` (SHUFFLE of batches, SPLIT of data)."""
    ss = np.random.SeedSequence(_entropy(seed), spawn_key=(1, int(purpose)))
    return np.random.default_rng(ss)


def resolve_seed(seed):
    """An integer seed: ``seed`` itself, or fresh OS entropy when ``seed`` is None."""
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    return _entropy(seed)


def xavier_uniform(rng, fan_in, fan_out, dtype=np.float64):
    """Glorot & Bengio (2010): U(-r, r), r = √(6/(fan_in+fan_out)); shape (fan_in, fan_out)."""
    r = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-r, r, size=(fan_in, fan_out)).astype(dtype, copy=False)


def xavier_normal(rng, fan_in, fan_out, dtype=np.float64):
    """Glorot & Bengio (2010): N(0, σ²), σ = √(2/(fan_in+fan_out)); shape (fan_in, fan_out)."""
    s = math.sqrt(2.0 / (fan_in + fan_out))
    return (s * rng.standard_normal(size=(fan_in, fan_out))).astype(dtype, copy=False)


def he_uniform(rng, fan_in, fan_out, dtype=np.float64):
    """He et al. (2015): U(-r, r), r = √(6/fan_in); shape (fan_in, fan_out)."""
    r = math.sqrt(6.0 / fan_in)
    return rng.uniform(-r, r, size=(fan_in, fan_out)).astype(dtype, copy=False)


def he_normal(rng, fan_in, fan_out, dtype=np.float64):
    """He et al. (2015): N(0, σ²), σ = √(2/fan_in); shape (fan_in, fan_out)."""
    s = math.sqrt(2.0 / fan_in)
    return (s * rng.standard_normal(size=(fan_in, fan_out))).astype(dtype, copy=False)


INITIALIZERS = {
    "xavier_uniform": xavier_uniform, "xavier_normal": xavier_normal,
    "glorot_uniform": xavier_uniform, "glorot_normal": xavier_normal,
    "he_uniform": he_uniform, "he_normal": he_normal,
    "kaiming_uniform": he_uniform, "kaiming_normal": he_normal,
}


def get_initializer(spec):
    """An initialiser function from its name (see :data:`INITIALIZERS`) or a callable
    ``f(rng, fan_in, fan_out, dtype) -> (fan_in, fan_out) array``."""
    if callable(spec):
        return spec
    if isinstance(spec, str) and spec.lower() in INITIALIZERS:
        return INITIALIZERS[spec.lower()]
    raise InputError(
        f"unknown initialiser {spec!r}; expected one of {', '.join(sorted(INITIALIZERS))}")
