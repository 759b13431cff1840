"""Real DFT code outputs in: VASP's OUTCAR and vasprun.xml (ASE's own test files, installed
with ASE, and relaxations made from them) and Quantum ESPRESSO's pw.x output ingest with
every ionic step by default, ``--index`` picking steps from each file, and energy, forces and
stress in ASE's units and sign, as ``ase.io.read`` gives them and as the printed numbers
convert by hand. Bad stress labels and misnamed files are refused in one line."""

from __future__ import annotations

import shutil

import ase.io
import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import Bohr, GPa, Ry

from pesnet.cli.main import main
from pesnet.data import Dataset
from tests.dft_outputs_helpers import (
    PW_ENERGY_RY,
    PW_FORCES_RY_BOHR,
    PW_PRESSURE_KBAR,
    PW_STRESS_KBAR,
    VASP,
    outcar_relaxation,
    pw_relaxation,
    vasprun_relaxation,
)

KBAR = 0.1 * GPa          # eV/Å³
RELAXATIONS = {"vasprun.xml": vasprun_relaxation, "OUTCAR": outcar_relaxation}


def ingested(tmp_path, *args):
    """The configurations ``pesnet ingest ARGS`` wrote (ASE Atoms with their labels)."""
    out = tmp_path / "ds.h5"
    assert main(["ingest", *map(str, args), "-o", str(out), "--quiet"]) == 0
    with Dataset(out) as ds:
        return [ds[k] for k in range(len(ds))]


def assert_same_labels(ours, reference):
    assert len(ours) == len(reference)
    for atoms, ref in zip(ours, reference):
        np.testing.assert_allclose(atoms.positions, ref.positions, atol=1e-10)
        assert atoms.get_potential_energy() == pytest.approx(ref.get_potential_energy(),
                                                              rel=1e-12)
        np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), rtol=1e-12)
        np.testing.assert_allclose(atoms.get_stress(), ref.get_stress(voigt=True), rtol=1e-12)


def refused(capsys, code, output):
    """The one error line of a failed ``pesnet ingest`` that wrote nothing."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert not output.exists() and not list(output.parent.glob(".*"))
    return lines[0]


@pytest.mark.parametrize("name", ["OUTCAR_example_1", "vasprun_pstress.xml",
                                  "vasprun_dfpt.xml"])
def test_vasp_outputs_ingest_with_ase_units_and_sign(tmp_path, name):
    source = VASP / name
    assert source.is_file(), f"ASE's test data moved: {source}"
    (atoms,) = ingested(tmp_path, source, "--index", "-1")
    reference = ase.io.read(source, index=-1)
    assert_same_labels([atoms], [reference])
    assert np.abs(atoms.get_stress()).max() < 1.0        # eV/Å³ (1 eV/Å³ = 160 GPa)


def test_vasp_stress_is_minus_the_printed_kbar(tmp_path):
    """VASP prints -σ in kB (XX YY ZZ XY YZ ZX in OUTCAR); its "external pressure" is
    ASE's -trace(σ)/3."""
    (outcar,) = ingested(tmp_path, VASP / "OUTCAR_example_1")
    # OUTCAR_example_1: "in kB  -4.29429 -4.58894 -4.50342 0.50047 -0.94049 0.36481"
    xx, yy, zz, xy, yz, zx = -4.29429, -4.58894, -4.50342, 0.50047, -0.94049, 0.36481
    np.testing.assert_allclose(outcar.get_stress(),
                               -KBAR * np.array([xx, yy, zz, yz, zx, xy]), atol=1e-12)
    # "external pressure =       -4.46 kB": the cell pulls inwards (tensile, σ > 0)
    assert -outcar.get_stress()[:3].mean() / KBAR == pytest.approx(-4.46, abs=0.005)
    (vasprun,) = ingested(tmp_path, VASP / "vasprun_pstress.xml")
    # vasprun_pstress.xml: <varray name="stress"> diagonal -165.99562580 (kB), no shear
    np.testing.assert_allclose(vasprun.get_stress(),
                               [165.99562580 * KBAR] * 3 + [0.0] * 3, atol=1e-12)


