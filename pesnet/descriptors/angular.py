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

The matrices are powers b^n of b = 1 + λc (all ≥ 0: no cancellation) times P or P'/r_jk;
A' P / (r_j r_k) is applied as (b^(ζ−1) ∘ P) @ (q_k D_k / r_k), then / r_j, so a value matrix
b^n ∘ P doubles as the derivative matrix of the feature with ζ = n + 1 (ζ = 1, 2, 4 need
b⁰…b⁴). No Python loop runs over atoms or pairs: only over blocks of centres (bounded memory)
and over distinct η values.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pesnet.descriptors.angular_work_plan import (
    TRAINING_BLOCK_ELEMENTS,
    cached_power,
    centre_blocks,
    plan_angular,
)
from pesnet.descriptors.cutoff import (
    cosine_cutoff,
    cutoff_cosine,
    cutoff_from_cosine,
    cutoff_slope,
)


def _combine(coef: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Σ_k coef[f, k] Y[b, k, ...] -> (B, n_features, ...), as one matrix product."""
    B, n_k = Y.shape[:2]
    out = np.matmul(coef, Y.reshape(B, n_k, -1))
    return out.reshape((B, len(coef)) + Y.shape[2:])


class PairBlock(NamedTuple):
    """One block of B centres with their neighbours padded to m slots (bonds sorted by centre).

    ``centres`` (B,); ``valid``, ``bond`` (B, m) slot in use and its bond index (0 in
    padding); ``D`` (B, m, 3) Å and ``r``, ``inv_r`` (B, m) of the bonds (0, 1 Å in padding);
    ``onehot`` (B, m, n_el) neighbour element; ``f``, ``df`` (B, m) f_c(r), f_c'(r);
    ``cos`` (B, m, m) cos θ_jk; G4 only: ``rjk2`` (B, m, m) r_jk² (Å²), ``fjk`` f_c(r_jk) and
    ``dfjk_r`` f_c'(r_jk)/r_jk (with derivatives); G5 only: ``P5`` (B, m, m) 1 for j ≠ k.
    """

    centres: np.ndarray
    valid: np.ndarray
    bond: np.ndarray
    D: np.ndarray
    r: np.ndarray
    inv_r: np.ndarray
    onehot: np.ndarray
    f: np.ndarray
    df: np.ndarray | None
    cos: np.ndarray
    rjk2: np.ndarray | None
    fjk: np.ndarray | None
    dfjk_r: np.ndarray | None
    P5: np.ndarray | None


def pair_block(centres, counts, starts, D, r, element, n_elements: int, cutoff: float,
               has_g4: bool, has_g5: bool, derivatives: bool) -> PairBlock:
    """The :class:`PairBlock` of ``centres`` (``counts``/``starts``: their bonds)."""
    n = counts[centres]
    m = int(n.max())
    slot = np.arange(m)
    valid = slot < n[:, None]                                            # (B, m)
    bond = np.where(valid, starts[centres][:, None] + slot, 0)
    Dp = np.where(valid[..., None], D[bond], 0.0)                        # (B, m, 3)
    rp = np.where(valid, r[bond], 1.0)
    onehot = (element[bond][..., None] == np.arange(n_elements)) & valid[..., None]
    f, df = cosine_cutoff(rp, cutoff, derivative=derivatives)
    f *= valid
    inv_r = 1.0 / rp
    gram = np.matmul(Dp, Dp.transpose(0, 2, 1))                          # D_j·D_k (B, m, m)
    cos = gram * (inv_r[:, :, None] * inv_r[:, None, :])                 # cos θ_jk
    np.clip(cos, -1.0, 1.0, out=cos)
    eye = np.eye(m, dtype=bool)
    pair_mask = valid[:, :, None] & valid[:, None, :]
    pair_mask &= ~eye
    rjk2 = fjk = dfjk_r = P5 = None
    if has_g4:
        r2 = rp * rp
        rjk2 = r2[:, :, None] + r2[:, None, :]                          # r_jk² = r_j² + r_k²
        gram *= 2.0
        rjk2 -= gram                                                     #        − 2 D_j·D_k
        np.maximum(rjk2, 0.0, out=rjk2)
        rjk = np.sqrt(rjk2)
        mask4 = pair_mask & (rjk < cutoff)
        # f_c(r_jk) and sin x from cos(π r_jk / r_c), evaluated inside the cutoff only
        # (outside, masked out here)
        fjk, dfjk_r = cutoff_from_cosine(cutoff_cosine(rjk, cutoff, where=mask4), derivatives)
        fjk *= mask4
        if derivatives:
            dfjk_r *= mask4
            dfjk_r *= cutoff_slope(cutoff)                               # f_c'(r_jk)
            rjk += eye  # only ever divided by off the diagonal, where it is > 0
            dfjk_r /= rjk                                                # f_c'(r_jk) / r_jk
    if has_g5:
        P5 = pair_mask.astype(float)
    return PairBlock(centres, valid, bond, Dp, rp, inv_r, onehot, f, df, cos, rjk2, fjk,
                     dfjk_r, P5)


def group_matrices(group, block: PairBlock, derivatives: bool, cache: dict) -> np.ndarray:
    """X (B, n_keys, m, m): the group's matrices A_key(c) ∘ P then A_key(c) ∘ P'/r_jk, with
    P = exp(−η r_jk²) f_c(r_jk) for G4 (1 for G5) and A_key the powers (1 + λc)^n."""
    B, m = block.valid.shape
    g4_group = group.kind == "g4"
    keys = [("P", key) for key in group.p_keys] + [("dP", key) for key in group.dp_keys]
    X = np.empty((B, len(keys), m, m))
    # A matrix whose factor is b⁰ = 1 is computed straight into its slot of X.
    home = {name: X[:, row] for row, (name, key) in enumerate(keys) if key == ("one",)}
    if g4_group:
        E = block.rjk2 * -group.eta
        np.exp(E, out=E)                                                 # exp(−η r_jk²)
        P = np.multiply(E, block.fjk, out=home.get("P"))
        dP_r = None
        if derivatives:
            dP_r = np.multiply(block.fjk, -2.0 * group.eta, out=home.get("dP"))
            dP_r += block.dfjk_r
            dP_r *= E                                                    # P'(r_jk) / r_jk
    else:
        P, dP_r = block.P5, None
    matrices = {"P": P, "dP": dP_r}
    for row, (name, key) in enumerate(keys):
        factor = cached_power(key, block.cos, cache)
        if factor is not None:
            np.multiply(factor, matrices[name], out=X[:, row])
        elif not g4_group:
            np.copyto(X[:, row], matrices[name])
    return X


def group_terms(group, block: PairBlock, X: np.ndarray, n_elements: int, pair_weight,
                derivatives: bool):
    """Values (B, s, t, nf) and, with ``derivatives``, bond gradients (n_valid, t, nf, 3) of
    one group's features on one block (the equations in the module doc)."""
    B, m = block.valid.shape
    n_rhs = 4 if derivatives else 1
    n_p = len(group.p_keys)
    radial = np.exp(-group.eta * block.r * block.r)
    q = radial * block.f                                                 # q = exp(−η r²) f_c
    # Right-hand sides per neighbour element t: q_k, q_k D_k / r_k (for the b^n ∘ P
    # matrices: 1/(r_j r_k) of A' is applied as 1/r_k here and 1/r_j below), q_k D_k.
    qe = q[..., None] * block.onehot                                     # (B, m, n_el)
    Q = np.empty((B, m, n_elements, n_rhs))
    Q[..., 0] = qe
    if derivatives:
        _fill_components(Q, qe, block.D * block.inv_r[..., None])
    Y = np.matmul(X[:, :n_p].reshape(B, -1, m), Q.reshape(B, m, -1))
    Y = Y.reshape(B, n_p, m, n_elements, n_rhs)
    V = _combine(group.value_coef, Y[..., 0])                  # V_t(j) (B, nf, m, n_el)
    # G^{st} = w_st Σ_j q_j [el_j = s] V_t(j) as one batched product -> (B, s, t, f)
    nf = len(group.columns)
    values = np.matmul(qe.transpose(0, 2, 1),
                       V.transpose(0, 2, 1, 3).reshape(B, m, nf * n_elements))
    values = values.reshape(B, n_elements, nf, n_elements)
    values = values.transpose(0, 1, 3, 2) * pair_weight
    if not derivatives:
        return values, None
    grad = _group_gradients(group, block, X[:, n_p:], Y, Q, qe, q, radial, V)
    # (B, nf, 3, m, n_el) -> bonds of the block, (n_valid, n_el, nf, 3)
    return values, grad.transpose(0, 3, 4, 1, 2)[block.valid]


def _fill_components(Q: np.ndarray, qe: np.ndarray, vectors: np.ndarray) -> None:
    """Q[..., 1 + x] = qe · vectors[..., x] for x, y, z: ``Q`` (B, m, n_el, 4), ``qe``
    (B, m, n_el), ``vectors`` (B, m, 3); one long elementwise product per component."""
    for x in range(3):
        np.multiply(qe, vectors[:, :, None, x], out=Q[..., 1 + x])


def _by_component(Y: np.ndarray) -> np.ndarray:
    """Columns 1..3 (x, y, z) of the last axis of ``Y`` (B, k, m, n_el, 4) moved in front of
    the neighbour axis: (B, k, 3, m, n_el), contiguous."""
    return np.ascontiguousarray(np.moveaxis(Y[..., 1:], -1, 2))


def _group_gradients(group, block: PairBlock, X_dp, Y, Q, qe, q, radial, V) -> np.ndarray:
    """∂G/∂D_j = q_j [T1 − D_j (D_j·T1)/r_j² + D_j T3 − T4] + q'_j (D_j/r_j) V_t(j), as
    (B, nf, 3, m, n_el): the Cartesian component ahead of the neighbours, so that every
    elementwise step runs over long rows (see :func:`group_terms` for the other arrays)."""
    B, m = block.valid.shape
    n_elements = Q.shape[2]
    inv_r = block.inv_r
    Dj = np.ascontiguousarray(block.D.transpose(0, 2, 1))[:, None, :, :, None]   # (B,1,3,m,1)
    T1 = _combine(group.slope_coef, _by_component(Y))                    # (B, nf, 3, m, n_el)
    T1 *= inv_r[:, None, None, :, None]
    DT = Dj * T1
    dot = DT[:, :, 0] + DT[:, :, 1]                                      # D_j·T1, summed
    dot += DT[:, :, 2]                                                   # x, y, z in order
    dot *= (inv_r * inv_r)[:, None, :, None]
    grad = T1 - Dj * dot[:, :, None]
    if group.kind == "g4":
        _fill_components(Q, qe, block.D)
        Z = np.matmul(X_dp.reshape(B, -1, m), Q.reshape(B, m, -1))
        Z = Z.reshape(B, -1, m, n_elements, 4)
        T3 = _combine(group.dp_coef, Z[..., 0])                          # (B, nf, m, n_el)
        T4 = _combine(group.dp_coef, _by_component(Z))                   # (B, nf, 3, m, n_el)
        grad += Dj * T3[:, :, None] - T4
    grad *= q[:, None, None, :, None]
    dq = radial * (block.df - 2.0 * group.eta * block.r * block.f) * block.valid * inv_r
    grad += (dq[:, None, None, :, None] * Dj) * V[:, :, None]           # q'_j / r_j D_j V
    return grad


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

    ``plan``: :func:`plan_angular` of ``g4``, ``g5`` (with derivatives) if the caller keeps it.
    """
    g4 = np.asarray(g4, dtype=float).reshape(-1, 3)
    g5 = np.asarray(g5, dtype=float).reshape(-1, 3)
    n_angular = len(g4) + len(g5)
    values = np.zeros((n_atoms, n_elements, n_elements, n_angular))
    bond_grad = np.zeros((len(r), n_elements, n_angular, 3)) if derivatives else None
    if n_angular == 0 or len(r) == 0:
        return values, bond_grad

    groups = plan_angular(g4, g5, derivatives) if plan is None else plan
    n_stack = max(len(g.p_keys) + len(g.dp_keys) for g in groups)
    counts = np.bincount(centre, minlength=n_atoms)
    starts = np.concatenate([[0], np.cumsum(counts)])
    pair_weight = np.where(np.eye(n_elements, dtype=bool), 0.5, 1.0)[..., None]   # w_st
    every = np.arange(n_elements)
    for centres in centre_blocks(counts, n_stack, TRAINING_BLOCK_ELEMENTS, equal_sizes=False):
        block = pair_block(centres, counts, starts, D, r, element, n_elements, cutoff,
                           len(g4) > 0, len(g5) > 0, derivatives)
        bonds = block.bond[block.valid]
        cache: dict = {}
        for group in groups:
            X = group_matrices(group, block, derivatives, cache)
            block_values, grad = group_terms(group, block, X, n_elements, pair_weight,
                                             derivatives)
            if isinstance(group.span, slice):
                values[centres, :, :, group.span] = block_values
            else:
                values[np.ix_(centres, every, every, group.span)] = block_values
            if not derivatives:
                continue
            if isinstance(group.span, slice):
                bond_grad[bonds, :, group.span] = grad
            else:
                bond_grad[np.ix_(bonds, every, group.span)] = grad
    return values, bond_grad
