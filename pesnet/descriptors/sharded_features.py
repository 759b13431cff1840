"""A features file written as shards in parallel, read as one file.

Each writer (a Dask worker: :mod:`pesnet.distributed.shards`) featurizes a contiguous range
of configurations ``first:stop`` of the dataset and writes its own shard with
:func:`write_shard`: the layout of :mod:`.features_file` for that range, written by the same
code as the single file (:mod:`.features_writer`, the same passes of the dataset), atomically
(a temporary name, renamed when complete). A shard's offsets start at 0 (``offsets``,
``elements/<Sym>/offsets``, ``derivatives/offsets``), its ``elements/<Sym>/atoms`` hold rows of
the whole dataset; instead of mean and std it keeps, per element, the count n, mean μ (F,) and
M2 (F,) of its training-split atoms (group attribute ``count``, datasets ``mean``, ``m2``).
The writer returns a :class:`ShardSummary` (counts, local offsets, statistics: ~8 bytes per
configuration and element, a few kB per shard), so the client never reads a shard's arrays.

:func:`write_index` then writes the small top-level file the rest of pesnet opens as any
features file: the per-atom and per-block arrays are HDF5 virtual datasets, each mapping the
shards' arrays in order (shard names relative to the top file's directory, see
:mod:`.shard_index`); ``offsets`` comes from the dataset, and the element and block offsets
are the shards' local offsets rebased by the running totals (o_k + Σ_{s' < s} N_s'). The
statistics are merged in shard order with the parallel formula (:class:`RunningStats.merge
<.features_writer.RunningStats>`), so they are deterministic, and equal to the single
writer's to rounding (~1e-16 relative: only the grouping of the sums differs). Every array is
bit for bit the single file's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
from ase.data import chemical_symbols

from pesnet.data import Dataset
from pesnet.descriptors.acsf_kernel import check_engine
from pesnet.descriptors.features_writer import (
    DiskRoom,
    RunningStats,
    finish,
    open_output,
    passes_of,
    write_all,
)
from pesnet.descriptors.featurize import featurize_batch
from pesnet.descriptors.shard_index import SHARDS_ATTR
from pesnet.errors import InputError
from pesnet.fileio import atomic_output, sha256_file

#: format name of a shard file (a shard alone is not a features file)
SHARD_FORMAT = "pesnet-features-shard"
SHARD_FORMAT_VERSION = 1


class ShardSummary(NamedTuple):
    """What :func:`write_shard` wrote (n_s configurations from ``first_config``).

    ``file``: the shard's name relative to the top file's directory; ``n_bytes`` its size.
    ``arrays``: {dataset name: (rows, row shape, dtype name)} of the arrays the top file maps.
    ``element_offsets``: {Z: (n_s + 1,)} local element rows per configuration;
    ``block_offsets``: (n_s + 1,) local derivative blocks, or None without derivatives.
    ``stats``: {Z: (count, mean (F,), M2 (F,))} over the shard's training-split atoms.
    ``sha256``: the shard file's digest, taken by the worker that wrote it (so the pipeline
    can tell an edited shard without the client reading every shard).
    """

    file: str
    first_config: int
    n_configs: int
    n_atoms: int
    n_blocks: int
    n_bytes: int
    arrays: dict
    element_offsets: dict
    block_offsets: np.ndarray | None
    stats: dict
    sha256: str


def _mapped_names(descriptor, derivatives: bool) -> list[str]:
    """The datasets the top file maps from the shards, concatenated row by row."""
    names = ["numbers", "periodic"]
    for z in descriptor.elements:
        names += [f"elements/{chemical_symbols[z]}/values", f"elements/{chemical_symbols[z]}/atoms"]
    if derivatives:
        names += ["derivatives/centre", "derivatives/neighbour", "derivatives/blocks", "strain"]
    return names


def write_shard(dataset, shard, name: str, descriptor, first: int, stop: int, train,
                derivatives: bool = True, dtype=np.float32, chunk_size: int = 64,
                source=None) -> ShardSummary:
    """Featurize configurations ``first:stop`` of ``dataset`` into the shard file ``shard``
    (atomically); ``name`` is how the top file will name it (relative to its directory).

    ``train`` (stop − first,) bool: which configurations belong to the training split.
    ``first`` must be a multiple of ``chunk_size`` (so the passes, hence the bits, are the
    single writer's); ``source`` names the dataset in error messages (default ``dataset``).
    """
    check_engine(descriptor)
    if first % chunk_size:
        raise ValueError(f"a shard starts at a multiple of chunk_size ({chunk_size}), not {first}")
    dtype = np.dtype(dtype)
    train = np.asarray(train, bool)
    F = descriptor.n_features
    source = dataset if source is None else source
    with Dataset(dataset) as ds:
        if not 0 <= first < stop <= len(ds) or len(train) != stop - first:
            raise InputError(f"{dataset}: no configurations {first}..{stop - 1} with "
                             f"{len(train)} split flags ({len(ds)} configurations)")
        offsets = ds.offsets[first : stop + 1] - ds.offsets[first]
        stats = {z: RunningStats(F) for z in descriptor.elements}
        with atomic_output(shard, suffix=".tmp") as tmp, h5py.File(tmp, "w") as f:
            out = open_output(f, descriptor, offsets, derivatives, dtype,
                              first_row=int(ds.offsets[first]))
            computed = ((part, featurize_batch(descriptor, part, derivatives, source, dtype))
                        for part in passes_of(ds, chunk_size, first, stop))
            n_blocks = write_all(out, computed, descriptor, train, stats, first_config=first,
                                 room=DiskRoom(shard, int(offsets[-1])))
            for z in descriptor.elements:
                group = f[f"elements/{chemical_symbols[z]}"]
                group.create_dataset("mean", data=stats[z].mean)
                group.create_dataset("m2", data=stats[z].m2)
                group.attrs["count"] = stats[z].count
            f.attrs.update({"format": SHARD_FORMAT, "format_version": SHARD_FORMAT_VERSION,
                            "descriptor": descriptor.to_json(), "first_config": first,
                            "n_configs": stop - first, "first_atom": int(ds.offsets[first])})
            arrays = {key: (f[key].shape[0], f[key].shape[1:], f[key].dtype.name)
                      for key in _mapped_names(descriptor, derivatives)}
            element_offsets = {z: f[f"elements/{chemical_symbols[z]}/offsets"][:]
                               for z in descriptor.elements}
            block_offsets = f["derivatives/offsets"][:] if derivatives else None
    return ShardSummary(name, first, stop - first, int(offsets[-1]), n_blocks,
                        Path(shard).stat().st_size, arrays, element_offsets, block_offsets,
                        {z: (s.count, s.mean, s.m2) for z, s in stats.items()},
                        sha256_file(shard))


def merge_stats(summaries, descriptor) -> dict:
    """{Z: :class:`~.features_writer.RunningStats`} of all shards, merged in the order of
    ``summaries`` (Chan's parallel formula: deterministic for a given order)."""
    stats = {z: RunningStats(descriptor.n_features) for z in descriptor.elements}
    for summary in summaries:
        for z in descriptor.elements:
            stats[z].merge(*summary.stats[z])
    return stats


def check_summaries(summaries, offsets: np.ndarray, source) -> None:
    """:class:`~pesnet.errors.InputError` unless the shards cover configurations
    0..n−1 once, in order, each with its configurations' atoms (``offsets`` (n + 1,) of the
    dataset ``source``) and consistent array lengths."""
    at = 0
    for s in summaries:
        stop = s.first_config + s.n_configs
        where = f"shard {s.file} (configurations {s.first_config}..{stop - 1})"
        if s.first_config != at or stop > len(offsets) - 1:
            raise InputError(f"{source}: {where} does not follow configuration {at - 1}; "
                             f"nothing was written")
        n_atoms = int(offsets[stop] - offsets[s.first_config])
        rows = {name: shape[0] for name, shape in s.arrays.items()}
        atoms_ok = s.n_atoms == n_atoms == rows["numbers"] == rows.get("strain", n_atoms)
        element_rows = sum(int(o[-1]) for o in s.element_offsets.values())
        blocks_ok = s.block_offsets is None or (
            len(s.block_offsets) == s.n_configs + 1 and int(s.block_offsets[-1]) == s.n_blocks
            == rows["derivatives/blocks"] == rows["derivatives/centre"])
        if not (atoms_ok and blocks_ok and element_rows == n_atoms
                and rows["periodic"] == s.n_configs):
            raise InputError(f"{source}: {where} is incomplete ({s.n_atoms} atoms written, "
                             f"{n_atoms} expected); nothing was written")
        at = stop
    if at != len(offsets) - 1:
        raise InputError(f"{source}: the shards end at configuration {at - 1} of "
                         f"{len(offsets) - 1}; nothing was written")


def _rebased(parts) -> np.ndarray:
    """One offsets array (Σ n_s + 1,) from local ones (n_s + 1,) each starting at 0."""
    total, pieces = 0, [np.zeros(1, np.int64)]
    for local in parts:
        pieces.append(np.asarray(local[1:], np.int64) + total)
        total += int(local[-1])
    return np.concatenate(pieces)


def _virtual(f, name: str, summaries) -> None:
    """Dataset ``name`` of the top file ``f``: the shards' ``name`` arrays, in order, as one
    virtual dataset (an empty plain one when no shard has a row)."""
    rows = [s.arrays[name][0] for s in summaries]
    shape, dtype = tuple(summaries[0].arrays[name][1]), np.dtype(summaries[0].arrays[name][2])
    if sum(rows) == 0:
        f.create_dataset(name, (0,) + shape, dtype)
        return
    layout = h5py.VirtualLayout((sum(rows),) + shape, dtype)
    at = 0
    for s, n in zip(summaries, rows):
        if n:  # a zero-row selection cannot be mapped (an element absent from a shard)
            layout[at : at + n] = h5py.VirtualSource(s.file, name, shape=(n,) + shape)
            at += n
    f.create_virtual_dataset(name, layout)


def write_index(output, dataset, descriptor, summaries, offsets, split_info, n_train: int,
                derivatives: bool = True) -> int:
    """Write the top-level features file ``output`` (atomically) over the shards of
    ``summaries`` (:class:`ShardSummary`, in configuration order; their files beside
    ``output`` under their relative names), for the dataset at ``dataset`` whose atom
    ``offsets`` are (n + 1,). ``split_info``/``n_train`` as the single writer records them.
    Returns the derivative blocks."""
    summaries = list(summaries)
    check_summaries(summaries, offsets, dataset)
    stats = merge_stats(summaries, descriptor)
    with atomic_output(output, suffix=".h5.tmp") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("offsets", data=np.asarray(offsets, np.int64))
        for name in _mapped_names(descriptor, derivatives):
            _virtual(f, name, summaries)
        for z in descriptor.elements:
            f[f"elements/{chemical_symbols[z]}"].create_dataset(
                "offsets", data=_rebased([s.element_offsets[z] for s in summaries]))
        if derivatives:
            f["derivatives"].create_dataset(
                "offsets", data=_rebased([s.block_offsets for s in summaries]))
        finish(f, descriptor, stats, dataset, split_info, n_train)
        f.attrs[SHARDS_ATTR] = json.dumps(
            [{"file": s.file, "bytes": s.n_bytes, "sha256": s.sha256,
              "configs": [s.first_config, s.first_config + s.n_configs]} for s in summaries])
    return sum(s.n_blocks for s in summaries)