@pytest.mark.parametrize("name", RELAXATIONS)
def test_every_ionic_step_is_read_by_default(tmp_path, name):
    source = RELAXATIONS[name](tmp_path / name)
    every_step = ase.io.read(source, ":")
    assert len(every_step) > 1
    assert ase.io.read(source).get_potential_energy() == every_step[-1].get_potential_energy()
    ours = ingested(tmp_path, source)
    assert_same_labels(ours, every_step)
    assert len({atoms.get_potential_energy() for atoms in ours}) == len(every_step)


@pytest.mark.parametrize("index", ["::2", "-1", "1:3"])
@pytest.mark.parametrize("name", RELAXATIONS)
def test_index_picks_ionic_steps(tmp_path, name, index):
    source = RELAXATIONS[name](tmp_path / name)
    reference = ase.io.read(source, index)
    reference = reference if isinstance(reference, list) else [reference]
    assert_same_labels(ingested(tmp_path, source, "--index", index), reference)


def test_several_runs_each_with_the_same_index(tmp_path):
    """``pesnet ingest runs/*/vasprun.xml``: every step of each run; ``--index`` per file."""
    runs = []
    for run, n_steps in (("a", 4), ("b", 3)):
        (tmp_path / "runs" / run).mkdir(parents=True)
        runs.append(vasprun_relaxation(tmp_path / "runs" / run / "vasprun.xml", n_steps))
    everything = ingested(tmp_path, *runs)   # ASE's read(path) alone gives one step each
    assert_same_labels(everything, ase.io.read(runs[0], ":") + ase.io.read(runs[1], ":"))
    last = ingested(tmp_path, *runs, "--index", "-1")
    assert_same_labels(last, [ase.io.read(runs[0]), ase.io.read(runs[1])])
    with Dataset(tmp_path / "ds.h5") as ds:
        assert [s["index"] for s in ds.sources] == ["-1", "-1"]
        np.testing.assert_array_equal(ds.column("source"), [0, 1])


def test_espresso_relaxation_units_and_sign(tmp_path):
    """pw.x's output is told by its contents (any name); its stress (printed as -σ, positive
    under compression) becomes ASE's σ: the compressed cell has pressure -trace(σ)/3 > 0."""
    source = pw_relaxation(tmp_path / "si-relax.log")
    ours = ingested(tmp_path, source)
    # two ionic steps: the "Begin final coordinates" reprint, without results, is not a third
    assert_same_labels(ours, ase.io.read(source, ":"))
    assert len(ours) == 2
    for atoms, energy, forces, kbar, pressure in zip(
            ours, PW_ENERGY_RY, PW_FORCES_RY_BOHR, PW_STRESS_KBAR, PW_PRESSURE_KBAR):
        assert atoms.get_potential_energy() == pytest.approx(energy * Ry, rel=1e-7)
        np.testing.assert_allclose(atoms.get_forces(), np.array(forces) * Ry / Bohr, rtol=1e-7)
        kbar = np.array(kbar)   # printed to 0.01 kbar = 6e-7 eV/Å³
        expected = -KBAR * kbar[(0, 1, 2, 1, 0, 0), (0, 1, 2, 2, 2, 1)]
        np.testing.assert_allclose(atoms.get_stress(), expected, atol=4e-6)
        assert -atoms.get_stress()[:3].mean() / KBAR == pytest.approx(pressure, abs=0.01)
        assert pressure > 0
    (last,) = ingested(tmp_path, source, "--index", "-1")
    assert last.get_potential_energy() == pytest.approx(PW_ENERGY_RY[1] * Ry, rel=1e-7)


def test_a_renamed_outcar_or_vasprun_needs_format(tmp_path, capsys):
    """ASE knows an OUTCAR and a vasprun.xml by their names only: renamed, ``relax.log`` is
    taken for Gaussian output (by its extension) and ``relax.xml`` for nothing."""
    outcar = shutil.copy(outcar_relaxation(tmp_path / "OUTCAR"), tmp_path / "relax.log")
    output = tmp_path / "ds.h5"
    line = refused(capsys, main(["ingest", str(outcar), "-o", str(output)]), output)
    assert line == ("pesnet ingest: error: " + str(outcar) + ": no configurations found "
                    "reading it as gaussian-out (selection ':'); pass --format if it is "
                    "another format")
    assert len(ingested(tmp_path, outcar, "--format", "vasp-out")) == 3
    output.unlink()
    vasprun = shutil.copy(vasprun_relaxation(tmp_path / "vasprun.xml"), tmp_path / "relax.xml")
    line = refused(capsys, main(["ingest", str(vasprun), "-o", str(output)]), output)
    assert line.endswith("relax.xml: cannot tell the file format; pass --format (see `ase info "
                         "--formats`); --format vasp-xml for a renamed vasprun.xml")
    assert len(ingested(tmp_path, vasprun, "--format", "vasp-xml")) == 4


