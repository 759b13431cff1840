"""The record of a workflow in MLflow: one parent run and the runs nested under it.

``pesnet run`` records one run (its ensemble members nested by the
:class:`~pesnet.tracking.session.TrackingSession` itself), active learning a parent with a
nested run per round, a sweep a parent with a nested run per grid point; all three go through a
:class:`Recorder`. The parent is opened on first use (:meth:`Recorder.open`), so a workflow
with nothing to record leaves no run behind.

Tracking never stops the work. The first failure (a store that cannot be reached, a refused
request) is kept in :attr:`Recorder.error` and reported once, as a warning line; from then on
nothing new is opened, while runs already open keep logging until they fail themselves
(:attr:`TrackingSession.broken`) and are closed properly. The caller writes its results to its
run directory either way.
"""

from __future__ import annotations

from pesnet.errors import PesnetError
from pesnet.tracking.session import TrackingSession
from pesnet.tracking.store import TrackingError


class Recorder:
    """A parent run in ``experiment`` of the store ``uri`` (None: tracking off) with
    ``params``, ``tags`` and ``description``, and its child runs.

    ``command`` (``"pesnet run"``) begins the warning and note lines written to ``err``;
    ``consequence`` ends the warning (``"; the fit goes on ..."``). ``opening_metrics`` are
    logged to the parent at step 0 when it opens.
    """

    def __init__(self, uri: str | None, experiment: str, params: dict, tags: dict,
                 description: str = "", command: str = "pesnet", consequence: str = "",
                 err=None):
        self.uri, self.experiment = uri, experiment
        self.params, self.tags, self.description = params, tags, description
        self.command, self.consequence, self.err = command, consequence, err
        self.parent: TrackingSession | None = None
        self.children: dict[str, TrackingSession] = {}
        self.opening_metrics: dict = {}
        self.error: str | None = None

    @property
    def run_id(self) -> str | None:
        return self.parent.run_id if self.parent is not None else None

    def fail(self, error) -> None:
        """Remember the first tracking failure and warn about it once."""
        if self.error is not None:
            return
        self.error = str(error)
        if self.err is not None:
            print(f"{self.command}: warning: tracking failed: {error}{self.consequence}",
                  file=self.err, flush=True)

    def attempt(self, action, *args):
        """``action(*args)``, or None after a failure (kept by :meth:`fail`)."""
        try:
            return action(*args)
        except PesnetError as error:
            self.fail(error)
        except Exception as error:  # tracking never stops the work
            self.fail(f"MLflow tracking failed: {error}")
        return None

    def open(self) -> TrackingSession | None:
        """The parent run, started now if it is not yet; None when tracking is off or failed."""
        if self.parent is None and self.uri is not None and self.error is None:
            self.parent = self._start(self.params, self.tags, self.description)
            if self.parent is not None and self.opening_metrics:
                self.log_metrics(self.opening_metrics, step=0)
        return self.parent

    def child(self, name: str, params: dict, tags: dict,
              description: str | None = None) -> TrackingSession | None:
        """A run ``name`` nested under the parent (opened first if need be); None if that
        fails. With a ``description`` the child is recorded like a pipeline's own run (pesnet
        version, source tags, note; an active-learning round), else it holds just ``params``
        and ``tags`` (a sweep's point)."""
        parent = self.open()
        if parent is None or self.error is not None:
            return None
        if description is None:
            child = self.attempt(parent.start_child, name, params, tags)
        else:
            child = self._start(params, {**tags, "mlflow.runName": name}, description,
                                parent.run_id)
        if child is not None:
            self.children[name] = child
        return child

    def _start(self, params, tags, description, parent_run_id=None):
        try:
            session = TrackingSession.start(self.uri, self.experiment, params, tags,
                                            description, parent_run_id=parent_run_id)
        except TrackingError as error:
            self.fail(error)
            return None
        if session.closed_orphans and self.err is not None:
            print(f"{self.command}: note: {len(session.closed_orphans)} MLflow run(s) in "
                  f"experiment {self.experiment} were left RUNNING by a process that ended on "
                  f"this host; marked KILLED", file=self.err, flush=True)
        return session

    def log_metrics(self, metrics: dict, step: int = 0, prefix: str = "") -> None:
        """Metrics of the parent run (nothing if it is not open or has failed)."""
        if self.parent is not None and not self.parent.broken:
            self.attempt(self.parent.log_metrics, metrics, prefix, step)

    def set_tags(self, tags: dict) -> None:
        if self.parent is not None and not self.parent.broken:
            self.attempt(self.parent.set_tags, tags)

    def log_artifact(self, path) -> None:
        if self.parent is not None and not self.parent.broken:
            self.attempt(self.parent.log_artifact, path)

    def close(self, status: str = "FINISHED", message: str | None = None,
              unfinished: str | None = None) -> None:
        """Close every child still open as KILLED (with ``unfinished``, else ``message``),
        then the parent with ``status`` and ``message``."""
        for child in self.children.values():
            if child.status is None:
                child.end("KILLED", unfinished or message)
        if self.parent is not None:
            self.parent.end(status, message)
