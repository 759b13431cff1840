"""Shared fixtures and assertions for pesnet's tests.

Data fixtures make their own small labelled data (nothing is downloaded).
"""

from __future__ import annotations

import numpy as np
import pytest


def labelled_frames(n=6, seed=0):
    """``n`` small labelled configurations: rattled Cu cells (EMT) and a molecule (EMT on H/C/O)."""
    from ase.build import bulk, molecule
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        if k % 3 == 2:
            atoms = molecule("CH3CH2OH")
            atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        else:
            atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, 1 + k % 2))
            atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        atoms.calc = EMT()
        results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
        if atoms.pbc.all():
            results["stress"] = atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info["config_type"] = f"kind{k % 3}"
        frames.append(atoms)
    return frames


@pytest.fixture
def frames():
    """Six small labelled configurations (periodic Cu and an ethanol molecule)."""
    return labelled_frames()


@pytest.fixture
def extxyz_file(tmp_path, frames):
    """Path of an extxyz file holding :func:`frames`."""
    import ase.io

    path = tmp_path / "frames.extxyz"
    ase.io.write(path, frames, format="extxyz")
    return path


# -- shared physical assertions: finite differences and invariances -------------------------
# One definition of "correct" for anything that maps atoms to per-atom arrays (descriptors,
# per-atom energies) or to arrays whose position derivatives are known analytically.


def random_molecular_box(symbols="HHHHCCCOO", box=6.0, min_distance=0.9, seed=0, pbc=True):
    """Atoms of ``symbols`` at random in a cubic box (Å), no two closer than ``min_distance``."""
    from ase import Atoms

    rng = np.random.default_rng(seed)
    cell = np.eye(3) * box
    positions = []
    while len(positions) < len(symbols):
        trial = rng.uniform(0, box, 3)
        ok = True
        for p in positions:
            delta = trial - p
            delta -= box * np.round(delta / box) if pbc else 0.0
            ok &= np.linalg.norm(delta) >= min_distance
        if ok:
            positions.append(trial)
    return Atoms(symbols, positions=positions, cell=cell, pbc=pbc)


def numerical_derivatives(function, atoms, h=1e-4, indices=None):
    """Central differences of ``function(atoms)`` (an array) with respect to atom positions.

    Returns (len(indices), 3, *output_shape); ``atoms`` is left unchanged.
    """
    indices = range(len(atoms)) if indices is None else indices
    out = []
    for a in indices:
        rows = []
        for x in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, x] += h
            minus.positions[a, x] -= h
            rows.append((np.asarray(function(plus)) - np.asarray(function(minus))) / (2 * h))
        out.append(rows)
    return np.array(out)


def numerical_strain_derivatives(function, atoms, h=1e-5):
    """Central differences of ``function(atoms)`` under r → (1 + ε) r of atoms and cell.

    Returns (3, 3, *output_shape): entry [a, b] is ∂function/∂ε_ab.
    """
    out = np.zeros((3, 3) + np.shape(function(atoms)))
    cell = np.array(atoms.get_cell())
    for a in range(3):
        for b in range(3):
            results = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * h
                strained = atoms.copy()
                strained.set_cell(cell @ strain.T, scale_atoms=True)
                results.append(np.asarray(function(strained)))
            out[a, b] = (results[0] - results[1]) / (2 * h)
    return out


def assert_matches_finite_differences(analytic, numeric, rtol=1e-6):
    """``analytic`` equals ``numeric`` to ``rtol`` of the largest magnitude (at least 1)."""
    analytic, numeric = np.asarray(analytic), np.asarray(numeric)
    assert analytic.shape == numeric.shape, (analytic.shape, numeric.shape)
    scale = max(1.0, float(np.abs(numeric).max()))
    error = float(np.abs(analytic - numeric).max())
    assert error <= rtol * scale, f"max |analytic - finite difference| = {error:.3g} > {rtol * scale:.3g}"


def assert_invariances(per_atom, atoms, seed=0, atol=1e-9):
    """``per_atom(atoms)`` (n_atoms, ...) is unchanged by rotation and translation, and follows
    a permutation of like atoms (swapped rows), for molecules and periodic cells alike."""
    rng = np.random.default_rng(seed)
    reference = np.asarray(per_atom(atoms))
    scale = max(1.0, float(np.abs(reference).max()))

    rotated = atoms.copy()
    axis = rng.normal(size=3)
    rotated.rotate(float(rng.uniform(10, 350)), axis, center="COP", rotate_cell=True)
    np.testing.assert_allclose(per_atom(rotated), reference, atol=atol * scale,
                               err_msg="not invariant under rotation")

    moved = atoms.copy()
    moved.positions += rng.normal(size=3) * 2.0
    if atoms.pbc.any():
        moved.wrap()
    np.testing.assert_allclose(per_atom(moved), reference, atol=atol * scale,
                               err_msg="not invariant under translation")

    permutation = np.arange(len(atoms))
    for z in np.unique(atoms.numbers):
        same = np.flatnonzero(atoms.numbers == z)
        permutation[same] = rng.permutation(same)
    permuted = atoms[permutation]
    np.testing.assert_allclose(per_atom(permuted), reference[permutation], atol=atol * scale,
                               err_msg="does not follow a permutation of like atoms")


