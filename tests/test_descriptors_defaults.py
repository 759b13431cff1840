"""The default parameter set: its documented scheme and that its features are informative."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase.build import bulk, molecule

from pesnet.descriptors import ACSF, default_acsf, default_parameters
from pesnet.errors import InputError


def test_scheme_and_feature_counts():
    params = default_parameters(["Cu"], 6.0)
    g2 = np.array(params["g2"])
    spacing = (6.0 - 0.5) / 8
    np.testing.assert_allclose(g2[:, 1], 0.5 + spacing * np.arange(8))
    np.testing.assert_allclose(g2[:, 0], 4 * math.log(2) / spacing**2)
    assert len(params["g4"]) == 12 and params["g5"] == []
    # angular terms within min(cutoff, 4 Å) by default
    assert params["angular_cutoff"] == 4.0
    assert sorted({row[0] for row in params["g4"]}) == pytest.approx([1 / 16, 4 / 16])
    assert default_acsf(["Cu"], 6.0).n_features == 21
    assert default_acsf(["O", "H", "C"], 6.0).n_features == 99
    full = default_parameters(["Cu"], 6.0, angular_cutoff=6.0)
    assert full["angular_cutoff"] == 6.0
    assert sorted({row[0] for row in full["g4"]}) == pytest.approx([1 / 36, 4 / 36])
    assert default_parameters(["Cu"], 3.5)["angular_cutoff"] == 3.5


def test_default_features_are_informative():
    cu = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    cu.rattle(0.05, seed=0)
    values = default_acsf(["Cu"]).compute(cu).values
    assert (values.std(axis=0) > 0).all()  # every column varies over a rattled crystal
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.02, seed=1)  # break the mirror symmetry
    values = default_acsf(["H", "C", "O"]).compute(ethanol).values
    assert len({tuple(np.round(row, 6)) for row in values}) == 9  # every atom distinguishable
    assert isinstance(default_acsf(["Cu"]), ACSF)


def test_bad_default_arguments():
    with pytest.raises(InputError, match="exceed r_min"):
        default_parameters(["Cu"], 0.3)
    with pytest.raises(InputError, match="n_radial"):
        default_parameters(["Cu"], 6.0, n_radial=0)


def test_a_cutoff_above_20_angstrom_is_refused_for_new_descriptors_only():
    with pytest.raises(InputError, match="cutoff 25 Å is above the 20 Å"):
        default_parameters(["Cu"], 25.0)
    old = ACSF(["Cu"], 25.0, g2=[(0.5, 2.0)])          # as a model file may hold it
    assert ACSF.from_params(old.params).cutoff == 25.0
