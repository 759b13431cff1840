"""A tiny pipeline end to end against a temporary MLflow store, read back through the client:
parent and member runs, params, metric histories, the dataset input, artefacts, the pyfunc
model and its registered version; a rerun that only logs; a failure that marks the run FAILED;
and an unreachable tracking server."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

from pesnet.cli.main import main
from tests.pipeline_helpers import free_port, write_spec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A temporary SQLite tracking store (as MLFLOW_TRACKING_URI) for this module's tests."""
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        yield uri


@pytest.fixture(scope="module")
def tracked(store, cu_features, tmp_path_factory):
    """The tiny pipeline run once with tracking: (client, parent run, run dir, stdout)."""
    import contextlib
    import io

    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("tracked")
    spec = write_spec(root / "tiny.toml", cu_features / "cu.extxyz", name="tiny-tracked")
    run_dir = root / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(spec), "--run-dir", str(run_dir), "--quiet"])
    assert code == 0, out.getvalue()
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("tiny-tracked")
    parents = client.search_runs([experiment.experiment_id],
                                 filter_string="tags.`pesnet.role` = 'pipeline'")
    assert len(parents) == 1
    return client, parents[0], run_dir, out.getvalue(), spec


def test_parent_run_has_spec_params_tags_and_final_metrics(tracked, cu_features):
    client, parent, run_dir, out, _ = tracked
    assert parent.info.status == "FINISHED"
    params, tags, metrics = parent.data.params, parent.data.tags, parent.data.metrics
    assert params["train.epochs"] == "3" and params["ensemble.members"] == "2"
    assert params["descriptor.cutoff"] == "4.5" and params["model.hidden"] == "[8]"
    assert tags["pesnet.version"] and tags["pesnet.dataset_sha256"]
    from pesnet.fileio import sha256_file

    assert tags["pesnet.dataset_sha256"] == sha256_file(run_dir / "dataset.h5")
    assert tags["pesnet.registered_model"] == "tiny-tracked/1"
    local = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    for key in ("energy_mae_per_atom", "force_mae", "force_spearman", "force_nll",
                "force_coverage_1sigma", "force_miscalibration_area", "energy_coverage_1sigma"):
        assert metrics[f"test_{key}"] == pytest.approx(local[key]), key
    assert "MLflow: run " + parent.info.run_id in out and "models:/tiny-tracked/1" in out


def test_dashboard_reads_like_the_terminal(tracked):
    """The experiment opens on training runs, the run is named for what it is, and the
    headline test metrics are also in meV under names that carry the unit."""
    import hashlib
    import re

    client, parent, run_dir, _, spec = tracked
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    digest = hashlib.sha256(spec.read_text().encode()).hexdigest()[:7]
    assert re.fullmatch(rf"tiny-tracked-{digest}-\d{{8}}-\d{{6}}", parent.info.run_name)
    metrics = parent.data.metrics
    local = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert metrics["test_force_mae_meV_per_A"] == pytest.approx(1e3 * local["force_mae"])
    assert metrics["test_energy_mae_meV_per_atom"] == pytest.approx(
        1e3 * local["energy_mae_per_atom"])
    assert metrics["test_force_rmse_meV_per_A"] == pytest.approx(1e3 * local["force_rmse"])
    # per-group rows: in metrics.json, in MLflow (meV), and a parity plot by group
    groups = json.loads((run_dir / "metrics.json").read_text())["groups"]
    assert len(groups) > 1 and sum(g["n_configs"] for g in groups.values()) == local["n_configs"]
    for name, values in groups.items():
        assert metrics[f"test_group.{name}.force_mae_meV_per_A"] == pytest.approx(
            1e3 * values["force_mae"])
        assert metrics[f"test_group.{name}.n_configs"] == values["n_configs"]
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/parity_groups.png" in plots


