"""Accuracy of pesnet's default fit on the shipped data, against the targets and a peer figure.

Cu (EMT, data/cu_emt.extxyz, 80/10/10 split, default settings): energy and force MAE on the
test split, Spearman(|force error|, force std), the fraction of force errors within the
calibrated 1σ; training time per epoch; time to predict energy+forces with uncertainty for one
108-atom Cu cell (5 members). Ethanol (GFN2-xTB, data/ethanol_gfn2xtb.extxyz, 1,000 training
configurations from 500 K MD): force MAE on the test split, next to the ANI-from-scratch figure
on rMD17 ethanol (45.6 meV/Å, Allegro paper, table 1; DFT labels, so comparable, not equal).

    python benchmarks/accuracy.py [--quick]

Ends with one JSON line: cu_energy_mae_mev_per_atom, cu_force_mae_mev_per_A,
cu_force_spearman, cu_force_coverage_1sigma, ethanol_force_mae_mev_per_A.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def fit(name, source, workdir, settings, quick):
    from pesnet.data.ingest import ingest
    from pesnet.descriptors.featurize import featurize
    from pesnet.potential.evaluate import evaluate_potential
    from pesnet.training.trainer import train_potential

    dataset = workdir / f"{name}.h5"
    features = workdir / f"{name}_features.h5"
    ingest([source], dataset)
    t0 = time.perf_counter()
    featurize(dataset, features)
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = train_potential(features, settings)
    t_train = time.perf_counter() - t0
    epochs = len(result.history)
    evaluation = evaluate_potential(result.potential, dataset, result.split.test)
    return result, evaluation, {"featurize_s": t_feat, "train_s": t_train, "epochs": epochs,
                                "s_per_epoch": t_train / epochs}


def predict_time_108(potential, repeats=40, block=10):
    """Median ms of one-off predictions (energy, forces, spreads) of 108-atom Cu cells, each a
    different rattled structure (nothing kept between calls), and of ASE's EMT on the same
    structures: alternating blocks of ``block`` calls of each, so that both see the same
    machine load over the minutes of the run. Also the median with one EMT call between
    consecutive pesnet calls (cold caches, and memory the allocator gave back re-faulted)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    base = bulk("Cu", "fcc", a=3.59, cubic=True).repeat((3, 3, 3))
    structures = []
    for seed in range(repeats + 1):
        atoms = base.copy()
        atoms.rattle(0.05, seed=seed)
        structures.append(atoms)
    potential.predict(structures[0])  # warm-up

    def ours_time(atoms):
        t0 = time.perf_counter()
        potential.predict(atoms)
        return time.perf_counter() - t0

    def emt_time(atoms):
        reference = atoms.copy()
        t0 = time.perf_counter()
        reference.calc = EMT()
        reference.get_forces()
        return time.perf_counter() - t0

    ours, emt, interleaved = [], [], []
    for start in range(1, repeats + 1, block):
        chunk = structures[start:start + block]
        ours += [ours_time(atoms) for atoms in chunk]
        emt += [emt_time(atoms) for atoms in chunk]
    for atoms in structures[1:]:
        interleaved.append(ours_time(atoms))
        emt_time(atoms)
    return tuple(1e3 * float(np.median(t)) for t in (ours, emt, interleaved))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs, for a smoke run")
    args = parser.parse_args()

    from pesnet.training.settings import TrainSettings

    cu_settings = TrainSettings(epochs=8, n_members=3) if args.quick else TrainSettings()
    eth_settings = TrainSettings(epochs=5, n_members=3) if args.quick else TrainSettings()
    rows, figures = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cu, cu_eval, cu_time = fit("cu", ROOT / "data" / "cu_emt.extxyz", work, cu_settings,
                                   args.quick)
        m = cu_eval.metrics
        predict_ms, emt_ms, cold_ms = predict_time_108(cu.potential)
        figures.update(
            cu_energy_mae_mev_per_atom=1e3 * m["energy_mae_per_atom"],
            cu_force_mae_mev_per_A=1e3 * m["force_mae"],
            cu_force_spearman=m["force_spearman"],
            cu_force_coverage_1sigma=m["force_coverage_1sigma"],
        )
        rows += [
            ("Cu energy MAE (test)", f"{1e3 * m['energy_mae_per_atom']:.3f} meV/atom", "≤ 1"),
            ("Cu force MAE (test)", f"{1e3 * m['force_mae']:.2f} meV/Å", "≤ 30"),
            ("Cu Spearman(|ΔF_i|, σ_i), atoms", f"{m['force_spearman']:.3f}", "≥ 0.4"),
            ("Cu Spearman(|ΔF|, σ), components", f"{m['force_spearman_component']:.3f}", ""),
            ("Cu force errors within 1σ", f"{100 * m['force_coverage_1sigma']:.1f} %", "60–76 %"),
            ("Cu force miscalibration area", f"{m['force_miscalibration_area']:.3f}", ""),
            ("Cu training", f"{cu_time['train_s']:.0f} s, {cu_time['epochs']} epochs, "
             f"{1e3 * cu_time['s_per_epoch']:.0f} ms/epoch", "≤ 600 s"),
            ("Cu predict E+F+σ, 108 atoms, "
             f"{cu.potential.n_members} members", f"{predict_ms:.2f} ms", "< 10 ms"),
            ("  ASE EMT E+F, same structures", f"{emt_ms:.2f} ms", ""),
            ("  pesnet with EMT between calls", f"{cold_ms:.2f} ms", ""),
        ]
        ethanol_file = ROOT / "data" / "ethanol_gfn2xtb.extxyz"
        eth, eth_eval, eth_time = fit("ethanol", ethanol_file, work, eth_settings, args.quick)
        e = eth_eval.metrics
        figures["ethanol_force_mae_mev_per_A"] = 1e3 * e["force_mae"]
        rows += [
            ("ethanol force MAE (test)", f"{1e3 * e['force_mae']:.2f} meV/Å",
             "≤ 40 (ANI rMD17: 45.6)"),
            ("ethanol energy MAE (test)", f"{1e3 * e['energy_mae']:.2f} meV/molecule "
             f"({1e3 * e['energy_mae_per_atom']:.2f} meV/atom)", ""),
            ("ethanol Spearman(|ΔF_i|, σ_i)", f"{e['force_spearman']:.3f}", ""),
            ("ethanol force errors within 1σ", f"{100 * e['force_coverage_1sigma']:.1f} %", ""),
            ("ethanol training", f"{eth_time['train_s']:.0f} s, {eth_time['epochs']} epochs, "
             f"{eth.split.train.size} train configs", ""),
        ]
    width = max(len(r[0]) for r in rows)
    print(f"{'quantity':<{width}}  {'pesnet':<36} target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<36} {target}")
    figures["cu_predict_ms_108_atoms"] = predict_ms
    figures["emt_ms_108_atoms"] = emt_ms
    figures["cu_predict_ms_108_atoms_emt_between"] = cold_ms
    print(json.dumps({k: round(float(v), 4) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
