"""Featurization on a Dask cluster: chunks of configurations on the workers, one features file
written by the client, identical bit for bit to :func:`pesnet.descriptors.featurize`.

How the work splits. The client reads the dataset in order (the same chunks and passes of at
most 512 atoms as one machine), groups consecutive passes into tasks of about
``task_configs`` configurations, and submits them with their positions, numbers and cells
(~1.5 kB per 32-atom configuration; the workers need no access to the dataset). Each worker
runs :func:`~pesnet.descriptors.featurize.featurize_batch` on every pass of its task and
returns the arrays (values, sparse derivative blocks, strain: ~270 kB per 32-atom Cu
configuration at 21 features in float32). The client takes the results back in submission
order and hands them to the single-machine writer (:func:`featurize`'s ``map_batches``
hook), so datasets, running statistics and attributes are made by the same code in the same
order: the file is the same file.

Returned arrays or shards. This mode needs nothing shared (workers get positions, return
arrays) and writes a plain, byte-identical file, but every byte passes through the client's
one writer: ~1–1.5 ms of client CPU per configuration, so one client absorbs the output of a
few worker cores (``benchmarks/scaling.py``; README, "Scaling out with Dask"). Past that,
:mod:`.shards` has every worker write its own part of the features to a shared filesystem and
the client write only an index.

Fault tolerance. Each task is retried ``cluster.retries`` times after an exception, and the
scheduler reschedules the tasks of a worker that dies. A result reaches the client only when
its task finished, and is checked against its configurations (atom and block counts) before
it is written, so a chunk from a dead worker is never half-merged. At most ``max_in_flight``
tasks are outstanding, which bounds the client's memory.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections import deque

import numpy as np

from pesnet.descriptors.featurize import FeaturizeSummary, featurize, featurize_batch
from pesnet.distributed.cluster import as_cluster, raise_cluster_error
from pesnet.errors import InputError

#: Configurations per task (a task holds whole passes, so it may hold a few more).
TASK_CONFIGS = 64


@functools.lru_cache(maxsize=8)
def task_descriptor(params_json: str):
    """The descriptor of ``descriptor.to_json()``, built once per worker process (cached)."""
    from pesnet.descriptors.registry import descriptor_from_params

    return descriptor_from_params(json.loads(params_json))


def featurize_parts(params_json: str, parts, derivatives: bool, source: str, dtype) -> list:
    """The worker's task: ``featurize_batch`` of every ConfigBatch in ``parts``, in order.

    ``params_json`` is ``descriptor.to_json()`` (the descriptor is rebuilt once per worker
    process and cached, so tasks carry a few hundred bytes of parameters, not an object).
    """
    descriptor = task_descriptor(params_json)
    return [featurize_batch(descriptor, part, derivatives, source, np.dtype(dtype))
            for part in parts]


def _tasks(parts, task_configs: int):
    """Group consecutive parts into lists holding at least ``task_configs`` configurations."""
    group, n = [], 0
    for part in parts:
        group.append(part)
        n += len(part)
        if n >= task_configs:
            yield group
            group, n = [], 0
    if group:
        yield group


def _check_result(part, chunk, derivatives: bool) -> None:
    """A returned chunk matches its configurations in every count (else it is not written)."""
    n_atoms = int(part.offsets[-1])
    ok = len(chunk.values) == n_atoms and len(chunk.periodic) == len(part)
    if derivatives:
        n_blocks = int(np.sum(chunk.block_counts)) if chunk.block_counts is not None else -1
        ok = ok and chunk.block_counts is not None and len(chunk.block_counts) == len(part) \
            and len(chunk.centre) == len(chunk.neighbour) == len(chunk.blocks) == n_blocks \
            and len(chunk.strain) == n_atoms
    if not ok:
        first = int(part.indices[0]) if len(part) else 0
        raise InputError(f"a worker returned incomplete features for configurations "
                         f"{first}..{first + len(part) - 1}; nothing was written")


class ClusterMap:
    """A ``map_batches`` for :func:`~pesnet.descriptors.featurize.featurize` that computes the
    parts on a cluster (see the module doc). ``task(params_json, parts, derivatives, source,
    dtype) -> [ChunkFeatures]`` is what the workers run (default :func:`featurize_parts`)."""

    def __init__(self, cluster, task_configs: int = TASK_CONFIGS, max_in_flight=None,
                 task=featurize_parts):
        self.cluster = as_cluster(cluster)
        self.task_configs = max(1, int(task_configs))
        self.max_in_flight = max_in_flight
        self.task = task
        self.n_tasks = 0

    def __call__(self, descriptor, parts, derivatives, source, dtype):
        client = self.cluster.client
        limit = self.max_in_flight or 2 * self.cluster.n_threads() + 2
        params, token = descriptor.to_json(), uuid.uuid4().hex[:12]
        window = deque()
        try:
            for k, group in enumerate(_tasks(parts, self.task_configs)):
                future = client.submit(self.task, params, group, bool(derivatives), str(source),
                                       np.dtype(dtype).name, key=f"pesnet-featurize-{token}-{k}",
                                       retries=self.cluster.retries, pure=False)
                window.append((group, future))
                self.n_tasks += 1
                while len(window) >= limit:
                    yield from self._collect(window.popleft(), derivatives)
            while window:
                yield from self._collect(window.popleft(), derivatives)
        finally:
            if window:
                client.cancel([future for _, future in window])

    @staticmethod
    def _collect(item, derivatives):
        group, future = item
        try:
            chunks = future.result()
        except Exception as error:
            raise_cluster_error("featurization", error)
        del future
        if len(chunks) != len(group):
            raise InputError(f"a featurization task returned {len(chunks)} results for "
                             f"{len(group)} parts; nothing was written")
        for part, chunk in zip(group, chunks):
            _check_result(part, chunk, derivatives)
            yield part, chunk


def featurize_on_cluster(cluster, dataset, output, descriptor=None, derivatives: bool = True,
                         split=(0.8, 0.1, 0.1), seed: int = 0, derivative_dtype="float32",
                         chunk_size: int = 64, progress: bool = False,
                         task_configs: int = TASK_CONFIGS, max_in_flight: int | None = None,
                         task=featurize_parts) -> FeaturizeSummary:
    """:func:`~pesnet.descriptors.featurize.featurize` with the descriptor computed on
    ``cluster`` (a :class:`~pesnet.distributed.cluster.Cluster` or a ``distributed.Client``); same
    arguments, same file. ``task_configs``: configurations per task; ``max_in_flight``: tasks
    outstanding at once (default twice the worker threads, plus two)."""
    mapper = ClusterMap(cluster, task_configs, max_in_flight, task)
    return featurize(dataset, output, descriptor, derivatives=derivatives, split=split,
                     seed=seed, derivative_dtype=derivative_dtype, chunk_size=chunk_size,
                     progress=progress, map_batches=mapper)
