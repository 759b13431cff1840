"""Reading a pesnet dataset file without loading it whole.

>>> with Dataset("dataset.h5") as ds:
...     len(ds), ds.elements
...     atoms = ds[3]                      # ase.Atoms with a SinglePointCalculator
...     for batch in ds.iter_chunks(1000): # ConfigBatch of flat arrays, bounded memory
...         ...

Only ``offsets`` (n_configs + 1 integers) is held in memory; everything else is read from disk
slice by slice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from pesnet.data import schema
from pesnet.fileio import open_hdf5


class ConfigBatch(NamedTuple):
    """A contiguous run of configurations as flat arrays (layout of :mod:`pesnet.data.schema`).

    ``offsets`` is local: configuration k of the batch owns atom rows
    ``offsets[k]:offsets[k+1]`` of ``numbers``/``positions``/``forces``. ``indices`` are the
    configurations' indices in the dataset.
    """

    indices: np.ndarray
    offsets: np.ndarray
    numbers: np.ndarray
    positions: np.ndarray
    forces: np.ndarray
    energy: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    stress: np.ndarray
    has_energy: np.ndarray
    has_forces: np.ndarray
    has_stress: np.ndarray
    config_type: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def n_atoms(self) -> np.ndarray:
        """Atoms per configuration, (n_configs,)."""
        return np.diff(self.offsets)

    def atoms(self, k: int):
        """Configuration ``k`` of the batch as :class:`ase.Atoms` with its labels attached."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        a, b = self.offsets[k], self.offsets[k + 1]
        atoms = Atoms(
            numbers=self.numbers[a:b], positions=self.positions[a:b], cell=self.cell[k],
            pbc=self.pbc[k],
        )
        results = {}
        if self.has_energy[k]:
            results["energy"] = float(self.energy[k])
            results["free_energy"] = float(self.energy[k])
        if self.has_forces[k]:
            results["forces"] = self.forces[a:b].copy()
        if self.has_stress[k]:
            results["stress"] = self.stress[k].copy()
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        if self.config_type[k]:
            atoms.info["config_type"] = str(self.config_type[k])
        atoms.info["dataset_index"] = int(self.indices[k])
        return atoms


