"""PESNetCalculator with ASE's own tools: optimizers, molecular dynamics, cell filters, NEB."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import bulk, fcc111
from ase.constraints import FixAtoms, FixCom
from ase.filters import FrechetCellFilter
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet
from ase.mep import NEB
from ase.optimize import BFGS, FIRE
from threadpoolctl import threadpool_limits

from pesnet.calculator import PESNetCalculator
from pesnet.potential.io import load_model


@pytest.fixture(scope="module")
def potential(cu_model):
    return load_model(cu_model)


def test_bfgs_relaxes_a_copper_slab(potential):
    slab = fcc111("Cu", size=(2, 2, 3), a=3.61, vacuum=6.0)
    slab.set_constraint(FixAtoms(mask=slab.positions[:, 2] < slab.positions[:, 2].min() + 0.1))
    slab.rattle(0.05, seed=3)
    slab.calc = PESNetCalculator(potential)
    start = slab.get_potential_energy()
    opt = BFGS(slab, logfile=None)
    assert opt.run(fmax=0.02, steps=200)
    assert slab.get_potential_energy() < start
    assert np.abs(slab.get_forces()).max() < 0.02
    assert slab.calc.get_property("forces_std", slab).shape == (len(slab), 3)


def test_velocity_verlet_and_langevin_md(potential):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.calc = PESNetCalculator(potential)
    rng = np.random.default_rng(0)
    atoms.set_momenta(rng.normal(0, 0.3, (len(atoms), 3)))
    dyn = VelocityVerlet(atoms, 2 * units.fs)
    e0 = atoms.get_total_energy()
    dyn.run(50)
    assert abs(atoms.get_total_energy() - e0) / len(atoms) < 2e-3
    # NVT: Langevin holds the temperature near its target (fixcm=False with FixCom, ASE ≥ 3.28)
    atoms.set_constraint(FixCom())
    nvt = Langevin(atoms, 2 * units.fs, temperature_K=500, friction=0.05, fixcm=False, rng=rng)
    temperatures = []
    nvt.attach(lambda: temperatures.append(atoms.get_temperature()), interval=5)
    nvt.run(400)
    assert 250 < np.mean(temperatures[20:]) < 800
    assert np.isfinite(atoms.get_forces()).all()


def test_frechet_cell_filter_relaxes_a_strained_cell(potential):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.calc = PESNetCalculator(potential)
    atoms.set_cell(atoms.cell * [1.04, 0.98, 1.0], scale_atoms=True)
    atoms.rattle(0.02, seed=1)
    start, energy = np.abs(atoms.get_stress()).max(), atoms.get_potential_energy()
    cell = atoms.cell.copy()
    opt = BFGS(FrechetCellFilter(atoms), logfile=None)
    with threadpool_limits(1):  # ASE's 3×3 matrix functions: ~20× faster on one BLAS thread
        assert opt.run(fmax=1e-3, steps=300)
    assert np.abs(atoms.get_stress()).max() < 2e-4 < start   # eV/Å³ (0.03 GPa)
    assert atoms.get_potential_energy() < energy
    assert np.abs(atoms.cell - cell).max() > 0.05            # the cell itself moved


def test_neb_with_a_calculator_per_image(potential):
    initial = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    del initial[0]                                   # a vacancy at the origin
    neighbour = int(np.argmin(np.linalg.norm(initial.positions - [1.805, 1.805, 0], axis=1)))
    final = initial.copy()
    final.positions[neighbour] = [0.0, 0.0, 0.0]     # the neighbour hops into it
    images = [initial] + [initial.copy() for _ in range(3)] + [final]
    for image in images:
        image.calc = PESNetCalculator(potential)     # NEB needs one calculator per image
    assert len({id(image.calc) for image in images}) == len(images)
    neb = NEB(images, method="improvedtangent")
    neb.interpolate()
    FIRE(neb, logfile=None).run(fmax=0.3, steps=60)
    energies = np.array([image.get_potential_energy() for image in images])
    assert np.isfinite(energies).all()
    assert energies[1:-1].max() > max(energies[0], energies[-1])   # a barrier
    assert all(np.isfinite(image.calc.get_property("forces_std", image)).all()
               for image in images[1:-1])
