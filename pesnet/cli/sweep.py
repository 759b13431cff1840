"""``pesnet sweep pipelines/NAME.toml --grid train.learning_rate=1e-3,5e-3 ...``: a
hyperparameter grid fitted on a Dask cluster, one MLflow child run per point."""

from __future__ import annotations

from pathlib import Path

from pesnet.cli.compute_options import add_compute_arguments
from pesnet.cli.tracking_options import add_tracking_arguments, tracking_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="fit a grid of training settings of a pipeline on a Dask cluster",
        description="Featurize the pipeline's dataset once, then fit one ensemble per point of "
        "the grid (every combination of the --grid values) on a Dask cluster: the spec's "
        "[compute] scheduler, --scheduler, or else a local cluster. Each point is an MLflow "
        "child run of one sweep run in the pipeline's experiment; files go to "
        "RUN_DIR/point-NNN/. Exit code 0 only if every point succeeded.",
    )
    parser.add_argument("spec", type=Path, help="pipeline spec, e.g. pipelines/quickstart.toml")
    parser.add_argument("--grid", action="append", default=[], metavar="TABLE.KEY=V1,V2",
                        help="values of one [model], [ensemble] or [train] key, as TOML "
                        "(repeat for more keys), e.g. train.learning_rate=1e-3,5e-3 or "
                        "model.hidden=[16],[32,32]")
    add_compute_arguments(
        parser,
        "Dask scheduler address (tcp://host:8786) or \"local\" (default: the spec's "
        "[compute], else local)",
        "workers write the features as shards beside features.h5 (as [compute] shards = true)")
    parser.add_argument("--run-dir", type=Path,
                        help="directory for the sweep's files (default: runs/NAME-sweep)")
    add_tracking_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from pesnet.pipeline.spec import ComputeSpec, compute_spec, load_spec
    from pesnet.pipeline.sweep import describe_point, format_table, parse_grid, run_sweep
    from pesnet.tracking.store import TrackingError

    pipeline = load_spec(args.spec)
    grid = parse_grid(args.grid)
    compute = (compute_spec(pipeline.spec, args.scheduler, args.workers, args.shards)
               or ComputeSpec())
    tracking, uri, where = tracking_from_args(args)
    result = run_sweep(pipeline, grid, compute, run_dir=args.run_dir, tracking=tracking,
                       tracking_uri=uri, progress=not args.quiet)
    print(f"\n{result.split} metrics ({pipeline.name}, {len(result.points)} points)")
    print(format_table(result))
    best = result.best()
    print()
    if best is not None:
        print(f"best: {best.name} ({describe_point(best.point)})")
    print(f"run directory: {result.run_dir}/ ({', '.join(['point-NNN/', 'sweep.json'])})")
    if tracking and result.run_id:
        print(f"MLflow: sweep run {result.run_id} in experiment {pipeline.name}, {where} "
              f"(one child run per point)")
    if result.tracking_error:
        raise TrackingError(f"tracking failed: {result.tracking_error}; the models and metrics "
                            f"are in {result.run_dir}/")
    return 0 if result.ok else 1
