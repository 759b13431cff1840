"""Pipeline specs: one TOML file describes a fit from raw configurations to a registered model.

A spec names its pipeline (the MLflow experiment and the registered model), where the data
comes from (files to ingest, or a reference-data recipe), the descriptor, the network
architecture, the ensemble, the training settings, the split, what to evaluate and whether
to register. Every table but ``[dataset]`` is optional; omitted keys take pesnet's defaults.
Relative paths are relative to the spec file::

    name = "quickstart"

    [dataset]
    files = ["../data/cu_emt.extxyz"]    # or: recipe = { name = "cu-fcc", calculator = "emt" }

    [split]
    fractions = [0.8, 0.1, 0.1]
    seed = 0

    [descriptor]                          # pesnet's default ACSF set at this cutoff (Å) ...
    cutoff = 5.0                          # ... or explicit g2 = [[eta, r_s], ...], g4 = ...,
                                          # or kind = "name", params = {...} of a registered kind
                                          # (kind = "ani" alone: ANI-1x's set)

    [model]
    hidden = [32, 32]
    activation = "tanh"

    [ensemble]
    members = 5
    seed = 0

    [train]                               # any TrainSettings field but the four above
    epochs = 100

    [evaluate]
    split = "test"

    [register]
    enabled = true                        # model name: the pipeline's name unless given

    [compute]                             # optional: featurize and train on a Dask cluster
    scheduler = "local"                   # or "tcp://host:8786"; workers = 4 for "local"

    [active_learning]                     # optional: pesnet active-learn (see that module)
    rounds = 3
    temperature_K = 900

:func:`load_spec` validates everything it can before any work starts (types, unknown keys,
missing files, unknown recipes and calculators, descriptor and training parameters) and
raises :class:`~pesnet.errors.InputError` with one line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from pesnet.errors import InputError, did_you_mean
from pesnet.pipeline.spec_tables import (
    NAME_PATTERN,
    ActiveLearningSpec,
    ComputeSpec,
    DescriptorSpec,
    SpecTable,
    ValidateSpec,
    compute_spec,
)
from pesnet.training.settings import TrainSettings

__all__ = ["ActiveLearningSpec", "ComputeSpec", "DescriptorSpec", "Pipeline", "PipelineSpec", "ValidateSpec",
           "compute_spec", "flatten", "load_spec"]

#: TrainSettings fields that live in other tables of the spec ([model], [ensemble]).
_ELSEWHERE = {"hidden": "model.hidden", "activation": "model.activation",
              "n_members": "ensemble.members", "seed": "ensemble.seed",
              "bootstrap": "ensemble.bootstrap"}

class RecipeSpec(SpecTable):
    """A seeded reference-data recipe (``pesnet generate --list`` shows them)."""

    name: str
    calculator: Optional[str] = None
    seed: int = Field(0, ge=0)
    scale: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _known(self):
        from pesnet.data.calculators import available_calculators
        from pesnet.data.recipes import RECIPES

        if self.name not in RECIPES:
            raise ValueError(f"unknown recipe {self.name!r}{did_you_mean(self.name, RECIPES)}; "
                             f"known: {', '.join(sorted(RECIPES))}")
        calculator = self.calculator or RECIPES[self.name].default_calculator
        if calculator not in available_calculators():
            known = sorted(available_calculators())
            raise ValueError(f"unknown calculator {calculator!r}"
                             f"{did_you_mean(calculator, known)}; known: {', '.join(known)}")
        return self


class DatasetSpec(SpecTable):
    """Where the labelled configurations come from: ``files`` or a ``recipe`` (not both)."""

    files: list[str] = Field(default_factory=list)
    recipe: Optional[RecipeSpec] = None
    format: Optional[str] = None
    index: str = ":"
    energy_key: Optional[str] = None
    forces_key: Optional[str] = None
    stress_key: Optional[str] = None

    @model_validator(mode="after")
    def _one_source(self):
        if bool(self.files) == (self.recipe is not None):
            raise ValueError("give either files = [...] or a recipe, not both and not neither")
        return self


class SplitSpec(SpecTable):
    """How configurations are split into train/validation/test parts.

    By default at random: one permutation of the configurations (NumPy's PCG64 seeded by
    ``seed``); the first round(f_test·n) are the test part, the next round(f_val·n) the
    validation part, the rest train. Fixed parts instead, for comparing with a published
    split: ``test``/``validation`` index files (0-based configuration indices of the dataset,
    in the order of ``dataset.files``), ``test_files``/``validation_files`` (structure files
    ingested after ``dataset.files``, wholly in that part), or ``holdout = {config_type =
    "..."}`` (a structure class, one name or a list, as the test part). A part not fixed is
    drawn at random from the rest (validation: its share f_val / (f_train + f_val))."""

    fractions: list[float] = Field(default_factory=lambda: [0.8, 0.1, 0.1])
    seed: int = Field(0, ge=0)
    validation: Optional[str] = None
    test: Optional[str] = None
    validation_files: list[str] = Field(default_factory=list)
    test_files: list[str] = Field(default_factory=list)
    holdout: Optional[dict[str, typing.Union[str, list[str]]]] = None

    @model_validator(mode="after")
    def _fractions(self):
        f = self.fractions
        if len(f) != 3 or any(x < 0 for x in f) or not math.isclose(sum(f), 1.0, abs_tol=1e-6):
            raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {f}")
        if f[0] == 0 or f[1] == 0:
            raise ValueError("the train and validation fractions must be positive")
        tests = [k for k in ("test", "test_files", "holdout") if getattr(self, k)]
        if len(tests) > 1:
            raise ValueError(f"give one of test, test_files and holdout, not {' and '.join(tests)}")
        if self.validation and self.validation_files:
            raise ValueError("give validation or validation_files, not both")
        if self.holdout is not None and set(self.holdout) != {"config_type"}:
            raise ValueError(f"holdout takes config_type = \"...\" (or a list), got keys "
                             f"{sorted(self.holdout)}")
        return self

    @property
    def fixed(self) -> bool:
        """Whether any part is fixed rather than drawn at random."""
        return bool(self.validation or self.test or self.validation_files or self.test_files
                    or self.holdout)


class ModelSpec(SpecTable):
    """Architecture of every element's network."""

    hidden: list[int] = Field(default_factory=lambda: list(TrainSettings().hidden))
    activation: str = TrainSettings().activation


