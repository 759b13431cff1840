"""Member groups trained on a two-worker LocalCluster assemble into the single-process model,
parameter for parameter, calibration and metadata included."""

from __future__ import annotations

import math

import numpy as np

from pesnet.distributed.cluster import member_groups
from pesnet.distributed.train import group_checkpoint, train_on_cluster
from pesnet.potential.io import load_model, save_model
from pesnet.training.settings import TrainSettings
from pesnet.training.trainer import train_potential
from tests.distributed_helpers import cluster  # noqa: F401  (fixture)
from tests.test_training_groups import assert_same_potential

SETTINGS = dict(hidden=(8, 8), n_members=3, epochs=5, batch_size=4, seed=3, patience=2,
                checkpoint_every=2)


def test_member_groups_split_evenly():
    assert member_groups(5, 2) == [(0, 3), (3, 5)]
    assert member_groups(2, 8) == [(0, 1), (1, 2)]
    assert member_groups(4, 1) == [(0, 4)]


def test_groups_on_the_cluster_give_the_single_process_model(cluster, cu_features,  # noqa: F811
                                                             tmp_path):
    features = cu_features / "features.h5"
    settings = TrainSettings(**SETTINGS)
    alone = train_potential(features, settings)
    result = train_on_cluster(cluster, features, settings, checkpoint_dir=tmp_path)
    assert_same_potential(result.potential, alone.potential)
    # the model file round-trips to the same model
    assert_same_potential(load_model(save_model(result.potential, tmp_path / "m.h5")),
                          alone.potential)
    # the merged history carries every member's curves as one process records them
    assert len(result.history) == len(alone.history)
    for merged, single in zip(result.history, alone.history):
        for name in ("val_loss", "val_energy_rmse", "val_force_rmse", "active",
                     "learning_rate"):
            assert np.array_equal(getattr(merged, name), getattr(single, name)), name
        assert math.isnan(merged.val_energy_mae_ensemble)
    assert np.array_equal(result.split.validation, alone.split.validation)
    assert result.dataset_path == alone.dataset_path
    # each group left its checkpoint (groups per worker thread: 2)
    assert group_checkpoint(tmp_path, 0, 2).is_file() and group_checkpoint(tmp_path, 2, 3).is_file()


def test_three_groups_resume_from_their_checkpoints(cluster, cu_features, tmp_path):  # noqa: F811
    features = cu_features / "features.h5"
    settings = TrainSettings(**SETTINGS)
    first = train_on_cluster(cluster, features, settings, groups=3, checkpoint_dir=tmp_path)
    again = train_on_cluster(cluster, features, settings, groups=3, checkpoint_dir=tmp_path,
                             resume=True)
    assert_same_potential(again.potential, first.potential)
