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
* ``dask, N workers, worker-written shards`` (N = 1, 2):
  :func:`pesnet.distributed.shards.featurize_sharded`: each worker reads its configurations
  from the dataset and writes its own shard (local disk here: the page cache, the best case of
  a shared filesystem); the client writes only the index file (virtual datasets, offsets,
  merged statistics).

Every returned-arrays file is checked to be byte-identical to the in-process one, the sharded
file to hold the same arrays bit for bit (statistics within 1e-12). Below the table, the
figures a 100-machine estimate needs: bytes per configuration, the worker's compute per
configuration (one thread), the client's cost per configuration (its CPU time during a
2-worker run of each mode, and the single writer's merge alone: writing precomputed chunks),
and one epoch of training-style reads (``read_batch`` of the 32-configuration batches of a
shuffled plan) from the single file and from the sharded one. The CPU column adds the
client's and the workers' CPU time per configuration: less sensitive to the other jobs on
the machine than wall time, it shows what moving the data costs. The last line is JSON with
``featurize_speedup_2_workers`` (2 workers vs in-process).
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "cu_emt.extxyz"


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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


SHARDS_1 = "dask, 1 worker, worker-written shards"
SHARDS = "dask, 2 workers, worker-written shards"


def _check_same_arrays(sharded, reference) -> None:
    """Exit unless the sharded features hold the in-process arrays bit for bit (statistics
    within 1e-12 relative)."""
    import h5py

    with h5py.File(sharded) as a, h5py.File(reference) as b:
        names = []
        b.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset)
                     else None)
        for name in names:
            x, y = a[name][()], b[name][()]
            same = (np.allclose(x, y, rtol=1e-12, atol=0) if name.endswith(("mean", "std"))
                    else x.dtype == y.dtype and np.array_equal(x, y))
            if not same:
                raise SystemExit(f"sharded features: {name} differs from in-process")


