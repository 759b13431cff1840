"""Scaling out on Dask: featurization throughput in-process and on 1 and 2 local workers, and
the costs that limit it on many machines.

    python benchmarks/scaling.py [--quick] [--rounds N]

Data: the shipped Cu EMT set (``data/cu_emt.extxyz``: 720 configurations, 23,340 atoms; the
first 240 with ``--quick``), pesnet's default ACSF at 5 Å (the quick start's descriptor), float32
derivatives. Rows, each run once per round with the rounds interleaved (the machine is shared,
so a mode is never favoured by a quiet minute) and reported as the best round:

* ``in-process``: :func:`pesnet.descriptors.featurize` (the single-machine path);
* ``dask, N workers``: :func:`pesnet.distributed.featurize.featurize_on_cluster` on a
  ``LocalCluster`` of N one-thread worker processes; workers return their arrays to the client,
  which writes the file (the design pesnet uses);
* ``dask, 2 workers, shards``: the alternative design, measured for comparison: each worker
  writes its chunk to a shard file (``np.savez``, local disk: the best case of a shared
  filesystem) and returns the path; the client reads the shard and writes the file.

Every cluster file is checked to be byte-identical to the in-process one. Below the table,
the figures a 100-machine estimate needs: bytes returned per configuration, the worker's
compute per configuration (one thread), and the client's cost per configuration (its CPU
time during a 2-worker run, and the merge alone: writing precomputed chunks). The CPU column
adds the client's and the workers' CPU time per configuration: less sensitive to the other
jobs on the machine than wall time, it shows what moving the data costs. The last line is
JSON with ``featurize_speedup_2_workers`` (2 workers vs in-process).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "cu_emt.extxyz"


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- the shard variant (tasks run in the workers; this module is pickled by value) ---------
def _shard_task(directory, params, parts, derivatives, source, dtype):
    from pesnet.distributed.featurize import featurize_parts

    chunks = featurize_parts(params, parts, derivatives, source, dtype)
    arrays = {f"{k}.{name}": value for k, chunk in enumerate(chunks)
              for name, value in chunk._asdict().items() if value is not None}
    path = Path(directory) / f"{uuid.uuid4().hex}.npz"
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # a shard appears whole or not at all
    return str(path), len(chunks)


def _compute_only(params, parts, derivatives, source, dtype):
    """The featurization task without its results (a control: the machine's parallelism)."""
    from pesnet.distributed.featurize import featurize_parts

    return [sum(v.nbytes for v in c if v is not None)
            for c in featurize_parts(params, parts, derivatives, source, dtype)]


def _compute_only_map(cluster):
    from pesnet.distributed.featurize import ClusterMap

    class ComputeOnly(ClusterMap):
        @staticmethod
        def _collect(item, derivatives):
            group, future = item
            future.result()
            return iter(())

    return ComputeOnly(cluster, task=_compute_only)


def _shard_map(cluster, directory):
    from pesnet.descriptors.featurize import ChunkFeatures
    from pesnet.distributed.featurize import ClusterMap

    class ShardMap(ClusterMap):
        @staticmethod
        def _collect(item, derivatives):
            group, future = item
            path, n = future.result()
            with np.load(path) as shard:
                chunks = [ChunkFeatures(**{name: shard[f"{k}.{name}"]
                                           if f"{k}.{name}" in shard.files else None
                                           for name in ChunkFeatures._fields})
                          for k in range(n)]
            os.unlink(path)
            yield from zip(group, chunks)

    import functools

    return ShardMap(cluster, task=functools.partial(_shard_task, str(directory)))


def _workers_cpu(cluster) -> float:
    """CPU seconds the cluster's worker processes have used so far (0 without a cluster)."""
    if cluster is None:
        return 0.0
    return sum(cluster.client.run(time.process_time).values())


class _Replay:
    """A ``map_batches`` yielding precomputed chunks: featurize() then only merges."""

    def __init__(self, chunks):
        self.chunks = chunks

    def __call__(self, acsf, parts, derivatives, source, dtype):
        for part, chunk in zip(parts, self.chunks):
            yield part, chunk


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="240 configurations, 2 rounds")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 2)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 3)

    from threadpoolctl import threadpool_limits

    from pesnet.data import Dataset
    from pesnet.data.ingest import ingest
    from pesnet.descriptors.defaults import default_acsf
    from pesnet.descriptors.features_writer import passes_of
    from pesnet.descriptors.featurize import featurize, featurize_batch
    from pesnet.distributed.cluster import open_cluster
    from pesnet.distributed.featurize import featurize_on_cluster

    work = Path(tempfile.mkdtemp(prefix="pesnet-scaling-"))
    dataset = work / "cu.h5"
    ingest([DATA], dataset, index=":240" if args.quick else ":")
    acsf = default_acsf([29], 5.0)
    with Dataset(dataset) as ds:
        n_configs, n_atoms = len(ds), ds.n_atoms_total
        parts = list(passes_of(ds, 64))
    print(f"featurization of {n_configs} Cu configurations ({n_atoms} atoms), {acsf!r}; "
          f"{os.cpu_count()} cores, {rounds} interleaved rounds, best round reported",
          flush=True)

    reference = work / "in-process.h5"
    clusters = {}
    try:
        for n in (1, 2):
            clusters[n] = open_cluster("local", workers=n, threads_per_worker=1)
            clusters[n].client.run(lambda: __import__("pesnet.distributed.featurize"))
        shard_dir = work / "shards"
        shard_dir.mkdir()
        modes = {
            "in-process": lambda out: featurize(dataset, out, acsf),
            "dask, 1 worker": lambda out: featurize_on_cluster(clusters[1], dataset, out, acsf),
            "dask, 2 workers": lambda out: featurize_on_cluster(clusters[2], dataset, out, acsf),
            "dask, 2 workers, shards": lambda out: featurize(
                dataset, out, acsf, map_batches=_shard_map(clusters[2], shard_dir)),
            "in-process, compute only": lambda out: [
                featurize_batch(acsf, p, True, str(dataset), np.float32) for p in parts],
            "dask, 2 workers, compute only": lambda out: list(
                _compute_only_map(clusters[2])(acsf, iter(parts), True, dataset, np.float32)),
        }
        checked = ("dask, 1 worker", "dask, 2 workers", "dask, 2 workers, shards")
        times = {name: [] for name in modes}
        client_cpu = {"dask, 2 workers": [], "dask, 2 workers, shards": []}
        total_cpu = {name: [] for name in modes}
        cluster_of = {name: clusters[1] if "1 worker" in name else clusters[2]
                      for name in modes if name.startswith("dask")}
        for r in range(rounds):
            for name, run in modes.items():
                out = reference if name == "in-process" else work / "cluster.h5"
                workers = _workers_cpu(cluster_of.get(name))
                cpu, wall = time.process_time(), time.perf_counter()
                run(out)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                total_cpu[name].append(cpu + _workers_cpu(cluster_of.get(name)) - workers)
                times[name].append(wall)
                if name in client_cpu:
                    client_cpu[name].append(cpu)
                if name in checked and _sha(out) != _sha(reference):
                    raise SystemExit(f"{name}: the features file differs from in-process")
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                  flush=True)

        # the figures behind the 100-machine estimate
        with threadpool_limits(1):
            started = time.perf_counter()
            chunks = [featurize_batch(acsf, p, True, str(dataset), np.float32) for p in parts]
            compute = time.perf_counter() - started
        returned = sum(sum(v.nbytes for v in c if v is not None) for c in chunks)
        sent = sum(len(pickle.dumps(p, protocol=5)) for p in parts)
        merges = []
        for _ in range(rounds):
            started = time.perf_counter()
            featurize(dataset, work / "replay.h5", acsf, map_batches=_Replay(chunks))
            merges.append(time.perf_counter() - started)
        if _sha(work / "replay.h5") != _sha(reference):
            raise SystemExit("replayed merge differs from in-process")
    finally:
        for cluster in clusters.values():
            cluster.close()
        shutil.rmtree(work, ignore_errors=True)

    best = {k: min(v) for k, v in times.items()}
    base = n_configs / best["in-process"]
    print()
    print(f"{'mode':<31}{'configs/s':>10}{'speed-up':>10}{'best s':>8}{'median s':>10}"
          f"{'CPU ms/config':>15}")
    for name, seconds in times.items():
        rate = n_configs / best[name]
        reference_rate = base if "compute only" not in name \
            else n_configs / best["in-process, compute only"]
        print(f"{name:<31}{rate:>10.0f}{rate / reference_rate:>9.2f}x{best[name]:>8.2f}"
              f"{statistics.median(seconds):>10.2f}{min(total_cpu[name]) * 1e3 / n_configs:>15.2f}")
    print("(speed-ups against in-process; the compute-only rows, no results returned and no "
          "file, against in-process compute only: the parallelism the machine offered. CPU: "
          "client and workers together, least of the rounds)")
    per = 1e3 / n_configs
    merge = min(merges)
    print()
    print(f"returned per configuration    {returned / n_configs / 1e3:8.0f} kB   "
          f"(values, derivative blocks, strain; sent to the worker: "
          f"{sent / n_configs / 1e3:.1f} kB)")
    print(f"worker compute, 1 thread      {compute * per:8.2f} ms/config "
          f"({n_configs / compute:.0f} configs/s per core)")
    print(f"client merge alone            {merge * per:8.2f} ms/config "
          f"({n_configs / merge:.0f} configs/s, {returned / merge / 1e6:.0f} MB/s written)")
    arrays_cpu, shards_cpu = (min(client_cpu[k]) for k in client_cpu)
    print(f"client CPU, 2 workers         {arrays_cpu * per:8.2f} ms/config "
          f"(receive + check + merge + read the dataset)")
    print(f"client CPU, 2 workers, shards {shards_cpu * per:8.2f} ms/config "
          f"(read the shard + merge + read the dataset)")
    ceiling = n_configs / arrays_cpu
    print(f"one client absorbs at most ~{ceiling:.0f} configs/s = the output of "
          f"~{ceiling * compute / n_configs:.0f} worker cores")
    headline = {
        "featurize_speedup_2_workers": round(best["in-process"] / best["dask, 2 workers"], 3),
        "featurize_speedup_1_worker": round(best["in-process"] / best["dask, 1 worker"], 3),
        "featurize_speedup_2_workers_shards":
            round(best["in-process"] / best["dask, 2 workers, shards"], 3),
        "compute_only_speedup_2_workers": round(best["in-process, compute only"]
                                                / best["dask, 2 workers, compute only"], 3),
        "configs_per_s_in_process": round(base, 1),
        "configs_per_s_2_workers": round(n_configs / best["dask, 2 workers"], 1),
        "kb_returned_per_config": round(returned / n_configs / 1e3, 1),
        "worker_ms_per_config": round(compute * per, 3),
        "client_merge_ms_per_config": round(merge * per, 3),
        "client_cpu_ms_per_config": round(arrays_cpu * per, 3),
        "client_cpu_ms_per_config_shards": round(shards_cpu * per, 3),
        "total_cpu_ms_per_config": {k: round(min(v) * per, 3) for k, v in total_cpu.items()},
    }
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":  # worker processes are spawned: the guard is required
    sys.exit(main())
