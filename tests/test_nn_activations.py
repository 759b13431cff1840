"""Activations: values, first and second derivatives against finite differences."""

import numpy as np
import pytest

from pesnet.errors import InputError
from pesnet.nn.activations import ACTIVATIONS, get_activation

ALL = sorted(ACTIVATIONS) + [{"name": "elu", "alpha": 0.7}, {"name": "celu", "alpha": 2.5}]
KINKED = {"relu", "elu", "celu"}


def _points(name):
    rng = np.random.default_rng(42)
    z = rng.uniform(-4, 4, size=400)
    if name in KINKED:
        z = z[np.abs(z) > 1e-3]  # derivatives jump at 0
    return z


def _name(spec):
    return spec if isinstance(spec, str) else spec["name"]


@pytest.mark.parametrize("spec", ALL, ids=lambda s: str(s))
def test_first_derivative_matches_finite_difference(spec):
    act = get_activation(spec)
    z = _points(_name(spec))
    h = 1e-6
    fd = (act(z + h) - act(z - h)) / (2 * h)
    ana = act.derivative_of(z)
    assert np.max(np.abs(fd - ana) / np.maximum(1.0, np.abs(ana))) < 1e-7


@pytest.mark.parametrize("spec", ALL, ids=lambda s: str(s))
def test_second_derivative_matches_finite_difference(spec):
    act = get_activation(spec)
    z = _points(_name(spec))
    h = 1e-6
    fd = (act.derivative_of(z + h) - act.derivative_of(z - h)) / (2 * h)
    ana = act.second_derivative_of(z)
    assert np.max(np.abs(fd - ana) / np.maximum(1.0, np.abs(ana))) < 1e-7


@pytest.mark.parametrize("spec", ALL, ids=lambda s: str(s))
def test_in_place_forms_agree(spec):
    """``out=`` forms, derivatives from the output alone, and the fused mul_derivative."""
    act = get_activation(spec)
    z = _points(_name(spec)).reshape(-1, 4) if _name(spec) not in KINKED else \
        _points(_name(spec))[:392].reshape(-1, 4)
    a = act(z)
    buf = z.copy()
    assert np.array_equal(act(buf, out=buf), a)
    zz = None if act.from_output else z
    d1 = act.derivative(zz, a)
    np.testing.assert_allclose(d1, act.derivative_of(z), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(act.second_derivative(zz, a), act.second_derivative_of(z),
                               rtol=1e-12, atol=1e-15)
    delta = np.random.default_rng(0).normal(size=z.shape)
    expect = delta * d1
    got = act.mul_derivative(delta.copy(), zz, a, np.empty_like(z))
    np.testing.assert_allclose(got, expect, rtol=1e-13, atol=1e-15)


def test_known_values():
    z = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(get_activation("tanh")(z), np.tanh(z))
    np.testing.assert_allclose(get_activation("relu")(z), [0, 0, 2])
    np.testing.assert_allclose(get_activation("shifted_softplus")(np.zeros(1)), [0.0], atol=1e-15)
    np.testing.assert_allclose(get_activation("softplus")(np.zeros(1)), [np.log(2)])
    np.testing.assert_allclose(get_activation("sigmoid")(np.zeros(1)), [0.5])
    # GELU exact: 2·Φ(2) with Φ(2) = 0.977249868...
    np.testing.assert_allclose(get_activation("gelu")(np.array([2.0])), [2 * 0.9772498680518208])
    np.testing.assert_allclose(get_activation({"name": "elu", "alpha": 2.0})(np.array([-1.0])),
                               [2 * (np.exp(-1) - 1)])
    np.testing.assert_allclose(get_activation({"name": "celu", "alpha": 2.0})(np.array([-1.0])),
                               [2 * (np.exp(-0.5) - 1)])


def test_float32_preserved():
    z = np.linspace(-3, 3, 11, dtype=np.float32)
    for name in ACTIVATIONS:
        act = get_activation(name)
        assert act(z).dtype == np.float32, name
        assert act.derivative_of(z).dtype == np.float32, name
        assert act.second_derivative_of(z).dtype == np.float32, name


def test_config_round_trip_and_errors():
    for spec in ALL:
        act = get_activation(spec)
        assert get_activation(act.config()) == act
    assert get_activation("swish").name == "silu"
    with pytest.raises(InputError, match="unknown activation"):
        get_activation("banana")
    with pytest.raises(InputError, match="alpha"):
        get_activation({"name": "elu", "alpha": -1})