class EnsembleSpec(SpecTable):
    """Ensemble size and seed: member m of seed s draws its initial weights and bootstrap
    weights from its own streams (:func:`pesnet.nn.initializers.member_rng`)."""

    members: int = Field(TrainSettings().n_members, ge=1)
    seed: int = Field(TrainSettings().seed, ge=0)
    bootstrap: bool = TrainSettings().bootstrap


def _train_table() -> type[BaseModel]:
    """The [train] table: every TrainSettings field not set elsewhere, all optional, so new
    training settings appear here without editing this module."""
    hints = typing.get_type_hints(TrainSettings)
    fields = {}
    for f in dataclasses.fields(TrainSettings):
        if f.name in _ELSEWHERE:
            continue
        kind = hints[f.name]
        kind = {tuple: list}.get(kind, kind)
        fields[f.name] = (Optional[kind], None)
    return create_model("TrainSpec", __base__=SpecTable, **fields)


TrainSpec = _train_table()


class EvaluateSpec(SpecTable):
    """Which split the final metrics and plots are computed on."""

    split: Literal["test", "validation", "train", "all"] = "test"


class RegisterSpec(SpecTable):
    """Model Registry entry; ``name`` defaults to the pipeline's name."""

    enabled: bool = True
    name: Optional[str] = Field(None, pattern=NAME_PATTERN)


