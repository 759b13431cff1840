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

import numpy as np

try:  # vesin is a dependency; the fallback keeps pesnet usable where its wheel is missing
    from vesin import NeighborList as _VesinNeighborList
except ImportError:  # pragma: no cover - exercised only without vesin
    _VesinNeighborList = None


def _half_list(atoms, cutoff: float, quantities: str):
    """Each pair once (vesin's half list) as a dict letter → array, or None if vesin is
    unavailable or refuses the input."""
    if _VesinNeighborList is None:  # pragma: no cover
        return None
    try:
        search = _VesinNeighborList(cutoff=float(cutoff), full_list=False)
        out = search.compute(points=np.asarray(atoms.positions, dtype=float),
                             box=np.asarray(atoms.cell.array, dtype=float),
                             periodic=np.asarray(atoms.pbc, dtype=bool), quantities=quantities)
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
    if half is None:  # pragma: no cover - exercised only without vesin
        from ase.neighborlist import neighbor_list as ase_neighbor_list

        out = ase_neighbor_list(quantities, atoms, float(cutoff))
        return out if isinstance(out, tuple) else (out,)
    full = _mirror(half)
    order = np.argsort(full["i"], kind="stable")
    return tuple(full[letter][order] for letter in quantities)


def neighbour_pairs(atoms, cutoff: float):
    """Every ordered pair within ``cutoff`` (Å), unsorted, with each pair's reverse.

    Returns ``i``, ``j`` (n_pairs,) int64, ``S`` (n_pairs, 3) int64 and ``reverse``
    (n_pairs,): the index of (j, i, −S) for each (i, j, S).
    """
    half = _half_list(atoms, cutoff, "ijS")
    if half is None:  # pragma: no cover - exercised only without vesin
        from ase.neighborlist import neighbor_list as ase_neighbor_list

        i, j, S = ase_neighbor_list("ijS", atoms, float(cutoff))
        keep = (i < j) | ((i == j) & (_first_nonzero(S) > 0))
        half = {"i": i[keep].astype(np.int64), "j": j[keep].astype(np.int64),
                "S": S[keep].astype(np.int64)}
    full = _mirror(half)
    n = len(half["i"])
    reverse = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    return full["i"], full["j"], full["S"], reverse


def _first_nonzero(S: np.ndarray) -> np.ndarray:  # pragma: no cover - ASE fallback only
    """The first non-zero component of each shift (0 for a zero shift)."""
    S = np.asarray(S)
    first = np.argmax(S != 0, axis=1)
    return S[np.arange(len(S)), first]
