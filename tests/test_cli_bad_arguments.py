"""Command-line values a hostile tester tried: one line and exit 1 each, and no progress bar
text in a log or pipe (tqdm's carriage-return frames once came before every error line)."""

from __future__ import annotations

import pytest

from pesnet.cli.main import main


def _one_line_error(argv, capsys, expected):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    assert err == f"pesnet {argv[0]}: error: {expected}\n" or (
        err.count("\n") == 1 and expected in err), err


@pytest.mark.parametrize("scale", ["nan", "inf", "-1", "0"])
def test_generate_refuses_a_scale_that_is_not_positive_and_finite(tmp_path, capsys, scale):
    _one_line_error(["generate", "cu-fcc", "-o", str(tmp_path / "x.extxyz"), "--scale", scale],
                    capsys, "--scale must be a positive finite number")


@pytest.mark.parametrize("name", ["x.unknownext", "x.OUTCAR"])
def test_generate_refuses_an_output_format_ase_cannot_write(tmp_path, capsys, name):
    _one_line_error(["generate", "cu-fcc", "-o", str(tmp_path / name)], capsys,
                    "cannot tell a format ASE writes from its name")


@pytest.mark.parametrize("line, expected", [
    ('epochs = "ten"', "epochs must be an integer, got 'ten'"),
    ("hidden = [4.5]", "hidden must be a list of integers, got [4.5]"),
    ("learning_rate = true", "learning_rate must be a number, got True"),
    ('schedule = "cosine"', "schedule must be a table, got 'cosine'"),
    ('activation = "tahn"', "unknown activation 'tahn' (did you mean 'tanh'?)"),
    ("epohcs = 3", "unknown key(s) epohcs (did you mean 'epochs'?)"),
])
def test_train_config_values_of_the_wrong_type_are_named(tmp_path, capsys, line, expected):
    config = tmp_path / "train.toml"
    config.write_text(line + "\n")
    _one_line_error(["train", str(tmp_path / "features.h5"), "-o", str(tmp_path / "m.h5"),
                     "--config", str(config)], capsys, expected)


def test_no_progress_bar_text_when_stderr_is_not_a_terminal(tmp_path, capsys, extxyz_file):
    assert main(["ingest", str(extxyz_file), "-o", str(tmp_path / "ds.h5")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "configs/s" not in err, err
    code = main(["train", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "m.h5")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("pesnet train: error: ") and "\r" not in err, err
