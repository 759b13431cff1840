"""A run directory belongs to one spec file: a copy that keeps the name is refused before it
touches anything; the same spec (edited or moved) and ``--run-dir`` elsewhere still work, and
a run directory made before ownership was recorded is adopted."""

from __future__ import annotations

import shutil

import pytest

from pesnet.cli.main import main
from tests.pipeline_helpers import write_spec


@pytest.fixture
def first_run(cu_features, tmp_path, monkeypatch, capsys):
    """A finished run of ``pipelines/tiny.toml`` in the default ``runs/tiny/`` (cwd: tmp)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipelines").mkdir()
    spec = write_spec(tmp_path / "pipelines" / "tiny.toml", cu_features / "cu.extxyz")
    assert main(["run", str(spec), "--no-tracking", "--quiet"]) == 0
    capsys.readouterr()
    return spec


def _snapshot(run_dir):
    return {name: (run_dir / name).read_bytes() for name in ("spec.toml", "state.json")}


def test_a_copied_spec_keeping_the_name_is_refused(first_run, cu_features, tmp_path, capsys):
    run_dir = tmp_path / "runs" / "tiny"
    before = _snapshot(run_dir)
    copy = write_spec(tmp_path / "copy.toml", cu_features / "cu.extxyz", epochs=2)
    for extra in ([], ["--force"]):
        assert main(["run", str(copy), "--no-tracking", "--quiet", *extra]) == 1
        err = capsys.readouterr().err
        assert err.strip().splitlines() == [
            f"pesnet run: error: runs/tiny/ belongs to {first_run.resolve()}; give this spec "
            f"another name (name = \"...\") or pass --run-dir DIR (--force does not change "
            f"this; to hand the directory over, delete runs/tiny/owner.json)"], err
        assert _snapshot(run_dir) == before

    # another directory is fine
    assert main(["run", str(copy), "--run-dir", "runs/copy", "--no-tracking", "--quiet"]) == 0
    assert (tmp_path / "runs" / "copy" / "model.h5").is_file()
    assert _snapshot(run_dir) == before


def test_the_same_spec_edited_or_moved_keeps_its_run_directory(first_run, cu_features,
                                                               tmp_path, capsys):
    write_spec(first_run, cu_features / "cu.extxyz", epochs=2)  # edited in place
    assert main(["run", str(first_run), "--no-tracking", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "[1/6] ingest ....... up to date" in out and "[3/6] train ........ up to date" not in out
    moved = tmp_path / "elsewhere.toml"
    shutil.move(first_run, moved)  # the owner is gone: the moved file takes over
    assert main(["run", str(moved), "--no-tracking", "--quiet"]) == 0
    assert "[3/6] train ........ up to date" in capsys.readouterr().out
    copy = write_spec(tmp_path / "copy.toml", cu_features / "cu.extxyz")
    assert main(["run", str(copy), "--no-tracking", "--quiet"]) == 1
    assert f"belongs to {moved.resolve()}" in capsys.readouterr().err


def test_a_run_directory_without_an_owner_is_adopted(first_run, cu_features, tmp_path,
                                                     capsys):
    run_dir = tmp_path / "runs" / "tiny"
    (run_dir / "owner.json").unlink(missing_ok=True)  # as made by an older pesnet
    assert main(["run", str(first_run), "--no-tracking", "--quiet"]) == 0
    assert "[3/6] train ........ up to date" in capsys.readouterr().out
    before = _snapshot(run_dir)
    copy = write_spec(tmp_path / "copy.toml", cu_features / "cu.extxyz", epochs=2)
    assert main(["run", str(copy), "--no-tracking", "--quiet"]) == 1
    assert f"belongs to {first_run.resolve()}" in capsys.readouterr().err
    assert _snapshot(run_dir) == before
