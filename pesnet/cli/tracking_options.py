"""The MLflow options shared by several commands: ``--tracking-uri``, ``--no-tracking`` and
``--quiet`` of those that run a pipeline spec (``run``, ``active-learn``, ``sweep``), and the
server options of ``serve`` and ``ui``."""

from __future__ import annotations


def add_tracking_arguments(parser, no_tracking_help: str = "do not log to MLflow") -> None:
    """Add ``--tracking-uri``, ``--no-tracking`` and ``--quiet`` to ``parser``."""
    parser.add_argument("--tracking-uri",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///<cwd>/mlruns/mlflow.db)")
    parser.add_argument("--no-tracking", action="store_true", help=no_tracking_help)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def tracking_from_args(args) -> tuple[bool, str | None, str]:
    """(tracking on?, resolved tracking URI or None, a few words for the first output line);
    configures MLflow's logging when tracking is on."""
    from pesnet.tracking.store import configure_mlflow, describe, resolve_tracking_uri

    tracking = not args.no_tracking
    if not tracking:
        return False, None, "tracking off"
    uri = resolve_tracking_uri(args.tracking_uri)
    configure_mlflow(quiet=True)
    return True, uri, f"tracking {describe(uri)}"


def add_store_argument(parser) -> None:
    """Add ``--tracking-uri`` for a command that reads a store (runs, compare, ui, serve)."""
    parser.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, "
                        "else ./mlruns/mlflow.db)")


def add_server_arguments(parser, port: int) -> None:
    """Add ``--host``, ``--port`` (default ``port``), ``--workers`` and ``--tracking-uri`` for a
    command that starts an MLflow server."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=port, help=f"port (default {port})")
    parser.add_argument("--workers", type=int, default=1, help="server workers (default 1)")
    add_store_argument(parser)
