"""pesnet's ASE plug-ins, loaded by ASE through entry points (``pyproject.toml``).

* ``ase.plugins``: ``__ase_plugins__`` holds the :class:`PESNetCalculator` as a
  ``CalculatorPlugin`` named ``pesnet`` (listed by ``ase info --plugins``).
* ``ase.ioformats``: :data:`dataset_format` registers the pesnet dataset file (HDF5) as the
  I/O format ``pesnet-dataset`` (``*.h5``), so ``ase.io.read("dataset.h5", ":")`` returns the
  labelled configurations; the reader and writer are :mod:`pesnet.io_format`'s.

ASE imports this module while ``ase.io`` itself is being imported, so it must not import
``ase.io`` (nor ``ase._4``, which imports it) at import time: the plug-in set is built on
first access (a module ``__getattr__``), and the reader/writer import their modules when
called.
"""

from __future__ import annotations

from ase.utils.plugins import ExternalIOFormat

CITATION = "pesnet: ensemble Behler–Parrinello neural-network potentials with uncertainty"

#: The ``ase.ioformats`` entry point: read/write functions are looked up in this module.
dataset_format = ExternalIOFormat(
    desc="pesnet dataset (HDF5: configurations with energies, forces, stress)",
    code="+S",
    module="pesnet.ase_plugin",
    ext="h5",
)


def read_pesnet_dataset(filename, index=slice(None), **kwargs):
    """ASE reader of the ``pesnet-dataset`` format (see :mod:`pesnet.io_format`)."""
    from pesnet.io_format import read_pesnet_dataset as read

    return read(filename, index, **kwargs)


def write_pesnet_dataset(filename, images, **kwargs):
    """ASE writer of the ``pesnet-dataset`` format (see :mod:`pesnet.io_format`)."""
    from pesnet.io_format import write_pesnet_dataset as write

    return write(filename, images, **kwargs)


def _plugins() -> set:
    from ase._4.plugins.plugin import CalculatorPlugin

    return {CalculatorPlugin(name="pesnet", citation=CITATION,
                             implementation="pesnet.calculator.PESNetCalculator")}


def __getattr__(name):
    if name == "__ase_plugins__":
        plugins = _plugins()
        globals()["__ase_plugins__"] = plugins
        return plugins
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
