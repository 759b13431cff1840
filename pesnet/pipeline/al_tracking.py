"""MLflow records of active learning: one parent run, a nested run per round.

Tracking failures are remembered and reported once, never fatal: the rounds go on and write
their results to the run directory (see :mod:`pesnet.pipeline.active_learning`).
"""

from __future__ import annotations

import time

from pesnet.pipeline.spec import ActiveLearningSpec, flatten


def al_params(al: ActiveLearningSpec) -> dict:
    """The ``[active_learning]`` table as flat MLflow params (``active_learning.<key>``)."""
    return flatten({"active_learning": al.model_dump(mode="json")})


class RoundTracker:
    """The parent run and its round runs; failures are remembered, never fatal to the fit."""

    def __init__(self, pipeline, uri, run_dir, al_dir, err):
        self.pipeline, self.uri, self.run_dir, self.err = pipeline, uri, run_dir, err
        self.al_dir = al_dir
        self.parent = None
        self.initial: dict = {}  # step-0 metrics of the parent (the pipeline's model)
        self.error = None

    def _tags(self) -> dict:
        from pesnet.tracking.session import source_tags

        return source_tags(self.pipeline.name, self.pipeline.path, self.pipeline.root,
                           self.run_dir)

    def _fail(self, error) -> None:
        if self.error is None:
            self.error = str(error)
            print(f"pesnet active-learn: warning: tracking failed: {error}; the rounds go on "
                  f"and write their results to {self.al_dir}", file=self.err,
                  flush=True)

    def start_parent(self):
        from pesnet.tracking.session import ROLE_TAG, TrackingSession
        from pesnet.tracking.store import TrackingError

        if self.uri is None or self.parent is not None or self.error:
            return self.parent
        try:
            self.parent = TrackingSession.start(
                self.uri, self.pipeline.name,
                {"pipeline": self.pipeline.name, **al_params(self.pipeline.spec.active_learning)},
                {**self._tags(), ROLE_TAG: "active-learning",
                 "mlflow.runName": f"active-learning-{time.strftime('%Y%m%d-%H%M%S')}"},
                f"active learning of {self.pipeline.name}")
        except TrackingError as error:
            self._fail(error)
        if self.initial:
            self.log_parent(self.initial, 0)
        return self.parent

    def start_round(self, k: int):
        from pesnet.tracking.session import TrackingSession
        from pesnet.tracking.store import TrackingError

        parent = self.start_parent()
        if parent is None:
            return None
        try:
            params = {**self.pipeline.flat_params(), "active_learning.round": k}
            return TrackingSession.start(
                self.uri, self.pipeline.name, params,
                {**self._tags(), "pesnet.al_round": k, "mlflow.runName": f"round-{k}"},
                self.pipeline.spec.description, parent_run_id=parent.run_id)
        except TrackingError as error:
            self._fail(error)
            return None

    def log_parent(self, metrics: dict, step: int) -> None:
        from pesnet.tracking.store import TrackingError

        if self.parent is None or self.parent.broken:
            return
        try:
            self.parent.log_metrics(metrics, step=step)
        except TrackingError as error:
            self._fail(error)

    def end(self, status: str = "FINISHED", message: str | None = None) -> None:
        if self.parent is not None:
            self.parent.end(status, message)
