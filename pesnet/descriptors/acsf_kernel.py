"""ACSF values and bond gradients in one compiled loop (Numba): the ``compiled`` engine.

The same quantities as the NumPy engine of :meth:`ACSF.bond_terms
<pesnet.descriptors.acsf.ACSF.bond_terms>` — values G (n_atoms, F) and bond gradients
g_b = ∂G_{i_b}/∂D_b (n_bonds, F, 3) in 1/Å, D_b = r_j − r_i — from plain loops that touch each
bond and each pair of bonds once, instead of the padded (B, keys, m, m) pair matrices whose
memory traffic bounds the NumPy engine. They agree to rounding (values within ~1e-15,
gradients within ~1e-14 of each column's scale; ``tests/test_descriptor_acsf_kernel.py``), not
bit for bit, so a features file records which engine wrote it (the descriptor's ``engine``).

Per bond b of centre i (r = |D_b|, u = D_b/r, cosine cutoff f_c, slope f_c'):

    G1 += f_c(r),                       g = f_c'(r) u
    G2 += exp(−η (r − R_s)²) f_c(r),     g = exp(−η (r − R_s)²) (f_c'(r) − 2η (r − R_s) f_c(r)) u
    G3 += cos(κ r) f_c(r),               g = (cos(κ r) f_c'(r) − κ sin(κ r) f_c(r)) u

in the columns of the neighbour's element. Per unordered pair {a, b} of i's bonds inside the
angular cutoff (c = cos θ = D_a·D_b / (r_a r_b), b_λ = max(1 + λc, 0), K = 2^(1−ζ)), in the
columns of the element pair (el_a, el_b):

    G4 += K b_λ^ζ exp(−η s4) f_c(r_a) f_c(r_b) f_c(r_ab),   s4 = r_a² + r_b² + r_ab²  (r_ab < r_c)
    G5 += K b_λ^ζ exp(−η s5) f_c(r_a) f_c(r_b),             s5 = r_a² + r_b²

with gradients by the product rule: ∂c/∂D_a = D_b/(r_a r_b) − c D_a/r_a²,
∂r_ab/∂D_a = −(D_b − D_a)/r_ab, ∂s4/∂D_a = 2(2D_a − D_b), ∂s5/∂D_a = 2 D_a (and a ↔ b).
Integer ζ are powered by multiplication, each distinct η gets one exp per pair. A centre's
bond gradients are kept in a small scratch array; for the featurizer
(:func:`compiled_jacobian_terms`) the loop then adds them straight into the (centre,
neighbour) blocks, subtracts them from the (i, i) block and adds g_b ⊗ D_b to the strain
derivatives, in bond order — the sums of :mod:`~pesnet.descriptors.derivatives`, bit for bit —
so the (n_bonds, F, 3) bond gradients are never held.

Numba is an optional dependency (``pip install 'pesnet[fast]'``); the first call in a process
compiles the loop (~3 s), cached on disk for later processes.
"""

from __future__ import annotations

import numpy as np

from pesnet.descriptors.derivatives import block_keys
from pesnet.errors import InputError

_KERNEL = None
#: the refusal where Numba is missing
NEEDS_NUMBA = ("the compiled ACSF engine needs Numba: pip install 'pesnet[fast]' (or the "
               "default engine, numpy)")
#: the loop's block and strain arguments when it fills bond gradients instead
_NO_BLOCKS = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 1, 3)),
              np.zeros((0, 1, 3, 3)))


def compiled_bond_terms(acsf, n_atoms: int, element: np.ndarray, i: np.ndarray, j: np.ndarray,
                        d: np.ndarray, D: np.ndarray, derivatives: bool):
    """:meth:`ACSF.bond_terms <pesnet.descriptors.acsf.ACSF.bond_terms>` by the compiled
    loop: ``element`` (n_atoms,) element index of each atom, bonds ``i``, ``j`` (n_bonds,)
    sorted by centre, lengths ``d`` (Å) and vectors ``D`` (n_bonds, 3) Å. Returns values
    (n_atoms, F) and, with ``derivatives``, bond gradients (n_bonds, F, 3) 1/Å."""
    kernel = _kernel()
    F = acsf.n_features
    values = np.zeros((n_atoms, F))
    grad = np.zeros((len(d) if derivatives else 0, F, 3))
    if len(d):
        kernel(*_loop_inputs(acsf, element, i, j, d, D), bool(derivatives), values, grad,
               *_NO_BLOCKS)
    return values, (grad if derivatives else None)


