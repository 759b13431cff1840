"""Shared fixtures and assertions for pesnet's tests.

Data fixtures make their own small labelled data (nothing is downloaded).
"""

from __future__ import annotations

import numpy as np
import pytest


def labelled_frames(n=6, seed=0):
    """``n`` small labelled configurations: rattled Cu cells (EMT) and a molecule (EMT on H/C/O)."""
    from ase.build import bulk, molecule
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        if k % 3 == 2:
            atoms = molecule("CH3CH2OH")
            atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        else:
            atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, 1 + k % 2))
            atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        atoms.calc = EMT()
        results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
        if atoms.pbc.all():
            results["stress"] = atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info["config_type"] = f"kind{k % 3}"
        frames.append(atoms)
    return frames


@pytest.fixture
def frames():
    """Six small labelled configurations (periodic Cu and an ethanol molecule)."""
    return labelled_frames()


@pytest.fixture
def extxyz_file(tmp_path, frames):
    """Path of an extxyz file holding :func:`frames`."""
    import ase.io

    path = tmp_path / "frames.extxyz"
    ase.io.write(path, frames, format="extxyz")
    return path
