"""Stress training on the shipped Cu EMT data: the same fit without and with a stress term.

Cu (data/cu_emt.extxyz: 720 configurations, 620 with an EMT stress), 80/10/10 split, pesnet's
default descriptor and training settings (those of benchmarks/accuracy.py), trained once per
``stress_weight`` on the same features; every fit is scored on the test split: energy MAE
(meV/atom), force MAE (meV/Å), stress MAE and RMSE (GPa), the stress spread's 1σ coverage and
Spearman, and the training time.

    python benchmarks/stress.py [--weights 0,10,30] [--epochs N] [--energy-weight W]
                                [--descriptor acsf|ani] [--quick]

``--descriptor ani`` featurizes with the ANI kind at 5 Å radial / 4 Å angular range (48
features: pipelines/cu_emt.toml's) instead of featurize's default ACSF set (6 Å).

Goal (issue 16): stress MAE ≤ 0.05 GPa with no loss of energy or force accuracy against the
fit without stress. The last line is JSON: ``cu_stress_mae_gpa`` (the best weight's),
``cu_stress_mae_gpa_no_stress_training``, and per weight ``w<W>_energy_mae_mev_per_atom``,
``w<W>_force_mae_mev_per_A``, ``w<W>_stress_mae_gpa``, ``w<W>_train_s``, plus ``load_1min``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from pesnet.data.ingest import ingest
    from pesnet.descriptors.ani import default_ani
    from pesnet.descriptors.featurize import featurize
    from pesnet.potential.evaluate import evaluate_potential
    from pesnet.training.settings import TrainSettings
    from pesnet.training.trainer import train_potential

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="0,10,30", help="stress weights to compare")
    parser.add_argument("--epochs", type=int, default=None, help="default: the settings'")
    parser.add_argument("--energy-weight", type=float, default=None,
                        help="energy_weight for every fit (default: the settings')")
    parser.add_argument("--descriptor", choices=("acsf", "ani"), default="acsf",
                        help="acsf: featurize's default (6 Å); ani: 5 Å / 4 Å (cu_emt.toml's)")
    parser.add_argument("--quick", action="store_true", help="8 epochs, 3 members")
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    base = dict(epochs=8, n_members=3) if args.quick else {}
    if args.epochs:
        base["epochs"] = args.epochs
    if args.energy_weight is not None:
        base["energy_weight"] = args.energy_weight
    rows, figures = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ingest([ROOT / "data" / "cu_emt.extxyz"], work / "cu.h5")
        descriptor = default_ani(["Cu"], 5.0, 4.0) if args.descriptor == "ani" else None
        featurize(work / "cu.h5", work / "features.h5", descriptor=descriptor)
        for weight in weights:
            started = time.perf_counter()
            result = train_potential(work / "features.h5",
                                     TrainSettings(**base, stress_weight=weight))
            seconds = time.perf_counter() - started
            m = evaluate_potential(result.potential, work / "cu.h5", result.split.test).metrics
            key = f"w{weight:g}"
            figures.update({f"{key}_energy_mae_mev_per_atom": 1e3 * m["energy_mae_per_atom"],
                            f"{key}_force_mae_mev_per_A": 1e3 * m["force_mae"],
                            f"{key}_stress_mae_gpa": m["stress_mae_gpa"],
                            f"{key}_train_s": seconds})
            rows.append((f"{weight:g}", f"{1e3 * m['energy_mae_per_atom']:.3f}",
                         f"{1e3 * m['force_mae']:.2f}", f"{m['stress_mae_gpa']:.4f}",
                         f"{m['stress_rmse_gpa']:.4f}", f"{100 * m['stress_coverage_1sigma']:.1f}",
                         f"{m['stress_spearman']:.3f}", f"{seconds:.0f}",
                         str(len(result.history))))
    header = ("stress_weight", "E MAE meV/at", "F MAE meV/Å", "σ MAE GPa", "σ RMSE GPa",
              "σ in 1σ %", "Spearman σ", "train s", "epochs")
    widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(header)]
    for row in [header, *rows]:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    load = os.getloadavg()[0]
    print(f"({args.descriptor} descriptor; test split of 72 configurations; load average "
          f"{load:.2f} on {os.cpu_count()} cores)")
    trained = [w for w in weights if w > 0]
    if 0.0 in weights:
        figures["cu_stress_mae_gpa_no_stress_training"] = figures["w0_stress_mae_gpa"]
    if trained:
        figures["cu_stress_mae_gpa"] = min(figures[f"w{w:g}_stress_mae_gpa"] for w in trained)
    figures["load_1min"] = load
    print(json.dumps({k: round(float(v), 4) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
