"""Streamed training batches (pesnet.training.batch_stream): the same fit as held batches, bit
for bit; memory bounded by a few batches, not by the dataset; a damaged features file named."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from pesnet.errors import DataFormatError
from pesnet.training.batch_stream import (
    READ_AHEAD,
    HeldBatches,
    StreamedBatches,
    batch_source,
    fits_in_memory,
    held_bytes,
)
from pesnet.training.data import open_training_inputs, plan_batches
from pesnet.training.settings import TrainSettings
from pesnet.training.trainer import calibrate, train_potential

SMALL = dict(hidden=(8, 8), n_members=3, epochs=3, batch_size=2, seed=4, patience=2,
             checkpoint_every=0)


def test_streamed_fit_equals_held_fit_bit_for_bit(cu_features):
    """A zero budget streams every pass (training, validation, calibration); no budget holds
    them all: every weight, loss, error and the calibration are equal."""
    features = cu_features / "features.h5"
    for extra in ({}, {"stress_weight": 1.0}, {"min_feature_std": 0.1},
                  {"feature_range_scale": 4.0}):
        settings = TrainSettings(**SMALL, **extra)
        held = train_potential(features, settings, memory_budget_mb=None)
        streamed = train_potential(features, settings, memory_budget_mb=0)
        for z in held.potential.elements:
            assert np.array_equal(held.potential.networks[z].params,
                                  streamed.potential.networks[z].params)
        assert held.potential.calibration == streamed.potential.calibration
        assert held.potential.metadata == streamed.potential.metadata
        for a, b in zip(held.history, streamed.history):
            for name in a._fields:
                if name != "seconds":
                    assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True)
        assert calibrate(held.potential, features, settings, memory_budget_mb=0) \
            == held.potential.calibration


def test_the_budget_chooses_between_held_and_streamed(cu_features):
    features, labels, split, _ = open_training_inputs(cu_features / "features.h5")
    with features:
        size = held_bytes(features, split.train) + held_bytes(features, split.validation)
        index_sets = (split.train, split.validation)
        assert fits_in_memory(features, index_sets, memory_budget_mb=None)
        assert fits_in_memory(features, index_sets, memory_budget_mb=size / 2**20)
        assert not fits_in_memory(features, index_sets, memory_budget_mb=size / 2**20 * 0.99)
        held = batch_source(features, labels, split.train, 2, 1, 0, stream=False)
        assert isinstance(held, HeldBatches) and len(held) == len(plan_batches(split.train, 2, 0))
        # the estimate is of the right size: within a factor 2 of the arrays really held
        arrays = sum(b.operator.jacobian.data.nbytes + b.operator.jacobian.indices.nbytes
                     + b.operator.jacobian.indptr.nbytes
                     + sum(e.values.nbytes for e in b.features.elements.values())
                     for b in held)
        assert arrays / 2 < held_bytes(features, split.train) < 2 * arrays


def _peak_bytes(source) -> int:
    """Peak traced allocation while one pass over ``source`` is consumed and dropped."""
    tracemalloc.start()
    try:
        for batch in source.iterate():
            del batch
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streamed_memory_is_bounded_by_batches_not_the_dataset(cu_features):
    """A streamed pass over every configuration never holds more than the read-ahead queue and
    the batches being built, at a quarter of the data and at all of it; the same measure sees
    held batches take the whole estimate (so a source that kept its batches would fail)."""
    path = cu_features / "features.h5"
    features, labels, split, _ = open_training_inputs(path)
    indices = np.arange(len(features))
    with features:
        largest = max(held_bytes(features, c) for c in plan_batches(indices, 1, 0).configs)
        whole = held_bytes(features, indices)
        tracemalloc.start()
        held = batch_source(features, labels, indices, 1, 1, 0)
        held_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        held.close()
    # queue + the batch in use + one being built, each up to twice its held size while built
    bound = 2 * (READ_AHEAD + 3) * largest
    assert bound < whole / 2 < held_peak
    for n in (len(indices) // 4, len(indices)):
        source = StreamedBatches(path, labels, plan_batches(indices[:n], 1, 0), 1)
        try:
            assert _peak_bytes(source) < bound
        finally:
            source.close()


def test_a_features_file_damaged_while_streaming_is_named(cu_features, tmp_path):
    """Truncated under a running fit: the next read is one DataFormatError naming the file."""
    path = tmp_path / "features.h5"
    shutil.copy(cu_features / "features.h5", path)
    _, labels, split, _ = open_training_inputs(path)
    source = StreamedBatches(path, labels, plan_batches(split.train, 2, 0), 1)
    try:
        os.truncate(path, os.path.getsize(path) // 3)
        with pytest.raises(DataFormatError, match="features.h5: changed while being read"):
            for _ in source.iterate():
                pass
    finally:
        source.close()


def test_a_truncated_features_file_is_one_line_and_no_model(cu_features, tmp_path):
    path = tmp_path / "features.h5"
    data = (cu_features / "features.h5").read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-m", "pesnet.cli.main", "train", str(path), "--dataset",
         str(cu_features / "cu.h5"), "-o", str(tmp_path / "model.h5"), "--epochs", "1",
         "--quiet", "--memory-budget", "0"], capture_output=True, text=True, env=env)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "features.h5: truncated features file" in lines[0], out.stderr
    assert not (tmp_path / "model.h5").exists()
