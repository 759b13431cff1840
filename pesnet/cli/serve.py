"""``pesnet serve NAME``: serve a registered model over HTTP (MLflow's scoring server, with
limits on the atoms, bytes and seconds of one request)."""

from __future__ import annotations

from pesnet.cli.tracking_options import add_server_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a registered model: POST structures, get energies and forces with σ",
        description="Serve models:/NAME/VERSION with MLflow's scoring server in pesnet's "
        "environment. POST /invocations with {\"dataframe_records\": [{\"extxyz\": TEXT}]} (or "
        "numbers/positions/cell/pbc per row); the answer holds energy, forces, stress and their "
        "ensemble standard deviations per structure. Errors: 400 for a request pesnet cannot "
        "read (the message names the row and frame), 413 over a size limit, 504 over the "
        "timeout.",
    )
    parser.add_argument("name", help="registered model name (a pipeline's name)")
    parser.add_argument("--version", help="model version (default: the latest)")
    add_server_arguments(parser, port=5001)
    parser.add_argument("--max-atoms", type=int, metavar="N",
                        help="atoms per request, all structures together (default: "
                        "$PESNET_SERVE_MAX_ATOMS, else 20000); more: HTTP 413")
    parser.add_argument("--max-request-mb", type=float, metavar="MB",
                        help="request body size in MiB (default: $PESNET_SERVE_MAX_REQUEST_MB, "
                        "else 50); larger: HTTP 413, refused before it is read")
    parser.add_argument("--timeout", type=int, metavar="S",
                        help="seconds to compute one answer (default: "
                        "$MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT, else 60); longer: HTTP 504")
    parser.set_defaults(func=run)


def _limits(args) -> tuple[int, float, int]:
    """(atoms, MiB, seconds) per request: the options, else the environment, else defaults."""
    from pesnet.errors import InputError
    from pesnet.tracking.request_limits import (
        max_atoms_per_request,
        max_request_mb,
        request_timeout,
    )

    for option, value in (("--max-atoms", args.max_atoms), ("--timeout", args.timeout),
                          ("--max-request-mb", args.max_request_mb)):
        if value is not None and not 0 < value < float("inf"):
            raise InputError(f"{option} must be a positive number, got {value}")
    return (args.max_atoms or max_atoms_per_request(), args.max_request_mb or max_request_mb(),
            args.timeout or request_timeout())


def run(args) -> int:
    import tempfile

    from pesnet.tracking.model_loading import download_model, example_request, latest_version
    from pesnet.tracking.servers import check_port_free, run_foreground, serve_command, serve_env
    from pesnet.tracking.store import configure_mlflow, resolve_tracking_uri

    max_atoms, max_mb, timeout = _limits(args)
    configure_mlflow(quiet=True)
    uri = resolve_tracking_uri(args.tracking_uri)
    version = args.version or latest_version(uri, args.name)
    model_uri = f"models:/{args.name}/{version}"
    check_port_free(args.host, args.port)
    url = f"http://{args.host}:{args.port}"
    with tempfile.TemporaryDirectory(prefix="pesnet-serve-") as scratch:
        model_dir = download_model(uri, model_uri, scratch)
        print(f"serving {model_uri} on {url}/invocations (Ctrl-C stops)", flush=True)
        print(f"  limits per request: {max_atoms} atoms, {max_mb:g} MiB, {timeout} s "
              f"(--max-atoms, --max-request-mb, --timeout)", flush=True)
        example = example_request(uri, args.name, version)
        if example is not None:
            print(f"  try: curl -s {url}/invocations -H 'Content-Type: application/json' "
                  f"-d @{example}", flush=True)
        env = serve_env(uri, model_dir, max_atoms, max_mb, timeout)
        return run_foreground(serve_command(args.host, args.port, args.workers), env,
                              ready_url=f"{url}/ping")
