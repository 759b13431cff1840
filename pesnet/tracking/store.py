"""Where MLflow records go: the tracking URI, the artefact location, and safe access to it.

Default: an embedded SQLite store ``sqlite:///<cwd>/mlruns/mlflow.db`` with artefacts under
``<cwd>/mlruns/<experiment>/`` (MLflow 3 refuses the plain ``./mlruns`` file store unless
forced, and SQLite also gives the Model Registry). ``MLFLOW_TRACKING_URI`` overrides it, so a
team points pesnet at a shared server (``http://mlflow.example:5000``) or database.

Several ``pesnet run`` processes may share one SQLite store: creating the schema (the first
contact migrates an empty database), creating an experiment and registering a model version
happen under an exclusive file lock next to the database; other writes rely on SQLite's
busy timeout, which MLflow sets to 20 s.

Nothing here imports MLflow at module import time (it costs ~1.5 s).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from pesnet.errors import PesnetError
from pesnet.fileio import file_lock

#: Directory (relative to the working directory) of the default store.
STORE_DIR = "mlruns"
#: File name of the default SQLite database inside :data:`STORE_DIR`.
DB_NAME = "mlflow.db"


class TrackingError(PesnetError):
    """The MLflow tracking store cannot be reached or refused a request."""


def default_tracking_uri(root=None) -> str:
    """``sqlite:///<root>/mlruns/mlflow.db`` (root: the working directory)."""
    root = Path(root or os.getcwd()).resolve()
    return f"sqlite:///{root / STORE_DIR / DB_NAME}"


def resolve_tracking_uri(uri: str | None = None, root=None) -> str:
    """The tracking URI to use: ``uri`` if given, else ``$MLFLOW_TRACKING_URI``, else the
    default store under ``root``. A relative SQLite path is made absolute (from the working
    directory, as MLflow does), so every later step sees the same database."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(root)
    path = sqlite_path(uri)
    if path is not None:
        return f"sqlite:///{path.resolve()}"
    if "://" not in uri and uri not in ("databricks",):  # a bare directory: MLflow's file store
        return Path(uri).resolve().as_uri()
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri[len("sqlite:///"):].split("?", 1)[0])
    return Path(path)


def is_remote(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def describe(uri: str) -> str:
    """A short human description of a store for terminal output."""
    path = sqlite_path(uri)
    if path is not None:
        try:
            return f"{path.relative_to(Path.cwd())} (SQLite)"
        except ValueError:
            return f"{path} (SQLite)"
    return uri


def artifact_location(uri: str, experiment: str) -> str | None:
    """Artefact root for a new experiment: next to the database for a SQLite store
    (``<db dir>/<experiment>``); None (the server's or MLflow's choice) otherwise."""
    path = sqlite_path(uri)
    if path is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", experiment)
    return (path.resolve().parent / safe).as_uri()


@contextlib.contextmanager
def store_lock(uri: str):
    """Exclusive lock of a local SQLite store across processes (no-op for other stores)."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    with file_lock(path.with_name(path.name + ".lock")):
        yield


def configure_mlflow(quiet: bool = True) -> None:
    """Settings for MLflow inside pesnet, each only if the user has not chosen one: few HTTP
    retries with a short timeout (MLflow's defaults retry an unreachable server for minutes),
    no artefact-download progress bars, and MLflow's INFO chatter off when ``quiet``."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if quiet:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
        for name in ("mlflow", "alembic"):
            logger = logging.getLogger(name)
            if logger.level in (logging.NOTSET, logging.INFO, logging.DEBUG):
                logger.setLevel(logging.WARNING)


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast with :class:`TrackingError` if the store cannot be used: a remote server
    that does not answer, or a SQLite database whose directory cannot be created."""
    path = sqlite_path(uri)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrackingError(f"cannot create the tracking store {path.parent} "
                                f"({error.strerror or error})") from None
        if not os.access(path.parent, os.W_OK):
            raise TrackingError(f"the tracking store {path.parent} is not writable")
        return
    if not is_remote(uri):
        return
    probe = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(probe, timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # the server answered (a proxy may not know /health): reachable
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingError(f"cannot reach the MLflow tracking server at {uri} "
                            f"({reason})") from None


def client(uri: str):
    """An ``MlflowClient`` for ``uri``, its Model Registry too (MLflow's global URIs are not
    read); its first contact with a SQLite store (which may create the schema) happens under
    :func:`store_lock`."""
    from mlflow import MlflowClient

    configure_mlflow(quiet=False)
    with store_lock(uri):
        mlflow_client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        mlflow_client.search_experiments(max_results=1)  # opens (and migrates) the store
    return mlflow_client


#: MLflow 3's dashboard opens an experiment by this tag: without it a new experiment is shown
#: as a GenAI one (traces, token usage); with it, on its training runs. A user's own choice
#: (the tag already set) is kept.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def get_or_create_experiment(mlflow_client, uri: str, name: str) -> str:
    """The id of experiment ``name``, created (with :func:`artifact_location` and
    :data:`EXPERIMENT_KIND`) if missing; a deleted experiment of that name is restored, and
    one without a kind gets pesnet's."""
    from mlflow.exceptions import MlflowException

    with store_lock(uri):
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                mlflow_client.restore_experiment(experiment.experiment_id)
            for key, value in EXPERIMENT_KIND.items():
                if key not in experiment.tags:
                    mlflow_client.set_experiment_tag(experiment.experiment_id, key, value)
            return experiment.experiment_id
        try:
            return mlflow_client.create_experiment(name, artifact_location(uri, name),
                                                   tags=EXPERIMENT_KIND)
        except MlflowException as error:  # another process created it just now
            experiment = mlflow_client.get_experiment_by_name(name)
            if experiment is None:
                raise error
            return experiment.experiment_id


@contextlib.contextmanager
def using_tracking_uri(uri: str):
    """Point MLflow's global (fluent) API at ``uri`` for the duration; restore afterwards.

    Needed only where MLflow has no client form: logging a model
    (:meth:`~pesnet.tracking.session.TrackingSession.log_pyfunc`), and registering one, whose
    SQL registry looks the logged model up through the global URI. Everything else passes the
    store explicitly.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # None also clears the variable MLflow exported
