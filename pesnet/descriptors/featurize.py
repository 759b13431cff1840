"""Featurize a dataset: descriptor values and derivatives of every configuration into a
features file.

Streams the dataset in chunks of configurations and flushes the output whenever the buffered
derivative blocks pass a size limit, so memory stays bounded however large the dataset is.
:func:`featurize_batch` is a pure function of a :class:`~pesnet.data.ConfigBatch`, the unit a
scheduler (e.g. Dask) can fan out. The file layout is in :mod:`.features_file`.
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from pesnet import __version__
from pesnet.data import Dataset, split_indices
from pesnet.data.split import Split, fixed_split
from pesnet.descriptors.bond_descriptor import BondDescriptor, FlatResult
from pesnet.descriptors.defaults import default_acsf
from pesnet.descriptors.features_file import FORMAT_NAME, FORMAT_VERSION, symmetric_strain
from pesnet.descriptors.registry import descriptor_from_params
from pesnet.errors import InputError
from pesnet.fileio import atomic_output, sha256_file

_COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
_FLUSH_FLOATS = 1 << 23  # buffered derivative floats (~32 MB in float32) before a flush
_PASS_ATOMS = 512  # atoms computed in one vectorised pass (compute_flat)
#: Storage types of derivative blocks and strain derivatives (see :mod:`.features_file`).
DERIVATIVE_DTYPES = (np.float16, np.float32, np.float64)


class ChunkFeatures(NamedTuple):
    """Features of a run of configurations (n_c configs, N_c atoms, M_c blocks, F features).

    ``values`` (N_c, F); ``periodic`` (n_c,); ``block_counts`` (n_c,); ``centre``/``neighbour``
    (M_c,) configuration-local atom indices; ``blocks`` (M_c, F, 3); ``strain``
    (N_c, F, 3, 3). The derivative fields are ``None`` for values only.
    """

    values: np.ndarray
    periodic: np.ndarray
    block_counts: np.ndarray | None
    centre: np.ndarray | None
    neighbour: np.ndarray | None
    blocks: np.ndarray | None
    strain: np.ndarray | None


def featurize_batch(descriptor, batch, derivatives: bool = True, source="dataset",
                    dtype=np.float32) -> ChunkFeatures:
    """Features of every configuration of a :class:`~pesnet.data.ConfigBatch` by
    ``descriptor`` (a :class:`~pesnet.descriptors.protocol.Descriptor`).

    ``source`` names the dataset in error messages; ``dtype`` is that of blocks and strain.
    A kind with ``compute_flat`` (every :class:`BondDescriptor`) computes the batch as one
    :class:`FlatResult`; any other kind through ``compute_many``, one result per
    configuration.
    """
    frames = [Atoms(numbers=batch.numbers[a:b], positions=batch.positions[a:b],
                    cell=batch.cell[k], pbc=batch.pbc[k])
              for k, (a, b) in enumerate(zip(batch.offsets, batch.offsets[1:]))]
    where = [(source, int(index)) for index in batch.indices]
    if isinstance(descriptor, BondDescriptor):
        flat = descriptor.compute_flat(frames, derivatives, where)
    else:
        flat = _flat_of_results(descriptor.compute_many(frames, derivatives, where), frames,
                                descriptor.n_features, derivatives)
    if not derivatives:
        return ChunkFeatures(flat.values, flat.periodic, None, None, None, None, None)
    F = descriptor.n_features
    strain = (np.zeros((len(flat.values), F, 3, 3)) if flat.strain is None else flat.strain)
    blocks = flat.derivatives
    if dtype == np.float16:
        strain = symmetric_strain(strain)
        with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below
            blocks, strain = blocks.astype(dtype), strain.astype(dtype)
        _check_half_range(blocks, strain, flat, batch.indices, source)
    return ChunkFeatures(flat.values, flat.periodic, np.diff(flat.block_offsets),
                         flat.centres.astype(np.int64, copy=False),
                         flat.neighbours.astype(np.int64, copy=False),
                         blocks.astype(dtype, copy=False), strain.astype(dtype, copy=False))


def _check_half_range(blocks, strain, flat, indices, source) -> None:
    """``InputError`` naming the configuration if a derivative overflowed float16."""
    bad_blocks = ~np.isfinite(blocks).all(axis=(1, 2))
    bad_atoms = ~np.isfinite(strain).all(axis=(1, 2))
    if not (bad_blocks.any() or bad_atoms.any()):
        return
    k = len(indices)
    if bad_blocks.any():
        k = np.searchsorted(flat.block_offsets, np.flatnonzero(bad_blocks)[0], side="right") - 1
    if bad_atoms.any():
        k = min(k, np.searchsorted(flat.offsets, np.flatnonzero(bad_atoms)[0], side="right") - 1)
    raise InputError(f"{source}: configuration {int(indices[k])}: a descriptor derivative is "
                     f"beyond float16's range (65504); featurize with derivative dtype float32")


def _flat_of_results(results, frames, F: int, derivatives: bool) -> FlatResult:
    """One :class:`FlatResult` of per-configuration :class:`DescriptorResult` s."""
    counts = np.array([len(atoms) for atoms in frames], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    periodic = np.array([bool(atoms.pbc.any()) for atoms in frames], dtype=bool)
    cat = (lambda parts, shape: np.concatenate(parts) if parts else np.zeros(shape))
    values = cat([r.values for r in results], (0, F))
    if not derivatives:
        return FlatResult(values, offsets, periodic)
    n_blocks = np.array([len(r.centres) for r in results], dtype=np.int64)
    strain = cat([np.zeros((len(atoms), F, 3, 3)) if r.strain_derivatives is None
                  else r.strain_derivatives for atoms, r in zip(frames, results)], (0, F, 3, 3))
    return FlatResult(values, offsets, periodic, np.concatenate([[0], np.cumsum(n_blocks)]),
                      cat([r.centres for r in results], (0,)).astype(np.int64),
                      cat([r.neighbours for r in results], (0,)).astype(np.int64),
                      cat([r.derivatives for r in results], (0, F, 3)), strain)


class _RunningStats:
    """Mean and variance per feature, merged chunk by chunk (Chan et al.), for one element."""

    def __init__(self, n_features: int):
        self.count, self.mean, self.m2 = 0, np.zeros(n_features), np.zeros(n_features)

    def update(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        n, mean = len(rows), rows.mean(axis=0)
        m2 = ((rows - mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.count) if self.count else np.zeros_like(self.mean)


def _appendable(group, name, shape, dtype, chunk_rows, compress=True):
    chunks = (chunk_rows,) + tuple(shape)
    return group.create_dataset(name, (0,) + tuple(shape), dtype, maxshape=(None,) + tuple(shape),
                                chunks=chunks, **(_COMPRESSION if compress else {}))


def _append(dataset, rows) -> None:
    n = dataset.shape[0]
    dataset.resize(n + len(rows), axis=0)
    dataset[n:] = rows


class FeaturizeSummary(NamedTuple):
    """What :func:`featurize` wrote: counts, features, derivative blocks, bytes, seconds."""

    path: Path
    n_configs: int
    n_atoms: int
    n_features: int
    n_blocks: int
    file_bytes: int
    seconds: float

    def format(self) -> str:
        return (f"{self.path}: {self.n_configs} configurations, {self.n_atoms} atoms, "
                f"{self.n_features} features, {self.n_blocks} derivative blocks, "
                f"{self.file_bytes / 1e6:.1f} MB in {self.seconds:.1f} s")


def load_descriptor_params(path) -> dict:
    """Descriptor parameters from a JSON or TOML file (keys elements, cutoff, g2, g4, g5,
    optional g3, angular_cutoff; or a registered ``kind`` and its parameters, e.g. ``"ani"``;
    or those under a ``descriptor`` table)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise InputError(f"{path}: cannot read descriptor parameters ({error.strerror})") from None
    try:
        params = json.loads(text) if path.suffix.lower() != ".toml" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise InputError(f"{path}: not valid {kind} ({error})") from None
    if isinstance(params, dict) and isinstance(params.get("descriptor"), dict):
        params = params["descriptor"]
    try:
        descriptor_from_params(params)
    except InputError as error:
        raise InputError(f"{path}: {error}") from None
    return params


