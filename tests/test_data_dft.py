"""DFT reference data: the PySCF calculator, the ``ethanol-dft`` recipe and its shipped file.

The PySCF tests use water in a minimal basis (a fraction of a second per SCF) through the same
code path as PBE/def2-SVP; the recipe's wiring runs with EMT labels, so nothing here pays for
ethanol DFT except one relabelled frame of the shipped file (~3 s on one core).
"""

from __future__ import annotations

import sys
from collections import Counter
from itertools import islice
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import molecule

from pesnet.data.calculators import make_calculator
from pesnet.data.recipes import run_recipe
from pesnet.errors import InputError
from tests.conftest import numerical_derivatives

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "ethanol_pbe_def2svp.extxyz"
EXPECTED_COUNTS = {"md_500K": 1200, "md_1000K": 200}


def _distorted_water():
    """H2O away from its minimum, so every force component is far from zero."""
    water = molecule("H2O")
    water.positions += np.array([[0.02, -0.03, 0.01], [0.05, 0.02, -0.04], [-0.03, 0.04, 0.06]])
    return water


def _small_dft(**options):
    """PBE/STO-3G through the registered ``pyscf`` factory (the ``pbe-def2svp`` code path)."""
    pytest.importorskip("pyscf")
    return make_calculator("pyscf", basis="sto-3g", **{"conv_tol": 1e-11, **options})


# -- the PySCF calculator -----------------------------------------------------------------------

def test_pyscf_forces_are_minus_the_energy_gradient():
    """Analytic forces (eV/Å) equal −∂E/∂R by central differences (h = 1e-3 Å) to 1e-4 eV/Å;
    density fitting and the grid response keep them the derivative of the reported energy."""
    calc = _small_dft()
    water = _distorted_water()
    water.calc = calc
    forces = water.get_forces()

    def energy(atoms):
        atoms.calc = calc
        return atoms.get_potential_energy()

    numeric = -numerical_derivatives(energy, water, h=1e-3)
    assert np.abs(forces).max() > 0.1  # a meaningful check, not 0 == 0
    np.testing.assert_allclose(forces, numeric, atol=1e-4)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-4)  # no net force


def test_pyscf_guess_reuse_changes_nothing_and_changed_atoms_are_recomputed():
    water = _distorted_water()
    warm = _small_dft()
    water.calc = warm
    first = water.get_potential_energy()
    moved = water.copy()
    moved.positions[0, 2] += 0.05
    moved.calc = warm  # starts from the previous frame's density matrix
    warm_energy, warm_forces = moved.get_potential_energy(), moved.get_forces()
    moved.calc = _small_dft()  # starts from PySCF's own guess
    assert warm_energy != first
    assert warm_energy == pytest.approx(moved.get_potential_energy(), abs=1e-7)
    np.testing.assert_allclose(warm_forces, moved.get_forces(), atol=1e-5)


def test_pyscf_registry_entries_and_errors(monkeypatch):
    pytest.importorskip("pyscf")
    from ase.calculators.calculator import InputError as AseInputError

    calc = make_calculator("pbe-def2svp")
    assert (calc.parameters.xc, calc.parameters.basis) == ("PBE", "def2-SVP")
    assert make_calculator("pyscf", xc="B3LYP").parameters.xc == "B3LYP"
    periodic = molecule("H2O", vacuum=3.0, pbc=True)
    periodic.calc = calc
    with pytest.raises(AseInputError, match="molecules only"):
        periodic.get_potential_energy()
    monkeypatch.setitem(sys.modules, "pyscf", None)  # as if pyscf were not installed
    with pytest.raises(InputError, match="install pyscf"):
        make_calculator("pbe-def2svp")


# -- the ethanol-dft recipe, wired with a cheap calculator ------------------------------------

