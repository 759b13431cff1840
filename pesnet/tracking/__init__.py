"""MLflow tracking: where runs are stored, what a pipeline run logs, plots, the pyfunc model.

Modules: :mod:`.store` (tracking URI, artefact location, locking, reachability),
:mod:`.session` (a run and its member runs: params, metrics, artefacts, registration),
:mod:`.recorder` (a workflow's parent run and its child runs, failures never fatal),
:mod:`.callback` (the training callback streaming learning curves), :mod:`.plots`
(matplotlib PNGs), :mod:`.serving` (request/answer format of the served model),
:mod:`.pyfunc_model` (the models-from-code file MLflow loads), :mod:`.scoring` (what runs
in the model server: answers with HTTP status codes, the ASGI app), :mod:`.request_limits`
(atoms, bytes and seconds per request), :mod:`.servers` (serving and the UI as
subprocesses), :mod:`.model_loading` (registered versions, downloads, potentials by model URI)
and :mod:`.query` (recent runs for the terminal).

Importing this package does not import MLflow (it costs ~1.5 s); the functions that need it
import it when called.
"""

from pesnet.tracking.store import TrackingError, default_tracking_uri, resolve_tracking_uri

__all__ = ["TrackingError", "default_tracking_uri", "resolve_tracking_uri"]
