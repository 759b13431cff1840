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

from pesnet.descriptors.cutoff import cosine_cutoff

#: Elements of the largest (B, n_matrices, m, m) work array of one block of centres.
BLOCK_ELEMENTS = 1 << 18


class Group(NamedTuple):
    """Features sharing (kind, η) and the matrices they are built from.

    Matrix keys name powers of b_λ = 1 + λ cos θ: ("b", λ, n), with ("one",) for b⁰. The
    ``p_keys`` matrices are b^n ∘ P (values use n = ζ, derivatives n = ζ − 1), the ``dp_keys``
    ones b^ζ ∘ P'/r_jk (G4 only).
    """

    kind: str
    eta: float
    columns: list           # output columns (index among the angular features)
    p_keys: list
    dp_keys: list
    value_coef: np.ndarray  # (n_features, len(p_keys)): A_f = K b^ζ
    slope_coef: np.ndarray  # (n_features, len(p_keys)): A'_f = K ζ λ b^(ζ−1)
    dp_coef: np.ndarray     # (n_features, len(dp_keys)): A_f again, on the P' matrices
    span: object            # ``columns`` as a slice when contiguous (cheaper indexing)


def _power_key(lam: float, n: float):
    return ("one",) if n == 0 else ("b", float(lam), float(n))


def plan_angular(g4: np.ndarray, g5: np.ndarray, derivatives: bool = True) -> list[Group]:
    """Group features by (kind, η) and list the matrices each group needs (the work plan of
    :func:`angular_terms`; depends on the parameters only, so callers may keep it)."""
    params = [("g4", *p) for p in g4] + [("g5", *p) for p in g5]
    by_group: dict[tuple, list] = {}
    for column, (kind, eta, zeta, lam) in enumerate(params):
        by_group.setdefault((kind, eta), []).append((column, zeta, lam))
    groups = []
    for (kind, eta), members in by_group.items():
        value = [_power_key(lam, zeta) for _, zeta, lam in members]
        slope = [_power_key(lam, zeta - 1) for _, zeta, lam in members]
        p_keys = list(dict.fromkeys(value + (slope if derivatives else [])))
        dp_keys = list(dict.fromkeys(value)) if derivatives and kind == "g4" else []
        nf = len(members)
        value_coef, slope_coef = np.zeros((nf, len(p_keys))), np.zeros((nf, len(p_keys)))
        dp_coef = np.zeros((nf, len(dp_keys)))
        for f, (_, zeta, lam) in enumerate(members):
            k = 2.0 ** (1.0 - zeta)
            value_coef[f, p_keys.index(value[f])] = k
            if derivatives:
                slope_coef[f, p_keys.index(slope[f])] = k * zeta * lam
            if dp_keys:
                dp_coef[f, dp_keys.index(value[f])] = k
        columns = [c for c, _, _ in members]
        contiguous = columns == list(range(columns[0], columns[0] + len(columns)))
        span = slice(columns[0], columns[-1] + 1) if contiguous else np.array(columns)
        groups.append(Group(kind, eta, columns, p_keys, dp_keys, value_coef, slope_coef,
                             dp_coef, span))
    return groups


