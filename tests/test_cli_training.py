"""The train / evaluate / predict commands end to end, and their error lines."""

from __future__ import annotations

import json

import ase.io
import numpy as np

from pesnet.cli.main import main


def test_train_evaluate_predict(cu_features, tmp_path, capsys):
    model = tmp_path / "model.h5"
    config = tmp_path / "train.toml"
    config.write_text("[train]\nhidden = [8]\nn_members = 2\nepochs = 4\nbatch_size = 8\n")
    assert main(["train", str(cu_features / "features.h5"), "-o", str(model),
                 "--config", str(config), "--epochs", "3", "--quiet"]) == 0
    assert model.is_file() and model.with_suffix(".ckpt.h5").is_file()
    assert main(["evaluate", str(model), str(cu_features / "cu.h5"), "--split", "test",
                 "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["n_configs"] > 0 and scores["force_mae"] > 0
    assert main(["evaluate", str(model), str(cu_features / "cu.h5")]) == 0
    assert "force MAE" in capsys.readouterr().out
    out = tmp_path / "pred.extxyz"
    assert main(["predict", str(model), str(cu_features / "cu.extxyz"), "--index", ":2",
                 "-o", str(out)]) == 0
    frames = ase.io.read(out, ":")
    assert len(frames) == 2
    assert frames[0].arrays["pesnet_forces_std"].shape == (len(frames[0]), 3)
    assert np.isfinite(frames[0].info["pesnet_energy"])


def test_training_errors_are_one_line(cu_features, tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("[train]\nepoch = 3\n")
    code = main(["train", str(cu_features / "features.h5"), "-o", str(tmp_path / "m.h5"),
                 "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 1 and "bad.toml" in err and "unknown key(s) epoch" in err
    assert len(err.strip().splitlines()) == 1
    code = main(["evaluate", str(tmp_path / "missing.h5"), str(cu_features / "cu.h5")])
    assert code == 1 and "no such model file" in capsys.readouterr().err
