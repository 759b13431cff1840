"""ACSF symmetries and edge cases: rotation, translation, permutation, supercells, isolation,
unknown elements."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from pesnet.descriptors import ACSF
from pesnet.errors import ConfigurationError
from tests.conftest import assert_invariances, random_molecular_box

G2 = [(0.5, 0.0), (4.0, 1.2), (1.5, 2.5)]
G4 = [(0.01, 1.0, -1.0), (0.03, 2.0, 1.0), (0.05, 4.0, -1.0)]
G5 = [(0.02, 1.0, 1.0), (0.1, 2.0, -1.0)]
HCO = ACSF(["H", "C", "O"], 4.5, g2=G2, g4=G4, g5=G5)


def test_molecule_invariances():
    atoms = molecule("CH3CH2OH")
    assert_invariances(lambda a: HCO.compute(a).values, atoms, seed=1)


def test_periodic_box_invariances():
    atoms = random_molecular_box("HHHHCCCOO", box=6.0, seed=2)
    assert_invariances(lambda a: HCO.compute(a).values, atoms, seed=3)


def test_periodic_box_invariances_of_derivative_blocks_sum():
    # The self block is minus the sum of the others: forces on a rigidly moved cell vanish.
    atoms = random_molecular_box("HHHHCCCOO", box=6.0, seed=4)
    result = HCO.compute(atoms, derivatives=True)
    total = np.zeros((len(atoms),) + result.derivatives.shape[1:])
    np.add.at(total, result.centres, result.derivatives)
    np.testing.assert_allclose(total, 0.0, atol=1e-10)


def test_cell_and_its_repeat_give_identical_features():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.1, seed=5)
    acsf = ACSF(["Cu"], 6.0, g2=G2, g4=G4, g5=G5)
    values = acsf.compute(atoms).values
    repeated = acsf.compute(atoms.repeat(2)).values
    np.testing.assert_allclose(repeated, np.tile(values, (8, 1)), rtol=1e-11, atol=1e-12)

    box = random_molecular_box("HHHCCO", box=4.0, seed=6)
    values = HCO.compute(box).values
    repeated = HCO.compute(box.repeat(2)).values
    np.testing.assert_allclose(repeated, np.tile(values, (8, 1)), rtol=1e-11, atol=1e-12)


def test_atom_without_neighbours_has_zero_features_and_derivatives():
    atoms = Atoms("HCO", positions=[[0, 0, 0], [1.2, 0, 0], [20, 0, 0]])
    result = HCO.compute(atoms, derivatives=True)
    assert result.values[2].tolist() == [0.0] * HCO.n_features
    assert result.values[0].any() and result.values[1].any()
    # The isolated atom has only its own (zero) block and appears in no other block.
    mine = (result.centres == 2) | (result.neighbours == 2)
    assert result.centres[mine].tolist() == [2] and result.neighbours[mine].tolist() == [2]
    assert not result.derivatives[mine].any()


def test_single_atom_and_empty_configuration():
    single = HCO.compute(Atoms("O"), derivatives=True)
    assert single.values.shape == (1, HCO.n_features) and not single.values.any()
    assert single.derivatives.shape == (1, HCO.n_features, 3)
    empty = HCO.compute(Atoms(), derivatives=True)
    assert empty.values.shape == (0, HCO.n_features) and empty.derivatives.shape[0] == 0


def test_two_neighbours_at_exactly_opposite_sides_are_finite():
    # cos θ = −1 exactly: (1 + λ cos θ)^ζ with λ = 1 is 0 and must not produce NaN.
    atoms = Atoms("OHH", positions=[[0, 0, 0], [1, 0, 0], [-1, 0, 0]])
    result = HCO.compute(atoms, derivatives=True)
    assert np.isfinite(result.values).all() and np.isfinite(result.derivatives).all()


def test_unknown_element_names_element_and_configuration():
    atoms = molecule("CH3CH2OH")
    atoms.numbers[3] = 7
    atoms.info["dataset_index"] = 12
    with pytest.raises(ConfigurationError, match=r"configuration 12: element N \(Z=7\) is not "
                       r"among the descriptor's elements \(H, C, O\)"):
        HCO.compute(atoms)
    with pytest.raises(ConfigurationError, match=r"data\.h5, configuration 3: element N"):
        HCO.compute(atoms, where=("data.h5", 3))


def test_coincident_atoms_are_a_clear_error():
    atoms = Atoms("HHO", positions=[[0, 0, 0], [0, 0, 0], [1, 0, 0]])
    with pytest.raises(ConfigurationError, match="atoms 0 and 1 are at the same position"):
        HCO.compute(atoms)
