"""Where a pipeline's heavy work runs: in this process, or on a Dask cluster.

An executor has four methods: ``featurize(dataset, output, descriptor, **options)`` (the
arguments of :func:`pesnet.descriptors.featurize.featurize`), ``train(features, settings,
dataset, checkpoint_dir, resume, callbacks, progress)`` (a
:class:`~pesnet.training.trainer.TrainingResult`), ``describe()`` and ``close()``; its
``in_process`` says whether training callbacks see every epoch as it ends. :class:`InProcess`
is this process; :class:`pesnet.distributed.executor.DaskExecutor` a cluster. Both write the
same files, bit for bit, so the choice never makes a step stale.
"""

from __future__ import annotations

from pathlib import Path

#: The in-process fit's checkpoint, in the checkpoint directory.
CHECKPOINT = "model.ckpt.h5"


class InProcess:
    """Featurize and train here, vectorised, with the training callbacks called per epoch."""

    in_process = True

    def featurize(self, dataset, output, descriptor, **options):
        from pesnet.descriptors.featurize import featurize

        return featurize(dataset, output, descriptor, **options)

    def train(self, features, settings, dataset, checkpoint_dir, resume: bool,
              callbacks=(), progress: bool = False):
        """The ensemble of ``settings``, checkpointing to ``checkpoint_dir/model.ckpt.h5``
        (continued from it with ``resume`` when it exists). ``progress`` is for the callbacks
        to show (a :class:`~pesnet.training.progress.ProgressBar` among them)."""
        from pesnet.training.trainer import train_potential

        checkpoint = Path(checkpoint_dir) / CHECKPOINT
        return train_potential(features, settings, dataset_path=dataset,
                               callbacks=list(callbacks), checkpoint_path=checkpoint,
                               resume=resume and checkpoint.is_file())

    def describe(self) -> str:
        return "this process"

    def close(self) -> None:
        pass


def executor_for(compute=None):
    """The executor of a spec's ``[compute]`` table (a
    :class:`~pesnet.pipeline.spec.ComputeSpec`; None: :class:`InProcess`)."""
    if compute is None:
        return InProcess()
    from pesnet.distributed.executor import DaskExecutor

    return DaskExecutor(compute.scheduler, compute.workers, compute.threads_per_worker,
                        compute.retries, compute.member_groups, shards=compute.shards)
