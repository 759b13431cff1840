"""Pipelines: one TOML spec, one command, from raw configurations to a registered model.

:mod:`.spec` (with :mod:`.spec_tables`) loads and validates ``pipelines/NAME.toml``;
:mod:`.steps` defines ingest → featurize → train → evaluate → log → register; :mod:`.engine`
is the one step engine (content-hash skipping, state, the run-directory lock) and
:mod:`.executors` says where the heavy work runs (here or on Dask). Three workflows drive the
engine and record themselves through :class:`pesnet.tracking.recorder.Recorder`:
:mod:`.runner` (``pesnet run``), :mod:`.active_learning` (with :mod:`.exploration`) and
:mod:`.sweep`. :mod:`.ownership` and :mod:`.splits` hold the run directory's owner and the
spec's split files.
"""

from pesnet.pipeline.spec import Pipeline, PipelineSpec, load_spec

__all__ = ["Pipeline", "PipelineSpec", "load_spec"]
