"""pesnet as ASE plug-ins: the calculator (``ase.plugins``) and the dataset file as an ASE I/O
format (``ase.ioformats``), both found through the installed package's entry points."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from pesnet.data import Dataset


def test_entry_points_are_installed():
    plugins = {e.name: e.value for e in entry_points(group="ase.plugins")}
    assert plugins.get("pesnet") == "pesnet.ase_plugin"
    formats = {e.name: e.value for e in entry_points(group="ase.ioformats")}
    assert formats.get("pesnet-dataset") == "pesnet.ase_plugin:dataset_format"


def test_ase_info_lists_the_calculator_and_the_format():
    out = subprocess.run([sys.executable, "-m", "ase", "info", "--plugins"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    section = text[text.index("pesnet "):]
    assert "CalculatorPlugin" in section and "IOFormatPlugin" in section
    assert "pesnet-dataset" in section


def test_calculator_plugin_resolves_to_the_calculator():
    from ase._4.plugins import plugins

    from pesnet.calculator import PESNetCalculator

    (plugin,) = [p for p in plugins.calculators if p.name == "pesnet"]
    assert plugin.implementation is PESNetCalculator
    assert plugin.package == "pesnet"


def test_plugin_module_imports_no_ase_io():
    """ASE loads the ioformats entry point while ase.io itself is importing: the module must
    not import ase.io (or ase._4, which imports it) at import time."""
    code = ("import sys, pesnet.ase_plugin; "
            "print(sorted(m for m in sys.modules if m == 'ase.io' or m.startswith('ase._4')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    # and importing ase.io first (which loads the entry point) works
    out = subprocess.run([sys.executable, "-c", "import ase.io; from ase.io.formats import "
                          "ioformats; print(ioformats['pesnet-dataset'].description)"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "pesnet dataset" in out.stdout, out.stderr


def test_ase_io_reads_the_dataset_as_labelled_atoms(cu_features):
    import ase.io

    path = cu_features / "cu.h5"
    frames = ase.io.read(path, ":")
    with Dataset(path) as ds:
        assert len(frames) == len(ds)
        expected = ds[:]
    for got, want in zip(frames, expected):
        np.testing.assert_array_equal(got.numbers, want.numbers)
        np.testing.assert_array_equal(got.positions, want.positions)
        assert got.get_potential_energy() == want.get_potential_energy()
        np.testing.assert_array_equal(got.get_forces(), want.get_forces())
        assert got.info["dataset_index"] == want.info["dataset_index"]
    last = ase.io.read(path)                       # ASE's default: the last configuration
    assert last.info["dataset_index"] == len(frames) - 1
    assert [a.info["dataset_index"] for a in ase.io.read(path, "1:8:3")] == [1, 4, 7]
    assert ase.io.read(path, 2).info["dataset_index"] == 2
    assert len(list(ase.io.iread(path, "::5"))) == len(range(0, len(frames), 5))


def test_ase_io_writes_a_dataset_and_reads_it_back(tmp_path):
    import ase.io

    frames = []
    for k in range(4):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        atoms.get_forces(), atoms.get_stress()
        atoms.info["config_type"] = "rattled"
        frames.append(atoms)
    unlabelled = bulk("Cu", "fcc", a=3.6)
    ase.io.write(tmp_path / "frames.h5", frames + [unlabelled])   # by the extension
    back = ase.io.read(tmp_path / "frames.h5", ":", format="pesnet-dataset")
    assert len(back) == 5
    for a, b in zip(frames, back):
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())
        np.testing.assert_allclose(a.get_stress(), b.get_stress(), rtol=0, atol=0)
        assert b.info["config_type"] == "rattled"
    assert back[-1].calc is None
    with Dataset(tmp_path / "frames.h5") as ds:   # a real pesnet dataset
        assert len(ds) == 5


def test_writing_bad_data_leaves_no_file(tmp_path):
    import ase.io

    from pesnet.errors import ConfigurationError

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.positions[1] = atoms.positions[0] + 0.01      # overlapping atoms
    with pytest.raises(ConfigurationError, match="configuration 0"):
        ase.io.write(tmp_path / "bad.h5", [atoms], format="pesnet-dataset")
    assert not list(tmp_path.iterdir())