def test_per_epoch_metric_histories(tracked):
    client, parent, run_dir, _, _ = tracked
    history = json.loads((run_dir / "history.json").read_text())
    for key in ("train_energy_rmse", "train_force_rmse", "val_energy_rmse", "val_force_rmse",
                "val_energy_mae", "val_force_mae", "learning_rate"):
        values = client.get_metric_history(parent.info.run_id, key)
        assert [m.step for m in sorted(values, key=lambda m: m.step)] == [0, 1, 2], key
    mae = sorted(client.get_metric_history(parent.info.run_id, "val_force_mae"),
                 key=lambda m: m.step)
    assert [m.value for m in mae] == pytest.approx([h["val_force_mae_ensemble"] for h in history])


def test_one_nested_run_per_member_with_seed_and_curves(tracked):
    client, parent, run_dir, _, _ = tracked
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.info.run_name for c in children) == ["member-0", "member-1"]
    history = json.loads((run_dir / "history.json").read_text())
    for child in children:
        m = int(child.data.params["member"])
        assert child.info.status == "FINISHED"
        assert child.data.params["seed"] == "0"
        assert f"spawn_key=(0, {m}, 1)" in child.data.params["bootstrap_stream"]
        assert any(k.startswith("element_seed.") for k in child.data.params)
        curve = sorted(client.get_metric_history(child.info.run_id, "val_force_rmse"),
                       key=lambda x: x.step)
        assert len(curve) >= 1
        expected = [h["val_force_rmse"][m] for h in history][:len(curve)]
        assert [x.value for x in curve] == pytest.approx(expected)
        assert "best_epoch" in child.data.metrics


