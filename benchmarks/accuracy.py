"""Accuracy of pesnet's default fit on the shipped data, against the targets and a peer figure.

Cu (EMT, data/cu_emt.extxyz, 80/10/10 split, default settings): energy and force MAE on the
test split, Spearman(|force error|, force std), the fraction of force errors within the
calibrated 1σ; training time per epoch; time to predict energy+forces with uncertainty for one
108-atom Cu cell (5 members). Ethanol (GFN2-xTB, data/ethanol_gfn2xtb.extxyz, 1,000 training
configurations from 500 K MD): force MAE on the test split, next to the ANI-from-scratch figure
on rMD17 ethanol (45.6 meV/Å, Allegro paper, table 1; DFT labels, so comparable, not equal).

DFT ethanol (``--dft``; issue 14's side-by-side set, ``data/ethanol_pbe_def2svp.extxyz``, the
split of ``pipelines/ethanol_dft_*.txt``: 950 training, 50 validation, 200 test frames of 500 K
MD, and the 200 frames of 1,000 K MD held out as out-of-distribution): energy and force MAE,
the worst atomic force error, Spearman and 1σ coverage on the test frames, the same on the
1,000 K frames and σ_OOD/σ_test, training time and the time to predict one molecule (energy,
forces, spreads) with the ASE calculator. Cu held-out class (``--dft`` too): trained on every
class but the (111) slabs, scored on them: energy and force MAE, mean calibrated spreads and
1σ coverage — does the spread stay honest on a structure class it never saw?

``--ablation`` prints one row per step of ``ABLATION`` (each a change on top of the previous
one, starting from pesnet 0.1's defaults) on DFT ethanol, xTB ethanol and Cu (80/10/10 split,
seed 0), with training times, so every default is backed by a measurement.

    python benchmarks/accuracy.py [--quick] [--dft] [--min-feature-std X]
    python benchmarks/accuracy.py --ablation [--steps 0,2] [--datasets dft,xtb,cu] [--quick]

Ends with one JSON line: cu_energy_mae_mev_per_atom, cu_force_mae_mev_per_A,
cu_force_spearman, cu_force_coverage_1sigma, ethanol_force_mae_mev_per_A; with ``--dft``
also dft_ethanol_* (force/energy MAE, OOD force MAE, coverage, sigma ratio, train s, predict
ms) and cu_holdout_* (energy coverage, force coverage).
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
    t_feat = 0.0
    if not features.exists():           # the ablation refits the same data
        ingest([source], dataset)
        t0 = time.perf_counter()
        featurize(dataset, features, progress=False)
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


#: pesnet 0.1's training defaults, where the ablation starts (explicit, so the table keeps
#: measuring from the same place when the defaults change).
OLD_DEFAULTS = {"optimizer": "adam", "optimizer_params": {}, "learning_rate": 5e-3,
                "schedule": {"name": "plateau", "factor": 0.5, "patience": 10,
                             "min_factor": 0.01},
                "bootstrap": True, "patience": 40, "min_feature_std": 0.0, "epochs": 300}

#: The step of :data:`ABLATION` that equals today's ``TrainSettings()`` (checked when run).
DEFAULTS_STEP = 2

#: The steps of ``--ablation``: (name, datasets, TrainSettings changes on top of the previous
#: step; a ``descriptor`` entry changes the DFT descriptor). Step 2 is today's default;
#: step 5 is ``pipelines/ethanol_dft.toml``.
ABLATION = [
    ("defaults of pesnet 0.1 (Adam 5e-3, plateau schedule, bootstrap, 300 epochs)",
     ("dft", "xtb", "cu"), OLD_DEFAULTS),
    ("+ ignore unsupported features (min_feature_std 1e-5)", ("dft", "xtb", "cu"),
     {"min_feature_std": 1e-5}),
    ("+ AdamW 3e-3 weight decay 3e-3, cosine over the run, no bootstrap (defaults now)",
     ("dft", "xtb", "cu"),
     {"bootstrap": False, "patience": 300, "learning_rate": 3e-3,
      "schedule": {"name": "cosine", "min_factor": 0.01},
      "optimizer": "adamw", "optimizer_params": {}}),
    ("+ 1,500 epochs", ("dft",), {"epochs": 1500, "patience": 1500}),
    ("+ ANI-1x descriptor (kind ani, 240 features), 500 epochs", ("dft",),
     {"descriptor": {"kind": "ani"}, "epochs": 500, "patience": 500}),
    ("+ feature_range_scale 2 (pipelines/ethanol_dft.toml)", ("dft", "xtb", "cu"),
     {"feature_range_scale": 2.0}),
]


def dft_ethanol(work, settings, descriptor=None, quick=False):
    """Fit DFT ethanol on the shipped split; figures dict. ``descriptor``: ``None`` (the
    default ACSF set at 5 Å) or ``{"kind": "ani"}`` (ANI-1x's set, :func:`default_ani`)."""
    from ase.io import read

    from pesnet.calculator import PESNetCalculator
    from pesnet.data.ingest import ingest
    from pesnet.data.split import fixed_split, read_index_file
    from pesnet.descriptors.defaults import default_acsf
    from pesnet.descriptors.featurize import featurize
    from pesnet.potential.evaluate import evaluate_potential
    from pesnet.training.trainer import train_potential

    source = ROOT / "data" / "ethanol_pbe_def2svp.extxyz"
    dataset, features = work / "dft.h5", work / "dft_features.h5"
    if not dataset.exists():
        ingest([source], dataset)
    test = read_index_file(ROOT / "pipelines" / "ethanol_dft_test.txt")
    validation = read_index_file(ROOT / "pipelines" / "ethanol_dft_validation.txt")
    n = sum(1 for _ in read(source, ":", format="extxyz"))
    split = fixed_split(n, validation, test)
    if descriptor == {"kind": "ani"}:
        from pesnet.descriptors.ani import default_ani

        chosen = default_ani(["H", "C", "O"])
    elif descriptor is None:
        chosen = default_acsf(["H", "C", "O"], 5.0)
    else:
        raise ValueError(f"unknown ablation descriptor {descriptor!r}")
    featurize(dataset, features, chosen, split=split, progress=False)
    t0 = time.perf_counter()
    result = train_potential(features, settings)
    train_s = time.perf_counter() - t0
    in_dist, ood = test[:200], test[200:]
    m = evaluate_potential(result.potential, dataset, in_dist).metrics
    o = evaluate_potential(result.potential, dataset, ood).metrics
    molecule = read(source, index=int(in_dist[0]))
    molecule.calc = PESNetCalculator(result.potential)
    times = []
    for k in range(20 if quick else 200):
        molecule.positions[0, 0] += 1e-4 * (-1) ** k      # a new structure every call
        t1 = time.perf_counter()
        molecule.get_forces()
        times.append(time.perf_counter() - t1)
    figures = {
        "force_mae": 1e3 * m["force_mae"], "energy_mae": 1e3 * m["energy_mae_per_atom"],
        "ood_force_mae": 1e3 * o["force_mae"], "force_max": 1e3 * m["force_max_error"],
        "ood_force_max": 1e3 * o["force_max_error"], "spearman": m["force_spearman"],
        "coverage": m["force_coverage_1sigma"], "energy_coverage": m["energy_coverage_1sigma"],
        "energy_spearman": m["energy_spearman"],
        "sigma_ratio": o["force_std_mean"] / m["force_std_mean"],
        "train_s": train_s, "epochs": len(result.history),
        "predict_ms": 1e3 * float(np.median(times)),
    }
    return figures


def cu_holdout(work, settings, held="slab111"):
    """Cu trained on every class but ``held`` (config_type prefix), scored on it."""
    from pesnet.data import Dataset
    from pesnet.data.ingest import ingest
    from pesnet.data.split import fixed_split
    from pesnet.descriptors.featurize import featurize
    from pesnet.potential.evaluate import evaluate_potential
    from pesnet.training.trainer import train_potential

    dataset, features = work / "cu_holdout.h5", work / "cu_holdout_features.h5"
    ingest([ROOT / "data" / "cu_emt.extxyz"], dataset)
    with Dataset(dataset) as ds:
        kinds = ds.column("config_type").astype(str)
    out = np.flatnonzero(np.char.startswith(kinds, held))
    rest = np.random.default_rng(0).permutation(np.setdiff1d(np.arange(len(kinds)), out))
    test, validation = rest[: len(rest) // 10], rest[len(rest) // 10: len(rest) // 5]
    featurize(dataset, features, split=fixed_split(len(kinds), validation,
                                                   np.concatenate([test, out])), progress=False)
    result = train_potential(features, settings)
    scores = {}
    for name, idx in (("test", np.sort(test)), ("held", out)):
        m = evaluate_potential(result.potential, dataset, idx).metrics
        scores[name] = m
    return scores


def dft_rows(f, label=""):
    return [
        (f"DFT ethanol force MAE (test){label}", f"{f['force_mae']:.1f} meV/Å", "≤ 18 (MACE 17.8)"),
        ("DFT ethanol energy MAE (test)", f"{f['energy_mae']:.3f} meV/atom", "≤ 0.5 (MACE 0.46)"),
        ("DFT ethanol force MAE, 1,000 K frames", f"{f['ood_force_mae']:.1f} meV/Å", "≤ 60 (MACE 38)"),
        ("DFT ethanol worst atomic |ΔF|, test / 1,000 K",
         f"{f['force_max']:.0f} / {f['ood_force_max']:.0f} meV/Å", ""),
        ("DFT ethanol Spearman(|ΔF_i|, σ_i)", f"{f['spearman']:.3f}", "≥ 0.5"),
        ("DFT ethanol force / energy errors within 1σ",
         f"{100 * f['coverage']:.1f} / {100 * f['energy_coverage']:.1f} %", "60–76 %"),
        ("DFT ethanol σ_F(1,000 K) / σ_F(test)", f"{f['sigma_ratio']:.2f}", "≥ 2"),
        ("DFT ethanol training", f"{f['train_s']:.0f} s, {f['epochs']} epochs", "≤ 1,200 s"),
        ("DFT ethanol predict E+F+σ, one molecule", f"{f['predict_ms']:.2f} ms", "≤ 5 ms"),
    ]


def split_fit(name, work, settings, quick):
    """Cu or xTB ethanol on the 80/10/10 split: test force and energy MAE, training time."""
    source = ROOT / "data" / {"cu": "cu_emt.extxyz", "xtb": "ethanol_gfn2xtb.extxyz"}[name]
    _, evaluation, timing = fit(name, source, work, settings, quick)
    m = evaluation.metrics
    return {"force_mae": 1e3 * m["force_mae"], "energy_mae": 1e3 * m["energy_mae_per_atom"],
            "force_max": 1e3 * m["force_max_error"], "train_s": timing["train_s"]}


def ablation(work, quick, steps=None, datasets=("dft", "xtb", "cu")):
    """One row per cumulative step of :data:`ABLATION` on DFT ethanol, xTB ethanol and Cu
    (only ``steps`` are fitted; the changes of the others still accumulate)."""
    import dataclasses

    from pesnet.training.settings import TrainSettings

    settings, descriptor, rows = TrainSettings(), None, []
    for k, (name, where, change) in enumerate(ABLATION):
        change = dict(change)
        descriptor = change.pop("descriptor", descriptor)
        settings = dataclasses.replace(settings, **change)
        if k == DEFAULTS_STEP and settings != TrainSettings():
            raise SystemExit(f"ablation step {k} is no longer pesnet's default settings")
        run = dataclasses.replace(settings, epochs=5, n_members=3) if quick else settings
        if steps is not None and k not in steps:
            continue
        fits = {d: (dft_ethanol(work, run, descriptor, quick=quick) if d == "dft"
                    else split_fit(d, work, run, quick))
                for d in where if d in datasets}
        rows.append((k, name, fits))
    print_ablation(rows)
    return {f"ablation_{k}_{d}_{q}": f[q] for k, _, fits in rows for d, f in fits.items()
            for q in ("force_mae", "energy_mae", "train_s")}


def print_ablation(rows):
    def cell(fits, d, fmt):
        return fmt.format(**fits[d]) if d in fits else "—"

    header = ("step", "DFT F", "DFT E", "DFT OOD F", "DFT worst OOD", "DFT Spearman / cov",
              "xTB F", "xTB E", "Cu F", "Cu E", "train s DFT/xTB/Cu")
    table = [header]
    for k, name, fits in rows:
        table.append((f"{k}. {name}", cell(fits, "dft", "{force_mae:.1f}"),
                      cell(fits, "dft", "{energy_mae:.3f}"), cell(fits, "dft", "{ood_force_mae:.1f}"),
                      cell(fits, "dft", "{ood_force_max:.0f}"),
                      cell(fits, "dft", "{spearman:.2f} / {coverage:.0%}"),
                      cell(fits, "xtb", "{force_mae:.2f}"), cell(fits, "xtb", "{energy_mae:.3f}"),
                      cell(fits, "cu", "{force_mae:.2f}"), cell(fits, "cu", "{energy_mae:.3f}"),
                      "/".join(cell(fits, d, "{train_s:.0f}") for d in ("dft", "xtb", "cu"))))
    widths = [max(len(r[k]) for r in table) for k in range(len(header))]
    print("Ablation (force MAE meV/Å, energy MAE meV/atom, test splits; DFT OOD = the 1,000 K "
          "frames; each step on top of the previous one)")
    for row in table:
        print("  ".join(c.ljust(w) if k == 0 else c.rjust(w)
                        for k, (c, w) in enumerate(zip(row, widths))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs, for a smoke run")
    parser.add_argument("--dft", action="store_true",
                        help="also DFT ethanol (issue 14's split) and the Cu held-out class")
    parser.add_argument("--ablation", action="store_true",
                        help="only the DFT-ethanol ablation table")
    parser.add_argument("--steps", default=None,
                        help="with --ablation: the steps to fit, e.g. 0,1 (default: all)")
    parser.add_argument("--datasets", default="dft,xtb,cu",
                        help="with --ablation: which of dft, xtb, cu to fit (default: all)")
    parser.add_argument("--min-feature-std", type=float, default=None,
                        help="TrainSettings.min_feature_std for every fit (default: the "
                        "settings' default)")
    args = parser.parse_args()
    if args.ablation:
        with tempfile.TemporaryDirectory() as tmp:
            steps = None if args.steps is None else {int(k) for k in args.steps.split(",")}
            figures = ablation(Path(tmp), args.quick, steps, args.datasets.split(","))
        import os
        figures["load_1min"] = os.getloadavg()[0]
        print(f"(load average {figures['load_1min']:.2f} on {os.cpu_count()} cores)")
        print(json.dumps({k: round(float(v), 4) for k, v in figures.items()}))
        return

    from pesnet.training.settings import TrainSettings

    extra = {} if args.min_feature_std is None else {"min_feature_std": args.min_feature_std}
    cu_settings = TrainSettings(epochs=8, n_members=3, **extra) if args.quick \
        else TrainSettings(**extra)
    eth_settings = TrainSettings(epochs=5, n_members=3, **extra) if args.quick \
        else TrainSettings(**extra)
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
        if args.dft:
            f = dft_ethanol(work, eth_settings, quick=args.quick)
            rows += dft_rows(f)
            figures.update({f"dft_ethanol_{k}": v for k, v in f.items()})
            held = cu_holdout(work, cu_settings)
            h, t = held["held"], held["test"]
            rows += [
                ("Cu held-out (111) slabs: energy MAE / mean σ_E",
                 f"{1e3 * h['energy_mae_per_atom']:.2f} / "
                 f"{1e3 * h['energy_std_mean_per_atom']:.2f} meV/atom", ""),
                ("Cu held-out (111) slabs: energies within 1σ",
                 f"{100 * h['energy_coverage_1sigma']:.0f} % (test {100 * t['energy_coverage_1sigma']:.0f} %)",
                 "not collapsed"),
                ("Cu held-out (111) slabs: force MAE, within 1σ",
                 f"{1e3 * h['force_mae']:.1f} meV/Å, {100 * h['force_coverage_1sigma']:.0f} %", ""),
            ]
            figures.update(cu_holdout_energy_coverage=h["energy_coverage_1sigma"],
                           cu_holdout_force_coverage=h["force_coverage_1sigma"],
                           cu_holdout_energy_mae_mev_per_atom=1e3 * h["energy_mae_per_atom"])
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
