"""Radial symmetry functions G1, G2, G3 of one neighbour pair, vectorised over pairs.

With the cosine cutoff f_c (:mod:`pesnet.descriptors.cutoff`) and the distance r_ij (Å):

    G1 = f_c(r_ij)
    G2 = exp(−η (r_ij − R_s)²) f_c(r_ij)        parameters η (1/Å²), R_s (Å)
    G3 = cos(κ r_ij) f_c(r_ij)                 parameter κ (1/Å)

A centre's feature is the sum of these over its neighbours of one element (Behler 2011, eqs.
5–7; DScribe's ACSF uses exactly these forms).
"""

from __future__ import annotations

import numpy as np

from pesnet.descriptors.cutoff import cosine_cutoff


def radial_terms(r: np.ndarray, cutoff: float, g2: np.ndarray, g3: np.ndarray,
                 derivatives: bool = False):
    """Per-pair radial terms and their derivatives with respect to the distance.

    ``r``: (n_pairs,) Å; ``g2``: (n_g2, 2) rows (η, R_s); ``g3``: (n_g3,) κ values.
    Returns ``(values, d_values)``: both (n_pairs, 1 + n_g2 + n_g3), columns G1, G2s, G3s;
    ``d_values`` is ∂/∂r_ij in 1/Å (``None`` unless ``derivatives``). Both are transposed
    views of term-major (1 + n_g2 + n_g3, n_pairs) arrays: every elementwise step then runs
    along the pairs (a long inner loop) instead of along a handful of terms, ~2× faster;
    each element is computed by the same operations either way.
    """
    r = np.asarray(r, dtype=float)
    fc, dfc = cosine_cutoff(r, cutoff, derivative=derivatives)
    n_g2, n_g3 = len(g2), len(g3)
    values = np.empty((1 + n_g2 + n_g3, len(r)))
    values[0] = fc
    rc = r[None, :]
    if n_g2:
        eta, rs = g2[:, :1], g2[:, 1:2]                                    # (n_g2, 1)
        delta = rc - rs
        gauss = np.exp(-eta * delta * delta)
        np.multiply(gauss, fc, out=values[1 : 1 + n_g2])
    if n_g3:
        kappa = np.asarray(g3, dtype=float)[:, None]
        cosine = np.cos(rc * kappa)
        np.multiply(cosine, fc, out=values[1 + n_g2 :])
    if not derivatives:
        return values.T, None
    d_values = np.empty_like(values)
    d_values[0] = dfc
    if n_g2:
        np.multiply(gauss, dfc - 2.0 * eta * delta * fc, out=d_values[1 : 1 + n_g2])
    if n_g3:
        np.subtract(cosine * dfc, kappa * np.sin(rc * kappa) * fc, out=d_values[1 + n_g2 :])
    return values.T, d_values.T
