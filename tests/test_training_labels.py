"""Training labels: per-configuration columns held, forces read from the dataset by the batch."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from pesnet.data import Dataset
from pesnet.errors import DataFormatError
from pesnet.potential.reference import element_counts
from pesnet.training.labels import read_labels


@pytest.fixture
def mixed_dataset(tmp_path, extxyz_file):
    """Six configurations: periodic Cu cells and ethanol molecules (H, C, O, Cu)."""
    from pesnet.data.ingest import ingest

    ingest([extxyz_file], tmp_path / "ds.h5")
    return tmp_path / "ds.h5"


def test_force_rows_are_the_dataset_forces_of_any_configurations(mixed_dataset):
    labels = read_labels(mixed_dataset)
    with Dataset(mixed_dataset) as ds:
        forces, offsets = ds.array("forces"), ds.offsets
    for indices in ([0], [5], [1, 2, 3], [0, 2, 5], [0, 1, 3, 4], list(range(6)), []):
        rows = (np.concatenate([np.arange(offsets[k], offsets[k + 1]) for k in indices])
                if indices else np.zeros(0, int))
        np.testing.assert_array_equal(labels.forces.configurations(labels.offsets, indices),
                                      forces[rows])


def test_subset_masks_unlabelled_forces_and_counts_atoms(mixed_dataset):
    labels = read_labels(mixed_dataset)
    labels = labels._replace(has_forces=np.array([True, False, True, True, False, True]))
    energy, has_energy, forces, mask, counts = labels.subset([0, 1, 4])
    n = np.diff(labels.offsets)[[0, 1, 4]]
    np.testing.assert_array_equal(counts, n)
    assert mask.tolist() == [True] * n[0] + [False] * (n[1] + n[2])
    assert not forces[n[0]:].any() and forces[: n[0]].any()
    np.testing.assert_array_equal(energy, labels.energy[[0, 1, 4]])


def test_composition_counts_every_element_per_configuration(mixed_dataset):
    labels = read_labels(mixed_dataset)
    with Dataset(mixed_dataset) as ds:
        numbers = ds.array("numbers")
    assert labels.species.tolist() == [1, 6, 8, 29]
    np.testing.assert_array_equal(labels.element_counts([1, 6, 8, 29]),
                                  element_counts(numbers, labels.offsets, [1, 6, 8, 29]))
    for elements in ([6, 29], [29, 47]):  # 47: absent from the data
        expected = [[int((numbers[a:b] == z).sum()) for z in elements]
                    for a, b in zip(labels.offsets, labels.offsets[1:])]
        np.testing.assert_array_equal(labels.element_counts(elements), expected)


def test_labels_hold_nothing_per_atom(mixed_dataset):
    """Memory bounded by the batch: every held label array has one row per configuration."""
    labels = read_labels(mixed_dataset)
    n = len(labels.offsets) - 1
    assert labels.offsets[-1] > n + 1  # more atoms than configurations, so the check bites
    for name, value in labels._asdict().items():
        if isinstance(value, np.ndarray) and name not in ("offsets", "species"):
            assert len(value) == n, name


def test_a_dataset_changed_or_removed_during_the_fit_is_a_clear_error(mixed_dataset, tmp_path):
    labels = read_labels(mixed_dataset)
    shutil.copy(mixed_dataset, tmp_path / "kept.h5")
    with h5py.File(mixed_dataset, "a") as f:
        f["forces"].resize(f["forces"].shape[0] - 1, axis=0)
    with pytest.raises(DataFormatError, match=r"ds\.h5: the dataset changed during the fit"):
        labels.subset([0])
    mixed_dataset.unlink()
    with pytest.raises(DataFormatError, match=r"ds\.h5: cannot read the forces of "
                                              r"configurations 2\.\.3"):
        labels.subset([2, 3])