def test_stress_on_a_molecule_is_refused(tmp_path, capsys):
    water = molecule("H2O")
    water.calc = SinglePointCalculator(water, energy=-14.0, forces=np.zeros((3, 3)),
                                       stress=np.zeros(6))
    ase.io.write(tmp_path / "water.extxyz", water)
    output = tmp_path / "ds.h5"
    line = refused(capsys, main(["ingest", str(tmp_path / "water.extxyz"), "-o", str(output)]),
                   output)
    assert "water.extxyz, configuration 0: a stress label on a structure that is not " \
        "periodic in three directions" in line


def labelled_copper(tmp_path, key, good, bad):
    """Two labelled Cu cells in ``cu.extxyz`` with ``info[key]`` = ``good`` and ``bad``."""
    frames = []
    for k, stress in enumerate((good, bad)):
        cu = bulk("Cu", cubic=True)
        cu.calc = SinglePointCalculator(cu, energy=-14.0 - k, forces=np.zeros((4, 3)))
        cu.info[key] = np.array(stress)
        frames.append(cu)
    ase.io.write(tmp_path / "cu.extxyz", frames)
    return tmp_path / "cu.extxyz"


SYMMETRIC = [[0.01, 0.002, 0.0], [0.002, 0.01, 0.0], [0.0, 0.0, 0.01]]


@pytest.mark.parametrize("key, good, bad, message", [
    ("s4", [0.01] * 3 + [0.0] * 3, [0.01, 0.01, 0.01, 0.0],
     "configuration 1: stress has shape (4,), expected (6,) (Voigt xx yy zz yz xz xy, eV/Å³) "
     "or (3, 3)"),
    ("sigma", SYMMETRIC, np.triu(SYMMETRIC),
     "configuration 1: the (3, 3) stress is not symmetric (σ[0,1] = 0.002, σ[1,0] = 0 eV/Å³): "
     "not a stress tensor"),
    ("virial", np.eye(3), np.eye(3),
     "--stress-key virial: a virial (eV, W = -σV) is not a stress; store -virial / volume "
     "(eV/Å³) under another key and name that"),
])
def test_bad_stress_labels_are_refused(tmp_path, capsys, key, good, bad, message):
    source, output = labelled_copper(tmp_path, key, good, bad), tmp_path / "ds.h5"
    code = main(["ingest", str(source), "-o", str(output), "--stress-key", key])
    assert refused(capsys, code, output).endswith(message)
    if key != "virial":   # the good one alone goes in
        assert len(ingested(tmp_path, source, "--stress-key", key, "--index", "0")) == 1


def test_a_four_component_extxyz_stress_is_refused(tmp_path, capsys):
    """extxyz's own ``stress`` key: ASE's reader refuses anything but 9 numbers."""
    source, output = tmp_path / "cu.extxyz", tmp_path / "ds.h5"
    source.write_text(
        '2\nLattice="3.0 0.0 0.0 0.0 3.0 0.0 0.0 0.0 3.0" Properties=species:S:1:pos:R:3:'
        'forces:R:3 energy=-7.5 stress="0.01 0.01 0.01 0.0" pbc="T T T"\n'
        "Cu 0.0 0.0 0.0 0.0 0.0 0.0\nCu 1.5 1.5 1.5 0.0 0.0 0.0\n")
    line = refused(capsys, main(["ingest", str(source), "-o", str(output), "--index", "0:"]),
                   output)
    assert "cu.extxyz, configuration 0 of the selection '0:': cannot be read as extxyz: " \
        "Got info item stress, expecting special 3x3 matrix" in line
