"""What a descriptor kind provides: the protocol everything above the descriptors goes through.

A descriptor maps an atomic structure (N atoms) to one row of F features per atom, G_i, that is
invariant to rotation, translation and permutation of like atoms and depends on atom i's
neighbours within ``cutoff`` (Å) only, through the bond vectors D_b = r_j + S·cell − r_i:

    G_i = G(D_b for the bonds b of centre i, with the neighbours' elements)

Training needs G and its sparse Jacobian (:meth:`Descriptor.compute_many`: per (centre,
neighbour) blocks ∂G_i/∂r_j and strain derivatives ∂G_i/∂ε). Prediction needs G and one
vector–Jacobian product per ensemble member, never the Jacobian
(:meth:`Descriptor.evaluator`). The featurizer, the features file, the model file, the
potential, the pipeline spec and the CLI use only what is listed here, and find a kind by name
through :mod:`pesnet.descriptors.registry`; a new kind is one module (most easily a subclass of
:class:`~pesnet.descriptors.bond_descriptor.BondDescriptor`) plus a ``register`` call.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np


class DescriptorResult(NamedTuple):
    """Descriptor of one configuration (N atoms, F features).

    ``values`` (N, F); ``labels`` (F,) strings. With derivatives: ``centres`` and ``neighbours``
    (n_blocks,) atom indices, sorted by (centre, neighbour); ``derivatives`` (n_blocks, F, 3),
    1/Å (per unit of G), block b holding ∂G[centres[b], f] / ∂r[neighbours[b], x] (periodic
    images of an atom summed into one block; every atom has its own (i, i) block);
    ``strain_derivatives`` (N, F, 3, 3), ∂G[i, f] / ∂ε_ab for the homogeneous strain
    r → (1 + ε) r of atoms and cell (``None`` for a configuration with no periodic axis).
    Otherwise ``None``.
    """

    values: np.ndarray
    labels: tuple
    centres: np.ndarray | None = None
    neighbours: np.ndarray | None = None
    derivatives: np.ndarray | None = None
    strain_derivatives: np.ndarray | None = None

    def dense_derivatives(self) -> np.ndarray:
        """The derivatives as a dense (N, N, 3, F) array [i, j, x, f] (DScribe's layout).

        For tests and small systems only: memory grows as N².
        """
        if self.derivatives is None:
            raise ValueError("this result has no derivatives (compute(..., derivatives=True))")
        n, f = self.values.shape
        dense = np.zeros((n, n, 3, f))
        dense[self.centres, self.neighbours] = self.derivatives.transpose(0, 2, 1)
        return dense


@runtime_checkable
class Evaluator(Protocol):
    """Prediction-time values and pull-back of one descriptor on a
    :class:`~pesnet.descriptors.bonds.PairList` (bonds within cutoff + skin, canonical order).
    """

    def forward(self, pairs, geometry, derivatives: bool = True, where=None):
        """``(values, tape)``: values (n_atoms, F) at the bond vectors ``geometry``
        (:class:`~pesnet.descriptors.bonds.Geometry`, Å) and, if ``derivatives``, what
        :meth:`backward` needs (else ``None``). A tape is valid until the next forward."""

    def backward(self, tape, weights: np.ndarray, forces: bool = True, virial: bool = False):
        """``(forces, virials)`` of K energies with input gradients ``weights``
        w_κ,i = ∂E_κ/∂G_i (K, n_atoms, F): −∂E_κ/∂r (K, n_atoms, 3) and ∂E_κ/∂ε
        (K, n_configs, 3, 3), each ``None`` unless asked for."""


@runtime_checkable
class Descriptor(Protocol):
    """One descriptor kind with its parameters (see the module doc).

    ``kind``: the registry name (written in model and features files). ``elements``: sorted
    atomic numbers it describes; ``cutoff``: reach (Å) of the neighbour search; ``labels``:
    one readable string per feature column; ``n_features`` = F.
    """

    kind: str
    elements: tuple
    cutoff: float
    n_features: int

    @property
    def labels(self) -> tuple: ...

    @property
    def params(self) -> dict:
        """JSON-serialisable parameters, ``kind`` included; ``from_params`` rebuilds it."""

    @classmethod
    def from_params(cls, params: dict):
        """Build from :attr:`params` (``InputError`` for anything bad)."""

    def to_json(self) -> str:
        """:attr:`params` as canonical JSON (sorted keys): equal descriptors, equal text."""

    def element_indices(self, numbers, where=("<atoms>", None)) -> np.ndarray:
        """Index (N,) of each atomic number in :attr:`elements`; ``ConfigurationError``
        naming ``where`` = (file, configuration index) for any other element."""

    def compute(self, atoms, derivatives: bool = False, where=None) -> DescriptorResult:
        """:class:`DescriptorResult` of one :class:`ase.Atoms`."""

    def compute_many(self, frames, derivatives: bool = False,
                     where=None) -> list[DescriptorResult]:
        """:meth:`compute` of several configurations (``where``: one (file, index) each)."""

    def evaluator(self) -> Evaluator:
        """A fresh prediction-time :class:`Evaluator` (it may keep scratch space)."""
