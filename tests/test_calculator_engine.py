"""The prediction engine behind Potential.predict and the ASE calculator: bond lists with a skin,
ACSF values on them, and forces/virials from the bond-level vector–Jacobian product.

It must give the descriptor's values (to round-off) and the same forces and virials as the
Jacobian path training uses, and two bond lists with the same bonds inside the cutoff must give
bit-identical energies (that is what makes the calculator equal ``predict`` bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule

from pesnet.descriptors import ACSF, angular_work_plan, default_acsf
from pesnet.descriptors.acsf_evaluator import ACSFEvaluator
from pesnet.descriptors.bonds import NeighbourCache, build_pairs
from pesnet.potential.atoms_batch import batch_from_atoms
from tests.conftest import random_molecular_box
from tests.potential_helpers import random_potential, water_box

LARGE_ZETA = dict(g2=[(0.5, 1.0), (2.0, 2.2)], g3=[0.8],
                  g4=[(0.01, 16.0, -1.0), (0.02, 1.0, 1.0), (0.03, 2.5, -1.0), (0.01, 4.0, 1.0)],
                  g5=[(0.01, 4.0, -1.0), (0.01, 32.0, 1.0), (0.05, 1.0, 1.0)])


def _rattled_copper(repeat=(2, 2, 2), seed=1):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
    atoms.rattle(0.08, seed=seed)
    return atoms


def _ethanol():
    atoms = molecule("CH3CH2OH")
    atoms.center(vacuum=3.0)
    return atoms


def _engine_values(acsf, atoms, skin=0.3):
    element = acsf.element_indices(atoms.numbers)
    pairs = build_pairs(atoms, acsf.cutoff + skin, element, len(acsf.elements))
    values, _ = ACSFEvaluator(acsf).forward(pairs, pairs.geometry(atoms.positions,
                                                                  atoms.cell.array),
                                            derivatives=False)
    return values


CASES = [
    ("Cu, 4 Å angular", lambda: default_acsf([29], 6.0, angular_cutoff=4.0), _rattled_copper),
    ("Cu, 6 Å angular", lambda: default_acsf([29], 6.0, angular_cutoff=6.0), _rattled_copper),
    ("ethanol", lambda: default_acsf([1, 6, 8], 6.0), _ethanol),
    ("H/C/O box", lambda: default_acsf([1, 6, 8], 5.0),
     lambda: random_molecular_box("HHHHHHCCOO", box=7.0, seed=3)),
    ("large and fractional zeta, G3, G5", lambda: ACSF([1, 6, 8], 5.0, **LARGE_ZETA), _ethanol),
    ("triclinic cell smaller than the cutoff",
     lambda: ACSF(["Cu"], 5.0, g2=[(1.0, 2.5)], g4=[(0.02, 2.0, 1.0), (0.02, 1.0, -1.0)]),
     lambda: bulk("Cu", "fcc", a=3.6)),
]


@pytest.mark.parametrize("name, make_acsf, make_atoms", CASES, ids=[c[0] for c in CASES])
def test_values_equal_the_descriptors(name, make_acsf, make_atoms):
    acsf, atoms = make_acsf(), make_atoms()
    expected = acsf.compute(atoms).values
    scale = np.maximum(np.abs(expected).max(axis=0), 1e-300)
    # the monomial basis of ζ ≤ 4 costs up to ~2e-13 of a column's scale; exact powers ~1e-15
    assert (np.abs(_engine_values(acsf, atoms) - expected) / scale).max() < 1e-11


def test_exact_powers_give_the_descriptors_values_to_round_off(monkeypatch):
    monkeypatch.setattr(angular_work_plan, "MONOMIAL_MAX_ZETA", 0)
    acsf, atoms = default_acsf([1, 6, 8], 6.0), _ethanol()
    expected = acsf.compute(atoms).values
    np.testing.assert_allclose(_engine_values(acsf, atoms), expected, rtol=1e-13, atol=1e-15)


def _jacobian_path(potential, atoms_list, virial):
    """Every member's energies, forces and virials through the stored Jacobian (training's
    path: batch_from_atoms + Potential.evaluate)."""
    batch = batch_from_atoms(potential.descriptor, potential.scalers, atoms_list, True)
    return potential.evaluate(batch, forces=True, virial=virial)


@pytest.mark.parametrize("make", [
    lambda: (random_potential(n_members=3), [water_box(1), water_box(2, n_molecules=2,
                                                                       periodic=False)]),
    lambda: (random_potential(elements=(29,), n_members=4, cutoff=4.5), [_rattled_copper()]),
], ids=["H/O with G5, periodic and free", "Cu"])
def test_forces_and_virials_equal_the_jacobian_path(make):
    potential, structures = make()
    ours = potential.predict(structures, stress=True, members=True).members
    theirs = _jacobian_path(potential, structures, virial=True)
    np.testing.assert_allclose(ours.energy, theirs.energy, rtol=1e-13)
    scale = np.abs(theirs.forces).max()
    np.testing.assert_allclose(ours.forces, theirs.forces, rtol=0, atol=1e-12 * scale)
    periodic = [k for k, a in enumerate(structures) if a.pbc.any()]
    np.testing.assert_allclose(ours.virial[:, periodic], theirs.virial[:, periodic], rtol=0,
                               atol=1e-12 * np.abs(theirs.virial).max())


def test_pair_list_is_canonical_and_knows_each_reverse_bond():
    atoms = _rattled_copper((2, 1, 1))
    acsf = default_acsf([29], 5.0)
    element = acsf.element_indices(atoms.numbers)
    pairs = build_pairs(atoms, 5.0, element, 1)
    # sorted by (i, j, shift); the reverse of (i, j, S) is (j, i, −S)
    key = np.lexsort((pairs.shift[:, 2], pairs.shift[:, 1], pairs.shift[:, 0], pairs.j, pairs.i))
    np.testing.assert_array_equal(key, np.arange(len(pairs)))
    rev = pairs.reverse
    np.testing.assert_array_equal(pairs.i[rev], pairs.j)
    np.testing.assert_array_equal(pairs.shift[rev], -pairs.shift)
    # a permuted copy gives the same bonds, relabelled, and again in canonical order
    order = np.random.default_rng(0).permutation(len(atoms))
    permuted = build_pairs(atoms[order], 5.0, element[order], 1)
    key = np.lexsort((permuted.shift[:, 2], permuted.shift[:, 1], permuted.shift[:, 0],
                      permuted.j, permuted.i))
    np.testing.assert_array_equal(key, np.arange(len(permuted)))
    as_original = np.column_stack([order[permuted.i], order[permuted.j], permuted.shift])
    original = np.column_stack([pairs.i, pairs.j, pairs.shift])
    np.testing.assert_array_equal(np.unique(as_original, axis=0), np.unique(original, axis=0))


def test_kept_list_gives_bit_identical_energies_and_rebuilds_when_needed():
    potential = random_potential(elements=(29,), n_members=3, cutoff=4.5)
    evaluator = potential.structure_evaluator()
    atoms = _rattled_copper()
    element = evaluator.element_indices(atoms)
    cache = NeighbourCache(potential.descriptor.cutoff, skin=0.6)
    rng = np.random.default_rng(3)
    for step in range(6):
        atoms.positions += rng.normal(0, 0.03, atoms.positions.shape)
        kept = evaluator.evaluate([atoms], cache.get(atoms, element, 1), forces=True)
        fresh = potential.predict(atoms, members=True).members
        np.testing.assert_array_equal(kept.energy, fresh.energy)
        np.testing.assert_array_equal(kept.energies, fresh.energies)
        np.testing.assert_allclose(kept.forces, fresh.forces, rtol=0, atol=1e-13)
    assert cache.n_builds == 1  # no atom moved 0.3 Å
    atoms.positions[0] += 0.4
    cache.get(atoms, element, 1)
    assert cache.n_builds == 2
    strained = atoms.copy()
    strained.set_cell(atoms.cell * 1.001, scale_atoms=True)
    cache.get(strained, element, 1)
    assert cache.n_builds == 3
    cache.get(strained, element, 1)
    assert cache.n_builds == 3


def test_isolated_atoms_and_empty_angular_terms():
    potential = random_potential(n_members=2)
    far = water_box(4, n_molecules=1, box=30.0, periodic=False)
    far.positions = [[0, 0, 0], [10, 0, 0], [0, 10, 0]]   # no neighbours within the cutoff
    p = potential.predict(far, stress=False)
    np.testing.assert_array_equal(p.forces, 0.0)
    assert np.isfinite(p.energy).all()


def test_prediction_engine_pickles_without_its_scratch():
    """A pickled evaluator (Dask, multiprocessing) carries its parameters, not its per-thread
    scratch buffers (a thread-local that pickle refuses), and describes the same molecule."""
    import pickle

    acsf = default_acsf(["H", "C", "O"], 5.0)
    evaluator = acsf.evaluator()
    atoms = molecule("CH3CH2OH")
    before = acsf.compute(atoms).values
    evaluator._work.get("probe", (1000,))            # scratch in use before pickling
    copy = pickle.loads(pickle.dumps(evaluator))
    assert copy._work.buffers == {}
    np.testing.assert_array_equal(copy.acsf.compute(atoms).values, before)