def _read_epochs(single, sharded, n_configs: int, rounds: int) -> dict:
    """Best seconds, over interleaved rounds, to read every configuration once as a shuffled
    plan of 32-configuration batches (what a streamed training epoch reads)."""
    from pesnet.descriptors.features_file import FeaturesFile
    from pesnet.training.data import plan_batches

    plan = plan_batches(np.arange(n_configs), 32, 0)
    best = {"single": np.inf, "sharded": np.inf}
    for _ in range(rounds):
        for name, path in (("single", single), ("sharded", sharded)):
            with FeaturesFile(path) as features:
                started = time.perf_counter()
                for config in plan.configs:
                    features.read_batch(config)
                best[name] = min(best[name], time.perf_counter() - started)
    return best


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
    from pesnet.distributed.shards import featurize_sharded

    work = Path(tempfile.mkdtemp(prefix="pesnet-scaling-"))
    dataset = work / "cu.h5"
    ingest([DATA], dataset, index=":240" if args.quick else ":")
    acsf = default_acsf([29], 5.0)
    with Dataset(dataset) as ds:
        n_configs, n_atoms = len(ds), ds.n_atoms_total
        parts = list(passes_of(ds, 64))
    print(f"featurization of {n_configs} Cu configurations ({n_atoms} atoms), {acsf!r}; "
          f"{os.cpu_count()} cores, {rounds} interleaved rounds, best round reported; "
          f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)

    reference = work / "in-process.h5"
    clusters = {}
    try:
        for n in (1, 2):
            clusters[n] = open_cluster("local", workers=n, threads_per_worker=1)
            clusters[n].client.run(lambda: __import__("pesnet.distributed.featurize"))
        sharded = work / "sharded" / "features.h5"
        modes = {
            "in-process": lambda out: featurize(dataset, out, acsf),
            "dask, 1 worker": lambda out: featurize_on_cluster(clusters[1], dataset, out, acsf),
            "dask, 2 workers": lambda out: featurize_on_cluster(clusters[2], dataset, out, acsf),
            SHARDS_1: lambda out: featurize_sharded(clusters[1], dataset, out, acsf),
            SHARDS: lambda out: featurize_sharded(clusters[2], dataset, out, acsf),
            "in-process, compute only": lambda out: [
                featurize_batch(acsf, p, True, str(dataset), np.float32) for p in parts],
            "dask, 2 workers, compute only": lambda out: list(
                _compute_only_map(clusters[2])(acsf, iter(parts), True, dataset, np.float32)),
        }
        checked = ("dask, 1 worker", "dask, 2 workers")
        times = {name: [] for name in modes}
        client_cpu = {"dask, 2 workers": [], SHARDS: []}
        client_main = {"dask, 2 workers": [], SHARDS: []}  # its main thread (not Dask's)
        total_cpu = {name: [] for name in modes}
        cluster_of = {name: clusters[1] if "1 worker" in name else clusters[2]
                      for name in modes if name.startswith("dask")}
        for r in range(rounds):
            for name, run in modes.items():
                out = (reference if name == "in-process" else sharded if "shards" in name
                       else work / "cluster.h5")
                workers = _workers_cpu(cluster_of.get(name))
                cpu, wall, main = time.process_time(), time.perf_counter(), time.thread_time()
                run(out)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                main = time.thread_time() - main
                total_cpu[name].append(cpu + _workers_cpu(cluster_of.get(name)) - workers)
                times[name].append(wall)
                if name in client_cpu:
                    client_cpu[name].append(cpu)
                    client_main[name].append(main)
                if name in checked and _sha(out) != _sha(reference):
                    raise SystemExit(f"{name}: the features file differs from in-process")
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                  flush=True)
        _check_same_arrays(sharded, reference)
        shard_bytes = sum(p.stat().st_size for p in sharded.parent.rglob("*.h5"))
        epochs = _read_epochs(reference, sharded, n_configs, rounds)

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
    load_end = os.getloadavg()[0]
    print(f"\nload average {load_end:.2f} at the end")
    print(f"{'mode':<40}{'configs/s':>10}{'speed-up':>10}{'best s':>8}{'median s':>10}"
          f"{'CPU ms/config':>15}")
    for name, seconds in times.items():
        rate = n_configs / best[name]
        reference_rate = base if "compute only" not in name \
            else n_configs / best["in-process, compute only"]
        print(f"{name:<40}{rate:>10.0f}{rate / reference_rate:>9.2f}x{best[name]:>8.2f}"
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
    arrays_main, shards_main = (min(client_main[k]) for k in client_main)
    print(f"client CPU, 2 workers         {arrays_cpu * per:8.2f} ms/config "
          f"(receive + check + merge + read the dataset; main thread {arrays_main * per:.2f})")
    print(f"client CPU, 2 workers, shards {shards_cpu * per:8.2f} ms/config "
          f"({shards_cpu:.2f} s in all; main thread {shards_main * per:.3f} ms/config: plan, "
          f"hash the dataset, write the index; the rest is Dask's client thread)")
    ceiling = n_configs / arrays_cpu
    print(f"one client absorbs at most ~{ceiling:.0f} configs/s = the output of "
          f"~{ceiling * compute / n_configs:.0f} worker cores (returned arrays); with "
          f"shards ~{n_configs / shards_cpu:.0f} configs/s")
    per_worker = {name: n_configs / best[name] / (1 if "1 worker" in name else 2)
                  for name in (SHARDS_1, SHARDS)}
    print(f"shards written per configuration {shard_bytes / n_configs / 1e3:5.0f} kB   "
          f"(top file and shards)")
    print(f"configs/s per worker, shards  {per_worker[SHARDS_1]:8.0f} (1 worker)   "
          f"{per_worker[SHARDS]:.0f} (2 workers)")
    print(f"read an epoch (batches of 32) {epochs['single']:8.3f} s single file   "
          f"{epochs['sharded']:.3f} s sharded (virtual datasets)")
    atoms_per_config = n_atoms / n_configs
    target = 1e7 / atoms_per_config
    worker_hours = target / per_worker[SHARDS] / 3600
    print(f"10^7 atoms = {target:,.0f} configurations of {atoms_per_config:.0f} atoms: "
          f"{worker_hours:.1f} worker-hours at {per_worker[SHARDS]:.0f} configs/s per "
          f"worker; client main thread ~{target * shards_main / n_configs:.0f} s with shards "
          f"({target * arrays_cpu / n_configs:.0f} s of client CPU returning arrays)")
    headline = {
        "featurize_speedup_2_workers": round(best["in-process"] / best["dask, 2 workers"], 3),
        "featurize_speedup_1_worker": round(best["in-process"] / best["dask, 1 worker"], 3),
        "featurize_speedup_2_workers_shards": round(best["in-process"] / best[SHARDS], 3),
        "configs_per_s_per_worker_shards": round(per_worker[SHARDS], 1),
        "configs_per_s_per_worker_shards_1_worker": round(per_worker[SHARDS_1], 1),
        "epoch_read_s_single": round(epochs["single"], 3),
        "epoch_read_s_sharded": round(epochs["sharded"], 3),
        "worker_hours_1e7_atoms": round(worker_hours, 2),
        "compute_only_speedup_2_workers": round(best["in-process, compute only"]
                                                / best["dask, 2 workers, compute only"], 3),
        "configs_per_s_in_process": round(base, 1),
        "configs_per_s_2_workers": round(n_configs / best["dask, 2 workers"], 1),
        "kb_returned_per_config": round(returned / n_configs / 1e3, 1),
        "worker_ms_per_config": round(compute * per, 3),
        "client_merge_ms_per_config": round(merge * per, 3),
        "client_cpu_ms_per_config": round(arrays_cpu * per, 3),
        "client_cpu_ms_per_config_shards": round(shards_cpu * per, 3),
        "client_main_thread_ms_per_config": round(arrays_main * per, 3),
        "client_main_thread_ms_per_config_shards": round(shards_main * per, 4),
        "total_cpu_ms_per_config": {k: round(min(v) * per, 3) for k, v in total_cpu.items()},
        "load_1min_end": round(load_end, 2),
    }
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":  # worker processes are spawned: the guard is required
    sys.exit(main())
