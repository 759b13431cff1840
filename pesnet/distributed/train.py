"""Training an ensemble on a Dask cluster: groups of members on the workers, one model
assembled and calibrated by the client, identical bit for bit to a single-process fit.

How the work splits. Members never interact (each has its own initial weights, bootstrap
draws, learning-rate schedule and early stopping), so members ``start..stop-1`` train as
``train_potential(..., members=(start, stop))`` on a worker: still one vectorised batch over
the group's members. By default there is one group per worker thread. Every worker reads the
features and dataset files itself, at the same absolute path: on more than one machine they
must be on a shared filesystem (a sharded features file is read there too, with its shards
beside it; a group whose data exceed its memory budget streams them every epoch). A group
returns its parameters (a few kB per member) and its history; the client joins the groups
(:func:`~pesnet.training.trainer.assemble_members`) and fits the spread calibration on the
validation split over the whole ensemble (:func:`~pesnet.training.trainer.calibrate`), as
the single-process fit does at its end.

Fault tolerance. Each group writes a checkpoint every ``settings.checkpoint_every`` epochs
(``model.ckpt.members-A-B.h5`` in ``checkpoint_dir``, written atomically); a group whose
worker died is rescheduled by Dask (and retried ``cluster.retries`` times after an
exception) and resumes from its checkpoint to the same weights.

The merged history has every member's learning curves; a group that stopped early (all its
members retired) repeats its last values with zero learning rate for the later epochs (its
validation values are exactly what one process records then, its training values are those
of its last epoch). The ensemble-mean validation MAEs exist only for the assembled model:
they are NaN per epoch.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import numpy as np

from pesnet.distributed.cluster import as_cluster, member_groups, raise_cluster_error
from pesnet.errors import InputError
from pesnet.training.batch_stream import DEFAULT_MEMORY_BUDGET_MB
from pesnet.training.settings import TrainSettings
from pesnet.training.trainer import (
    EpochRecord,
    TrainingResult,
    assemble_members,
    calibrate,
    train_potential,
)


def potential_to_bytes(potential) -> bytes:
    """A potential as the bytes of its model file: what workers send back. Plain arrays and
    JSON (no pickle of the object, so no cache or workspace it holds has to travel)."""
    import io

    import h5py

    from pesnet.potential.io import write_model_group

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        write_model_group(f, potential)
    return buffer.getvalue()


def potential_from_bytes(data: bytes, where: str = "model from a worker"):
    """The potential of :func:`potential_to_bytes`' output (exact: arrays and JSON)."""
    import io

    import h5py

    from pesnet.potential.io import read_model_group

    with h5py.File(io.BytesIO(data), "r") as f:
        return read_model_group(f, where)


def group_checkpoint(checkpoint_dir, start: int, stop: int) -> Path:
    """The checkpoint file of members start..stop-1 in ``checkpoint_dir``."""
    return Path(checkpoint_dir) / f"model.ckpt.members-{start}-{stop}.h5"


def train_group(features_path: str, settings: dict, dataset_path: str | None,
                members: tuple[int, int], checkpoint: str | None = None,
                memory_budget_mb: float | None = DEFAULT_MEMORY_BUDGET_MB):
    """The worker's task: train members ``start..stop-1`` (resuming from ``checkpoint`` when
    it exists; batches held or streamed as ``memory_budget_mb`` allows, see
    :func:`~pesnet.training.trainer.train_potential`). Returns (model file bytes, history)."""
    for path, what in ((features_path, "features"), (dataset_path, "dataset")):
        if path is not None and not Path(path).is_file():
            import socket

            raise InputError(f"{path}: the {what} file is not visible on worker host "
                             f"{socket.gethostname()}; training on a cluster needs it at the "
                             f"same path on every worker (a shared filesystem)")
    resume = checkpoint is not None and Path(checkpoint).is_file()
    result = train_potential(features_path, TrainSettings.from_dict(settings), dataset_path,
                             checkpoint_path=checkpoint, resume=resume, members=members,
                             memory_budget_mb=memory_budget_mb)
    return potential_to_bytes(result.potential), result.history


