"""Running pipelines without MLflow: the files, content-hash skipping, --force, locking, and a
failing step (one line, earlier results kept)."""

from __future__ import annotations

import fcntl
import json
import os
import re

import pytest

from pesnet.cli.main import main
from pesnet.errors import InputError
from pesnet.pipeline.runner import run_pipeline
from pesnet.pipeline.spec import load_spec
from pesnet.pipeline.steps import STEPS
from pesnet.training.records import history_from_json, history_to_json, read_history
from tests.pipeline_helpers import write_spec


def _statuses(out: str) -> dict:
    """{step: status text} from `pesnet run` output lines like '[3/6] train ..... up to date'."""
    found = {}
    for line in out.splitlines():
        match = re.match(r"\[\d/6\] (\w+) \.+ (.*)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def _ran(statuses: dict) -> set:
    return {name for name, text in statuses.items()
            if text != "up to date" and not text.startswith("off")}


def test_steps_run_then_skip_then_rerun_what_changed(cu_features, tmp_path, capsys):
    spec = write_spec(tmp_path / "tiny.toml", cu_features / "cu.extxyz")
    run_dir = tmp_path / "run"
    args = ["run", str(spec), "--run-dir", str(run_dir), "--no-tracking", "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    statuses = _statuses(out)
    assert _ran(statuses) == {"ingest", "featurize", "train", "evaluate"}, out
    assert statuses["log"].startswith("off") and statuses["register"].startswith("off")
    for name in ("dataset.h5", "features.h5", "model.h5", "history.json", "metrics.json",
                 "state.json", "spec.toml", "plots/parity_forces.png"):
        assert (run_dir / name).is_file(), name
    assert "test metrics (tiny)" in out and "force MAE" in out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["metrics"]["n_configs"] > 0
    assert len(read_history(run_dir / "history.json")) == 3

    # unchanged: nothing runs
    assert main(args) == 0
    out = capsys.readouterr().out
    assert _ran(_statuses(out)) == set() and "up to date" in out

    # same bytes, new mtime: still up to date (content hashes, not times)
    os.utime(cu_features / "cu.extxyz")
    assert main(args) == 0
    assert _ran(_statuses(capsys.readouterr().out)) == set()

    # a training setting changed: train and evaluate rerun, the data steps do not
    write_spec(spec, cu_features / "cu.extxyz", epochs=2)
    assert main(args) == 0
    assert _ran(_statuses(capsys.readouterr().out)) == {"train", "evaluate"}
    assert len(read_history(run_dir / "history.json")) == 2

    # --force reruns everything
    assert main(args + ["--force"]) == 0
    assert _ran(_statuses(capsys.readouterr().out)) == {"ingest", "featurize", "train",
                                                        "evaluate"}


def test_changed_output_file_is_rebuilt(cu_features, tmp_path, capsys):
    spec = write_spec(tmp_path / "tiny.toml", cu_features / "cu.extxyz")
    run_dir = tmp_path / "run"
    args = ["run", str(spec), "--run-dir", str(run_dir), "--no-tracking", "--quiet"]
    assert main(args) == 0
    capsys.readouterr()
    (run_dir / "metrics.json").write_text("{}")  # tampered with
    assert main(args) == 0
    assert _ran(_statuses(capsys.readouterr().out)) == {"evaluate"}
    assert json.loads((run_dir / "metrics.json").read_text())["split"] == "test"


def test_failing_step_is_one_line_and_keeps_earlier_results(cu_features, tmp_path, capsys):
    # no test configurations: evaluation has nothing to score
    spec = write_spec(tmp_path / "tiny.toml", cu_features / "cu.extxyz",
                      fractions=(0.8, 0.2, 0.0))
    run_dir = tmp_path / "run"
    code = main(["run", str(spec), "--run-dir", str(run_dir), "--no-tracking", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert "evaluate failed" in captured.err and "evaluate.split" in captured.err
    assert "FAILED" in _statuses(captured.out)["evaluate"]
    assert (run_dir / "model.h5").is_file() and (run_dir / "features.h5").is_file()
    state = json.loads((run_dir / "state.json").read_text())["steps"]
    assert {"ingest", "featurize", "train"} <= set(state) and "evaluate" not in state


def test_run_directory_is_locked(cu_features, tmp_path):
    pipeline = load_spec(write_spec(tmp_path / "tiny.toml", cu_features / "cu.extxyz"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with open(run_dir / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(InputError, match="in use by another `pesnet run`"):
            run_pipeline(pipeline, run_dir=run_dir, tracking=False, progress=False)


def test_history_round_trip(cu_features, tmp_path):
    from pesnet.training.settings import TrainSettings
    from pesnet.training.trainer import train_potential

    result = train_potential(cu_features / "features.h5",
                             TrainSettings(hidden=(4,), n_members=2, epochs=2, batch_size=8))
    back = history_from_json(json.loads(json.dumps(history_to_json(result.history))))
    assert len(back) == 2
    for a, b in zip(result.history, back):
        assert a.epoch == b.epoch
        assert (a.val_force_rmse == b.val_force_rmse).all() and (a.active == b.active).all()
        assert b.active.dtype == bool


def test_steps_are_in_issue_order():
    assert [s.name for s in STEPS] == ["ingest", "featurize", "train", "evaluate", "log",
                                       "register"]


def test_recipe_source_generates_then_ingests(tmp_path, capsys):
    from pesnet.data import Dataset

    spec = write_spec(tmp_path / "recipe.toml", tmp_path / "unused.extxyz", name="tiny-recipe")
    text = spec.read_text().replace(
        f'files = ["{tmp_path / "unused.extxyz"}"]',
        'recipe = { name = "ethanol", calculator = "emt", seed = 1, scale = 0.02 }')
    spec.write_text(text)
    run_dir = tmp_path / "run"
    args = ["run", str(spec), "--run-dir", str(run_dir), "--no-tracking", "--quiet"]
    assert main(args) == 0
    assert _ran(_statuses(capsys.readouterr().out)) == {"ingest", "featurize", "train",
                                                        "evaluate"}
    assert (run_dir / "reference.extxyz").is_file()
    with Dataset(run_dir / "dataset.h5") as ds:
        assert len(ds) == 25 and ds.elements == [1, 6, 8]
    assert main(args) == 0  # the recipe is not run again
    assert _ran(_statuses(capsys.readouterr().out)) == set()
