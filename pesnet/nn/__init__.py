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
* :mod:`~pesnet.nn.regressor`    — :class:`EnsembleRegressor`, scikit-learn style fit/predict
"""

from pesnet.nn.activations import get_activation
from pesnet.nn.losses import get_loss
from pesnet.nn.mlp import MLP, ForwardCache
from pesnet.nn.optimizers import get_optimizer
from pesnet.nn.regressor import EnsembleRegressor, Prediction
from pesnet.nn.schedules import get_schedule
from pesnet.nn.training import EarlyStopping, EpochLog, History, train

__all__ = ["MLP", "ForwardCache", "EnsembleRegressor", "Prediction", "train", "EarlyStopping", "EpochLog", "History",
           "get_activation", "get_loss", "get_optimizer", "get_schedule"]
