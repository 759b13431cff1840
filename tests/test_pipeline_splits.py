"""Fixed splits: index files, whole structure files and a held-out structure class give
exactly the parts asked for, recorded in the features and the model so that evaluate and
every later step reproduce them; bad index files are one line naming the file."""

from __future__ import annotations

import json

import ase.io
import h5py
import numpy as np
import pytest

from pesnet.cli.main import main
from pesnet.data.split import (
    fixed_split,
    held_out_split,
    read_index_file,
    split_from_info,
    split_indices,
)
from pesnet.errors import InputError
from tests.pipeline_helpers import write_spec


def test_fixed_split_takes_the_given_parts_and_trains_on_the_rest():
    split = fixed_split(10, [7, 2], [0])
    assert split.validation.tolist() == [2, 7] and split.test.tolist() == [0]
    assert split.train.tolist() == [1, 3, 4, 5, 6, 8, 9]
    again = split_from_info({"validation": [7, 2], "test": [0]}, 10)
    assert all((a == b).all() for a, b in zip(again, split))
    random = split_from_info({"fractions": [0.8, 0.1, 0.1], "seed": 3}, 50)
    assert all((a == b).all() for a, b in zip(random, split_indices(50, (0.8, 0.1, 0.1), 3)))


@pytest.mark.parametrize("validation, test, message", [
    ([1], [10], "test index 10 is outside the dataset's 10 configurations"),
    ([1, 1], [2], "validation indices repeat a configuration"),
    ([1, 2], [2], "configuration 2 is in both the validation and the test part"),
    ([], [2], "needs configurations to train on and to validate with"),
    ([0.5], [2], "validation indices must be integers"),
])
def test_bad_fixed_parts_are_clear_errors(validation, test, message):
    with pytest.raises(InputError, match=message):
        fixed_split(10, validation, test)


def test_held_out_class_is_the_test_part_and_validation_is_drawn_from_the_rest():
    held = np.zeros(40, bool)
    held[30:] = True
    split = held_out_split(40, held, (0.8, 0.1, 0.1), seed=1)
    assert split.test.tolist() == list(range(30, 40))
    assert len(split.validation) == round(30 * 0.1 / 0.9) and split.validation.max() < 30


def test_index_files_allow_comments_and_commas_and_name_bad_lines(tmp_path):
    good = tmp_path / "ids.txt"
    good.write_text("# test set of the benchmark\n3, 5\n  8 # last\n")
    assert read_index_file(good).tolist() == [3, 5, 8]
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n2\nthree\n")
    with pytest.raises(InputError, match=r"bad.txt, line 3: 'three' is not an integer"):
        read_index_file(bad)


def _spec(tmp_path, data, name, lines: str):
    spec = write_spec(tmp_path / f"{name}.toml", data, name=name)
    spec.write_text(spec.read_text().replace("[split]\n", "[split]\n" + lines, 1)
                    + "[register]\nenabled = false\n")
    return spec


def _run(spec, tmp_path):
    run_dir = tmp_path / f"run-{spec.stem}"
    assert main(["run", str(spec), "--run-dir", str(run_dir), "--no-tracking", "--quiet"]) == 0
    with h5py.File(run_dir / "model.h5") as f:
        recorded = json.loads(f.attrs["metadata"])["split"]
    return run_dir, recorded, json.loads((run_dir / "metrics.json").read_text())


def test_index_files_fix_validation_and_test(cu_features, tmp_path):
    (tmp_path / "test.txt").write_text("0\n5\n10\n15\n")
    (tmp_path / "val.txt").write_text("1 6 11\n")
    spec = _spec(tmp_path, cu_features / "cu.extxyz", "indexed",
                 'test = "test.txt"\nvalidation = "val.txt"\n')
    run_dir, recorded, metrics = _run(spec, tmp_path)
    assert recorded["test"] == [0, 5, 10, 15] and recorded["validation"] == [1, 6, 11]
    assert metrics["metrics"]["n_configs"] == 4
    with h5py.File(run_dir / "features.h5") as f:
        assert json.loads(f.attrs["split"])["test"] == [0, 5, 10, 15]
    # `pesnet evaluate` on the run's dataset scores the same 4 configurations
    model, dataset = run_dir / "model.h5", run_dir / "dataset.h5"
    assert main(["evaluate", str(model), str(dataset), "--json"]) == 0


