"""Materials properties with uncertainty: every ensemble member's value, mean ± spread, and a
reference calculator's value beside them.

For one element of a model (a unary cubic crystal, fcc or bcc, as ASE's reference state has
it: Cu fcc, Fe bcc), each property is computed by every member m as a potential of its own
(:func:`member_potential`: a one-member view sharing the weights, behind a
:class:`~pesnet.calculator.PESNetCalculator`) with the methods of
:mod:`pesnet.properties.crystal`, and once by a reference ASE calculator if given:

=============================  ======  ===================================================
name                           unit    what
=============================  ======  ===================================================
a0, B                          Å, GPa  lattice constant, bulk modulus (Birch–Murnaghan EOS)
C11, C12, C44                  GPa     cubic elastic constants (stress–strain at a₀)
E_vac                          eV      relaxed vacancy formation energy, 3×3×3 cubic cell
gamma_100, gamma_111           J/m²    relaxed surface energies, (E_slab − N ε_bulk)/(2A)
nu_X_TA, nu_X_LA, nu_L_TA, …   THz     phonon frequencies at special points (frozen phonon):
                                       fcc X and L (TA, LA); bcc nu_H, nu_N_1 … nu_N_3
=============================  ======  ===================================================

Every member on its own. Each member finds its own a₀, relaxes its own vacancy and slabs
and builds its own force constants: a property is a nonlinear functional of the energy
surface (a minimum, a curvature), so the spread of the property is the spread of the members'
answers, not the spread of the energies at one geometry (relaxing with the mean forces and
evaluating every member there would miss the part of the spread that comes from where each
member puts the minimum). It is also cheap: a one-member view costs the descriptors plus
one network pass, and the whole set for a 5-member Cu model and EMT takes ~1.5 s on one
core.

Spreads. ``std`` is the committee standard deviation of the M values (ddof = 1).
``std_calibrated`` rescales it by the model's calibration factor as a committee rescaling
would (every member's deviation from the mean scaled by s: linear functionals of the energy
surface then scale by s exactly, the rest to first order): s_E = calibration["energy"] for
energy differences (E_vac, γ), s_F = calibration["forces"] for what comes from forces and
stress (a₀, B, C_ij, ν). ``within_2sigma`` is |mean − reference| ≤ 2 σ_calibrated.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from ase.data import atomic_numbers, chemical_symbols, reference_states

from pesnet.errors import InputError, PesnetError, did_you_mean
from pesnet.properties import crystal as methods

__all__ = ["PropertyResult", "UnaryCrystal", "PropertyError", "property_names",
           "unary_crystal", "select_names", "member_potential", "calculator_properties",
           "ensemble_properties", "format_table", "results_json"]


class PropertyError(PesnetError):
    """A property could not be computed (e.g. no energy minimum near the expected volume,
    or a reference calculator that cannot give what a property needs)."""


class PropertyResult(NamedTuple):
    """One property over the ensemble. ``values`` (M,) every member's value in ``unit``;
    ``mean``, ``std`` (ddof = 1; 0 for one member); ``std_calibrated`` (see the module doc);
    ``reference`` the reference calculator's value, ``error`` = mean − reference and
    ``within_2sigma`` = |error| ≤ 2 std_calibrated, all three None without a reference."""

    name: str
    unit: str
    values: np.ndarray
    mean: float
    std: float
    std_calibrated: float
    reference: float | None = None
    error: float | None = None
    within_2sigma: bool | None = None

    @property
    def error_pct(self) -> float | None:
        """100 · error / |reference| (None without a reference, or for a zero one)."""
        if self.error is None or self.reference == 0:
            return None
        return 100 * self.error / abs(self.reference)


class UnaryCrystal(NamedTuple):
    """The crystal the properties are computed for: ``symbol`` (e.g. "Cu"), ``structure``
    ("fcc" or "bcc") and ``a_guess`` (Å, ASE's reference lattice constant: the EOS start)."""

    symbol: str
    structure: str
    a_guess: float


#: name → (unit, calibration factor that applies: "energy" or "forces")
_UNITS = {"a0": ("Å", "forces"), "B": ("GPa", "forces"), "C11": ("GPa", "forces"),
          "C12": ("GPa", "forces"), "C44": ("GPa", "forces"), "E_vac": ("eV", "energy"),
          "gamma_100": ("J/m²", "energy"), "gamma_111": ("J/m²", "energy")}


def _phonon_names(structure: str) -> dict[str, tuple[str, int]]:
    """{name: (special point, index of the ascending frequency)}, e.g. nu_X_TA: (X, 0)."""
    return {"_".join(filter(None, ("nu", point, label))): (point, index)
            for point, branches in methods.PHONON_BRANCHES[structure].items()
            for label, index in branches.items()}


def property_names(structure: str = "fcc") -> list[str]:
    """Every property name for a ``structure`` ("fcc" or "bcc"), in table order."""
    return list(_UNITS) + list(_phonon_names(structure))


def unary_crystal(potential, element: str | None = None) -> UnaryCrystal:
    """The crystal of ``element`` (default: the model's only element); an
    :class:`~pesnet.errors.InputError` for a model of several elements without ``element``,
    an element the model lacks, or one whose reference crystal is not fcc or bcc."""
    have = [chemical_symbols[z] for z in potential.elements]
    if element is None:
        if len(have) > 1:
            raise InputError(
                f"the model covers {', '.join(have)}; properties are defined for unary "
                f"crystals only (a0, B, C11, C12, C44, E_vac, gamma_100, gamma_111, phonons "
                f"of one element; none for compounds yet): choose an element with --element")
        element = have[0]
    if element not in have:
        raise InputError(f"the model covers {', '.join(have)}, not {element!r}"
                         f"{did_you_mean(element, have)}")
    state = reference_states[atomic_numbers[element]] or {}
    structure = state.get("symmetry")
    if structure not in methods.PHONON_BRANCHES:
        raise InputError(f"{element}: ASE's reference crystal is {structure or 'unknown'}; "
                         f"properties are implemented for cubic fcc and bcc elements only")
    return UnaryCrystal(element, structure, float(state["a"]))


def select_names(only, structure: str) -> list[str]:
    """The property names ``only`` asks for (comma-separated text or a list; None: all), in
    table order; an unknown name is an :class:`~pesnet.errors.InputError`."""
    known = property_names(structure)
    if only is None:
        return known
    wanted = [n.strip() for n in (only.split(",") if isinstance(only, str) else only)]
    wanted = [n for n in wanted if n]
    for name in wanted:
        if name not in known:
            raise InputError(f"unknown property {name!r}{did_you_mean(name, known)}; known "
                             f"for {structure}: {', '.join(known)}")
    if not wanted:
        raise InputError("no property named (--only takes a comma-separated list)")
    return [n for n in known if n in wanted]


def member_potential(potential, m: int):
    """Member ``m`` as a one-member :class:`~pesnet.potential.model.Potential` (its weights
    are views of the ensemble's: no copy; calibration 1, as a single member has no spread)."""
    from pesnet.potential.model import Potential

    networks = {z: net.view(m, m + 1) for z, net in potential.networks.items()}
    return Potential(potential.descriptor, networks, potential.scalers,
                     potential.reference_energies, metadata={"member": m})


def calculator_properties(calc, crystal: UnaryCrystal, names=None) -> dict[str, float]:
    """{name: value} of the properties ``names`` (default all) for one ASE calculator.

    a₀ and B come first whatever is asked: every other property is computed at this
    calculator's own a₀."""
    symbol, structure = crystal.symbol, crystal.structure
    names = property_names(structure) if names is None else list(names)
    try:
        a0, b = methods.equation_of_state(calc, symbol, structure, crystal.a_guess)
    except ValueError as error:    # no minimum (NotImplementedError passes: a RuntimeError)
        raise PropertyError(f"{symbol} {structure}: no equation of state: {error}") from None
    out = {"a0": a0, "B": b}
    if {"C11", "C12", "C44"} & set(names):
        out.update(methods.elastic_constants(calc, symbol, structure, a0))
    if "E_vac" in names:
        out["E_vac"] = methods.vacancy_formation_energy(calc, symbol, structure, a0)
    for facet in ("100", "111"):
        if f"gamma_{facet}" in names:
            out[f"gamma_{facet}"] = methods.surface_energy(calc, symbol, structure, a0, facet)
    phonons = {n: v for n, v in _phonon_names(structure).items() if n in names}
    if phonons:
        points = sorted({point for point, _ in phonons.values()})
        nu = methods.phonon_frequencies(calc, symbol, structure, a0, points)
        out.update({n: float(nu[point][i]) for n, (point, i) in phonons.items()})
    return {n: float(out[n]) for n in names}


def summarize(name: str, values, scale: float, reference: float | None = None
              ) -> PropertyResult:
    """A :class:`PropertyResult` of the member ``values`` (M,), the calibration factor
    ``scale`` and an optional ``reference`` value."""
    values = np.asarray(values, float)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    calibrated = scale * std
    error = within = None
    if reference is not None:
        error = mean - reference
        within = bool(abs(error) <= 2 * calibrated)
    return PropertyResult(name, _unit(name), values, mean, std, calibrated, reference, error,
                          within)


def _unit(name: str) -> str:
    return _UNITS[name][0] if name in _UNITS else "THz"


def ensemble_properties(potential, names=None, reference=None, element: str | None = None,
                        progress: bool = False) -> list[PropertyResult]:
    """Every property ``names`` (default all; a list or comma-separated text) of the unary
    crystal of ``element`` for each member of ``potential``, and for the ASE calculator
    ``reference`` if given: one :class:`PropertyResult` per property, in table order."""
    from pesnet.calculator import PESNetCalculator

    crystal = unary_crystal(potential, element)
    names = select_names(names, crystal.structure)
    # the reference first: a calculator that cannot do this element fails before the members
    calcs = [] if reference is None else [("reference", reference)]
    calcs += [(f"member {m}", PESNetCalculator(member_potential(potential, m)))
              for m in range(potential.n_members)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(disable=None, total=len(calcs), desc="properties", leave=False)
    rows = []
    for label, calc in calcs:
        rows.append(_one_calculator(calc, crystal, names, label))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    ref = rows.pop(0) if reference is not None else {}
    return [summarize(n, [row[n] for row in rows], potential.calibration[_scale_key(n)],
                      ref.get(n)) for n in names]


def _scale_key(name: str) -> str:
    return _UNITS[name][1] if name in _UNITS else "forces"


def _one_calculator(calc, crystal: UnaryCrystal, names, label: str) -> dict[str, float]:
    """:func:`calculator_properties`, with what a calculator cannot do as one clear line."""
    try:
        return calculator_properties(calc, crystal, names)
    except NotImplementedError as error:   # ASE's PropertyNotImplementedError, EMT's element
        raise PropertyError(f"{label} ({type(calc).__name__}) cannot compute the {crystal.symbol} "
                            f"properties: {error or type(error).__name__}") from None
    except PropertyError as error:
        raise PropertyError(f"{label}: {error}") from None


def format_table(results, calibrated: bool = True) -> str:
    """A text table: property, unit, mean ± std (calibrated if ``calibrated``), and with a
    reference its value, the error (and in %) and whether it lies within 2σ."""
    with_ref = any(r.reference is not None for r in results)
    head = ["property", "unit", "mean ± σ" + (" (calibrated)" if calibrated else ""), "raw σ"]
    if with_ref:
        head += ["reference", "error", "error %", "within 2σ"]
    lines = [head]
    for r in results:
        sigma = r.std_calibrated if calibrated else r.std
        row = [r.name, r.unit, f"{r.mean:.4g} ± {sigma:.2g}", f"{r.std:.2g}"]
        if with_ref:
            row += ["-", "-", "-", "-"] if r.reference is None else [
                f"{r.reference:.4g}", f"{r.error:+.2g}", f"{r.error_pct:+.2f}",
                "yes" if r.within_2sigma else "no"]
        lines.append(row)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                     for line in lines)


def results_json(results) -> dict:
    """{name: {unit, values, mean, std, std_calibrated, reference, error, error_pct,
    within_2sigma}}, JSON-able."""
    return {r.name: {"unit": r.unit, "values": r.values.tolist(), "mean": r.mean,
                     "std": r.std, "std_calibrated": r.std_calibrated,
                     "reference": r.reference, "error": r.error, "error_pct": r.error_pct,
                     "within_2sigma": r.within_2sigma} for r in results}
