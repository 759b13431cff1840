"""The base of every pipeline-spec table (:mod:`pesnet.pipeline.spec`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

#: What names of pipelines and registered models may look like.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class SpecTable(BaseModel):
    """A spec table: unknown keys are errors, and TOML types are taken as they are."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