def compiled_jacobian_terms(acsf, n_atoms: int, element: np.ndarray, i: np.ndarray,
                            j: np.ndarray, d: np.ndarray, D: np.ndarray, strain: bool = True):
    """:meth:`BondDescriptor.jacobian_terms
    <pesnet.descriptors.bond_descriptor.BondDescriptor.jacobian_terms>` by the compiled loop:
    values (n_atoms, F), ``centres``, ``neighbours`` (n_blocks,), ``blocks`` (n_blocks, F, 3)
    and, with ``strain``, strain derivatives (n_atoms, F, 3, 3), summed in the loop centre by
    centre (the same sums, in the same order, as :func:`compiled_bond_terms` followed by
    :mod:`~pesnet.descriptors.derivatives`), never holding the bond gradients."""
    kernel = _kernel()
    F = acsf.n_features
    keys, inverse = block_keys(i, j, n_atoms)
    values = np.zeros((n_atoms, F))
    blocks = np.zeros((len(keys), F, 3))
    strains = np.zeros((n_atoms if strain else 0, F, 3, 3))
    if len(d):
        kernel(*_loop_inputs(acsf, element, i, j, d, D), True, values, np.zeros((0, F, 3)),
               inverse[: len(d)], inverse[len(d):], blocks, strains)
    return values, keys // n_atoms, keys % n_atoms, blocks, (strains if strain else None)


def _loop_inputs(acsf, element, i, j, d, D) -> tuple:
    """The loop's geometry and parameter arguments (contiguous, typed as compiled)."""
    n_el = len(acsf.elements)
    pair_base = (acsf.angular_columns[:, :, 0] if acsf.n_angular
                 else np.zeros((n_el, n_el), np.int64))
    return (np.ascontiguousarray(i, np.int64),
            np.ascontiguousarray(np.asarray(element)[j], np.int64),
            np.ascontiguousarray(d, float), np.ascontiguousarray(D, float),
            float(acsf.cutoff), float(acsf.angular_cutoff),
            np.asarray(acsf.g2, float).reshape(-1, 2), np.asarray(acsf.g3, float).reshape(-1),
            np.asarray(acsf.g4, float).reshape(-1, 3), np.asarray(acsf.g5, float).reshape(-1, 3),
            int(acsf.n_radial), np.ascontiguousarray(pair_base, np.int64))


def check_engine(descriptor) -> None:
    """An :class:`InputError` before any work if ``descriptor`` asks for the compiled engine
    and Numba is not installed (elsewhere the NumPy engine stands in; featurizing is where the
    speed was asked for)."""
    if getattr(descriptor, "engine", "numpy") == "compiled" and not numba_available():
        raise InputError(NEEDS_NUMBA)


