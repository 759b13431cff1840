"""Standardised features of ASE ``Atoms`` in the same layout the features file gives training.

:func:`batch_from_atoms` computes descriptor values (and derivatives) of each structure with the
model's own descriptor and scalers, and lays them out as a
:class:`~pesnet.descriptors.features_file.FeatureBatch`, so prediction on new structures and
training on a features file go through one evaluation path.
"""

from __future__ import annotations

import numpy as np

from pesnet.descriptors.features_file import ElementRows, FeatureBatch


def batch_from_atoms(descriptor, scalers, atoms_list, derivatives=True) -> FeatureBatch:
    """A standardised :class:`FeatureBatch` of ``atoms_list`` (a list of :class:`ase.Atoms`).

    ``scalers`` maps atomic number → (mean (F,), scale (F,)); values become (G − mean)/scale
    and every derivative of atom i's features is divided by its scale.
    """
    results = [descriptor.compute(atoms, derivatives=derivatives,
                                  where=("<structure>", k)) for k, atoms in enumerate(atoms_list)]
    counts = np.array([len(a) for a in atoms_list], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    numbers = np.concatenate([a.numbers for a in atoms_list]).astype(np.int64)
    values = np.concatenate([r.values for r in results])
    config_of_atom = np.repeat(np.arange(len(atoms_list)), counts)
    scale_of_atom = np.ones_like(values)
    elements = {}
    for z, (mean, scale) in scalers.items():
        rows = np.flatnonzero(numbers == z)
        elements[z] = ElementRows(rows, config_of_atom[rows], (values[rows] - mean) / scale)
        scale_of_atom[rows] = scale
    periodic = np.array([bool(np.any(a.pbc)) for a in atoms_list])
    if not derivatives:
        return FeatureBatch(np.arange(len(atoms_list)), offsets, numbers, elements, periodic,
                            None, None, None, None, None)
    n_blocks = np.array([len(r.centres) for r in results])
    shift = np.repeat(offsets[:-1], n_blocks)
    centres = np.concatenate([r.centres for r in results]) + shift
    neighbours = np.concatenate([r.neighbours for r in results]) + shift
    blocks = np.concatenate([r.derivatives for r in results]) / scale_of_atom[centres][:, :, None]
    n_features = values.shape[1]
    strain = np.concatenate([
        r.strain_derivatives if r.strain_derivatives is not None
        else np.zeros((len(r.values), n_features, 3, 3)) for r in results
    ]) / scale_of_atom[:, :, None, None]
    block_offsets = np.concatenate([[0], np.cumsum(n_blocks)])
    return FeatureBatch(np.arange(len(atoms_list)), offsets, numbers, elements, periodic,
                        block_offsets, centres, neighbours, blocks, strain)
