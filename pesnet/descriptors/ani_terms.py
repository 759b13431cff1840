"""The terms of ANI's atomic environment vectors, vectorised over bonds and bond pairs.

Equations, units and column order: :mod:`pesnet.descriptors.ani`. Here, for bonds b = i→j
(sorted by centre i, lengths r_b Å, vectors D_b Å):

* :func:`radial_terms`: per bond ¼ exp(−η (r_b − R_s)²) f_c(r_b) and its r-derivative;
* :func:`bond_pairs`: every pair (b, b') of bonds of one centre with b < b' (the triplets
  (i; j, k)), built by index arithmetic from the per-centre bond counts;
* :func:`angular_terms`: per triplet t the (R_a, θ_z) grid of terms, summed per (centre,
  element pair), and the gradients with respect to both bond vectors, summed per (bond,
  element pair). With v = P(cos θ) R(r_j, r_k) and c = cos θ::

      ∂v/∂D_j = (P' R / (r_j r_k)) D_k + (−P' R c / r_j² + P ∂R/∂r_j / r_j) D_j

  and symmetrically for D_k; P(c) = 2^(1−ζ) A^ζ with A = 1 + 0.95 c cos θ_z + s' sin θ_z,
  s' = √(1 − 0.95² c²) (= 1 + cos(θ' − θ_z) for θ' = arccos 0.95 c), so
  P' = 2^(1−ζ) ζ A^(ζ−1) · 0.95 (cos θ_z − 0.95 c sin θ_z / s').

Sums over bonds or triplets are sparse-matrix products (:func:`sum_rows`), one C loop each.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from pesnet.descriptors.cutoff import cosine_cutoff

#: TorchANI's damping of cos θ before the arccos (keeps dθ/dcos θ finite at 0 and π).
COSINE_DAMPING = 0.95


def sum_rows(target: np.ndarray, n_targets: int, rows: np.ndarray) -> np.ndarray:
    """out[t] = Σ_{n: target_n = t} rows[n]: ``rows`` (n, k) → (n_targets, k)."""
    n = len(target)
    matrix = sparse.csr_matrix((np.ones(n), (target, np.arange(n))), shape=(n_targets, n))
    return np.asarray(matrix @ rows.reshape(n, -1))


def radial_terms(d: np.ndarray, cutoff: float, eta: float, shifts: np.ndarray,
                 derivatives: bool):
    """``(g, dg/dr)``, each (n_bonds, n_shifts): ¼ exp(−η (r − R_s)²) f_c(r; cutoff) of the
    lengths ``d`` (n_bonds,) Å and its derivative (1/Å; ``None`` unless ``derivatives``)."""
    fc, dfc = cosine_cutoff(d, cutoff, derivative=derivatives)
    delta = d[:, None] - shifts
    gauss = 0.25 * np.exp(-eta * delta * delta)
    values = gauss * fc[:, None]
    if not derivatives:
        return values, None
    return values, gauss * (dfc[:, None] - 2.0 * eta * delta * fc[:, None])


def bond_pairs(centre: np.ndarray, n_atoms: int):
    """``(first, second)`` (n_triplets,): every pair of bond indices of one centre with
    first < second, ``centre`` (n_bonds,) sorted. A centre with n bonds has n(n−1)/2."""
    n_bonds = len(centre)
    counts = np.bincount(centre, minlength=n_atoms)
    starts = np.cumsum(counts) - counts
    rank = np.arange(n_bonds) - starts[centre]              # position within its centre
    partners = counts[centre] - 1 - rank                    # later bonds of the same centre
    first = np.repeat(np.arange(n_bonds), partners)
    run_starts = np.cumsum(partners) - partners
    second = first + 1 + np.arange(len(first)) - np.repeat(run_starts, partners)
    return first, second


def angular_terms(centre, element, d, D, n_atoms: int, pair_index: np.ndarray, cutoff: float,
                  eta: float, radial_shifts: np.ndarray, angle_shifts: np.ndarray,
                  zeta: float, derivatives: bool):
    """Angular AEV terms of the bonds within the angular cutoff.

    ``centre``, ``element`` (the neighbour's element index), ``d`` (n_bonds,), ``D``
    (n_bonds, 3) Å, sorted by centre, every d < ``cutoff``; ``pair_index`` (n_el, n_el)
    index of each element pair. Returns ``values`` (n_atoms, n_pairs, n_a·n_θ) and, if
    ``derivatives``, ``grad`` (n_bonds, n_pairs, n_a·n_θ, 3) = ∂G_i/∂D_b (1/Å), else
    ``None``.
    """
    n_pairs, n_bonds = int(pair_index.max()) + 1, len(d)
    n_terms = len(radial_shifts) * len(angle_shifts)
    first, second = bond_pairs(centre, n_atoms)
    if len(first) == 0:
        return (np.zeros((n_atoms, n_pairs, n_terms)),
                np.zeros((n_bonds, n_pairs, n_terms, 3)) if derivatives else None)
    fc, dfc = cosine_cutoff(d, cutoff, derivative=derivatives)
    dj, dk, Dj, Dk = d[first], d[second], D[first], D[second]
    cos = np.einsum("tx,tx->t", Dj, Dk) / (dj * dk)
    c = COSINE_DAMPING * cos
    s = np.sqrt(1.0 - c * c)                                # ≥ 0.31
    cz, sz = np.cos(angle_shifts), np.sin(angle_shifts)
    a = np.maximum(1.0 + c[:, None] * cz + s[:, None] * sz, 0.0)    # (n_t, n_θ)
    scale = 2.0 ** (1.0 - zeta)
    a_pow = a ** (zeta - 1.0)
    p = scale * a_pow * a                                   # 2^(1−ζ) (1 + cos(θ' − θ_z))^ζ
    delta = 0.5 * (dj + dk)[:, None] - radial_shifts        # (n_t, n_a)
    gauss = np.exp(-eta * delta * delta)
    f2 = (fc[first] * fc[second])[:, None]
    r = gauss * f2
    pair = pair_index[element[first], element[second]]
    terms = (r[:, :, None] * p[:, None, :]).reshape(-1, n_terms)
    values = sum_rows(centre[first] * n_pairs + pair, n_atoms * n_pairs, terms)
    values = values.reshape(n_atoms, n_pairs, n_terms)
    if not derivatives:
        return values, None

    dp = (scale * zeta * COSINE_DAMPING) * a_pow * (cz - (c / s)[:, None] * sz)   # ∂P/∂cos θ
    dr_common = -eta * delta * f2                           # ∂(exp)/∂r_j / exp, · f_j f_k
    dr_j = gauss * (dr_common + (dfc[first] * fc[second])[:, None])
    dr_k = gauss * (dr_common + (fc[first] * dfc[second])[:, None])
    dp_r = (r[:, :, None] * dp[:, None, :]).reshape(-1, n_terms)
    cross = dp_r / (dj * dk)[:, None]
    own_j = ((dr_j[:, :, None] * p[:, None, :]).reshape(-1, n_terms) / dj[:, None]
             - dp_r * (cos / (dj * dj))[:, None])
    own_k = ((dr_k[:, :, None] * p[:, None, :]).reshape(-1, n_terms) / dk[:, None]
             - dp_r * (cos / (dk * dk))[:, None])
    grad_j = cross[:, :, None] * Dk[:, None, :] + own_j[:, :, None] * Dj[:, None, :]
    grad_k = cross[:, :, None] * Dj[:, None, :] + own_k[:, :, None] * Dk[:, None, :]
    target = np.concatenate([first * n_pairs + pair, second * n_pairs + pair])
    grad = sum_rows(target, n_bonds * n_pairs, np.concatenate([grad_j, grad_k]))
    return values, grad.reshape(n_bonds, n_pairs, n_terms, 3)
