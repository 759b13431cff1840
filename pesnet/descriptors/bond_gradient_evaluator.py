"""Prediction-time evaluator of any :class:`~pesnet.descriptors.bond_descriptor.BondDescriptor`.

Forward: the kind's :meth:`~pesnet.descriptors.bond_descriptor.BondDescriptor.bond_terms` on the
bonds of a :class:`~pesnet.descriptors.bonds.PairList` inside the cutoff, which gives the values
G (n_atoms, F) and the bond gradients g_b = ∂G_{i_b}/∂D_b, summed into the sparse Jacobian
that training stores (:mod:`pesnet.descriptors.derivatives`: (centre, neighbour) blocks
∂G_i/∂r_j and strain derivatives ∂G_i/∂ε). Backward, for K weight sets w_κ,i = ∂E_κ/∂G_i
(e.g. the ensemble members), the same contractions as training::

    F_κ,j   = −Σ_i w_κ,i · ∂G_i/∂r_j                        (eV/Å)
    ∂E_κ/∂ε = Σ_{i in the configuration} w_κ,i · ∂G_i/∂ε     (eV)

Simple and general, one way from derivatives to forces for every kind; it builds the
(n_blocks, F, 3) Jacobian, so a kind that needs speed brings its own evaluator (ACSF:
:mod:`pesnet.descriptors.acsf_evaluator`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pesnet.descriptors.bonds import check_distinct_positions
from pesnet.descriptors.derivatives import bond_to_blocks, strain_from_bonds
from pesnet.descriptors.jacobian import DescriptorJacobian, strain_gradient


class JacobianTape(NamedTuple):
    """The sparse Jacobian of a forward pass: ``centres``, ``neighbours`` (n_blocks,),
    ``blocks`` (n_blocks, F, 3) 1/Å, ``strain`` (n_atoms, F, 3, 3), ``n_atoms`` and
    ``config_atoms`` (n_configs + 1,)."""

    centres: np.ndarray
    neighbours: np.ndarray
    blocks: np.ndarray
    strain: np.ndarray
    n_atoms: int
    config_atoms: np.ndarray


class BondGradientEvaluator:
    """Values and pull-back of a bond descriptor on a pair list (see the module doc)."""

    def __init__(self, descriptor):
        self.descriptor = descriptor

    def forward(self, pairs, geometry, derivatives: bool = True, where=None):
        """``(values (n_atoms, F), tape or None)`` at the bond vectors ``geometry``."""
        D, d = geometry
        check_distinct_positions(pairs, d, where)
        inside = np.flatnonzero(d < self.descriptor.cutoff)   # bonds stay sorted by centre
        i, j, D_in, n = pairs.i[inside], pairs.j[inside], D[inside], pairs.n_atoms
        values, grad = self.descriptor.bond_terms(n, pairs.element, i, j, d[inside], D_in,
                                                  derivatives)
        if not derivatives:
            return values, None
        centres, neighbours, blocks = bond_to_blocks(i, j, grad, n)
        return values, JacobianTape(centres, neighbours, blocks,
                                    strain_from_bonds(i, D_in, grad, n), n, pairs.config_atoms)

    def backward(self, tape: JacobianTape, weights: np.ndarray, forces: bool = True,
                 virial: bool = False):
        """``(forces (K, n_atoms, 3), virials (K, n_configs, 3, 3))`` from ``weights``
        (K, n_atoms, F); each ``None`` unless asked for."""
        f = w = None
        if forces:          # F = −Jᵀ w for every member at once
            jacobian = DescriptorJacobian(tape.centres, tape.neighbours, tape.blocks,
                                          tape.n_atoms)
            f = jacobian.forces(weights)
        if virial:          # ∂E/∂ε = Σ_i w_i · ∂G_i/∂ε per configuration
            w = strain_gradient(weights, tape.strain, np.asarray(tape.config_atoms))
        return f, w
