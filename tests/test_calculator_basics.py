"""PESNetCalculator as an ASE calculator: properties, exactness, recomputation, errors.

Its energy is the model's ``predict`` to the last bit; forces and stress are the exact
derivatives (ASE's finite differences to 1e-5 relative); it recomputes exactly when the atoms
change; an element the model does not know is a clear error, never a silent zero."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import (
    CalculatorError,
    CalculatorSetupError,
    PropertyNotImplementedError,
)
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from pesnet.calculator import PESNetCalculator, UnsupportedElementError
from pesnet.errors import InputError
from pesnet.potential.io import load_model
from tests.potential_helpers import random_potential, water_box


def _copper(repeat=(2, 2, 2), seed=0, rattle=0.08):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
    atoms.rattle(rattle, seed=seed)
    return atoms


def _counting(calc):
    """Count the calculator's calculate() calls in ``calc.n_calls``."""
    original = calc.calculate
    calc.n_calls = 0

    def calculate(*args, **kwargs):
        calc.n_calls += 1
        return original(*args, **kwargs)

    calc.calculate = calculate
    return calc


def test_properties_and_their_shapes(cu_model):
    atoms = _copper()
    atoms.calc = PESNetCalculator(cu_model)
    n = len(atoms)
    energy = atoms.get_potential_energy()
    assert atoms.get_potential_energy(force_consistent=True) == energy  # free_energy
    assert atoms.get_forces().shape == (n, 3) and atoms.get_stress().shape == (6,)
    energies = atoms.get_potential_energies()
    assert energies.shape == (n,) and energies.sum() == pytest.approx(energy, abs=1e-9)
    calc = atoms.calc
    for name, shape in (("energy_std", ()), ("energies_std", (n,)), ("forces_std", (n, 3)),
                        ("stress_std", (6,))):
        value = np.asarray(calc.get_property(name, atoms))
        assert value.shape == shape and np.isfinite(value).all() and (value >= 0).all()
    assert calc.get_property("energy_std", atoms) > 0
    assert set(PESNetCalculator.implemented_properties) >= {
        "energy", "free_energy", "energies", "forces", "stress", "energy_std", "energies_std",
        "forces_std"}
    assert calc.prediction.forces_std is calc.results["forces_std"]
    assert "PESNetCalculator" in repr(calc) and "Cu" in repr(calc)


def test_energy_is_the_models_predict_bit_for_bit_along_md(cu_model):
    from ase import units
    from ase.md.verlet import VelocityVerlet

    potential = load_model(cu_model)
    atoms = _copper((3, 3, 3))
    atoms.calc = PESNetCalculator(cu_model)
    reference = potential.predict(atoms, stress=True)
    assert atoms.get_potential_energy() == reference.energy[0]
    np.testing.assert_array_equal(atoms.get_potential_energies(), reference.energies)
    np.testing.assert_allclose(atoms.get_forces(), reference.forces, rtol=0, atol=1e-13)
    np.testing.assert_allclose(atoms.get_stress(), reference.stress[0], rtol=0, atol=1e-15)
    atoms.set_momenta(np.random.default_rng(0).normal(0, 0.5, (len(atoms), 3)))
    dyn = VelocityVerlet(atoms, 2 * units.fs)
    for _ in range(5):  # the kept neighbour list (skin) gives the same bits as a fresh one
        dyn.run(4)
        p = potential.predict(atoms)
        assert atoms.get_potential_energy() == p.energy[0]
        assert atoms.calc.get_property("energy_std", atoms) == p.energy_std[0]
        np.testing.assert_array_equal(atoms.calc.get_property("forces_std", atoms),
                                      p.forces_std)
    assert atoms.calc.neighbour_list_builds < 5  # kept over most of the 20 steps


