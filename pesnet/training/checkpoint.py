"""Training checkpoints (HDF5): the model, optimiser and schedule state, early-stopping state
and the history so far — everything needed to continue a killed run exactly.

Batch composition and per-epoch order are functions of the seed (and epoch), so they need no
saving. Written atomically (temporary file + rename), so a kill during a write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
from ase.data import chemical_symbols

from pesnet.errors import InputError
from pesnet.fileio import atomic_output
from pesnet.potential.io import write_model_group
from pesnet.training.records import read_history_group, write_history_group


def save(path, potential, state, schedule, settings) -> None:
    with atomic_output(path, suffix=".h5.tmp") as tmp, h5py.File(tmp, "w") as f:
        write_model_group(f.create_group("model"), potential)
        f.attrs["epoch"] = state.epoch
        f.attrs["settings"] = json.dumps(settings.to_dict())
        for name in ("best_loss", "best_epoch", "wait", "active"):
            f.create_dataset(f"early_stopping/{name}", data=getattr(state, name))
        for z in potential.elements:
            symbol = chemical_symbols[z]
            f.create_dataset(f"best_params/{symbol}", data=state.best_params[z])
            for key, value in state.opt_state[z].items():
                f.create_dataset(f"optimizer/{symbol}/{key}", data=np.asarray(value))
        for key, value in vars(schedule).items():
            if key.startswith("_"):
                f.create_dataset(f"schedule/{key}", data=np.asarray(value))
        write_history_group(f.create_group("history"), state.history)


def restore(path, potential, state, schedule, settings) -> None:
    """Load a checkpoint into freshly built ``potential``/``state``/``schedule``."""
    with h5py.File(path, "r") as f:
        # settings added since the checkpoint was written take their defaults
        saved = {**type(settings)().to_dict(), **json.loads(f.attrs["settings"])}
        if saved != settings.to_dict():
            changed = sorted(k for k in saved if saved[k] != settings.to_dict().get(k))
            raise InputError(f"{path}: checkpoint was written with different settings "
                             f"({', '.join(changed)}); resume with the same settings")
        state.epoch = int(f.attrs["epoch"])
        for name in ("best_loss", "best_epoch", "wait", "active"):
            getattr(state, name)[...] = f[f"early_stopping/{name}"][()]
        model = f["model"]
        for z in potential.elements:
            symbol = chemical_symbols[z]
            net = potential.networks[z]
            net.set_arrays({k: model[f"networks/{symbol}/{k}"][()]
                            for k in model[f"networks/{symbol}"]})
            state.best_params[z][...] = f[f"best_params/{symbol}"][()]
            for key in state.opt_state[z]:
                target = state.opt_state[z][key]
                value = f[f"optimizer/{symbol}/{key}"][()]
                if isinstance(target, np.ndarray):
                    target[...] = value
                else:
                    state.opt_state[z][key] = value
        if "schedule" in f:
            for key in f["schedule"]:
                setattr(schedule, key, f[f"schedule/{key}"][()])
        state.history = read_history_group(f["history"])
