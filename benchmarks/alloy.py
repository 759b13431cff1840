"""Cu–Au alloy: formation energies of relaxed structures from a fit of the shipped EMT data.

Fits data/cuau_emt.extxyz (387 configurations of 32-atom fcc Cu–Au cells, recipe
``cuau-fcc``; 80/10/10 split) with pesnet's default descriptor at a 5 Å cutoff and the default
training settings with ``stress_weight = 10``, then relaxes, with the fitted ensemble (its mean)
and with EMT each, pure Cu and pure Au, the ordered L1₂ Cu₃Au, L1₀ CuAu and L1₂ CuAu₃ (4-atom
cells) and one fixed random solid solution (32-atom cell, seed 2026) at x_Au = 0.25, 0.5 and
0.75: cell and positions, FIRE on a FrechetCellFilter to max |F| < 0.01 eV/Å (one BLAS
thread). The formation energy per atom

    E_f(x) = E(x)/N − (1 − x) ε_Cu − x ε_Au

(ε: relaxed energy per atom of the pure fcc metal, same calculator) is printed per structure:
pesnet's ensemble mean ± the committee spread of the members' E_f (every member's energies of
the structures the mean relaxed: first-order insensitive to the geometry), EMT's value and the
error (meV/atom); then the ordered phases ranked by E_f by both (and how many members rank
them as EMT does), and the train/test energy, force and stress MAE.

    python benchmarks/alloy.py [--quick] [--epochs N] [--seed S] [--descriptor acsf|ani]
                               [--stress-weight W]

``--descriptor ani`` fits with the ANI kind at 5 Å radial / 4 Å angular range (pipelines/
cu_emt.toml's ranges) instead.

Goal (issue 16): every E_f within 5 meV/atom of EMT; the ordered phases in EMT's order. The
last line is JSON: ``alloy_formation_mae_mev_per_atom``,
``alloy_formation_max_error_mev_per_atom``, ``alloy_ordered_ranking_preserved`` (0/1),
``alloy_stress_mae_gpa``, ``alloy_energy_mae_mev_per_atom``, ``alloy_force_mae_mev_per_A`` (test
split), ``train_s``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "cuau_emt.extxyz"
ORDERED = ("L12_Cu3Au", "L10_CuAu", "L12_CuAu3")


def structures():
    """(name, x_Au, unrelaxed Atoms) of every structure the benchmark relaxes."""
    from ase.build import bulk

    from pesnet.data.recipes import (
        ORDERED_PHASES,
        ordered_phase,
        random_solid_solution,
        vegard_lattice_constant,
    )

    out = [("fcc Cu", 0.0, bulk("Cu", "fcc", a=vegard_lattice_constant(0.0), cubic=True)),
           ("fcc Au", 1.0, bulk("Au", "fcc", a=vegard_lattice_constant(1.0), cubic=True))]
    out += [(name, x, ordered_phase(name)) for name, x, _ in ORDERED_PHASES]
    rng = np.random.default_rng(2026)
    out += [(f"random x={x:g}", x, random_solid_solution(x, rng)) for x in (0.25, 0.5, 0.75)]
    return out


def relax(atoms, calc, fmax: float = 0.01, steps: int = 1000):
    """``atoms`` (a copy) with cell and positions relaxed by ``calc``; warns if not converged."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from threadpoolctl import threadpool_limits

    atoms = atoms.copy()
    atoms.calc = calc
    with threadpool_limits(limits=1, user_api="blas"):
        converged = FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=fmax, steps=steps)
    if not converged:
        warnings.warn(f"{atoms.get_chemical_formula()}: relaxation stopped after {steps} "
                      f"steps above fmax {fmax} eV/Å", RuntimeWarning, stacklevel=2)
    return atoms


def formation_energies(energies: dict, structs) -> dict:
    """{name: E_f (eV/atom)} from {name: total energy (eV), or an array of member energies}."""
    n = {name: len(atoms) for name, _, atoms in structs}
    eps_cu, eps_au = energies["fcc Cu"] / n["fcc Cu"], energies["fcc Au"] / n["fcc Au"]
    return {name: energies[name] / n[name] - (1 - x) * eps_cu - x * eps_au
            for name, x, _ in structs if name not in ("fcc Cu", "fcc Au")}


