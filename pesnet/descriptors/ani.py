"""ANI-1x-style atomic environment vectors (AEVs), the descriptor kind ``"ani"``.

Smith, Isayev, Roitberg, Chem. Sci. 8, 3192 (2017), eqs. 3–4, as TorchANI's AEV computes
them. With the cosine cutoff f_c(r; R_c) = ½ cos(π r / R_c) + ½ for r < R_c
(:mod:`pesnet.descriptors.cutoff`), lengths in Å, η in 1/Å², angles in radians:

* radial, per neighbour element s and shift R_s (eq. 3, with TorchANI's factor ¼)::

      G^R_i,(s,R_s) = Σ_{j of element s, r_ij < R_cr} ¼ exp(−η_R (r_ij − R_s)²)
                      · f_c(r_ij; R_cr)

* angular, per unordered neighbour element pair (s, t), radial shift R_a and angle shift θ_z
  (eq. 4, ANI's modified angular function on one (R_a, θ_z) grid)::

      G^A_i,(st,R_a,θ_z) = 2^(1−ζ) Σ_{j<k, elements {s,t}, r_ij, r_ik < R_ca}
          (1 + cos(θ_ijk − θ_z))^ζ exp(−η_A ((r_ij + r_ik)/2 − R_a)²)
          · f_c(r_ij; R_ca) f_c(r_ik; R_ca)

  with θ_ijk = arccos(0.95 cos θ_ijk) (TorchANI's damping: the arccos derivative stays finite
  at 0 and π). Only bonds shorter than the angular cutoff R_ca ≤ R_cr enter this sum.
Features are dimensionless; values have shape (n_atoms, F).

Columns: all radial (per element in increasing atomic number, shifts inner), then angular
(per element pair in ACSF's order (0,0), (0,1), (1,1), (0,2), … i.e. index t(t+1)/2 + s for
s ≤ t, then R_a, then θ_z inner). For n_el elements F = n_el n_R + n_el(n_el+1)/2 n_a n_θ;
ANI-1x's set (:func:`default_ani`) gives 240 features for H, C, O.

Bond gradients (what :meth:`ANIDescriptor.bond_terms` returns, (n_bonds, F, 3), 1/Å) come
by the chain rule through r_ij, r_ik and cos θ, with
∂cos θ/∂D_j = D_k/(r_j r_k) − cos θ D_j/r_j².
Everything is vectorised over bonds and triplets (:mod:`pesnet.descriptors.ani_terms`).
"""

from __future__ import annotations

import math

import numpy as np
from ase.data import chemical_symbols

from pesnet.descriptors.ani_terms import angular_terms, radial_terms, sum_rows
from pesnet.descriptors.bond_descriptor import BondDescriptor, check_new_cutoff, element_numbers
from pesnet.errors import InputError, did_you_mean

#: Parameter keys of an ANI descriptor (``kind`` included).
PARAM_KEYS = ("kind", "elements", "cutoff", "radial_eta", "radial_shifts", "angular_cutoff",
              "angular_eta", "angular_shifts", "angle_shifts", "zeta")


def _number(value, name: str, minimum: float = 0.0, strict: bool = True) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"ani parameter {name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < minimum or (strict and x == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise InputError(f"ani parameter {name} must be a finite number {bound}, got {value!r}")
    return x


def _shifts(values, name: str, maximum: float | None = None) -> np.ndarray:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise InputError(f"ani parameter {name} must be a list of numbers, got {values!r}")
    if len(values) == 0:
        raise InputError(f"ani parameter {name} is empty: give at least one shift")
    shifts = np.array([_number(v, name, 0.0, strict=False) for v in values])
    if maximum is not None and (shifts > maximum).any():
        raise InputError(f"ani parameter {name} must lie in [0, {maximum:.6g}], got {values!r}")
    return shifts


def _fmt(x: float) -> str:
    return f"{x:.3g}"


