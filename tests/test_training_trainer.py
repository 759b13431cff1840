"""Training end to end on a small Cu EMT set: errors fall, members differ only by seed,
checkpoints resume to the same weights, and the calibrated spread is stored."""

from __future__ import annotations

import numpy as np
import pytest

from pesnet.errors import InputError
from pesnet.potential.io import load_model, save_model
from pesnet.training.settings import TrainSettings
from pesnet.training.trainer import train_potential

SMALL = dict(hidden=(8, 8), n_members=3, epochs=12, batch_size=4, seed=3, patience=50)


def test_training_reduces_errors_and_calibrates(cu_features):
    history = []

    class Recorder:
        def on_epoch_end(self, record):
            history.append(record)

    result = train_potential(cu_features / "features.h5", TrainSettings(**SMALL),
                             callbacks=[Recorder()])
    assert len(history) == 12
    first, last = history[0], history[-1]
    assert last.val_force_mae_ensemble < 0.7 * first.val_force_mae_ensemble
    assert (last.train_loss < first.train_loss).all()
    potential = result.potential
    assert potential.n_members == 3
    assert potential.calibration["forces"] > 0 and potential.calibration["energy"] > 0
    assert potential.metadata["split"]["n_validation"] > 0
    # members differ (seeds), and the ensemble spread is positive
    params = potential.networks[29].params
    assert not np.allclose(params[0], params[1])


def test_each_member_trains_as_if_alone(cu_features):
    """Member 1 of a 3-member ensemble equals a 1-member run that starts from member 1's
    initial weights and bootstrap weights: members never interact."""
    small = {**SMALL, "epochs": 3, "bootstrap": True}      # bootstrap draws are per member too
    full = train_potential(cu_features / "features.h5", TrainSettings(**small))
    settings = TrainSettings(**small)
    from pesnet.training import trainer

    original_bootstrap = trainer._bootstrap
    original_build = trainer.build_potential

    def build_member_one(*args, **kwargs):
        potential = original_build(*args, **kwargs)
        for z, net in potential.networks.items():
            net.params[...] = net.params[[1, 1, 1]]
        return potential

    def bootstrap_member_one(s, n):
        weights = original_bootstrap(s, n)
        return weights[[1, 1, 1]]

    trainer.build_potential, trainer._bootstrap = build_member_one, bootstrap_member_one
    try:
        alone = train_potential(cu_features / "features.h5", settings)
    finally:
        trainer.build_potential, trainer._bootstrap = original_build, original_bootstrap
    for z in full.potential.elements:
        np.testing.assert_array_equal(alone.potential.networks[z].params[0],
                                      full.potential.networks[z].params[1])


def test_resume_from_checkpoint_reaches_the_same_weights(cu_features, tmp_path):
    settings = TrainSettings(**{**SMALL, "epochs": 8, "checkpoint_every": 3})
    straight = train_potential(cu_features / "features.h5", settings)

    class Kill(Exception):
        pass

    class KillAfter:
        def on_epoch_end(self, record):
            if record.epoch == 4:  # checkpoint written after epoch 2 (epochs 0..2)
                raise Kill

    checkpoint = tmp_path / "ckpt.h5"
    with pytest.raises(Kill):
        train_potential(cu_features / "features.h5", settings, callbacks=[KillAfter()],
                        checkpoint_path=checkpoint)
    # a checkpoint written before a setting existed (stress_weight) resumes with its default
    import json

    import h5py

    with h5py.File(checkpoint, "a") as f:
        saved = json.loads(f.attrs["settings"])
        del saved["stress_weight"]
        f.attrs["settings"] = json.dumps(saved)
    resumed = train_potential(cu_features / "features.h5", settings, checkpoint_path=checkpoint,
                              resume=True)
    assert len(resumed.history) == len(straight.history) == 8
    for z in straight.potential.elements:
        np.testing.assert_array_equal(resumed.potential.networks[z].params,
                                      straight.potential.networks[z].params)
    assert resumed.potential.calibration == straight.potential.calibration
    # and the saved model reproduces predictions exactly
    path = save_model(resumed.potential, tmp_path / "model.h5")
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=0)
    a, b = resumed.potential.predict(atoms), load_model(path).predict(atoms)
    np.testing.assert_array_equal(a.forces, b.forces)
    with pytest.raises(InputError, match="different settings"):
        train_potential(cu_features / "features.h5", TrainSettings(**{**SMALL, "epochs": 9}),
                        checkpoint_path=checkpoint, resume=True)


