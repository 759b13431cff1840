"""Every member's energies, forces and virials of atomic structures, straight from a bond list.

Prediction on structures does not need the descriptor Jacobian that training stores: with the
networks' input gradients w_κ,i = ∂E_κ/∂G_i (per member κ, atom i), the forces and the virial
come from the bond gradients ∂E_κ/∂D_b = Σ_f w_κ,i_b,f ∂G_{i_b,f}/∂D_b
(the descriptor's :meth:`~pesnet.descriptors.protocol.Descriptor.evaluator`):

    F_a = Σ_{b: i_b = a} ∂E/∂D_b − Σ_{b: j_b = a} ∂E/∂D_b          (eV/Å)
    ∂E/∂ε_xy = Σ_b (∂E/∂D_b)_x (D_b)_y                               (eV; stress = that / V)

:class:`StructureEvaluator` is what :meth:`Potential.predict` and the ASE calculator share,
so the calculator's answers are exactly the model's.
"""

from __future__ import annotations

import numpy as np

from pesnet.descriptors.bonds import PairList, build_pairs, concatenate_pairs
from pesnet.descriptors.features_file import ElementRows, FeatureBatch

#: Extra reach (Å) of the one-off pair lists of :meth:`StructureEvaluator.pairs`: pairs at the
#: cutoff to within round-off are found whichever way a distance rounds.
MARGIN = 1e-6


class StructureEvaluator:
    """Evaluates a :class:`~pesnet.potential.model.Potential` on ASE structures."""

    def __init__(self, potential):
        self.potential = potential
        self.descriptor = potential.descriptor
        self.descriptor_evaluator = potential.descriptor.evaluator()

    @property
    def cutoff(self) -> float:
        return self.descriptor.cutoff

    def element_indices(self, atoms, where=None) -> np.ndarray:
        """Each atom's element index; a clear error naming any element the model lacks."""
        if where is None:
            where = lambda: (f"Atoms({atoms.get_chemical_formula()})",  # noqa: E731
                             atoms.info.get("dataset_index"))
        return self.descriptor.element_indices(atoms.numbers, where)

    def pairs(self, atoms_list, skin: float = MARGIN) -> PairList:
        """One pair list for all of ``atoms_list`` (a fresh neighbour search each)."""
        lists = [build_pairs(atoms, self.cutoff + skin, self.element_indices(atoms),
                             len(self.descriptor.elements)) for atoms in atoms_list]
        return concatenate_pairs(lists)

    def evaluate(self, atoms_list, pairs: PairList | None = None, forces: bool = True,
                 virial: bool = False):
        """:class:`~pesnet.potential.model.MemberOutputs` of ``atoms_list`` (virials for every
        configuration; meaningful for periodic ones). ``pairs``: a list built for these
        structures (e.g. kept by a :class:`~pesnet.descriptors.bonds.NeighbourCache`)."""
        from pesnet.potential.model import MemberOutputs

        potential = self.potential
        if pairs is None:
            pairs = self.pairs(atoms_list)
        if len(atoms_list) == 1:
            atoms = atoms_list[0]
            positions, cells, numbers = atoms.positions, atoms.cell.array, atoms.numbers
        else:
            positions = np.concatenate([a.positions for a in atoms_list])
            cells = np.array([a.cell.array for a in atoms_list])
            numbers = np.concatenate([a.numbers for a in atoms_list])
        geometry = pairs.geometry(positions, cells)
        need_gradient = forces or virial
        values, tape = self.descriptor_evaluator.forward(pairs, geometry, derivatives=need_gradient)
        offsets = pairs.config_atoms
        config_of_atom = np.repeat(np.arange(pairs.n_configs), np.diff(offsets))
        numbers = np.asarray(numbers, dtype=np.int64)
        elements, scale_of_atom = {}, None
        if need_gradient:
            scale_of_atom = np.empty_like(values)
        for z, (mean, scale) in potential.scalers.items():
            rows = np.flatnonzero(numbers == z)
            elements[z] = ElementRows(rows, config_of_atom[rows], (values[rows] - mean) / scale)
            if need_gradient:
                scale_of_atom[rows] = scale
        batch = FeatureBatch(np.arange(pairs.n_configs), offsets, numbers, elements, None,
                             None, None, None, None, None)
        energies, g, _ = potential.forward(batch, input_gradient=need_gradient)
        energy = np.add.reduceat(energies, offsets[:-1], axis=1)
        f = w = None
        if need_gradient:
            g /= scale_of_atom                      # ∂E/∂G of the raw features
            f, w = self.descriptor_evaluator.backward(tape, g, forces=forces, virial=virial)
        return MemberOutputs(energy, energies, f, w)
