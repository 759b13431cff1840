"""Featurize a dataset: descriptor values and derivatives of every configuration into a
features file.

Streams the dataset in chunks of configurations and flushes the output whenever the buffered
derivative blocks pass a size limit, so memory stays bounded however large the dataset is.
:func:`featurize_batch` is a pure function of a :class:`~pesnet.data.ConfigBatch`, the unit a
scheduler (e.g. Dask) can fan out. The file layout is in :mod:`.features_file`; the arrays
and statistics are written by :mod:`.features_writer`.
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

from pesnet.data import Dataset, split_indices
from pesnet.data.split import Split, fixed_split
from pesnet.descriptors.acsf_kernel import check_engine
from pesnet.descriptors.bond_descriptor import BondDescriptor, FlatResult
from pesnet.descriptors.defaults import default_acsf
from pesnet.descriptors.features_file import symmetric_strain
from pesnet.descriptors.features_writer import (
    DiskRoom,
    RunningStats,
    finish,
    open_output,
    passes_of,
    write_all,
)
from pesnet.descriptors.registry import descriptor_from_params
from pesnet.descriptors.shard_index import remove_stale_shards
from pesnet.errors import InputError
from pesnet.fileio import atomic_output

#: Storage types of derivative blocks and strain derivatives (see :mod:`.features_file`).
DERIVATIVE_DTYPES = (np.float16, np.float32, np.float64)


def derivative_storage(derivative_dtype) -> np.dtype:
    """The NumPy dtype of a derivative storage type name (one of :data:`DERIVATIVE_DTYPES`),
    else an :class:`~pesnet.errors.InputError`."""
    try:
        dtype = np.dtype(derivative_dtype)
    except TypeError:
        dtype = None
    if dtype not in DERIVATIVE_DTYPES:
        raise InputError(f"derivative dtype must be float16, float32 or float64, got "
                         f"{derivative_dtype}")
    return dtype


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
    dtype = derivative_storage(derivative_dtype)
    check_engine(descriptor if descriptor is not None else acsf)
    dataset = Path(dataset)
    if Path(output).resolve() == dataset.resolve():
        raise InputError(f"{output}: the features file must not overwrite its dataset")
    with Dataset(dataset) as ds:
        descriptor = descriptor if descriptor is not None else acsf
        if descriptor is None:
            descriptor = default_acsf(ds.elements or [1], 6.0)
        n, F = len(ds), descriptor.n_features
        parts, split_info = split_parts(split, seed, n)
        train = np.zeros(n, bool)
        train[parts.train] = True
        stats = {z: RunningStats(F) for z in descriptor.elements}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(disable=None, total=n, unit=" configs", desc="featurize", leave=False)
        try:
            with atomic_output(output, suffix=".h5.tmp") as tmp, h5py.File(tmp, "w") as f:
                out = open_output(f, descriptor, ds.offsets, derivatives, dtype)
                computed = (map_batches or _map_local)(
                    descriptor, passes_of(ds, chunk_size), derivatives, dataset, dtype)
                n_blocks = write_all(out, computed, descriptor, train, stats, bar,
                                     room=DiskRoom(output, ds.n_atoms_total))
                finish(f, descriptor, stats, dataset, split_info, int(train.sum()))
        finally:
            if bar is not None:
                bar.close()
        remove_stale_shards(output)  # of a sharded file this one replaced
        n_atoms = ds.n_atoms_total
    return FeaturizeSummary(Path(output), n, n_atoms, F, n_blocks, Path(output).stat().st_size,
                            time.perf_counter() - started)


def _map_local(descriptor, parts, derivatives, source, dtype):
    """The default ``map_batches``: each part's features computed here, in order."""
    for part in parts:
        yield part, featurize_batch(descriptor, part, derivatives, source, dtype)


def split_parts(split, seed: int, n: int):
    """(Split, the JSON-able description a features file records) of ``split``: fractions
    with ``seed``, or a :class:`Split` of fixed indices (checked against ``n``)."""
    if isinstance(split, Split):
        parts = fixed_split(n, split.validation, split.test)
        return parts, {"validation": parts.validation.tolist(), "test": parts.test.tolist()}
    return split_indices(n, split, seed), {"fractions": list(map(float, split)),
                                           "seed": int(seed)}
