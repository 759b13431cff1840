"""ACSF derivatives: central finite differences, sparse block layout, strain derivatives."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from pesnet.descriptors import ACSF
from tests.conftest import (
    assert_matches_finite_differences,
    numerical_derivatives,
    numerical_strain_derivatives,
    random_molecular_box,
)

G2 = [(0.5, 0.0), (4.0, 1.2), (1.5, 2.5)]
G3 = [1.3]
G4 = [(0.01, 1.0, -1.0), (0.03, 2.0, 1.0), (0.05, 4.0, -1.0), (0.02, 1.5, 1.0)]
G5 = [(0.02, 1.0, 1.0), (0.1, 2.0, -1.0)]


def _check_position_derivatives(acsf, atoms, indices=None):
    result = acsf.compute(atoms, derivatives=True)
    np.testing.assert_allclose(result.values, acsf.compute(atoms).values, rtol=1e-12, atol=1e-14)
    numeric = numerical_derivatives(lambda a: acsf.compute(a).values, atoms, indices=indices)
    dense = result.dense_derivatives()  # (i, j, x, f)
    indices = range(len(atoms)) if indices is None else indices
    analytic = dense[:, list(indices)].transpose(1, 2, 0, 3)  # (j, x, i, f)
    assert_matches_finite_differences(analytic, numeric, rtol=1e-6)
    return result


def test_ethanol_derivatives_match_finite_differences():
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    acsf = ACSF(["H", "C", "O"], 5.0, g2=G2, g3=G3, g4=G4, g5=G5)
    result = _check_position_derivatives(acsf, atoms)
    assert result.strain_derivatives is None  # no periodic axis


def test_periodic_hco_box_derivatives_match_finite_differences():
    atoms = random_molecular_box("HHHHCCCOO", box=5.5, seed=2)
    acsf = ACSF(["H", "C", "O"], 4.0, g2=G2, g4=G4, g5=G5, angular_cutoff=3.2)
    _check_position_derivatives(acsf, atoms, indices=[0, 4, 5, 8])


def test_cell_smaller_than_cutoff_sums_images_into_one_block():
    atoms = Atoms("CuCu", positions=[[0, 0, 0], [1.3, 1.1, 0.9]], cell=[2.6, 2.9, 3.1],
                  pbc=True)
    acsf = ACSF(["Cu"], 5.0, g2=G2, g4=G4[:2], g5=G5[:1])
    result = _check_position_derivatives(acsf, atoms)
    # Dozens of images per atom, but one block per (centre, neighbour) atom pair.
    assert result.centres.tolist() == [0, 0, 1, 1]
    assert result.neighbours.tolist() == [0, 1, 0, 1]
    # Translation invariance: the blocks of each centre sum to zero.
    np.testing.assert_allclose(result.derivatives.reshape(2, 2, -1, 3).sum(axis=1), 0,
                               atol=1e-10)


def test_copper_derivatives_and_strain_match_finite_differences():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.1, seed=3)
    atoms.set_cell(atoms.cell[:] @ np.array([[1, 0.05, 0], [0, 1, -0.03], [0.02, 0, 1]]),
                   scale_atoms=True)
    acsf = ACSF(["Cu"], 5.0, g2=G2, g3=G3, g4=G4, g5=G5, angular_cutoff=4.0)
    result = _check_position_derivatives(acsf, atoms)
    numeric = numerical_strain_derivatives(lambda a: acsf.compute(a).values, atoms)
    analytic = result.strain_derivatives.transpose(2, 3, 0, 1)  # (a, b, i, f)
    assert_matches_finite_differences(analytic, numeric, rtol=1e-6)


def test_block_layout_is_sparse_and_sorted():
    atoms = random_molecular_box("HHHHHHCCCCOO", box=9.0, seed=4)
    acsf = ACSF(["H", "C", "O"], 3.0, g2=G2, g4=G4)
    result = acsf.compute(atoms, derivatives=True)
    n = len(atoms)
    keys = result.centres * n + result.neighbours
    assert (np.diff(keys) > 0).all()
    assert set(np.flatnonzero(result.centres == result.neighbours)) <= set(range(len(keys)))
    assert ((result.centres == result.neighbours).sum()) == n  # every atom has a self block
    assert len(keys) < n * n  # sparse: atoms 3 Å or more apart share no block
    assert result.derivatives.shape == (len(keys), acsf.n_features, 3)


def test_values_only_result_has_no_derivatives():
    result = ACSF(["Cu"], 4.0, g2=G2).compute(bulk("Cu", cubic=True))
    assert result.derivatives is None and result.centres is None
    with pytest.raises(ValueError, match="no derivatives"):
        result.dense_derivatives()


def test_compute_many_equals_compute_one_by_one():
    frames = [molecule("CH3CH2OH"), random_molecular_box("HHCO", box=5.0, seed=5),
              Atoms("O"), molecule("H2O")]
    frames[0].rattle(0.05, seed=6)
    acsf = ACSF(["H", "C", "O"], 4.0, g2=G2, g4=G4, g5=G5)
    many = acsf.compute_many(frames, derivatives=True)
    for atoms, got in zip(frames, many):
        one = acsf.compute(atoms, derivatives=True)
        np.testing.assert_allclose(got.values, one.values, rtol=1e-13, atol=1e-15)
        np.testing.assert_array_equal(got.centres, one.centres)
        np.testing.assert_array_equal(got.neighbours, one.neighbours)
        np.testing.assert_allclose(got.derivatives, one.derivatives, rtol=1e-12, atol=1e-14)
        if atoms.pbc.any():
            np.testing.assert_allclose(got.strain_derivatives, one.strain_derivatives,
                                       rtol=1e-12, atol=1e-14)
        else:
            assert got.strain_derivatives is None and one.strain_derivatives is None
    assert acsf.compute_many([]) == []


def test_features_sharing_eta_in_any_order():
    # Features of one η need not be adjacent, and ζ may be large or non-integer.
    g4 = [(0.01, 1.0, 1.0), (0.05, 1.0, 1.0), (0.01, 16.0, -1.0), (0.01, 2.5, 1.0)]
    g5 = [(0.02, 3.0, 1.0), (0.1, 1.0, -1.0), (0.02, 9.0, -1.0)]
    atoms = random_molecular_box("HHHCCO", box=5.0, seed=7)
    acsf = ACSF(["H", "C", "O"], 4.0, g2=G2[:1], g4=g4, g5=g5)
    _check_position_derivatives(acsf, atoms, indices=[0, 3, 5])
    one_by_one = [ACSF(["H", "C", "O"], 4.0, g4=[p]).compute(atoms).values for p in g4]
    values = acsf.compute(atoms).values
    n_radial = 3 * 2
    for pair in range(6):
        for k, column in enumerate(one_by_one):
            np.testing.assert_allclose(values[:, n_radial + pair * 7 + k],
                                       column[:, 3 + pair], rtol=1e-12, atol=1e-15)


def test_forces_and_stress_of_a_linear_model_match_finite_differences():
    # E = Σ_i w_Z(i) · G_i: forces −∂E/∂r through the blocks, stress ∂E/∂ε / V through strain.
    from ase.calculators.calculator import Calculator, all_changes

    from pesnet.descriptors import contract_blocks, contract_strain

    acsf = ACSF(["H", "C", "O"], 4.0, g2=G2, g4=G4, g5=G5)
    weights = np.random.default_rng(9).normal(size=(9, acsf.n_features))

    class Linear(Calculator):
        implemented_properties = ["energy", "free_energy", "forces", "stress"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            result = acsf.compute(self.atoms, derivatives=True)
            w = weights[self.atoms.numbers]
            virial = contract_strain(w, result.strain_derivatives)
            stress = virial / self.atoms.get_volume()
            energy = float(np.sum(w * result.values))
            self.results = {
                "energy": energy,
                "free_energy": energy,
                "forces": -contract_blocks(w, result.centres, result.neighbours,
                                           result.derivatives, len(self.atoms)),
                "stress": stress.flat[[0, 4, 8, 5, 2, 1]],
            }

    from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

    atoms = random_molecular_box("HHHHCCCOO", box=5.5, seed=10)
    atoms.calc = Linear()
    forces = atoms.get_forces()
    np.testing.assert_allclose(forces, calculate_numerical_forces(atoms, eps=1e-5),
                               atol=1e-6 * np.abs(forces).max())
    stress = atoms.get_stress()
    np.testing.assert_allclose(stress, calculate_numerical_stress(atoms, eps=1e-6),
                               atol=1e-6 * np.abs(stress).max())
