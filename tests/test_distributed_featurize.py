"""Featurization on a two-worker LocalCluster writes the in-process features file byte for
byte, also when a worker is killed in the middle of a chunk."""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

import pytest

from pesnet.descriptors import ACSF
from pesnet.distributed.featurize import featurize_on_cluster, featurize_parts
from pesnet.errors import InputError
from tests.distributed_helpers import cluster, mixed_features, sha256  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """18 configurations (periodic Cu, free ethanol: Cu, H, C, O) and their in-process
    features (value-only and with derivatives) with small chunks, so there are many tasks."""
    root = tmp_path_factory.mktemp("mixed")
    return root, mixed_features(root, "local")


@pytest.mark.parametrize("derivatives", [True, False])
def test_cluster_file_is_the_in_process_file(cluster, mixed, derivatives):  # noqa: F811
    root, acsf = mixed
    out = root / f"cluster-{derivatives}.h5"
    summary = featurize_on_cluster(cluster, root / "data.h5", out, acsf, derivatives,
                                   chunk_size=4, task_configs=4)
    assert summary.n_configs == 18
    assert sha256(out) == sha256(root / f"local-{derivatives}.h5")


def test_default_descriptor_and_cu_dataset(cluster, cu_features, tmp_path):  # noqa: F811
    """The conftest's Cu features (made in-process, default chunks) again on the cluster."""
    acsf = ACSF(["Cu"], cutoff=4.5, g2=[(0.5, 2.5), (1.0, 3.0), (1.0, 3.8), (0.3, 0.0)],
                g4=[(0.05, 1.0, 1.0), (0.05, 1.0, -1.0), (0.05, 4.0, 1.0)])
    out = tmp_path / "features.h5"
    featurize_on_cluster(cluster.client, cu_features / "cu.h5", out, acsf, task_configs=8)
    assert sha256(out) == sha256(cu_features / "features.h5")


def die_once(marker: Path, target: int, params, parts, *args):
    """Featurize ``parts``, but the first time the part starting at configuration ``target``
    comes by: compute half of it, record this worker's pid and SIGKILL the worker."""
    if int(parts[0].indices[0]) == target and not marker.exists():
        featurize_parts(params, parts[:1], *args)
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return featurize_parts(params, parts, *args)


def test_a_worker_killed_mid_chunk_loses_nothing(cluster, mixed):  # noqa: F811
    root, acsf = mixed
    marker = root / "killed.pid"
    out = root / "after-kill.h5"
    task = functools.partial(die_once, marker, 8)
    featurize_on_cluster(cluster, root / "data.h5", out, acsf, chunk_size=4, task_configs=4,
                         task=task)
    killed = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)  # that worker is gone ...
    assert sha256(out) == sha256(root / "local-True.h5")  # ... and the file is complete
    cluster.client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def truncated(params, parts, *args):
    chunks = featurize_parts(params, parts, *args)
    first = chunks[0]
    chunks[0] = first._replace(blocks=first.blocks[:-1])
    return chunks


def test_an_incomplete_chunk_is_never_written(cluster, mixed):  # noqa: F811
    root, acsf = mixed
    out = root / "incomplete.h5"
    with pytest.raises(InputError, match="incomplete features for configurations 0..3"):
        featurize_on_cluster(cluster, root / "data.h5", out, acsf, chunk_size=4,
                             task_configs=4, task=truncated)
    assert not out.exists() and not list(root.glob(".incomplete.h5*"))


def test_cluster_failures_become_one_line_errors():
    from types import SimpleNamespace

    import distributed

    from pesnet.distributed.cluster import ClusterError, raise_cluster_error

    worker = SimpleNamespace(address="tcp://10.0.0.7:4000")
    lost = distributed.KilledWorker("pesnet-featurize-1", worker, 3)
    with pytest.raises(ClusterError, match="featurization failed on the Dask cluster: "
                                           "KilledWorker: Attempted to run task"):
        raise_cluster_error("featurization", lost)
    mine = InputError("data.h5, configuration 3: coincident atoms")
    with pytest.raises(InputError, match="coincident"):
        raise_cluster_error("featurization", mine)
