"""Neural-network core: NumPy MLP ensembles with hand-written backpropagation.

Knows nothing of atoms or descriptors (it must not import :mod:`pesnet.data` or
:mod:`pesnet.descriptors`). Modules, one idea each:

* :mod:`~pesnet.nn.activations`  — activation functions with f' and f''
* :mod:`~pesnet.nn.initializers` — Xavier/He initialisers; seeds → per-member generators
* :mod:`~pesnet.nn.mlp`          — :class:`MLP`, an ensemble with a leading member axis
* :mod:`~pesnet.nn.backprop`     — parameter gradients, input gradients, force-training pass
* :mod:`~pesnet.nn.losses`       — MSE, MAE, Huber with per-sample, per-member weights
* :mod:`~pesnet.nn.optimizers`   — SGD (momentum, Nesterov), Adam, AdamW, gradient clipping
* :mod:`~pesnet.nn.schedules`    — constant, exponential, step, cosine, reduce-on-plateau
* :mod:`~pesnet.nn.training`     — mini-batch training, threads over member groups, early stopping
* :mod:`~pesnet.nn.prediction`   — :class:`Prediction`: ensemble mean and committee spread
* :mod:`~pesnet.nn.regressor`    — :class:`EnsembleRegressor`, a scikit-learn estimator (imported
  on first use, so the potential and the calculator do not pay scikit-learn's import time)

Typical use by a potential (atomic energy E_i = net(G_i), G_i the descriptor row of atom i)::

    net = MLP((n_features, 64, 64, 1), n_members=8, seed=0)
    cache = net.forward(G)                      # G: (B, n_features) shared, or (M, B, n_features)
    E = cache.output                            # (M, B, 1) atomic energies of every member
    dE_dG = net.input_gradient(cache)           # (M, B, n_features) -> forces via dG/dr
    # weight gradient of  Σ_i g_i E_i + Σ_i u_i·∂E_i/∂G_i  (energy + force loss terms):
    grads = net.backward_with_tangent(cache, u, g_y=g)   # (M, P) laid out like net.params
    dW, db = net.layer_views(grads)             # per-layer views, if needed
    state = optimizer.init_state(net.params); optimizer.step(net.params, grads, lr, state, tmp)
"""

from pesnet.nn.activations import get_activation
from pesnet.nn.losses import get_loss
from pesnet.nn.mlp import MLP, ForwardCache
from pesnet.nn.optimizers import get_optimizer
from pesnet.nn.prediction import Prediction, committee_std
from pesnet.nn.schedules import get_schedule
from pesnet.nn.training import EarlyStopping, EpochLog, History, train

__all__ = ["MLP", "ForwardCache", "EnsembleRegressor", "Prediction", "committee_std", "train",
           "EarlyStopping", "EpochLog", "History",
           "get_activation", "get_loss", "get_optimizer", "get_schedule"]


def __getattr__(name):
    """``pesnet.nn.EnsembleRegressor`` imported on first use (scikit-learn: ~0.6 s)."""
    if name == "EnsembleRegressor":
        from pesnet.nn.regressor import EnsembleRegressor

        return EnsembleRegressor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
