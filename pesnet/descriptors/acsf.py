"""Atom-centred symmetry functions (Behler–Parrinello) with analytic, sparse derivatives.

>>> acsf = ACSF(["H", "C", "O"], cutoff=6.0, g2=[(0.5, 0.0), (2.0, 1.5)],
...             g4=[(0.01, 1.0, -1.0), (0.01, 1.0, 1.0)])
>>> result = acsf.compute(atoms, derivatives=True)
>>> result.values.shape          # (n_atoms, acsf.n_features)
>>> result.derivatives.shape     # (n_blocks, acsf.n_features, 3): dG[centre] / dr[neighbour]

Definitions (cosine cutoff, G1/G2/G3 per neighbour element, G4/G5 per unordered neighbour
element pair, with the 2^(1−ζ) prefactor and, for G4, the cutoff on r_jk) are DScribe's, so
published parameter sets carry over; see :mod:`~pesnet.descriptors.radial` and
:mod:`~pesnet.descriptors.angular`. Columns come in DScribe's order: per neighbour element in
increasing atomic number G1, the G2s, the G3s; then per element pair (s ≤ t, ordered as
(0,0), (0,1), (1,1), (0,2), (1,2), (2,2), … i.e. index t(t+1)/2 + s) the G4s, then the G5s.

Two engines compute the training-time values and bond gradients: ``numpy`` (the default; the
batched pair matrices of :mod:`~pesnet.descriptors.angular`) and ``compiled`` (one Numba loop,
:mod:`~pesnet.descriptors.acsf_kernel`, 2.4–3.8× faster on the shipped data; the optional
dependency of ``pesnet[fast]``). They agree to rounding (~1e-15 of each column's scale), not bit for bit.
"""

from __future__ import annotations

import numpy as np
from ase.data import chemical_symbols

from pesnet.descriptors.acsf_kernel import (
    compiled_bond_terms,
    compiled_jacobian_terms,
    numba_available,
)
from pesnet.descriptors.angular import angular_terms
from pesnet.descriptors.angular_work_plan import plan_angular
from pesnet.descriptors.bond_descriptor import BondDescriptor, element_numbers
from pesnet.descriptors.protocol import DescriptorResult
from pesnet.descriptors.radial import radial_terms
from pesnet.errors import InputError, did_you_mean

#: The result of :meth:`ACSF.compute` (the protocol's
#: :class:`~pesnet.descriptors.protocol.DescriptorResult`; the old name kept).
ACSFResult = DescriptorResult

#: engines of the training-time values and bond gradients (see the module doc)
ENGINES = ("numpy", "compiled")


def _param_table(rows, width: int, name: str, names: str) -> np.ndarray:
    table = np.asarray([] if rows is None else rows, dtype=float)
    if table.size == 0:
        return np.zeros((0, width)) if width > 1 else np.zeros(0)
    if width == 1:
        table = table.reshape(-1)
    elif table.ndim != 2 or table.shape[1] != width:
        raise InputError(f"{name} parameters must be a list of ({names}) rows, got shape "
                         f"{table.shape}")
    if not np.isfinite(table).all():
        raise InputError(f"{name} parameters must be finite numbers")
    return table


def _fmt(x: float) -> str:
    return f"{x:.6g}"


