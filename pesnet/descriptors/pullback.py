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

**Angular terms** use the block algorithm of :mod:`pesnet.descriptors.angular` (centres in
blocks, neighbours padded to m, (B, m, m) pair matrices). Per η the matrices are
X_key = q_j q_k (A_key(c) ∘ P) and q_j q_k (A_key(c) ∘ P'/r_jk), with A_key the powers
(1 + λc)^n — or, for integer ζ ≤ :data:`MONOMIAL_MAX_ZETA`, the monomials c^n (one product
each, chained; see :func:`_plan`). With q folded into the matrices, the right-hand sides
[1, u_k] and [1, D_k] (per element of k) serve every η, and one matrix product per block gives
every key's contraction Y = X [1, u], Z = X' [1, D]. These do not depend on the weights and are
kept on the tape; the backward pass recombines them with per-centre coefficients
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

import threading
from math import comb, prod
from typing import NamedTuple

import numpy as np

from pesnet.descriptors.angular import _Group, _power, plan_angular
from pesnet.descriptors.bonds import Geometry, PairList
from pesnet.errors import ConfigurationError


class _Block(NamedTuple):
    """One block of centres of the angular terms (B centres, m neighbour slots).

    The contractions of every plan group, keys concatenated over the groups in plan order
    (c = (key, t), t the element of k): ``Y`` (B, n_c, m, 4) = Σ_k X_key,jk [1, u_k] [el_k = t]
    with X carrying q_j q_k, ``Yv`` (B, n_c, m) = its column 0 times (q'_j/q_j)/r_j,
    ``Z`` (B, n_dc, m, 4) likewise with the P' matrices and [1, D_k] (or None).
    """

    centres: np.ndarray   # (B,) atom indices
    bonds: np.ndarray     # (B, m) angular-bond index of each slot (n_angular in padding)
    u: np.ndarray         # (B, 3, 1, m) D_j / r_j (0 in padding)
    r: np.ndarray         # (B, 1, m)
    onehot: np.ndarray    # (B, n_el, m) neighbour element (False in padding)
    Y: np.ndarray
    Yv: np.ndarray
    Z: np.ndarray | None


class _Layout(NamedTuple):
    """Padded per-(centre, element) layout of the bonds inside the radial cutoff."""

    inside: np.ndarray    # bonds of the pair list inside the cutoff
    n_rows: int
    width: int
    slot: np.ndarray      # padded slot of each inside bond
    extra: dict           # derived arrays, made on first use ("reverse")


class Tape(NamedTuple):
    """What :meth:`ACSFEvaluator.backward` needs of a forward pass.

    Radial terms, padded per (centre, neighbour element) row: ``rows``, ``width``,
    ``d_radial`` (rows, n_radial, width) ∂g_k/∂d (1/Å), ``u`` (3, rows·width) unit bond
    vectors and ``d`` (rows·width,) lengths of each slot (0 and the cutoff in padding),
    ``reverse`` (rows·width,) the slot of each bond's reverse (``rows·width`` in padding).
    Angular terms: ``centre``, ``neighbour`` (n_angular,) atoms and ``D`` (n_angular, 3) of
    the angular bonds, and the :class:`_Block` s. ``config_atoms`` (n_configs + 1,).
    """

    n_atoms: int
    config_atoms: np.ndarray
    rows: int
    width: int
    d_radial: np.ndarray
    u: np.ndarray
    d: np.ndarray
    reverse: np.ndarray
    centre: np.ndarray | None
    neighbour: np.ndarray | None
    D: np.ndarray | None
    blocks: list | None


class _Workspace(threading.local):
    """Large scratch arrays kept between calls (per thread): a fresh array of a few MB is
    mapped anew by the allocator and page-faults on every call, which cost ~30% of a step."""

    def __init__(self):
        self.buffers = {}

    def get(self, name: str, shape, dtype=float) -> np.ndarray:
        size = prod(shape) if isinstance(shape, tuple) else int(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = self.buffers[name] = np.empty(size + size // 4, dtype)
        return buffer[:size].reshape(shape)


#: Elements of the (B, n_matrices, m, m) work array of one block of centres (measured on
#: 108- and 500-atom Cu at 4 Å, one core: B ≈ 40-60 centres, 2 MB, is best; smaller blocks
#: pay NumPy's per-call overhead more often, larger ones leave the cache).
BLOCK_ELEMENTS = 1 << 18

#: Largest integer ζ for which angular terms use the monomial basis c^n ∘ P (see _plan).
MONOMIAL_MAX_ZETA = 4


def _plan(g4, g5, derivatives: bool) -> list:
    """The work plan of :func:`~pesnet.descriptors.angular.plan_angular`, with groups whose ζ
    are all integers ≤ :data:`MONOMIAL_MAX_ZETA` rewritten on the monomials c^n ∘ P:
    A(c) = K (1 + λc)^ζ = K Σ_n C(ζ, n) λ^n c^n, so the matrices c⁰…c^ζmax ∘ P (one product
    each, chained) serve both signs of λ, every ζ and the slopes — 5 matrices instead of 9
    for ζ ∈ {1, 2, 4}. The binomial sums cost at most Σ_n C(4, n) = 16 ulp of the larger
    terms (exact powers are kept for larger or fractional ζ, where the sums would cancel).
    """
    params = np.concatenate([np.asarray(g4, float).reshape(-1, 3),
                             np.asarray(g5, float).reshape(-1, 3)])
    out = []
    for group in plan_angular(g4, g5, derivatives):
        zetas, lams = params[group.columns, 1], params[group.columns, 2]
        if not (np.all(zetas == np.round(zetas)) and zetas.max() <= MONOMIAL_MAX_ZETA):
            out.append(group)
            continue
        top = int(zetas.max())
        keys = [("c", n) for n in range(top + 1)]
        nf = len(group.columns)
        value, slope = np.zeros((nf, top + 1)), np.zeros((nf, top + 1))
        for f, (zeta, lam) in enumerate(zip(zetas.astype(int), lams)):
            k = 2.0 ** (1.0 - zeta)
            for n in range(zeta + 1):
                value[f, n] = k * comb(zeta, n) * lam**n
            for n in range(zeta):
                slope[f, n] = k * zeta * lam * comb(zeta - 1, n) * lam**n
        dp = derivatives and group.kind == "g4"
        out.append(_Group(group.kind, group.eta, group.columns, keys, keys if dp else [],
                          value, slope if derivatives else np.zeros_like(slope),
                          value.copy() if dp else np.zeros((nf, 0)), group.span))
    return out


def _exact_power(key, cos: np.ndarray, cache: dict):
    """(1 + λ cos θ)^n named by ``key`` (``None`` for ``("one",)``), as
    :func:`pesnet.descriptors.angular._power` computes it (same values), with 1 ± c formed
    in one operation (c is clipped to [−1, 1], so the base is never negative)."""
    if key in cache:
        return cache[key]
    if key[0] == "b" and key[2] == 1.0 and key[1] in (1.0, -1.0):
        value = np.add(1.0, cos) if key[1] > 0 else np.subtract(1.0, cos)
        cache[key] = value
        return value
    if key[0] == "b" and float(key[2]).is_integer() and 1 < key[2] <= 64:
        n = int(key[2])
        lam = key[1]
        if n % 2:
            value = _exact_power(("b", lam, float(n - 1)), cos, cache) * _exact_power(
                ("b", lam, 1.0), cos, cache)
        else:
            half = _exact_power(("b", lam, float(n // 2)), cos, cache)
            value = half * half
        cache[key] = value
        return value
    return _power(key, cos, cache)


class _Keys:
    """``X[:, :, k]``: the P matrix of key k < n_p, else the P' matrix of key k − n_p."""

    def __init__(self, p, d, n_p):
        self.p, self.d, self.n_p = p, d, n_p

    def __getitem__(self, index):
        _, _, k = index
        return self.p[:, :, k] if k < self.n_p else self.d[:, :, k - self.n_p]


class _SuperGroup(NamedTuple):
    """Consecutive plan groups of one kind with the same matrix keys (they differ in η only),
    computed together; ``p0``/``d0``: offsets of their first key among all groups'."""

    kind: str
    groups: list
    etas: np.ndarray
    p_keys: list
    dp_keys: list
    n_p: int
    n_dp: int
    monomial: bool
    home: int | None   # key whose matrix is P itself (b⁰ or c⁰), if any
    p0: int
    d0: int
    power_of: list     # per group: (earlier group k, n) when η = 2ⁿ η_k (E by squaring), or None


def _supergroups(plan) -> list:
    out, p0, d0 = [], 0, 0
    runs: list[list] = []
    for group in plan:
        if runs and (runs[-1][0].kind, runs[-1][0].p_keys, runs[-1][0].dp_keys) == (
                group.kind, group.p_keys, group.dp_keys):
            runs[-1].append(group)
        else:
            runs.append([group])
    for run in runs:
        first = run[0]
        monomial = first.p_keys[0][0] == "c"
        home = 0 if monomial else (first.p_keys.index(("one",)) if ("one",) in first.p_keys
                                   else None)
        etas = [g.eta for g in run]
        # exp(−2ⁿη x) = exp(−η x)^(2ⁿ), n ≤ 3: squarings instead of an exp (a few ulp apart)
        power_of: list = []
        for g in range(len(run)):
            power_of.append(next(((k, n) for k in range(g) for n in (1, 2, 3)
                                  if power_of[k] is None and etas[g] == 2.0**n * etas[k]),
                                 None))
        out.append(_SuperGroup(first.kind, run, np.array(etas), first.p_keys,
                               first.dp_keys, len(first.p_keys), len(first.dp_keys), monomial,
                               home, p0, d0, power_of))
        p0 += len(run) * len(first.p_keys)
        d0 += len(run) * len(first.dp_keys)
    return out


def _blocks(counts: np.ndarray, n_stack: int):
    """Centre indices of each block: centres by decreasing neighbour count (those with < 2
    skipped), cut into blocks of equal size whose (B, n_stack, m, m) work array stays near
    :data:`BLOCK_ELEMENTS` elements (m: the block's largest count)."""
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] >= 2]
    out, start = [], 0
    while start < len(order):
        m = int(counts[order[start]])
        size = max(1, BLOCK_ELEMENTS // max(1, n_stack * m * m))
        remaining = len(order) - start
        size = -(-remaining // -(-remaining // size))  # equal blocks, none larger than size
        out.append(order[start : start + size])
        start += size
    return out


class ACSFEvaluator:
    """Values of an :class:`~pesnet.descriptors.ACSF` on a :class:`PairList`, and the
    vector–Jacobian product that gives forces and virials (see the module doc)."""

    def __init__(self, acsf):
        self.acsf = acsf
        n_el = self.n_elements = len(acsf.elements)
        self.plan = _plan(acsf.g4, acsf.g5, derivatives=True)
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
        self._coef, self._n_keys, self._n_dp_keys = coef, n_keys, n_dp
        self._supergroups = _supergroups(self.plan)
        self.n_radial_columns = n_el * acsf.n_radial
        self._pair_weight = np.where(np.eye(n_el, dtype=bool), 0.5, 1.0)
        g2 = np.asarray(acsf.g2, dtype=float).reshape(-1, 2)
        self._eta = g2[:, 0][None, :, None]
        self._rs = g2[:, 1][None, :, None]
        self._kappa = np.asarray(acsf.g3, dtype=float).reshape(1, -1, 1)
        # scratch reused between calls: a tape is valid until the next forward pass
        self._work = _Workspace()

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_work"]  # per-thread scratch: not worth shipping
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._work = _Workspace()

    # -- forward --------------------------------------------------------------------------
    def forward(self, pairs: PairList, geometry: Geometry, derivatives: bool = True,
                where=None):
        """ACSF values (n_atoms, F) and, if ``derivatives``, the :class:`Tape` for
        :meth:`backward` (else ``None``). ``where`` = (file, index) names the configuration
        in errors."""
        acsf = self.acsf
        D, d = geometry
        if len(d) and d.min() < 1e-8:
            b = int(np.argmin(d))
            where = where or ("<atoms>", None)
            raise ConfigurationError(where[0], where[1], f"atoms {pairs.i[b]} and "
                                     f"{pairs.j[b]} are at the same position")
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
            angular = angular[np.cos(d[angular] * (np.pi / acsf.angular_cutoff)) > -1.0]
            structure = self._angular_structure(pairs, angular)
            ang_values = np.zeros((n_atoms, n_el, n_el, acsf.n_angular))
            blocks = self._angular_forward(structure, D[angular], d[angular], n_atoms,
                                           ang_values, derivatives)
            s, t, columns = acsf._pairs
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

    def _radial_layout(self, pairs: PairList, inside: np.ndarray) -> _Layout:
        """The padded layout of the bonds ``inside`` the cutoff, kept on the pair list while
        the same bonds are inside (most MD steps)."""
        cached = pairs._cache.get("radial_layout")
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
        layout = pairs._cache["radial_layout"] = _Layout(inside.copy(), n_rows, width, slot, {})
        return layout

    @staticmethod
    def _reverse_slots(pairs: PairList, layout: _Layout) -> np.ndarray:
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

    def _angular_structure(self, pairs: PairList, angular: np.ndarray) -> list:
        """Blocks of centres of the angular bonds (sorted by centre), kept on the pair list
        while the same bonds are within the angular cutoff: per block (centres, valid (B, m),
        bond (B, m) index into the angular bonds (0 in padding), onehot (B, n_el, m) of the
        neighbour's element)."""
        cached = pairs._cache.get("angular_structure")
        if cached is not None and np.array_equal(cached[0], angular):
            return cached[1]
        n_el = self.n_elements
        centre = pairs.i[angular]
        element = pairs.element[pairs.j[angular]]
        counts = np.bincount(centre, minlength=pairs.n_atoms)
        starts = np.cumsum(counts) - counts
        every = np.arange(n_el)
        n_stack = max(len(sg.etas) * (sg.n_p + sg.n_dp) for sg in self._supergroups)
        structure = []
        for centres in _blocks(counts, n_stack):
            n = counts[centres]
            m = int(n[0])
            slot = np.arange(m)
            valid = slot < n[:, None]                                        # (B, m)
            bond = starts[centres][:, None] + slot
            bond *= valid
            onehot = (element[bond][:, None, :] == every[None, :, None])     # (B, n_el, m)
            onehot &= valid[:, None, :]
            structure.append((centres, valid, bond, onehot))
        pairs._cache["angular_structure"] = (angular.copy(), structure)
        return structure

    def _radial(self, d: np.ndarray, derivatives: bool):
        """Radial terms g_k(d) and g_k'(d) (1/Å) of padded distances ``d`` (rows, 1, width):
        (rows, n_radial, width) each (see :mod:`pesnet.descriptors.radial`)."""
        acsf = self.acsf
        cutoff = acsf.cutoff
        n_g2, n_g3 = len(acsf.g2), len(acsf.g3)
        work = self._work
        shape = (d.shape[0], 1 + n_g2 + n_g3, d.shape[2])
        inside = d < cutoff
        x = d * (np.pi / cutoff)
        cos_x = np.cos(x)
        fc = 0.5 * (cos_x + 1.0)
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
        # f_c' = −(π/2r_c) sin x, with sin x = sqrt((1 − cos x)(1 + cos x)) on [0, π]
        dfc = 1.0 - cos_x
        dfc *= cos_x + 1.0
        np.maximum(dfc, 0.0, out=dfc)
        np.sqrt(dfc, out=dfc)
        dfc *= (-0.5 * np.pi / cutoff) * inside
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

    def _angular_forward(self, structure, D, r, n_atoms, values, derivatives):
        """Angular values into ``values`` (n_atoms, n_el, n_el, n_angular) from the angular
        bonds' vectors ``D`` and lengths ``r`` laid out by ``structure``
        (:meth:`_angular_structure`); with ``derivatives`` the :class:`_Block` s of the
        tape.

        Every matrix carries q_j q_k (rows and columns scaled), so the right-hand sides
        [1, u_k] and [1, D_k] per element of k serve every η: the groups of a
        :attr:`_supergroups` entry (same kind and keys, different η) are computed together
        along a leading η axis, in one product per block.
        """
        acsf = self.acsf
        n_el = self.n_elements
        cutoff = acsf.angular_cutoff
        has_g4 = len(acsf.g4) > 0
        n_keys = sum(len(g.p_keys) for g in self.plan) * n_el
        n_dp_keys = sum(len(g.dp_keys) for g in self.plan) * n_el
        every = np.arange(n_el)
        blocks = []
        work = self._work
        for index, (centres, valid, bond, onehot) in enumerate(structure):
            B, m = valid.shape
            slot = np.arange(m)
            mm = (B, m, m)
            Dp = D[bond]
            Dp *= valid[..., None]
            rp = r[bond]
            rp[~valid] = 2.0 * cutoff  # padding: beyond the cutoff from everything
            x = rp * (np.pi / cutoff)
            cos_r = np.cos(x)
            f = 0.5 * (cos_r + 1.0)
            f *= valid
            inv_r = 1.0 / rp
            u = Dp * inv_r[..., None]                                         # (B, m, 3)
            cos = np.matmul(u, u.transpose(0, 2, 1), out=work.get("cos", mm))  # (B, m, m)
            np.clip(cos, -1.0, 1.0, out=cos)
            if has_g4:
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
                np.cos(np.multiply(rjk, np.pi / cutoff, out=work.get("x", mm)), out=cos_x,
                       where=mask4)
                one_plus = np.add(cos_x, 1.0, out=work.get("one_plus", mm))
                fjk = np.multiply(one_plus, 0.5, out=work.get("fjk", mm))
                if derivatives:
                    # f_c'(r_jk)/r_jk, sin x = sqrt((1 − cos x)(1 + cos x)) on [0, π]
                    dfjk_r = np.subtract(1.0, cos_x, out=work.get("dfjk_r", mm))
                    dfjk_r *= one_plus
                    np.sqrt(dfjk_r, out=dfjk_r)
                    rjk *= -2.0 * cutoff / np.pi
                    dfjk_r /= rjk
            pair_mask = None
            if len(acsf.g5):
                pair_mask = valid[:, :, None] & valid[:, None, :]
                pair_mask[:, slot, slot] = False
            powers: dict = {}
            # right-hand sides per element t of k: [1, u_k] for the P matrices and [1, D_k]
            # for the P' ones (q_k is in the matrices), (B, m, n_el, 4)
            oh = onehot.transpose(0, 2, 1).astype(float)                      # (B, m, n_el)
            rhs = np.empty((B, m, n_el, 4))
            rhs[..., 0] = oh
            rhs[..., 1:] = oh[..., None] * u[:, :, None, :]
            if derivatives:
                rhs_d = np.empty((B, m, n_el, 4))
                rhs_d[..., 0] = oh
                rhs_d[..., 1:] = oh[..., None] * Dp[:, :, None, :]
                df = np.sqrt((1.0 - cos_r) * (1.0 + cos_r))
                df *= (-0.5 * np.pi / cutoff) * valid
                # q'/q = (f'/f − 2η r) (bonds with f = 0 are not angular bonds; 0 in padding)
                df_f = np.divide(df, f, out=np.zeros_like(f), where=valid)
                # the tape's arrays: one set per block, kept until the next forward pass
                Yall = work.get(f"Y{index}", (B, n_keys, m, 4))
                Yv = work.get(f"Yv{index}", (B, n_keys, m))
                Zall = work.get(f"Z{index}", (B, n_dp_keys, m, 4)) if n_dp_keys else None
            for sg in self._supergroups:
                G, n_p, n_dp = len(sg.etas), sg.n_p, sg.n_dp
                eta = sg.etas[None, :, None]                                 # (1, G, 1)
                q = np.exp(-eta * (rp * rp)[:, None, :])
                q *= f[:, None, :]                                           # (B, G, m)
                # X[:, :, key] for key < n_p: the P matrices, then the P' ones; stored as
                # (B, [G·n_p | G·n_dp], m, m) so that each part is one contiguous product
                storage = work.get("X", (B, G * (n_p + n_dp), m, m))
                Xp = storage[:, : G * n_p].reshape(B, G, n_p, m, m)
                Xd = storage[:, G * n_p :].reshape(B, G, n_dp, m, m)
                X = _Keys(Xp, Xd, n_p)
                if not derivatives:
                    n_dp = 0
                qq = np.multiply(q[:, :, :, None], q[:, :, None, :],
                                 out=work.get("qq", (B, G, m, m)))           # q_j q_k
                home = sg.home
                if sg.kind == "g4":
                    E = work.get("E", (B, G, m, m))
                    for g in range(G):  # exp(−η r_jk²); exp(−2^k η r²) by squaring
                        if sg.power_of[g] is None:
                            np.multiply(rjk2, -sg.etas[g], out=E[:, g])
                            np.exp(E[:, g], out=E[:, g])
                        else:
                            base, squarings = sg.power_of[g]
                            np.multiply(E[:, base], E[:, base], out=E[:, g])
                            for _ in range(squarings - 1):
                                E[:, g] *= E[:, g]
                    E *= qq
                    P = np.multiply(E, fjk[:, None], out=work.get("P", (B, G, m, m))
                                    if home is None else X[:, :, home])
                    if derivatives:  # q_j q_k P'(r_jk)/r_jk
                        dP_r = np.multiply(fjk[:, None], (-2.0 * sg.etas)[None, :, None, None],
                                           out=X[:, :, n_p] if sg.monomial
                                           else work.get("dP", (B, G, m, m)))
                        dP_r += dfjk_r[:, None]
                        dP_r *= E
                else:
                    P = np.multiply(qq, pair_mask[:, None])
                if sg.monomial:  # X_n = c ∘ X_{n−1}
                    if sg.kind != "g4":
                        np.copyto(X[:, :, 0], P)
                    for row in range(1, n_p):
                        np.multiply(cos[:, None], X[:, :, row - 1], out=X[:, :, row])
                    for row in range(n_p + 1, n_p + n_dp):
                        np.multiply(cos[:, None], X[:, :, row - 1], out=X[:, :, row])
                else:
                    for row, key in enumerate(sg.p_keys):
                        factor = _exact_power(key, cos, powers)
                        if factor is not None:
                            np.multiply(factor[:, None], P, out=X[:, :, row])
                        elif sg.kind != "g4" or row != home:
                            np.copyto(X[:, :, row], P)
                    for row, key in enumerate(sg.dp_keys[:n_dp]):
                        np.multiply(_exact_power(key, cos, powers)[:, None], dP_r,
                                    out=X[:, :, n_p + row])
                keys = slice(sg.p0 * n_el, (sg.p0 + G * n_p) * n_el)
                rows = storage[:, : G * n_p].reshape(B, G * n_p * m, m)
                if derivatives and n_el == 1:   # straight into the tape
                    Y = np.matmul(rows, rhs.reshape(B, m, 4),
                                  out=Yall[:, keys].reshape(B, G * n_p * m, 4))
                else:
                    Y = np.matmul(rows, rhs.reshape(B, m, n_el * 4))
                Y = Y.reshape(B, G, n_p, m, n_el, 4)              # q_j Y[g, key, j, t, r]
                # values: G_f^{st} = w_st Σ_key coef[f, key] Σ_j [el_j = s] q_j Y[key, j, t, 0]
                if n_el == 1:
                    S = Y[..., 0, 0].sum(axis=3)[:, :, None, None]          # (B, G, 1, 1, n_p)
                else:
                    S = np.matmul(oh.transpose(0, 2, 1)[:, None, None],
                                  Y[..., 0])                                 # (B, G, n_p, s, t)
                    S = S.transpose(0, 1, 3, 4, 2)                           # (B, G, s, t, n_p)
                for g, group in enumerate(sg.groups):
                    Gv = np.matmul(S[:, g], group.value_coef.T)             # (B, s, t, nf)
                    Gv *= self._pair_weight[..., None]
                    if isinstance(group.span, slice):
                        values[centres, :, :, group.span] = Gv
                    else:
                        values[np.ix_(centres, every, every, group.span)] = Gv
                if not derivatives:
                    continue
                if n_el > 1:
                    Yall[:, keys] = Y.transpose(0, 1, 2, 4, 3, 5).reshape(
                        B, G * n_p * n_el, m, 4)
                # the V term: (q'_j/r_j) Σ_k X_jk q_k [el_k = t] = (q'/q)_j / r_j · Y[.., 0]
                ratio = df_f[:, None, :] - 2.0 * eta * rp[:, None, :]
                ratio *= inv_r[:, None, :]
                ratio *= valid[:, None, :]                                   # (B, G, m)
                np.multiply(Y[..., 0].transpose(0, 1, 2, 4, 3),
                            ratio[:, :, None, None, :],
                            out=Yv[:, keys].reshape(B, G, n_p, n_el, m))
                if sg.kind == "g4":
                    dkeys = slice(sg.d0 * n_el, (sg.d0 + G * n_dp) * n_el)
                    dp_rows = storage[:, G * n_p :].reshape(B, G * n_dp * m, m)
                    if n_el == 1:
                        np.matmul(dp_rows, rhs_d.reshape(B, m, 4),
                                  out=Zall[:, dkeys].reshape(B, G * n_dp * m, 4))
                    else:
                        Z = np.matmul(dp_rows, rhs_d.reshape(B, m, n_el * 4))
                        Zall[:, dkeys] = Z.reshape(B, G, n_dp, m, n_el, 4).transpose(
                            0, 1, 2, 4, 3, 5).reshape(B, G * n_dp * n_el, m, 4)
            if derivatives:
                bonds = np.where(valid, bond, len(r))
                blocks.append(_Block(centres, bonds, u.transpose(0, 2, 1)[:, :, None, :],
                                     rp[:, None, :], onehot, Yall, Yv, Zall))
        return blocks if derivatives else None

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
            self._angular_backward(tape, weights, f, w)
        return f, w

    def _angular_backward(self, tape: Tape, weights: np.ndarray, forces, virials) -> None:
        """Add the angular terms' forces (K, n_atoms, 3) and virials (K, n_configs, 3, 3)
        into the arrays given (either may be ``None``)."""
        K = weights.shape[0]
        n_el = self.n_elements
        n_keys, n_dp = self._n_keys, self._n_dp_keys
        n_ab = len(tape.centre)
        w_ang = weights[:, :, self.acsf._angular_columns]     # (K, n_atoms, s, t, n_angular)
        # bond gradients G[(x, κ), b] = ∂E_κ/∂(D_b)_x of the angular bonds (+1 spare column)
        G = self._work.get("G", (3 * K, n_ab + 1))
        G.fill(0.0)
        base = np.arange(3 * K)[:, None] * (n_ab + 1)                         # (3K, 1)
        flat = G.reshape(-1)
        for block in tape.blocks:
            B, m = block.bonds.shape
            wb = w_ang[:, block.centres].transpose(1, 0, 2, 3, 4)             # (B, K, s, t, f)
            C = wb @ self._coef                                    # (B, K, s, t, 2n_keys+n_dp)
            C = C.transpose(0, 1, 2, 4, 3).reshape(B, K * n_el, -1, n_el)     # (B, Ks, keys, t)
            Cv = C[:, :, :n_keys].reshape(B, K * n_el, n_keys * n_el)
            Cs = C[:, :, n_keys : 2 * n_keys].reshape(B, 1, K * n_el, n_keys * n_el)
            R = np.matmul(Cs.reshape(B, K * n_el, -1), block.Y.reshape(B, -1, m * 4))
            R = R.reshape(B, K * n_el, m, 4).transpose(0, 3, 1, 2)            # (B, 4, Ks, m)
            T1 = np.divide(R[:, 1:], block.r[:, None])                        # (B, 3, Ks, m)
            V = np.matmul(Cv, block.Yv)                                       # (B, Ks, m)
            T34 = None
            if block.Z is not None:
                Cd = C[:, :, 2 * n_keys :].reshape(B, K * n_el, n_dp * n_el)
                T34 = np.matmul(Cd, block.Z.reshape(B, -1, m * 4))
                T34 = np.ascontiguousarray(
                    T34.reshape(B, K * n_el, m, 4).transpose(0, 3, 1, 2))      # (B, 4, Ks, m)
            if n_el > 1:  # pick the row of each neighbour's own element s = el_j
                pick = block.onehot[:, None, None]                            # (B, 1, 1, s, m)
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
            grad += block.u * coeff[:, None]                                  # (B, 3, K, m)
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

