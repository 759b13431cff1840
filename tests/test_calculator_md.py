"""Uncertainty-aware dynamics: the monitor logs σ_max = max_i ‖σ_F,i‖ along a trajectory,
flags frames above one threshold and stops the run above another."""

from __future__ import annotations

import io

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

from pesnet.calculator import PESNetCalculator
from pesnet.errors import PesnetError
from pesnet.md import (
    UncertaintyExceeded,
    UncertaintyMonitor,
    atomic_force_spread,
    max_force_spread,
)


def _hot_copper(cu_model, seed=0):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.calc = PESNetCalculator(cu_model)
    atoms.set_momenta(np.random.default_rng(seed).normal(0, 1.0, (len(atoms), 3)))
    return atoms


def test_spread_is_the_largest_atomic_force_vector_spread():
    std = np.array([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(atomic_force_spread(std), [5.0, np.sqrt(3.0)])
    assert max_force_spread(std) == 5.0 and max_force_spread(np.zeros((0, 3))) == 0.0


def test_monitor_logs_every_step_and_matches_the_calculator(cu_model):
    atoms = _hot_copper(cu_model)
    log = io.StringIO()
    monitor = UncertaintyMonitor(atoms, logfile=log)
    dyn = VelocityVerlet(atoms, 2 * units.fs)
    assert monitor.run(dyn, 20) == 20
    assert monitor.steps == list(range(21))          # the start and every step
    assert monitor.stopped is None and monitor.flagged == []
    last = max_force_spread(atoms.calc.get_property("forces_std", atoms))
    assert monitor.scores[-1] == last and monitor.max_score >= last > 0
    lines = log.getvalue().splitlines()
    assert lines[0].split()[:4] == ["step", "E_pot/eV", "sigma_E/eV", "sigma_F_max/eV/A"]
    assert len(lines) == 22 and float(lines[-1].split()[3]) == pytest.approx(last, rel=1e-4)
    assert monitor.history().shape == (21, 2)


def test_monitor_flags_frames_and_stops_the_run(cu_model):
    atoms = _hot_copper(cu_model, seed=1)
    probe = UncertaintyMonitor(atoms)
    VelocityVerlet(atoms, 2 * units.fs).attach(probe)
    probe()  # σ_max at the start sets the scale for the thresholds below
    start = probe.scores[0]

    atoms = _hot_copper(cu_model, seed=1)
    monitor = UncertaintyMonitor(atoms, flag_threshold=0.5 * start, stop_threshold=0.5 * start,
                                 keep_frames=True)
    dyn = VelocityVerlet(atoms, 2 * units.fs)
    steps = monitor.run(dyn, 100)
    assert steps == 0                                   # above the stop threshold at once
    stop = monitor.stopped
    assert isinstance(stop, UncertaintyExceeded) and stop.score > stop.threshold
    assert stop.atoms is not atoms and np.array_equal(stop.atoms.positions, atoms.positions)
    assert "exceeds the stop threshold" in str(stop)
    (flag,) = monitor.flagged
    assert flag.step == 0 and flag.atoms is not None and flag.atoms.calc is None

    # flag only: the run goes on and records every frame above the threshold
    atoms = _hot_copper(cu_model, seed=1)
    monitor = UncertaintyMonitor(atoms, flag_threshold=0.5 * start)
    assert monitor.run(VelocityVerlet(atoms, 2 * units.fs), 10) == 10
    assert len(monitor.flagged) >= 1 and all(f.atoms is None for f in monitor.flagged)
    assert all(f.score > 0.5 * start for f in monitor.flagged)


def test_attached_monitor_raises_and_works_with_optimizers(cu_model):
    atoms = _hot_copper(cu_model)
    atoms.rattle(0.1, seed=2)
    opt = BFGS(atoms, logfile=None)
    monitor = UncertaintyMonitor(atoms, stop_threshold=1e-9).attach(opt)
    with pytest.raises(UncertaintyExceeded):
        opt.run(fmax=0.01, steps=5)
    assert monitor.steps == [0]


def test_monitor_needs_an_ensemble_calculator():
    atoms = bulk("Cu", cubic=True)
    atoms.calc = EMT()
    with pytest.raises(PesnetError, match="forces_std"):
        UncertaintyMonitor(atoms)
    atoms.calc = None
    with pytest.raises(PesnetError, match="forces_std"):
        UncertaintyMonitor(atoms)
    with pytest.raises(ValueError, match="positive"):
        UncertaintyMonitor(atoms, stop_threshold=0)