class ACSF(BondDescriptor):
    """Behler–Parrinello atom-centred symmetry functions.

    ``elements``: chemical symbols or atomic numbers (sorted internally). ``cutoff``: radial
    cutoff r_c (Å). ``g2``: (η 1/Å², R_s Å) rows; ``g3``: κ values (1/Å); ``g4``/``g5``:
    (η 1/Å², ζ, λ) rows with ζ ≥ 1 and λ = ±1. ``angular_cutoff`` (Å, ≤ ``cutoff``): a
    shorter cutoff for G4/G5 (their neighbours and their cosine cutoffs); ``None`` uses
    ``cutoff`` as DScribe does. G1 (the sum of cutoff functions) is always included.
    ``engine``: ``"numpy"`` or ``"compiled"`` (the module doc).
    Values, derivatives and JSON parameters follow the descriptor protocol
    (:class:`~pesnet.descriptors.bond_descriptor.BondDescriptor`).
    """

    kind = "acsf"

    def __init__(self, elements, cutoff: float, g2=(), g4=(), g5=(), angular_cutoff=None,
                 g3=(), engine: str = "numpy"):
        if engine not in ENGINES:
            raise InputError(f"ACSF engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        self.engine = engine
        self.elements = element_numbers(elements)
        self.cutoff = float(cutoff)
        if not np.isfinite(self.cutoff) or self.cutoff <= 0:
            raise InputError(f"descriptor cutoff must be a positive number of Å, got {cutoff!r}")
        self.angular_cutoff = self.cutoff if angular_cutoff is None else float(angular_cutoff)
        if not 0 < self.angular_cutoff <= self.cutoff:
            raise InputError(f"angular_cutoff must be in (0, cutoff={self.cutoff}] Å, got "
                             f"{angular_cutoff!r}")
        self.g2 = _param_table(g2, 2, "g2", "eta, Rs")
        self.g3 = _param_table(g3, 1, "g3", "kappa")
        self.g4 = _param_table(g4, 3, "g4", "eta, zeta, lambda")
        self.g5 = _param_table(g5, 3, "g5", "eta, zeta, lambda")
        if len(self.g2) and ((self.g2[:, 0] <= 0).any() or (self.g2[:, 1] < 0).any()):
            raise InputError("g2 parameters need eta > 0 and Rs >= 0")
        for name, table in (("g4", self.g4), ("g5", self.g5)):
            if len(table) and (table[:, 0] < 0).any():
                raise InputError(f"{name} parameters need eta >= 0")
            if len(table) and (table[:, 1] < 1).any():
                raise InputError(f"{name} parameters need zeta >= 1")
            if len(table) and not np.isin(table[:, 2], (-1.0, 1.0)).all():
                raise InputError(f"{name} parameters need lambda = +1 or -1")
        n_el = len(self.elements)
        self.n_radial = 1 + len(self.g2) + len(self.g3)
        self.n_angular = len(self.g4) + len(self.g5)
        self.n_features = n_el * self.n_radial + n_el * (n_el + 1) // 2 * self.n_angular
        # Index of each element pair (s, t) in DScribe's order, and its angular columns
        # angular_columns (n_el, n_el, n_angular) (symmetric in s, t); pair_columns: the
        # pairs s ≤ t (s, t, and their columns flattened), as the evaluators fill them.
        s, t = np.meshgrid(np.arange(n_el), np.arange(n_el), indexing="ij")
        hi, lo = np.maximum(s, t), np.minimum(s, t)
        pair = hi * (hi + 1) // 2 + lo
        self._pair_index = pair
        self.angular_columns = (n_el * self.n_radial + pair[..., None] * self.n_angular
                                + np.arange(self.n_angular))
        self._labels = self._make_labels()
        self._angular_plans = {d: plan_angular(self.g4, self.g5, d) for d in (False, True)}
        s_, t_ = np.triu_indices(n_el)
        self.pair_columns = (s_, t_, self.angular_columns[s_, t_].reshape(-1))

    # -- parameters and labels ----------------------------------------------------------
    @property
    def params(self) -> dict:
        """JSON-serialisable parameters; ``ACSF.from_params(acsf.params)`` rebuilds it."""
        return {
            "kind": "acsf",
            "elements": list(self.elements),
            "cutoff": self.cutoff,
            "angular_cutoff": self.angular_cutoff,
            "g2": self.g2.tolist(),
            "g3": self.g3.tolist(),
            "g4": self.g4.tolist(),
            "g5": self.g5.tolist(),
            # only when not the default, so files of the NumPy engine keep their bytes
            **({"engine": self.engine} if self.engine != "numpy" else {}),
        }

    @classmethod
    def from_params(cls, params: dict) -> "ACSF":
        """Build from a dict with keys elements, cutoff, g2, g4, g5 (optional g3,
        angular_cutoff), e.g. :attr:`params` or a parsed ``--descriptor-params`` file."""
        if not isinstance(params, dict):
            raise InputError("descriptor parameters must be a mapping")
        known = ("kind", "elements", "cutoff", "angular_cutoff", "g2", "g3", "g4", "g5",
                 "engine")
        unknown = sorted(set(params) - set(known))
        if unknown:
            hint = did_you_mean(unknown[0], known) if len(unknown) == 1 else ""
            raise InputError(f"unknown descriptor parameter(s): {', '.join(unknown)}{hint}")
        if params.get("kind", "acsf") != "acsf":
            raise InputError(f"descriptor kind {params['kind']!r} is not 'acsf'")
        for key in ("elements", "cutoff"):
            if key not in params:
                raise InputError(f"descriptor parameters lack {key!r}")
        return cls(params["elements"], params["cutoff"], g2=params.get("g2", ()),
                   g4=params.get("g4", ()), g5=params.get("g5", ()),
                   angular_cutoff=params.get("angular_cutoff"), g3=params.get("g3", ()),
                   engine=params.get("engine", "numpy"))

    def __repr__(self) -> str:
        symbols = ", ".join(chemical_symbols[z] for z in self.elements)
        return (f"ACSF([{symbols}], cutoff={self.cutoff:g}, angular_cutoff="
                f"{self.angular_cutoff:g}, n_g2={len(self.g2)}, n_g3={len(self.g3)}, "
                f"n_g4={len(self.g4)}, n_g5={len(self.g5)}, n_features={self.n_features}"
                + (f", engine={self.engine!r})" if self.engine != "numpy" else ")"))

    @property
    def labels(self) -> tuple[str, ...]:
        """One readable label per column, e.g. ``G2[O](eta=0.5,Rs=1)``, ``G4[H,O](...)``."""
        return self._labels

    def _make_labels(self) -> tuple[str, ...]:
        labels = []
        for z in self.elements:
            s = chemical_symbols[z]
            labels.append(f"G1[{s}]")
            labels += [f"G2[{s}](eta={_fmt(e)},Rs={_fmt(r)})" for e, r in self.g2]
            labels += [f"G3[{s}](kappa={_fmt(k)})" for k in self.g3]
        n_el = len(self.elements)
        pairs = sorted(((t, s) for t in range(n_el) for s in range(t + 1)),
                       key=lambda ts: self._pair_index[ts[1], ts[0]])
        for t, s in pairs:
            name = f"{chemical_symbols[self.elements[s]]},{chemical_symbols[self.elements[t]]}"
            for kind, table in (("G4", self.g4), ("G5", self.g5)):
                labels += [f"{kind}[{name}](eta={_fmt(e)},zeta={_fmt(z)},lambda={_fmt(lam)})"
                           for e, z, lam in table]
        return tuple(labels)

    # -- computing ----------------------------------------------------------------------
    def evaluator(self):
        """The fast prediction-time evaluator (:mod:`pesnet.descriptors.acsf_evaluator`)."""
        from pesnet.descriptors.acsf_evaluator import ACSFEvaluator

        return ACSFEvaluator(self)

    def jacobian_terms(self, n_atoms, element, i, j, d, D, strain=True):
        """:meth:`BondDescriptor.jacobian_terms`; the compiled engine sums the blocks and
        strain derivatives in its loop, without the (n_bonds, F, 3) bond gradients."""
        if self.engine == "compiled" and numba_available():
            return compiled_jacobian_terms(self, n_atoms, element, i, j, d, D, strain)
        return super().jacobian_terms(n_atoms, element, i, j, d, D, strain)

    def bond_terms(self, n_atoms, element, i, j, d, D, derivatives):
        """Values (n_atoms, F) and, if asked, bond gradients ∂G_i/∂D_b (n_bonds, F, 3)
        (see :meth:`BondDescriptor.bond_terms`), by the descriptor's ``engine``: ``numpy``
        (below) or ``compiled`` (:mod:`pesnet.descriptors.acsf_kernel`; the NumPy engine
        where Numba is not installed — the two agree to rounding)."""
        if self.engine == "compiled" and numba_available():
            return compiled_bond_terms(self, n_atoms, element, i, j, d, D, derivatives)
        n_el = len(self.elements)
        el_j = element[j]
        rad, d_rad = radial_terms(d, self.cutoff, self.g2, self.g3, derivatives)
        values = np.zeros((n_atoms, self.n_features))
        key = i * n_el + el_j
        radial = np.zeros((n_atoms * n_el, self.n_radial))
        for column in range(self.n_radial):
            radial[:, column] = np.bincount(key, rad[:, column], minlength=n_atoms * n_el)
        values[:, : n_el * self.n_radial] = radial.reshape(n_atoms, n_el * self.n_radial)

        angular_bonds = np.flatnonzero(d < self.angular_cutoff)
        if len(angular_bonds) == len(d):
            angular_bonds = slice(None)
        ang, ang_grad = angular_terms(
            i[angular_bonds], D[angular_bonds], d[angular_bonds], el_j[angular_bonds],
            n_atoms, n_el, self.angular_cutoff, self.g4, self.g5, derivatives,
            self._angular_plans[bool(derivatives)])
        if self.n_angular:
            s, t, columns = self.pair_columns
            values[:, columns] = ang[:, s, t].reshape(n_atoms, len(columns))
        if not derivatives:
            return values, None
        # Gradient of the centre's features with respect to each bond vector D = r_j - r_i.
        n_bonds, n_radial = len(d), n_el * self.n_radial
        bond_grad = np.zeros((n_bonds, self.n_features, 3))
        unit = D / d[:, None]
        # Views of the radial columns as (bond, element, term) and of the angular ones as
        # (bond, element pair, term): each bond fills whole contiguous runs of columns.
        radial_view = bond_grad[:, :n_radial].reshape(n_bonds, n_el, self.n_radial, 3)
        if n_el == 1:  # one component at a time, along the bonds (no fancy indexing)
            for x in range(3):
                np.multiply(d_rad, unit[:, x, None], out=radial_view[:, 0, :, x])
        else:
            radial_view[np.arange(n_bonds), el_j] = d_rad[:, :, None] * unit[:, None, :]
        if self.n_angular:
            idx = np.arange(n_bonds)[angular_bonds]
            n_pairs = n_el * (n_el + 1) // 2
            angular_view = bond_grad[:, n_radial:].reshape(n_bonds, n_pairs, self.n_angular, 3)
            if n_el == 1:  # one element pair: whole rows, one index array
                angular_view[idx, 0] = ang_grad[:, 0]
            else:
                angular_view[idx[:, None], self._pair_index[el_j[idx]]] = ang_grad
        return values, bond_grad
