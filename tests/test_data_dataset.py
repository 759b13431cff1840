"""The dataset API: len, indexing, slicing, chunked iteration in bounded memory, splits."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from pesnet.data import Dataset, DatasetWriter, split_indices
from pesnet.data.ingest import ingest
from pesnet.errors import DataFormatError, InputError


@pytest.fixture
def dataset(tmp_path, extxyz_file):
    out = tmp_path / "ds.h5"
    ingest([extxyz_file], out)
    with Dataset(out) as ds:
        yield ds


def test_len_index_slice_and_labels(dataset, extxyz_file):
    import ase.io

    expected = ase.io.read(extxyz_file, ":")
    assert len(dataset) == 6
    assert dataset.elements == [1, 6, 8, 29]
    last = dataset[-1]
    np.testing.assert_array_equal(last.positions, expected[-1].positions)
    assert last.get_potential_energy() == expected[-1].get_potential_energy()
    assert [a.info["dataset_index"] for a in dataset[1:6:2]] == [1, 3, 5]
    picked = dataset[[4, 0]]
    np.testing.assert_array_equal(picked[0].numbers, expected[4].numbers)
    np.testing.assert_array_equal(picked[1].get_forces(), expected[0].get_forces())
    with pytest.raises(IndexError):
        dataset[6]


@pytest.mark.parametrize("chunk_size", [1, 4, 100])
def test_chunks_cover_dataset_in_order(dataset, chunk_size):
    seen = []
    for batch in dataset.iter_chunks(chunk_size):
        assert len(batch) <= chunk_size
        assert batch.offsets[0] == 0 and batch.offsets[-1] == len(batch.numbers)
        for k in range(len(batch)):
            atoms = batch.atoms(k)
            np.testing.assert_array_equal(atoms.positions, dataset[int(batch.indices[k])].positions)
        seen.extend(batch.indices.tolist())
    assert seen == list(range(6))


def test_chunks_of_chosen_indices(dataset):
    order = [5, 2, 3, 0]
    batches = list(dataset.iter_chunks(3, indices=order))
    assert [b.indices.tolist() for b in batches] == [[5, 2, 3], [0]]
    first = batches[0]
    for k, index in enumerate(order[:3]):
        np.testing.assert_array_equal(first.atoms(k).get_forces(), dataset[index].get_forces())
        assert first.energy[k] == dataset[index].get_potential_energy()


def test_split_is_reproducible_and_disjoint():
    a = split_indices(1000, seed=7)
    b = split_indices(1000, seed=7)
    c = split_indices(1000, seed=8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.test, c.test)
    assert (len(a.train), len(a.validation), len(a.test)) == (800, 100, 100)
    together = np.concatenate(a)
    assert sorted(together.tolist()) == list(range(1000))
    custom = split_indices(10, fractions=(0.6, 0.2, 0.2), seed=0)
    assert (len(custom.train), len(custom.validation), len(custom.test)) == (6, 2, 2)
    with pytest.raises(InputError, match="fractions"):
        split_indices(10, fractions=(0.5, 0.2, 0.2))


def test_iterating_100k_configurations_uses_bounded_memory(tmp_path):
    n = 100_000
    path = tmp_path / "big.h5"
    rng = np.random.default_rng(0)
    cell = np.eye(3) * 10.0
    with DatasetWriter(path, buffer_size=20_000) as writer:
        for k in range(n):
            writer.append([1, 1], rng.normal(size=(2, 3)) + [[0, 0, 0], [1, 0, 0]], cell,
                          [False] * 3, energy=float(k), forces=np.zeros((2, 3)))
    import h5py

    with h5py.File(path, "r") as f:  # not h5py's guess of 1 per chunk: 70 MB to read 10k
        assert f["offsets"].chunks[0] >= 1024
    with Dataset(path) as ds:
        assert len(ds) == n
        full_size = ds.n_atoms_total * 3 * 8 * 2 + n * (8 + 72 + 48)  # positions, forces, ...
        tracemalloc.start()
        total_energy = 0.0
        count = 0
        for batch in ds.iter_chunks(1000):
            total_energy += batch.energy.sum()
            count += len(batch)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert count == n
    assert total_energy == n * (n - 1) / 2
    assert peak < full_size / 10, (peak, full_size)


def test_open_errors_are_clear(tmp_path):
    with pytest.raises(InputError, match="no such dataset file"):
        Dataset(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(DataFormatError, match="not an HDF5 file"):
        Dataset(junk)
    import h5py

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(DataFormatError, match="not a pesnet dataset"):
        Dataset(other)
