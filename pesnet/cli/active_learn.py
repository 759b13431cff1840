"""``pesnet active-learn pipelines/NAME.toml``: MD with the ensemble, label what it is unsure
about, retrain; ``[active_learning] rounds`` times (see :mod:`pesnet.pipeline.active_learning`)."""

from __future__ import annotations

from pathlib import Path

from pesnet.cli.tracking_options import add_tracking_arguments, tracking_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "active-learn",
        help="grow a pipeline's dataset where the ensemble disagrees, and retrain",
        description="Bring the pipeline up to date (as `pesnet run`), then per round: run MD "
        "with the current ensemble from seed structures, pick frames whose largest atomic "
        "force spread exceeds the threshold (at least min_spacing steps apart, at most "
        "max_new), label them with the reference calculator, append them to the dataset and "
        "retrain. Settings: the spec's [active_learning] table. Rounds go to "
        "RUN_DIR/active-learning/round-NN/; each is an MLflow run nested under one "
        "active-learning run in the pipeline's experiment.",
    )
    parser.add_argument("spec", type=Path, help="pipeline spec with an [active_learning] table")
    parser.add_argument("--rounds", type=int, help="number of rounds (default: the spec's)")
    parser.add_argument("--run-dir", type=Path,
                        help="the pipeline's run directory (default: runs/NAME)")
    add_tracking_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from pesnet.pipeline.active_learning import run_active_learning
    from pesnet.pipeline.spec import load_spec
    from pesnet.tracking.store import TrackingError

    pipeline = load_spec(args.spec)
    tracking, uri, where = tracking_from_args(args)
    run_dir = args.run_dir or Path("runs") / pipeline.name
    print(f"pesnet active-learn {pipeline.name}: {run_dir}/, {where}", flush=True)
    result = run_active_learning(pipeline, run_dir=run_dir, rounds=args.rounds,
                                 tracking=tracking, tracking_uri=uri, progress=not args.quiet)
    print()
    picked = sum(r.n_picked for r in result.rounds)
    print(f"{len(result.rounds)} round(s), {picked} configurations added; newest model: "
          f"{result.model_path}")
    if result.parent_run_id and not result.tracking_error:
        print(f"MLflow: active-learning run {result.parent_run_id} in experiment "
              f"{pipeline.name} (rounds nested under it)")
    if result.tracking_error:
        raise TrackingError(f"tracking failed: {result.tracking_error}; the rounds' files are "
                            f"in {run_dir}/active-learning/")
    return 0
