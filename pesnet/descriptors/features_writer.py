"""Writing the arrays of a features file (layout: :mod:`.features_file`) chunk by chunk.

:func:`featurize <pesnet.descriptors.featurize.featurize>` writes a whole dataset's features
through these functions into one file; :mod:`.sharded_features` writes one contiguous range of
configurations into a shard with the same code, so a shard's arrays are, row for row, the
single file's. The dataset is read in chunks of ``chunk_size`` configurations cut into passes
of at most :data:`PASS_ATOMS` atoms (:func:`passes_of`); the same passes give the same bits.

Standardisation statistics are accumulated per element over the training split's atoms by
:class:`RunningStats`: count n, mean μ and M2 = Σ (G − μ)² per feature, merged chunk by chunk
with the parallel formula of Chan, Golub & LeVeque (1979)::

    n = n_A + n_B,   δ = μ_B − μ_A,   μ = μ_A + δ n_B / n,   M2 = M2_A + M2_B + δ² n_A n_B / n

and σ = √(M2 / n) (the population standard deviation).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase.data import chemical_symbols

from pesnet import __version__
from pesnet.descriptors.features_file import FORMAT_NAME, FORMAT_VERSION
from pesnet.errors import InputError
from pesnet.fileio import format_bytes, free_bytes, sha256_file

COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
#: buffered derivative floats (~32 MB in float32) before a flush
FLUSH_FLOATS = 1 << 23
#: atoms computed in one vectorised pass (``compute_flat``)
PASS_ATOMS = 512


class RunningStats:
    """Count, mean (F,) and M2 (F,) of one element's feature rows, merged chunk by chunk
    (Chan et al.; the module doc has the equations)."""

    def __init__(self, n_features: int):
        self.count, self.mean, self.m2 = 0, np.zeros(n_features), np.zeros(n_features)

    def update(self, rows: np.ndarray) -> None:
        """Add the rows (k, F) of one chunk."""
        if len(rows) == 0:
            return
        mean = rows.mean(axis=0)
        self.merge(len(rows), mean, ((rows - mean) ** 2).sum(axis=0))

    def merge(self, count: int, mean: np.ndarray, m2: np.ndarray) -> None:
        """Add the statistics (count, mean (F,), M2 (F,)) of another set of rows."""
        if count == 0:
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * count / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        """σ = √(M2 / n) (F,); zeros without rows."""
        return np.sqrt(self.m2 / self.count) if self.count else np.zeros_like(self.mean)


def appendable(group, name, shape, dtype, chunk_rows, compress=True):
    """An empty dataset ``name`` in ``group`` of rows ``shape``, growable along axis 0."""
    chunks = (chunk_rows,) + tuple(shape)
    return group.create_dataset(name, (0,) + tuple(shape), dtype, maxshape=(None,) + tuple(shape),
                                chunks=chunks, **(COMPRESSION if compress else {}))


def append(dataset, rows) -> None:
    """Append ``rows`` to a growable dataset."""
    n = dataset.shape[0]
    dataset.resize(n + len(rows), axis=0)
    dataset[n:] = rows


def passes(offsets: np.ndarray, max_atoms: int):
    """Split a batch's configurations into runs (k0, k1) of at most ``max_atoms`` atoms (at
    least one configuration each)."""
    k0, n = 0, len(offsets) - 1
    while k0 < n:
        k1 = max(k0 + 1, int(np.searchsorted(offsets, offsets[k0] + max_atoms, "right")) - 1)
        k1 = min(k1, n)
        yield k0, k1
        k0 = k1


def slice_batch(batch, k0, k1):
    """Configurations k0:k1 of a ConfigBatch as a ConfigBatch."""
    a, b = batch.offsets[k0], batch.offsets[k1]
    per_atom = {"numbers", "positions", "forces"}
    fields = {}
    for name in batch._fields:
        value = getattr(batch, name)
        if name == "offsets":
            fields[name] = value[k0 : k1 + 1] - a
        elif name in per_atom:
            fields[name] = value[a:b]
        else:
            fields[name] = value[k0:k1]
    return type(batch)(**fields)


def passes_of(ds, chunk_size: int, start: int = 0, stop: int | None = None):
    """Configurations ``start:stop`` of the open dataset ``ds`` as ConfigBatch passes of at
    most :data:`PASS_ATOMS` atoms, read ``chunk_size`` configurations at a time. With
    ``start`` a multiple of ``chunk_size`` these are exactly the passes of the whole dataset
    that fall in the range (the sharded writer relies on it)."""
    stop = len(ds) if stop is None else stop
    return (slice_batch(batch, k0, k1)
            for first in range(start, stop, chunk_size)
            for batch in (ds.read_batch(first, min(first + chunk_size, stop)),)
            for k0, k1 in passes(batch.offsets, PASS_ATOMS))


def open_output(f, descriptor, offsets, derivatives, dtype, first_row: int = 0) -> dict:
    """Create the (empty, growable) datasets of the layout in the open file ``f`` for the
    configurations with atom ``offsets`` (n + 1,) starting at 0; returns the handles
    :func:`flush` appends to. ``first_row``: the flat-atom row of the first atom written
    (``elements/<Sym>/atoms`` hold rows of the whole dataset; 0 for a whole file)."""
    F = descriptor.n_features
    out = {"offsets": f.create_dataset("offsets", data=np.asarray(offsets, np.int64))}
    out["numbers"] = appendable(f, "numbers", (), np.int16, 8192, compress=False)
    out["periodic"] = appendable(f, "periodic", (), bool, 1024, compress=False)
    rows = max(16, (1 << 16) // (8 * F))
    for z in descriptor.elements:
        group = f.create_group(f"elements/{chemical_symbols[z]}")
        out[(z, "values")] = appendable(group, "values", (F,), np.float64, rows)
        out[(z, "atoms")] = appendable(group, "atoms", (), np.int64, 8192, compress=False)
        out[(z, "offsets")] = group.create_dataset(
            "offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(1024,))
    if derivatives:
        g = f.create_group("derivatives")
        block_rows = max(16, (1 << 16) // (dtype.itemsize * 3 * F))
        out["block_offsets"] = g.create_dataset("offsets", data=np.zeros(1, np.int64),
                                                maxshape=(None,), chunks=(1024,))
        out["centre"] = appendable(g, "centre", (), np.int32, 16384)
        out["neighbour"] = appendable(g, "neighbour", (), np.int32, 16384)
        # Derivative floats barely compress (~10 % with shuffle + gzip) but would cost more time
        # than the features themselves to write and to read back every epoch: stored raw.
        out["blocks"] = appendable(g, "blocks", (F, 3), dtype, block_rows, compress=False)
        strain_shape = (F, 6) if dtype == np.float16 else (F, 3, 3)
        out["strain"] = appendable(f, "strain", strain_shape, dtype, max(4, block_rows // 3),
                                   compress=False)
    out["atoms_written"] = int(first_row)
    return out


class DiskRoom:
    """Stops a features write that will not fit its disk as soon as that is clear, not when
    the disk fills hours later: after each computed pass, the bytes per atom so far times the
    atoms not yet written, against the space free in the output's directory."""

    def __init__(self, output, n_atoms: int):
        self.output, self.n_atoms = Path(output), int(n_atoms)

    def check(self, bytes_seen: int, atoms_seen: int, atoms_written: int) -> None:
        """Raise :class:`InputError` if the atoms not yet written, at the bytes per atom of
        the ``atoms_seen`` computed so far, exceed the free space."""
        remaining = self.n_atoms - atoms_written
        if atoms_seen <= 0 or remaining <= 0:
            return
        per_atom = bytes_seen / atoms_seen
        free = free_bytes(self.output.parent)
        if per_atom * remaining > free:
            raise InputError(
                f"{self.output}: will not fit the disk: ~{format_bytes(per_atom * remaining)} "
                f"more for the remaining {remaining:,} atoms ({format_bytes(per_atom)} per "
                f"atom so far), {format_bytes(free)} free in {self.output.parent}: free "
                "space, write elsewhere, or store the derivatives as float16 (derivative "
                "dtype), about half the size; nothing was written")


