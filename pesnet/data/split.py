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


def fixed_split(n_configs: int, validation=(), test=()) -> Split:
    """A split with the given ``validation`` and ``test`` configuration indices (0-based);
    training takes every other configuration. Indices must be integers in range, without
    repeats, and the two parts must not overlap; training and validation must not be empty."""
    parts = {name: checked_indices(name, values, n_configs)
             for name, values in (("validation", validation), ("test", test))}
    both = np.intersect1d(parts["validation"], parts["test"])
    if both.size:
        raise InputError(f"configuration {int(both[0])} is in both the validation and the "
                         "test part")
    train = np.setdiff1d(np.arange(n_configs), np.concatenate([parts["validation"],
                                                               parts["test"]]))
    if train.size == 0 or parts["validation"].size == 0:
        raise InputError("a split needs configurations to train on and to validate with")
    return Split(train, parts["validation"], parts["test"])


def checked_indices(name: str, values, n_configs: int) -> np.ndarray:
    """``values`` as sorted int64 configuration indices, refused unless integers in
    [0, n_configs) without repeats (``name`` says which part in the message)."""
    array = np.asarray(values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name} indices must be integers, got {array.dtype}")
    array = array.astype(np.int64).reshape(-1)
    if array.size and (array.min() < 0 or array.max() >= n_configs):
        bad = int(array[(array < 0) | (array >= n_configs)][0])
        raise InputError(f"{name} index {bad} is outside the dataset's {n_configs} "
                         "configurations (indices count from 0)")
    if np.unique(array).size != array.size:
        raise InputError(f"{name} indices repeat a configuration")
    return np.sort(array)


def held_out_split(n_configs: int, held: np.ndarray, fractions=(0.8, 0.1, 0.1),
                   seed: int = 0, validation=None) -> Split:
    """Test = the configurations where ``held`` (n,) is true (a structure class or source
    file held out); validation = ``validation`` (bool (n,)) if given, else a random part of
    the rest of relative size fractions[1] / (fractions[0] + fractions[1]) (by ``seed``)."""
    held = np.asarray(held, bool)
    test = np.flatnonzero(held)
    if validation is not None:
        return fixed_split(n_configs, np.flatnonzero(np.asarray(validation, bool) & ~held), test)
    rest = np.flatnonzero(~held)
    share = fractions[1] / max(fractions[0] + fractions[1], 1e-300)
    inner = split_indices(len(rest), (1.0 - share, share, 0.0), seed)
    return fixed_split(n_configs, rest[inner.validation], test)


def split_from_info(info: dict, n_configs: int) -> Split:
    """The split a recorded description gives (a features file's or a model's ``split``):
    ``{"validation": [...], "test": [...]}`` fixed indices, else ``{"fractions", "seed"}``
    (:func:`split_indices`)."""
    if "validation" in info or "test" in info:
        return fixed_split(n_configs, info.get("validation", []), info.get("test", []))
    return split_indices(n_configs, tuple(info["fractions"]), int(info["seed"]))


def read_index_file(path) -> np.ndarray:
    """Configuration indices (0-based) from a text file: integers separated by white space or
    commas, ``#`` starting a comment. A clear error names the file and the line."""
    from pathlib import Path

    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the index file ({error})") from None
    values = []
    for number, line in enumerate(text.splitlines(), start=1):
        for word in line.split("#", 1)[0].replace(",", " ").split():
            try:
                values.append(int(word))
            except ValueError:
                raise InputError(f"{path}, line {number}: {word!r} is not an integer "
                                 "configuration index") from None
    return np.asarray(values, dtype=np.int64)
