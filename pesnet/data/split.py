"""Reproducible train/validation/test splits of configuration indices."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pesnet.errors import InputError


class Split(NamedTuple):
    """Sorted configuration indices of each part."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_indices(n_configs: int, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> Split:
    """Split ``range(n_configs)`` at random into train/validation/test parts.

    ``fractions`` must be three non-negative numbers summing to 1. The validation and test
    sizes are ``round(fraction * n_configs)``; training takes the rest. The same ``seed`` and
    ``n_configs`` always give the same split (NumPy's PCG64 permutation).
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise InputError(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions.tolist()}"
        )
    n_val = int(round(fractions[1] * n_configs))
    n_test = int(round(fractions[2] * n_configs))
    n_val = min(n_val, n_configs)
    n_test = min(n_test, n_configs - n_val)
    order = np.random.default_rng(seed).permutation(n_configs)
    test = np.sort(order[:n_test])
    validation = np.sort(order[n_test : n_test + n_val])
    train = np.sort(order[n_test + n_val :])
    return Split(train, validation, test)