def write_all(out, computed, descriptor, train, stats, bar=None, first_config: int = 0,
              room: DiskRoom | None = None) -> int:
    """Append the ``(part, ChunkFeatures)`` pairs of ``computed`` in order, flushing whenever
    the buffered derivative floats pass :data:`FLUSH_FLOATS`; returns blocks written.
    ``train[k - first_config]`` says whether configuration k is in the training split (its
    atoms go into ``stats``, {Z: :class:`RunningStats`}); ``room`` checks after each pass
    that the rest will fit the disk."""
    n_blocks, buffer, buffered = 0, [], 0
    bytes_seen = atoms_seen = atoms_written = 0
    for part, chunk in computed:
        buffer.append((part, chunk))
        buffered += 0 if chunk.blocks is None else chunk.blocks.size
        bytes_seen += _nbytes(chunk)
        atoms_seen += len(part.numbers)
        if room is not None:
            room.check(bytes_seen, atoms_seen, atoms_written)
        if buffered >= FLUSH_FLOATS:
            n_blocks += flush(out, buffer, descriptor, train, stats, first_config)
            atoms_written = atoms_seen
            buffer, buffered = [], 0
        if bar is not None:
            bar.update(len(part))
    return n_blocks + flush(out, buffer, descriptor, train, stats, first_config)