def test_settings_are_validated():
    with pytest.raises(InputError, match="unknown key"):
        TrainSettings.from_dict({"epochs": 3, "learning_rat": 0.1}, where="spec.toml [train]")
    with pytest.raises(InputError, match="n_members"):
        TrainSettings(n_members=0)


def test_trained_model_forces_are_energy_gradients_and_features_are_checked(cu_features):
    from ase.build import bulk

    from pesnet.descriptors import ACSF
    from pesnet.descriptors.features_file import FeaturesFile
    from pesnet.errors import DataFormatError

    potential = train_potential(cu_features / "features.h5",
                                TrainSettings(**{**SMALL, "epochs": 3})).potential
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.08, seed=2)
    forces = potential.predict(atoms).forces
    h = 1e-5
    for i, x in [(0, 0), (1, 2), (3, 1)]:
        shifted = atoms.copy()
        shifted.positions[i, x] += h
        up = potential.predict(shifted, forces=False).energy[0]
        shifted.positions[i, x] -= 2 * h
        down = potential.predict(shifted, forces=False).energy[0]
        assert forces[i, x] == pytest.approx(-(up - down) / (2 * h), abs=1e-6 * np.abs(forces).max())
    with FeaturesFile(cu_features / "features.h5") as features:
        potential.check_features(features)
        potential.descriptor = ACSF(["Cu"], cutoff=4.0, g2=[(0.5, 2.5)])
        with pytest.raises(DataFormatError, match="descriptor"):
            potential.check_features(features)


def test_training_on_stress_fits_the_stress(cu_features):
    """A stress term (stress_weight) makes the model's stresses follow the labels: the MAE
    over every stress-labelled configuration falls well below the same fit without it."""
    from pesnet.potential.evaluate import evaluate_potential

    scores = {}
    for weight in (0.0, 100.0):
        settings = TrainSettings(hidden=(8,), n_members=2, epochs=40, batch_size=4, seed=3,
                                 patience=50, stress_weight=weight, learning_rate=1e-2)
        result = train_potential(cu_features / "features.h5", settings)
        metrics = evaluate_potential(result.potential, cu_features / "cu.h5").metrics
        assert metrics["n_stress"] >= 24
        scores[weight] = metrics["stress_mae_gpa"]
        assert result.potential.metadata["settings"]["stress_weight"] == weight
    assert scores[100.0] < 0.6 * scores[0.0], scores


def test_stress_needs_derivatives(cu_features, tmp_path):
    from pesnet.descriptors import ACSF
    from pesnet.descriptors.featurize import featurize

    acsf = ACSF(["Cu"], cutoff=4.0, g2=[(0.5, 2.5)])
    featurize(cu_features / "cu.h5", tmp_path / "values.h5", acsf=acsf, derivatives=False)
    with pytest.raises(InputError, match="has no derivatives"):
        train_potential(tmp_path / "values.h5", TrainSettings(
            hidden=(4,), n_members=1, epochs=1, force_weight=0.0, stress_weight=1.0))


def test_optimizer_params_reach_the_optimizer(cu_features):
    """``optimizer_params`` (here AdamW's weight decay) change the fit, are recorded with the
    settings, and a bad one is refused when the settings are made."""
    base = dict(hidden=(6,), n_members=2, epochs=2, optimizer="adamw", checkpoint_every=0)
    plain = train_potential(cu_features / "features.h5",
                            TrainSettings(**base, optimizer_params={"weight_decay": 0.0}))
    decayed = train_potential(cu_features / "features.h5",
                              TrainSettings(**base, optimizer_params={"weight_decay": 0.5}))
    (z,) = plain.potential.elements
    w_plain, w_decayed = (np.abs(r.potential.networks[z].params).sum()
                          for r in (plain, decayed))
    assert w_decayed < w_plain
    assert decayed.potential.metadata["settings"]["optimizer_params"] == {"weight_decay": 0.5}
    with pytest.raises(InputError, match="optimizer"):
        TrainSettings(optimizer="adamw", optimizer_params={"weight_dacay": 1e-3})
