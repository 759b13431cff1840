"""Physics of the ensemble potential: forces and stress are exact derivatives of the energy,
the energy is invariant and extensive, and a model file round-trips bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from pesnet.errors import InputError
from pesnet.potential.io import load_model, save_model
from tests.potential_helpers import random_potential, water_box


def numerical_forces(potential, atoms, h=1e-5):
    forces = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for x in range(3):
            shifted = atoms.copy()
            shifted.positions[i, x] += h
            up = potential.predict(shifted, forces=False).energy[0]
            shifted.positions[i, x] -= 2 * h
            down = potential.predict(shifted, forces=False).energy[0]
            forces[i, x] = -(up - down) / (2 * h)
    return forces


@pytest.mark.parametrize("periodic", [True, False])
def test_forces_are_minus_energy_gradient(periodic):
    potential = random_potential(n_members=3)
    atoms = water_box(11, n_molecules=3, box=5.0, periodic=periodic)
    predicted = potential.predict(atoms, members=True)
    numeric = numerical_forces(potential, atoms)
    scale = np.abs(numeric).max()
    assert scale > 1e-2
    np.testing.assert_allclose(predicted.forces, numeric, rtol=0, atol=1e-6 * scale)
    # every member separately too: the mean of exact gradients is exact, but check members
    assert predicted.members.forces.shape == (3, len(atoms), 3)
    assert np.ptp(predicted.members.forces, axis=0).max() > 0


def test_stress_is_strain_derivative_over_volume():
    potential = random_potential(n_members=2)
    atoms = water_box(12, n_molecules=3, box=5.0)
    stress = potential.predict(atoms, stress=True).stress[0]
    h = 1e-5
    volume = atoms.get_volume()
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * h
                strained = atoms.copy()
                strained.set_cell(atoms.cell[:] @ strain, scale_atoms=True)
                values.append(potential.predict(strained, forces=False).energy[0])
            numeric[a, b] = (values[0] - values[1]) / (2 * h) / volume
    numeric = 0.5 * (numeric + numeric.T)
    voigt = numeric[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    np.testing.assert_allclose(stress, voigt, rtol=0, atol=1e-6 * np.abs(voigt).max())


def test_energy_invariances_and_extensivity():
    potential = random_potential(elements=(29,), n_members=2, cutoff=4.0)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    base = potential.predict(atoms)
    rotated = atoms.copy()
    rotated.rotate(37, "x", rotate_cell=True)
    rotated.rotate(-71, "z", rotate_cell=True)
    moved = atoms.copy()
    moved.translate([0.3, -1.2, 2.5])
    permuted = atoms[np.random.default_rng(0).permutation(len(atoms))]
    for other in (rotated, moved, permuted):
        assert potential.predict(other).energy[0] == pytest.approx(base.energy[0], abs=1e-9)
    order = np.random.default_rng(0).permutation(len(atoms))
    np.testing.assert_allclose(potential.predict(permuted).energies, base.energies[order],
                               atol=1e-10)
    repeated = potential.predict(atoms.repeat((2, 2, 2)))
    assert repeated.energy[0] == pytest.approx(8 * base.energy[0], rel=1e-12)
    assert repeated.energy_std[0] == pytest.approx(8 * base.energy_std[0], rel=1e-9)


def test_prediction_shapes_and_uncertainty():
    potential = random_potential(n_members=4)
    structures = [water_box(1), water_box(2, n_molecules=2, periodic=False)]
    p = potential.predict(structures)
    n_atoms = sum(len(a) for a in structures)
    assert p.energy.shape == (2,) and p.forces.shape == (n_atoms, 3)
    assert p.energies.shape == (n_atoms,) and p.forces_std.shape == (n_atoms, 3)
    np.testing.assert_allclose(np.add.reduceat(p.energies, p.offsets[:-1]), p.energy)
    assert (p.energy_std > 0).all()
    potential.calibration = {"energy": 2.0, "forces": 3.0}
    q = potential.predict(structures)
    np.testing.assert_allclose(q.energy_std, 2.0 * q.energy_std_raw)
    np.testing.assert_allclose(q.forces_std, 3.0 * q.forces_std_raw)
    np.testing.assert_allclose(q.energy_std_raw, p.energy_std)


def test_model_file_round_trip_is_bit_for_bit(tmp_path):
    potential = random_potential(n_members=3)
    potential.calibration = {"energy": 1.7, "forces": 0.8}
    potential.metadata = {"seeds": [1, 2, 3], "note": "test"}
    path = save_model(potential, tmp_path / "model.h5")
    loaded = load_model(path)
    atoms = [water_box(5), water_box(6, periodic=False)]
    a, b = potential.predict(atoms, stress=True), loaded.predict(atoms, stress=True)
    for field in ("energy", "energy_std", "forces", "forces_std", "energies"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(a.stress[0], b.stress[0])
    assert loaded.calibration == potential.calibration
    assert loaded.metadata == potential.metadata
    assert loaded.descriptor == potential.descriptor


def test_model_refuses_what_it_cannot_handle(tmp_path):
    potential = random_potential(elements=(1, 8))
    copper = bulk("Cu", "fcc", a=3.6)
    with pytest.raises(InputError, match="Cu"):
        potential.predict(copper)
    with pytest.raises(InputError, match="no such model file"):
        load_model(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_text("not a model")
    with pytest.raises(InputError, match="not an HDF5 file"):
        load_model(junk)
