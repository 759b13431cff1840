"""Active learning on Cu EMT: an ensemble fitted on 300/600 K frames runs MD at 1200 K, picks
the frames it is unsure about, has EMT label them, retrains — and its error on held-out
1200 K configurations goes down. One round, tiny networks, MLflow in a temporary store."""

from __future__ import annotations

import json
import re
import subprocess

import ase.io
import numpy as np
import pytest

from pesnet.data import Dataset
from pesnet.data.calculators import make_calculator
from pesnet.data.recipes import run_recipe
from pesnet.errors import InputError
from pesnet.pipeline.active_learning import run_active_learning
from pesnet.pipeline.exploration import Candidate, select
from pesnet.pipeline.spec import load_spec
from tests.pipeline_helpers import pesnet_command, subprocess_env, write_spec

AL_TABLE = """
[active_learning]
rounds = 1
calculator = "emt"
temperature_K = 1200
md_steps = 200
quantile = 0.9
min_spacing = 10
max_new = 20
holdout = ["{holdout}"]
"""


def _cu_spec(tmp, low, high, name="al"):
    spec = write_spec(tmp / f"{name}.toml", low, name=name, epochs=150,
                      extra=AL_TABLE.format(holdout=high))
    text = spec.read_text().replace("members = 2", "members = 4") \
        .replace("hidden = [8]", "hidden = [16]") \
        .replace("batch_size = 8", "batch_size = 8\ncalibration = \"nll\"")
    spec.write_text(text)
    return spec


@pytest.fixture(scope="module")
def cu_al(tmp_path_factory):
    """Cu EMT: bulk MD at 300/600 K to fit on, 1200 K held out; one round of active learning."""
    tmp = tmp_path_factory.mktemp("al")
    low, high = [], []
    for atoms in run_recipe("cu-fcc", make_calculator("emt"), seed=3, scale=0.2):
        kind = atoms.info["config_type"]
        if kind in ("bulk_md_300K", "bulk_md_600K"):
            low.append(atoms)
        elif kind == "bulk_md_1200K":
            high.append(atoms)
        elif kind == "bulk_strained":
            break  # the recipe's bulk MD is done
    ase.io.write(tmp / "low.extxyz", low)
    ase.io.write(tmp / "high.extxyz", high)
    spec = _cu_spec(tmp, tmp / "low.extxyz", tmp / "high.extxyz")
    uri = f"sqlite:///{tmp}/mlflow.db"
    result = run_active_learning(load_spec(spec), run_dir=tmp / "run", tracking_uri=uri,
                                 progress=False)
    return {"tmp": tmp, "spec": spec, "uri": uri, "result": result, "n_low": len(low),
            "n_high": len(high)}


def test_a_round_reduces_the_high_temperature_error(cu_al):
    result = cu_al["result"]
    (round1,) = result.rounds
    assert round1.status == "ran" and round1.n_picked > 0
    before = result.initial_holdout["force_mae"]
    after = round1.holdout["force_mae"]
    assert result.initial_holdout["n_configs"] == cu_al["n_high"] == round1.holdout["n_configs"]
    print(f"1200 K force MAE: {1e3 * before:.1f} -> {1e3 * after:.1f} meV/Å "
          f"({round1.n_picked} configurations added)")
    assert after < 0.7 * before
    # the picks: above the threshold, at least min_spacing steps apart within a trajectory
    record = json.loads((round1.directory / "round.json").read_text())
    assert record["calculator"] == "emt" and record["n_picked"] == round1.n_picked
    steps = {}
    for pick in record["picked"]:
        assert pick["force_std_max"] > record["threshold"]
        steps.setdefault(pick["trajectory"], []).append(pick["step"])
    for trajectory in steps.values():
        assert np.all(np.diff(trajectory) >= 10)


def test_the_grown_dataset_keeps_the_old_rows(cu_al):
    result = cu_al["result"]
    (round1,) = result.rounds
    old_path, new_path = result.run_dir / "dataset.h5", round1.directory / "dataset.h5"
    with Dataset(old_path) as old, Dataset(new_path) as new:
        n = len(old)
        assert len(new) == n + round1.n_picked == round1.n_configs
        a, b = old._file, new._file
        rows = int(old.offsets[-1])
        for name in ("numbers", "positions", "forces"):
            assert np.array_equal(a[name][:], b[name][:rows])
        for name in ("energy", "cell", "pbc", "stress", "has_energy", "has_forces",
                     "has_stress", "source", "source_index", "offsets"):
            assert np.array_equal(a[name][:], b[name][:len(a[name])], equal_nan=True), name
        types = new.column("config_type")
        assert list(types[:n]) == list(old.column("config_type"))
        assert set(types[n:]) == {"al_round1"}
        assert new.sources[:-1] == old.sources
        assert new.sources[-1]["path"].endswith("selected.extxyz")
        # the new rows are EMT's labels of the picked structures
        emt = make_calculator("emt")
        atoms = new[n]
        reference = atoms.copy()
        reference.calc = emt
        assert np.allclose(atoms.get_forces(), reference.get_forces(), atol=1e-10)


