"""Fitting an ensemble potential on energies and forces.

``train_potential(features.h5, settings)`` builds one ensemble MLP per element, fits the
reference energies by least squares on the training split, and runs mini-batch epochs with the
loss of :mod:`pesnet.training.objective` over batches held in memory, or, when they would not
fit ``memory_budget_mb``, read from the features file as each pass needs them
(:mod:`pesnet.training.batch_stream`; the same numbers either way). Members differ by seed only: their initial weights and their
Poisson(1) bootstrap weights on the training configurations. Every epoch ends with a
validation pass; each member keeps its best weights and retires after ``patience`` epochs
without improvement. Callbacks (progress display, MLflow) observe each epoch; the loop knows
nothing about them. Checkpoints hold the complete state, so :func:`train_potential` with
``resume=True`` continues a killed run to the same weights an uninterrupted run reaches.

Members never interact, so the ensemble can be trained in groups: ``members=(start, stop)``
trains only those members of the seed's ensemble (each with the initial weights and bootstrap
draws it has in the whole ensemble), :func:`assemble_members` joins the groups, and
:func:`calibrate` fits the spread scale, which needs the whole ensemble. The result equals a
single fit of all members bit for bit (``tests/test_training_groups.py``);
:mod:`pesnet.distributed.train` runs the groups on a Dask cluster.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pesnet import __version__
from pesnet.data.split import Split
from pesnet.descriptors.features_file import HALF_MIN_FEATURE_STD
from pesnet.errors import InputError
from pesnet.nn.initializers import BOOTSTRAP, member_rng
from pesnet.nn.mlp import MLP
from pesnet.nn.optimizers import clip_grad_norm, get_optimizer
from pesnet.nn.prediction import committee_std
from pesnet.nn.schedules import get_schedule
from pesnet.potential.calibration import fit_spread_scale
from pesnet.potential.model import Potential
from pesnet.potential.reference import fit_reference_energies
from pesnet.training import checkpoint as ckpt
from pesnet.training.batch_stream import DEFAULT_MEMORY_BUDGET_MB, batch_source, fits_in_memory
from pesnet.training.data import open_training_inputs
from pesnet.training.objective import LossWeights, batch_loss
from pesnet.training.records import EpochRecord
from pesnet.training.settings import TrainSettings

__all__ = ["EpochRecord", "TrainingResult", "train_potential"]


def _split_rule(info: dict) -> dict:
    """The part of a features file's ``split`` that reproduces the split: fixed validation and
    test indices, or fractions and seed (:func:`pesnet.data.split.split_from_info`)."""
    if "validation" in info or "test" in info:
        return {"validation": list(info.get("validation", [])), "test": list(info.get("test", []))}
    return {"fractions": list(info["fractions"]), "seed": int(info["seed"])}


class TrainingResult(NamedTuple):
    potential: Potential
    history: list
    split: Split
    dataset_path: Path


class _State:
    """Everything that changes during training (and goes into a checkpoint)."""

    def __init__(self, potential, optimizer, n_members):
        self.epoch = -1  # last completed epoch
        self.opt_state = {z: optimizer.init_state(net.params)
                          for z, net in potential.networks.items()}
        self.best_params = {z: net.params.copy() for z, net in potential.networks.items()}
        self.best_loss = np.full(n_members, np.inf)
        self.best_epoch = np.full(n_members, -1)
        self.wait = np.zeros(n_members, dtype=int)
        self.active = np.ones(n_members, dtype=bool)
        self.history = []


def _element_seed(seed: int, z: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(z)]).generate_state(1, np.uint64)[0] >> 1)


def _member_range(settings: TrainSettings, members) -> tuple[int, int]:
    """(start, stop) of the members to train, checked against the ensemble size."""
    if members is None:
        return 0, settings.n_members
    start, stop = (int(k) for k in members)
    if not 0 <= start < stop <= settings.n_members:
        raise InputError(f"members {start}:{stop} outside the ensemble 0:{settings.n_members}")
    return start, stop


def build_potential(features, labels, split, settings: TrainSettings,
                    members=None) -> Potential:
    """An untrained potential: networks initialised from the seed, scalers from the features
    file, reference energies fitted by least squares on the training split. ``members``
    (start, stop) builds only those members of the seed's ensemble."""
    start, stop = _member_range(settings, members)
    elements = features.elements
    counts = labels.element_counts(elements)
    train = split.train[labels.has_energy[split.train]]
    if len(train) == 0:
        raise InputError("no training configuration has an energy label")
    reference = fit_reference_energies(counts[train], labels.energy[train])
    stats = features.stats
    networks = {
        z: MLP((features.n_features, *settings.hidden, 1), stop - start,
               activation=settings.activation, seed=_element_seed(settings.seed, z),
               member_offset=start)
        for z in elements
    }
    scalers = {z: (stats[z].mean, stats[z].scale) for z in elements}
    return Potential(features.descriptor, networks, scalers, dict(zip(elements, reference)))


