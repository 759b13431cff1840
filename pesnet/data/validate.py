"""Checks every configuration passes before it enters a dataset.

Each check raises :class:`pesnet.errors.ConfigurationError` naming the file and the
configuration index, so the user can find the record that is wrong.
"""

from __future__ import annotations

import numpy as np

from pesnet.errors import ConfigurationError, InputError
from pesnet.neighbours import neighbour_list

#: Atoms closer than this (Å) are taken as an input error (duplicated or corrupted atoms).
MIN_DISTANCE = 0.1
#: Radius (Å, ≥ MIN_DISTANCE) of the neighbour search behind the overlap check; pairs are then
#: filtered at MIN_DISTANCE. A cell list sized for 0.1 Å has ~10^5 cells for a 7 Å cell
#: (12 ms per 32-atom Cu configuration); at 1 Å, 0.14 ms, and physical structures have few
#: pairs that close.
OVERLAP_SEARCH = 1.0
#: Relative tolerance of the symmetry of a (3, 3) stress label (|σ_ij - σ_ji| against
#: max(1 eV/Å³, max |σ|)): printed DFT stresses are symmetric to ~1e-9 of their magnitude.
SYMMETRY_TOLERANCE = 1e-6
#: Periodic cells whose volume (area, length for 2-D and 1-D periodicity) is below this are
#: degenerate (Å³, Å², Å).
MIN_PERIODIC_MEASURE = 1e-6


def _nonfinite(values, what) -> str | None:
    """A message if ``values`` holds NaN or ±inf (naming the first place), else ``None``."""
    values = np.asarray(values, dtype=float)
    if np.isfinite(values).all():
        return None
    where = np.argwhere(~np.isfinite(values))[0]
    location = f" (first at {tuple(int(w) for w in where)})" if values.ndim else ""
    return f"{what} contains NaN or infinite values{location}"


def _require_finite(values, what, path, index):
    problem = _nonfinite(values, what)
    if problem:
        raise ConfigurationError(path, index, problem)


def _periodic_measure(cell: np.ndarray, pbc: np.ndarray) -> float:
    """Volume (area, length) spanned by the periodic cell vectors (Å³, Å², Å).

    |det|, |a × b| and |a| rather than sqrt(det(Gram)): the Gram determinant cancels
    catastrophically for long, skewed vectors and would call a good cell flat.
    """
    vectors = cell[pbc]
    if len(vectors) == 3:
        return float(abs(np.linalg.det(vectors)))
    if len(vectors) == 2:
        return float(np.linalg.norm(np.cross(vectors[0], vectors[1])))
    return float(np.linalg.norm(vectors[0]))


def structure_problem(atoms) -> str | None:
    """Why ``atoms`` (an :class:`ase.Atoms`) cannot be evaluated, or ``None`` if it can.

    Checks what every entry point needs before a neighbour search: at least one atom, atomic
    numbers in 1–118, finite positions (Å) and cell (Å), and a periodic cell that spans a
    non-zero volume (area, length) along its periodic directions. Cheap (no neighbour search):
    the calculator runs it on every step.
    """
    numbers = np.asarray(atoms.numbers)
    if len(numbers) == 0:
        return "the structure has no atoms"
    if numbers.min() < 1 or numbers.max() > 118:
        bad = int(numbers[(numbers < 1) | (numbers > 118)][0])
        return f"invalid atomic number {bad}"
    problem = _nonfinite(atoms.positions, "positions")
    if problem:
        return problem
    cell = np.asarray(atoms.cell.array, dtype=float)
    problem = _nonfinite(cell, "cell")
    if problem:
        return problem
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any() and _periodic_measure(cell, pbc) < MIN_PERIODIC_MEASURE:
        kind = {3: "volume", 2: "area", 1: "length"}[int(pbc.sum())]
        return f"periodic cell has zero {kind} (cell {cell.round(6).tolist()}, pbc {pbc.tolist()})"
    return None


def structure_name(atoms) -> str:
    """``Atoms(Cu4)``, or ``Atoms(3 atoms)`` where an atomic number has no symbol."""
    numbers = np.asarray(atoms.numbers)
    if len(numbers) and (numbers.min() < 1 or numbers.max() > 118):
        return f"Atoms({len(numbers)} atoms)"
    return f"Atoms({atoms.get_chemical_formula()})"


