"""The step engine of ``pesnet run``, active learning and sweeps: plan → execute → state.

A step declares its parameters, its input files and its output files. Its *key* is the SHA-256
of (step name, pesnet version, parameters, SHA-256 of every input); ``state.json`` in the run
directory records each step's key and its outputs' digests. A step is up to date when its key
is unchanged and its outputs still exist with the recorded contents; then it is skipped. File
digests are cached by (size, mtime) so a large features file is not re-read on every run.

:func:`plan` says which steps are stale (once one is, every later one is too);
:func:`execute` runs the steps in order, recording each in the state and telling a
:data:`Report` callback how it went; a failing step stops the rest (``not run``). The caller
holds :func:`run_dir_lock` around both: one process per run directory. Steps whose
:attr:`Step.tracking` is set write to MLflow through ``Context.session`` (a
:class:`~pesnet.tracking.session.TrackingSession`); the engine only closes that run when the
process is interrupted or a step crashes. Heavy work (featurization, training) goes to
``Context.executor``: this process, or a Dask cluster (:mod:`pesnet.pipeline.executors`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from pesnet import __version__
from pesnet.errors import InputError, PesnetError
from pesnet.fileio import atomic_output, file_lock, sha256_file
from pesnet.pipeline.executors import InProcess
from pesnet.pipeline.spec import Pipeline
from pesnet.tracking.store import TrackingError

STATE_FILE = "state.json"


# -- state ---------------------------------------------------------------------------------
class StepState:
    """The run directory's ``state.json``: per step its key, output digests and information
    (e.g. the MLflow run id), plus a cache of file digests by (size, mtime)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / STATE_FILE
        self.steps: dict = {}
        self.files: dict = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                self.steps = dict(data.get("steps", {}))
                self.files = dict(data.get("files", {}))
            except (OSError, ValueError, AttributeError):
                self.steps, self.files = {}, {}  # a damaged state only costs a rerun

    def digest(self, path) -> str:
        path = Path(path)
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        cached = self.files.get(str(path.resolve()))
        if cached and cached[:2] == stamp:
            return cached[2]
        value = sha256_file(path)
        self.files[str(path.resolve())] = [*stamp, value]
        return value

    def remember(self, path, digest: str) -> None:
        """Take ``digest`` as the SHA-256 of ``path`` as it is now (size and mtime), e.g. one
        its writer computed, so that recording it does not read the file again."""
        path = Path(path)
        stat = path.stat()
        self.files[str(path.resolve())] = [stat.st_size, stat.st_mtime_ns, digest]

    def entry(self, step: str) -> dict | None:
        return self.steps.get(step)

    def record(self, step: str, key: str, outputs: dict, info: dict | None = None) -> None:
        self.steps[step] = {"key": key, "outputs": {n: [str(p), self.digest(p)]
                                                    for n, p in outputs.items()},
                            "info": info or {}, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.save()

    def forget(self, step: str) -> None:
        if self.steps.pop(step, None) is not None:
            self.save()

    def save(self) -> None:
        with atomic_output(self.path, suffix=".json.tmp") as tmp:
            tmp.write_text(json.dumps({"pesnet_version": __version__, "steps": self.steps,
                                       "files": self.files}, indent=1))


# -- context -------------------------------------------------------------------------------
@dataclass
class Context:
    """What the steps share: the spec, the run directory, the state, the tracking session and
    the executor of the heavy work."""

    pipeline: Pipeline
    run_dir: Path
    state: StepState
    tracking_uri: str | None = None  # None: tracking off
    progress: bool = True
    session: object = None  # TrackingSession when tracking works
    tracking_error: str | None = None
    trained_live: bool = False  # learning curves were streamed to the session
    ran: list = field(default_factory=list)
    executor: object = field(default_factory=InProcess)  # or a Dask executor (.executors)

    def path(self, name: str) -> Path:
        return self.run_dir / name

    @property
    def spec(self):
        return self.pipeline.spec


class StepResult(NamedTuple):
    """A finished step: a one-line summary, its output files, information for state.json."""

    summary: str
    outputs: dict
    info: dict = {}


class Step:
    """A pipeline step (see the module doc). Subclasses define the four methods."""

    name = "step"
    tracking = False

    def params(self, ctx: Context) -> dict:
        return {}

    def inputs(self, ctx: Context) -> dict:
        return {}

    def outputs(self, ctx: Context) -> dict:
        return {}

    def run(self, ctx: Context, key: str) -> StepResult:
        raise NotImplementedError

    def key(self, ctx: Context) -> str:
        """SHA-256 of the step, pesnet's version, the parameters and the inputs' digests.
        Raises FileNotFoundError if an input does not exist yet."""
        digests = {name: ctx.state.digest(path) for name, path in self.inputs(ctx).items()}
        text = json.dumps({"step": self.name, "pesnet": __version__, "params": self.params(ctx),
                           "inputs": digests}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def up_to_date(self, ctx: Context, key: str) -> bool:
        entry = ctx.state.entry(self.name)
        if entry is None or entry.get("key") != key:
            return False
        for path, digest in entry.get("outputs", {}).values():
            try:
                if ctx.state.digest(path) != digest:
                    return False
            except OSError:
                return False
        return True


# -- the engine ------------------------------------------------------------------------------
class StepOutcome(NamedTuple):
    """``status``: ``ran``, ``up to date``, ``failed``, ``off`` (tracking disabled) or
    ``not run`` (an earlier step failed)."""

    name: str
    status: str
    summary: str
    seconds: float


class Execution(NamedTuple):
    """What :func:`execute` did: one outcome per step, and the first failure of a step of the
    fit (a :class:`PesnetError`; the steps after it did not run), if any. A tracking failure
    is an outcome, never a ``failure``: the fit goes on without MLflow."""

    outcomes: list
    failure: PesnetError | None

    @property
    def failed(self) -> list:
        return [o for o in self.outcomes if o.status == "failed"]


#: ``report(k, n, outcome, error)``: step ``k`` of ``n`` finished as ``outcome``; ``error``
#: is the exception of a failed step (None otherwise).
Report = Callable[[int, int, StepOutcome, BaseException | None], None]


@contextlib.contextmanager
def run_dir_lock(run_dir: Path):
    """Hold ``run_dir``'s lock file (made with the directory if missing) for the block; an
    :class:`InputError` at once if another process holds it (one run per directory)."""
    try:
        with file_lock(Path(run_dir) / ".lock", wait=False):
            yield
    except BlockingIOError:
        raise InputError(f"{run_dir} is in use by another `pesnet run`; wait for it to "
                         f"finish or give this run another --run-dir") from None


def copy_spec(pipeline: Pipeline, run_dir: Path) -> None:
    """The spec's text as ``run_dir/spec.toml`` (left alone, mtime and all, if unchanged)."""
    target = Path(run_dir) / "spec.toml"
    if target.is_file() and target.read_text() == pipeline.text:
        return  # unchanged: keep its mtime (and cached digest)
    with atomic_output(target, suffix=".toml.tmp") as tmp:
        tmp.write_text(pipeline.text)


def plan(ctx: Context, steps, stale: bool = False) -> dict:
    """{step name: True if it must run}, ``stale`` for the first step. Once a step is stale
    every later one is too; MLflow steps are never planned while tracking is off."""
    planned = {}
    for step in steps:
        if step.tracking and ctx.tracking_uri is None:
            planned[step.name] = False
            continue
        if not stale:
            try:
                stale = not step.up_to_date(ctx, step.key(ctx))
            except (OSError, PesnetError, KeyError):
                stale = True
        planned[step.name] = stale
    return planned


def execute(ctx: Context, steps, forced=frozenset(), track_always: bool = False,
            report: Report | None = None) -> Execution:
    """Run ``steps`` in order. A step is skipped when up to date unless it is named in
    ``forced`` (or is an MLflow step and ``track_always``: every MLflow run is complete on
    its own); MLflow steps are ``off`` while tracking is. A step of the fit failing with a
    :class:`PesnetError` ends the execution (the rest are ``not run``); a
    :class:`TrackingError` is recorded in ``ctx.tracking_error`` and the next step runs. An
    interrupt or a crash closes ``ctx.session`` (KILLED, FAILED) and propagates."""
    outcomes, failure = [], None
    for k, step in enumerate(steps, start=1):
        error = None
        if failure is not None:
            outcome = StepOutcome(step.name, "not run", "", 0.0)
        elif step.tracking and ctx.tracking_uri is None:
            outcome = StepOutcome(step.name, "off", "tracking off", 0.0)
        else:
            outcome, error = _run_step(ctx, step, step.name in forced, track_always)
            if error is not None and not isinstance(error, TrackingError):
                failure = error
        outcomes.append(outcome)
        if report is not None:
            report(k, len(steps), outcome, error)
    return Execution(outcomes, failure)


def _run_step(ctx: Context, step: Step, forced: bool, track_always: bool):
    """(outcome, PesnetError or None) of one step; records it in the state when it ran."""
    started = time.perf_counter()
    try:
        key = step.key(ctx)
        # a step planned conservatively may find its inputs unchanged after all
        if not forced and step.up_to_date(ctx, key) and not (step.tracking and track_always):
            return StepOutcome(step.name, "up to date", "", 0.0), None
        result = step.run(ctx, key)
        ctx.state.record(step.name, key, result.outputs, result.info)
        ctx.ran.append(step.name)
        return StepOutcome(step.name, "ran", result.summary,
                           time.perf_counter() - started), None
    except PesnetError as error:  # TrackingError included
        if isinstance(error, TrackingError):
            ctx.tracking_error = ctx.tracking_error or str(error)
        ctx.state.forget(step.name)
        return StepOutcome(step.name, "failed", str(error), 0.0), error
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM (pesnet.cli.main.Terminated)
        if ctx.session is not None:
            ctx.session.end("KILLED", f"{step.name}: {error or 'interrupted'}")
        raise
    except BaseException as error:
        if ctx.session is not None:
            ctx.session.end("FAILED", f"{step.name}: {type(error).__name__}: {error}")
        raise