def featurize(dataset, output, descriptor=None, derivatives: bool = True,
              split=(0.8, 0.1, 0.1), seed: int = 0, derivative_dtype="float32",
              chunk_size: int = 64, progress: bool = False,
              map_batches=None, acsf=None) -> FeaturizeSummary:
    """Compute the features of every configuration of ``dataset`` into ``output``.

    ``descriptor`` (any :class:`~pesnet.descriptors.protocol.Descriptor`; ``acsf`` is its
    older name) defaults to :func:`~pesnet.descriptors.defaults.default_acsf` of the
    dataset's elements at 6 Å. Standardisation statistics are taken over the training part of
    the split: ``split`` is train/validation/test fractions (``split_indices(n, split, seed)``) or a
    :class:`~pesnet.data.split.Split` of fixed indices; the file records which (``split``
    attribute). The output appears only when everything succeeded.

    ``map_batches(descriptor, parts, derivatives, source, dtype)`` computes the features: it
    takes an iterator of ConfigBatch ``parts`` and yields ``(part, featurize_batch(descriptor,
    part, ...))`` in the same order (default: here, one after the other;
    :mod:`pesnet.distributed.featurize` fans the parts out to a Dask cluster). Writing and statistics stay here, in order, so every
    mapper gives the same file.
    """
    started = time.perf_counter()
    try:
        dtype = np.dtype(derivative_dtype)
    except TypeError:
        dtype = None
    if dtype not in DERIVATIVE_DTYPES:
        raise InputError(f"derivative dtype must be float16, float32 or float64, got "
                         f"{derivative_dtype}")
    dataset = Path(dataset)
    if Path(output).resolve() == dataset.resolve():
        raise InputError(f"{output}: the features file must not overwrite its dataset")
    with Dataset(dataset) as ds:
        descriptor = descriptor if descriptor is not None else acsf
        if descriptor is None:
            descriptor = default_acsf(ds.elements or [1], 6.0)
        n, F = len(ds), descriptor.n_features
        parts, split_info = _split_parts(split, seed, n)
        train = np.zeros(n, bool)
        train[parts.train] = True
        stats = {z: _RunningStats(F) for z in descriptor.elements}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(disable=None, total=n, unit=" configs", desc="featurize", leave=False)
        try:
            with atomic_output(output, suffix=".h5.tmp") as tmp, h5py.File(tmp, "w") as f:
                out = _open_output(f, descriptor, ds, derivatives, dtype)
                computed = (map_batches or _map_local)(
                    descriptor, _passes_of(ds, chunk_size), derivatives, dataset, dtype)
                n_blocks = _write_all(out, computed, descriptor, train, stats, bar)
                _finish(f, descriptor, stats, dataset, split_info, int(train.sum()))
        finally:
            if bar is not None:
                bar.close()
        n_atoms = ds.n_atoms_total
    return FeaturizeSummary(Path(output), n, n_atoms, F, n_blocks, Path(output).stat().st_size,
                            time.perf_counter() - started)