def test_recomputes_exactly_when_the_atoms_change():
    potential = random_potential(elements=(1, 8), n_members=3)
    atoms = water_box(3)
    atoms.calc = _counting(PESNetCalculator(potential))
    atoms.get_forces()
    calls = atoms.calc.n_calls
    atoms.get_forces(), atoms.get_potential_energy(), atoms.calc.get_property("forces_std", atoms)
    assert atoms.calc.n_calls == calls  # same atoms: cached

    def changed(mutate):
        before = atoms.calc.n_calls
        mutate(atoms)
        energy = atoms.get_potential_energy()
        assert atoms.calc.n_calls == before + 1
        assert energy == potential.predict(atoms).energy[0]
        return energy

    e0 = atoms.get_potential_energy()
    e_cell = changed(lambda a: a.set_cell(a.cell * 1.02, scale_atoms=False))
    e_pbc = changed(lambda a: a.set_pbc([True, True, False]))
    e_number = changed(lambda a: a.numbers.__setitem__(1, 8))
    e_position = changed(lambda a: a.positions.__setitem__((0, 0), a.positions[0, 0] + 0.01))
    assert len({e0, e_cell, e_pbc, e_number, e_position}) == 5


def test_energy_then_forces_is_one_calculation(cu_model):
    atoms = _copper()
    atoms.calc = _counting(PESNetCalculator(cu_model))
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    atoms.calc.get_property("forces_std", atoms), atoms.get_potential_energies()
    assert atoms.calc.n_calls == 1
    atoms.get_stress()                      # the one property a step does not need
    assert atoms.calc.n_calls == 2
    assert atoms.get_potential_energy() == energy and (atoms.get_forces() == forces).all()
    assert atoms.calc.n_calls == 2


def test_unknown_element_is_a_clear_error_not_a_silent_zero(cu_model):
    atoms = _copper((1, 1, 1))
    atoms.numbers[[1, 3]] = 8   # oxygen: the Cu model has no network for it
    atoms.calc = PESNetCalculator(cu_model)
    with pytest.raises(UnsupportedElementError, match=r"covers Cu only.*O \(Z=8\).*1, 3"):
        atoms.get_potential_energy()
    # catchable as ASE's and as pesnet's input error
    assert issubclass(UnsupportedElementError, CalculatorError)
    assert issubclass(UnsupportedElementError, InputError)
    with pytest.raises(CalculatorError):
        atoms.get_forces()


def test_setup_errors_and_stress_of_a_molecule(tmp_path):
    with pytest.raises(CalculatorSetupError, match="model file path or a Potential"):
        PESNetCalculator(42)
    with pytest.raises(InputError, match="no such model file"):
        PESNetCalculator(tmp_path / "missing.h5")
    with pytest.raises(CalculatorSetupError, match="skin"):
        PESNetCalculator(random_potential(), skin=-1)
    molecule = water_box(2, n_molecules=2, periodic=False)
    molecule.calc = PESNetCalculator(random_potential())
    assert np.isfinite(molecule.get_forces()).all()
    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        molecule.get_stress()


@pytest.mark.parametrize("system", ["copper (trained)", "water box (H/O, G4 and G5)",
                                    "water molecule cluster"])
def test_forces_and_stress_match_ase_finite_differences(system, cu_model):
    if system == "copper (trained)":
        atoms, calc = _copper(seed=2), PESNetCalculator(cu_model)
    else:
        periodic = system == "water box (H/O, G4 and G5)"
        atoms = water_box(7, n_molecules=3, box=5.0, periodic=periodic)
        calc = PESNetCalculator(random_potential(elements=(1, 8), n_members=3))
    atoms.calc = calc
    forces = atoms.get_forces()
    numeric = calculate_numerical_forces(atoms, eps=1e-5)
    assert np.abs(forces - numeric).max() <= 1e-5 * np.abs(numeric).max()
    if atoms.pbc.all():
        stress = atoms.get_stress()
        numeric_stress = calculate_numerical_stress(atoms, eps=1e-6)
        assert np.abs(stress - numeric_stress).max() <= 1e-5 * np.abs(numeric_stress).max()


def test_skin_zero_rebuilds_every_step_and_gives_the_same_answers(cu_model):
    atoms = _copper()
    kept, fresh = PESNetCalculator(cu_model), PESNetCalculator(cu_model, skin=0.0)
    rng = np.random.default_rng(4)
    for _ in range(3):
        atoms.positions += rng.normal(0, 0.02, atoms.positions.shape)
        a, b = atoms.copy(), atoms.copy()
        a.calc, b.calc = kept, fresh
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), rtol=0, atol=1e-13)
    assert kept.neighbour_list_builds == 1 and fresh.neighbour_list_builds == 3