def assert_descriptor_contract(descriptor, atoms, seed=0, rtol=1e-6):
    """What every registered descriptor kind must satisfy, on one structure ``atoms``
    (DScribe's ``assert_symmetries`` + ``assert_derivatives``, for the protocol of
    :mod:`pesnet.descriptors.protocol`):

    * values are invariant (rotation, translation, permutation of like atoms);
    * sparse derivative blocks match central differences of the values, strain derivatives
      those under a homogeneous strain (periodic structures);
    * :meth:`compute_many` agrees with :meth:`compute`, parameters survive JSON;
    * the prediction-time evaluator gives the same values, and its pull-back gives the forces
      −Σ_i w_i·∂G_i/∂r and the virial Σ_i w_i·∂G_i/∂ε of random weights w.
    """
    import json

    from pesnet.descriptors.bonds import build_pairs
    from pesnet.descriptors.registry import descriptor_from_params

    assert descriptor_from_params(json.loads(descriptor.to_json())) == descriptor
    assert len(descriptor.labels) == descriptor.n_features
    assert_invariances(lambda a: descriptor.compute(a).values, atoms, seed=seed)
    result = descriptor.compute(atoms, derivatives=True)
    assert result.values.shape == (len(atoms), descriptor.n_features)
    numeric = numerical_derivatives(lambda a: descriptor.compute(a).values, atoms)
    # numeric[j, x, i, f] = ∂G_if/∂r_jx; dense[i, j, x, f]
    assert_matches_finite_differences(result.dense_derivatives(), numeric.transpose(2, 0, 1, 3),
                                      rtol=rtol)
    if atoms.pbc.any():
        strain = numerical_strain_derivatives(lambda a: descriptor.compute(a).values, atoms)
        assert_matches_finite_differences(result.strain_derivatives,
                                          strain.transpose(2, 3, 0, 1), rtol=rtol)
    many = descriptor.compute_many([atoms, atoms], derivatives=True)
    np.testing.assert_array_equal(many[1].values, result.values)

    evaluator = descriptor.evaluator()
    pairs = build_pairs(atoms, descriptor.cutoff + 0.3, descriptor.element_indices(atoms.numbers),
                        len(descriptor.elements))
    values, tape = evaluator.forward(pairs, pairs.geometry(atoms.positions, atoms.cell.array))
    np.testing.assert_allclose(values, result.values, rtol=1e-10, atol=1e-12)
    weights = np.random.default_rng(seed).normal(size=(2,) + values.shape)
    forces, virials = evaluator.backward(tape, weights, forces=True, virial=True)
    from pesnet.descriptors import contract_blocks, contract_strain

    for k in range(2):
        expected = -contract_blocks(weights[k], result.centres, result.neighbours,
                                    result.derivatives, len(atoms))
        np.testing.assert_allclose(forces[k], expected, rtol=1e-9, atol=1e-10)
        if atoms.pbc.any():
            np.testing.assert_allclose(virials[k, 0], contract_strain(
                weights[k], result.strain_derivatives), rtol=1e-9, atol=1e-10)


@pytest.fixture(scope="session")
def cu_features(tmp_path_factory):
    """A ~40-configuration Cu EMT dataset and its features (made once per test session)."""
    import ase.io

    from pesnet.data.calculators import make_calculator
    from pesnet.data.ingest import ingest
    from pesnet.data.recipes import run_recipe
    from pesnet.descriptors import ACSF
    from pesnet.descriptors.featurize import featurize

    root = tmp_path_factory.mktemp("cu")
    frames = list(run_recipe("cu-fcc", make_calculator("emt"), seed=5, scale=0.05))
    ase.io.write(root / "cu.extxyz", frames)
    ingest([root / "cu.extxyz"], root / "cu.h5")
    acsf = ACSF(["Cu"], cutoff=4.5, g2=[(0.5, 2.5), (1.0, 3.0), (1.0, 3.8), (0.3, 0.0)],
                g4=[(0.05, 1.0, 1.0), (0.05, 1.0, -1.0), (0.05, 4.0, 1.0)])
    featurize(root / "cu.h5", root / "features.h5", acsf=acsf, progress=False)
    return root


@pytest.fixture(scope="session")
def cu_model(cu_features, tmp_path_factory):
    """A small trained Cu ensemble (3 members, 8-8 networks) on a cheap descriptor
    (radial 4 Å, angular 3 Å), saved as model.h5: fast enough for thousands of MD steps.
    Returns the model file's path."""
    from pesnet.descriptors import ACSF
    from pesnet.descriptors.featurize import featurize
    from pesnet.potential.io import save_model
    from pesnet.training.settings import TrainSettings
    from pesnet.training.trainer import train_potential

    root = tmp_path_factory.mktemp("cu_model")
    acsf = ACSF(["Cu"], cutoff=4.0, angular_cutoff=3.0,
                g2=[(0.5, 2.5), (1.0, 3.0), (1.0, 3.8), (0.3, 0.0)],
                g4=[(0.05, 1.0, 1.0), (0.05, 1.0, -1.0), (0.05, 4.0, 1.0)])
    featurize(cu_features / "cu.h5", root / "features.h5", acsf=acsf, progress=False)
    # pesnet 0.1's training settings, spelt out: the tests that use this toy model (BFGS on a
    # slab it never saw, MD, NEB) are about the calculator, not about the training defaults
    result = train_potential(root / "features.h5", TrainSettings(
        hidden=(8, 8), n_members=3, epochs=30, batch_size=4, seed=3, patience=50,
        optimizer="adam", learning_rate=5e-3, bootstrap=True, min_feature_std=0.0,
        schedule={"name": "plateau", "factor": 0.5, "patience": 10, "min_factor": 0.01}))
    return save_model(result.potential, root / "model.h5")
