"""The pesnet potential as an MLflow pyfunc, logged as *code* ("models from code").

MLflow copies this file into the logged model and runs it when the model is loaded; nothing
is pickled. The only artefact is ``model`` (the HDF5 model file, plain data). Loading needs
pesnet installed in the serving environment (``mlflow models serve ... --env-manager local``
from pesnet's environment, or ``pesnet serve``). Request and answer formats:
:mod:`pesnet.tracking.serving`; status codes: :mod:`pesnet.tracking.scoring`.
"""

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class PesnetPotentialModel(PythonModel):
    """Energies, forces (and stress) with the ensemble's uncertainty for each structure."""

    def load_context(self, context):
        from pesnet.potential.io import load_model

        self.potential = load_model(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        # the work (and the HTTP status of errors) lives in the installed package, so it can
        # change without re-logging models; this file is copied into each model as it is
        from pesnet.tracking.scoring import answer

        return answer(self.potential, model_input)


set_model(PesnetPotentialModel())
