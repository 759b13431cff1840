"""Base class of descriptor kinds built from bond terms: everything but the physics.

A kind whose features are sums over a centre's bonds within the cutoff implements one method,
:meth:`BondDescriptor.bond_terms`, on a flat bond list (bonds sorted by centre):

    values   G_i,f                         (n_atoms, F)
    gradient g_b = ∂G_{i_b}/∂D_b           (n_bonds, F, 3), 1/Å per unit of G

and this class turns that into the :class:`~pesnet.descriptors.protocol.Descriptor` protocol:
neighbour search and checks (:meth:`compute_many`), sparse (centre, neighbour) blocks and strain
derivatives (:mod:`pesnet.descriptors.derivatives`), element lookup with clear errors, JSON
parameters, equality, and a prediction-time evaluator
(:class:`~pesnet.descriptors.bond_gradient_evaluator.BondGradientEvaluator`, which a kind may
replace by a faster one, as ACSF does). A subclass sets ``kind``, ``elements`` (via
:func:`element_numbers`), ``cutoff``, ``n_features`` and provides ``labels``, ``params``,
``from_params`` and ``bond_terms``.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from pesnet.descriptors.derivatives import bond_to_blocks, strain_from_bonds
from pesnet.descriptors.protocol import DescriptorResult
from pesnet.errors import ConfigurationError, InputError
from pesnet.neighbours import neighbour_list

#: Largest cutoff (Å) accepted. Atom-centred descriptors describe a local environment
#: (published ACSF sets use 4–12 Å); the neighbour count grows as the cube of the cutoff, so
#: a typo such as 1000 Å would search millions of periodic images per atom.
MAX_CUTOFF = 20.0


def check_new_cutoff(cutoff: float) -> None:
    """Refuse a cutoff (Å) above :data:`MAX_CUTOFF` for a descriptor being chosen now (a spec,
    a command line, a parameter file); model files written with a longer one still load."""
    if float(cutoff) > MAX_CUTOFF:
        raise InputError(f"descriptor cutoff {float(cutoff):g} Å is above the {MAX_CUTOFF:g} Å "
                         "a local descriptor can use (typical: 4–8 Å)")


def element_numbers(elements) -> tuple[int, ...]:
    """Sorted distinct atomic numbers of ``elements`` (symbols or numbers); ``InputError``
    for an unknown symbol, an invalid number or an empty list."""
    numbers = set()
    for element in elements:
        if isinstance(element, str):
            if element not in atomic_numbers:
                raise InputError(f"unknown chemical symbol {element!r} in descriptor elements")
            numbers.add(atomic_numbers[element])
        else:
            z = int(element)
            if not 0 < z < len(chemical_symbols):
                raise InputError(f"invalid atomic number {element!r} in descriptor elements")
            numbers.add(z)
    if not numbers:
        raise InputError("the descriptor needs at least one element")
    return tuple(sorted(numbers))


class FlatResult(NamedTuple):
    """Descriptors of n_c configurations, concatenated (N atoms, M blocks, F features).

    ``values`` (N, F); ``offsets`` (n_c + 1,) each configuration's first atom;
    ``periodic`` (n_c,) whether it has a periodic axis. With derivatives (else ``None``):
    ``block_offsets`` (n_c + 1,) each configuration's first block; ``centres``,
    ``neighbours`` (M,) configuration-local atom indices, sorted by (centre, neighbour)
    within a configuration; ``derivatives`` (M, F, 3) 1/Å; ``strain`` (N, F, 3, 3), zero for
    the atoms of configurations without a periodic axis, ``None`` if no configuration has
    one. Configuration k's :class:`DescriptorResult` is the slice k of each.
    """

    values: np.ndarray
    offsets: np.ndarray
    periodic: np.ndarray
    block_offsets: np.ndarray | None = None
    centres: np.ndarray | None = None
    neighbours: np.ndarray | None = None
    derivatives: np.ndarray | None = None
    strain: np.ndarray | None = None


def _default_where(atoms):
    return lambda: (f"Atoms({atoms.get_chemical_formula()})", atoms.info.get("dataset_index"))


def _located(where):
    return where() if callable(where) else where


class BondDescriptor:
    """A descriptor kind built from bond terms (see the module doc)."""

    kind: str = ""
    elements: tuple = ()
    cutoff: float = 0.0
    n_features: int = 0

    # -- to implement -------------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def params(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_params(cls, params: dict):
        raise NotImplementedError

    def bond_terms(self, n_atoms: int, element, i, j, d, D, derivatives: bool):
        """Values (n_atoms, F) and, if ``derivatives``, bond gradients ∂G_i/∂D_b
        (n_bonds, F, 3) (else ``None``) of bonds ``i``→``j`` (n_bonds,) sorted by centre,
        with lengths ``d`` (n_bonds,) Å and vectors ``D`` (n_bonds, 3) Å, all inside the
        cutoff; ``element`` (n_atoms,) each atom's index in :attr:`elements`."""
        raise NotImplementedError

    # -- provided -----------------------------------------------------------------------
    def jacobian_terms(self, n_atoms: int, element, i, j, d, D, strain: bool = True):
        """Values (n_atoms, F), the sparse Jacobian as (centre, neighbour) blocks —
        ``centres``, ``neighbours`` (n_blocks,), ``blocks`` (n_blocks, F, 3) 1/Å, every
        atom's (i, i) block included — and, with ``strain``, the strain derivatives
        (n_atoms, F, 3, 3) (else ``None``), for the bonds of :meth:`bond_terms`: its bond
        gradients summed by :mod:`~pesnet.descriptors.derivatives`. A kind may compute them
        in one pass instead."""
        values, grad = self.bond_terms(n_atoms, element, i, j, d, D, True)
        centres, neighbours, blocks = bond_to_blocks(i, j, grad, n_atoms)
        return (values, centres, neighbours, blocks,
                strain_from_bonds(i, D, grad, n_atoms) if strain else None)

    def to_json(self) -> str:
        return json.dumps(self.params, sort_keys=True)

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def evaluator(self):
        """The prediction-time evaluator (bond gradients contracted with the weights)."""
        from pesnet.descriptors.bond_gradient_evaluator import BondGradientEvaluator

        return BondGradientEvaluator(self)

    def element_indices(self, numbers, where=("<atoms>", None)) -> np.ndarray:
        """Index of each atomic number in :attr:`elements`; a clear error for any other.

        ``where`` = (file or description, configuration index) for the error message, or a
        function returning it.
        """
        lookup = np.full(max(self.elements) + 1, -1)
        lookup[list(self.elements)] = np.arange(len(self.elements))
        numbers = np.asarray(numbers, dtype=np.int64)
        index = np.full(len(numbers), -1)
        known = (numbers > 0) & (numbers < len(lookup))
        index[known] = lookup[numbers[known]]
        if (index < 0).any():
            bad = sorted(set(numbers[index < 0].tolist()))
            names = ", ".join(f"{chemical_symbols[z] if 0 < z < len(chemical_symbols) else '?'}"
                              f" (Z={z})" for z in bad)
            have = ", ".join(chemical_symbols[z] for z in self.elements)
            where = _located(where)
            raise ConfigurationError(
                where[0], where[1],
                f"element {names} is not among the descriptor's elements ({have})")
        return index

    def compute(self, atoms, derivatives: bool = False, where=None) -> DescriptorResult:
        """Features of every atom of ``atoms`` (and their derivatives if asked).

        Values and derivatives come from one pass over one neighbour list, so they cannot
        drift apart. ``where`` = (file, configuration index) names the configuration in
        error messages; by default ``atoms.info["dataset_index"]`` if present.
        """
        return self.compute_many([atoms], derivatives, None if where is None else [where])[0]

    def compute_many(self, frames, derivatives: bool = False,
                     where=None) -> list[DescriptorResult]:
        """:meth:`compute` of several configurations in one vectorised pass.

        The neighbour list is built per configuration; everything after it runs once over
        the bonds of all of them, which amortises NumPy's per-call overhead over many small
        molecules. ``where``: one (file, index) per configuration, or ``None``.
        """
        flat = self.compute_flat(frames, derivatives, where)
        labels, offsets = self.labels, flat.offsets
        spans = list(zip(offsets, offsets[1:]))
        if not derivatives:
            return [DescriptorResult(flat.values[a:b], labels) for a, b in spans]
        cuts = flat.block_offsets
        return [DescriptorResult(flat.values[a:b], labels, flat.centres[cuts[k]:cuts[k + 1]],
                                 flat.neighbours[cuts[k]:cuts[k + 1]],
                                 flat.derivatives[cuts[k]:cuts[k + 1]],
                                 flat.strain[a:b] if flat.periodic[k] else None)
                for k, (a, b) in enumerate(spans)]

    def compute_flat(self, frames, derivatives: bool = False, where=None) -> FlatResult:
        """:meth:`compute_many` as one :class:`FlatResult` (the configurations' arrays
        concatenated, nothing split per configuration): what the featurizer writes."""
        counts = np.array([len(atoms) for atoms in frames], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        element, bonds = [], []
        for k, atoms in enumerate(frames):
            here = where[k] if where is not None else _default_where(atoms)
            element.append(self.element_indices(atoms.numbers, here))
            bonds.append(self._bonds_of(atoms, here, offsets[k]))
        element = np.concatenate(element) if frames else np.zeros(0, np.int64)
        if bonds:
            i, j, d, D = (np.concatenate(parts) for parts in zip(*bonds))
        else:
            i = j = np.zeros(0, np.int64)
            d, D = np.zeros(0), np.zeros((0, 3))
        n_total = int(offsets[-1])
        periodic = np.array([bool(atoms.pbc.any()) for atoms in frames], dtype=bool)
        if not derivatives:
            values, _ = self.bond_terms(n_total, element, i, j, d, D, False)
            return FlatResult(values, offsets, periodic)
        values, centres, neighbours, blocks, strain = self.jacobian_terms(
            n_total, element, i, j, d, D, bool(periodic.any()))
        if strain is not None and not periodic.all():
            strain[~np.repeat(periodic, counts)] = 0.0
        cuts = np.searchsorted(centres, offsets)
        shift = np.repeat(offsets[:-1], np.diff(cuts))
        return FlatResult(values, offsets, periodic, cuts, centres - shift, neighbours - shift,
                          blocks, strain)

    def _bonds_of(self, atoms, where, offset: int):
        """Bonds (i, j, d, D) of one configuration within the cutoff, sorted by centre,
        atom indices shifted by ``offset``; an error for two atoms at one position."""
        i, j, d, D = neighbour_list("ijdD", atoms, self.cutoff)
        if len(d) and d.min() < 1e-8:
            b = int(np.argmin(d))
            where = _located(where)
            raise ConfigurationError(where[0], where[1],
                                     f"atoms {i[b]} and {j[b]} are at the same position")
        if len(i) and (np.diff(i) < 0).any():
            order = np.argsort(i, kind="stable")
            i, j, d, D = i[order], j[order], d[order], D[order]
        return i + offset, j + offset, d, D
