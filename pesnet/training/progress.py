"""A live progress display of training (a callback): epoch, errors, learning rate."""

from __future__ import annotations

import numpy as np


class ProgressBar:
    """Shows a tqdm bar over epochs with the validation errors of the ensemble mean
    (meV/atom, meV/Å), the members' mean training force RMSE, the learning rate and how many
    members are still training."""

    def __init__(self, total_epochs: int, stream=None):
        from tqdm import tqdm

        self.bar = tqdm(disable=None, total=total_epochs, unit=" epoch", desc="train", file=stream,
                        dynamic_ncols=True)

    def on_train_begin(self, start_epoch=0, **info):
        self.bar.update(start_epoch)

    def on_epoch_end(self, record):
        self.bar.set_postfix_str(
            f"val E {1e3 * record.val_energy_mae_ensemble:.2f} meV/at, "
            f"val F {1e3 * record.val_force_mae_ensemble:.1f} meV/Å, "
            f"train F {1e3 * float(np.mean(record.train_force_rmse)):.1f}, "
            f"lr {float(np.max(record.learning_rate)):.2g}, "
            f"active {int(record.active.sum())}/{len(record.active)}",
            refresh=False,
        )
        self.bar.update(1)

    def on_train_end(self, potential, history):
        self.bar.close()
