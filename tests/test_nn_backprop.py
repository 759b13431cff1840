"""Hand-written backpropagation against finite differences (float64, relative error < 1e-6).

Covers parameter gradients of a 3-hidden-layer ensemble for every activation, with shared and
per-member inputs and a non-identity output activation; the input gradient; the directional
derivative J u; and the force-training pass (parameter gradient of Σ g·y + Σ v·J u).
"""

import numpy as np
import pytest

from pesnet.nn import MLP
from pesnet.nn.activations import ACTIVATIONS
from tests.nn_helpers import fd_gradient, param_mask, rel_error

SIZES = (5, 7, 6, 4, 2)          # three hidden layers, two outputs
SMOOTH = ["tanh", "sigmoid", "softplus", "shifted_softplus", "silu", "gelu", "celu"]
TOL = 1e-6


def _net(activation="tanh", sizes=SIZES, members=3, seed=7, **kw):
    mlp = MLP(sizes, members, activation=activation, seed=seed, **kw)
    rng = np.random.default_rng(seed)
    # non-zero biases so every term of the gradient is exercised
    for b in mlp.biases:
        b[...] = 0.3 * rng.normal(size=b.shape)
    return mlp


def _inputs(mlp, batch=4, shared=True, seed=3):
    rng = np.random.default_rng(seed)
    shape = (batch, mlp.sizes[0]) if shared else (mlp.n_members, batch, mlp.sizes[0])
    return rng.normal(size=shape)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("shared", [True, False], ids=["shared-x", "member-x"])
def test_param_gradients(activation, shared):
    mlp = _net(activation)
    x = _inputs(mlp, shared=shared)
    g_y = np.random.default_rng(1).normal(size=(mlp.n_members, x.shape[-2], mlp.sizes[-1]))

    def phi():
        return float(np.sum(g_y * mlp.predict(x)))

    grads = mlp.backward(mlp.forward(x), g_y)
    fd = fd_gradient(phi, mlp.params, mask=param_mask(mlp))
    assert rel_error(grads, fd) < TOL
    # padding of the flat layout carries no gradient
    assert not np.any(grads[~param_mask(mlp)])


@pytest.mark.parametrize("output_activation", ["sigmoid", "softplus", "gelu"])
def test_param_gradients_output_activation(output_activation):
    mlp = _net("tanh", output_activation=output_activation)
    x = _inputs(mlp)
    g_y = np.random.default_rng(2).normal(size=(mlp.n_members, x.shape[0], mlp.sizes[-1]))
    grads = mlp.backward(mlp.forward(x), g_y)
    fd = fd_gradient(lambda: float(np.sum(g_y * mlp.predict(x))), mlp.params,
                     mask=param_mask(mlp))
    assert rel_error(grads, fd) < TOL


def test_loss_gradient_through_network_scalar_output():
    """The training path: weighted MSE on a scalar-output network, reusing the cache buffers."""
    from pesnet.nn.losses import MSE
    mlp = _net("tanh", sizes=(3, 8, 8, 8, 1), members=4)
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(6, 3)), rng.normal(size=(6, 1))
    w = rng.poisson(1.0, size=(4, 6)).astype(float)
    loss = MSE()
    cache = mlp.new_cache(6)
    mlp.forward(x, cache)
    _, g = loss.value_and_grad(cache.output, t, w, out=cache.dy)
    grads = mlp.backward(cache, g, out=mlp.zeros_like_params())
    fd = fd_gradient(lambda: float(loss(mlp.predict(x), t, w).sum()), mlp.params,
                     mask=param_mask(mlp))
    assert rel_error(grads, fd) < TOL


@pytest.mark.parametrize("activation", SMOOTH + ["relu", "elu", "identity"])
def test_input_gradient(activation):
    mlp = _net(activation)
    x = _inputs(mlp, shared=False)
    g_y = np.random.default_rng(4).normal(size=(mlp.n_members, x.shape[1], mlp.sizes[-1]))
    gx = mlp.input_gradient(mlp.forward(x), g_y)
    assert gx.shape == x.shape
    fd = fd_gradient(lambda: float(np.sum(g_y * mlp.predict(x))), x)
    assert rel_error(gx, fd) < TOL