class Dataset:
    """A pesnet dataset file opened for reading; ``len``, indexing, slicing, chunked iteration.

    ``ds[i]`` gives an :class:`ase.Atoms`; ``ds[i:j]`` or ``ds[[i, j, ...]]`` a list of them.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._file = open_hdf5(self.path, "dataset", schema.FORMAT_NAME, schema.FORMAT_VERSION)
        self.offsets = self._file["offsets"][:]

    # -- lifetime -----------------------------------------------------------------------
    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- metadata -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_atoms_total(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_atoms(self) -> np.ndarray:
        """Atoms per configuration, (n_configs,)."""
        return np.diff(self.offsets)

    @property
    def sources(self) -> list[dict]:
        """Source files: ``[{"path", "sha256", "format", "index"}, ...]``."""
        return json.loads(self._file.attrs.get("sources", "[]"))

    @property
    def units(self) -> dict:
        return json.loads(self._file.attrs["units"])

    @property
    def elements(self) -> list[int]:
        """Sorted atomic numbers present (read in chunks)."""
        present = set()
        numbers = self._file["numbers"]
        step = 1 << 20
        for start in range(0, len(numbers), step):
            present.update(np.unique(numbers[start : start + step]).tolist())
        return sorted(int(z) for z in present)

    def composition(self) -> tuple[np.ndarray, np.ndarray]:
        """(species (S,), counts (n_configs, S)): the sorted atomic numbers present and the
        atoms of each per configuration, read in chunks of 2²⁰ atoms."""
        numbers = self._file["numbers"]
        species = np.asarray(self.elements, dtype=np.int64)
        counts = np.zeros((len(self), len(species)), dtype=np.int64)
        step = 1 << 20
        for start in range(0, len(numbers), step):
            chunk = numbers[start : start + step]
            rows = np.arange(start, start + len(chunk))
            config = np.searchsorted(self.offsets, rows, side="right") - 1
            np.add.at(counts, (config, np.searchsorted(species, chunk)), 1)
        return species, counts

    def column(self, name: str) -> np.ndarray:
        """A whole per-configuration column (``energy``, ``has_forces``, ...), (n_configs, ...)."""
        if name not in schema.PER_CONFIG:
            raise KeyError(f"{name!r} is not a per-configuration column")
        values = self._file[name][:]
        if name == "config_type":
            values = values.astype(str)
        return values

    def array(self, name: str) -> np.ndarray:
        """A whole stored array by name (per atom: ``numbers``, ``positions``, ``forces``, ...;
        per configuration as :meth:`column`; the provenance ``source``/``source_index``)."""
        if name not in self._file:
            raise KeyError(f"{self.path}: no array {name!r}")
        return self._file[name][:]

    # -- reading ------------------------------------------------------------------------
    def read_batch(self, start: int, stop: int) -> ConfigBatch:
        """Configurations ``start:stop`` (contiguous) as a :class:`ConfigBatch`."""
        n = len(self)
        start, stop, _ = slice(start, stop).indices(n)
        stop = max(stop, start)
        a, b = int(self.offsets[start]), int(self.offsets[stop])
        f = self._file
        return ConfigBatch(
            indices=np.arange(start, stop),
            offsets=self.offsets[start : stop + 1] - a,
            numbers=f["numbers"][a:b].astype(np.int64),
            positions=f["positions"][a:b],
            forces=f["forces"][a:b],
            energy=f["energy"][start:stop],
            cell=f["cell"][start:stop],
            pbc=f["pbc"][start:stop],
            stress=f["stress"][start:stop],
            has_energy=f["has_energy"][start:stop],
            has_forces=f["has_forces"][start:stop],
            has_stress=f["has_stress"][start:stop],
            config_type=f["config_type"][start:stop].astype(str),
        )

    def iter_chunks(self, chunk_size: int = 1024, indices=None) -> Iterator[ConfigBatch]:
        """Yield :class:`ConfigBatch` es of at most ``chunk_size`` configurations.

        Without ``indices`` the whole file is streamed in order; with ``indices`` (e.g. a
        training split) only those configurations are read, in the given order, each chunk
        read as one contiguous span and then subset.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if indices is None:
            for start in range(0, len(self), chunk_size):
                yield self.read_batch(start, start + chunk_size)
            return
        indices = np.asarray(indices, dtype=np.int64)
        for start in range(0, len(indices), chunk_size):
            yield self._gather(indices[start : start + chunk_size])

    def _gather(self, indices: np.ndarray) -> ConfigBatch:
        """Read arbitrary configurations by reading their spanning range once and subsetting."""
        if len(indices) == 0:
            return self.read_batch(0, 0)
        if indices.min() < 0 or indices.max() >= len(self):
            raise IndexError(f"configuration index out of range for {len(self)} configurations")
        lo, hi = int(indices.min()), int(indices.max()) + 1
        span = self.read_batch(lo, hi)
        local = indices - lo
        counts = span.n_atoms[local]
        starts = span.offsets[local]
        rows = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        rows += np.arange(counts.sum())
        offsets = np.concatenate([[0], np.cumsum(counts)])
        return ConfigBatch(
            indices=indices.copy(),
            offsets=offsets,
            numbers=span.numbers[rows],
            positions=span.positions[rows],
            forces=span.forces[rows],
            **{
                name: getattr(span, name)[local]
                for name in ("energy", "cell", "pbc", "stress", "has_energy", "has_forces",
                             "has_stress", "config_type")
            },
        )

    def iter_atoms(self, chunk_size: int = 1024, indices=None):
        """Yield :class:`ase.Atoms` one by one, reading ``chunk_size`` at a time."""
        for batch in self.iter_chunks(chunk_size, indices):
            for k in range(len(batch)):
                yield batch.atoms(k)

    def __getitem__(self, key):
        n = len(self)
        if isinstance(key, (int, np.integer)):
            index = int(key) + n if key < 0 else int(key)
            if not 0 <= index < n:
                raise IndexError(f"configuration {key} out of range for {n} configurations")
            return self.read_batch(index, index + 1).atoms(0)
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                batch = self.read_batch(start, stop)
                return [batch.atoms(k) for k in range(len(batch))]
            return list(self.iter_atoms(indices=np.arange(start, stop, step)))
        indices = np.asarray(key)
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        indices = np.where(indices < 0, indices + n, indices)
        return list(self.iter_atoms(indices=indices))

    def __iter__(self):
        return self.iter_atoms()

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, n_configs={len(self)}, n_atoms={self.n_atoms_total})"


def open_dataset(path) -> Dataset:
    """Open a pesnet dataset file for reading (see :class:`Dataset`)."""
    return Dataset(path)
