"""Small random potentials and structures for the potential's tests."""

from __future__ import annotations

import numpy as np

from pesnet.descriptors import ACSF
from pesnet.nn.mlp import MLP
from pesnet.potential.model import Potential


def water_box(seed=0, n_molecules=4, box=6.0, periodic=True):
    """A random periodic (or free) H/O configuration with no atoms closer than 0.8 Å."""
    from ase import Atoms

    rng = np.random.default_rng(seed)
    positions = []
    while len(positions) < 3 * n_molecules:
        p = rng.uniform(0, box, 3)
        if all(np.linalg.norm(p - q) > 0.9 for q in positions):
            positions.append(p)
    numbers = [8, 1, 1] * n_molecules
    return Atoms(numbers=numbers, positions=positions, cell=[box] * 3 if periodic else None,
                 pbc=periodic)


def random_potential(elements=(1, 8), n_members=3, hidden=(6, 5), seed=0, cutoff=3.5,
                     activation="tanh"):
    """A potential with random weights and scalers on a small ACSF (for gradient tests)."""
    acsf = ACSF(list(elements), cutoff=cutoff, g2=[(0.5, 0.0), (1.0, 1.5), (2.0, 2.5)],
                g4=[(0.1, 1.0, 1.0), (0.1, 2.0, -1.0)], g5=[(0.2, 1.0, 1.0)])
    rng = np.random.default_rng(seed)
    networks, scalers, reference = {}, {}, {}
    for k, z in enumerate(sorted(elements)):
        networks[z] = MLP((acsf.n_features, *hidden, 1), n_members, activation=activation,
                          seed=seed + 17 * k)
        scalers[z] = (rng.normal(0, 0.1, acsf.n_features), rng.uniform(0.5, 2.0, acsf.n_features))
        reference[z] = float(rng.normal(-3, 1))
    return Potential(acsf, networks, scalers, reference)
