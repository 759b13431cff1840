"""``pesnet evaluate`` and ``pesnet predict`` as a chemist uses them: any labelled file in,
the split that was scored said out loud, per-group rows, and predictions that keep the
reference labels beside the errors."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest

from pesnet.cli.main import main


def test_evaluate_defaults_to_the_test_split_of_the_training_dataset(cu_model, cu_features,
                                                                     capsys):
    assert main(["evaluate", str(cu_model), str(cu_features / "cu.h5")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("scored the test split of ") and "cu.h5 (" in first
    assert main(["evaluate", str(cu_model), str(cu_features / "cu.h5"), "--json"]) == 0
    test = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(cu_model), str(cu_features / "cu.h5"), "--split", "all",
                 "--json"]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert test["split"] == "test" and everything["split"] == "all"
    assert 0 < test["n_configs"] < everything["n_configs"]


def test_evaluate_scores_any_labelled_file(cu_model, cu_features, tmp_path, capsys):
    # the training data as extxyz is the training dataset: its test split by default
    assert main(["evaluate", str(cu_model), str(cu_features / "cu.extxyz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "test"
    # other labelled data: every configuration, the same numbers as through a dataset
    ase.io.write(tmp_path / "other.traj", ase.io.read(cu_features / "cu.extxyz", "::2"))
    assert main(["evaluate", str(cu_model), str(tmp_path / "other.traj")]) == 0
    assert capsys.readouterr().out.startswith("scored every configuration of ")
    assert main(["evaluate", str(cu_model), str(tmp_path / "other.traj"), "--json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert main(["ingest", str(tmp_path / "other.traj"), "-o", str(tmp_path / "o.h5"),
                 "--quiet"]) == 0
    assert main(["evaluate", str(cu_model), str(tmp_path / "o.h5"), "--json"]) == 0
    from_dataset = json.loads(capsys.readouterr().out)
    assert from_file["split"] == "all" and from_file["n_configs"] == from_dataset["n_configs"]
    assert from_file["force_mae"] == pytest.approx(from_dataset["force_mae"], rel=1e-12)
    code = main(["evaluate", str(cu_model), str(tmp_path / "other.traj"), "--split", "test"])
    err = capsys.readouterr().err
    assert code == 1 and "other.traj: not the dataset this model was trained on" in err


def test_evaluate_by_group_gives_one_row_per_group(cu_model, cu_features, capsys):
    frames = ase.io.read(cu_features / "cu.extxyz", ":")
    groups = sorted({a.info["config_type"] for a in frames})
    assert len(groups) > 2
    assert main(["evaluate", str(cu_model), str(cu_features / "cu.h5"), "--split", "all",
                 "--by", "config_type", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert sorted(scores["groups"]) == groups
    assert sum(g["n_configs"] for g in scores["groups"].values()) == scores["n_configs"]
    for g in scores["groups"].values():
        assert g["force_mae"] > 0 and 0 <= g["force_coverage_1sigma"] <= 1
    assert main(["evaluate", str(cu_model), str(cu_features / "cu.h5"), "--split", "all",
                 "--by", "config_type"]) == 0
    table = capsys.readouterr().out
    assert all(any(line.startswith(g) for line in table.splitlines()) for g in groups)


def test_ingest_group_key_keeps_another_info_key_as_the_group(cu_model, cu_features, tmp_path,
                                                              capsys):
    frames = ase.io.read(cu_features / "cu.extxyz", ":")
    for k, atoms in enumerate(frames):
        atoms.info["set"] = "even" if k % 2 == 0 else "odd"
    ase.io.write(tmp_path / "sets.extxyz", frames)
    assert main(["ingest", str(tmp_path / "sets.extxyz"), "-o", str(tmp_path / "sets.h5"),
                 "--group-key", "set", "--quiet"]) == 0
    assert main(["evaluate", str(cu_model), str(tmp_path / "sets.h5"), "--by", "config_type",
                 "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert sorted(scores["groups"]) == ["even", "odd"]


def test_predict_keeps_reference_labels_and_adds_errors(cu_model, cu_features, tmp_path):
    out = tmp_path / "pred.extxyz"
    assert main(["predict", str(cu_model), str(cu_features / "cu.extxyz"), "--index", ":3",
                 "-o", str(out)]) == 0
    inputs = ase.io.read(cu_features / "cu.extxyz", ":3")
    for before, after in zip(inputs, ase.io.read(out, ":")):
        assert after.get_potential_energy() == pytest.approx(before.get_potential_energy())
        np.testing.assert_allclose(after.get_forces(), before.get_forces())
        error = after.info["pesnet_energy"] - before.get_potential_energy()
        assert after.info["pesnet_energy_error"] == pytest.approx(error)
        assert after.info["pesnet_energy_error_per_atom"] == pytest.approx(error / len(after))
        np.testing.assert_allclose(after.arrays["pesnet_force_error"], np.linalg.norm(
            after.arrays["pesnet_forces"] - before.get_forces(), axis=1), atol=1e-8)
        assert after.info["pesnet_stress_std"].shape == (6,)
        assert (after.info["pesnet_stress_std"] >= 0).all()


def test_predict_unlabelled_structures_has_no_error_keys(cu_model, tmp_path):
    from ase.build import bulk

    ase.io.write(tmp_path / "bare.extxyz", bulk("Cu", "fcc", a=3.6, cubic=True))
    out = tmp_path / "pred.extxyz"
    assert main(["predict", str(cu_model), str(tmp_path / "bare.extxyz"), "-o", str(out)]) == 0
    atoms = ase.io.read(out)
    assert "pesnet_energy" in atoms.info and "pesnet_energy_error" not in atoms.info
    assert "pesnet_force_error" not in atoms.arrays
