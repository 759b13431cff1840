"""Crystal properties with uncertainty (pesnet.properties, ``pesnet properties``).

The methods are checked on ASE's EMT against independent routes (bulk modulus from the EOS
against (C11 + 2 C12)/3, C44 against the strain size, phonons against ASE's own
``ase.phonons``, the surface energy against the slab-thickness slope, the vacancy against
another optimiser); the ensemble machinery on the small trained Cu model of conftest.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.emt import EMT

from pesnet.cli.main import main
from pesnet.potential.io import load_model, save_model
from pesnet.properties import (
    PropertyResult,
    UnaryCrystal,
    calculator_properties,
    ensemble_properties,
    member_potential,
    property_names,
)
from pesnet.properties import crystal as methods
from tests.potential_helpers import random_potential

A_EMT = 3.5898  # Å, EMT's Cu lattice constant (the EOS gives 3.58983)


@pytest.fixture(scope="module")
def emt_cu():
    """Every property of EMT Cu, from the same code that serves the members."""
    return calculator_properties(EMT(), UnaryCrystal("Cu", "fcc", 3.61))


@pytest.mark.parametrize("structure, a_guess", [("fcc", 3.61), ("bcc", 2.87)])
def test_eos_bulk_modulus_equals_elastic_constants_combination(structure, a_guess):
    # two routes to B: the curvature of E(V) and the stress–strain slopes; B = (C11 + 2C12)/3
    a0, b = methods.equation_of_state(EMT(), "Cu", structure, a_guess)
    c = methods.elastic_constants(EMT(), "Cu", structure, a0)
    assert b == pytest.approx((c["C11"] + 2 * c["C12"]) / 3, rel=0.01)
    # the EOS minimum is where the stress vanishes
    stress = methods.strained_stress(EMT(), methods.cubic_cell("Cu", structure, a0),
                                     np.zeros((3, 3)))
    assert np.abs(stress).max() < 1e-4  # eV/Å³ (0.016 GPa)


def test_elastic_constants_do_not_depend_on_the_strain_size():
    small = methods.elastic_constants(EMT(), "Cu", "fcc", A_EMT, strains=(-0.002, 0.002))
    large = methods.elastic_constants(EMT(), "Cu", "fcc", A_EMT, strains=(-0.02, -0.01,
                                                                           0.01, 0.02))
    for name in ("C11", "C12", "C44"):
        assert large[name] == pytest.approx(small[name], rel=0.005), name


def test_emt_values_are_emt_copper(emt_cu):
    # EMT's own Cu (Jacobsen, Stoltze, Nørskov 1996 parameters), as computed by this code:
    # a guard against a unit or sign slip anywhere in the chain
    assert emt_cu["a0"] == pytest.approx(3.590, abs=2e-3)
    assert emt_cu["B"] == pytest.approx(134.5, rel=0.01)
    assert emt_cu["C44"] == pytest.approx(89.9, rel=0.01)
    assert 1.0 < emt_cu["E_vac"] < 1.4
    assert emt_cu["gamma_111"] < emt_cu["gamma_100"]   # close-packed is cheapest
    assert emt_cu["nu_X_TA"] < emt_cu["nu_X_LA"]


def test_phonons_match_ase_phonons_and_vanish_at_gamma(tmp_path):
    from ase.build import bulk
    from ase.phonons import Phonons

    ours = methods.phonon_frequencies(EMT(), "Cu", "fcc", A_EMT, points=("G", "X", "L"))
    assert np.abs(ours["G"]).max() < 1e-3     # THz: acoustic sum rule
    assert ours["X"][0] == pytest.approx(ours["X"][1], rel=1e-6)   # degenerate TA at X
    primitive = bulk("Cu", "fcc", a=A_EMT)
    # 4×4×4 primitive supercell: X and L are commensurate, so ASE's result is exact too
    phonons = Phonons(primitive, EMT(), supercell=(4, 4, 4), delta=0.01,
                      name=str(tmp_path / "phonon"))
    phonons.run()
    phonons.read(acoustic=True)
    special = primitive.cell.bandpath(npoints=0).special_points
    energies = phonons.band_structure([special["X"], special["L"]])   # eV
    thz = energies / 4.135667696e-3                                    # h = 4.1357 meV/THz
    np.testing.assert_allclose(ours["X"], np.sort(thz[0]), rtol=2e-3)
    np.testing.assert_allclose(ours["L"], np.sort(thz[1]), rtol=2e-3)


def test_surface_energy_matches_slab_thickness_slope(emt_cu):
    # independent route: E_slab(n layers) = n·ε + 2Aγ, so the slope gives the bulk energy
    # and the intercept the surface energy without a separate bulk calculation
    from ase.build import fcc111
    from ase.optimize import FIRE

    energies, counts = [], []
    for layers in (6, 8, 10):
        slab = fcc111("Cu", size=(1, 1, layers), a=emt_cu["a0"], vacuum=8.0)
        slab.calc = EMT()
        FIRE(slab, logfile=None).run(fmax=0.005)
        energies.append(slab.get_potential_energy())
        counts.append(len(slab))
    _, intercept = np.polyfit(counts, energies, 1)
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    assert emt_cu["gamma_111"] == pytest.approx(intercept / (2 * area) * methods.J_PER_M2,
                                                rel=1e-3)


def test_vacancy_energy_relaxed_below_unrelaxed_and_optimiser_independent(emt_cu):
    from ase.optimize import FIRE

    perfect = methods.cubic_cell("Cu", "fcc", emt_cu["a0"]).repeat(3)
    e_perfect = methods.energy(perfect, EMT())
    defect = perfect.copy()
    del defect[0]
    unrelaxed = methods.energy(defect, EMT()) - 107 / 108 * e_perfect
    FIRE(defect, logfile=None).run(fmax=0.002)
    fire = defect.get_potential_energy() - 107 / 108 * e_perfect
    assert emt_cu["E_vac"] < unrelaxed < emt_cu["E_vac"] + 0.1
    assert emt_cu["E_vac"] == pytest.approx(fire, abs=1e-3)


def test_member_view_is_that_member_of_the_ensemble(cu_model):
    potential = load_model(cu_model)
    atoms = methods.cubic_cell("Cu", "fcc", 3.6).repeat(2)
    atoms.rattle(0.05, seed=1)
    everyone = potential.predict(atoms, stress=True, members=True).members
    for m in range(potential.n_members):
        alone = member_potential(potential, m).predict(atoms, stress=True)
        assert alone.energy[0] == pytest.approx(everyone.energy[m, 0], abs=1e-10)
        np.testing.assert_allclose(alone.forces, everyone.forces[m], atol=1e-10)
        np.testing.assert_allclose(alone.stress[0] * atoms.get_volume(),
                                   everyone.virial[m, 0][[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]],
                                   atol=1e-9)


def test_ensemble_statistics_are_those_of_the_member_values(cu_model, emt_cu):
    potential = load_model(cu_model)
    results = ensemble_properties(potential, reference=EMT())
    assert [r.name for r in results] == property_names("fcc")
    s_e, s_f = potential.calibration["energy"], potential.calibration["forces"]
    for r in results:
        assert isinstance(r, PropertyResult) and r.values.shape == (3,)
        assert np.ptp(r.values) > 1e-6 * abs(r.mean), f"{r.name}: members agree exactly"
        assert r.mean == pytest.approx(np.mean(r.values), rel=1e-12)
        assert r.std == pytest.approx(np.std(r.values, ddof=1), rel=1e-12)
        scale = s_e if r.name in ("E_vac", "gamma_100", "gamma_111") else s_f
        assert r.std_calibrated == pytest.approx(scale * r.std, rel=1e-12)
        assert r.reference == pytest.approx(emt_cu[r.name], rel=1e-9)
        assert r.error == pytest.approx(r.mean - r.reference, rel=1e-12)
        assert r.within_2sigma == (abs(r.error) <= 2 * r.std_calibrated)
    # a model trained on EMT Cu lands near EMT (loose: the conftest model is tiny)
    by_name = {r.name: r for r in results}
    assert abs(by_name["a0"].error_pct) < 2
    assert abs(by_name["nu_X_LA"].error_pct) < 25


def test_cli_prints_a_table_and_json(cu_model, capsys):
    assert main(["properties", str(cu_model), "--reference", "emt", "--only",
                 "a0,B,gamma_111,nu_X_TA"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Cu fcc, 3 members, reference emt")
    assert out[1].split()[:4] == ["property", "unit", "mean", "±"]
    assert [line.split()[0] for line in out[2:]] == ["a0", "B", "gamma_111", "nu_X_TA"]
    assert out[2].split()[-1] in ("yes", "no")
    assert main(["properties", str(cu_model), "--only", "a0,C44", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["properties"]) == {"a0", "C44"}
    a0 = data["properties"]["a0"]
    assert a0["unit"] == "Å" and len(a0["values"]) == 3 and a0["reference"] is None
    assert a0["mean"] == pytest.approx(np.mean(a0["values"]))


@pytest.mark.parametrize("argv, message", [
    (["--reference", "emtt"], "unknown calculator 'emtt'; known: emt"),
    (["--only", "a0,C13"], "unknown property 'C13'"),
    (["--element", "Ag"], "the model covers Cu, not 'Ag'"),
])
def test_cli_bad_arguments_are_one_line(cu_model, capsys, argv, message):
    assert main(["properties", str(cu_model), *argv]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err


def test_two_element_model_is_refused_in_one_line_unless_an_element_is_chosen(tmp_path, capsys):
    path = save_model(random_potential(elements=(8, 29)), tmp_path / "cuo.h5")
    assert main(["properties", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "the model covers O, Cu" in err and "unary" in err and "--element" in err
    # an element whose reference crystal is not cubic: named, refused
    assert main(["properties", str(path), "--element", "O"]) == 1
    assert "reference crystal is" in capsys.readouterr().err


def test_a_reference_that_cannot_do_the_element_is_one_line(tmp_path, capsys):
    # EMT has no iron; the reference runs first, so this fails before any member's work
    path = save_model(random_potential(elements=(26,)), tmp_path / "fe.h5")
    assert main(["properties", str(path), "--reference", "emt"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "reference (EMT) cannot compute the Fe properties: No EMT-potential for Fe" in err
