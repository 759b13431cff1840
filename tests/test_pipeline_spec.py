"""Pipeline specs: valid specs load with defaults filled in; bad ones fail fast, one line each."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pesnet.cli.main import main
from pesnet.errors import InputError
from pesnet.pipeline.spec import PipelineSpec, load_spec
from tests.pipeline_helpers import write_spec

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_spec_loads_with_resolved_settings(tmp_path):
    (tmp_path / "cu.extxyz").write_text("")
    pipeline = load_spec(write_spec(tmp_path / "tiny.toml", Path("cu.extxyz")))
    spec = pipeline.spec
    assert spec.name == "tiny" and spec.model_name == "tiny"
    assert pipeline.source_files() == [tmp_path / "cu.extxyz"]  # relative to the spec
    settings = spec.train_settings()
    assert settings.hidden == (8,) and settings.n_members == 2 and settings.epochs == 3
    params = pipeline.flat_params()
    assert params["train.epochs"] == "3" and params["ensemble.members"] == "2"
    assert params["train.patience"] == str(settings.patience)  # defaults are recorded too
    assert params["model.hidden"] == "[8]" and params["register.name"] == "tiny"


def test_name_defaults_to_the_file_name(tmp_path):
    (tmp_path / "x.extxyz").write_text("")
    spec = tmp_path / "my-system.toml"
    spec.write_text('[dataset]\nfiles = ["x.extxyz"]\n')
    pipeline = load_spec(spec)
    assert pipeline.name == "my-system"
    assert pipeline.spec.descriptor.cutoff == 6.0 and pipeline.spec.ensemble.members == 5


def test_shipped_specs_are_valid():
    quickstart = load_spec(ROOT / "pipelines" / "quickstart.toml")
    assert quickstart.source_files() == [ROOT / "pipelines" / ".." / "data" / "cu_emt.extxyz"]
    assert quickstart.spec.registry.enabled
    # the ethanol data may be generated after a fresh clone: check the spec, not the file
    table = tomllib.loads((ROOT / "pipelines" / "ethanol_xtb.toml").read_text())
    table.setdefault("name", "ethanol_xtb")
    ethanol = PipelineSpec.model_validate(table)
    assert ethanol.dataset.files and ethanol.train_settings().n_members >= 2


@pytest.mark.parametrize("edit, expected", [
    ("[train]\nepoch = 3\n", "train.epoch: unknown key"),
    ("[ensemble]\nmembers = \"two\"\n", "ensemble.members: Input should be a valid integer"),
    ("[ensemble]\nmembers = 0\n", "ensemble.members: Input should be greater than or equal to 1"),
    ("[descriptor]\ncutoff = true\n", "descriptor.cutoff: Input should be a valid number"),
    ("[evaluate]\nsplit = \"dev\"\n", "evaluate.split: Input should be 'test', 'validation'"),
    ("[dataset]\nfiles = [\"missing.extxyz\"]\n", "dataset.files[0]: "),
    ("[dataset]\nrecipe = { name = \"argon\" }\n", "dataset.recipe: unknown recipe 'argon'"),
    ("[train]\nhidden = [4]\n", "train.hidden belongs in the spec as model.hidden"),
    ("[train]\npatience = 0\n", "train.patience: patience must be at least 1"),
    # checked when the spec loads, not when the step that uses it runs
    ("[descriptor]\ncutoff = 1000\n", "descriptor cutoff 1000 Å is above the 20 Å"),
    ("[model]\nactivation = \"relu6\"\n",
     "model.activation: unknown activation 'relu6' (did you mean 'relu'?)"),
    ("[model]\nhidden = []\n", "model.hidden: hidden needs at least one layer width"),
    ("[train]\noptimizer = \"adma\"\n", "train.optimizer: unknown optimiser 'adma' "
     "(did you mean 'adam'?)"),
    ("[train]\nschedule = { name = \"cosin\" }\n", "train.schedule: unknown schedule 'cosin' "
     "(did you mean 'cosine'?)"),
    ("[train]\nschedule = { name = \"plateau\", factor = 2.0 }\n",
     "train.schedule: plateau schedule needs 0 < factor < 1"),
    # misspelt keys and names get a suggestion
    ("[train]\nepochz = 3\n", "train.epochz: unknown key (did you mean 'epochs'?)"),
    ("[modle]\nhidden = [4]\n", "modle: unknown key (did you mean 'model'?)"),
    ("[model]\nactivaton = \"tanh\"\n", "model.activaton: unknown key (did you mean "
     "'activation'?)"),
    ("[dataset]\nrecipe = { name = \"cu-fc\" }\n", "unknown recipe 'cu-fc' (did you mean "
     "'cu-fcc'?)"),
    ("[descriptor]\ng2 = [[1.0]]\n", "descriptor:"),
    ("[descriptor]\ng4 = [[0.1, 1, 1]]\n", "descriptor: the radial grid g2 is empty"),
    ("[descriptor]\ncutoff = 4.0\nangular_cutoff = 5.0\n",
     "descriptor: angular_cutoff must be in (0, cutoff=4.0]"),
    ("[split]\nfractions = [0.5, 0.6, 0.1]\n", "split: fractions must be"),
    ("name = \"has space\"\n", "name: String should match pattern"),
    ("[register\n", "invalid TOML"),
])
def test_bad_spec_fails_fast_with_one_line(tmp_path, capsys, edit, expected):
    data = tmp_path / "cu.extxyz"
    data.write_text("")
    spec = tmp_path / "bad.toml"
    base = {"[dataset]": f'[dataset]\nfiles = ["{data}"]\n'}
    header = edit.split("\n", 1)[0]
    text = edit if header == "[dataset]" else base["[dataset]"] + edit
    if edit.startswith("name"):
        text = edit + base["[dataset]"]
    spec.write_text(text)
    code = main(["run", str(spec), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert str(spec) in err and expected in err, err
    assert not (tmp_path / "run").exists()  # failed before any work


def test_missing_spec_file(tmp_path):
    with pytest.raises(InputError, match="no such pipeline spec"):
        load_spec(tmp_path / "nope.toml")


def test_an_element_of_the_data_missing_from_the_descriptor_is_one_line(tmp_path, capsys,
                                                                        extxyz_file):
    spec = tmp_path / "elements.toml"
    spec.write_text(f'[dataset]\nfiles = ["{extxyz_file}"]\n[descriptor]\n'
                    'elements = ["Cu"]\n[register]\nenabled = false\n')
    code = main(["run", str(spec), "--run-dir", str(tmp_path / "run"), "--no-tracking"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "descriptor.elements ['Cu'] lacks H, C, O, which the data contains" in err
    assert not (tmp_path / "run" / "features.h5").exists()