def _bootstrap(settings: TrainSettings, n_train: int, members=None) -> np.ndarray | None:
    """Poisson(1) weights of the training configurations, (M, n_train), for members
    ``members`` (start, stop; default all) of the seed's ensemble; None without bootstrap."""
    if not settings.bootstrap or settings.n_members == 1:
        return None
    start, stop = _member_range(settings, members)
    return np.stack([member_rng(settings.seed, m, BOOTSTRAP).poisson(1.0, n_train)
                     for m in range(start, stop)]).astype(float)


def _pass(potential, batches, weights, optimizer=None, state=None, lr=None, clip=None,
          order=None):
    """One pass over ``batches`` (training when ``optimizer`` is given). Returns per-member
    (loss, energy RMSE, force RMSE), each (M,)."""
    m = potential.n_members
    loss = np.zeros(m)
    e_sq, f_sq = np.zeros(m), np.zeros(m)
    n_e = n_f = 0
    for batch in batches.iterate(order):
        result = batch_loss(potential, batch, weights, gradients=optimizer is not None)
        loss += result.loss
        e_sq += result.energy_sq
        f_sq += result.force_sq
        n_e += result.n_energy
        n_f += result.n_force
        if optimizer is not None:
            for z, grad in result.grads.items():
                if clip:
                    clip_grad_norm(grad, clip)
                net = potential.networks[z]
                optimizer.step(net.params, grad, lr, state.opt_state[z], np.empty_like(grad))
    n_batches = max(len(batches) if order is None else len(order), 1)
    return (loss / n_batches, np.sqrt(e_sq / max(n_e, 1)), np.sqrt(f_sq / max(n_f, 1)))


def _ensemble_errors(potential, batches):
    """Validation errors of the ensemble mean and committee spreads (ddof = 1): energy per
    atom and force components."""
    e_err, f_err, e_std, f_std = [], [], [], []
    for batch in batches:
        out = potential.evaluate(batch.features, forces=batch.operator is not None,
                                 operator=batch.operator)
        de = (out.energy.mean(axis=0) - batch.energy) / batch.n_atoms
        e_err.append(de[batch.has_energy])
        e_std.append((committee_std(out.energy) / batch.n_atoms)[batch.has_energy])
        if out.forces is not None:
            f_err.append((out.forces.mean(axis=0) - batch.forces)[batch.has_forces].ravel())
            f_std.append(committee_std(out.forces)[batch.has_forces].ravel())
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    return cat(e_err), cat(f_err), cat(e_std), cat(f_std)


def _fit_calibration(potential, val, settings: TrainSettings) -> dict:
    """Spread scale factors of the whole ensemble on the validation batches."""
    e_err, f_err, e_std, f_std = _ensemble_errors(potential, val)
    m = potential.n_members
    if m == 1:
        return {"energy": 1.0, "forces": 1.0}
    return {"energy": fit_spread_scale(e_err, e_std, settings.calibration, m),
            "forces": fit_spread_scale(f_err, f_std, settings.calibration, m) if len(f_err)
            else 1.0}


def configure_scaling(features, split, settings: TrainSettings) -> None:
    """Make ``features`` standardise as ``settings`` ask: features with a training std below
    ``min_feature_std`` ignored, and with ``feature_range_scale`` k > 0 every scale at least
    the feature's training range / k (``FeaturesFile.scale_floor``)."""
    features.min_feature_std = settings.min_feature_std
    features.scale_floor = None
    if settings.feature_range_scale > 0:
        ranges = features.value_ranges(split.train)
        features.scale_floor = {z: (high - low) / settings.feature_range_scale
                                for z, (low, high) in ranges.items()}


