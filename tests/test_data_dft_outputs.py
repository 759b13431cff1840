"""Real DFT code outputs in: VASP's OUTCAR and vasprun.xml (ASE's own test files, installed
with ASE) ingest with energy, forces and stress in ASE's units and sign, as ``ase.io.read``
gives them; a stress label on a structure without three periodic directions is refused."""

from __future__ import annotations

from pathlib import Path

import ase
import ase.io
import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator

from pesnet.cli.main import main
from pesnet.data import Dataset

VASP = Path(ase.__file__).parent / "test" / "testdata" / "vasp"


@pytest.mark.parametrize("name", ["OUTCAR_example_1", "vasprun_pstress.xml",
                                  "vasprun_dfpt.xml"])
def test_vasp_outputs_ingest_with_ase_units_and_sign(tmp_path, name):
    source = VASP / name
    assert source.is_file(), f"ASE's test data moved: {source}"
    assert main(["ingest", str(source), "-o", str(tmp_path / "ds.h5"), "--quiet",
                 "--index", "-1"]) == 0
    reference = ase.io.read(source, index=-1)
    with Dataset(tmp_path / "ds.h5") as ds:
        atoms = ds[0]
    assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy())
    np.testing.assert_allclose(atoms.get_forces(), reference.get_forces())
    np.testing.assert_allclose(atoms.get_stress(), reference.get_stress(voigt=True))
    assert np.abs(atoms.get_stress()).max() < 1.0        # eV/Å³ (1 eV/Å³ = 160 GPa)


def test_stress_on_a_molecule_is_refused(tmp_path, capsys):
    water = molecule("H2O")
    water.calc = SinglePointCalculator(water, energy=-14.0, forces=np.zeros((3, 3)),
                                       stress=np.zeros(6))
    ase.io.write(tmp_path / "water.extxyz", water)
    code = main(["ingest", str(tmp_path / "water.extxyz"), "-o", str(tmp_path / "ds.h5")])
    err = capsys.readouterr().err
    assert code == 1 and "water.extxyz, configuration 0: a stress label on a structure that " \
        "is not periodic in three directions" in err
    assert not (tmp_path / "ds.h5").exists()
