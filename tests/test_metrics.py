"""Metrics and spread calibration on synthetic errors with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from pesnet import metrics
from pesnet.potential.calibration import fit_spread_scale
from pesnet.potential.reference import element_counts, fit_reference_energies


@pytest.fixture
def calibrated():
    rng = np.random.default_rng(0)
    std = rng.uniform(0.05, 0.5, size=50_000)
    return rng.normal(0.0, std), std


def test_accuracy_metrics_match_definitions():
    e = np.array([1.0, -2.0, 2.0, -1.0])
    assert metrics.mae(e) == 1.5
    assert metrics.rmse(e) == pytest.approx(np.sqrt(2.5))
    out = metrics.energy_force_metrics([1.0, 4.0], [0.0, 0.0], [2, 4],
                                       np.ones((6, 3)), np.zeros((6, 3)))
    assert out["energy_mae"] == 2.5
    assert out["energy_mae_per_atom"] == 0.75
    assert out["force_mae"] == 1.0 and out["force_rmse"] == 1.0


def test_worst_cases_sit_beside_the_means():
    forces = np.zeros((5, 3))
    forces[3] = [3.0, 0.0, 4.0]                     # one atom 5 eV/Å off, the others exact
    out = metrics.energy_force_metrics([0.3, -2.0], [0.0, 0.0], [3, 2],
                                       forces, np.zeros((5, 3)))
    assert out["energy_max_error_per_atom"] == 1.0  # |−2 eV| / 2 atoms
    assert out["force_max_error"] == 5.0
    assert out["force_mae"] == pytest.approx(7.0 / 15)


def test_calibrated_gaussian_errors(calibrated):
    errors, std = calibrated
    out = metrics.uncertainty_metrics(errors, std)
    assert out["coverage_1sigma"] == pytest.approx(0.6827, abs=0.01)
    assert out["coverage_2sigma"] == pytest.approx(0.9545, abs=0.005)
    assert out["miscalibration_area"] < 0.01
    assert out["spearman"] > 0.3
    # the NLL is lowest for the true spread
    assert out["nll"] < metrics.gaussian_nll(errors, 2 * std)
    assert out["nll"] < metrics.gaussian_nll(errors, 0.5 * std)


def test_miscalibrated_spread_is_detected_and_rescaled(calibrated):
    errors, std = calibrated
    too_small = std / 3.0
    assert metrics.coverage(errors, too_small) < 0.3
    assert metrics.miscalibration_area(errors, too_small) > 0.2
    scale = fit_spread_scale(errors, too_small, method="nll")
    assert scale == pytest.approx(3.0, rel=0.02)
    assert metrics.miscalibration_area(errors, scale * too_small) < 0.01
    musil = fit_spread_scale(errors, too_small, method="musil", n_members=8)
    assert musil == pytest.approx(np.sqrt(-1 / 8 + 5 / 7 * 9.0), rel=0.03)
    area = fit_spread_scale(errors, too_small, method="area")
    assert area == pytest.approx(3.0, rel=0.03)


def test_area_calibration_resists_heavy_tails_and_over_dispersion():
    rng = np.random.default_rng(4)
    std = rng.uniform(0.05, 0.5, size=20_000)
    # Student-t errors (heavy tails) at the scale of std: NLL's factor over-covers
    errors = std * rng.standard_t(3, size=std.size) / np.sqrt(3.0)
    nll = fit_spread_scale(errors, std, "nll")
    area = fit_spread_scale(errors, std, "area")
    assert metrics.miscalibration_area(errors, area * std) < metrics.miscalibration_area(errors, nll * std)
    # an over-dispersed 5-member committee (σ twice the error scale): Musil collapses, area not
    wide = 2.0 * std
    gaussian = rng.normal(0.0, std)
    musil = fit_spread_scale(gaussian, wide, "musil", n_members=5)
    area = fit_spread_scale(gaussian, wide, "area")
    assert metrics.coverage(gaussian, musil * wide) < 0.4
    assert metrics.coverage(gaussian, area * wide) == pytest.approx(0.683, abs=0.03)


def test_uninformative_spread_has_no_rank_correlation():
    rng = np.random.default_rng(1)
    errors = rng.normal(size=20_000)
    std = rng.uniform(0.5, 1.5, size=20_000)
    assert abs(metrics.spearman(errors, std)) < 0.03


def test_reference_energies_recover_per_element_values():
    rng = np.random.default_rng(2)
    elements = [1, 6, 8]
    per_element = np.array([-13.6, -1030.0, -2040.0])
    numbers, offsets = [], [0]
    for _ in range(40):
        n = rng.integers(2, 9)
        numbers.extend(rng.choice(elements, size=n))
        offsets.append(offsets[-1] + n)
    counts = element_counts(np.array(numbers), np.array(offsets), elements)
    assert counts.sum() == len(numbers)
    energies = counts @ per_element + rng.normal(0, 1e-6, size=40)
    np.testing.assert_allclose(fit_reference_energies(counts, energies), per_element, atol=1e-4)


def test_force_spearman_ranks_atoms_by_error_vector_length():
    rng = np.random.default_rng(3)
    sigma_atom = rng.uniform(0.01, 0.2, size=(4000, 1))
    std = np.repeat(sigma_atom, 3, axis=1) / np.sqrt(3)
    errors = rng.normal(0.0, std)
    out = metrics.energy_force_metrics([0.0], [0.0], [1], errors, np.zeros_like(errors),
                                       energy_std=[1.0], forces_std=std)
    # per-atom norms carry the scale of three components: a stronger rank signal
    assert out["force_spearman"] > out["force_spearman_component"] > 0.2
    expected = metrics.spearman(np.linalg.norm(errors, axis=1), np.linalg.norm(std, axis=1))
    assert out["force_spearman"] == expected
    # rotating every error vector leaves the per-atom figure unchanged
    from scipy.spatial.transform import Rotation

    rotated = errors @ Rotation.from_euler("xyz", [0.3, 1.1, -0.7]).as_matrix().T
    again = metrics.energy_force_metrics([0.0], [0.0], [1], rotated, np.zeros_like(errors),
                                         energy_std=[1.0], forces_std=std)
    assert again["force_spearman"] == pytest.approx(out["force_spearman"], abs=1e-12)


def test_miscalibration_areas_match_one_at_a_time(calibrated):
    errors, std = calibrated
    scales = [0.3, 1.0, 2.5]
    np.testing.assert_allclose(metrics.miscalibration_areas(errors, std, scales),
                               [metrics.miscalibration_area(errors, s * std) for s in scales])
