"""``pesnet runs``: recent pipeline runs and their key metrics, in the terminal."""

from __future__ import annotations

from pesnet.cli.tracking_options import add_store_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "runs",
        help="list recent pipeline runs with their test metrics",
        description="List the most recent `pesnet run` runs of the tracking store (newest "
        "first) with status, the final energy and force MAE, the fraction of force errors "
        "within one predicted σ, and the registered model version.",
    )
    parser.add_argument("pipeline", nargs="?", help="only this pipeline (experiment)")
    parser.add_argument("-n", "--limit", type=int, default=10, help="how many (default 10)")
    add_store_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from pesnet.errors import InputError
    from pesnet.tracking.query import format_runs, recent_runs
    from pesnet.tracking.store import configure_mlflow, describe, resolve_tracking_uri, sqlite_path

    if args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    configure_mlflow(quiet=True)
    uri = resolve_tracking_uri(args.tracking_uri)
    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        print(f"no runs yet: {describe(uri)} does not exist (`pesnet run "
              f"pipelines/quickstart.toml` creates it)")
        return 0
    rows = recent_runs(uri, args.pipeline, args.limit)
    if not rows:
        which = f" of pipeline {args.pipeline!r}" if args.pipeline else ""
        print(f"no pipeline runs{which} in {describe(uri)}")
        return 0
    print(format_runs(rows))
    return 0
