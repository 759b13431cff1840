"""``pesnet ui``: the MLflow dashboard on the project's tracking store."""

from __future__ import annotations

from pesnet.cli.tracking_options import add_server_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="open the MLflow dashboard on the project's store",
        description="Start `mlflow ui` (one worker, bound to 127.0.0.1) on the tracking store "
        "pesnet run logs to. With a remote $MLFLOW_TRACKING_URI the server already is the "
        "dashboard: its address is printed instead.",
    )
    add_server_arguments(parser, port=5000)
    parser.set_defaults(func=run)


def run(args) -> int:
    from pesnet.tracking.dashboard import dashboard_url
    from pesnet.tracking.servers import check_port_free, run_foreground, server_env, ui_command
    from pesnet.tracking.store import describe, is_remote, resolve_tracking_uri, sqlite_path

    uri = resolve_tracking_uri(args.tracking_uri)
    if is_remote(uri):
        print(f"the tracking store is the MLflow server {uri}: open it in a browser")
        return 0
    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        print(f"note: {describe(uri)} does not exist yet; `pesnet run pipelines/quickstart.toml` "
              f"creates it", flush=True)
    check_port_free(args.host, args.port)
    print(f"MLflow dashboard on {describe(uri)} (Ctrl-C stops): "
          f"{dashboard_url(f'http://{args.host}:{args.port}')}", flush=True)
    return run_foreground(ui_command(uri, args.host, args.port, args.workers), server_env(uri),
                          ready_url=f"http://{args.host}:{args.port}/health")
