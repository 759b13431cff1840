"""Bond lists for fast repeated evaluation: canonical order, a skin, and cached structure.

A :class:`PairList` holds every ordered pair (i, j, S) with ``|r_j + S·cell − r_i| < cutoff +
skin`` at the positions it was built from, sorted canonically by (centre i, element of j, j, S).
Its bond vectors are recomputed from the *current* positions on every call::

    D_b = r_{j_b} − r_{i_b} + S_b · cell        (Å),   d_b = |D_b|

so one list serves every geometry in which no atom has moved more than ``skin / 2`` from where
it was built (Verlet's criterion: then no pair can have crossed ``cutoff`` unseen). Pairs beyond
``cutoff`` stay in the list: every symmetry function and its derivative vanish there exactly
(cosine cutoff), so they add exact zeros.

The canonical order makes results independent of how the list was found (a cell-binning
search orders pairs by bin, which changes as atoms move): a list built now and a list built
ten MD steps ago and filtered give the same bonds in the same order, hence bit-identical sums.

:class:`NeighbourCache` keeps one list and rebuilds it when an atom has moved more than half the
skin, or the cell, periodicity, atomic numbers or atom count change.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pesnet.errors import ConfigurationError, InputError
from pesnet.neighbours import neighbour_pairs

#: Most neighbours one atom may have within a pair list's reach. Matter at ten times a
#: metal's density (~1 atom/Å³) has ~900 within 6 Å; beyond this limit atoms overlap each
#: other or their own periodic images (a cell vector of 1e-4 Å gives 10⁵ images in reach),
#: and the angular terms, quadratic in the neighbours (~0.5 GB at this limit), would
#: exhaust memory instead of answering.
MAX_NEIGHBOURS = 2000


class Geometry(NamedTuple):
    """Bond vectors of a :class:`PairList` at some positions: ``D`` (n_bonds, 3) Å and
    ``d`` (n_bonds,) Å."""

    D: np.ndarray
    d: np.ndarray


class PairList:
    """Ordered pairs of one or more configurations (``n_atoms`` atoms in all), canonical order.

    ``i``, ``j`` (n_bonds,) atom indices; ``shift`` (n_bonds, 3) integer cell shifts (float);
    ``element`` (n_atoms,) each atom's element index in the descriptor; ``config_bonds``
    (n_configs + 1,) delimit each configuration's bonds and ``config_atoms`` (n_configs + 1,)
    its atoms. ``reach`` = cutoff + skin (Å) the list was built with.
    """

    def __init__(self, i, j, shift, element, n_atoms, reach, config_atoms=None,
                 config_bonds=None):
        self.i = np.asarray(i, dtype=np.int64)
        self.j = np.asarray(j, dtype=np.int64)
        self.shift = np.asarray(shift, dtype=float).reshape(-1, 3)
        self.element = np.asarray(element, dtype=np.int64)
        self.n_atoms = int(n_atoms)
        self.reach = float(reach)
        self.config_atoms = (np.array([0, self.n_atoms]) if config_atoms is None
                             else np.asarray(config_atoms, dtype=np.int64))
        self.config_bonds = (np.array([0, len(self.i)]) if config_bonds is None
                             else np.asarray(config_bonds, dtype=np.int64))
        self._cells = None
        #: arrays derived from the bonds once and shared by the evaluators (name → array)
        self.memo = {}
        self._buffers = None

    def __len__(self) -> int:
        return len(self.i)

    @property
    def n_configs(self) -> int:
        return len(self.config_atoms) - 1

    # -- geometry -----------------------------------------------------------------------
    def geometry(self, positions: np.ndarray, cells) -> Geometry:
        """Bond vectors at ``positions`` (n_atoms, 3) with ``cells``: one (3, 3) cell, or one
        per configuration (n_configs, 3, 3). The arrays are reused by the next call."""
        positions = np.asarray(positions, dtype=float)
        if self._buffers is None:
            self._buffers = (np.empty((len(self.i), 3)), np.empty((len(self.i), 3)),
                             np.empty(len(self.i)))
        D, tmp, d = self._buffers
        np.take(positions, self.j, axis=0, out=D)
        np.take(positions, self.i, axis=0, out=tmp)
        D -= tmp
        D += self._shift_vectors(np.asarray(cells, dtype=float))
        np.multiply(D, D, out=tmp)
        np.add(tmp[:, 0], tmp[:, 1], out=d)
        d += tmp[:, 2]
        np.sqrt(d, out=d)
        return Geometry(D, d)

    def _shift_vectors(self, cells: np.ndarray) -> np.ndarray:
        """S · cell per bond (n_bonds, 3), cached while the cells are unchanged."""
        if self._cells is not None and np.array_equal(self._cells[0], cells):
            return self._cells[1]
        # elementwise, not a BLAS product: every bond's vector is then computed the same way
        # whatever the list's length (bit-identical results for fresh and kept lists)
        if cells.ndim == 2:
            vectors = _times_cell(self.shift, cells)
        else:
            vectors = np.empty_like(self.shift)
            for k in range(self.n_configs):
                span = slice(self.config_bonds[k], self.config_bonds[k + 1])
                vectors[span] = _times_cell(self.shift[span], cells[k])
        self._cells = (cells.copy(), vectors)
        return vectors

    # -- cached structure ---------------------------------------------------------------
    def rows(self, n_elements: int) -> np.ndarray:
        """Row ``i · n_elements + element of j`` of each bond (non-decreasing)."""
        key = ("rows", n_elements)
        if key not in self.memo:
            self.memo[key] = self.i * n_elements + self.element[self.j]
        return self.memo[key]

    @property
    def reverse(self) -> np.ndarray:
        """Index of each bond's reverse (j, i, −S), (n_bonds,); every bond has one."""
        if "reverse" not in self.memo:
            self.memo["reverse"] = _reverse_bonds(self.i, self.j, self.shift, self.element,
                                                    self.n_atoms)
        return self.memo["reverse"]


