"""ACSF values and their vector–Jacobian product on a bond list: forces without the Jacobian.

A potential E = Σ_i E_i(G_i) needs the descriptor Jacobian only through one product per
ensemble member κ: with weights w_κ,i = ∂E_κ/∂G_i (N, F), the bond gradients

    ∂E_κ/∂D_b = Σ_f w_κ,i_b,f ∂G_{i_b,f}/∂D_b        (every bond b, D_b = r_j + S·cell − r_i)

give the forces F_a = Σ_{b: i_b = a} ∂E/∂D_b − Σ_{b: j_b = a} ∂E/∂D_b and the virial
∂E/∂ε = Σ_b ∂E/∂D_b ⊗ D_b. :meth:`ACSFEvaluator.forward` computes G and keeps what the product
needs (a :class:`Tape`); :meth:`ACSFEvaluator.backward` forms forces and virials for all K
weight sets at once — never the (n_bonds, F, 3) Jacobian that training stores
(:meth:`ACSF.compute` with derivatives).

**Radial terms** g_k(d) (G1, G2, G3) are laid out padded per (centre, neighbour element) row,
(rows, term, slot): values are sums over slots, ∂E/∂d_b = Σ_k w_(i_b, el_j, k) g_k'(d_b) is one
small matrix product per row, and since every bond inside the cutoff has its reverse in the
list, the radial force on atom a is Σ_{b of a} (∂E/∂d_b + ∂E/∂d_rev(b)) u_b — another product
per row, no scatter.

**Angular terms** (:mod:`pesnet.descriptors.acsf_angular_evaluator`, the evaluator's
:class:`~pesnet.descriptors.acsf_angular_evaluator.AngularEvaluator`) use the block algorithm of
:mod:`pesnet.descriptors.angular` (centres in blocks, neighbours padded to m, (B, m, m) pair
matrices). Per η the matrices are
X_key = q_j q_k (A_key(c) ∘ P) and q_j q_k (A_key(c) ∘ P'/r_jk), with A_key the powers
(1 + λc)^n — or, for integer ζ ≤ :data:`~.angular_work_plan.MONOMIAL_MAX_ZETA`, the monomials
c^n (one product each, chained; see :mod:`pesnet.descriptors.angular_work_plan`). With q folded into
the matrices, the right-hand sides [1, u_k] and [1, D_k] (per element of k) serve every η,
and one matrix product per block gives every key's contraction Y = X [1, u], Z = X' [1, D].
These do not depend on the weights and are kept on the tape; the backward pass recombines
them with per-centre coefficients
C_κ,key = Σ_f w_κ,f coef[f, key] (value, slope and P' coefficients) and applies the chain rule
once, summed over η (it is linear in the recombined sums):

    ∂E_κ/∂D_j = T1 − T4 + u_j [r_j (T3 + V) − u_j·T1],      u_j = D_j / r_j

with T1 = C_slope·Y[1:4] / r_j, (T3, T4) = C_P'·Z, V = C_value·Y[0] (q'_j / q_j) / r_j.

**Exactness.** Bonds enter in the canonical order of :class:`~pesnet.descriptors.bonds.PairList`
and only those inside the cutoffs are used (the layouts are kept while that set is unchanged),
so a fresh list and a Verlet list with a skin give bit-identical values: the ASE calculator's
energies are ``Potential.predict``'s to the last bit. Values agree with :meth:`ACSF.compute`
to round-off: ~1e-15 of a column's scale with exact powers, ≲ 2e-13 with the monomial basis
(whose binomial sums cancel where 1 ± c is small) — DScribe agreement is tested at 1e-10.
"""

from __future__ import annotations

import numpy as np

from pesnet.descriptors.acsf_angular_evaluator import AngularEvaluator
from pesnet.descriptors.bonds import Geometry, PairList, check_distinct_positions
from pesnet.descriptors.cutoff import cutoff_cosine, cutoff_from_cosine, cutoff_slope
from pesnet.descriptors.evaluation_tape import Layout, Tape, Workspace