def _passes_of(ds, chunk_size: int):
    """The dataset's configurations as ConfigBatch passes of at most :data:`_PASS_ATOMS`
    atoms, read ``chunk_size`` configurations at a time."""
    return (_slice_batch(batch, k0, k1) for batch in ds.iter_chunks(chunk_size)
            for k0, k1 in _passes(batch.offsets, _PASS_ATOMS))


def _write_all(out, computed, descriptor, train, stats, bar) -> int:
    """Append the ``(part, ChunkFeatures)`` pairs of ``computed`` in order, flushing whenever
    the buffered derivative floats pass :data:`_FLUSH_FLOATS`; returns blocks written."""
    n_blocks, buffer, buffered = 0, [], 0
    for part, chunk in computed:
        buffer.append((part, chunk))
        buffered += 0 if chunk.blocks is None else chunk.blocks.size
        if buffered >= _FLUSH_FLOATS:
            n_blocks += _flush(out, buffer, descriptor, train, stats)
            buffer, buffered = [], 0
        if bar is not None:
            bar.update(len(part))
    return n_blocks + _flush(out, buffer, descriptor, train, stats)


def _map_local(descriptor, parts, derivatives, source, dtype):
    """The default ``map_batches``: each part's features computed here, in order."""
    for part in parts:
        yield part, featurize_batch(descriptor, part, derivatives, source, dtype)


def _passes(offsets: np.ndarray, max_atoms: int):
    """Split a batch's configurations into runs (k0, k1) of at most ``max_atoms`` atoms (at
    least one configuration each)."""
    k0, n = 0, len(offsets) - 1
    while k0 < n:
        k1 = max(k0 + 1, int(np.searchsorted(offsets, offsets[k0] + max_atoms, "right")) - 1)
        k1 = min(k1, n)
        yield k0, k1
        k0 = k1


