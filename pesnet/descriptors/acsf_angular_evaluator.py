"""The angular (G4/G5) terms of the prediction-time ACSF evaluator: values and tape of a
forward pass, and their share of the vector–Jacobian product.

:class:`AngularEvaluator` is the angular half of
:class:`~pesnet.descriptors.acsf_evaluator.ACSFEvaluator` (whose module doc gives the
algorithm and the equations). Per block of centres (neighbours padded to m slots):

* :meth:`AngularEvaluator.block_geometry`: unit bond vectors u, cos θ_jk = u_j·u_k,
  r_jk² = r_j² + r_k² − 2 D_j·D_k, the cutoffs f_c(r), f_c(r_jk), f_c'(r_jk)/r_jk, the
  right-hand sides [1, u_k] and [1, D_k] per element of k;
* :meth:`AngularEvaluator.supergroup_matrices`: X_key = q_j q_k A_key(c) ∘ P and
  q_j q_k A_key(c) ∘ P'/r_jk, for every η of a supergroup at once;
* :meth:`AngularEvaluator.contract`: Y = X [1, u], Z = X' [1, D] (kept on the tape) and the
  values G^{st} = w_st Σ_key coef Σ_j [el_j = s] Y[key, j, t, 0];
* :meth:`AngularEvaluator.backward`: ∂E_κ/∂D_j = T1 − T4 + u_j [r_j (T3 + V) − u_j·T1],
  then forces and virials from the bond gradients.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pesnet.descriptors.angular_work_plan import (
    PREDICTION_BLOCK_ELEMENTS,
    Keys,
    centre_blocks,
    exact_power,
    supergroups,
    term_plan,
)
from pesnet.descriptors.bonds import PairList
from pesnet.descriptors.cutoff import cutoff_cosine, cutoff_from_cosine, cutoff_slope
from pesnet.descriptors.evaluation_tape import Block, Tape, Workspace


class BlockGeometry(NamedTuple):
    """What every supergroup of one block of B centres (m neighbour slots) shares.

    ``D`` (B, m, 3), ``r``, ``inv_r``, ``f`` (B, m) bonds (D = 0, r = 2 r_c in padding) and
    f_c(r); ``u`` (B, m, 3) unit vectors; ``cos`` (B, m, m); G4: ``rjk2``, ``fjk``,
    ``dfjk_r`` (B, m, m) r_jk², f_c(r_jk), f_c'(r_jk)/r_jk; G5: ``pair_mask`` (B, m, m)
    j ≠ k both valid; ``oh`` (B, m, n_el) neighbour element; ``rhs``/``rhs_d``
    (B, m, n_el, 4) [1, u_k]/[1, D_k] per element; ``df_f`` (B, m) f_c'/f_c.
    """

    D: np.ndarray
    r: np.ndarray
    inv_r: np.ndarray
    f: np.ndarray
    u: np.ndarray
    cos: np.ndarray
    rjk2: np.ndarray | None
    fjk: np.ndarray | None
    dfjk_r: np.ndarray | None
    pair_mask: np.ndarray | None
    oh: np.ndarray
    rhs: np.ndarray
    rhs_d: np.ndarray | None
    df_f: np.ndarray | None


class AngularEvaluator:
    """The angular terms of :class:`~pesnet.descriptors.acsf_evaluator.ACSFEvaluator` for an
    :class:`~pesnet.descriptors.ACSF` ``acsf`` (see the module doc)."""

    def __init__(self, acsf):
        self.acsf = acsf
        self.n_elements = n_el = len(acsf.elements)
        self.plan = term_plan(acsf.g4, acsf.g5, derivatives=True)
        # value, slope and P' coefficients of every angular feature on the keys of all
        # groups concatenated: (n_angular, n_keys + n_keys + n_dp_keys)
        n_keys = sum(len(g.p_keys) for g in self.plan)
        n_dp = sum(len(g.dp_keys) for g in self.plan)
        coef = np.zeros((acsf.n_angular, 2 * n_keys + n_dp))
        p0 = d0 = 0
        for g in self.plan:
            n_p, n_d = len(g.p_keys), len(g.dp_keys)
            coef[g.columns, p0 : p0 + n_p] = g.value_coef
            coef[g.columns, n_keys + p0 : n_keys + p0 + n_p] = g.slope_coef
            coef[g.columns, 2 * n_keys + d0 : 2 * n_keys + d0 + n_d] = g.dp_coef
            p0 += n_p
            d0 += n_d
        self.coef, self.n_keys, self.n_dp_keys = coef, n_keys, n_dp
        self.supergroups = supergroups(self.plan)
        # G4/G5 of an element pair s = t count each (j, k) twice in the pair matrices
        self.pair_weight = np.where(np.eye(n_el, dtype=bool), 0.5, 1.0)
        # scratch reused between calls: a tape is valid until the next forward pass
        self.work = Workspace()

    def structure(self, pairs: PairList, angular: np.ndarray) -> list:
        """Blocks of centres of the angular bonds (sorted by centre), kept on the pair list
        while the same bonds are within the angular cutoff: per block (centres, valid (B, m),
        bond (B, m) index into the angular bonds (0 in padding), onehot (B, n_el, m) of the
        neighbour's element)."""
        cached = pairs.memo.get("angular_structure")
        if cached is not None and np.array_equal(cached[0], angular):
            return cached[1]
        n_el = self.n_elements
        centre = pairs.i[angular]
        element = pairs.element[pairs.j[angular]]
        counts = np.bincount(centre, minlength=pairs.n_atoms)
        starts = np.cumsum(counts) - counts
        every = np.arange(n_el)
        n_stack = max(len(sg.etas) * (sg.n_p + sg.n_dp) for sg in self.supergroups)
        structure = []
        for centres in centre_blocks(counts, n_stack, PREDICTION_BLOCK_ELEMENTS):
            n = counts[centres]
            m = int(n[0])
            slot = np.arange(m)
            valid = slot < n[:, None]                                        # (B, m)
            bond = starts[centres][:, None] + slot
            bond *= valid
            onehot = (element[bond][:, None, :] == every[None, :, None])     # (B, n_el, m)
            onehot &= valid[:, None, :]
            structure.append((centres, valid, bond, onehot))
        pairs.memo["angular_structure"] = (angular.copy(), structure)
        return structure

    # -- forward --------------------------------------------------------------------------
    def forward(self, structure, D, r, values, derivatives):
        """Angular values into ``values`` (n_atoms, n_el, n_el, n_angular) from the angular
        bonds' vectors ``D`` and lengths ``r`` laid out by ``structure``
        (:meth:`structure`); with ``derivatives`` the :class:`Block` s of the tape.

        Every matrix carries q_j q_k (rows and columns scaled), so the right-hand sides
        [1, u_k] and [1, D_k] per element of k serve every η: the groups of a
        :attr:`supergroups` entry (same kind and keys, different η) are computed together
        along a leading η axis, in one product per block.
        """
        n_el = self.n_elements
        n_keys, n_dp_keys = self.n_keys * n_el, self.n_dp_keys * n_el
        blocks = []
        for index, (centres, valid, bond, onehot) in enumerate(structure):
            B, m = valid.shape
            geo = self.block_geometry(valid, bond, onehot, D, r, derivatives)
            tape = None
            if derivatives:  # the tape's arrays: one set per block, kept until the next pass
                work = self.work
                tape = (work.get(f"Y{index}", (B, n_keys, m, 4)),
                        work.get(f"Yv{index}", (B, n_keys, m)),
                        work.get(f"Z{index}", (B, n_dp_keys, m, 4)) if n_dp_keys else None)
            for sg in self.supergroups:
                storage = self.supergroup_matrices(sg, geo, valid, derivatives)
                self.contract(sg, geo, storage, valid, centres, values, tape)
            if derivatives:
                bonds = np.where(valid, bond, len(r))
                blocks.append(Block(centres, bonds, geo.u.transpose(0, 2, 1)[:, :, None, :],
                                    geo.r[:, None, :], onehot, *tape))
        return blocks if derivatives else None

    def block_geometry(self, valid, bond, onehot, D, r, derivatives) -> BlockGeometry:
        """The :class:`BlockGeometry` of one block (``valid``, ``bond``, ``onehot`` from
        :meth:`structure`)."""
        acsf, n_el, work = self.acsf, self.n_elements, self.work
        cutoff = acsf.angular_cutoff
        B, m = valid.shape
        Dp = D[bond]
        Dp *= valid[..., None]
        rp = r[bond]
        rp[~valid] = 2.0 * cutoff  # padding: beyond the cutoff from everything
        f, sin_r = cutoff_from_cosine(cutoff_cosine(rp, cutoff), derivatives)
        f *= valid
        inv_r = 1.0 / rp
        u = Dp * inv_r[..., None]                                             # (B, m, 3)
        cos = np.matmul(u, u.transpose(0, 2, 1), out=work.get("cos", (B, m, m)))
        np.clip(cos, -1.0, 1.0, out=cos)                                      # cos θ_jk
        rjk2 = fjk = dfjk_r = pair_mask = None
        if len(acsf.g4):
            rjk2, fjk, dfjk_r = self.pair_cutoffs(Dp, rp, derivatives)
        if len(acsf.g5):
            slot = np.arange(m)
            pair_mask = valid[:, :, None] & valid[:, None, :]
            pair_mask[:, slot, slot] = False
        # right-hand sides per element t of k: [1, u_k] for the P matrices and [1, D_k]
        # for the P' ones (q_k is in the matrices), (B, m, n_el, 4)
        oh = onehot.transpose(0, 2, 1).astype(float)                          # (B, m, n_el)
        rhs = np.empty((B, m, n_el, 4))
        rhs[..., 0] = oh
        rhs[..., 1:] = oh[..., None] * u[:, :, None, :]
        rhs_d = df_f = None
        if derivatives:
            rhs_d = np.empty((B, m, n_el, 4))
            rhs_d[..., 0] = oh
            rhs_d[..., 1:] = oh[..., None] * Dp[:, :, None, :]
            df = sin_r
            df *= cutoff_slope(cutoff) * valid                                # f_c'(r)
            # q'/q = (f'/f − 2η r) (bonds with f = 0 are not angular bonds; 0 in padding)
            df_f = np.divide(df, f, out=np.zeros_like(f), where=valid)
        return BlockGeometry(Dp, rp, inv_r, f, u, cos, rjk2, fjk, dfjk_r, pair_mask, oh, rhs,
                             rhs_d, df_f)

    def pair_cutoffs(self, Dp, rp, derivatives):
        """(r_jk², f_c(r_jk), f_c'(r_jk)/r_jk or None), each (B, m, m), of one block."""
        cutoff, work = self.acsf.angular_cutoff, self.work
        B, m = rp.shape
        mm, slot = (B, m, m), np.arange(m)
        # r_jk² = r_j² + r_k² − 2 D_j·D_k (beyond the cutoff for padding; and on the
        # diagonal, which is no pair, set so)
        rjk2 = np.matmul(Dp, Dp.transpose(0, 2, 1), out=work.get("rjk2", mm))
        rjk2 *= -2.0
        r2 = rp * rp
        rjk2 += r2[:, :, None]
        rjk2 += r2[:, None, :]
        rjk2[:, slot, slot] = 4.0 * cutoff * cutoff
        rjk = np.sqrt(rjk2, out=work.get("rjk", mm))
        mask4 = np.less(rjk, cutoff, out=work.get("mask4", mm, bool))
        # cos(π r_jk / r_c) inside the cutoff, −1 (so f_c = f_c' = 0) elsewhere
        cos_x = work.get("cos_x", mm)
        cos_x.fill(-1.0)
        cutoff_cosine(rjk, cutoff, out=cos_x, where=mask4, phase=work.get("x", mm))
        fjk, dfjk_r = cutoff_from_cosine(cos_x, derivatives, out=work.get("fjk", mm),
                                         sine_out=work.get("dfjk_r", mm))
        if derivatives:
            # f_c'(r_jk)/r_jk = sin x / (r_jk · (−2 r_c/π))
            rjk *= -2.0 * cutoff / np.pi
            dfjk_r /= rjk
        return rjk2, fjk, dfjk_r

    def pair_gaussians(self, sg, rjk2, qq) -> np.ndarray:
        """q_j q_k exp(−η r_jk²) for every η of supergroup ``sg``, (B, G, m, m); an η that is
        2ⁿ times an earlier one by n squarings instead of an exp (a few ulp apart)."""
        B, G, m = qq.shape[0], len(sg.etas), qq.shape[2]
        E = self.work.get("E", (B, G, m, m))
        for g in range(G):
            if sg.power_of[g] is None:
                np.multiply(rjk2, -sg.etas[g], out=E[:, g])
                np.exp(E[:, g], out=E[:, g])
            else:
                base, squarings = sg.power_of[g]
                np.multiply(E[:, base], E[:, base], out=E[:, g])
                for _ in range(squarings - 1):
                    E[:, g] *= E[:, g]
        E *= qq
        return E

    def supergroup_matrices(self, sg, geo: BlockGeometry, valid, derivatives) -> np.ndarray:
        """The matrices of supergroup ``sg`` on one block, (B, G·(n_p + n_dp), m, m): for
        each η, q_j q_k A_key(c) ∘ P (n_p keys), then q_j q_k A_key(c) ∘ P'/r_jk (n_dp keys,
        G4 with derivatives), with q = exp(−η r²) f_c(r), P = exp(−η r_jk²) f_c(r_jk) for G4
        and [j ≠ k] for G5; A_key the monomials c^n or the powers (1 + λc)^n."""
        work, cos = self.work, geo.cos
        B, m = valid.shape
        G, n_p, n_dp = len(sg.etas), sg.n_p, sg.n_dp
        eta = sg.etas[None, :, None]                                         # (1, G, 1)
        q = np.exp(-eta * (geo.r * geo.r)[:, None, :])
        q *= geo.f[:, None, :]                                               # (B, G, m)
        # X[:, :, key] for key < n_p: the P matrices, then the P' ones; stored as
        # (B, [G·n_p | G·n_dp], m, m) so that each part is one contiguous product
        storage = work.get("X", (B, G * (n_p + n_dp), m, m))
        X = Keys(storage[:, : G * n_p].reshape(B, G, n_p, m, m),
                 storage[:, G * n_p :].reshape(B, G, n_dp, m, m), n_p)
        if not derivatives:
            n_dp = 0
        qq = np.multiply(q[:, :, :, None], q[:, :, None, :],
                         out=work.get("qq", (B, G, m, m)))                   # q_j q_k
        home, dP_r = sg.home, None
        if sg.kind == "g4":
            E = self.pair_gaussians(sg, geo.rjk2, qq)
            P = np.multiply(E, geo.fjk[:, None], out=work.get("P", (B, G, m, m))
                            if home is None else X[:, :, home])
            if derivatives:  # q_j q_k P'(r_jk)/r_jk
                dP_r = np.multiply(geo.fjk[:, None], (-2.0 * sg.etas)[None, :, None, None],
                                   out=X[:, :, n_p] if sg.monomial
                                   else work.get("dP", (B, G, m, m)))
                dP_r += geo.dfjk_r[:, None]
                dP_r *= E
        else:
            P = np.multiply(qq, geo.pair_mask[:, None])
        if sg.monomial:  # X_n = c ∘ X_{n−1}
            if sg.kind != "g4":
                np.copyto(X[:, :, 0], P)
            for row in range(1, n_p):
                np.multiply(cos[:, None], X[:, :, row - 1], out=X[:, :, row])
            for row in range(n_p + 1, n_p + n_dp):
                np.multiply(cos[:, None], X[:, :, row - 1], out=X[:, :, row])
            return storage
        powers: dict = {}
        for row, key in enumerate(sg.p_keys):
            factor = exact_power(key, cos, powers)
            if factor is not None:
                np.multiply(factor[:, None], P, out=X[:, :, row])
            elif sg.kind != "g4" or row != home:
                np.copyto(X[:, :, row], P)
        for row, key in enumerate(sg.dp_keys[:n_dp]):
            np.multiply(exact_power(key, cos, powers)[:, None], dP_r, out=X[:, :, n_p + row])
        return storage

    def contract(self, sg, geo: BlockGeometry, storage, valid, centres, values, tape) -> None:
        """Y = X [1, u] (and Z = X' [1, D]) of supergroup ``sg`` on one block; its values into
        ``values``; with a ``tape`` (Y, Yv, Z of the block), Y, Z and the V term into it."""
        n_el, every = self.n_elements, np.arange(self.n_elements)
        B, m = valid.shape
        G, n_p, n_dp = len(sg.etas), sg.n_p, sg.n_dp
        keys = slice(sg.p0 * n_el, (sg.p0 + G * n_p) * n_el)
        rows = storage[:, : G * n_p].reshape(B, G * n_p * m, m)
        if tape is not None and n_el == 1:   # straight into the tape
            Y = np.matmul(rows, geo.rhs.reshape(B, m, 4),
                          out=tape[0][:, keys].reshape(B, G * n_p * m, 4))
        else:
            Y = np.matmul(rows, geo.rhs.reshape(B, m, n_el * 4))
        Y = Y.reshape(B, G, n_p, m, n_el, 4)                      # q_j Y[g, key, j, t, r]
        # values: G_f^{st} = w_st Σ_key coef[f, key] Σ_j [el_j = s] q_j Y[key, j, t, 0]
        if n_el == 1:
            S = Y[..., 0, 0].sum(axis=3)[:, :, None, None]                  # (B, G, 1, 1, n_p)
        else:
            S = np.matmul(geo.oh.transpose(0, 2, 1)[:, None, None], Y[..., 0])  # (B,G,n_p,s,t)
            S = S.transpose(0, 1, 3, 4, 2)                                   # (B, G, s, t, n_p)
        for g, group in enumerate(sg.groups):
            Gv = np.matmul(S[:, g], group.value_coef.T)                     # (B, s, t, nf)
            Gv *= self.pair_weight[..., None]
            if isinstance(group.span, slice):
                values[centres, :, :, group.span] = Gv
            else:
                values[np.ix_(centres, every, every, group.span)] = Gv
        if tape is None:
            return
        Yall, Yv, Zall = tape
        if n_el > 1:
            Yall[:, keys] = Y.transpose(0, 1, 2, 4, 3, 5).reshape(B, G * n_p * n_el, m, 4)
        # the V term: (q'_j/r_j) Σ_k X_jk q_k [el_k = t] = (q'/q)_j / r_j · Y[.., 0]
        ratio = geo.df_f[:, None, :] - 2.0 * sg.etas[None, :, None] * geo.r[:, None, :]
        ratio *= geo.inv_r[:, None, :]
        ratio *= valid[:, None, :]                                           # (B, G, m)
        np.multiply(Y[..., 0].transpose(0, 1, 2, 4, 3), ratio[:, :, None, None, :],
                    out=Yv[:, keys].reshape(B, G, n_p, n_el, m))
        if sg.kind == "g4":
            dkeys = slice(sg.d0 * n_el, (sg.d0 + G * n_dp) * n_el)
            dp_rows = storage[:, G * n_p :].reshape(B, G * n_dp * m, m)
            if n_el == 1:
                np.matmul(dp_rows, geo.rhs_d.reshape(B, m, 4),
                          out=Zall[:, dkeys].reshape(B, G * n_dp * m, 4))
            else:
                Z = np.matmul(dp_rows, geo.rhs_d.reshape(B, m, n_el * 4))
                Zall[:, dkeys] = Z.reshape(B, G, n_dp, m, n_el, 4).transpose(
                    0, 1, 2, 4, 3, 5).reshape(B, G * n_dp * n_el, m, 4)

    # -- backward -------------------------------------------------------------------------
    def backward(self, tape: Tape, weights: np.ndarray, forces, virials) -> None:
        """Add the angular terms' forces (K, n_atoms, 3) and virials (K, n_configs, 3, 3)
        into the arrays given (either may be ``None``)."""
        K = weights.shape[0]
        n_ab = len(tape.centre)
        w_ang = weights[:, :, self.acsf.angular_columns]     # (K, n_atoms, s, t, n_angular)
        # bond gradients G[(x, κ), b] = ∂E_κ/∂(D_b)_x of the angular bonds (+1 spare column)
        G = self.work.get("G", (3 * K, n_ab + 1))
        G.fill(0.0)
        base = np.arange(3 * K)[:, None] * (n_ab + 1)                         # (3K, 1)
        flat = G.reshape(-1)
        for block in tape.blocks:
            grad = self.block_gradients(block, w_ang)                         # (B, 3, K, m)
            index = base.reshape(1, 3, K, 1) + block.bonds[:, None, None, :]
            flat[index] += grad
        if forces is not None:
            n = tape.n_atoms
            # F_i += Σ_j ∂E/∂D_ij: angular bonds are sorted by centre
            starts = np.flatnonzero(np.diff(tape.centre, prepend=-1))
            if len(starts):
                per_centre = np.add.reduceat(G[:, :n_ab], starts, axis=1)    # (3K, centres)
                forces[:, tape.centre[starts]] += per_centre.reshape(3, K, -1).transpose(1, 2, 0)
            # F_j −= ∂E/∂D_ij (the spare column goes to a spare bin)
            keys = np.empty((3 * K, n_ab + 1), dtype=np.int64)
            keys[:, :n_ab] = np.arange(3 * K)[:, None] * n + tape.neighbour
            keys[:, n_ab] = 3 * K * n
            total = np.bincount(keys.reshape(-1), flat, 3 * K * n + 1)[:-1]
            forces -= total.reshape(3, K, n).transpose(1, 2, 0)
        G = G[:, :n_ab]
        if virials is not None:
            cuts = np.searchsorted(tape.centre, tape.config_atoms)
            for k, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
                virials[:, k] += (G[:, a:b] @ tape.D[a:b]).reshape(3, K, 3).transpose(1, 0, 2)

    def block_gradients(self, block: Block, w_ang: np.ndarray) -> np.ndarray:
        """∂E_κ/∂D_j (B, 3, K, m) of one block's bonds from the angular weights ``w_ang``
        (K, n_atoms, s, t, n_angular): the tape's contractions recombined with per-centre
        coefficients C_κ,key = Σ_f w_κ,f coef[f, key] (value, slope and P' coefficients)."""
        K, n_el = w_ang.shape[0], self.n_elements
        n_keys, n_dp = self.n_keys, self.n_dp_keys
        B, m = block.bonds.shape
        wb = w_ang[:, block.centres].transpose(1, 0, 2, 3, 4)                 # (B, K, s, t, f)
        C = wb @ self.coef                                         # (B, K, s, t, 2n_keys+n_dp)
        C = C.transpose(0, 1, 2, 4, 3).reshape(B, K * n_el, -1, n_el)         # (B, Ks, keys, t)
        Cv = C[:, :, :n_keys].reshape(B, K * n_el, n_keys * n_el)
        Cs = C[:, :, n_keys : 2 * n_keys].reshape(B, 1, K * n_el, n_keys * n_el)
        R = np.matmul(Cs.reshape(B, K * n_el, -1), block.Y.reshape(B, -1, m * 4))
        R = R.reshape(B, K * n_el, m, 4).transpose(0, 3, 1, 2)                # (B, 4, Ks, m)
        T1 = np.divide(R[:, 1:], block.r[:, None])                            # (B, 3, Ks, m)
        V = np.matmul(Cv, block.Yv)                                           # (B, Ks, m)
        T34 = None
        if block.Z is not None:
            Cd = C[:, :, 2 * n_keys :].reshape(B, K * n_el, n_dp * n_el)
            T34 = np.matmul(Cd, block.Z.reshape(B, -1, m * 4))
            T34 = np.ascontiguousarray(
                T34.reshape(B, K * n_el, m, 4).transpose(0, 3, 1, 2))          # (B, 4, Ks, m)
        if n_el > 1:  # pick the row of each neighbour's own element s = el_j
            pick = block.onehot[:, None, None]                                # (B, 1, 1, s, m)
            T1 = (T1.reshape(B, 3, K, n_el, m) * pick).sum(axis=3)
            V = (V.reshape(B, K, n_el, m) * pick[:, 0]).sum(axis=2)
            if T34 is not None:
                T34 = (T34.reshape(B, 4, K, n_el, m) * pick).sum(axis=3)
        # ∂E/∂D_j = T1 − T4 + u [r (T3 + V) − u·T1],  T1 = (Σ q C_slope Y)/r
        coeff = V
        if T34 is not None:
            coeff += T34[:, 0]
        coeff *= block.r
        for x in range(3):
            coeff -= T1[:, x] * block.u[:, x]
        grad = T1
        if T34 is not None:
            grad -= T34[:, 1:]
        grad += block.u * coeff[:, None]                                      # (B, 3, K, m)
        return grad
