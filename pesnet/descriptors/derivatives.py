"""From per-bond gradients to sparse (centre, neighbour) derivative blocks and strain derivatives.

A centre's features depend on atom positions only through its bond vectors
D_b = r_j + S·cell − r_i (Å), so with g_b = ∂G_i/∂D_b (F × 3):

    ∂G_i/∂r_j = Σ_{b: i→j} g_b          (all periodic images of j summed: one block)
    ∂G_i/∂r_i = −Σ_{b: i→·} g_b          (an image of i itself contributes +g − g = 0)
    ∂G_i/∂ε_ab = Σ_{b: i→·} (g_b)_a (D_b)_b   (homogeneous strain r → (1 + ε) r)
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def _sum_rows(target: np.ndarray, n_targets: int, rows: np.ndarray,
              weights: np.ndarray | None = None) -> np.ndarray:
    """out[t] = Σ_{b: target_b = t} weight_b · rows[b], as one sparse matrix product.

    ``rows`` (n, k); returns (n_targets, k). Sparse CSR × dense is a single C loop over the
    n rows: much faster than sorting plus ``np.add.reduceat`` or ``np.add.at``.
    """
    n = len(target)
    weights = np.ones(n) if weights is None else weights
    matrix = sparse.csr_matrix((weights, (target, np.arange(n))), shape=(n_targets, n))
    return np.asarray(matrix @ rows)


def block_keys(centre: np.ndarray, neighbour: np.ndarray, n_atoms: int):
    """The derivative blocks of bonds ``centre`` → ``neighbour`` (n_bonds,), every atom's
    (i, i) block included: ``keys`` (n_blocks,) = i · n_atoms + j sorted (the blocks' order)
    and ``inverse`` (n_bonds + n_atoms,): the block of each bond, then of each atom's self
    block."""
    self_keys = np.arange(n_atoms, dtype=np.int64) * (n_atoms + 1)
    pair_keys = centre.astype(np.int64) * n_atoms + neighbour
    return np.unique(np.concatenate([pair_keys, self_keys]), return_inverse=True)


def bond_to_blocks(centre: np.ndarray, neighbour: np.ndarray, bond_grad: np.ndarray,
                   n_atoms: int):
    """Sum bond gradients into (centre, neighbour) blocks, self blocks included.

    ``centre``, ``neighbour``: (n_bonds,) atom indices; ``bond_grad``: (n_bonds, F, 3).
    Returns ``(centres, neighbours, blocks)``: (n_blocks,), (n_blocks,), (n_blocks, F, 3),
    sorted by (centre, neighbour); every atom has an (i, i) block (zero if it has no bonds).
    """
    n_bonds, n_features = bond_grad.shape[:2]
    flat = bond_grad.reshape(n_bonds, 3 * n_features)
    keys, inverse = block_keys(centre, neighbour, n_atoms)
    if (centre == neighbour).any():
        # an image of the centre itself: its +g and −g meet in the (i, i) block
        blocks = _sum_rows(inverse[:n_bonds], len(keys), flat)
        blocks[inverse[n_bonds:]] -= _sum_rows(centre, n_atoms, flat)
    else:
        # Each bond adds g to its (i, j) row and −g to its (i, i) row, in one product whose
        # rows read only their centre's bonds: (i, i) = 0 − g_1 − g_2 …, the same numbers
        # as 0 − (g_1 + g_2 + …)
        rows = np.concatenate([inverse[:n_bonds], inverse[n_bonds:][centre]])
        weights = np.concatenate([np.ones(n_bonds), np.full(n_bonds, -1.0)])
        columns = np.tile(np.arange(n_bonds), 2)
        matrix = sparse.csr_matrix((weights, (rows, columns)), shape=(len(keys), n_bonds))
        blocks = np.asarray(matrix @ flat)
    return keys // n_atoms, keys % n_atoms, blocks.reshape(len(keys), n_features, 3)


def strain_from_bonds(centre: np.ndarray, D: np.ndarray, bond_grad: np.ndarray,
                      n_atoms: int) -> np.ndarray:
    """Per-atom strain derivatives Σ_b g_b ⊗ D_b, (n_atoms, F, 3, 3); bonds sorted by centre.

    ``D``: (n_bonds, 3) bond vectors (Å); ``bond_grad``: (n_bonds, F, 3) (1/Å).
    """
    n_bonds, n_features = bond_grad.shape[:2]
    flat = bond_grad.reshape(n_bonds, 3 * n_features)
    # Bonds are sorted by centre, so the CSR structure is known: row 3i + b holds centre i's
    # bonds weighted by (D)_b, and one product reads each centre's bonds once for all three b.
    counts = np.bincount(centre, minlength=n_atoms)
    starts = np.cumsum(counts) - counts
    indptr = np.empty(3 * n_atoms + 1, dtype=np.int64)
    indptr[:-1] = (3 * starts[:, None] + np.arange(3) * counts[:, None]).reshape(-1)
    indptr[-1] = 3 * n_bonds
    slot = 3 * starts[centre] + np.arange(n_bonds) - starts[centre]        # (n_bonds,)
    where = slot[None, :] + np.arange(3)[:, None] * counts[centre][None, :]  # (3, n_bonds)
    indices = np.empty(3 * n_bonds, dtype=np.int64)
    indices[where] = np.arange(n_bonds)
    data = np.empty(3 * n_bonds)
    data[where] = np.asarray(D, dtype=float).T
    matrix = sparse.csr_matrix((data, indices, indptr), shape=(3 * n_atoms, n_bonds))
    strain = np.asarray(matrix @ flat).reshape(n_atoms, 3, n_features, 3)   # [i, b, f, a]
    return np.ascontiguousarray(strain.transpose(0, 2, 3, 1))
