"""Neighbour lists from a real library: matscipy (fast, C), with ASE's as the fallback.

Both return the same pairs in the same convention as :func:`ase.neighborlist.neighbor_list`:
for each pair (i, j, S) with ``|r_j + S·cell − r_i| < cutoff`` both (i, j) and (j, i) are listed;
``D = r_j + S·cell − r_i`` (Å) and ``d = |D|`` (Å); ``S`` is the integer cell shift.

matscipy needs a non-singular cell; molecules without a cell (and slabs whose cell has a zero
vector along a non-periodic axis) get a bounding cell along the non-periodic axes, which does
not change the pairs because no images are taken along those axes.
"""

from __future__ import annotations

import numpy as np

try:  # matscipy is a dependency; the fallback keeps pesnet usable where its wheel is missing
    from matscipy.neighbours import neighbour_list as _matscipy_neighbour_list
except ImportError:  # pragma: no cover - exercised only without matscipy
    _matscipy_neighbour_list = None


def _usable_cell(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float):
    """A non-singular cell equal to ``cell`` along periodic axes; (3, 3) Å."""
    cell = np.array(cell, dtype=float)
    if abs(np.linalg.det(cell)) > 1e-9:
        return cell
    extent = positions.max(axis=0) - positions.min(axis=0) if len(positions) else np.zeros(3)
    box = float(extent.max()) + 2.0 * cutoff + 1.0
    if not pbc.any():
        return np.eye(3) * box
    # Replace each degenerate non-periodic axis by a long vector orthogonal to the others.
    for axis in np.flatnonzero(~pbc):
        if np.linalg.norm(cell[axis]) > 1e-9 and abs(np.linalg.det(cell)) > 1e-9:
            continue
        others = [cell[k] for k in range(3) if k != axis]
        normal = np.cross(others[0], others[1])
        if np.linalg.norm(normal) < 1e-12:
            normal = np.eye(3)[axis]
        cell[axis] = normal / np.linalg.norm(normal) * box
    return cell


def neighbour_list(quantities: str, atoms, cutoff: float):
    """Pairs within ``cutoff`` (Å) of an :class:`ase.Atoms`, as matscipy/ASE return them.

    ``quantities`` is any combination of ``i``, ``j``, ``d``, ``D``, ``S`` (see module doc).
    Returns one array per letter, in order; ``i``/``j`` are int arrays of length n_pairs,
    ``d`` is (n_pairs,), ``D`` is (n_pairs, 3), ``S`` is (n_pairs, 3).
    """
    positions = atoms.get_positions()
    pbc = np.asarray(atoms.get_pbc(), dtype=bool)
    cell = np.asarray(atoms.get_cell())
    if _matscipy_neighbour_list is not None:
        try:
            usable = _usable_cell(positions, cell, pbc, cutoff)
            out = _matscipy_neighbour_list(
                quantities, positions=positions, cell=usable, pbc=pbc, cutoff=float(cutoff)
            )
            return out if isinstance(out, tuple) else (out,)
        except (ValueError, TypeError, np.linalg.LinAlgError, RuntimeError):
            pass  # fall back to ASE below
    from ase.neighborlist import neighbor_list as ase_neighbor_list

    out = ase_neighbor_list(quantities, atoms, float(cutoff))
    return out if isinstance(out, tuple) else (out,)
