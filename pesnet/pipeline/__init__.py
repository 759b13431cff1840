"""Pipelines: one TOML spec, one command, from raw configurations to a registered model.

:mod:`.spec` loads and validates ``pipelines/NAME.toml``; :mod:`.steps` defines ingest →
featurize → train → evaluate → log → register with content-hash skipping; :mod:`.runner`
runs them with an MLflow run around them.
"""

from pesnet.pipeline.spec import Pipeline, PipelineSpec, load_spec

__all__ = ["Pipeline", "PipelineSpec", "load_spec"]
