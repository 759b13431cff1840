"""``pesnet compare RUN_A RUN_B``: what differs between two runs, and how their metrics
moved."""

from __future__ import annotations

from pesnet.cli.tracking_options import add_store_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare two runs: params that differ, metrics side by side",
        description="Show the params that differ between two MLflow runs, every final metric "
        "of both side by side with the difference, and the dashboard's compare-runs address. "
        "Name runs as `pesnet runs` lists them: run id (or its first 6+ characters) or name.",
    )
    parser.add_argument("first", metavar="RUN_A", help="run id, id prefix or run name")
    parser.add_argument("second", metavar="RUN_B", help="run id, id prefix or run name")
    add_store_argument(parser)
    parser.add_argument("--ui", default="http://127.0.0.1:5000",
                        help="dashboard address for the link (default http://127.0.0.1:5000)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pesnet.errors import InputError
    from pesnet.tracking.compare import compare_runs, format_comparison
    from pesnet.tracking.store import configure_mlflow, describe, resolve_tracking_uri, sqlite_path

    configure_mlflow(quiet=True)
    uri = resolve_tracking_uri(args.tracking_uri)
    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        raise InputError(f"{describe(uri)} does not exist: no runs to compare")
    print(format_comparison(compare_runs(uri, args.first, args.second, args.ui)))
    return 0
