"""Training loop: the lecture-notes linear example, member independence, early stopping."""

import numpy as np
import pytest

from pesnet.errors import InputError
from pesnet.nn import MLP, EarlyStopping, train
from pesnet.nn.initializers import BOOTSTRAP, member_rng
from pesnet.nn.losses import MSE
from pesnet.nn.optimizers import SGD

NOTES_X = np.arange(1.0, 6.0)[:, None]
NOTES_Y = np.array([5.082, 7.950, 10.96, 14.05, 17.04])[:, None]


def _linear_neuron():
    mlp = MLP((1, 1), 1, seed=0)
    mlp.weights[0][...] = 1.0
    mlp.biases[0][...] = 0.0
    return mlp


def test_lecture_notes_linear_example_step_by_step():
    """One linear neuron, L = Σ(y - ŷ)², w = 1, b = 0, gradient descent with γ = 0.01."""
    mlp = _linear_neuron()
    loss = MSE(reduction="sum")
    cache = mlp.forward(NOTES_X)
    L, g = loss.value_and_grad(cache.output, NOTES_Y)
    (dW,), (db,) = mlp.layer_views(mlp.backward(cache, g))
    assert L[0] == pytest.approx(361.391, abs=1e-3)
    assert dW.item() == pytest.approx(-280.52, abs=1e-2)
    assert db.item() == pytest.approx(-80.164, abs=1e-3)

    history = train(mlp, NOTES_X, NOTES_Y, loss=loss, optimizer=SGD(0.01), epochs=4,
                    batch_size=None, shuffle=False)
    # loss before each of the four steps, as in the notes' table (which rounds)
    np.testing.assert_allclose(history.train_loss[:, 0], [361.391, 13.7, 1.97, 1.53], rtol=3e-3)
    final = loss(mlp.predict(NOTES_X), NOTES_Y)[0]
    assert final == pytest.approx(1.468, abs=1e-3)
    assert mlp.weights[0].item() == pytest.approx(3.349, abs=1e-3)
    assert mlp.biases[0].item() == pytest.approx(0.747, abs=1e-3)


def _problem(n=240, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n, 3))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] ** 2 - 0.3 * x[:, 2]
    return x, y


@pytest.mark.parametrize("optimizer", ["adam", {"name": "sgd", "learning_rate": 0.05,
                                                "momentum": 0.9, "nesterov": True}])
def test_members_are_independent(optimizer):
    """Each member of an ensemble trained together (in 1 or 3 threads) is bit-identical to the
    same member trained alone with the same seed, bootstrap weights and batches."""
    x, y = _problem()
    xv, yv = _problem(60, seed=1)
    M, seed = 5, 11
    w = np.stack([member_rng(seed, m, BOOTSTRAP).poisson(1.0, len(x)) for m in range(M)])
    kw = dict(optimizer=optimizer, schedule={"name": "plateau", "patience": 2}, epochs=12,
              batch_size=32, validation=(xv, yv), early_stopping=EarlyStopping(patience=4),
              clip_norm=5.0)
    results = {}
    for threads in (1, 3):
        ens = MLP((3, 16, 16, 1), M, seed=seed)
        hist = train(ens, x, y, sample_weight=w, n_threads=threads, **kw)
        results[threads] = (ens, hist)
    np.testing.assert_array_equal(results[1][0].params, results[3][0].params)
    ens, hist = results[3]
    for m in range(M):
        alone = MLP((3, 16, 16, 1), 1, seed=seed, member_offset=m)
        h1 = train(alone, x, y, sample_weight=w[m:m + 1], n_threads=1, **kw)
        np.testing.assert_array_equal(alone.params[0], ens.params[m])
        assert h1.best_epoch[0] == hist.best_epoch[m]
        n = h1.n_epochs
        np.testing.assert_array_equal(h1.train_loss[:, 0], hist.train_loss[:n, m])
    # the members really differ
    assert not np.array_equal(ens.params[0], ens.params[1])


def test_early_stopping_restores_best_epoch_per_member():
    x, y = _problem(60)
    y = y + np.random.default_rng(3).normal(0, 0.5, size=y.shape)   # noisy: overfits
    xv, yv = _problem(200, seed=5)
    mlp = MLP((3, 48, 48, 1), 3, seed=2)
    snapshots = []
    hist = train(mlp, x, y, optimizer={"name": "adam", "learning_rate": 0.02}, epochs=150,
                 batch_size=16, validation=(xv, yv), early_stopping=EarlyStopping(patience=8),
                 callbacks=[lambda log: snapshots.append(mlp.params.copy())])
    assert hist.n_epochs < 150                       # stopped early: every member retired
    for m in range(3):
        e, stop = hist.best_epoch[m], hist.stop_epoch[m]
        assert stop == e + 8                                   # patience 8 after the best
        assert hist.val_loss[e, m] == hist.val_loss[:stop + 1, m].min()
        np.testing.assert_array_equal(mlp.params[m], snapshots[e][m])
        # the restored member has its best validation loss
        assert MSE()(mlp.predict(xv)[m:m + 1], yv[:, None])[0] == pytest.approx(
            hist.val_loss[e, m], rel=1e-12)
    assert len(set(hist.best_epoch)) > 1                       # members stopped at their own time


def test_callback_can_stop_and_sees_logs():
    x, y = _problem(50)
    seen = []

    def cb(log):
        seen.append(log)
        return log.epoch == 2

    mlp = MLP((3, 4, 1), 2, seed=0)
    hist = train(mlp, x, y, epochs=10, batch_size=10, callbacks=[cb])
    assert hist.n_epochs == 3 and len(seen) == 3
    assert seen[0].train_loss.shape == (2,) and seen[0].val_loss is None
    np.testing.assert_allclose(seen[0].learning_rate, [1e-3, 1e-3])


def test_train_input_validation():
    mlp = MLP((3, 4, 1), 2, seed=0)
    x, y = _problem(20)
    with pytest.raises(InputError, match="x must have shape"):
        train(mlp, x[:, :2], y)
    with pytest.raises(InputError, match="y must have shape"):
        train(mlp, x, y[:10])
    with pytest.raises(InputError, match="non-finite"):
        train(mlp, np.where(x > 1.9, np.nan, x), y)
    with pytest.raises(InputError, match="sample_weight"):
        train(mlp, x, y, sample_weight=-np.ones(20))
    with pytest.raises(InputError, match="validation"):
        train(mlp, x, y, early_stopping=EarlyStopping())
    with pytest.raises(InputError, match="batch_size"):
        train(mlp, x, y, batch_size=0)