def _open_inputs(features_path, dataset_path, settings: TrainSettings):
    """(features, labels, split, dataset path), refused when the loss needs derivatives the
    features file lacks or the validation split is empty."""
    features, labels, split, dataset_path = open_training_inputs(features_path, dataset_path)
    configure_scaling(features, split, settings)
    if ((settings.force_weight > 0 or settings.stress_weight > 0)
            and features.derivative_dtype == np.float16
            and settings.min_feature_std < HALF_MIN_FEATURE_STD):
        features.close()
        raise InputError(f"{features_path}: float16 derivatives resolve features whose training "
                         f"std is at least {HALF_MIN_FEATURE_STD:g} only; set min_feature_std = "
                         f"{HALF_MIN_FEATURE_STD:g} (the default) or featurize with float32")
    if (settings.force_weight > 0 or settings.stress_weight > 0) and not features.has_derivatives:
        features.close()
        raise InputError(f"{features_path}: has no derivatives (featurized with "
                         f"--no-derivatives); set force_weight = stress_weight = 0 or "
                         f"featurize again")
    if len(split.validation) == 0:
        features.close()
        raise InputError("the validation split is empty; early stopping and calibration need it")
    return features, labels, split, dataset_path


def _prepared(features, labels, split, settings: TrainSettings, subset: dict, n_local: int,
              memory_budget_mb):
    """The untrained potential and the training and validation batch sources: held in memory
    when both fit ``memory_budget_mb`` together, else streamed from the features file."""
    use_forces, use_stress = settings.force_weight > 0, settings.stress_weight > 0
    with features:
        potential = build_potential(features, labels, split, settings, **subset)
        bootstrap = _bootstrap(settings, len(split.train), **subset)
        stream = not fits_in_memory(features, (split.train, split.validation), use_forces,
                                    use_stress, memory_budget_mb)
        train = batch_source(features, labels, split.train, settings.batch_size, n_local,
                             settings.seed, bootstrap, use_forces, use_stress, stream)
        val = batch_source(features, labels, split.validation, max(settings.batch_size, 16),
                           n_local, settings.seed, None, use_forces, use_stress, stream)
    return potential, train, val


def _train_epoch(epoch, potential, train, val, weights, optimizer, schedule, state,
                 settings: TrainSettings) -> EpochRecord:
    """One epoch: a training pass in the order drawn from (seed, epoch) with learning rates
    η_m = η f_m(t) (0 for retired members), a validation pass, and the early-stopping update:
    member m improves when active and L_m^val < L*_m, retires after ``patience`` epochs
    without improving."""
    started = time.perf_counter()
    factors = schedule.factors(epoch) * state.active
    lr = (optimizer.learning_rate * factors)[:, None]
    order = np.random.default_rng([settings.seed, epoch]).permutation(len(train))
    t_loss, t_e, t_f = _pass(potential, train, weights, optimizer, state, lr,
                             settings.clip_norm, order)
    v_loss, v_e, v_f = _pass(potential, val, weights)
    e_err, f_err, _, _ = _ensemble_errors(potential, val)
    schedule.observe(v_loss)
    improved = state.active & (v_loss < state.best_loss)
    state.best_loss[improved] = v_loss[improved]
    state.best_epoch[improved] = epoch
    state.wait[improved] = 0
    state.wait[state.active & ~improved] += 1
    for z, net in potential.networks.items():
        state.best_params[z][improved] = net.params[improved]
    state.active &= state.wait < settings.patience
    state.epoch = epoch
    return EpochRecord(
        epoch, t_loss, t_e, t_f, v_loss, v_e, v_f,
        float(np.mean(np.abs(e_err))) if len(e_err) else float("nan"),
        float(np.mean(np.abs(f_err))) if len(f_err) else float("nan"),
        lr[:, 0].copy(), state.active.copy(), time.perf_counter() - started)


