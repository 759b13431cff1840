"""The neighbour search (vesin's half list, mirrored) against ASE's reference implementation."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list

from pesnet.descriptors.bonds import _reverse_bonds, build_pairs
from pesnet.errors import InputError
from pesnet.neighbours import neighbour_list, neighbour_pairs, search_grid


def _systems():
    rng = np.random.default_rng(3)
    ethanol = molecule("CH3CH2OH")                       # no cell at all
    boxed = ethanol.copy()
    boxed.center(vacuum=1.0)                              # a cell smaller than the cutoff
    slab = fcc111("Cu", (3, 3, 3), vacuum=5.0)
    slab.rattle(0.05, rng=rng)
    flat = slab.copy()
    flat.cell[2] = 0.0                                    # zero vector along the open axis
    tiny = bulk("Cu", "fcc", a=3.6)                        # one atom, many images of itself
    skewed = Atoms("Cu2", positions=[[0, 0, 0], [1.2, 0.5, 0.3]],
                   cell=[[3, 0, 0], [2.5, 2.0, 0], [1.0, 0.7, 2.2]], pbc=True)
    mixed = Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]], cell=[2, 2, 2],
                  pbc=[True, False, True])
    outside = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    outside.positions += 7.3                              # atoms outside the cell
    cu108 = bulk("Cu", "fcc", a=3.59, cubic=True).repeat(3)
    cu108.rattle(0.05, rng=rng)
    return {"molecule": ethanol, "boxed molecule": boxed, "slab": slab, "flat slab": flat,
            "one-atom cell": tiny, "skewed cell": skewed, "mixed pbc": mixed,
            "outside the cell": outside, "Cu108": cu108}


SYSTEMS = _systems()


def _as_set(i, j, S):
    return set(zip(np.asarray(i).tolist(), np.asarray(j).tolist(),
                   map(tuple, np.asarray(S, dtype=int).tolist())))


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_same_pairs_distances_and_vectors_as_ase(name):
    atoms = SYSTEMS[name]
    cutoff = 3.0 if name == "mixed pbc" else 5.0
    i, j, S, d, D = neighbour_list("ijSdD", atoms, cutoff)
    ref = ase_neighbor_list("ijSdD", atoms, cutoff)
    assert len(i) == len(ref[0])
    assert _as_set(i, j, S) == _as_set(*ref[:3])
    assert np.all(np.diff(i) >= 0), "sorted by the first index, as ASE returns them"
    expected_D = atoms.positions[j] - atoms.positions[i] + S @ atoms.cell.array
    np.testing.assert_allclose(D, expected_D, atol=1e-10)
    np.testing.assert_allclose(d, np.linalg.norm(D, axis=1), atol=1e-12)
    assert np.all(d < cutoff)


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_pairs_know_their_reverse(name):
    atoms = SYSTEMS[name]
    i, j, S, reverse = neighbour_pairs(atoms, 5.0)
    assert _as_set(i, j, S) == _as_set(*ase_neighbor_list("ijS", atoms, 5.0))
    np.testing.assert_array_equal(i[reverse], j)
    np.testing.assert_array_equal(j[reverse], i)
    np.testing.assert_array_equal(S[reverse], -S)
    np.testing.assert_array_equal(reverse[reverse], np.arange(len(i)))


def test_pair_list_keeps_the_reverse_through_its_canonical_sort():
    atoms = SYSTEMS["Cu108"]
    pairs = build_pairs(atoms, 5.0, np.zeros(len(atoms), dtype=np.int64), 1)
    searched = _reverse_bonds(pairs.i, pairs.j, pairs.shift, pairs.element, pairs.n_atoms)
    np.testing.assert_array_equal(pairs.reverse, searched)


def test_no_pairs_for_isolated_atoms():
    far = Atoms("H2", positions=[[0, 0, 0], [100, 0, 0]])
    i, j, d = neighbour_list("ijd", far, 3.0)
    assert len(i) == len(j) == len(d) == 0
    i, j, S, reverse = neighbour_pairs(far, 3.0)
    assert len(i) == len(reverse) == 0 and S.shape == (0, 3)


# Inputs on which vesin 0.6 itself divides by zero (SIGFPE kills the process) or loops for
# minutes: its cap of 1e5 cells rescales a long thin grid to zero cells along the short
# directions. Found by the corrupted-extxyz fuzz test (a digit inserted into a coordinate).
def _far_apart(distance, pbc, axis=0):
    far = np.array([1.0, 0.0, 1.0])
    far[axis] = distance
    return Atoms("H3", positions=[[0, 0, 0], [0.05, 0.05, 0.05], far],  # one close pair
                 cell=np.eye(3) * 10 if np.any(pbc) else None, pbc=pbc)


@pytest.mark.parametrize("atoms, cutoff", [
    (_far_apart(1e5, False), 0.5),       # one atom 100 km away from a molecule
    (_far_apart(1e20, False), 0.1),
    (_far_apart(1e300, False), 5.0),
    (_far_apart(1e7, [True, True, False], axis=2), 0.5),  # an atom far above a slab
], ids=["1e5", "1e20", "1e300", "slab"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # ASE's binning casts 1e20 to int
def test_grids_vesin_cannot_build_fall_back_to_ase(atoms, cutoff):
    cells, _ = search_grid(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    assert (cells < 1).any(), "the case this test covers: vesin's rescaled grid has no cells"
    expected = {(0, 1, (0, 0, 0)), (1, 0, (0, 0, 0))}
    i, j, S, d = neighbour_list("ijSd", atoms, cutoff)
    assert _as_set(i, j, S) == expected
    np.testing.assert_allclose(d, np.sqrt(3) * 0.05)
    i, j, S, reverse = neighbour_pairs(atoms, cutoff)
    assert _as_set(i, j, S) == expected and reverse.tolist() == [1, 0]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # ASE's binning casts 1e20 to int
def test_a_huge_periodic_cell_vector_is_searched():
    atoms = _far_apart(2.0, True)
    atoms.cell[0, 0] = 1e20
    i, j, S = neighbour_list("ijS", atoms, 6.0)
    assert _as_set(i, j, S) == _as_set(*ase_neighbor_list("ijS", atoms, 6.0))
    assert len(i) == 6


@pytest.mark.parametrize("cell", [np.eye(3) * 1e-3,                           # tiny cell
                                  [[10, 0, 0], [1e10, 10, 0], [0, 0, 10]]],   # skewed basis
                         ids=["tiny", "skewed"])
def test_a_cell_too_thin_to_search_is_refused_quickly(cell):
    atoms = Atoms("H", positions=[[0, 0, 0]], cell=cell, pbc=True)
    with pytest.raises(InputError, match="too thin for a 0.5 Å neighbour search.*niggli_reduce"):
        neighbour_list("ijd", atoms, 0.5)
    with pytest.raises(InputError, match="too thin"):
        neighbour_pairs(atoms, 0.5)


def test_ordinary_cells_are_within_the_search_limit():
    for name, atoms in SYSTEMS.items():
        _, searched = search_grid(atoms.positions, atoms.cell.array, atoms.pbc, 6.5)
        assert np.prod(2 * searched + 1) <= 1e4, name  # limit: MAX_SEARCHED_CELLS = 1e6


def test_a_cutoff_far_beyond_a_small_molecule_is_searched():
    """Open directions multiply no images: a 60 Å cutoff on a 2-atom molecule is fine."""
    atoms = Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])
    i, j, d = neighbour_list("ijd", atoms, 60.0)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 1), (1, 0)]
    np.testing.assert_allclose(d, 0.74)


@pytest.mark.parametrize("cell, pbc", [
    ([[0, 1e12, 0], [426846.0, 0, 0], [0, 0, 139895.0]], [False, True, False]),
    ([[0, 0, 1.0], [0, 0, 1.0], [0, 0, 350004.0]], [False, False, True]),
    ([[0, 0, 0], [0, 0, 1.0], [0, 0, 350004.0]], [False, False, True]),
], ids=["1e12 periodic vector", "parallel open vectors", "zero and parallel"])
def test_cells_that_send_the_search_to_ase_give_pairs_or_a_clear_error(cell, pbc):
    """Found by the calculator's hypothesis suite: ASE's binning raised ValueError on these."""
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.0]], cell=cell, pbc=pbc)
    try:
        i, j, d = neighbour_list("ijd", atoms, 4.0)
    except InputError as error:
        assert "cannot search neighbours within 4 Å in this cell" in str(error)
        return
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 1), (1, 0)]
    np.testing.assert_allclose(d, 2.0)
