"""Ingestion from several ASE formats, the round trip, labels from keys, CLI summary."""

from __future__ import annotations

import json
import os
import sys

import ase.io
import h5py
import numpy as np
import pytest

from pesnet.cli.main import main
from pesnet.data import Dataset
from pesnet.data.ingest import LabelKeys, ingest
from pesnet.fileio import sha256_file


def assert_same_configurations(expected, actual):
    assert len(expected) == len(actual)
    for a, b in zip(expected, actual):
        np.testing.assert_array_equal(a.numbers, b.numbers)
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.cell[:], b.cell[:])
        np.testing.assert_array_equal(a.pbc, b.pbc)
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())


def test_extxyz_round_trip_is_bit_for_bit(tmp_path, extxyz_file):
    out = tmp_path / "ds.h5"
    assert ingest([extxyz_file], out) == 6
    expected = ase.io.read(extxyz_file, ":")
    with Dataset(out) as ds:
        assert_same_configurations(expected, ds[:])
        assert [a.info["config_type"] for a in ds] == [a.info["config_type"] for a in expected]
        # stress is carried for the periodic cells, in ASE's Voigt order
        np.testing.assert_array_equal(ds[0].get_stress(), expected[0].get_stress())


@pytest.mark.parametrize("fmt, suffix", [("traj", ".traj"), ("db", ".db"), ("extxyz", ".xyz")])
def test_ingest_other_ase_formats(tmp_path, frames, fmt, suffix):
    path = tmp_path / f"input{suffix}"
    ase.io.write(path, frames, format=fmt)
    out = tmp_path / "ds.h5"
    ingest([path], out)
    with Dataset(out) as ds:
        assert_same_configurations(ase.io.read(path, ":"), ds[:])


def test_vasp_outcar_is_ingested(tmp_path):
    """A minimal VASP OUTCAR written by hand in the format ASE's reader parses."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.positions[0] += [0.05, -0.02, 0.01]
    atoms.calc = EMT()
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    lines = [
        " vasp.6.3.0 18Jan22 (build Feb 08 2022) complex",
        " POTCAR:    PAW_PBE Cu 22Jun2005",
        " POTCAR:    PAW_PBE Cu 22Jun2005",
        "   ions per type =               4",
        "----------------------------------------- Iteration    1(   1)  ---------------",
        "  direct lattice vectors                 reciprocal lattice vectors",
    ]
    for v in atoms.cell:
        lines.append(f"    {v[0]:12.9f} {v[1]:12.9f} {v[2]:12.9f}     0.0 0.0 0.0")
    lines += ["", " POSITION                                       TOTAL-FORCE (eV/Angst)",
              " " + "-" * 83]
    for p, f in zip(atoms.positions, forces):
        lines.append(f"     {p[0]:10.5f} {p[1]:10.5f} {p[2]:10.5f}   {f[0]:12.6f} {f[1]:12.6f} {f[2]:12.6f}")
    lines += [" " + "-" * 83,
              "  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)",
              "  ---------------------------------------------------",
              f"  free  energy   TOTEN  =       {energy:.8f} eV",
              "",
              f"  energy  without entropy=      {energy:.8f}  energy(sigma->0) =      {energy:.8f}",
              ""]
    path = tmp_path / "OUTCAR"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "ds.h5"
    ingest([path], out, fmt="vasp-out")
    with Dataset(out) as ds:
        assert len(ds) == 1
        np.testing.assert_allclose(ds[0].positions, atoms.positions, atol=1e-5)
        np.testing.assert_allclose(ds[0].get_forces(), forces, atol=1e-6)
        assert ds[0].get_potential_energy() == pytest.approx(energy, abs=1e-7)


def test_several_inputs_index_and_sources(tmp_path, frames):
    a, b = tmp_path / "a.traj", tmp_path / "b.extxyz"
    ase.io.write(a, frames[:3])
    ase.io.write(b, frames[3:])
    out = tmp_path / "ds.h5"
    assert ingest([a, b], out, index="::2") == 4
    with Dataset(out) as ds:
        assert len(ds) == 4
        sources = ds.sources
        assert [s["sha256"] for s in sources] == [sha256_file(a), sha256_file(b)]
        assert sources[0]["format"] == "traj" and sources[1]["format"] == "extxyz"
        np.testing.assert_array_equal(ds[2].positions, ase.io.read(b, 0).positions)
        np.testing.assert_array_equal(ds.column("source"), [0, 0, 1, 1])
        np.testing.assert_array_equal(ds.column("source_index"), [0, 1, 0, 1])
    with h5py.File(out) as f:
        assert f.attrs["format"] == "pesnet-dataset"
        assert json.loads(f.attrs["units"])["energy"] == "eV"


def test_labels_from_named_info_and_arrays_keys(tmp_path, frames):
    plain = []
    for atoms in frames:
        copy = atoms.copy()
        copy.info["dft_energy"] = atoms.get_potential_energy()
        copy.arrays["dft_forces"] = atoms.get_forces()
        plain.append(copy)
    path = tmp_path / "keys.extxyz"
    ase.io.write(path, plain, format="extxyz")
    out = tmp_path / "ds.h5"
    ingest([path], out, keys=LabelKeys(energy="dft_energy", forces="dft_forces"))
    with Dataset(out) as ds:
        for atoms, expected in zip(ds, ase.io.read(path, ":")):
            expected_forces = expected.arrays["dft_forces"]
            assert atoms.get_potential_energy() == expected.info["dft_energy"]
            np.testing.assert_array_equal(atoms.get_forces(), expected_forces)


def test_allow_unlabelled_marks_missing_labels(tmp_path, frames):
    bare = [a.copy() for a in frames]  # copy() drops the calculator
    path = tmp_path / "bare.extxyz"
    ase.io.write(path, bare, format="extxyz")
    out = tmp_path / "ds.h5"
    ingest([path], out, allow_unlabelled=True)
    with Dataset(out) as ds:
        assert not ds.column("has_energy").any()
        assert not ds.column("has_forces").any()
        assert ds[0].calc is None


def test_cli_ingest_prints_summary(tmp_path, extxyz_file, capsys):
    out = tmp_path / "ds.h5"
    assert main(["ingest", str(extxyz_file), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "configurations 6" in text
    assert "Cu" in text and "C 9" not in text  # two ethanols: C 4, H 12, O 2
    assert "C 4" in text and "H 12" in text and "O 2" in text
    assert main(["info", str(out)]) == 0
    assert "configurations 6" in capsys.readouterr().out


def test_cli_output_into_a_closed_pipe_stops_quietly(tmp_path, extxyz_file, capsys,
                                                     monkeypatch):
    """`pesnet info ds.h5 | head -1`: the reader is gone; exit 141, no traceback."""
    out = tmp_path / "ds.h5"
    assert main(["ingest", str(extxyz_file), "-o", str(out), "--quiet"]) == 0
    read_end, write_end = os.pipe()
    os.close(read_end)
    saved = os.dup(1)
    try:
        with os.fdopen(write_end, "w") as closed_pipe:
            monkeypatch.setattr(sys, "stdout", closed_pipe)
            assert main(["info", str(out)]) == 141
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    assert "Traceback" not in capsys.readouterr().err
