"""Diagnostic plots of a fit (matplotlib, Agg backend, PNG files).

* ``parity_energy.png``, ``parity_forces.png``: predicted against reference energy per atom
  (meV/atom) and force components (eV/Å), each point coloured by its predicted standard
  deviation, with MAE and RMSE in the title.
* ``learning_curves.png``: training and validation energy and force RMSE of every member, the
  ensemble mean's validation MAE, and the learning rate, against the epoch.
* ``calibration.png``: observed against expected coverage of central Gaussian intervals
  (:func:`pesnet.metrics.calibration_curve`) for energies and forces; the diagonal is perfect
  calibration, the shaded area the miscalibration area.
* ``error_vs_uncertainty.png``: |error| against predicted σ (log–log), with the RMS error in
  bins of σ; a calibrated model follows the diagonal.
* ``parity_stress.png`` (when stresses are labelled): stress components (GPa), coloured by
  their predicted σ.
* ``properties.png`` (the pipeline's validate step): each crystal property's error against the
  reference in % of the reference, with the calibrated 2σ as an error bar (without a
  reference: the 2σ spread in % of the mean).
* ``parity_groups.png`` (when the data has more than one group, ``config_type``): energy per
  atom and force components coloured by group, each group's force MAE (meV/Å) in the legend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pesnet import metrics

#: File names :func:`write_plots` produces (given forces and a history).
PLOT_FILES = ("parity_energy.png", "parity_forces.png", "learning_curves.png",
              "calibration.png", "error_vs_uncertainty.png")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    from pesnet.fileio import atomic_output

    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _pyplot().close(fig)
    return path


def _parity(ax, true, pred, std, unit: str, title: str, error_unit=None, error_scale=1.0):
    order = np.argsort(std)  # most uncertain points drawn last (on top)
    points = ax.scatter(true[order], pred[order], c=std[order], s=6, cmap="viridis",
                        rasterized=True)
    lo = float(min(true.min(), pred.min())) if true.size else 0.0
    hi = float(max(true.max(), pred.max())) if true.size else 1.0
    ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8)
    err = pred - true
    ax.set_title(f"{title}\nMAE {error_scale * metrics.mae(err):.3g}, "
                 f"RMSE {error_scale * metrics.rmse(err):.3g} {error_unit or unit}")
    ax.set_xlabel(f"reference ({unit})")
    ax.set_ylabel(f"predicted ({unit})")
    ax.set_aspect("equal", adjustable="datalim")
    cbar = ax.figure.colorbar(points, ax=ax)
    cbar.set_label(f"predicted σ ({unit})")


def parity_energy(evaluation, path) -> Path:
    """Energy per atom, meV/atom, coloured by σ per atom."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    n = np.maximum(evaluation.n_atoms, 1)
    _parity(ax, 1e3 * evaluation.energy_true / n, 1e3 * evaluation.energy_pred / n,
            1e3 * evaluation.energy_std / n, "meV/atom", "energy per atom")
    return _save(fig, Path(path))


def parity_forces(evaluation, path) -> Path:
    """Force components, eV/Å, coloured by σ of each component."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    _parity(ax, evaluation.forces_true.ravel(), evaluation.forces_pred.ravel(),
            evaluation.forces_std.ravel(), "eV/Å", "force components", "meV/Å", 1e3)
    return _save(fig, Path(path))


def learning_curves(history, path) -> Path:
    """Per-member RMSEs (thin lines), ensemble validation MAE (thick), learning rate."""
    plt = _pyplot()
    epochs = np.array([r.epoch for r in history])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, quantity, unit, scale in ((axes[0], "energy", "meV/atom", 1e3),
                                      (axes[1], "force", "meV/Å", 1e3)):
        train = scale * np.array([getattr(r, f"train_{quantity}_rmse") for r in history])
        val = scale * np.array([getattr(r, f"val_{quantity}_rmse") for r in history])
        for m in range(train.shape[1]):
            ax.plot(epochs, train[:, m], color="C0", lw=0.6, alpha=0.6,
                    label="train RMSE (members)" if m == 0 else None)
            ax.plot(epochs, val[:, m], color="C1", lw=0.6, alpha=0.6,
                    label="validation RMSE (members)" if m == 0 else None)
        ensemble = scale * np.array([getattr(r, f"val_{quantity}_mae_ensemble") for r in history])
        ax.plot(epochs, ensemble, color="k", lw=1.6, label="validation MAE (ensemble)")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{quantity} error ({unit})")
        ax.legend(fontsize=7)
    lr = np.array([r.learning_rate for r in history])
    axes[2].plot(epochs, lr, lw=0.8)
    axes[2].set_yscale("log")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("learning rate (per member)")
    fig.tight_layout()
    return _save(fig, Path(path))


def calibration(evaluation, path) -> Path:
    """Calibration curves of energies and forces."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 1], [0, 1], color="0.4", lw=0.8, label="ideal")
    pairs = [("energy", evaluation.energy_pred - evaluation.energy_true, evaluation.energy_std)]
    if evaluation.forces_true.size:
        pairs.append(("forces", (evaluation.forces_pred - evaluation.forces_true).ravel(),
                      evaluation.forces_std.ravel()))
    for k, (label, err, std) in enumerate(pairs):
        expected, observed = metrics.calibration_curve(err, std)
        area = metrics.miscalibration_area(err, std)
        ax.plot(expected, observed, color=f"C{k}", label=f"{label} (area {area:.3f})")
        ax.fill_between(expected, expected, observed, color=f"C{k}", alpha=0.15)
    ax.set_xlabel("expected coverage of the central interval")
    ax.set_ylabel("observed fraction of errors inside")
    ax.set_title("calibration")
    ax.legend(fontsize=8)
    return _save(fig, Path(path))


