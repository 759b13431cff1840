"""Spec tables that stand on their own (:mod:`pesnet.pipeline.spec` holds the core ones and
the loader): :class:`SpecTable`, the strict base of every table; ``[descriptor]`` (the
descriptor kind and its parameters, checked through the descriptor registry); the optional tables
``[compute]`` (featurization and training on a Dask cluster), ``[active_learning]`` (``pesnet
active-learn``) and ``[validate]`` (crystal properties against a reference); and
:func:`compute_spec`, which applies ``--scheduler``/``--workers``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pesnet.errors import InputError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from pesnet.pipeline.spec import PipelineSpec


#: What names of pipelines and registered models may look like.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class SpecTable(BaseModel):
    """A spec table: unknown keys are errors, and TOML types are taken as they are."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DescriptorSpec(SpecTable):
    """The descriptor: by default ACSF, pesnet's default set (cutoff, angular_cutoff,
    n_radial) or explicit g2/g3/g4/g5 lists as in DScribe; or any registered ``kind``
    (:mod:`pesnet.descriptors.registry`) with its parameters in ``params``, or without
    ``params`` the kind's registered default set (``kind = "ani"``: ANI-1x's, at ``cutoff``
    and ``angular_cutoff`` if given, else 5.2 and 3.5 Å). ``elements`` defaults to the
    dataset's. ``engine = "compiled"`` computes ACSF features with the Numba loop
    (:mod:`pesnet.descriptors.acsf_kernel`, ``pesnet[fast]``) instead of NumPy."""

    kind: Optional[str] = None
    params: Optional[dict] = None
    cutoff: float = Field(6.0, gt=0)
    angular_cutoff: Optional[float] = Field(None, gt=0)
    n_radial: int = Field(8, ge=1)
    elements: Optional[list[str]] = None
    g2: Optional[list[list[float]]] = None
    g3: Optional[list[float]] = None
    g4: Optional[list[list[float]]] = None
    g5: Optional[list[list[float]]] = None
    derivative_dtype: Literal["float16", "float32", "float64"] = "float32"
    engine: Literal["numpy", "compiled"] = "numpy"

    @property
    def explicit(self) -> bool:
        return any(g is not None for g in (self.g2, self.g3, self.g4, self.g5))

    def parameters(self, elements) -> dict:
        """Descriptor parameters (for
        :func:`~pesnet.descriptors.registry.descriptor_from_params`) for ``elements``, with
        the ACSF ``engine`` when it is not the default."""
        params = self._parameters(elements)
        if self.engine != "numpy":
            if params.get("kind", "acsf") != "acsf":
                raise InputError(f"descriptor.engine applies to the ACSF kind, not "
                                 f"{params['kind']!r}")
            params = {**params, "engine": self.engine}
        return params

    def _parameters(self, elements) -> dict:
        from pesnet.descriptors.defaults import default_parameters
        from pesnet.descriptors.registry import kind_defaults

        elements = list(self.elements or elements)
        defaults = kind_defaults(self.kind) if self.params is None and self.kind else None
        if defaults is not None:     # e.g. kind = "ani" alone: ANI-1x's set at any given cutoff
            options = {key: getattr(self, key) for key in ("cutoff", "angular_cutoff")
                       if key in self.model_fields_set}
            return defaults(elements, **options).params
        if self.params is not None or self.kind is not None:
            return {**(self.params or {}), "kind": self.kind or "acsf", "elements": elements}
        if not self.explicit:
            return default_parameters(elements, self.cutoff, n_radial=self.n_radial,
                                      angular_cutoff=self.angular_cutoff)
        params = {"elements": elements, "cutoff": self.cutoff, "g2": self.g2 or [],
                  "g4": self.g4 or [], "g5": self.g5 or []}
        if self.g3 is not None:
            params["g3"] = self.g3
        if self.angular_cutoff is not None:
            params["angular_cutoff"] = self.angular_cutoff
        return params

    @model_validator(mode="after")
    def _valid(self):
        from pesnet.descriptors.bond_descriptor import check_new_cutoff
        from pesnet.descriptors.registry import descriptor_from_params

        if (self.params is not None or self.kind is not None) and self.explicit:
            raise ValueError("give a descriptor's parameters either in params (with kind) or "
                             "as g2/g3/g4/g5, not both")
        if self.explicit and not self.g2:
            raise ValueError("the radial grid g2 is empty: give at least one [eta, Rs] pair "
                             "(or no g2/g3/g4/g5 at all for the default set)")
        try:
            descriptor = descriptor_from_params(self.parameters(self.elements or ["H"]))
            check_new_cutoff(descriptor.cutoff)
        except InputError as error:
            raise ValueError(str(error)) from None
        return self


