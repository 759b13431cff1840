"""Checked reading of a model file's arrays: weights, scalers, reference energies.

Every array is checked before and after it is read: it must be a dataset stored in this file
(no external link, no virtual or external storage), of a real floating dtype, of exactly the
shape the descriptor and the network config imply, stored in (about) as many bytes as that
shape claims, and finite in the dtype it will be used in. A config's sizes are therefore only
ever compared with shapes, never used to allocate: a width of 10^6 or 10^9 members is refused
unless the file really holds arrays that large. Failures raise
:class:`~pesnet.errors.DataFormatError` naming the dataset, without the file's path
(:func:`pesnet.potential.io.read_model_group` adds it).
"""

from __future__ import annotations

import h5py
import numpy as np

from pesnet.errors import DataFormatError

# h5py's strongest built-in filter (deflate) cannot shrink data by more than ~1032:1, so a
# dataset claiming more than this many times its stored bytes was never written (unwritten
# chunks read as the fill value) and reading it would allocate memory from a header number.
MAX_EXPANSION = 1100
SMALL_ARRAY_BYTES = 1 << 20   # smaller arrays are read whatever their storage


def member(group: h5py.Group, path: str):
    """The object at ``path`` under ``group`` (None if absent), through hard links only: an
    external link would read another file, and pesnet never writes soft links."""
    obj = group
    for part in path.split("/"):
        if not isinstance(obj, h5py.Group):
            return None
        link = obj.get(part, getlink=True)
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            raise DataFormatError(f"{path} is a {type(link).__name__}, not data in this file")
        obj = obj[part]
    return obj


def subgroup(group: h5py.Group, path: str) -> h5py.Group:
    """The group at ``path``; refused if missing or not a group."""
    obj = member(group, path)
    if not isinstance(obj, h5py.Group):
        raise DataFormatError(f"group {path} is missing")
    return obj


def stored_dataset(group: h5py.Group, path: str, shape: tuple) -> h5py.Dataset:
    """The dataset at ``path`` after the checks that need no reading: present, stored in this
    file, a real floating dtype, the ``shape`` expected, and really stored."""
    ds = member(group, path)
    if not isinstance(ds, h5py.Dataset):
        raise DataFormatError(f"{path} is missing" if ds is None else f"{path} is not a dataset")
    if ds.is_virtual or ds.external:
        raise DataFormatError(f"{path} keeps its data outside this file")
    if ds.dtype.kind != "f":
        raise DataFormatError(f"{path} has dtype {ds.dtype}, not floating point")
    if ds.shape != tuple(shape):
        raise DataFormatError(f"{path} has shape {ds.shape}, expected {tuple(shape)}")
    claimed = ds.size * ds.dtype.itemsize
    stored = ds.id.get_storage_size()
    if claimed > SMALL_ARRAY_BYTES and stored * MAX_EXPANSION < claimed:
        raise DataFormatError(f"{path} claims shape {ds.shape} ({claimed} bytes) but the file "
                              f"stores only {stored} bytes of it")
    return ds


def read_float_array(group: h5py.Group, path: str, shape: tuple,
                     dtype=np.float64) -> np.ndarray:
    """The array at ``path`` of exactly ``shape``, checked as :func:`stored_dataset` says and
    finite once cast to ``dtype`` (1e300 is finite in float64, inf in float32). Returned as
    stored (the caller casts, as before)."""
    ds = stored_dataset(group, path, shape)
    try:
        data = ds[()]
    except (OSError, ValueError, TypeError) as error:
        raise DataFormatError(f"{path} cannot be read ({error})") from None
    with np.errstate(over="ignore"):
        bad = ~np.isfinite(data.astype(dtype, copy=False))
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataFormatError(f"{path} holds {int(bad.sum())} non-finite value(s) in "
                              f"{np.dtype(dtype).name} (first {data[first]} at index {first})")
    return data


def read_network_arrays(group: h5py.Group, symbol: str, sizes: tuple, n_members: int,
                        dtype: str) -> dict:
    """{"W0": (M, n_0, n_1), "b0": (M, n_1), ...} of ``networks/<symbol>`` for a config with
    ``layer_sizes = sizes`` and ``n_members = M``; no other dataset may be there."""
    net = subgroup(group, f"networks/{symbol}")
    n_layers = len(sizes) - 1
    expected = {f"{kind}{layer}" for layer in range(n_layers) for kind in "Wb"}
    extra = sorted(set(net) - expected)
    if extra:
        raise DataFormatError(f"networks/{symbol}/{extra[0]} is not part of the "
                              f"{n_layers}-layer network its config's layer_sizes describe")
    arrays = {}
    for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        for name, shape in ((f"W{layer}", (n_members, n_in, n_out)),
                            (f"b{layer}", (n_members, n_out))):
            path = f"networks/{symbol}/{name}"
            found = member(group, path)
            if found is None:
                raise DataFormatError(f"{path} is missing (the config's layer_sizes ask for "
                                      f"{n_layers} layers)")
            if isinstance(found, h5py.Dataset) and found.shape != shape:
                # the config and the arrays disagree: say which numbers were compared
                raise DataFormatError(f"{path} has shape {found.shape} but the config's "
                                      f"layer_sizes and n_members say {shape}")
            arrays[name] = read_float_array(group, path, shape, dtype)
    return arrays


def read_scaler(group: h5py.Group, symbol: str, n_features: int):
    """(mean (F,), scale (F,)) of ``scalers/<symbol>``; every scale positive."""
    mean = read_float_array(group, f"scalers/{symbol}/mean", (n_features,))
    scale = read_float_array(group, f"scalers/{symbol}/scale", (n_features,))
    # features are divided by their scale: below the smallest normal float 1/scale is inf
    bad = np.flatnonzero(~(scale >= np.finfo(np.float64).tiny))
    if bad.size:
        raise DataFormatError(f"scalers/{symbol}/scale has {bad.size} value(s) that are not "
                              f"positive (first {scale[bad[0]]} at index {int(bad[0])})")
    return mean, scale
