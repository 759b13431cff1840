"""Running a pipeline: plan which steps are stale, open the MLflow run, run the steps, report.

One invocation holds an exclusive lock on its run directory (``runs/<name>/`` by default), so
two runs of the same pipeline cannot interleave their files; runs of different pipelines (or
of one pipeline into different run directories) may share an MLflow store concurrently. A run
directory belongs to one spec file (:mod:`pesnet.pipeline.ownership`); another spec file that
targets it is refused before anything in it changes.

Tracking problems never stop the fit: if the store cannot be reached the steps up to
``evaluate`` still run and write their files, the ``log`` and ``register`` steps fail, and the
result says why (rerunning later logs the finished model without refitting). A failing step
of the fit itself marks the MLflow run FAILED (with the message as the ``pesnet.error`` tag),
keeps every artefact logged and every file written before it, and raises
:class:`PipelineError`. An interrupt (Ctrl-C, or SIGTERM turned into a KeyboardInterrupt by
the CLI) marks it KILLED; runs a dead process left RUNNING are closed when the next session
starts (:mod:`pesnet.tracking.orphans`).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import NamedTuple

from pesnet.errors import PesnetError
from pesnet.pipeline.engine import (
    Context,
    StepOutcome,
    StepState,
    copy_spec,
    execute,
    plan,
    run_dir_lock,
)
from pesnet.pipeline.executors import executor_for
from pesnet.pipeline.ownership import check_owner, claim_run_dir
from pesnet.pipeline.spec import Pipeline
from pesnet.pipeline.steps import read_metrics, steps_for
from pesnet.tracking.dashboard import dashboard_url
from pesnet.tracking.recorder import Recorder
from pesnet.tracking.session import run_name, source_tags
from pesnet.tracking.store import TrackingError, describe, resolve_tracking_uri

#: Where run directories go by default (relative to the working directory).
RUNS_DIR = "runs"


class PipelineError(PesnetError):
    """A step of the fit failed; the message names the step."""


class PipelineResult(NamedTuple):
    pipeline: Pipeline
    run_dir: Path
    steps: list
    run_id: str | None
    model_version: str | None
    metrics: dict | None
    tracking_uri: str | None
    tracking_error: str | None
    experiment_id: str | None = None

    @property
    def ok(self) -> bool:
        """Every step succeeded or was up to date (or tracking was switched off)."""
        return all(s.status in ("ran", "up to date", "off") for s in self.steps)

    @property
    def did_work(self) -> bool:
        return any(s.status == "ran" for s in self.steps)


def _recorder(ctx: Context, err) -> Recorder:
    """The pipeline's MLflow run, warning on ``err`` if it cannot be recorded."""
    tags = source_tags(ctx.spec.name, ctx.pipeline.path, ctx.pipeline.root, ctx.run_dir)
    tags["mlflow.runName"] = run_name(ctx.spec.name, ctx.pipeline.text)
    return Recorder(ctx.tracking_uri, ctx.spec.name, ctx.pipeline.flat_params(), tags,
                    ctx.spec.description, command="pesnet run",
                    consequence=f"; the fit goes on and writes its results to {ctx.run_dir}",
                    err=err)


def run_pipeline(pipeline: Pipeline, run_dir=None, force: bool = False, tracking: bool = True,
                 tracking_uri: str | None = None, progress: bool = True, out=None,
                 err=None, compute=None) -> PipelineResult:
    """Run ``pipeline`` (see the module doc). ``tracking_uri`` defaults to
    :func:`~pesnet.tracking.store.resolve_tracking_uri`; ``tracking=False`` skips MLflow.
    ``compute`` (a :class:`~pesnet.pipeline.spec.ComputeSpec`, default the spec's
    ``[compute]``) runs featurize and train on a Dask cluster, started when first needed.
    Step lines go to ``out``, warnings to ``err``. Raises :class:`PipelineError` if a step of
    the fit fails; tracking failures are reported in the result instead."""
    out = out or sys.stdout
    err = err or sys.stderr
    run_dir = Path(run_dir) if run_dir is not None else Path(RUNS_DIR) / pipeline.name
    uri = resolve_tracking_uri(tracking_uri) if tracking else None
    # before the lock: a copied spec is told whose directory this is, not that it is busy
    check_owner(run_dir, pipeline.path)
    with run_dir_lock(run_dir):
        claim_run_dir(run_dir, pipeline.path)
        copy_spec(pipeline, run_dir)
        ctx = Context(pipeline, run_dir, StepState(run_dir), uri, progress,
                      executor=executor_for(compute or pipeline.spec.compute))
        steps = steps_for(ctx.spec)
        work = any(plan(ctx, steps, stale=force).values())
        recorder = _recorder(ctx, err) if work and uri is not None else None
        if recorder is not None:
            ctx.session = recorder.open()
            ctx.tracking_error = recorder.error
        try:
            done = execute(ctx, steps, forced={s.name for s in steps} if force else (),
                           track_always=work, report=_printer(out))
        finally:
            ctx.executor.close()
        failure, failed = None, done.failed
        if done.failure is not None:
            failure = PipelineError(f"{failed[-1].name} failed: {done.failure}")
            failure.__cause__ = done.failure
        if recorder is not None:
            recorder.close("FAILED" if failed else "FINISHED", str(failure) if failure else
                           (f"{failed[0].name} failed: {failed[0].summary}" if failed else None))
    if failure is not None:
        raise failure
    return _result(ctx, done.outcomes)


def _printer(out):
    """The engine's report as ``[k/n] step ...... what happened (seconds)`` lines."""
    words = {"up to date": "up to date", "off": "off (--no-tracking)"}

    def report(k: int, n: int, outcome: StepOutcome, error) -> None:
        if outcome.status == "not run":
            return
        text = words.get(outcome.status, outcome.summary)
        if outcome.status == "failed":
            text = "FAILED (tracking)" if isinstance(error, TrackingError) else "FAILED"
        label = f"[{k}/{n}] {outcome.name} "
        timing = f" ({outcome.seconds:.1f} s)" if outcome.seconds >= 0.05 else ""
        print(f"{label:.<20} {text}{timing}", file=out, flush=True)

    return report


def _result(ctx: Context, outcomes: list) -> PipelineResult:
    log = (ctx.state.entry("log") or {}).get("info", {})
    registered = (ctx.state.entry("register") or {}).get("info", {})
    metrics = None
    with contextlib.suppress(OSError, ValueError):
        metrics = read_metrics(ctx.run_dir)
    return PipelineResult(ctx.pipeline, ctx.run_dir, outcomes, log.get("run_id"),
                          registered.get("version"), metrics, ctx.tracking_uri,
                          ctx.tracking_error, log.get("experiment_id"))


def summary_lines(result: PipelineResult) -> list[str]:
    """Where things are and what to do next, for the end of ``pesnet run``."""
    lines = [f"run directory: {result.run_dir}/ (model.h5, metrics.json, plots/)"]
    if result.tracking_uri and result.run_id and not result.tracking_error:
        lines.append(f"MLflow: run {result.run_id} in experiment {result.pipeline.name}, "
                     f"store {describe(result.tracking_uri)}")
        if result.model_version:
            name = result.pipeline.spec.model_name
            lines.append(f"registered: models:/{name}/{result.model_version}  "
                         f"(serve it: pesnet serve {name})")
        lines.append(f"dashboard: pesnet ui   then open "
                     f"{dashboard_url(experiment_id=result.experiment_id, run_id=result.run_id)}")
    return lines
