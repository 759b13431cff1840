"""A bad ``-o`` is one line and exit 1, found before any work, for every command that writes.

An existing directory, a missing parent directory, a path under ``/proc`` and (where
permissions can be dropped, i.e. not as root) a read-only directory are refused by
:func:`pesnet.fileio.check_output_path` before the input is even read: each test hands the
command an input that would fail too, and the message must be about the output.
"""

from __future__ import annotations

import os

import pytest

from pesnet.cli.main import main
from pesnet.errors import InputError
from pesnet.fileio import atomic_output, check_output_path


def _commands(tmp_path, output):
    """Every command with an ``-o``, given inputs that do not exist."""
    missing = str(tmp_path / "no-such-input")
    return {
        "ingest": ["ingest", missing, "-o", output],
        "featurize": ["featurize", missing, "-o", output],
        "train": ["train", missing, "-o", output],
        "predict": ["predict", missing, missing, "-o", output],
        "generate": ["generate", "cu-fcc", "-o", output + ".extxyz" if not
                     output.endswith("/") else output],
    }


def _run(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith(f"pesnet {argv[0]}: error: "), err
    return err


@pytest.mark.parametrize("command", ["ingest", "featurize", "train", "predict"])
def test_an_existing_directory_is_refused_before_reading_input(tmp_path, capsys, command):
    (tmp_path / "out").mkdir()
    err = _run(_commands(tmp_path, str(tmp_path / "out"))[command], capsys)
    assert "out: is a directory, not a file name" in err
    assert "no-such-input" not in err


@pytest.mark.parametrize("command", ["ingest", "featurize", "train", "predict", "generate"])
def test_a_missing_parent_directory_is_refused_and_not_created(tmp_path, capsys, command):
    output = str(tmp_path / "typo" / "out.h5")
    err = _run(_commands(tmp_path, output)[command], capsys)
    assert "directory" in err and "typo does not exist (create it first)" in err
    assert not (tmp_path / "typo").exists()


def test_a_path_under_proc_is_refused(tmp_path, capsys):
    err = _run(["ingest", str(tmp_path / "x"), "-o", "/proc/pesnet-dataset.h5"], capsys)
    assert "/proc/pesnet-dataset.h5: cannot write into /proc" in err
    err = _run(["ingest", str(tmp_path / "x"), "-o", "/proc/self/x/dataset.h5"], capsys)
    assert "does not exist" in err


def test_a_parent_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="file is not a directory"):
        check_output_path(tmp_path / "file" / "out.h5")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        err = _run(["ingest", str(tmp_path / "x"), "-o", str(locked / "ds.h5")], capsys)
        assert "cannot write into" in err and "Permission denied" in err
    finally:
        locked.chmod(0o755)


def test_atomic_output_turns_os_errors_into_one_line(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        with atomic_output(tmp_path / "dir"):
            pass
    with pytest.raises(InputError, match="cannot write here"):
        with atomic_output("/proc/pesnet-out.h5"):
            pass
    with atomic_output(tmp_path / "new" / "out.txt") as tmp:   # pesnet's own layouts
        tmp.write_text("ok")
    assert (tmp_path / "new" / "out.txt").read_text() == "ok"