def _metadata(potential, settings: TrainSettings, features, split, state, subset) -> dict:
    """What the model file records of the fit: version, settings, seeds, split, dataset
    digest, best epochs and losses (and the member range of a group)."""
    metadata = {
        "pesnet_version": __version__,
        "settings": settings.to_dict(),
        "seeds": {"ensemble": settings.seed,
                  "elements": {str(z): _element_seed(settings.seed, z) for z in potential.elements}},
        "split": {**_split_rule(features.split),
                  "n_train": len(split.train), "n_validation": len(split.validation),
                  "n_test": len(split.test)},
        "dataset_sha256": features.dataset_sha256,
        "best_epoch": state.best_epoch.tolist(),
        "best_validation_loss": state.best_loss.tolist(),
        "epochs_run": state.epoch + 1,
    }
    if subset:
        metadata["members"] = list(subset["members"])
    return metadata


def _notify(callbacks, hook: str, *args, **kwargs) -> None:
    """Call ``hook`` on every callback that has it."""
    for callback in callbacks:
        getattr(callback, hook, lambda *a, **kw: None)(*args, **kwargs)


def train_potential(features_path, settings: TrainSettings | None = None, dataset_path=None,
                    callbacks=(), checkpoint_path=None, resume: bool = False,
                    members=None,
                    memory_budget_mb: float | None = DEFAULT_MEMORY_BUDGET_MB) -> TrainingResult:
    """Fit an ensemble potential (see the module doc); returns the trained, calibrated model.

    ``members=(start, stop)`` trains only members start..stop-1 of the ensemble of
    ``settings.n_members`` (metadata ``members`` records the range, history arrays have
    stop - start entries); the calibration is then left at 1: join the groups with
    :func:`assemble_members` and call :func:`calibrate`.

    ``memory_budget_mb`` bounds the training and validation batches held in memory (their
    estimated size, :func:`~pesnet.training.batch_stream.held_bytes`); above it every pass
    reads its batches from the features file (None: always hold them). It changes memory and
    time, never a number, so it is an argument of the run, not a recorded setting.
    """
    settings = settings or TrainSettings()
    start, stop = _member_range(settings, members)
    subset = {} if (start, stop) == (0, settings.n_members) else {"members": (start, stop)}
    features, labels, split, dataset_path = _open_inputs(features_path, dataset_path, settings)
    potential, train, val = _prepared(features, labels, split, settings, subset, stop - start,
                                      memory_budget_mb)
    try:
        return _fit(potential, train, val, features, split, dataset_path, settings,
                    subset, (start, stop), callbacks, checkpoint_path, resume)
    finally:
        train.close()
        val.close()


def _fit(potential, train, val, features, split, dataset_path, settings, subset,
         member_range, callbacks, checkpoint_path, resume) -> TrainingResult:
    """The epochs, best weights, calibration and metadata of :func:`train_potential`."""
    start, stop = member_range
    optimizer = get_optimizer(settings.optimizer, learning_rate=settings.learning_rate,
                              **settings.optimizer_params)
    schedule = get_schedule(settings.schedule)
    schedule.reset(stop - start, settings.epochs)
    state = _State(potential, optimizer, stop - start)
    if resume:
        if checkpoint_path is None or not Path(checkpoint_path).is_file():
            raise InputError(f"cannot resume: no checkpoint at {checkpoint_path}")
        _check_checkpoint_members(checkpoint_path, start, stop)
        ckpt.restore(checkpoint_path, potential, state, schedule, settings)
    weights = LossWeights(settings.energy_weight, settings.force_weight, settings.stress_weight)
    _notify(callbacks, "on_train_begin", settings=settings, n_train=len(split.train),
            n_validation=len(split.validation), n_test=len(split.test),
            start_epoch=state.epoch + 1)
    for epoch in range(state.epoch + 1, settings.epochs):
        if not state.active.any():
            break
        record = _train_epoch(epoch, potential, train, val, weights, optimizer, schedule,
                              state, settings)
        state.history.append(record)
        _notify(callbacks, "on_epoch_end", record)
        if checkpoint_path and settings.checkpoint_every and (epoch + 1) % settings.checkpoint_every == 0:
            ckpt.save(checkpoint_path, potential, state, schedule, settings)

    # best weights, then calibrate the spread on the validation split (whole ensembles only)
    for z, net in potential.networks.items():
        net.params[...] = state.best_params[z]
    potential.calibration = ({"energy": 1.0, "forces": 1.0} if subset
                             else _fit_calibration(potential, val, settings))
    potential.metadata = _metadata(potential, settings, features, split, state, subset)
    if checkpoint_path:
        ckpt.save(checkpoint_path, potential, state, schedule, settings)
    _notify(callbacks, "on_train_end", potential, state.history)
    return TrainingResult(potential, state.history, split, dataset_path)


