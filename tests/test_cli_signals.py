"""SIGTERM (``kill``, ``timeout``, a batch system's walltime) stops any command like Ctrl-C:
exit 143, one line, and no half-written output or temporary file left behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import ase.io
import numpy as np
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator


def test_sigterm_during_ingest_leaves_nothing_half_written(tmp_path):
    frames = []
    rng = np.random.default_rng(0)
    for _ in range(1500):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((32, 3)))
        frames.append(atoms)
    ase.io.write(tmp_path / "many.extxyz", frames)
    out = tmp_path / "out" / "ds.h5"
    out.parent.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "pesnet.cli.main", "ingest",
                                str(tmp_path / "many.extxyz"), "-o", str(out), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.parent.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)                       # until the temporary output exists
    assert list(out.parent.iterdir()), "ingest never started writing"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert err == "pesnet ingest: terminated (SIGTERM)\n"
    assert list(out.parent.iterdir()) == []