def test_every_round_is_an_mlflow_run(cu_al):
    from mlflow import MlflowClient

    result = cu_al["result"]
    (round1,) = result.rounds
    client = MlflowClient(tracking_uri=cu_al["uri"])
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["pesnet.role"] == "active-learning"
    assert parent.data.params["active_learning.temperature_K"] == "1200.0"
    history = client.get_metric_history(parent.info.run_id, "holdout_force_mae")
    assert sorted(m.step for m in history) == [0, 1]
    assert history[0].value > history[1].value if history[0].step == 0 else \
        history[1].value > history[0].value
    run = client.get_run(round1.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert run.data.tags["pesnet.al_round"] == "1"
    metrics = run.data.metrics
    assert metrics["al_n_picked"] == round1.n_picked
    assert metrics["al_threshold"] == pytest.approx(round1.threshold)
    assert metrics["al_max_std"] == pytest.approx(round1.max_std)
    assert metrics["holdout_force_mae"] == pytest.approx(round1.holdout["force_mae"])
    assert "test_force_mae" in metrics
    artifacts = {f.path for f in client.list_artifacts(round1.run_id)}
    assert {"round.json", "selected.extxyz", "model.h5"} <= artifacts
    assert round1.model_version == "2"  # version 1 is the pipeline's own fit


def test_a_rerun_resumes_without_new_work(cu_al):
    result = run_active_learning(load_spec(cu_al["spec"]), run_dir=cu_al["result"].run_dir,
                                 tracking_uri=cu_al["uri"], progress=False)
    (round1,) = result.rounds
    assert round1.status == "up to date" and round1.run_id is None
    assert result.parent_run_id is None  # nothing ran: no new MLflow run
    assert round1.holdout["force_mae"] == pytest.approx(
        cu_al["result"].rounds[0].holdout["force_mae"])


def _candidate(trajectory, step, score=1.0):
    return Candidate(trajectory, step, 300.0, score, None)


def test_select_in_time_order_with_spacing_and_a_cap():
    candidates = [_candidate(0, s, score=s) for s in range(5, 60)] + \
        [_candidate(1, s) for s in (3, 4, 30)]
    picked = select(candidates, min_spacing=10, max_new=100)
    assert [(c.trajectory, c.step) for c in picked] == \
        [(0, 5), (0, 15), (0, 25), (0, 35), (0, 45), (0, 55), (1, 3), (1, 30)]
    capped = select(candidates, min_spacing=10, max_new=3)  # round-robin, earliest first
    assert [(c.trajectory, c.step) for c in capped] == [(0, 5), (0, 15), (1, 3)]
    assert select([], 10, 5) == []


def test_spec_table_errors(tmp_path):
    data = tmp_path / "x.extxyz"
    data.write_text("")
    cases = {"threshold = 0.2\nquantile = 0.9": "threshold (eV/Å) or quantile, not both",
             "calculator = \"nope\"": "unknown calculator 'nope'",
             "temperature_K = [300, -5]": "temperature_K must be positive",
             "md_step = 10": "active_learning.md_step: unknown key"}
    for body, message in cases.items():
        spec = write_spec(tmp_path / "bad.toml", data, extra=f"\n[active_learning]\n{body}\n")
        with pytest.raises(InputError, match=re.escape(message)):
            load_spec(spec)


def test_cli_needs_the_table_and_a_calculator(tmp_path):
    data = tmp_path / "x.extxyz"
    data.write_text("")
    plain = write_spec(tmp_path / "plain.toml", data)
    done = subprocess.run(pesnet_command("active-learn", plain, "--no-tracking"),
                          capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"pesnet active-learn: error: {plain}: no [active_learning] table (see the README, "
        f"\"Active learning\")"]
    files = write_spec(tmp_path / "files.toml", data, extra="\n[active_learning]\nrounds = 1\n")
    with pytest.raises(InputError, match="active_learning.calculator: missing"):
        run_active_learning(load_spec(files), run_dir=tmp_path / "run", tracking=False)
    assert not (tmp_path / "run").exists()  # refused before any work