def numba_available() -> bool:
    """Whether the compiled engine can run here (Numba importable)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _kernel():
    """The compiled loop, built on first use (Numba imported only then)."""
    global _KERNEL
    if _KERNEL is None:
        try:
            from numba import njit
        except ImportError:
            raise InputError(NEEDS_NUMBA) from None
        _KERNEL = njit(cache=True)(_bond_terms_loop)
    return _KERNEL


def _bond_terms_loop(centre, el_nb, d, D, rc, rca, g2, g3, g4, g5, n_radial, pair_base,
                     derivatives, values, grad, block_of_bond, self_block, blocks, strain):
    """The loop itself (see the module doc), centre by centre; fills ``values`` (zeros on
    entry) and, with ``derivatives``, either the bond gradients ``grad`` (n_bonds, F, 3) or,
    when ``blocks`` has rows, the sums the featurizer stores: ``blocks[block_of_bond[b]] +=
    g_b``, ``blocks[self_block[i]] −= g_b`` and, when ``strain`` has rows,
    ``strain[i] += g_b ⊗ D_b`` — in bond order, the sums of
    :mod:`~pesnet.descriptors.derivatives`. Written for Numba's nopython mode."""
    n_bonds, n_g2, n_g3, n_g4, n_g5 = len(d), len(g2), len(g3), len(g4), len(g5)
    F = values.shape[1]
    to_blocks, with_strain = len(blocks) > 0, len(strain) > 0
    slope, slope_a = -0.5 * np.pi / rc, -0.5 * np.pi / rca
    eta4, eta5 = np.unique(g4[:, 0]), np.unique(g5[:, 0])
    eta4_of, eta5_of = np.searchsorted(eta4, g4[:, 0]), np.searchsorted(eta5, g5[:, 0])
    E4, E5 = np.empty(len(eta4)), np.empty(len(eta5))
    work = np.zeros((9, 3))
    dca, dcb, dFa, dFb, dsa, dsb, Dab, d5a, d5b = (work[0], work[1], work[2], work[3],
                                                    work[4], work[5], work[6], work[7],
                                                    work[8])
    widest, start = 0, 0                          # the most bonds of one centre
    while start < n_bonds:
        end = start
        while end < n_bonds and centre[end] == centre[start]:
            end += 1
        widest, start = max(widest, end - start), end
    g = np.zeros((widest, F, 3))                  # one centre's bond gradients
    fa_all, dfa_all = np.zeros(widest), np.zeros(widest)
    start = 0
    while start < n_bonds:
        i, end = centre[start], start
        while end < n_bonds and centre[end] == i:
            end += 1
        g[: end - start] = 0.0
        for b in range(start, end):                                 # radial terms
            r, local = d[b], b - start
            x = np.pi * r / rc
            fa_all[local] = dfa_all[local] = 0.0
            if r >= rc:               # on the cutoff: f_c = f_c' = 0, as the NumPy engine
                continue
            fc, dfc = 0.5 * (np.cos(x) + 1.0), slope * np.sin(x)
            if r < rca:
                xa = np.pi * r / rca
                fa_all[local], dfa_all[local] = 0.5 * (np.cos(xa) + 1.0), slope_a * np.sin(xa)
            col = el_nb[b] * n_radial
            values[i, col] += fc
            if derivatives:
                for x3 in range(3):
                    g[local, col, x3] = dfc * D[b, x3] / r
            for k in range(n_g2):
                delta = r - g2[k, 1]
                gauss = np.exp(-g2[k, 0] * delta * delta)
                values[i, col + 1 + k] += gauss * fc
                if derivatives:
                    slope_k = gauss * (dfc - 2.0 * g2[k, 0] * delta * fc)
                    for x3 in range(3):
                        g[local, col + 1 + k, x3] = slope_k * D[b, x3] / r
            for k in range(n_g3):
                cosine = np.cos(g3[k] * r)
                values[i, col + 1 + n_g2 + k] += cosine * fc
                if derivatives:
                    slope_k = cosine * dfc - g3[k] * np.sin(g3[k] * r) * fc
                    for x3 in range(3):
                        g[local, col + 1 + n_g2 + k, x3] = slope_k * D[b, x3] / r
        for a in range(start, end):                                 # angular terms
            ra = d[a]
            if n_g4 + n_g5 == 0 or ra >= rca:
                continue
            fa, dfa = fa_all[a - start], dfa_all[a - start]
            for b in range(a + 1, end):
                rb = d[b]
                if rb >= rca:
                    continue
                fb, dfb = fa_all[b - start], dfa_all[b - start]
                for x3 in range(3):
                    Dab[x3] = D[b, x3] - D[a, x3]
                rab = np.sqrt(Dab[0] * Dab[0] + Dab[1] * Dab[1] + Dab[2] * Dab[2])
                with_g4 = n_g4 > 0 and rab < rca
                fab = dfab = 0.0
                if with_g4:
                    xab = np.pi * rab / rca
                    fab, dfab = 0.5 * (np.cos(xab) + 1.0), slope_a * np.sin(xab)
                dot = D[a, 0] * D[b, 0] + D[a, 1] * D[b, 1] + D[a, 2] * D[b, 2]
                c = min(1.0, max(-1.0, dot / (ra * rb)))
                s5 = ra * ra + rb * rb
                s4 = s5 + rab * rab
                for x3 in range(3):
                    da, db = D[a, x3], D[b, x3]
                    dca[x3] = db / (ra * rb) - c * da / (ra * ra)
                    dcb[x3] = da / (ra * rb) - c * db / (rb * rb)
                    d5a[x3] = dfa * fb * da / ra                      # ∂(f_a f_b)/∂D_a
                    d5b[x3] = fa * dfb * db / rb
                    if with_g4:
                        dFa[x3] = d5a[x3] * fab - fa * fb * dfab * Dab[x3] / rab
                        dFb[x3] = d5b[x3] * fab + fa * fb * dfab * Dab[x3] / rab
                        dsa[x3] = 2.0 * (2.0 * da - db)
                        dsb[x3] = 2.0 * (2.0 * db - da)
                base_col = pair_base[el_nb[a], el_nb[b]]
                for kind in range(2):
                    if kind == 0:
                        if not with_g4:
                            continue
                        table, E, eta_of, col0, Fp = g4, E4, eta4_of, base_col, fa * fb * fab
                        for e in range(len(eta4)):
                            E[e] = np.exp(-eta4[e] * s4)
                    else:
                        if n_g5 == 0:
                            continue
                        table, E, eta_of, col0, Fp = g5, E5, eta5_of, base_col + n_g4, fa * fb
                        for e in range(len(eta5)):
                            E[e] = np.exp(-eta5[e] * s5)
                    for f in range(len(table)):
                        eta, zeta, lam = table[f, 0], table[f, 1], table[f, 2]
                        base = max(0.0, 1.0 + lam * c)
                        k = 2.0 ** (1.0 - zeta)
                        if zeta == int(zeta) and zeta <= 64:   # b^(ζ−1) by multiplication
                            lower = 1.0
                            for _ in range(int(zeta) - 1):
                                lower *= base
                        else:
                            lower = base ** (zeta - 1.0)
                        A = k * lower * base
                        Ef = E[eta_of[f]]
                        values[i, col0 + f] += A * Ef * Fp
                        if not derivatives:
                            continue
                        dAF = k * zeta * lam * lower * Fp
                        AF = A * Fp * eta
                        for x3 in range(3):
                            if kind == 0:
                                ga = dAF * dca[x3] - AF * dsa[x3] + A * dFa[x3]
                                gb = dAF * dcb[x3] - AF * dsb[x3] + A * dFb[x3]
                            else:
                                ga = dAF * dca[x3] - 2.0 * AF * D[a, x3] + A * d5a[x3]
                                gb = dAF * dcb[x3] - 2.0 * AF * D[b, x3] + A * d5b[x3]
                            g[a - start, col0 + f, x3] += Ef * ga
                            g[b - start, col0 + f, x3] += Ef * gb
        if derivatives:                                             # emit the centre's
            for b in range(start, end):
                local = b - start
                if not to_blocks:
                    grad[b] = g[local]
                    continue
                row = block_of_bond[b]
                for f in range(F):
                    for x3 in range(3):
                        blocks[row, f, x3] += g[local, f, x3]
                if with_strain:
                    for f in range(F):
                        for x3 in range(3):
                            for y3 in range(3):
                                strain[i, f, x3, y3] += g[local, f, x3] * D[b, y3]
            if to_blocks:
                own = self_block[i]
                for b in range(start, end):
                    for f in range(F):
                        for x3 in range(3):
                            blocks[own, f, x3] -= g[b - start, f, x3]
        start = end
