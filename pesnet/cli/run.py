"""``pesnet run pipelines/NAME.toml``: the whole chain, from raw configurations to a
registered model, skipping steps whose inputs have not changed."""

from __future__ import annotations

from pathlib import Path

from pesnet.cli.compute_options import add_compute_arguments
from pesnet.cli.tracking_options import add_tracking_arguments, tracking_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a pipeline spec: ingest, featurize, train, evaluate, log, register",
        description="Run the pipeline described by a TOML spec. Each step is skipped when its "
        "inputs and parameters are unchanged since its last run (content hashes in "
        "RUN_DIR/state.json). Files go to the run directory, the record of the run to MLflow "
        "(default store: ./mlruns/mlflow.db; $MLFLOW_TRACKING_URI overrides it). A run "
        "directory belongs to the spec file that first used it (RUN_DIR/owner.json); another "
        "spec file with the same name needs --run-dir. Exit code 0 only if every step "
        "succeeded; 130 after Ctrl-C and 143 after SIGTERM (the MLflow run is marked KILLED).",
    )
    parser.add_argument("spec", type=Path, help="pipeline spec, e.g. pipelines/quickstart.toml")
    parser.add_argument("--run-dir", type=Path,
                        help="directory for the run's files (default: runs/NAME)")
    parser.add_argument("--force", action="store_true", help="rerun every step")
    add_tracking_arguments(parser, "do not log to MLflow (the log and register steps are off)")
    add_compute_arguments(
        parser,
        "featurize and train on a Dask cluster: a scheduler address (tcp://host:8786) or "
        "\"local\" (overrides the spec's [compute]; needs pesnet[dask]; results are "
        "identical to an in-process run)",
        "on the cluster, every worker writes its features to a shard beside features.h5 "
        "instead of returning them to one writer (the run directory must be on a filesystem "
        "every worker sees); as [compute] shards = true")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pesnet.pipeline.ownership import check_owner
    from pesnet.pipeline.runner import run_pipeline, summary_lines
    from pesnet.pipeline.spec import compute_spec, load_spec
    from pesnet.potential.evaluate import format_metrics
    from pesnet.tracking.store import TrackingError

    pipeline = load_spec(args.spec)
    run_dir = args.run_dir or Path("runs") / pipeline.name
    check_owner(run_dir, pipeline.path)  # a copied spec is refused before any output
    compute = compute_spec(pipeline.spec, args.scheduler, args.workers, args.shards)
    tracking, uri, where = tracking_from_args(args)
    if compute is not None:
        where += f", compute on Dask ({compute.scheduler})"
    print(f"pesnet run {pipeline.name}: {run_dir}/, {where}", flush=True)
    result = run_pipeline(pipeline, run_dir=run_dir, force=args.force, tracking=tracking,
                          tracking_uri=uri, progress=not args.quiet, compute=compute)
    if not result.did_work:
        print("everything is up to date (use --force to run again)")
    if result.metrics:
        print(f"\n{result.metrics['split']} metrics ({pipeline.name})")
        print(format_metrics(result.metrics["metrics"]))
    print()
    for line in summary_lines(result):
        print(line)
    if result.tracking_error:
        raise TrackingError(f"tracking failed: {result.tracking_error}; the model and metrics "
                            f"are in {run_dir}/ (run the same command again to log them once "
                            f"the store is reachable)")
    return 0 if result.ok else 1
