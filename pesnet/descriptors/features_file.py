"""The features file (HDF5): descriptor values, sparse derivatives and standardisation statistics.

Layout (n configurations, N atoms, F features, N_e atoms of element e, M derivative blocks)::

    offsets                  (n + 1,)      int64    configuration k: atoms offsets[k]:offsets[k+1]
    numbers                  (N,)          int16    atomic numbers (same rows as the dataset)
    periodic                 (n,)          bool     configuration has a periodic axis
    elements/<Sym>/values    (N_e, F)      float64  raw (unstandardised) features
    elements/<Sym>/atoms     (N_e,)        int64    row of each in the flat atom arrays
    elements/<Sym>/offsets   (n + 1,)      int64    element rows of configuration k
    elements/<Sym>/mean, std (F,)          float64  over the atoms of the training split
    derivatives/offsets      (n + 1,)      int64    blocks of configuration k
    derivatives/centre       (M,)          int32    configuration-local atom index i
    derivatives/neighbour    (M,)          int32    configuration-local atom index j
    derivatives/blocks       (M, F, 3)     float32  ∂G_i/∂r_j (1/Å), images summed
    strain                   (N, F, 3, 3)  float32  ∂G_i/∂ε (zero rows where not periodic)
                          or (N, F, 6)     float16  its symmetric part, Voigt xx yy zz yz xz xy

``derivatives`` and ``strain`` are absent when written with ``derivatives=False``. Attributes:
``format`` = ``"pesnet-features"``, ``format_version``, ``descriptor`` (JSON parameters,
whose ``kind`` names the descriptor kind; none in older files: ACSF),
``labels`` (JSON), ``dataset`` and ``dataset_sha256``, ``split`` (JSON: fractions, seed, number
of training configurations), ``derivative_dtype``, ``pesnet_version``.

A sharded file (:mod:`.sharded_features`, written by Dask workers in parallel) has the same
datasets, read the same way: the per-atom and per-block arrays are HDF5 virtual datasets over
shard files beside it (``features.shards/``), the offsets and statistics are its own, and the
root attribute ``shards`` lists the shards, each checked when the file is opened
(:mod:`.shard_index`).

Derivatives are stored in float32 by default: forces −Σ_i (∂E/∂G_i)·(∂G_i/∂r_j) formed from
them agree with float64 blocks to ~1e-7 of the RMS force (``test_featurize.py`` checks 1e-6),
at half the size. ``float16`` halves that again (blocks, and the strain derivatives as their
six independent components — a rotation-invariant G has a symmetric ∂G/∂ε): each entry keeps
~3 significant digits (relative error ≤ 2⁻¹¹ ≈ 5e-4, absolute ≤ 3e-8 below 6e-5), and entries
beyond 65504 are refused when written. Values and statistics stay float64. Every array is chunked; values and index
arrays are gzip-compressed, derivative blocks and strain are not: measured on 720 Cu
configurations (32 atoms, 21 features, 6 Å), shuffle + gzip saved 12 % of the 205 MB but made
writing 20 % and reading an epoch 5× slower (1.2 s instead of 0.25 s).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from ase.data import chemical_symbols

from pesnet.descriptors.registry import descriptor_from_params
from pesnet.descriptors.shard_index import check_shards, shard_records
from pesnet.errors import DataFormatError
from pesnet.fileio import open_hdf5

FORMAT_NAME = "pesnet-features"
FORMAT_VERSION = 1


#: The scale given to a feature without support in the training data (see :class:`Stats`):
#: its standardised value (G − μ)/s and every derivative of it are below 1e-290 for any
#: descriptor value under 1e10, i.e. zero to the networks, while the scale stays a finite
#: number every model file reader accepts.
IGNORED_FEATURE_SCALE = 1e300


#: Index pairs (a, b) of the six Voigt components xx, yy, zz, yz, xz, xy of a 3 × 3 tensor.
VOIGT_PAIRS = (np.array([0, 1, 2, 1, 0, 0]), np.array([0, 1, 2, 2, 2, 1]))


def symmetric_strain(strain: np.ndarray) -> np.ndarray:
    """The symmetric part of strain derivatives ∂G/∂ε (..., 3, 3) as six components
    (..., 6) in Voigt order xx, yy, zz, yz, xz, xy. A rotation-invariant G has a symmetric
    ∂G/∂ε (an infinitesimal rotation, the antisymmetric part of ε, leaves it unchanged), so
    nothing is lost; :func:`full_strain` inverts it."""
    a, b = VOIGT_PAIRS
    return 0.5 * (strain[..., a, b] + strain[..., b, a])


def full_strain(strain: np.ndarray) -> np.ndarray:
    """Strain derivatives as (..., 3, 3): ``strain`` itself if it has that shape, else the
    symmetric tensor of its six Voigt components (..., 6) (the float16 layout)."""
    if strain.shape[-1] != 6:
        return strain
    a, b = VOIGT_PAIRS
    full = np.empty(strain.shape[:-1] + (3, 3), strain.dtype)
    full[..., a, b] = strain
    full[..., b, a] = strain
    return full


#: Smallest training std (per feature) whose derivatives float16 storage resolves: its
#: absolute rounding floor, 3e-8 /Å, is then ≤ 3e-3 of the feature's scale.
HALF_MIN_FEATURE_STD = 1e-5


class Stats(NamedTuple):
    """Per-feature mean and standard deviation (F,) of one element over the training split;
    ``count`` atoms contributed. Standardise with (G − mean) / scale.

    ``min_std`` > 0 ignores the features whose training standard deviation is below it: a
    Gaussian shell where no neighbour of the training data ever sits has a std of 1e-6 or
    less, so (G − μ)/σ of a structure with one bond compressed or stretched into that shell
    is 10⁴–10⁶ and the networks' answer there is arbitrary (on DFT ethanol, the atomic force
    errors of 7–16 eV/Å on frames with one stretched bond). Such a feature carries no
    information the training data could fit, so its scale becomes
    :data:`IGNORED_FEATURE_SCALE` and its standardised value 0.

    ``floor`` (F,), if given, is a least scale for the features not ignored (training sets
    it from the features' ranges: ``TrainSettings.feature_range_scale``).
    """

    mean: np.ndarray
    std: np.ndarray
    count: int
    min_std: float = 0.0
    floor: np.ndarray | None = None

    @property
    def scale(self) -> np.ndarray:
        """``std`` with zeros (constant features) replaced by 1 — or, with ``min_std`` > 0,
        every std below it by :data:`IGNORED_FEATURE_SCALE` — and raised to ``floor`` where
        one is given and the feature is not ignored, (F,)."""
        if self.min_std > 0:
            scale = np.where(self.std >= self.min_std, self.std, IGNORED_FEATURE_SCALE)
        else:
            scale = np.where(self.std > 0, self.std, 1.0)
        if self.floor is not None:
            scale = np.where(scale == IGNORED_FEATURE_SCALE, scale, np.maximum(scale, self.floor))
        return scale

    @property
    def ignored(self) -> np.ndarray:
        """Indices of the features ignored by ``min_std``, (k,)."""
        return np.flatnonzero(self.std < self.min_std) if self.min_std > 0 else np.zeros(0, int)


class ElementRows(NamedTuple):
    """The atoms of one element in a :class:`FeatureBatch`.

    ``rows`` (N_e,) index the batch's flat atom arrays; ``config`` (N_e,) is the batch-local
    configuration; ``values`` (N_e, F).
    """

    rows: np.ndarray
    config: np.ndarray
    values: np.ndarray


class FeatureBatch(NamedTuple):
    """Features of some configurations, laid out for training (n_b configs, N_b atoms).

    ``indices`` (n_b,) dataset configuration indices; ``offsets`` (n_b + 1,) batch-local atom
    offsets; ``numbers`` (N_b,); ``elements`` {Z: :class:`ElementRows`}. With derivatives:
    ``block_offsets`` (n_b + 1,), ``centres``/``neighbours`` (M_b,) batch-local atom rows,
    ``derivatives`` (M_b, F, 3) float64, ``strain`` (N_b, F, 3, 3) float64, and ``periodic``
    (n_b,); otherwise those are ``None``. When standardised, values are (G − mean)/scale of the
    atom's element and every derivative of atom i's features is divided by that scale too.
    """

    indices: np.ndarray
    offsets: np.ndarray
    numbers: np.ndarray
    elements: dict
    periodic: np.ndarray
    block_offsets: np.ndarray | None
    centres: np.ndarray | None
    neighbours: np.ndarray | None
    derivatives: np.ndarray | None
    strain: np.ndarray | None


def _runs(indices: np.ndarray):
    """Split indices into runs of consecutive values: yields (start, stop) pairs in order."""
    if len(indices) == 0:
        return
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    for part in np.split(indices, breaks):
        yield int(part[0]), int(part[-1]) + 1


def _gather(dataset, offsets: np.ndarray, indices: np.ndarray):
    """Rows offsets[k]:offsets[k+1] of ``dataset`` for each k in ``indices``, concatenated,
    reading each run of consecutive configurations with one slice. Returns (rows, counts)."""
    parts = [dataset[offsets[a] : offsets[b]] for a, b in _runs(indices)]
    counts = offsets[indices + 1] - offsets[indices]
    if not parts:
        return dataset[0:0], counts
    return np.concatenate(parts), counts


class FeaturesFile:
    """A features file opened for reading (see the module doc for its layout)."""

    def __init__(self, path):
        self.path = Path(path)
        self._file = open_hdf5(self.path, "features file", FORMAT_NAME, FORMAT_VERSION)
        attrs = self._file.attrs
        try:
            check_shards(self.path, attrs)  # a missing shard would read as zeros
        except DataFormatError:
            self._file.close()
            raise
        self.params = json.loads(attrs["descriptor"])
        self.descriptor = descriptor_from_params(self.params)
        self.labels = tuple(json.loads(attrs["labels"]))
        self.dataset_sha256 = str(attrs["dataset_sha256"])
        #: the dataset path featurize recorded (as given then; may be relative), or None
        self.dataset_path = str(attrs["dataset"]) if "dataset" in attrs else None
        self.split = json.loads(attrs["split"])
        self.offsets = self._file["offsets"][:]
        self._element_offsets = {z: self._file[f"elements/{chemical_symbols[z]}/offsets"][:]
                                 for z in self.elements}
        self._periodic = self._file["periodic"][:]
        self._stats = None
        self._arrays = {}
        #: features whose training std is below this are ignored (:class:`Stats`); 0: none
        self.min_feature_std = 0.0
        #: {Z: (F,)} least scale of each feature (:class:`Stats` ``floor``), or None
        self.scale_floor = None
        self.has_derivatives = "derivatives" in self._file
        self._block_offsets = (self._file["derivatives/offsets"][:] if self.has_derivatives
                               else None)
        self._size = self._current_size()
        self._hold_shards()
        #: storage type of the derivative blocks (None without derivatives)
        self.derivative_dtype = (self._file["derivatives/blocks"].dtype if self.has_derivatives
                                 else None)

    def _current_size(self) -> int | None:
        """Bytes of the open file now (None where the HDF5 driver hides its descriptor)."""
        try:
            return os.fstat(self._file.id.get_vfd_handle()).st_size
        except (OSError, TypeError, ValueError):
            return None

    def _hold_shards(self) -> None:
        """Open every shard of a sharded file now and keep it open (one file descriptor
        each) by reading one row of each mapping of each virtual dataset: a features file
        replaced after this (its shards deleted with it) then keeps reading its own shards, as a
        plain file keeps reading its replaced inode, instead of zeros where HDF5 finds a source
        missing. ~0.1 ms per shard and array."""
        if shard_records(self._file.attrs) is None:
            return
        for name in ("numbers", "periodic", "strain", "derivatives/centre",
                     "derivatives/neighbour", "derivatives/blocks",
                     *(f"elements/{chemical_symbols[z]}/values" for z in self.elements)):
            if name in self._file and self._file[name].is_virtual:
                array = self._array(name)
                for source in array.virtual_sources():
                    start, _ = source.vspace.get_select_bounds()
                    try:
                        array[start[0]]
                    except OSError as error:
                        self.close()
                        raise DataFormatError(f"{self.path}: cannot read its shard "
                                              f"{source.file_name} ({error})") from None

    def check_intact(self) -> None:
        """Raise :class:`DataFormatError` if the open file changed size since it was opened:
        truncated or written in place under a reader (HDF5 reads zeros past the end, so a
        truncated file would otherwise train on zeros). Replacing it by a rename is harmless:
        this handle keeps reading the old file."""
        now = self._current_size()
        if now != self._size:
            raise DataFormatError(f"{self.path}: changed while being read ({now} bytes, "
                                  f"{self._size} when opened): truncated or overwritten in "
                                  f"place; featurize again")

    # -- lifetime -----------------------------------------------------------------------
    def close(self) -> None:
        self._arrays = {}
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- metadata -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.offsets) - 1

    def atom_counts(self, indices=None) -> np.ndarray:
        """Atoms of each configuration ``indices`` (default all), (n,)."""
        counts = np.diff(self.offsets)
        return counts if indices is None else counts[np.asarray(indices)]

    def block_counts(self, indices=None) -> np.ndarray:
        """Derivative blocks of each configuration ``indices`` (default all), (n,); zeros
        when the file has no derivatives."""
        counts = (np.diff(self._block_offsets) if self.has_derivatives
                  else np.zeros(len(self), np.int64))
        return counts if indices is None else counts[np.asarray(indices)]

    @property
    def elements(self) -> tuple[int, ...]:
        return self.descriptor.elements

    @property
    def n_features(self) -> int:
        return self.descriptor.n_features

    @property
    def stats(self) -> dict[int, Stats]:
        """{Z: :class:`Stats`} over the training split."""
        key = (self.min_feature_std, id(self.scale_floor))
        if self._stats is None or self._stats[0] != key:
            stats = {}
            for z in self.elements:
                group = self._file[f"elements/{chemical_symbols[z]}"]
                floor = None if self.scale_floor is None else self.scale_floor[z]
                stats[z] = Stats(group["mean"][:], group["std"][:], int(group.attrs["count"]),
                                 self.min_feature_std, floor)
            self._stats = (key, stats)
        return self._stats[1]

    def value_ranges(self, indices, chunk: int = 2048) -> dict[int, tuple]:
        """{Z: (min, max)} (F,) each of the raw feature values of the configurations
        ``indices``, read ``chunk`` configurations at a time (bounded memory); an element
        with no atom there gets zeros."""
        F = self.n_features
        low = {z: np.full(F, np.inf) for z in self.elements}
        high = {z: np.full(F, -np.inf) for z in self.elements}
        indices = np.sort(np.asarray(indices, dtype=np.int64))
        for start in range(0, len(indices), chunk):
            batch = self.read_batch(indices[start:start + chunk], standardise=False,
                                    derivatives=False, strain=False)
            for z, rows in batch.elements.items():
                if len(rows.values):
                    low[z] = np.minimum(low[z], rows.values.min(axis=0))
                    high[z] = np.maximum(high[z], rows.values.max(axis=0))
        return {z: (np.where(np.isfinite(low[z]), low[z], 0.0),
                    np.where(np.isfinite(high[z]), high[z], 0.0)) for z in self.elements}

    @property
    def acsf(self):
        """The descriptor (its name from when ACSF was the only kind)."""
        return self.descriptor

    def check_descriptor(self, descriptor) -> None:
        """Raise :class:`DataFormatError` unless ``descriptor`` has exactly this file's
        parameters."""
        if descriptor != self.descriptor:
            raise DataFormatError(
                f"{self.path}: features were computed with descriptor {self.descriptor!r}, "
                f"not {descriptor!r}; re-run `pesnet featurize` with the model's descriptor "
                "parameters")

    def check_dataset(self, dataset_path) -> None:
        """Raise :class:`DataFormatError` unless the file at ``dataset_path`` is the dataset
        these features were computed from (same SHA-256)."""
        from pesnet.fileio import sha256_file

        digest = sha256_file(dataset_path)
        if digest != self.dataset_sha256:
            raise DataFormatError(
                f"{self.path}: features belong to a dataset with SHA-256 "
                f"{self.dataset_sha256[:12]}…, but {dataset_path} has {digest[:12]}…")

    # -- reading ------------------------------------------------------------------------
    def _array(self, name: str):
        """The open dataset ``name``, opened once: reopening it for every batch cost
        ~0.2 ms per read of a plain file and ~0.4 ms through a sharded file's virtual
        datasets (which reopen their shards), more than reading a configuration."""
        handle = self._arrays.get(name)
        if handle is None:
            handle = self._arrays[name] = self._file[name]
        return handle

    def read_batch(self, config_indices, standardise: bool = True,
                   derivatives: bool = True, strain: bool = True) -> FeatureBatch:
        """Features of the given configurations (in the given order) as a :class:`FeatureBatch`.

        Each run of consecutive configuration indices is read as one slice per array.
        ``strain=False`` leaves the strain derivatives (``strain`` None) unread.
        """
        indices = np.atleast_1d(np.asarray(config_indices, dtype=np.int64))
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"configuration index out of range for {len(self)} configurations")
        array = self._array
        numbers, counts = _gather(array("numbers"), self.offsets, indices)
        numbers = numbers.astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        stats = self.stats if standardise else None
        config_of_atom = np.repeat(np.arange(len(indices)), counts)
        elements, scale_of_atom = {}, np.ones((len(numbers), self.n_features))
        for z in self.elements:
            values, _ = _gather(array(f"elements/{chemical_symbols[z]}/values"),
                                self._element_offsets[z], indices)
            rows = np.flatnonzero(numbers == z)
            if standardise:
                values = (values - stats[z].mean) / stats[z].scale
                scale_of_atom[rows] = stats[z].scale
            elements[z] = ElementRows(rows, config_of_atom[rows], values)
        periodic = self._periodic[indices]
        if not (derivatives and self.has_derivatives):
            return FeatureBatch(indices, offsets, numbers, elements, periodic,
                                None, None, None, None, None)
        centre, n_blocks = _gather(array("derivatives/centre"), self._block_offsets, indices)
        neighbour, _ = _gather(array("derivatives/neighbour"), self._block_offsets, indices)
        blocks, _ = _gather(array("derivatives/blocks"), self._block_offsets, indices)
        shift = np.repeat(offsets[:-1], n_blocks)
        centre = centre.astype(np.int64) + shift
        neighbour = neighbour.astype(np.int64) + shift
        blocks = blocks.astype(np.float64)
        if strain:
            strain, _ = _gather(array("strain"), self.offsets, indices)
            strain = full_strain(strain.astype(np.float64))
        else:
            strain = None
        if standardise:
            blocks /= scale_of_atom[centre][:, :, None]
            if strain is not None:
                strain /= scale_of_atom[:, :, None, None]
        block_offsets = np.concatenate([[0], np.cumsum(n_blocks)])
        return FeatureBatch(indices, offsets, numbers, elements, periodic, block_offsets,
                            centre, neighbour, blocks, strain)

    def iter_batches(self, batch_size: int, indices=None, standardise: bool = True,
                     derivatives: bool = True):
        """Yield :class:`FeatureBatch` es of ``batch_size`` configurations (bounded memory)."""
        indices = np.arange(len(self)) if indices is None else np.asarray(indices)
        for start in range(0, len(indices), batch_size):
            yield self.read_batch(indices[start : start + batch_size], standardise, derivatives)

    def __repr__(self) -> str:
        return (f"FeaturesFile({str(self.path)!r}, n_configs={len(self)}, "
                f"n_features={self.n_features}, derivatives={self.has_derivatives})")
