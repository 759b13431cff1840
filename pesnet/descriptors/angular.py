"""Angular symmetry functions G4 and G5 with analytic derivatives, vectorised per centre.

For a centre i with neighbours j, k (cosine cutoff f_c with the angular cutoff r_c,
θ_ijk the angle at i, K = 2^(1−ζ)), summed over unordered neighbour pairs {j, k} whose elements
form the feature's element pair (Behler 2011, eqs. 8–9; DScribe's exact forms)::

    G4 = K Σ (1 + λ cos θ)^ζ exp(−η (r_ij² + r_ik² + r_jk²)) f_c(r_ij) f_c(r_ik) f_c(r_jk)
    G5 = K Σ (1 + λ cos θ)^ζ exp(−η (r_ij² + r_ik²))        f_c(r_ij) f_c(r_ik)

How it is computed. Each term factorises as g(j, k) = A(c_jk) P(r_jk) q(r_ij) q(r_ik) with
c = cos θ, A = K (1 + λc)^ζ, q(r) = exp(−η r²) f_c(r), and P(r) = exp(−η r²) f_c(r) for
G4 or 1 for G5. The neighbours of a block of centres are laid out as a padded (B, m) array, so
every quantity of a pair of neighbours is a (B, m, m) array (the Gram matrix of the bond
vectors D gives c and r_jk), and every sum over k is a batched matrix product with the columns
q_k and q_k D_k:

    V_t(j)  = Σ_{k∈t} A P q_k                 (values: G^{st} = w_st Σ_{j∈s} q_j V_t(j))
    ∂G^{st}/∂D_j = q_j [T1 − D_j (D_j·T1)/r_j² + D_j T3 − T4] + q'_j (D_j/r_j) V_t(j)

with T1 = Σ_k (A' P / r_j r_k) q_k D_k, T3 = Σ_k (A P'/r_jk) q_k, T4 = Σ_k (A P'/r_jk) q_k D_k,
A' = dA/dc, P' = dP/dr_jk, s the element of j, w_st = ½ if s = t else 1. The derivative with
respect to a bond vector D_ij = r_j − r_i is the derivative with respect to atom j; atom i gets
minus the sum over its bonds (done by the caller).

For integer ζ ≤ 8, (1 + λc)^ζ is a polynomial in c, so all features sharing η are linear
combinations of the few matrices c^n P (n ≤ max ζ): the (B, m, m) work grows with the largest
ζ, not with the number of (ζ, λ) pairs. Other ζ use (1 + λc)^ζ directly. No Python loop runs
over atoms or pairs: only over blocks of centres (bounded memory) and over distinct η values.
"""

from __future__ import annotations

from math import comb
from typing import NamedTuple

import numpy as np

from pesnet.descriptors.cutoff import cosine_cutoff

#: Elements of the largest (B, n_matrices, m, m) work array of one block of centres.
BLOCK_ELEMENTS = 1 << 18
#: Largest integer ζ expanded as a polynomial in cos θ.
MAX_POLYNOMIAL_ZETA = 8


class _Group(NamedTuple):
    """Features sharing (kind, η): their matrix factors and how features combine them."""

    kind: str
    eta: float
    columns: list          # output columns (index among the angular features)
    value_keys: list       # factor of each A-type matrix ("pow", n) or ("A", ζ, λ)
    slope_keys: list       # factor of each A'-type matrix ("pow", n) or ("dA", ζ, λ)
    value_coef: np.ndarray  # (n_features, len(value_keys)): A_f = Σ coef · factor
    slope_coef: np.ndarray  # (n_features, len(slope_keys)): A'_f = Σ coef · factor


def plan_angular(g4: np.ndarray, g5: np.ndarray) -> list[_Group]:
    """Group features by (kind, η) and express each A and A' in matrix factors (the work
    plan of :func:`angular_terms`; depends on the parameters only, so callers may keep it)."""
    params = [("g4", *p) for p in g4] + [("g5", *p) for p in g5]
    by_group: dict[tuple, list] = {}
    for column, (kind, eta, zeta, lam) in enumerate(params):
        by_group.setdefault((kind, eta), []).append((column, zeta, lam))
    groups = []
    for (kind, eta), members in by_group.items():
        value_terms, slope_terms = [], []
        for _, zeta, lam in members:
            k = 2.0 ** (1.0 - zeta)
            if float(zeta).is_integer() and zeta <= MAX_POLYNOMIAL_ZETA:
                z = int(zeta)
                value_terms.append({("pow", n): k * comb(z, n) * lam**n for n in range(z + 1)})
                slope_terms.append({("pow", n): k * z * lam * comb(z - 1, n) * lam**n
                                    for n in range(z)})
            else:
                value_terms.append({("A", zeta, lam): 1.0})
                slope_terms.append({("dA", zeta, lam): 1.0})
        value_keys = sorted({key for t in value_terms for key in t})
        slope_keys = sorted({key for t in slope_terms for key in t})
        value_coef = np.array([[t.get(key, 0.0) for key in value_keys] for t in value_terms])
        slope_coef = np.array([[t.get(key, 0.0) for key in slope_keys] for t in slope_terms])
        groups.append(_Group(kind, eta, [c for c, _, _ in members], value_keys, slope_keys,
                             value_coef, slope_coef))
    return groups


