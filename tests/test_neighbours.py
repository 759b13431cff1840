"""The neighbour search (vesin's half list, mirrored) against ASE's reference implementation."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list

from pesnet.descriptors.bonds import _reverse_bonds, build_pairs
from pesnet.neighbours import neighbour_list, neighbour_pairs


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
