"""Training settings: one validated dataclass, built from keyword arguments or a TOML table."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from pesnet.errors import InputError, did_you_mean


@dataclass
class TrainSettings:
    """How to fit a potential. Units: energies eV, forces eV/Å.

    ``hidden`` widths of each element network's hidden layers; ``n_members`` ensemble size M,
    members differing by ``seed`` (initialisation, and Poisson-bootstrap weights when
    ``bootstrap``); ``batch_size`` configurations per step; ``energy_weight`` multiplies the
    mean (ΔE/N)² and ``force_weight`` the mean |ΔF|²/3, ``stress_weight`` the mean squared
    stress component (eV/Å³)² of periodic configurations with a stress label (0: no stress
    term; :mod:`pesnet.training.objective`); ``patience`` epochs without a better
    validation loss retire a member (its best weights are kept); ``schedule`` of the learning
    rate (by default a cosine from ``learning_rate`` to 1 % of it over the run; ``plateau``
    watches each member's validation loss); ``clip_norm`` caps each member's
    gradient norm; ``calibration`` fits the spread scale on the validation split: ``area``
    (least miscalibration area), ``musil`` (committee rescaling; needs 4 members, smaller
    ensembles use ``nll``) or ``nll`` (see :mod:`pesnet.potential.calibration`);
    ``checkpoint_every`` epochs a checkpoint is written (0: only at the end);
    ``optimizer_params`` go to the optimiser besides the learning rate (e.g. ``{weight_decay =
    1e-2}`` for ``adamw``, whose default is 3e-3; :mod:`pesnet.nn.optimizers`);
    ``min_feature_std`` ignores the descriptor features whose standard deviation over the
    training split is below it (descriptor units; 0: none — see
    :class:`pesnet.descriptors.features_file.Stats`). ``feature_range_scale`` k > 0 scales
    each feature by max(σ, (max − min)/k) over the training split instead of σ: a
    heavy-tailed feature (a few atoms far out) then spans ±k/2 or so instead of ±10σ and more,
    which keeps the networks' inputs in the range they saw (on DFT ethanol with the ANI
    descriptor, k = 6: 20.2 → 17.5 meV/Å; 0: off).

    The defaults (AdamW, cosine schedule, no bootstrap, ``min_feature_std`` 1e-5) are the
    step of ``benchmarks/accuracy.py --ablation`` measured best on DFT ethanol, xTB ethanol
    and Cu together (README, "Accuracy on DFT data"); pesnet 0.1 used Adam 5e-3 with the
    plateau schedule, bootstrap, patience 40 and no feature threshold.
    """

    hidden: tuple = (32, 32)
    activation: str = "tanh"
    n_members: int = 5
    seed: int = 0
    epochs: int = 300
    batch_size: int = 4
    optimizer: str = "adamw"
    optimizer_params: dict = field(default_factory=dict)
    learning_rate: float = 3e-3
    schedule: dict = field(default_factory=lambda: {"name": "cosine", "min_factor": 0.01})
    energy_weight: float = 1.0
    force_weight: float = 0.1
    stress_weight: float = 0.0
    bootstrap: bool = False
    patience: int = 300
    clip_norm: float = 100.0
    calibration: str = "area"
    checkpoint_every: int = 10
    min_feature_std: float = 1e-5
    feature_range_scale: float = 0.0

    def __post_init__(self):
        self._check_types()
        self.hidden = tuple(int(h) for h in self.hidden)
        checks = [
            (len(self.hidden) > 0, "hidden needs at least one layer width (a network without "
             "hidden layers is linear in the descriptors)"),
            (all(h > 0 for h in self.hidden), "hidden widths must be positive"),
            (self.n_members >= 1, "n_members must be at least 1"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (self.energy_weight >= 0 and self.force_weight >= 0 and self.stress_weight >= 0,
             "loss weights must be >= 0"),
            (self.energy_weight + self.force_weight > 0, "at least one loss weight must be > 0"),
            (self.patience >= 1, "patience must be at least 1"),
            (self.calibration in ("area", "nll", "musil"),
             "calibration must be 'area', 'nll' or 'musil'"),
            (self.checkpoint_every >= 0, "checkpoint_every must be >= 0"),
            (self.min_feature_std >= 0, "min_feature_std must be >= 0"),
            (self.feature_range_scale >= 0, "feature_range_scale must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"training settings: {message}")
        self._check_parts()

    def _check_types(self) -> None:
        """Each setting has its field's type (an int passes for a float, a bool for nothing
        else), so a TOML ``epochs = "ten"`` is named, not a comparison error later."""
        kinds = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                 "dict": (dict,), "tuple": (tuple, list)}
        words = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or "
                 "false", "dict": "a table", "tuple": "a list of integers"}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            ok = isinstance(value, kinds[kind]) and (kind == "bool" or not isinstance(value, bool))
            if ok and kind == "tuple":
                ok = all(isinstance(h, int) and not isinstance(h, bool) for h in value)
            if not ok:
                raise InputError(f"training settings: {f.name} must be {words[kind]}, "
                                 f"got {value!r}")

    def _check_parts(self) -> None:
        """Build the activation, optimiser and schedule once, so a bad name or parameter is
        an error now (when a spec or a command line is read), not after featurization."""
        from pesnet.nn.activations import get_activation
        from pesnet.nn.optimizers import get_optimizer
        from pesnet.nn.schedules import get_schedule

        for name, build in (("activation", lambda: get_activation(self.activation)),
                            ("optimizer", lambda: get_optimizer(
                                self.optimizer, learning_rate=self.learning_rate,
                                **self.optimizer_params)),
                            ("schedule", lambda: get_schedule(self.schedule))):
            try:
                build()
            except InputError as error:
                raise InputError(f"training settings: {name}: {error}") from None

    @classmethod
    def from_dict(cls, values: dict, where: str = "training settings") -> "TrainSettings":
        """Settings from a dict (e.g. a TOML table); unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            hint = did_you_mean(unknown[0], known) if len(unknown) == 1 else ""
            raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}{hint}; "
                             f"known: {', '.join(sorted(known))}")
        try:
            return cls(**values)
        except TypeError as error:
            raise InputError(f"{where}: {error}") from None

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["hidden"] = list(self.hidden)
        return out