def _factor(key, cos: np.ndarray, cache: dict):
    """The (B, m, m) matrix factor named by ``key``; ``None`` stands for all ones."""
    if key in cache:
        return cache[key]
    if key[0] == "pow":
        n = key[1]
        if n == 0:
            value = None
        elif n == 1:
            value = cos
        else:
            half = _factor(("pow", n // 2), cos, cache)
            value = half * half if n % 2 == 0 else half * _factor(("pow", n - 1), cos, cache)
    else:
        _, zeta, lam = key
        base = np.maximum(1.0 + lam * cos, 0.0)
        k = 2.0 ** (1.0 - zeta)
        value = k * base**zeta if key[0] == "A" else (k * zeta * lam) * base ** (zeta - 1.0)
    cache[key] = value
    return value


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


def _combine(coef: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Σ_k coef[f, k] Y[b, k, ...] -> (B, n_features, ...), as one matrix product."""
    B, n_k = Y.shape[:2]
    out = np.matmul(coef, Y.reshape(B, n_k, -1))
    return out.reshape((B, len(coef)) + Y.shape[2:])


def angular_terms(centre, D, r, element, n_atoms: int, n_elements: int, cutoff: float,
                  g4: np.ndarray, g5: np.ndarray, derivatives: bool = False, plan=None):
    """G4 and G5 values, and their derivatives with respect to each bond vector.

    Bonds (neighbour pairs within ``cutoff``) sorted by centre: ``centre`` (L,) atom index,
    ``D`` (L, 3) bond vectors r_j − r_i (Å), ``r`` (L,) lengths (Å), ``element`` (L,) index of
    the neighbour's element in 0..n_elements−1. ``g4``/``g5``: (n, 3) rows (η 1/Å², ζ, λ).

    Returns ``(values, bond_gradients)``:

    * ``values`` (n_atoms, n_elements, n_elements, n_angular), symmetric in the two element
      axes; columns are the G4s then the G5s.
    * ``bond_gradients`` (L, n_elements, n_angular, 3) in 1/Å: entry [b, t, f] is
      ∂G_f(centre_b; element pair {element_b, t}) / ∂D_b. ``None`` unless ``derivatives``.

    ``plan``: :func:`plan_angular` of ``g4``, ``g5`` if the caller keeps it.
    """
    g4 = np.asarray(g4, dtype=float).reshape(-1, 3)
    g5 = np.asarray(g5, dtype=float).reshape(-1, 3)
    n_angular = len(g4) + len(g5)
    values = np.zeros((n_atoms, n_elements, n_elements, n_angular))
    bond_grad = np.zeros((len(r), n_elements, n_angular, 3)) if derivatives else None
    if n_angular == 0 or len(r) == 0:
        return values, bond_grad

    groups = plan_angular(g4, g5) if plan is None else plan
    n_stack = max(len(g.value_keys) * (2 if derivatives else 1)
                  + (len(g.slope_keys) if derivatives else 0) for g in groups)
    counts = np.bincount(centre, minlength=n_atoms)
    starts = np.concatenate([[0], np.cumsum(counts)])
    pair_weight = np.where(np.eye(n_elements, dtype=bool), 0.5, 1.0)[..., None]
    every = np.arange(n_elements)
    n_rhs = 4 if derivatives else 1

    for centres in _centre_blocks(counts, n_stack):
        n = counts[centres]
        m = int(n.max())
        B = len(centres)
        slot = np.arange(m)
        valid = slot < n[:, None]                                        # (B, m)
        bond = np.where(valid, starts[centres][:, None] + slot, 0)
        Dp = np.where(valid[..., None], D[bond], 0.0)                    # (B, m, 3)
        rp = np.where(valid, r[bond], 1.0)
        onehot = (element[bond][..., None] == every) & valid[..., None]  # (B, m, n_el)
        f, df = cosine_cutoff(rp, cutoff, derivative=derivatives)
        f *= valid
        inv_r = 1.0 / rp
        gram = np.matmul(Dp, Dp.transpose(0, 2, 1))                       # (B, m, m)
        inv_rr = inv_r[:, :, None] * inv_r[:, None, :]
        cos = gram * inv_rr
        np.clip(cos, -1.0, 1.0, out=cos)
        eye = np.eye(m, dtype=bool)
        pair_mask = valid[:, :, None] & valid[:, None, :]
        pair_mask &= ~eye
        if len(g4):
            r2 = rp * rp
            rjk2 = r2[:, :, None] + r2[:, None, :]
            gram *= 2.0
            rjk2 -= gram
            np.maximum(rjk2, 0.0, out=rjk2)
            rjk = np.sqrt(rjk2)
            mask4 = pair_mask & (rjk < cutoff)
            # cos(π r_jk / r_c), evaluated inside the cutoff only (outside, masked out below)
            cos_x = rjk * (np.pi / cutoff)
            np.cos(cos_x, out=cos_x, where=mask4)
            one_plus = cos_x + 1.0
            fjk = one_plus * 0.5
            fjk *= mask4
            if derivatives:
                # sin x = sqrt((1 − cos x)(1 + cos x)) on [0, π]: a float64 sin costs ~7 such ops
                dfjk_r = 1.0 - cos_x
                dfjk_r *= one_plus
                np.maximum(dfjk_r, 0.0, out=dfjk_r)
                np.sqrt(dfjk_r, out=dfjk_r)
                dfjk_r *= mask4
                dfjk_r *= -0.5 * np.pi / cutoff
                rjk += eye  # only ever divided by off the diagonal, where it is > 0
                dfjk_r /= rjk                                            # f_c'(r_jk) / r_jk
        if len(g5):
            P5 = pair_mask.astype(float)
            P5_rr = P5 * inv_rr if derivatives else None
        cache: dict = {}

        for group in groups:
            radial = np.exp(-group.eta * rp * rp)
            q = radial * f                                               # (B, m)
            g4_group = group.kind == "g4"
            n_value, n_slope = len(group.value_keys), len(group.slope_keys)
            kinds = [("P", key) for key in group.value_keys]
            if derivatives:
                kinds += [("P_rr", key) for key in group.slope_keys]
                if g4_group:
                    kinds += [("dP_r", key) for key in group.value_keys]
            X = np.empty((B, len(kinds), m, m))
            # A matrix whose factor is 1 (cos⁰) is computed straight into its slot of X.
            home = {name: X[:, row] for row, (name, key) in enumerate(kinds) if key == ("pow", 0)}
            if g4_group:
                E = rjk2 * -group.eta
                np.exp(E, out=E)
                P = np.multiply(E, fjk, out=home.get("P"))
                P_rr = dP_r = None
                if derivatives:
                    P_rr = np.multiply(P, inv_rr, out=home.get("P_rr"))
                    dP_r = np.multiply(fjk, -2.0 * group.eta, out=home.get("dP_r"))
                    dP_r += dfjk_r
                    dP_r *= E                                            # P'(r_jk) / r_jk
            else:
                P, P_rr, dP_r = P5, P5_rr, None
            matrices = {"P": P, "P_rr": P_rr, "dP_r": dP_r}
            for row, (name, key) in enumerate(kinds):
                factor = _factor(key, cos, cache)
                if factor is not None:
                    np.multiply(factor, matrices[name], out=X[:, row])
                elif not g4_group:
                    np.copyto(X[:, row], matrices[name])
            Q = np.empty((B, m, n_elements, n_rhs))
            qe = q[..., None] * onehot                                   # (B, m, n_el)
            Q[..., 0] = qe
            if derivatives:
                Q[..., 1:] = qe[..., None] * Dp[:, :, None, :]
            Y = np.matmul(X.reshape(B, -1, m), Q.reshape(B, m, -1))
            Y = Y.reshape(B, len(kinds), m, n_elements, n_rhs)
            V = _combine(group.value_coef, Y[:, :n_value, :, :, 0])      # (B, nf, m, n_el)
            # Σ_j q_j [el_j = s] V[f, j, t] as one batched product -> (B, s, t, f)
            nf = len(group.columns)
            block_values = np.matmul(qe.transpose(0, 2, 1),
                                     V.transpose(0, 2, 1, 3).reshape(B, m, nf * n_elements))
            block_values = block_values.reshape(B, n_elements, nf, n_elements)
            block_values = block_values.transpose(0, 1, 3, 2) * pair_weight
            values[np.ix_(centres, every, every, group.columns)] = block_values
            if not derivatives:
                continue
            Dj = Dp[:, None, :, None, :]                                 # (B, 1, m, 1, 3)
            T1 = _combine(group.slope_coef, Y[:, n_value : n_value + n_slope, :, :, 1:])
            grad = T1 - Dj * (np.sum(Dj * T1, axis=-1, keepdims=True)
                              * (inv_r * inv_r)[:, None, :, None, None])
            if g4_group:
                T34 = _combine(group.value_coef, Y[:, n_value + n_slope :])
                grad += Dj * T34[..., :1] - T34[..., 1:]
            grad *= q[:, None, :, None, None]
            dq = radial * (df - 2.0 * group.eta * rp * f) * valid * inv_r
            grad += (dq[:, None, :, None, None] * Dj) * V[..., None]
            # (B, nf, m, n_el, 3) -> bonds of the block, (n_valid, n_el, nf, 3)
            grad = grad.transpose(0, 2, 3, 1, 4)[valid]
            bond_grad[np.ix_(bond[valid], every, group.columns)] = grad
    return values, bond_grad
