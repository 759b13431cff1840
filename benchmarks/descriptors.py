"""ACSF speed: pesnet against DScribe, values and values + derivatives, in one run.

    python benchmarks/descriptors.py [--quick]

Systems: ethanol (molecule, H/C/O) and periodic fcc Cu cells of 32 and 108 atoms (a = 3.61 Å,
rattled 0.05 Å), cutoff 6 Å for every term (DScribe has no separate angular cutoff, so the
benchmark sets pesnet's to 6 Å too), pesnet's default parameter set (``default_parameters``: G1, 8
shifted-Gaussian G2, 12 G4 per element pair; 21 features for Cu, 99 for H/C/O) given to both
libraries. DScribe computes derivatives by central finite differences in C++ into a dense
N×N×3×F array (``derivatives(attach=True)``); pesnet's are analytic and sparse. Both run on one
thread (BLAS limited to one thread with threadpoolctl; DScribe n_jobs=1). Every timing is the
best of several repetitions (DScribe's Cu and batch derivatives: one run); before timing, the
script checks that the two libraries agree (values to 1e-10 relative; derivatives to 1e-5
relative, the accuracy of DScribe's finite differences). A last row times 100 rattled ethanol
molecules in one call (``ACSF.compute_many``; DScribe's ``create`` on the list), per molecule.
``--quick`` uses fewer repetitions and skips DScribe's derivatives of Cu108 (about a minute) and
of the ethanol batch, reporting those ratios as null. The last line is JSON with the headline
ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from ase.build import bulk, molecule
from threadpoolctl import threadpool_limits

from pesnet.descriptors import ACSF, default_parameters


def _best_seconds(function, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls after a warm-up: the least disturbed by other load."""
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def _systems():
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.02, seed=0)
    out = [("ethanol", ethanol, ["H", "C", "O"])]
    for repeat, name in ((2, "Cu32"), (3, "Cu108")):
        cu = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
        cu.rattle(0.05, seed=1)
        out.append((name, cu, ["Cu"]))
    return out


def run(quick: bool) -> dict:
    from dscribe.descriptors import ACSF as DScribeACSF

    cutoff = 6.0
    rows, headline = [], {}
    for name, atoms, elements in _systems():
        params = default_parameters(elements, cutoff, angular_cutoff=cutoff)
        ours = ACSF.from_params(params)
        theirs = DScribeACSF(r_cut=cutoff, g2_params=params["g2"], g4_params=params["g4"],
                             species=elements, periodic=bool(atoms.pbc.any()))
        # Same numbers first, then time.
        expected = theirs.create(atoms)
        result = ours.compute(atoms, derivatives=True)
        scale = np.maximum(np.abs(expected).max(axis=0), 1e-300)
        value_error = float((np.abs(result.values - expected) / scale).max())
        assert value_error < 1e-10, f"{name}: values differ from DScribe by {value_error:.2e}"

        reps = 3 if quick else 10
        t_values = _best_seconds(lambda: ours.compute(atoms), reps * 3)
        t_derivs = _best_seconds(lambda: ours.compute(atoms, derivatives=True), reps)
        d_values = _best_seconds(lambda: theirs.create(atoms), reps * 3)
        skip = quick and len(atoms) > 100
        if skip:
            d_derivs = None
            deriv_error = None
        else:
            d_reps = 1 if len(atoms) > 20 else reps
            start = time.perf_counter()
            dense, _ = theirs.derivatives(atoms, attach=True)
            first = time.perf_counter() - start
            d_derivs = first if d_reps == 1 else _best_seconds(
                lambda: theirs.derivatives(atoms, attach=True), d_reps)
            ours_dense = result.dense_derivatives()
            deriv_error = float(np.abs(ours_dense - dense).max() / np.abs(dense).max())
            assert deriv_error < 1e-5, f"{name}: derivatives differ by {deriv_error:.2e}"
        rows.append((name, len(atoms), ours.n_features, t_values, d_values, t_derivs, d_derivs,
                     len(result.centres)))
        key = name.lower()
        headline[f"speedup_vs_dscribe_values_{key}"] = d_values / t_values
        headline[f"speedup_vs_dscribe_derivatives_{key}"] = (
            None if d_derivs is None else d_derivs / t_derivs)

    # Many small molecules in one call: how `pesnet featurize` runs a molecular dataset.
    ethanol = []
    for seed in range(100):
        molecule_ = molecule("CH3CH2OH")
        molecule_.rattle(0.05, seed=seed)
        ethanol.append(molecule_)
    params = default_parameters(["H", "C", "O"], cutoff, angular_cutoff=cutoff)
    ours = ACSF.from_params(params)
    theirs = DScribeACSF(r_cut=cutoff, g2_params=params["g2"], g4_params=params["g4"],
                         species=["H", "C", "O"], periodic=False)
    reps = 2 if quick else 5
    t_values = _best_seconds(lambda: ours.compute_many(ethanol), reps) / 100
    t_derivs = _best_seconds(lambda: ours.compute_many(ethanol, derivatives=True), reps) / 100
    d_values = _best_seconds(lambda: theirs.create(ethanol), reps) / 100
    d_derivs = None
    if not quick:
        start = time.perf_counter()
        theirs.derivatives(ethanol, attach=True)
        d_derivs = (time.perf_counter() - start) / 100
    blocks = sum(len(r.centres) for r in ours.compute_many(ethanol, derivatives=True)) // 100
    rows.append(("ethanol×100", 9, ours.n_features, t_values, d_values, t_derivs, d_derivs,
                 blocks))

    print(f"ACSF, cutoff {cutoff:g} Å, pesnet default parameters (G1 + 8 G2 per element, "
          f"12 G4 per element pair), one thread; best-of-N time per configuration")
    header = (f"{'system':<11} {'atoms':>5} {'F':>3} | {'values pesnet':>13} {'DScribe':>9} "
              f"{'ratio':>6} | {'values+derivs pesnet':>20} {'DScribe':>9} {'ratio':>7} | "
              f"{'blocks':>6}")
    print(header)
    print("-" * len(header))
    for name, n, F, tv, dv, td, dd, blocks in rows:
        dd_text = f"{dd * 1e3:7.0f} ms" if dd is not None else f"{'skipped':>10}"
        ratio = f"{dd / td:6.0f}x" if dd is not None else f"{'-':>7}"
        print(f"{name:<11} {n:>5} {F:>3} | {tv * 1e3:10.2f} ms {dv * 1e3:6.2f} ms {dv / tv:5.1f}x "
              f"| {td * 1e3:17.2f} ms {dd_text} {ratio} | {blocks:>6}")
    return {
        "speedup_vs_dscribe_values_cu108": round(headline["speedup_vs_dscribe_values_cu108"], 2),
        "speedup_vs_dscribe_derivatives_cu32": _round(
            headline["speedup_vs_dscribe_derivatives_cu32"]),
        "speedup_vs_dscribe_derivatives_cu108": _round(
            headline["speedup_vs_dscribe_derivatives_cu108"]),
    }


def _round(x):
    return None if x is None else round(x, 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced run, well under a minute")
    args = parser.parse_args(argv)
    with threadpool_limits(limits=1):
        figures = run(args.quick)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
