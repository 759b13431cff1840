"""What runs inside the model server: the pyfunc's answer with its HTTP status, and the ASGI app
``pesnet serve`` starts (MLflow's scoring server behind :class:`~.request_limits.BodyLimit`).

:mod:`.pyfunc_model` (copied into every logged model) hands each request to :func:`answer`,
so models logged from now on follow this module as it changes. Status codes of
``POST /invocations``:

* 200: the answer (:mod:`.serving`);
* 400: a request pesnet cannot read: malformed JSON, an unknown column, a structure with
  NaN/inf positions or cell, an atomic number outside 1–118, a flat periodic cell, an element
  the model lacks; the message names the row (and frame);
* 408 / 413: a body not received in time / over ``--max-request-mb``; 413 also for more than
  ``--max-atoms`` atoms in one request (the message names the row and frame that crossed it);
* 504: computing the answer took longer than ``--timeout`` (MLflow's middleware).
"""

from __future__ import annotations

import os

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST, REQUEST_LIMIT_EXCEEDED

#: Environment variable naming the model directory the server loads (set by ``pesnet serve``).
MODEL_ENV = "PESNET_SERVE_MODEL"


class RequestTooLargeError(MlflowException):
    """HTTP 413: MLflow's server answers with :meth:`get_http_status_code`, and its error codes
    have no 413 of their own (REQUEST_LIMIT_EXCEEDED means 429, "try again later")."""

    def __init__(self, message: str):
        super().__init__(message, error_code=REQUEST_LIMIT_EXCEEDED)

    def get_http_status_code(self) -> int:
        return 413


def answer(potential, model_input) -> list[dict]:
    """The answer to one request (a DataFrame, a dict or a list of rows); pesnet's errors become
    MLflow exceptions that the server turns into 400 or 413 answers."""
    import pandas as pd

    from pesnet.errors import PesnetError
    from pesnet.tracking.serving import RequestTooLarge, predict_records

    if isinstance(model_input, pd.DataFrame):
        rows = model_input.to_dict(orient="records")
    elif isinstance(model_input, dict):
        rows = [model_input]
    else:
        rows = list(model_input)
    try:
        return predict_records(potential, rows)
    except RequestTooLarge as error:
        raise RequestTooLargeError(str(error)) from None
    except PesnetError as error:
        raise MlflowException(str(error), error_code=BAD_REQUEST) from None


def create_app():
    """The ASGI app of ``pesnet serve``: ``uvicorn --factory pesnet.tracking.scoring:create_app``
    with the model directory in ``$PESNET_SERVE_MODEL`` (and the limits in the variables of
    :mod:`.request_limits` and :mod:`.serving`)."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    from pesnet.tracking.request_limits import BodyLimit, max_request_mb, request_timeout

    model = mlflow.pyfunc.load_model(os.environ[MODEL_ENV])
    # init() reads MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT itself: its middleware answers 504
    return BodyLimit(scoring_server.init(model), max_bytes=int(max_request_mb() * 2**20),
                     timeout=request_timeout())
