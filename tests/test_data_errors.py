"""Bad input: one clear line naming the file and configuration, exit 1, output untouched."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pesnet.cli.main import main
from pesnet.data import Dataset
from pesnet.data.ingest import ingest
from pesnet.errors import PesnetError

SENTINEL = b"previous contents"


def run_ingest(capsys, inputs, output, *extra):
    """Run ``pesnet ingest`` and return (exit code, stderr)."""
    code = main(["ingest", *map(str, inputs), "-o", str(output), "--quiet", *extra])
    err = capsys.readouterr().err
    return code, err


def assert_clean_failure(code, err, output, *fragments):
    assert code == 1
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err  # one line, no traceback
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert output.read_bytes() == SENTINEL  # the old output is untouched
    assert [p.name for p in output.parent.iterdir() if p.name.startswith(".")] == []


@pytest.fixture
def output(tmp_path):
    path = tmp_path / "out.h5"
    path.write_bytes(SENTINEL)
    return path


def write_frames(path, frames, fmt="extxyz"):
    ase.io.write(path, frames, format=fmt)
    return path


def test_missing_file(capsys, tmp_path, output):
    code, err = run_ingest(capsys, [tmp_path / "nope.extxyz"], output)
    assert_clean_failure(code, err, output, "nope.extxyz", "no such file")


def test_directory_is_not_a_file(capsys, tmp_path, output):
    code, err = run_ingest(capsys, [tmp_path], output)
    assert_clean_failure(code, err, output, "is a directory")


def test_unknown_format(capsys, tmp_path, output, extxyz_file):
    code, err = run_ingest(capsys, [extxyz_file], output, "--format", "no-such-format")
    assert_clean_failure(code, err, output, "unknown format 'no-such-format'")
    mystery = tmp_path / "data.mystery"
    mystery.write_bytes(b"\x00\x01\x02 binary junk \xff")
    code, err = run_ingest(capsys, [mystery], output)
    assert_clean_failure(code, err, output, "data.mystery", "cannot tell the file format")


def test_truncated_extxyz(capsys, tmp_path, output, extxyz_file):
    lines = extxyz_file.read_text().splitlines(keepends=True)
    n_first = int(lines[0]) + 2
    truncated = tmp_path / "truncated.extxyz"
    truncated.write_text("".join(lines[: n_first + 5]))  # frame 1 cut after 3 atom lines
    code, err = run_ingest(capsys, [truncated], output)
    assert_clean_failure(code, err, output, "truncated.extxyz", "configuration 1")


def test_missing_energy_unless_allowed(capsys, tmp_path, output, frames):
    bare = frames[0].copy()
    bare.arrays["forces"] = frames[0].get_forces()
    path = write_frames(tmp_path / "noenergy.extxyz", [frames[1], bare])
    code, err = run_ingest(capsys, [path], output)
    assert_clean_failure(code, err, output, "noenergy.extxyz", "configuration 1", "no energy")
    code, _ = run_ingest(capsys, [path], output, "--allow-unlabelled")
    assert code == 0
    with Dataset(output) as ds:
        np.testing.assert_array_equal(ds.column("has_energy"), [True, False])


def test_forces_of_wrong_shape(capsys, tmp_path, output, frames):
    atoms = frames[0].copy()
    atoms.info["E"] = 1.0
    atoms.arrays["F2"] = np.zeros((len(atoms), 3))
    path = write_frames(tmp_path / "f.extxyz", [atoms])
    # arrays must have one row per atom in extxyz, so build the bad shape through a key lookup
    from pesnet.data.ingest import LabelKeys, extract_labels
    from pesnet.data.validate import validate_configuration
    from pesnet.errors import ConfigurationError

    energy, forces, _ = extract_labels(atoms, LabelKeys("E", "F2"), path, 0)
    with pytest.raises(ConfigurationError, match=r"f.extxyz, configuration 0: forces have shape \(4, 2\)"):
        validate_configuration(atoms, energy, forces[:, :2], None, path, 0)
    # and through the CLI with an ASE database, where a row's forces may be any shape
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.db import connect

    db_path = tmp_path / "bad.db"
    with connect(db_path) as db:
        good = frames[0].copy()
        good.calc = SinglePointCalculator(good, energy=1.0, forces=np.zeros((len(good), 3)))
        db.write(good)
        bad = frames[0].copy()
        bad.calc = SinglePointCalculator(bad, energy=1.0, forces=np.zeros((len(bad) - 1, 3)))
        db.write(bad)
    code, err = run_ingest(capsys, [db_path], output)
    assert_clean_failure(code, err, output, "bad.db", "configuration 1", "forces have shape")


@pytest.mark.parametrize("where", ["positions", "energy", "forces"])
def test_non_finite_values(capsys, tmp_path, output, frames, where):
    atoms = frames[0].copy()
    energy, forces = frames[0].get_potential_energy(), frames[0].get_forces().copy()
    if where == "positions":
        atoms.positions[2, 1] = np.nan
    elif where == "energy":
        energy = np.inf
    else:
        forces[1, 0] = -np.inf
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    path = write_frames(tmp_path / "nonfinite.traj", [frames[1], atoms], fmt="traj")
    code, err = run_ingest(capsys, [path], output)
    assert_clean_failure(code, err, output, "nonfinite.traj", "configuration 1", where, "NaN or infinite")


def test_overlapping_atoms(capsys, tmp_path, output, frames):
    atoms = frames[0].copy()
    atoms.positions[3] = atoms.positions[1] + [0.05, 0, 0]
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((len(atoms), 3)))
    path = write_frames(tmp_path / "overlap.extxyz", [atoms])
    code, err = run_ingest(capsys, [path], output)
    assert_clean_failure(code, err, output, "overlap.extxyz", "configuration 0", "atoms 1 and 3", "0.0500 Å")


def test_zero_volume_periodic_cell(capsys, tmp_path, output, frames):
    atoms = frames[0].copy()
    atoms.cell[2] = atoms.cell[0] + atoms.cell[1]  # coplanar cell vectors
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((len(atoms), 3)))
    path = write_frames(tmp_path / "flat.extxyz", [frames[2], atoms])
    code, err = run_ingest(capsys, [path], output)
    assert_clean_failure(code, err, output, "flat.extxyz", "configuration 1", "zero volume")


def test_cell_too_thin_to_search(capsys, tmp_path, output, frames):
    atoms = frames[0].copy()
    atoms.cell[1] += 1e10 * atoms.cell[0]  # a valid lattice on a hopeless basis
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((len(atoms), 3)))
    path = write_frames(tmp_path / "thin.extxyz", [frames[2], atoms])
    code, err = run_ingest(capsys, [path], output)
    assert_clean_failure(code, err, output, "thin.extxyz", "configuration 1", "too thin", "niggli_reduce")


def test_nul_in_config_type(capsys, tmp_path, output, extxyz_file):
    text = extxyz_file.read_text().replace("config_type=kind1", "config_type=ki\x00nd1", 1)
    assert "\x00" in text
    path = tmp_path / "nul.extxyz"
    path.write_text(text)
    code, err = run_ingest(capsys, [path], output)
    assert_clean_failure(code, err, output, "nul.extxyz", "configuration 1", "NUL")


def test_far_away_atom_in_a_molecule_is_accepted(tmp_path):
    """vesin divides by zero on this grid (see tests/test_neighbours.py); ASE searches it."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = Atoms("H3", positions=[[0, 0, 0], [1, 1, 1], [1e5, 0, 1]])
    atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((3, 3)))
    path = write_frames(tmp_path / "far.extxyz", [atoms])
    assert ingest([path], tmp_path / "far.h5", fmt="extxyz") == 1