def _binned_rms(std, err, n_bins=12):
    positive = std > 0
    std, err = std[positive], err[positive]
    if std.size < 2:
        return np.zeros(0), np.zeros(0)
    edges = np.unique(np.quantile(std, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, std, side="right") - 1, 0, len(edges) - 2)
    centres, rms = [], []
    for b in range(len(edges) - 1):
        inside = which == b
        if inside.any():
            centres.append(np.sqrt(np.mean(std[inside] ** 2)))
            rms.append(np.sqrt(np.mean(err[inside] ** 2)))
    return np.array(centres), np.array(rms)


def error_vs_uncertainty(evaluation, path) -> Path:
    """|error| against σ for energies per atom and force components, log–log."""
    plt = _pyplot()
    n = np.maximum(evaluation.n_atoms, 1)
    panels = [("energy per atom", "meV/atom",
               1e3 * (evaluation.energy_pred - evaluation.energy_true) / n,
               1e3 * evaluation.energy_std / n)]
    if evaluation.forces_true.size:
        panels.append(("force components", "eV/Å",
                       (evaluation.forces_pred - evaluation.forces_true).ravel(),
                       evaluation.forces_std.ravel()))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    for ax, (title, unit, err, std) in zip(axes[0], panels):
        tiny = 1e-12
        ax.scatter(np.maximum(std, tiny), np.maximum(np.abs(err), tiny), s=4, alpha=0.4,
                   rasterized=True, label="samples")
        centres, rms = _binned_rms(std, err)
        if centres.size:
            ax.plot(centres, rms, "o-", color="C3", label="RMS error in σ bins")
            lo, hi = centres.min(), centres.max()
            ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8, label="RMS error = σ")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"predicted σ ({unit})")
        ax.set_ylabel(f"|error| ({unit})")
        rho = metrics.spearman(err, std)
        ax.set_title(f"{title}: Spearman {rho:.2f}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, Path(path))


def parity_stress(evaluation, path) -> Path:
    """Stress components, GPa, coloured by σ of each component."""
    from pesnet.metrics import EV_PER_A3_IN_GPA as GPA

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    _parity(ax, GPA * evaluation.stress_true.ravel(), GPA * evaluation.stress_pred.ravel(),
            GPA * evaluation.stress_std.ravel(), "GPa", "stress components")
    return _save(fig, Path(path))


def property_errors(results, path, reference: str | None = None) -> Path:
    """Relative errors (%) of :class:`pesnet.properties.PropertyResult` rows with their
    calibrated 2σ (% of the reference, or of the mean without one)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(results) + 2), 3.6))
    names = [r.name for r in results]
    base = [abs(r.reference if r.reference not in (None, 0) else r.mean) or 1.0
            for r in results]
    errors = [100 * (r.error or 0.0) / b for r, b in zip(results, base)]
    bars = [200 * r.std_calibrated / b for r, b in zip(results, base)]
    colours = ["tab:blue" if r.within_2sigma in (None, True) else "tab:red" for r in results]
    x = np.arange(len(results))
    ax.axhline(0, color="0.4", lw=0.8)
    ax.errorbar(x, errors, yerr=bars, fmt="none", ecolor="0.5", capsize=3)
    ax.scatter(x, errors, c=colours, zorder=3)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel(f"error vs {reference} (%)" if reference else "ensemble 2σ (% of mean)")
    ax.set_title("crystal properties: error and calibrated 2σ" if reference
                 else "crystal properties: calibrated 2σ")
    return _save(fig, Path(path))


def parity_groups(evaluation, path) -> Path:
    """Energies (meV/atom) and force components (eV/Å) coloured by group (``config_type``)."""
    plt = _pyplot()
    groups = sorted(set(evaluation.config_type.tolist()))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.6))
    n = np.maximum(evaluation.n_atoms, 1)
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(groups), 2)))
    for colour, group in zip(colours, groups):
        rows = evaluation.config_type == group
        atoms = evaluation.forces_config_type == group
        left.scatter(1e3 * evaluation.energy_true[rows] / n[rows],
                     1e3 * evaluation.energy_pred[rows] / n[rows], s=8, color=colour,
                     rasterized=True)
        f_true, f_pred = evaluation.forces_true[atoms], evaluation.forces_pred[atoms]
        mae = f" {1e3 * metrics.mae(f_pred - f_true):.1f} meV/Å" if f_true.size else ""
        right.scatter(f_true.ravel(), f_pred.ravel(), s=3, color=colour, rasterized=True,
                      label=f"{group or '(none)'}{mae}")
    for ax, unit, title in ((left, "meV/atom", "energy per atom"),
                            (right, "eV/Å", "force components")):
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8)
        ax.set_xlabel(f"reference ({unit})")
        ax.set_ylabel(f"predicted ({unit})")
        ax.set_title(f"{title} by group")
    right.legend(fontsize=7, markerscale=3, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return _save(fig, Path(path))


def write_plots(evaluation, history, directory) -> list[Path]:
    """Every plot of the module into ``directory``; returns the files written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = [parity_energy(evaluation, directory / "parity_energy.png")]
    if evaluation.forces_true.size:
        written.append(parity_forces(evaluation, directory / "parity_forces.png"))
    if history:
        written.append(learning_curves(history, directory / "learning_curves.png"))
    written.append(calibration(evaluation, directory / "calibration.png"))
    written.append(error_vs_uncertainty(evaluation, directory / "error_vs_uncertainty.png"))
    if len(evaluation.stress_true):
        written.append(parity_stress(evaluation, directory / "parity_stress.png"))
    if len(set(evaluation.config_type.tolist())) > 1:
        written.append(parity_groups(evaluation, directory / "parity_groups.png"))
    return written
