"""Neighbour lists from a real library: vesin (fast, C), with ASE's as the fallback.

Both give the same pairs in the same convention as :func:`ase.neighborlist.neighbor_list`:
for each pair (i, j, S) with ``|r_j + S·cell − r_i| < cutoff`` both (i, j) and (j, i) are listed;
``D = r_j + S·cell − r_i`` (Å) and ``d = |D|`` (Å); ``S`` is the integer cell shift.

vesin is asked for the half list (each pair once) and the full list is its mirror image: half
the search work, and every bond's reverse is known without a search
(:func:`neighbour_pairs`). Measured on one 108-atom periodic Cu cell at 6 Å (8,424 pairs):
matscipy 7.3 ms, vesin full list 3.0 ms, vesin half list 1.9 ms; small periodic cells, where
the cutoff reaches past the cell's half-width, are where matscipy's binning is slow.
"""

from __future__ import annotations

import sys
from functools import lru_cache

import numpy as np

from pesnet.errors import InputError


def _import_vesin():
    """vesin's ``NeighborList`` class, or ``None`` where vesin is missing (ASE's list is the
    fallback). vesin imports torch and cupy at import time when they are installed, for its
    tensor inputs (torch: 3.8 s measured); pesnet passes NumPy arrays only, so both are
    hidden from that one import (a ``None`` entry in ``sys.modules`` makes ``import``
    raise ImportError) and the entries are removed again at once."""
    hidden = [name for name in ("torch", "cupy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None
    try:
        from vesin import NeighborList
    except ImportError:  # pragma: no cover - exercised only without vesin
        return None
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return NeighborList


_VesinNeighborList = _import_vesin()


#: vesin's cap on the number of cells in its cell list (``MAX_NUMBER_OF_CELLS`` in vesin 0.6).
_VESIN_MAX_CELLS = 1e5
#: Periodic images searched around each cell (product over the periodic directions) above
#: which a search is refused: both vesin and ASE would loop (or allocate) for minutes.
MAX_SEARCHED_CELLS = 1e6
#: Neighbouring cells (product over all directions) above which vesin's loop over them costs
#: more than ASE's binning; only a cutoff far beyond a small molecule's size gets there.
_VESIN_MAX_SEARCHED = 1e4


def _box_for_search(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """The cell with its open directions replaced by unit vectors orthogonal to the periodic
    ones (identity when nothing is periodic), as vesin builds its box. (3, 3), Å."""
    box = np.array(cell, dtype=float)
    periodic = np.flatnonzero(pbc)
    if len(periodic) == 0:
        return np.eye(3)
    if len(periodic) == 1:
        k = periodic[0]
        a = box[k]
        b = np.array([0.0, 1.0, 0.0])
        if abs(a @ b) > 0.9 * np.linalg.norm(a):
            b = np.array([0.0, 0.0, 1.0])
        c = np.cross(a, b)
        c /= np.linalg.norm(c)
        b = np.cross(c, a)
        box[(k + 1) % 3] = b / np.linalg.norm(b)
        box[(k + 2) % 3] = c
    elif len(periodic) == 2:
        normal = np.cross(box[periodic[0]], box[periodic[1]])
        box[3 - periodic.sum()] = normal / np.linalg.norm(normal)
    return box


def search_grid(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float):
    """The cell-list grid a search with ``cutoff`` (Å) needs, as vesin 0.6 would build it.

    Returns ``cells`` (3,) float — cells per direction after vesin's cap of 10⁵ cells (a zero
    here means vesin would divide by zero, which kills the process with SIGFPE) — and
    ``searched`` (3,) float (may be inf), the cells searched on each side along each
    direction. The spacing of a periodic direction is the distance between the cell's
    opposite faces; of an open direction, the atoms' extent (at least 1 Å) plus 1%.
    """
    box = _box_for_search(cell, pbc)
    normals = np.cross(box[[1, 2, 0]], box[[2, 0, 1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        faces = np.abs(np.einsum("kx,kx->k", normals, box))
    extent = positions.max(axis=0) - positions.min(axis=0)
    extent[extent < 1e-6] = 1.0
    faces = np.where(pbc, faces, 1.01 * extent)
    cells = np.maximum(np.trunc(faces / cutoff), 1.0)
    if np.prod(cells) > _VESIN_MAX_CELLS:  # vesin rescales, keeping the ratios
        x_to_y, y_to_z = cells[0] / cells[1], cells[1] / cells[2]
        z = np.trunc(np.cbrt(_VESIN_MAX_CELLS / (x_to_y * y_to_z * y_to_z)))
        y = np.trunc(y_to_z * z)
        cells = np.array([np.trunc(x_to_y * y), y, z])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        searched = np.ceil(cutoff * cells / faces)
    searched = np.where(np.isnan(searched) | (searched < 1), 1.0, searched)
    return cells, searched


@lru_cache(maxsize=256)
def _periodic_grid(cell_bytes: bytes, cutoff: float):
    """:func:`search_grid` of a cell periodic along all three axes (``cell_bytes``: its
    (3, 3) float64 matrix, Å), which does not depend on the positions: datasets repeat a few
    cells over many configurations, and the grid costs ~90 µs, as much as a small search.
    The arrays are read-only (shared between calls)."""
    cell = np.frombuffer(cell_bytes, dtype=float).reshape(3, 3)
    cells, searched = search_grid(np.zeros((1, 3)), cell, np.ones(3, bool), cutoff)
    cells.setflags(write=False)
    searched.setflags(write=False)
    return cells, searched


def _check_searchable(atoms, cutoff: float, searched: np.ndarray, pbc: np.ndarray) -> None:
    """Refuse a search over more periodic images than :data:`MAX_SEARCHED_CELLS`."""
    n_cells = float(np.prod(2.0 * searched[pbc] + 1.0))
    if n_cells > MAX_SEARCHED_CELLS:
        raise InputError(
            f"the periodic cell is too thin for a {cutoff:g} Å neighbour search: "
            f"{n_cells:.3g} image cells to search (limit {MAX_SEARCHED_CELLS:.0e}); "
            f"cell {np.asarray(atoms.cell.array).round(6).tolist()}, pbc "
            f"{np.asarray(atoms.pbc).tolist()}. A skewed cell can be reduced first "
            "(ase.build.niggli_reduce)"
        )


def _half_list(atoms, cutoff: float, quantities: str):
    """Each pair once (vesin's half list) as a dict letter → array, or None if vesin is
    unavailable or its grid for this input would be degenerate (then ASE searches).

    Raises ValueError when the cell is so thin that no library can search it in reasonable
    time (see :func:`search_grid`).
    """
    positions = np.asarray(atoms.positions, dtype=float)
    if len(positions) == 0:
        return None
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.ascontiguousarray(atoms.cell.array, dtype=float)
    cells, searched = (_periodic_grid(cell.tobytes(), float(cutoff)) if pbc.all()
                       else search_grid(positions, cell, pbc, float(cutoff)))
    _check_searchable(atoms, cutoff, searched, pbc)
    if (_VesinNeighborList is None or not (cells >= 1).all()
            or np.prod(2.0 * searched + 1.0) > _VESIN_MAX_SEARCHED):
        return None
    try:
        search = _VesinNeighborList(cutoff=float(cutoff), full_list=False)
        out = search.compute(points=positions, box=np.asarray(atoms.cell.array, dtype=float),
                             periodic=pbc, quantities=quantities)
    except (ValueError, TypeError, RuntimeError):  # pragma: no cover - degenerate input
        return None
    half = dict(zip(quantities, out))
    for letter in "ij":
        if letter in half:
            half[letter] = half[letter].astype(np.int64)
    if "S" in half:
        half["S"] = half["S"].astype(np.int64)
    return half


def _mirror(half: dict) -> dict:
    """The full list of a half list: the pairs, then every pair reversed."""
    full = {}
    for letter, values in half.items():
        if letter == "i":
            full["i"] = np.concatenate([values, half["j"]])
        elif letter == "j":
            full["j"] = np.concatenate([values, half["i"]])
        elif letter == "d":
            full["d"] = np.concatenate([values, values])
        else:  # D and S change sign
            full[letter] = np.concatenate([values, -values])
    return full


def neighbour_list(quantities: str, atoms, cutoff: float):
    """Pairs within ``cutoff`` (Å) of an :class:`ase.Atoms`, as ASE returns them (sorted by i).

    ``quantities`` is any combination of ``i``, ``j``, ``d``, ``D``, ``S`` (see module doc).
    Returns one array per letter, in order; ``i``/``j`` are int arrays of length n_pairs,
    ``d`` is (n_pairs,), ``D`` is (n_pairs, 3), ``S`` is (n_pairs, 3).
    """
    need = "".join(sorted(set(quantities) | {"i", "j"}))
    half = _half_list(atoms, cutoff, need)
    if half is None:  # degenerate grid, or no vesin
        return _ase_search(quantities, atoms, cutoff)
    full = _mirror(half)
    order = np.argsort(full["i"], kind="stable")
    return tuple(full[letter][order] for letter in quantities)


def neighbour_pairs(atoms, cutoff: float):
    """Every ordered pair within ``cutoff`` (Å), unsorted, with each pair's reverse.

    Returns ``i``, ``j`` (n_pairs,) int64, ``S`` (n_pairs, 3) int64 and ``reverse``
    (n_pairs,): the index of (j, i, −S) for each (i, j, S).
    """
    half = _half_list(atoms, cutoff, "ijS")
    if half is None:  # degenerate grid, or no vesin
        i, j, S = _ase_search("ijS", atoms, cutoff)
        keep = (i < j) | ((i == j) & (_first_nonzero(S) > 0))
        half = {"i": i[keep].astype(np.int64), "j": j[keep].astype(np.int64),
                "S": S[keep].astype(np.int64)}
    full = _mirror(half)
    n = len(half["i"])
    reverse = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    return full["i"], full["j"], full["S"], reverse


def _ase_search(quantities: str, atoms, cutoff: float):
    """ASE's neighbour list, for inputs vesin cannot take: the open directions' cell vectors
    (which do not matter to the search, but a degenerate pair of them makes ASE's binning
    divide by zero) replaced as vesin does (:func:`_box_for_search`), and a clear
    :class:`InputError` where ASE's binning cannot size its arrays."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list as ase_neighbor_list

    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.asarray(atoms.cell.array, dtype=float)
    search = Atoms(numbers=atoms.numbers, positions=atoms.positions,
                   cell=_box_for_search(cell, pbc), pbc=pbc)
    try:
        out = ase_neighbor_list(quantities, search, float(cutoff))
    except (ValueError, MemoryError) as error:
        raise InputError(f"cannot search neighbours within {cutoff:g} Å in this cell "
                         f"({error})") from None
    return out if isinstance(out, tuple) else (out,)


def _first_nonzero(S: np.ndarray) -> np.ndarray:  # pragma: no cover - ASE fallback only
    """The first non-zero component of each shift (0 for a zero shift)."""
    S = np.asarray(S)
    first = np.argmax(S != 0, axis=1)
    return S[np.arange(len(S)), first]