def _times_cell(shift: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """S · cell for integer shifts S (n, 3); (n, 3), a transposed view.

    Computed component by component on (n,) columns: the same operations per bond as a row
    at a time, but long loops instead of length-3 ones (~10× faster).
    """
    columns = np.ascontiguousarray(shift.T)
    out = np.empty((3, len(shift)))
    for x in range(3):
        np.multiply(columns[0], cell[0, x], out=out[x])
        out[x] += columns[1] * cell[1, x]
        out[x] += columns[2] * cell[2, x]
    return out.T


def _canonical_order(i, j, shift, element, n_atoms, n_elements):
    """Permutation sorting pairs by (i, element of j, j, shift)."""
    if len(i) == 0:
        return np.zeros(0, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    reach = int(np.abs(s).max())           # one flat reduction: cheaper than per-axis ones
    width = 2 * reach + 1
    primary = (i * n_elements + element[j]) * n_atoms + j
    span = width ** 3
    if int(primary.max()) < (1 << 62) // span:
        code = (s[:, 0] * width + s[:, 1]) * width + s[:, 2]
        code += reach * (width * width + width + 1)
        # keys are unique (no pair is listed twice), so an unstable (SIMD) sort is exact
        return np.argsort(primary * span + code)
    return np.lexsort((s[:, 2], s[:, 1], s[:, 0], primary))  # pragma: no cover


def _reverse_bonds(i, j, shift, element, n_atoms):
    """For bonds in canonical order, the index of (j, i, −S) for each (i, j, S)."""
    if len(i) == 0:
        return np.zeros(0, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    reach = np.abs(s).max(axis=0)
    width = 2 * reach + 1
    n_el = int(element.max()) + 1
    span = int(width.prod())

    def keys(a, b, sign):
        primary = (a * n_el + element[b]) * n_atoms + b
        t = sign * s + reach
        return primary, (t[:, 0] * width[1] + t[:, 1]) * width[2] + t[:, 2]

    primary_f, code_f = keys(i, j, 1)
    primary_r, code_r = keys(j, i, -1)
    n = len(i)
    if int(max(primary_f.max(), primary_r.max())) < (1 << 62) // span:
        # one integer key per bond; the canonical order sorts the forward keys
        rev = np.searchsorted(primary_f * span + code_f, primary_r * span + code_r)
        rev = np.minimum(rev, n - 1)
    else:  # pragma: no cover - keys beyond 62 bits (astronomically large systems)
        order = np.lexsort((np.concatenate([code_f, code_r]),
                            np.concatenate([primary_f, primary_r])))
        first, second = order[0::2], order[1::2]   # equal keys sit side by side
        rev = np.empty(n, dtype=np.int64)
        fwd = np.where(first < n, first, second)
        bwd = np.where(first < n, second, first) - n
        rev[bwd] = fwd
    if not np.array_equal(rev[rev], np.arange(len(i))):
        raise RuntimeError("neighbour list is not symmetric: a bond lacks its reverse")
    return rev


def check_distinct_positions(pairs: PairList, d: np.ndarray, where=None) -> None:
    """Refuse two atoms at one position (a bond shorter than 1e-8 Å), whose descriptor
    derivatives are undefined; ``where`` = (file, index) names the configuration."""
    if len(d) and d.min() < 1e-8:
        b = int(np.argmin(d))
        where = where or ("<atoms>", None)
        raise ConfigurationError(where[0], where[1], f"atoms {pairs.i[b]} and {pairs.j[b]} "
                                 "are at the same position")


def build_pairs(atoms, reach: float, element: np.ndarray, n_elements: int) -> PairList:
    """A :class:`PairList` of ``atoms`` with every pair closer than ``reach`` (Å).

    ``element`` (n_atoms,) is each atom's element index (0 … n_elements − 1). An atom with
    more than :data:`MAX_NEIGHBOURS` neighbours is an :class:`~pesnet.errors.InputError`.
    """
    n = len(atoms)
    i, j, S, reverse = neighbour_pairs(atoms, reach)
    counts = np.bincount(i, minlength=n)
    if len(i) and counts.max() > MAX_NEIGHBOURS:
        k = int(np.argmax(counts))
        raise InputError(
            f"atom {k} has {int(counts[k]):,} neighbours within {reach:g} Å (limit "
            f"{MAX_NEIGHBOURS:,}): atoms overlap each other or their own periodic images "
            f"(cell {np.asarray(atoms.cell.array).round(6).tolist()}, pbc "
            f"{np.asarray(atoms.pbc).tolist()})")
    order = _canonical_order(i, j, S, element, n, n_elements)
    pairs = PairList(i[order], j[order], S[order], element, n, reach)
    # the search knows each pair's reverse: carry it through the sort
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    pairs.memo["reverse"] = position[reverse[order]]
    return pairs


def concatenate_pairs(lists) -> PairList:
    """One :class:`PairList` of several configurations (atom indices offset)."""
    lists = list(lists)
    if len(lists) == 1:
        return lists[0]
    atom_counts = np.array([p.n_atoms for p in lists])
    bond_counts = np.array([len(p) for p in lists])
    atom_offsets = np.concatenate([[0], np.cumsum(atom_counts)])
    bond_offsets = np.concatenate([[0], np.cumsum(bond_counts)])
    shift = np.repeat(atom_offsets[:-1], bond_counts)
    pairs = PairList(
        np.concatenate([p.i for p in lists]) + shift,
        np.concatenate([p.j for p in lists]) + shift,
        np.concatenate([p.shift for p in lists]),
        np.concatenate([p.element for p in lists]),
        int(atom_offsets[-1]), min(p.reach for p in lists), atom_offsets, bond_offsets)
    if all("reverse" in p.memo for p in lists):
        pairs.memo["reverse"] = np.concatenate(
            [p.memo["reverse"] + offset for p, offset in zip(lists, bond_offsets)])
    return pairs


class NeighbourCache:
    """A :class:`PairList` kept across calls with a skin (Verlet list).

    ``cutoff`` (Å) is the largest distance that matters; ``skin`` (Å) the margin. The list is
    rebuilt when any atom has moved more than ``skin / 2`` since the last build, or when the
    cell, the periodic axes, the atomic numbers or the number of atoms change.
    ``n_builds`` counts rebuilds.
    """

    def __init__(self, cutoff: float, skin: float = 0.5):
        if skin < 0:
            raise ValueError(f"skin must be >= 0 Å, got {skin}")
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.pairs: PairList | None = None
        self.n_builds = 0
        self._key = None
        self._positions = None

    def reset(self) -> None:
        self.pairs = None
        self._key = None
        self._positions = None

    def get(self, atoms, element: np.ndarray, n_elements: int) -> PairList:
        """The pair list for ``atoms`` (rebuilt if needed); ``element`` as for
        :func:`build_pairs`."""
        positions = atoms.positions
        key = (len(atoms), atoms.numbers.tobytes(), np.asarray(atoms.cell).tobytes(),
               np.asarray(atoms.pbc).tobytes())
        if self.pairs is not None and key == self._key:
            delta = positions - self._positions
            moved = float(np.einsum("ax,ax->a", delta, delta).max()) if len(delta) else 0.0
            if moved <= 0.25 * self.skin * self.skin:
                return self.pairs
        self.pairs = build_pairs(atoms, self.cutoff + self.skin, element, n_elements)
        self._key = key
        self._positions = positions.copy()
        self.n_builds += 1
        return self.pairs
