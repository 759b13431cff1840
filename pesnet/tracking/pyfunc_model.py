"""The pesnet potential as an MLflow pyfunc, logged as *code* ("models from code").

MLflow copies this file into the logged model and runs it when the model is loaded; nothing
is pickled. The only artefact is ``model`` (the HDF5 model file, plain data). Loading needs
pesnet installed in the serving environment (``mlflow models serve ... --env-manager local``
from pesnet's environment, or ``pesnet serve``). Request and answer formats:
:mod:`pesnet.tracking.serving`.
"""

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.protos.databricks_pb2 import BAD_REQUEST
from mlflow.pyfunc import PythonModel


class PesnetPotentialModel(PythonModel):
    """Energies, forces (and stress) with the ensemble's uncertainty for each structure."""

    def load_context(self, context):
        from pesnet.potential.io import load_model

        self.potential = load_model(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        from pesnet.errors import PesnetError
        from pesnet.tracking.serving import predict_records

        if isinstance(model_input, pd.DataFrame):
            rows = model_input.to_dict(orient="records")
        elif isinstance(model_input, dict):
            rows = [model_input]
        else:
            rows = list(model_input)
        try:
            return predict_records(self.potential, rows)
        except PesnetError as error:
            raise MlflowException(str(error), error_code=BAD_REQUEST) from None


set_model(PesnetPotentialModel())
