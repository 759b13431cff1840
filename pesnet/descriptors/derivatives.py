"""From per-bond gradients to sparse (centre, neighbour) derivative blocks and strain derivatives.

A centre's features depend on atom positions only through its bond vectors
D_b = r_j + S·cell − r_i (Å), so with g_b = ∂G_i/∂D_b (F × 3):

    ∂G_i/∂r_j = Σ_{b: i→j} g_b          (all periodic images of j summed: one block)
    ∂G_i/∂r_i = −Σ_{b: i→·} g_b          (an image of i itself contributes +g − g = 0)
    ∂G_i/∂ε_ab = Σ_{b: i→·} (g_b)_a (D_b)_b   (homogeneous strain r → (1 + ε) r)
"""

from __future__ import annotations

import numpy as np


def _segment_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Indices where a run of equal values begins in a sorted array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))


def bond_to_blocks(centre: np.ndarray, neighbour: np.ndarray, bond_grad: np.ndarray,
                   n_atoms: int):
    """Sum bond gradients into (centre, neighbour) blocks, self blocks included.

    ``centre``, ``neighbour``: (n_bonds,) atom indices; ``bond_grad``: (n_bonds, F, 3).
    Returns ``(centres, neighbours, blocks)``: (n_blocks,), (n_blocks,), (n_blocks, F, 3),
    sorted by (centre, neighbour); every atom has an (i, i) block (zero if it has no bonds).
    """
    n_features = bond_grad.shape[1]
    key = centre.astype(np.int64) * n_atoms + neighbour
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = _segment_starts(sorted_key)
    pair_keys = sorted_key[starts]
    if len(order):
        pair_sums = np.add.reduceat(bond_grad[order], starts, axis=0)
    else:
        pair_sums = np.zeros((0, n_features, 3))
    pair_centres = pair_keys // n_atoms
    centre_starts = _segment_starts(pair_centres)
    with_bonds = pair_centres[centre_starts]
    self_sums = (np.add.reduceat(pair_sums, centre_starts, axis=0) if len(pair_sums)
                 else np.zeros((0, n_features, 3)))
    self_keys = np.arange(n_atoms, dtype=np.int64) * (n_atoms + 1)
    keys = np.union1d(pair_keys, self_keys)
    blocks = np.zeros((len(keys), n_features, 3))
    blocks[np.searchsorted(keys, pair_keys)] = pair_sums
    blocks[np.searchsorted(keys, self_keys[with_bonds])] -= self_sums
    return keys // n_atoms, keys % n_atoms, blocks


def strain_from_bonds(centre: np.ndarray, D: np.ndarray, bond_grad: np.ndarray,
                      n_atoms: int) -> np.ndarray:
    """Per-atom strain derivatives Σ_b g_b ⊗ D_b, (n_atoms, F, 3, 3); bonds sorted by centre.

    ``D``: (n_bonds, 3) bond vectors (Å); ``bond_grad``: (n_bonds, F, 3) (1/Å).
    """
    n_features = bond_grad.shape[1]
    strain = np.zeros((n_atoms, n_features, 3, 3))
    if len(centre) == 0:
        return strain
    starts = _segment_starts(centre)
    # Bounded memory: reduce chunks of whole centres at a time.
    chunk = max(1, (1 << 22) // max(1, n_features * 9))
    begin = 0
    while begin < len(starts):
        end = min(len(starts), begin + max(1, chunk * len(starts) // max(1, len(centre))))
        lo = starts[begin]
        hi = starts[end] if end < len(starts) else len(centre)
        outer = bond_grad[lo:hi, :, :, None] * D[lo:hi, None, None, :]
        strain[centre[starts[begin:end]]] = np.add.reduceat(outer, starts[begin:end] - lo,
                                                            axis=0)
        begin = end
    return strain
