"""The compiled ACSF engine (Numba loop, ``engine = "compiled"``): the NumPy engine's values and
bond gradients to rounding, the descriptor contract (forces and strain against finite
differences, invariances), features files, the spec and command-line switches, and a clear
refusal where Numba is missing."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

import pesnet.descriptors.acsf_kernel as acsf_kernel
from pesnet.cli.main import main
from pesnet.descriptors import ACSF
from pesnet.descriptors.defaults import default_acsf
from pesnet.descriptors.featurize import featurize
from pesnet.descriptors.registry import descriptor_from_params
from pesnet.errors import InputError
from pesnet.neighbours import neighbour_list
from pesnet.pipeline.spec_tables import DescriptorSpec
from tests.conftest import assert_descriptor_contract, random_molecular_box

pytest.importorskip("numba")   # in the test extra: CI always runs these

FULL = dict(g2=[(0.5, 1.0), (1.0, 2.0)], g3=[1.0, 2.5],
            g4=[(0.1, 1.0, 1.0), (0.1, 2.5, -1.0), (0.3, 4.0, 1.0)],
            g5=[(0.2, 1.0, -1.0), (0.05, 3.3, 1.0)], angular_cutoff=4.0)


def rattled_copper(seed=0):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.08, seed=seed)
    return atoms


def rattled_alloy(seed=1):
    atoms = rattled_copper(seed)
    atoms.numbers[::3] = 79
    return atoms


def engines(acsf):
    return acsf, ACSF.from_params({**acsf.params, "engine": "compiled"})


@pytest.mark.parametrize("case", ["cu", "cuau", "molecules", "lone atom"])
def test_compiled_values_and_bond_gradients_are_the_numpy_engines(case):
    atoms, acsf = {
        "cu": (rattled_copper(), default_acsf(["Cu"], 5.0)),
        "cuau": (rattled_alloy(), default_acsf(["Cu", "Au"], 5.0)),
        "molecules": (random_molecular_box(seed=3), ACSF(["H", "C", "O"], 5.0, **FULL)),
        "lone atom": (Atoms("HCO", positions=[[0, 0, 0], [1.1, 0, 0], [9, 9, 9]]),
                      ACSF(["H", "C", "O"], 3.0, **{**FULL, "angular_cutoff": 2.5})),
    }[case]
    numpy_engine, compiled = engines(acsf)
    element = numpy_engine.element_indices(atoms.numbers)
    i, j, d, D = neighbour_list("ijdD", atoms, acsf.cutoff)
    for derivatives in (True, False):
        v0, g0 = numpy_engine.bond_terms(len(atoms), element, i, j, d, D, derivatives)
        v1, g1 = compiled.bond_terms(len(atoms), element, i, j, d, D, derivatives)
        column = np.abs(v0).max(axis=0) + 1e-300
        assert np.all(np.abs(v1 - v0) <= 1e-12 * column)
        if derivatives:
            scale = np.abs(g0).max(axis=(0, 2))[None, :, None] + 1e-300
            assert g1.shape == g0.shape and np.all(np.abs(g1 - g0) <= 1e-12 * scale)
        else:
            assert g1 is None
    assert np.abs(v0).max() > 0


@pytest.mark.parametrize("case", ["cuau", "molecules", "own images"])
def test_blocks_summed_in_the_loop_are_the_bond_gradients_summed(case):
    """The compiled engine's blocks and strain derivatives, summed in its loop, are its bond
    gradients summed by pesnet.descriptors.derivatives: bit for bit (the same sums in the
    same order), and to rounding where a bond joins an atom to its own image (whose +g and
    −g meet in the (i, i) block in another order)."""
    from pesnet.descriptors.derivatives import bond_to_blocks, strain_from_bonds

    atoms, acsf = {
        "cuau": (rattled_alloy(), default_acsf(["Cu", "Au"], 5.0)),
        "molecules": (random_molecular_box(seed=3), ACSF(["H", "C", "O"], 5.0, **FULL)),
        "own images": (bulk("Cu", "fcc", a=3.6), default_acsf(["Cu"], 5.0)),
    }[case]
    compiled = engines(acsf)[1]
    element = compiled.element_indices(atoms.numbers)
    i, j, d, D = neighbour_list("ijdD", atoms, acsf.cutoff)
    values, grad = compiled.bond_terms(len(atoms), element, i, j, d, D, True)
    expected = (values, *bond_to_blocks(i, j, grad, len(atoms)),
                strain_from_bonds(i, D, grad, len(atoms)))
    summed = compiled.jacobian_terms(len(atoms), element, i, j, d, D, strain=True)
    for ours, theirs in zip(summed, expected):
        if case == "own images":
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-13)
        else:
            np.testing.assert_array_equal(ours, theirs)
    assert compiled.jacobian_terms(len(atoms), element, i, j, d, D, strain=False)[4] is None


@pytest.mark.parametrize("periodic", [True, False])
def test_compiled_engine_passes_the_descriptor_contract(periodic):
    atoms = rattled_alloy() if periodic else random_molecular_box(seed=5, pbc=False)
    acsf = (ACSF(["Cu", "Au"], 4.5, **FULL) if periodic
            else ACSF(["H", "C", "O"], 4.5, **FULL))
    assert_descriptor_contract(engines(acsf)[1], atoms)


def test_features_file_of_the_compiled_engine(cu_features, tmp_path):
    acsf = default_acsf(["Cu"], 4.5)
    numpy_engine, compiled = engines(acsf)
    featurize(cu_features / "cu.h5", tmp_path / "numpy.h5", numpy_engine, progress=False)
    featurize(cu_features / "cu.h5", tmp_path / "compiled.h5", compiled, progress=False)
    with h5py.File(tmp_path / "numpy.h5") as a, h5py.File(tmp_path / "compiled.h5") as b:
        assert descriptor_from_params(
            __import__("json").loads(b.attrs["descriptor"])).engine == "compiled"
        assert "engine" not in a.attrs["descriptor"]      # the default keeps its bytes
        np.testing.assert_allclose(b["elements/Cu/values"][...], a["elements/Cu/values"][...],
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(b["derivatives/centre"][...], a["derivatives/centre"][...])
        blocks_a, blocks_b = a["derivatives/blocks"][...], b["derivatives/blocks"][...]
        # float32 blocks: equal but where the float64 values round to neighbouring floats
        np.testing.assert_allclose(blocks_b, blocks_a, rtol=2e-7, atol=1e-12)
        assert np.mean(blocks_a == blocks_b) > 0.99


def test_spec_and_command_line_choose_the_engine(cu_features, tmp_path, capsys):
    spec = DescriptorSpec(cutoff=4.5, engine="compiled")
    assert spec.parameters(["Cu"])["engine"] == "compiled"
    assert "engine" not in DescriptorSpec(cutoff=4.5).parameters(["Cu"])
    with pytest.raises(ValueError, match="engine applies to the ACSF kind"):
        DescriptorSpec(kind="ani", engine="compiled")
    output = tmp_path / "f.h5"
    assert main(["featurize", str(cu_features / "cu.h5"), "-o", str(output), "--cutoff", "4.5",
                 "--engine", "compiled", "--quiet"]) == 0
    with h5py.File(output) as f:
        assert '"engine": "compiled"' in f.attrs["descriptor"]
    assert main(["featurize", str(cu_features / "cu.h5"), "-o", str(output), "--cutoff", "4.5",
                 "--engine", "compiled"]) == 0
    assert "engine='compiled')" in capsys.readouterr().out    # the summary names the engine


def test_without_numba_featurize_refuses_and_the_rest_uses_numpy(cu_features, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setattr(acsf_kernel, "numba_available", lambda: False)
    monkeypatch.setattr("pesnet.descriptors.acsf.numba_available", lambda: False)
    numpy_engine, compiled = engines(default_acsf(["Cu"], 4.5))
    with pytest.raises(InputError, match="needs Numba: pip install 'pesnet\\[fast\\]'"):
        featurize(cu_features / "cu.h5", tmp_path / "f.h5", compiled, progress=False)
    assert not (tmp_path / "f.h5").exists()
    atoms = rattled_copper()
    np.testing.assert_array_equal(compiled.compute(atoms).values,
                                  numpy_engine.compute(atoms).values)
