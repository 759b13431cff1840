"""The pesnet dataset file (HDF5): names, version and units in one place.

Layout (n = configurations, N = atoms over all configurations)::

    numbers     (N,)      int16    atomic numbers
    positions   (N, 3)    float64  Å
    forces      (N, 3)    float64  eV/Å (NaN where a configuration has no forces)
    offsets     (n + 1,)  int64    atoms of configuration k are rows offsets[k]:offsets[k+1]
    energy      (n,)      float64  eV (NaN where unlabelled)
    cell        (n, 3, 3) float64  Å, rows are the cell vectors
    pbc         (n, 3)    bool
    stress      (n, 6)    float64  eV/Å³, Voigt order xx yy zz yz xz xy as ASE (NaN if absent)
    has_energy, has_forces, has_stress  (n,) bool
    config_type (n,)      str      free-form tag (``info["config_type"]``), "" if none
    source      (n,)      int32    index into the ``sources`` attribute
    source_index (n,)     int64    position of the configuration in its source's selection

Attributes: ``format`` = ``"pesnet-dataset"``, ``format_version``, ``units`` (JSON),
``sources`` (JSON list of ``{"path", "sha256", "format", "index"}``), ``pesnet_version``.
"""

#: (row, column) of a 3×3 stress tensor for each entry of ASE's Voigt 6-vector xx yy zz yz xz xy.
VOIGT = ((0, 1, 2, 1, 0, 0), (0, 1, 2, 2, 2, 1))

FORMAT_NAME = "pesnet-dataset"
FORMAT_VERSION = 1
UNITS = {"energy": "eV", "length": "Angstrom", "forces": "eV/Angstrom", "stress": "eV/Angstrom^3"}

PER_ATOM = ("numbers", "positions", "forces")
PER_CONFIG = (
    "energy",
    "cell",
    "pbc",
    "stress",
    "has_energy",
    "has_forces",
    "has_stress",
    "config_type",
    "source",
    "source_index",
)
