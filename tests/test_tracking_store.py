"""Tracking URI resolution, artefact locations, the store lock, reachability, lazy imports."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pesnet.tracking import store
from pesnet.tracking.store import TrackingError
from tests.pipeline_helpers import free_port


def test_default_store_is_sqlite_inside_mlruns(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    uri = store.resolve_tracking_uri()
    assert uri == f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}"
    assert store.sqlite_path(uri) == tmp_path.resolve() / "mlruns" / "mlflow.db"
    assert store.artifact_location(uri, "my run/1") == \
        (tmp_path.resolve() / "mlruns" / "my_run_1").as_uri()
    assert store.describe(uri) == "mlruns/mlflow.db (SQLite)"


def test_environment_and_argument_override_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert store.resolve_tracking_uri() == "http://mlflow.example:5000"
    assert store.artifact_location("http://mlflow.example:5000", "x") is None
    assert store.is_remote("http://mlflow.example:5000")
    # a relative SQLite path is pinned to the working directory
    assert store.resolve_tracking_uri("sqlite:///db/m.db") == \
        f"sqlite:///{tmp_path.resolve() / 'db' / 'm.db'}"


def test_closed_port_fails_fast_with_a_clear_message():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(TrackingError, match=f"cannot reach the MLflow tracking server at "
                                            f"http://127.0.0.1:{port}"):
        store.check_reachable(f"http://127.0.0.1:{port}", timeout=2)
    assert time.monotonic() - started < 5


def test_unwritable_sqlite_location_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TrackingError, match="cannot create the tracking store"):
        store.check_reachable(f"sqlite:///{blocker / 'mlruns' / 'mlflow.db'}")


def test_store_lock_is_exclusive_across_holders(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    order = []

    def hold():
        with store.store_lock(uri):
            order.append("second")

    with store.store_lock(uri):
        worker = threading.Thread(target=hold)
        worker.start()
        time.sleep(0.3)
        order.append("first")
    worker.join(timeout=10)
    assert order == ["first", "second"]
    assert (tmp_path / "mlruns" / "mlflow.db.lock").exists()


def test_using_tracking_uri_restores_the_environment(monkeypatch):
    import os

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/before.db")
    with store.using_tracking_uri("sqlite:////tmp/during.db"):
        import mlflow

        assert mlflow.get_tracking_uri() == "sqlite:////tmp/during.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:////tmp/before.db"
    assert mlflow.get_tracking_uri() == "sqlite:////tmp/before.db"


def test_pesnet_and_its_cli_do_not_import_mlflow():
    code = ("import sys, pesnet, pesnet.pipeline.runner, pesnet.tracking.session, "
            "pesnet.tracking.callback, pesnet.tracking.servers, pesnet.tracking.query, "
            "pesnet.tracking.recorder, pesnet.tracking.model_loading\n"
            "from pesnet.cli.main import build_parser; build_parser()\n"
            "heavy = [m for m in ('mlflow', 'matplotlib', 'pandas') if m in sys.modules]\n"
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert result.returncode == 0, result.stderr


def test_server_commands_bind_loopback_and_find_uvicorn():
    from pesnet.tracking import servers

    serve = servers.serve_command(port=5123)
    assert serve[:3] == [sys.executable, "-m", "uvicorn"]
    assert serve[serve.index("--factory") + 1] == "pesnet.tracking.scoring:create_app"
    assert serve[serve.index("--host") + 1] == "127.0.0.1"
    assert serve[serve.index("--port") + 1] == "5123"
    env = servers.serve_env("sqlite:////tmp/m.db", "/tmp/model", 500, 2.5, 30)
    assert env["PESNET_SERVE_MODEL"] == "/tmp/model" and env["PESNET_SERVE_MAX_ATOMS"] == "500"
    assert env["PESNET_SERVE_MAX_REQUEST_MB"] == "2.5"
    assert env["MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"] == "30"
    ui = servers.ui_command("sqlite:////tmp/m.db")
    assert ui[ui.index("--host") + 1] == "127.0.0.1" and ui[ui.index("--workers") + 1] == "1"
    assert ui[ui.index("--backend-store-uri") + 1] == "sqlite:////tmp/m.db"
    env = servers.server_env("sqlite:////tmp/m.db")
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:////tmp/m.db"


def test_busy_port_is_a_user_error():
    import socket

    from pesnet.errors import InputError
    from pesnet.tracking.servers import check_port_free

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(InputError, match="choose another --port"):
            check_port_free("127.0.0.1", busy.getsockname()[1])


def test_ui_with_a_remote_store_points_at_the_server(monkeypatch, capsys):
    from pesnet.cli.main import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert main(["ui"]) == 0
    assert "http://mlflow.example:5000" in capsys.readouterr().out


def test_runs_on_an_empty_project(tmp_path, monkeypatch, capsys):
    from pesnet.cli.main import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["runs"]) == 0
    assert "no runs yet" in capsys.readouterr().out
    assert not (tmp_path / "mlruns").exists()


def test_foreground_server_group_is_stopped_on_sigterm(tmp_path):
    """`pesnet serve/ui` stop their server and its children when terminated."""
    import os
    import signal

    script = tmp_path / "wrapper.py"
    script.write_text(
        "import sys\n"
        "from pesnet.tracking.servers import run_foreground\n"
        "child = [sys.executable, '-c', 'import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, \"-c\", \"import time; time.sleep(600)\"]); "
        "time.sleep(600)']\n"
        "try:\n"
        "    run_foreground(child, {}, grace=5)\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n")
    wrapper = subprocess.Popen([sys.executable, str(script)], start_new_session=True,
                               cwd=Path(__file__).resolve().parents[1])
    try:
        time.sleep(2.0)
        descendants, frontier = [], [str(wrapper.pid)]
        while frontier:
            children = subprocess.run(["pgrep", "-P", frontier.pop()], capture_output=True,
                                      text=True).stdout.split()
            descendants += children
            frontier += children
        assert len(descendants) == 2  # the server and its worker
        group_members = descendants
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=30) == 130
        deadline = time.monotonic() + 10
        alive = []
        while time.monotonic() < deadline:
            alive = [pid for pid in group_members
                     if pid != str(wrapper.pid) and os.path.exists(f"/proc/{pid}")
                     and "Z" not in open(f"/proc/{pid}/stat").read().split()[2]]
            if not alive:
                break
            time.sleep(0.2)
        assert not alive
    finally:
        if wrapper.poll() is None:
            os.killpg(wrapper.pid, signal.SIGKILL)
            wrapper.wait()


def test_an_existing_experiment_gets_the_training_kind_unless_it_has_one(tmp_path):
    from mlflow import MlflowClient

    from pesnet.tracking.store import get_or_create_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    bare = client.create_experiment("bare")
    chosen = client.create_experiment("chosen", tags={"mlflow.experimentKind": "genai_development"})
    assert get_or_create_experiment(client, uri, "bare") == bare
    assert get_or_create_experiment(client, uri, "chosen") == chosen
    assert client.get_experiment(bare).tags["mlflow.experimentKind"] == "custom_model_development"
    assert client.get_experiment(chosen).tags["mlflow.experimentKind"] == "genai_development"
    new = get_or_create_experiment(client, uri, "new")
    assert client.get_experiment(new).tags["mlflow.experimentKind"] == "custom_model_development"
