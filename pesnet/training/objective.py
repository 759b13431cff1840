"""The energy, force and stress loss of one batch and its gradient for every member's weights.

For member m with per-configuration (bootstrap) weights c_k and N_k atoms in configuration k:

    L_m = w_E Σ_k c_k (ΔE_k / N_k)² / Σ_k c_k
        + w_F Σ_k c_k Σ_{i∈k} |ΔF_i|² / (3 Σ_k c_k N_k^F)
        + w_S Σ_k c_k^S |Δσ_k|² / (6 Σ_k c_k^S)

(ΔE, ΔF, Δσ prediction minus reference; N_k^F counts atoms with force labels; c_k^S = c_k for
configurations with a stress label, else 0; |Δσ|² over the six Voigt components, eV/Å³).
The stress σ_k = W_k / V_k with the virial W_k = ∂E_k/∂ε = Σ_{i∈k} g_i · ∂G_i/∂ε
(:func:`~pesnet.descriptors.jacobian.strain_gradient`) is intensive like E/N: one stress error
weighs the same in a small cell and a big one, so no volume weighting (DeePMD weights the
extensive virial by 1/N for the same reason). Gradients:

    ∂L/∂E_k = 2 w_E c_k ΔE_k / (N_k² Σ c)          → every atom of k: ∂L/∂y_i = ∂L/∂E_k
    ∂L/∂F_i = 2 w_F c_k ΔF_i / (3 Σ c N^F)
    ∂L/∂σ_k = 2 w_S c_k^S Δσ_k / (6 Σ c^S)          (on the six Voigt entries of σ_k)
    u_i     = ∂L/∂g_i = −Σ_j (∂G_i/∂r_j) ∂L/∂F_j   (g_i = ∂E_i/∂G_i; DescriptorJacobian.pullback)
              + Σ_ab (∂L/∂σ_k,ab / V_k) ∂G_i/∂ε_ab  (i in configuration k)

and the weight gradient is that of Φ = Σ_i (∂L/∂y_i) y_i + Σ_i u_i · ∂y_i/∂G_i with u held fixed:
a forward tangent pass along u and one reverse pass (``MLP.backward_with_tangent``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from pesnet.data.schema import VOIGT
from pesnet.descriptors.jacobian import DescriptorJacobian, strain_gradient


class PreparedBatch(NamedTuple):
    """A training batch held in memory across epochs (n configurations, N atoms).

    ``features``: standardised FeatureBatch; ``operator``: its DescriptorJacobian (None without
    forces); ``energy`` (n,) eV; ``forces`` (N, 3) eV/Å (zeros where unlabelled);
    ``has_energy`` (n,) bool; ``has_forces`` (N,) bool; ``n_atoms`` (n,); ``weights`` (M, n)
    per-member configuration weights (bootstrap draws, or ones); ``stress`` (n, 6) eV/Å³
    Voigt (zeros where unlabelled), ``has_stress`` (n,) bool and ``volume`` (n,) Å³, or None
    when the batch trains no stress.
    """

    features: object
    operator: DescriptorJacobian | None
    energy: np.ndarray
    forces: np.ndarray
    has_energy: np.ndarray
    has_forces: np.ndarray
    n_atoms: np.ndarray
    weights: np.ndarray
    stress: np.ndarray | None = None
    has_stress: np.ndarray | None = None
    volume: np.ndarray | None = None


@dataclass(frozen=True)
class LossWeights:
    """``energy`` weights (ΔE/N)² in (eV/atom)²; ``forces`` weights |ΔF|² in (eV/Å)²;
    ``stress`` weights |Δσ|² per component in (eV/Å³)²."""

    energy: float = 1.0
    forces: float = 1.0
    stress: float = 0.0


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
    stress_sq: np.ndarray | None = None   # (M,) Σ Δσ² over labelled components (eV/Å³)²
    stress_abs: np.ndarray | None = None  # (M,) Σ |Δσ|
    n_stress: int = 0


def _safe_div(a, b):
    return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)


def _stress_pullback(ds, c_s, w_s, weight, volume, strain, atom_config) -> np.ndarray:
    """u_i = Σ_ab (∂L/∂σ_k,ab / V_k) ∂G_i/∂ε_ab (M, N, F) of the stress term (module doc);
    ``ds`` (M, n, 6) stress errors, ``strain`` (N, F, 3, 3) the batch's ∂G/∂ε."""
    scale = np.where(w_s > 0, 2.0 * weight / np.where(w_s > 0, w_s, 1.0), 0.0)
    d_voigt = (scale[:, None] * c_s)[:, :, None] * ds / volume[None, :, None]   # (M, n, 6)
    d_virial = np.zeros((*d_voigt.shape[:2], 3, 3))
    d_virial[:, :, VOIGT[0], VOIGT[1]] = d_voigt                          # ∂L/∂W_k
    return np.einsum("mnab,nfab->mnf", d_virial[:, atom_config], strain, optimize=True)


