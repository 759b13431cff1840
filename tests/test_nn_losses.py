"""Losses: values, gradients (finite differences) and per-sample, per-member weights."""

import numpy as np
import pytest

from pesnet.errors import InputError
from pesnet.nn.losses import LOSSES, Huber, get_loss
from tests.nn_helpers import fd_gradient, rel_error

SPECS = ["mse", "mae", {"name": "huber", "delta": 0.7}]


def _data(seed=0, M=3, B=5, K=2):
    rng = np.random.default_rng(seed)
    y, t = rng.normal(size=(M, B, K)), rng.normal(size=(B, K))
    w = rng.poisson(1.0, size=(M, B)).astype(float)
    return y, t, w


@pytest.mark.parametrize("spec", SPECS, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_matches_finite_difference(spec, reduction, weighted):
    loss = get_loss(spec, reduction=reduction)
    y, t, w = _data()
    w = w if weighted else None
    value, g = loss.value_and_grad(y.copy(), t, w)
    np.testing.assert_allclose(value, loss(y, t, w), rtol=1e-14)
    fd = fd_gradient(lambda: float(loss(y, t, w).sum()), y)
    assert rel_error(g, fd) < 1e-6


def test_values_by_hand():
    y = np.array([[[1.0], [2.0], [5.0]]])          # one member, three samples
    t = np.array([[0.0], [2.0], [2.0]])            # residuals 1, 0, 3
    assert get_loss("mse")(y, t)[0] == pytest.approx((1 + 0 + 9) / 3)
    assert get_loss("mse", reduction="sum")(y, t)[0] == pytest.approx(10)
    assert get_loss("mae")(y, t)[0] == pytest.approx(4 / 3)
    # Huber δ=2: ½·1² + 0 + 2·(3 − 1)
    assert Huber(delta=2.0)(y, t)[0] == pytest.approx((0.5 + 0 + 4) / 3)


def test_member_weights_select_samples():
    """A member with weights (2, 0, 1) sees sample 0 twice, never sample 1."""
    y = np.array([[[1.0], [2.0], [5.0]], [[1.0], [2.0], [5.0]]])
    t = np.array([[0.0], [0.0], [2.0]])
    w = np.array([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    for name in LOSSES:
        loss = get_loss(name, reduction="sum")
        val = loss(y, t, w)
        assert val[0] == pytest.approx(2 * loss(y[:1, :1], t[:1])[0] + loss(y[:1, 2:], t[2:])[0])
        assert val[1] == pytest.approx(loss(y[1:], t)[0])
        _, g = loss.value_and_grad(y.copy(), t, w)
        assert g[0, 1, 0] == 0.0


def test_shared_weights_vector_and_errors():
    y, t, w = _data()
    loss = get_loss("mse")
    np.testing.assert_allclose(loss(y, t, w[0]), loss(y, t, np.broadcast_to(w[0], w.shape)))
    with pytest.raises(InputError, match="sample weights"):
        loss(y, t, np.ones(7))
    with pytest.raises(InputError, match="unknown loss"):
        get_loss("hinge")
    with pytest.raises(InputError, match="reduction"):
        get_loss("mse", reduction="median")
    with pytest.raises(InputError, match="delta"):
        Huber(delta=0)


def test_huber_limits():
    """Small residuals: Huber = MSE/2; large: slope δ."""
    y = np.array([[[1e-3], [100.0]]])
    t = np.zeros((2, 1))
    _, g = Huber(delta=1.0, reduction="sum").value_and_grad(y.copy(), t)
    np.testing.assert_allclose(g.ravel(), [1e-3, 1.0])
