"""pesnet sweep: the grid, one fit per point on the cluster (each the model one process
fits), and one MLflow child run per point under a sweep run."""

from __future__ import annotations

import json

import pytest

from pesnet.cli.main import main
from pesnet.errors import InputError
from pesnet.pipeline.sweep import grid_points, parse_grid
from pesnet.potential.io import load_model
from pesnet.training.settings import TrainSettings
from pesnet.training.trainer import train_potential
from tests.distributed_helpers import cluster  # noqa: F401  (fixture)
from tests.pipeline_helpers import write_spec
from tests.test_training_groups import assert_same_potential


def test_grid_parsing():
    grid = parse_grid(["train.learning_rate=1e-3,5e-3", "model.hidden=[16],[32, 32]",
                       "model.activation=tanh,\"softplus\"", "ensemble.bootstrap=true"])
    assert grid == {"train.learning_rate": [1e-3, 5e-3], "model.hidden": [[16], [32, 32]],
                    "model.activation": ["tanh", "softplus"], "ensemble.bootstrap": [True]}
    points = grid_points(grid)
    assert len(points) == 8 and points[1] == {"train.learning_rate": 1e-3, "model.hidden": [16],
                                              "model.activation": "softplus",
                                              "ensemble.bootstrap": True}
    with pytest.raises(InputError, match="only \\[model\\], \\[ensemble\\], \\[train\\] keys"):
        parse_grid(["descriptor.cutoff=4,5"])
    with pytest.raises(InputError, match="expected TABLE.KEY=V1,V2"):
        parse_grid(["epochs=3"])
    with pytest.raises(InputError, match="nothing to sweep"):
        parse_grid([])


def test_sweep_on_the_cluster_logs_a_child_run_per_point(cluster, cu_features,  # noqa: F811
                                                         tmp_path, capsys, monkeypatch):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    spec = write_spec(tmp_path / "tiny.toml", cu_features / "cu.extxyz", name="tiny-sweep",
                      epochs=2)
    bad = main(["sweep", str(spec), "--grid", "train.learning_rat=1,2", "--scheduler",
                cluster.address])
    assert bad == 1 and "train.learning_rat: unknown key" in capsys.readouterr().err
    run_dir = tmp_path / "sweep"
    code = main(["sweep", str(spec), "--grid", "train.learning_rate=1e-3,1e-2", "--scheduler",
                 cluster.address, "--run-dir", str(run_dir), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "best: point-00" in out and "2 points on scheduler tcp://" in out
    table = json.loads((run_dir / "sweep.json").read_text())
    assert [p["point"] for p in table["points"]] == [{"train.learning_rate": 1e-3},
                                                     {"train.learning_rate": 1e-2}]
    # each point is the model one process fits with the point's settings
    settings = TrainSettings(hidden=(8,), n_members=2, epochs=2, batch_size=8,
                             learning_rate=1e-2)
    alone = train_potential(run_dir / "features.h5", settings).potential
    assert_same_potential(load_model(run_dir / "point-001" / "model.h5"), alone)
    # MLflow: one sweep run, a child per point with its values, curves, metrics and model
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny-sweep")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("pesnet.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("pesnet.role") == "sweep-point"]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["pesnet.sweep.best"].startswith("point-00")
    assert "best_test_energy_mae_per_atom" in parent.data.metrics
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        assert child.data.params["train.learning_rate"] in ("0.001", "0.01")
        assert "test_force_mae" in child.data.metrics
        assert len(client.get_metric_history(child.info.run_id, "val_force_rmse")) == 2
        assert "model.h5" in {a.path for a in client.list_artifacts(child.info.run_id)}