def _check_checkpoint_members(path, start: int, stop: int) -> None:
    """A checkpoint resumes only the member range it was written for."""
    import h5py

    with h5py.File(path, "r") as f:
        nets = f["model/networks"]
        config = json.loads(nets[next(iter(nets))].attrs["config"])
    first = max(int(config.get("member_offset", 0)), 0)
    if (first, first + int(config["n_members"])) != (start, stop):
        raise InputError(f"{path}: checkpoint of members {first}:{first + config['n_members']}, "
                         f"cannot resume members {start}:{stop}")


def assemble_members(potentials) -> Potential:
    """One potential from groups trained with ``train_potential(..., members=(a, b))``.

    ``potentials`` in any order must cover members 0..M-1 of one ensemble exactly once; each
    element's parameters are concatenated along the member axis, the metadata joined (best
    epochs and losses in member order, the most epochs run). The calibration is left at 1:
    call :func:`calibrate`.
    """
    potentials = list(potentials)
    if not potentials:
        raise InputError("nothing to assemble: no member groups")
    first = potentials[0]
    n_members = int(first.metadata["settings"]["n_members"])
    ranges = [tuple(p.metadata.get("members", (0, n_members))) for p in potentials]
    order = sorted(range(len(potentials)), key=lambda k: ranges[k])
    stops = [0] + [ranges[k][1] for k in order]
    if [ranges[k][0] for k in order] != stops[:-1] or stops[-1] != n_members:
        raise InputError(f"member groups {sorted(ranges)} do not cover 0:{n_members} once")
    groups = [potentials[k] for k in order]
    for p in groups[1:]:
        same = {key: p.metadata.get(key) == first.metadata.get(key)
                for key in ("settings", "seeds", "split", "dataset_sha256")}
        if not all(same.values()) or p.elements != first.elements:
            raise InputError("member groups come from different fits ("
                             + ", ".join(k for k, ok in same.items() if not ok) + " differ)")
    networks = {}
    for z in first.elements:
        config = first.networks[z].config() | {"n_members": n_members, "member_offset": 0}
        arrays = {name: np.concatenate([p.networks[z].arrays()[name] for p in groups])
                  for name in first.networks[z].arrays()}
        networks[z] = MLP.from_arrays(config, arrays)
    metadata = {k: v for k, v in first.metadata.items() if k != "members"}
    metadata["best_epoch"] = [e for p in groups for e in p.metadata["best_epoch"]]
    metadata["best_validation_loss"] = [v for p in groups
                                        for v in p.metadata["best_validation_loss"]]
    metadata["epochs_run"] = max(p.metadata["epochs_run"] for p in groups)
    return Potential(first.descriptor, networks, first.scalers, first.reference_energies,
                     metadata=metadata)


def calibrate(potential: Potential, features_path, settings: TrainSettings,
              dataset_path=None,
              memory_budget_mb: float | None = DEFAULT_MEMORY_BUDGET_MB) -> dict:
    """Fit ``potential``'s spread calibration on the validation split of ``features_path``
    (as :func:`train_potential` does at its end) and store it; returns it. The validation
    batches are streamed when they would not fit ``memory_budget_mb``."""
    features, labels, split, _ = open_training_inputs(features_path, dataset_path)
    configure_scaling(features, split, settings)
    use_forces = settings.force_weight > 0 and features.has_derivatives
    with features:
        stream = not fits_in_memory(features, (split.validation,), use_forces, False,
                                    memory_budget_mb)
        val = batch_source(features, labels, split.validation, max(settings.batch_size, 16),
                           potential.n_members, settings.seed, None, use_forces, False, stream)
    try:
        potential.calibration = _fit_calibration(potential, val, settings)
    finally:
        val.close()
    return potential.calibration
