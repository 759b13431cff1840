"""Two `pesnet run` processes against one fresh SQLite store at the same time: both finish,
both runs are complete, the schema is created once and both model versions are registered."""

from __future__ import annotations

import subprocess

import pytest

from tests.pipeline_helpers import pesnet_command, subprocess_env, write_spec


def test_two_concurrent_runs_share_a_fresh_store(cu_features, tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    env = subprocess_env(MLFLOW_TRACKING_URI=uri)
    processes = []
    for k in range(2):
        spec = write_spec(tmp_path / f"tiny{k}.toml", cu_features / "cu.extxyz",
                          name="tiny-concurrent", seed=k, epochs=4)
        log = open(tmp_path / f"run{k}.log", "w")
        processes.append((subprocess.Popen(
            pesnet_command("run", spec, "--run-dir", tmp_path / f"run{k}", "--quiet"),
            env=env, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        for process, _ in processes:
            process.wait(timeout=300)
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    logs = [(tmp_path / f"run{k}.log").read_text() for k in range(2)]
    assert [p.returncode for p, _ in processes] == [0, 0], logs

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny-concurrent")
    parents = client.search_runs([experiment.experiment_id],
                                 filter_string="tags.`pesnet.role` = 'pipeline'")
    assert len(parents) == 2
    for parent in parents:
        assert parent.info.status == "FINISHED"
        assert "test_force_mae" in parent.data.metrics
        assert len(client.get_metric_history(parent.info.run_id, "val_force_mae")) == 4
        children = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
        assert "model.h5" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    versions = client.search_model_versions("name='tiny-concurrent'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert {v.run_id for v in versions} == {p.info.run_id for p in parents}


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
