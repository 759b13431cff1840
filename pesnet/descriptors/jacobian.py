"""The descriptor Jacobian of a batch as a sparse matrix, and the products forces and stress need.

This is the one way from stored descriptor derivatives to forces and virials: training (the
force loss and its pull-back), batch prediction on stored features, and the prediction-time
evaluator of descriptor kinds without a fused engine all use it. (ACSF's prediction-time
evaluator fuses the same contraction into its forward pass for speed, and is tested against
this one.)

For a batch of N atoms with F features each, the stored derivative blocks
``D_b = ∂G_{i_b}/∂r_{j_b}`` (F × 3, 1/Å), sorted by centre atom ``i_b``, are exactly the
non-zero blocks of the Jacobian ``J = ∂G/∂r`` of shape (N·F, 3N); SciPy's BSR format takes them
without sorting, and the operator keeps the matrix as CSR (``Jᵀ`` is then a free CSC view).
With ``g_i = ∂E/∂G_i`` (eV per feature unit):

* forces:    ``F_j = −Σ_i D_ij^T g_i``, i.e. ``F = −Jᵀ g``           (:meth:`forces`)
* pull-back: ``∂L/∂g_i = −Σ_j D_ij ∂L/∂F_j``, i.e. ``−J ∂L/∂F``      (:meth:`pullback`)
* virial:    ``∂E/∂ε = Σ_i g_i · ∂G_i/∂ε`` (the strain derivatives)   (:func:`strain_gradient`)

Members ride along as the dense right-hand side: one sparse product serves all M of them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class DescriptorJacobian:
    """``J = ∂G/∂r`` of one batch. ``centres``/``neighbours`` (n_blocks,) batch-local atom rows,
    ``derivatives`` (n_blocks, F, 3), ``n_atoms`` N."""

    def __init__(self, centres, neighbours, derivatives, n_atoms: int):
        centres = np.asarray(centres)
        if len(centres) > 1 and np.any(np.diff(centres) < 0):
            order = np.argsort(centres, kind="stable")
            centres, neighbours, derivatives = centres[order], neighbours[order], derivatives[order]
        self.n_atoms = int(n_atoms)
        self.n_features = derivatives.shape[1]
        indptr = np.searchsorted(centres, np.arange(self.n_atoms + 1))
        # built as BSR (SciPy takes the blocks as they are), kept as CSR: its products with
        # the members' (rows, M) right-hand sides run ~15 % faster here, and its transpose is
        # a free CSC view (a BSR transpose is a second copy of every block)
        self.jacobian = sp.bsr_matrix(
            (np.ascontiguousarray(derivatives), np.asarray(neighbours, dtype=np.int32), indptr),
            shape=(self.n_atoms * self.n_features, 3 * self.n_atoms),
        ).tocsr()

    @property
    def transposed(self):
        """``Jᵀ`` (3N, N·F): a CSC view of the Jacobian (no copy)."""
        return self.jacobian.T

    def forces(self, g: np.ndarray) -> np.ndarray:
        """``F = −Jᵀ g``: ``g`` (M, N, F) → forces (M, N, 3) in eV/Å when g is in eV."""
        m, n, f = g.shape
        rhs = np.ascontiguousarray(g.transpose(1, 2, 0)).reshape(n * f, m)
        out = self.transposed @ rhs
        return -out.reshape(n, 3, m).transpose(2, 0, 1)

    def pullback(self, grad_forces: np.ndarray) -> np.ndarray:
        """``∂L/∂g = −J ∂L/∂F``: ``grad_forces`` (M, N, 3) → (M, N, F)."""
        m, n, _ = grad_forces.shape
        rhs = np.ascontiguousarray(grad_forces.transpose(1, 2, 0)).reshape(3 * n, m)
        out = self.jacobian @ rhs
        return -out.reshape(n, self.n_features, m).transpose(2, 0, 1)


def strain_gradient(g: np.ndarray, strain: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``∂E/∂ε`` per configuration (M, n, 3, 3) from ``g`` (M, N, F) and the strain derivatives
    ``strain`` (N, F, 3, 3); ``offsets`` (n + 1,) delimit each configuration's atoms. Divide by
    the cell volume for the stress (eV/Å³, ASE's sign convention)."""
    per_atom = np.einsum("mnf,nfab->mnab", g, strain, optimize=True)
    return np.add.reduceat(per_atom, offsets[:-1], axis=1)


def contract_blocks(weights: np.ndarray, centres: np.ndarray, neighbours: np.ndarray,
                    blocks: np.ndarray, n_atoms: int) -> np.ndarray:
    """``Σ_i weights[i] · ∂G_i/∂r_j`` for every atom j, i.e. ``Jᵀ w``: (n_atoms, 3).

    ``weights`` (n_atoms, F), e.g. ∂E/∂G_i of a potential E = Σ_i E_i(G_i), whose forces are
    then ``−contract_blocks(...)`` (eV/Å). ``centres``/``neighbours`` (n_blocks,), ``blocks``
    (n_blocks, F, 3) as a :class:`~pesnet.descriptors.protocol.DescriptorResult` or a feature
    batch gives them.
    """
    jacobian = DescriptorJacobian(centres, neighbours, blocks, n_atoms)
    return -jacobian.forces(np.asarray(weights)[None])[0]


def contract_strain(weights: np.ndarray, strain: np.ndarray) -> np.ndarray:
    """``Σ_i weights[i] · ∂G_i/∂ε``: (3, 3) for one configuration. For weights ∂E/∂G_i this is
    ∂E/∂ε, and the stress (eV/Å³, ASE's sign convention) is that divided by the cell volume."""
    offsets = np.array([0, len(strain)])
    return strain_gradient(np.asarray(weights)[None], strain, offsets)[0, 0]
