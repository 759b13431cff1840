"""MLflow runs whose process ends: SIGTERM closes them as KILLED (exit code 143), and runs a
dead process left RUNNING on this host are closed by the next pipeline run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from pesnet.cli.main import main
from tests.pipeline_helpers import pesnet_command, subprocess_env, write_spec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _long_spec(path, data, name):
    """The tiny spec with enough epochs (and patience) to be still training when signalled."""
    spec = write_spec(path, data, name=name, epochs=5000)
    spec.write_text(spec.read_text().replace("batch_size = 8", "batch_size = 8\npatience = 5000"))
    return spec


def _wait_for_members(client, experiment_name, process, timeout=60.0):
    """(parent run, member runs) once the parent and both members are RUNNING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"pesnet run exited early with code {process.returncode}")
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is not None:
            runs = client.search_runs([experiment.experiment_id])
            parents = [r for r in runs if r.data.tags.get("pesnet.role") == "pipeline"]
            members = [r for r in runs if r.data.tags.get("pesnet.role") == "member"]
            if parents and len(members) == 2 and all(
                    r.info.status == "RUNNING" for r in parents + members):
                return parents[0], members
        time.sleep(0.3)
    raise AssertionError(f"no training run with two members within {timeout} s")


def test_sigterm_marks_the_parent_and_member_runs_killed(cu_features, tmp_path):
    from pesnet.tracking import store

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    client = store.client(uri)  # creates the schema before the subprocess uses the store
    spec = _long_spec(tmp_path / "tiny.toml", cu_features / "cu.extxyz", "tiny-sigterm")
    with open(tmp_path / "err.log", "w") as sink:
        process = subprocess.Popen(
            pesnet_command("run", spec, "--run-dir", tmp_path / "run", "--quiet"),
            env=subprocess_env(MLFLOW_TRACKING_URI=uri), stdout=subprocess.DEVNULL, stderr=sink)
    try:
        parent, members = _wait_for_members(client, "tiny-sigterm", process)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    err = (tmp_path / "err.log").read_text()
    assert code == 143, err
    assert err.strip().splitlines() == ["pesnet run: terminated (SIGTERM)"], err
    after = client.get_run(parent.info.run_id)
    assert after.info.status == "KILLED" and after.info.end_time is not None
    assert "SIGTERM" in after.data.tags["pesnet.error"]
    for member in members:
        assert client.get_run(member.info.run_id).info.status == "KILLED"


def _dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_next_run_closes_runs_a_dead_process_left_running(cu_features, tmp_path, monkeypatch,
                                                          capsys):
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    from pesnet.tracking import store

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = store.client(uri)
    experiment_id = store.get_or_create_experiment(client, uri, "tiny-orphans")
    host, dead, me = socket.gethostname(), str(_dead_pid()), str(os.getpid())

    def running(**tags):
        return client.create_run(experiment_id, tags=tags).info.run_id

    owner = {"pesnet.pid": dead, "pesnet.host": host}
    orphan = running(**{"pesnet.role": "pipeline", **owner})
    member = running(**{"pesnet.role": "member", MLFLOW_PARENT_RUN_ID: orphan, **owner})
    untagged_child = running(**{MLFLOW_PARENT_RUN_ID: orphan})  # made without owner tags
    alive = running(**{"pesnet.role": "pipeline", "pesnet.pid": me, "pesnet.host": host})
    elsewhere = running(**{"pesnet.role": "pipeline", "pesnet.pid": dead,
                           "pesnet.host": "another-host.example"})
    unknown = running(**{"pesnet.role": "pipeline"})  # an older pesnet: no owner recorded
    other_namespace = running(**{"pesnet.role": "pipeline", **owner,  # e.g. a container
                                 "pesnet.pid_namespace": "pid:[1]"})
    closed = [orphan, member, untagged_child]
    if os.path.isfile("/proc/self/stat"):  # this pid, but a process that started earlier
        closed.append(running(**{"pesnet.role": "pipeline", "pesnet.pid": me,
                                 "pesnet.host": host, "pesnet.pid_start": "1"}))

    spec = write_spec(tmp_path / "tiny.toml", cu_features / "cu.extxyz", name="tiny-orphans")
    capsys.readouterr()  # MLflow's schema-creation lines
    assert main(["run", str(spec), "--run-dir", str(tmp_path / "run"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"{len(closed)} MLflow run(s)" in err and "KILLED" in err
    for run_id in closed:
        run = client.get_run(run_id)
        assert run.info.status == "KILLED" and run.info.end_time is not None, run_id
        assert f" on {host} ended without closing" in run.data.tags["pesnet.error"]
    assert f"process {dead} on {host}" in client.get_run(orphan).data.tags["pesnet.error"]
    for run_id in (alive, elsewhere, unknown, other_namespace):
        assert client.get_run(run_id).info.status == "RUNNING", run_id

    # the new runs name their owner process
    fresh = [r for r in client.search_runs([experiment_id]) if r.info.status == "FINISHED"]
    assert len(fresh) == 3  # the parent and two members
    for run in fresh:
        assert run.data.tags["pesnet.pid"] == me and run.data.tags["pesnet.host"] == host
