"""The Dask executor: a pipeline's heavy steps (featurization, training) on a cluster's
workers, with the files and models one process would make, bit for bit.

:class:`DaskExecutor` has the interface of the in-process executor
(:class:`pesnet.pipeline.executors.InProcess`): ``featurize``, ``train``, ``describe``,
``close``. The cluster is started (or connected to) when a step first needs it. It is handed
plain arguments and imports nothing of the workflows that use it.
"""

from __future__ import annotations

from pathlib import Path

from pesnet.distributed.cluster import DEFAULT_RETRIES, open_cluster
from pesnet.distributed.featurize import featurize_on_cluster
from pesnet.distributed.shards import featurize_sharded
from pesnet.distributed.train import train_on_cluster


class DaskExecutor:
    """Work on the cluster at ``scheduler`` (or ``"local"``: ``workers`` processes of
    ``threads_per_worker`` threads), tasks retried ``retries`` times, the ensemble trained in
    ``member_groups`` groups (default one per worker thread). ``cluster``: an open
    :class:`~pesnet.distributed.cluster.Cluster` to use instead (left open by :meth:`close`).
    ``shards``: the workers write the features as shards (:mod:`.shards`) instead of
    returning them to the client's writer (:mod:`.featurize`).
    """

    in_process = False  # learning curves arrive after the fit, not epoch by epoch

    def __init__(self, scheduler: str = "local", workers: int | None = None,
                 threads_per_worker: int = 1, retries: int = DEFAULT_RETRIES,
                 member_groups: int | None = None, cluster=None, shards: bool = False):
        self.options = (scheduler, workers, threads_per_worker, retries)
        self.member_groups = member_groups
        self.shards = bool(shards)
        self._cluster, self._owned = cluster, cluster is None

    @property
    def cluster(self):
        """The cluster, started or connected to on first use."""
        if self._cluster is None:
            self._cluster = open_cluster(*self.options)
        return self._cluster

    def featurize(self, dataset, output, descriptor, **options):
        """:func:`~pesnet.descriptors.featurize.featurize`'s features, computed on the
        workers (and written there as shards with ``shards``)."""
        if self.shards:
            return featurize_sharded(self.cluster, dataset, output, descriptor, **options)
        return featurize_on_cluster(self.cluster, dataset, output, descriptor, **options)

    def train(self, features, settings, dataset, checkpoint_dir, resume: bool,
              callbacks=(), progress: bool = False):
        """The ensemble of ``settings`` in member groups on the workers, each checkpointing
        in ``checkpoint_dir`` (continued with ``resume``; removed once the fit is done).
        ``callbacks`` are not called: the groups' curves exist only when all are done."""
        result = train_on_cluster(self.cluster, features, settings, dataset_path=dataset,
                                  groups=self.member_groups, checkpoint_dir=checkpoint_dir,
                                  resume=resume, progress=progress)
        for done in Path(checkpoint_dir).glob("model.ckpt.members-*.h5"):
            done.unlink()
        return result

    def describe(self) -> str:
        return self.cluster.describe()

    def close(self) -> None:
        """Close the cluster if this executor started it."""
        if self._owned and self._cluster is not None:
            self._cluster.close()
            self._cluster = None
