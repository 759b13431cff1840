"""Outputs that run out of room (disk full, quota, file size limit): one line naming the file,
a non-zero exit, nothing half-written — and a features file that cannot fit is refused after
its first pass, not when the disk fills."""

from __future__ import annotations

import errno
import resource
import subprocess
import sys

import h5py
import numpy as np
import pytest

import pesnet.descriptors.features_writer as features_writer
from pesnet.cli.main import main
from pesnet.descriptors import ACSF
from pesnet.descriptors.featurize import featurize
from pesnet.errors import InputError
from pesnet.fileio import no_room
from tests.pipeline_helpers import subprocess_env

ACSF_PARAMS = dict(cutoff=4.5, g2=[(0.5, 2.5), (1.0, 3.0)], g4=[(0.05, 1.0, 1.0)])


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_no_room_reads_os_and_hdf5_errors():
    assert no_room(OSError(errno.ENOSPC, "No space left on device")) == "the disk is full"
    assert "quota" in no_room(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert "ulimit -f" in no_room(OSError(errno.EFBIG, "File too large"))
    # HDF5 through h5py: the errno only in the message, sometimes as a RuntimeError
    hdf5 = ("Can't close dataset (file write failed: time = Sun Dec  6 06:51:43 2026, "
            "filename = 'x.h5', file descriptor = 3, errno = 28, error message = 'No space "
            "left on device', buf = 0x55, total write size = 6144)")
    assert no_room(RuntimeError(hdf5)) == "the disk is full"
    assert no_room(OSError(errno.ENOENT, "No such file or directory")) is None
    assert no_room(ValueError("errno = 28, but not a write")) is None


def test_features_that_will_not_fit_are_refused_after_the_first_pass(cu_features, tmp_path,
                                                                     monkeypatch):
    passes = []
    monkeypatch.setattr(features_writer, "free_bytes", lambda directory: 100_000)
    monkeypatch.setattr(features_writer, "flush", lambda *a, **k: passes.append(1) or 0)
    output = tmp_path / "features.h5"
    with pytest.raises(InputError, match="will not fit the disk") as caught:
        featurize(cu_features / "cu.h5", output, ACSF(["Cu"], **ACSF_PARAMS), progress=False)
    message = str(caught.value)
    assert str(output) in message and "atoms" in message and "100 kB free" in message
    assert not passes                                       # nothing reached the file
    assert not output.exists() and not leftovers(tmp_path)


def test_a_write_that_runs_out_of_room_leaves_the_old_file(cu_features, tmp_path, monkeypatch,
                                                           capsys):
    output = tmp_path / "features.h5"
    acsf = ACSF(["Cu"], **ACSF_PARAMS)
    featurize(cu_features / "cu.h5", output, acsf, progress=False)
    with h5py.File(output) as f:
        before = f["derivatives/blocks"][...]
    calls = []

    def append(dataset, rows):
        calls.append(dataset.name)
        if len(calls) > 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_append(dataset, rows)

    real_append = features_writer.append
    monkeypatch.setattr(features_writer, "append", append)
    monkeypatch.setattr(features_writer, "FLUSH_FLOATS", 1000)   # flush every pass
    code = main(["featurize", str(cu_features / "cu.h5"), "-o", str(output), "--cutoff", "4.5",
                 "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and str(output) in err[0] and "the disk is full after" in err[0]
    assert err[0].endswith("nothing was written")
    with h5py.File(output) as f:                            # the old file, untouched
        np.testing.assert_array_equal(f["derivatives/blocks"][...], before)
    assert not leftovers(tmp_path)


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_a_real_hdf5_write_past_the_file_size_limit(cu_features, tmp_path):
    """A real failure inside HDF5 (the 1 MB ``ulimit -f`` of a child process, no root
    needed): one line, exit 1 — not HDF5's crash (SIGSEGV) when it frees the file it could
    not write — and no output."""
    output = tmp_path / "features.h5"
    done = subprocess.run(
        [sys.executable, "-m", "pesnet.cli.main", "featurize", str(cu_features / "cu.h5"),
         "-o", str(output), "--cutoff", "4.5", "--quiet"],
        preexec_fn=_limit_file_size, capture_output=True, text=True, env=subprocess_env(),
        timeout=300)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr[-2000:]
    assert len(err) == 1, done.stderr[-2000:]
    assert str(output) in err[0] and "ulimit -f" in err[0]
    assert not output.exists() and not leftovers(tmp_path)


def _raised(code: str, filename: str):
    """(type, error, traceback) of the exception ``code`` raises, compiled as ``filename``."""
    try:
        exec(compile(code, filename, "exec"), {"OSError": OSError, "errno": errno})
    except OSError as error:
        return type(error), error, error.__traceback__
    raise AssertionError("no exception")


def test_only_h5py_objects_freed_without_room_are_silenced():
    """The command line drops the tracebacks HDF5 objects print when freed after the disk
    filled (its one-line error says it), and nothing else: a no-room error raised elsewhere,
    or any other error from h5py, still reaches the hook."""
    from pesnet.cli.main import _without_no_room

    seen = []
    hook = _without_no_room(lambda *args: seen.append(args[1]))
    full = "raise OSError(errno.ENOSPC, 'No space left on device')"
    hook(*_raised(full, "h5py/_objects.pyx"))
    assert seen == []
    elsewhere = _raised(full, "pesnet/somewhere.py")
    other = _raised("raise OSError(errno.EIO, 'I/O error')", "h5py/_objects.pyx")
    hook(*elsewhere)
    hook(*other)
    assert seen == [elsewhere[1], other[1]]