class ANIDescriptor(BondDescriptor):
    """ANI atomic environment vectors (see the module doc for the equations).

    ``elements``: symbols or atomic numbers; ``cutoff`` R_cr and ``angular_cutoff``
    R_ca ≤ R_cr (Å); ``radial_eta`` η_R and ``angular_eta`` η_A (1/Å², > 0);
    ``radial_shifts`` R_s and ``angular_shifts`` R_a (Å, ≥ 0); ``angle_shifts`` θ_z
    (radians in [0, π]); ``zeta`` ζ ≥ 1. Every value is checked here (``InputError``).
    """

    kind = "ani"

    def __init__(self, elements, cutoff, radial_eta, radial_shifts, angular_cutoff,
                 angular_eta, angular_shifts, angle_shifts, zeta):
        self.elements = element_numbers(elements)
        self.cutoff = _number(cutoff, "cutoff")
        self.angular_cutoff = _number(angular_cutoff, "angular_cutoff")
        if self.angular_cutoff > self.cutoff:
            raise InputError(f"ani parameter angular_cutoff ({self.angular_cutoff:g} Å) must "
                             f"not exceed cutoff ({self.cutoff:g} Å)")
        self.radial_eta = _number(radial_eta, "radial_eta")
        self.angular_eta = _number(angular_eta, "angular_eta")
        self.zeta = _number(zeta, "zeta", 1.0, strict=False)
        self.radial_shifts = _shifts(radial_shifts, "radial_shifts")
        self.angular_shifts = _shifts(angular_shifts, "angular_shifts")
        self.angle_shifts = _shifts(angle_shifts, "angle_shifts", math.pi)
        n_el = len(self.elements)
        self.n_radial = len(self.radial_shifts)
        self.n_angular = len(self.angular_shifts) * len(self.angle_shifts)
        self.n_pairs = n_el * (n_el + 1) // 2
        self.n_features = n_el * self.n_radial + self.n_pairs * self.n_angular
        s, t = np.meshgrid(np.arange(n_el), np.arange(n_el), indexing="ij")
        hi, lo = np.maximum(s, t), np.minimum(s, t)
        #: Index of the element pair {s, t} (n_el, n_el), symmetric: t(t+1)/2 + s for s ≤ t.
        self.pair_index = hi * (hi + 1) // 2 + lo

    # -- parameters and labels ----------------------------------------------------------
    @property
    def params(self) -> dict:
        """JSON-serialisable parameters; ``ANIDescriptor.from_params(ani.params)`` rebuilds it."""
        return {"kind": self.kind, "elements": list(self.elements), "cutoff": self.cutoff,
                "radial_eta": self.radial_eta, "radial_shifts": self.radial_shifts.tolist(),
                "angular_cutoff": self.angular_cutoff, "angular_eta": self.angular_eta,
                "angular_shifts": self.angular_shifts.tolist(),
                "angle_shifts": self.angle_shifts.tolist(), "zeta": self.zeta}

    @classmethod
    def from_params(cls, params: dict) -> "ANIDescriptor":
        """Build from a dict with every key of :data:`PARAM_KEYS` (``InputError`` otherwise)."""
        if not isinstance(params, dict):
            raise InputError("descriptor parameters must be a mapping")
        unknown = sorted(set(params) - set(PARAM_KEYS))
        if unknown:
            hint = did_you_mean(unknown[0], PARAM_KEYS) if len(unknown) == 1 else ""
            raise InputError(f"unknown ani parameter(s): {', '.join(unknown)}{hint}")
        if params.get("kind", cls.kind) != cls.kind:
            raise InputError(f"descriptor kind {params['kind']!r} is not 'ani'")
        missing = [key for key in PARAM_KEYS[1:] if key not in params]
        if missing:
            raise InputError(f"ani parameters lack {', '.join(map(repr, missing))} "
                             "(a spec's kind = \"ani\" without params takes ANI-1x's set)")
        return cls(**{key: params[key] for key in PARAM_KEYS[1:]})

    def __repr__(self) -> str:
        symbols = ", ".join(chemical_symbols[z] for z in self.elements)
        return (f"ANIDescriptor([{symbols}], cutoff={self.cutoff:g}, angular_cutoff="
                f"{self.angular_cutoff:g}, n_features={self.n_features})")

    @property
    def labels(self) -> tuple[str, ...]:
        """``R[H](Rs=0.9)``, …, ``A[C,H](Ra=0.9,theta=0.196)``, … in column order."""
        names = [chemical_symbols[z] for z in self.elements]
        labels = [f"R[{s}](Rs={_fmt(r)})" for s in names for r in self.radial_shifts]
        pairs = sorted(((s, t) for t in range(len(names)) for s in range(t + 1)),
                       key=lambda st: self.pair_index[st])
        for s, t in pairs:
            labels += [f"A[{names[s]},{names[t]}](Ra={_fmt(r)},theta={_fmt(z)})"
                       for r in self.angular_shifts for z in self.angle_shifts]
        return tuple(labels)

    # -- computing ----------------------------------------------------------------------
    def bond_terms(self, n_atoms, element, i, j, d, D, derivatives):
        """Values (n_atoms, F) and, if asked, bond gradients ∂G_i/∂D_b (n_bonds, F, 3)
        (see :meth:`BondDescriptor.bond_terms`); bonds sorted by centre."""
        n_el = len(self.elements)
        n_rad, el_j = n_el * self.n_radial, element[j]
        values = np.empty((n_atoms, self.n_features))
        grad = np.zeros((len(d), self.n_features, 3)) if derivatives else None
        rad, d_rad = radial_terms(d, self.cutoff, self.radial_eta, self.radial_shifts,
                                  derivatives)
        # Σ over the bonds of each (centre, neighbour element): rows i·n_el + s.
        values[:, :n_rad] = sum_rows(i * n_el + el_j, n_atoms * n_el, rad).reshape(n_atoms, -1)
        if derivatives:         # ∂g/∂D_b = g'(r_b) D_b / r_b, in the bond's element columns
            columns = el_j[:, None] * self.n_radial + np.arange(self.n_radial)
            grad[np.arange(len(d))[:, None], columns] = (d_rad[..., None]
                                                         * (D / d[:, None])[:, None, :])
        angular = np.flatnonzero(d < self.angular_cutoff)
        ang, ang_grad = angular_terms(
            i[angular], el_j[angular], d[angular], D[angular], n_atoms, self.pair_index,
            self.angular_cutoff, self.angular_eta, self.angular_shifts, self.angle_shifts,
            self.zeta, derivatives)
        values[:, n_rad:] = ang.reshape(n_atoms, -1)
        if derivatives:
            grad[angular, n_rad:] = ang_grad.reshape(len(angular), -1, 3)
        return values, grad


