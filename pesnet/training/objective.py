"""The energy-and-force loss of one batch and its gradient for every member's weights.

For member m with per-configuration (bootstrap) weights c_k and N_k atoms in configuration k:

    L_m = w_E Σ_k c_k (ΔE_k / N_k)² / Σ_k c_k
        + w_F Σ_k c_k Σ_{i∈k} |ΔF_i|² / (3 Σ_k c_k N_k^F)

(ΔE, ΔF prediction minus reference; N_k^F counts atoms with force labels). Gradients:

    ∂L/∂E_k = 2 w_E c_k ΔE_k / (N_k² Σ c)          → every atom of k: ∂L/∂y_i = ∂L/∂E_k
    ∂L/∂F_i = 2 w_F c_k ΔF_i / (3 Σ c N^F)
    u_i     = ∂L/∂g_i = −Σ_j (∂G_i/∂r_j) ∂L/∂F_j   (g_i = ∂E_i/∂G_i; ForceOperator.pullback)

and the weight gradient is that of Φ = Σ_i (∂L/∂y_i) y_i + Σ_i u_i · ∂y_i/∂G_i with u held fixed:
a forward tangent pass along u and one reverse pass (``MLP.backward_with_tangent``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from pesnet.potential.operators import ForceOperator


class PreparedBatch(NamedTuple):
    """A training batch held in memory across epochs (n configurations, N atoms).

    ``features``: standardised FeatureBatch; ``operator``: its ForceOperator (None without
    forces); ``energy`` (n,) eV; ``forces`` (N, 3) eV/Å (zeros where unlabelled);
    ``has_energy`` (n,) bool; ``has_forces`` (N,) bool; ``n_atoms`` (n,); ``weights`` (M, n)
    per-member configuration weights (bootstrap draws, or ones).
    """

    features: object
    operator: ForceOperator | None
    energy: np.ndarray
    forces: np.ndarray
    has_energy: np.ndarray
    has_forces: np.ndarray
    n_atoms: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class LossWeights:
    """``energy`` weights (ΔE/N)² in (eV/atom)²; ``forces`` weights |ΔF|² in (eV/Å)²."""

    energy: float = 1.0
    forces: float = 1.0


class BatchResult(NamedTuple):
    """Per-member sums for metrics: squared and absolute errors and their counts."""

    loss: np.ndarray            # (M,) weighted loss L_m
    energy_sq: np.ndarray       # (M,) Σ (ΔE/N)² over labelled configurations (unweighted)
    energy_abs: np.ndarray      # (M,) Σ |ΔE/N|
    n_energy: int
    force_sq: np.ndarray        # (M,) Σ ΔF² over labelled components
    force_abs: np.ndarray       # (M,) Σ |ΔF|
    n_force: int
    grads: dict | None          # {Z: (M, P)} or None


def _safe_div(a, b):
    return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)


def batch_loss(potential, batch: PreparedBatch, weights: LossWeights = LossWeights(),
               gradients: bool = True) -> BatchResult:
    """Loss of every member on ``batch`` and, if asked, its gradient for each element's
    parameters (see the module doc)."""
    fb = batch.features
    use_forces = weights.forces > 0 and batch.operator is not None
    energies, g, caches = potential.forward(fb, input_gradient=use_forces)
    offsets = fb.offsets
    energy = np.add.reduceat(energies, offsets[:-1], axis=1)             # (M, n)
    c = batch.weights * batch.has_energy                                  # (M, n)
    n = batch.n_atoms.astype(float)
    de = np.where(batch.has_energy, energy - batch.energy, 0.0)           # (M, n)
    de_atom = de / n
    w_e = c.sum(axis=1)                                                   # (M,)
    loss = weights.energy * _safe_div((c * de_atom**2).sum(axis=1), w_e)
    labelled_e = batch.has_energy
    result = dict(
        energy_sq=(de_atom[:, labelled_e] ** 2).sum(axis=1),
        energy_abs=np.abs(de_atom[:, labelled_e]).sum(axis=1),
        n_energy=int(labelled_e.sum()),
    )
    atom_config = np.repeat(np.arange(len(n)), batch.n_atoms)
    if use_forces:
        # member-major copy: the operator returns a member-minor view, and sums over the atom
        # axis of such a view depend on M (pairwise vs sequential order); contiguous rows
        # make every member's loss independent of the others (groups == one fit, bit for bit)
        forces = np.ascontiguousarray(batch.operator.forces(g))           # (M, N, 3)
        df = np.where(batch.has_forces[None, :, None], forces - batch.forces, 0.0)
        c_atom = batch.weights[:, atom_config] * batch.has_forces        # (M, N)
        w_f = 3.0 * c_atom.sum(axis=1)                                    # (M,)
        per_atom_sq = (df**2).sum(axis=2)                                 # (M, N)
        loss = loss + weights.forces * _safe_div((c_atom * per_atom_sq).sum(axis=1), w_f)
        result.update(force_sq=per_atom_sq.sum(axis=1), force_abs=np.abs(df).sum(axis=(1, 2)),
                      n_force=int(3 * batch.has_forces.sum()))
    else:
        m = energy.shape[0]
        result.update(force_sq=np.zeros(m), force_abs=np.zeros(m), n_force=0)

    grads = None
    if gradients:
        denominator = (n**2)[None, :] * w_e[:, None]
        d_energy = 2.0 * weights.energy * _safe_div(c * de, denominator)  # (M, n)
        gy = d_energy[:, atom_config]                                     # (M, N)
        u = None
        if use_forces:
            scale = np.where(w_f > 0, 2.0 * weights.forces / np.where(w_f > 0, w_f, 1.0), 0.0)
            d_forces = (scale[:, None] * c_atom)[:, :, None] * df         # (M, N, 3)
            u = batch.operator.pullback(d_forces)                         # (M, N, F)
        grads = {}
        for z, cache in caches.items():
            rows = fb.elements[z].rows
            net = potential.networks[z]
            g_y = gy[:, rows, None]
            if u is None:
                grads[z] = net.backward(cache, g_y)
            else:
                grads[z] = net.backward_with_tangent(cache, u[:, rows], g_y=g_y)
    return BatchResult(loss=loss, grads=grads, **result)
