"""Cost of one MD step with the ASE calculator: pesnet (energy, forces, their uncertainty)
against ASE's EMT, for fcc Cu of 32, 108 and 500 atoms, in one run.

    python benchmarks/md_step.py [--quick]

A step is what an MD integrator asks of the calculator: energy and forces at new positions,
here also the calibrated spreads (``energy_std``, ``forces_std``). Both calculators replay the
same 300 K trajectory (velocity Verlet with EMT, 1 fs steps, started from a perfect lattice
with 600 K of kinetic energy), so both see the same atomic motion — the pesnet calculator keeps
its Verlet neighbour list (skin 0.5 Å) and rebuilds it when atoms have moved far enough,
exactly as in its own MD. The pesnet model is a 5-member ensemble of 21→32→32→1 tanh networks
(pesnet's default training settings) on the default descriptor ``default_acsf([Cu], 6 Å)``;
its weights are random — a step costs the same for any weights. Everything runs on one core
(BLAS limited to one thread; the calculator's default).

Timing: the frames are replayed in rounds that alternate pesnet and EMT (ratios hold when the
machine's speed drifts); a round's time per step is its mean over all its frames (rebuilds
included), and the reported figure is the best round (the least disturbed by other load),
with the median round in brackets. µs/atom/step should stay flat from 32 to 500 atoms
(linear cost). Extra rows give the 500-atom step for other angular cutoffs (6, 4 and 3.5 Å;
radial 6 Å) and one ``Potential.predict`` of Cu108 (fresh neighbour list, forces, no skin).
``--quick`` replays fewer frames in fewer rounds (well under a minute).

Target (issue 7): ≤ 50 µs/atom/step for the 500-atom cell on one core.
The last line is JSON: ``us_per_atom_step_32``, ``_108``, ``_500`` (pesnet, default
descriptor) and companions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.md.verlet import VelocityVerlet
from threadpoolctl import threadpool_limits

from pesnet.calculator import PESNetCalculator
from pesnet.descriptors import default_acsf
from pesnet.nn.mlp import MLP
from pesnet.potential.model import Potential

SIZES = {32: (2, 2, 2), 108: (3, 3, 3), 500: (5, 5, 5)}


def make_potential(angular_cutoff=None, members: int = 5, hidden=(32, 32), seed: int = 0):
    """A Cu ensemble of the default architecture with random weights and plausible scalers."""
    options = {} if angular_cutoff is None else {"angular_cutoff": angular_cutoff}
    acsf = default_acsf([29], 6.0, **options)
    network = MLP((acsf.n_features, *hidden, 1), members, activation="tanh", seed=seed)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.1, seed=seed)
    values = acsf.compute(atoms).values
    scale = np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0)
    return Potential(acsf, {29: network}, {29: (values.mean(axis=0), scale)}, {29: -3.5},
                     calibration={"energy": 1.0, "forces": 1.0})


def trajectory(n_atoms: int, n_frames: int, seed: int = 0, equilibrate: int = 200):
    """Positions of an EMT velocity-Verlet run at ~300 K (1 fs steps)."""
    from ase.md.velocitydistribution import Stationary
    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(SIZES[n_atoms])
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(seed))
    Stationary(atoms)
    atoms.calc = EMT()
    dyn = VelocityVerlet(atoms, 1.0 * units.fs)
    dyn.run(equilibrate)  # equipartition: ~300 K
    frames = []
    dyn.attach(lambda: frames.append(atoms.positions.copy()), interval=1)
    dyn.run(n_frames - 1)
    template = atoms.copy()
    template.calc = None
    return template, frames


def replay(atoms, calc, frames, uncertainty: bool) -> float:
    """Mean seconds per frame: move the atoms, ask for energy and forces (and spreads)."""
    atoms = atoms.copy()
    atoms.calc = calc
    start = time.perf_counter()
    for positions in frames:
        atoms.positions = positions
        atoms.get_forces()
        atoms.get_potential_energy()
        if uncertainty:
            calc.get_property("energy_std", atoms)
            calc.get_property("forces_std", atoms)
    return (time.perf_counter() - start) / len(frames)


def measure(template, frames, rounds: int, contenders: dict) -> dict:
    """Per contender: best and median over rounds of the mean seconds per step."""
    per_round = {name: [] for name in contenders}
    chunks = np.array_split(np.arange(len(frames)), rounds)
    for _ in range(2):  # every round replays the whole trajectory once per contender
        for chunk in chunks:
            for name, (make, uncertainty) in contenders.items():
                calc = make()
                replay(template, calc, [frames[0]], uncertainty)  # set-up, not timed
                per_round[name].append(
                    replay(template, calc, [frames[k] for k in chunk], uncertainty))
    return {name: (min(times), float(np.median(times))) for name, times in per_round.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and rounds")
    args = parser.parse_args(argv)
    n_frames = {32: 100, 108: 60, 500: 24} if args.quick else {32: 600, 108: 400, 500: 150}
    rounds = 2 if args.quick else 4
    default = make_potential()
    variants = {"6 Å": 6.0, "4 Å": 4.0, "3.5 Å": 3.5}
    print(f"pesnet: 5-member ensemble, {default.descriptor}")
    print(f"replaying EMT trajectories at ~300 K; best round [median] of {2 * rounds}; "
          f"one core\n")
    header = (f"{'system':<28s} {'pesnet ms/step':>16s} {'µs/atom/step':>14s} "
              f"{'EMT ms/step':>14s} {'µs/atom/step':>14s} {'pesnet/EMT':>11s}")
    print(header)
    print("-" * len(header))
    headline = {}
    with threadpool_limits(1):
        for n, count in n_frames.items():
            template, frames = trajectory(n, count, equilibrate=50 if args.quick else 200)
            contenders = {"pesnet": (lambda: PESNetCalculator(default), True),
                          "emt": (lambda: EMT(), False)}
            if n == 500:
                for label, cutoff in variants.items():
                    if cutoff != default.descriptor.angular_cutoff:
                        potential = make_potential(cutoff)
                        contenders[label] = (lambda p=potential: PESNetCalculator(p), True)
            result = measure(template, frames, rounds, contenders)
            (p_best, p_med), (e_best, e_med) = result["pesnet"], result["emt"]
            print(f"{f'Cu{n}':<28s} {p_best * 1e3:8.2f} [{p_med * 1e3:5.2f}] "
                  f"{p_best / n * 1e6:14.1f} {e_best * 1e3:6.2f} [{e_med * 1e3:5.2f}] "
                  f"{e_best / n * 1e6:14.1f} {p_best / e_best:11.1f}")
            headline[f"us_per_atom_step_{n}"] = round(p_best / n * 1e6, 2)
            headline[f"emt_us_per_atom_step_{n}"] = round(e_best / n * 1e6, 2)
            for label, cutoff in variants.items():
                if label in result:
                    best, median = result[label]
                    print(f"{f'Cu{n}, angular cutoff {label}':<28s} {best * 1e3:8.2f} "
                          f"[{median * 1e3:5.2f}] {best / n * 1e6:14.1f}")
                    headline[f"us_per_atom_step_500_angular_{cutoff:g}A"] = round(
                        best / n * 1e6, 2)
        headline[f"us_per_atom_step_500_angular_{default.descriptor.angular_cutoff:g}A"] = \
            headline["us_per_atom_step_500"]
        cu108 = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
        cu108.rattle(0.05, seed=1)
        default.predict(cu108)
        times = []
        for _ in range(10 if args.quick else 30):
            start = time.perf_counter()
            default.predict(cu108)
            times.append(time.perf_counter() - start)
        headline["predict_ms_cu108"] = round(min(times) * 1e3, 2)
        print(f"\nPotential.predict(Cu108) with forces (fresh neighbour list): "
              f"{min(times) * 1e3:.2f} ms [median {np.median(times) * 1e3:.2f}]")
    target = headline["us_per_atom_step_500"] <= 50.0
    print(f"target ≤ 50 µs/atom/step at 500 atoms: {'met' if target else 'NOT met'} "
          f"({headline['us_per_atom_step_500']:.1f})")
    headline["target_met_500"] = bool(target)
    print(json.dumps(headline))
    return headline


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
