"""A tiny pipeline for the pipeline and tracking tests: ~40 Cu configurations, 7 features,
two members of one hidden layer of 8, three epochs (a few seconds end to end)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

TINY_SPEC = """\
name = "{name}"
description = "tiny test pipeline"

[dataset]
files = ["{data}"]

[split]
fractions = {fractions}

[descriptor]
cutoff = 4.5
g2 = [[0.5, 2.5], [1.0, 3.0], [1.0, 3.8], [0.3, 0.0]]
g4 = [[0.05, 1.0, 1.0], [0.05, 1.0, -1.0], [0.05, 4.0, 1.0]]

[model]
hidden = [8]

[ensemble]
members = 2
seed = {seed}

[train]
epochs = {epochs}
batch_size = 8

[evaluate]
split = "{split}"
"""


def write_spec(path: Path, data: Path, name: str = "tiny", epochs: int = 3, seed: int = 0,
               split: str = "test", fractions=(0.7, 0.15, 0.15), extra: str = "") -> Path:
    """A tiny pipeline spec at ``path`` reading ``data`` (an extxyz file)."""
    text = TINY_SPEC.format(name=name, data=data, epochs=epochs, seed=seed, split=split,
                            fractions=list(fractions))
    path.write_text(text + extra)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (closed again before returning)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pesnet_command(*args) -> list[str]:
    """The pesnet CLI in a subprocess, with this interpreter."""
    return [sys.executable, "-m", "pesnet.cli.main", *map(str, args)]


def subprocess_env(**overrides) -> dict:
    """This environment with the venv's bin first on PATH and MLflow telemetry off."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` exits."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    """Terminate a server subprocess (its whole process group) and reap it."""
    import signal

    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