def merge_histories(histories, ranges, n_members: int) -> list[EpochRecord]:
    """One history of all members from each group's (see the module doc)."""
    n_epochs = max((len(h) for h in histories), default=0)
    merged = []
    per_member = ("train_loss", "train_energy_rmse", "train_force_rmse", "val_loss",
                  "val_energy_rmse", "val_force_rmse", "learning_rate", "active")
    for epoch in range(n_epochs):
        values = {name: np.zeros(n_members, bool if name == "active" else float)
                  for name in per_member}
        seconds = 0.0
        for history, (start, stop) in zip(histories, ranges):
            if not history:
                continue
            record = history[min(epoch, len(history) - 1)]
            for name in per_member:
                values[name][start:stop] = getattr(record, name)
            if epoch >= len(history):  # this group had stopped: retired members
                values["learning_rate"][start:stop] = 0.0
                values["active"][start:stop] = False
            else:
                seconds = max(seconds, float(record.seconds))
        merged.append(EpochRecord(epoch=epoch, val_energy_mae_ensemble=math.nan,
                                  val_force_mae_ensemble=math.nan, seconds=seconds, **values))
    return merged


def train_on_cluster(cluster, features_path, settings: TrainSettings | None = None,
                     dataset_path=None, groups: int | None = None, checkpoint_dir=None,
                     resume: bool = False, progress: bool = False,
                     memory_budget_mb: float | None = DEFAULT_MEMORY_BUDGET_MB) -> TrainingResult:
    """Fit the ensemble of ``settings`` on ``cluster`` in ``groups`` member groups (default:
    one per worker thread, at most one per member); see the module doc.

    With ``checkpoint_dir``, groups checkpoint there; ``resume=False`` first deletes the
    group checkpoints left by an earlier fit, ``resume=True`` continues from them.
    ``memory_budget_mb`` is each group's (above it a group streams its batches from the
    features file). Returns the assembled, calibrated potential with the merged history.
    """
    cluster = as_cluster(cluster)
    settings = settings or TrainSettings()
    features_path = Path(features_path).resolve()
    dataset = Path(dataset_path).resolve() if dataset_path is not None else None
    n_groups = groups or cluster.n_threads()
    ranges = member_groups(settings.n_members, n_groups)
    checkpoints = [None] * len(ranges)
    if checkpoint_dir is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        if not resume:
            for old in Path(checkpoint_dir).glob("model.ckpt.members-*.h5"):
                old.unlink()
        checkpoints = [str(group_checkpoint(Path(checkpoint_dir).resolve(), a, b))
                       for a, b in ranges]
    client = cluster.client
    token = uuid.uuid4().hex[:12]
    futures = [client.submit(train_group, str(features_path), settings.to_dict(),
                             None if dataset is None else str(dataset), members, checkpoint,
                             memory_budget_mb,
                             key=f"pesnet-train-{token}-members-{members[0]}-{members[1]}",
                             retries=cluster.retries, pure=False)
               for members, checkpoint in zip(ranges, checkpoints)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(disable=None, total=len(futures), desc=f"train ({len(ranges)} member groups)",
                   unit=" groups", leave=False)
    done = {}
    try:
        for future in cluster.as_completed(futures):
            try:
                done[future.key] = future.result()  # a group's error stops the fit at once
            except Exception as error:
                raise_cluster_error("training", error)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        client.cancel([f for f in futures if not f.done()])
    results = [done[future.key] for future in futures]
    potential = assemble_members([potential_from_bytes(p, f"members {a}:{b}")
                                  for (p, _), (a, b) in zip(results, ranges)])
    calibrate(potential, features_path, settings, dataset)
    history = merge_histories([h for _, h in results], ranges, settings.n_members)
    return TrainingResult(potential, history, *_split_and_dataset(features_path, dataset))


def _split_and_dataset(features_path: Path, dataset: Path | None):
    """The split the features were made with, and the dataset path training used."""
    from pesnet.data.split import split_from_info
    from pesnet.descriptors.features_file import FeaturesFile

    with FeaturesFile(features_path) as features:
        info, n = features.split, len(features)
        recorded = Path(str(features.dataset_path))
    split = split_from_info(info, n)
    if dataset is None:
        dataset = recorded if recorded.is_absolute() or recorded.exists() \
            else features_path.parent / recorded
    return split, dataset
