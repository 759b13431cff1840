"""The descriptor protocol and registry: a new kind is one class plus ``register``.

A toy kind defined here (Gaussian radial shells per neighbour element, analytic derivatives,
written against :class:`~pesnet.descriptors.bond_descriptor.BondDescriptor` only) is
featurized, trained on, saved, loaded and used through :class:`PESNetCalculator`, whose forces
must be −∇E. Every registered kind passes the same contract (``assert_descriptor_contract``).
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.data import chemical_symbols

from pesnet.descriptors import ACSF, BondDescriptor, Descriptor, kinds, register
from pesnet.descriptors.bond_descriptor import element_numbers
from pesnet.descriptors.cutoff import cosine_cutoff
from pesnet.descriptors.registry import descriptor_from_params
from pesnet.errors import InputError
from tests.conftest import assert_descriptor_contract, random_molecular_box


class GaussianShells(BondDescriptor):
    """G_i,(s,k) = Σ_{j of element s} exp(−(r_ij − μ_k)² / 2w²) f_c(r_ij); μ_k Å, w Å."""

    kind = "gaussian-shells"

    def __init__(self, elements, cutoff, centres, width):
        self.elements = element_numbers(elements)
        self.cutoff, self.width = float(cutoff), float(width)
        self.centres = np.asarray(centres, dtype=float)
        self.n_features = len(self.elements) * len(self.centres)

    @property
    def labels(self):
        return tuple(f"shell[{chemical_symbols[z]}](mu={m:g})" for z in self.elements
                     for m in self.centres)

    @property
    def params(self):
        return {"kind": self.kind, "elements": list(self.elements), "cutoff": self.cutoff,
                "centres": self.centres.tolist(), "width": self.width}

    @classmethod
    def from_params(cls, params):
        return cls(params["elements"], params["cutoff"], params["centres"], params["width"])

    def bond_terms(self, n_atoms, element, i, j, d, D, derivatives):
        n_el, n_k = len(self.elements), len(self.centres)
        fc, dfc = cosine_cutoff(d, self.cutoff)
        delta = d[:, None] - self.centres                                  # (n_bonds, K)
        gauss = np.exp(-0.5 * (delta / self.width) ** 2)
        g = gauss * fc[:, None]
        column = element[j][:, None] * n_k + np.arange(n_k)                # (n_bonds, K)
        values = np.zeros((n_atoms, n_el * n_k))
        np.add.at(values, (np.repeat(i, n_k).reshape(-1, n_k), column), g)
        if not derivatives:
            return values, None
        dg = gauss * (dfc[:, None] - delta / self.width**2 * fc[:, None])   # ∂g/∂r, 1/Å
        grad = np.zeros((len(d), n_el * n_k, 3))
        rows = np.arange(len(d))[:, None]
        grad[rows, column] = dg[..., None] * (D / d[:, None])[:, None, :]
        return values, grad


register(GaussianShells.kind, GaussianShells)

TOY = GaussianShells(["Cu"], 4.0, centres=[2.2, 2.6, 3.0, 3.5], width=0.3)
TOY_HCO = GaussianShells(["H", "C", "O"], 3.5, centres=[1.0, 1.5, 2.5], width=0.4)
SMALL_ACSF = ACSF(["H", "C", "O"], 3.5, g2=[(0.5, 1.0), (2.0, 2.0)],
                  g4=[(0.05, 1.0, 1.0), (0.1, 2.0, -1.0)], g5=[(0.02, 1.0, 1.0)])


def test_registry_lists_kinds_and_reads_old_parameters_as_acsf():
    assert {"acsf", "gaussian-shells"} <= set(kinds())
    params = SMALL_ACSF.params
    assert params["kind"] == "acsf"
    del params["kind"]                           # a file written before kinds existed
    assert descriptor_from_params(params) == SMALL_ACSF
    assert isinstance(TOY, Descriptor) and isinstance(SMALL_ACSF, Descriptor)
    assert descriptor_from_params(TOY.params) == TOY


def test_unknown_kind_is_one_line_with_a_suggestion():
    with pytest.raises(InputError) as error:
        descriptor_from_params({"kind": "acfs", "elements": ["H"], "cutoff": 3.0})
    message = str(error.value)
    assert "unknown descriptor kind 'acfs'" in message and "did you mean 'acsf'" in message
    assert "\n" not in message


@pytest.mark.parametrize("descriptor", [SMALL_ACSF, TOY_HCO], ids=["acsf", "gaussian-shells"])
@pytest.mark.parametrize("periodic", [False, True], ids=["molecule", "box"])
def test_every_kind_passes_the_contract(descriptor, periodic):
    atoms = (random_molecular_box("HHHCCO", box=5.0, seed=3) if periodic
             else molecule("CH3CH2OH"))
    assert_descriptor_contract(descriptor, atoms, seed=1)


def test_toy_kind_featurizes_trains_saves_and_predicts(cu_features, tmp_path):
    from ase.calculators.calculator import Calculator

    from pesnet.calculator import PESNetCalculator
    from pesnet.descriptors import FeaturesFile, featurize
    from pesnet.potential.io import load_model, save_model
    from pesnet.training.settings import TrainSettings
    from pesnet.training.trainer import train_potential

    featurize(cu_features / "cu.h5", tmp_path / "features.h5", TOY, progress=False)
    with FeaturesFile(tmp_path / "features.h5") as ff:
        assert ff.descriptor == TOY and ff.n_features == 4
    result = train_potential(tmp_path / "features.h5", TrainSettings(
        hidden=(6,), n_members=2, epochs=3, batch_size=8, seed=1))
    path = save_model(result.potential, tmp_path / "model.h5")
    with h5py.File(path) as f:
        stored = [json.loads(g.attrs["descriptor"]) for g in [f, *f.values()]
                  if isinstance(g, (h5py.File, h5py.Group)) and "descriptor" in g.attrs]
    assert stored and stored[0]["kind"] == "gaussian-shells"
    assert load_model(path).descriptor == TOY

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=2)
    atoms.calc = PESNetCalculator(str(path), skin=0.0)
    assert isinstance(atoms.calc, Calculator)
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 0
    h, numeric = 1e-4, np.zeros_like(forces)
    for a in range(len(atoms)):
        for x in range(3):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[a, x] += sign * h
                moved.calc = PESNetCalculator(str(path), skin=0.0)
                energies.append(moved.get_potential_energy())
            numeric[a, x] = -(energies[0] - energies[1]) / (2 * h)
    np.testing.assert_allclose(forces, numeric, atol=1e-6 * max(1.0, np.abs(numeric).max()))
    stress = atoms.get_stress()
    assert np.isfinite(stress).all()


def test_spec_descriptor_table_names_a_kind(tmp_path, capsys):
    from pesnet.cli.main import main
    from pesnet.pipeline.spec import load_spec

    (tmp_path / "cu.extxyz").write_text("")
    spec = tmp_path / "toy.toml"
    spec.write_text('[dataset]\nfiles = ["cu.extxyz"]\n\n[descriptor]\nkind = "gaussian-shells"\n'
                    'params = { cutoff = 4.0, centres = [2.2, 2.6], width = 0.3 }\n')
    params = load_spec(spec).spec.descriptor.parameters([29])
    assert descriptor_from_params(params) == GaussianShells([29], 4.0, [2.2, 2.6], 0.3)

    default = tmp_path / "default.toml"
    default.write_text('[dataset]\nfiles = ["cu.extxyz"]\n\n[descriptor]\ncutoff = 5.0\n')
    from pesnet.descriptors import default_parameters

    assert load_spec(default).spec.descriptor.parameters([29]) == default_parameters([29], 5.0)

    spec.write_text('[dataset]\nfiles = ["cu.extxyz"]\n\n[descriptor]\nkind = "gausian-shells"\n'
                    'params = { cutoff = 4.0 }\n')
    assert main(["run", str(spec), "--run-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean 'gaussian-shells'" in err, err


def test_featurize_cli_refuses_an_unknown_kind_in_one_line(tmp_path, capsys):
    from pesnet.cli.main import main

    params = tmp_path / "params.json"
    params.write_text(json.dumps({"kind": "soap", "elements": ["Cu"], "cutoff": 4.0}))
    code = main(["featurize", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "f.h5"),
                 "--descriptor-params", str(params)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "unknown descriptor kind 'soap'" in err, err