def check_structure(atoms, where: str | None = None) -> None:
    """Raise :class:`~pesnet.errors.InputError` ``"{where} {name}: {problem}"`` if
    :func:`structure_problem` finds one; ``where`` (e.g. ``"structure 3"``) and
    :func:`structure_name` tell the user which structure."""
    problem = structure_problem(atoms)
    if problem is not None:
        name = structure_name(atoms) if where is None else f"{where} ({structure_name(atoms)})"
        raise InputError(f"{name}: {problem}")


def stress_problem(stress, pbc) -> str | None:
    """Why ``stress`` (eV/Å³, ASE's Voigt (6,) or a (3, 3) tensor) cannot label a structure
    with periodicity ``pbc``, or ``None`` if it can.

    σ = (1/V) ∂E/∂ε needs a volume, so three periodic directions; a (3, 3) tensor must be
    symmetric (a Cauchy stress is: σ_ij = σ_ji), since its Voigt form keeps one of each pair.
    The sign and the units cannot be checked in general: ASE's readers convert them.
    """
    stress = np.asarray(stress)
    if stress.shape not in ((6,), (3, 3)):
        return (f"stress has shape {stress.shape}, expected (6,) (Voigt xx yy zz yz xz xy, "
                f"eV/Å³) or (3, 3)")
    problem = _nonfinite(stress, "stress")
    if problem:
        return problem
    pbc = np.asarray(pbc, dtype=bool)
    if not pbc.all():
        return (f"a stress label on a structure that is not periodic in three directions "
                f"(pbc {pbc.tolist()}); drop it (--stress-key) or fix the cell")
    if stress.shape == (3, 3):
        asymmetry = np.abs(stress - stress.T)
        if asymmetry.max() > SYMMETRY_TOLERANCE * max(1.0, float(np.abs(stress).max())):
            i, j = np.unravel_index(int(np.argmax(asymmetry)), (3, 3))
            return (f"the (3, 3) stress is not symmetric (σ[{i},{j}] = {stress[i, j]:.6g}, "
                    f"σ[{j},{i}] = {stress[j, i]:.6g} eV/Å³): not a stress tensor")
    return None


def validate_configuration(
    atoms, energy, forces, stress, path, index, require_energy=True, require_forces=True
) -> None:
    """Raise :class:`ConfigurationError` if the configuration cannot enter a dataset.

    ``atoms`` is an :class:`ase.Atoms`; ``energy`` (eV, scalar or None), ``forces`` (eV/Å,
    (n_atoms, 3) or None) and ``stress`` (eV/Å³, (6,), (3, 3) or None; see
    :func:`stress_problem`) are its labels. ``index`` names the configuration in messages.
    """
    n_atoms = len(atoms)
    problem = structure_problem(atoms)
    if problem is not None:
        raise ConfigurationError(path, index, problem)

    if energy is None:
        if require_energy:
            raise ConfigurationError(
                path, index, "no energy label (use --energy-key, or --allow-unlabelled to accept)"
            )
    else:
        _require_finite(energy, "energy", path, index)
    if forces is None:
        if require_forces:
            raise ConfigurationError(
                path, index, "no forces label (use --forces-key, or --allow-unlabelled to accept)"
            )
    else:
        forces = np.asarray(forces)
        if forces.shape != (n_atoms, 3):
            raise ConfigurationError(
                path, index, f"forces have shape {forces.shape}, expected ({n_atoms}, 3)"
            )
        _require_finite(forces, "forces", path, index)
    if stress is not None:
        problem = stress_problem(stress, atoms.pbc)
        if problem is not None:
            raise ConfigurationError(path, index, problem)

    try:
        i, j, d = neighbour_list("ijd", atoms, max(OVERLAP_SEARCH, MIN_DISTANCE))
    except InputError as error:  # a cell too thin to search
        raise ConfigurationError(path, index, str(error)) from None
    close = d < MIN_DISTANCE
    if close.any():
        i, j, d = i[close], j[close], d[close]
        k = int(np.argmin(d))
        what = "an atom and its own periodic image" if i[k] == j[k] else f"atoms {i[k]} and {j[k]}"
        raise ConfigurationError(
            path, index, f"{what} are {d[k]:.4f} Å apart (minimum {MIN_DISTANCE} Å)"
        )