def test_input_gradient_scalar_output_default_and_shared_input():
    mlp = _net("softplus", sizes=(4, 9, 9, 9, 1))
    x = _inputs(mlp, shared=True, batch=5)
    gx = mlp.input_gradient(mlp.forward(x))       # ∂y/∂x of each member, (M, B, n_in)
    assert gx.shape == (mlp.n_members, 5, 4)
    for m in range(mlp.n_members):
        fd = fd_gradient(lambda: float(mlp.predict(x)[m].sum()), x)
        assert rel_error(gx[m], fd) < TOL


@pytest.mark.parametrize("activation", SMOOTH)
def test_jvp_matches_directional_difference(activation):
    mlp = _net(activation)
    x = _inputs(mlp, shared=False)
    u = np.random.default_rng(5).normal(size=x.shape)
    h = 1e-6
    fd = (mlp.predict(x + h * u) - mlp.predict(x - h * u)) / (2 * h)
    assert rel_error(mlp.jvp(mlp.forward(x), u), fd) < TOL
    # adjoint identity: v·(J u) = (Jᵀ v)·u
    v = np.random.default_rng(6).normal(size=fd.shape)
    cache = mlp.forward(x)
    lhs = np.sum(v * mlp.jvp(cache, u))
    rhs = np.sum(mlp.input_gradient(cache, v) * u)
    assert abs(lhs - rhs) < 1e-12 * max(1.0, abs(lhs))


@pytest.mark.parametrize("activation", SMOOTH + ["relu", "elu", "identity"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared-x", "member-x"])
def test_force_training_gradient(activation, shared):
    """∂/∂θ [Σ g_y·y + Σ v·(J u)] against finite differences of the analytic J u."""
    mlp = _net(activation)
    x = _inputs(mlp, shared=shared)
    rng = np.random.default_rng(8)
    M, B, K = mlp.n_members, x.shape[-2], mlp.sizes[-1]
    u = rng.normal(size=(M, B, mlp.sizes[0]))
    g_y, v = rng.normal(size=(M, B, K)), rng.normal(size=(M, B, K))

    def phi():
        cache = mlp.forward(x)
        return float(np.sum(g_y * cache.output) + np.sum(v * mlp.jvp(cache, u)))

    grads = mlp.backward_with_tangent(mlp.forward(x), u, g_y=g_y, v=v)
    fd = fd_gradient(phi, mlp.params, mask=param_mask(mlp))
    assert rel_error(grads, fd) < TOL


def test_force_training_scalar_output_defaults():
    """Scalar output: S = Σ_b u_b·∂y_b/∂x_b alone (g_y = 0, v = 1), as a potential uses it."""
    mlp = _net("tanh", sizes=(6, 10, 10, 10, 1), members=2)
    x = _inputs(mlp, shared=True, batch=7)
    u = np.random.default_rng(9).normal(size=(2, 7, 6))

    def S():
        cache = mlp.forward(x)
        return float(np.sum(mlp.input_gradient(cache) * u))

    grads = mlp.backward_with_tangent(mlp.forward(x), u)
    fd = fd_gradient(S, mlp.params, mask=param_mask(mlp))
    assert rel_error(grads, fd) < TOL
    # the energy term alone equals plain backpropagation
    cache = mlp.forward(x)
    g_y = np.ones((2, 7, 1))
    both = mlp.backward_with_tangent(cache, np.zeros_like(u), g_y=g_y)
    np.testing.assert_allclose(both, mlp.backward(mlp.forward(x), g_y), rtol=1e-12, atol=1e-14)


def test_float32_gradients_close_to_float64():
    m64 = _net("tanh")
    m32 = m64.astype(np.float32)
    x = _inputs(m64)
    g = np.random.default_rng(0).normal(size=(3, 4, 2))
    g64 = m64.backward(m64.forward(x), g)
    g32 = m32.backward(m32.forward(x.astype(np.float32)), g.astype(np.float32))
    assert g32.dtype == np.float32
    for a, b in zip(m32.layer_views(g32)[0] + m32.layer_views(g32)[1],
                    m64.layer_views(g64)[0] + m64.layer_views(g64)[1]):
        assert rel_error(a, b) < 1e-5
