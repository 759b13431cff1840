"""The pesnet dataset file as an ASE I/O format (``pesnet-dataset``).

Registered through the ``ase.ioformats`` entry point (:mod:`pesnet.ase_plugin`), so with pesnet
installed ASE reads and writes it like any other format::

    >>> import ase.io
    >>> frames = ase.io.read("dataset.h5", ":")        # every configuration, labelled
    >>> frames[0].get_potential_energy(), frames[0].get_forces()
    >>> ase.io.write("subset.h5", frames[::10], format="pesnet-dataset")

Reading gives :class:`ase.Atoms` with a :class:`~ase.calculators.singlepoint.SinglePointCalculator`
holding the stored labels (energy, free_energy, forces, stress where present) and
``info["config_type"]`` / ``info["dataset_index"]``, exactly as :class:`pesnet.data.Dataset`
does. Only the configurations asked for are read from disk. Writing validates every
configuration as ``pesnet ingest`` does (finite labels of the right shapes, no overlapping atoms,
a non-degenerate periodic cell) and writes atomically: an error leaves no half file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["read_pesnet_dataset", "write_pesnet_dataset"]


def read_pesnet_dataset(filename, index=slice(None)):
    """Yield the configurations ``index`` (an int or a slice, ASE's convention) of a pesnet
    dataset file as labelled :class:`ase.Atoms`."""
    from pesnet.data import Dataset

    with Dataset(_path(filename)) as ds:
        n = len(ds)
        if isinstance(index, (int, np.integer)):
            yield ds[int(index)]
            return
        indices = np.arange(n)[index]
        if len(indices) == 0:
            return
        step = indices[1] - indices[0] if len(indices) > 1 else 1
        if step == 1:  # contiguous: read in chunks
            for start in range(int(indices[0]), int(indices[-1]) + 1, 1024):
                stop = min(start + 1024, int(indices[-1]) + 1)
                yield from ds[start:stop]
        else:
            yield from ds.iter_atoms(indices=indices)


def write_pesnet_dataset(filename, images, config_type: str = ""):
    """Write ``images`` (an :class:`ase.Atoms` or a sequence) to a new pesnet dataset file.

    Labels come from each structure's calculator results (``energy``, ``forces``,
    ``stress``); structures without them are written unlabelled. ``info["config_type"]``
    (or ``config_type``) is kept.
    """
    from ase import Atoms

    from pesnet.data.ingest import to_voigt
    from pesnet.data.validate import validate_configuration
    from pesnet.data.writer import DatasetWriter
    from pesnet.fileio import atomic_output

    if isinstance(images, Atoms):
        images = [images]
    path = _path(filename)
    with atomic_output(path, suffix=".h5.tmp") as tmp:
        with DatasetWriter(tmp) as writer:
            source = writer.add_source("<ase.io.write>", "", "pesnet-dataset", ":")
            for k, atoms in enumerate(images):
                results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
                energy = results.get("energy")
                forces = results.get("forces")
                stress = results.get("stress")
                energy = None if energy is None else float(energy)
                stress = None if stress is None else to_voigt(stress)
                validate_configuration(atoms, energy, forces, stress, path, k,
                                       require_energy=False, require_forces=False)
                writer.append(atoms.numbers, atoms.positions, np.asarray(atoms.cell),
                              atoms.pbc, energy, forces, stress,
                              atoms.info.get("config_type", config_type), source, k)


def _path(filename) -> Path:
    if hasattr(filename, "name") and not isinstance(filename, (str, Path)):
        filename = filename.name  # an open file object: h5py wants the path
    return Path(filename)
