"""Reference labels of a dataset for training: per-configuration columns held, forces read by
the batch.

A fit needs every configuration's energy, stress, volume and composition at once (reference
energies, batch plans: a few tens of bytes per configuration), but the forces (24 bytes per
atom, ~0.8 GB for 10⁷ float64 atoms) only a batch at a time. :class:`ForceRows` reads them
from the dataset file when a batch is assembled, each run of neighbouring configurations as
one slice, so the memory of a streamed fit stays bounded by its batches, not the dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from pesnet.data import Dataset
from pesnet.errors import DataFormatError


class ForceRows:
    """The ``forces`` array (N, 3, eV/Å) of the dataset file at ``path``, read on demand.

    The file is opened for each read (a fraction of a millisecond), so the object holds no
    handle, can be used from the batch-reader thread and needs no closing.
    """

    def __init__(self, path, n_atoms: int):
        self.path = Path(path)
        self.n_atoms = int(n_atoms)

    def configurations(self, offsets: np.ndarray, indices) -> np.ndarray:
        """Force rows (Σ n_k, 3) of configurations ``indices`` (ascending) concatenated in
        that order; ``offsets`` (n + 1,) the dataset's atom offsets."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return np.zeros((0, 3))
        # runs of consecutive configurations: one slice each
        breaks = np.flatnonzero(np.diff(indices) != 1) + 1
        runs = np.split(indices, breaks)
        try:
            with h5py.File(self.path, "r") as f:
                forces = f["forces"]
                if forces.shape[0] != self.n_atoms:
                    raise DataFormatError(
                        f"{self.path}: the dataset changed during the fit ({forces.shape[0]} "
                        f"atoms, {self.n_atoms} when it was opened)")
                parts = [forces[offsets[run[0]] : offsets[run[-1] + 1]] for run in runs]
        except (OSError, KeyError) as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DataFormatError(f"{self.path}: cannot read the forces of configurations "
                                  f"{int(indices[0])}..{int(indices[-1])} ({first})") from None
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


class Labels(NamedTuple):
    """Reference labels of every configuration of a dataset (n configs, N atoms)."""

    offsets: np.ndarray      # (n + 1,)
    species: np.ndarray      # (S,) sorted atomic numbers present
    composition: np.ndarray  # (n, S) atoms of each species per configuration
    energy: np.ndarray       # (n,) eV
    has_energy: np.ndarray   # (n,)
    forces: ForceRows        # (N, 3) eV/Å, read by configuration
    has_forces: np.ndarray   # (n,)
    config_type: np.ndarray  # (n,) str
    stress: np.ndarray | None = None      # (n, 6) eV/Å³ Voigt (NaN where unlabelled)
    has_stress: np.ndarray | None = None  # (n,) labelled and periodic in all three directions
    volume: np.ndarray | None = None      # (n,) Å³ (1 where not periodic)

    def element_counts(self, elements) -> np.ndarray:
        """(n, len(elements)) atoms of each of ``elements`` (atomic numbers) per
        configuration; zero for an element the dataset does not hold."""
        counts = np.zeros((len(self.offsets) - 1, len(elements)), dtype=np.int64)
        for column, z in enumerate(elements):
            where = np.flatnonzero(self.species == z)
            if len(where):
                counts[:, column] = self.composition[:, where[0]]
        return counts

    def subset(self, indices):
        """Labels of configurations ``indices`` (ascending): (energy, has_energy, forces,
        atom mask, n_atoms)."""
        indices = np.asarray(indices)
        counts = np.diff(self.offsets)[indices]
        has_forces_atom = np.repeat(self.has_forces[indices], counts)
        rows = self.forces.configurations(self.offsets, indices)
        forces = np.where(has_forces_atom[:, None], rows, 0.0)
        return self.energy[indices], self.has_energy[indices], forces, has_forces_atom, counts

    def stress_subset(self, indices):
        """(stress (n, 6) eV/Å³ with zeros where unlabelled, has_stress (n,), volume (n,) Å³)
        of configurations ``indices``."""
        indices = np.asarray(indices)
        has = self.has_stress[indices]
        return (np.where(has[:, None], self.stress[indices], 0.0), has, self.volume[indices])


def read_labels(dataset_path) -> Labels:
    """The labels of the dataset at ``dataset_path``: per-configuration columns and the
    composition in memory, forces as :class:`ForceRows`."""
    with Dataset(dataset_path) as ds:
        periodic = ds.column("pbc").all(axis=1)
        volume = np.where(periodic, np.abs(np.linalg.det(ds.column("cell"))), 1.0)
        species, composition = ds.composition()
        return Labels(ds.offsets.copy(), species, composition,
                      ds.column("energy"), ds.column("has_energy"),
                      ForceRows(dataset_path, ds.n_atoms_total),
                      ds.column("has_forces"), ds.column("config_type"),
                      ds.column("stress"), ds.column("has_stress") & periodic, volume)
