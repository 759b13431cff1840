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
import fcntl
import sys
import time
from pathlib import Path
from typing import NamedTuple

from pesnet.errors import InputError, PesnetError
from pesnet.fileio import atomic_output
from pesnet.pipeline.ownership import check_owner, claim_run_dir
from pesnet.pipeline.spec import Pipeline
from pesnet.pipeline.step_base import Context, StepState
from pesnet.pipeline.steps import read_metrics, steps_for
from pesnet.tracking.dashboard import dashboard_url
from pesnet.tracking.store import TrackingError, describe, resolve_tracking_uri

#: Where run directories go by default (relative to the working directory).
RUNS_DIR = "runs"


class PipelineError(PesnetError):
    """A step of the fit failed; the message names the step."""


class StepOutcome(NamedTuple):
    """``status``: ``ran``, ``up to date``, ``failed``, ``off`` (tracking disabled) or
    ``not run`` (an earlier step failed)."""

    name: str
    status: str
    summary: str
    seconds: float


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


@contextlib.contextmanager
def run_dir_lock(run_dir: Path):
    """Hold ``run_dir``'s lock file (made with the directory if missing) for the block; an
    :class:`InputError` at once if another process holds it (one run per directory)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{run_dir} is in use by another `pesnet run`; wait for it to "
                             f"finish or give this run another --run-dir") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _plan(ctx: Context, force: bool) -> dict:
    """{step name: True if it must run}. Once a step is stale every later one is too."""
    plan, stale = {}, force
    for step in steps_for(ctx.spec):
        if step.tracking and ctx.tracking_uri is None:
            plan[step.name] = False
            continue
        if not stale:
            try:
                stale = not step.up_to_date(ctx, step.key(ctx))
            except (OSError, PesnetError, KeyError):
                stale = True
        plan[step.name] = stale
    return plan


def _copy_spec(pipeline: Pipeline, run_dir: Path) -> None:
    target = run_dir / "spec.toml"
    if target.is_file() and target.read_text() == pipeline.text:
        return  # unchanged: keep its mtime (and cached digest)
    with atomic_output(target, suffix=".toml.tmp") as tmp:
        tmp.write_text(pipeline.text)


def _start_session(ctx: Context, err) -> None:
    from pesnet.tracking.session import TrackingSession, run_name, source_tags

    tags = source_tags(ctx.spec.name, ctx.pipeline.path, ctx.pipeline.root, ctx.run_dir)
    tags["mlflow.runName"] = run_name(ctx.spec.name, ctx.pipeline.text)
    try:
        ctx.session = TrackingSession.start(ctx.tracking_uri, ctx.spec.name,
                                            ctx.pipeline.flat_params(), tags,
                                            ctx.spec.description)
    except TrackingError as error:
        ctx.tracking_error = str(error)
        print(f"pesnet run: warning: tracking failed: {error}; the fit goes on and writes its "
              f"results to {ctx.run_dir}", file=err, flush=True)
        return
    closed = ctx.session.closed_orphans
    if closed:
        print(f"pesnet run: note: {len(closed)} MLflow run(s) in experiment {ctx.spec.name} "
              f"were left RUNNING by a process that ended on this host; marked KILLED",
              file=err, flush=True)


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
        _copy_spec(pipeline, run_dir)
        ctx = Context(pipeline, run_dir, StepState(run_dir), uri, progress,
                      compute=compute or pipeline.spec.compute)
        plan = _plan(ctx, force)
        if any(plan.values()) and uri is not None:
            _start_session(ctx, err)
        try:
            return _execute(ctx, plan, force, out)
        finally:
            if ctx.cluster is not None:
                ctx.cluster.close()


def _line(out, k: int, n: int, name: str, text: str, seconds: float | None = None) -> None:
    label = f"[{k}/{n}] {name} "
    timing = f" ({seconds:.1f} s)" if seconds is not None and seconds >= 0.05 else ""
    print(f"{label:.<20} {text}{timing}", file=out, flush=True)


def _execute(ctx: Context, plan: dict, force: bool, out) -> PipelineResult:
    work = any(plan.values())
    outcomes = []
    failure = None
    steps = steps_for(ctx.spec)
    for k, step in enumerate(steps, start=1):
        if failure is not None:
            outcomes.append(StepOutcome(step.name, "not run", "", 0.0))
            continue
        if step.tracking and ctx.tracking_uri is None:
            outcomes.append(StepOutcome(step.name, "off", "tracking off", 0.0))
            _line(out, k, len(steps), step.name, "off (--no-tracking)")
            continue
        started = time.perf_counter()
        try:
            key = step.key(ctx)
            # a step planned conservatively may find its inputs unchanged after all; the
            # MLflow steps run whenever this invocation does any work
            if not force and step.up_to_date(ctx, key) and not (step.tracking and work):
                outcomes.append(StepOutcome(step.name, "up to date", "", 0.0))
                _line(out, k, len(steps), step.name, "up to date")
                continue
            result = step.run(ctx, key)
            ctx.state.record(step.name, key, result.outputs, result.info)
            ctx.ran.append(step.name)
            seconds = time.perf_counter() - started
            outcomes.append(StepOutcome(step.name, "ran", result.summary, seconds))
            _line(out, k, len(steps), step.name, result.summary, seconds)
        except TrackingError as error:
            ctx.tracking_error = ctx.tracking_error or str(error)
            ctx.state.forget(step.name)
            outcomes.append(StepOutcome(step.name, "failed", str(error), 0.0))
            _line(out, k, len(steps), step.name, "FAILED (tracking)")
        except PesnetError as error:
            ctx.state.forget(step.name)
            outcomes.append(StepOutcome(step.name, "failed", str(error), 0.0))
            _line(out, k, len(steps), step.name, "FAILED")
            failure = PipelineError(f"{step.name} failed: {error}")
            failure.__cause__ = error
        except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM (pesnet.cli.main.Terminated)
            if ctx.session is not None:
                ctx.session.end("KILLED", f"{step.name}: {error or 'interrupted'}")
            raise
        except BaseException as error:
            if ctx.session is not None:
                ctx.session.end("FAILED", f"{step.name}: {type(error).__name__}: {error}")
            raise
    if ctx.session is not None:
        failed = [o for o in outcomes if o.status == "failed"]
        message = str(failure) if failure is not None else \
            (f"{failed[0].name} failed: {failed[0].summary}" if failed else None)
        ctx.session.end("FAILED" if failed else "FINISHED", message)
    if failure is not None:
        raise failure
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
