"""Prediction-time evaluator of any :class:`~pesnet.descriptors.bond_descriptor.BondDescriptor`.

Forward: the kind's :meth:`~pesnet.descriptors.bond_descriptor.BondDescriptor.bond_terms` on the
bonds of a :class:`~pesnet.descriptors.bonds.PairList` inside the cutoff, which gives the values
G (n_atoms, F) and the bond gradients g_b = ∂G_{i_b}/∂D_b (n_bonds, F, 3). Backward, for K
weight sets w_κ,i = ∂E_κ/∂G_i (e.g. the ensemble members)::

    ∂E_κ/∂D_b = Σ_f w_κ,i_b,f g_b,f                         (eV/Å)
    F_κ,a     = Σ_{b: i_b = a} ∂E_κ/∂D_b − Σ_{b: j_b = a} ∂E_κ/∂D_b
    ∂E_κ/∂ε   = Σ_b ∂E_κ/∂D_b ⊗ D_b    per configuration   (eV)

Simple and general; it holds the (n_bonds, F, 3) gradients, so a kind that needs speed brings
its own evaluator (ACSF: :mod:`pesnet.descriptors.acsf_evaluator`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pesnet.errors import ConfigurationError


class BondTape(NamedTuple):
    """What :meth:`BondGradientEvaluator.backward` needs of a forward pass: the bonds inside
    the cutoff ``i``, ``j`` (n,), their vectors ``D`` (n, 3) Å and gradients ``grad``
    (n, F, 3) 1/Å, ``n_atoms`` and ``config_atoms`` (n_configs + 1,)."""

    i: np.ndarray
    j: np.ndarray
    D: np.ndarray
    grad: np.ndarray
    n_atoms: int
    config_atoms: np.ndarray


class BondGradientEvaluator:
    """Values and pull-back of a bond descriptor on a pair list (see the module doc)."""

    def __init__(self, descriptor):
        self.descriptor = descriptor

    def forward(self, pairs, geometry, derivatives: bool = True, where=None):
        """``(values (n_atoms, F), tape or None)`` at the bond vectors ``geometry``."""
        D, d = geometry
        if len(d) and d.min() < 1e-8:
            b = int(np.argmin(d))
            where = where or ("<atoms>", None)
            raise ConfigurationError(where[0], where[1], f"atoms {pairs.i[b]} and "
                                     f"{pairs.j[b]} are at the same position")
        inside = np.flatnonzero(d < self.descriptor.cutoff)
        i, j, D_in = pairs.i[inside], pairs.j[inside], D[inside]
        values, grad = self.descriptor.bond_terms(pairs.n_atoms, pairs.element, i, j,
                                                  d[inside], D_in, derivatives)
        if not derivatives:
            return values, None
        return values, BondTape(i, j, D_in.copy(), grad, pairs.n_atoms, pairs.config_atoms)

    def backward(self, tape: BondTape, weights: np.ndarray, forces: bool = True,
                 virial: bool = False):
        """``(forces (K, n_atoms, 3), virials (K, n_configs, 3, 3))`` from ``weights``
        (K, n_atoms, F); each ``None`` unless asked for."""
        K = weights.shape[0]
        dE_dD = np.einsum("kbf,bfx->kbx", weights[:, tape.i], tape.grad)   # (K, n_bonds, 3)
        f = w = None
        if forces:
            f = np.zeros((K, tape.n_atoms, 3))
            for x in range(3):
                f[:, :, x] = np.stack([
                    np.bincount(tape.i, dE_dD[k, :, x], tape.n_atoms)
                    - np.bincount(tape.j, dE_dD[k, :, x], tape.n_atoms) for k in range(K)])
        if virial:
            cuts = np.searchsorted(tape.i, tape.config_atoms)
            w = np.stack([np.einsum("kbx,by->kxy", dE_dD[:, a:b], tape.D[a:b])
                          for a, b in zip(cuts[:-1], cuts[1:])], axis=1)
        return f, w