def _slice_batch(batch, k0, k1):
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


def _open_output(f, descriptor, ds, derivatives, dtype) -> dict:
    F = descriptor.n_features
    out = {"offsets": f.create_dataset("offsets", data=ds.offsets.astype(np.int64))}
    out["numbers"] = _appendable(f, "numbers", (), np.int16, 8192, compress=False)
    out["periodic"] = _appendable(f, "periodic", (), bool, 1024, compress=False)
    rows = max(16, (1 << 16) // (8 * F))
    for z in descriptor.elements:
        group = f.create_group(f"elements/{chemical_symbols[z]}")
        out[(z, "values")] = _appendable(group, "values", (F,), np.float64, rows)
        out[(z, "atoms")] = _appendable(group, "atoms", (), np.int64, 8192, compress=False)
        out[(z, "offsets")] = group.create_dataset(
            "offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(1024,))
    if derivatives:
        g = f.create_group("derivatives")
        block_rows = max(16, (1 << 16) // (dtype.itemsize * 3 * F))
        out["block_offsets"] = g.create_dataset("offsets", data=np.zeros(1, np.int64),
                                                maxshape=(None,), chunks=(1024,))
        out["centre"] = _appendable(g, "centre", (), np.int32, 16384)
        out["neighbour"] = _appendable(g, "neighbour", (), np.int32, 16384)
        # Derivative floats barely compress (~10 % with shuffle + gzip) but would cost more time
        # than the features themselves to write and to read back every epoch: stored raw.
        out["blocks"] = _appendable(g, "blocks", (F, 3), dtype, block_rows, compress=False)
        strain_shape = (F, 6) if dtype == np.float16 else (F, 3, 3)
        out["strain"] = _appendable(f, "strain", strain_shape, dtype, max(4, block_rows // 3),
                                    compress=False)
    out["atoms_written"] = 0
    return out


def _flush(out, buffer, descriptor, train, stats) -> int:
    """Append buffered (ConfigBatch, ChunkFeatures) pairs; returns derivative blocks written."""
    if not buffer:
        return 0
    numbers = np.concatenate([part.numbers for part, _ in buffer])
    values = np.concatenate([c.values for _, c in buffer])
    counts = np.concatenate([np.diff(part.offsets) for part, _ in buffer])
    indices = np.concatenate([part.indices for part, _ in buffer])
    config_of_atom = np.repeat(np.arange(len(indices)), counts)
    in_train = train[indices][config_of_atom]
    rows = out["atoms_written"] + np.arange(len(numbers))
    _append(out["numbers"], numbers.astype(np.int16))
    _append(out["periodic"], np.concatenate([c.periodic for _, c in buffer]))
    for z in descriptor.elements:
        mine = numbers == z
        _append(out[(z, "values")], values[mine])
        _append(out[(z, "atoms")], rows[mine])
        offsets = out[(z, "offsets")]
        per_config = np.bincount(config_of_atom[mine], minlength=len(indices))
        _append(offsets, offsets[-1] + np.cumsum(per_config))
        stats[z].update(values[mine & in_train])
    out["atoms_written"] += len(numbers)
    if "blocks" not in out:
        return 0
    chunks = [c for _, c in buffer]
    block_counts = np.concatenate([c.block_counts for c in chunks])
    _append(out["block_offsets"], out["block_offsets"][-1] + np.cumsum(block_counts))
    _append(out["centre"], np.concatenate([c.centre for c in chunks]).astype(np.int32))
    _append(out["neighbour"], np.concatenate([c.neighbour for c in chunks]).astype(np.int32))
    _append(out["blocks"], np.concatenate([c.blocks for c in chunks]))
    _append(out["strain"], np.concatenate([c.strain for c in chunks]))
    return int(block_counts.sum())


def _split_parts(split, seed: int, n: int):
    """(Split, the JSON-able description a features file records) of ``split``: fractions
    with ``seed``, or a :class:`Split` of fixed indices (checked against ``n``)."""
    if isinstance(split, Split):
        parts = fixed_split(n, split.validation, split.test)
        return parts, {"validation": parts.validation.tolist(), "test": parts.test.tolist()}
    return split_indices(n, split, seed), {"fractions": list(map(float, split)),
                                           "seed": int(seed)}


def _finish(f, descriptor, stats, dataset, split_info, n_train) -> None:
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
