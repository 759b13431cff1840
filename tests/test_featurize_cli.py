"""``pesnet featurize``: default and file-given parameters, options, one-line errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from ase.build import bulk

from pesnet.cli.main import main
from pesnet.data import DatasetWriter
from pesnet.descriptors import ACSF, FeaturesFile, default_acsf


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "cu.h5"
    rng = np.random.default_rng(0)
    with DatasetWriter(path) as writer:
        for k in range(5):
            atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
            atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
            writer.append(atoms.numbers, atoms.positions, atoms.cell[:], atoms.pbc,
                          energy=-1.0 * k, forces=np.zeros((4, 3)))
    return path


def test_default_parameters(dataset, tmp_path, capsys):
    out = tmp_path / "features.h5"
    assert main(["featurize", str(dataset), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "5 configurations, 20 atoms, 21 features" in printed
    with FeaturesFile(out) as ff:
        assert ff.acsf == default_acsf(["Cu"], 6.0)
        assert ff.has_derivatives and len(ff) == 5


def test_params_from_json_and_toml(dataset, tmp_path):
    params = {"elements": ["Cu"], "cutoff": 5.0, "g2": [[1.0, 2.0], [0.5, 3.0]],
              "g4": [[0.01, 1, -1]], "g5": [], "angular_cutoff": 4.0}
    json_file = tmp_path / "acsf.json"
    json_file.write_text(json.dumps(params))
    toml_file = tmp_path / "acsf.toml"
    toml_file.write_text('[descriptor]\nelements = ["Cu"]\ncutoff = 5.0\nangular_cutoff = 4.0\n'
                         'g2 = [[1.0, 2.0], [0.5, 3.0]]\ng4 = [[0.01, 1, -1]]\ng5 = []\n')
    expected = ACSF.from_params(params)
    for source in (json_file, toml_file):
        out = tmp_path / f"{source.suffix[1:]}.h5"
        assert main(["featurize", str(dataset), "-o", str(out), "--quiet",
                     "--descriptor-params", str(source), "--no-derivatives",
                     "--split", "0.6,0.2,0.2", "--seed", "3"]) == 0
        with FeaturesFile(out) as ff:
            assert ff.acsf == expected and not ff.has_derivatives
            assert ff.split["seed"] == 3 and ff.split["n_train"] == 3


def test_float64_option_and_angular_cutoff(dataset, tmp_path):
    out = tmp_path / "f64.h5"
    assert main(["featurize", str(dataset), "-o", str(out), "--quiet", "--cutoff", "5",
                 "--angular-cutoff", "3.5", "--derivative-dtype", "float64"]) == 0
    with FeaturesFile(out) as ff:
        assert ff._file["derivatives/blocks"].dtype == np.float64
        assert ff.acsf.cutoff == 5.0 and ff.acsf.angular_cutoff == 3.5


@pytest.mark.parametrize(
    "content, suffix, message",
    [
        ("{not json", ".json", "not valid JSON"),
        ("elements = [", ".toml", "not valid TOML"),
        ('{"elements": ["Cu"], "cutoff": 5, "g2": [[-1, 0]]}', ".json", "eta > 0"),
        ('{"elements": ["Cu"]}', ".json", "lack 'cutoff'"),
        ('{"elements": ["H"], "cutoff": 5}', ".json", r"configuration 0: element Cu \(Z=29\)"),
    ],
)
def test_bad_parameters_give_one_line_and_exit_1(dataset, tmp_path, capsys, content, suffix,
                                                 message):
    params = tmp_path / f"params{suffix}"
    params.write_text(content)
    out = tmp_path / "features.h5"
    code = main(["featurize", str(dataset), "-o", str(out), "--descriptor-params", str(params),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("pesnet featurize: error: ")
    assert re.search(message, err), err
    assert not out.exists()


def test_missing_dataset_and_bad_split(tmp_path, dataset, capsys):
    assert main(["featurize", str(tmp_path / "nope.h5"), "-o", str(tmp_path / "f.h5")]) == 1
    assert "no such dataset file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["featurize", str(dataset), "-o", str(tmp_path / "f.h5"), "--split", "0.5,0.5"])
    assert exit_info.value.code == 2
    assert "three comma-separated fractions" in capsys.readouterr().err


def test_refuses_to_overwrite_the_dataset(dataset, capsys):
    before = dataset.read_bytes()
    assert main(["featurize", str(dataset), "-o", str(dataset), "--quiet"]) == 1
    assert "must not overwrite its dataset" in capsys.readouterr().err
    assert dataset.read_bytes() == before
