"""The ASE calculator: a pesnet ensemble potential with its uncertainty on every answer.

>>> from pesnet.calculator import PESNetCalculator
>>> atoms.calc = PESNetCalculator("model.h5")               # or .from_mlflow("models:/Cu/3")
>>> atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
>>> atoms.calc.get_property("forces_std", atoms)            # calibrated ensemble spread

Properties (ASE units: eV, Å, eV/Å, eV/Å³): ``energy`` and ``free_energy`` (the same: no
electronic entropy), ``energies`` per atom, ``forces``, ``stress`` (Voigt, ASE's sign; for
cells with three cell vectors), and the ensemble's calibrated standard deviations
``energy_std``, ``energies_std``, ``forces_std``, ``stress_std``. All are the ensemble means
and spreads :meth:`Potential.predict` gives — computed by the same code, so the energy is the
model's to the last bit.

How it is fast. A step needs the symmetry functions G and the forces F = −Σ_i (∂E_i/∂G_i)
(∂G_i/∂r) of every member; the calculator never forms the descriptor Jacobian but pulls the
networks' input gradients back through the bonds (:mod:`pesnet.descriptors.acsf_evaluator`). The
neighbour list is a Verlet list with a ``skin`` (Å): built for cutoff + skin and reused until an
atom has moved more than skin/2 (or the cell, periodicity or atoms change), its bond vectors
recomputed from the current positions each step (:mod:`pesnet.descriptors.bonds`). BLAS runs
on ``blas_threads`` threads during a step (1 by default: the products are small and a second
thread costs more than it gives).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import (
    Calculator,
    CalculatorSetupError,
    PropertyNotImplementedError,
    all_changes,
)
from ase.calculators.calculator import InputError as AseInputError
from ase.data import chemical_symbols

from pesnet.data.validate import structure_name, structure_problem
from pesnet.descriptors.bonds import NeighbourCache
from pesnet.errors import InputError

__all__ = ["PESNetCalculator", "UnsupportedElementError", "InvalidStructureError"]


class UnsupportedElementError(InputError, AseInputError):
    """The structure holds an element the model has no network for.

    Both a pesnet :class:`~pesnet.errors.InputError` and an ASE
    :class:`ase.calculators.calculator.InputError`, so either family of handlers catches it.
    """


class InvalidStructureError(InputError, AseInputError):
    """The structure cannot be evaluated: no atoms, an invalid atomic number, NaN or infinite
    positions or cell, or a periodic cell with zero volume (see
    :func:`pesnet.data.validate.structure_problem`). Both a pesnet and an ASE ``InputError``."""


def _symbol(z: int) -> str:
    return chemical_symbols[z] if 0 < z < len(chemical_symbols) else "?"


_BLAS = None


def _blas_limit(threads):
    """A context manager limiting BLAS to ``threads`` (no-op for ``None``)."""
    global _BLAS
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=int(threads), user_api="blas")


class PESNetCalculator(Calculator):
    """ASE calculator of a pesnet ensemble potential (see the module doc).

    ``model``: path of a model file (``model.h5``) or a :class:`~pesnet.potential.model.Potential`.
    ``skin``: Verlet skin of the neighbour list (Å; 0 rebuilds it every step).
    ``blas_threads``: BLAS threads during a calculation (``None`` leaves the setting alone).

    After a calculation ``calc.prediction`` holds the full
    :class:`~pesnet.potential.model.PotentialPrediction` (with every member's values when
    ``members=True``).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress",
                              "energy_std", "energies_std", "forces_std", "stress_std"]
    default_parameters = {"skin": 0.5, "blas_threads": 1, "members": False}

    def __init__(self, model, *, skin: float = 0.5, blas_threads: int | None = 1,
                 members: bool = False, **kwargs):
        from pesnet.potential.io import load_model
        from pesnet.potential.model import Potential

        if isinstance(model, Potential):
            self.potential, self.model_path = model, None
        elif isinstance(model, (str, Path)):
            self.potential, self.model_path = load_model(model), str(model)
        else:
            raise CalculatorSetupError(
                f"PESNetCalculator needs a model file path or a Potential, got "
                f"{type(model).__name__}")
        if not float(skin) >= 0:
            raise CalculatorSetupError(f"skin must be >= 0 Å, got {skin!r}")
        if blas_threads is not None and (isinstance(blas_threads, bool) or not isinstance(
                blas_threads, int) or blas_threads < 1):
            raise CalculatorSetupError(f"blas_threads must be a positive integer or None, got "
                                       f"{blas_threads!r}")
        super().__init__(skin=float(skin), blas_threads=blas_threads, members=bool(members),
                         **kwargs)
        self.model_uri = None   # set by from_mlflow
        self.prediction = None
        self._evaluator = self.potential.structure_evaluator()
        self._neighbours = NeighbourCache(self.potential.descriptor.cutoff, float(skin))
        self._known = np.zeros(max(self.potential.elements) + 1, dtype=bool)
        self._known[list(self.potential.elements)] = True
        self._element_cache = (None, None)

    @classmethod
    def from_mlflow(cls, model_uri: str, tracking_uri: str | None = None, **kwargs):
        """A calculator of a model logged to MLflow, e.g. ``"models:/Cu/3"`` (registered name
        and version), ``"models:/Cu@champion"`` or ``"runs:/<run id>/model"``, from the store
        ``tracking_uri`` (default ``$MLFLOW_TRACKING_URI``, else pesnet's
        ``mlruns/mlflow.db``). Other keywords go to the constructor.

        The calculator knows no MLflow: the loader is whatever the entry-point group
        ``pesnet.model_sources`` names for the URI's scheme (pesnet's tracking layer,
        :func:`pesnet.tracking.model_loading.load_potential`, for ``models`` and ``runs``);
        it downloads, reads the model file whole and never changes MLflow's global state.
        """
        scheme = str(model_uri).split(":", 1)[0]
        loader = _model_source(scheme)
        if loader is None:
            raise CalculatorSetupError(f"no pesnet model source for {model_uri!r} (known "
                                       f"schemes: {', '.join(sorted(_model_sources())) or 'none'})")
        try:
            potential = loader(model_uri, tracking_uri)
        except InputError as error:
            raise CalculatorSetupError(str(error)) from None
        calc = cls(potential, **kwargs)
        calc.model_uri = model_uri
        return calc

    # -- ASE interface --------------------------------------------------------------------
    def set(self, **kwargs):
        changed = super().set(**kwargs)
        if "skin" in changed:
            self._neighbours = NeighbourCache(self.potential.descriptor.cutoff,
                                              float(self.parameters.skin))
        return changed

    def reset(self):
        super().reset()
        self.prediction = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """Fill ``self.results`` for ``atoms``: energies, forces and their spreads in one pass
        whatever was asked (optimisers, NEB and most scripts ask for the energy, then the
        forces: computing the energy alone would do the whole network pass twice), stress
        only when asked for (its virial sum is the one part a step does not need)."""
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        problem = structure_problem(atoms)
        if problem is not None:
            raise InvalidStructureError(f"{structure_name(atoms)}: {problem}")
        self._check_elements(atoms)
        want_stress = "stress" in properties or "stress_std" in properties
        if want_stress and (atoms.cell.rank < 3 or not atoms.pbc.any()):
            raise PropertyNotImplementedError(
                "stress needs a periodic structure with three cell vectors (the volume)")
        evaluator = self._evaluator
        with _blas_limit(self.parameters.blas_threads):
            element = self._element_indices(atoms)
            pairs = self._neighbours.get(atoms, element, len(self.potential.elements))
            out = evaluator.evaluate([atoms], pairs, forces=True, virial=want_stress)
            p = self.potential.summarize(out, np.array([0, len(atoms)]),
                                         [atoms] if want_stress else None,
                                         members=self.parameters.members)
        self.prediction = p
        energy = float(p.energy[0])
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["energies"] = p.energies
        self.results["energy_std"] = float(p.energy_std[0])
        self.results["energies_std"] = p.energies_std
        self.results["forces"] = p.forces
        self.results["forces_std"] = p.forces_std
        if want_stress:
            self.results["stress"] = p.stress[0]
            self.results["stress_std"] = p.stress_std[0]

    def check_state(self, atoms, tol=1e-15):
        """The system changes since the last calculation, as
        :func:`ase.calculators.calculator.compare_atoms` finds them (same rules), but without
        its per-array ``np.allclose`` overhead (~0.1 ms a property on every force call)."""
        previous = self.atoms
        if previous is None:
            return list(all_changes)
        changes = []
        check = set(all_changes) - set(self.ignored_changes)
        for name in ("cell", "pbc"):
            if name in check:
                check.discard(name)
                a = np.asarray(getattr(previous, name))
                b = np.asarray(getattr(atoms, name))
                if not _close(a, b, tol):
                    changes.append(name)
        mine, theirs = previous.arrays, atoms.arrays
        changes += sorted(check & (set(mine) ^ set(theirs)))
        for name in sorted(check & set(mine) & set(theirs)):
            if not _close(mine[name], theirs[name], tol):
                changes.append(name)
        return changes

    def _check_elements(self, atoms) -> None:
        table = self._known
        numbers = atoms.numbers
        if len(numbers) == 0 or (numbers.min() > 0 and numbers.max() < len(table)
                                 and table[numbers].all()):
            return
        known = np.isin(numbers, self.potential.elements)
        numbers = atoms.numbers[~known]
        where = np.flatnonzero(~known)
        found = ", ".join(f"{_symbol(z)} (Z={z})" for z in sorted(set(numbers.tolist())))
        have = ", ".join(_symbol(z) for z in self.potential.elements)
        shown = ", ".join(str(i) for i in where[:10]) + (" …" if len(where) > 10 else "")
        raise UnsupportedElementError(
            f"the model covers {have} only; these atoms hold {found} (atom indices {shown}). "
            f"A model knows only the elements it was trained on: retrain with data that "
            f"contains them")

    def _element_indices(self, atoms) -> np.ndarray:
        key = atoms.numbers.tobytes()
        if self._element_cache[0] != key:
            self._element_cache = (key, self._evaluator.element_indices(atoms))
        return self._element_cache[1]

    @property
    def neighbour_list_builds(self) -> int:
        """How many times the neighbour list has been built (for checking the skin)."""
        return self._neighbours.n_builds

    def __repr__(self) -> str:
        source = self.model_uri or self.model_path or "<Potential>"
        return (f"PESNetCalculator({source!r}, members={self.potential.n_members}, elements="
                f"{[_symbol(z) for z in self.potential.elements]}, skin={self.parameters.skin})")


def _close(a, b, tol) -> bool:
    """Same shape and |a − b| ≤ tol everywhere (NaN is never close), like
    ``ase.calculators.calculator.equal(a, b, atol=tol)``."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype == bool or b.dtype == bool:
        return bool(np.array_equal(a, b))
    with np.errstate(invalid="ignore"):    # inf − inf: NaN, never close
        return bool((np.abs(a - b) <= tol).all())


#: Entry-point group of model loaders by URI scheme (``models``, ``runs``): a callable
#: ``(model_uri, tracking_uri) -> Potential``.
MODEL_SOURCES = "pesnet.model_sources"


def _model_sources() -> dict:
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group=MODEL_SOURCES)}


def _model_source(scheme: str):
    """The loader registered for ``scheme`` (imported only now), or None."""
    entry = _model_sources().get(scheme)
    return None if entry is None else entry.load()