def test_bad_index_and_empty_selection(capsys, tmp_path, output, extxyz_file):
    code, err = run_ingest(capsys, [extxyz_file], output, "--index", "1:2:x")
    assert_clean_failure(code, err, output, "--index")
    code, err = run_ingest(capsys, [extxyz_file], output, "--index", "10:20")
    assert_clean_failure(code, err, output, "no configurations")


def test_error_in_second_file_writes_nothing(capsys, tmp_path, output, extxyz_file):
    code, err = run_ingest(capsys, [extxyz_file, tmp_path / "gone.traj"], output)
    assert_clean_failure(code, err, output, "gone.traj")


# -- property-based: randomly corrupted extxyz ---------------------------------------------

_CLEAN = None


def _clean_text():
    global _CLEAN
    if _CLEAN is None:
        import io

        from tests.conftest import labelled_frames

        buffer = io.StringIO()
        ase.io.write(buffer, labelled_frames(3, seed=1), format="extxyz")
        _CLEAN = buffer.getvalue()
    return _CLEAN


corruption = st.lists(
    st.tuples(
        st.sampled_from(["replace", "delete", "insert", "truncate"]),
        st.floats(0, 1, allow_nan=False),
        st.sampled_from(list("0123456789.-+eE \n\"=:xyzNaninf") + ["\x00", "é", "Lattice", "pbc"]),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=corruption)
def test_corrupted_extxyz_gives_clean_error_or_correct_dataset(tmp_path_factory, edits):
    text = _clean_text()
    for kind, where, piece in edits:
        position = int(where * len(text))
        if kind == "replace":
            text = text[:position] + piece + text[position + 1 :]
        elif kind == "delete":
            text = text[:position] + text[position + len(piece) :]
        elif kind == "insert":
            text = text[:position] + piece + text[position:]
        else:
            text = text[:position]
    directory = tmp_path_factory.mktemp("fuzz")
    path = directory / "corrupt.extxyz"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    output = directory / "out.h5"
    try:
        n = ingest([path], output, fmt="extxyz")
    except PesnetError as error:
        assert "corrupt.extxyz" in str(error)
        assert not output.exists()
        assert sorted(p.name for p in directory.iterdir()) == ["corrupt.extxyz"]
        return
    # Accepted: the dataset must be exactly what ASE reads from the same file.
    expected = ase.io.read(path, ":", format="extxyz")
    assert n == len(expected)
    with Dataset(output) as ds:
        for a, b in zip(expected, ds):
            np.testing.assert_array_equal(a.positions, b.positions)
            np.testing.assert_array_equal(a.numbers, b.numbers)
            assert a.get_potential_energy() == b.get_potential_energy()
            np.testing.assert_array_equal(a.get_forces(), b.get_forces())


@pytest.mark.parametrize("attribute, value", [("format", np.array([b"pesnet-dataset"] * 2)),
                                              ("format", 7),
                                              ("format_version", np.array([1, 2])),
                                              ("format_version", "one")])
def test_a_dataset_with_a_garbled_format_attribute_is_one_line(tmp_path, extxyz_file, capsys,
                                                              attribute, value):
    import h5py

    dataset = tmp_path / "ds.h5"
    assert main(["ingest", str(extxyz_file), "-o", str(dataset), "--quiet"]) == 0
    with h5py.File(dataset, "a") as f:
        f.attrs[attribute] = value
    code = main(["info", str(dataset)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "ds.h5: " in err, err
