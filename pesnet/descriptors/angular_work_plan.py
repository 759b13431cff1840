"""How the angular (G4/G5) terms are organised into matrix work, for both ACSF engines.

* :func:`plan_angular`: features grouped by (kind, η) with the matrices (powers of
  1 + λ cos θ) each group needs — the work plan of the training-time
  :func:`~pesnet.descriptors.angular.angular_terms`;
* :func:`term_plan`: that plan for the prediction-time evaluator
  (:mod:`pesnet.descriptors.acsf_evaluator`), rewritten on the monomials c^n ∘ P when every ζ is a small integer (one product per power
  instead of one per (1 + λc)^ζ);
* :func:`supergroups`: groups with the same kind and keys but different η, computed together
  along a leading η axis;
* :func:`blocks`: centres cut into blocks whose work arrays stay in cache.
"""

from __future__ import annotations

from math import comb
from typing import NamedTuple

import numpy as np

#: Elements of the largest (B, n_matrices, m, m) work array of one block of centres of the
#: training-time engine (:func:`~pesnet.descriptors.angular.angular_terms`). Block sizes
#: change only memory and speed, not which terms are summed; but a block's padded width m
#: (its largest neighbour count) shapes its matrix products, whose BLAS summation order may
#: differ by an ulp, so each engine keeps the value its stored numbers were made with.
TRAINING_BLOCK_ELEMENTS = 1 << 18

#: Elements of the (B, n_matrices, m, m) work array of one block of centres of the
#: prediction-time evaluator. Measured on
#: 108- and 500-atom Cu at 4 Å, one core, median of 60 (12) one-off predictions, three
#: interleaved rounds: 2¹⁹ (4 MB, B ≈ 70-80) 7.9-8.7 ms (35.4-36.7 ms), 2¹⁸ 8.6-9.0 ms
#: (37.4-40.1 ms); 2¹⁷ and 2²⁰ slower still. Smaller blocks pay NumPy's per-call overhead
#: more often, larger ones leave the cache. (An earlier machine state preferred 2¹⁸.)
PREDICTION_BLOCK_ELEMENTS = 1 << 19

#: Largest integer ζ for which angular terms use the monomial basis c^n ∘ P (see plan).
MONOMIAL_MAX_ZETA = 4


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


def term_plan(g4, g5, derivatives: bool) -> list:
    """The work plan of :func:`plan_angular`, with groups whose ζ
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
        out.append(Group(group.kind, group.eta, group.columns, keys, keys if dp else [],
                          value, slope if derivatives else np.zeros_like(slope),
                          value.copy() if dp else np.zeros((nf, 0)), group.span))
    return out


def exact_power(key, cos: np.ndarray, cache: dict):
    """(1 + λ cos θ)^n named by ``key`` (``None`` for ``("one",)``), as
    :func:`cached_power` computes it (same values), with 1 ± c formed
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
            value = exact_power(("b", lam, float(n - 1)), cos, cache) * exact_power(
                ("b", lam, 1.0), cos, cache)
        else:
            half = exact_power(("b", lam, float(n // 2)), cos, cache)
            value = half * half
        cache[key] = value
        return value
    return cached_power(key, cos, cache)


class Keys:
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


def supergroups(plan) -> list:
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


def centre_blocks(counts: np.ndarray, n_stack: int, block_elements: int,
                  equal_sizes: bool = True) -> list:
    """Centre indices of each block: centres by decreasing neighbour count (those with < 2
    skipped: an angle needs two neighbours), cut into blocks whose (B, n_stack, m, m) work
    array stays near ``block_elements`` elements (m: the block's largest count); with
    ``equal_sizes`` the remaining centres are cut into blocks of equal size, none larger."""
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] >= 2]
    out, start = [], 0
    while start < len(order):
        m = int(counts[order[start]])
        size = max(1, block_elements // max(1, n_stack * m * m))
        if equal_sizes:
            remaining = len(order) - start
            size = -(-remaining // -(-remaining // size))
        out.append(order[start : start + size])
        start += size
    return out