@pytest.mark.filterwarnings("ignore:.*drives the MD")  # without tblite EMT drives the MD
def test_ethanol_dft_recipe_scales_groups_and_labels_with_its_calculator():
    frames = list(run_recipe("ethanol-dft", make_calculator("emt"), seed=1, scale=0.01))
    assert Counter(a.info["config_type"] for a in frames) == {"md_500K": 12, "md_1000K": 2}
    assert all(a.get_chemical_formula() == "C2H6O" for a in frames)
    labeller = make_calculator("emt")
    for atoms in frames[:3]:  # the labels are the given calculator's, whoever drove the MD
        again = atoms.copy()
        again.calc = labeller
        assert atoms.get_potential_energy() == pytest.approx(again.get_potential_energy())
        np.testing.assert_allclose(atoms.get_forces(), again.get_forces(), atol=1e-10)
    same = list(run_recipe("ethanol-dft", make_calculator("emt"), seed=1, scale=0.01))
    # same seed, same trajectory (GFN2-xTB's sums may differ in the last bits between runs)
    np.testing.assert_allclose(frames[-1].positions, same[-1].positions, rtol=0, atol=1e-9)


def test_ethanol_dft_md_falls_back_to_the_labeller_without_tblite(monkeypatch):
    monkeypatch.setitem(sys.modules, "tblite", None)
    monkeypatch.setitem(sys.modules, "tblite.ase", None)
    with pytest.warns(UserWarning, match="labelling calculator drives the MD"):
        frames = list(run_recipe("ethanol-dft", make_calculator("emt"), seed=0, scale=0.002))
    assert [a.info["config_type"] for a in frames] == ["md_500K", "md_500K", "md_1000K"]


# -- the shipped file ---------------------------------------------------------------------------

def test_shipped_dft_file_ingests_with_the_expected_groups(tmp_path):
    from pesnet.data.dataset import open_dataset
    from pesnet.data.ingest import ingest

    assert SHIPPED.stat().st_size < 5 * 1024 * 1024
    assert ingest([SHIPPED], tmp_path / "ethanol.h5") == sum(EXPECTED_COUNTS.values())
    with open_dataset(tmp_path / "ethanol.h5") as dataset:
        batch = dataset.read_batch(0, len(dataset))
    groups = np.array([str(g) for g in batch.config_type])
    assert Counter(groups) == EXPECTED_COUNTS
    assert set(batch.numbers) == {1, 6, 8} and set(batch.n_atoms) == {9}
    assert np.isfinite(batch.energy).all() and np.isfinite(batch.forces).all()
    assert batch.has_forces.all()
    # hotter MD samples configurations further from the minimum: larger forces on average
    mean_force = {group: np.linalg.norm(batch.forces.reshape(-1, 9, 3)[groups == group],
                                        axis=-1).mean() for group in EXPECTED_COUNTS}
    assert mean_force["md_1000K"] > 1.2 * mean_force["md_500K"]
    # PBE/def2-SVP total energies of ethanol are about -4,209 eV (-154.7 Hartree)
    assert -4215 < batch.energy.min() and batch.energy.max() < -4200


def test_shipped_dft_file_starts_with_the_frames_its_command_makes():
    """The first frame's geometry is the recipe's (xTB-driven MD, seed 0) and its labels are
    PBE/def2-SVP from this calculator (one DFT calculation, ~3 s)."""
    pytest.importorskip("tblite")  # the shipped trajectory was driven by GFN2-xTB
    pytest.importorskip("pyscf")
    from pyscf import lib

    shipped = ase.io.read(SHIPPED, ":2")
    made = list(islice(run_recipe("ethanol-dft", make_calculator("emt"), seed=0), 2))
    for a, b in zip(shipped, made):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-6)
    relabelled = shipped[0].copy()
    relabelled.calc = make_calculator("pbe-def2svp")
    threads = lib.num_threads()
    try:
        lib.num_threads(1)  # the test suite shares the machine
        energy = relabelled.get_potential_energy()
    finally:
        lib.num_threads(threads)
    assert energy == pytest.approx(shipped[0].get_potential_energy(), abs=1e-5)
    np.testing.assert_allclose(relabelled.get_forces(), shipped[0].get_forces(), atol=1e-4)
