"""What the served model reads and answers (used by :mod:`.pyfunc_model`; no MLflow here).

Requests (``POST /invocations``, MLflow's pandas JSON forms) hold one structure source per row,
either

* ``extxyz``: extended-XYZ text of one or more structures (every frame is predicted), or
* ``numbers`` (atomic numbers), ``positions`` (N×3, Å), optional ``cell`` (3×3, Å) and
  ``pbc`` (one or three booleans; default: periodic where a cell is given). Integer arrays
  are as good as float ones.

For example::

    {"dataframe_records": [{"extxyz": "1\\nLattice=\\"0 1.8 1.8 1.8 0 1.8 1.8 1.8 0\\"\\nCu 0 0 0\\n"}]}
    {"dataframe_records": [{"numbers": [29, 29], "positions": [[0, 0, 0], [1.8, 1.8, 0]],
                            "cell": [[3.6, 0, 0], [0, 3.6, 0], [0, 0, 3.6]]}]}

The answer is ``{"predictions": [...]}`` with one object per structure: ``row`` and ``frame``
(which request row and which frame of it), ``n_atoms``, ``energy`` and ``energy_std`` (eV),
``energies`` and ``energies_std`` (eV per atom, N), ``forces`` and ``forces_std`` (eV/Å, N×3)
and, for periodic structures, ``stress`` and ``stress_std`` (eV/Å³, Voigt order as ASE). The
``*_std`` are the ensemble's calibrated standard deviations.

Every structure of a request is read and checked before any is predicted; the first problem
is an :class:`~pesnet.errors.InputError` that names the row (and the frame of extxyz text),
e.g. ``row 2, frame 0: Atoms(Cu4): positions contains NaN or infinite values (first at (3,
2))``: an unknown column, both forms in one row, NaN/inf positions or cell, an atomic number
outside 1–118, a flat periodic cell, an element the model lacks. More atoms than
:func:`~pesnet.tracking.request_limits.max_atoms_per_request` is :class:`RequestTooLarge`.
HTTP status codes: :mod:`.scoring`.
"""

from __future__ import annotations

import io

import numpy as np

from pesnet.data.validate import structure_name, structure_problem
from pesnet.errors import InputError, did_you_mean
from pesnet.tracking.request_limits import max_atoms_per_request

#: Request columns; a row uses either ``extxyz`` or ``numbers`` + ``positions`` (+ cell, pbc).
COLUMNS = ("extxyz", "numbers", "positions", "cell", "pbc")


class RequestTooLarge(InputError):
    """A request holds more atoms than the server accepts (HTTP 413)."""


def _missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return False


def _check_columns(k: int, row: dict) -> None:
    """InputError for a column pesnet does not read (a misspelt ``cell`` must not silently give
    a non-periodic answer) or for a row that mixes the two forms."""
    for name, value in row.items():
        if name not in COLUMNS and not _missing(value):
            raise InputError(f"row {k}: unknown column {name!r}{did_you_mean(name, COLUMNS)}; "
                             f"the columns are {', '.join(COLUMNS)}")
    if not _missing(row.get("extxyz")) and any(not _missing(row.get(c)) for c in COLUMNS[1:]):
        raise InputError(f"row {k}: give extxyz, or numbers and positions (cell, pbc), not both")


def _frames_of_text(k: int, text):
    """The ase.Atoms of the extxyz text of row ``k``, one at a time (so an atom limit can stop
    reading early)."""
    import ase.io

    if not isinstance(text, str) or not text.strip():
        raise InputError(f"row {k}: extxyz must be non-empty text")
    frames = ase.io.iread(io.StringIO(text), index=":", format="extxyz")
    count = 0
    while True:
        try:
            atoms = next(frames, None)
        except Exception as error:  # ASE raises many kinds on garbled text
            raise InputError(f"row {k}: cannot read the extxyz text ({error})") from None
        if atoms is None:
            break
        count += 1
        yield atoms
    if count == 0:
        raise InputError(f"row {k}: the extxyz text holds no structure")


def _array(k: int, value, what: str, shape: tuple) -> np.ndarray:
    """``value`` as a float array of ``shape`` (-1: any length); integers are welcome."""
    try:
        return np.asarray([np.asarray(v, float) for v in value], float).reshape(shape)
    except (TypeError, ValueError):
        raise InputError(f"row {k}: {what}") from None


def _numbers(k: int, value) -> np.ndarray:
    numbers = _array(k, value, "numbers must be integers (atomic numbers)", (-1,))
    if not np.all(np.isfinite(numbers)) or np.any(numbers != np.round(numbers)):
        raise InputError(f"row {k}: numbers must be integers (atomic numbers)")
    return numbers.astype(int)


def _pbc(k: int, value, default: bool) -> np.ndarray:
    if _missing(value):
        return np.full(3, default)
    pbc = np.asarray(value).reshape(-1)
    if pbc.dtype != bool or len(pbc) not in (1, 3):
        raise InputError(f"row {k}: pbc must be one boolean or three, got {value!r}")
    return np.broadcast_to(pbc, 3).copy()


