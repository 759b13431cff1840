"""The two ACSF engines side by side: NumPy (default) and compiled (Numba, ``pesnet[fast]``).

On the shipped Cu and Cu–Au EMT data (default descriptor, 5 Å) and DFT ethanol (6 Å), one
thread: the seconds of the engines' ``bond_terms`` (values and bond gradients, the part of
featurizing the engine does; best of ``--rounds``, after one call that compiles the loop) over
featurize's passes of ≤ 512 atoms, the largest difference of values and gradients relative to
each column's largest entry, and the whole :func:`~pesnet.descriptors.featurize.featurize`
(reading the dataset, neighbour lists, sparse blocks, writing the file) with each engine.

    python benchmarks/acsf_engines.py [--rounds 3]

Issue 15's goal is featurize ≥ 15,000 atoms/s per core on the Cu data. The last line is JSON:
``<data>_{numpy,compiled}_s`` (engine), ``<data>_featurize_{numpy,compiled}_atoms_per_s``,
``<data>_values_rel_diff``, ``<data>_gradients_rel_diff``, ``numba``, ``load_1min``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = {"cu": ("cu_emt.extxyz", 5.0), "cuau": ("cuau_emt.extxyz", 5.0),
        "ethanol": ("ethanol_pbe_def2svp.extxyz", 6.0)}


def pass_bonds(descriptor, dataset: Path):
    """Featurize's passes of ``dataset`` as ``bond_terms`` arguments: (n_atoms, element, i,
    j, d, D) each, bonds sorted by centre, atoms numbered across the pass."""
    from ase import Atoms

    from pesnet.data import Dataset
    from pesnet.descriptors.features_writer import passes_of
    from pesnet.neighbours import neighbour_list

    out = []
    with Dataset(dataset) as ds:
        for part in passes_of(ds, 64):
            bonds, offsets = [], part.offsets
            for k, (a, b) in enumerate(zip(offsets, offsets[1:])):
                atoms = Atoms(numbers=part.numbers[a:b], positions=part.positions[a:b],
                              cell=part.cell[k], pbc=part.pbc[k])
                i, j, d, D = neighbour_list("ijdD", atoms, descriptor.cutoff)
                bonds.append((i + a, j + a, d, D))
            i, j, d, D = (np.concatenate(x) for x in zip(*bonds))
            out.append((int(offsets[-1]), descriptor.element_indices(part.numbers), i, j, d, D))
    return out


def main() -> None:
    import numba
    from threadpoolctl import threadpool_limits

    from pesnet.data import Dataset
    from pesnet.data.ingest import ingest
    from pesnet.descriptors import ACSF
    from pesnet.descriptors.defaults import default_acsf
    from pesnet.descriptors.featurize import featurize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds")
    args = parser.parse_args()
    out = {}
    print(f"{'data':<8} {'F':>3} {'atoms':>7} {'numpy s':>8} {'compiled s':>10} {'ratio':>6} "
          f"{'featurize numpy':>15} {'compiled':>9} {'values Δ':>9} {'gradients Δ':>11}")
    with tempfile.TemporaryDirectory(prefix="pesnet-engines-") as work, threadpool_limits(1):
        work = Path(work)
        for name, (source, cutoff) in DATA.items():
            dataset = work / f"{name}.h5"
            ingest([ROOT / "data" / source], dataset)
            with Dataset(dataset) as ds:
                elements, n_atoms = ds.elements, ds.n_atoms_total
            numpy_engine = default_acsf(elements, cutoff)
            compiled = ACSF.from_params({**numpy_engine.params, "engine": "compiled"})
            passes = pass_bonds(numpy_engine, dataset)
            compiled.bond_terms(*passes[0], True)                   # compile the loop
            best, results = {}, {}
            for _ in range(args.rounds):
                for label, engine in (("numpy", numpy_engine), ("compiled", compiled)):
                    started = time.perf_counter()
                    results[label] = [engine.bond_terms(*p, True) for p in passes]
                    best[label] = min(best.get(label, np.inf), time.perf_counter() - started)
            diff = {}
            for k, key in ((0, "values"), (1, "gradients")):
                worst = 0.0
                for a, b in zip(results["numpy"], results["compiled"]):
                    axes = (0,) if k == 0 else (0, 2)
                    scale = np.abs(a[k]).max(axis=axes, keepdims=True) + 1e-300
                    worst = max(worst, float((np.abs(a[k] - b[k]) / scale).max()))
                diff[key] = worst
            whole = {}
            for _ in range(args.rounds):
                for label, engine in (("numpy", numpy_engine), ("compiled", compiled)):
                    started = time.perf_counter()
                    featurize(dataset, work / f"{name}_{label}.h5", engine)
                    whole[label] = min(whole.get(label, np.inf), time.perf_counter() - started)
            rate = {label: n_atoms / seconds for label, seconds in whole.items()}
            print(f"{name:<8} {numpy_engine.n_features:>3} {n_atoms:>7} {best['numpy']:>8.3f} "
                  f"{best['compiled']:>10.3f} {best['compiled'] / best['numpy']:>6.2f} "
                  f"{rate['numpy']:>13.0f}/s {rate['compiled']:>7.0f}/s "
                  f"{diff['values']:>9.1e} {diff['gradients']:>11.1e}", flush=True)
            out.update({f"{name}_numpy_s": round(best["numpy"], 3),
                        f"{name}_compiled_s": round(best["compiled"], 3),
                        f"{name}_featurize_numpy_atoms_per_s": round(rate["numpy"]),
                        f"{name}_featurize_compiled_atoms_per_s": round(rate["compiled"]),
                        f"{name}_values_rel_diff": float(f"{diff['values']:.2e}"),
                        f"{name}_gradients_rel_diff": float(f"{diff['gradients']:.2e}")})
    print(json.dumps({**out, "numba": numba.__version__,
                      "load_1min": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
