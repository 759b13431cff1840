"""Evaluating a potential on a dataset: predictions with uncertainty against reference labels.

Streams the dataset in chunks (bounded memory), predicts each chunk with the model's own
descriptor, and collects the flat arrays the metrics and plots need.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pesnet import metrics
from pesnet.data import Dataset


class Evaluation(NamedTuple):
    """Reference vs predicted values over the evaluated configurations (n configs, N atoms).

    ``energy_*`` (n,) eV; ``n_atoms`` (n,); ``forces_*`` (N_f, 3) eV/Å over atoms with force
    labels; ``*_std`` calibrated spreads; ``config_type`` (n,); ``metrics`` from
    :func:`pesnet.metrics.energy_force_metrics` plus ``n_configs``/``n_atoms``.
    """

    energy_true: np.ndarray
    energy_pred: np.ndarray
    energy_std: np.ndarray
    n_atoms: np.ndarray
    forces_true: np.ndarray
    forces_pred: np.ndarray
    forces_std: np.ndarray
    config_type: np.ndarray
    metrics: dict


def evaluate_potential(potential, dataset_path, indices=None, chunk_size: int = 32,
                       progress: bool = False) -> Evaluation:
    """Predict the configurations ``indices`` (default all) of a dataset and score them."""
    parts = {k: [] for k in ("et", "ep", "es", "n", "ft", "fp", "fs", "ct")}
    with Dataset(dataset_path) as ds:
        chosen = np.arange(len(ds)) if indices is None else np.asarray(indices)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(disable=None, total=len(chosen), unit=" configs", desc="evaluate",
                       leave=False)
        for batch in ds.iter_chunks(chunk_size, indices=chosen):
            atoms = [batch.atoms(k) for k in range(len(batch))]
            p = potential.predict(atoms)
            keep = batch.has_energy
            parts["et"].append(batch.energy[keep])
            parts["ep"].append(p.energy[keep])
            parts["es"].append(p.energy_std[keep])
            parts["n"].append(batch.n_atoms[keep])
            parts["ct"].append(batch.config_type[keep])
            atom_has_forces = np.repeat(batch.has_forces, batch.n_atoms)
            parts["ft"].append(batch.forces[atom_has_forces])
            parts["fp"].append(p.forces[atom_has_forces])
            parts["fs"].append(p.forces_std[atom_has_forces])
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    has_forces = len(cat["ft"]) > 0
    scores = metrics.energy_force_metrics(
        cat["ep"], cat["et"], cat["n"],
        cat["fp"] if has_forces else None, cat["ft"] if has_forces else None,
        energy_std=cat["es"], forces_std=cat["fs"] if has_forces else None,
    )
    scores["n_configs"] = int(len(cat["et"]))
    scores["n_atoms"] = int(cat["n"].sum())
    return Evaluation(cat["et"], cat["ep"], cat["es"], cat["n"], cat["ft"].reshape(-1, 3),
                      cat["fp"].reshape(-1, 3), cat["fs"].reshape(-1, 3), cat["ct"], scores)


def format_metrics(scores: dict) -> str:
    """A readable table of :func:`evaluate_potential`'s metrics (meV units for errors)."""
    rows = [
        ("configurations", f"{scores.get('n_configs', 0)}", ""),
        ("energy MAE", f"{1e3 * scores['energy_mae_per_atom']:.3f}", "meV/atom"),
        ("energy RMSE", f"{1e3 * scores['energy_rmse_per_atom']:.3f}", "meV/atom"),
        ("energy MAE (per config)", f"{1e3 * scores['energy_mae']:.3f}", "meV"),
    ]
    if "force_mae" in scores:
        rows += [
            ("force MAE", f"{1e3 * scores['force_mae']:.2f}", "meV/Å"),
            ("force RMSE", f"{1e3 * scores['force_rmse']:.2f}", "meV/Å"),
            ("Spearman(|ΔF_i|, σ_i), atoms", f"{scores['force_spearman']:.3f}", ""),
            ("Spearman(|ΔF|, σ), components", f"{scores['force_spearman_component']:.3f}", ""),
            ("force errors within 1σ", f"{100 * scores['force_coverage_1sigma']:.1f}", "%"),
            ("force errors within 2σ", f"{100 * scores['force_coverage_2sigma']:.1f}", "%"),
            ("force miscalibration area", f"{scores['force_miscalibration_area']:.3f}", ""),
            ("force NLL", f"{scores['force_nll']:.3f}", ""),
        ]
    rows += [
        ("Spearman(|ΔE|, σ_E)", f"{scores['energy_spearman']:.3f}", ""),
        ("energy errors within 1σ", f"{100 * scores['energy_coverage_1sigma']:.1f}", "%"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value:>10} {unit}" for name, value, unit in rows)
