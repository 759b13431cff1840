"""Per-element reference energies fitted by least squares.

The networks learn only the interaction part of the energy: with ``n_{k,Z}`` atoms of element
Z in configuration k, the reference energies ``e_Z`` (eV/atom) minimise
``Σ_k (E_k − Σ_Z n_{k,Z} e_Z)²`` over the training configurations.
"""

from __future__ import annotations

import numpy as np


def element_counts(numbers, offsets, elements) -> np.ndarray:
    """Atoms of each element per configuration, (n_configs, n_elements) int.

    ``numbers`` (n_atoms_total,) atomic numbers; ``offsets`` (n_configs + 1,);
    ``elements`` sorted atomic numbers.
    """
    numbers = np.asarray(numbers)
    offsets = np.asarray(offsets)
    config = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    column = np.searchsorted(elements, numbers)
    counts = np.zeros((len(offsets) - 1, len(elements)), dtype=np.int64)
    np.add.at(counts, (config, column), 1)
    return counts


def fit_reference_energies(counts, energies) -> np.ndarray:
    """Least-squares ``e_Z`` (n_elements,) eV/atom from ``counts`` (n_configs, n_elements) and
    ``energies`` (n_configs,) eV. Rank-deficient systems get the minimum-norm solution."""
    counts = np.asarray(counts, dtype=float)
    energies = np.asarray(energies, dtype=float)
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return solution
