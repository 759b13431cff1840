"""The "ani" descriptor kind (ANI-1x-style atomic environment vectors).

Values against a plain Python-loop transcription of the equations in
:mod:`pesnet.descriptors.ani`; the descriptor contract (finite-difference derivative blocks
and strain derivatives, invariances, evaluator) on molecules, periodic cells with one and
three elements, and structures with isolated atoms and lone bonds; parameters through JSON,
the registry and the spec; featurize → train → save → load → calculator forces = −∇E.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from pesnet.descriptors import ANIDescriptor, default_ani, descriptor_from_params
from pesnet.errors import InputError
from tests.conftest import (
    assert_descriptor_contract,
    assert_matches_finite_differences,
    numerical_derivatives,
    random_molecular_box,
)

SMALL_HCO = ANIDescriptor(["H", "C", "O"], cutoff=3.5, radial_eta=4.0,
                          radial_shifts=[0.9, 1.7, 2.5], angular_cutoff=3.0, angular_eta=2.0,
                          angular_shifts=[1.0, 2.0], angle_shifts=[0.3, 1.5, 2.8], zeta=4.0)
SMALL_CU = ANIDescriptor(["Cu"], cutoff=4.0, radial_eta=2.0, radial_shifts=[2.2, 2.8, 3.5],
                         angular_cutoff=3.0, angular_eta=1.0, angular_shifts=[2.5],
                         angle_shifts=[1.0, 2.0], zeta=2.0)


# -- an independent reference: the module doc's equations, one term at a time -------------
def reference_aev(descriptor, atoms):
    """G (n_atoms, F) of a molecule (no periodic images) by loops over i, j and j < k."""
    p = descriptor.params
    elements = list(p["elements"])
    n_el, n_r = len(elements), len(p["radial_shifts"])
    n_a, n_z = len(p["angular_shifts"]), len(p["angle_shifts"])

    def fc(r, rc):
        return 0.5 * math.cos(math.pi * r / rc) + 0.5 if r < rc else 0.0

    pos, z = atoms.positions, atoms.numbers
    out = np.zeros((len(atoms), n_el * n_r + n_el * (n_el + 1) // 2 * n_a * n_z))
    for i in range(len(atoms)):
        others = [j for j in range(len(atoms)) if j != i]
        for j in others:
            r = float(np.linalg.norm(pos[j] - pos[i]))
            s = elements.index(z[j])
            for k, rs in enumerate(p["radial_shifts"]):
                out[i, s * n_r + k] += (0.25 * math.exp(-p["radial_eta"] * (r - rs) ** 2)
                                        * fc(r, p["cutoff"]))
        near = [j for j in others if np.linalg.norm(pos[j] - pos[i]) < p["angular_cutoff"]]
        for a, j in enumerate(near):
            for k in near[a + 1:]:
                vj, vk = pos[j] - pos[i], pos[k] - pos[i]
                rj, rk = float(np.linalg.norm(vj)), float(np.linalg.norm(vk))
                theta = math.acos(0.95 * float(vj @ vk) / (rj * rk))
                s, t = sorted((elements.index(z[j]), elements.index(z[k])))
                base = n_el * n_r + (t * (t + 1) // 2 + s) * n_a * n_z
                for ia, ra in enumerate(p["angular_shifts"]):
                    radial = (math.exp(-p["angular_eta"] * ((rj + rk) / 2 - ra) ** 2)
                              * fc(rj, p["angular_cutoff"]) * fc(rk, p["angular_cutoff"]))
                    for iz, tz in enumerate(p["angle_shifts"]):
                        out[i, base + ia * n_z + iz] += (2.0 ** (1 - p["zeta"]) * radial
                                                         * (1 + math.cos(theta - tz)) ** p["zeta"])
    return out


@pytest.mark.parametrize("descriptor", [SMALL_HCO, default_ani(["H", "C", "O"])],
                         ids=["small", "ani1x"])
def test_values_match_a_loop_over_the_equations(descriptor):
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=4)
    values = descriptor.compute(atoms).values
    expected = reference_aev(descriptor, atoms)
    assert np.abs(expected).max() > 0.1
    assert (np.abs(expected[:, descriptor.n_radial * 3:]) > 1e-3).any()    # angular terms seen
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-10)


def test_ani1x_defaults_shape_and_labels():
    ani = default_ani(["O", "H", "C"])
    assert ani.n_features == 3 * 16 + 6 * 32 == len(ani.labels) == 240
    assert ani.elements == (1, 6, 8) and ani.cutoff == 5.2 and ani.angular_cutoff == 3.5
    np.testing.assert_allclose(ani.radial_shifts, np.linspace(0.9, 5.2, 17)[:-1])
    np.testing.assert_allclose(ani.angular_shifts, [0.9, 1.55, 2.2, 2.85])
    np.testing.assert_allclose(ani.angle_shifts, np.pi / 16 + np.pi / 8 * np.arange(8))
    assert (ani.radial_eta, ani.angular_eta, ani.zeta) == (16.0, 8.0, 32.0)
    labels = ani.labels
    assert labels[0] == "R[H](Rs=0.9)" and labels[16] == "R[C](Rs=0.9)"
    assert labels[48] == "A[H,H](Ra=0.9,theta=0.196)"
    assert labels[48 + 32] == "A[H,C](Ra=0.9,theta=0.196)"      # pairs in ACSF's order
    assert labels[48 + 64] == "A[C,C](Ra=0.9,theta=0.196)"
    assert labels[-1] == "A[O,O](Ra=2.85,theta=2.95)"
    wider = default_ani(["H"], cutoff=6.0, angular_cutoff=4.0)
    assert wider.radial_shifts[-1] == pytest.approx(6.0 - 5.1 / 16)
    assert wider.angular_shifts[-1] == pytest.approx(4.0 - 3.1 / 4)


# -- the contract, and the structures it does not reach by itself ------------------------
def _cu_cell():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.08, seed=1)
    return atoms


def _sparse_molecule():
    """Water, an O–H pair (each centre one angular bond) and an isolated C far away."""
    return Atoms("OHHOHC", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0],
                                      [0, 0, 3.3], [0.97, 0.1, 3.3], [20, 20, 20]])


@pytest.mark.parametrize("descriptor, make", [
    (SMALL_CU, _cu_cell),
    (SMALL_HCO, lambda: molecule("CH3CH2OH")),
    (SMALL_HCO, lambda: random_molecular_box("HHHCCO", box=5.0, seed=3)),
    (SMALL_HCO, _sparse_molecule),
    (default_ani(["H", "C", "O"]), lambda: molecule("CH3CH2OH")),
], ids=["cu-cell", "ethanol", "hco-box", "isolated-and-lone-bonds", "ani1x-ethanol"])
def test_contract(descriptor, make):
    assert_descriptor_contract(descriptor, make(), seed=2)


def test_isolated_atom_and_lone_bond_centres():
    result = SMALL_HCO.compute(_sparse_molecule(), derivatives=True)
    n_rad = 3 * SMALL_HCO.n_radial
    assert not result.values[5].any()                       # the isolated C: all zero
    assert not result.values[3:5, n_rad:].any()             # one angular bond: no angular term
    assert result.values[3:5, :n_rad].any() and result.values[0, n_rad:].any()
    assert not result.derivatives[result.centres == 5].any()


def test_angular_terms_vanish_smoothly_at_the_angular_cutoff():
    ani = SMALL_HCO
    n_rad = 3 * ani.n_radial

    def angular(distance):
        atoms = Atoms("OHH", positions=[[0, 0, 0], [0.96, 0, 0], [0, distance, 0]])
        return ani.compute(atoms).values[0, n_rad:]

    inside, outside = angular(ani.angular_cutoff - 1e-4), angular(ani.angular_cutoff + 1e-4)
    assert not outside.any()
    assert 0 < np.abs(inside).max() < 1e-7                  # f_c² ~ (π δ / 2 R_ca)⁴


# -- parameters ---------------------------------------------------------------------------
def test_params_round_trip_through_json_and_the_registry():
    for ani in (SMALL_HCO, default_ani(["H", "C", "O"]), SMALL_CU):
        params = json.loads(ani.to_json())
        assert params["kind"] == "ani"
        rebuilt = descriptor_from_params(params)
        assert type(rebuilt) is ANIDescriptor and rebuilt == ani and hash(rebuilt) == hash(ani)
        assert rebuilt.labels == ani.labels
    assert SMALL_HCO != default_ani(["H", "C", "O"])


@pytest.mark.parametrize("change, message", [
    ({"radial_shifts": []}, "radial_shifts is empty"),
    ({"angle_shifts": []}, "angle_shifts is empty"),
    ({"radial_eta": 0.0}, "radial_eta must be a finite number > 0"),
    ({"angular_eta": -1.0}, "angular_eta must be a finite number > 0"),
    ({"zeta": 0.0}, "zeta must be a finite number >= 1"),
    ({"zeta": float("nan")}, "zeta must be a finite number"),
    ({"angular_cutoff": 4.0}, "angular_cutoff (4 Å) must not exceed cutoff (3.5 Å)"),
    ({"cutoff": -1.0}, "cutoff must be a finite number > 0"),
    ({"angular_shifts": [1.0, -0.5]}, "angular_shifts must be a finite number >= 0"),
    ({"angle_shifts": [0.5, 4.0]}, "angle_shifts must lie in [0, 3.14159]"),
    ({"radial_shifts": 1.0}, "radial_shifts must be a list of numbers"),
    ({"radial_eta": "sixteen"}, "radial_eta must be a number"),
    ({"elements": ["Xx"]}, "unknown chemical symbol 'Xx'"),
    ({"zetta": 2.0}, "unknown ani parameter(s): zetta (did you mean 'zeta'?)"),
    ({"kind": "acsf"}, "is not 'ani'"),
])
def test_bad_params_are_refused_in_one_line(change, message):
    params = {**SMALL_HCO.params, **change}
    with pytest.raises(InputError) as error:
        ANIDescriptor.from_params(params)
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_missing_params_and_defaults_out_of_range():
    params = SMALL_HCO.params
    del params["zeta"], params["angle_shifts"]
    with pytest.raises(InputError, match="lack 'angle_shifts', 'zeta'"):
        descriptor_from_params(params)
    with pytest.raises(InputError, match="above the 20 Å"):
        default_ani(["H"], cutoff=50.0)
    with pytest.raises(InputError, match="angular_cutoff .* must not exceed cutoff"):
        default_ani(["H"], cutoff=4.0, angular_cutoff=4.5)


# -- spec, and end to end ---------------------------------------------------------------
def test_spec_descriptor_table_selects_ani(tmp_path, capsys):
    from pesnet.cli.main import main
    from pesnet.pipeline.spec import load_spec

    (tmp_path / "eth.extxyz").write_text("")
    spec = tmp_path / "ani.toml"
    head = '[dataset]\nfiles = ["eth.extxyz"]\n\n[descriptor]\nkind = "ani"\n'
    spec.write_text(head + "params = " + _toml_inline(SMALL_HCO.params) + "\n")
    assert descriptor_from_params(load_spec(spec).spec.descriptor.parameters([1, 6, 8])) \
        == SMALL_HCO
    spec.write_text(head)                                   # no params: ANI-1x's set
    params = load_spec(spec).spec.descriptor.parameters([8, 1, 6])
    assert descriptor_from_params(params) == default_ani(["H", "C", "O"])
    spec.write_text(head + "cutoff = 4.5\nangular_cutoff = 3.2\n")
    params = load_spec(spec).spec.descriptor.parameters([1, 6, 8])
    assert descriptor_from_params(params) == default_ani(["H", "C", "O"], 4.5, 3.2)

    spec.write_text(head + "params = { cutoff = 4.0, radial_eta = 0.0 }\n")
    assert main(["run", str(spec), "--run-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ani parameters lack" in err, err


def _toml_inline(params):
    items = (f"{key} = {json.dumps(value)}" for key, value in params.items() if key != "kind")
    return "{ " + ", ".join(items) + " }"


def test_ani_featurizes_trains_saves_and_predicts(tmp_path):
    import ase.io

    from pesnet.calculator import PESNetCalculator
    from pesnet.data.ingest import ingest
    from pesnet.descriptors import FeaturesFile, featurize
    from pesnet.potential.io import load_model, save_model
    from pesnet.training.settings import TrainSettings
    from pesnet.training.trainer import train_potential

    frames = ase.io.read("data/ethanol_pbe_def2svp.extxyz", index=":24")
    ase.io.write(tmp_path / "eth.extxyz", frames)
    ingest([tmp_path / "eth.extxyz"], tmp_path / "eth.h5")
    featurize(tmp_path / "eth.h5", tmp_path / "features.h5", SMALL_HCO, progress=False)
    with FeaturesFile(tmp_path / "features.h5") as ff:
        assert ff.descriptor == SMALL_HCO and ff.n_features == SMALL_HCO.n_features
    result = train_potential(tmp_path / "features.h5", TrainSettings(
        hidden=(8,), n_members=2, epochs=3, batch_size=8, seed=1))
    path = save_model(result.potential, tmp_path / "model.h5")
    assert load_model(path).descriptor == SMALL_HCO

    atoms = frames[0].copy()
    atoms.calc = PESNetCalculator(str(path))
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 0 and np.isfinite(atoms.calc.get_property("forces_std")).all()
    # Standardised features of an O–H bond make E stiff: h = 1e-4 leaves a 1e-5 eV/Å
    # truncation error (quadratic in h, checked), h = 1e-5 about 1e-7.
    def energy(moved):
        moved.calc = PESNetCalculator(str(path))
        return moved.get_potential_energy()

    numeric = -numerical_derivatives(energy, atoms, h=1e-5)
    assert_matches_finite_differences(forces, numeric, rtol=1e-6)
