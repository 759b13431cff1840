"""Featurization written as shards by the workers of a two-worker LocalCluster: the arrays of
the single-writer file bit for bit, statistics to rounding, a model trained (streamed, on the
cluster) from it equal to the in-process one; a missing or truncated shard, a failed or killed
task, a moved run directory."""

from __future__ import annotations

import functools
import os
import shutil
import signal
from pathlib import Path

import h5py
import numpy as np
import pytest

from pesnet.descriptors.features_file import FeaturesFile
from pesnet.descriptors.featurize import featurize
from pesnet.descriptors.shard_index import shard_directory
from pesnet.distributed.shards import featurize_sharded, shard_ranges, shard_task
from pesnet.distributed.train import train_on_cluster
from pesnet.errors import DataFormatError, InputError
from pesnet.training.batch_stream import fits_in_memory
from pesnet.training.settings import TrainSettings
from pesnet.training.trainer import train_potential
from tests.distributed_helpers import (  # noqa: F401  (cluster: fixture)
    assert_same_features,
    cluster,
    mixed_features,
)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """18 configurations (periodic Cu, free ethanol: Cu, H, C, O) and their single-writer
    features with chunks of 4 configurations (so shards of 4 make five shards)."""
    root = tmp_path_factory.mktemp("shards")
    return root, mixed_features(root, "single")


def test_shard_ranges_start_at_chunk_multiples():
    assert shard_ranges(18, 2, chunk_size=4, shard_configs=4) == [
        (0, 4), (4, 8), (8, 12), (12, 16), (16, 18)]
    assert shard_ranges(18, 2, chunk_size=4, shard_configs=5) == [(0, 8), (8, 16), (16, 18)]
    assert shard_ranges(720, 2, chunk_size=64) == [(k, min(720, k + 128))
                                                   for k in range(0, 720, 128)]
    assert shard_ranges(10**6, 2)[0] == (0, 1024)


@pytest.mark.parametrize("derivatives", [True, False])
def test_sharded_file_has_the_single_writer_arrays(cluster, mixed, derivatives):  # noqa: F811
    root, acsf = mixed
    out = root / f"run-{derivatives}" / "features.h5"
    summary = featurize_sharded(cluster, root / "data.h5", out, acsf, derivatives,
                                chunk_size=4, shard_configs=4)
    assert summary.n_configs == 18 and summary.file_bytes > out.stat().st_size
    shards = sorted(shard_directory(out).iterdir())
    assert len(shards) == 5
    with h5py.File(out) as f:
        assert f["numbers"].is_virtual and not f["offsets"].is_virtual
        assert len({s.file_name for s in f["numbers"].virtual_sources()}) == 5
    assert_same_features(out, root / f"single-{derivatives}.h5")


def test_workers_write_the_compiled_engines_arrays(cluster, mixed):  # noqa: F811
    """``engine = "compiled"`` on the workers (each compiles or loads the Numba loop): the
    shards hold the in-process compiled file's arrays bit for bit."""
    pytest.importorskip("numba")
    from pesnet.descriptors import ACSF

    root, acsf = mixed
    compiled = ACSF.from_params({**acsf.params, "engine": "compiled"})
    single = root / "compiled-single.h5"
    featurize(root / "data.h5", single, compiled, chunk_size=4, progress=False)
    out = root / "run-compiled" / "features.h5"
    featurize_sharded(cluster, root / "data.h5", out, compiled, chunk_size=4, shard_configs=4)
    assert_same_features(out, single)


