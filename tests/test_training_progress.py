"""The training progress line compares like with like: the same metric, in the same unit, on
the training and validation sides (it once set an ensemble MAE beside a members' RMSE)."""

from __future__ import annotations

import numpy as np

from pesnet.training.progress import progress_text
from pesnet.training.trainer import EpochRecord


def test_progress_line_sets_the_same_metric_side_by_side_with_units():
    m = 3
    record = EpochRecord(
        epoch=4, train_loss=np.ones(m), train_energy_rmse=np.full(m, 0.002),
        train_force_rmse=np.array([0.09, 0.10, 0.11]), val_loss=np.ones(m),
        val_energy_rmse=np.full(m, 0.003), val_force_rmse=np.array([0.07, 0.08, 0.09]),
        val_energy_mae_ensemble=0.00123, val_force_mae_ensemble=0.0498,
        learning_rate=np.array([1e-3, 5e-4, 1e-3]), active=np.array([True, False, True]),
        seconds=1.0)
    text = progress_text(record)
    assert "F RMSE train 100.0 val 80.0 meV/Å" in text
    assert "ensemble val MAE E 1.23 meV/atom F 49.8 meV/Å" in text
    assert "lr 0.001" in text and "active 2/3" in text