def default_ani(elements, cutoff: float = 5.2, angular_cutoff: float = 3.5) -> ANIDescriptor:
    """ANI-1x's AEV parameters (TorchANI's ``ani1x`` constants) for ``elements``.

    η_R = 16 Å⁻², 16 radial shifts R_s = 0.9 + k (R_cr − 0.9)/16 (k = 0 … 15: 0.9, 1.169,
    …, 4.931 Å at R_cr = 5.2 Å); η_A = 8 Å⁻², ζ = 32, 4 angular shifts
    R_a = 0.9 + k (R_ca − 0.9)/4 (0.9, 1.55, 2.2, 2.85 Å at R_ca = 3.5 Å), 8 angle shifts
    θ_z = π/16 + k π/8. Another ``cutoff``/``angular_cutoff`` (Å) spreads the same number
    of shifts evenly from 0.9 Å to one spacing inside it.
    """
    cutoff, angular_cutoff = float(cutoff), float(angular_cutoff)
    check_new_cutoff(cutoff)
    for name, value in (("cutoff", cutoff), ("angular_cutoff", angular_cutoff)):
        if not value > 0.9:
            raise InputError(f"ANI default {name} must exceed 0.9 Å (the first shift), "
                             f"got {value:g}")
    return ANIDescriptor(
        elements, cutoff, radial_eta=16.0,
        radial_shifts=(0.9 + (cutoff - 0.9) / 16 * np.arange(16)).tolist(),
        angular_cutoff=angular_cutoff, angular_eta=8.0,
        angular_shifts=(0.9 + (angular_cutoff - 0.9) / 4 * np.arange(4)).tolist(),
        angle_shifts=(np.pi / 16 + np.pi / 8 * np.arange(8)).tolist(), zeta=32.0)
