"""pesnet: ensemble neural-network potential-energy surfaces with honest uncertainty.

Layers, low to high (each imports only layers below it):
``data`` → ``descriptors`` / ``nn`` → ``potential`` → ``training`` → ``tracking`` →
``pipeline`` → ``cli``. Importing :mod:`pesnet` is cheap: heavy libraries (MLflow, Dask)
are imported lazily by the modules that need them.

Units follow ASE: energies in eV, lengths in Å, forces in eV/Å, stress in eV/Å³.

>>> import pesnet
>>> model = pesnet.load_model("model.h5")
>>> prediction = model.predict(atoms)        # energy, forces and their uncertainties
"""

__version__ = "0.1.0"

from pesnet.errors import PesnetError  # noqa: E402

__all__ = ["__version__", "PesnetError", "load_model", "save_model"]


def __getattr__(name):
    # lazy re-exports keep `import pesnet` light (no h5py/ASE until needed)
    if name in ("load_model", "save_model"):
        from pesnet.potential import io

        return getattr(io, name)
    raise AttributeError(f"module 'pesnet' has no attribute {name!r}")
