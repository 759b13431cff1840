"""The MLflow training callback (against a recording stand-in for the session) and the plots."""

from __future__ import annotations

import numpy as np
import pytest

from pesnet.tracking.callback import MLflowCallback
from pesnet.tracking.store import TrackingError


class RecordingSession:
    """Stands in for TrackingSession: records calls; optionally fails from a given call on."""

    def __init__(self, fail_on=None):
        self.calls = []
        self.fail_on = fail_on

    def _record(self, name, *args):
        if self.fail_on == name:
            raise TrackingError(f"{name} failed: store gone")
        self.calls.append((name, args))

    def start_members(self, n_members, seed, bootstrap):
        self._record("start_members", n_members, seed, bootstrap)

    def log_epochs(self, records, timestamps=None):
        self._record("log_epochs", [r.epoch for r in records])

    def finish_members(self, metadata=None):
        self._record("finish_members", metadata)


@pytest.fixture(scope="module")
def trained(cu_features):
    from pesnet.training.settings import TrainSettings

    return cu_features, TrainSettings(hidden=(4,), n_members=2, epochs=4, batch_size=8)


def test_callback_streams_every_epoch_and_closes_members(trained):
    from pesnet.training.trainer import train_potential

    root, settings = trained
    session = RecordingSession()
    callback = MLflowCallback(session, flush_seconds=0.0)
    train_potential(root / "features.h5", settings, callbacks=[callback])
    names = [name for name, _ in session.calls]
    assert names[0] == "start_members" and names[-1] == "finish_members"
    logged = [e for name, args in session.calls if name == "log_epochs" for e in args[0]]
    assert logged == [0, 1, 2, 3] and callback.error is None
    assert session.calls[-1][1][0]["seeds"]["ensemble"] == 0  # the model's metadata


def test_callback_buffers_between_flushes(trained):
    from pesnet.training.trainer import train_potential

    root, settings = trained
    session = RecordingSession()
    train_potential(root / "features.h5", settings,
                    callbacks=[MLflowCallback(session, flush_seconds=3600)])
    batches = [args[0] for name, args in session.calls if name == "log_epochs"]
    assert batches == [[0, 1, 2, 3]]  # one batch at the end


def test_tracking_failure_never_stops_training(trained):
    from pesnet.training.trainer import train_potential

    root, settings = trained
    session = RecordingSession(fail_on="log_epochs")
    callback = MLflowCallback(session, flush_seconds=0.0)
    result = train_potential(root / "features.h5", settings, callbacks=[callback])
    assert len(result.history) == 4
    assert callback.error == "log_epochs failed: store gone"
    assert [name for name, _ in session.calls] == ["start_members"]  # stopped tracking


def test_metric_names_and_values(trained):
    from pesnet.tracking.session import ensemble_metrics, member_metrics
    from pesnet.training.trainer import train_potential

    root, settings = trained
    record = train_potential(root / "features.h5", settings).history[-1]
    parent = ensemble_metrics(record)
    assert parent["val_force_mae"] == record.val_force_mae_ensemble
    assert parent["train_energy_rmse"] == pytest.approx(np.mean(record.train_energy_rmse))
    assert parent["learning_rate"] == pytest.approx(np.max(record.learning_rate))
    member = member_metrics(record, 1)
    assert member["val_force_rmse"] == record.val_force_rmse[1]
    assert set(member) == {"train_loss", "train_energy_rmse", "train_force_rmse", "val_loss",
                           "val_energy_rmse", "val_force_rmse", "learning_rate"}


def test_plots_are_png_files(trained, tmp_path):
    from pesnet.potential.evaluate import evaluate_potential
    from pesnet.tracking.plots import PLOT_FILES, write_plots
    from pesnet.training.trainer import train_potential

    root, settings = trained
    result = train_potential(root / "features.h5", settings)
    evaluation = evaluate_potential(result.potential, root / "cu.h5", result.split.test)
    written = write_plots(evaluation, result.history, tmp_path / "plots")
    several_groups = len(set(evaluation.config_type.tolist())) > 1
    expected = [*PLOT_FILES, *(["parity_groups.png"] if several_groups else []),
                *(["parity_stress.png"] if len(evaluation.stress_true) else [])]
    assert sorted(p.name for p in written) == sorted(expected)
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_resumed_training_backfills_the_epochs_before_the_resume():
    from collections import namedtuple

    Record = namedtuple("Record", "epoch")
    session = RecordingSession()
    callback = MLflowCallback(session, flush_seconds=0.0)
    for epoch in (2, 3):  # a run resumed at epoch 2
        callback.on_epoch_end(Record(epoch))
    callback.on_train_end(None, [Record(e) for e in range(4)])
    batches = [args[0] for name, args in session.calls if name == "log_epochs"]
    assert batches == [[2], [3], [0, 1]]