class ComputeSpec(SpecTable):
    """Where featurization and training run: a Dask scheduler's address, or ``"local"`` for
    ``workers`` processes on this machine (default: one per core) with ``threads_per_worker``
    threads each. ``member_groups`` splits the ensemble (default: one group per worker
    thread); ``retries`` re-runs a failed task. ``shards = true`` has every worker write the
    features of its configurations to a shard beside ``features.h5`` (which then indexes
    them), instead of returning them to one writer on the client: the dataset and the run
    directory must then be on a filesystem every worker sees. Results are identical to an
    in-process run (the statistics to rounding with shards), so this table never makes a
    step stale."""

    scheduler: str = "local"
    workers: Optional[int] = Field(None, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    member_groups: Optional[int] = Field(None, ge=1)
    retries: int = Field(2, ge=0)
    shards: bool = False

    @model_validator(mode="after")
    def _address(self):
        from pesnet.distributed.cluster import check_scheduler

        try:
            check_scheduler(self.scheduler)
        except InputError as error:
            raise ValueError(str(error)) from None
        if self.workers is not None and self.scheduler != "local":
            raise ValueError("workers applies to scheduler = \"local\" only (a remote "
                             "cluster has the workers it was started with)")
        return self


class ActiveLearningSpec(SpecTable):
    """``pesnet active-learn``: ``rounds`` of MD with the current ensemble from seed
    structures, picking frames whose largest atomic force spread (calibrated, eV/Å) exceeds
    ``threshold`` — or, if not given, the ``quantile`` of that spread over the training
    configurations — at least ``min_spacing`` MD steps apart and at most ``max_new`` per
    round; they are labelled with ``calculator`` (default: the dataset recipe's), appended to
    the dataset and the model is retrained. ``seed_structures`` (files, default ``n_seeds``
    training configurations) start the MD; MD of a structure stops once the spread exceeds
    ``stop_threshold``. ``holdout`` files are scored after every round. See
    :mod:`pesnet.pipeline.active_learning`."""

    rounds: int = Field(3, ge=1)
    calculator: Optional[str] = None
    seed_structures: list[str] = Field(default_factory=list)
    n_seeds: int = Field(2, ge=1)
    temperature_K: float | list[float] = 600.0
    md_steps: int = Field(500, ge=1)
    timestep_fs: float = Field(2.0, gt=0)
    friction: float = Field(0.02, gt=0)
    threshold: Optional[float] = Field(None, gt=0)
    quantile: Optional[float] = Field(None, gt=0, lt=1)
    stop_threshold: Optional[float] = Field(None, gt=0)
    min_spacing: int = Field(10, ge=1)
    max_new: int = Field(20, ge=1)
    holdout: list[str] = Field(default_factory=list)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _valid(self):
        from pesnet.data.calculators import available_calculators

        if self.threshold is not None and self.quantile is not None:
            raise ValueError("give threshold (eV/Å) or quantile, not both")
        temperatures = self.temperatures
        if not temperatures or any(t <= 0 for t in temperatures):
            raise ValueError("temperature_K must be positive (a number or a list)")
        if self.calculator is not None and self.calculator not in available_calculators():
            raise ValueError(f"unknown calculator {self.calculator!r}; known: "
                             f"{', '.join(sorted(available_calculators()))}")
        if (self.stop_threshold is not None and self.threshold is not None
                and self.stop_threshold <= self.threshold):
            raise ValueError("stop_threshold must exceed threshold")
        return self

    @property
    def temperatures(self) -> list[float]:
        t = self.temperature_K
        return [float(x) for x in t] if isinstance(t, list) else [float(t)]

    @property
    def selection_quantile(self) -> float | None:
        """The quantile used when no absolute threshold is given (default 0.95)."""
        return None if self.threshold is not None else (self.quantile or 0.95)


class ValidateSpec(SpecTable):
    """The optional ``validate`` step: crystal properties of the model's element by every
    member (:mod:`pesnet.properties`), against the registered calculator ``reference``
    (e.g. ``"emt"``; none: the model's values and spreads only); ``properties`` picks some
    (default all)."""

    reference: Optional[str] = None
    properties: Optional[list[str]] = None
    element: Optional[str] = None

    @model_validator(mode="after")
    def _known(self):
        from pesnet.data.calculators import available_calculators

        known = sorted(available_calculators())
        if self.reference is not None and self.reference not in known:
            raise ValueError(f"unknown calculator {self.reference!r}"
                             f"{did_you_mean(self.reference, known)}; known: {', '.join(known)}")
        return self



def compute_spec(spec: PipelineSpec, scheduler: str | None = None,
                 workers: int | None = None, shards: bool = False) -> ComputeSpec | None:
    """The spec's [compute] table with ``--scheduler``/``--workers``/``--shards`` applied
    (None: run in-process). ``workers`` or ``shards`` alone mean a local cluster; a new
    address drops the table's local worker count."""
    if scheduler is None and workers is None and not shards:
        return spec.compute
    table = spec.compute.model_dump() if spec.compute is not None else {}
    if scheduler is not None:
        table["scheduler"] = scheduler
        if scheduler != "local" and workers is None:
            table["workers"] = None
    if workers is not None:
        table["workers"] = workers
    if shards:
        table["shards"] = True
    try:
        return ComputeSpec.model_validate(table)
    except ValidationError as error:
        raise InputError("--scheduler/--workers: "
                         + error.errors(include_url=False)[0]["msg"].removeprefix(
                             "Value error, ")) from None
