"""The two MLflow servers pesnet starts, as subprocesses: the model server and the UI.

Both are subprocesses of pesnet's interpreter with ``MLFLOW_TRACKING_URI`` set to the store and
that interpreter's ``bin`` directory first on ``PATH`` (``mlflow ui`` starts ``uvicorn`` by
name). The UI is ``python -m mlflow ui``. The model server is what ``mlflow models serve
--env-manager local`` runs (MLflow's scoring server under uvicorn) with a request-size limit
in front of it (:mod:`.scoring`, :mod:`.request_limits`): the model is downloaded once into a
temporary directory (:func:`pesnet.tracking.model_loading.download_model`) and uvicorn loads ``pesnet.tracking.scoring:create_app``. Both bind
127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path

from pesnet.errors import InputError


def server_env(uri: str) -> dict:
    """Environment for an MLflow server subprocess (see the module doc)."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["MLFLOW_TRACKING_URI"] = uri
    return env


def check_port_free(host: str, port: int) -> None:
    """InputError if nothing can listen on ``host:port``."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise InputError(f"cannot listen on {host}:{port} ({error.strerror or error}); "
                             f"choose another --port") from None


def serve_command(host: str = "127.0.0.1", port: int = 5001, workers: int = 1) -> list[str]:
    """The model server (:func:`pesnet.tracking.scoring.create_app` under uvicorn) in pesnet's
    own environment; the model and limits come from :func:`serve_env`."""
    return [sys.executable, "-m", "uvicorn", "--factory", "pesnet.tracking.scoring:create_app",
            "--host", host, "--port", str(port), "--workers", str(workers)]


def serve_env(uri: str, model_dir, max_atoms: int, max_request_mb: float,
              timeout: int) -> dict:
    """Environment of the model server: :func:`server_env` plus the model directory, the atom
    and body limits of one request (atoms, MiB) and its timeout (s)."""
    from pesnet.tracking.request_limits import MAX_ATOMS_ENV, MAX_REQUEST_MB_ENV, TIMEOUT_ENV
    from pesnet.tracking.scoring import MODEL_ENV

    env = server_env(uri)
    env.update({MODEL_ENV: str(model_dir), MAX_ATOMS_ENV: str(max_atoms),
                MAX_REQUEST_MB_ENV: repr(float(max_request_mb)), TIMEOUT_ENV: str(timeout)})
    return env


def ui_command(uri: str, host: str = "127.0.0.1", port: int = 5000,
               workers: int = 1) -> list[str]:
    """``mlflow ui`` on the store ``uri`` (one worker: four cost ~1.3 GB)."""
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
            "--port", str(port), "--workers", str(workers)]


def announce_when_ready(url: str, process, stream=None, every: float = 0.25) -> None:
    """In a daemon thread: print ``starting…`` now and ``ready after N s: url`` once ``url``
    answers (MLflow's servers take seconds to import and migrate; a silent wait looks hung),
    or nothing more if ``process`` exits first."""
    import threading
    import time
    import urllib.error
    import urllib.request

    stream = stream or sys.stdout
    started = time.monotonic()
    print("starting… (the first start on a new store also creates its tables)", file=stream,
          flush=True)

    def poll():
        while process.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    print(f"ready after {time.monotonic() - started:.1f} s", file=stream,
                          flush=True)
                    return
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(every)

    threading.Thread(target=poll, name="pesnet-ready", daemon=True).start()


def run_foreground(command: list[str], env: dict, grace: float = 15.0,
                   ready_url: str | None = None) -> int:
    """Run a server until it exits, or until pesnet is interrupted (Ctrl-C) or terminated
    (SIGTERM); then stop the server's whole process group (MLflow starts uvicorn as a child
    of its own), politely first. With ``ready_url``, say when the server answers there
    (:func:`announce_when_ready`). Returns the server's exit code (130 after Ctrl-C)."""
    import signal
    import subprocess

    process = subprocess.Popen(command, env=env, start_new_session=True)
    if ready_url is not None:
        announce_when_ready(ready_url, process)

    def _terminated(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return process.wait()
    except KeyboardInterrupt:
        _stop_group(process, grace)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:
            _stop_group(process, grace)


def _stop_group(process, grace: float) -> None:
    import signal
    import subprocess

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            # the leader exited; make sure no worker of its group is left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue
