"""Featurization on a Dask cluster with every worker writing its own shard: no single writer.

How the work splits. The client reads the dataset's atom offsets (8 bytes per configuration),
cuts the configurations into contiguous ranges that start at multiples of ``chunk_size``
(:func:`shard_ranges`; by default about four per worker thread, at most
:data:`SHARD_CONFIGS` each) and submits one task per range with the range's training-split
flags. Each worker reads its configurations from the dataset itself and writes
``features.shards/<token>-<k>.h5`` beside the output
(:func:`~pesnet.descriptors.sharded_features.write_shard`: atomically, the single writer's
code and passes, so the arrays are the single file's bit for bit), and returns a summary of a
few kB. The client then writes the small top-level ``features.h5``
(:func:`~pesnet.descriptors.sharded_features.write_index`: virtual datasets over the shards,
rebased offsets, statistics merged in shard order) and deletes the shards of the file it
replaced. Its work per configuration is a few index entries: it never touches the arrays.

Where the files must be. The dataset and the output's directory at the same absolute path on
every worker and on the client: a shared filesystem (a worker that cannot see them fails its
task with a one-line error naming its host). Training then reads ``features.h5`` from there.

Faults. A task that raised is retried ``cluster.retries`` times; a dead worker's task is
rescheduled by the scheduler and writes its shard again (a shard only ever appears complete,
under its final name). If a task fails for good, the client cancels the others, deletes the
shards of this run and writes no top-level file: an earlier ``features.h5`` and its shards stay
as they were. (A task already running when it was cancelled may still finish its shard; no
top file names it, and the next successful run deletes it.)
"""

from __future__ import annotations

import contextlib
import math
import socket
import time
import uuid
from pathlib import Path

import numpy as np

from pesnet.data import Dataset
from pesnet.descriptors.defaults import default_acsf
from pesnet.descriptors.featurize import FeaturizeSummary, derivative_storage, split_parts
from pesnet.descriptors.shard_index import remove_stale_shards, shard_directory, shard_name
from pesnet.descriptors.sharded_features import write_index, write_shard
from pesnet.distributed.cluster import as_cluster, raise_cluster_error
from pesnet.distributed.featurize import task_descriptor
from pesnet.errors import InputError

#: Most configurations in one shard (~290 MB of Cu features at 32 atoms and 21 features): a
#: task short enough (~4 s) that a lost worker costs little, shards few enough that a virtual
#: dataset maps a 10⁷-atom set from ~300 of them.
SHARD_CONFIGS = 1024
#: Shards per worker thread when the dataset is small (some balance between fast and slow
#: workers).
SHARDS_PER_THREAD = 4


def shard_ranges(n: int, n_threads: int, chunk_size: int = 64,
                 shard_configs: int | None = None) -> list[tuple[int, int]]:
    """Contiguous ranges (first, stop) covering configurations 0..n−1, each starting at a
    multiple of ``chunk_size``: ``shard_configs`` long (rounded up to a multiple of
    ``chunk_size``), or by default ⌈n / (4 threads)⌉ clipped to ``chunk_size`` ..
    :data:`SHARD_CONFIGS`."""
    if shard_configs is None:
        shard_configs = min(SHARD_CONFIGS, math.ceil(n / (SHARDS_PER_THREAD * max(1, n_threads))))
    size = max(1, math.ceil(max(1, int(shard_configs)) / chunk_size)) * chunk_size
    return [(first, min(n, first + size)) for first in range(0, n, size)]


def shard_task(dataset: str, directory: str, name: str, params_json: str, first: int,
               stop: int, train, derivatives: bool, dtype: str, chunk_size: int, source: str):
    """The worker's task: configurations ``first:stop`` of ``dataset`` into the shard
    ``directory/name`` (:func:`~pesnet.descriptors.sharded_features.write_shard`)."""
    for path, what in ((dataset, "dataset"), (directory, "shard directory")):
        if not Path(path).exists():
            raise InputError(f"{path}: the {what} is not visible on worker host "
                             f"{socket.gethostname()}; sharded featurization needs the dataset "
                             f"and the output directory at the same path on every worker (a "
                             f"shared filesystem)")
    directory = Path(directory)
    return write_shard(dataset, directory / name, f"{directory.name}/{name}",
                       task_descriptor(params_json), first, stop, train, derivatives,
                       np.dtype(dtype), chunk_size, source)


def featurize_sharded(cluster, dataset, output, descriptor=None, derivatives: bool = True,
                      split=(0.8, 0.1, 0.1), seed: int = 0, derivative_dtype="float32",
                      chunk_size: int = 64, progress: bool = False,
                      shard_configs: int | None = None, task=shard_task) -> FeaturizeSummary:
    """:func:`~pesnet.descriptors.featurize.featurize`'s features of ``dataset`` in
    ``output``, computed and written as shards by the workers of ``cluster`` (see the module
    doc; same arguments, the same arrays bit for bit, statistics equal to rounding).
    ``shard_configs``: configurations per shard (default: :func:`shard_ranges`); ``task``:
    what the workers run (default :func:`shard_task`). ``file_bytes`` of the summary counts
    the top file and its shards."""
    started = time.perf_counter()
    cluster = as_cluster(cluster)
    dtype = derivative_storage(derivative_dtype)
    if chunk_size < 1:
        raise InputError(f"chunk_size must be at least 1, got {chunk_size}")
    given, dataset, output = Path(dataset), Path(dataset).resolve(), Path(output).resolve()
    if output == dataset:
        raise InputError(f"{output}: the features file must not overwrite its dataset")
    with Dataset(dataset) as ds:
        n, offsets = len(ds), ds.offsets.copy()
        if descriptor is None:
            descriptor = default_acsf(ds.elements or [1], 6.0)
    parts, split_info = split_parts(split, seed, n)
    train = np.zeros(n, bool)
    train[parts.train] = True
    ranges = shard_ranges(n, cluster.n_threads(), chunk_size, shard_configs)
    directory = shard_directory(output)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{directory}: cannot write shards here "
                         f"({error.strerror or error})") from None
    token = uuid.uuid4().hex[:12]
    names = [shard_name(token, k) for k in range(len(ranges))]
    try:
        summaries = _run(cluster, task, ranges, names, train, str(dataset), str(directory),
                         descriptor.to_json(), derivatives, dtype, chunk_size, str(given),
                         progress)
        n_blocks = write_index(output, given, descriptor, summaries, offsets, split_info,
                               int(train.sum()), derivatives)
    except BaseException:
        for name in names:  # this run's finished shards: no top file names them
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
        raise
    remove_stale_shards(output, keep=names)
    return FeaturizeSummary(output, n, int(offsets[-1]), descriptor.n_features, n_blocks,
                            output.stat().st_size + sum(s.n_bytes for s in summaries),
                            time.perf_counter() - started)


def _run(cluster, task, ranges, names, train, dataset, directory, params, derivatives, dtype,
         chunk_size, source, progress):
    """Submit a task per range; the summaries in range order once all finished (the first
    failure cancels the rest and is raised as one line)."""
    client, token = cluster.client, names[0][:12] if names else "none"
    futures = [client.submit(task, dataset, directory, name, params, first, stop,
                             train[first:stop], bool(derivatives), dtype.name, chunk_size,
                             source, key=f"pesnet-shard-{token}-{k}",
                             retries=cluster.retries, pure=False)
               for k, ((first, stop), name) in enumerate(zip(ranges, names))]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(disable=None, total=int(ranges[-1][1]) if ranges else 0, unit=" configs",
                   desc=f"featurize ({len(ranges)} shards)", leave=False)
    done = {}
    try:
        for future in cluster.as_completed(futures):
            try:
                done[future.key] = future.result()
            except Exception as error:
                raise_cluster_error("featurization", error)
            if bar is not None:
                bar.update(done[future.key].n_configs)
    finally:
        if bar is not None:
            bar.close()
        client.cancel([f for f in futures if not f.done()])
    return [done[future.key] for future in futures]
