"""Angular symmetry functions G4 and G5 with analytic derivatives, vectorised per centre.

For a centre i with neighbours j, k (cosine cutoff f_c with the angular cutoff r_c,
θ_ijk the angle at i, K = 2^(1−ζ)), summed over unordered neighbour pairs {j, k} whose elements
form the feature's element pair (Behler 2011, eqs. 8–9; DScribe's exact forms)::

    G4 = K Σ (1 + λ cos θ)^ζ exp(−η (r_ij² + r_ik² + r_jk²)) f_c(r_ij) f_c(r_ik) f_c(r_jk)
    G5 = K Σ (1 + λ cos θ)^ζ exp(−η (r_ij² + r_ik²))        f_c(r_ij) f_c(r_ik)

How it is computed. Each term factorises as g(j, k) = A(c_jk) P(r_jk) q(r_ij) q(r_ik) with
c = cos θ, A = K (1 + λc)^ζ, q(r) = exp(−η r²) f_c(r), P(r) = exp(−η r²) f_c(r) (G4) or 1 (G5).
The neighbours of a block of centres are laid out as a padded (B, m) array, so every quantity of
a pair of neighbours is a (B, m, m) array (the Gram matrix of the bond vectors D gives c and
r_jk), and every sum over k is a batched matrix product with the columns q_k, q_k D_k:

    V_t(j)  = Σ_{k∈t} A P q_k                       (values: G^{st} = w_st Σ_{j∈s} q_j V_t(j))
    ∂G^{s t}/∂D_j = q_j [T1 − D_j (D_j·T1)/r_j² + D_j T3 − T4] + q'_j D_j/r_j V_t(j)

with T1 = Σ_k (A' P / r_j r_k) q_k D_k, T3 = Σ_k (A P'/r_jk) q_k, T4 = Σ_k (A P'/r_jk) q_k D_k,
A' = dA/dc, P' = dP/dr_jk, s the element of j, w_st = ½ if s = t else 1. The derivative with
respect to a bond vector D_ij = r_j − r_i is the derivative with respect to atom j; atom i gets
minus the sum over its bonds (done by the caller). No Python loop runs over atoms or pairs:
only over blocks of centres (bounded memory) and over the distinct η values.
"""

from __future__ import annotations

import numpy as np

from pesnet.descriptors.cutoff import cosine_cutoff

#: Elements of the largest (B, n_features, 3, m, m) work array of one block of centres.
BLOCK_ELEMENTS = 1 << 19


def _int_power(base: np.ndarray, n: int) -> np.ndarray:
    """``base ** n`` for a small non-negative integer ``n`` by repeated squaring."""
    result = None
    power = base
    while n:
        if n & 1:
            result = power.copy() if result is None else result * power
        n >>= 1
        if n:
            power = power * power
    return np.ones_like(base) if result is None else result


def _angular_factor(c: np.ndarray, zeta: float, lam: float, derivatives: bool):
    """A = 2^(1−ζ)(1 + λc)^ζ and dA/dc = 2^(1−ζ) ζ λ (1 + λc)^(ζ−1), elementwise."""
    base = 1.0 + lam * c
    prefactor = 2.0 ** (1.0 - zeta)
    if float(zeta).is_integer() and 1 <= zeta <= 64:
        lower = _int_power(base, int(zeta) - 1)
    else:
        lower = np.power(np.maximum(base, 0.0), zeta - 1.0)
    a = prefactor * lower * base
    da = (prefactor * zeta * lam) * lower if derivatives else None
    return a, da


