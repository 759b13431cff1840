"""PESNetCalculator.from_mlflow: a registered model (``models:/NAME/VERSION``) becomes a
calculator giving the model file's answers."""

from __future__ import annotations

import shutil

import pytest
from ase.build import bulk
from ase.calculators.calculator import CalculatorSetupError

from pesnet.calculator import PESNetCalculator


def test_registered_model_becomes_a_calculator(cu_model, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("calc", artifact_location=str(tmp_path / "artifacts"))
    # the layout of the pipeline's pyfunc: the model file among the logged model's artefacts
    staged = tmp_path / "staged" / "artifacts"
    staged.mkdir(parents=True)
    shutil.copy(cu_model, staged / "model.h5")
    (staged.parent / "MLmodel").write_text("flavors: {}\n")
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(staged.parent), "model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("cu-test")
    version = client.create_model_version("cu-test", f"{run.info.artifact_uri}/model",
                                          run_id=run.info.run_id)
    assert str(version.version) == "1"

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=0)
    reference = atoms.copy()
    reference.calc = PESNetCalculator(cu_model)
    atoms.calc = PESNetCalculator.from_mlflow("models:/cu-test/1", tracking_uri=uri)
    assert atoms.calc.model_uri == "models:/cu-test/1"
    assert atoms.get_potential_energy() == reference.get_potential_energy()
    assert (atoms.get_forces() == reference.get_forces()).all()
    # a run's artefact URI works as well
    calc = PESNetCalculator.from_mlflow(f"runs:/{run.info.run_id}/model", tracking_uri=uri)
    assert calc.potential.n_members == reference.calc.potential.n_members

    # an alias, and MLflow's global state untouched throughout
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    client.set_registered_model_alias("cu-test", "champion", "1")
    calc = PESNetCalculator.from_mlflow("models:/cu-test@champion", tracking_uri=uri)
    assert calc.potential.n_members == reference.calc.potential.n_members
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before

    with pytest.raises(CalculatorSetupError, match="cannot fetch"):
        PESNetCalculator.from_mlflow("models:/no-such-model/1", tracking_uri=uri)
    with pytest.raises(CalculatorSetupError, match="no pesnet model source for 's3://x'"):
        PESNetCalculator.from_mlflow("s3://x", tracking_uri=uri)
