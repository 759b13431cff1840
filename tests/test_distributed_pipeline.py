"""The pipeline on a Dask cluster: the [compute] table and --scheduler, the same files as an
in-process run (so steps stay up to date across the two), and no Dask import at all on the
default path."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import pesnet.pipeline.engine as engine
from pesnet.cli.main import main
from pesnet.errors import InputError
from pesnet.pipeline.runner import run_pipeline
from pesnet.pipeline.spec import ComputeSpec, compute_spec, load_spec
from pesnet.potential.io import load_model
from tests.distributed_helpers import (  # noqa: F401  (cluster: a fixture)
    assert_same_features,
    assert_same_h5,
    cluster,
    sha256,
)
from tests.pipeline_helpers import subprocess_env, write_spec
from tests.test_training_groups import assert_same_potential


def test_compute_table_is_validated(cu_features, tmp_path):
    data = cu_features / "cu.extxyz"
    spec = write_spec(tmp_path / "a.toml", data, extra='\n[compute]\nscheduler = "tcp://h:8786"\n')
    compute = load_spec(spec).spec.compute
    assert (compute.scheduler, compute.workers, compute.retries) == ("tcp://h:8786", None, 2)
    bad = write_spec(tmp_path / "b.toml", data, extra='\n[compute]\nscheduler = "h:8786"\n')
    with pytest.raises(InputError, match=r"b.toml: compute: scheduler must be \"local\" or an"):
        load_spec(bad)
    both = write_spec(tmp_path / "c.toml", data,
                      extra='\n[compute]\nscheduler = "tcp://h:8786"\nworkers = 2\n')
    with pytest.raises(InputError, match="workers applies to scheduler = \"local\" only"):
        load_spec(both)
    # --scheduler / --workers over the table
    plain = load_spec(write_spec(tmp_path / "d.toml", data)).spec
    assert compute_spec(plain) is None
    assert compute_spec(plain, workers=3) == ComputeSpec(workers=3)
    assert compute_spec(plain, shards=True) == ComputeSpec(shards=True)
    local = load_spec(write_spec(tmp_path / "e.toml", data,
                                 extra="\n[compute]\nworkers = 2\nretries = 0\n")).spec
    assert compute_spec(local, "tcp://x:1") == ComputeSpec(scheduler="tcp://x:1", retries=0)
    with pytest.raises(InputError, match="--scheduler/--workers: scheduler must be"):
        compute_spec(plain, "nowhere")


def test_cluster_run_writes_the_in_process_files(cluster, cu_features, tmp_path,  # noqa: F811
                                                 capsys):
    spec = write_spec(tmp_path / "tiny.toml", cu_features / "cu.extxyz", epochs=3)
    pipeline = load_spec(spec)
    here = run_pipeline(pipeline, run_dir=tmp_path / "here", tracking=False, progress=False)
    # a second client on the fixture's cluster, as `--scheduler tcp://...` would connect
    code = main(["run", str(spec), "--run-dir", str(tmp_path / "there"), "--no-tracking",
                 "--quiet", "--scheduler", cluster.address])
    out = capsys.readouterr().out
    assert code == 0 and here.ok
    assert "compute on Dask (tcp://" in out and "2 workers, 2 threads" in out
    assert sha256(tmp_path / "here" / "dataset.h5") == sha256(tmp_path / "there" / "dataset.h5")
    # the features file records its dataset's path (the run directories differ)
    assert_same_h5(tmp_path / "here" / "features.h5", tmp_path / "there" / "features.h5",
                   ignore_attrs={"dataset"})
    assert_same_potential(load_model(tmp_path / "there" / "model.h5"),
                          load_model(tmp_path / "here" / "model.h5"))
    assert not list((tmp_path / "there").glob("model.ckpt*"))
    # [compute] never makes a step stale: in-process, the cluster's run is up to date
    again = run_pipeline(pipeline, run_dir=tmp_path / "there", tracking=False, progress=False)
    assert not again.did_work


def test_cluster_run_with_shards(cluster, cu_features, tmp_path, capsys,  # noqa: F811
                                 monkeypatch):
    """``--shards``: the workers write features.shards/ beside features.h5, the arrays are
    the in-process ones, the model equal to rounding (the statistics were merged by shard);
    the shards are featurize outputs, hashed by the workers, and one edited in place at the
    same size makes the run featurize again."""
    spec = write_spec(tmp_path / "tiny.toml", cu_features / "cu.extxyz", epochs=3)
    pipeline = load_spec(spec)
    here = run_pipeline(pipeline, run_dir=tmp_path / "here", tracking=False, progress=False)
    hashed = []
    client_hash = engine.sha256_file
    monkeypatch.setattr(engine, "sha256_file", lambda path: hashed.append(path) or
                        client_hash(path))
    code = main(["run", str(spec), "--run-dir", str(tmp_path / "there"), "--no-tracking",
                 "--quiet", "--scheduler", cluster.address, "--shards"])
    capsys.readouterr()
    assert code == 0 and here.ok
    shards = sorted((tmp_path / "there" / "features.shards").glob("*.h5"))
    assert shards
    assert not [p for p in hashed if Path(p).parent.name == "features.shards"]  # workers hashed
    state = json.loads((tmp_path / "there" / "state.json").read_text())
    recorded = {Path(p): d for p, d in state["steps"]["featurize"]["outputs"].values()}
    assert {p.resolve() for p in shards} <= {p.resolve() for p in recorded}
    assert all(recorded[p] == sha256(p) for p in recorded)
    assert_same_features(tmp_path / "there" / "features.h5", tmp_path / "here" / "features.h5",
                         ignore_attrs={"dataset"})
    a, b = (load_model(tmp_path / d / "model.h5") for d in ("there", "here"))
    for z in b.elements:
        np.testing.assert_allclose(a.networks[z].params, b.networks[z].params, rtol=1e-9,
                                   atol=1e-12)
    again = run_pipeline(pipeline, run_dir=tmp_path / "there", tracking=False, progress=False)
    assert not again.did_work
    # one derivative block of one shard changed, the file's size unchanged
    size = shards[0].stat().st_size
    with h5py.File(shards[0], "r+") as f:
        f["derivatives/blocks"][0, 0, 0] += 1.0
    assert shards[0].stat().st_size == size
    code = main(["run", str(spec), "--run-dir", str(tmp_path / "there"), "--no-tracking",
                 "--quiet", "--scheduler", cluster.address, "--shards"])
    last_run = capsys.readouterr().out.split("compute on Dask")[-1]
    assert code == 0 and re.search(r"featurize \.+ \d+ configurations", last_run)
    assert_same_features(tmp_path / "there" / "features.h5", tmp_path / "here" / "features.h5",
                         ignore_attrs={"dataset"})


def test_unreachable_scheduler_is_one_line(cu_features, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("pesnet.distributed.cluster._CONNECT_TIMEOUT", "1s")  # default 20 s
    spec = write_spec(tmp_path / "tiny.toml", cu_features / "cu.extxyz")
    code = main(["run", str(spec), "--run-dir", str(tmp_path / "run"), "--no-tracking",
                 "--quiet", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err[0]


NO_DASK = """\
import sys
from pesnet.cli.main import main
code = main(["run", sys.argv[1], "--run-dir", sys.argv[2], "--no-tracking", "--quiet"])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
assert code == 0, code
assert not loaded, loaded
assert "pesnet.distributed.cluster" not in sys.modules
print("no dask")
"""


def test_default_path_never_imports_dask(cu_features, tmp_path):
    spec = write_spec(tmp_path / "tiny.toml", cu_features / "cu.extxyz", epochs=1)
    done = subprocess.run([sys.executable, "-c", NO_DASK, str(spec), str(tmp_path / "run")],
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("no dask")