def _centre_blocks(counts: np.ndarray, n_stack: int):
    """Yield arrays of centre indices (sorted by decreasing neighbour count) forming blocks."""
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] >= 2]  # an angle needs two neighbours
    start = 0
    while start < len(order):
        m = int(counts[order[start]])
        size = max(1, BLOCK_ELEMENTS // max(1, n_stack * m * m))
        yield order[start : start + size]
        start += size


def angular_terms(centre, D, r, element, n_atoms: int, n_elements: int, cutoff: float,
                  g4: np.ndarray, g5: np.ndarray, derivatives: bool = False):
    """G4 and G5 values, and their derivatives with respect to each bond vector.

    Bonds (neighbour pairs within ``cutoff``) sorted by centre: ``centre`` (L,) atom index,
    ``D`` (L, 3) bond vectors r_j − r_i (Å), ``r`` (L,) lengths (Å), ``element`` (L,) index of
    the neighbour's element in 0..n_elements−1. ``g4``/``g5``: (n, 3) rows (η 1/Å², ζ, λ).

    Returns ``(values, bond_gradients)``:

    * ``values`` (n_atoms, n_elements, n_elements, n_angular), symmetric in the two element
      axes; columns are the G4s then the G5s.
    * ``bond_gradients`` (L, n_elements, n_angular, 3) in 1/Å: entry [b, t, f] is
      ∂G_f(centre_b; element pair {element_b, t}) / ∂D_b. ``None`` unless ``derivatives``.
    """
    g4 = np.asarray(g4, dtype=float).reshape(-1, 3)
    g5 = np.asarray(g5, dtype=float).reshape(-1, 3)
    n_angular = len(g4) + len(g5)
    values = np.zeros((n_atoms, n_elements, n_elements, n_angular))
    bond_grad = np.zeros((len(r), n_elements, n_angular, 3)) if derivatives else None
    if n_angular == 0 or len(r) == 0:
        return values, bond_grad

    # Feature groups sharing (kind, η): each is one stacked matrix product per block.
    params = [("g4", *p) for p in g4] + [("g5", *p) for p in g5]
    combos = sorted({(zeta, lam) for _, _, zeta, lam in params})
    groups: dict[tuple, list[tuple[int, int]]] = {}
    for column, (kind, eta, zeta, lam) in enumerate(params):
        groups.setdefault((kind, eta), []).append((column, combos.index((zeta, lam))))
    n_stack = max(len(g) for g in groups.values()) * (3 if derivatives else 1)

    counts = np.bincount(centre, minlength=n_atoms)
    starts = np.concatenate([[0], np.cumsum(counts)])
    pair_weight = np.where(np.eye(n_elements, dtype=bool), 0.5, 1.0)[..., None]

    for centres in _centre_blocks(counts, n_stack):
        n = counts[centres]
        m = int(n.max())
        slot = np.arange(m)
        valid = slot < n[:, None]                                        # (B, m)
        bond = np.where(valid, starts[centres][:, None] + slot, 0)
        Dp = np.where(valid[..., None], D[bond], 0.0)                    # (B, m, 3)
        rp = np.where(valid, r[bond], 1.0)
        onehot = (element[bond][..., None] == np.arange(n_elements)) & valid[..., None]
        f, df = cosine_cutoff(rp, cutoff, derivative=derivatives)
        f = f * valid
        inv_r = 1.0 / rp
        gram = np.matmul(Dp, Dp.transpose(0, 2, 1))                       # (B, m, m)
        inv_rr = inv_r[:, :, None] * inv_r[:, None, :]
        cos = np.clip(gram * inv_rr, -1.0, 1.0)
        pair_mask = valid[:, :, None] & valid[:, None, :]
        pair_mask &= ~np.eye(m, dtype=bool)
        if len(g4):
            r2 = rp * rp
            rjk2 = np.maximum(r2[:, :, None] + r2[:, None, :] - 2.0 * gram, 0.0)
            rjk = np.sqrt(rjk2)
            fjk, dfjk = cosine_cutoff(rjk, cutoff, derivative=derivatives)
            fjk *= pair_mask
            if derivatives:
                dfjk *= pair_mask
                inv_rjk = np.where(pair_mask, 1.0 / np.where(pair_mask, rjk, 1.0), 0.0)
        factors = [_angular_factor(cos, z, lam, derivatives) for z, lam in combos]

        B = len(centres)
        n_rhs = 4 if derivatives else 1
        for (kind, eta), members in groups.items():
            radial = np.exp(-eta * rp * rp)
            q = radial * f                                               # (B, m)
            if kind == "g4":
                E = np.exp(-eta * rjk2)
                P = E * fjk
                if derivatives:
                    dP_r = E * (dfjk - 2.0 * eta * rjk * fjk) * inv_rjk
            else:
                P = pair_mask.astype(float)
            n_s = (3 if kind == "g4" else 2) if derivatives else 1
            X = np.empty((B, len(members), n_s, m, m))
            if derivatives:
                P_rr = P * inv_rr
            for row, (_, combo) in enumerate(members):
                a, da = factors[combo]
                np.multiply(a, P, out=X[:, row, 0])
                if derivatives:
                    np.multiply(da, P_rr, out=X[:, row, 1])
                    if n_s == 3:
                        np.multiply(a, dP_r, out=X[:, row, 2])
            Q = np.empty((B, m, n_elements, n_rhs))
            qe = q[..., None] * onehot                                   # (B, m, n_el)
            Q[..., 0] = qe
            if derivatives:
                Q[..., 1:] = qe[..., None] * Dp[:, :, None, :]
            Y = np.matmul(X.reshape(B, -1, m), Q.reshape(B, m, -1))
            Y = Y.reshape(B, len(members), n_s, m, n_elements, n_rhs)
            V = Y[:, :, 0, :, :, 0]                                      # (B, nf, m, n_el)
            cols = [column for column, _ in members]
            block_values = np.einsum("bjs,bfjt->bstf", qe, V) * pair_weight
            every = np.arange(n_elements)
            values[np.ix_(centres, every, every, cols)] = block_values
            if not derivatives:
                continue
            Dj = Dp[:, None, :, None, :]                                 # (B, 1, m, 1, 3)
            T1 = Y[:, :, 1, :, :, 1:]                                    # (B, nf, m, n_el, 3)
            grad = T1 - Dj * (np.sum(Dj * T1, axis=-1, keepdims=True)
                              * (inv_r * inv_r)[:, None, :, None, None])
            if n_s == 3:
                grad += Dj * Y[:, :, 2, :, :, :1] - Y[:, :, 2, :, :, 1:]
            grad *= q[:, None, :, None, None]
            dq = radial * (df - 2.0 * eta * rp * f) * valid * inv_r
            grad += (dq[:, None, :, None, None] * Dj) * V[..., None]
            # (B, nf, m, n_el, 3) -> bonds of the block, (n_valid, n_el, nf, 3)
            grad = grad.transpose(0, 2, 3, 1, 4)[valid]
            bond_grad[np.ix_(bond[valid], np.arange(n_elements), cols)] = grad
    return values, bond_grad
