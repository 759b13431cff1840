"""Energy conservation: NVE molecular dynamics of 108 Cu atoms at 300 K with a trained model.

2,000 velocity-Verlet steps of 1 fs must conserve the total energy to better than
1 meV/atom: forces are the exact gradient of the energy (no inconsistency for the integrator
to pump energy into), the cosine cutoff makes the energy smooth as neighbours cross it, and the
kept neighbour list (skin) loses no pair."""

from __future__ import annotations

import numpy as np
from ase import units
from ase.build import bulk
from ase.md.velocitydistribution import Stationary
from ase.md.verlet import VelocityVerlet

from pesnet.calculator import PESNetCalculator

try:
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # ASE < 3.29
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta


def test_nve_total_energy_drift_below_1_meV_per_atom(cu_model):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
    assert len(atoms) == 108
    atoms.calc = PESNetCalculator(cu_model)
    # 600 K of kinetic energy in a perfect lattice equipartitions to ~300 K
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(7))
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, 1.0 * units.fs)
    total, temperature = [], []

    def record():
        total.append(atoms.get_total_energy() / len(atoms))
        temperature.append(atoms.get_temperature())

    dyn.attach(record, interval=1)
    dyn.run(2000)
    total = np.array(total)
    assert len(total) == 2001
    # drift: the change of the mean over the first and last 100 fs (averages out the
    # integrator's bounded oscillation); also the largest excursion
    drift = abs(total[-100:].mean() - total[:100].mean())
    excursion = np.abs(total - total[0]).max()
    print(f"NVE Cu108 300 K, 2000 x 1 fs: drift {drift * 1e3:.4f} meV/atom, largest "
          f"excursion {excursion * 1e3:.4f} meV/atom, <T> {np.mean(temperature[500:]):.0f} K, "
          f"{atoms.calc.neighbour_list_builds} neighbour-list builds")
    assert drift < 1e-3, f"total energy drifted by {drift * 1e3:.3f} meV/atom"
    assert excursion < 1e-3, f"total energy moved by up to {excursion * 1e3:.3f} meV/atom"
    assert 200 < np.mean(temperature[500:]) < 450  # it is the 300 K run we meant
    assert atoms.calc.neighbour_list_builds < 200  # the skin saved most rebuilds