def test_a_model_streamed_from_shards_on_the_cluster_is_the_in_process_one(
        cluster, cu_features, tmp_path):  # noqa: F811
    """Member groups on the workers stream (memory budget 0) the sharded features."""
    with FeaturesFile(cu_features / "features.h5") as made:
        acsf = made.descriptor
    single, out = tmp_path / "single.h5", tmp_path / "run" / "features.h5"
    featurize(cu_features / "cu.h5", single, acsf, chunk_size=8)
    featurize_sharded(cluster, cu_features / "cu.h5", out, acsf, chunk_size=8, shard_configs=8)
    assert len(list(shard_directory(out).iterdir())) > 1
    assert_same_features(out, single)
    settings = TrainSettings(hidden=(8, 8), n_members=3, epochs=4, batch_size=4, seed=3,
                             patience=2)
    with FeaturesFile(out) as features:  # budget 0 streams every batch
        assert not fits_in_memory(features, [np.arange(len(features))], memory_budget_mb=0)
    alone = train_potential(single, settings).potential
    result = train_on_cluster(cluster, out, settings, memory_budget_mb=0)
    model = result.potential
    assert model.elements == alone.elements
    for z in model.elements:
        np.testing.assert_allclose(model.networks[z].params, alone.networks[z].params,
                                   rtol=1e-9, atol=1e-12)
        for x, y in zip(model.scalers[z], alone.scalers[z]):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=0)
    assert model.calibration == pytest.approx(alone.calibration, rel=1e-9)


def test_a_missing_or_truncated_shard_is_a_one_line_error(cluster, mixed, tmp_path):  # noqa: F811
    root, acsf = mixed
    out = tmp_path / "features.h5"
    featurize_sharded(cluster, root / "data.h5", out, acsf, chunk_size=4, shard_configs=4)
    victim = sorted(shard_directory(out).iterdir())[2]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=rf"its shard {victim} has {len(data) // 2} "
                                              rf"bytes, not the {len(data)}"):
        FeaturesFile(out)
    victim.unlink()
    with pytest.raises(DataFormatError) as error:
        train_potential(out, TrainSettings(epochs=1))
    assert str(error.value) == (f"{out}: its shard {victim} is missing (a sharded features "
                                f"file needs every shard beside it); featurize again")


def test_the_run_directory_moves(cluster, mixed, tmp_path):  # noqa: F811
    root, acsf = mixed
    first = tmp_path / "first" / "features.h5"
    featurize_sharded(cluster, root / "data.h5", first, acsf, chunk_size=4, shard_configs=8)
    moved = tmp_path / "elsewhere" / "deeper"
    shutil.copytree(first.parent, moved)
    shutil.rmtree(first.parent)  # nothing left at the path the shards were written to
    here = Path.cwd()
    os.chdir(tmp_path)
    try:
        with FeaturesFile(moved / "features.h5") as a, FeaturesFile(root / "single-True.h5") as b:
            x, y = (f.read_batch(np.arange(18), standardise=False) for f in (a, b))
    finally:
        os.chdir(here)
    assert np.array_equal(x.derivatives, y.derivatives) and np.array_equal(x.strain, y.strain)
    assert all(np.array_equal(x.elements[z].values, y.elements[z].values) for z in y.elements)


def test_an_open_file_keeps_reading_its_shards_when_it_is_replaced(cluster, mixed,  # noqa: F811
                                                                  tmp_path):
    """As an open plain file keeps reading its replaced inode: never zeros from a shard that
    the replacing run deleted."""
    root, acsf = mixed
    out = tmp_path / "features.h5"
    featurize_sharded(cluster, root / "data.h5", out, acsf, chunk_size=4, shard_configs=4)
    old = set(shard_directory(out).iterdir())
    with FeaturesFile(out) as features, FeaturesFile(root / "single-True.h5") as single:
        featurize_sharded(cluster, root / "data.h5", out, acsf, chunk_size=4, shard_configs=8)
        assert not old & set(shard_directory(out).iterdir())  # the old shards are gone
        x, y = (f.read_batch(np.arange(18), standardise=False) for f in (features, single))
    assert np.array_equal(x.derivatives, y.derivatives) and np.array_equal(x.strain, y.strain)
    assert all(np.array_equal(x.elements[z].values, y.elements[z].values) for z in y.elements)


def test_a_plain_file_over_a_sharded_one_takes_its_shards_away(cluster, mixed,  # noqa: F811
                                                                tmp_path):
    root, acsf = mixed
    out = tmp_path / "features.h5"
    featurize_sharded(cluster, root / "data.h5", out, acsf, chunk_size=4, shard_configs=8)
    (shard_directory(out) / "notes.txt").write_text("the user's")
    featurize(root / "data.h5", out, acsf, chunk_size=4)
    assert [p.name for p in shard_directory(out).iterdir()] == ["notes.txt"]
    with FeaturesFile(out) as features:
        assert len(features) == 18


