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
    labels; ``*_std`` calibrated spreads; ``config_type`` (n,) each configuration's group and
    ``forces_config_type`` (N_f,) each force row's; ``stress_*`` (n_s, 6) eV/Å³ (Voigt, as
    ASE) over the configurations with a stress label and ``stress_config_type`` (n_s,);
    ``metrics`` from :func:`pesnet.metrics.energy_force_metrics` (and
    :func:`pesnet.metrics.stress_metrics` where stresses are labelled) plus
    ``n_configs``/``n_atoms``.
    """

    energy_true: np.ndarray
    energy_pred: np.ndarray
    energy_std: np.ndarray
    n_atoms: np.ndarray
    forces_true: np.ndarray
    forces_pred: np.ndarray
    forces_std: np.ndarray
    config_type: np.ndarray
    forces_config_type: np.ndarray
    stress_true: np.ndarray
    stress_pred: np.ndarray
    stress_std: np.ndarray
    stress_config_type: np.ndarray
    metrics: dict


def evaluate_potential(potential, dataset_path, indices=None, chunk_size: int = 32,
                       progress: bool = False) -> Evaluation:
    """Predict the configurations ``indices`` (default all) of a dataset and score them."""
    parts = {k: [] for k in ("et", "ep", "es", "n", "ft", "fp", "fs", "ct", "fct", "st", "sp",
                             "ss", "sct")}
    with Dataset(dataset_path) as ds:
        chosen = np.arange(len(ds)) if indices is None else np.asarray(indices)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(disable=None, total=len(chosen), unit=" configs", desc="evaluate",
                       leave=False)
        for batch in ds.iter_chunks(chunk_size, indices=chosen):
            atoms = [batch.atoms(k) for k in range(len(batch))]
            with_stress = batch.has_stress & batch.pbc.all(axis=1)
            p = potential.predict(atoms, stress=bool(with_stress.any()))
            if with_stress.any():
                parts["st"].append(batch.stress[with_stress])
                parts["sp"].append(p.stress[with_stress])
                parts["ss"].append(p.stress_std[with_stress])
                parts["sct"].append(batch.config_type[with_stress])
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
            parts["fct"].append(np.repeat(batch.config_type, batch.n_atoms)[atom_has_forces])
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    evaluation = Evaluation(cat["et"], cat["ep"], cat["es"], cat["n"],
                            cat["ft"].reshape(-1, 3), cat["fp"].reshape(-1, 3),
                            cat["fs"].reshape(-1, 3), cat["ct"], cat["fct"],
                            cat["st"].reshape(-1, 6), cat["sp"].reshape(-1, 6),
                            cat["ss"].reshape(-1, 6), cat["sct"], {})
    return evaluation._replace(metrics=_scores(evaluation))


def _scores(ev: Evaluation, configs=slice(None), atoms=slice(None),
            stresses=slice(None)) -> dict:
    """Metrics of the configurations ``configs``, force rows ``atoms`` and stress rows
    ``stresses`` of ``ev``."""
    has_forces = len(ev.forces_true[atoms]) > 0
    scores = metrics.energy_force_metrics(
        ev.energy_pred[configs], ev.energy_true[configs], ev.n_atoms[configs],
        ev.forces_pred[atoms] if has_forces else None,
        ev.forces_true[atoms] if has_forces else None,
        energy_std=ev.energy_std[configs],
        forces_std=ev.forces_std[atoms] if has_forces else None,
    )
    scores["n_configs"] = int(len(ev.energy_true[configs]))
    scores["n_atoms"] = int(ev.n_atoms[configs].sum())
    scores["energy_std_mean_per_atom"] = float(np.mean(ev.energy_std[configs]
                                                       / ev.n_atoms[configs]))
    if has_forces:
        scores["force_std_mean"] = float(np.mean(ev.forces_std[atoms]))
    if len(ev.stress_true[stresses]):
        scores.update(metrics.stress_metrics(ev.stress_pred[stresses], ev.stress_true[stresses],
                                             ev.stress_std[stresses]))
    return scores


def group_metrics(evaluation: Evaluation) -> dict[str, dict]:
    """{group: metrics} for every group (``config_type``) of ``evaluation``, sorted by name;
    the same figures as the whole set's, on each group's configurations and force rows."""
    groups = {}
    for name in sorted(set(evaluation.config_type.tolist())):
        configs = evaluation.config_type == name
        atoms = evaluation.forces_config_type == name
        if configs.sum() == 0:
            continue
        groups[name] = _scores(evaluation, configs, atoms,
                               evaluation.stress_config_type == name)
    return groups


def format_group_metrics(groups: dict[str, dict]) -> str:
    """One row per group of :func:`group_metrics`: errors in meV, spreads, coverage, Spearman."""
    header = (f"{'group':<24} {'n':>5} {'E MAE':>8} {'E RMSE':>8} {'σ_E':>8} {'E cov':>6} "
              f"{'F MAE':>8} {'F RMSE':>8} {'σ_F':>8} {'F cov':>6} {'ρ_F':>6}")
    units = (f"{'':<24} {'':>5} {'meV/at':>8} {'meV/at':>8} {'meV/at':>8} {'%':>6} "
             f"{'meV/Å':>8} {'meV/Å':>8} {'meV/Å':>8} {'%':>6} {'':>6}")
    rows = [header, units]
    for name, s in groups.items():
        force = (f"{1e3 * s['force_mae']:>8.2f} {1e3 * s['force_rmse']:>8.2f} "
                 f"{1e3 * s['force_std_mean']:>8.2f} {100 * s['force_coverage_1sigma']:>6.1f} "
                 f"{s['force_spearman']:>6.2f}") if "force_mae" in s else f"{'—':>8}"
        rows.append(f"{(name or '(none)')[:24]:<24} {s['n_configs']:>5} "
                    f"{1e3 * s['energy_mae_per_atom']:>8.3f} "
                    f"{1e3 * s['energy_rmse_per_atom']:>8.3f} "
                    f"{1e3 * s['energy_std_mean_per_atom']:>8.3f} "
                    f"{100 * s['energy_coverage_1sigma']:>6.1f} {force}")
    return "\n".join(rows)


def format_metrics(scores: dict) -> str:
    """A readable table of :func:`evaluate_potential`'s metrics (meV units for errors)."""
    rows = [
        ("configurations", f"{scores.get('n_configs', 0)}", ""),
        ("energy MAE", f"{1e3 * scores['energy_mae_per_atom']:.3f}", "meV/atom"),
        ("energy RMSE", f"{1e3 * scores['energy_rmse_per_atom']:.3f}", "meV/atom"),
        ("energy MAE (per config)", f"{1e3 * scores['energy_mae']:.3f}", "meV"),
        ("worst energy error", f"{1e3 * scores['energy_max_error_per_atom']:.3f}", "meV/atom"),
    ]
    if "force_mae" in scores:
        rows += [
            ("force MAE", f"{1e3 * scores['force_mae']:.2f}", "meV/Å"),
            ("force RMSE", f"{1e3 * scores['force_rmse']:.2f}", "meV/Å"),
            ("worst atomic force error |ΔF_i|", f"{1e3 * scores['force_max_error']:.1f}",
             "meV/Å"),
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
    if "stress_mae" in scores:
        rows += [
            ("stress MAE", f"{scores['stress_mae_gpa']:.4f}", "GPa"),
            ("stress RMSE", f"{scores['stress_rmse_gpa']:.4f}", "GPa"),
            ("Spearman(|Δσ|, σ_σ), components", f"{scores['stress_spearman']:.3f}", ""),
            ("stress errors within 1σ", f"{100 * scores['stress_coverage_1sigma']:.1f}", "%"),
        ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value:>10} {unit}" for name, value, unit in rows)
