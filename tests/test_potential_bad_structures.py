"""Structures that cannot be evaluated are refused at every entry point, never answered.

A NaN position once gave a finite energy, a finite spread and zero forces; an empty ``Atoms()``,
a NaN cell and a flat periodic cell gave raw NumPy errors or a wrong message. Each entry point
(``Potential.predict``, ``PESNetCalculator``, ``pesnet predict``) now refuses them with one line
naming the structure; a hypothesis suite throws arbitrary positions, cells, periodicity and
atomic numbers at the calculator and accepts only a finite answer or a pesnet ``InputError``.
"""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import InputError as AseInputError
from ase.calculators.calculator import PropertyNotImplementedError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pesnet.calculator import InvalidStructureError, PESNetCalculator
from pesnet.cli.main import main
from pesnet.errors import InputError
from pesnet.potential.io import save_model
from tests.potential_helpers import random_potential


@pytest.fixture(scope="module")
def copper_potential():
    return random_potential(elements=(29,), hidden=(5,), cutoff=3.0)


def _copper():
    return bulk("Cu", "fcc", a=3.6, cubic=True)


def _nan_position(atoms):
    atoms.positions[0, 0] = np.nan


def _inf_position(atoms):
    atoms.positions[2, 1] = np.inf


def _nan_cell(atoms):
    atoms.cell[0, 0] = np.nan


def _flat_cell(atoms):
    atoms.cell[2] = atoms.cell[0] + atoms.cell[1]


