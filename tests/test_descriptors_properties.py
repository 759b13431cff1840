"""Property-based checks of ACSF: random small systems and random parameters."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pesnet.descriptors import ACSF
from pesnet.neighbours import neighbour_list
from tests.conftest import (
    assert_matches_finite_differences,
    numerical_derivatives,
    random_molecular_box,
)

angular = st.tuples(st.floats(0.0, 0.2), st.sampled_from([1.0, 2.0, 3.0, 4.0, 1.5, 6.0]),
                    st.sampled_from([-1.0, 1.0]))


@st.composite
def systems(draw):
    symbols = draw(st.lists(st.sampled_from("HCO"), min_size=2, max_size=6))
    periodic = draw(st.booleans())
    seed = draw(st.integers(0, 10_000))
    box = draw(st.floats(3.5, 6.0))
    atoms = random_molecular_box("".join(symbols), box=box, min_distance=0.8, seed=seed,
                                 pbc=periodic)
    if not periodic:
        atoms = Atoms(atoms.symbols, positions=atoms.positions)
    return atoms


@settings(max_examples=25, deadline=None)
@given(systems(), st.lists(st.tuples(st.floats(0.1, 3.0), st.floats(0.0, 3.0)), max_size=3),
       st.lists(angular, max_size=3), st.lists(angular, max_size=2),
       st.floats(2.5, 4.0), st.floats(0.6, 1.0))
def test_random_systems_and_parameters(atoms, g2, g4, g5, cutoff, angular_fraction):
    acsf = ACSF(["H", "C", "O"], cutoff, g2=g2, g4=g4, g5=g5,
                angular_cutoff=cutoff * angular_fraction)
    # Central differences (h = 1e-4 Å) straddling a cutoff see the jump of f_c'' there and are
    # off by ~1e-6: not a descriptor error, so keep every distance clear of both cutoffs.
    (d,) = neighbour_list("d", atoms, cutoff + 0.01)
    for radius in (cutoff, cutoff * angular_fraction):
        assume(np.all(np.abs(d - radius) > 1e-3))
    result = acsf.compute(atoms, derivatives=True)
    assert result.values.shape == (len(atoms), acsf.n_features)
    assert np.isfinite(result.values).all() and np.isfinite(result.derivatives).all()
    numeric = numerical_derivatives(lambda a: acsf.compute(a).values, atoms)
    analytic = result.dense_derivatives().transpose(1, 2, 0, 3)
    assert_matches_finite_differences(analytic, numeric, rtol=1e-6)
    # The blocks of each centre sum to zero (translation invariance).
    total = np.zeros((len(atoms),) + result.derivatives.shape[1:])
    np.add.at(total, result.centres, result.derivatives)
    np.testing.assert_allclose(total, 0.0, atol=1e-9 * max(1.0, np.abs(result.derivatives).max()))
