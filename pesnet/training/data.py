"""Training data: the inputs opened, the composition of batches, one batch read with its Jacobian.

Batches are composed once (a seeded shuffle of the training configurations cut into groups of
``batch_size``, :func:`plan_batches`); each epoch visits them in a fresh seeded order. A batch
(:func:`read_prepared_batch`) holds its standardised features, its sparse descriptor Jacobian
and its labels. :func:`prepare_batches` reads them all once and keeps them;
:mod:`pesnet.training.batch_stream` reads each again when it is needed, so memory is bounded by
the batch, not the dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from pesnet.data.split import split_from_info
from pesnet.descriptors.features_file import FeaturesFile
from pesnet.descriptors.jacobian import DescriptorJacobian
from pesnet.errors import DataFormatError, InputError
from pesnet.training.labels import Labels, read_labels
from pesnet.training.objective import PreparedBatch


def open_training_inputs(features_path, dataset_path=None):
    """(FeaturesFile, Labels, Split, dataset path) with the split the features' statistics used.

    The dataset defaults to the one recorded in the features file; its SHA-256 must match.
    """
    features = FeaturesFile(features_path)
    recorded = features.dataset_path
    path = Path(dataset_path) if dataset_path else Path(str(recorded))
    if not path.is_absolute() and dataset_path is None and not path.exists():
        path = Path(features_path).parent / path
    if not path.is_file():
        features.close()
        raise InputError(f"{features_path}: its dataset {path} is missing; pass --dataset")
    features.check_dataset(path)
    labels = read_labels(path)
    if len(labels.offsets) - 1 != len(features):
        features.close()
        raise InputError(f"{features_path}: {len(features)} configurations but {path} has "
                         f"{len(labels.offsets) - 1}")
    split_info = features.split
    split = split_from_info(split_info, len(features))
    return features, labels, split, path


class BatchPlan(NamedTuple):
    """Which configurations make each batch: ``configs[b]`` dataset configuration indices of
    batch b in ascending order (so runs of neighbours are read as one slice), ``picks[b]``
    their positions in the index list the plan was cut from (to pick bootstrap weights)."""

    configs: list
    picks: list

    def __len__(self) -> int:
        return len(self.configs)


def plan_batches(indices, batch_size: int, seed: int) -> BatchPlan:
    """Cut ``indices`` (shuffled with ``seed``) into batches of ``batch_size`` configurations.

    The composition is drawn once for the whole fit; each epoch visits the batches in a fresh
    seeded order (:func:`pesnet.training.trainer`), whether they are held or read again.
    """
    indices = np.asarray(indices)
    order = np.random.default_rng([seed, 7]).permutation(len(indices))
    picks = [np.sort(order[start : start + batch_size])
             for start in range(0, len(indices), batch_size)]
    return BatchPlan([indices[pick] for pick in picks], picks)


def read_prepared_batch(features: FeaturesFile, labels: Labels, config, weights,
                        forces: bool = True, stress: bool = False) -> PreparedBatch:
    """One batch of configurations ``config`` read from ``features`` with its labels, its
    descriptor Jacobian built (when ``forces``) and the raw derivative blocks dropped.

    ``weights`` (M, len(config)) per-member configuration weights. ``stress`` reads the strain
    derivatives and stress labels a stress term needs (without it they stay unread). A file that cannot be read (truncated
    or damaged, e.g. by a crash while it was copied, or changed under the fit) is a
    :class:`DataFormatError` naming it.
    """
    features.check_intact()
    try:
        fb = features.read_batch(config, standardise=True, derivatives=forces or stress,
                                 strain=stress)
    except (OSError, KeyError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataFormatError(
            f"{features.path}: cannot read configurations {int(config[0])}..{int(config[-1])} "
            f"({first}); the file is truncated or damaged: featurize again") from None
    energy, has_energy, f, has_f, counts = labels.subset(config)
    operator = None
    if forces and fb.derivatives is not None:
        operator = DescriptorJacobian(fb.centres, fb.neighbours, fb.derivatives, len(fb.numbers))
        # the operator holds the Jacobian now: the raw blocks need not stay in memory
        fb = fb._replace(centres=None, neighbours=None, derivatives=None, block_offsets=None)
    stress_labels = labels.stress_subset(config) if stress else (None, None, None)
    return PreparedBatch(fb, operator, energy, f, has_energy, has_f, counts, weights,
                         *stress_labels)


def batch_weights(bootstrap_weights, n_members: int, pick) -> np.ndarray:
    """(M, len(pick)) weights of a batch: the bootstrap draws of its configurations (positions
    ``pick``), or ones without bootstrap."""
    return (np.ones((n_members, len(pick))) if bootstrap_weights is None
            else bootstrap_weights[:, pick])


def prepare_batches(features: FeaturesFile, labels: Labels, indices, batch_size: int,
                    n_members: int, seed: int, bootstrap_weights=None,
                    forces: bool = True, stress: bool = False) -> list[PreparedBatch]:
    """Cut ``indices`` (shuffled with ``seed``) into batches held in memory.

    ``bootstrap_weights`` (M, len(indices)) per-member weights of each configuration in
    ``indices`` order (None: ones). ``stress`` keeps the strain derivatives and stress labels
    a stress term needs. :mod:`pesnet.training.batch_stream` reads the same batches when they
    are needed instead.
    """
    plan = plan_batches(indices, batch_size, seed)
    return [read_prepared_batch(features, labels, config,
                                batch_weights(bootstrap_weights, n_members, pick), forces, stress)
            for config, pick in zip(plan.configs, plan.picks)]
