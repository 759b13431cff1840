"""What the served model reads and answers (used by :mod:`.pyfunc_model`; no MLflow here).

Requests (``POST /invocations``, MLflow's pandas JSON forms) hold one structure source per row,
either

* ``extxyz``: extended-XYZ text of one or more structures (every frame is predicted), or
* ``numbers`` (atomic numbers), ``positions`` (N×3, Å), optional ``cell`` (3×3, Å) and
  ``pbc`` (three booleans; default: periodic where a cell is given).

For example::

    {"dataframe_records": [{"extxyz": "1\\nLattice=\\"0 1.8 1.8 1.8 0 1.8 1.8 1.8 0\\"\\nCu 0 0 0\\n"}]}
    {"dataframe_records": [{"numbers": [29, 29], "positions": [[0, 0, 0], [1.8, 1.8, 0]],
                            "cell": [[3.6, 0, 0], [0, 3.6, 0], [0, 0, 3.6]]}]}

The answer is ``{"predictions": [...]}`` with one object per structure: ``row`` and ``frame``
(which request row and which frame of it), ``n_atoms``, ``energy`` and ``energy_std`` (eV),
``energies`` and ``energies_std`` (eV per atom, N), ``forces`` and ``forces_std`` (eV/Å, N×3)
and, for periodic structures, ``stress`` and ``stress_std`` (eV/Å³, Voigt order as ASE). The
``*_std`` are the ensemble's calibrated standard deviations.
"""

from __future__ import annotations

import io

import numpy as np

from pesnet.errors import InputError

#: Request columns; a row uses either ``extxyz`` or ``numbers`` + ``positions`` (+ cell, pbc).
COLUMNS = ("extxyz", "numbers", "positions", "cell", "pbc")


def _missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return False


def _structures_of_row(k: int, row: dict):
    """The ase.Atoms of request row ``k``."""
    import ase.io
    from ase import Atoms

    text = row.get("extxyz")
    if not _missing(text):
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"row {k}: extxyz must be non-empty text")
        try:
            frames = ase.io.read(io.StringIO(text), index=":", format="extxyz")
        except Exception as error:  # ASE raises many kinds on garbled text
            raise InputError(f"row {k}: cannot read the extxyz text ({error})") from None
        if not frames:
            raise InputError(f"row {k}: the extxyz text holds no structure")
        return frames
    numbers, positions = row.get("numbers"), row.get("positions")
    if _missing(numbers) or _missing(positions):
        raise InputError(f"row {k}: give extxyz, or numbers and positions")
    try:
        numbers = np.asarray(numbers, dtype=int).reshape(-1)
        positions = np.asarray([np.asarray(p, float) for p in positions], float).reshape(-1, 3)
    except (TypeError, ValueError):
        raise InputError(f"row {k}: numbers must be integers and positions N×3 numbers") from None
    if len(numbers) != len(positions) or len(numbers) == 0:
        raise InputError(f"row {k}: {len(numbers)} numbers but {len(positions)} positions")
    cell, pbc = row.get("cell"), row.get("pbc")
    if _missing(cell):
        cell, default_pbc = None, False
    else:
        try:
            cell = np.asarray([np.asarray(c, float) for c in cell], float).reshape(3, 3)
        except (TypeError, ValueError):
            raise InputError(f"row {k}: cell must be 3×3 numbers (Å)") from None
        default_pbc = True
    pbc = default_pbc if _missing(pbc) else np.asarray(pbc, dtype=bool).reshape(-1)
    if not np.all(np.isfinite(positions)) or (cell is not None and not np.all(np.isfinite(cell))):
        raise InputError(f"row {k}: positions and cell must be finite")
    return [Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)]


def structures_from_rows(rows) -> list[tuple[int, int, object]]:
    """(row, frame, Atoms) of every structure in ``rows`` (dicts, e.g. DataFrame records)."""
    out = []
    for k, row in enumerate(rows):
        for j, atoms in enumerate(_structures_of_row(k, row)):
            out.append((k, j, atoms))
    if not out:
        raise InputError("the request holds no structure")
    return out


def _listed(values) -> list:
    return np.asarray(values, float).tolist()


def predict_records(potential, rows) -> list[dict]:
    """The answer for request ``rows`` (see the module doc): one dict per structure."""
    answers = []
    for k, j, atoms in structures_from_rows(rows):
        periodic = bool(np.any(atoms.pbc)) and atoms.cell.rank == 3
        p = potential.predict(atoms, forces=True, stress=periodic)
        record = {
            "row": k, "frame": j, "n_atoms": len(atoms),
            "energy": float(p.energy[0]), "energy_std": float(p.energy_std[0]),
            "energies": _listed(p.energies), "energies_std": _listed(p.energies_std),
            "forces": _listed(p.forces), "forces_std": _listed(p.forces_std),
        }
        if periodic and p.stress is not None and np.isfinite(p.stress[0]).all():
            record["stress"] = _listed(p.stress[0])
            record["stress_std"] = _listed(p.stress_std[0])
        answers.append(record)
    return answers


def example_text(atoms) -> str:
    """One structure as extxyz text without labels (a request example)."""
    import ase.io

    bare = atoms.copy()
    bare.calc = None
    for key in list(bare.arrays):
        if key not in ("numbers", "positions"):
            del bare.arrays[key]
    bare.info = {}
    buffer = io.StringIO()
    ase.io.write(buffer, bare, format="extxyz")
    return buffer.getvalue()


def signature():
    """The MLflow model signature: optional columns of :data:`COLUMNS`."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    return ModelSignature(inputs=Schema([
        ColSpec("string", "extxyz", required=False),
        ColSpec(Array("long"), "numbers", required=False),
        ColSpec(Array(Array("double")), "positions", required=False),
        ColSpec(Array(Array("double")), "cell", required=False),
        ColSpec(Array("boolean"), "pbc", required=False),
    ]))
