"""Addresses in MLflow's dashboard that open on what a pesnet user wants: training runs.

MLflow 3's dashboard has two modes, "GenAI" (traces, token usage, an assistant) and "Model
training" (runs, metrics, models). Which one shows is the page's ``workflowType`` query
parameter, else the browser's last choice, and on a fresh browser GenAI (measured with
MLflow 3.17: the experiment's ``mlflow.experimentKind`` tag, which pesnet sets too, does not
change it). So every dashboard address pesnet prints carries
``workflowType=machine_learning``; once the user clicks "Model training" the browser keeps it.
"""

from __future__ import annotations

#: The query that selects the dashboard's "Model training" mode.
MODE = "workflowType=machine_learning"


def dashboard_url(base: str = "http://127.0.0.1:5000", experiment_id: str | None = None,
                  run_id: str | None = None) -> str:
    """The experiments list, one experiment's runs, or one run, in training mode."""
    base = base.rstrip("/")
    if experiment_id is None:
        return f"{base}/#/experiments?{MODE}"
    if run_id is None:
        return f"{base}/#/experiments/{experiment_id}/runs?{MODE}"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{MODE}"