class PipelineSpec(SpecTable):
    """The whole spec (see the module doc). The [register] table is the attribute
    ``registry`` (``register`` is taken by Python's ABC machinery)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    dataset: DatasetSpec
    split: SplitSpec = SplitSpec()
    descriptor: DescriptorSpec = DescriptorSpec()
    model: ModelSpec = ModelSpec()
    ensemble: EnsembleSpec = EnsembleSpec()
    train: TrainSpec = TrainSpec()
    evaluate: EvaluateSpec = EvaluateSpec()
    validate_properties: Optional[ValidateSpec] = Field(None, alias="validate")
    registry: RegisterSpec = Field(RegisterSpec(), alias="register")
    compute: Optional[ComputeSpec] = None
    active_learning: Optional[ActiveLearningSpec] = None

    @model_validator(mode="before")
    @classmethod
    def _keys_in_other_tables(cls, values):
        train = values.get("train") if isinstance(values, dict) else None
        if isinstance(train, dict):
            for key, home in _ELSEWHERE.items():
                if key in train:
                    raise ValueError(f"train.{key} belongs in the spec as {home}")
        return values

    def train_settings(self) -> TrainSettings:
        values = {k: v for k, v in self.train.model_dump().items() if v is not None}
        return TrainSettings(hidden=tuple(self.model.hidden), activation=self.model.activation,
                             n_members=self.ensemble.members, seed=self.ensemble.seed,
                             bootstrap=self.ensemble.bootstrap, **values)

    @model_validator(mode="after")
    def _training_is_valid(self):
        try:
            self.train_settings()
        except InputError as error:
            text = str(error).removeprefix("training settings: ")
            field = text.split(":")[0].split()[0]
            fields = {f.name for f in dataclasses.fields(TrainSettings)}
            if field in fields:   # name the key where the user wrote it, e.g. model.activation
                key = _ELSEWHERE.get(field, f"train.{field}")
                raise ValueError(f"{key}: {text.removeprefix(field + ': ')}") from None
            raise ValueError("train: " + text) from None
        return self

    @property
    def model_name(self) -> str:
        """The Model Registry name."""
        return self.registry.name or self.name


@dataclass(frozen=True)
class Pipeline:
    """A loaded spec: the validated tables, the file it came from and its exact text."""

    spec: PipelineSpec
    path: Path
    text: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def root(self) -> Path:
        """The directory relative paths are resolved from (the spec's)."""
        return self.path.parent

    def source_files(self) -> list[Path]:
        """Every structure file to ingest, in order: ``dataset.files``, then the split's
        ``validation_files`` and ``test_files``."""
        return [path for _, path in self.named_sources()]

    def named_sources(self) -> list[tuple[str, Path]]:
        """(spec key, resolved path) of every structure file, in ingest order."""
        split = self.spec.split
        keys = ([f"dataset.files[{k}]" for k in range(len(self.spec.dataset.files))]
                + [f"split.validation_files[{k}]" for k in range(len(split.validation_files))]
                + [f"split.test_files[{k}]" for k in range(len(split.test_files))])
        names = [*self.spec.dataset.files, *split.validation_files, *split.test_files]
        return [(key, resolve_path(self.root, name)) for key, name in zip(keys, names)]

    def index_files(self) -> dict[str, Path]:
        """The split's index files by key (``split.validation``, ``split.test``)."""
        split = self.spec.split
        return {f"split.{k}": resolve_path(self.root, getattr(split, k))
                for k in ("validation", "test") if getattr(split, k)}

    def flat_params(self) -> dict[str, str]:
        """The spec flattened to dotted keys (``train.epochs``), with every training setting
        resolved to the value used — what MLflow records as the run's params."""
        tree = self.spec.model_dump(mode="json", by_alias=True)
        tree["train"] = {k: v for k, v in self.spec.train_settings().to_dict().items()
                         if k not in _ELSEWHERE}
        tree["register"]["name"] = self.spec.model_name
        return flatten(tree)


def resolve_path(root: Path, name: str) -> Path:
    """``name`` (``~`` expanded) if absolute, else relative to ``root`` (a spec's directory)."""
    path = Path(name).expanduser()
    return path if path.is_absolute() else root / path


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """Nested dicts → {"a.b": "value"}; lists and scalars as JSON text; None is skipped."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "schedule":
            out.update(flatten(value, name + "."))
        elif value is not None:
            out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def _location(loc) -> str:
    parts = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif item not in ("function-after", "function-before"):
            parts.append(str(item))
    return ".".join(parts)


def _table_keys(loc) -> list[str]:
    """The keys the spec table at ``loc`` (a pydantic error location) accepts."""
    table = PipelineSpec
    for part in loc:
        fields = {f.alias or name: f for name, f in table.model_fields.items()}
        field = fields.get(part)
        if field is None:
            return []
        kinds = typing.get_args(field.annotation) or (field.annotation,)
        tables = [k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)]
        if not tables:
            return []
        table = tables[0]
    return [f.alias or name for name, f in table.model_fields.items()]


def spec_error_message(path: Path, error: ValidationError) -> str:
    problems = error.errors(include_url=False)
    first = problems[0]
    key = _location(first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        keys = _table_keys(first["loc"][:-1])
        text = "unknown key" + did_you_mean(first["loc"][-1], keys)
    elif kind == "missing":
        text = "missing (required)"
    else:
        text = first["msg"].removeprefix("Value error, ")
        if "input" in first and kind.endswith(("_type", "_parsing")):
            text += f", got {first['input']!r}"
    more = f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})" \
        if len(problems) > 1 else ""
    return f"{path}: {key + ': ' if key else ''}{text}{more}"


def load_spec(path) -> Pipeline:
    """Read and validate a pipeline spec (see the module doc); one-line errors naming the key."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: no such pipeline spec") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the spec ({error})") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: invalid TOML ({error})") from None
    table.setdefault("name", path.stem)
    try:
        spec = PipelineSpec.model_validate(table)
    except ValidationError as error:
        raise InputError(spec_error_message(path, error)) from None
    pipeline = Pipeline(spec, path, text)
    for key, source in [*pipeline.named_sources(), *pipeline.index_files().items()]:
        if not source.is_file():
            what = "no such file" if not source.exists() else "not a file"
            raise InputError(f"{path}: {key}: {source}: {what}")
    return pipeline