def fail_at(first_bad, dataset, directory, name, params, first, *args):
    if first == first_bad:
        raise InputError(f"{dataset}, configuration {first}: coincident atoms")
    return shard_task(dataset, directory, name, params, first, *args)


def test_a_failed_task_leaves_the_earlier_file_and_no_new_one(cluster, mixed, tmp_path):  # noqa: F811
    root, acsf = mixed
    out = tmp_path / "features.h5"
    featurize_sharded(cluster, root / "data.h5", out, acsf, chunk_size=4, shard_configs=4)
    before, kept = out.read_bytes(), sorted(shard_directory(out).iterdir())
    with pytest.raises(InputError, match="configuration 8: coincident atoms"):
        featurize_sharded(cluster, root / "data.h5", out, acsf, chunk_size=4, shard_configs=4,
                          task=functools.partial(fail_at, 8))
    assert out.read_bytes() == before and not list(tmp_path.glob(".features.h5*"))
    assert set(kept) <= set(shard_directory(out).iterdir())
    assert_same_features(out, root / "single-True.h5")  # the earlier file is whole
    # the next good run keeps exactly its own shards (leftovers of the failed one go too)
    featurize_sharded(cluster, root / "data.h5", out, acsf, chunk_size=4, shard_configs=8)
    with h5py.File(out) as f:
        named = {Path(s.file_name).name for s in f["numbers"].virtual_sources()}
    assert {p.name for p in shard_directory(out).iterdir()} == named and len(named) == 3


def die_mid_write(marker: Path, dataset, directory, name, params, first, *args):
    """The first time shard 4..7 comes by: leave a half-written temporary shard and SIGKILL
    this worker (as a crash in the middle of writing would)."""
    if first == 4 and not marker.exists():
        temp = Path(directory) / f".{name}.crashed.tmp"
        temp.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(1000))
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return shard_task(dataset, directory, name, params, first, *args)


def test_a_worker_killed_while_writing_a_shard_loses_nothing(cluster, mixed, tmp_path):  # noqa: F811
    root, acsf = mixed
    marker, out = tmp_path / "killed.pid", tmp_path / "features.h5"
    featurize_sharded(cluster, root / "data.h5", out, acsf, chunk_size=4, shard_configs=4,
                      task=functools.partial(die_mid_write, marker))
    with pytest.raises(ProcessLookupError):
        os.kill(int(marker.read_text()), 0)  # that worker is gone ...
    assert_same_features(out, root / "single-True.h5")  # ... the file is whole ...
    names = sorted(p.name for p in shard_directory(out).iterdir())
    assert len(names) == 5 and not any(n.endswith(".tmp") for n in names)  # ... and tidy
    cluster.client.wait_for_workers(2, timeout=60)


def test_featurize_cli_on_a_local_cluster_with_and_without_shards(mixed, tmp_path, capsys):
    """``pesnet featurize --scheduler local``: the in-process file, byte for byte; with
    ``--shards`` the same arrays written by the workers; ``--shards`` alone is refused."""
    from pesnet.cli.main import main
    from tests.distributed_helpers import sha256

    root, _ = mixed
    args = ["featurize", str(root / "data.h5"), "--cutoff", "4", "--chunk-size", "4", "--quiet"]
    assert main([*args, "-o", str(tmp_path / "here.h5")]) == 0
    assert main([*args, "-o", str(tmp_path / "returned.h5"), "--scheduler", "local",
                 "--workers", "1"]) == 0
    assert sha256(tmp_path / "returned.h5") == sha256(tmp_path / "here.h5")
    assert main([*args, "-o", str(tmp_path / "sharded.h5"), "--scheduler", "local",
                 "--workers", "2", "--shards"]) == 0
    assert shard_directory(tmp_path / "sharded.h5").is_dir()
    assert_same_features(tmp_path / "sharded.h5", tmp_path / "here.h5")
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "no.h5"), "--shards"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--shards needs --scheduler" in err
    assert not (tmp_path / "no.h5").exists()
