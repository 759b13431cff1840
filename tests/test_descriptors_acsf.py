"""ACSF values: DScribe's definitions and column order, labels, parameter validation."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from dscribe.descriptors import ACSF as DScribeACSF

from pesnet.descriptors import ACSF
from pesnet.errors import InputError
from tests.conftest import random_molecular_box

G2 = [(0.5, 0.0), (4.0, 1.2), (1.5, 2.5), (0.8, 3.5)]
G3 = [0.7, 2.0]
G4 = [(0.01, 1.0, -1.0), (0.01, 2.0, 1.0), (0.05, 4.0, -1.0), (0.02, 1.5, 1.0)]
G5 = [(0.02, 1.0, 1.0), (0.1, 2.0, -1.0), (0.005, 3.0, -1.0)]


def _compare_with_dscribe(atoms, species, cutoff):
    ours = ACSF(species, cutoff, g2=G2, g3=G3, g4=G4, g5=G5)
    theirs = DScribeACSF(r_cut=cutoff, g2_params=G2, g3_params=G3, g4_params=G4, g5_params=G5,
                         species=species, periodic=bool(atoms.pbc.any()))
    expected = theirs.create(atoms)
    values = ours.compute(atoms).values
    assert values.shape == expected.shape == (len(atoms), ours.n_features)
    assert theirs.get_number_of_features() == ours.n_features
    # 1e-10 relative to each column's scale (columns differ by orders of magnitude).
    scale = np.maximum(np.abs(expected).max(axis=0), 1e-300)
    assert (np.abs(values - expected) / scale).max() < 1e-10
    assert np.count_nonzero(expected) > 0.5 * expected.size  # the comparison is not vacuous


def test_matches_dscribe_on_ethanol():
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    _compare_with_dscribe(atoms, ["H", "C", "O"], 5.0)


def test_matches_dscribe_on_periodic_copper():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=2)
    _compare_with_dscribe(atoms, ["Cu"], 6.0)


def test_matches_dscribe_on_random_hco_box():
    atoms = random_molecular_box("HHHHHHCCCCOOO", box=6.5, seed=3)
    _compare_with_dscribe(atoms, ["H", "C", "O"], 4.5)


def test_matches_dscribe_on_triclinic_cell_smaller_than_cutoff():
    atoms = bulk("Cu", "fcc", a=3.61)  # one atom, 2.55 Å cell vectors: many images of itself
    atoms = atoms.repeat((2, 1, 1))
    atoms.rattle(0.05, seed=4)
    _compare_with_dscribe(atoms, ["Cu"], 5.0)


def test_column_order_and_labels():
    acsf = ACSF(["O", "H", 6], 5.0, g2=[(1.0, 0.0)], g4=[(0.01, 1, 1)], g5=[(0.02, 2, -1)])
    assert acsf.elements == (1, 6, 8)
    labels = acsf.labels
    assert len(labels) == acsf.n_features == 3 * 2 + 6 * 2
    assert labels[:6] == ("G1[H]", "G2[H](eta=1,Rs=0)", "G1[C]", "G2[C](eta=1,Rs=0)",
                          "G1[O]", "G2[O](eta=1,Rs=0)")
    pairs = [label.split("]")[0].split("[")[1] for label in labels[6::2]]
    assert pairs == ["H,H", "H,C", "C,C", "H,O", "C,O", "O,O"]  # DScribe's pair order
    assert labels[6] == "G4[H,H](eta=0.01,zeta=1,lambda=1)"
    assert labels[7] == "G5[H,H](eta=0.02,zeta=2,lambda=-1)"


def test_angular_cutoff_limits_angular_terms_only():
    atoms = random_molecular_box("HHHCCO", box=5.0, seed=5)
    full = ACSF(["H", "C", "O"], 5.0, g2=G2, g4=G4)
    short = ACSF(["H", "C", "O"], 5.0, g2=G2, g4=G4, angular_cutoff=3.0)
    reference = ACSF(["H", "C", "O"], 3.0, g2=G2, g4=G4)
    v_full, v_short = full.compute(atoms).values, short.compute(atoms).values
    n_radial = 3 * (1 + len(G2))
    np.testing.assert_array_equal(v_short[:, :n_radial], v_full[:, :n_radial])
    np.testing.assert_allclose(v_short[:, n_radial:],
                               reference.compute(atoms).values[:, n_radial:], rtol=1e-12)
    assert not np.allclose(v_short[:, n_radial:], v_full[:, n_radial:])


def test_params_round_trip_and_equality():
    acsf = ACSF(["Cu"], 6.0, g2=G2, g3=G3, g4=G4, g5=G5, angular_cutoff=4.0)
    again = ACSF.from_params(acsf.params)
    assert again == acsf and hash(again) == hash(acsf)
    assert again != ACSF(["Cu"], 6.0, g2=G2, g3=G3, g4=G4, g5=G5)
    assert "n_features=" in repr(acsf)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(elements=["Xx"], cutoff=5), "unknown chemical symbol"),
        (dict(elements=[], cutoff=5), "at least one element"),
        (dict(elements=["H"], cutoff=-1), "positive"),
        (dict(elements=["H"], cutoff=5, angular_cutoff=6), "angular_cutoff"),
        (dict(elements=["H"], cutoff=5, g2=[(1.0,)]), "eta, Rs"),
        (dict(elements=["H"], cutoff=5, g2=[(-1.0, 0.0)]), "eta > 0"),
        (dict(elements=["H"], cutoff=5, g4=[(0.1, 0.5, 1)]), "zeta >= 1"),
        (dict(elements=["H"], cutoff=5, g5=[(0.1, 1, 0.5)]), "lambda"),
        (dict(elements=["H"], cutoff=5, g4=[(np.nan, 1, 1)]), "finite"),
    ],
)
def test_invalid_parameters_raise_clear_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        ACSF(**kwargs)


def test_from_params_rejects_unknown_keys():
    with pytest.raises(InputError, match="unknown descriptor parameter"):
        ACSF.from_params({"elements": ["H"], "cutoff": 5, "g7": []})
    with pytest.raises(InputError, match="lack 'cutoff'"):
        ACSF.from_params({"elements": ["H"]})


def test_matches_dscribe_with_large_and_shared_zeta():
    # ζ = 8 is expanded as a polynomial in cos θ, ζ = 16 and 9 are not; η shared out of order.
    g4 = [(0.01, 8.0, -1.0), (0.03, 16.0, 1.0), (0.01, 1.0, 1.0), (0.03, 9.0, -1.0)]
    g5 = [(0.02, 16.0, -1.0), (0.02, 8.0, 1.0)]
    atoms = random_molecular_box("HHHHCCCOO", box=6.0, seed=8)
    ours = ACSF(["H", "C", "O"], 4.5, g2=G2, g4=g4, g5=g5)
    theirs = DScribeACSF(r_cut=4.5, g2_params=G2, g4_params=g4, g5_params=g5,
                         species=["H", "C", "O"], periodic=True)
    expected = theirs.create(atoms)
    scale = np.maximum(np.abs(expected).max(axis=0), 1e-300)
    assert (np.abs(ours.compute(atoms).values - expected) / scale).max() < 1e-10
