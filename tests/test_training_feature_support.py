"""Features without support in the training data (``min_feature_std``) are ignored: their
standardised values and derivatives vanish, in training batches and in the saved model, and
the model's forces are still −∇E."""

import numpy as np
import pytest

from pesnet.descriptors.features_file import IGNORED_FEATURE_SCALE, FeaturesFile
from pesnet.errors import InputError
from pesnet.training.settings import TrainSettings
from tests.conftest import assert_matches_finite_differences, numerical_derivatives


def _threshold(path):
    """A std between the smallest and the largest of the Cu features: some ignored, not all."""
    with FeaturesFile(path) as features:
        std = np.sort(next(iter(features.stats.values())).std)
    return float(np.sqrt(std[0] * std[1])) if std[0] > 0 else float(std[1] / 2)


def test_ignored_features_standardise_to_zero(cu_features):
    path = cu_features / "features.h5"
    threshold = _threshold(path)
    with FeaturesFile(path) as features:
        plain = features.read_batch(np.arange(4))
        features.min_feature_std = threshold
        (stats,) = features.stats.values()
        ignored = stats.ignored
        batch = features.read_batch(np.arange(4))
    assert 0 < len(ignored) < len(stats.std)
    np.testing.assert_array_equal(stats.scale[ignored], IGNORED_FEATURE_SCALE)
    (rows,) = batch.elements.values()
    (plain_rows,) = plain.elements.values()
    assert np.abs(rows.values[:, ignored]).max() < 1e-290
    assert np.abs(batch.derivatives[:, ignored]).max() < 1e-290
    kept = np.setdiff1d(np.arange(len(stats.std)), ignored)
    np.testing.assert_array_equal(rows.values[:, kept], plain_rows.values[:, kept])
    assert np.abs(plain_rows.values[:, ignored]).max() > 0   # the default keeps them


def test_model_trained_without_them_keeps_forces_the_gradient(cu_features, tmp_path):
    from pesnet.calculator import PESNetCalculator
    from pesnet.potential.io import load_model, save_model
    from pesnet.training.trainer import train_potential

    path = cu_features / "features.h5"
    threshold = _threshold(path)
    result = train_potential(path, TrainSettings(hidden=(6,), n_members=2, epochs=3,
                                                 min_feature_std=threshold))
    model = load_model(save_model(result.potential, tmp_path / "model.h5"))
    (scale,) = [s for _, s in model.scalers.values()]
    assert np.any(scale == IGNORED_FEATURE_SCALE)
    assert model.metadata["settings"]["min_feature_std"] == threshold

    from ase.build import bulk
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=1)
    calc = PESNetCalculator(model)

    def energy(a):
        a.calc = calc
        return a.get_potential_energy()

    numeric = numerical_derivatives(energy, atoms, h=1e-5)
    atoms.calc = calc
    assert_matches_finite_differences(atoms.get_forces(), -numeric)


def test_negative_threshold_is_refused():
    with pytest.raises(InputError, match="min_feature_std"):
        TrainSettings(min_feature_std=-1e-3)


def test_range_scale_raises_each_scale_to_the_training_range(cu_features, tmp_path):
    """``feature_range_scale`` k: the model's scale of every kept feature is
    max(σ, (max − min)/k) over the training split; the ignored ones stay ignored."""
    from pesnet.training.data import open_training_inputs
    from pesnet.training.trainer import train_potential

    path = cu_features / "features.h5"
    k = 4.0
    result = train_potential(path, TrainSettings(hidden=(6,), n_members=2, epochs=2,
                                                 feature_range_scale=k))
    features, _, split, _ = open_training_inputs(path)
    with features:
        (z,) = features.elements
        values = features.read_batch(split.train, standardise=False, derivatives=False,
                                     strain=False).elements[z].values
        stats = features.stats[z]
    span = values.max(axis=0) - values.min(axis=0)
    kept = stats.std >= 1e-5
    mean, scale = result.potential.scalers[z]
    np.testing.assert_allclose(scale[kept], np.maximum(stats.std, span / k)[kept], rtol=1e-12)
    assert np.any(scale[kept] > stats.std[kept] * 1.01)   # some heavy-tailed feature widened
    np.testing.assert_array_equal(scale[~kept], IGNORED_FEATURE_SCALE)
    np.testing.assert_array_equal(mean, stats.mean)


def test_negative_range_scale_is_refused():
    with pytest.raises(InputError, match="feature_range_scale"):
        TrainSettings(feature_range_scale=-1.0)
