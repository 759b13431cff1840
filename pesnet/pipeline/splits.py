"""The split a pipeline spec asks for, on its ingested dataset (``[split]``, see
:class:`pesnet.pipeline.spec.SplitSpec`): fractions and a seed, or fixed parts from index
files, whole structure files or a held-out structure class."""

from __future__ import annotations

import numpy as np

from pesnet.data import Dataset
from pesnet.data.split import checked_indices, held_out_split, read_index_file
from pesnet.errors import InputError


def spec_split(pipeline, dataset_path):
    """What :func:`pesnet.descriptors.featurize.featurize` takes as ``split``: the fractions
    (a tuple) when nothing is fixed, else a :class:`~pesnet.data.split.Split`."""
    spec = pipeline.spec.split
    if not spec.fixed:
        return tuple(spec.fractions)
    with Dataset(dataset_path) as ds:
        n, groups, sources = len(ds), ds.column("config_type"), ds.column("source")
    n_data = 1 if pipeline.spec.dataset.recipe else len(pipeline.spec.dataset.files)
    n_val = len(spec.validation_files)
    files = pipeline.index_files()
    try:
        validation = _mask(n, "validation", files.get("split.validation"))
        if spec.validation_files:
            validation = (sources >= n_data) & (sources < n_data + n_val)
        held = _mask(n, "test", files.get("split.test"))
        if spec.test_files:
            held = sources >= n_data + n_val
        if spec.holdout:
            names = spec.holdout["config_type"]
            held = np.isin(groups, [names] if isinstance(names, str) else names)
            if not held.any():
                raise InputError(f"split.holdout: no configuration has config_type "
                                 f"{names!r} (the dataset has {sorted(set(groups.tolist()))})")
        if held is None:   # only the validation part is fixed: draw the test part from the rest
            held = _random_test(n, validation, spec.fractions, spec.seed)
        return held_out_split(n, held, spec.fractions, spec.seed, validation)
    except InputError as error:
        raise InputError(f"{pipeline.path}: split: {error}") from None


def _mask(n: int, part: str, index_file):
    """A boolean mask (n,) of the configurations an index file names (None without one)."""
    if index_file is None:
        return None
    indices = checked_indices(part, read_index_file(index_file), n)
    mask = np.zeros(n, bool)
    mask[indices] = True
    return mask


def _random_test(n: int, validation, fractions, seed: int) -> np.ndarray:
    """A test part of round(f_test · n) configurations drawn by ``seed`` outside
    ``validation``."""
    rest = np.flatnonzero(~validation) if validation is not None else np.arange(n)
    order = np.random.default_rng(seed).permutation(rest)
    held = np.zeros(n, bool)
    held[order[:int(round(fractions[2] * n))]] = True
    return held