def test_dataset_input_and_artefacts(tracked):
    client, parent, run_dir, _, _ = tracked
    inputs = parent.inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.digest == parent.data.tags["pesnet.dataset_sha256"][:32]
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"spec.toml", "model.h5", "metrics.json", "history.json", "plots"} <= names
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/parity_energy.png", "plots/parity_forces.png", "plots/learning_curves.png",
            "plots/calibration.png", "plots/error_vs_uncertainty.png"} <= plots
    local = client.download_artifacts(parent.info.run_id, "plots/calibration.png")
    with open(local, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_registered_pyfunc_predicts_like_the_model_file(tracked, cu_features, store):
    import ase.io
    import mlflow
    import pandas as pd

    from pesnet.potential.io import load_model
    from pesnet.tracking.store import using_tracking_uri

    client, parent, run_dir, _, _ = tracked
    version = client.get_model_version("tiny-tracked", "1")
    assert version.run_id == parent.info.run_id
    assert version.tags["pesnet.model_sha256"] == parent.data.tags["pesnet.model_sha256"]
    with using_tracking_uri(store):
        model = mlflow.pyfunc.load_model("models:/tiny-tracked/1")
    # no input schema: MLflow's would refuse integer arrays and drop misspelt columns
    # (pesnet.tracking.serving checks every column); the answer's fields are declared
    assert model.metadata.get_input_schema() is None
    assert "energy_std" in model.metadata.get_output_schema().input_names()
    frames = ase.io.read(cu_features / "cu.extxyz", ":2")
    import io

    text = io.StringIO()
    ase.io.write(text, frames, format="extxyz")
    answer = model.predict(pd.DataFrame({"extxyz": [text.getvalue()]}))
    assert [a["frame"] for a in answer] == [0, 1]
    local = load_model(run_dir / "model.h5").predict(frames[1])
    assert answer[1]["energy"] == pytest.approx(float(local.energy[0]))
    assert np.allclose(answer[1]["forces_std"], local.forces_std)
    assert len(answer[1]["stress"]) == 6


def test_rerun_after_eval_change_logs_a_complete_new_run(tracked, store, capsys):
    client, first, run_dir, _, spec = tracked
    spec.write_text(spec.read_text().replace('split = "test"', 'split = "validation"'))
    assert main(["run", str(spec), "--run-dir", str(run_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "[3/6] train ........ up to date" in out and "[4/6] evaluate" in out
    runs = client.search_runs([first.info.experiment_id],
                              filter_string="tags.`pesnet.role` = 'pipeline'",
                              order_by=["attributes.start_time DESC"])
    newest = runs[0]
    assert newest.info.run_id != first.info.run_id and newest.info.status == "FINISHED"
    assert "validation_force_mae" in newest.data.metrics
    # curves replayed from history.json, members included
    assert len(client.get_metric_history(newest.info.run_id, "val_force_mae")) == 3
    children = client.search_runs(
        [first.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{newest.info.run_id}'")
    assert len(children) == 2
    # the same weights: the registered version is reused, not duplicated
    assert newest.data.tags["pesnet.registered_model"] == "tiny-tracked/1"
    assert "already held by version 1" in out
    # `pesnet runs` lists both
    assert main(["runs", "tiny-tracked"]) == 0
    listing = capsys.readouterr().out
    assert newest.info.run_id[:8] in listing and first.info.run_id[:8] in listing
    # `pesnet compare` shows what differs: by id prefix and by run name
    assert main(["compare", first.info.run_id[:8], newest.info.run_name]) == 0
    text = capsys.readouterr().out
    changed = [line.split() for line in text.split("params that differ")[1]
               .split("metrics")[0].strip().splitlines()]
    assert changed == [["evaluate.split", "test", "validation"]]
    row = next(line for line in text.splitlines() if line.startswith("test_force_mae "))
    assert row.split()[1] == format(first.data.metrics["test_force_mae"], ".6g")
    assert row.split()[2] == "—"          # the rerun scored the validation split
    assert f"%5B%22{first.info.run_id}%22%2C%22{newest.info.run_id}%22%5D" in text
    assert "#/compare-runs?runs=" in text
    assert main(["compare", first.info.run_id[:8], "no-such-run"]) == 1
    assert "no run 'no-such-run'" in capsys.readouterr().err


def test_failure_mid_pipeline_marks_run_failed_and_keeps_artefacts(store, cu_features, tmp_path,
                                                                   capsys):
    from mlflow import MlflowClient

    spec = write_spec(tmp_path / "bad.toml", cu_features / "cu.extxyz", name="tiny-failing",
                      fractions=(0.8, 0.2, 0.0))
    run_dir = tmp_path / "run"
    code = main(["run", str(spec), "--run-dir", str(run_dir), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert len(captured.err.strip().splitlines()) == 1 and "evaluate failed" in captured.err
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("tiny-failing")
    parent = client.search_runs([experiment.experiment_id],
                                filter_string="tags.`pesnet.role` = 'pipeline'")[0]
    assert parent.info.status == "FAILED"
    assert parent.data.tags["pesnet.error"].startswith("evaluate failed")
    assert parent.data.params["train.epochs"] == "3"
    # what came before the failure is kept: learning curves, member runs, local files
    assert len(client.get_metric_history(parent.info.run_id, "val_force_rmse")) == 3
    children = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert (run_dir / "model.h5").is_file() and (run_dir / "features.h5").is_file()


def test_unreachable_server_still_trains_and_says_tracking_failed(cu_features, tmp_path,
                                                                  monkeypatch, capsys):
    port = free_port()  # nothing listens here
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    spec = write_spec(tmp_path / "tiny.toml", cu_features / "cu.extxyz", name="tiny-offline")
    run_dir = tmp_path / "run"
    started = time.monotonic()
    code = main(["run", str(spec), "--run-dir", str(run_dir), "--quiet"])
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    assert code == 1
    assert (run_dir / "model.h5").is_file() and (run_dir / "metrics.json").is_file()
    assert "tracking failed" in captured.err and "cannot reach" in captured.err
    assert f"127.0.0.1:{port}" in captured.err
    assert captured.err.strip().splitlines()[-1].startswith("pesnet run: error: tracking failed")
    assert "FAILED (tracking)" in captured.out and "test metrics" in captured.out
    assert elapsed < 60


def test_served_model_answers_on_loopback(tracked, store, cu_features):
    """`pesnet serve NAME` (mlflow models serve --env-manager local) on 127.0.0.1: energies,
    forces and their uncertainties for extxyz text and for the JSON structure form."""
    import io
    import subprocess
    import urllib.error
    import urllib.request

    import ase.io

    from pesnet.potential.io import load_model
    from tests.pipeline_helpers import pesnet_command, stop, subprocess_env, wait_for_http

    _, _, run_dir, _, _ = tracked
    port = free_port()
    log = run_dir.parent / "serve.log"
    with open(log, "w") as sink:
        server = subprocess.Popen(pesnet_command("serve", "tiny-tracked", "--port", port),
                                  env=subprocess_env(MLFLOW_TRACKING_URI=store), stdout=sink,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def post(payload):
        request = urllib.request.Request(f"{url}/invocations", json.dumps(payload).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())

    try:
        wait_for_http(f"{url}/health", server, timeout=120)
        frames = ase.io.read(cu_features / "cu.extxyz", ":2")
        text = io.StringIO()
        ase.io.write(text, frames, format="extxyz")
        answer = post({"dataframe_records": [{"extxyz": text.getvalue()}]})["predictions"]
        local = load_model(run_dir / "model.h5").predict(frames[0])
        assert len(answer) == 2
        assert answer[0]["energy"] == pytest.approx(float(local.energy[0]))
        assert answer[0]["energy_std"] == pytest.approx(float(local.energy_std[0]))
        assert np.allclose(answer[0]["forces"], local.forces)
        assert np.allclose(answer[0]["forces_std"], local.forces_std)
        assert len(answer[0]["stress"]) == 6

        atoms = frames[1]
        record = {"numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
                  "cell": atoms.cell[:].tolist(), "pbc": atoms.pbc.tolist()}
        answer = post({"dataframe_split": {"columns": list(record),
                                           "data": [list(record.values())]}})
        assert answer["predictions"][0]["energy"] == pytest.approx(
            load_model(run_dir / "model.h5").predict(atoms).energy[0])

        with pytest.raises(urllib.error.HTTPError) as bad:
            post({"dataframe_records": [{"extxyz": "this is not a structure"}]})
        assert bad.value.code == 400
        assert "extxyz" in json.loads(bad.value.read())["message"]
    finally:
        stop(server)
    assert "serving models:/tiny-tracked/1" in log.read_text()


def test_dashboard_serves_the_store_on_loopback(tracked, store):
    """`pesnet ui` starts MLflow's UI (one worker, 127.0.0.1) on the same store."""
    import subprocess
    import urllib.request

    from tests.pipeline_helpers import pesnet_command, stop, subprocess_env, wait_for_http

    _, parent, run_dir, _, _ = tracked
    port = free_port()
    with open(run_dir.parent / "ui.log", "w") as sink:
        server = subprocess.Popen(pesnet_command("ui", "--port", port),
                                  env=subprocess_env(MLFLOW_TRACKING_URI=store), stdout=sink,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", server, timeout=120)
        request = urllib.request.Request(
            f"{url}/ajax-api/2.0/mlflow/runs/get?run_id={parent.info.run_id}")
        with urllib.request.urlopen(request, timeout=30) as answer:
            run = json.loads(answer.read())["run"]
        assert run["info"]["run_id"] == parent.info.run_id
        printed = (run_dir.parent / "ui.log").read_text()
        assert f"{url}/#/experiments?workflowType=machine_learning" in printed
        assert "starting…" in printed
        deadline = time.monotonic() + 10
        while "ready after" not in printed and time.monotonic() < deadline:
            time.sleep(0.2)
            printed = (run_dir.parent / "ui.log").read_text()
        assert re.search(r"ready after \d+\.\d s", printed), printed
        _opens_on_training_runs(url, parent, run_dir.parent)
    finally:
        stop(server)


def _browser():
    import shutil

    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(b)), None)


def _opens_on_training_runs(url, parent, scratch):
    """In a real (headless) browser, the address pesnet prints for an experiment shows the
    "Model training" mode with this run in its table (skipped where there is no browser)."""
    import subprocess

    from pesnet.tracking.dashboard import dashboard_url

    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium on this machine: the dashboard was checked over HTTP only")
    page = dashboard_url(url, parent.info.experiment_id)
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={scratch / 'chromium'}",
         "--virtual-time-budget=20000", "--dump-dom", page],
        capture_output=True, text=True, timeout=120).stdout
    assert "Model training" in dom and parent.info.run_name in dom, dom[-2000:]
