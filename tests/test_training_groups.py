"""Training an ensemble in groups of members: each group with ``members=(start, stop)``, then
``assemble_members`` and ``calibrate`` give the single fit of all members bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from pesnet.errors import InputError
from pesnet.training.settings import TrainSettings
from pesnet.training.trainer import assemble_members, calibrate, train_potential

SMALL = dict(hidden=(8, 8), n_members=3, epochs=4, batch_size=4, seed=3, patience=2)


def assert_same_potential(a, b):
    """Every parameter, scaler, reference energy, calibration and metadata entry equal."""
    assert a.elements == b.elements
    for z in a.elements:
        assert np.array_equal(a.networks[z].params, b.networks[z].params)
        assert a.networks[z].config() == b.networks[z].config()
        for x, y in zip(a.scalers[z], b.scalers[z]):
            assert np.array_equal(x, y)
    assert a.reference_energies == b.reference_energies
    assert a.calibration == b.calibration
    assert a.metadata == b.metadata


def test_groups_assemble_to_the_single_fit(cu_features):
    features = cu_features / "features.h5"
    settings = TrainSettings(**SMALL)
    full = train_potential(features, settings).potential
    parts = [train_potential(features, settings, members=r) for r in [(1, 3), (0, 1)]]
    assert parts[0].potential.n_members == 2 and len(parts[0].history[0].val_loss) == 2
    assert parts[0].potential.metadata["members"] == [1, 3]
    assert parts[0].potential.calibration == {"energy": 1.0, "forces": 1.0}
    assembled = assemble_members([p.potential for p in parts])
    assert assembled.calibration == {"energy": 1.0, "forces": 1.0}
    assert calibrate(assembled, features, settings) == full.calibration
    assert full.calibration["energy"] != 1.0
    assert_same_potential(assembled, full)


def test_assembly_refuses_gaps_overlaps_and_mixed_fits(cu_features):
    features = cu_features / "features.h5"
    settings = TrainSettings(**{**SMALL, "epochs": 1})
    a = train_potential(features, settings, members=(0, 1)).potential
    b = train_potential(features, settings, members=(1, 2)).potential
    with pytest.raises(InputError, match="do not cover"):
        assemble_members([a, b])
    with pytest.raises(InputError, match="do not cover"):
        assemble_members([a, a, b])
    other = train_potential(features, TrainSettings(**{**SMALL, "epochs": 1, "seed": 4}),
                            members=(2, 3)).potential
    with pytest.raises(InputError, match="different fits"):
        assemble_members([a, b, other])
    with pytest.raises(InputError, match="outside the ensemble"):
        train_potential(features, settings, members=(2, 4))


def test_a_group_resumes_only_its_own_checkpoint(cu_features, tmp_path):
    features = cu_features / "features.h5"
    settings = TrainSettings(**{**SMALL, "epochs": 2, "checkpoint_every": 1})
    checkpoint = tmp_path / "group.ckpt.h5"
    done = train_potential(features, settings, members=(1, 3), checkpoint_path=checkpoint)
    again = train_potential(features, settings, members=(1, 3), checkpoint_path=checkpoint,
                            resume=True)
    for z in done.potential.elements:
        assert np.array_equal(done.potential.networks[z].params,
                              again.potential.networks[z].params)
    with pytest.raises(InputError, match="cannot resume members 0:2"):
        train_potential(features, settings, members=(0, 2), checkpoint_path=checkpoint,
                        resume=True)