def test_holdout_config_type_is_the_test_part(cu_features, tmp_path):
    frames = ase.io.read(cu_features / "cu.extxyz", ":")
    kinds = [a.info["config_type"] for a in frames]
    held = sorted(set(kinds))[0]
    spec = _spec(tmp_path, cu_features / "cu.extxyz", "held",
                 f'holdout = {{ config_type = "{held}" }}\n')
    _, recorded, metrics = _run(spec, tmp_path)
    assert recorded["test"] == [k for k, kind in enumerate(kinds) if kind == held]
    assert set(metrics["groups"]) == {held}


def test_separate_files_are_whole_parts(cu_features, tmp_path):
    frames = ase.io.read(cu_features / "cu.extxyz", ":")
    ase.io.write(tmp_path / "train.extxyz", frames[:24])
    ase.io.write(tmp_path / "val.extxyz", frames[24:28])
    ase.io.write(tmp_path / "test.extxyz", frames[28:])
    spec = _spec(tmp_path, tmp_path / "train.extxyz", "files",
                 'validation_files = ["val.extxyz"]\ntest_files = ["test.extxyz"]\n')
    _, recorded, metrics = _run(spec, tmp_path)
    assert recorded["validation"] == list(range(24, 28))
    assert recorded["test"] == list(range(28, len(frames)))
    assert metrics["metrics"]["n_configs"] == len(frames) - 28


@pytest.mark.parametrize("lines, message", [
    ('test = "missing.txt"\n', "split.test: "),
    ('test = "ids.txt"\nholdout = { config_type = "x" }\n', "give one of test, test_files and "
     "holdout"),
    ('holdout = { set = "x" }\n', "holdout takes config_type"),
])
def test_bad_split_tables_fail_when_the_spec_loads(cu_features, tmp_path, capsys, lines,
                                                   message):
    (tmp_path / "ids.txt").write_text("1\n")
    spec = _spec(tmp_path, cu_features / "cu.extxyz", "bad", lines)
    assert main(["run", str(spec), "--run-dir", str(tmp_path / "r"), "--no-tracking"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_an_index_out_of_range_names_the_spec_and_the_part(cu_features, tmp_path, capsys):
    (tmp_path / "ids.txt").write_text("1\n100000\n")
    spec = _spec(tmp_path, cu_features / "cu.extxyz", "far", 'test = "ids.txt"\n')
    assert main(["run", str(spec), "--run-dir", str(tmp_path / "r"), "--no-tracking"]) == 1
    err = capsys.readouterr().err
    assert "far.toml: split: test index 100000 is outside the dataset's" in err, err


def test_shipped_dft_ethanol_split_is_the_issues(tmp_path):
    """pipelines/ethanol_dft.toml: 950 training, 50 validation and 200 test frames of 500 K,
    plus every 1,000 K frame in the test part (never trained on)."""
    from pathlib import Path

    from pesnet.data import Dataset
    from pesnet.data.ingest import ingest
    from pesnet.pipeline.spec import load_spec
    from pesnet.pipeline.splits import spec_split

    root = Path(__file__).resolve().parents[1]
    pipeline = load_spec(root / "pipelines" / "ethanol_dft.toml")
    ingest([root / "data" / "ethanol_pbe_def2svp.extxyz"], tmp_path / "dft.h5")
    split = spec_split(pipeline, tmp_path / "dft.h5")
    with Dataset(tmp_path / "dft.h5") as ds:
        kinds = ds.column("config_type")
    assert (len(split.train), len(split.validation), len(split.test)) == (950, 50, 400)
    assert set(kinds[split.train]) == set(kinds[split.validation]) == {"md_500K"}
    assert (kinds[split.test] == "md_1000K").sum() == 200
