"""The optional ``[validate]`` step: crystal properties by every member against a reference
calculator, written to the run directory, logged as metrics, and checked when the spec loads."""

from __future__ import annotations

import json

import pytest

from pesnet.cli.main import main
from pesnet.tracking.session import property_metrics
from tests.pipeline_helpers import write_spec

VALIDATE = '[validate]\nreference = "emt"\nproperties = ["a0", "B", "C44"]\n'


def test_validate_step_writes_properties_against_the_reference(cu_features, tmp_path, capsys):
    spec = write_spec(tmp_path / "tiny.toml", cu_features / "cu.extxyz", extra=VALIDATE)
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "--run-dir", str(run_dir), "--no-tracking"]) == 0
    out = capsys.readouterr().out
    assert "[5/7] validate ..... 3 properties; emt inside 2σ for" in out
    assert "[6/7] log" in out and "[7/7] register" in out
    saved = json.loads((run_dir / "properties.json").read_text())
    assert saved["reference"] == "emt" and list(saved["properties"]) == ["a0", "B", "C44"]
    a0 = saved["properties"]["a0"]
    assert len(a0["values"]) == 2 and a0["reference"] == pytest.approx(3.59, abs=0.01)
    assert a0["error"] == pytest.approx(a0["mean"] - a0["reference"])
    assert (run_dir / "properties.png").read_bytes()[:4] == b"\x89PNG"
    # a second run has nothing to do
    assert main(["run", str(spec), "--run-dir", str(run_dir), "--no-tracking"]) == 0
    assert "[5/7] validate ..... up to date" in capsys.readouterr().out


def test_property_metrics_for_mlflow():
    properties = {"a0": {"mean": 3.6, "std_calibrated": 0.01, "reference": 3.59,
                         "error_pct": 0.28, "within_2sigma": True},
                  "B": {"mean": 140.0, "std_calibrated": 5.0, "reference": None,
                        "error_pct": None, "within_2sigma": None}}
    assert property_metrics(properties) == {
        "property.a0": 3.6, "property.a0.std_calibrated": 0.01, "property.a0.error_pct": 0.28,
        "property.a0.within_2sigma": 1.0, "property.B": 140.0, "property.B.std_calibrated": 5.0}


@pytest.mark.parametrize("table, message", [
    ('[validate]\nreference = "emtt"\n', "validate: unknown calculator 'emtt' (did you mean "
     "'emt'?)"),
    ('[validate]\nrefrence = "emt"\n', "validate.refrence: unknown key (did you mean "
     "'reference'?)"),
])
def test_bad_validate_tables_fail_when_the_spec_loads(cu_features, tmp_path, capsys, table,
                                                      message):
    spec = write_spec(tmp_path / "bad.toml", cu_features / "cu.extxyz", extra=table)
    assert main(["run", str(spec), "--run-dir", str(tmp_path / "r"), "--no-tracking"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
