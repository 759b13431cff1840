"""``pesnet serve NAME``: serve a registered model over HTTP (MLflow's scoring server)."""

from __future__ import annotations

from pesnet.cli.tracking_options import add_server_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a registered model: POST structures, get energies and forces with σ",
        description="Serve models:/NAME/VERSION with `mlflow models serve --env-manager local` "
        "in pesnet's environment. POST /invocations with {\"dataframe_records\": [{\"extxyz\": "
        "TEXT}]} (or numbers/positions/cell/pbc per row); the answer holds energy, forces, "
        "stress and their ensemble standard deviations per structure.",
    )
    parser.add_argument("name", help="registered model name (a pipeline's name)")
    parser.add_argument("--version", help="model version (default: the latest)")
    add_server_arguments(parser, port=5001)
    parser.set_defaults(func=run)


def run(args) -> int:
    from pesnet.tracking.registry import (check_port_free, example_request, latest_version,
                                          run_foreground, serve_command, server_env)
    from pesnet.tracking.store import configure_mlflow, resolve_tracking_uri

    configure_mlflow(quiet=True)
    uri = resolve_tracking_uri(args.tracking_uri)
    version = args.version or latest_version(uri, args.name)
    model_uri = f"models:/{args.name}/{version}"
    check_port_free(args.host, args.port)
    url = f"http://{args.host}:{args.port}"
    print(f"serving {model_uri} on {url}/invocations (Ctrl-C stops)", flush=True)
    example = example_request(uri, args.name, version)
    if example is not None:
        print(f"  try: curl -s {url}/invocations -H 'Content-Type: application/json' "
              f"-d @{example}", flush=True)
    return run_foreground(serve_command(model_uri, args.host, args.port, args.workers),
                          server_env(uri))
