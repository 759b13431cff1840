"""The energy+force loss gradient against finite differences (two elements, float64)."""

from __future__ import annotations

import numpy as np
import pytest

from pesnet.descriptors.jacobian import DescriptorJacobian
from pesnet.potential.atoms_batch import batch_from_atoms
from pesnet.training.objective import LossWeights, PreparedBatch, batch_loss
from tests.potential_helpers import random_potential, water_box


def prepared(potential, structures, seed=0):
    rng = np.random.default_rng(seed)
    fb = batch_from_atoms(potential.descriptor, potential.scalers, structures)
    n_atoms = np.diff(fb.offsets)
    has_forces = np.ones(len(fb.numbers), bool)
    has_forces[1] = False  # one atom without a force label
    return PreparedBatch(
        features=fb,
        operator=DescriptorJacobian(fb.centres, fb.neighbours, fb.derivatives, len(fb.numbers)),
        energy=rng.normal(-20, 1, len(structures)),
        forces=rng.normal(0, 0.5, (len(fb.numbers), 3)),
        has_energy=np.array([True] * (len(structures) - 1) + [False]),
        has_forces=has_forces,
        n_atoms=n_atoms,
        weights=rng.poisson(1.0, (potential.n_members, len(structures))).astype(float) + 0.5,
    )


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_loss_gradient_matches_finite_differences(activation):
    potential = random_potential(n_members=3, activation=activation)
    structures = [water_box(1), water_box(2, periodic=False), water_box(3, n_molecules=3)]
    batch = prepared(potential, structures)
    weights = LossWeights(energy=1.3, forces=0.7)
    result = batch_loss(potential, batch, weights)
    rng = np.random.default_rng(5)
    h = 1e-4
    numeric_all, analytic_all = [], []
    for z, net in potential.networks.items():
        n_real = net.n_params
        Ws, bs = net.layer_views(result.grads[z])
        # check a sample of weights and every bias of the last layer, every member
        for layer, (W, b) in enumerate(zip(net.weights, net.biases)):
            picks = [(W, dW, tuple(rng.integers(0, s) for s in W.shape[1:])) for W, dW in
                     [(W, Ws[layer])] for _ in range(4)]
            picks += [(b, bs[layer], (rng.integers(0, b.shape[1]),))]
            for param, grad, index in picks:
                for m in range(net.n_members):
                    full = (m, *index)
                    old = param[full]
                    param[full] = old + h
                    up = batch_loss(potential, batch, weights, gradients=False).loss[m]
                    param[full] = old - h
                    down = batch_loss(potential, batch, weights, gradients=False).loss[m]
                    param[full] = old
                    numeric_all.append((up - down) / (2 * h))
                    analytic_all.append(grad[full])
        assert n_real > 0
    numeric_all, analytic_all = np.array(numeric_all), np.array(analytic_all)
    # relative error of the sampled gradient vector (per-entry errors of tiny entries are
    # dominated by finite-difference round-off)
    relative = np.linalg.norm(numeric_all - analytic_all) / np.linalg.norm(numeric_all + analytic_all)
    assert relative < 1e-6, relative
    assert np.abs(analytic_all).max() > 1e-3  # the check is not vacuous


def test_members_do_not_interact():
    """Member m's loss depends only on member m's weights."""
    potential = random_potential(n_members=3)
    batch = prepared(potential, [water_box(4)])
    before = batch_loss(potential, batch, gradients=False).loss
    for net in potential.networks.values():
        net.params[1] += 0.1
    after = batch_loss(potential, batch, gradients=False).loss
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1] != before[1]


def _with_stress(batch, structures, seed=1):
    """``batch`` with random stress labels (eV/Å³) on its periodic structures."""
    rng = np.random.default_rng(seed)
    periodic = np.array([bool(a.pbc.all()) for a in structures])
    volume = np.array([a.get_volume() if a.pbc.all() else 1.0 for a in structures])
    stress = np.where(periodic[:, None], rng.normal(0, 0.01, (len(structures), 6)), 0.0)
    return batch._replace(stress=stress, has_stress=periodic, volume=volume)


def _copper_cells():
    from ase.build import bulk

    cells = []
    for k, a in enumerate((3.55, 3.62, 3.70)):
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 1, 1))
        atoms.rattle(0.05, seed=k)
        atoms.cell[0, 1] += 0.1 * k        # sheared: off-diagonal stress components too
        cells.append(atoms)
    return cells


@pytest.mark.parametrize("system", ["one element", "two elements"])
def test_stress_loss_gradient_matches_finite_differences(system):
    if system == "one element":
        potential = random_potential(elements=(29,), n_members=2, cutoff=3.0)
        structures = _copper_cells()
    else:
        potential = random_potential(n_members=2)
        structures = [water_box(1), water_box(2, periodic=False), water_box(3, n_molecules=3)]
    batch = _with_stress(prepared(potential, structures), structures)
    weights = LossWeights(energy=0.4, forces=0.3, stress=50.0)
    result = batch_loss(potential, batch, weights)
    assert result.n_stress == 6 * int(batch.has_stress.sum()) and result.stress_sq.min() > 0
    without = batch_loss(potential, batch, LossWeights(energy=0.4, forces=0.3))
    assert (result.loss > without.loss).all()           # the stress term is really there
    h = 1e-5
    numeric, analytic = [], []
    for z, net in potential.networks.items():
        grad = result.grads[z]
        for m in range(net.n_members):
            for p in np.random.default_rng(7).choice(net.n_params, 12, replace=False):
                old = net.params[m, p]
                net.params[m, p] = old + h
                up = batch_loss(potential, batch, weights, gradients=False).loss[m]
                net.params[m, p] = old - h
                down = batch_loss(potential, batch, weights, gradients=False).loss[m]
                net.params[m, p] = old
                numeric.append((up - down) / (2 * h))
                analytic.append(grad[m, p])
    numeric, analytic = np.array(numeric), np.array(analytic)
    relative = np.linalg.norm(numeric - analytic) / np.linalg.norm(numeric + analytic)
    assert relative < 1e-6, relative
    assert np.abs(analytic).max() > 1e-4


def test_stress_term_is_the_models_stress():
    """The σ the loss compares is Potential.predict's stress (ASE's Voigt sign and order)."""
    potential = random_potential(elements=(29,), n_members=2, cutoff=3.0)
    structures = _copper_cells()
    batch = _with_stress(prepared(potential, structures), structures)
    zero = batch._replace(stress=np.zeros_like(batch.stress))
    only_stress = LossWeights(energy=0.0, forces=0.0, stress=1.0)
    loss = batch_loss(potential, zero, only_stress, gradients=False).loss
    predicted = potential.predict(structures, stress=True, members=True).members
    sigma = predicted.virial[:, :, [0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]] / np.array(
        [a.get_volume() for a in structures])[None, :, None]
    c = batch.weights
    expected = (c * (sigma**2).sum(axis=2)).sum(axis=1) / (6 * c.sum(axis=1))
    np.testing.assert_allclose(loss, expected, rtol=1e-10)
