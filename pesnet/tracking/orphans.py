"""Runs whose process is gone: every run pesnet creates names its owner process, and runs that
a dead process left RUNNING are closed as KILLED by the next pipeline run.

A process killed by SIGKILL (or the out-of-memory killer, or a node crash) cannot close its
MLflow runs; they would stay RUNNING forever. Each run is therefore tagged with
``pesnet.host`` (the host name), ``pesnet.pid`` and, on Linux, ``pesnet.pid_start`` (the
process's start time in clock ticks since boot, field 22 of ``/proc/<pid>/stat``), so that a
pid reused by a later process is not mistaken for the owner, and ``pesnet.pid_namespace``, so
that a container sharing the host's name but not its pids is not judged from outside. :func:`close_orphans` closes the
RUNNING runs of an experiment whose owner ran on this host and is gone, and any RUNNING run
nested under one of them (a run created without owner tags). Runs owned by another host are
left alone: from here we cannot know whether their process still runs.
"""

from __future__ import annotations

import os
import socket

HOST_TAG = "pesnet.host"
PID_TAG = "pesnet.pid"
PID_START_TAG = "pesnet.pid_start"
PID_NAMESPACE_TAG = "pesnet.pid_namespace"
_PARENT_TAG = "mlflow.parentRunId"  # mlflow.utils.mlflow_tags.MLFLOW_PARENT_RUN_ID


def process_start(pid: int) -> str | None:
    """Start time of process ``pid`` (clock ticks since boot) from ``/proc``, or None where
    there is no ``/proc`` or no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode(errors="replace")
    except OSError:
        return None
    # field 2, the command, is in parentheses and may itself hold spaces and parentheses
    fields = text[text.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None  # field 22 of the whole line


def pid_namespace() -> str | None:
    """This process's pid namespace (``pid:[4026531836]``) on Linux, else None."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def owner_tags() -> dict[str, str]:
    """Tags naming this process as a run's owner: host, pid and (on Linux) its start time."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    start, namespace = process_start(os.getpid()), pid_namespace()
    if start is not None:
        tags[PID_START_TAG] = start
    if namespace is not None:
        tags[PID_NAMESPACE_TAG] = namespace
    return tags


def owner_is_alive(tags: dict) -> bool:
    """False only if the run's owner ran on this host, in this pid namespace, and that process
    has ended (or its pid now belongs to a process that started later). True when in doubt."""
    if tags.get(HOST_TAG) != socket.gethostname():
        return True
    namespace = tags.get(PID_NAMESPACE_TAG)
    if namespace is not None and namespace != pid_namespace():
        return True
    try:
        pid = int(tags[PID_TAG])
    except (KeyError, ValueError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's process
    recorded, now = tags.get(PID_START_TAG), process_start(pid)
    return recorded is None or now is None or recorded == now


def _running_runs(client, experiment_id: str) -> list:
    from mlflow.entities import ViewType

    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'",
                                  run_view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                                  page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def close_orphans(client, experiment_id: str) -> list[str]:
    """Close as KILLED (end time: now) the RUNNING runs of ``experiment_id`` whose owner
    process on this host is gone, and the RUNNING runs nested under them that name no owner,
    each with a ``pesnet.error`` tag saying what happened. Returns the closed run ids."""
    running = _running_runs(client, experiment_id)
    reasons = {}
    for run in running:
        tags = run.data.tags
        if PID_TAG in tags and not owner_is_alive(tags):
            reasons[run.info.run_id] = (f"process {tags[PID_TAG]} on {tags[HOST_TAG]} ended "
                                        f"without closing this run")
    grew = True
    while grew:  # runs nested under a closed run, made without owner tags
        grew = False
        for run in running:
            tags, run_id = run.data.tags, run.info.run_id
            parent = tags.get(_PARENT_TAG)
            if run_id not in reasons and PID_TAG not in tags and parent in reasons:
                reasons[run_id] = reasons[parent]
                grew = True
    for run_id, reason in reasons.items():
        client.set_tag(run_id, "pesnet.error", reason + " (closed by a later pesnet run)")
        client.set_terminated(run_id, "KILLED")
    return list(reasons)
