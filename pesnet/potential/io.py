"""The model file (HDF5): everything a potential needs, as plain arrays and JSON attributes.

Layout::

    attrs: format = "pesnet-model", format_version, pesnet_version,
           descriptor (JSON ACSF parameters), labels (JSON feature labels),
           elements (JSON atomic numbers), calibration (JSON {"energy", "forces"}),
           metadata (JSON: seeds, training settings and history summary, dataset digest, ...)
    networks/<Sym>/W0, b0, W1, ...   (M, n_in, n_out), (M, n_out); attrs: config (JSON)
    scalers/<Sym>/mean, scale        (F,)
    reference_energies               (n_elements,) eV/atom, in ``elements`` order

Loading reads arrays and JSON only — never pickle — so a model file is data, not code.
Writing goes through a temporary file and a rename.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from ase.data import chemical_symbols

from pesnet import __version__
from pesnet.descriptors import ACSF
from pesnet.errors import DataFormatError, InputError
from pesnet.fileio import atomic_output, check_format, open_hdf5
from pesnet.nn.mlp import MLP
from pesnet.potential.model import Potential

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
    """Rebuild a :class:`Potential` from a group written by :func:`write_model_group`."""
    check_format(group.attrs, where, "model", FORMAT_NAME, FORMAT_VERSION)
    try:
        descriptor = ACSF.from_params(json.loads(group.attrs["descriptor"]))
        elements = [int(z) for z in json.loads(group.attrs["elements"])]
        networks, scalers = {}, {}
        for z in elements:
            symbol = chemical_symbols[z]
            g = group[f"networks/{symbol}"]
            arrays = {name: g[name][()] for name in g}
            networks[z] = MLP.from_arrays(json.loads(g.attrs["config"]), arrays)
            s = group[f"scalers/{symbol}"]
            scalers[z] = (s["mean"][()], s["scale"][()])
        reference = dict(zip(elements, group["reference_energies"][()].tolist()))
        return Potential(descriptor, networks, scalers, reference,
                         calibration=json.loads(group.attrs["calibration"]),
                         metadata=json.loads(group.attrs.get("metadata", "{}")))
    except (KeyError, ValueError, InputError) as error:
        raise DataFormatError(f"{where}: damaged model file ({error})") from None


def load_model(path) -> Potential:
    """Load a potential saved by :func:`save_model` (no pickle, no code)."""
    with open_hdf5(path, "model") as f:
        return read_model_group(f, str(path))
