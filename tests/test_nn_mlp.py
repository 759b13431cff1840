"""MLP structure: shapes, seeding, initialisers, parameter export, member selection."""

import numpy as np
import pytest

from pesnet.errors import InputError
from pesnet.nn import MLP
from pesnet.nn.initializers import INIT, get_initializer, member_rng


def _reference_forward(mlp, x, m):
    """Member m's output computed the plain way, one matrix product per layer."""
    a = x if x.ndim == 2 else x[m]
    for W, b, act in zip(mlp.weights, mlp.biases, mlp.activations):
        a = act(a @ W[m] + b[m])
    return a


@pytest.mark.parametrize("sizes", [(4, 1), (4, 8, 1), (3, 5, 7, 6, 2)])
@pytest.mark.parametrize("shared", [True, False])
def test_forward_shapes_and_values(sizes, shared):
    mlp = MLP(sizes, 3, activation="gelu", seed=0)
    for b in mlp.biases:
        b[...] = 0.1
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, sizes[0]) if shared else (3, 5, sizes[0]))
    y = mlp.predict(x)
    assert y.shape == (3, 5, sizes[-1])
    cache = mlp.forward(x)
    np.testing.assert_array_equal(cache.output, y)
    for m in range(3):
        np.testing.assert_allclose(y[m], _reference_forward(mlp, x, m), rtol=1e-13)
    # the cache is reused for the next batch of the same size
    again = mlp.forward(x + 1, cache)
    assert again is cache
    np.testing.assert_allclose(cache.output, mlp.predict(x + 1), rtol=1e-14)


def test_weights_are_views_of_one_parameter_array():
    mlp = MLP((4, 8, 8, 1), 5, seed=0)
    assert mlp.params.shape[0] == 5 and mlp.params.flags.c_contiguous
    for W, (i, o) in zip(mlp.weights, [(4, 8), (8, 8), (8, 1)]):
        assert W.shape == (5, i, o) and np.shares_memory(W, mlp.params)
    assert [b.shape for b in mlp.biases] == [(5, 8), (5, 8), (5, 1)]
    assert mlp.n_params == 4 * 8 + 8 + 8 * 8 + 8 + 8 + 1
    mlp.params[:] = 0
    assert not np.any(mlp.predict(np.ones((2, 4))))


def test_each_member_initialised_from_its_own_seed():
    mlp = MLP((6, 10, 3), 4, init="he_normal", seed=123)
    for m in range(4):
        rng = member_rng(123, m, INIT)
        np.testing.assert_array_equal(mlp.weights[0][m], get_initializer("he_normal")(rng, 6, 10))
        np.testing.assert_array_equal(mlp.weights[1][m], get_initializer("he_normal")(rng, 10, 3))
    assert not np.array_equal(mlp.weights[0][0], mlp.weights[0][1])
    assert not np.any(mlp.biases[0])
    # member 2 built alone is member 2 of the ensemble
    alone = MLP((6, 10, 3), 1, init="he_normal", seed=123, member_offset=2)
    np.testing.assert_array_equal(alone.params[0], mlp.params[2])


@pytest.mark.parametrize("name,std", [
    ("xavier_uniform", np.sqrt(2 / (200 + 300))), ("xavier_normal", np.sqrt(2 / (200 + 300))),
    ("he_uniform", np.sqrt(2 / 200)), ("he_normal", np.sqrt(2 / 200))])
def test_initializer_statistics(name, std):
    w = get_initializer(name)(np.random.default_rng(0), 200, 300)
    assert w.shape == (200, 300)
    assert abs(w.mean()) < 0.01 * std * 10
    assert w.std() == pytest.approx(std, rel=0.02)
    if "uniform" in name:
        assert np.abs(w).max() <= np.sqrt(3) * std + 1e-12


def test_arrays_round_trip_and_float32():
    mlp = MLP((3, 7, 2), 2, activation={"name": "celu", "alpha": 0.5}, seed=9)
    arrays, config = mlp.arrays(), mlp.config()
    assert set(arrays) == {"W0", "b0", "W1", "b1"}
    assert all(isinstance(v, np.ndarray) and v.flags.c_contiguous for v in arrays.values())
    import json
    config = json.loads(json.dumps(config))   # plain data, no pickle needed
    clone = MLP.from_arrays(config, arrays)
    x = np.random.default_rng(1).normal(size=(4, 3))
    np.testing.assert_array_equal(clone.predict(x), mlp.predict(x))
    f32 = mlp.astype(np.float32)
    assert f32.params.dtype == np.float32 and f32.predict(x).dtype == np.float32
    np.testing.assert_allclose(f32.predict(x), mlp.predict(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="shape"):
        mlp.set_arrays(arrays | {"W0": np.zeros((2, 3, 6))})
    with pytest.raises(InputError, match="missing"):
        mlp.set_arrays({"W0": arrays["W0"]})


def test_select_and_view_members():
    mlp = MLP((3, 5, 1), 6, seed=2)
    x = np.random.default_rng(0).normal(size=(4, 3))
    y = mlp.predict(x)
    sub = mlp.select_members([4, 1])
    np.testing.assert_array_equal(sub.predict(x), y[[4, 1]])
    assert not np.shares_memory(sub.params, mlp.params)
    assert sub.member_offset is None
    assert mlp.select_members([2, 3]).member_offset == 2
    view = mlp.view(2, 5)
    assert np.shares_memory(view.params, mlp.params)
    np.testing.assert_array_equal(view.predict(x), y[2:5])
    view.params[:] = 0
    assert not np.any(mlp.params[2:5]) and np.any(mlp.params[:2])
    with pytest.raises(InputError):
        mlp.view(4, 9)
    with pytest.raises(InputError):
        mlp.select_members([6])


def test_input_and_constructor_validation():
    mlp = MLP((3, 5, 1), 2, seed=0)
    with pytest.raises(InputError, match="input must have shape"):
        mlp.predict(np.zeros((4, 2)))
    with pytest.raises(InputError, match="input must have shape"):
        mlp.predict(np.zeros((3, 4, 3)))
    with pytest.raises(InputError, match="layer_sizes"):
        MLP((3,), 2)
    with pytest.raises(InputError, match="n_members"):
        MLP((3, 1), 0)
    with pytest.raises(InputError, match="dtype"):
        MLP((3, 1), dtype=np.int32)
    with pytest.raises(InputError, match="activations given"):
        MLP((3, 4, 4, 1), activation=["tanh"])
    with pytest.raises(InputError, match="unknown initialiser"):
        MLP((3, 1), init="zeros")
    with pytest.raises(InputError, match="tangent"):
        mlp.jvp(mlp.forward(np.zeros((4, 3))), np.zeros((2, 5, 3)))


def test_nn_layer_imports_nothing_about_features():
    """Layering: pesnet.nn knows nothing of descriptors or datasets."""
    import subprocess
    import sys
    code = ("import sys, pesnet.nn; bad = [m for m in sys.modules if m.startswith("
            "('pesnet.data', 'pesnet.descriptors', 'pesnet.potential', 'mlflow', 'torch'))];"
            " print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