class ACSFEvaluator:
    """Values of an :class:`~pesnet.descriptors.ACSF` on a :class:`PairList`, and the
    vector–Jacobian product that gives forces and virials (see the module doc)."""

    def __init__(self, acsf):
        self.acsf = acsf
        n_el = self.n_elements = len(acsf.elements)
        self.angular = AngularEvaluator(acsf)
        self.n_radial_columns = n_el * acsf.n_radial
        g2 = np.asarray(acsf.g2, dtype=float).reshape(-1, 2)
        self._eta = g2[:, 0][None, :, None]
        self._rs = g2[:, 1][None, :, None]
        self._kappa = np.asarray(acsf.g3, dtype=float).reshape(1, -1, 1)
        # scratch reused between calls: a tape is valid until the next forward pass
        self._work = Workspace()

    # -- forward --------------------------------------------------------------------------
    def forward(self, pairs: PairList, geometry: Geometry, derivatives: bool = True,
                where=None):
        """ACSF values (n_atoms, F) and, if ``derivatives``, the :class:`Tape` for
        :meth:`backward` (else ``None``). ``where`` = (file, index) names the configuration
        in errors."""
        acsf = self.acsf
        D, d = geometry
        check_distinct_positions(pairs, d, where)
        n_atoms, n_el = pairs.n_atoms, self.n_elements
        values = np.empty((n_atoms, acsf.n_features))
        inside = np.flatnonzero(d < acsf.cutoff)
        layout = self._radial_layout(pairs, inside)
        n_rows, width, slot = layout.n_rows, layout.width, layout.slot
        n_slots = n_rows * width
        work = self._work
        padded = work.get("padded", n_slots)
        padded.fill(acsf.cutoff)
        d_in = d[inside]
        padded[slot] = d_in
        radial, d_radial = self._radial(padded.reshape(n_rows, 1, width), derivatives)
        values[:, : self.n_radial_columns] = radial.sum(axis=2).reshape(n_atoms, -1)

        angular = blocks = None
        if acsf.n_angular:
            angular = inside[d_in < acsf.angular_cutoff]
            # an angular bond needs f_c(r) > 0 (it has none where cos rounds to −1, within
            # ~1e-8 Å of the cutoff: there every term it enters is 0 anyway)
            angular = angular[cutoff_cosine(d[angular], acsf.angular_cutoff) > -1.0]
            structure = self.angular.structure(pairs, angular)
            ang_values = np.zeros((n_atoms, n_el, n_el, acsf.n_angular))
            blocks = self.angular.forward(structure, D[angular], d[angular], ang_values,
                                          derivatives)
            s, t, columns = acsf.pair_columns
            values[:, columns] = ang_values[:, s, t].reshape(n_atoms, len(columns))
        if not derivatives:
            return values, None
        # unit vectors per slot, component first (0 in padding)
        u = work.get("u", (3, n_slots))
        u.fill(0.0)
        inv_d = 1.0 / d_in
        for x in range(3):
            u[x, slot] = D[inside, x] * inv_d
        ang = (None, None, None) if angular is None else (
            pairs.i[angular], pairs.j[angular], D[angular])
        return values, Tape(n_atoms, pairs.config_atoms, n_rows, width, d_radial, u, padded,
                            self._reverse_slots(pairs, layout), *ang, blocks)

    def _radial_layout(self, pairs: PairList, inside: np.ndarray) -> Layout:
        """The padded layout of the bonds ``inside`` the cutoff, kept on the pair list while
        the same bonds are inside (most MD steps)."""
        cached = pairs.memo.get("radial_layout")
        if cached is not None and np.array_equal(cached.inside, inside):
            return cached
        n_el = self.n_elements
        rows = pairs.rows(n_el)[inside]
        n_rows = pairs.n_atoms * n_el
        counts = np.bincount(rows, minlength=n_rows)
        width = max(1, int(counts.max()) if n_rows else 1)
        starts = np.cumsum(counts) - counts
        slot = rows * width
        slot += np.arange(len(rows))
        slot -= starts[rows]
        layout = pairs.memo["radial_layout"] = Layout(inside.copy(), n_rows, width, slot, {})
        return layout

    @staticmethod
    def _reverse_slots(pairs: PairList, layout: Layout) -> np.ndarray:
        """Slot of each slot's reverse bond (the bonds inside the cutoff come in pairs);
        ``rows·width`` in padding."""
        if "reverse" not in layout.extra:
            inside, slot = layout.inside, layout.slot
            n_slots = layout.n_rows * layout.width
            compact = np.empty(len(pairs), dtype=np.int64)
            compact[inside] = np.arange(len(inside))
            reverse = np.full(n_slots, n_slots)
            reverse[slot] = slot[compact[pairs.reverse[inside]]]
            layout.extra["reverse"] = reverse
        return layout.extra["reverse"]

    def _radial(self, d: np.ndarray, derivatives: bool):
        """Radial terms g_k(d) and g_k'(d) (1/Å) of padded distances ``d`` (rows, 1, width):
        (rows, n_radial, width) each (see :mod:`pesnet.descriptors.radial`)."""
        acsf = self.acsf
        cutoff = acsf.cutoff
        n_g2, n_g3 = len(acsf.g2), len(acsf.g3)
        work = self._work
        shape = (d.shape[0], 1 + n_g2 + n_g3, d.shape[2])
        inside = d < cutoff
        fc, dfc = cutoff_from_cosine(cutoff_cosine(d, cutoff), derivatives)  # f_c, sin x
        fc *= inside
        out = work.get("radial", shape)
        out[:, :1] = fc
        if n_g2:
            delta = np.subtract(d, self._rs, out=work.get("delta", (shape[0], n_g2, shape[2])))
            gauss = np.multiply(delta, delta, out=work.get("gauss", delta.shape))
            gauss *= -self._eta
            np.exp(gauss, out=gauss)
            np.multiply(gauss, fc, out=out[:, 1 : 1 + n_g2])
        if n_g3:
            cosine = np.cos(d * self._kappa)
            np.multiply(cosine, fc, out=out[:, 1 + n_g2 :])
        if not derivatives:
            return out, None
        dfc *= cutoff_slope(cutoff) * inside                                  # f_c' = −(π/2r_c) sin x
        d_out = work.get("d_radial", shape)
        d_out[:, :1] = dfc
        if n_g2:
            slope = np.multiply(delta, -2.0 * self._eta, out=delta)
            slope *= fc
            slope += dfc
            np.multiply(gauss, slope, out=d_out[:, 1 : 1 + n_g2])
        if n_g3:
            kd = d * self._kappa
            part = cosine * dfc
            part -= self._kappa * np.sin(kd) * fc
            d_out[:, 1 + n_g2 :] = part
        return out, d_out

    # -- backward -------------------------------------------------------------------------
    def backward(self, tape: Tape, weights: np.ndarray, forces: bool = True,
                 virial: bool = False):
        """Forces and virials of K energies E_κ = Σ_i E_κ,i(G_i) from their input gradients
        ``weights`` w_κ,i = ∂E_κ/∂G_i (K, n_atoms, F), e.g. the ensemble members.

        Returns ``(forces, virials)``: −∂E_κ/∂r (K, n_atoms, 3) and ∂E_κ/∂ε
        (K, n_configs, 3, 3) per configuration (each ``None`` unless asked for), in the
        weights' energy unit per Å and in that energy unit.
        """
        K = weights.shape[0]
        n_el, n_rad = self.n_elements, self.acsf.n_radial
        rows, width = tape.rows, tape.width
        n_slots = rows * width
        config_rows = tape.config_atoms * n_el
        # radial: ∂E/∂d_b = Σ_k w[i_b, (el_j, k)] g_k'(d_b), one small product per row
        w_rad = weights[:, :, : self.n_radial_columns].reshape(K, rows, n_rad)
        w_rad = np.ascontiguousarray(w_rad.transpose(1, 0, 2))                # (rows, K, n_rad)
        work = self._work
        dEdd = work.get("dEdd", (K, n_slots + 1))
        dEdd[:, -1] = 0.0
        dEdd[:, :-1].reshape(K, rows, width)[...] = \
            np.matmul(w_rad, tape.d_radial).transpose(1, 0, 2)
        f = w = None
        if forces:
            # F_a = Σ_{b: i_b = a} (∂E/∂d_b + ∂E/∂d_rev(b)) u_b   (u_rev(b) = −u_b)
            pair = np.take(dEdd, tape.reverse, axis=1, out=work.get("pair", (K, n_slots)))
            pair += dEdd[:, :-1]
            per_row = np.matmul(pair.reshape(K, rows, width).transpose(1, 0, 2),
                                tape.u.reshape(3, rows, width).transpose(1, 2, 0))  # (rows, K, 3)
            f = per_row.reshape(tape.n_atoms, n_el, K, 3).sum(axis=1).transpose(1, 0, 2)
        if virial:
            # W = Σ_b ∂E/∂d_b u_b ⊗ D_b = Σ_b (∂E/∂d_b d_b u_b,x) u_b,y
            w = np.empty((len(config_rows) - 1, K, 3, 3))
            weighted = dEdd[:, :-1] * tape.d                                  # (K, slots)
            for k, (a, b) in enumerate(zip(config_rows[:-1] * width, config_rows[1:] * width)):
                for x in range(3):
                    w[k, :, x] = (weighted[:, a:b] * tape.u[x, a:b]) @ tape.u[:, a:b].T
            w = w.transpose(1, 0, 2, 3)
        if tape.blocks:
            self.angular.backward(tape, weights, f, w)
        return f, w
