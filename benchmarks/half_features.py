"""Half-size features: the same fits from float32 and float16 derivative blocks.

The shipped Cu EMT data (``data/cu_emt.extxyz``) and xTB ethanol (``data/ethanol_gfn2xtb.extxyz``),
each featurized with the default descriptor at 5 Å twice (``derivative_dtype`` float32 and
float16), 80/10/10 split (seed 0), then trained with the default settings (Cu also with
``stress_weight = 3``) and scored on the test split: energy MAE (meV/atom), force MAE (meV/Å),
stress MAE (GPa), training time, and the features file's bytes per atom.

    python benchmarks/half_features.py [--epochs N] [--workdir DIR]

Goal (issue 15): at most half the bytes per atom with no loss of force accuracy. The last line
is JSON: ``<data>_<dtype>_bytes_per_atom``, ``<run>_<dtype>_{energy_mae_mev_per_atom,
force_mae_mev_per_A,stress_mae_gpa,train_s}`` and ``load_1min``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = {"cu": ("cu_emt.extxyz", ["Cu"]), "ethanol": ("ethanol_gfn2xtb.extxyz", ["H", "C", "O"])}
RUNS = [("cu", "cu", {}), ("cu_stress3", "cu", {"stress_weight": 3.0}),
        ("ethanol", "ethanol", {})]
EV_PER_A3_IN_GPA = 160.21766


def main() -> None:
    from pesnet.data import split_indices
    from pesnet.data.ingest import ingest
    from pesnet.descriptors.defaults import default_acsf
    from pesnet.descriptors.featurize import featurize
    from pesnet.potential.evaluate import evaluate_potential
    from pesnet.training.settings import TrainSettings
    from pesnet.training.trainer import train_potential

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the settings'")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: temporary)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="pesnet-half-"))
    work.mkdir(parents=True, exist_ok=True)
    out, rows = {}, []
    for name, (source, elements) in DATA.items():
        dataset = work / f"{name}.h5"
        if not dataset.exists():
            ingest([ROOT / "data" / source], dataset)
        for dtype in ("float32", "float16"):
            features = work / f"{name}_{dtype}.h5"
            if not features.exists():
                featurize(dataset, features, default_acsf(elements, 5.0), derivative_dtype=dtype)
            summary_atoms = __import__("h5py").File(features)["offsets"][-1]
            out[f"{name}_{dtype}_bytes_per_atom"] = round(features.stat().st_size / summary_atoms, 1)
    for run, name, extra in RUNS:
        for dtype in ("float32", "float16"):
            settings = TrainSettings(**extra, **({"epochs": args.epochs} if args.epochs else {}))
            started = time.perf_counter()
            result = train_potential(work / f"{name}_{dtype}.h5", settings)
            seconds = time.perf_counter() - started
            dataset = work / f"{name}.h5"
            n = len(__import__("h5py").File(dataset)["offsets"]) - 1
            metrics = evaluate_potential(result.potential, dataset,
                                         split_indices(n, (0.8, 0.1, 0.1), 0).test).metrics
            stress = metrics.get("stress_mae")
            row = {"energy_mae_mev_per_atom": round(1e3 * metrics["energy_mae_per_atom"], 3),
                   "force_mae_mev_per_A": round(1e3 * metrics["force_mae"], 2),
                   "stress_mae_gpa": None if stress is None
                   else round(EV_PER_A3_IN_GPA * stress, 3),
                   "train_s": round(seconds, 1)}
            rows.append((run, dtype, row))
            out.update({f"{run}_{dtype}_{k}": v for k, v in row.items()})
            print(f"  {run} {dtype}: {row}", flush=True)
    print(f"\n{'run':<12} {'dtype':<8} {'E meV/atom':>10} {'F meV/Å':>8} {'S GPa':>7} "
          f"{'train s':>8}")
    for run, dtype, r in rows:
        s = "—" if r["stress_mae_gpa"] is None else f"{r['stress_mae_gpa']:.3f}"
        print(f"{run:<12} {dtype:<8} {r['energy_mae_mev_per_atom']:>10.3f} "
              f"{r['force_mae_mev_per_A']:>8.2f} {s:>7} {r['train_s']:>8.1f}")
    for name in DATA:
        print(f"{name}: {out[f'{name}_float32_bytes_per_atom']:.0f} → "
              f"{out[f'{name}_float16_bytes_per_atom']:.0f} bytes per atom")
    print(json.dumps({**out, "load_1min": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