def _nbytes(chunk) -> int:
    """Bytes a chunk adds to the file, uncompressed (indices stored as int32)."""
    total = chunk.values.nbytes
    for name in ("blocks", "strain"):
        array = getattr(chunk, name)
        total += 0 if array is None else array.nbytes
    return total + (0 if chunk.centre is None else 8 * len(chunk.centre))


def flush(out, buffer, descriptor, train, stats, first_config: int = 0) -> int:
    """Append buffered (ConfigBatch, ChunkFeatures) pairs; returns derivative blocks written."""
    if not buffer:
        return 0
    numbers = np.concatenate([part.numbers for part, _ in buffer])
    values = np.concatenate([c.values for _, c in buffer])
    counts = np.concatenate([np.diff(part.offsets) for part, _ in buffer])
    indices = np.concatenate([part.indices for part, _ in buffer])
    config_of_atom = np.repeat(np.arange(len(indices)), counts)
    in_train = train[indices - first_config][config_of_atom]
    rows = out["atoms_written"] + np.arange(len(numbers))
    append(out["numbers"], numbers.astype(np.int16))
    append(out["periodic"], np.concatenate([c.periodic for _, c in buffer]))
    for z in descriptor.elements:
        mine = numbers == z
        append(out[(z, "values")], values[mine])
        append(out[(z, "atoms")], rows[mine])
        offsets = out[(z, "offsets")]
        per_config = np.bincount(config_of_atom[mine], minlength=len(indices))
        append(offsets, offsets[-1] + np.cumsum(per_config))
        stats[z].update(values[mine & in_train])
    out["atoms_written"] += len(numbers)
    if "blocks" not in out:
        return 0
    chunks = [c for _, c in buffer]
    block_counts = np.concatenate([c.block_counts for c in chunks])
    append(out["block_offsets"], out["block_offsets"][-1] + np.cumsum(block_counts))
    append(out["centre"], np.concatenate([c.centre for c in chunks]).astype(np.int32))
    append(out["neighbour"], np.concatenate([c.neighbour for c in chunks]).astype(np.int32))
    append(out["blocks"], np.concatenate([c.blocks for c in chunks]))
    append(out["strain"], np.concatenate([c.strain for c in chunks]))
    return int(block_counts.sum())


def finish(f, descriptor, stats, dataset, split_info, n_train) -> None:
    """Write the statistics ({Z: :class:`RunningStats`}: mean, std, count) and the root
    attributes of a features file (the layout's list)."""
    for z in descriptor.elements:
        group = f[f"elements/{chemical_symbols[z]}"]
        group.create_dataset("mean", data=stats[z].mean)
        group.create_dataset("std", data=stats[z].std)
        group.attrs["count"] = stats[z].count
    f.attrs["format"] = FORMAT_NAME
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["descriptor"] = descriptor.to_json()
    f.attrs["labels"] = json.dumps(list(descriptor.labels))
    f.attrs["dataset"] = str(dataset)
    f.attrs["dataset_sha256"] = sha256_file(dataset)
    f.attrs["split"] = json.dumps({**split_info, "n_train": n_train})
    f.attrs["derivative_dtype"] = str(f["derivatives/blocks"].dtype) if "derivatives" in f else ""
    f.attrs["pesnet_version"] = __version__
