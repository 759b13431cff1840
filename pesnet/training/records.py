"""What training records after each epoch, and its two stored forms, defined once.

:class:`EpochRecord` is what callbacks receive; ``history.json`` (a run directory's learning
curves) and a checkpoint's ``history`` group (HDF5) are its serialisations. Adding a field to
the record is the only change either form needs: array fields are the record's per-member
(M,) values, the others scalars.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np


class EpochRecord(NamedTuple):
    """What callbacks receive after each epoch. Arrays have one entry per member (M,).

    Energies are per atom (eV/atom), forces per component (eV/Å); ``val_*_ensemble`` are the
    errors of the ensemble mean.
    """

    epoch: int
    train_loss: np.ndarray
    train_energy_rmse: np.ndarray
    train_force_rmse: np.ndarray
    val_loss: np.ndarray
    val_energy_rmse: np.ndarray
    val_force_rmse: np.ndarray
    val_energy_mae_ensemble: float
    val_force_mae_ensemble: float
    learning_rate: np.ndarray
    active: np.ndarray
    seconds: float


#: Scalar fields of :class:`EpochRecord` (the rest are per-member arrays); ``active`` is bool.
SCALARS = {"epoch", "val_energy_mae_ensemble", "val_force_mae_ensemble", "seconds"}


def _field(name: str, value):
    """One stored value back in the record's type."""
    if name == "epoch":
        return int(value)
    if name in SCALARS:
        return float(value)
    return np.asarray(value, bool if name == "active" else float)


def history_to_json(history) -> list[dict]:
    """The records as JSON-able rows (arrays as lists)."""
    return [{k: (v.tolist() if isinstance(v, np.ndarray) else v)
             for k, v in record._asdict().items()} for record in history]


def history_from_json(rows) -> list[EpochRecord]:
    """Records from :func:`history_to_json`'s rows (unknown keys are ignored)."""
    return [EpochRecord(**{k: _field(k, v) for k, v in row.items() if k in EpochRecord._fields})
            for row in rows]


def read_history(path) -> list[EpochRecord]:
    """The records of a ``history.json`` file."""
    return history_from_json(json.loads(Path(path).read_text()))


def write_history_group(group, history) -> None:
    """The records into an HDF5 group: one dataset per field, (n_epochs,) or (n_epochs, M)."""
    for field in EpochRecord._fields:
        values = [getattr(r, field) for r in history]
        group.create_dataset(field, data=np.asarray(values, dtype=float)
                             if values else np.zeros(0))


def read_history_group(group) -> list[EpochRecord]:
    """The records :func:`write_history_group` stored."""
    n = len(group["epoch"])
    return [EpochRecord(**{field: _field(field, group[field][k])
                           for field in EpochRecord._fields}) for k in range(n)]