def cached_power(key, cos: np.ndarray, cache: dict):
    """The (B, m, m) matrix (1 + λ cos θ)^n named by ``key``; ``None`` for all ones.

    Integer powers by repeated multiplication of the non-negative base (no cancellation)."""
    if key in cache:
        return cache[key]
    if key[0] == "one":
        value = None
    else:
        _, lam, n = key
        if n == 1:
            value = np.maximum(1.0 + lam * cos, 0.0)
        elif n.is_integer() and n <= 64:
            n = int(n)
            if n % 2:
                value = cached_power(("b", lam, float(n - 1)), cos, cache) * cached_power(
                    ("b", lam, 1.0), cos, cache)
            else:
                half = cached_power(("b", lam, float(n // 2)), cos, cache)
                value = half * half
        else:
            value = cached_power(("b", lam, 1.0), cos, cache) ** n
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
        cache: dict = {}

        for group in groups:
            radial = np.exp(-group.eta * rp * rp)
            q = radial * f                                               # (B, m)
            g4_group = group.kind == "g4"
            keys = [("P", key) for key in group.p_keys] + [("dP", key) for key in group.dp_keys]
            n_p = len(group.p_keys)
            X = np.empty((B, len(keys), m, m))
            # A matrix whose factor is b⁰ = 1 is computed straight into its slot of X.
            home = {name: X[:, row] for row, (name, key) in enumerate(keys) if key == ("one",)}
            if g4_group:
                E = rjk2 * -group.eta
                np.exp(E, out=E)
                P = np.multiply(E, fjk, out=home.get("P"))
                dP_r = None
                if derivatives:
                    dP_r = np.multiply(fjk, -2.0 * group.eta, out=home.get("dP"))
                    dP_r += dfjk_r
                    dP_r *= E                                            # P'(r_jk) / r_jk
            else:
                P, dP_r = P5, None
            matrices = {"P": P, "dP": dP_r}
            for row, (name, key) in enumerate(keys):
                factor = cached_power(key, cos, cache)
                if factor is not None:
                    np.multiply(factor, matrices[name], out=X[:, row])
                elif not g4_group:
                    np.copyto(X[:, row], matrices[name])
            # Right-hand sides per neighbour element t: q_k, q_k D_k / r_k (for the b^n ∘ P
            # matrices: 1/(r_j r_k) of A' is applied as 1/r_k here and 1/r_j below), q_k D_k.
            qe = q[..., None] * onehot                                   # (B, m, n_el)
            Q = np.empty((B, m, n_elements, n_rhs))
            Q[..., 0] = qe
            if derivatives:
                Q[..., 1:] = qe[..., None] * (Dp * inv_r[..., None])[:, :, None, :]
            Y = np.matmul(X[:, :n_p].reshape(B, -1, m), Q.reshape(B, m, -1))
            Y = Y.reshape(B, n_p, m, n_elements, n_rhs)
            V = _combine(group.value_coef, Y[..., 0])                    # (B, nf, m, n_el)
            # Σ_j q_j [el_j = s] V[f, j, t] as one batched product -> (B, s, t, f)
            nf = len(group.columns)
            block_values = np.matmul(qe.transpose(0, 2, 1),
                                     V.transpose(0, 2, 1, 3).reshape(B, m, nf * n_elements))
            block_values = block_values.reshape(B, n_elements, nf, n_elements)
            block_values = block_values.transpose(0, 1, 3, 2) * pair_weight
            if isinstance(group.span, slice):
                values[centres, :, :, group.span] = block_values
            else:
                values[np.ix_(centres, every, every, group.span)] = block_values
            if not derivatives:
                continue
            Dj = Dp[:, None, :, None, :]                                 # (B, 1, m, 1, 3)
            T1 = _combine(group.slope_coef, Y[..., 1:])
            T1 *= inv_r[:, None, :, None, None]
            grad = T1 - Dj * (np.sum(Dj * T1, axis=-1, keepdims=True)
                              * (inv_r * inv_r)[:, None, :, None, None])
            if g4_group:
                Q[..., 1:] = qe[..., None] * Dp[:, :, None, :]
                Z = np.matmul(X[:, n_p:].reshape(B, -1, m), Q.reshape(B, m, -1))
                T34 = _combine(group.dp_coef, Z.reshape(B, -1, m, n_elements, n_rhs))
                grad += Dj * T34[..., :1] - T34[..., 1:]
            grad *= q[:, None, :, None, None]
            dq = radial * (df - 2.0 * group.eta * rp * f) * valid * inv_r
            grad += (dq[:, None, :, None, None] * Dj) * V[..., None]
            # (B, nf, m, n_el, 3) -> bonds of the block, (n_valid, n_el, nf, 3)
            grad = grad.transpose(0, 2, 3, 1, 4)[valid]
            if isinstance(group.span, slice):
                bond_grad[bond[valid], :, group.span] = grad
            else:
                bond_grad[np.ix_(bond[valid], every, group.span)] = grad
    return values, bond_grad
