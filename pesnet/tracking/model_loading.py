"""Models in an MLflow store's registry: the newest version of a name, a version's files,
and the potential logged at a model URI (``models:/NAME/VERSION``, ``models:/NAME@alias`` or
``runs:/RUN_ID/model``).

The model's artefacts are downloaded into a temporary directory, the pesnet model file among
them is read whole (plain HDF5, no code) and the directory removed. The store is passed to
MLflow explicitly: MLflow's global tracking URI is never changed. Registered as the entry
point ``pesnet.model_sources`` for the ``models`` and ``runs`` schemes, through which
:meth:`pesnet.calculator.PESNetCalculator.from_mlflow` finds it without importing MLflow.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from pesnet.errors import InputError
from pesnet.potential.io import FORMAT_NAME, load_model
from pesnet.tracking import store
from pesnet.tracking.store import TrackingError, configure_mlflow, resolve_tracking_uri


def load_potential(model_uri: str, tracking_uri: str | None = None):
    """The :class:`~pesnet.potential.model.Potential` logged at ``model_uri`` in the store
    ``tracking_uri`` (default: ``$MLFLOW_TRACKING_URI``, else pesnet's ``mlruns/mlflow.db``)."""
    configure_mlflow(quiet=True)   # no download bars or INFO lines in a user's script
    import mlflow.artifacts
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(tracking_uri)
    destination = tempfile.mkdtemp(prefix="pesnet-mlflow-")
    try:
        try:
            source = model_uri
            if model_uri.startswith("models:/"):
                source = registered_source(MlflowClient(tracking_uri=uri, registry_uri=uri),
                                           model_uri)
            local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=destination,
                                                        tracking_uri=uri)
        except MlflowException as error:
            raise InputError(f"cannot fetch {model_uri!r} from MLflow: {error.message}") from None
        path = find_model_file(Path(local))
        if path is None:
            raise InputError(f"{model_uri!r} holds no pesnet model file (looked for model.h5 "
                             "among its artefacts)")
        return load_model(path)
    finally:
        shutil.rmtree(destination, ignore_errors=True)


def latest_version(uri: str, name: str) -> str:
    """The highest version number of registered model ``name``."""
    from mlflow.exceptions import MlflowException

    store.check_reachable(uri)
    client = store.client(uri)
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException as error:
        raise TrackingError(f"cannot read the Model Registry of {store.describe(uri)}: "
                            f"{error}") from None
    if not versions:
        raise InputError(f"no registered model named {name!r} in {store.describe(uri)}; "
                         f"`pesnet run pipelines/{name}.toml` registers it")
    return str(max(int(v.version) for v in versions))


def example_request(uri: str, name: str, version: str) -> Path | None:
    """The logged ``serving_input_example.json`` of a version, if its artefacts are local."""
    from urllib.parse import unquote, urlparse

    try:
        location = store.client(uri).get_model_version_download_uri(name, version)
    except Exception:  # only a hint: never fail over it
        return None
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return None
    path = Path(unquote(parsed.path)) / "serving_input_example.json"
    return path if path.is_file() else None


def download_model(uri: str, model_uri: str, directory) -> Path:
    """Download ``model_uri`` (``models:/NAME/VERSION``) from the store ``uri`` into
    ``directory``; returns the model's local directory (its ``MLmodel`` file is inside)."""
    import mlflow.artifacts

    try:
        source = model_uri
        if model_uri.startswith("models:/"):
            source = registered_source(store.client(uri), model_uri)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=source,
                                                        dst_path=str(directory),
                                                        tracking_uri=uri))
    except Exception as error:  # MlflowException, OSError, requests errors
        raise TrackingError(f"cannot download {model_uri} from {store.describe(uri)}: "
                            f"{str(error).splitlines()[0]}") from None


def registered_source(client, model_uri: str) -> str:
    """Where the version ``models:/NAME/VERSION[/PATH]`` or ``models:/NAME@ALIAS[/PATH]``
    keeps its artefacts, asked of ``client``'s registry (MLflow's own resolution of
    ``models:/`` reads the global registry URI, which pesnet leaves alone)."""
    name_part, _, path = model_uri.removeprefix("models:/").partition("/")
    if "@" in name_part:
        name, alias = name_part.split("@", 1)
        version = client.get_model_version_by_alias(name, alias).version
    else:
        name, (version, _, path) = name_part, path.partition("/")
    location = client.get_model_version_download_uri(name, version)
    return f"{location.rstrip('/')}/{path}" if path else location


def find_model_file(root: Path) -> Path | None:
    """The pesnet model file under ``root``: ``model.h5`` if present, else any HDF5 file whose
    ``format`` attribute says pesnet-model."""
    import h5py

    if root.is_file():
        return root
    candidates = sorted(root.rglob("model.h5")) + sorted(
        p for p in root.rglob("*.h5") if p.name != "model.h5")
    for path in candidates:
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") == FORMAT_NAME:
                    return path
        except OSError:
            continue
    return None
