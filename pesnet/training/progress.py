"""A live progress display of training (a callback): epoch, errors, learning rate."""

from __future__ import annotations

import numpy as np


def progress_text(record) -> str:
    """One epoch's summary for the progress line: like compared with like, units on both.

    ``F RMSE train 99.5 val 80.1 meV/Å`` is the members' mean force RMSE on each split (the
    same metric, so a gap is over-fitting); ``ensemble val MAE`` the error of the ensemble
    mean on the validation split (what the final table reports) for energies (meV/atom) and
    forces (meV/Å); then the largest learning rate and how many members still train.
    """
    return (f"F RMSE train {1e3 * float(np.mean(record.train_force_rmse)):.1f} "
            f"val {1e3 * float(np.mean(record.val_force_rmse)):.1f} meV/Å | "
            f"ensemble val MAE E {1e3 * record.val_energy_mae_ensemble:.2f} meV/atom "
            f"F {1e3 * record.val_force_mae_ensemble:.1f} meV/Å | "
            f"lr {float(np.max(record.learning_rate)):.2g} | "
            f"active {int(record.active.sum())}/{len(record.active)}")


class ProgressBar:
    """Shows a tqdm bar over epochs with :func:`progress_text` (on a terminal only)."""

    def __init__(self, total_epochs: int, stream=None):
        from tqdm import tqdm

        self.bar = tqdm(disable=None, total=total_epochs, unit=" epoch", desc="train", file=stream,
                        dynamic_ncols=True)

    def on_train_begin(self, start_epoch=0, **info):
        self.bar.update(start_epoch)

    def on_epoch_end(self, record):
        self.bar.set_postfix_str(progress_text(record), refresh=False)
        self.bar.update(1)

    def on_train_end(self, potential, history):
        self.bar.close()
