"""Training batches held in memory or read from the features file when they are needed.

A fit visits the same batches every epoch (:func:`~pesnet.training.data.plan_batches`), in a
fresh order each time. Two sources give them, with the same interface and the same numbers:

* :class:`HeldBatches` reads every batch once and keeps it (features, sparse Jacobian,
  labels): the fastest, but its memory grows with the dataset (~20 KB per atom for Cu at
  5 Å with 21 features: 0.64 GB peak RSS for 720 configurations).
* :class:`StreamedBatches` keeps only the plan and reads each batch again when a pass needs
  it, on a background thread that stays ``read_ahead`` batches ahead of the training step
  (a bounded queue), building its Jacobian there too. Peak memory is bounded by a few batches.

A batch is the same whichever source gives it (same configurations, read in ascending order,
same arithmetic), so a fit is bit for bit the same (``tests/test_training_stream.py``). The
price is time: on 1,000 Cu configurations an epoch took 2.6 s streamed vs 0.7 s held, on a
2-core machine busy with other jobs, where the reader thread has no idle core to hide in
(README, "Data larger than memory").

Reading order and the disk: a batch's configurations are random positions in the file (read
in ascending order, each run of neighbours as one slice). On 10,000 Cu configurations a batch
of four random ones took ~1.6× four neighbours (7–10 ms vs ~6 ms, page cache warm;
``benchmarks/scale.py`` measures it): each configuration's derivative blocks span ~4 chunks of
64 KB, and its values and pair indices sit in gzip chunks of ~12–16 configurations that are
decompressed whole. A chunk-shuffled order (batches drawn from neighbouring configurations)
would read faster but change the batches, hence the numbers; chunks aligned with
configurations in the features file would not, and are the next step.

The trainer holds the batches when their estimated size (:func:`held_bytes`,
:func:`fits_in_memory`) fits its memory budget, and streams them otherwise
(:func:`batch_source`).
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from pesnet.descriptors.features_file import FeaturesFile
from pesnet.training.data import BatchPlan, batch_weights, plan_batches, read_prepared_batch
from pesnet.training.labels import Labels

#: held batches up to this estimated size (MB) stay in memory; larger sets are streamed. The
#: shipped data sets (≤ 720 Cu configurations, ~0.45 GB held) stay below it.
DEFAULT_MEMORY_BUDGET_MB = 1024.0
#: batches the reader thread prepares ahead of the training step
READ_AHEAD = 4


def held_bytes(features: FeaturesFile, indices, forces: bool = True,
               stress: bool = False) -> int:
    """Estimated bytes of the batches of configurations ``indices`` held in memory.

    Per derivative block (3F non-zeros of the CSR Jacobian): 8-byte values and 4-byte column
    indices; per atom: standardised values (8F), the CSR row pointers (4F), float64 strain
    derivatives when the stress is trained (72F) and ~64 bytes of labels and index arrays.
    """
    f = features.n_features
    atoms = int(features.atom_counts(indices).sum())
    blocks = int(features.block_counts(indices).sum()) if forces else 0
    per_atom = 8 * f + 64 + (4 * f if forces else 0) + (72 * f if stress else 0)
    return blocks * 36 * f + atoms * per_atom


class HeldBatches:
    """Batches read once and kept: ``batches`` a list of
    :class:`~pesnet.training.objective.PreparedBatch`."""

    streamed = False

    def __init__(self, batches):
        self.batches = list(batches)

    def __len__(self) -> int:
        return len(self.batches)

    def iterate(self, order=None):
        """Yield the batches in ``order`` (indices; default 0..n-1)."""
        for k in range(len(self.batches)) if order is None else order:
            yield self.batches[k]

    def __iter__(self):
        return self.iterate()

    def close(self) -> None:
        self.batches = []


class StreamedBatches:
    """Batches of ``plan`` read from the features file at ``features_path`` when a pass needs
    them, ``read_ahead`` batches ahead on a background thread (0: read in the caller's thread).

    ``labels`` of the whole dataset, ``bootstrap_weights`` (M, n) of the plan's index list or
    None, ``forces``/``stress`` as :func:`~pesnet.training.data.read_prepared_batch`. The file
    stays open until :meth:`close`.
    """

    streamed = True

    def __init__(self, features_path, labels: Labels, plan: BatchPlan, n_members: int,
                 bootstrap_weights=None, forces: bool = True, stress: bool = False,
                 read_ahead: int = READ_AHEAD):
        self.features = FeaturesFile(features_path)
        self.labels, self.plan = labels, plan
        self.n_members, self.bootstrap = n_members, bootstrap_weights
        self.forces, self.stress = forces, stress
        self.read_ahead = int(read_ahead)

    def __len__(self) -> int:
        return len(self.plan)

    def read(self, k: int):
        """Batch ``k`` of the plan, read now."""
        config, pick = self.plan.configs[k], self.plan.picks[k]
        return read_prepared_batch(self.features, self.labels, config,
                                   batch_weights(self.bootstrap, self.n_members, pick),
                                   self.forces, self.stress)

    def iterate(self, order=None):
        """Yield the batches in ``order`` (indices; default 0..n-1), each read when needed."""
        order = range(len(self)) if order is None else order
        if self.read_ahead <= 0:
            for k in order:
                yield self.read(k)
            return
        ready = queue.Queue(maxsize=self.read_ahead)
        stop = threading.Event()

        def reader():
            for k in order:
                try:
                    item = (self.read(k), None)
                except BaseException as error:  # handed to the consumer, raised there
                    item = (None, error)
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set() or item[1] is not None:
                    return

        thread = threading.Thread(target=reader, name="pesnet-batch-reader", daemon=True)
        thread.start()
        try:
            for _ in range(len(order)):
                batch, error = ready.get()
                if error is not None:
                    raise error
                yield batch
        finally:
            stop.set()
            thread.join()

    def __iter__(self):
        return self.iterate()

    def close(self) -> None:
        self.features.close()


def fits_in_memory(features: FeaturesFile, index_sets, forces: bool = True,
                   stress: bool = False,
                   memory_budget_mb: float | None = DEFAULT_MEMORY_BUDGET_MB) -> bool:
    """Whether the held batches of all ``index_sets`` together (e.g. training and validation)
    fit ``memory_budget_mb`` (:func:`held_bytes`; None: no limit)."""
    if memory_budget_mb is None:
        return True
    total = sum(held_bytes(features, np.asarray(ix), forces, stress) for ix in index_sets)
    return total <= float(memory_budget_mb) * 2**20


def batch_source(features: FeaturesFile, labels: Labels, indices, batch_size: int,
                 n_members: int, seed: int, bootstrap_weights=None, forces: bool = True,
                 stress: bool = False, stream: bool = False):
    """The batches of ``indices`` (composed as :func:`~pesnet.training.data.plan_batches`):
    read from the open ``features`` now and held (:class:`HeldBatches`), or with ``stream``
    read again from its file whenever a pass needs them (:class:`StreamedBatches`)."""
    plan = plan_batches(indices, batch_size, seed)
    if stream:
        source = StreamedBatches(features.path, labels, plan, n_members, bootstrap_weights,
                                 forces, stress)
        # its own file standardises as the caller's does (the same ignored features)
        source.features.min_feature_std = features.min_feature_std
        source.features.scale_floor = features.scale_floor
        return source
    return HeldBatches(
        read_prepared_batch(features, labels, config,
                            batch_weights(bootstrap_weights, n_members, pick), forces, stress)
        for config, pick in zip(plan.configs, plan.picks))