def fit(workdir: Path, settings, kind: str = "acsf"):
    from pesnet.data.ingest import ingest
    from pesnet.descriptors.ani import default_ani
    from pesnet.descriptors.defaults import default_acsf
    from pesnet.descriptors.featurize import featurize
    from pesnet.potential.evaluate import evaluate_potential
    from pesnet.training.trainer import train_potential

    dataset, features = workdir / "cuau.h5", workdir / "features.h5"
    ingest([DATA], dataset)
    descriptor = (default_ani([29, 79], 5.0, 4.0) if kind == "ani"
                  else default_acsf([29, 79], 5.0))
    featurize(dataset, features, descriptor=descriptor)
    started = time.perf_counter()
    result = train_potential(features, settings)
    train_s = time.perf_counter() - started
    metrics = {part: evaluate_potential(result.potential, dataset,
                                        getattr(result.split, part)).metrics
               for part in ("train", "test")}
    return result, metrics, train_s


def main() -> None:
    from ase.calculators.emt import EMT

    from pesnet.calculator import PESNetCalculator
    from pesnet.training.settings import TrainSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the settings' (300)")
    parser.add_argument("--quick", action="store_true", help="8 epochs, 3 members")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--descriptor", choices=("acsf", "ani"), default="acsf",
                        help="acsf: default set at 5 Å; ani: 5 Å / 4 Å (cu_emt.toml's)")
    parser.add_argument("--stress-weight", type=float, default=10.0,
                        help="stress term of the fit (default 10)")
    args = parser.parse_args()
    base = dict(epochs=8, n_members=3, seed=args.seed) if args.quick else dict(seed=args.seed)
    if args.epochs:
        base["epochs"] = args.epochs
    settings = TrainSettings(**base, stress_weight=args.stress_weight)
    with tempfile.TemporaryDirectory() as tmp:
        result, metrics, train_s = fit(Path(tmp), settings, args.descriptor)
    potential = result.potential

    structs = structures()
    started = time.perf_counter()
    ours_total, members_total, emt_total = {}, {}, {}
    for name, _, atoms in structs:
        relaxed = relax(atoms, PESNetCalculator(potential))
        prediction = potential.predict(relaxed, forces=False, members=True)
        ours_total[name] = float(prediction.energy[0])
        members_total[name] = prediction.members.energy[:, 0]
        emt_total[name] = float(relax(atoms, EMT()).get_potential_energy())
    relax_s = time.perf_counter() - started
    ours, emt = formation_energies(ours_total, structs), formation_energies(emt_total, structs)
    per_member = formation_energies(members_total, structs)
    spread = {name: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
              for name, v in per_member.items()}

    x_of = {name: x for name, x, _ in structs}
    rows = [("structure", "x_Au", "E_f pesnet meV/at", "E_f EMT meV/at", "error meV/at")]
    errors = []
    for name in ours:
        error = 1e3 * (ours[name] - emt[name])
        errors.append(error)
        rows.append((name, f"{x_of[name]:g}", f"{1e3 * ours[name]:+.2f} ± {1e3 * spread[name]:.2f}",
                     f"{1e3 * emt[name]:+.2f}", f"{error:+.2f}"))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in
                        enumerate(zip(row, widths))))
    rank_ours = sorted(ORDERED, key=ours.get)
    rank_emt = sorted(ORDERED, key=emt.get)
    print(f"ordered phases by E_f, pesnet: {' < '.join(rank_ours)}")
    print(f"ordered phases by E_f, EMT:    {' < '.join(rank_emt)}")
    agree = sum(sorted(ORDERED, key=lambda name: per_member[name][m]) == rank_emt
                for m in range(settings.n_members))
    print(f"members ranking the ordered phases as EMT does: {agree} of {settings.n_members}")
    print(f"{'split':<6} {'E MAE meV/at':>13} {'F MAE meV/Å':>12} {'σ MAE GPa':>10}")
    for part, m in metrics.items():
        print(f"{part:<6} {1e3 * m['energy_mae_per_atom']:>13.3f} {1e3 * m['force_mae']:>12.2f} "
              f"{m['stress_mae_gpa']:>10.4f}")
    print(f"({len(result.history)} epochs, {settings.n_members} members, training {train_s:.0f} s, "
          f"relaxations {relax_s:.0f} s; load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} cores)")
    test = metrics["test"]
    errors = np.abs(errors)
    figures = {"alloy_formation_mae_mev_per_atom": float(errors.mean()),
               "alloy_formation_max_error_mev_per_atom": float(errors.max()),
               "alloy_ordered_ranking_preserved": int(rank_ours == rank_emt),
               "alloy_stress_mae_gpa": test["stress_mae_gpa"],
               "alloy_energy_mae_mev_per_atom": 1e3 * test["energy_mae_per_atom"],
               "alloy_force_mae_mev_per_A": 1e3 * test["force_mae"],
               "train_s": train_s}
    print(json.dumps({k: round(float(v), 4) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