def _energy_term(energy, batch: PreparedBatch, n, weight):
    """w_E Σ_k c_k (ΔE_k/N_k)² / Σ_k c_k (M,), its metric sums, and (c, ΔE, Σc) for the
    gradient; ``energy`` (M, n) eV, ``n`` (n,) atoms per configuration."""
    c = batch.weights * batch.has_energy                                  # (M, n)
    de = np.where(batch.has_energy, energy - batch.energy, 0.0)           # (M, n)
    de_atom = de / n
    w_e = c.sum(axis=1)                                                   # (M,)
    loss = weight * _safe_div((c * de_atom**2).sum(axis=1), w_e)
    labelled = batch.has_energy
    sums = dict(energy_sq=(de_atom[:, labelled] ** 2).sum(axis=1),
                energy_abs=np.abs(de_atom[:, labelled]).sum(axis=1), n_energy=int(labelled.sum()))
    return loss, sums, (c, de, w_e)


def _weighted_mean_square(diff, c, n_components: int, weight):
    """w Σ_r c_r |d_r|² / (n_components Σ_r c_r) (M,) for rows r of ``diff`` (M, R, K) with
    weights ``c`` (M, R); also returns |d_r|² (M, R) and the denominator (M,)."""
    denominator = n_components * c.sum(axis=1)
    per_row_sq = (diff**2).sum(axis=2)
    return weight * _safe_div((c * per_row_sq).sum(axis=1), denominator), per_row_sq, denominator


def _force_term(forces, batch: PreparedBatch, atom_config, weight):
    """w_F Σ_k c_k Σ_i |ΔF_i|² / (3 Σ_k c_k N_k^F) (M,), its metric sums, and (c_atom, ΔF,
    3 Σ c N^F) for the gradient; ``forces`` (M, N, 3) eV/Å."""
    df = np.where(batch.has_forces[None, :, None], forces - batch.forces, 0.0)
    c_atom = batch.weights[:, atom_config] * batch.has_forces            # (M, N)
    loss, per_atom_sq, w_f = _weighted_mean_square(df, c_atom, 3.0, weight)
    sums = dict(force_sq=per_atom_sq.sum(axis=1), force_abs=np.abs(df).sum(axis=(1, 2)),
                n_force=int(3 * batch.has_forces.sum()))
    return loss, sums, (c_atom, df, w_f)


def _stress_term(virial, batch: PreparedBatch, weight):
    """w_S Σ_k c_k^S |Δσ_k|² / (6 Σ_k c_k^S) (M,) with σ_k = W_k / V_k, its metric sums, and
    (Δσ, c^S, 6 Σ c^S) for the gradient; ``virial`` (M, n, 3, 3) eV."""
    sigma = virial[:, :, VOIGT[0], VOIGT[1]] / batch.volume[None, :, None]
    ds = np.where(batch.has_stress[None, :, None], sigma - batch.stress, 0.0)  # (M, n, 6)
    c_s = batch.weights * batch.has_stress                                # (M, n)
    loss, per_config_sq, w_s = _weighted_mean_square(ds, c_s, 6.0, weight)
    sums = dict(stress_sq=per_config_sq.sum(axis=1), stress_abs=np.abs(ds).sum(axis=(1, 2)),
                n_stress=int(6 * batch.has_stress.sum()))
    return loss, sums, (ds, c_s, w_s)


