"""The model file (HDF5): everything a potential needs, as plain arrays and JSON attributes.

Layout::

    attrs: format = "pesnet-model", format_version, pesnet_version,
           descriptor (JSON parameters; their ``kind`` names the descriptor kind, ACSF in
           files without one), labels (JSON feature labels),
           elements (JSON atomic numbers), calibration (JSON {"energy", "forces"}),
           metadata (JSON: seeds, training settings and history summary, dataset digest, ...)
    networks/<Sym>/W0, b0, W1, ...   (M, n_in, n_out), (M, n_out); attrs: config (JSON)
    scalers/<Sym>/mean, scale        (F,)
    reference_energies               (n_elements,) eV/atom, in ``elements`` order

Loading reads arrays and JSON only — never pickle — so a model file is data, not code — and
checks all of it before building anything: a damaged file is refused with one line naming
the dataset or attribute at fault. Writing goes through a temporary file and a rename.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from ase.data import chemical_symbols

from pesnet import __version__
from pesnet.errors import DataFormatError, InputError
from pesnet.fileio import atomic_output, check_format, open_hdf5
from pesnet.nn.mlp import MLP
from pesnet.potential.model import Potential
from pesnet.potential.model_file_arrays import (
    read_float_array,
    read_network_arrays,
    read_scaler,
    subgroup,
)
from pesnet.potential.model_file_checks import (
    check_calibration,
    check_descriptor,
    check_elements,
    check_labels,
    check_metadata,
    check_network_config,
    is_int,
    json_attribute,
    short,
)

FORMAT_NAME = "pesnet-model"
FORMAT_VERSION = 1


def write_model_group(group: h5py.Group, potential: Potential) -> None:
    """Write ``potential`` into an open HDF5 group (the model file's root, or a checkpoint's)."""
    group.attrs["format"] = FORMAT_NAME
    group.attrs["format_version"] = FORMAT_VERSION
    group.attrs["pesnet_version"] = __version__
    group.attrs["descriptor"] = potential.descriptor.to_json()
    group.attrs["labels"] = json.dumps(list(potential.descriptor.labels))
    group.attrs["elements"] = json.dumps(list(potential.elements))
    group.attrs["calibration"] = json.dumps(potential.calibration)
    group.attrs["metadata"] = json.dumps(potential.metadata, default=_jsonable)
    for z in potential.elements:
        symbol = chemical_symbols[z]
        net = potential.networks[z]
        g = group.create_group(f"networks/{symbol}")
        g.attrs["config"] = json.dumps(net.config())
        for name, array in net.arrays().items():
            g.create_dataset(name, data=array)
        mean, scale = potential.scalers[z]
        s = group.create_group(f"scalers/{symbol}")
        s.create_dataset("mean", data=mean)
        s.create_dataset("scale", data=scale)
    group.create_dataset("reference_energies",
                         data=np.array([potential.reference_energies[z] for z in potential.elements]))


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in model metadata")


def save_model(potential: Potential, path) -> Path:
    """Write ``potential`` to ``path`` (HDF5, atomically)."""
    path = Path(path)
    with atomic_output(path, suffix=".h5.tmp") as tmp:
        with h5py.File(tmp, "w") as f:
            write_model_group(f, potential)
    return path


def read_model_group(group: h5py.Group, where: str) -> Potential:
    """Rebuild a :class:`Potential` from a group written by :func:`write_model_group`.

    Every attribute and array is checked before anything is built (types, shapes against the
    descriptor and the network configs, dtypes, finiteness: :mod:`.model_file_checks`,
    :mod:`.model_file_arrays`); a damaged file raises :class:`DataFormatError`
    ``<where>: damaged model file (<what, naming the dataset or attribute>)``, one line.
    """
    check_model_format(group.attrs, where)
    try:
        return read_checked_potential(group)
    except (KeyError, ValueError, InputError) as error:
        what = " ".join(str(error).split())  # one line whatever the message quotes
        raise DataFormatError(f"{where}: damaged model file ({what})") from None


def check_model_format(attrs, where: str) -> None:
    """:func:`check_format` for a model, once the two attributes it compares are known to be
    a string and an integer (an array there would make its comparisons raise)."""
    name, version = attrs.get("format"), attrs.get("format_version")
    if name is not None and not isinstance(name, str):
        raise DataFormatError(f"{where}: not a pesnet model (format attribute {short(name)})")
    if version is not None and not is_int(version):
        raise DataFormatError(f"{where}: damaged model file (format_version attribute must be "
                              f"an integer, got {short(version)})")
    check_format(attrs, where, "model", FORMAT_NAME, FORMAT_VERSION)


def read_checked_potential(group: h5py.Group) -> Potential:
    """The potential in ``group``, every part checked first (errors name the part only)."""
    descriptor = check_descriptor(json_attribute(group, "descriptor", "descriptor attribute"))
    # labels and metadata are informational: absent is fine, present must be well formed
    check_labels(json_attribute(group, "labels", "labels attribute", required=False,
                                default=list(descriptor.labels)), descriptor)
    elements = check_elements(json_attribute(group, "elements", "elements attribute"),
                              descriptor)
    calibration = check_calibration(json_attribute(group, "calibration",
                                                   "calibration attribute"))
    metadata = check_metadata(json_attribute(group, "metadata", "metadata attribute",
                                             required=False, default={}))
    n_features = descriptor.n_features
    configs, arrays, scalers = {}, {}, {}
    for z in elements:
        symbol = chemical_symbols[z]
        config = configs[z] = read_network_config(group, symbol, n_features)
        m, m_first = config["n_members"], configs[elements[0]]["n_members"]
        if m != m_first:
            raise DataFormatError(f"networks/{symbol} has {m} members, networks/"
                                  f"{chemical_symbols[elements[0]]} {m_first}: all need the same")
        arrays[z] = read_network_arrays(group, symbol, tuple(config["layer_sizes"]), m,
                                        config.get("dtype", "float64"))
        scalers[z] = read_scaler(group, symbol, n_features)
    reference = read_float_array(group, "reference_energies", (len(elements),))
    networks = {z: MLP.from_arrays(configs[z], arrays[z]) for z in elements}
    return Potential(descriptor, networks, scalers, dict(zip(elements, reference.tolist())),
                     calibration=calibration, metadata=metadata)


def read_network_config(group: h5py.Group, symbol: str, n_features: int) -> dict:
    """The checked config of ``networks/<symbol>``: n_features inputs, one output."""
    label = f"networks/{symbol} config attribute"
    config = json_attribute(subgroup(group, f"networks/{symbol}"), "config", label)
    sizes, _ = check_network_config(config, label)
    if sizes[0] != n_features:
        raise DataFormatError(f"{label}: layer_sizes[0] = {sizes[0]} does not match the "
                              f"descriptor's n_features = {n_features}")
    if sizes[-1] != 1:
        raise DataFormatError(f"{label}: output width {sizes[-1]}, but a potential's network "
                              f"has width 1 (one atomic energy)")
    return config


def load_model(path) -> Potential:
    """Load a potential saved by :func:`save_model` (no pickle, no code)."""
    with open_hdf5(path, "model") as f:
        return read_model_group(f, str(path))
