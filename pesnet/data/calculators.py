"""A named registry of reference calculators (ASE calculators that label data).

The command line chooses a calculator by name from this registry, never by importing an
arbitrary object path. Later code (or a user's plug-in) adds entries with
:func:`register_calculator`.

>>> calc = make_calculator("emt")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pesnet.errors import InputError


@dataclass(frozen=True)
class CalculatorEntry:
    """A registered calculator: a factory taking keyword options, and what it needs."""

    name: str
    factory: Callable
    description: str
    requires: str | None = None  # the optional package it needs, for the error message


_REGISTRY: dict[str, CalculatorEntry] = {}


def register_calculator(name: str, factory: Callable, description: str, requires=None) -> None:
    """Add (or replace) a calculator under ``name``; ``factory(**options)`` returns it."""
    _REGISTRY[name] = CalculatorEntry(name, factory, description, requires)


def available_calculators() -> dict[str, CalculatorEntry]:
    """All registered calculators by name."""
    return dict(_REGISTRY)


def make_calculator(name: str, **options):
    """A new ASE calculator instance of the registered ``name``."""
    try:
        entry = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise InputError(f"unknown calculator {name!r}; known: {known}") from None
    try:
        return entry.factory(**options)
    except ImportError as error:
        hint = f" (install {entry.requires})" if entry.requires else ""
        raise InputError(f"calculator {name!r} is not available: {error}{hint}") from None


def _emt(**options):
    from ase.calculators.emt import EMT

    return EMT(**options)


def _lennard_jones(**options):
    from ase.calculators.lj import LennardJones

    return LennardJones(**options)


def _tblite(method):
    def factory(**options):
        from tblite.ase import TBLite

        return TBLite(method=method, verbosity=0, **options)

    return factory


def _pyscf(**defaults):
    def factory(**options):
        import pyscf  # noqa: F401  (fail here, with the install hint, not at the first frame)

        from pesnet.data.pyscf_calculator import PySCFCalculator

        return PySCFCalculator(**{**defaults, **options})

    return factory


register_calculator("emt", _emt, "ASE's effective-medium theory (Al Cu Ag Au Ni Pd Pt; H C N O)")
register_calculator("lj", _lennard_jones, "ASE's Lennard-Jones (parameters as keyword options)")
register_calculator("gfn2-xtb", _tblite("GFN2-xTB"), "GFN2-xTB via tblite", requires="tblite")
register_calculator("gfn1-xtb", _tblite("GFN1-xTB"), "GFN1-xTB via tblite", requires="tblite")
register_calculator("pyscf", _pyscf(), "Kohn-Sham DFT via PySCF (options xc, basis, charge, spin, "
                    "...; default PBE/def2-SVP)", requires="pyscf")
register_calculator("pbe-def2svp", _pyscf(xc="PBE", basis="def2-SVP"),
                    "PBE/def2-SVP via PySCF (density fitting, analytic forces)", requires="pyscf")