def _gradients(potential, batch: PreparedBatch, caches, weights: LossWeights, n, atom_config,
               energy_parts, force_parts, stress_parts) -> dict:
    """{Z: (M, P)} weight gradients of the loss (module doc): ∂L/∂y_i = ∂L/∂E_k for every atom
    i of configuration k, u_i from the force and stress terms, one backward pass per element."""
    c, de, w_e = energy_parts
    d_energy = 2.0 * weights.energy * _safe_div(c * de, (n**2)[None, :] * w_e[:, None])  # (M, n)
    gy = d_energy[:, atom_config]                                         # (M, N)
    u = None
    if force_parts is not None:
        c_atom, df, w_f = force_parts
        scale = np.where(w_f > 0, 2.0 * weights.forces / np.where(w_f > 0, w_f, 1.0), 0.0)
        d_forces = (scale[:, None] * c_atom)[:, :, None] * df             # ∂L/∂F (M, N, 3)
        u = batch.operator.pullback(d_forces)                             # (M, N, F)
    if stress_parts is not None:
        ds, c_s, w_s = stress_parts
        u_stress = _stress_pullback(ds, c_s, w_s, weights.stress, batch.volume,
                                    batch.features.strain, atom_config)
        u = u_stress if u is None else u + u_stress
    grads = {}
    for z, cache in caches.items():
        rows = batch.features.elements[z].rows
        net = potential.networks[z]
        g_y = gy[:, rows, None]
        grads[z] = (net.backward(cache, g_y) if u is None
                    else net.backward_with_tangent(cache, u[:, rows], g_y=g_y))
    return grads


def batch_loss(potential, batch: PreparedBatch, weights: LossWeights = LossWeights(),
               gradients: bool = True) -> BatchResult:
    """Loss of every member on ``batch`` and, if asked, its gradient for each element's
    parameters (see the module doc): L = L_E + L_F + L_S, each term from its own function."""
    fb = batch.features
    use_forces = weights.forces > 0 and batch.operator is not None
    use_stress = (weights.stress > 0 and batch.has_stress is not None
                  and bool(batch.has_stress.any()) and fb.strain is not None)
    energies, g, caches = potential.forward(fb, input_gradient=use_forces or use_stress)
    energy = np.add.reduceat(energies, fb.offsets[:-1], axis=1)          # (M, n)
    n = batch.n_atoms.astype(float)
    loss, sums, energy_parts = _energy_term(energy, batch, n, weights.energy)
    atom_config = np.repeat(np.arange(len(n)), batch.n_atoms)
    force_parts = stress_parts = None
    if use_forces:
        # member-major copy: the operator returns a member-minor view, and sums over the atom
        # axis of such a view depend on M (pairwise vs sequential order); contiguous rows
        # make every member's loss independent of the others (groups == one fit, bit for bit)
        forces = np.ascontiguousarray(batch.operator.forces(g))           # (M, N, 3)
        f_loss, f_sums, force_parts = _force_term(forces, batch, atom_config, weights.forces)
        loss = loss + f_loss
        sums.update(f_sums)
    else:
        m = energy.shape[0]
        sums.update(force_sq=np.zeros(m), force_abs=np.zeros(m), n_force=0)
    if use_stress:
        virial = strain_gradient(g, fb.strain, fb.offsets)                # (M, n, 3, 3) eV
        s_loss, s_sums, stress_parts = _stress_term(virial, batch, weights.stress)
        loss = loss + s_loss
        sums.update(s_sums)
    grads = (_gradients(potential, batch, caches, weights, n, atom_config, energy_parts,
                        force_parts, stress_parts) if gradients else None)
    return BatchResult(loss=loss, grads=grads, **sums)
