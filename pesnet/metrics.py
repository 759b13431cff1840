"""Accuracy and uncertainty-quality metrics of a potential's predictions.

Accuracy: MAE and RMSE of energies (per configuration, eV, and per atom, eV/atom) and forces
(per Cartesian component, eV/Å). Uncertainty quality, for errors ``e`` and predicted standard
deviations ``σ`` of the same shape:

* Spearman rank correlation between ``|e|`` and ``σ`` (SciPy): does a larger spread flag a
  larger error? For forces the headline ``force_spearman`` ranks atoms by the length of the
  force-error vector ``|ΔF_i|`` against ``σ_i = (Σ_x σ_ix²)^½`` — both independent of the
  coordinate frame; ``force_spearman_component`` is the same over Cartesian components.
* Gaussian negative log-likelihood, mean over samples:
  ``NLL = ½ log(2π σ²) + e² / (2σ²)``.
* Coverage: the fraction of ``|e| ≤ kσ`` for k = 1, 2 (a calibrated Gaussian gives 0.683 and
  0.954).
* Miscalibration area: the mean absolute difference between the expected coverage ``p`` of the
  central Gaussian interval and the observed fraction of errors inside it, over a grid of p in
  (0, 1) — the area between the calibration curve and the diagonal (Tran et al. 2020).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

_TINY = 1e-300


def mae(errors) -> float:
    return float(np.mean(np.abs(errors)))


def rmse(errors) -> float:
    return float(np.sqrt(np.mean(np.square(errors))))


def spearman(errors, std) -> float:
    """Spearman rank correlation of ``|errors|`` with ``std`` (NaN if either is constant)."""
    errors = np.abs(np.ravel(errors))
    std = np.ravel(std)
    if errors.size < 2 or np.ptp(errors) == 0 or np.ptp(std) == 0:
        return float("nan")
    return float(stats.spearmanr(errors, std).statistic)


def gaussian_nll(errors, std) -> float:
    """Mean Gaussian negative log-likelihood of ``errors`` under N(0, std²)."""
    var = np.maximum(np.square(np.ravel(std)), _TINY)
    e2 = np.square(np.ravel(errors))
    return float(np.mean(0.5 * np.log(2 * np.pi * var) + e2 / (2 * var)))


def coverage(errors, std, k: float = 1.0) -> float:
    """Fraction of samples with ``|error| ≤ k·std``."""
    return float(np.mean(np.abs(np.ravel(errors)) <= k * np.ravel(std)))


def _interval_half_widths(n_points: int):
    """Expected coverages p over (0, 1) and the matching z_p = √2 erf⁻¹(p), (n_points,)."""
    expected = np.linspace(0, 1, n_points + 2)[1:-1]
    return expected, np.sqrt(2.0) * special.erfinv(expected)


def _sorted_ratios(errors, std):
    ratio = np.abs(np.ravel(errors)) / np.maximum(np.ravel(std), _TINY)
    ratio.sort()
    return ratio


def calibration_curve(errors, std, n_points: int = 99):
    """(expected, observed) coverage of central Gaussian intervals; arrays of ``n_points``.

    ``expected[p]`` runs over (0, 1); ``observed[p]`` is the fraction of ``|e| ≤ z_p σ`` with
    ``z_p = √2 erf⁻¹(p)`` the half-width of the central interval holding probability p.
    """
    expected, z = _interval_half_widths(n_points)
    ratio = _sorted_ratios(errors, std)
    observed = np.searchsorted(ratio, z, side="right") / max(ratio.size, 1)
    return expected, observed


def miscalibration_area(errors, std, n_points: int = 99) -> float:
    """Mean |observed − expected| over the calibration curve (0 = perfectly calibrated)."""
    expected, observed = calibration_curve(errors, std, n_points)
    return float(np.mean(np.abs(observed - expected)))


def miscalibration_areas(errors, std, scales, n_points: int = 99) -> np.ndarray:
    """:func:`miscalibration_area` of the spreads ``s · std`` for every s in ``scales`` at once
    (one sort of the error ratios), (len(scales),)."""
    expected, z = _interval_half_widths(n_points)
    ratio = _sorted_ratios(errors, std)
    thresholds = np.outer(np.asarray(scales, float), z)  # |e|/σ ≤ z s
    observed = np.searchsorted(ratio, thresholds, side="right") / max(ratio.size, 1)
    return np.mean(np.abs(observed - expected[None, :]), axis=1)


def uncertainty_metrics(errors, std, prefix: str = "") -> dict:
    """All uncertainty-quality figures for one quantity, as a flat dict."""
    return {
        f"{prefix}spearman": spearman(errors, std),
        f"{prefix}nll": gaussian_nll(errors, std),
        f"{prefix}coverage_1sigma": coverage(errors, std, 1.0),
        f"{prefix}coverage_2sigma": coverage(errors, std, 2.0),
        f"{prefix}miscalibration_area": miscalibration_area(errors, std),
    }


def energy_force_metrics(
    energy_pred, energy_true, n_atoms, forces_pred=None, forces_true=None,
    energy_std=None, forces_std=None,
) -> dict:
    """Accuracy (and, given spreads, uncertainty) metrics of energies and forces.

    ``energy_*`` (n_configs,) eV; ``n_atoms`` (n_configs,); ``forces_*`` (n_atoms_total, 3)
    eV/Å; ``*_std`` the predicted standard deviations of the same shapes. Keys:
    ``energy_mae``, ``energy_rmse`` (eV/config), ``energy_mae_per_atom``,
    ``energy_rmse_per_atom`` (eV/atom), ``force_mae``, ``force_rmse`` (eV/Å per component), and
    ``energy_spearman``, ``force_nll``, ... for the uncertainty figures. The worst cases sit
    beside the means, since an MD run fails on its worst step, not its average one:
    ``energy_max_error_per_atom`` = max_k |ΔE_k|/N_k (eV/atom) and ``force_max_error`` =
    max_i |ΔF_i| (eV/Å, the length of the largest atomic force-error vector).
    """
    e_err = np.asarray(energy_pred, float) - np.asarray(energy_true, float)
    per_atom = e_err / np.asarray(n_atoms, float)
    out = {
        "energy_mae": mae(e_err),
        "energy_rmse": rmse(e_err),
        "energy_mae_per_atom": mae(per_atom),
        "energy_rmse_per_atom": rmse(per_atom),
        "energy_max_error_per_atom": float(np.max(np.abs(per_atom), initial=0.0)),
    }
    if energy_std is not None:
        out.update(uncertainty_metrics(e_err, energy_std, prefix="energy_"))
    if forces_pred is not None and forces_true is not None:
        f_err = np.asarray(forces_pred, float) - np.asarray(forces_true, float)
        out["force_mae"] = mae(f_err)
        out["force_rmse"] = rmse(f_err)
        out["force_max_error"] = float(np.max(np.linalg.norm(f_err.reshape(-1, 3), axis=1),
                                              initial=0.0))
        if forces_std is not None:
            forces_std = np.asarray(forces_std, float)
            out.update(uncertainty_metrics(f_err, forces_std, prefix="force_"))
            out["force_spearman_component"] = out["force_spearman"]
            out["force_spearman"] = spearman(np.linalg.norm(f_err.reshape(-1, 3), axis=1),
                                             np.linalg.norm(forces_std.reshape(-1, 3), axis=1))
    return out


#: eV/Å³ in GPa (ase.units.GPa = 1/160.2177): stress errors are quoted in GPa.
EV_PER_A3_IN_GPA = 160.21766208


def stress_metrics(stress_pred, stress_true, stress_std=None) -> dict:
    """Accuracy (and, given spreads, uncertainty) of stresses, (n, 6) eV/Å³ in Voigt order,
    per component: ``stress_mae``, ``stress_rmse`` (eV/Å³), ``stress_mae_gpa``,
    ``stress_rmse_gpa``, ``n_stress`` and ``stress_spearman``, ``stress_coverage_1sigma``, …"""
    err = np.asarray(stress_pred, float) - np.asarray(stress_true, float)
    out = {"stress_mae": mae(err), "stress_rmse": rmse(err),
           "stress_mae_gpa": EV_PER_A3_IN_GPA * mae(err),
           "stress_rmse_gpa": EV_PER_A3_IN_GPA * rmse(err), "n_stress": int(len(err))}
    if stress_std is not None:
        out.update(uncertainty_metrics(err, stress_std, prefix="stress_"))
    return out
