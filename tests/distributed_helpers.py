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


def assert_same_h5(a, b, ignore_attrs=()):
    """Two HDF5 files hold the same datasets (dtype, shape, chunking, every value bit for bit)
    and attributes, but for root attributes named in ``ignore_attrs``."""
    import h5py
    import numpy as np

    def items(f):
        found = {}
        f.visititems(lambda name, obj: found.setdefault(name, obj))
        return found

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        ia, ib = items(fa), items(fb)
        assert sorted(ia) == sorted(ib)
        for name, x in ia.items():
            y = ib[name]
            assert dict(x.attrs) == dict(y.attrs), name
            if isinstance(x, h5py.Dataset):
                assert (x.dtype, x.shape, x.chunks) == (y.dtype, y.shape, y.chunks), name
                assert np.array_equal(x[()], y[()]), name
        keys = set(fa.attrs) | set(fb.attrs)
        for key in keys - set(ignore_attrs):
            assert fa.attrs.get(key) == fb.attrs.get(key), key


def _datasets(f) -> dict:
    import h5py

    found = {}
    f.visititems(lambda name, obj: found.setdefault(name, obj)
                 if isinstance(obj, h5py.Dataset) else None)
    return found


def assert_same_features(sharded, single, ignore_attrs=()):
    """Every dataset of ``single`` in ``sharded``: equal bit for bit but the statistics
    (within 1e-12 relative); the same attributes but the shard list and ``ignore_attrs``."""
    import h5py
    import numpy as np

    with h5py.File(sharded) as a, h5py.File(single) as b:
        da, db = _datasets(a), _datasets(b)
        assert sorted(da) == sorted(db)
        for name, y in db.items():
            x = da[name]
            assert (x.dtype, x.shape) == (y.dtype, y.shape), name
            if name.rsplit("/", 1)[-1] in ("mean", "std"):  # merged in another order
                np.testing.assert_allclose(x[()], y[()], rtol=1e-12, atol=0, err_msg=name)
            else:
                assert np.array_equal(x[()], y[()]), name
        for name in db:
            if name.endswith("/values"):
                group = name.rsplit("/", 1)[0]
                assert a[group].attrs["count"] == b[group].attrs["count"] > 0
        assert set(a.attrs) == set(b.attrs) | {"shards"}
        assert all(a.attrs[key] == b.attrs[key] for key in set(b.attrs) - set(ignore_attrs))


#: a small four-element ACSF set for the cluster tests
ACSF_PARAMS = dict(cutoff=4.0, g2=[(0.5, 2.5), (1.0, 3.0)], g4=[(0.05, 1.0, 1.0)],
                   g5=[(0.1, 2.0, -1.0)])


def mixed_features(root, prefix: str):
    """18 configurations (periodic Cu, free ethanol: Cu, H, C, O) ingested into
    ``root/data.h5`` and featurized in-process with chunks of 4 configurations, with and
    without derivatives (``root/<prefix>-True.h5``, ``root/<prefix>-False.h5``). Returns
    the descriptor."""
    import ase.io

    from pesnet.data.ingest import ingest
    from pesnet.descriptors import ACSF
    from pesnet.descriptors.featurize import featurize
    from tests.conftest import labelled_frames

    ase.io.write(root / "frames.extxyz", labelled_frames(n=18, seed=2))
    ingest([root / "frames.extxyz"], root / "data.h5")
    acsf = ACSF(["H", "C", "O", "Cu"], **ACSF_PARAMS)
    for derivatives in (True, False):
        featurize(root / "data.h5", root / f"{prefix}-{derivatives}.h5", acsf, derivatives,
                  chunk_size=4)
    return acsf