BAD = {
    "nan position": (_nan_position, "positions contains NaN or infinite values (first at (0, 0))"),
    "inf position": (_inf_position, "positions contains NaN or infinite values (first at (2, 1))"),
    "nan cell": (_nan_cell, "cell contains NaN or infinite values"),
    "flat periodic cell": (_flat_cell, "periodic cell has zero volume"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_predict_refuses_a_bad_structure_naming_it(copper_potential, name):
    spoil, message = BAD[name]
    atoms = _copper()
    spoil(atoms)
    with pytest.raises(InputError) as error:
        copper_potential.predict(atoms)
    assert str(error.value) == f"Atoms(Cu4): {message}" or \
        str(error.value).startswith(f"Atoms(Cu4): {message}")
    assert "\n" not in str(error.value)
    with pytest.raises(InputError, match=r"^structure 1 \(Atoms\(Cu4\)\): "):
        copper_potential.predict([_copper(), atoms])


@pytest.mark.parametrize("name", sorted(BAD))
def test_calculator_refuses_a_bad_structure_then_recovers(copper_potential, name):
    spoil, message = BAD[name]
    calc = PESNetCalculator(copper_potential)
    good = _copper()
    good.calc = calc
    expected = good.get_potential_energy()
    atoms = _copper()
    spoil(atoms)
    atoms.calc = calc
    for get in (atoms.get_potential_energy, atoms.get_forces):
        with pytest.raises(InvalidStructureError, match=message.replace("(", r"\(").replace(")", r"\)")):
            get()
    with pytest.raises(AseInputError):   # ASE's own handlers catch it too
        atoms.get_potential_energy()
    good.calc = calc
    assert good.get_potential_energy() == expected


def test_empty_structures_are_refused(copper_potential):
    with pytest.raises(InputError, match=r"^Atoms\(\): the structure has no atoms$"):
        copper_potential.predict(Atoms())
    empty = Atoms()
    empty.calc = PESNetCalculator(copper_potential)
    with pytest.raises(InvalidStructureError, match="the structure has no atoms"):
        empty.get_potential_energy()
    with pytest.raises(InputError, match="empty list of structures"):
        copper_potential.predict([])


def test_a_cell_too_thin_to_search_is_a_clear_error(copper_potential):
    atoms = Atoms("Cu", positions=[[0, 0, 0]], cell=[[10, 0, 0], [1e10, 10, 0], [0, 0, 10]],
                  pbc=True)
    atoms.calc = PESNetCalculator(copper_potential)
    with pytest.raises(InputError, match="too thin"):
        atoms.get_potential_energy()


def test_cli_predict_refuses_a_nan_position_naming_file_and_structure(
        copper_potential, tmp_path, capsys):
    model = save_model(copper_potential, tmp_path / "model.h5")
    bad = _copper()
    _nan_position(bad)
    ase.io.write(tmp_path / "in.extxyz", [_copper(), bad], format="extxyz")
    out = tmp_path / "out.extxyz"
    code = main(["predict", str(model), str(tmp_path / "in.extxyz"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert err.count("\n") == 1 and err.startswith("pesnet predict: error: ")
    assert "in.extxyz, configuration 1" in err and "positions contains NaN" in err


# -- hypothesis: nothing but a finite answer or a clear error -----------------------------
coordinates = st.floats(min_value=-1e6, max_value=1e6) | \
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e-300, 1e12])
cells = st.one_of(
    st.none(),
    st.lists(st.lists(coordinates, min_size=3, max_size=3), min_size=3, max_size=3),
    st.floats(min_value=1e-6, max_value=50.0).map(lambda a: np.eye(3) * a),
)


@st.composite
def structures(draw):
    n = draw(st.integers(0, 5))
    numbers = draw(st.lists(st.sampled_from([29, 29, 29, 1, 0, 118, 119]), min_size=n,
                            max_size=n))
    positions = draw(st.lists(st.lists(coordinates, min_size=3, max_size=3), min_size=n,
                              max_size=n))
    cell = draw(cells)
    pbc = draw(st.lists(st.booleans(), min_size=3, max_size=3))
    atoms = Atoms(numbers=numbers, positions=np.array(positions, float).reshape(-1, 3),
                  cell=cell, pbc=pbc)
    return atoms


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(atoms=structures(), stress=st.booleans())
def test_calculator_answers_finitely_or_refuses_clearly(copper_potential, atoms, stress):
    atoms.calc = PESNetCalculator(copper_potential)
    finite_input = np.isfinite(atoms.positions).all() and np.isfinite(atoms.cell.array).all()
    try:
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        values = [energy, forces] + ([atoms.get_stress()] if stress else [])
    except (InputError, PropertyNotImplementedError) as error:
        assert str(error) and "\n" not in str(error)
        return
    assert finite_input and len(atoms) > 0, "a non-finite or empty structure was answered"
    for value in values:
        assert np.isfinite(value).all()


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_a_non_finite_result_is_refused_not_returned(copper_potential):
    from pesnet.errors import NonFiniteResultError

    broken = random_potential(elements=(29,), hidden=(5,), cutoff=3.0)
    network = broken.networks[29]
    network.params[...] = 1e308             # every pre-activation overflows to ±inf
    atoms = _copper()
    with pytest.raises(NonFiniteResultError, match="non-finite energy"):
        broken.predict(atoms)
    atoms.calc = PESNetCalculator(broken)
    with pytest.raises(NonFiniteResultError):
        atoms.get_forces()


def test_predict_and_the_calculator_refuse_what_is_not_a_structure(copper_potential):
    from ase.calculators.calculator import CalculatorSetupError

    for thing in ("structures.xyz", None, 3):
        with pytest.raises(InputError, match="predict takes ase.Atoms or a list of them"):
            copper_potential.predict(thing)
    with pytest.raises(InputError, match=r"got str \(structure 1\)"):
        copper_potential.predict([_copper(), "x"])
    for threads in (0, -1, "2", 1.5, True):
        with pytest.raises(CalculatorSetupError, match="blas_threads must be a positive"):
            PESNetCalculator(copper_potential, blas_threads=threads)


def test_an_atom_overlapping_its_own_images_is_refused_not_allocated(copper_potential):
    """Found by the hypothesis suite: one atom in a 6e-5 Å cell periodic along z has ~10⁵
    images within the cutoff, and the angular terms asked for 90 GiB. A 1e-3 Å cell (~7,000
    images) takes the same path in a fraction of the time."""
    atoms = Atoms("Cu", positions=[[0, 0, 0]], cell=np.eye(3) * 1e-3,
                  pbc=[False, False, True])
    atoms.calc = PESNetCalculator(copper_potential)
    with pytest.raises(InputError, match=r"^atom 0 has [\d,]+ neighbours within [\d.]+ Å "
                                         r"\(limit 2,000\): atoms overlap"):
        atoms.get_potential_energy()
    with pytest.raises(InputError, match="limit 2,000"):
        copper_potential.predict(atoms)


def test_a_dense_but_physical_structure_is_still_answered(copper_potential):
    """Compressed fcc Cu at half its volume is far below the neighbour limit."""
    atoms = bulk("Cu", "fcc", a=3.6 * 0.5 ** (1 / 3), cubic=True).repeat(3)
    atoms.calc = PESNetCalculator(copper_potential)
    assert np.isfinite(atoms.get_forces()).all()
