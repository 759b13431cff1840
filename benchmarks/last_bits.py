"""Last bits: what a faster angular engine would change, and how much the fits care.

Featurize speed (issue 15's 15,000 atoms/s per core) is bound by the training-time angular
terms (:func:`pesnet.descriptors.angular.angular_terms`), whose every cheaper form changes the
features in the last bits — and every training figure of the README depends on those bits. This
measures both sides of that trade:

1. **Engines.** The training engine against a Jacobian built from the prediction engine
   (:class:`~pesnet.descriptors.acsf_angular_evaluator.AngularEvaluator`: monomial basis c^n,
   groups of one kind stacked along η, q folded into the pair matrices): its forward pass,
   then per block ∂G_f/∂D_j = T1 − T4 + u_j [r_j (T3 + V) − u_j·T1] with the feature
   coefficients themselves in place of the per-centre weights of the backward pass. Angular
   values and bond gradients of the shipped Cu, Cu–Au (5 Å) and DFT ethanol (6 Å) data with
   the default descriptor, in passes of 16 configurations, one thread: seconds (best of
   ``--rounds``) and the largest difference relative to each array's largest entry.
2. **Sensitivity.** The quick start's fit (shipped Cu, 5 Å, 32-32 tanh, 5 members, 100
   epochs, batch 4, force weight 0.1) from its float32 features as written, and from the same
   features with every non-zero derivative moved one float32 ulp up or down (seeded coin per
   entry, ≈ 6e-8 relative — far more than the engine change): test-split metrics as the
   README prints them, and the members' largest relative weight difference.

    python benchmarks/last_bits.py [--rounds 3] [--epochs 100] [--skip-fit]

The last line is JSON: ``<data>_training_s``, ``<data>_monomial_s``,
``<data>_values_rel_diff``, ``<data>_gradients_rel_diff``, ``fit_metrics_identical``
(printed digits), ``fit_weights_rel_diff``, ``load_1min``.
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
#: the quick start's metrics as ``pesnet evaluate`` prints them (name, scale, decimals)
PRINTED = [("energy_mae_per_atom", 1e3, 3), ("energy_rmse_per_atom", 1e3, 3),
           ("force_mae", 1e3, 2), ("force_rmse", 1e3, 2)]


def angular_inputs(path: Path, cutoff: float, per_pass: int = 16):
    """(descriptor, passes): each pass (centre, D, r, neighbour element, n_atoms) of its
    bonds within the angular cutoff, sorted by centre."""
    from ase.io import read

    from pesnet.descriptors.defaults import default_acsf
    from pesnet.neighbours import neighbour_list

    frames = read(path, ":")
    acsf = default_acsf(sorted({int(z) for f in frames for z in f.numbers}), cutoff)
    index = {z: k for k, z in enumerate(acsf.elements)}
    passes = []
    for first in range(0, len(frames), per_pass):
        parts, offset = [], 0
        for atoms in frames[first : first + per_pass]:
            i, j, d, D = neighbour_list("ijdD", atoms, acsf.angular_cutoff)
            element = np.array([index[z] for z in atoms.numbers])
            parts.append((i + offset, D, d, element[j]))
            offset += len(atoms)
        i, D, d, el = (np.concatenate(p) for p in zip(*parts))
        order = np.argsort(i, kind="stable")
        passes.append((i[order], D[order], d[order], el[order], offset))
    return acsf, passes


def monomial_jacobian(evaluator, centre, D, r, element, n_atoms):
    """Angular values (n_atoms, n_el, n_el, n_angular) and bond gradients (L, n_el,
    n_angular, 3) in :func:`angular_terms`' layout, from the prediction engine's forward
    pass (see the module doc)."""
    from pesnet.descriptors.angular_work_plan import PREDICTION_BLOCK_ELEMENTS, centre_blocks

    n_el, n_ang = evaluator.n_elements, evaluator.acsf.n_angular
    counts = np.bincount(centre, minlength=n_atoms)
    starts = np.cumsum(counts) - counts
    n_stack = max(len(sg.etas) * (sg.n_p + sg.n_dp) for sg in evaluator.supergroups)
    structure = []
    for centres in centre_blocks(counts, n_stack, PREDICTION_BLOCK_ELEMENTS):
        m = int(counts[centres[0]])
        valid = np.arange(m) < counts[centres][:, None]
        bond = (starts[centres][:, None] + np.arange(m)) * valid
        onehot = (element[bond][:, None, :] == np.arange(n_el)[None, :, None])
        structure.append((centres, valid, bond, onehot & valid[:, None, :]))
    values = np.zeros((n_atoms, n_el, n_el, n_ang))
    blocks = evaluator.forward(structure, D, r, values, True)
    grad = np.zeros((len(r), n_el, n_ang, 3))
    coef, n_keys, n_dp = evaluator.coef, evaluator.n_keys, evaluator.n_dp_keys
    for (_, valid, bond, _), block in zip(structure, blocks):
        B, m = valid.shape
        R = np.matmul(coef[:, n_keys : 2 * n_keys], block.Y.reshape(B, n_keys, -1))
        R = R.reshape(B, n_ang, n_el, m, 4)
        coeff = np.matmul(coef[:, :n_keys], block.Yv.reshape(B, n_keys, -1))
        coeff = coeff.reshape(B, n_ang, n_el, m)
        r_j = block.r[:, None]                                         # (B, 1, 1, m)
        u = block.u[:, :, 0, :].transpose(0, 2, 1)[:, None, None]      # (B, 1, 1, m, 3)
        G = R[..., 1:]
        G /= r_j[..., None]                                            # T1
        if block.Z is not None:
            T = np.matmul(coef[:, 2 * n_keys :], block.Z.reshape(B, n_dp, -1))
            T = T.reshape(B, n_ang, n_el, m, 4)
            coeff += T[..., 0]
        coeff *= r_j
        Gu = G * u
        coeff -= Gu[..., 0] + Gu[..., 1] + Gu[..., 2]
        if block.Z is not None:
            G -= T[..., 1:]
        G += u * coeff[..., None]
        grad[bond[valid]] = G.transpose(0, 3, 2, 1, 4)[valid]
    return values, grad


def compare_engines(rounds: int) -> dict:
    from pesnet.descriptors.acsf_angular_evaluator import AngularEvaluator
    from pesnet.descriptors.angular import angular_terms
    from pesnet.descriptors.angular_work_plan import plan_angular

    out = {}
    print(f"{'data':<8} {'F':>3} {'training s':>10} {'monomial s':>10} {'ratio':>6} "
          f"{'values Δ':>9} {'gradients Δ':>11}")
    for name, (source, cutoff) in DATA.items():
        acsf, passes = angular_inputs(ROOT / "data" / source, cutoff)
        plan = plan_angular(acsf.g4, acsf.g5, True)
        evaluator = AngularEvaluator(acsf)
        n_el = len(acsf.elements)
        best = {"training": np.inf, "monomial": np.inf}
        for _ in range(rounds):
            for engine in best:
                started, results = time.perf_counter(), []
                for centre, D, r, element, n in passes:
                    if engine == "training":
                        results.append(angular_terms(centre, D, r, element, n, n_el,
                                                     acsf.angular_cutoff, acsf.g4, acsf.g5,
                                                     True, plan))
                    else:
                        results.append(monomial_jacobian(evaluator, centre, D, r, element, n))
                best[engine] = min(best[engine], time.perf_counter() - started)
                if engine == "training":
                    reference = results
        diff = {}
        for k, label in ((0, "values"), (1, "gradients")):
            scale = max(np.abs(a[k]).max() for a in reference)
            diff[label] = max(np.abs(a[k] - b[k]).max() for a, b in zip(reference, results))
            diff[label] /= scale
        print(f"{name:<8} {acsf.n_features:>3} {best['training']:>10.3f} "
              f"{best['monomial']:>10.3f} {best['monomial'] / best['training']:>6.2f} "
              f"{diff['values']:>9.1e} {diff['gradients']:>11.1e}", flush=True)
        out.update({f"{name}_training_s": round(best["training"], 3),
                    f"{name}_monomial_s": round(best["monomial"], 3),
                    f"{name}_values_rel_diff": float(f"{diff['values']:.2e}"),
                    f"{name}_gradients_rel_diff": float(f"{diff['gradients']:.2e}")})
    return out


def one_ulp_apart(source: Path, target: Path, seed: int = 0) -> None:
    """Copy the features file ``source`` to ``target`` with every non-zero derivative
    (blocks and strain) moved one ulp of its dtype, up or down by a seeded coin."""
    import shutil

    import h5py

    shutil.copyfile(source, target)
    rng = np.random.default_rng(seed)
    with h5py.File(target, "r+") as f:
        for name in ("derivatives/blocks", "strain"):
            array = f[name][...]
            flat = array.reshape(-1)
            up = rng.random(flat.size) < 0.5
            for where, direction in ((up, np.inf), (~up, -np.inf)):
                where &= flat != 0
                flat[where] = np.nextafter(flat[where], flat.dtype.type(direction))
            f[name][...] = array


def compare_fits(epochs: int, work: Path) -> dict:
    from pesnet.data import split_indices
    from pesnet.data.ingest import ingest
    from pesnet.descriptors.defaults import default_acsf
    from pesnet.descriptors.featurize import featurize
    from pesnet.potential.evaluate import evaluate_potential
    from pesnet.training.settings import TrainSettings
    from pesnet.training.trainer import train_potential

    dataset, features = work / "cu.h5", work / "cu_features.h5"
    ingest([ROOT / "data" / "cu_emt.extxyz"], dataset)
    featurize(dataset, features, default_acsf(["Cu"], 5.0))
    one_ulp_apart(features, work / "cu_features_ulp.h5")
    settings = TrainSettings(hidden=(32, 32), n_members=5, epochs=epochs, batch_size=4,
                             force_weight=0.1)
    test = split_indices(720, (0.8, 0.1, 0.1), 0).test
    printed, params = {}, {}
    for label, path in (("as written", features), ("one ulp apart", work / "cu_features_ulp.h5")):
        potential = train_potential(path, settings).potential
        metrics = evaluate_potential(potential, dataset, test).metrics
        printed[label] = [f"{scale * metrics[key]:.{digits}f}" for key, scale, digits in PRINTED]
        params[label] = {z: net.params for z, net in potential.networks.items()}
        print(f"  {label:<14} " + "  ".join(f"{key} {value}" for (key, _, _), value
                                            in zip(PRINTED, printed[label])), flush=True)
    a, b = params.values()
    weights = max(float(np.max(np.abs(a[z] - b[z])) / np.max(np.abs(a[z]))) for z in a)
    same = printed["as written"] == printed["one ulp apart"]
    print(f"  printed metrics {'identical' if same else 'DIFFER'}; weights within "
          f"{weights:.1e} relative")
    return {"fit_metrics_identical": same, "fit_weights_rel_diff": float(f"{weights:.2e}")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds per engine")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of the two fits")
    parser.add_argument("--skip-fit", action="store_true", help="engines only")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        out = compare_engines(args.rounds)
        if not args.skip_fit:
            with tempfile.TemporaryDirectory(prefix="pesnet-last-bits-") as work:
                out.update(compare_fits(args.epochs, Path(work)))
    print(json.dumps({**out, "load_1min": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
