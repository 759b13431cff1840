"""A two-worker Dask ``LocalCluster`` (processes) for the distributed tests.

Import the fixture into a test module (``from tests.distributed_helpers import cluster``); it
is module-scoped and closed after the module's tests. pytest's main module has no code
that runs at import, so spawned worker processes start cleanly.
"""

from __future__ import annotations

import hashlib

import pytest


@pytest.fixture(scope="module")
def cluster():
    """pesnet's Cluster over ``LocalCluster(n_workers=2, threads_per_worker=1,
    processes=True)``; workers have pesnet imported before the first test."""
    from pesnet.distributed.cluster import open_cluster

    with open_cluster("local", workers=2, threads_per_worker=1, retries=1) as handle:
        handle.client.run(_warm_up)
        yield handle


def _warm_up():
    import pesnet.distributed.featurize  # noqa: F401  (imports descriptors, data)
    import pesnet.distributed.train  # noqa: F401  (imports training, potential)


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()