def _atoms_of_row(k: int, row: dict):
    """The ase.Atoms of JSON row ``k`` (numbers, positions, cell, pbc)."""
    from ase import Atoms

    numbers, positions = row.get("numbers"), row.get("positions")
    if _missing(numbers) or _missing(positions):
        raise InputError(f"row {k}: give extxyz, or numbers and positions")
    numbers = _numbers(k, numbers)
    positions = _array(k, positions, "positions must be N×3 numbers (Å)", (-1, 3))
    if len(numbers) != len(positions) or len(numbers) == 0:
        raise InputError(f"row {k}: {len(numbers)} numbers but {len(positions)} positions")
    cell = row.get("cell")
    cell = None if _missing(cell) else _array(k, cell, "cell must be 3×3 numbers (Å)", (3, 3))
    return Atoms(numbers=numbers, positions=positions, cell=cell,
                 pbc=_pbc(k, row.get("pbc"), default=cell is not None))


def _structures_of_row(k: int, row: dict):
    """(frame, ase.Atoms, where) of request row ``k``; ``where`` names it in messages."""
    _check_columns(k, row)
    text = row.get("extxyz")
    if _missing(text):
        yield 0, _atoms_of_row(k, row), f"row {k}"
        return
    for j, atoms in enumerate(_frames_of_text(k, text)):
        yield j, atoms, f"row {k}, frame {j}"


def _check(atoms, where: str, elements) -> None:
    """InputError ``"{where}: Atoms(Cu4): {problem}"`` for a structure that cannot be predicted."""
    problem = structure_problem(atoms)
    if problem is None and elements is not None:
        from ase.data import chemical_symbols

        lacking = sorted(set(atoms.numbers.tolist()) - set(elements))
        if lacking:
            have = ", ".join(chemical_symbols[z] for z in sorted(elements))
            problem = (f"element {chemical_symbols[lacking[0]]} (Z={lacking[0]}) is not one of "
                       f"the model's elements ({have})")
    if problem is not None:
        raise InputError(f"{where}: {structure_name(atoms)}: {problem}")


def structures_from_rows(rows, elements=None, max_atoms: int | None = None
                         ) -> list[tuple[int, int, object]]:
    """(row, frame, Atoms) of every structure in ``rows`` (dicts, e.g. DataFrame records).

    Every structure is checked before the list is returned (finite positions and cell,
    atomic numbers 1–118, a cell with volume where periodic and, given ``elements`` (atomic
    numbers), only those elements): an error names the row (and the frame of extxyz text).
    Raises :class:`RequestTooLarge` as soon as the atoms exceed ``max_atoms``.
    """
    out, total = [], 0
    for k, row in enumerate(rows):
        for j, atoms, where in _structures_of_row(k, row):
            total += len(atoms)
            if max_atoms is not None and total > max_atoms:
                raise RequestTooLarge(
                    f"{where} brings the request to {total} atoms; at most {max_atoms} atoms "
                    f"per request (pesnet serve --max-atoms)")
            _check(atoms, where, elements)
            out.append((k, j, atoms))
    if not out:
        raise InputError("the request holds no structure")
    return out


def _listed(values) -> list:
    return np.asarray(values, float).tolist()


def predict_records(potential, rows, max_atoms: int | None = None) -> list[dict]:
    """The answer for request ``rows`` (see the module doc): one dict per structure.

    Every structure is read and checked (:func:`structures_from_rows`) before any is
    predicted; ``max_atoms`` defaults to :func:`max_atoms_per_request`.
    """
    if max_atoms is None:
        max_atoms = max_atoms_per_request()
    answers = []
    for k, j, atoms in structures_from_rows(rows, potential.elements, max_atoms):
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
    """The MLflow model signature: the answer's fields, and no input schema on purpose.

    MLflow enforces an input schema before the model sees a request, and that enforcement
    refuses integer JSON arrays for float columns ("Can not safely convert int64 to float64"),
    refuses requests that mix extxyz rows with numbers/positions rows (pandas fills the other
    form's columns with NaN), and silently drops unknown columns, so a misspelt ``cell``
    would give a non-periodic answer. pesnet reads and checks every column itself
    (:func:`structures_from_rows`); the request form is documented by the module doc and the
    logged input example.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    vector, matrix = Array("double"), Array(Array("double"))
    return ModelSignature(inputs=None, outputs=Schema([
        ColSpec("long", "row"), ColSpec("long", "frame"), ColSpec("long", "n_atoms"),
        ColSpec("double", "energy"), ColSpec("double", "energy_std"),
        ColSpec(vector, "energies"), ColSpec(vector, "energies_std"),
        ColSpec(matrix, "forces"), ColSpec(matrix, "forces_std"),
        ColSpec(vector, "stress", required=False), ColSpec(vector, "stress_std", required=False),
    ]))
