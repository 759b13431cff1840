"""The energy+force loss gradient against finite differences (two elements, float64)."""

from __future__ import annotations

import numpy as np
import pytest

from pesnet.potential.atoms_batch import batch_from_atoms
from pesnet.potential.operators import ForceOperator
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
        operator=ForceOperator(fb.centres, fb.neighbours, fb.derivatives, len(fb.numbers)),
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
