"""Connecting to a Dask cluster: a running scheduler's address, or ``"local"`` for a
``LocalCluster`` of worker processes on this machine.

>>> with open_cluster("local", workers=2) as cluster:      # or "tcp://scheduler:8786"
...     cluster.client.submit(sum, [1, 2]).result()

Local workers are processes with one thread each by default: pesnet's work is NumPy and BLAS
on small matrices, which runs fastest with one BLAS thread per process (Dask's nanny sets
``OPENBLAS_NUM_THREADS=1`` and friends in its workers), and processes sidestep the GIL.
A script that starts a local cluster needs the ``if __name__ == "__main__":`` guard (worker
processes are spawned and re-import the main module).

Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which pins glibc's malloc to
returning freed memory at once: every temporary array of the descriptor code is then a fresh mmap
that page-faults, and featurization ran 2.5x slower in a worker than in a plain process
(6.1 s vs 2.4 s for 720 Cu configurations, one thread). :func:`open_cluster` registers a
worker plugin that sets glibc's thresholds to the values its own adaptive policy reaches
(mmap 32 MB, trim 64 MB) in every worker, including workers that join later.

Dask is imported here, inside functions, and nowhere at pesnet's import time.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from pesnet.errors import InputError, PesnetError

#: How often a task is retried after an exception (a lost worker's tasks are rescheduled by
#: the scheduler anyway, up to ``distributed.scheduler.allowed-failures`` times).
DEFAULT_RETRIES = 2
_CONNECT_TIMEOUT = "20s"


class ClusterError(PesnetError):
    """The cluster failed a task for good (workers lost too often, connection closed)."""


def cluster_failures() -> tuple:
    """Exception types meaning the cluster, not pesnet's computation, failed."""
    import concurrent.futures

    import distributed

    return (distributed.KilledWorker, concurrent.futures.CancelledError, OSError, TimeoutError)


def raise_cluster_error(what: str, error: BaseException):
    """Re-raise ``error`` from a task as one line: :class:`ClusterError` when the cluster
    failed, unchanged otherwise (pesnet's own errors, bugs)."""
    if isinstance(error, cluster_failures()) and not isinstance(error, PesnetError):
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ClusterError(f"{what} failed on the Dask cluster: {type(error).__name__}"
                           f"{': ' + text if text else ''}") from error
    raise error


def check_scheduler(scheduler: str) -> str:
    """``scheduler`` if it is ``"local"`` or an address such as ``tcp://host:8786``."""
    scheduler = str(scheduler).strip()
    if scheduler == "local" or "://" in scheduler:
        return scheduler
    raise InputError(f"scheduler must be \"local\" or an address like tcp://host:8786, "
                     f"got {scheduler!r}")


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def tune_malloc() -> bool:
    """Set glibc's malloc thresholds to mmap 32 MB / trim 64 MB in this process (see the
    module doc); False where the C library is not glibc."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
                    and libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20))
    except (OSError, AttributeError):
        return False


def _malloc_plugin(distributed):
    """A worker plugin running :func:`tune_malloc` in every worker, present and future."""

    class MallocPlugin(distributed.WorkerPlugin):
        name = "pesnet-malloc"

        def setup(self, worker):
            tune_malloc()

    return MallocPlugin()


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise InputError("running on a Dask cluster needs dask.distributed: "
                         "pip install 'pesnet[dask]'") from None
    return distributed


@dataclass
class Cluster:
    """A Dask client, and the local cluster behind it when pesnet started one.

    ``client``: :class:`distributed.Client`; ``local``: the ``LocalCluster`` or None;
    ``retries``: how often each task is retried after an exception.
    """

    client: object
    local: object = None
    retries: int = DEFAULT_RETRIES

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def n_threads(self) -> int:
        """Worker threads in the cluster now (at least 1)."""
        return max(1, sum(self.client.nthreads().values()))

    def as_completed(self, futures):
        """Iterate over ``futures`` as they finish (``distributed.as_completed``)."""
        from distributed import as_completed

        return as_completed(futures)

    def describe(self) -> str:
        workers = self.client.nthreads()
        where = "local cluster" if self.local is not None else f"scheduler {self.address}"
        n, threads = len(workers), sum(workers.values())
        return f"{where}: {n} worker{'s' * (n != 1)}, {threads} thread{'s' * (threads != 1)}"

    def close(self) -> None:
        """Close the client, and the local cluster if pesnet started it (a remote cluster
        keeps running)."""
        logger = logging.getLogger("distributed")
        level = logger.level
        logger.setLevel(logging.ERROR)  # the closing nannies and scheduler chat at INFO
        try:
            self.client.close()
        finally:
            try:
                if self.local is not None:
                    self.local.close()
            finally:
                logger.setLevel(level)

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


def open_cluster(scheduler: str = "local", workers: int | None = None,
                 threads_per_worker: int = 1, retries: int = DEFAULT_RETRIES) -> Cluster:
    """Connect to ``scheduler`` (an address), or start a ``LocalCluster`` of ``workers``
    processes (default: one per core) with ``threads_per_worker`` threads each for
    ``"local"``. Raises :class:`~pesnet.errors.InputError` (one line) when Dask is missing or
    the scheduler cannot be reached."""
    scheduler = check_scheduler(scheduler)
    if workers is not None and int(workers) < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if int(threads_per_worker) < 1:
        raise InputError(f"threads_per_worker must be at least 1, got {threads_per_worker}")
    distributed = _import_distributed()
    if scheduler == "local":
        n = int(workers) if workers is not None else max(1, os.cpu_count() or 1)
        try:
            local = distributed.LocalCluster(
                n_workers=n, threads_per_worker=int(threads_per_worker), processes=True,
                silence_logs=logging.ERROR,
                # any free port on loopback: the scheduler's HTTP server (the dashboard, with
                # bokeh) starts anyway, and the default :8787 collides between runs
                dashboard_address="127.0.0.1:0")
        except RuntimeError as error:  # "Nanny failed to start"
            raise InputError(f"cannot start a local Dask cluster ({error}); a script that "
                             f"starts one needs the `if __name__ == \"__main__\":` guard "
                             f"(worker processes are spawned)") from None
        try:
            client = distributed.Client(local)
        except BaseException:
            local.close()
            raise
        cluster = Cluster(client, local, int(retries))
    else:
        try:
            client = distributed.Client(scheduler, timeout=_CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as error:
            text = str(error).strip().splitlines()[0] if str(error).strip() \
                else type(error).__name__
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {text}") from None
        cluster = Cluster(client, None, int(retries))
    try:
        client.register_plugin(_malloc_plugin(distributed), name="pesnet-malloc")
    except BaseException:
        cluster.close()
        raise
    return cluster


def as_cluster(cluster) -> Cluster:
    """A :class:`Cluster` from a Cluster or a bare ``distributed.Client``."""
    if isinstance(cluster, Cluster):
        return cluster
    if hasattr(cluster, "submit") and hasattr(cluster, "nthreads"):
        return Cluster(cluster)
    raise InputError(f"expected a pesnet Cluster or a dask.distributed Client, got "
                     f"{type(cluster).__name__}")


def member_groups(n_members: int, n_groups: int) -> list[tuple[int, int]]:
    """Split members 0..n_members-1 into ``n_groups`` contiguous ranges (start, stop) whose
    sizes differ by at most one (fewer groups when there are fewer members)."""
    n_groups = max(1, min(int(n_groups), int(n_members)))
    base, extra = divmod(int(n_members), n_groups)
    ranges, start = [], 0
    for k in range(n_groups):
        stop = start + base + (k < extra)
        ranges.append((start, stop))
        start = stop
    return ranges
